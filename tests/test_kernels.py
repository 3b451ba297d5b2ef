"""Our Triton 4-bit matmul against bitsandbytes' own dequantization (on the CPU through Triton's interpreter,
on the GPU natively), and the layer swap that puts it in a model."""

from __future__ import annotations

import pytest
import torch

bnb = pytest.importorskip("bitsandbytes")
pytest.importorskip("triton")

from bitsandbytes import functional as BF  # noqa: E402
from bitsandbytes import nn as BNN  # noqa: E402

from model.kernels.nf4_triton import MAX_ROWS, nf4_matmul  # noqa: E402
from model.llama import Transformer  # noqa: E402
from model.loader import load_model  # noqa: E402
from model.quant import allow_cpu_repack, use_4bit_kernel  # noqa: E402

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def quantized(n: int, k: int, quant: str, nested: bool, seed: int) -> tuple[torch.Tensor, object, torch.Tensor]:
    """(packed weights, quant state, bitsandbytes' float32 dequantization) of a random (n, k) matrix."""
    g = torch.Generator().manual_seed(seed)
    w = (torch.randn(n, k, generator=g) * 0.05).to(DEVICE)
    packed, state = BF.quantize_4bit(w, blocksize=64, compress_statistics=nested, quant_type=quant)
    return packed, state, BF.dequantize_4bit(packed, state).float()


@pytest.mark.parametrize("quant", ["nf4", "fp4"])
@pytest.mark.parametrize("nested", [True, False])
@pytest.mark.parametrize(("n", "k"), [(48, 320), (40, 192), (24, 1088)])  # K not a multiple of the step
@pytest.mark.parametrize("rows", [1, 3, MAX_ROWS])
def test_matches_bitsandbytes_dequantization_in_float32(quant: str, nested: bool, n: int, k: int, rows: int) -> None:
    packed, state, w = quantized(n, k, quant, nested, seed=n * k + rows)
    x = torch.randn(rows, k, generator=torch.Generator().manual_seed(rows)).to(DEVICE)
    y = nf4_matmul(x, packed, state)
    want = x.double() @ w.double().T
    assert y.shape == (rows, n) and y.dtype == torch.float32 and torch.isfinite(y).all()
    # Float32 arithmetic, weights never rounded: only the order of summation differs.
    assert ((y.double() - want).norm() / want.norm()).item() < 1e-6


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_sixteen_bit_activations_round_only_the_output(dtype: torch.dtype) -> None:
    packed, state, w = quantized(64, 256, "nf4", True, seed=1)
    x = torch.randn(2, 256, generator=torch.Generator().manual_seed(2)).to(DEVICE, dtype)
    y = nf4_matmul(x.view(1, 2, 256), packed, state)  # leading dims are kept
    assert y.shape == (1, 2, 64) and y.dtype == dtype
    want = x.double() @ w.double().T
    # One rounding to the output type (the interpreter truncates instead of rounding: up to one unit).
    unit = torch.finfo(dtype).eps
    assert ((y[0].double() - want).abs() <= 2 * unit * want.abs() + 1e-6).all()


def test_nested_scales_in_blocks_of_any_size() -> None:
    # bitsandbytes quantizes the block scales in blocks of 256, but a state carries its own (a serialized
    # one says "nested_blocksize"): the kernel reads it from the state rather than assuming 256.
    g = torch.Generator().manual_seed(4)
    w = (torch.randn(64, 1024, generator=g) * 0.05).to(DEVICE)  # 1,024 block scales
    packed, flat = BF.quantize_4bit(w, blocksize=64, compress_statistics=False, quant_type="nf4")
    offset = flat.absmax.mean()
    qabsmax, state2 = BF.quantize_blockwise(flat.absmax - offset, blocksize=128)
    state = BF.QuantState(absmax=qabsmax, shape=flat.shape, code=flat.code, blocksize=64, quant_type="nf4",
                          dtype=flat.dtype, offset=offset, state2=state2)
    x = torch.randn(1, 1024, generator=g).to(DEVICE)
    want = x.double() @ BF.dequantize_4bit(packed, state).double().T
    assert ((nf4_matmul(x, packed, state).double() - want).norm() / want.norm()).item() < 1e-6


