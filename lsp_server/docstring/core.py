"""Data types shared by the docstring engine (no LSP or model imports)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import AnyStr

# (prefix, suffix, max_new_tokens) -> generated middle text, already stopped at end-of-infill.
Infill = Callable[[str, str, int], str]


@dataclass(frozen=True)
class DocTarget:
    """A function, method or class that lacks a docstring / doc comment."""

    language: str
    kind: str  # "function" | "method" | "class"
    name: str
    params: tuple[str, ...]
    returns: bool
    yields: bool
    raises: tuple[str, ...]
    line: int
    insert_line: int
    indent: str
    # Where on insert_line a declaration starts after other code (`let x = 1; function f() {}`), in characters:
    # the line is split there, since a comment above the line would document that code. 0: it starts its line.
    column: int = 0


@dataclass(frozen=True)
class DocEdit:
    """`new_text` goes at (line, character), in place of the `replaced` characters that follow there (UTF-16
    units throughout; a pure insertion unless a one-line body's blank gap after the colon is taken out, with the
    backslash that ends the line when the body is on the next: `def f(x): \\`)."""

    line: int
    character: int
    new_text: str
    replaced: int = 0


def split_lines(text: str) -> list[str]:
    """Split on '\\n' only, dropping a trailing '\\r', so line numbers agree with ast and tree-sitter.

    str.splitlines() also breaks on form feeds and U+2028, which would shift every later line.
    """
    return [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]


def line_offset(text: str, line: int) -> int:
    """Character offset of the start of `line` (len(text) when past the end)."""
    offset = 0
    for _ in range(line):
        nl = text.find("\n", offset)
        if nl < 0:
            return len(text)
        offset = nl + 1
    return offset


def leading_ws(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def utf16_len(s: str) -> int:
    return sum(2 if ord(ch) > 0xFFFF else 1 for ch in s)


_CHUNK = 1 << 14


def common_prefix(a: AnyStr, b: AnyStr) -> int:
    """Length of the longest common prefix of two texts, compared a chunk at a time (slices compare in C)."""
    n, i, step = min(len(a), len(b)), 0, _CHUNK
    while i + step <= n and a[i:i + step] == b[i:i + step]:
        i += step
    while step > 1:
        step //= 2
        if i + step <= n and a[i:i + step] == b[i:i + step]:
            i += step
    return i


def common_suffix(a: AnyStr, b: AnyStr) -> int:
    """Length of the longest common suffix of two texts."""
    n, i, step = min(len(a), len(b)), 0, _CHUNK
    la, lb = len(a), len(b)
    while i + step <= n and a[la - i - step:la - i] == b[lb - i - step:lb - i]:
        i += step
    while step > 1:
        step //= 2
        if i + step <= n and a[la - i - step:la - i] == b[lb - i - step:lb - i]:
            i += step
    return i
