"""Token healing: generate text that must begin with a given string, by masking the logits.

A prompt that ends inside a token is one the model rarely saw in training: "return " ends in a lone space
piece where training text had "▁self", and "os.pa" ends in "pa" where training text had "path". Healing
leaves that tail out of the prompt and constrains the first generated tokens to those that agree with it:
a token whose text begins with what is still required ("▁self" for " "), or is a prefix of it. The model
then picks its best continuation among tokens that fit, instead of being forced into a rare split.
"""

from __future__ import annotations

import bisect

import torch
from torch import Tensor

from .tokenizer import Tokenizer


class PieceIndex:
    """Every vocabulary piece's text, sorted, so that "the pieces that begin with X" is a range lookup.

    Built once per tokenizer (a few milliseconds for 32k pieces).
    """

    def __init__(self, tokenizer: Tokenizer) -> None:
        entries = sorted((text, i) for i, text in enumerate(tokenizer.piece_texts()) if text)
        self._texts = [text for text, _ in entries]
        self._ids = [i for _, i in entries]

    def _spelling(self, text: str) -> list[int]:
        """Ids of the pieces whose text is exactly `text` (a character can have a byte piece besides its own)."""
        return self._ids[bisect.bisect_left(self._texts, text):bisect.bisect_right(self._texts, text)]

    def allowed(self, required: str) -> list[int]:
        """Ids of the pieces that agree with `required`: they begin with it, or are a non-empty prefix of it."""
        lo = bisect.bisect_left(self._texts, required)
        hi = bisect.bisect_left(self._texts, required + "\U0010ffff")
        return self._ids[lo:hi] + [i for k in range(1, len(required)) for i in self._spelling(required[:k])]


class Constraint:
    """The generated text must begin with `required`: masks logits until it does.

    The engine calls `mask(logits)` before choosing each token and `observe(text)` after, with the text
    generated so far; `done` turns true once the requirement is met (or cannot be, see below).
    """

    def __init__(self, index: PieceIndex, required: str) -> None:
        self.index = index
        self.required = required
        self.remaining = required
        self._allowed: Tensor | None = None

    @property
    def done(self) -> bool:
        return not self.remaining

    def observe(self, text: str) -> None:
        if self.required.startswith(text):  # on the way (or not started)
            self.remaining = self.required[len(text):]
        else:  # met it, or went its own way (possible only where no piece fitted): stop constraining
            self.remaining = ""
        self._allowed = None

    def mask(self, logits: Tensor) -> Tensor:
        """`logits` (vocab,) with every token that disagrees with the remaining text set to -inf."""
        if self.done:
            return logits
        if self._allowed is None:
            ids = self.index.allowed(self.remaining)
            if not ids:  # nothing in the vocabulary spells it (a non-ASCII character only bytes can): leave it free
                self.remaining = ""
                return logits
            self._allowed = torch.tensor(ids, device=logits.device)
        masked = torch.full_like(logits, float("-inf"))
        masked[self._allowed] = logits[self._allowed]
        return masked
