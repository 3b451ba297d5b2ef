"""Docstring engine: find an undocumented function/method/class and write its docstring or doc
comment, with structure taken from the code and descriptions from a fill-in-the-middle model.

Pure Python: no LSP or model imports; the model is reached only through an injected `Infill`.
"""

from __future__ import annotations

from ..text import lone_cr_to_lf
from .core import DocEdit, DocTarget, Infill
from .generate import Blank, generate_docstring
from .python_target import find_python_target
from .styles import STYLES
from .treesitter_target import LANGUAGES, find_ts_target

SUPPORTED_LANGUAGES: frozenset[str] = frozenset({"python", *LANGUAGES})


def find_target(text: str, language_id: str, line: int, end_line: int | None = None) -> DocTarget | None:
    """Cheap (no model): the innermost function/method/class containing `line` (or the selection's
    lines), or whose declaration header is on that line, that has no docstring. None if it already
    has one, the cursor is outside any, or the language is unsupported."""
    first, last = (line, line) if end_line is None else (min(line, end_line), max(line, end_line))
    if first < 0:
        return None
    text = lone_cr_to_lf(text)  # lines as LSP counts them, also for tree-sitter (which ignores a lone \r)
    if language_id == "python":
        return find_python_target(text, first, last)
    return find_ts_target(text, language_id, first, last)


__all__ = ["STYLES", "SUPPORTED_LANGUAGES", "Blank", "DocEdit", "DocTarget", "Infill", "find_target", "generate_docstring"]
