"""Fixed-shape steps (what CUDA graphs replay) against eager forwards, and prompt-lookup decoding against
plain greedy decoding, on the CPU."""

from __future__ import annotations

import pytest
import torch

from model.config import ModelArgs
from model.engine import Engine
from model.llama import Transformer
from model.loader import load_model
from model.ngram_cache import DEFAULT_WEIGHTS
from model.speculate import PromptLookup
from model.steppers import EagerStepper, StaticStepper, kv_buckets, make_stepper
from model.tokenizer import infill_prompt
from tests.tiny import tiny_args

CPU = torch.device("cpu")


def test_kv_buckets_cover_the_cache_in_small_steps() -> None:
    for cache_len in (300, 512, 4096, 16384):
        buckets = kv_buckets(cache_len)
        assert buckets == sorted(set(buckets)) and buckets[-1] == cache_len and buckets[0] <= 256
        # Reading up to the next bucket costs at most a quarter more than the exact length (past 256).
        assert all(b / a <= 1.25 for a, b in zip(buckets, buckets[1:]))
    assert len(kv_buckets(16384)) <= 25


@torch.inference_mode()
def test_static_steps_equal_eager_forwards() -> None:
    torch.manual_seed(0)
    args = ModelArgs(**{**tiny_args(300, gqa=True).to_dict(), "max_seq_len": 1024})
    model = Transformer(args).eval()
    seq = torch.randint(0, 300, (590,)).tolist()
    model.setup_caches(600)
    reference = EagerStepper(model)(seq, 0, all_logits=True).clone()  # one causal prefill of everything
    model.setup_caches(600)
    stepper = StaticStepper(model, capture=False)
    stepper.warmup()
    pos, rows = 0, []
    # Step sizes that pad (3, 5, 7), fill (1, 2, 8, 16), fall back to eager (17, 300), cross buckets.
    for n in (20, 1, 3, 5, 16, 17, 1, 2, 300, 1, 7, 200, 8, 1):
        if pos + n > len(seq):
            break
        rows.append(stepper(seq[pos:pos + n], pos, all_logits=True).clone())
        pos += n
    assert pos > 500
    torch.testing.assert_close(torch.cat(rows), reference[:pos], rtol=1e-4, atol=1e-4)
    # Without all_logits a step returns its last position's row alone.
    last = stepper(seq[pos:pos + 3], pos)
    torch.testing.assert_close(last, reference[pos + 2:pos + 3], rtol=1e-4, atol=1e-4)


def test_a_second_engine_keeps_the_cache_that_the_first_ones_graphs_read() -> None:
    # CUDA graphs hold the addresses of the KV cache and rope table they were captured over. An Engine sets
    # the model's caches up: the same size again must keep those buffers, or an earlier engine's graphs
    # replay over freed memory (two engines on one model: tests/test_cuda.py's speculation test).
    model = Transformer(tiny_args(100)).eval()
    model.setup_caches(64)
    k, rope = model.layers[1].attention.kv_cache.k_cache, model.rope
    model.setup_caches(64)
    assert model.layers[1].attention.kv_cache.k_cache is k and model.rope is rope
    model.setup_caches(32)
    assert model.layers[1].attention.kv_cache.k_cache.shape[2] == 32 and model.rope.shape[0] == 32


class _Graph:
    """Stands in for a captured torch.cuda.CUDAGraph on the CPU."""

    replays = 0

    def replay(self) -> None:
        self.replays += 1


@torch.inference_mode()
def test_graphs_over_a_replaced_cache_are_refused() -> None:
    model = Transformer(tiny_args(100)).eval()
    model.setup_caches(300)
    stepper = StaticStepper(model, capture=False)
    graph, logits = _Graph(), torch.zeros(1, 100)
    stepper.graphs[(1, stepper.buckets[1][0])] = (graph, logits)
    stepper([5], 0)
    model.setup_caches(300)  # what another Engine of the same context does: the graph stays valid
    stepper([5], 1)
    assert graph.replays == 2
    model.setup_caches(200)  # new buffers: the graph would replay over freed memory
    with pytest.raises(RuntimeError, match="set up anew"):
        stepper([5], 2)
    assert graph.replays == 2


