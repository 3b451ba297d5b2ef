"""The two sides of the benchmark, each run in a worker process of its own.

ours: our loader, then the engine in each variant (eager forwards; CUDA graphs over bitsandbytes' 4-bit
kernel; CUDA graphs over our Triton kernel; the last with cuDNN attention off), on one loaded model.
transformers: the seed recipe, LlamaForCausalLM + BitsAndBytesConfig + generate().
"""

from __future__ import annotations

import gc
import importlib.util
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..engine import Engine, Generation
from ..loader import DTYPES, load_model
from ..quant import BLOCKSIZE_4BIT, DOUBLE_QUANT, use_4bit_kernel

# name -> (CUDA graphs, 4-bit kernel, cuDNN attention)
VARIANTS: dict[str, tuple[bool, str, bool]] = {
    "eager": (False, "bnb", True),
    "graphs": (True, "bnb", True),
    "graphs+triton": (True, "triton", True),
    "graphs+triton, no cuDNN attention": (True, "triton", False),
}


def quant_settings(quant: str) -> str:
    """The 4-bit recipe in words, identical on both sides."""
    if quant not in ("nf4", "fp4"):
        return quant
    return f"{quant}, blocks of {BLOCKSIZE_4BIT}, double quantization {'on' if DOUBLE_QUANT else 'off'}"


def peak_gpu_mib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def peak_rss_mib() -> float:
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / 2**20 if sys.platform == "darwin" else maxrss / 2**10  # bytes on macOS, KiB on Linux


def _best(repeats: int, run: Callable[[], float]) -> float:
    # Best of N: on a shared machine the minimum is the least noisy estimate of the code's own cost.
    return min(run() for _ in range(repeats))


def variants_for(device: torch.device, quant: str) -> list[str]:
    if device.type != "cuda":
        return ["eager"]
    names = ["eager", "graphs"]
    if quant in ("nf4", "fp4") and importlib.util.find_spec("triton") is not None:
        names += ["graphs+triton", "graphs+triton, no cuDNN attention"]
    return names


def measure_engine(engine: Engine, prompts: dict[str, Any], repeats: int) -> dict[str, float]:
    """Time to first token per prompt size, decode speed, and a re-request with and without its prefix cached."""
    res: dict[str, float] = {}

    def cold(prompt: list[int], new: int = 1) -> Generation:
        engine.reset_cache()
        return engine.generate(prompt, max_new_tokens=new)

    cold(prompts["warmup"], 4)
    for n in prompts["sizes"]:
        runs = [cold(prompts["sizes"][n]).timings for _ in range(repeats)]
        res[f"ttft_ms@{n}"] = min(t.first_token_ms for t in runs)
        res[f"prefill_tok_s@{n}"] = int(n) / (min(t.prefill_ms for t in runs) / 1000)

    def decode_rate() -> float:
        g = cold(prompts["decode"], prompts["decode_tokens"])
        assert g.timings.new_tokens == prompts["decode_tokens"], g.stop_reason
        return (g.timings.new_tokens - 1) / ((g.timings.total_ms - g.timings.first_token_ms) / 1000)
    res["decode_tok_s"] = max(decode_rate() for _ in range(repeats))
    res["rerequest_cold_ms"] = _best(repeats, lambda: cold(prompts["hit_edited"]).timings.first_token_ms)

    def hit() -> float:
        cold(prompts["hit_base"])
        g = engine.generate(prompts["hit_edited"], max_new_tokens=1)
        res["rerequest_cached_tokens"] = g.timings.cached_tokens
        return g.timings.first_token_ms
    res["rerequest_hit_ms"] = _best(repeats, hit)
    return res


