"""Build a Transformer from a checkpoint directory, streaming and quantizing one tensor at a time.

The model is created on the meta device (no memory); each checkpoint tensor is read (mmap / safetensors),
shape-checked, moved to the target device and, for Linear layers, quantized right away. Peak device memory
stays near the final footprint: a 7B model in NF4 never holds its 13.5 GB of fp16 weights.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from .checkpoint import CheckpointError, open_checkpoint, parameter_names, resolve_model_dir
from .llama import Transformer
from .quant import QUANTS, Quant, quantized_linear
from .tokenizer import Tokenizer

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# The small model this project trains and ships (see model/demo/MODEL_CARD.md).
DEMO_MODEL_DIR = Path(__file__).parent / "demo"

Progress = Callable[[float, str], None]


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but this PyTorch sees no CUDA GPU "
                         f"(torch {torch.__version__}); use --device cpu")
    return torch.device(device)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype == "auto":
        if device.type != "cuda":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; expected auto or one of {', '.join(DTYPES)}")
    return DTYPES[dtype]


def resolve_quant(quant: str, device: torch.device) -> Quant:
    if quant == "auto":
        return "nf4" if device.type == "cuda" else "none"
    if quant not in QUANTS:
        raise ValueError(f"unknown quantization {quant!r}; expected auto or one of {', '.join(QUANTS)}")
    return quant  # type: ignore[return-value]


def load_model(model: str | os.PathLike[str] | None, *, device: torch.device, dtype: torch.dtype,
               quant: Quant, progress: Progress | None = None) -> tuple[Transformer, Tokenizer]:
    """Load `model` (a directory or cached HF repo id; None = the embedded demo model)."""
    tokenizer, reader = open_checkpoint(resolve_model_dir(model) if model is not None else DEMO_MODEL_DIR)
    with torch.device("meta"):
        net = Transformer(reader.args)
    names = list(parameter_names(reader.args))
    for k, name in enumerate(names):
        module_path = name.rsplit(".", 1)[0]
        module = net.get_submodule(module_path)
        tensor = reader.get(name)
        expected = tuple(module.weight.shape)
        if tuple(tensor.shape) != expected:
            raise CheckpointError(f"{getattr(reader, 'root', '')}: tensor {name} has shape {tuple(tensor.shape)}, "
                                  f"but the config implies {expected}")
        # The vocabulary projection stays unquantized, as in transformers' bitsandbytes recipe.
        if isinstance(module, nn.Linear) and module_path != "output":
            parent, child = module_path.rsplit(".", 1)
            setattr(net.get_submodule(parent), child, quantized_linear(tensor, quant, dtype, device))
        else:
            module.weight = nn.Parameter(tensor.to(device=device, dtype=dtype), requires_grad=False)
        del tensor
        if progress:
            progress((k + 1) / len(names), name)
    left = [n for n, p in net.named_parameters() if p.is_meta]
    if left:
        raise CheckpointError(f"parameters never loaded: {left[:5]}")
    return net.eval(), tokenizer
