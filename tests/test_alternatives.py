"""Alternatives (several suggestions for a request the user makes): each begins with another of the model's
likeliest first tokens, shares the prompt's prefill, and comes out different after shaping."""

from __future__ import annotations

import pytest
import torch

from lsp_server.completion import complete, complete_alternatives
from lsp_server.settings import Settings
from model.engine import Engine, ranked_choice
from model.healing import PieceIndex
from model.loader import load_model
from model.tokenizer import infill_prompt

CPU = torch.device("cpu")
SHAPES = "import math\n\n\ndef circle_area(radius):\n    return math.pi * radius ** 2\n\n\ndef ring_area(outer, inner):\n"
INF = float("-inf")


@pytest.fixture(scope="module")
def engine() -> Engine:
    model, tok = load_model(None, device=CPU, dtype=torch.float32, quant="none")
    return Engine(model, tok, context_length=1024)


def test_ranked_choice_counts_only_possible_tokens_that_are_not_excluded() -> None:
    scores = torch.tensor([0.5, 3.0, INF, 2.0, 1.0, INF])
    assert [ranked_choice(scores, r, frozenset()) for r in range(5)] == [1, 3, 4, 0, None]
    assert [ranked_choice(scores, r, frozenset({1, 4})) for r in range(3)] == [3, 0, None]


@torch.inference_mode()
def test_an_alternative_begins_with_the_next_likeliest_first_token(engine: Engine) -> None:
    tok = engine.tokenizer
    prompt = infill_prompt(tok, SHAPES + "    return ", "\n", "spm")
    engine.reset_cache()
    logits = engine.stepper(prompt, 0)[-1]
    ranked = [t for t in logits.argsort(descending=True).tolist() if t not in tok.stop_ids][:3]
    engine.reset_cache()
    greedy = engine.generate(prompt, max_new_tokens=8)
    assert greedy.tokens and greedy.tokens[0] == ranked[0]  # rank 0 is the model's own choice when it writes
    for rank, first in enumerate(ranked):
        branch = engine.generate(prompt, max_new_tokens=8, first_rank=rank)
        assert branch.tokens[0] == first
        assert branch.timings.cached_tokens == len(prompt) - 1  # the prompt's prefill is shared
        # After its first token, an alternative goes on as the model would after that token.
        engine.reset_cache()
        rest = engine.generate(prompt + [first], max_new_tokens=7)
        assert branch.tokens[1:] == rest.tokens[:len(branch.tokens) - 1]


def test_alternatives_of_a_healed_prompt_all_agree_with_the_healed_text(engine: Engine) -> None:
    tok = engine.tokenizer
    prompt = infill_prompt(tok, SHAPES + "    return", "\n", "spm")
    allowed = set(PieceIndex(tok).allowed(" "))
    firsts = [engine.generate(prompt, max_new_tokens=4, constraint=" ", first_rank=r).tokens[0] for r in range(4)]
    assert len(set(firsts)) == 4 and set(firsts) <= allowed
    # Past the last token that fits the constraint, an alternative is empty and says why.
    few = PieceIndex(tok).allowed(" xyzzy")  # " " and " x" in the demo vocabulary
    assert 1 <= len(few) <= 4
    none = engine.generate(prompt, max_new_tokens=4, constraint=" xyzzy", first_rank=len(few))
    assert (none.tokens, none.text, none.stop_reason) == ([], "", "eos")


def test_complete_alternatives_are_different_and_the_first_is_the_best(engine: Engine) -> None:
    text = SHAPES + "    return \n"
    offset = len(text) - 1
    settings = Settings()
    alternatives = complete_alternatives(engine, text, offset, settings, 3)
    assert len(alternatives) == 3
    assert len({a.text for a in alternatives}) == 3 and all(a.text for a in alternatives)
    best = complete(engine, text, offset, settings, timed=False)
    assert best is not None and alternatives[0].text == best.text
    assert [a.text for a in complete_alternatives(engine, text, offset, settings, 1)] == [best.text]


def test_alternatives_stop_when_cancelled(engine: Engine) -> None:
    calls = []

    def cancel() -> bool:
        calls.append(1)
        return len(calls) > 1  # after the first alternative's first token

    text = SHAPES + "    return \n"
    assert complete_alternatives(engine, text, len(text) - 1, Settings(), 3, cancel=cancel) == []
