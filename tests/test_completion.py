"""The completion path's own pure helpers (windows and shaping have their own tests)."""

from __future__ import annotations

import re
import sys
from types import FrameType

import pytest

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lsp_server.completion import (HEALING_CONTEXT_CHARS, budgets, complete, fitting_infill_prompt, healing_text,
                                   inside_a_word, line_around, prepare, recall_tokens)
from lsp_server.context import FimContext
from lsp_server.settings import Settings
from lsp_server.text import offset_at
from model.backend import Generation
from model.engine import Engine
from model.loader import DEMO_MODEL_DIR, load_model
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
    ("", "")])
def test_healing_text_blanks(before: str, healed: str) -> None:
    assert healing_text(TOKENIZER, before) == healed
    assert healing_text(TOKENIZER, before, words=False) == healed


def test_healing_a_long_line_tokenizes_only_its_end(monkeypatch: pytest.MonkeyPatch) -> None:
    # The cursor at the end of a 240 KB minified line: the whole line was tokenized at every keystroke (~50 ms).
    line = "".join(f"var a{i}=function(b,c){{return b+c*{i}}};" for i in range(6_000)) + "var total = calcul"
    short = line[-HEALING_CONTEXT_CHARS:]
    assert healing_text(TOKENIZER, line) == healing_text(TOKENIZER, short) != ""
    tokenized: list[int] = []
    healing_tail = TOKENIZER.healing_tail
    monkeypatch.setattr(TOKENIZER, "healing_tail", lambda s: tokenized.append(len(s)) or healing_tail(s))
    healing_text(TOKENIZER, line)
    assert tokenized == [HEALING_CONTEXT_CHARS]


@pytest.mark.parametrize("before", ["    path = os.pa", "    return self.na", "x = calcul", "    return",
                                    "x = (", "foo(a, b)", "        self.", "    return data["])
def test_healing_text_takes_back_whole_tokens_of_the_line(before: str) -> None:
    healed = healing_text(TOKENIZER, before)
    # Leaving the healed tail out of the prompt removes the line's last tokens, whole.
    assert healed.strip() and before.endswith(healed)
    tokens = TOKENIZER.encode_infilling(before)
    kept = TOKENIZER.encode_infilling(before[:len(before) - len(healed)])
    assert kept == tokens[:len(kept)] and len(kept) < len(tokens)
    assert healing_text(TOKENIZER, before, words=False) == ""


@pytest.mark.parametrize("before,healed", [
    # The demo vocabulary spells these words' beginnings in several pieces (`▁se` `l`, `▁F` `a`, `▁new` `he`
    # `a`, `Ex` `ce` `p` `ti` `o`). Healing the last piece alone left a fragment in the prompt (`rc = se`,
    # `dest, F`), where the demo model wrote `self` as `sel` + nothing, `False` as `Factory)`.
    ("        rc = sel", " sel"), ("            setattr(values, dest, Fa", " Fa"),
    ("        self._headers = newhea", "hea"), ("class HierarchyRequestErr(DOMExceptio", "Exceptio"),
    ("    descripti", "descripti"), ("    path = os.pa", "pa"),
    # Back only as far as one piece can still spell it: no piece begins with `ate_`, so `frobnicate` stays in
    # the prompt as the document spells it, and the n-gram cache still matches it (and copies the name).
    ("total = frobnicate_", "_"),
])
def test_healing_text_takes_back_the_tokens_one_piece_can_rewrite(before: str, healed: str) -> None:
    assert healing_text(TOKENIZER, before) == healed


@pytest.mark.parametrize("before", ["x = calcul", "digest = " + "a3f9" * 20, "        return self.na", "f(x) + g("])
def test_the_healed_tail_begins_a_piece_and_is_whole_tokens(before: str) -> None:
    healed = healing_text(TOKENIZER, before)
    texts = [t for t in TOKENIZER.piece_texts() if t]
    assert healed and any(t.startswith(healed) for t in texts)
    # One token more would not: the tail is the longest that a single piece can write back.
    tokens = TOKENIZER.encode_infilling(before)
    kept = TOKENIZER.encode_infilling(before[:len(before) - len(healed)])
    longer = TOKENIZER.sp.id_to_piece(kept[-1]).replace("▁", " ") + healed
    assert not any(t.startswith(longer) for t in texts)
    assert kept == tokens[:len(kept)]


def test_recall_is_the_document_outside_the_windows_nearest_lines_first() -> None:
    lines = [f"line_{i} = {i}" for i in range(10)]
    text = "\n".join(lines)
    windows = FimContext(prefix="", suffix="", prefix_start_line=4, suffix_end_line=6)  # lines 4-6 are the prompt's
    outside = lines[:4] + lines[7:]
    assert list(recall_tokens(TOKENIZER, text, windows)) == TOKENIZER.encode_infilling("\n".join(outside) + "\n")
    per_line = len(TOKENIZER.encode_infilling(lines[0] + "\n"))  # the same for every line here
    # Room for three lines: the two nearest above and the nearest below, taken turn about.
    assert list(recall_tokens(TOKENIZER, text, windows, limit=3 * per_line + 1)) == TOKENIZER.encode_infilling(
        "\n".join([lines[2], lines[3], lines[7]]) + "\n")
    # When one side runs out, the other has the rest of the room.
    assert list(recall_tokens(TOKENIZER, text, FimContext("", "", 0, 5), limit=2 * per_line)) == \
        TOKENIZER.encode_infilling(lines[6] + "\n" + lines[7] + "\n")
    assert list(recall_tokens(TOKENIZER, text, FimContext("", "", 0, 9))) == []


