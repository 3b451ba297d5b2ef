"""Docstring engine: find an undocumented function/method/class and write its docstring or doc
comment, with structure taken from the code and descriptions from a fill-in-the-middle model.

Pure Python: no LSP or model imports; the model is reached only through an injected `Infill`.
"""

from __future__ import annotations

from collections.abc import Collection, MutableSequence

from ..text import lone_cr_to_lf
from .core import DocEdit, DocTarget, Infill
from .generate import Blank, generate_docstring
from .python_target import find_python_target, forget_layouts
from .styles import STYLES
from .treesitter_target import LANGUAGES, find_ts_target
from .ts_util import forget_trees

SUPPORTED_LANGUAGES: frozenset[str] = frozenset({"python", *LANGUAGES})


def find_target(text: str, language_id: str, line: int, end_line: int | None = None, *,
                parsed: MutableSequence[int] | None = None) -> DocTarget | None:
    """Cheap (no model): the innermost function/method/class containing `line` (or the selection's
    lines), or whose declaration header is on that line, that has no docstring. None if it already
    has one, the cursor is outside any, or the language is unsupported. `parsed`, when given, is appended the
    hash of the text parsed, which forget_parses takes (the parsers keep the trees of recent texts)."""
    first, last = (line, line) if end_line is None else (min(line, end_line), max(line, end_line))
    if first < 0:
        return None
    text = lone_cr_to_lf(text)  # lines as LSP counts them, also for tree-sitter (which ignores a lone \r)
    if parsed is not None:
        parsed.append(hash(text))
    if language_id == "python":
        return find_python_target(text, first, last)
    return find_ts_target(text, language_id, first, last)


def forget_parses(hashes: Collection[int]) -> None:
    """Forget the parses of the texts of these hashes (from find_target's `parsed`): a closed document's. Called on
    the thread that calls find_target, whose caches these are."""
    forget_layouts(hashes)
    forget_trees(hashes)


__all__ = ["STYLES", "SUPPORTED_LANGUAGES", "Blank", "DocEdit", "DocTarget", "Infill", "find_target", "forget_parses", "generate_docstring"]
