"""Generation with a warm model: prefix-cached prefill, token-by-token decode, cooperative stopping.

The engine remembers which tokens its KV cache holds. A new prompt is prefilled only after its longest
common prefix with them, so a re-request while the user types (same window start, a few new tokens at the
end) costs a few tokens of prefill, not the whole window.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .llama import Transformer
from .tokenizer import FimMode, Tokenizer, infill_prompt

PREFILL_CHUNK = 512  # tokens per prefill step; cancellation is checked between chunks


@dataclass
class Timings:
    prompt_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens whose K/V were reused
    new_tokens: int = 0
    prefill_ms: float = 0.0
    first_token_ms: float = 0.0
    decode_ms: float = 0.0
    total_ms: float = 0.0


@dataclass
class Generation:
    tokens: list[int]
    text: str
    stop_reason: str  # eot | eos | max_tokens | stop | deadline | cancel | context
    timings: Timings = field(default_factory=Timings)


def common_prefix_len(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def sample(logits: Tensor, temperature: float, top_p: float, generator: torch.Generator | None = None) -> int:
    """Greedy at temperature 0, else nucleus sampling. logits: (vocab,) float32."""
    if temperature <= 0:
        return int(logits.argmax())
    probs = torch.softmax(logits / temperature, dim=-1)
    sorted_probs, order = probs.sort(descending=True)
    # Keep the smallest set of tokens whose mass reaches top_p (the first token always stays).
    sorted_probs[(sorted_probs.cumsum(-1) - sorted_probs) > top_p] = 0.0
    choice = torch.multinomial(sorted_probs / sorted_probs.sum(), 1, generator=generator)
    return int(order[choice])


class Engine:
    def __init__(self, model: Transformer, tokenizer: Tokenizer, *, context_length: int = 4096) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.device = model.tok_embeddings.weight.device
        self.context_length = min(context_length, model.args.max_seq_len)
        model.setup_caches(self.context_length)
        self._cached: list[int] = []  # tokens whose K/V sit in cache positions [0, len)
        self._lock = threading.Lock()  # one generation at a time: the cache is shared state

    @torch.inference_mode()
    def _forward(self, tokens: list[int], start: int) -> Tensor:
        """Run `tokens` at positions start.. and return the last position's logits: (vocab,)."""
        idx = torch.tensor([tokens], dtype=torch.long, device=self.device)
        input_pos = torch.arange(start, start + len(tokens), device=self.device)
        return self.model(idx, input_pos, kv_len=start + len(tokens), last_only=True)[0, -1]

    def generate(self, prompt: list[int], *, max_new_tokens: int = 64, temperature: float = 0.0,
                 top_p: float = 0.95, stop: Callable[[str], bool] | None = None,
                 cancel: Callable[[], bool] | None = None, deadline: float | None = None,
                 decode: Callable[[list[int]], str] | None = None) -> Generation:
        """Continue `prompt` until <EOT>/EOS, max_new_tokens, `stop(text)` is true, `cancel()` is true, or
        time.monotonic() passes `deadline`. Returns what was generated so far in every case.

        `decode` turns generated ids into text for `stop` and the result (default: infilling decode).
        """
        if not prompt:
            raise ValueError("empty prompt")
        if len(prompt) >= self.context_length:
            raise ValueError(f"prompt of {len(prompt)} tokens does not fit the context of {self.context_length}")
        decode = decode or self.tokenizer.decode_infilling
        cancelled = cancel or (lambda: False)
        t0 = time.perf_counter()
        with self._lock:
            timings = Timings(prompt_tokens=len(prompt))
            # Reuse the cache up to the common prefix, but always run at least the last prompt token.
            start = min(common_prefix_len(self._cached, prompt), len(prompt) - 1)
            timings.cached_tokens = start
            self._cached = self._cached[:start]
            logits = None
            pos = start
            while pos < len(prompt):
                if cancelled() or (deadline is not None and time.monotonic() > deadline):
                    return Generation([], "", "cancel" if cancelled() else "deadline", self._done(timings, t0))
                chunk = prompt[pos:pos + PREFILL_CHUNK]
                logits = self._forward(chunk, pos)
                self._cached.extend(chunk)
                pos += len(chunk)
            assert logits is not None
            timings.prefill_ms = (time.perf_counter() - t0) * 1000

            tokens: list[int] = []
            text = ""
            budget = min(max_new_tokens, self.context_length - len(prompt))
            reason = "max_tokens" if budget == max_new_tokens else "context"
            t_decode = time.perf_counter()
            while len(tokens) < budget:
                token = sample(logits, temperature, top_p)
                if not tokens:
                    timings.first_token_ms = (time.perf_counter() - t0) * 1000
                if token in self.tokenizer.stop_ids:
                    reason = "eot" if token == self.tokenizer.eot_id else "eos"
                    break
                tokens.append(token)
                text = decode(tokens)
                if stop is not None and stop(text):
                    reason = "stop"
                    break
                if cancelled():
                    reason = "cancel"
                    break
                if deadline is not None and time.monotonic() > deadline:
                    reason = "deadline"
                    break
                if len(tokens) == budget:
                    break
                logits = self._forward([token], len(self._cached))
                self._cached.append(token)
            timings.new_tokens = len(tokens)
            timings.decode_ms = (time.perf_counter() - t_decode) * 1000
            return Generation(tokens, text, reason, self._done(timings, t0))

    @staticmethod
    def _done(timings: Timings, t0: float) -> Timings:
        timings.total_ms = (time.perf_counter() - t0) * 1000
        return timings

    def infill(self, prefix: str, suffix: str, *, mode: FimMode = "psm", **kwargs: object) -> Generation:
        """Generate the middle between `prefix` and `suffix` (kwargs as for generate)."""
        return self.generate(infill_prompt(self.tokenizer, prefix, suffix, mode), **kwargs)  # type: ignore[arg-type]

    def reset_cache(self) -> None:
        with self._lock:
            self._cached = []

    def memory_bytes(self) -> int:
        """Bytes held by weights and KV cache (quantized weights count at their packed size)."""
        params = sum(p.numel() * p.element_size() for p in self.model.parameters())
        buffers = sum(b.numel() * b.element_size() for b in self.model.buffers())
        return params + buffers
