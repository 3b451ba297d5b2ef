"""Snippets of the other open documents for the prompt, each under a comment naming its file.

The user's recent places in other files (where they opened, saved or edited them) are kept in a small ring
buffer; a request renders the same-language ones, newest nearest the cursor, within a token budget. Pure
and model-free, like context.py, whose memoized line counts it shares.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlparse

from .context import CountTokens, TokenCounter, counter_for, line_cost
from .text import line_count, line_spans

__all__ = ["DATA_LINE_CHARS", "ContextChunk", "ExtraContext", "comment_syntax", "context_header", "is_context_header"]

# Line-comment syntax per LSP language id: (opener, closer).
_HASH = ("#", "")
_SLASH = ("//", "")
_DASH = ("--", "")
_COMMENT_SYNTAX: dict[str, tuple[str, str]] = {
    **dict.fromkeys(
        (
            "python", "shellscript", "sh", "bash", "zsh", "fish", "ruby", "yaml",
            "toml", "perl", "r", "makefile", "dockerfile", "powershell", "elixir",
            "julia", "nim", "coffeescript", "cmake", "gdscript", "starlark",
        ),
        _HASH,
    ),
    **dict.fromkeys(
        (
            "c", "cpp", "cuda-cpp", "objective-c", "objective-cpp", "csharp", "java",
            "javascript", "javascriptreact", "typescript", "typescriptreact", "go",
            "rust", "swift", "kotlin", "scala", "dart", "php", "groovy", "zig",
            "jsonc", "proto", "solidity", "glsl", "hlsl", "verilog", "fsharp",
        ),
        _SLASH,
    ),
    **dict.fromkeys(("lua", "sql", "haskell", "ada", "elm", "vhdl", "purescript"), _DASH),
    **dict.fromkeys(("latex", "tex", "matlab", "erlang", "prolog"), ("%", "")),
    **dict.fromkeys(("clojure", "lisp", "scheme", "racket", "commonlisp", "ini"), (";", "")),
    **dict.fromkeys(("html", "xml", "markdown", "vue", "svelte"), ("<!--", " -->")),
    **dict.fromkeys(("css", "scss", "less"), ("/*", " */")),
    "vim": ('"', ""),
    "bat": ("REM", ""),
    "ocaml": ("(*", " *)"),
}

# Languages whose files meaningfully share context (same ecosystem).
_FAMILY: dict[str, str] = {
    **dict.fromkeys(("javascript", "javascriptreact", "typescript", "typescriptreact"), "js"),
    **dict.fromkeys(("c", "cpp", "cuda-cpp", "objective-c", "objective-cpp"), "c"),
    **dict.fromkeys(("shellscript", "sh", "bash", "zsh"), "sh"),
}


def comment_syntax(language_id: str) -> tuple[str, str]:
    """``(opener, closer)`` of a one-line comment; ``//`` for unknown languages."""
    return _COMMENT_SYNTAX.get(language_id.lower(), _SLASH)


def context_header(language_id: str, path: str) -> str:
    """The comment line that opens a file's code in the other-file context: ``# Path: util.py``."""
    opener, closer = comment_syntax(language_id)
    return f"{opener} Path: {path}{closer}\n"


# The start of such a header in any language's comment syntax, indented or not.
_CONTEXT_HEADER = re.compile(r"[ \t]*(?:{}) Path: ".format("|".join(
    re.escape(opener) for opener in sorted({o for o, _ in _COMMENT_SYNTAX.values()} | {_SLASH[0]}, key=len,
                                           reverse=True))))


def is_context_header(line: str) -> bool:
    """Whether ``line`` begins like a header of the other-file context (any language's)."""
    return _CONTEXT_HEADER.match(line) is not None


def _family(language_id: str) -> str:
    lid = language_id.lower()
    return _FAMILY.get(lid, lid)


@dataclass(frozen=True)
class ContextChunk:
    """Lines ``start_line..end_line`` (exclusive) of a document; ``focus_line`` is
    where the user was, kept when the chunk must be trimmed to a budget."""

    uri: str
    language_id: str
    text: str
    start_line: int
    end_line: int
    focus_line: int


