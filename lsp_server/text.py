"""Document positions in LSP terms: the one place where positions and offsets are converted.

LSP addresses text by ``(line, character)`` where a line ends at ``\\n``,
``\\r\\n`` or ``\\r`` (never at a form feed or U+2028, which ``str.splitlines``
would split on) and ``character`` counts code units of the negotiated position
encoding: UTF-16 by default, UTF-8 or UTF-32 when the client offers them.
Python strings index by code point, so everything here converts between the
two. All functions are total: out-of-range input is clamped, never raised on,
because positions from an editor can race with document changes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Literal

__all__ = [
    "Encoding",
    "LinesAround",
    "code_units",
    "index_to_utf16",
    "line_count",
    "line_spans",
    "line_start",
    "line_starts",
    "lines_at",
    "lone_cr_to_lf",
    "offset_at",
    "position_at",
    "rebased_offset",
    "replace_lone_surrogates",
    "split_lines",
    "units_to_index",
    "utf16_len",
    "utf16_to_index",
]

Encoding = Literal["utf-8", "utf-16", "utf-32"]  # LSP's PositionEncodingKind values

# Order matters: "\r\n" must win over a lone "\r" so CRLF is one break.
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_LONE_CR = re.compile(r"\r(?!\n)")

# Code points above the BMP take two UTF-16 code units (a surrogate pair).
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
# In a Python str every surrogate is a lone one: JSON's escaped pairs arrive already combined.
_SURROGATE = re.compile("[\ud800-\udfff]")


def line_break_of(text: str) -> str:
    """The document's line break (its first: ``\\r\\n``, ``\\r`` or ``\\n``), for text inserted into it."""
    # str.find, not the pattern: the pattern tries its three branches at every character, which took 20 ms on
    # the event loop, at every completion, in a 2 MB minified file that has no line break.
    lf = text.find("\n")
    cr = text.find("\r", 0, len(text) if lf < 0 else lf)
    if cr >= 0:
        return "\r\n" if text.startswith("\n", cr + 1) else "\r"
    return "\n"


def split_lines(text: str) -> list[str]:
    """Split into LSP lines, without terminators.

    ``\\n``, ``\\r\\n`` and ``\\r`` each end a line; a trailing terminator
    yields a final empty line (``"a\\n"`` has two lines), and ``""`` has one.
    Unlike ``str.splitlines`` this ignores ``\\v``, ``\\f``, ``\\u2028`` etc.,
    which LSP does not treat as line breaks.
    """
    if "\r" not in text:  # str.split: several times faster than the pattern on a big file
        return text.split("\n")
    return _LINE_BREAK.split(text)


def line_starts(text: str) -> list[int]:
    """Code-point offset at which each LSP line starts (``len == line count``)."""
    return [0, *(m.end() for m in _LINE_BREAK.finditer(text))]


def lone_cr_to_lf(text: str) -> str:
    """``text`` with each lone ``\\r`` turned into ``\\n``: the same LSP lines at the same offsets.

    For code that counts lines by ``\\n`` (tree-sitter does; ``ast`` also counts ``\\r``).
    """
    return _LONE_CR.sub("\n", text) if "\r" in text else text


def replace_lone_surrogates(text: str) -> str:
    """Lone UTF-16 surrogates (a JSON ``"\\ud800"`` escape) become U+FFFD, one code unit for one.

    Such text cannot be encoded to UTF-8, so it would fail in the tokenizer or on the way back to the
    client; the replacement keeps every position in every encoding where it was.
    """
    return _SURROGATE.sub("\ufffd", text)


def _unit_width(ch: str, encoding: Encoding) -> int:
    cp = ord(ch)
    if encoding == "utf-16":
        return 2 if cp > 0xFFFF else 1
    if encoding == "utf-8":
        return 1 if cp < 0x80 else 2 if cp < 0x800 else 3 if cp < 0x10000 else 4
    return 1


def code_units(s: str, encoding: Encoding = "utf-16") -> int:
    """Length of ``s`` in code units of ``encoding``."""
    if s.isascii() or encoding == "utf-32":  # fast path: the overwhelmingly common case for code
        return len(s)
    if encoding == "utf-16":
        return len(s) + len(_ASTRAL.findall(s))
    return len(s.encode("utf-8", "surrogatepass"))


def units_to_index(line_text: str, character: int, encoding: Encoding = "utf-16") -> int:
    """Code-point index in ``line_text`` for an offset of ``character`` code units.

    Clamps to ``[0, len(line_text)]``. A ``character`` pointing inside a code
    point (between the halves of a surrogate pair, or inside a UTF-8
    sequence) rounds down to the start of that code point.
    """
    if character <= 0:
        return 0
    if line_text.isascii() or encoding == "utf-32":
        return min(character, len(line_text))
    units = 0
    for index, ch in enumerate(line_text):
        units += _unit_width(ch, encoding)
        if units > character:
            return index  # character is inside (or at the start of) ch
        if units == character:
            return index + 1
    return len(line_text)


def utf16_len(s: str) -> int:
    """Length of ``s`` in UTF-16 code units."""
    return code_units(s, "utf-16")


