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
        # Its decorators or attributes count as the node's lines, but not a declaration documented elsewhere (an
        # overload implementation's first signature): the cursor on another signature means that signature.
        found = lang.describe(node)
        return min(found.start_row, node.start_point.row) if found and found.decl == node else node.start_point.row

    best = None
    for node in ts_util.enclosing(root, line, end_line, start_row):
        found = lang.describe(node)
        if found is not None and found.name:
            best = found
    if best is None:
        return None
    lines = split_lines(text)
    row = best.start_row
    # Tree-sitter counts UTF-8 bytes; the line's text before the declaration, if any, is other code (or a comment).
    column = len(lines[row].encode("utf-8")[:best.start.start_point.column].decode("utf-8", "replace"))
    if not lines[row][:column].strip():
        column = 0
    attributes = lines[row:best.decl.start_point.row] if language_id == "rust" else []
    if has_doc_comment(lines, row, language_id, column) or any(map(_DOC_ATTRIBUTE.match, attributes)):
        return None
    # What ends before it on its line may have begun on a line above (`/* a,\n b */ func F()`): that line's indent.
    before = best.start.prev_sibling if column else None
    indent = leading_ws(lines[before.start_point.row if before is not None else row])
    if column and _opened_on_row(best.start, row):  # `class A { f() {} }`: f's line goes inside the braces
        indent += _indent_unit(lines, language_id)
    params, returns, yields, raises = lang.facts(best)
    return DocTarget(language_id, best.kind, best.name, params, returns, yields, raises, row, row, indent, column)


def _opened_on_row(node: ts_util.Node, row: int) -> bool:
    """Whether `node` sits in a body (a class's, a namespace's) that opens on `row`, the file aside."""
    parent = node.parent
    while parent is not None and parent.parent is not None:
        owner = parent.parent if parent.type == "declaration_list" else parent  # the body's namespace, say
        if parent.start_point.row == row and owner.type not in _UNINDENTED_BODIES:
            return True
        parent = parent.parent
    return False


# What C++ does not indent the insides of (clang-format's defaults): `namespace m {`, `extern "C" {`.
_UNINDENTED_BODIES = frozenset({"namespace_definition", "linkage_specification"})


def _indent_unit(lines: list[str], language_id: str) -> str:
    """The file's indentation step: the first indent that deepens the line before it; Go's tab by default."""
    previous = None
    for line in lines:
        if not line.strip():
            continue
        indent = leading_ws(line)
        if previous is not None and len(indent) > len(previous) and indent.startswith(previous):
            return indent[len(previous):]
        previous = indent
    return "\t" if language_id == "go" else "    "


def has_doc_comment(lines: list[str], row: int, language_id: str, column: int = 0) -> bool:
    """Whether a doc comment ends right before the declaration at (`row`, `column`): earlier on its line
    (`/** Doc. */ function f() {}`), else on the line directly above (a blank line detaches it)."""
    if column:  # the text before it on its line stands in for the line above
        if language_id == "go":  # go/ast: a comment group on the declaration's own line is not its doc
            return False
        lines, row = [*lines[:row], lines[row][:column]], row + 1
    above = lines[row - 1].strip() if row > 0 else ""
    if above.endswith("*/"):
        before, opening = _block_comment_start(lines, row - 1)
        if language_id == "go":
            # go/ast: a comment that starts after code on its line is that code's line comment, never a doc.
            return bool(opening) and not before.strip()
        if language_id == "rust":  # `/*!` documents the enclosing module; `/***` and `/**/` are plain comments
            return opening.startswith("/**") and not opening.startswith(("/***", "/**/"))
        if language_id in ("c", "cpp") and opening.startswith(("/**<", "/*!<")):  # Doxygen: the previous member's
            return False
        return opening.startswith(("/**", "/*!")) and not opening.startswith("/**/")  # `/**/`: an empty comment
    if language_id == "go":
        # Any comment directly above is a Go doc comment, except `//go:build`-style directives.
        return above.startswith("//") and not above.startswith("//go:")
    if language_id in ("c", "cpp") and above.startswith(("///<", "//!<")):  # Doxygen: the previous member's
        return False
    if above.startswith("///") and not above.startswith("////"):
        # JSDoc reads only `/** */`: TypeScript's `/// <reference ... />` is a directive to the compiler.
        return language_id in ("rust", "java", "c", "cpp")
    # `//!` documents the enclosing module in Rust, but the next item in Doxygen.
    return above.startswith("//!") and language_id in ("c", "cpp")


def joins_go_doc(lines: list[str], row: int, column: int) -> bool:
    """Whether what comes before a Go declaration on its line (`/* x */ func F() {}`) is a block comment that starts
    its line: split off, it would end on the line above a doc comment put between, and go/ast would read the two as
    one comment group, `x` the first line of the declaration's doc (`go doc` shows it, and the doc no longer begins
    with the name). After code it is that code's line comment, a group of its own."""
    before = lines[row][:column].rstrip()
    if not before.endswith("*/"):
        return False
    code, opening = _block_comment_start([*lines[:row], before], row)
    return bool(opening) and not code.strip()


def _block_comment_start(lines: list[str], end_row: int) -> tuple[str, str]:
    """The text before the block comment that ends on `end_row` on its first line, and the comment from its `/*`."""
    for row in range(end_row, max(-1, end_row - 500), -1):
        limit = lines[row].rfind("*/") if row == end_row else len(lines[row])
        idx = lines[row].rfind("/*", 0, limit)
        if idx >= 0:
            return lines[row][:idx], lines[row][idx:].lstrip()
    return "", ""
