from __future__ import annotations

import bisect
import re
import sys
from collections.abc import Callable
from types import FrameType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lsp_server.text import (
    Encoding,
    code_units,
    index_to_utf16,
    line_break_of,
    line_count,
    line_spans,
    line_start,
    line_starts,
    lines_at,
    offset_at,
    position_at,
    rebased_offset,
    split_lines,
    units_to_index,
    utf16_len,
    utf16_to_index,
)
from tests.recorders import SlicedStr

# "ab" CRLF "cd" LF "😀x" LF "" -- offsets: a0 b1 \r2 \n3 c4 d5 \n6 😀7 x8 \n9, len 10
DOC = "ab\r\ncd\n😀x\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", [""]),
        ("a", ["a"]),
        ("a\n", ["a", ""]),
        ("\r\n", ["", ""]),
        ("a\nb\r\nc\rd", ["a", "b", "c", "d"]),
        ("a\r\r\nb", ["a", "", "b"]),
        ("a\n\r\nb", ["a", "", "b"]),
        # Not LSP line breaks: form feed, vertical tab, unicode line separator.
        ("x\u2028y\x0cz\x0bw", ["x\u2028y\x0cz\x0bw"]),
        (DOC, ["ab", "cd", "😀x", ""]),
    ],
)
def test_split_lines(text: str, expected: list[str]) -> None:
    assert split_lines(text) == expected


def test_line_starts() -> None:
    assert line_starts(DOC) == [0, 4, 7, 10]
    assert line_starts("") == [0]
    assert line_starts("a\rb") == [0, 2]


@pytest.mark.parametrize(
    ("s", "n"),
    [("", 0), ("abc", 3), ("😀", 2), ("a😀b", 4), ("日本語", 3), ("é😀😀", 5), ("\U0010ffff", 2)],
)
def test_utf16_len(s: str, n: int) -> None:
    assert utf16_len(s) == n


@pytest.mark.parametrize(
    ("character", "index"),
    [(-1, 0), (0, 0), (1, 1), (2, 1), (3, 2), (4, 3), (5, 3), (99, 3)],
)
def test_utf16_to_index_with_surrogates(character: int, index: int) -> None:
    # "a😀b": the emoji occupies UTF-16 units 1-2; unit 2 is its low half.
    assert utf16_to_index("a😀b", character) == index


def test_utf16_to_index_cjk_and_ascii() -> None:
    assert utf16_to_index("日本語x", 2) == 2
    assert utf16_to_index("日本語x", 4) == 4
    assert utf16_to_index("abc", 10) == 3
    assert utf16_to_index("", 3) == 0
    assert utf16_to_index("😀😀", 3) == 1  # middle of the second pair rounds down


@pytest.mark.parametrize(
    ("index", "character"), [(-5, 0), (0, 0), (1, 1), (2, 3), (3, 4), (99, 4)]
)
def test_index_to_utf16(index: int, character: int) -> None:
    assert index_to_utf16("a😀b", index) == character


@pytest.mark.parametrize(
    ("line", "character", "offset"),
    [
        (0, 0, 0),
        (0, 2, 2),
        (0, 5, 2),  # past line end: clamps before the CRLF
        (1, 0, 4),  # CRLF counts as two code points
        (1, 1, 5),
        (1, 99, 6),
        (2, 0, 7),
        (2, 1, 7),  # inside the emoji's surrogate pair: rounds down
        (2, 2, 8),
        (2, 3, 9),
        (3, 0, 10),  # the empty last line after the final LF
        (3, 7, 10),
        (4, 0, 10),  # past the last line: document end
        (100, 100, 10),
        (-1, 3, 0),
        (1, -2, 4),
    ],
)
def test_offset_at(line: int, character: int, offset: int) -> None:
    assert offset_at(DOC, line, character) == offset


@pytest.mark.parametrize(
    ("offset", "position"),
    [
        (-3, (0, 0)),
        (0, (0, 0)),
        (2, (0, 2)),
        (3, (0, 2)),  # between \r and \n: end of line 0
        (4, (1, 0)),
        (6, (1, 2)),
        (7, (2, 0)),
        (8, (2, 2)),  # after the emoji: 2 UTF-16 units
        (9, (2, 3)),
        (10, (3, 0)),
        (50, (3, 0)),
    ],
)
def test_position_at(offset: int, position: tuple[int, int]) -> None:
    assert position_at(DOC, offset) == position


