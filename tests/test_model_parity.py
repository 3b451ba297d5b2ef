"""Our Transformer/Engine against transformers' LlamaForCausalLM, KV-cache and prefix-cache consistency,
cooperative stopping, and the config formulas."""

from __future__ import annotations

import dataclasses
import json
import shutil
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from model import backend as backend_mod
from model import engine as engine_mod
from model.checkpoint import save_hf, save_meta
from model.config import ModelArgs
from model.engine import Engine
from model.llama import Transformer
from model.loader import load_model
from model.tokenizer import Tokenizer, infill_prompt
from tests.tiny import corpus, random_state, tiny_args

transformers = pytest.importorskip("transformers")

CPU = torch.device("cpu")
PREFIX = "def add(a, b):\n    "
SUFFIX = "\n\nprint(add(1, 2))\n"


def whole(tok: Tokenizer) -> dict[str, object]:
    """Generate's arguments for a generation the reference's length: a decode of the caller's own, so that it
    goes on past bytes that are no text (a random model writes plenty), where it would end by default."""
    return {"decode": tok.decode_infilling}


CODE = "import json\n\nclass Config:\n    def __init__(self, path):\n        self.data = json.load(open(path))\n"


def ours(path: Path) -> Transformer:
    model, _ = load_model(str(path), device=CPU, dtype=torch.float32, quant="none")
    return model


def theirs(path: Path) -> torch.nn.Module:
    return transformers.LlamaForCausalLM.from_pretrained(str(path), dtype=torch.float32).eval()


def hf_twin(out: Path, tokenizer_path: Path, args: ModelArgs, state: dict[str, torch.Tensor]) -> Path:
    save_hf(state, args, out)
    shutil.copy(tokenizer_path, out / "tokenizer.model")
    return out


@pytest.fixture(scope="module")
def tok(tokenizer_path: Path) -> Tokenizer:
    return Tokenizer(tokenizer_path)


@pytest.fixture(scope="module")
def long_ids(tok: Tokenizer) -> list[int]:
    ids = tok.encode("\n".join(corpus(3)), bos=True, eos=False)
    assert len(ids) > 400
    return ids


@pytest.fixture(scope="module")
def eot_checkpoint(tmp_path_factory: pytest.TempPathFactory, tokenizer_path: Path, tok: Tokenizer) -> Path:
    """A random model whose <EOT> logit is boosted, so greedy infilling ends with <EOT> after a few tokens."""
    args = tiny_args(tok.n_words)
    state = random_state(args, seed=0)
    state["output.weight"][tok.eot_id] *= 2.0
    return hf_twin(tmp_path_factory.mktemp("eot"), tokenizer_path, args, state)


@pytest.mark.parametrize(("layout", "gqa", "shards"), [
    ("hf", False, 1), ("hf", True, 1), ("hf", False, 2), ("hf", True, 2),
    ("meta", False, 1), ("meta", False, 2), ("meta", True, 2),
])
@torch.inference_mode()
def test_logits_match_transformers(checkpoint_factory, tokenizer_path: Path, tok: Tokenizer, tmp_path: Path,
                                   layout: str, gqa: bool, shards: int) -> None:
    path = checkpoint_factory(layout, gqa=gqa, shards=shards)
    model = ours(path)
    expected_args = tiny_args(tok.n_words, gqa=gqa)
    if layout == "hf":
        assert model.args == expected_args
        reference = theirs(path)  # transformers reads the very same files
    else:
        # Meta's params.json carries no context length; everything else must match.
        assert dataclasses.replace(model.args, max_seq_len=expected_args.max_seq_len) == expected_args
        reference = theirs(hf_twin(tmp_path / "twin", tokenizer_path, expected_args,
                                   random_state(expected_args, seed=0)))
    idx = torch.tensor([tok.encode(CODE, bos=True, eos=False)])
    assert idx.shape[1] > 30
    got = model(idx)
    want = reference(idx).logits
    assert got.shape == want.shape == (1, idx.shape[1], tok.n_words)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    assert got.abs().max() > 0.1  # not trivially all-zero


