"""Build a Transformer from a checkpoint directory, streaming and quantizing one tensor at a time.

Every tensor's shape is first checked against the config from the files' headers. The model is created on
the meta device (no memory); each checkpoint tensor is then read (mmap / safetensors), moved to the target
device and, for Linear layers, quantized right away. Peak device memory stays near the final footprint:
a 7B model in NF4 never holds its 13.5 GB of fp16 weights.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from .checkpoint import (CheckpointError, VocabRows, check_shapes, checkpoint_shapes, open_checkpoint,
                         resolve_model_dir)
from .config import ModelArgs
from .llama import FUSED, Transformer
from .quant import BLOCKSIZE_4BIT, KERNELS, QUANTS, Quant, quantized_linear
from .tokenizer import Tokenizer

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# The small model this project trains and ships (see model/demo/MODEL_CARD.md).
DEMO_MODEL_DIR = Path(__file__).parent / "demo"

Progress = Callable[[float, str], None]
log = logging.getLogger(__name__)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but this PyTorch sees no CUDA GPU "
                         f"(torch {torch.__version__}); use --device cpu")
    try:
        return torch.device(device)
    except RuntimeError:  # torch's message lists twenty device types this project cannot use
        raise ValueError(f"unknown device {device!r}; expected auto, cpu, cuda or cuda:N") from None


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype == "auto":
        if device.type != "cuda":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; expected auto or one of {', '.join(DTYPES)}")
    return DTYPES[dtype]


GiB = 1 << 30
# What a load holds beyond the model's weights and KV cache: Python, torch's libraries, the tensor being read.
RUNTIME_BYTES = 1 * GiB


class NotEnoughMemory(ValueError):
    """The model, as asked for, would not fit the memory available: refused before a tensor is read.
    `setting`: the setting the first remedy changes ("dtype", "quant"; "model" when none would fit)."""

    def __init__(self, message: str, setting: str) -> None:
        super().__init__(message)
        self.setting = setting


def footprint_bytes(args: ModelArgs, dtype: torch.dtype, quant: Quant, context_length: int) -> int:
    """Bytes a loaded model holds: its linear layers' weights in `dtype` or quantized (packed codes and block
    scales), the embeddings, output projection and norms in `dtype` (never quantized), and the KV cache."""
    size = dtype.itemsize
    total = 0
    for name, shape in checkpoint_shapes(args).items():
        n = math.prod(shape)
        if quant == "none" or len(shape) != 2 or name in ("tok_embeddings.weight", "output.weight"):
            total += n * size
        elif quant == "int8":
            total += n + 4 * shape[0]  # int8 codes and a float32 scale per row
        else:
            total += n // 2 + 4 * (n // BLOCKSIZE_4BIT)  # two codes a byte; at most a float32 scale per block
    kv = 2 * args.n_layers * min(context_length, args.max_seq_len) * args.n_kv_heads * args.head_dim * size
    return total + kv


def available_memory() -> int | None:
    """Bytes the kernel can give a new process without swapping (Linux's MemAvailable); None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _gib(n: int) -> str:
    return f"{n / GiB:.1f} GiB"


def fit_in_memory(args: ModelArgs, *, dtype: str, quant: Quant, context_length: int, available: int | None
                  ) -> torch.dtype:
    """The CPU dtype for `dtype` ("auto" or a DTYPES name) that lets the model fit `available` bytes (None:
    unknown, nothing is refused), or NotEnoughMemory saying what it needs and which settings would fit.

    auto is float32 where the model fits in it (the demo model, small checkpoints), else bfloat16: a 7B model
    is 27 GB in float32, which a 24 GB machine cannot hold, and the OOM killer would end the load without a word
    after a minute of reading. bfloat16 halves that (Code Llama's own weights are bf16: nothing is lost).
    """
    chosen = DTYPES.get(dtype, torch.float32)
    need = footprint_bytes(args, chosen, quant, context_length) + RUNTIME_BYTES
    if available is None or need <= available:
        return chosen
    if dtype == "auto" and footprint_bytes(args, torch.bfloat16, quant, context_length) + RUNTIME_BYTES <= available:
        return torch.bfloat16
    params = sum(math.prod(s) for s in checkpoint_shapes(args).values())
    weights = footprint_bytes(args, chosen, quant, 0)
    said = str(chosen).removeprefix("torch.") + (f", {quant}" if quant != "none" else "")
    message = (f"this {params / 1e9:.1f}B-parameter model ({said}) needs about {_gib(need)} of memory (weights "
               f"{_gib(weights)}, KV cache of {context_length} tokens {_gib(need - weights - RUNTIME_BYTES)}, "
               f"runtime {_gib(RUNTIME_BYTES)}), but {_gib(available)} is available")
    # The remedies in the order they ran a 7B on 2 CPU cores (README, "No GPU"): NF4 computing in float32 decoded
    # fastest (1.2-2.4 tok/s; bfloat16 weights 0.3-0.5, NF4 computing in bfloat16 0.7-0.8), in 9.5 GiB.
    fits, seen = [], {(chosen, quant, context_length)}
    for flags, d, q, ctx in (("--quant nf4", chosen, "nf4", context_length),
                             ("--dtype bfloat16", torch.bfloat16, quant, context_length),
                             ("--quant nf4 --dtype bfloat16", torch.bfloat16, "nf4", context_length),
                             ("--quant nf4 --dtype bfloat16 --context-length 2048", torch.bfloat16, "nf4", 2048)):
        if (d, q, ctx) in seen or ctx > context_length:
            continue
        seen.add((d, q, ctx))
        alternative = footprint_bytes(args, d, q, ctx) + RUNTIME_BYTES  # type: ignore[arg-type]
        if alternative <= available:
            fits.append(f"{flags} (about {_gib(alternative)})")
    if fits:
        raise NotEnoughMemory(f"{message}: use {' or '.join(fits[:2])}",
                              "dtype" if fits[0].startswith("--dtype") else "quant")
    raise NotEnoughMemory(f"{message}, and even 4-bit weights with a 2048-token cache would not fit: free some "
                          "memory or use a smaller model", "model")


def resolve_quant(quant: str, device: torch.device) -> Quant:
    if quant == "auto":
        return "nf4" if device.type == "cuda" else "none"
    if quant not in QUANTS:
        raise ValueError(f"unknown quantization {quant!r}; expected auto or one of {', '.join(QUANTS)}")
    return quant  # type: ignore[return-value]


def resolve_kernel(kernel: str, device: torch.device, quant: Quant) -> str:
    """auto: our Triton kernel for 4-bit decoding on CUDA when Triton is installed, else bitsandbytes'."""
    if kernel == "auto":
        triton = importlib.util.find_spec("triton") is not None
        return "triton" if device.type == "cuda" and quant in ("nf4", "fp4") and triton else "bnb"
    if kernel not in KERNELS:
        raise ValueError(f"unknown 4-bit kernel {kernel!r}; expected auto or one of {', '.join(KERNELS)}")
    return kernel


def load_model(model: str | os.PathLike[str] | None, *, device: torch.device, dtype: torch.dtype | str,
               quant: Quant, progress: Progress | None = None, context_length: int | None = None
               ) -> tuple[Transformer, Tokenizer]:
    """Load `model` (a directory or cached HF repo id; None = the embedded demo model).

    dtype: a torch dtype, or its name ("auto" or one of DTYPES) resolved for `device`. Given the
    `context_length` of the KV cache to come, a model for the CPU is first checked against the memory
    available (fit_in_memory: NotEnoughMemory, or auto's bfloat16 where float32 would not fit).
    """
    tokenizer, reader = open_checkpoint(resolve_model_dir(model) if model is not None else DEMO_MODEL_DIR)
    # From the files' headers, before any tensor is read: a wrong shape late in a 7B checkpoint (the output
    # projection is its last tensor) would otherwise fail after a minute of reading and quantizing the rest.
    check_shapes(reader)
    if isinstance(reader, VocabRows):
        first, last = reader.args.vocab_size, reader.stored_rows - 1
        ids = f"id {first}" if first == last else f"ids {first}-{last}"
        log.info("%s: %d embedding and output row%s beyond tokenizer.model's %d pieces dropped (%s, which the "
                 "tokenizer never produces; the model cannot emit them now)", model, reader.dropped_rows,
                 "s" if reader.dropped_rows > 1 else "", first, ids)
    if isinstance(dtype, str):
        name, dtype = dtype, resolve_dtype(dtype, device)
        if device.type == "cpu" and context_length is not None:
            fitted = fit_in_memory(reader.args, dtype=name, quant=quant, context_length=context_length,
                                   available=available_memory())
            if fitted != dtype:
                log.info("%s: computing in %s, as float32 would not fit the memory available (dtype auto)",
                         model or "the demo model", str(fitted).removeprefix("torch."))
            dtype = fitted
    with torch.device("meta"), _SkipInit():
        net = Transformer(reader.args)
    shapes = checkpoint_shapes(reader.args)
    parts: dict[str, list[torch.Tensor]] = {}  # fused module -> its checkpoint tensors read so far
    for k, (name, expected) in enumerate(shapes.items()):
        tensor = reader.get(name)
        assert tuple(tensor.shape) == expected, f"{reader.source(name)}: {tuple(tensor.shape)} != {expected}"
        if not tensor.is_floating_point() or tensor.element_size() < 2:  # int8 or fp8 codes, not weights
            raise CheckpointError(f"{reader.source(name)} holds {str(tensor.dtype).removeprefix('torch.')} values, "
                                  "not 16- or 32-bit weights: the checkpoint is stored quantized; use the "
                                  "unquantized one (this loader quantizes it itself, --quant)")
        module_path, group_size = fused_module(name.removesuffix(".weight"))
        parts.setdefault(module_path, []).append(tensor)
        del tensor
        if len(parts[module_path]) == group_size:  # the whole (fused) weight is here: place it, drop the parts
            group = parts.pop(module_path)
            _place(net, module_path, group[0] if group_size == 1 else torch.cat(group), quant, dtype, device)
            del group
        if progress:
            progress((k + 1) / len(shapes), name)
    left = [n for n, p in net.named_parameters() if p.is_meta]
    if left:
        raise CheckpointError(f"parameters never loaded: {left[:5]}")
    return net.eval(), tokenizer


class _SkipInit(TorchFunctionMode):
    """Leave `torch.nn.init` out while a model is built on the meta device: every weight comes from the checkpoint.

    Initialising a meta tensor is no work, but nn.Embedding's normal_ on meta runs a Python decomposition whose
    first call imports torch._dynamo: 2.5 s of every model load, `codellama-lsp complete` included.
    """

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        if getattr(func, "__module__", None) == "torch.nn.init":
            return args[0] if args else kwargs["tensor"]  # type: ignore[index]
        return func(*args, **(kwargs or {}))


def fused_module(module_path: str) -> tuple[str, int]:
    """The module a checkpoint tensor loads into, and how many checkpoint tensors it stacks."""
    layer, _, leaf = module_path.rpartition(".")
    block, _, kind = layer.rpartition(".")
    for fused, group in FUSED.items():
        if f"{kind}.{leaf}" in group:
            return f"{block}.{fused}", len(group)
    return module_path, 1


def _place(net: Transformer, module_path: str, weight: torch.Tensor, quant: Quant, dtype: torch.dtype,
           device: torch.device) -> None:
    module = net.get_submodule(module_path)
    # The vocabulary projection stays unquantized, as in transformers' bitsandbytes recipe.
    if isinstance(module, nn.Linear) and module_path != "output":
        parent, child = module_path.rsplit(".", 1)
        setattr(net.get_submodule(parent), child, quantized_linear(weight, quant, dtype, device))
    else:
        module.weight = nn.Parameter(weight.to(device=device, dtype=dtype), requires_grad=False)
