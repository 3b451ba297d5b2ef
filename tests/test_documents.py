"""The server's documents: edits and positions in every position encoding, and files read from disk."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from lsprotocol import types

from lsp_server.documents import Document, Documents, Notebooks, language_of, read_regular_file
from lsp_server.text import code_units, line_starts, offset_at, position_at, split_lines

ENCODINGS = ["utf-8", "utf-16", "utf-32"]
# Text with every kind of line break LSP knows, the ones it does not (\f, \v, U+2028/9, U+0085), and
# characters one to four UTF-8 bytes and one or two UTF-16 units long.
PIECES = ["a", "\n", "\r", "\r\n", "\f", "\v", "\u2028", "\u2029", "\x85", "é", "世", "😀", "\t", " "]
texts = st.lists(st.sampled_from(PIECES), max_size=30).map("".join) | st.text(max_size=30)


CODECS = {"utf-8": ("utf-8", 1), "utf-16": ("utf-16-le", 2), "utf-32": ("utf-32-le", 4)}


def width(ch: str, encoding: str) -> int:
    codec, unit = CODECS[encoding]
    return len(ch.encode(codec, "surrogatepass")) // unit


def reference_offset(text: str, line: int, character: int, encoding: str) -> int:
    """Written independently of text.py: walk the characters, counting LSP line breaks and code units."""
    i, current = 0, 0
    while current < line:
        if i >= len(text):
            return len(text)
        if text[i] in "\r\n":
            i += 2 if text[i:i + 2] == "\r\n" else 1
            current += 1
        else:
            i += 1
    units = 0
    while i < len(text) and text[i] not in "\r\n" and units + width(text[i], encoding) <= character:
        units += width(text[i], encoding)
        i += 1
    return i


@settings(max_examples=300, deadline=None)
@given(texts, st.integers(-2, 12), st.integers(-2, 50), st.sampled_from(ENCODINGS))
def test_offset_at_agrees_with_a_reference(text: str, line: int, character: int, encoding: str) -> None:
    expected = 0 if line < 0 else reference_offset(text, line, max(character, 0), encoding)
    assert offset_at(text, line, character, encoding) == expected  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(texts, st.data(), st.sampled_from(ENCODINGS))
def test_position_at_round_trips(text: str, data: st.DataObject, encoding: str) -> None:
    offset = data.draw(st.integers(0, len(text)))
    if 0 < offset < len(text) and text[offset - 1:offset + 1] == "\r\n":
        offset -= 1  # inside a CRLF is not a position
    line, character = position_at(text, offset, encoding)  # type: ignore[arg-type]
    assert offset_at(text, line, character, encoding) == offset  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(texts, st.lists(st.tuples(st.integers(0, 60), st.integers(0, 60), texts), max_size=5),
       st.sampled_from(ENCODINGS))
@example("a\rb", [(2, 2, "\n")], "utf-16")  # a "\n" typed after a lone "\r": line 1 starts one later
def test_incremental_edits_land_where_the_client_put_them(text: str, edits: list[tuple[int, int, str]],
                                                          encoding: str) -> None:
    docs = Documents(encoding)  # type: ignore[arg-type]
    docs.open(types.TextDocumentItem("file:///t.txt", "plaintext", 1, text))
    expected = text
    for a, b, new in edits:
        a, b = sorted((min(a, len(expected)), min(b, len(expected))))
        if any(0 < cut < len(expected) and expected[cut - 1:cut + 1] == "\r\n" for cut in (a, b)):
            continue  # no position lies inside a CRLF
        start = types.Position(*position_at(expected, a, encoding))  # type: ignore[arg-type]
        end = types.Position(*position_at(expected, b, encoding))  # type: ignore[arg-type]
        docs.change(types.DidChangeTextDocumentParams(
            types.VersionedTextDocumentIdentifier(2, "file:///t.txt"),
            [types.TextDocumentContentChangePartial(types.Range(start, end), new)]))
        expected = expected[:a] + new + expected[b:]
        # The line the document keeps to find the next positions from starts where it says, in the new text.
        line, at = docs.get("file:///t.txt").anchor
        assert offset_at(expected, line, 0) == at and at in line_starts(expected)
    assert docs.get("file:///t.txt").text == expected


def test_full_change_unknown_document_and_percent_encoded_uri() -> None:
    docs = Documents()
    docs.open(types.TextDocumentItem("file:///a%20b.py", "python", 1, "x"))
    docs.change(types.DidChangeTextDocumentParams(types.VersionedTextDocumentIdentifier(2, "file:///a b.py"),
                                                  [types.TextDocumentContentChangeWholeDocument("y = 2\n")]))
    assert docs.get("file:///a%20b.py").text == "y = 2\n"
    assert docs.change(types.DidChangeTextDocumentParams(types.VersionedTextDocumentIdentifier(2, "file:///c"),
                                                         [])) is None
    docs.close("file:///a b.py")
    assert docs.get("file:///a%20b.py") is None


def test_a_typed_character_converts_one_position(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each conversion looks up its line in the whole text: an insertion (an empty range) needs it once.
    docs = Documents()
    docs.open(types.TextDocumentItem("file:///a.py", "python", 1, "ab\r\ncd\n"))
    converted: list[types.Position] = []
    offset_at = Document.offset_at
    monkeypatch.setattr(Document, "offset_at", lambda doc, at: converted.append(at) or offset_at(doc, at))

    def edit(version: int, start: tuple[int, int], end: tuple[int, int], text: str) -> str:
        docs.change(types.DidChangeTextDocumentParams(types.VersionedTextDocumentIdentifier(version, "file:///a.py"), [
            types.TextDocumentContentChangePartial(types.Range(types.Position(*start), types.Position(*end)), text)]))
        return docs.get("file:///a.py").text

    assert edit(2, (1, 1), (1, 1), "X") == "ab\r\ncXd\n" and len(converted) == 1
    assert edit(3, (0, 1), (1, 1), "") == "aXd\n" and len(converted) == 3  # a range: both ends
    assert edit(4, (0, 2), (0, 1), "") == "ad\n"  # a reversed range is still the text between


def test_code_units() -> None:
    assert [code_units("a😀é", e) for e in ENCODINGS] == [7, 4, 3]  # type: ignore[arg-type]


def test_reading_files_that_are_not_regular_never_blocks(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    (tmp_path / "link").symlink_to(fifo)
    big = tmp_path / "big.py"
    big.write_bytes(b"x" * 101)
    latin = tmp_path / "latin1.py"
    latin.write_bytes(b"caf\xe9")
    t0 = time.monotonic()
    for path, error in [(fifo, "not a regular file"), (tmp_path / "link", "not a regular file"),
                        (tmp_path, "not a regular file"), ("/dev/zero", "not a regular file"),
                        (big, "101 bytes, more than the 100"), (tmp_path / "missing.py", "No such file")]:
        with pytest.raises((ValueError, OSError), match=error):
            read_regular_file(str(path), 100)
    with pytest.raises(UnicodeDecodeError):
        read_regular_file(str(latin), 100)
    assert time.monotonic() - t0 < 5
    crlf = tmp_path / "crlf.py"
    crlf.write_bytes(b"a\r\nb\r")
    assert read_regular_file(str(crlf), 100) == "a\r\nb\r"  # no newline translation: offsets as the editor's


def test_a_cell_is_framed_by_the_code_cells_of_its_language() -> None:
    documents, notebooks = Documents(), Notebooks()
    code, markup = types.NotebookCellKind.Code, types.NotebookCellKind.Markup
    cells = [(code, "python", "import numpy as np\n"), (markup, "markdown", "# Plot"), (code, "r", "x <- 1"),
             (code, "python", "   \n"), (code, "python", "y = np."), (code, "python", "print(y)\n")]
    for n, (_, language, text) in enumerate(cells):
        documents.open(types.TextDocumentItem(f"cell:{n}", language, 1, text))
    notebooks.open(types.NotebookDocument("file:///nb.ipynb", "jupyter-notebook", 1,
                                          [types.NotebookCell(kind, f"cell:{n}") for n, (kind, _, _) in enumerate(cells)]))
    # Markdown, another language and blank cells are left out; cells are a script's blocks apart.
    assert notebooks.around("cell:4", documents) == ("import numpy as np\n\n\n", "\n\n\nprint(y)")
    assert notebooks.around("file:///other.py", documents) == ("", "")
    # Cells moved: the last one to the front.
    notebooks.change("file:///nb.ipynb", types.NotebookDocumentCellChangeStructure(
        types.NotebookCellArrayChange(5, 1)))
    notebooks.change("file:///nb.ipynb", types.NotebookDocumentCellChangeStructure(
        types.NotebookCellArrayChange(0, 0, [types.NotebookCell(code, "cell:5")])))
    assert notebooks.around("cell:4", documents) == ("print(y)\n\n\nimport numpy as np\n\n\n", "")
    notebooks.close("file:///nb.ipynb")
    assert notebooks.around("cell:4", documents) == ("", "")


@pytest.mark.parametrize("cells", [("import math\r", "def area(r):\r", "print(area(2))\r"),  # old Mac
                                   ("import math\r\n", "def area(r):\r\n", "print(area(2))\r\n"),
                                   ("import math", "def f():\n    x = 1\r", "\nprint(f())\r")])  # mixed
def test_a_cell_ending_in_a_lone_cr_is_not_joined_to_the_next_by_a_crlf(cells: tuple[str, ...]) -> None:
    # A cell that ends with a lone "\r" was followed by "\n\n\n": one CRLF of its "\r" and the first "\n". The
    # cursor on the cell's last (empty) line was then inside a line break; the model completed the line above,
    # `def area(r):`, and the suggestion began with a line break: a blank line above the body.
    documents, notebooks = Documents(), Notebooks()
    for n, text in enumerate(cells):
        documents.open(types.TextDocumentItem(f"cell:{n}", "python", 1, text))
    notebooks.open(types.NotebookDocument("file:///nb.ipynb", "jupyter-notebook", 1, [
        types.NotebookCell(types.NotebookCellKind.Code, f"cell:{n}") for n in range(len(cells))]))
    head, tail = notebooks.around("cell:1", documents)
    cell = cells[1]
    joined, cursor = head + cell + tail, len(head) + len(cell)
    assert joined[cursor - 1:cursor + 1] != "\r\n"
    # Each cell's lines, two blank lines apart, as the cells in LF are.
    lf = [text.replace("\r\n", "\n").replace("\r", "\n") for text in cells]
    assert split_lines(joined) == split_lines(f"{lf[0].rstrip()}\n\n\n{lf[1]}\n\n\n{lf[2].rstrip()}")
    assert position_at(joined, cursor)[0] == len(split_lines(head + cell)) - 1  # on the cell's last line


@pytest.mark.parametrize(("path", "language"), [
    ("/src/app.py", "python"), ("/src/App.TSX", "typescriptreact"), ("/src/lib.rs", "rust"),
    ("/src/util.h", "c"), ("/src/Makefile", ""), ("/src/notes.txt", ""), ("/src/.py", ""),
    ("/site/index.html", "html"), ("/src/App.vue", "vue"), ("/src/Page.svelte", "svelte"), ("/pom.xml", "xml"),
])
def test_language_of_a_file_that_is_not_open(path: str, language: str) -> None:
    assert language_of(path) == language


def _splits_of_long_strings(call: Callable[[], object], longer_than: int = 1_000) -> list[int]:
    """The lengths of the strings longer than `longer_than` that `call()` splits (str.split, seen by
    sys.setprofile): splitting a document into lines allocates a string per line."""
    splits: list[int] = []

    def profile(frame: FrameType, event: str, arg: object) -> None:
        target = getattr(arg, "__self__", None)
        if event == "c_call" and getattr(arg, "__name__", "") == "split" and isinstance(target, str) \
                and len(target) > longer_than:
            splits.append(len(target))

    sys.setprofile(profile)
    try:
        call()
    finally:
        sys.setprofile(None)
    return splits


@pytest.mark.parametrize("line_break", ["\n", "\r\n"])
def test_typing_at_the_end_of_a_big_file_never_splits_it(line_break: str) -> None:
    # Each keystroke's didChange converts its position and notes the lines around it for the other files'
    # context: found by counting the lines from the top, that split a 20,000-line file twice a keystroke
    # (~8 ms). From the line of the last edit, which the document keeps, nothing is split after the first.
    from lsp_server.server import create_server
    from lsp_server.settings import Settings

    ls = create_server(Settings())
    did_open = ls.protocol.fm.features[types.TEXT_DOCUMENT_DID_OPEN]
    did_change = ls.protocol.fm.features[types.TEXT_DOCUMENT_DID_CHANGE]
    lines = [f"    value_{i} = compute({i})" for i in range(20_000)]
    did_open(types.DidOpenTextDocumentParams(types.TextDocumentItem(
        "file:///big.py", "python", 1, line_break.join(lines))))

    def type_at(version: int, line: int, character: int, text: str) -> None:
        at = types.Position(line, character)
        did_change(types.DidChangeTextDocumentParams(types.VersionedTextDocumentIdentifier(version, "file:///big.py"), [
            types.TextDocumentContentChangePartial(types.Range(at, at), text)]))

    type_at(2, 19_990, 4, "x")  # the first keystroke there finds its line from the top
    assert _splits_of_long_strings(lambda: [type_at(3 + k, 19_990, 5 + k, "y") for k in range(5)]) == []
    assert _splits_of_long_strings(lambda: type_at(8, 19_991, 0, line_break)) == []  # Enter, a line further down
    assert _splits_of_long_strings(lambda: type_at(9, 19_985, 4, "z")) == []  # a few lines up
    lines[19_990] = "    xyyyyy" + lines[19_990][4:]
    lines[19_991:19_992] = ["", lines[19_991]]
    lines[19_985] = "    z" + lines[19_985][4:]
    assert ls.documents.get("file:///big.py").text == line_break.join(lines)
    assert ls.extra.chunks[-1].text == "\n".join(lines[19_977:19_994])  # ±8 lines around line 19,985
