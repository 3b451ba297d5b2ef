"""Generation with a warm model: prefix-cached prefill, token-by-token decode, cooperative stopping.

The engine remembers which tokens its KV cache holds. A new prompt is prefilled only after its longest
common prefix with them, so a re-request while the user types (same window start, a few new tokens at the
end) costs a few tokens of prefill, not the whole window. The forward passes themselves are a stepper's
(model/steppers.py: eager, or CUDA graph replays); greedy decoding verifies prompt-lookup drafts
(model/speculate.py) so that one forward pass can yield several tokens. Models that ask for it mix a
document n-gram cache into their next-token distribution (model/ngram_cache.py), which also copies from
the rest of the document (`recall`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from functools import cached_property

import torch
from torch import Tensor

from . import backend
from .backend import Generation, Timings, check_request, take_tokens, token_budget
from .healing import Constraint, PieceIndex
from .llama import Transformer
from .ngram_cache import NgramCache, Recall
from .quant import is_quantized, quant_state_bytes
from .speculate import PromptLookup
from .steppers import Progress, Stepper, make_stepper
from .tokenizer import FimMode, Tokenizer

# Tokens per prefill step; cancellation is checked between chunks. A GPU runs 2,048 tokens in tens of
# milliseconds, and every chunk pays for dequantizing all 4-bit weights once, so it takes bigger ones.
# On the CPU this is the largest chunk: there a chunk is sized by the model's measured costs (PrefillChunks).
PREFILL_CHUNK = {"cpu": 512, "cuda": 2048}
# A fixed 512-token chunk held the CPU model thread (a newer request, a cancel, a reload) for 30-60 s with a 7B,
# which reads 8-20 prompt tokens a second there. But a forward pass costs about one decoding step whatever its
# size (it reads every weight once) plus so much a token, and few-token passes read many times slower (a ~1B
# here: 1 token 0.2 s, 16 tokens 0.5 s, 64 1.0 s, 512 5.0 s). So a chunk is as long as PASSES_PER_CHUNK decoding
# steps: that fixed cost is then an eighth of its time (the ~1B: ~120-token chunks of ~1.5 s, reading 1.2-1.35x
# slower than in 512s; the 7B: ~50 tokens, ~5 s). A decoding step's cost is timed once, at load; a token's is
# measured chunk by chunk. (Decoding steps are not timed as they run: under other processes' load they slowed
# less than a prefill pass's fixed cost did, and the chunks sized by them shrank: the ~1B beside two busy
# processes read 600 tokens in 50-62 s that way, 36-46 s this way, 16-18 s in 512s.) Never under CPU_CHUNK_FLOOR.
PASSES_PER_CHUNK = 8
CPU_CHUNK_FLOOR = 16
# ...and never shorter than this: no one waits on a hold this short, and every pass saved is reading time (the demo
# model's chunks were ~165 tokens of ~30 ms by the rule above, and read a 900-token prompt 13% slower than in 512s).
CPU_CHUNK_SECONDS = 0.25


class PrefillChunks:
    """CPU prefill chunk sizes from the measured costs of a forward pass: `pass_s` for any pass (a decoding step's
    time, timed at load) and `token_s` more for each token (measured chunk by chunk). A chunk holds the tokens
    that make it last PASSES_PER_CHUNK passes, or CPU_CHUNK_SECONDS when that is longer, between `floor` and
    `largest`. It starts at `floor` and grows at most 4x a chunk, one chunk being no proof."""

    def __init__(self, largest: int, pass_s: float, *, floor: int = CPU_CHUNK_FLOOR) -> None:
        self.largest, self.floor = largest, min(floor, largest)
        self.pass_s = pass_s
        self.token_s: float | None = None  # unknown until a chunk has run
        self.size = self.floor

    def ran(self, tokens: int, elapsed: float) -> None:
        """A chunk of `tokens` took `elapsed` seconds. One of fewer than `floor` (a prompt's last few tokens) says
        too little of the cost a token."""
        if tokens < self.floor:
            return
        token_s = max(elapsed - self.pass_s, 0.0) / (tokens - 1)  # a pass holds one token already
        self.token_s = token_s if self.token_s is None else (self.token_s + token_s) / 2
        fits = (max(1 + (PASSES_PER_CHUNK - 1) * self.pass_s / self.token_s, CPU_CHUNK_SECONDS / self.token_s)
                if self.token_s > 0 else self.largest)
        self.size = max(self.floor, min(int(fits), 4 * self.size, self.largest))


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
    # Shifted by the top logit and divided in float64, so that a tiny temperature tends to greedy instead of
    # overflowing (or, as a float32 0, dividing 0 by 0) to nan.
    probs = torch.softmax((logits - logits.max()).double() / temperature, dim=-1)
    sorted_probs, order = probs.sort(descending=True)
    # Keep the smallest set of tokens whose mass reaches top_p (the first token always stays).
    sorted_probs[(sorted_probs.cumsum(-1) - sorted_probs) > top_p] = 0.0
    choice = torch.multinomial(sorted_probs / sorted_probs.sum(), 1, generator=generator)
    return int(order[choice])


def ranked_choice(scores: Tensor, rank: int, excluded: frozenset[int]) -> int | None:
    """The `rank`-th likeliest token (0: the likeliest) of those `scores` (vocab,) leave possible and `excluded`
    does not hold; None when there are not that many."""
    top = scores.topk(min(rank + 1 + len(excluded), scores.numel()))
    ranked = [t for s, t in zip(top.values.tolist(), top.indices.tolist()) if s > float("-inf") and t not in excluded]
    return ranked[rank] if rank < len(ranked) else None


class Engine:
    def __init__(self, model: Transformer, tokenizer: Tokenizer, *, context_length: int = 4096,
                 graphs: bool | None = None, speculate: int | None = None, ngram_cache: Sequence[float] = (),
                 progress: Progress | None = None) -> None:
        """A warm model. graphs: CUDA graphs (default: on CUDA). speculate: most prompt-lookup tokens drafted
        per greedy step (default: 7 on CUDA, where checking 8 tokens costs about what checking 1 does; 0 on
        the CPU, where it costs 8 times as much). ngram_cache: the cache's weights by match length (see
        NgramCache; empty: the model's distribution alone)."""
        self.model = model
        self.tokenizer = tokenizer
        self.device = model.tok_embeddings.weight.device
        self.context_length = min(context_length, model.args.max_seq_len)
        model.setup_caches(self.context_length)
        self.stepper: Stepper = make_stepper(model, graphs=graphs)
        on_cuda = self.device.type == "cuda"
        self.speculate = (7 if on_cuda else 0) if speculate is None else speculate
        self.ngram_cache = tuple(ngram_cache)
        self.recalls = bool(self.ngram_cache)
        # Control tokens are never copied, nor line breaks: a prompt holds lines in progress (other files'
        # recent edits, blanks typed at the cursor), and where a line ends is the model's call.
        self._not_copied = (tokenizer.control_ids | tokenizer.newline_ids) if self.ngram_cache else frozenset()
        self.prefill_chunk = PREFILL_CHUNK["cuda" if on_cuda else "cpu"]  # the largest chunk
        self.stepper.warmup(progress)
        # CUDA keeps its fixed chunk: it is done in tens of milliseconds, and times only with a synchronize.
        self.chunks: PrefillChunks | None = None
        if not on_cuda:  # a pass's own cost, timed once warm
            t = time.perf_counter()
            self.stepper([tokenizer.bos_id], 0)
            self.chunks = PrefillChunks(self.prefill_chunk, pass_s=time.perf_counter() - t)
        self._cached: list[int] = []  # tokens whose K/V sit in cache positions [0, len)
        self._recall: Recall | None = None  # the last request's, reused while the windows stay put
        self._lock = threading.Lock()  # one generation at a time: the cache is shared state

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def generate(self, prompt: list[int], *, max_new_tokens: int = 64, temperature: float = 0.0,
                 top_p: float = 0.95, stop: Callable[[str], bool] | None = None,
                 cancel: Callable[[], bool] | None = None, deadline: float | None = None,
                 decode: Callable[[list[int]], str] | None = None, constraint: str = "",
                 recall: Sequence[int] = (), first_rank: int | None = None) -> Generation:
        """Continue `prompt` until <EOT>/EOS, max_new_tokens, `stop(text)` is true, `cancel()` is true, or
        time.monotonic() passes `deadline`. Returns what was generated so far in every case.

        `decode` turns generated ids into text for `stop` and the result (default: infilling decode); the
        text begins with `constraint` (token healing: the first tokens are chosen among those that agree).
        `recall`: tokens of text the prompt leaves out, for the n-gram cache to copy from too.
        `first_rank` r: one of several alternatives, which begins with the model's r-th likeliest first token
        that is not a stop token (0: the likeliest), then goes on as usual; it ends at once when there is none.
        Alternatives of one prompt share its prefill: the second call prefills one token.
        """
        check_request(prompt, max_new_tokens)
        budget, exhausted = token_budget(len(prompt), max_new_tokens, self.context_length)
        whole_text = decode is None  # the infilling decode's text ends for good at bytes that are no text
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
                    # What was read stays cached for the next request; the timings say how far it got, how fast.
                    timings.prefilled_tokens, timings.prefill_ms = pos - start, (time.perf_counter() - t0) * 1000
                    return Generation([], "", "cancel" if cancelled() else "deadline", self._done(timings, t0))
                size = self.prefill_chunk if self.chunks is None else min(self.prefill_chunk, self.chunks.size)
                chunk = prompt[pos:pos + size]
                t_chunk = time.perf_counter()
                logits = self.stepper(chunk, pos)[-1]
                if self.chunks is not None:  # the CPU computes synchronously: the call's time is the chunk's
                    self.chunks.ran(len(chunk), time.perf_counter() - t_chunk)
                self._cached.extend(chunk)
                pos += len(chunk)
            assert logits is not None
            self._sync()  # the GPU runs behind the host: time the prefill, not its launch
            timings.prefilled_tokens, timings.prefill_ms = len(prompt) - start, (time.perf_counter() - t0) * 1000

            t_decode = time.perf_counter()
            greedy = temperature <= 0
            drafts = PromptLookup(prompt, max_draft=self.speculate) if greedy and self.speculate else None
            heal = Constraint(self.pieces, constraint) if constraint else None
            cache = NgramCache(prompt, self.ngram_cache, exclude=self._not_copied,
                               recall=self._recalled(recall)) if self.ngram_cache else None
            tokens, text, reason = take_tokens(
                self._decode(logits, budget, temperature, top_p, drafts, heal, cache, timings, first_rank),
                self.tokenizer, budget=budget, exhausted=exhausted, timings=timings, t0=t0, decode=decode,
                stop=stop, cancel=cancelled, deadline=deadline, observe=heal.observe if heal is not None else None,
                ends_at_bad_bytes=whole_text)
            timings.new_tokens = len(tokens)
            timings.decode_ms = (time.perf_counter() - t_decode) * 1000
            return Generation(tokens, text, reason, self._done(timings, t0))

    def _decode(self, logits: Tensor, budget: int, temperature: float, top_p: float,
                drafts: PromptLookup | None, heal: Constraint | None, cache: NgramCache | None,
                timings: Timings, first_rank: int | None = None) -> Iterator[int]:
        """Yield generated tokens one at a time; the caller stops pulling when it has enough.

        A token is fed to the model only when the next one is asked for, so the cache never holds a token
        the caller rejected. With `drafts`, each step also feeds the drafted continuation and yields the
        part of it that greedy decoding would have produced anyway, then the model's own next token.
        While `heal` is unmet, tokens are chosen among those it allows (and nothing is drafted). With `cache`,
        tokens are chosen (and drafts verified) from the mixture of the model's and the cache's distributions.
        With `first_rank`, the first token is the first_rank-th likeliest non-stop token (EOS, the end, if none).
        """
        def scores(logits: Tensor) -> Tensor:
            if heal is not None:
                logits = heal.mask(logits)
            return cache.mix(logits) if cache is not None else logits

        produced = 0
        while True:
            if produced == 0 and first_rank is not None:
                ranked = ranked_choice(scores(logits), first_rank, self.tokenizer.stop_ids)
                token = self.tokenizer.eos_id if ranked is None else ranked
            else:
                token = sample(scores(logits), temperature, top_p)
            if cache is not None:
                cache.extend([token])
            yield token
            produced += 1
            pos = len(self._cached)
            # Room left: tokens the caller may still take, and cache positions (the draft's and one more).
            room = min(budget - produced, self.context_length - 1 - pos)
            if drafts is not None:
                drafts.extend([token])
            draft = drafts.draft(room) if drafts is not None and (heal is None or heal.done) else []
            rows = self.stepper([token, *draft], pos, all_logits=bool(draft))
            self._cached.append(token)
            if not draft:
                logits = rows[-1]
                continue
            # The greedy token after each fed position: all at once for the model alone; one by one with a
            # cache, whose distribution after position i depends on the draft tokens accepted before it.
            choices = rows.argmax(dim=-1).tolist() if cache is None else None
            accepted = 0
            while accepted < len(draft):
                choice = choices[accepted] if choices is not None else int(scores(rows[accepted]).argmax())
                if choice != draft[accepted]:
                    break
                if cache is not None:
                    cache.extend([choice])
                accepted += 1
            timings.drafted_tokens += len(draft)
            timings.accepted_tokens += accepted
            logits = rows[accepted]
            for d in draft[:accepted]:
                self._cached.append(d)  # its K/V were computed after the right prefix: a valid cache entry
                drafts.extend([d])  # type: ignore[union-attr]
                yield d
                produced += 1

    def _recalled(self, recall: Sequence[int]) -> Recall | None:
        if not recall:
            return None
        # The server hands the same tuple back while the windows stay put: an identity check, not 32k compares.
        if self._recall is None or (self._recall.ids is not recall and self._recall.ids != tuple(recall)):
            self._recall = Recall(recall)
        return self._recall

    @staticmethod
    def _done(timings: Timings, t0: float) -> Timings:
        timings.total_ms = (time.perf_counter() - t0) * 1000
        return timings

    def infill(self, prefix: str, suffix: str, *, mode: FimMode = "psm", **kwargs: object) -> Generation:
        """Generate the middle between `prefix` and `suffix` (kwargs as for generate)."""
        return backend.infill(self, prefix, suffix, mode=mode, **kwargs)

    @cached_property
    def pieces(self) -> PieceIndex:
        """The vocabulary indexed for token healing (built on first use)."""
        return PieceIndex(self.tokenizer)

    def reset_cache(self) -> None:
        with self._lock:
            self._cached = []

    def describe(self) -> dict[str, object]:
        """How this engine runs: forward passes (CUDA graphs or eager), linear layer kinds, drafted tokens."""
        graphs = bool(getattr(self.stepper, "graphs", None))
        layers = sorted({type(m).__name__ for m in self.model.modules() if is_quantized(m)}) or ["Linear"]
        return {"backend": "local", "device": str(self.device), "steps": "cuda graphs" if graphs else "eager",
                "layers": layers, "speculate": self.speculate, "ngram_cache": list(self.ngram_cache)}

    def memory_bytes(self) -> int:
        """Bytes held by weights, their quantization state and the KV cache."""
        params = sum(p.numel() * p.element_size() for p in self.model.parameters())
        buffers = sum(b.numel() * b.element_size() for b in self.model.buffers())
        return params + buffers + quant_state_bytes(self.model)
