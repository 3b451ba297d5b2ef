"""Find an undocumented declaration with tree-sitter for the comment-style languages."""

from __future__ import annotations

import re
from typing import Protocol

from . import lang_c, lang_go, lang_java, lang_js, lang_rust, ts_util
from .core import DocTarget, leading_ws, split_lines


class _Language(Protocol):
    """What each lang_* module provides."""

    def describe(self, node: ts_util.Node) -> ts_util.Found | None: ...
    def facts(self, found: ts_util.Found) -> ts_util.Facts: ...


LANGUAGES: dict[str, _Language] = {
    "javascript": lang_js, "javascriptreact": lang_js, "typescript": lang_js, "typescriptreact": lang_js,
    "java": lang_java, "go": lang_go, "rust": lang_rust, "c": lang_c, "cpp": lang_c,
}


# Rust's `#[doc = "..."]` (what `///` stands for, and how macros and `include_str!` document an item) among the
# attributes above an item; `#[doc(hidden)]` and `#[doc(alias = "x")]` say nothing.
_DOC_ATTRIBUTE = re.compile(r"\s*#\[\s*doc\s*=")


def find_ts_target(text: str, language_id: str, line: int, end_line: int) -> DocTarget | None:
    lang = LANGUAGES.get(language_id)
    root = ts_util.parse(text, language_id) if lang is not None else None
    if lang is None or root is None:
        return None

    def start_row(node: ts_util.Node) -> int:
        found = lang.describe(node)
        return min(found.start_row, node.start_point.row) if found else node.start_point.row

    best = None
    for node in ts_util.enclosing(root, line, end_line, start_row):
        found = lang.describe(node)
        if found is not None and found.name:
            best = found
    if best is None:
        return None
    lines = split_lines(text)
    attributes = lines[best.start_row:best.decl.start_point.row] if language_id == "rust" else []
    if has_doc_comment(lines, best.start_row, language_id) or any(map(_DOC_ATTRIBUTE.match, attributes)):
        return None
    params, returns, yields, raises = lang.facts(best)
    return DocTarget(language_id, best.kind, best.name, params, returns, yields, raises,
                     best.start_row, best.start_row, leading_ws(lines[best.start_row]))


def has_doc_comment(lines: list[str], row: int, language_id: str) -> bool:
    """Whether a doc comment ends on the line directly above `row` (a blank line detaches it)."""
    above = lines[row - 1].strip() if row > 0 else ""
    if above.endswith("*/"):
        opening = _block_comment_start(lines, row - 1)
        return opening.startswith(("/**", "/*!")) or (language_id == "go" and opening.startswith("/*"))
    if language_id == "go":
        # Any comment directly above is a Go doc comment, except `//go:build`-style directives.
        return above.startswith("//") and not above.startswith("//go:")
    if above.startswith("///") and not above.startswith("////"):
        return True
    # `//!` documents the enclosing module in Rust, but the next item in Doxygen.
    return above.startswith("//!") and language_id in ("c", "cpp")


def _block_comment_start(lines: list[str], end_row: int) -> str:
    for row in range(end_row, max(-1, end_row - 500), -1):
        limit = lines[row].rfind("*/") if row == end_row else len(lines[row])
        idx = lines[row].rfind("/*", 0, limit)
        if idx >= 0:
            return lines[row][idx:].lstrip()
    return ""
