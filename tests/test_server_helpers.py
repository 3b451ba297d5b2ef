"""The language server's pure helpers: what a handler answers, apart from the session around it."""

from __future__ import annotations

from lsp_server.server import reshaped
from lsp_server.shaping import Shaped


def test_a_cached_suggestion_is_reshaped_with_the_documents_line_breaks_undone() -> None:
    # Kept as the user types it in a CRLF file; shaped at the cursor, where `)` right of it is typed over.
    assert reshaped("a, b)\r\n", "f(", ")\r\n", "\r\n") == Shaped("a, b)", 1)
    assert reshaped("\r\n    return 1", "def f():", "", "\r\n") == Shaped("\n    return 1", 0)
    assert reshaped("", "x = ", "", "\n") is None  # the model had nothing here