def test_make_stepper_picks_graphs_only_on_cuda() -> None:
    model = Transformer(tiny_args(100)).eval()
    model.setup_caches(64)
    assert isinstance(make_stepper(model), EagerStepper)
    with pytest.raises(ValueError, match="CUDA"):
        make_stepper(model, graphs=True)


def test_prompt_lookup_copies_the_longest_recent_match() -> None:
    tokens = [1, 2, 3, 4, 5, 9, 2, 3, 7, 8, 1, 2, 3]
    look = PromptLookup(tokens, ngram=3, min_ngram=2, max_draft=4)
    assert look.draft() == [4, 5, 9, 2]  # "1 2 3" occurred once before, followed by 4 5 9 2
    assert look.draft(2) == [4, 5]
    look.extend([4, 5, 6])
    assert look.draft() == []  # "4 5 6" and "5 6" never occurred before
    look.extend([2, 3])
    assert look.draft() == [4, 5, 6, 2]  # "6 2 3" is new; "2 3" last came before 4 5 6 2
    assert PromptLookup([1, 2], max_draft=0).draft() == []


@pytest.fixture(scope="module")
def demo() -> tuple[Transformer, object]:
    return load_model(None, device=CPU, dtype=torch.float32, quant="none")


CODE = '''import os


def walk(root):
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames:
            yield os.path.join(dirpath, name)


def sizes(root):
    total = 0
    for path in walk(root):
        total += os.path.getsize(path)
    return total


def count(root):
'''


@pytest.mark.parametrize("ngram_cache", [(), DEFAULT_WEIGHTS], ids=["model alone", "with n-gram cache"])
@torch.inference_mode()
def test_speculative_decoding_gives_greedy_decoding_output(demo, ngram_cache: tuple[float, ...]) -> None:
    model, tok = demo
    plain = Engine(model, tok, context_length=512, speculate=0, ngram_cache=ngram_cache)
    fast = Engine(model, tok, context_length=512, speculate=7, ngram_cache=ngram_cache)
    for cut in (len(CODE), CODE.index("total = 0"), CODE.index("os.path.join")):
        prompt = infill_prompt(tok, CODE[:cut], CODE[cut:], "spm")
        a = plain.generate(prompt, max_new_tokens=40)
        b = fast.generate(prompt, max_new_tokens=40)
        assert b.tokens == a.tokens and b.stop_reason == a.stop_reason
        assert b.timings.accepted_tokens <= b.timings.drafted_tokens
    assert fast.generate(infill_prompt(tok, CODE, "", "spm"), max_new_tokens=40).timings.accepted_tokens > 0
    # Stopping inside an accepted draft gives the same text as stopping there without drafts.
    prompt = infill_prompt(tok, CODE, "", "spm")
    for limit in (3, 7, 12):
        stop = (lambda n: lambda text: len(text) >= n)(limit)
        assert fast.generate(prompt, max_new_tokens=40, stop=stop).tokens == \
            plain.generate(prompt, max_new_tokens=40, stop=stop).tokens


@torch.inference_mode()
def test_cache_after_drafts_serves_the_next_request_exactly(demo) -> None:
    model, tok = demo
    engine = Engine(model, tok, context_length=512, speculate=7)
    prompt = infill_prompt(tok, CODE, "", "spm")
    first = engine.generate(prompt, max_new_tokens=30)
    assert first.timings.drafted_tokens > first.timings.accepted_tokens  # some drafts were rejected
    # Continue from the generated text: the cache holds prompt + accepted tokens, nothing rejected.
    follow = prompt + first.tokens[:20]
    warm = engine.generate(follow, max_new_tokens=10)
    assert warm.timings.cached_tokens >= len(prompt)
    engine.reset_cache()
    cold = engine.generate(follow, max_new_tokens=10)
    assert warm.tokens == cold.tokens
