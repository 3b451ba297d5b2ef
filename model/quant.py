"""Weight-only quantization as a module swap: an nn.Linear becomes a bitsandbytes layer as its weight loads.

The 4-bit settings are explicit, so a comparison with another recipe can use the very same ones:
NF4 (or FP4) in blocks of 64 weights, with double quantization of the block scales (bitsandbytes'
`Linear4bit` default; transformers' `bnb_4bit_use_double_quant=True`), computing in the model's dtype.
"""

from __future__ import annotations

import logging
import sys
from types import ModuleType
from typing import Literal

import torch
from torch import Tensor, nn

Quant = Literal["nf4", "fp4", "int8", "none"]
QUANTS: tuple[str, ...] = ("nf4", "fp4", "int8", "none")
BLOCKSIZE_4BIT = 64  # weights per absmax scale
CPU_REPACK_ROWS = 32  # bitsandbytes' AVX-512 CPU layout takes output rows in blocks of this many
DOUBLE_QUANT = True  # the fp32 scales are themselves quantized to 8 bits (0.5 -> 0.127 bits per weight)


_ABSENT = object()


def import_bitsandbytes() -> ModuleType:
    """bitsandbytes, imported without reaching for the Hugging Face Hub.

    On a CPU with AVX-512 BF16, importing bitsandbytes (0.50 here) asks the `kernels` package (which transformers
    installs) for a compiled kernel from the Hub repository kernels-community/quantization-bitsandbytes: a
    request to huggingface.co at every model load and, when it is answered, code downloaded and run, where
    this project promises that the model is local and nothing is sent anywhere. Whether it fails or `kernels`
    is absent, bitsandbytes logs a warning that tells the user to install `kernels` or to trust remote code.
    So `kernels` is hidden while bitsandbytes is imported (its own CPU kernel is used, as without `kernels`),
    and that warning is dropped. Raises ImportError when bitsandbytes is not installed.
    """
    if (loaded := sys.modules.get("bitsandbytes")) is not None:
        return loaded
    hidden = sys.modules.get("kernels", _ABSENT)
    sys.modules["kernels"] = None  # type: ignore[assignment]  # `from kernels import ...` raises ImportError
    cpu_ops = logging.getLogger("bitsandbytes.backends.cpu.ops")

    def drop(record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Failed to load CPU gemm_4bit_forward from kernels-community")

    cpu_ops.addFilter(drop)
    try:
        import bitsandbytes
    finally:
        cpu_ops.removeFilter(drop)
        if hidden is _ABSENT:
            del sys.modules["kernels"]
        else:
            sys.modules["kernels"] = hidden
    return bitsandbytes


def _not_the_int8_cast(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("MatMul8bitLt: inputs will be cast from")


def quiet_int8_cast() -> None:
    """Drop bitsandbytes' warning that an int8 matmul casts its float32 or bf16 inputs to fp16.

    LLM.int8() quantizes activations from fp16, so the cast is how it works, not a fault; bitsandbytes 0.50 logs
    it at WARNING on every matmul, 224 lines a token for a 7B model (a terminal's `complete`, an editor's log).
    """
    logger = logging.getLogger("bitsandbytes.autograd._functions")
    if _not_the_int8_cast not in logger.filters:
        logger.addFilter(_not_the_int8_cast)


def quantized_linear(weight: Tensor, quant: Quant, compute_dtype: torch.dtype, device: torch.device) -> nn.Module:
    """A bias-free Linear holding `weight` (out, in), quantized on `device` (the 16-bit copy is dropped)."""
    out_features, in_features = weight.shape
    if quant == "none":
        layer = nn.Linear(in_features, out_features, bias=False, device="meta")
        layer.weight = nn.Parameter(weight.to(device=device, dtype=compute_dtype), requires_grad=False)
        return layer
    try:
        bnb = import_bitsandbytes()
    except ImportError as e:  # pragma: no cover - bitsandbytes is a runtime dependency
        raise RuntimeError(f"--quant {quant} needs bitsandbytes: pip install bitsandbytes ({e})") from e
    # bitsandbytes quantizes when the parameter moves to its device, from the dtype it is given: the compute
    # dtype, so that the scales are computed from the values the model will compute with.
    source = weight.to(compute_dtype)
    if quant in ("nf4", "fp4"):
        layer = bnb.nn.Linear4bit(in_features, out_features, bias=False, compute_dtype=compute_dtype,
                                  quant_type=quant, compress_statistics=DOUBLE_QUANT, device="meta")
        layer.weight = bnb.nn.Params4bit(source, requires_grad=False, quant_type=quant, blocksize=BLOCKSIZE_4BIT,
                                         compress_statistics=DOUBLE_QUANT)
        allow_cpu_repack(layer, True)
    elif quant == "int8":
        # Activations above 6 in magnitude (outlier features) are multiplied in 16 bits: LLM.int8()'s threshold,
        # as transformers' load_in_8bit uses it; 0 would quantize them too, and lose their precision.
        quiet_int8_cast()
        layer = bnb.nn.Linear8bitLt(in_features, out_features, bias=False, has_fp16_weights=False,
                                    threshold=6.0, device="meta")
        layer.weight = bnb.nn.Int8Params(source, requires_grad=False, has_fp16_weights=False)
    else:
        raise ValueError(f"unknown quantization {quant!r}; expected one of {', '.join(QUANTS)}")
    return layer.to(device)


def allow_cpu_repack(layer: nn.Module, allow: bool) -> None:
    """Let bitsandbytes repack `layer`'s 4-bit weight for its AVX-512 (bf16) CPU kernel, or not.

    On such a CPU, Linear4bit's first forward pass on the CPU rewrites its weight into another layout, with
    bf16 block scales and the nested ones undone (QuantState.state2 deleted). Its kernel needs in_features in
    whole blocks and out_features in multiples of 32, or the repack fails in the middle of a forward pass (the
    demo model's 688-wide feed-forward is neither), so it is allowed only for shapes it can take; our Triton
    kernel reads the standard layout, so a repack already made is undone when it is refused.
    """
    weight = layer.weight
    fits = layer.in_features % BLOCKSIZE_4BIT == 0 and layer.out_features % CPU_REPACK_ROWS == 0
    if not allow or not fits:
        state = getattr(weight, "quant_state", None)
        if getattr(state, "packing_format_for_cpu", False):
            from bitsandbytes.functional import _convert_weight_packed_for_cpu_inverse
            weight.data, weight.quant_state = _convert_weight_packed_for_cpu_inverse(weight.data, state)
    if hasattr(layer, "support_avx512bf16_for_cpu"):  # bitsandbytes >= 0.48; read on each CPU forward pass
        from bitsandbytes.functional import has_avx512bf16
        layer.support_avx512bf16_for_cpu = allow and fits and has_avx512bf16()


def is_quantized(layer: nn.Module) -> bool:
    return type(layer).__module__.startswith("bitsandbytes") or hasattr(layer, "quant_state")


def quant_state_bytes(model: nn.Module) -> int:
    """Bytes of the quantization state (block scales, nested scales, code tables, int8 row scales)."""
    total = 0
    for module in model.modules():
        weight = getattr(module, "weight", None)
        state = getattr(weight, "quant_state", None)
        while state is not None:  # a 4-bit QuantState, possibly nesting the quantized scales' own state
            total += sum(t.numel() * t.element_size() for t in (state.absmax, state.code, state.offset)
                         if isinstance(t, Tensor))
            state = getattr(state, "state2", None)  # deleted, not None, once repacked for the CPU
        scb = getattr(weight, "SCB", None)
        if isinstance(scb, Tensor):
            total += scb.numel() * scb.element_size()
    return total


KERNELS: tuple[str, ...] = ("bnb", "triton")


def use_4bit_kernel(model: nn.Module, kernel: str) -> int:
    """Run the model's 4-bit layers on `kernel` ("bnb": bitsandbytes' own; "triton": ours for few-row matmuls).

    A swap of the layer's class: the packed weights and their state stay where they are. Returns the number of
    layers switched.
    """
    if kernel not in KERNELS:
        raise ValueError(f"unknown 4-bit kernel {kernel!r}; expected one of {', '.join(KERNELS)}")
    bnb = import_bitsandbytes()

    if kernel == "triton":
        from .kernels.linear4bit import TritonLinear4bit
        target: type[nn.Module] = TritonLinear4bit
    else:
        target = bnb.nn.Linear4bit
    swapped = 0
    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit) and type(module) is not target:
            module.__class__ = target
            allow_cpu_repack(module, target is bnb.nn.Linear4bit)  # ours reads the standard layout only
            swapped += 1
    return swapped
