"""Strings that record how they are used, for tests that pin what a function reads of a big document."""

from __future__ import annotations


class SlicedStr(str):
    """A str that records the length of every piece of it that is sliced out (`sliced`)."""

    sliced: list[int]

    def __new__(cls, text: str) -> SlicedStr:
        self = super().__new__(cls, text)
        self.sliced = []
        return self

    def __getitem__(self, key):  # type: ignore[no-untyped-def]
        piece = str.__getitem__(self, key)
        self.sliced.append(len(piece))
        return piece
