"""Weight-only quantization as a module swap: an nn.Linear becomes a bitsandbytes layer as its weight loads."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

Quant = Literal["nf4", "fp4", "int8", "none"]
QUANTS: tuple[str, ...] = ("nf4", "fp4", "int8", "none")


def quantized_linear(weight: Tensor, quant: Quant, compute_dtype: torch.dtype, device: torch.device) -> nn.Module:
    """A bias-free Linear holding `weight` (out, in), quantized on `device` (the fp16 copy is dropped)."""
    out_features, in_features = weight.shape
    if quant == "none":
        layer = nn.Linear(in_features, out_features, bias=False, device="meta")
        layer.weight = nn.Parameter(weight.to(device=device, dtype=compute_dtype), requires_grad=False)
        return layer
    try:
        import bitsandbytes as bnb
    except ImportError as e:  # pragma: no cover - bitsandbytes is a runtime dependency
        raise RuntimeError(f"--quant {quant} needs bitsandbytes: pip install bitsandbytes ({e})") from e
    # bitsandbytes quantizes when the parameter moves to its device; 16-bit input keeps that step cheap.
    source = weight.to(torch.float16 if device.type == "cuda" else compute_dtype)
    if quant in ("nf4", "fp4"):
        layer = bnb.nn.Linear4bit(in_features, out_features, bias=False, compute_dtype=compute_dtype,
                                  quant_type=quant, device="meta")
        layer.weight = bnb.nn.Params4bit(source, requires_grad=False, quant_type=quant)
    elif quant == "int8":
        layer = bnb.nn.Linear8bitLt(in_features, out_features, bias=False, has_fp16_weights=False,
                                    threshold=6.0, device="meta")
        layer.weight = bnb.nn.Int8Params(source, requires_grad=False, has_fp16_weights=False)
    else:
        raise ValueError(f"unknown quantization {quant!r}; expected one of {', '.join(QUANTS)}")
    return layer.to(device)


def is_quantized(layer: nn.Module) -> bool:
    return type(layer).__module__.startswith("bitsandbytes")
