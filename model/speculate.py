"""Prompt-lookup drafting: guess the next tokens by copying what followed the same tokens earlier.

Code repeats itself (names, argument lists, whole lines from the suffix), so the last few tokens often
occurred before in the prompt or the text generated so far, followed by what comes next now. The engine
verifies a draft in one forward pass and keeps the longest prefix the model agrees with, so under greedy
decoding the output is the model's own; only the number of forward passes changes.
"""

from __future__ import annotations


class PromptLookup:
    """An index of every n-gram's latest position in a growing token sequence."""

    def __init__(self, tokens: list[int], *, ngram: int = 3, min_ngram: int = 2, max_draft: int = 7) -> None:
        self.tokens: list[int] = []
        self.ngram, self.min_ngram, self.max_draft = ngram, min_ngram, max_draft
        # n -> {n-gram: position just after its latest occurrence whose continuation is known}
        self._latest: dict[int, dict[tuple[int, ...], int]] = {n: {} for n in range(min_ngram, ngram + 1)}
        self.extend(tokens)

    def extend(self, tokens: list[int]) -> None:
        for token in tokens:
            # Index the n-grams that end at the current end, now that `token` is known to follow them.
            end = len(self.tokens)
            for n, latest in self._latest.items():
                if end >= n:
                    latest[tuple(self.tokens[end - n:end])] = end
            self.tokens.append(token)

    def draft(self, limit: int | None = None) -> list[int]:
        """Up to `limit` (default max_draft) tokens that followed the longest recent n-gram's last occurrence."""
        limit = self.max_draft if limit is None else min(limit, self.max_draft)
        if limit <= 0:
            return []
        for n in range(self.ngram, self.min_ngram - 1, -1):
            if len(self.tokens) < n:
                continue
            start = self._latest[n].get(tuple(self.tokens[-n:]))
            if start is not None:
                return self.tokens[start:start + limit]
        return []