class ExtraContext:
    """Ring buffer of snippets from other documents, rendered as prompt context.

    Dedup rules on insert: a chunk with the same uri and text as an existing
    one replaces it (becoming newest); older chunks of the same uri whose line
    range overlaps the new one are dropped (they are stale views of the same
    region, e.g. successive edits); a chunk whose text is contained in another
    chunk is dropped (the container is refreshed to newest instead), and
    chunks contained in the new one are removed.
    """

    def __init__(
        self,
        max_chunks: int = 16,
        *,
        document_lines: int = 20,
        edit_lines: int = 8,
        roots: tuple[str, ...] = (),
    ) -> None:
        self.max_chunks = max(1, max_chunks)
        self.document_lines = max(0, document_lines)
        self.edit_lines = max(0, edit_lines)
        # The workspace folders (URIs): a file in one is shown relative to it (the innermost that holds it).
        self.roots = roots
        self._chunks: list[ContextChunk] = []  # oldest first

    @property
    def chunks(self) -> tuple[ContextChunk, ...]:
        """Current chunks, oldest first."""
        return tuple(self._chunks)

    def note_document(self, uri: str, language_id: str, text: str, cursor_line: int) -> None:
        """Record ``±document_lines`` lines around ``cursor_line`` (on open/save)."""
        self._add(_make_chunk(uri, language_id, text, cursor_line, self.document_lines))

    def note_edit(self, uri: str, language_id: str, text: str, line: int, near: tuple[int, int] = (0, 0)) -> None:
        """Record ``±edit_lines`` lines around an edit at ``line`` (on change); ``near``: a known (line, start
        offset) of ``text``, from which the lines are found (see text.line_start)."""
        self._add(_make_chunk(uri, language_id, text, line, self.edit_lines, near))

    def forget(self, uri: str) -> None:
        """Drop every chunk of ``uri`` (e.g. on close or delete)."""
        self._chunks = [c for c in self._chunks if c.uri != uri]

    def _add(self, new: ContextChunk | None) -> None:
        if new is None:
            return
        kept: list[ContextChunk] = []
        container: ContextChunk | None = None
        for old in self._chunks:
            if old.uri == new.uri and (
                old.text == new.text
                or (old.start_line < new.end_line and new.start_line < old.end_line)
            ):
                continue  # same or stale view of the same region: new one wins
            if container is None and new.text in old.text:
                container = old
                continue
            if old.text in new.text:
                continue
            kept.append(old)
        kept.append(container if container is not None else new)
        self._chunks = kept[-self.max_chunks :]

    def render(
        self, language_id: str, exclude_uri: str, count_tokens: CountTokens, budget: int
    ) -> str:
        """Format same-language chunks (never ``exclude_uri``) within ``budget``.

        Chunks are picked newest first; one that does not fit whole is trimmed
        to the lines around its focus line. Output is oldest-first so the
        newest chunk ends up closest to the cursor. Each chunk is a comment
        header naming the file, the code, and a blank line.
        """
        counter = counter_for(count_tokens)
        family = _family(language_id)
        remaining = budget
        picked: list[str] = []
        for chunk in reversed(self._chunks):
            if remaining <= 0:
                break
            if chunk.uri == exclude_uri or _family(chunk.language_id) != family:
                continue
            header = context_header(chunk.language_id, self._display_path(chunk.uri))
            # The trailing blank line is charged like any other line.
            fixed = counter(header) + line_cost(counter, "")
            rendered = _fit_lines(chunk, counter, remaining - fixed)
            if rendered is None:
                continue
            code, cost = rendered
            picked.append(header + code + "\n")
            remaining -= fixed + cost
        return "".join(reversed(picked))

    def _display_path(self, uri: str) -> str:
        path = _uri_to_path(uri)
        roots = [_uri_to_path(r).rstrip("/\\") for r in self.roots if r]
        for root in sorted(roots, key=len, reverse=True):
            if root and (path.startswith(root + "/") or path.startswith(root + "\\")):
                return path[len(root) + 1 :]
        return path


