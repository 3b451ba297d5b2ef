"""LRU cache of completions with type-through.

Keys are the *document* text before/after the cursor (not the prompt
windows), so a hit means "same document, same cursor". Type-through: when the
user types exactly the characters the shown completion starts with, the rest
of that completion is still valid and is served without running the model.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

__all__ = ["CompletionCache", "Found"]

# Characters of an entry's prefix compared before the full ``startswith``; a
# cheap filter that rejects almost every non-matching entry.
_TAIL_CHECK = 64


@dataclass(frozen=True)
class _Entry:
    prefix: str
    suffix: str
    completion: str
    suffix_hash: int
    uri: str  # the document it was made in
    replace_chars: int  # the characters right of the cursor that it replaces


@dataclass(frozen=True)
class Found:
    """What the cache has for a cursor: the rest of a stored completion, all of it at the cursor it was made at.
    There, ``replace_chars`` is what it replaced right of the cursor; after type-through None, for the rest
    is shaped anew at the new cursor."""

    completion: str
    replace_chars: int | None


def _size(entry: _Entry) -> int:
    return len(entry.prefix) + len(entry.suffix) + len(entry.completion)


class CompletionCache:
    """Bounded LRU ``(prefix, suffix) -> completion`` with type-through look-ups.

    An empty completion may be stored to remember "the model had nothing
    here"; an exact look-up then returns ``""`` (a hit, distinct from the
    ``None`` of a miss). Type-through only serves a non-empty remainder.
    """

    def __init__(self, capacity: int = 128, max_chars: int = 16_000_000) -> None:
        self.capacity = max(1, capacity)
        # Every entry holds a whole document (its text before and after the cursor), so in a big file a
        # count alone would let 128 keystrokes keep 128 copies: the characters held are bounded too.
        self.max_chars = max_chars
        self._chars = 0
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def hit_rate(self) -> float:
        """Hits / look-ups; 0.0 before the first look-up."""
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    def put(self, prefix: str, suffix: str, completion: str, uri: str = "", replace_chars: int = 0) -> None:
        """Store (or refresh to most-recent) a completion made in document `uri`, which replaces `replace_chars`
        characters right of the cursor; evicts least recently used entries while over `capacity` entries or
        `max_chars` characters (the newest entry is always kept)."""
        key = (prefix, suffix)
        if (old := self._entries.pop(key, None)) is not None:
            self._chars -= _size(old)
        self._entries[key] = entry = _Entry(prefix, suffix, completion, hash(suffix), uri, replace_chars)
        self._chars += _size(entry)
        while len(self._entries) > 1 and (len(self._entries) > self.capacity or self._chars > self.max_chars):
            self._chars -= _size(self._entries.popitem(last=False)[1])

    def lookup(self, prefix: str, suffix: str) -> str | None:
        """The completion of an exact hit, else the remainder of one the user typed into (see :meth:`find`)."""
        found = self.find(prefix, suffix)
        return None if found is None else found.completion

    def find(self, prefix: str, suffix: str) -> Found | None:
        """Exact hit, else the remainder of a completion the user typed into.

        Type-through matches an entry when ``prefix == entry.prefix + typed``,
        ``suffix == entry.suffix`` and ``entry.completion`` starts with a
        non-empty ``typed`` and is longer than it. Newest entries are tried
        first. Each candidate is filtered by lengths, the suffix's hash and a
        short tail compare before any full-length string comparison.
        """
        key = (prefix, suffix)
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
            self.hits += 1
            return Found(entry.completion, entry.replace_chars)

        suffix_len = len(suffix)
        suffix_hash = hash(suffix)
        prefix_len = len(prefix)
        for entry in reversed(self._entries.values()):
            n = len(entry.prefix)
            typed_len = prefix_len - n
            if (
                typed_len <= 0
                or typed_len >= len(entry.completion)
                or len(entry.suffix) != suffix_len
                or entry.suffix_hash != suffix_hash
            ):
                continue
            typed = prefix[n:]
            if not entry.completion.startswith(typed):
                continue
            tail = min(n, _TAIL_CHECK)
            if prefix[n - tail : n] != entry.prefix[n - tail :]:
                continue
            if not prefix.startswith(entry.prefix) or entry.suffix != suffix:
                continue
            self._entries.move_to_end((entry.prefix, entry.suffix))
            self.hits += 1
            return Found(entry.completion[typed_len:], None)
        self.misses += 1
        return None

    def forget(self, uri: str) -> None:
        """Drop the entries made in document `uri`: each holds its whole text, which a closed document's must not
        stay in memory for."""
        for key in [key for key, entry in self._entries.items() if entry.uri == uri]:
            self._chars -= _size(self._entries.pop(key))

    def clear(self) -> None:
        """Drop all entries (counters are kept)."""
        self._entries.clear()
        self._chars = 0

    def stats(self) -> dict[str, float | int]:
        """Counters for logging/metrics."""
        return {
            "entries": len(self._entries),
            "hits": self.hits,
            "misses": self.misses,
            "hit_rate": self.hit_rate,
        }