def utf16_to_index(line_text: str, character: int) -> int:
    """Code-point index in ``line_text`` for a UTF-16 ``character`` offset (see :func:`units_to_index`)."""
    return units_to_index(line_text, character, "utf-16")


def index_to_utf16(line_text: str, index: int) -> int:
    """UTF-16 offset of code-point ``index`` in ``line_text`` (index clamped)."""
    index = max(0, min(index, len(line_text)))
    return utf16_len(line_text[:index])


def offset_at(text: str, line: int, character: int, encoding: Encoding = "utf-16",
              near: tuple[int, int] = (0, 0)) -> int:
    """Absolute code-point offset of LSP position ``(line, character)``.

    A ``\\r\\n`` contributes two code points to offsets but is one line break.
    A line past the end clamps to ``len(text)``; a character past the end of
    its line clamps to the line end (before its terminator); negatives clamp
    to 0. ``near``: a known ``(line, start offset)`` of ``text`` (see :func:`line_start`).
    """
    if line < 0:
        return 0
    lf = _lf_lines(text)
    start = _line_start_lf(lf, line, near)
    if start is None:  # past the last line
        return len(text)
    end = lf.find("\n", start)
    if end < 0:
        end = len(text)
    elif end > start and lf[end - 1] == "\r":  # a CRLF: the line ends before its "\r"
        end -= 1
    # A character counts at least one code unit: only the line's first `character` code points can hold it (a
    # cursor in a 2 MB minified line is not found by copying the whole line).
    return start + units_to_index(text[start:min(end, start + max(0, character))], character, encoding)


def position_at(text: str, offset: int, encoding: Encoding = "utf-16",
                near: tuple[int, int] = (0, 0)) -> tuple[int, int]:
    """Inverse of :func:`offset_at`: ``(line, character)`` of ``offset``.

    Offsets are clamped to ``[0, len(text)]``. An offset between the ``\\r``
    and ``\\n`` of a CRLF maps to the end of that line. ``near``: a known ``(line, start offset)`` of ``text``
    (see :func:`line_start`); the lines are counted from there when it is before ``offset``.
    """
    offset = max(0, min(offset, len(text)))
    lf = _lf_lines(text)
    start = lf.rfind("\n", 0, offset) + 1
    line_end = offset - 1 if 0 < offset < len(lf) and lf[offset - 1 : offset + 1] == "\r\n" else offset
    known, pos = near if near[1] <= offset else (0, 0)
    return known + lf.count("\n", pos, offset), code_units(text[start:line_end], encoding)


def line_start(text: str, line: int, near: tuple[int, int] = (0, 0)) -> int | None:
    """Code-point offset at which LSP line ``line`` (>= 0) starts; None past the last line.

    ``near``: a known ``(line, start offset)`` of this text, such as the place of the last edit: a line near it
    is found from there, by a few ``find`` calls, rather than by counting lines from the top of the text.
    """
    return _line_start_lf(_lf_lines(text), line, near)


def line_count(text: str) -> int:
    """The number of LSP lines (``len(split_lines(text))``), counted without splitting."""
    return _lf_lines(text).count("\n") + 1


def line_spans(text: str, first: int, count: int, near: tuple[int, int] = (0, 0)) -> list[tuple[int, int]]:
    """``(start, end)`` code-point offsets of LSP lines ``first .. first + count - 1``, without terminators (fewer at
    the end of the text, none past it): where ``lines_at``'s lines are, found without copying any of them (a
    caller that skips a 2 MB minified line need not copy it first). ``near`` as for :func:`line_start`."""
    lf = _lf_lines(text)
    start = _line_start_lf(lf, max(0, first), near)
    spans: list[tuple[int, int]] = []
    while start is not None and len(spans) < count:
        end = lf.find("\n", start)
        if end < 0:
            spans.append((start, len(lf)))
            break
        spans.append((start, end - 1 if end > start and lf[end - 1] == "\r" else end))  # a CRLF ends before "\r"
        start = end + 1
    return spans


def lines_at(text: str, first: int, count: int, near: tuple[int, int] = (0, 0)) -> list[str]:
    """LSP lines ``first .. first + count - 1`` without terminators (fewer at the end of the text, none past
    it), as ``split_lines(text)[first:first + count]`` but without splitting the rest of the text."""
    return [text[start:end] for start, end in line_spans(text, first, count, near)]


