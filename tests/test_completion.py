"""The completion path's own pure helpers (windows and shaping have their own tests)."""

from __future__ import annotations

import pytest

from lsp_server.completion import budgets, fitting_infill_prompt, healing_text, inside_a_word, line_around
from lsp_server.settings import Settings
from model.loader import DEMO_MODEL_DIR
from model.tokenizer import Tokenizer

TOKENIZER = Tokenizer(DEMO_MODEL_DIR / "tokenizer.model")


@pytest.mark.parametrize("text,inside", [
    ("os.pa|th", True), ("get|_size", True), ("naï|ve", True), ("x = |1", False), ("f(a, |b)", False),
    ("x = |  # note", False), ("foo(|)", False), ("end|", False), ("|start", False),
])
def test_inside_a_word(text: str, inside: bool) -> None:
    assert inside_a_word(text.replace("|", ""), text.index("|")) is inside


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


def test_an_infill_prompt_too_long_for_the_context_loses_whole_lines_at_its_far_ends() -> None:
    prefix = "".join(f"value_{i} = {i} * {i}\n" for i in range(400)) + "def area(w, h):\n    \"\"\""
    suffix = "\n    \"\"\"\n    return w * h\n" + "".join(f"print(value_{i})\n" for i in range(400))
    full = fitting_infill_prompt(TOKENIZER, 1 << 20, prefix, suffix, 40, "spm")
    assert full is not None and len(full) > 1024
    prompt = fitting_infill_prompt(TOKENIZER, 1024, prefix, suffix, 40, "spm")
    assert prompt is not None and 800 < len(prompt) <= 1024 - 40
    text = TOKENIZER.decode(prompt)
    assert "value_0 =" not in text and "def area(w, h):" in text  # the start went, the cursor's side stayed
    assert "return w * h" in text and "print(value_399)" not in text
    assert fitting_infill_prompt(TOKENIZER, 1024, prefix, suffix, 1024, "spm") is None  # no room at all