def test_recall_leaves_out_long_lines() -> None:
    blob = "x = '" + "A" * 5_000_000 + "'"  # tokenizing it would take seconds, for nothing worth copying
    text = "\n".join(["name_above = 1", blob, "", "cursor", "name_below = 2"])
    recalled = list(recall_tokens(TOKENIZER, text, FimContext("", "", 3, 3)))
    assert TOKENIZER.decode(recalled) == "name_above = 1\n\n\nname_below = 2\n"


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


def test_generation_stops_where_the_model_copies_the_other_files_framing() -> None:
    model, tokenizer = load_model(None, device=torch.device("cpu"), dtype=torch.float32, quant="none")
    engine = Engine(model, tokenizer, context_length=1024)
    extra = "# Path: /p/util.py\nVALUE = 1\n\n"
    for text, healed, indent in (("x = 1\n", "", ""), ("def f():\n    return ", " ", "    ")):
        prepared = prepare(engine, text, len(text), Settings(line_policy="multi"), extra=extra)
        assert prepared is not None and prepared.healed == healed
        assert not prepared.stop(f"{healed}y = 2\n{indent}")
        assert prepared.stop(f"{healed}y = 2\n{indent}# Path: ")  # as soon as the header's start is written
        assert not prepared.stop(f"{healed}y = 2\n{indent}# Pathological")


def test_extra_context_budget_leaves_room_for_the_document() -> None:
    from lsp_server.settings import extra_budget
    assert extra_budget(Settings(), 16384) == Settings().extra_context_tokens  # the default is untouched
    assert extra_budget(Settings(), 1024) == 256  # the demo model's context: still the default
    # A budget the model's context cannot hold left no room for any prompt: no completion, ever.
    assert extra_budget(Settings(extra_context_tokens=4000), 1024) == (1024 - 96 - 8) // 2


class CannedBackend:
    """A backend whose model always answers `text` (stopped as `stop_reason` says), for the shaping of the
    completion path without a model."""

    def __init__(self, text: str, stop_reason: str) -> None:
        self.tokenizer, self.context_length, self.recalls = TOKENIZER, 4096, False
        self.text, self.stop_reason = text, stop_reason

    def generate(self, prompt: list[int], **kwargs: object) -> Generation:
        return Generation([], self.text, self.stop_reason)


def test_a_single_line_suggestion_that_loops_to_its_line_break_is_cut_to_one_copy() -> None:
    # The demo model's answer in a docstring (`eval --seed 1`): generation stopped at the line break, and the
    # loop check, which looked at the end of the text, saw the break and let all five copies through.
    text = 'def f(msg):\n    """Iterate.\n\n    Optional de\n    """\n'
    offset = text.index("Optional de") + len("Optional de")
    engine = CannedBackend(" ders the string to the string to the string to the string to the string to the\n",
                           "stop")
    suggestion = complete(engine, text, offset, Settings(line_policy="single"), timed=False)  # type: ignore[arg-type]
    assert suggestion is not None and suggestion.text == "rs the string to the"


def test_a_multi_line_suggestion_cut_by_its_budget_in_a_repeated_block_shows_the_block_once() -> None:
    text = "def prune(options):\n    for option in options:\n        \n    return options\n"
    offset = text.index("        \n") + 8
    block = "if not option.names:\n            options.remove(option)\n"
    engine = CannedBackend(block + "        " + block + "        if", "max_tokens")
    suggestion = complete(engine, text, offset, Settings(line_policy="auto"), timed=False)  # type: ignore[arg-type]
    assert suggestion is not None and suggestion.text == block.rstrip("\n")


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(["a = 1", "", "b", "\r", "\n", "\r\n"]), max_size=14).map("".join), st.data())
def test_recall_is_the_lines_outside_the_windows_in_any_line_breaks(text: str, data: st.DataObject) -> None:
    lines = re.split(r"\r\n|\r|\n", text)
    start = data.draw(st.integers(0, len(lines) - 1))
    end = data.draw(st.integers(start, len(lines) - 1))
    # The cursor anywhere in the windows' lines (never inside a CRLF).
    offset = data.draw(st.integers(offset_at(text, start, 0), offset_at(text, end, 99)))
    if 0 < offset < len(text) and text[offset - 1:offset + 1] == "\r\n":
        offset -= 1
    outside = lines[:start] + lines[end + 1:]
    expected = TOKENIZER.encode_infilling("".join(line + "\n" for line in outside)) if outside else []
    assert list(recall_tokens(TOKENIZER, text, FimContext("", "", start, end), offset=offset)) == expected


def test_recall_while_typing_in_a_big_file_splits_nothing() -> None:
    # Each completion asks for the recall: splitting the 20,000 lines of the file to see that the text outside the
    # windows had not changed cost milliseconds, on the model's thread, before every generation.
    lines = [f"    value_{i} = compute({i})" for i in range(20_000)]
    windows = FimContext("", "", 18_950, 19_050)
    before = "\n".join(lines)
    recall_tokens(TOKENIZER, before, windows, offset=before.index("value_19000"))
    text = before.replace("value_19000", "value_19000 + x")  # typed in the windows
    splits: list[int] = []

    def profile(frame: FrameType, event: str, arg: object) -> None:
        if event == "c_call" and getattr(arg, "__name__", "") == "split":
            splits.append(len(getattr(arg, "__self__", "")) if isinstance(getattr(arg, "__self__", ""), str) else -1)

    sys.setprofile(profile)
    try:
        recalled = recall_tokens(TOKENIZER, text, windows, offset=text.index("value_19000"))
    finally:
        sys.setprofile(None)
    assert splits == []
    assert recalled == recall_tokens(TOKENIZER, before, windows, offset=0)