class LinesAround:
    """The LSP lines of ``text`` around the line that holds ``offset``, each found when first asked for, by
    ``find``/``rfind`` outward from that line: a prompt window's worth of lines, never a split of the whole
    document (a string per line: milliseconds per completion in a 20,000-line file, and a copy of a 2 MB
    minified line for nothing). ``line`` is the number of the cursor's line, ``column`` the cursor's code-point
    column in it (an offset inside a CRLF is at its line's end)."""

    def __init__(self, text: str, offset: int) -> None:
        self._text, self._lf = text, _lf_lines(text)
        offset = max(0, min(offset, len(text)))
        start = self._lf.rfind("\n", 0, offset) + 1
        self.line = self._lf.count("\n", 0, offset)
        self._spans = {self.line: (start, self._content_end(start))}  # line -> (start, end without its break)
        self._first, self._last = self.line, self.line  # the lines found so far are first..last
        self.column = min(offset, self._spans[self.line][1]) - start

    def _content_end(self, start: int) -> int:
        end = self._lf.find("\n", start)
        if end < 0:
            return len(self._lf)
        return end - 1 if end > start and self._lf[end - 1] == "\r" else end  # a CRLF ends before its "\r"

    def get(self, line: int) -> str | None:
        """The text of LSP line ``line``, without its line break; None past either end of the text."""
        if not self._find(line):
            return None
        start, end = self._spans[line]
        return self._text[start:end]

    def start(self, line: int) -> int | None:
        """The code-point offset at which LSP line ``line`` starts; None past either end of the text."""
        return self._spans[line][0] if self._find(line) else None

    def _find(self, line: int) -> bool:
        """Find the lines up to ``line``; False when there is no such line."""
        lf = self._lf
        while line > self._last:
            start = lf.find("\n", self._spans[self._last][0]) + 1
            if start == 0:
                return False
            self._last += 1
            self._spans[self._last] = (start, self._content_end(start))
        while line < self._first:
            if line < 0:
                return False
            above = self._spans[self._first][0] - 1  # the "\n" ending the line above
            start = lf.rfind("\n", 0, above) + 1
            self._first -= 1
            self._spans[self._first] = (start, above - 1 if above > start and lf[above - 1] == "\r" else above)
        return True

    def __getitem__(self, line: int) -> str:
        found = self.get(line)
        if found is None:
            raise IndexError(line)
        return found


# Lines further than this from a known line start are found by one `str.split` (a string per line, in C) rather
# than by a `find` per line (a Python loop).
_WALK_LINES = 64


def _line_start_lf(lf: str, line: int, near: tuple[int, int] = (0, 0)) -> int | None:
    """line_start in text whose LSP lines all end at a "\\n" (see _lf_lines): found by ``str`` methods in C,
    never by a Python loop over the lines, so that a keystroke near the end of a 10,000-line file converts its
    positions in well under a millisecond. From ``near`` (line, start), a known line start, the lines between
    are walked, so that converting positions where the user types costs nothing like the lines above."""
    if line <= 0:
        return 0
    known, pos = near
    if not 0 < known <= line + _WALK_LINES:
        known, pos = 0, 0
    if known > line:  # a few lines above the known one
        for _ in range(known - line):
            pos = lf.rfind("\n", 0, pos - 1) + 1
        return pos
    if line - known <= _WALK_LINES:
        for _ in range(line - known):
            pos = lf.find("\n", pos) + 1
            if pos == 0:
                return None
        return pos
    parts = (lf[pos:] if pos else lf).split("\n", line - known)  # the lines between, and the rest of the text
    return len(lf) - len(parts[-1]) if len(parts) > line - known else None


def _lf_lines(text: str) -> str:
    """``text`` with every line ending at a ``\\n`` (each lone ``\\r`` turned into one): the same LSP lines at
    the same offsets, so that ``str.count``, ``find`` and ``split`` on ``"\\n"`` find LSP lines (a CRLF's
    ``\\r`` stays at the end of its line)."""
    global _last_lf
    if "\r" not in text:
        return text
    last = _last_lf  # one read: another thread may replace it
    if last[0] is text:
        return last[1]
    lf = lone_cr_to_lf(text) if _LONE_CR.search(text) else text
    _last_lf = (text, lf)
    return lf


# The last text with a "\r" that _lf_lines looked at, and its answer: a keystroke converts several positions in
# one text, and looking for a lone "\r" reads all of a CRLF document each time (the first "\r\n" says nothing).
_last_lf: tuple[str, str] = ("", "")


def rebased_offset(old: str, new: str, offset: int) -> int | None:
    """Where ``offset`` in ``old`` is in ``new``, the same text after some edits; None when an edit reached it.

    The edits are taken as one span between the texts' common prefix and their common suffix: an offset
    within the common prefix stays, one within the common suffix moves by the change in length, one between
    them is lost. (Edits on both sides of the offset make one span over it: lost too, never misplaced. Where
    the prefix and suffix overlap, in repeated text, the edit could be on either side: either answer keeps
    the text on one side of the offset as it was.)
    """
    if old == new:
        return offset
    shortest = min(len(old), len(new))
    prefix = _common_length(old, new, shortest, lambda a, n: a[:n])
    suffix = _common_length(old, new, shortest, lambda a, n: a[len(a) - n:])
    if offset <= prefix:
        return offset
    if offset >= len(old) - suffix:
        return offset + len(new) - len(old)
    return None


def _common_length(a: str, b: str, limit: int, part: Callable[[str, int], str]) -> int:
    """The largest n <= limit with part(a, n) == part(b, n), by bisection (each test one string compare)."""
    low, high = 0, limit
    while low < high:
        mid = (low + high + 1) // 2
        if part(a, mid) == part(b, mid):
            low = mid
        else:
            high = mid - 1
    return low
