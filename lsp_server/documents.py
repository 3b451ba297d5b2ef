"""The documents the server works on: the client's open documents, and files read from disk on demand.

Open documents are kept here rather than in pygls' workspace, whose position conversions and incremental
edits split lines with ``str.splitlines`` (a form feed or U+2028 would move every later position). Every
conversion goes through ``text.py``, in the position encoding negotiated with the client.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote

from lsprotocol import types
from pygls.uris import to_fs_path

from .languages import language_of
from .text import Encoding, line_start, offset_at, position_at

log = logging.getLogger(__name__)

# Files that are not open in the editor are read only up to this size: a completion or a docstring never
# needs more, and a request must not be able to make the server read without bound.
MAX_FILE_BYTES = 4 << 20


def encoding_named(kind: object) -> Encoding:
    """The encoding of a PositionEncodingKind (or its string); UTF-16, LSP's default, for anything else."""
    value = getattr(kind, "value", kind)
    return value if value in ("utf-8", "utf-32") else "utf-16"  # type: ignore[return-value]


@dataclass
class Document:
    uri: str
    text: str
    language_id: str = ""
    version: int | None = None
    encoding: Encoding = "utf-16"
    # A (line, start offset) of `text` known from the last position converted: where the user types, so that
    # the next keystroke's positions are found from there, not by counting the lines above (a string per line:
    # milliseconds a keystroke at the end of a 20,000-line file). A snapshot (dataclasses.replace) shares it.
    anchor: tuple[int, int] = field(default=(0, 0), repr=False, compare=False)

    def offset_at(self, position: types.Position) -> int:
        """Code-point offset of a client position (clamped into the document)."""
        if position.line > 0 and (start := line_start(self.text, position.line, self.anchor)) is not None:
            self.anchor = (position.line, start)
        return offset_at(self.text, position.line, position.character, self.encoding, self.anchor)

    def position_at(self, offset: int) -> types.Position:
        """Client position of a code-point offset."""
        return types.Position(*position_at(self.text, offset, self.encoding, self.anchor))

    def replace(self, start: int, end: int, new_text: str) -> None:
        """Replace code points `start`..`end` of the text by `new_text`, keeping the anchor where the edit
        leaves it right: a line that starts before the edit starts where it did (one that starts at it, too,
        after a "\\n", which nothing inserted can join to another break); any other anchor is dropped."""
        at = self.anchor[1]
        if not (at < start or (at == start and (at == 0 or self.text[at - 1] == "\n"))):
            self.anchor = (0, 0)
        self.text = self.text[:start] + new_text + self.text[end:]


class Documents:
    """The open documents by URI (percent-decoded, so that ``%20`` and a space name the same file)."""

    def __init__(self, encoding: Encoding = "utf-16") -> None:
        self.encoding = encoding
        self._open: dict[str, Document] = {}

    def get(self, uri: str) -> Document | None:
        return self._open.get(unquote(uri))

    def open(self, item: types.TextDocumentItem) -> Document:
        doc = Document(item.uri, item.text, item.language_id or "", item.version, self.encoding)
        self._open[unquote(item.uri)] = doc
        return doc

    def change(self, params: types.DidChangeTextDocumentParams) -> Document | None:
        """Apply the changes in order (a change without a range replaces the whole text)."""
        doc = self.get(params.text_document.uri)
        if doc is None:
            log.warning("didChange for %s, which is not open: ignored", params.text_document.uri)
            return None
        for change in params.content_changes:
            if isinstance(change, types.TextDocumentContentChangePartial):
                # Typing inserts at one place: its position is converted once. The start is converted last, so
                # that the document's anchor is its line, which the edit leaves where it was.
                end = None if change.range.end == change.range.start else doc.offset_at(change.range.end)
                start = doc.offset_at(change.range.start)
                end = start if end is None else end
                doc.replace(min(start, end), max(start, end), change.text)
            else:
                doc.text, doc.anchor = change.text, (0, 0)
        doc.version = params.text_document.version
        return doc

    def close(self, uri: str) -> None:
        self._open.pop(unquote(uri), None)


