"""The completion path's own pure helpers (windows and shaping have their own tests)."""

from __future__ import annotations

import pytest

from lsp_server.completion import budgets, healing_text, line_around
from lsp_server.settings import Settings
from model.loader import DEMO_MODEL_DIR
from model.tokenizer import Tokenizer

TOKENIZER = Tokenizer(DEMO_MODEL_DIR / "tokenizer.model")


@pytest.mark.parametrize("before,healed", [
    ("        return ", " "), ("x =   ", "   "), ("print(a,\t", "\t"),
    ("        ", ""),        # indentation only: the model must write the line, nothing to heal
    ("", ""), ("x = (", ""), ("foo(a, b)", "")])
def test_healing_text_blanks(before: str, healed: str) -> None:
    assert healing_text(TOKENIZER, before) == healed
    assert healing_text(TOKENIZER, before, words=False) == healed


@pytest.mark.parametrize("before", ["    path = os.pa", "    return self.na", "x = calcul", "    return"])
def test_healing_text_takes_back_the_last_token_of_a_word(before: str) -> None:
    healed = healing_text(TOKENIZER, before)
    # Leaving the healed tail out of the prompt removes exactly the line's last token.
    assert healed.strip() and before.endswith(healed)
    assert TOKENIZER.encode_infilling(before[:len(before) - len(healed)]) == TOKENIZER.encode_infilling(before)[:-1]
    assert healing_text(TOKENIZER, before, words=False) == ""


def test_budgets_fit_small_contexts_in_proportion() -> None:
    settings = Settings(prefix_tokens=1024, suffix_tokens=256)
    assert budgets(settings, 48, 4096) == (1024, 256)
    prefix, suffix = budgets(settings, 48, 1024)
    assert prefix + suffix + 48 <= 1024 and abs(prefix - 4 * suffix) <= 4


def test_line_around_handles_crlf() -> None:
    text = "a = 1\r\nb = a + 2\r\nc = 3\r\n"
    offset = text.index("+")
    assert line_around(text, offset) == ("b = a ", "+ 2")