def test_rejects_what_it_cannot_compute() -> None:
    packed, state, _ = quantized(16, 128, "nf4", True, seed=3)
    with pytest.raises(ValueError, match=f"up to {MAX_ROWS} rows"):
        nf4_matmul(torch.randn(MAX_ROWS + 1, 128, device=DEVICE), packed, state)
    with pytest.raises(ValueError, match="rows of 128"):
        nf4_matmul(torch.randn(1, 64, device=DEVICE), packed, state)


@torch.inference_mode()
def test_model_with_the_triton_kernel_computes_what_bitsandbytes_does(checkpoint_factory) -> None:
    model, tok = load_model(str(checkpoint_factory("hf", gqa=True)), device=DEVICE, dtype=torch.float32,
                            quant="nf4")
    idx = torch.tensor([tok.encode("def add(a, b):\n    return a + b\n", bos=True, eos=False)], device=DEVICE)
    # Decode-shaped steps (one row through each layer) are where the kernel takes over.
    def decode_logits(m: Transformer) -> torch.Tensor:
        m.setup_caches(64)
        steps = [m(idx[:, i:i + 1], torch.tensor([i], device=DEVICE), kv_len=i + 1) for i in range(idx.shape[1])]
        return torch.cat(steps, dim=1)

    assert use_4bit_kernel(model, "bnb") == 0  # already bitsandbytes' layers
    for module in model.modules():  # bitsandbytes' own kernel on the standard layout, as on a GPU
        if isinstance(module, BNN.Linear4bit):
            allow_cpu_repack(module, False)
    expected = decode_logits(model)
    swapped = use_4bit_kernel(model, "triton")
    assert swapped == 4 * model.args.n_layers  # wqkv, wo, w13, w2 in every layer
    got = decode_logits(model)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    assert use_4bit_kernel(model, "bnb") == swapped  # and back
    with pytest.raises(ValueError, match="unknown 4-bit kernel"):
        use_4bit_kernel(model, "cutlass")


@pytest.mark.skipif(not BF.has_avx512bf16(), reason="bitsandbytes repacks 4-bit weights only on AVX-512 bf16 CPUs")
@torch.inference_mode()
def test_a_weight_repacked_for_the_cpu_is_unpacked_for_the_kernel(checkpoint_factory) -> None:
    """On an AVX-512 CPU bitsandbytes rewrites a 4-bit weight into its own layout at the first forward pass;
    swapping to our kernel, which reads the standard layout, undoes it and keeps it undone."""
    model, tok = load_model(str(checkpoint_factory("hf", gqa=True)), device=DEVICE, dtype=torch.float32,
                            quant="nf4")
    idx = torch.tensor([tok.encode("def add(a, b):", bos=True, eos=False)], device=DEVICE)
    repacked = model(idx)
    layer = model.layers[0].attention.wqkv
    assert layer.weight.quant_state.packing_format_for_cpu  # it did repack, or this tests nothing
    use_4bit_kernel(model, "triton")
    assert not layer.weight.quant_state.packing_format_for_cpu and layer.weight.shape[1] == 1
    model.setup_caches(64)
    got = torch.cat([model(idx[:, i:i + 1], torch.tensor([i], device=DEVICE), kv_len=i + 1)
                     for i in range(idx.shape[1])], dim=1)
    assert not layer.weight.quant_state.packing_format_for_cpu  # our layers never let it repack again
    # The repack keeps the block scales in bf16: the same weights to about 3 significant digits.
    assert torch.corrcoef(torch.stack([got.flatten(), repacked.flatten()]))[0, 1] > 0.999
