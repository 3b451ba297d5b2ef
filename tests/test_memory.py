"""Host memory on the CPU path: a model that cannot fit is refused before a tensor is read, with settings that
would fit; `auto` takes bfloat16 where float32 would not fit; loaded weights never stay mapped from the file."""

from __future__ import annotations

import gc
import shutil
import sys
from pathlib import Path

import pytest
import torch

from model.bench import SHAPES
from model.bench.fixtures import VOCAB
from model.checkpoint import PickledTensors
from model.config import ModelArgs
from model.engine import Engine
from model.loader import RUNTIME_BYTES, NotEnoughMemory, fit_in_memory, footprint_bytes, load_model

CPU = torch.device("cpu")
GiB = 1 << 30
CODE_LLAMA_7B = ModelArgs(vocab_size=VOCAB, norm_eps=1e-5, rope_theta=1e6, **SHAPES["7b"])


def test_footprint_is_what_the_loaded_model_holds(checkpoint_factory) -> None:
    model, tokenizer = load_model(str(checkpoint_factory("hf")), device=CPU, dtype=torch.float32, quant="none")
    engine = Engine(model, tokenizer, context_length=256)
    assert footprint_bytes(model.args, torch.float32, "none", 256) == engine.memory_bytes()


def test_code_llama_7b_footprints() -> None:
    """The figures the messages quote: 6.7B parameters, 25 GiB in float32, half in bf16, a quarter again in NF4."""
    assert footprint_bytes(CODE_LLAMA_7B, torch.float32, "none", 0) / GiB == pytest.approx(25.1, abs=0.1)
    assert footprint_bytes(CODE_LLAMA_7B, torch.bfloat16, "none", 0) / GiB == pytest.approx(12.55, abs=0.05)
    assert footprint_bytes(CODE_LLAMA_7B, torch.bfloat16, "none", 4096) / GiB == pytest.approx(14.55, abs=0.05)
    assert footprint_bytes(CODE_LLAMA_7B, torch.bfloat16, "nf4", 4096) / GiB == pytest.approx(5.88, abs=0.05)


def test_auto_is_float32_where_it_fits_and_bfloat16_where_only_that_does() -> None:
    fit = {"dtype": "auto", "quant": "none", "context_length": 4096}
    assert fit_in_memory(CODE_LLAMA_7B, **fit, available=None) == torch.float32  # unknown: nothing refused
    assert fit_in_memory(CODE_LLAMA_7B, **fit, available=40 * GiB) == torch.float32
    assert fit_in_memory(CODE_LLAMA_7B, **fit, available=22 * GiB) == torch.bfloat16  # a 24 GB machine


def test_float32_asked_for_is_refused_with_what_fits() -> None:
    with pytest.raises(NotEnoughMemory) as refused:
        fit_in_memory(CODE_LLAMA_7B, dtype="float32", quant="none", context_length=4096, available=22 * GiB)
    assert str(refused.value) == (
        "this 6.7B-parameter model (float32) needs about 30.1 GiB of memory (weights 25.1 GiB, KV cache of 4096 "
        "tokens 4.0 GiB, runtime 1.0 GiB), but 22.0 GiB is available: use --quant nf4 (about 9.4 GiB) or "
        "--dtype bfloat16 (about 15.6 GiB)")
    assert refused.value.setting == "quant"


def test_too_little_for_bfloat16_points_to_nf4() -> None:
    """Also with bfloat16 asked for: the same remedy is not offered twice."""
    with pytest.raises(NotEnoughMemory, match=r"available: use --quant nf4 \(about 9.4 GiB\) or --quant nf4 "
                                              r"--dtype bfloat16 \(about 6.9 GiB\)$") as refused:
        fit_in_memory(CODE_LLAMA_7B, dtype="auto", quant="none", context_length=4096, available=12 * GiB)
    assert refused.value.setting == "quant"
    with pytest.raises(NotEnoughMemory, match=r"available: use --quant nf4 \(about 6.9 GiB\) or --quant nf4 --dtype "
                                              r"bfloat16 --context-length 2048 \(about 5.9 GiB\)$"):
        fit_in_memory(CODE_LLAMA_7B, dtype="bfloat16", quant="none", context_length=4096, available=12 * GiB)


def test_nothing_fits() -> None:
    with pytest.raises(NotEnoughMemory, match="even 4-bit weights with a 2048-token cache would not fit") as refused:
        fit_in_memory(CODE_LLAMA_7B, dtype="auto", quant="none", context_length=4096, available=3 * GiB)
    assert refused.value.setting == "model"