async def read_document(uri: str, encoding: Encoding = "utf-16") -> Document | None:
    """A file that is not open, read on a worker thread; None unless it is a readable regular UTF-8 file
    of at most MAX_FILE_BYTES."""
    path = to_fs_path(uri) if uri.startswith("file:") else None
    if path is None:
        return None
    try:
        text = await asyncio.to_thread(read_regular_file, path, MAX_FILE_BYTES)
    except (OSError, UnicodeDecodeError, ValueError) as e:
        log.warning("cannot read %s: %s", uri, e)
        return None
    return Document(uri, text, language_of(path), None, encoding)


def read_regular_file(path: str, limit: int) -> str:
    """The UTF-8 text of a regular file, never blocking on a FIFO or device and never past `limit` bytes.

    Raises ValueError for anything else. The checks are made on the opened file, so a path swapped for a
    FIFO between a check and the open cannot slip through. Bytes are decoded as they are (no universal
    newlines), so offsets match what an editor would send.
    """
    # O_NONBLOCK: opening a FIFO without a writer would otherwise wait forever.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError("not a regular file")
        if info.st_size > limit:
            raise ValueError(f"{info.st_size} bytes, more than the {limit} read for files that are not open")
        file = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with file:
        data = file.read(limit + 1)
    if len(data) > limit:  # it grew since fstat
        raise ValueError(f"more than the {limit} bytes read for files that are not open")
    return data.decode("utf-8")


class Notebooks:
    """The open notebooks' cells, in order (LSP 3.17 notebook sync). The cells' texts live in `Documents`
    like any open document; this keeps which cells make up which notebook, so that a cell is completed
    with the code around it (a cell alone has not seen the imports and names of the cells above)."""

    def __init__(self) -> None:
        self._cells: dict[str, list[types.NotebookCell]] = {}  # notebook URI -> its cells, in order
        self._notebook_of: dict[str, str] = {}  # cell URI -> notebook URI

    def open(self, notebook: types.NotebookDocument) -> None:
        self._cells[unquote(notebook.uri)] = list(notebook.cells)
        self._index(notebook.uri)

    def change(self, notebook_uri: str, structure: types.NotebookDocumentCellChangeStructure | None,
               data: Sequence[types.NotebookCell] = ()) -> None:
        """Cells inserted, removed or moved (`structure.array`), and new kinds of cells (`data`)."""
        cells = self._cells.get(unquote(notebook_uri))
        if cells is None:
            log.warning("notebook change for %s, which is not open: ignored", notebook_uri)
            return
        if structure is not None:
            change = structure.array
            for gone in cells[change.start:change.start + change.delete_count]:
                self._notebook_of.pop(unquote(gone.document), None)
            cells[change.start:change.start + change.delete_count] = list(change.cells or ())
        by_uri = {unquote(cell.document): cell for cell in data}
        cells[:] = [by_uri.get(unquote(cell.document), cell) for cell in cells]
        self._index(notebook_uri)

    def close(self, notebook_uri: str) -> None:
        for cell in self._cells.pop(unquote(notebook_uri), ()):
            self._notebook_of.pop(unquote(cell.document), None)

    def _index(self, notebook_uri: str) -> None:
        for cell in self._cells[unquote(notebook_uri)]:
            self._notebook_of[unquote(cell.document)] = unquote(notebook_uri)

    def around(self, cell_uri: str, documents: Documents) -> tuple[str, str]:
        """The code cells before and after `cell_uri` in its notebook, in its language, as the text that
        goes before and after the cell's own (two blank lines apart, as in a script); ("", "") for a
        document that is no cell."""
        notebook = self._notebook_of.get(unquote(cell_uri))
        if notebook is None or (cell := documents.get(cell_uri)) is None:
            return "", ""
        above: list[str] = []
        below: list[str] | None = None  # until the cell itself comes
        for entry in self._cells[notebook]:
            if unquote(entry.document) == unquote(cell_uri):
                below = []
            elif entry.kind == types.NotebookCellKind.Code and (doc := documents.get(entry.document)) is not None \
                    and doc.language_id == cell.language_id and doc.text.strip():
                (above if below is None else below).append(doc.text.rstrip("\r\n"))
        # The cells around lose their own last line breaks, so only this cell's end can be a lone "\r" (old Mac),
        # which a "\n" after it would make one CRLF with: the cursor at the cell's end, on its last (empty) line,
        # would be inside a line break, and the model would complete the line above. "\r\n" goes after anything.
        after = "\r\n" if cell.text.endswith("\r") else "\n"
        return "".join(f"{text}\n\n\n" for text in above), "".join(f"{after * 3}{text}" for text in below or ())