# Longer lines are data (minified code, tables, base64), not code worth showing or copying; tokenizing one
# costs what a whole file does. Snippets of other files and the n-gram cache's recall leave them out.
DATA_LINE_CHARS = 1000


def _make_chunk(
    uri: str, language_id: str, text: str, line: int, radius: int, near: tuple[int, int] = (0, 0)
) -> ContextChunk | None:
    # Only the lines around `line` are found: this runs at every keystroke, and a big file's whole text would be
    # split each time. Their places are found first and only the short ones are copied: a line next to the edit
    # may be a 2 MB minified bundle.
    line = max(0, line)
    first = max(0, line - radius)
    spans = line_spans(text, first, line + radius + 1 - first, near)
    if len(spans) <= line - first:  # a line past the end of the text (a stale position): around its last line
        line = line_count(text) - 1  # (counting the lines is no `find`, but reads the whole text)
        first = max(0, line - radius)
        spans = line_spans(text, first, line + 1 - first)
    cur = line - first
    start, end = 0, len(spans)
    # Lines longer than this are data (a minified bundle, base64), never worth a snippet: the chunk stops
    # short of them, so no render tokenizes them again (counts of such long strings are not memoized).
    if _span_len(spans[cur]) > DATA_LINE_CHARS:
        return None
    start = next((i + 1 for i in range(cur - 1, start - 1, -1) if _span_len(spans[i]) > DATA_LINE_CHARS), start)
    end = next((i for i in range(cur + 1, end) if _span_len(spans[i]) > DATA_LINE_CHARS), end)
    lines = [text[a:b] if start <= i < end else "" for i, (a, b) in enumerate(spans)]  # lines[i] is line first + i
    # Drop blank edges: they cost tokens and carry nothing.
    while start < end and not lines[start].strip():
        start += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    if start >= end:
        return None
    return ContextChunk(
        uri=uri,
        language_id=language_id,
        text="\n".join(lines[start:end]),
        start_line=first + start,
        end_line=first + end,
        focus_line=first + max(start, min(cur, end - 1)),
    )


def _span_len(span: tuple[int, int]) -> int:
    return span[1] - span[0]


def _fit_lines(chunk: ContextChunk, counter: TokenCounter, budget: int) -> tuple[str, int] | None:
    """The chunk's code (each line newline-terminated) within ``budget``, and its cost.

    Whole chunk if it fits; otherwise grow a window outward from the focus
    line, alternating down/up, while lines fit. None if nothing non-blank fits.
    """
    if budget <= 0:
        return None
    lines = chunk.text.split("\n")
    costs = [line_cost(counter, line) for line in lines]
    total = sum(costs)
    if total <= budget:
        return "".join(line + "\n" for line in lines), total
    focus = chunk.focus_line - chunk.start_line
    lo, hi, spent = focus, focus, 0  # window is lines[lo:hi]
    down_ok = up_ok = True
    while down_ok or up_ok:
        if down_ok:
            if hi < len(lines) and spent + costs[hi] <= budget:
                spent += costs[hi]
                hi += 1
            else:
                down_ok = False
        if up_ok:
            if lo > 0 and spent + costs[lo - 1] <= budget:
                spent += costs[lo - 1]
                lo -= 1
            else:
                up_ok = False
    window = lines[lo:hi]
    if not any(line.strip() for line in window):
        return None
    return "".join(line + "\n" for line in window), spent


def _uri_to_path(uri: str) -> str:
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        return uri
    path = unquote(parsed.path)
    # file:///C:/x -> C:/x on Windows-style URIs.
    if len(path) >= 3 and path[0] == "/" and path[2] == ":" and path[1].isalpha():
        path = path[1:]
    if parsed.netloc:  # UNC: file://server/share/x
        path = f"//{parsed.netloc}{path}"
    return path or "/"
