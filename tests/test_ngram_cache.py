"""The document n-gram cache: longest matches, follower counts, the mixture, and where its weights come from."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from model.engine import Engine
from model.loader import DEMO_MODEL_DIR, load_model
from model.ngram_cache import (DEFAULT_WEIGHTS, LONGEST_MATCH, MIN_MATCH, NgramCache, Recall, model_weights,
                               resolve_weights)
from model.tokenizer import infill_prompt


def reference_match(tokens: list[int]) -> tuple[int, Counter[int]] | None:
    """Brute force: for n from the longest down, the followers of every earlier occurrence of the last n tokens."""
    for n in range(min(LONGEST_MATCH, len(tokens) - 1), MIN_MATCH - 1, -1):
        tail = tokens[-n:]
        followers = Counter(tokens[p] for p in range(n, len(tokens)) if tokens[p - n:p] == tail)
        if followers:
            return n, followers
    return None


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 4), max_size=60))
def test_the_match_is_the_longest_earlier_occurrence_with_every_follower_counted(tokens: list[int]) -> None:
    grown = NgramCache([], DEFAULT_WEIGHTS)
    for t in tokens:  # built token by token as the engine does, and all at once
        grown.extend([t])
    assert grown.match() == NgramCache(tokens, DEFAULT_WEIGHTS).match() == reference_match(tokens)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 3), max_size=60), st.lists(st.integers(0, 3), max_size=40))
def test_a_recall_is_the_start_of_the_sequence(recalled: list[int], tokens: list[int]) -> None:
    # Matches inside the recall, inside the prompt, and across the seam are all found, and counted together.
    grown = NgramCache([], DEFAULT_WEIGHTS, recall=Recall(recalled))
    for t in tokens:
        grown.extend([t])
    assert grown.match() == NgramCache(tokens, DEFAULT_WEIGHTS, recall=Recall(recalled)).match()
    assert grown.match() == reference_match(recalled + tokens)


def test_a_longer_match_outweighs_the_commoner_follower() -> None:
    # "a b c" was followed by x once; "b c" alone by y three times: the 3-gram decides.
    a, b, c, x, y = 1, 2, 3, 4, 5
    cache = NgramCache([a, b, c, x, 9, b, c, y, 9, b, c, y, 9, b, c, y, 9, a, b, c], DEFAULT_WEIGHTS)
    assert cache.match() == (3, Counter({x: 1}))


def test_the_mixture_copies_where_the_model_hesitates_and_not_where_it_is_sure() -> None:
    cache = NgramCache([1, 2, 3, 7, 7, 1, 2], DEFAULT_WEIGHTS)  # "1 2" was followed by 3
    unsure = torch.zeros(10)
    unsure[5] = 0.5  # the model leans to 5, barely
    assert int(cache.mix(unsure).argmax()) == 3
    sure = torch.zeros(10)
    sure[5] = 8.0
    assert int(cache.mix(sure).argmax()) == 5
    mixed = cache.mix(unsure).exp()
    assert float(mixed.sum()) == pytest.approx(1.0)
    w = DEFAULT_WEIGHTS[0]
    assert float(mixed[3]) == pytest.approx(w + (1 - w) * float(torch.softmax(unsure, 0)[3]))


def test_masked_and_excluded_tokens_are_never_proposed() -> None:
    logits = torch.zeros(10)
    logits[3] = float("-inf")  # token healing ruled 3 out
    cache = NgramCache([1, 2, 3, 1, 2, 4, 1, 2], DEFAULT_WEIGHTS)
    mixed = cache.mix(logits)
    assert mixed[3] == float("-inf") and int(mixed.argmax()) == 4
    only_masked = torch.zeros(10)
    only_masked[4] = only_masked[3] = float("-inf")
    assert cache.mix(only_masked) is only_masked  # nothing allowed to copy: the model's logits unchanged
    # Excluded followers (control tokens, line breaks) are never proposed; when the longest match was only
    # followed by them, a shorter match does not stand in: the model chooses alone.
    newline = 9
    cache = NgramCache([7, 1, 2, newline, 1, 2, 4, 7, 1, 2], DEFAULT_WEIGHTS, exclude={newline})
    assert cache.match() == (3, Counter({newline: 1}))
    assert cache.mix(logits) is logits
    cache = NgramCache([1, 2, newline, 1, 2, 4, 1, 2], DEFAULT_WEIGHTS, exclude={newline})
    assert int(cache.mix(torch.zeros(10)).argmax()) == 4
    assert NgramCache([5, 6, 7], DEFAULT_WEIGHTS).mix(logits) is logits  # no earlier occurrence


def write_config(tmp_path: Path, content: str) -> Path:
    (tmp_path / "generation_config.json").write_text(content)
    return tmp_path


def test_weights_come_from_the_model_directory_or_the_setting(tmp_path: Path) -> None:
    assert model_weights(DEMO_MODEL_DIR) == DEFAULT_WEIGHTS  # the demo model asks for the cache
    assert resolve_weights("auto", DEMO_MODEL_DIR) == DEFAULT_WEIGHTS
    assert resolve_weights("off", DEMO_MODEL_DIR) == ()
    assert resolve_weights("auto", tmp_path) == ()  # a model that does not ask (Code Llama's own files)
    assert resolve_weights("on", tmp_path) == DEFAULT_WEIGHTS
    write_config(tmp_path, json.dumps({"bos_token_id": 1, "eos_token_id": 2}))
    assert resolve_weights("auto", tmp_path) == ()
    write_config(tmp_path, json.dumps({"ngram_cache_weights": [0.5, 0.25]}))
    assert resolve_weights("on", tmp_path) == (0.5, 0.25)


@pytest.mark.parametrize("content, complaint", [
    ("{not json", "not a JSON object"),
    ("[1, 2]", "not a JSON object"),
    (json.dumps({"ngram_cache_weights": 0.3}), "'ngram_cache_weights' must be a list"),
    (json.dumps({"ngram_cache_weights": [0.3, 1.0]}), "from 0 to 1 (1 excluded)"),
    (json.dumps({"ngram_cache_weights": [True]}), "must be a list"),
])
def test_a_bad_generation_config_is_named_with_its_key(tmp_path: Path, content: str, complaint: str) -> None:
    write_config(tmp_path, content)
    with pytest.raises(ValueError, match="generation_config.json") as e:
        resolve_weights("auto", tmp_path)
    assert complaint in str(e.value)
    with pytest.raises(ValueError, match="ngramCache must be one of auto, on, off"):
        resolve_weights("sometimes", tmp_path)


@torch.inference_mode()
def test_the_engine_copies_a_name_the_demo_model_alone_gets_wrong() -> None:
    model, tok = load_model(None, device=torch.device("cpu"), dtype=torch.float32, quant="none")
    alone = Engine(model, tok, context_length=512)
    copying = Engine(model, tok, context_length=512, ngram_cache=DEFAULT_WEIGHTS)
    assert copying.describe()["ngram_cache"] == list(DEFAULT_WEIGHTS)
    prefix = ("def frobnicate_widget_count(widgets):\n    return len(widgets)\n\n\n"
              "total = frobnicate_widget_count(parts) + frobnicate_")
    prompt = infill_prompt(tok, prefix, "\n", "spm")
    stop = lambda text: "\n" in text or "(" in text  # noqa: E731
    assert copying.generate(prompt, max_new_tokens=12, stop=stop).text.startswith("widget_count(")
    assert not alone.generate(prompt, max_new_tokens=12, stop=stop).text.startswith("widget_count(")