def test_lone_cr_document() -> None:
    text = "x = 1\rprint(x)\r"
    assert offset_at(text, 1, 6) == 12
    assert position_at(text, 12) == (1, 6)
    assert position_at(text, len(text)) == (2, 0)


def test_empty_document() -> None:
    assert offset_at("", 0, 0) == 0
    assert offset_at("", 3, 3) == 0
    assert position_at("", 0) == (0, 0)


@pytest.mark.parametrize(
    "text",
    [
        DOC,
        "def f():\r\n    return '日本語😀'\r\n",
        "int main() {\n\treturn 0; // 🎉\n}",
        "\n\n\r\r\n",
        "",
    ],
)
def test_round_trip(text: str) -> None:
    lines = split_lines(text)
    for offset in range(len(text) + 1):
        if 0 < offset < len(text) and text[offset - 1 : offset + 1] == "\r\n":
            continue  # mid-CRLF is not a position; tested above
        line, character = position_at(text, offset)
        assert offset_at(text, line, character) == offset
        assert utf16_to_index(lines[line], character) == offset - line_starts(text)[line]


@pytest.mark.parametrize(("new", "expected"), [
    ("def f():\n    return 1\n", 9),  # unchanged
    ("import os\ndef f():\n    return 1\n", 19),  # a line added above: moves with it
    ("def f():\n    return 2\n\nx = 1\n", 9),  # edited below: stays
    ("def g():\n    return 1\n", 9),  # edited before it on its own line
    ("def f(): pass\n", None),  # the edit covers it
])
def test_rebased_offset(new: str, expected: int | None) -> None:
    assert rebased_offset("def f():\n    return 1\n", new, 9) == expected


@given(st.text("ab\n", max_size=30), st.data())
def test_rebased_offset_keeps_the_text_on_one_side(old: str, data: st.DataObject) -> None:
    offset = data.draw(st.integers(0, len(old)))
    start = data.draw(st.integers(0, len(old)))
    end = data.draw(st.integers(start, len(old)))
    new = old[:start] + data.draw(st.text("ab\n", max_size=8)) + old[end:]
    moved = rebased_offset(old, new, offset)
    if start >= offset or end <= offset:  # an edit that does not reach the offset never loses it
        assert moved is not None
    if moved is not None:  # the text before it, or the text after it, is as it was
        assert new[:moved] == old[:offset] or new[moved:] == old[offset:]


def _reference_lines(text: str) -> tuple[list[str], list[int]]:
    """LSP lines and their start offsets by the pattern over the whole text, the definition the fast paths keep."""
    return re.split(r"\r\n|\r|\n", text), line_starts(text)


@given(st.text("ab\r\n😀é", max_size=16), st.integers(-1, 8), st.integers(-1, 6),
       st.sampled_from(["utf-8", "utf-16", "utf-32"]))
def test_positions_agree_with_the_lines(text: str, line: int, character: int, encoding: Encoding) -> None:
    lines, starts = _reference_lines(text)
    assert split_lines(text) == lines and line_count(text) == len(lines)
    expected = 0 if line < 0 else len(text) if line >= len(lines) else (
        starts[line] + units_to_index(lines[line], character, encoding))
    assert offset_at(text, line, character, encoding) == expected
    offset = character * 2 + line  # any offset, some out of range
    clamped = max(0, min(offset, len(text)))
    row = bisect.bisect_right(starts, clamped) - 1
    column = min(clamped - starts[row], len(lines[row]))  # an offset inside a CRLF: its line's end
    assert position_at(text, offset, encoding) == (row, code_units(lines[row][:column], encoding))
    assert lines_at(text, max(0, line), character) == lines[max(0, line):max(0, line) + max(0, character)]
    assert line_start(text, max(0, line)) == (starts[line] if 0 <= line < len(lines) else 0 if line < 0 else None)


def _python_lines_run(call: Callable[[], object]) -> int:
    """How many lines of Python `call()` runs (sys.settrace's line events, in every frame it enters)."""
    count = 0

    def trace(frame: FrameType, event: str, arg: object) -> Callable[..., object]:
        nonlocal count
        count += event == "line"
        return trace

    sys.settrace(trace)
    try:
        call()
    finally:
        sys.settrace(None)
    return count


