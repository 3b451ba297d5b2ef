"""The seam between the language server and what generates tokens: the local engine, or a remote server.

Everything that makes a completion good (windows, Meta-exact FIM prompts, shaping, healing text, stop
rules, caching) is built around a backend, never inside one: a backend turns prompt token ids into
generated token ids, stopping when told, and reports how long it took.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

from .tokenizer import FimMode, Tokenizer, infill_prompt


@dataclass
class Timings:
    prompt_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens whose K/V were reused
    prefilled_tokens: int = 0  # prompt tokens this request read (all past cached_tokens, unless cut short); 0: unknown
    new_tokens: int = 0
    prefill_ms: float = 0.0
    first_token_ms: float = 0.0
    decode_ms: float = 0.0
    total_ms: float = 0.0
    drafted_tokens: int = 0  # prompt-lookup tokens proposed, and how many of them the model confirmed
    accepted_tokens: int = 0


@dataclass
class Generation:
    tokens: list[int]
    text: str
    stop_reason: str  # eot | eos | max_tokens | stop | deadline | cancel | context | invalid | error
    timings: Timings = field(default_factory=Timings)


class BackendUnavailable(Exception):
    """The generator could not be reached or refused the request (a remote backend's outage): no tokens."""


class IncompatibleModel(BackendUnavailable):
    """The server answers, but its model is not one our tokenizer's prompts are meant for."""


class Backend(Protocol):
    tokenizer: Tokenizer
    context_length: int
    recalls: bool  # whether generate uses `recall` (callers need not tokenize it otherwise)

    def generate(self, prompt: list[int], *, max_new_tokens: int = 64, temperature: float = 0.0,
                 top_p: float = 0.95, stop: Callable[[str], bool] | None = None,
                 cancel: Callable[[], bool] | None = None, deadline: float | None = None,
                 decode: Callable[[list[int]], str] | None = None, constraint: str = "",
                 recall: Sequence[int] = (), first_rank: int | None = None) -> Generation:
        """Continue `prompt` (token ids) until <EOT>/EOS, max_new_tokens, `stop(text)` is true, `cancel()` is
        true, or time.monotonic() passes `deadline`; the text (by `decode`, default the tokenizer's infilling
        decode) begins with `constraint`. With the default decode, generation also ends ("invalid") at bytes
        that are no text, where that text ends for good; with any, before an id the tokenizer does not have.
        `recall`: tokens of the text the prompt leaves out, which a backend that `recalls` may copy from.
        `first_rank` r: an alternative that begins with the r-th likeliest first token other than a stop token
        (0: the likeliest), or ends at once if there is none. Returns what was generated so far in every case; a
        remote backend raises BackendUnavailable when its server cannot be reached or fails.
        """
        ...

    def reset_cache(self) -> None:
        """Forget cached prompt state (the next request is served cold)."""
        ...

    def describe(self) -> dict[str, object]:
        """How this backend runs, for `codellama.status` (always has "backend" and "device")."""
        ...

    def memory_bytes(self) -> int:
        """Bytes of model state held in this process (0 for a remote backend)."""
        ...


def redact_url(url: str) -> str:
    """`url` fit to show: credentials in it (`http://user:password@host`, which an HTTP client sends as basic
    auth) become `***`, since a remote backend's URL appears in status, messages and logs."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]))


def infill(backend: Backend, prefix: str, suffix: str, *, mode: FimMode = "psm", **kwargs: object) -> Generation:
    """Generate the middle between `prefix` and `suffix` (kwargs as for generate)."""
    return backend.generate(infill_prompt(backend.tokenizer, prefix, suffix, mode), **kwargs)  # type: ignore[arg-type]


def check_request(prompt: list[int], max_new_tokens: int) -> None:
    """Refuse (ValueError) the arguments of `Backend.generate` that no backend can serve."""
    if not prompt:
        raise ValueError("empty prompt")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be at least 1, not {max_new_tokens}")


def token_budget(prompt_tokens: int, max_new_tokens: int, context_length: int) -> tuple[int, str]:
    """(how many tokens may be generated, the stop reason once they are): max_new_tokens ("max_tokens"), or
    fewer where the context ends first ("context"). A prompt that leaves no room raises ValueError."""
    if prompt_tokens >= context_length:
        raise ValueError(f"prompt of {prompt_tokens} tokens does not fit the context of {context_length}")
    budget = min(max_new_tokens, context_length - prompt_tokens)
    return budget, "max_tokens" if budget == max_new_tokens else "context"


def take_tokens(source: Iterable[int], tokenizer: Tokenizer, *, budget: int, exhausted: str, timings: Timings,
                t0: float, decode: Callable[[list[int]], str], stop: Callable[[str], bool] | None,
                cancel: Callable[[], bool], deadline: float | None,
                observe: Callable[[str], None] | None = None, ends_at_bad_bytes: bool = True
                ) -> tuple[list[int], str, str]:
    """Pull generated tokens from `source` until the contract of `Backend.generate` says stop.

    Every backend stops by these same rules, so that they answer alike: a stop id (<EOT>/EOS, not kept), then
    after each kept token bytes that are no text ("invalid": the text ends before them, so no later token can
    add to it; see Tokenizer.ends_in_bad_bytes; only with `ends_at_bad_bytes`, true where `decode` is the
    infilling decode: text of a caller's own decode may go on), an id outside the tokenizer ("invalid", not
    kept, with any decode), `stop(text)`, `cancel()`, the deadline and the budget. `observe(text)` sees the text
    after each token (token healing). Returns (tokens, text, stop reason); the reason is `exhausted` when the
    budget or the source ran out. Sets timings.first_token_ms (from `t0`, a perf_counter time).
    """
    tokens: list[int] = []
    text = ""
    settled = 0  # tokens[:settled] are whole text, no character in progress: only what follows can go bad
    for token in source:
        if not tokens:
            timings.first_token_ms = (time.perf_counter() - t0) * 1000
        if token in tokenizer.stop_ids:
            return tokens, text, "eot" if token == tokenizer.eot_id else "eos"
        if not 0 <= token < tokenizer.n_words:
            # No piece of ours (a vLLM server's fine-tune with a pad token or rows padded past the tokenizer's):
            # no text, so the text ends before it, and the id is not kept (no decode could read it).
            return tokens, text, "invalid"
        tokens.append(token)
        text = decode(tokens)
        if observe is not None:
            observe(text)
        # Checked from `settled` on: the whole ids each time would cost O(n^2) per generation.
        if ends_at_bad_bytes and tokenizer.ends_in_bad_bytes(tokens[settled:]):
            return tokens, text, "invalid"
        if not tokenizer.sp.is_byte(token):
            settled = len(tokens)
        if stop is not None and stop(text):
            return tokens, text, "stop"
        if cancel():
            return tokens, text, "cancel"
        if deadline is not None and time.monotonic() > deadline:
            return tokens, text, "deadline"
        if len(tokens) == budget:
            break
    return tokens, text, exhausted
