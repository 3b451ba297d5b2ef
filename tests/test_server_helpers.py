"""The language server's pure helpers: what a handler answers, apart from the session around it."""

from __future__ import annotations

from lsprotocol import types

from lsp_server.offers import Offer, completion_item, reshaped
from lsp_server.shaping import Shaped


def test_a_cached_suggestion_is_reshaped_with_the_documents_line_breaks_undone() -> None:
    # Kept as the user types it in a CRLF file; shaped at the cursor, where `)` right of it is typed over.
    assert reshaped("a,\r\n  b)", "f(", ")\r\n", "\r\n") == Shaped("a,\n  b)", 1)
    assert reshaped("\r\n    return 1", "def f():", "", "\r\n") == Shaped("\n    return 1", 0)
    assert reshaped("", "x = ", "", "\n") is None  # the model had nothing here


def test_a_completion_item_is_labelled_by_its_first_line_and_documented_by_its_whole_text() -> None:
    at = types.Range(types.Position(2, 8), types.Position(2, 9))
    offer = Offer("    self.items = []\n    self.size = 0", at)
    first = completion_item(offer, 0, markdown=True)
    assert (first.label, first.filter_text) == ("self.items = []", "    self.items = []")
    assert first.text_edit == types.TextEdit(at, offer.text)
    assert first.documentation == types.MarkupContent(types.MarkupKind.Markdown, f"```\n{offer.text}\n```")
    assert (first.sort_text, first.preselect) == ("0", True)
    second = completion_item(offer, 1, markdown=False)
    assert (second.documentation, second.sort_text, second.preselect) == (offer.text, "1", False)
    assert completion_item(Offer("  ", at), 0, markdown=False).label == "  "  # blanks: labelled as they are


def test_a_long_load_says_how_long_is_left() -> None:
    """The progress an editor shows while a model loads (a 7B quantized on 2 CPU cores took 10 minutes)."""
    from lsp_server.loading import time_left
    assert time_left(0.25, 127) == "about 6 min left"
    assert time_left(0.5, 20) == "about 20 s left"
    assert time_left(0.9, 10) == "about 5 s left"
    assert time_left(0.02, 30) is None and time_left(0.5, 2) is None and time_left(1.0, 60) is None
