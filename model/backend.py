"""The seam between the language server and what generates tokens: the local engine, or a remote server.

Everything that makes a completion good (windows, Meta-exact FIM prompts, shaping, healing text, stop
rules, caching) is built around a backend, never inside one: a backend turns prompt token ids into
generated token ids, stopping when told, and reports how long it took.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from .tokenizer import FimMode, Tokenizer, infill_prompt


@dataclass
class Timings:
    prompt_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens whose K/V were reused
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
    stop_reason: str  # eot | eos | max_tokens | stop | deadline | cancel | context | error
    timings: Timings = field(default_factory=Timings)


class Backend(Protocol):
    tokenizer: Tokenizer
    context_length: int

    def generate(self, prompt: list[int], *, max_new_tokens: int = 64, temperature: float = 0.0,
                 top_p: float = 0.95, stop: Callable[[str], bool] | None = None,
                 cancel: Callable[[], bool] | None = None, deadline: float | None = None,
                 decode: Callable[[list[int]], str] | None = None, constraint: str = "") -> Generation:
        """Continue `prompt` (token ids) until <EOT>/EOS, max_new_tokens, `stop(text)` is true, `cancel()` is
        true, or time.monotonic() passes `deadline`; the text (by `decode`, default the tokenizer's infilling
        decode) begins with `constraint`. Returns what was generated so far in every case."""
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


def infill(backend: Backend, prefix: str, suffix: str, *, mode: FimMode = "psm", **kwargs: object) -> Generation:
    """Generate the middle between `prefix` and `suffix` (kwargs as for generate)."""
    return backend.generate(infill_prompt(backend.tokenizer, prefix, suffix, mode), **kwargs)  # type: ignore[arg-type]