def as_pytorch_bin(source: Path, out: Path, shards: int) -> Path:
    """`source` (an HF safetensors checkpoint) as transformers 4 saved it with safe_serialization=False, which
    Code Llama's own convert_to_hf.py asks for by default: pytorch_model.bin, or shards and their index."""
    from safetensors.torch import load_file
    out.mkdir()
    for name in ("config.json", "tokenizer.model"):
        shutil.copy(source / name, out / name)
    tensors = {}
    for file in sorted(source.glob("*.safetensors")):
        tensors |= load_file(str(file))
    if shards == 1:
        torch.save(tensors, out / "pytorch_model.bin")
        return out
    names, weight_map = list(tensors), {}
    for s in range(shards):
        file = f"pytorch_model-{s + 1:05d}-of-{shards:05d}.bin"
        torch.save({n: tensors[n] for n in names[s::shards]}, out / file)
        weight_map |= {n: file for n in names[s::shards]}
    (out / "pytorch_model.bin.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return out


@pytest.mark.parametrize("shards", [1, 3])
@torch.inference_mode()
def test_pytorch_bin_checkpoints_match_transformers(checkpoint_factory, tok: Tokenizer, tmp_path: Path,
                                                    shards: int) -> None:
    """Before: refused ("convert them to safetensors"), though it is what Code Llama's converter writes."""
    source = checkpoint_factory("hf", gqa=True)
    path = as_pytorch_bin(source, tmp_path / "bin", shards)
    idx = torch.tensor([tok.encode(CODE, bos=True, eos=False)])
    torch.testing.assert_close(ours(path)(idx), theirs(source)(idx).logits, atol=1e-4, rtol=1e-4)


# How Meta's fairscale model parallelism splits each tensor, written out here independently of
# model.checkpoint (which uses one table both to save and to load, so a round trip cannot catch a wrong dim).
FAIRSCALE_SPLIT = {"tok_embeddings": 1,  # ParallelEmbedding: the embedding dimension
                   "wq": 0, "wk": 0, "wv": 0, "w1": 0, "w3": 0, "output": 0,  # ColumnParallelLinear
                   "wo": 1, "w2": 1}  # RowParallelLinear


@torch.inference_mode()
def test_meta_shards_split_like_fairscale(tokenizer_path: Path, tok: Tokenizer, tmp_path: Path) -> None:
    args = tiny_args(tok.n_words, gqa=True)
    state = random_state(args, seed=3)
    out = tmp_path / "meta"
    save_meta(state, args, out, multiple_of=32)  # params.json (and one shard we replace)
    for s in range(2):
        shard = {}
        for name, t in state.items():
            dim = FAIRSCALE_SPLIT.get(name.split(".")[-2])
            shard[name] = t.clone() if dim is None else t.chunk(2, dim=dim)[s].clone()
        torch.save(shard, out / f"consolidated.{s:02d}.pth")
    shutil.copy(tokenizer_path, out / "tokenizer.model")
    idx = torch.tensor([tok.encode(CODE, bos=True, eos=False)])
    reference = theirs(hf_twin(tmp_path / "twin", tokenizer_path, args, state))
    torch.testing.assert_close(ours(out)(idx), reference(idx).logits, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("mode", ["psm", "spm"])
@torch.inference_mode()
def test_greedy_infill_matches_transformers_until_eot(eot_checkpoint: Path, tok: Tokenizer, mode: str) -> None:
    model = ours(eot_checkpoint)
    engine = Engine(model, tok, context_length=256)
    got = engine.infill(PREFIX, SUFFIX, mode=mode, max_new_tokens=40, **whole(tok))
    prompt = infill_prompt(tok, PREFIX, SUFFIX, mode)  # type: ignore[arg-type]
    out = theirs(eot_checkpoint).generate(torch.tensor([prompt]), max_new_tokens=40, do_sample=False,
                                          eos_token_id=[tok.eot_id, tok.eos_id], pad_token_id=tok.eos_id)
    want = out[0, len(prompt):].tolist()
    assert want[-1] == tok.eot_id and len(want) > 3  # the reference really ends with <EOT>, mid-way
    assert got.stop_reason == "eot"
    assert got.tokens == want[:-1]
    assert got.text == tok.decode_infilling(want[:-1])
    assert got.timings.new_tokens == len(want) - 1
    assert got.timings.prompt_tokens == len(prompt)


@torch.inference_mode()
def test_greedy_generate_matches_transformers_gqa(checkpoint_factory, tok: Tokenizer) -> None:
    path = checkpoint_factory("hf", gqa=True, shards=2)
    prompt = infill_prompt(tok, PREFIX, SUFFIX)
    got = Engine(ours(path), tok, context_length=256).generate(prompt, max_new_tokens=24, **whole(tok))
    out = theirs(path).generate(torch.tensor([prompt]), max_new_tokens=24, do_sample=False,
                                eos_token_id=[tok.eot_id, tok.eos_id], pad_token_id=tok.eos_id)
    want = out[0, len(prompt):].tolist()
    assert got.stop_reason == "max_tokens" and len(want) == 24
    assert got.tokens == want


@pytest.mark.parametrize("gqa", [False, True])
@torch.inference_mode()
def test_kv_cached_decode_equals_full_forward(checkpoint_factory, long_ids: list[int], gqa: bool) -> None:
    path = checkpoint_factory("hf", gqa=gqa)
    ids = long_ids[:48]
    full = ours(path)(torch.tensor([ids]))  # no cache: plain causal attention
    cached = ours(path)
    cached.setup_caches(128)
    n = 20
    step = cached(torch.tensor([ids[:n]]), torch.arange(n), kv_len=n)
    torch.testing.assert_close(step, full[:, :n], atol=1e-4, rtol=1e-4)
    for pos in range(n, len(ids)):
        # Alternate the eager (kv_len) and static-shape (kv_len=None) attention paths.
        kv_len = pos + 1 if pos % 2 else None
        step = cached(torch.tensor([[ids[pos]]]), torch.tensor([pos]), kv_len=kv_len)
        assert step.shape == (1, 1, full.shape[-1])
        torch.testing.assert_close(step[0, 0], full[0, pos], atol=1e-4, rtol=1e-4)
    last = cached(torch.tensor([ids[:n]]), torch.arange(n), kv_len=n, last_only=True)
    assert last.shape == (1, 1, full.shape[-1])
    torch.testing.assert_close(last[0, 0], full[0, n - 1], atol=1e-4, rtol=1e-4)


# --- prefix cache ---------------------------------------------------------------------------------------


def _other_tokens(prompt: list[int], k: int, tok: Tokenizer) -> list[int]:
    """k ordinary tokens that differ position-wise from prompt's last k."""
    pool = tok.encode("zebra quux 42 ; lambda", bos=False, eos=False)
    out: list[int] = []
    for old in prompt[-k:]:
        out.append(next(t for t in pool if t != old and t not in out))
    return out


@torch.inference_mode()
def test_generation_stops_at_the_first_bytes_that_are_no_text(checkpoint_factory, tok: Tokenizer) -> None:
    """A random model soon writes a byte piece that is no UTF-8 (or a control character): the text ends before
    it for good, so generation stops there instead of running to its budget (the docstring writer has no
    deadline); what came before is what the whole generation begins with."""
    engine = Engine(ours(checkpoint_factory("hf", gqa=True, shards=2)), tok, context_length=256)
    prompt = infill_prompt(tok, PREFIX, SUFFIX)
    full = engine.generate(prompt, max_new_tokens=24, **whole(tok))
    first_bad = next(n for n in range(1, len(full.tokens) + 1) if tok.ends_in_bad_bytes(full.tokens[:n]))
    assert first_bad < 24  # the premise: this model writes bytes that are no text early on
    got = engine.generate(prompt, max_new_tokens=24)
    assert (got.stop_reason, got.tokens) == ("invalid", full.tokens[:first_bad])
    assert got.timings.new_tokens == first_bad and got.text == full.text[:len(got.text)]


@torch.inference_mode()
def test_prefix_cache_hit_equals_cold(checkpoint_factory, tok: Tokenizer, long_ids: list[int]) -> None:
    model = ours(checkpoint_factory("hf"))
    a = long_ids[:300]
    b = a[:-3] + _other_tokens(a, 3, tok)  # the user typed: same window, new last tokens
    warm = Engine(model, tok, context_length=512)
    first = warm.generate(a, max_new_tokens=8, **whole(tok))
    assert first.timings.cached_tokens == 0 and first.timings.new_tokens == 8
    hit = warm.generate(b, max_new_tokens=8, **whole(tok))
    assert hit.timings.cached_tokens == 297
    assert hit.timings.prompt_tokens == 300
    # A shorter prompt leaves stale K/V beyond it in the cache: they must be masked out.
    shorter = warm.generate(a[:250], max_new_tokens=8, **whole(tok))
    assert shorter.timings.cached_tokens == 249

    cold = Engine(model, tok, context_length=512)  # fresh, zeroed cache
    cold_b = cold.generate(b, max_new_tokens=8, **whole(tok))
    assert cold_b.timings.cached_tokens == 0
    assert hit.tokens == cold_b.tokens and hit.text == cold_b.text and len(hit.tokens) == 8
    cold.reset_cache()
    assert cold.generate(a[:250], max_new_tokens=8, **whole(tok)).tokens == shorter.tokens
    cold.reset_cache()
    assert cold.generate(a, max_new_tokens=8, **whole(tok)).tokens == first.tokens

    # Typing on after a completion: the prompt extends the previous prompt + generated tokens.
    warm.reset_cache()
    again = warm.generate(a, max_new_tokens=8, **whole(tok))
    assert again.tokens == first.tokens
    extended = a + again.tokens + _other_tokens(a, 2, tok)
    ext_hit = warm.generate(extended, max_new_tokens=8, **whole(tok))
    # The last generated token was sampled but never run through the model, so it is not cached.
    assert ext_hit.timings.cached_tokens == len(a) + len(again.tokens) - 1
    cold.reset_cache()
    assert cold.generate(extended, max_new_tokens=8, **whole(tok)).tokens == ext_hit.tokens

    # The very same request again: everything but the last prompt token comes from the cache.
    same = warm.generate(extended, max_new_tokens=8, **whole(tok))
    assert same.timings.cached_tokens == len(extended) - 1 and same.tokens == ext_hit.tokens


@torch.inference_mode()
def test_chunked_prefill_equals_single_pass(checkpoint_factory, tok: Tokenizer, long_ids: list[int],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    model = ours(checkpoint_factory("hf", gqa=True))
    prompt = long_ids[:400]
    single = Engine(model, tok, context_length=512).generate(prompt, max_new_tokens=8, **whole(tok))
    chunking = Engine(model, tok, context_length=512)
    chunking.prefill_chunk = 64
    chunked = chunking.generate(prompt, max_new_tokens=8, **whole(tok))
    assert chunked.tokens == single.tokens and len(single.tokens) == 8


@pytest.mark.parametrize(("pass_s", "token_s", "model"),
                         [(0.6, 0.08, "7B"), (0.2, 0.0093, "1B"), (0.004, 0.00017, "demo")])
@torch.inference_mode()
def test_a_cpu_prefill_chunk_lasts_about_eight_passes(checkpoint_factory, tok: Tokenizer, long_ids: list[int],
                                                      monkeypatch: pytest.MonkeyPatch, pass_s: float, token_s: float,
                                                      model: str) -> None:
    """The model thread is held a chunk at a time (a newer request, a cancel wait for it). A forward pass costs
    `pass_s` whatever its size plus `token_s` a token (a 7B on a laptop's CPU, a ~1B, the demo model; a fake clock):
    a chunk lasts about eight passes, so a 7B is held seconds (a fixed 512-token chunk: 30-60 s) while the reading
    is at most about an eighth slower than in the largest chunks."""
    weights = ours(checkpoint_factory("hf", gqa=True))
    prompt = long_ids[:400]
    single = Engine(weights, tok, context_length=512).generate(prompt, max_new_tokens=8, **whole(tok))
    now = [0.0]
    monkeypatch.setattr(engine_mod, "time", SimpleNamespace(perf_counter=lambda: now[0], monotonic=lambda: now[0]))
    forward = Transformer.forward
    chunks: list[int] = []

    def timed(self: Transformer, idx: torch.Tensor, *args: object, **kwargs: object) -> object:
        now[0] += pass_s + token_s * idx.shape[1]
        if idx.shape[1] > 1:  # prefill; decoding is one token at a time
            chunks.append(idx.shape[1])
        return forward(self, idx, *args, **kwargs)

    monkeypatch.setattr(Transformer, "forward", timed)
    engine = Engine(weights, tok, context_length=512)  # its warm-up times a pass
    chunks.clear()
    got = engine.generate(prompt, max_new_tokens=8, **whole(tok))
    assert got.tokens == single.tokens  # chunks of changing sizes read the same prompt
    assert got.timings.prefilled_tokens == len(prompt) and sum(chunks) == len(prompt)
    in_one = pass_s + token_s * len(prompt)  # the whole prompt in one 512-token chunk
    chunks.clear()
    engine.reset_cache()
    again = engine.generate(prompt, max_new_tokens=1)  # at the size learnt
    longest = pass_s + token_s * max(chunks)
    if model == "demo":  # chunks of eight passes would be ~30 ms: too short to matter, it takes the largest
        assert chunks == [400]
    else:
        one_token = pass_s + token_s  # a decoding step
        assert 7 * one_token <= longest <= 9 * one_token, chunks
        assert again.timings.prefill_ms / 1000 <= 1.25 * in_one, (chunks, again.timings.prefill_ms, in_one)
    if model == "7B":
        assert longest < 6, chunks  # was 400 tokens at once: 32.6 s


def test_the_cpu_engine_times_a_pass_at_warm_up(checkpoint_factory, tok: Tokenizer,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    now = [0.0]
    monkeypatch.setattr(engine_mod, "time", SimpleNamespace(perf_counter=lambda: now[0], monotonic=lambda: now[0]))
    forward = Transformer.forward

    def slow(self: Transformer, *args: object, **kwargs: object) -> object:
        now[0] += 3.0
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(Transformer, "forward", slow)
    engine = Engine(ours(checkpoint_factory("hf", gqa=True)), tok, context_length=512)
    assert engine.chunks is not None and engine.chunks.pass_s == 3.0


# --- stopping -------------------------------------------------------------------------------------------


@pytest.fixture()
def stop_setup(checkpoint_factory, tok: Tokenizer) -> tuple[Engine, list[int], list[int]]:
    """(engine, prompt, the 12 tokens an unstopped greedy generation gives)."""
    engine = Engine(ours(checkpoint_factory("hf")), tok, context_length=256)
    prompt = infill_prompt(tok, PREFIX, SUFFIX)
    full = engine.generate(prompt, max_new_tokens=12, **whole(tok))
    assert full.stop_reason == "max_tokens" and len(full.tokens) == 12
    engine.reset_cache()
    return engine, prompt, full.tokens


def test_stop_predicate_returns_partial_text(stop_setup, tok: Tokenizer) -> None:
    engine, prompt, ref = stop_setup
    seen: list[str] = []

    def stop(text: str) -> bool:
        seen.append(text)
        return len(seen) == 4

    got = engine.generate(prompt, max_new_tokens=12, stop=stop, **whole(tok))
    assert got.stop_reason == "stop"
    assert got.tokens == ref[:4]
    assert got.text == tok.decode_infilling(ref[:4])
    assert seen == [tok.decode_infilling(ref[:k]) for k in range(1, 5)]
    # The engine stays consistent after an early stop.
    assert engine.generate(prompt, max_new_tokens=12, **whole(tok)).tokens == ref


def test_cancel_flag_stops_generation(stop_setup, tok: Tokenizer) -> None:
    engine, prompt, ref = stop_setup
    flag = threading.Event()

    def decode(ids: list[int]) -> str:
        if len(ids) == 3:
            flag.set()  # e.g. the editor sent $/cancelRequest while token 3 was being produced
        return tok.decode_infilling(ids)

    got = engine.generate(prompt, max_new_tokens=12, cancel=flag.is_set, decode=decode)
    assert (got.stop_reason, got.tokens, got.text) == ("cancel", ref[:3], tok.decode_infilling(ref[:3]))
    # Cancelled before it starts: nothing is generated, even the prefill is skipped.
    engine.reset_cache()
    early = engine.generate(prompt, max_new_tokens=12, cancel=flag.is_set)
    assert (early.stop_reason, early.tokens, early.text) == ("cancel", [], "")
    assert early.timings.new_tokens == 0
    assert engine.generate(prompt, max_new_tokens=12, **whole(tok)).tokens == ref


def test_deadline_stops_generation(stop_setup, tok: Tokenizer, monkeypatch: pytest.MonkeyPatch) -> None:
    engine, prompt, ref = stop_setup
    now = [1000.0]
    # A fake monotonic clock for the engine and the stop rules it shares with every backend: time jumps past
    # the deadline while token 5 decodes.
    clock = SimpleNamespace(perf_counter=time.perf_counter, monotonic=lambda: now[0])
    monkeypatch.setattr(engine_mod, "time", clock)
    monkeypatch.setattr(backend_mod, "time", clock)

    def decode(ids: list[int]) -> str:
        if len(ids) == 5:
            now[0] = 1002.0
        return tok.decode_infilling(ids)

    got = engine.generate(prompt, max_new_tokens=12, deadline=1001.0, decode=decode)
    assert (got.stop_reason, got.tokens, got.text) == ("deadline", ref[:5], tok.decode_infilling(ref[:5]))
    late = engine.generate(prompt, max_new_tokens=12, deadline=999.0)
    assert (late.stop_reason, late.tokens, late.text) == ("deadline", [], "")


def test_a_prefill_cut_at_the_deadline_says_how_far_it_read(stop_setup, monkeypatch: pytest.MonkeyPatch) -> None:
    engine, prompt, ref = stop_setup
    now = [1000.0]
    monkeypatch.setattr(engine_mod, "time", SimpleNamespace(perf_counter=time.perf_counter, monotonic=lambda: now[0]))
    engine.prefill_chunk = 4
    step = engine.stepper

    def slow_step(tokens: list[int], start: int, **kwargs: object) -> object:
        now[0] += 0.6  # each chunk of the prompt takes 0.6 s of the 1 s budget
        return step(tokens, start, **kwargs)

    monkeypatch.setattr(engine, "stepper", slow_step)
    cut = engine.generate(prompt, max_new_tokens=12, deadline=1001.0)
    assert (cut.stop_reason, cut.tokens) == ("deadline", [])
    assert (cut.timings.prompt_tokens, cut.timings.cached_tokens, cut.timings.prefilled_tokens) == (len(prompt), 0, 8)
    assert cut.timings.prefill_ms > 0
    # What it read is kept: the next request reads on from there.
    monkeypatch.setattr(engine, "stepper", step)
    done = engine.generate(prompt, max_new_tokens=12, **whole(engine.tokenizer))
    assert done.tokens == ref and (done.timings.cached_tokens, done.timings.prefilled_tokens) == (8, len(prompt) - 8)


def test_context_limit_and_errors(checkpoint_factory, tok: Tokenizer, long_ids: list[int]) -> None:
    engine = Engine(ours(checkpoint_factory("hf")), tok, context_length=40)
    got = engine.generate(long_ids[:35], max_new_tokens=20, **whole(tok))
    assert (got.stop_reason, len(got.tokens)) == ("context", 5)
    with pytest.raises(ValueError, match="prompt of 40 tokens does not fit the context of 40"):
        engine.generate(long_ids[:40])
    with pytest.raises(ValueError, match="empty prompt"):
        engine.generate([])
    for budget in (0, -1):  # before: ran to the end of the context, then indexed the RoPE table past it
        with pytest.raises(ValueError, match=f"max_new_tokens must be at least 1, not {budget}"):
            engine.generate(long_ids[:5], max_new_tokens=budget)


# --- config ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("params", "hidden", "kv_heads"), [
    ({"dim": 4096, "n_layers": 32, "n_heads": 32, "multiple_of": 256, "ffn_dim_multiplier": 1.0}, 11008, 32),
    ({"dim": 4096, "n_layers": 32, "n_heads": 32, "multiple_of": 256}, 11008, 32),  # Llama 2 7B: no multiplier
    ({"dim": 5120, "n_layers": 40, "n_heads": 40, "multiple_of": 256, "ffn_dim_multiplier": 1.0}, 13824, 40),
    ({"dim": 8192, "n_layers": 48, "n_heads": 64, "n_kv_heads": 8, "multiple_of": 256,
      "ffn_dim_multiplier": 1.0}, 22016, 8),
    ({"dim": 8192, "n_layers": 80, "n_heads": 64, "n_kv_heads": 8, "multiple_of": 4096,
      "ffn_dim_multiplier": 1.3}, 28672, 8),  # Llama 2 / Code Llama 70B
])
def test_meta_hidden_dim_formula(params: dict[str, object], hidden: int, kv_heads: int) -> None:
    args = ModelArgs.from_meta_params({**params, "norm_eps": 1e-5, "rope_theta": 1e6}, vocab_size=32016)
    assert args.hidden_dim == hidden
    assert args.n_kv_heads == kv_heads and args.head_dim == 128
    assert args.vocab_size == 32016 and args.max_seq_len == 16384


def test_rope_theta_and_defaults_from_files() -> None:
    base = {"dim": 4096, "n_layers": 32, "n_heads": 32, "multiple_of": 256}
    assert ModelArgs.from_meta_params(base, 32016).rope_theta == 10000.0  # Llama 2 params.json
    assert ModelArgs.from_meta_params({**base, "rope_theta": 1000000}, 32016).rope_theta == 1e6
    # params.json's own count wins (open_checkpoint judges it against the tokenizer's: a fine-tune's has more)
    assert ModelArgs.from_meta_params({**base, "vocab_size": 32064}, 32016).vocab_size == 32064
    assert ModelArgs.from_meta_params({**base, "vocab_size": -1}, 32016).vocab_size == 32016

    hf = ModelArgs(vocab_size=32016).to_hf_config()
    assert ModelArgs.from_hf_config(hf) == ModelArgs(vocab_size=32016)
    nested = {k: v for k, v in hf.items() if k != "rope_theta"} | {"rope_parameters": {"rope_theta": 5e5,
                                                                                       "rope_type": "default"}}
    assert ModelArgs.from_hf_config(nested).rope_theta == 5e5  # transformers >= 5 layout
    bare = {k: v for k, v in hf.items() if k != "rope_theta"}
    assert ModelArgs.from_hf_config(bare).rope_theta == 10000.0
    with pytest.raises(ValueError, match="rope_scaling .* is not supported"):
        ModelArgs.from_hf_config(hf | {"rope_scaling": {"rope_type": "linear", "factor": 2.0}})
    with pytest.raises(ValueError, match="unsupported model_type 'mistral'"):
        ModelArgs.from_hf_config(hf | {"model_type": "mistral"})


@pytest.mark.parametrize("rope", [{"rope_type": "linear", "factor": 4.0}, {"rope_type": "dynamic", "factor": 2.0}])
def test_rope_scaling_in_rope_parameters_is_refused(tokenizer_path: Path, tok: Tokenizer, tmp_path: Path,
                                                    rope: dict[str, object]) -> None:
    """transformers >= 5 writes the RoPE type beside rope_theta in rope_parameters; a linear one was loaded as
    plain RoPE (logits 0.05 off transformers', no error)."""
    config = transformers.LlamaConfig(hidden_size=64, intermediate_size=192, num_attention_heads=4,
                                      num_hidden_layers=1, vocab_size=tok.n_words,
                                      rope_parameters={**rope, "rope_theta": 1e6}, rope_scaling=None)
    transformers.LlamaForCausalLM(config).save_pretrained(tmp_path)
    shutil.copy(tokenizer_path, tmp_path / "tokenizer.model")
    with pytest.raises(ValueError, match=f"config.json: rope_parameters .*'{rope['rope_type']}'.* is not supported"):
        ours(tmp_path)


@pytest.mark.parametrize(("extra", "message"), [
    ({"attention_bias": True}, "attention_bias is true, but Code Llama's projections"),
    ({"mlp_bias": True}, "mlp_bias is true, but Code Llama's projections"),
    ({"hidden_act": "gelu"}, "hidden_act 'gelu' is not supported"),
    ({"head_dim": 32}, r"head_dim 32 is not hidden_size / num_attention_heads \(16\)"),
])
def test_llama_variants_this_model_does_not_compute_are_refused(tokenizer_path: Path, tok: Tokenizer,
                                                                tmp_path: Path, extra: dict[str, object],
                                                                message: str) -> None:
    """Checkpoints transformers writes for LlamaForCausalLM with biases or another activation loaded without
    them (logits 0.2 to 2.4 off transformers'); another head_dim failed on a tensor's shape, not its cause."""
    config = transformers.LlamaConfig(hidden_size=64, intermediate_size=192, num_attention_heads=4,
                                      num_hidden_layers=1, vocab_size=tok.n_words, **extra)
    transformers.LlamaForCausalLM(config).save_pretrained(tmp_path)
    shutil.copy(tokenizer_path, tmp_path / "tokenizer.model")
    with pytest.raises(ValueError, match=f"config.json: {message}"):
        ours(tmp_path)
    plain = ModelArgs(vocab_size=32016).to_hf_config()
    swish = plain | {"hidden_act": "swish", "attention_bias": False, "mlp_bias": False, "head_dim": 128}
    assert ModelArgs.from_hf_config(swish) == ModelArgs.from_hf_config(plain)  # the same model, spelled out
    with pytest.raises(ValueError, match="attention_bias must be true or false"):
        ModelArgs.from_hf_config(plain | {"attention_bias": "yes"})


@pytest.mark.parametrize("layout", ["hf", "meta"])
@torch.inference_mode()
def test_rope_theta_read_from_checkpoint(tokenizer_path: Path, tok: Tokenizer, tmp_path: Path,
                                         checkpoint_factory, layout: str) -> None:
    args = dataclasses.replace(tiny_args(tok.n_words), rope_theta=10000.0)
    state = random_state(args, seed=0)  # the same weights as the rope_theta=1e6 checkpoint
    out = tmp_path / layout
    if layout == "hf":
        save_hf(state, args, out)
    else:
        save_meta(state, args, out, multiple_of=32)
    shutil.copy(tokenizer_path, out / "tokenizer.model")
    model = ours(out)
    assert model.args.rope_theta == 10000.0
    idx = torch.tensor([tok.encode(CODE, bos=True, eos=False)])
    got = model(idx)
    reference = theirs(out if layout == "hf" else hf_twin(tmp_path / "twin", tokenizer_path, args, state))
    torch.testing.assert_close(got, reference(idx).logits, atol=1e-4, rtol=1e-4)
    # Same weights, other theta: the logits must change, or theta was never used.
    assert (got - ours(checkpoint_factory(layout))(idx)).abs().max() > 1e-2
