"""LSP language ids of files that are not open (the editor names an open document's); no pygls here, so that
the command-line tools load fast."""

from __future__ import annotations

import os

__all__ = ["LANGUAGE_OF_SUFFIX", "language_of"]

# A file that is not open has no language id from the editor: its extension stands in (LSP's ids), so that
# it gets its language's docstring action, comment syntax and disabledLanguages rule like an open one.
LANGUAGE_OF_SUFFIX = {
    ".py": "python", ".pyi": "python", ".js": "javascript", ".mjs": "javascript", ".cjs": "javascript",
    ".jsx": "javascriptreact", ".ts": "typescript", ".mts": "typescript", ".cts": "typescript",
    ".tsx": "typescriptreact", ".java": "java", ".go": "go", ".rs": "rust", ".c": "c", ".h": "c",
    ".cc": "cpp", ".cpp": "cpp", ".cxx": "cpp", ".hh": "cpp", ".hpp": "cpp", ".hxx": "cpp",
    ".lua": "lua", ".rb": "ruby", ".sh": "shellscript", ".bash": "shellscript", ".php": "php", ".cs": "csharp",
    ".kt": "kotlin", ".swift": "swift", ".scala": "scala", ".sql": "sql", ".html": "html", ".htm": "html",
    ".xml": "xml", ".vue": "vue", ".svelte": "svelte",
}


def language_of(path: str) -> str:
    """The LSP language id of a file by its extension; "" when unknown."""
    return LANGUAGE_OF_SUFFIX.get(os.path.splitext(path)[1].lower(), "")
