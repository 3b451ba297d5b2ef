"""Weight-only quantization on CPU through bitsandbytes: layer swap, streaming, generation, fidelity."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from model import loader as loader_mod
from model.checkpoint import HFReader
from model.engine import Engine
from model.llama import Transformer
from model.loader import load_model, resolve_quant
from model.quant import is_quantized, quantized_linear

bnb = pytest.importorskip("bitsandbytes")

CPU = torch.device("cpu")
CHECKPOINT_LINEARS = ("attention.wq", "attention.wk", "attention.wv", "attention.wo",
                      "feed_forward.w1", "feed_forward.w2", "feed_forward.w3")
LINEARS = ("attention.wqkv", "attention.wo", "feed_forward.w13", "feed_forward.w2")  # wq|wk|wv and w1|w3 fused
# The checkpoint tensor whose read completes each layer above: it must be quantized right then.
COMPLETES = ("attention.wv.weight", "attention.wo.weight", "feed_forward.w2.weight", "feed_forward.w3.weight")
# quant -> (bitsandbytes layer class name, stored weight dtype, minimum logit correlation with fp32)
EXPECT = {"nf4": ("Linear4bit", torch.uint8, 0.95), "fp4": ("Linear4bit", torch.uint8, 0.9),
          "int8": ("Linear8bitLt", torch.int8, 0.99)}
# bitsandbytes' CPU int8 matmul warns on every call that it casts fp32 inputs to fp16.
pytestmark = pytest.mark.filterwarnings("ignore:MatMul8bitLt:UserWarning")


def linear_weight_bytes(model: Transformer) -> int:
    return sum(p.numel() * p.element_size() for n, p in model.named_parameters()
               if n.startswith("layers.") and not n.endswith("norm.weight"))


@pytest.fixture(scope="module")
def fp32_model(checkpoint_factory) -> Transformer:
    model, _ = load_model(str(checkpoint_factory("hf", gqa=True)), device=CPU, dtype=torch.float32, quant="none")
    return model


@pytest.mark.parametrize("quant", ["nf4", "fp4", "int8"])
@torch.inference_mode()
def test_quantized_load_generate_and_fidelity(checkpoint_factory, fp32_model: Transformer, quant: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # Record the loader's order of work: each Linear weight must be quantized before the next tensor is read.
    log: list[tuple[str, str]] = []
    real_get, real_quantize = HFReader.get, loader_mod.quantized_linear

    def get(self: HFReader, name: str) -> torch.Tensor:
        log.append(("read", name))
        return real_get(self, name)

    def quantize(weight: torch.Tensor, *args: object) -> nn.Module:
        layer = real_quantize(weight, *args)  # type: ignore[arg-type]
        log.append(("quantized" if is_quantized(layer) else "plain", str(layer.weight.dtype)))
        return layer

    monkeypatch.setattr(HFReader, "get", get)
    monkeypatch.setattr(loader_mod, "quantized_linear", quantize)
    model, tok = load_model(str(checkpoint_factory("hf", gqa=True)), device=CPU, dtype=torch.float32,
                            quant=quant)  # type: ignore[arg-type]

    cls_name, stored, min_corr = EXPECT[quant]
    reads = [name for kind, name in log if kind == "read"]
    linear_reads = [n for n in reads if any(n.endswith(f".{lin}.weight") for lin in CHECKPOINT_LINEARS)]
    assert len(linear_reads) == 7 * model.args.n_layers
    for i, (kind, what) in enumerate(log):
        if kind == "read" and what.endswith(COMPLETES):
            assert log[i + 1] == ("quantized", str(stored)), f"{what} was not quantized as it loaded"
    assert sum(kind == "quantized" for kind, _ in log) == len(LINEARS) * model.args.n_layers
    assert all(kind != "plain" for kind, _ in log)

    for i, layer in enumerate(model.layers):
        for path in LINEARS:
            module = layer.get_submodule(path)
            assert type(module).__name__ == cls_name and is_quantized(module), f"layers.{i}.{path}"
            assert module.weight.dtype == stored
            if cls_name == "Linear4bit":
                assert module.weight.quant_type == quant
                assert module.weight.numel() * 2 == module.in_features * module.out_features  # 2 weights/byte
    # The vocabulary projection stays a plain fp32 Linear, as in transformers' bitsandbytes recipe.
    assert type(model.output) is nn.Linear and model.output.weight.dtype == torch.float32
    assert model.output.weight.shape == (tok.n_words, model.args.dim)
    # No fp32 copy of any Linear weight survives: the float parameters are exactly embeddings, norms, output.
    floats = {n for n, p in model.named_parameters() if p.dtype.is_floating_point}
    assert floats == ({"tok_embeddings.weight", "norm.weight", "output.weight"}
                      | {f"layers.{i}.{k}_norm.weight" for i in range(model.args.n_layers)
                         for k in ("attention", "ffn")})
    ratio = 8 if cls_name == "Linear4bit" else 4
    assert linear_weight_bytes(model) * ratio == linear_weight_bytes(fp32_model)

    idx = torch.tensor([tok.encode("import json\n\ndef load(path):\n    return json.load(open(path))\n",
                                   bos=True, eos=False)])
    got, want = model(idx), fp32_model(idx)
    assert got.shape == want.shape and torch.isfinite(got).all()
    corr = torch.corrcoef(torch.stack([got.flatten(), want.flatten()]))[0, 1].item()
    assert corr > min_corr, f"{quant}: logit correlation with fp32 only {corr:.3f}"
    assert not torch.equal(got, want)  # really a different (quantized) computation

    result = Engine(model, tok, context_length=128).infill("def add(a, b):\n    ", "\n", max_new_tokens=8)
    assert result.stop_reason in ("max_tokens", "eot", "eos", "invalid")
    assert 0 < len(result.tokens) <= 8 and all(0 <= t < tok.n_words for t in result.tokens)


@torch.inference_mode()
def test_the_demo_model_in_4_bits_on_the_cpu() -> None:
    """Its feed-forward is 688 wide, which bitsandbytes' AVX-512 CPU layout cannot take (it failed mid-forward
    on such CPUs); after a forward pass, which repacks the layers that can be, memory is still counted."""
    model, tok = load_model(None, device=CPU, dtype=torch.float32, quant="nf4")
    assert model.layers[0].feed_forward.w2.in_features % 64 != 0
    engine = Engine(model, tok, context_length=256)
    result = engine.infill("def add(a, b):\n    ", "\n", max_new_tokens=4)
    assert result.stop_reason in ("max_tokens", "eot", "eos", "invalid") and result.tokens
    assert engine.memory_bytes() > 0


def test_unknown_quant_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown quantization 'q3'"):
        resolve_quant("q3", CPU)
    assert resolve_quant("auto", CPU) == "none"
    assert resolve_quant("auto", torch.device("cuda")) == "nf4"


def test_bitsandbytes_version_is_known() -> None:
    # The CPU 4-bit/8-bit paths above need bitsandbytes' multi-backend support (0.45+ on CPU).
    major, minor = (int(x) for x in bnb.__version__.split(".")[:2])
    assert (major, minor) >= (0, 45), bnb.__version__


def test_quantizing_asks_no_hub_for_kernels(tmp_path: Path) -> None:
    """bitsandbytes, on a CPU with AVX-512 BF16, asks the `kernels` package (installed with transformers) for a
    kernel from the Hugging Face Hub when it is imported: a network request, and code downloaded and run when it
    is answered; and it warns about it either way. A stand-in `kernels` records whether it was asked (on a CPU
    without AVX-512 BF16 bitsandbytes never asks, and this passes either way)."""
    (tmp_path / "kernels").mkdir()
    (tmp_path / "kernels" / "__init__.py").write_text(
        "from pathlib import Path\n"
        "def get_kernel(repo_id, **kwargs):\n"
        f"    Path({str(tmp_path / 'asked')!r}).write_text(repo_id)\n"
        "    raise ValueError('offline')\n")
    script = ("import logging, torch\n"
              "logging.basicConfig(level=logging.WARNING)\n"
              "from model.quant import quantized_linear\n"
              "layer = quantized_linear(torch.randn(64, 64), 'nf4', torch.float32, torch.device('cpu'))\n"
              "print(tuple(layer(torch.randn(1, 64)).shape))\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "(1, 64)", result.stderr
    assert not (tmp_path / "asked").exists(), "bitsandbytes asked the Hub for kernels-community's kernel"
    assert "kernels-community" not in result.stderr, result.stderr


@torch.inference_mode()
def test_an_int8_matmul_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    """bitsandbytes 0.50 logged a warning on every int8 matmul whose inputs are not fp16: 224 lines a token
    for a 7B model computing in float32 on the CPU, or in bf16 on CUDA."""
    weight = torch.randn(64, 128) / 128 ** 0.5
    layer = quantized_linear(weight, "int8", torch.float32, CPU).eval()  # as loaded: training uses another path
    with caplog.at_level(logging.WARNING):
        out = layer(torch.randn(1, 3, 128))
        layer(torch.randn(1, 1, 128, dtype=torch.bfloat16))
    assert out.shape == (1, 3, 64)
    assert [r.getMessage() for r in caplog.records] == []