def run_ours(ckpt: Path, prompts: dict[str, Any], device_name: str, dtype_name: str, quant: str,
             repeats: int, context: int) -> dict[str, Any]:
    device = torch.device(device_name)
    # The first meta-device op of a process loads torch's meta kernels (~1 s); transformers pays that at
    # import time, outside its clock. Pay it here too, so load_s is the cost of loading this checkpoint.
    with torch.device("meta"):
        torch.nn.Embedding(2, 2)
    t0 = time.perf_counter()
    model, tok = load_model(str(ckpt), device=device, dtype=DTYPES[dtype_name], quant=quant)  # type: ignore[arg-type]
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    res: dict[str, Any] = {"load_s": time.perf_counter() - t0, "load_peak_gpu_mib": peak_gpu_mib(device),
                           "quant": quant_settings(quant), "variants": {}}
    # Random weights may emit <EOT>/EOS at any step; benchmark a fixed number of decode steps instead.
    tok.stop_ids = frozenset()
    for name in variants_for(device, quant):
        graphs, kernel, cudnn = VARIANTS[name]
        if quant in ("nf4", "fp4"):
            use_4bit_kernel(model, kernel)
        if device.type == "cuda":
            torch.backends.cuda.enable_cudnn_sdp(cudnn)
            torch.cuda.reset_peak_memory_stats(device)
        t_warm = time.perf_counter()
        engine = Engine(model, tok, context_length=context, graphs=graphs, speculate=0)
        figures: dict[str, Any] = {"warmup_s": time.perf_counter() - t_warm, "model_mib": engine.memory_bytes() / 2**20}
        figures.update(measure_engine(engine, prompts, repeats))
        figures["peak_gpu_mib"] = peak_gpu_mib(device)
        res["variants"][name] = figures
        del engine  # its graphs and their memory pool go before the next variant captures its own
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    res["peak_rss_mib"] = peak_rss_mib()
    return res


def run_transformers(ckpt: Path, prompts: dict[str, Any], device_name: str, dtype_name: str, quant: str,
                     repeats: int, context: int) -> dict[str, Any]:
    import transformers
    from packaging.version import Version
    from transformers import LlamaForCausalLM

    transformers.logging.set_verbosity_error()
    device = torch.device(device_name)
    dtype = DTYPES[dtype_name]
    # transformers 4.56 renamed torch_dtype to dtype; older versions would silently ignore `dtype`.
    kwargs: dict[str, Any] = {"dtype" if Version(transformers.__version__) >= Version("4.56") else "torch_dtype": dtype}
    if device.type == "cuda":
        if importlib.util.find_spec("accelerate") is None:
            raise RuntimeError("the seed recipe needs accelerate (device_map, BitsAndBytesConfig): "
                               "pip install -e '.[bench]'")
        kwargs["device_map"] = {"": device.index or 0}
        if quant in ("nf4", "fp4"):
            kwargs["quantization_config"] = transformers.BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type=quant, bnb_4bit_compute_dtype=dtype,
                bnb_4bit_use_double_quant=DOUBLE_QUANT, bnb_4bit_quant_storage=torch.uint8)
        elif quant == "int8":
            kwargs["quantization_config"] = transformers.BitsAndBytesConfig(load_in_8bit=True)
    t0 = time.perf_counter()
    model = LlamaForCausalLM.from_pretrained(str(ckpt), **kwargs).eval()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    applied = quant if device.type == "cuda" else "none"
    res: dict[str, Any] = {"load_s": time.perf_counter() - t0, "load_peak_gpu_mib": peak_gpu_mib(device),
                           "quant": quant_settings(applied)}

    @torch.inference_mode()
    def gen_ms(prompt: list[int], new: int = 1) -> float:
        ids = torch.tensor([prompt], device=device)
        start = time.perf_counter()
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new, min_new_tokens=new,
                             do_sample=False, pad_token_id=0)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        assert out.shape[1] == len(prompt) + new
        return (time.perf_counter() - start) * 1000

    gen_ms(prompts["warmup"], 4)
    figures: dict[str, float] = {}
    for n in prompts["sizes"]:
        # No separate prefill clock in generate(): its first token's latency is the prefill.
        figures[f"ttft_ms@{n}"] = _best(repeats, lambda: gen_ms(prompts["sizes"][n]))
        figures[f"prefill_tok_s@{n}"] = int(n) / (figures[f"ttft_ms@{n}"] / 1000)
    decode, new = prompts["decode"], prompts["decode_tokens"]
    first = _best(repeats, lambda: gen_ms(decode))
    figures["decode_tok_s"] = (new - 1) / ((_best(repeats, lambda: gen_ms(decode, new)) - first) / 1000)
    figures["rerequest_cold_ms"] = _best(repeats, lambda: gen_ms(prompts["hit_edited"]))

    def hit() -> float:  # transformers keeps no cache between generate() calls: the "hit" is a cold run
        gen_ms(prompts["hit_base"])
        return gen_ms(prompts["hit_edited"])
    figures["rerequest_hit_ms"] = _best(repeats, hit)
    figures["peak_gpu_mib"] = peak_gpu_mib(device)
    res["variants"] = {"transformers": figures}
    res["peak_rss_mib"] = peak_rss_mib()
    return res


SIDES = {"ours": run_ours, "transformers": run_transformers}
