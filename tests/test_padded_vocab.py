"""Fine-tunes whose embedding has more rows than tokenizer.model has pieces (a pad token added, the rows rounded
up to a multiple of 64): loaded with the rows the tokenizer has, the same model as before fine-tuning added them."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from model.checkpoint import save_meta
from model.engine import Engine
from model.loader import load_model
from model.tokenizer import Tokenizer, infill_prompt
from tests.tiny import random_state, tiny_args

transformers = pytest.importorskip("transformers")

CPU = torch.device("cpu")
CODE = "import json\n\nclass Config:\n    def __init__(self, path):\n        self.data = json.load(open(path))\n"
PROMPT = ("def add(a, b):\n    ", "\n\nprint(add(1, 2))\n")


def ours(path: Path) -> torch.nn.Module:
    return load_model(str(path), device=CPU, dtype=torch.float32, quant="none")[0]


def theirs(path: Path) -> torch.nn.Module:
    return transformers.LlamaForCausalLM.from_pretrained(str(path), dtype=torch.float32).eval()


def greedy(model: torch.nn.Module, tok: Tokenizer) -> list[int]:
    # A caller's own decode: generation goes on past bytes that are no text (a random model writes plenty).
    gen = Engine(model, tok, context_length=256).generate(infill_prompt(tok, *PROMPT), max_new_tokens=24,
                                                          decode=tok.decode_infilling)
    return gen.tokens


@pytest.fixture(scope="module")
def tok(tokenizer_path: Path) -> Tokenizer:
    return Tokenizer(tokenizer_path)


@pytest.fixture(scope="module")
def greedy_base(checkpoint_factory, tok: Tokenizer) -> list[int]:
    """The greedy infilling of the checkpoint before fine-tuning added rows."""
    return greedy(ours(checkpoint_factory("hf")), tok)


def tempting(rows: torch.Tensor, n_words: int, tokens: list[int]) -> None:
    """Make the output rows past `n_words` doubled copies of `tokens`' rows: a model that kept them would write
    them instead of the tokens it writes now (their logits are the largest, and positive)."""
    for k, t in enumerate(dict.fromkeys(tokens)):
        rows[n_words + k] = 2 * rows[t]


@pytest.fixture(scope="module")
def padded_hf(tmp_path_factory: pytest.TempPathFactory, checkpoint_factory, tok: Tokenizer,
              greedy_base: list[int]) -> Path:
    """The tiny checkpoint as transformers saves it after `resize_token_embeddings(n + 1, pad_to_multiple_of=64)`
    (a [PAD] token, 512 -> 576 rows), tokenizer.model left as it was."""
    out = tmp_path_factory.mktemp("padded-hf")
    model = theirs(checkpoint_factory("hf"))
    model.resize_token_embeddings(tok.n_words + 1, pad_to_multiple_of=64)
    with torch.no_grad():
        tempting(model.lm_head.weight, tok.n_words, greedy_base)
    model.save_pretrained(out)
    shutil.copy(checkpoint_factory("hf") / "tokenizer.model", out / "tokenizer.model")
    assert json.loads((out / "config.json").read_text())["vocab_size"] == 576
    return out


@torch.inference_mode()
def test_a_padded_hf_fine_tune_loads_as_the_model_it_was(padded_hf: Path, checkpoint_factory, tok: Tokenizer,
                                                         greedy_base: list[int],
                                                         caplog: pytest.LogCaptureFixture) -> None:
    """Before: refused ("the model's vocabulary (576) and tokenizer.model's (512) differ")."""
    with caplog.at_level(logging.INFO, logger="model.loader"):
        model = ours(padded_hf)
    assert [r.getMessage() for r in caplog.records] == [
        f"{padded_hf}: 64 embedding and output rows beyond tokenizer.model's 512 pieces dropped (ids 512-575, "
        "which the tokenizer never produces; the model cannot emit them now)"]
    assert model.args.vocab_size == tok.n_words
    for weight in (model.tok_embeddings.weight, model.output.weight):
        assert weight.shape == (tok.n_words, 64)
        assert weight.untyped_storage().nbytes() == tok.n_words * 64 * 4  # the dropped rows are not held
    idx = torch.tensor([tok.encode(CODE, bos=True, eos=False)])
    got = model(idx)
    reference = theirs(padded_hf)(idx).logits
    assert reference.shape[-1] == 576
    torch.testing.assert_close(got, reference[..., :tok.n_words], atol=1e-4, rtol=1e-4)
    assert torch.equal(got, ours(checkpoint_factory("hf"))(idx))  # the first 512 rows are the original's
    # The reference, free to pick any of the 576, writes an added row; ours writes what the model did before.
    assert theirs(padded_hf)(torch.tensor([infill_prompt(tok, *PROMPT)])).logits[0, -1].argmax() >= tok.n_words
    assert greedy(model, tok) == greedy_base and len(greedy_base) == 24


@pytest.mark.parametrize("shards", [1, 2])
@torch.inference_mode()
def test_a_padded_meta_checkpoint_loads_as_the_model_it_was(tmp_path: Path, tokenizer_path: Path,
                                                            checkpoint_factory, tok: Tokenizer, shards: int,
                                                            greedy_base: list[int]) -> None:
    """params.json vocab_size 576 over 512 pieces. Before: refused ("params.json vocab_size 576 != tokenizer
    vocabulary 512"). Two shards split the output projection by rows: the padded rows are all in the second."""
    state = random_state(tiny_args(tok.n_words))  # the weights checkpoint_factory("hf") holds (seed 0)
    for name in ("tok_embeddings.weight", "output.weight"):
        state[name] = torch.cat([state[name], torch.zeros(64, 64)])
    tempting(state["output.weight"], tok.n_words, greedy_base)
    save_meta(state, tiny_args(576), tmp_path, shards=shards, multiple_of=32)
    shutil.copy(tokenizer_path, tmp_path / "tokenizer.model")
    model = ours(tmp_path)
    assert model.output.weight.shape == model.tok_embeddings.weight.shape == (tok.n_words, 64)
    idx = torch.tensor([tok.encode(CODE, bos=True, eos=False)])
    torch.testing.assert_close(model(idx), ours(checkpoint_factory("hf"))(idx), atol=1e-5, rtol=1e-5)
    assert greedy(model, tok) == greedy_base


def test_the_command_line_completes_with_a_padded_fine_tune(padded_hf: Path, tmp_path: Path) -> None:
    """`codellama-lsp complete --model` as a user runs it; `serve` opens the checkpoint at start-up the same way
    (check_model). Before: "the model's vocabulary (576) and tokenizer.model's (512) differ", exit code 1."""
    doc = tmp_path / "area.py"
    doc.write_text("import math\n\n\ndef circle_area(r):\n    return math.pi * \n")
    result = subprocess.run([sys.executable, "-m", "lsp_server", "--log-level", "INFO", "complete", str(doc),
                             "--line", "4", "--character", "21", "--max-tokens", "4", "--model", str(padded_hf),
                             "--device", "cpu"], capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "64 embedding and output rows beyond tokenizer.model's 512 pieces dropped" in result.stderr
    assert "differ" not in result.stderr and "Traceback" not in result.stderr
