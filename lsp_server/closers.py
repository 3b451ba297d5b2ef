"""Which characters right of the cursor a suggestion types over: the closers an editor added as the user
opened a bracket or a quote (`foo(|)`, `f"{len(|)}"`), which a suggestion that closes them must replace, not
repeat. Pure functions over the cursor's line and the suggestion. No language id is needed: a `#` that starts
no comment or a Rust lifetime's apostrophe is told by what surrounds it."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["CLOSER_CHARS", "closer_overlap", "first_close", "in_empty_braces"]

# Characters that may sit right of the cursor and be "typed over" by a
# completion that ends with them (auto-closed brackets/quotes and the
# punctuation editors leave after them, e.g. `]):` or `");`).
CLOSER_CHARS = frozenset(")]}>\"'`;:, ")
_CLOSE_BRACKETS = {")": "(", "]": "[", "}": "{"}
_QUOTES = "\"'`"


def closer_overlap(text: str, rest_of_line: str, line_before: str) -> int:
    """Characters right of the cursor that the completion already closes.

    Applies when the rest of the line is only closers/punctuation (``)``,
    ``")``, ``]):``, ``};``). The brackets/quotes in it close, innermost first,
    things opened before the cursor; so do the completion's *outer* closers
    (ones with no opener inside the completion). If the completion's outer
    closers start like the rest of the line's, those closers are duplicates:
    replace them, plus the punctuation after them (``;``, ``:``) when the
    completion also wrote it. A completion that closes nothing outer keeps
    the line's closers (0).
    """
    closers = rest_of_line.rstrip()
    if not closers or any(ch not in CLOSER_CHARS for ch in closers):
        return 0
    outer = sorted(_closes_outer(text, _open_frames(line_before)))
    wanted = [i for i, ch in enumerate(closers) if ch in _CLOSE_BRACKETS or ch in _QUOTES]
    matched = min(len(outer), len(wanted))
    if matched == 0 or [text[i] for i in outer[:matched]] != [closers[i] for i in wanted[:matched]]:
        return 0
    k = wanted[matched - 1] + 1
    # Extend over trailing punctuation the completion also wrote after its
    # last matched closer (e.g. the `;` of `");`, the `:` of `):`).
    after = text[outer[matched - 1] + 1 :]
    j = 0
    while (
        k < len(closers)
        and j < len(after)
        and closers[k] not in _CLOSE_BRACKETS
        and closers[k] not in _QUOTES
        and after[j] == closers[k]
    ):
        k += 1
        j += 1
    return k


def in_empty_braces(line_before: str, rest_of_line: str) -> bool:
    """Whether the cursor is right inside a code ``{`` whose ``}`` the editor added as the user typed it
    (``f() {|}``, ``=> {|});``, ``{ | }``): only blanks between the ``{`` and the cursor, and only closers right
    of it, the first of them a ``}``. A ``{`` in a string, a comment, an f-string's field or a template
    literal's ``${`` opens no block."""
    rest = rest_of_line.strip()
    if not rest.startswith("}") or any(ch not in CLOSER_CHARS for ch in rest):
        return False
    if not line_before.rstrip().endswith("{"):
        return False
    frames = _open_frames(line_before)
    return bool(frames) and frames[-1] == "{"


_DIRECTIVE = re.compile(r"^\s*#\s*[a-z]+")
# A Rust lifetime (`&'a`, `&'static`, `<'a>`), not a character or string literal: no quote to close.
_LIFETIME = re.compile(r"'[A-Za-z_]\w*(?!['\w])")
_TRIPLE_QUOTES = ('"""', "'''")


def _quote_at(line: str, i: int) -> str | None:
    """The quote that opens at ``line[i]``: a triple quote, a single quote character, or None (no quote,
    or a lifetime's apostrophe)."""
    if line.startswith(_TRIPLE_QUOTES, i):
        return line[i:i + 3]
    ch = line[i]
    if ch not in _QUOTES:
        return None
    if ch == "'" and i > 0 and line[i - 1] in "&<" and _LIFETIME.match(line, i):
        return None
    return ch


def _hash_comment(line: str, i: int) -> bool:
    """Whether the ``#`` at ``line[i]`` starts a comment: not a C directive (``#include "...``), a Rust
    attribute (``#[serde(rename = "...``) or a JavaScript private name (``this.#name = "...``)."""
    if _DIRECTIVE.match(line):
        return False
    if line.startswith(("#[", "#!["), i):
        return False
    return not (i > 0 and (line[i - 1] == "." or line[i - 1].isalnum() or line[i - 1] == "_"))


# A string with replacement fields, whose `{...}` is code: Python's f-strings (and 3.14's t-strings), by the
# prefix letters right before the quote (`f"`, `rf'`, `Tr"""`, not a name's end: `elf"`), and JavaScript's
# template literals (`${...}`).
_FIELD_PREFIX = re.compile(r"(?<![\w.])(?:[fFtT][rR]?|[rR][fFtT])$")


@dataclass(frozen=True)
class _Str:
    """An open string on the scanner's stack: its quote, and whether `{` (or `${`) opens a field of code."""
    quote: str
    fields: bool


# A field of code inside a string (`{` of `f"{x}"`): closed by `}`, after which the string goes on.
_FIELD = "{f"
_Frame = str | _Str  # "(", "[", "{", _FIELD or an open string


class _Scanner:
    """Brackets, strings and f-string/template fields, opened and closed left to right.

    ``outer`` collects the indices of the closers that close a frame the scanner started with (those of
    ``frames``, opened before the text), or a bracket nothing opened (opened on an earlier line).
    ``commented``: a comment marker (``#``, ``//``) was met in code. The scan goes on past it, since a
    ``//`` may be Python's floor division; a quote after it on its line is taken for prose (``# don't``)
    when it is left open.
    """

    def __init__(self, frames: list[_Frame] | None = None) -> None:
        self.stack: list[_Frame] = list(frames or ())
        self.base = len(self.stack)  # frames below this index were open before the scanned text
        self.outer: set[int] = set()
        self.commented = False
        self._comment_on_line = False
        self._prose_depth: int | None = None  # the depth of the first string opened after a comment marker

    def _pop(self) -> bool:
        """Pop the top frame; whether it was one from before the text."""
        self.stack.pop()
        if self._prose_depth is not None and len(self.stack) <= self._prose_depth:
            self._prose_depth = None
        if len(self.stack) < self.base:
            self.base = len(self.stack)
            return True
        return False

    def left_open(self) -> bool:
        """Whether the text left a bracket, string or field of its own open (not a quote in a comment)."""
        depth = len(self.stack) if self._prose_depth is None else self._prose_depth
        return depth > self.base

    def scan(self, text: str) -> None:
        i = 0
        while i < len(text):
            ch = text[i]
            top = self.stack[-1] if self.stack else None
            if isinstance(top, _Str):
                if ch == "\\":
                    i += 2
                    continue
                if text.startswith(top.quote, i):
                    if self._pop():
                        self.outer.update(range(i, i + len(top.quote)))
                    i += len(top.quote)
                    continue
                if top.fields and text.startswith(("{{", "}}"), i) and top.quote != "`":
                    i += 2  # a literal brace
                    continue
                if top.fields and (text.startswith("${", i) if top.quote == "`" else ch == "{"):
                    self.stack.append(_FIELD)
                    i += 2 if top.quote == "`" else 1
                    continue
                if ch == "\n":
                    self._new_line()
                i += 1
                continue
            if (q := _quote_at(text, i)) is not None:
                if self._comment_on_line and self._prose_depth is None:
                    self._prose_depth = len(self.stack)
                fields = q == "`" or _FIELD_PREFIX.search(text, max(0, i - 2), i) is not None
                self.stack.append(_Str(q, fields))
                i += len(q)
                continue
            if (ch == "#" and _hash_comment(text, i)) or text.startswith("//", i):
                self.commented = self._comment_on_line = True
            elif ch in "([{":
                self.stack.append(ch)
            elif ch in _CLOSE_BRACKETS:
                if not self.stack or self._pop():
                    self.outer.add(i)
            elif ch == "\n":
                self._new_line()
            i += 1

    def _new_line(self) -> None:
        """A line break ends every one-character-quoted string still open (and what was open inside it),
        and the line's comment."""
        self._comment_on_line, self._prose_depth = False, None
        for depth, frame in enumerate(self.stack):
            if isinstance(frame, _Str) and frame.quote in ("'", '"'):
                del self.stack[depth:]
                self.base = min(self.base, depth)
                return


def _open_frames(line: str) -> list[_Frame]:
    """What is open at the end of ``line``: brackets, strings and f-string fields, outermost first.

    Nothing when the line has a ``//`` or ``#`` comment (but ``#include "...`` is code): the cursor is in
    prose, or after a floor division that is too rare a case to tell apart.
    """
    scanner = _Scanner()
    scanner.scan(line)
    return [] if scanner.commented else scanner.stack


def first_close(text: str, code_before: str) -> int | None:
    """The index in ``text`` of its first closer that closes a bracket, string or field open at the end of
    ``code_before`` (``"`` of ``a b">`` after ``class="``); None when nothing is open there or ``text`` closes
    none of it."""
    frames = _open_frames(code_before)
    if not frames:
        return None
    scanner = _Scanner(frames)
    scanner.scan(text)
    return min(scanner.outer, default=None)


def _closes_outer(text: str, frames: list[_Frame]) -> set[int]:
    """Indices in ``text`` of closers that close something opened before it.

    Brackets with no opener inside ``text``, the quote (each of a triple quote's three) that ends a
    string that was open at the cursor, and the ``}`` that ends an f-string field open at the cursor
    (``f"{len(`` + ``x)}")``: all four close what the line opened). None when the text ends inside a
    bracket or string of its own (``a), g(b``, ``'k', '``): the line's closers are then needed to close it.
    """
    scanner = _Scanner(frames)
    scanner.scan(text)
    return set() if scanner.left_open() else scanner.outer