@pytest.mark.parametrize("line_break", ["\n", "\r\n", "\r"])
def test_positions_near_the_end_of_a_big_file_take_no_loop_over_its_lines(line_break: str) -> None:
    # A keystroke converts positions (didChange's range, the cursor): the work the server does in Python
    # must not grow with the line number, or typing at the end of a 10,000-line file costs ~10 ms a keystroke.
    text = line_break.join(f"    value_{i} = compute({i})  # ü" for i in range(10_000))
    # (A line with non-ASCII text is walked character by character: a line's worth, never the file's.)
    assert _python_lines_run(lambda: offset_at(text, 9_990, 12)) < 300
    assert _python_lines_run(lambda: position_at(text, len(text) - 100)) < 300
    assert _python_lines_run(lambda: lines_at(text, 9_980, 17)) < 300
    assert offset_at(text, 9_990, 12) == text.index("value_9990") + 8
    assert position_at(text, text.index("value_9990") + 8) == (9_990, 12)
    assert lines_at(text, 9_998, 5) == ["    value_9998 = compute(9998)  # ü", "    value_9999 = compute(9999)  # ü"]


@pytest.mark.parametrize(("encoding", "codec", "size"), [("utf-8", "utf-8", 1), ("utf-16", "utf-16-le", 2)])
def test_units_to_index_at_every_width_boundary(encoding: str, codec: str, size: int) -> None:
    # The last and the first code point of each UTF-8 length, and the first that takes a UTF-16 surrogate pair.
    line = "\x7f\x80\u07ff\u0800\uffff\U00010000x"
    for i in range(len(line) + 1):
        assert units_to_index(line, len(line[:i].encode(codec)) // size, encoding) == i  # type: ignore[arg-type]


@given(st.text("ab\r\n😀", max_size=24), st.data(), st.sampled_from(["utf-8", "utf-16", "utf-32"]))
def test_a_known_line_start_changes_no_answer(text: str, data: st.DataObject, encoding: Encoding) -> None:
    # Positions are found from a known line (where the user last typed), forward or backward, in any text.
    lines, starts = _reference_lines(text)
    known = data.draw(st.integers(0, len(lines) - 1))
    near = (known, starts[known])
    line, character = data.draw(st.integers(0, len(lines) + 1)), data.draw(st.integers(0, 6))
    assert line_start(text, line, near) == line_start(text, line)
    assert offset_at(text, line, character, encoding, near) == offset_at(text, line, character, encoding)
    offset = data.draw(st.integers(-1, len(text) + 1))
    assert position_at(text, offset, encoding, near) == position_at(text, offset, encoding)
    assert lines_at(text, line, character, near) == lines[line:line + character]
    assert [text[a:b] for a, b in line_spans(text, line, character)] == lines[line:line + character]


def test_a_position_in_a_long_line_copies_the_line_only_up_to_it() -> None:
    # A keystroke near the start of a 2 MB minified line converts its position: copying the whole line for it
    # (and checking it for non-ASCII) cost a millisecond a keystroke.
    text = SlicedStr("var a=function(n){return n+1};" * 70_000)
    assert offset_at(text, 0, 1_000) == 1_000
    assert offset_at(text, 0, 1_000, "utf-8") == 1_000
    assert max(text.sliced) <= 1_000


@given(st.text("ab\r\n", max_size=12))
def test_line_break_of_is_the_first_break(text: str) -> None:
    first = re.search(r"\r\n|\r|\n", text)
    assert line_break_of(text) == (first.group() if first else "\n")


def test_the_line_break_of_a_minified_file_is_looked_for_without_a_pattern() -> None:
    # The server asks at every completion. The pattern `\r\n|\r|\n`, tried at each of the 2 MB of a minified
    # file that has no line break, held the event loop for 20 ms; str.find scans as memchr does.
    text = "var a=function(n){return n+1};" * 70_000
    calls: list[str] = []

    def profile(frame: FrameType, event: str, arg: object) -> None:
        if event == "c_call":
            calls.append(getattr(arg, "__qualname__", ""))

    sys.setprofile(profile)
    try:
        found = line_break_of(text)
    finally:
        sys.setprofile(None)
    assert found == "\n" and not [c for c in calls if c.startswith("Pattern.")]