def test_what_fits_exactly_is_not_refused() -> None:
    need = footprint_bytes(CODE_LLAMA_7B, torch.bfloat16, "nf4", 1024) + RUNTIME_BYTES
    assert fit_in_memory(CODE_LLAMA_7B, dtype="bfloat16", quant="nf4", context_length=1024,
                         available=need) == torch.bfloat16
    with pytest.raises(NotEnoughMemory):
        fit_in_memory(CODE_LLAMA_7B, dtype="bfloat16", quant="nf4", context_length=1024, available=need - 1)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
@pytest.mark.parametrize("layout", ["hf", "bin", "meta"])
def test_loaded_weights_are_not_views_of_the_checkpoint_file(checkpoint_factory, tmp_path: Path,
                                                             layout: str) -> None:
    """safetensors and torch.load(mmap=True) map their file and hand out views of it: weights kept as such views
    (those whose dtype needs no conversion) kept the file mapped, its pages counted in the process's RSS beside
    the copies of the rest. (pytorch_model.bin: a ~1B loaded as float16 had 1.1 GB of its 1.8 GB file-backed.)"""
    root = checkpoint_factory("meta" if layout == "meta" else "hf")
    if layout == "bin":  # the same weights as transformers' pytorch_model.bin
        from safetensors.torch import load_file
        shutil.copytree(root, tmp_path / "bin", ignore=shutil.ignore_patterns("*.safetensors*"))
        torch.save(load_file(str(root / "model.safetensors")), tmp_path / "bin" / "pytorch_model.bin")
        root = tmp_path / "bin"
    model, _ = load_model(str(root), device=CPU, dtype=torch.float32, quant="none")
    gc.collect()
    mapped = [line for line in Path("/proc/self/maps").read_text().splitlines() if str(root) in line]
    assert mapped == []
    del model


def test_pickled_tensors_are_read_into_their_own_memory(tmp_path: Path) -> None:
    """Views of one storage (tied weights, a slice saved as it was) each read their own bytes."""
    big = torch.arange(60, dtype=torch.float32).reshape(6, 10)
    path = tmp_path / "state.pth"
    torch.save({"big": big, "tied": big, "view": big[2:5, 3:], "row": big[4], "half": big.half()}, path)
    pickled = PickledTensors(path)
    assert pickled._base is not None  # the bytes are read from the file, not through the mapping
    mapping = {t.untyped_storage().data_ptr() for t in pickled.tensors.values()}
    want = {"big": big, "tied": big, "view": big[2:5, 3:], "row": big[4], "half": big.half()}
    for name, expected in want.items():
        got = pickled.get(name)
        assert torch.equal(got, expected) and got.dtype == expected.dtype, name
        assert got.untyped_storage().data_ptr() not in mapping


def test_pickled_tensors_are_read_from_their_own_records_whatever_else_the_file_holds(tmp_path: Path) -> None:
    """A storage that no tensor of the dict uses (one inside a value that is not a tensor) came first in the file,
    equally spaced from the others: every tensor was read from the record before its own (w1 held x's sevens)."""
    w1, w2 = torch.full((64,), 1.0), torch.full((64,), 2.0)
    path = tmp_path / "extra.pth"
    torch.save({"extra": {"x": torch.full((64,), 7.0)}, "w1": w1, "w2": w2}, path)
    pickled = PickledTensors(path)
    assert torch.equal(pickled.get("w1"), w1) and torch.equal(pickled.get("w2"), w2)
    path = tmp_path / "empty.pth"  # an empty storage's record has no pointer to match, and does not stop reading
    torch.save({"empty": torch.empty(0), "w1": w1, "w2": w2}, path)
    pickled = PickledTensors(path)
    assert pickled._base is not None
    assert torch.equal(pickled.get("w1"), w1) and torch.equal(pickled.get("w2"), w2)
    assert pickled.get("empty").shape == (0,)


def test_a_load_that_only_fits_in_bfloat16_computes_in_it_and_says_so(checkpoint_factory, monkeypatch,
                                                                        caplog) -> None:
    """load_model asks fit_in_memory when given a dtype's name and a context length: with memory between the
    bfloat16 and float32 footprints (as for a 7B on a 24 GB machine), auto loads bfloat16 weights, logged."""
    import model.loader as loader

    path = str(checkpoint_factory("hf"))
    probe, _ = load_model(path, device=CPU, dtype=torch.float32, quant="none")
    need = {d: footprint_bytes(probe.args, d, "none", 256) + RUNTIME_BYTES for d in (torch.float32, torch.bfloat16)}
    monkeypatch.setattr(loader, "available_memory", lambda: (need[torch.float32] + need[torch.bfloat16]) // 2)
    with caplog.at_level("INFO", logger="model.loader"):
        model, _ = load_model(path, device=CPU, dtype="auto", quant="none", context_length=256)
    assert model.output.weight.dtype == torch.bfloat16
    assert "computing in bfloat16, as float32 would not fit" in caplog.text
    with pytest.raises(NotEnoughMemory):
        load_model(path, device=CPU, dtype="float32", quant="none", context_length=256)
