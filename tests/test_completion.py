"""The completion path's own pure helpers (windows and shaping have their own tests)."""

from __future__ import annotations

import pytest

from lsp_server.completion import budgets, healed_whitespace, line_around
from lsp_server.settings import Settings


@pytest.mark.parametrize("before,healed", [
    ("        return ", " "), ("x =   ", "   "), ("print(a,\t", "\t"),
    ("        ", ""),        # indentation only: the model must write the line, nothing to heal
    ("return", ""), ("", "")])
def test_healed_whitespace(before: str, healed: str) -> None:
    assert healed_whitespace(before) == healed


def test_budgets_fit_small_contexts_in_proportion() -> None:
    settings = Settings(prefix_tokens=1024, suffix_tokens=256)
    assert budgets(settings, 48, 4096) == (1024, 256)
    prefix, suffix = budgets(settings, 48, 1024)
    assert prefix + suffix + 48 <= 1024 and abs(prefix - 4 * suffix) <= 4


def test_line_around_handles_crlf() -> None:
    text = "a = 1\r\nb = a + 2\r\nc = 3\r\n"
    offset = text.index("+")
    assert line_around(text, offset) == ("b = a ", "+ 2")
