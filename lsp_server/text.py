"""Document positions in LSP terms.

LSP addresses text by ``(line, character)`` where ``character`` counts UTF-16
code units and a line ends at ``\\n``, ``\\r\\n`` or ``\\r``. Python strings
index by code point, so everything here converts between the two. All
functions are total: out-of-range input is clamped, never raised on, because
positions from an editor can race with document changes.
"""

from __future__ import annotations

import re

__all__ = [
    "index_to_utf16",
    "line_starts",
    "offset_at",
    "position_at",
    "split_lines",
    "utf16_len",
    "utf16_to_index",
]

# Order matters: "\r\n" must win over a lone "\r" so CRLF is one break.
_LINE_BREAK = re.compile(r"\r\n|\r|\n")

# Code points above the BMP take two UTF-16 code units (a surrogate pair).
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


def split_lines(text: str) -> list[str]:
    """Split into LSP lines, without terminators.

    ``\\n``, ``\\r\\n`` and ``\\r`` each end a line; a trailing terminator
    yields a final empty line (``"a\\n"`` has two lines), and ``""`` has one.
    Unlike ``str.splitlines`` this ignores ``\\v``, ``\\f``, ``\\u2028`` etc.,
    which LSP does not treat as line breaks.
    """
    return _LINE_BREAK.split(text)


def line_starts(text: str) -> list[int]:
    """Code-point offset at which each LSP line starts (``len == line count``)."""
    return [0, *(m.end() for m in _LINE_BREAK.finditer(text))]


def utf16_len(s: str) -> int:
    """Length of ``s`` in UTF-16 code units."""
    if s.isascii():  # fast path: the overwhelmingly common case for code
        return len(s)
    return len(s) + len(_ASTRAL.findall(s))


def utf16_to_index(line_text: str, character: int) -> int:
    """Code-point index in ``line_text`` for a UTF-16 ``character`` offset.

    Clamps to ``[0, len(line_text)]``. A ``character`` pointing between the two
    halves of a surrogate pair rounds down to the start of that code point.
    """
    if character <= 0:
        return 0
    if line_text.isascii():
        return min(character, len(line_text))
    units = 0
    for index, ch in enumerate(line_text):
        units += 2 if ord(ch) > 0xFFFF else 1
        if units > character:
            return index  # character is inside (or at the start of) ch
        if units == character:
            return index + 1
    return len(line_text)


def index_to_utf16(line_text: str, index: int) -> int:
    """UTF-16 offset of code-point ``index`` in ``line_text`` (index clamped)."""
    index = max(0, min(index, len(line_text)))
    return utf16_len(line_text[:index])


def offset_at(text: str, line: int, character: int) -> int:
    """Absolute code-point offset of LSP position ``(line, character)``.

    A ``\\r\\n`` contributes two code points to offsets but is one line break.
    A line past the end clamps to ``len(text)``; a character past the end of
    its line clamps to the line end (before its terminator); negatives clamp
    to 0.
    """
    if line < 0:
        return 0
    start = 0
    current = 0
    for match in _LINE_BREAK.finditer(text):
        if current == line:
            return start + utf16_to_index(text[start : match.start()], character)
        start = match.end()
        current += 1
    if line > current:  # past the last line
        return len(text)
    return start + utf16_to_index(text[start:], character)


def position_at(text: str, offset: int) -> tuple[int, int]:
    """Inverse of :func:`offset_at`: ``(line, utf16_character)`` of ``offset``.

    Offsets are clamped to ``[0, len(text)]``. An offset between the ``\\r``
    and ``\\n`` of a CRLF maps to the end of that line.
    """
    offset = max(0, min(offset, len(text)))
    line = 0
    start = 0
    line_end = offset
    for match in _LINE_BREAK.finditer(text):
        if match.end() > offset:
            if match.start() < offset:  # offset splits a CRLF
                line_end = match.start()
            break
        line += 1
        start = match.end()
    return line, utf16_len(text[start:line_end])
