"""Benchmark our loader + engine against transformers' LlamaForCausalLM on a random checkpoint.

    python -m model.bench --shape tiny|7b|13b --device auto|cpu|cuda --quant auto|nf4|fp4|int8|none \
        --dtype auto|float32|bfloat16|float16 [--json PATH]

The checkpoint (Hugging Face layout, random fp16 weights, a 32016-piece tokenizer trained on the Python
standard library) is written tensor by tensor into size-capped safetensors shards, so a 7B one never needs
its 13.5 GB in memory at once. The same files serve both sides: our loader reads HF layout directly.

Each side runs in its own subprocess, so that load time and the peak-memory figure (CUDA
max_memory_allocated; on CPU the process's RSS high-water mark) belong to that side alone.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import math
import os
import platform
import resource
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

VOCAB = 32016  # Code Llama's vocabulary: 32000 + infilling pieces + padding
PROMPT_SIZES = (512, 1536, 4096)
HIT_SIZE = 1536  # prompt length for the prefix-cache re-request
EDITED_TAIL = 4  # the re-request differs in its last this-many tokens
SHARD_BYTES = 2 << 30  # cap per safetensors shard while writing

# Shapes as ModelArgs fields (vocab added at build time). 7B/13B are Code Llama's; tiny runs in seconds on CPU.
SHAPES: dict[str, dict[str, Any]] = {
    "tiny": {"dim": 256, "n_layers": 4, "n_heads": 8, "n_kv_heads": 8, "hidden_dim": 768, "max_seq_len": 8192},
    "7b": {"dim": 4096, "n_layers": 32, "n_heads": 32, "n_kv_heads": 32, "hidden_dim": 11008,
           "max_seq_len": 16384},
    "13b": {"dim": 5120, "n_layers": 40, "n_heads": 40, "n_kv_heads": 40, "hidden_dim": 13824,
            "max_seq_len": 16384},
}

# (key, label, higher is better)
METRICS: list[tuple[str, str, bool]] = [
    ("load_s", "load time (s)", False),
    ("peak_mem_mib", "peak memory (MiB)", False),
    *[(f"prefill_tok_s@{n}", f"prefill tok/s @{n}", True) for n in PROMPT_SIZES],
    *[(f"ttft_ms@{n}", f"time to first token (ms) @{n}", False) for n in PROMPT_SIZES],
    ("decode_tok_s", "decode tok/s", True),
    ("rerequest_cold_ms", "re-request, cold (ms)", False),
    ("rerequest_hit_ms", "re-request, prefix hit (ms)", False),
]


# --- checkpoint -----------------------------------------------------------------------------------------


def stdlib_texts(max_files: int = 80) -> list[str]:
    """Python source from the standard library: the tokenizer's corpus and the prompts' text."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(root.glob("*.py"))[:max_files]
    return [f.read_text(encoding="utf-8", errors="replace") for f in files]


def build_tokenizer(out: Path, texts: list[str], vocab_size: int = VOCAB, learned: int = 2000) -> Path:
    """A Code-Llama-shaped SentencePiece model with exactly `vocab_size` pieces.

    A 32k BPE needs far more text than the stdlib offers in a second of training, so only `learned` pieces
    are learned and the vocabulary is filled up with unused control pieces (never produced from text).
    Embedding and output matrices then have Code Llama's exact shape.
    """
    import sentencepiece as spm

    from .tokenizer import FIM_PIECES, SENTINEL

    specials = 3 + len(FIM_PIECES) + 1  # unk/bos/eos, infilling pieces, sentinel
    padding = [f"<unused{i}>" for i in range(vocab_size - specials - learned)]
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=(line for text in texts for line in text.splitlines() if line.strip()),
        model_writer=model, model_type="bpe", vocab_size=vocab_size, character_coverage=0.9999,
        byte_fallback=True, split_digits=True, allow_whitespace_only_pieces=True, remove_extra_whitespaces=False,
        normalization_rule_name="identity", max_sentence_length=8192, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        num_threads=min(4, os.cpu_count() or 1), minloglevel=2,
        control_symbols=list(FIM_PIECES) + padding, user_defined_symbols=[SENTINEL])
    out.write_bytes(model.getvalue())
    return out


def _random_tensors(args: Any, seed: int) -> Iterator[tuple[str, Any]]:
    """(HF name, fp16 tensor) one at a time, in checkpoint order."""
    import torch

    from .checkpoint import hf_name, parameter_names

    g = torch.Generator().manual_seed(seed)
    kv = args.n_kv_heads * args.head_dim
    shapes = {"tok_embeddings": (args.vocab_size, args.dim), "output": (args.vocab_size, args.dim),
              "wq": (args.dim, args.dim), "wk": (kv, args.dim), "wv": (kv, args.dim), "wo": (args.dim, args.dim),
              "w1": (args.hidden_dim, args.dim), "w2": (args.dim, args.hidden_dim),
              "w3": (args.hidden_dim, args.dim)}
    for name in parameter_names(args):
        kind = name.split(".")[-2]
        if kind.endswith("norm"):
            t = 1.0 + 0.05 * torch.randn(args.dim, generator=g)
        else:
            shape = shapes[kind]
            # Unit-gain init keeps activations O(1) through 40 fp16 layers (no inf/nan in the timings).
            t = torch.randn(shape, generator=g).mul_(1.0 if kind == "tok_embeddings" else shape[1] ** -0.5)
        # Random weights: HF's rotate-half permutation of q/k would only reorder noise, so none is applied.
        yield hf_name(name), t.to(torch.float16)


def write_random_checkpoint(out: Path, args: Any, tokenizer: Path, *, seed: int = 0,
                            shard_bytes: int = SHARD_BYTES) -> int:
    """Write config.json, safetensors shards + index, tokenizer.model; returns the bytes of weights written."""
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(args.to_hf_config(), indent=2))
    (out / "tokenizer.model").write_bytes(tokenizer.read_bytes())
    shards: list[dict[str, Any]] = [{}]
    sizes = [0]
    files: list[str] = []

    def flush() -> None:
        file = f"model-{len(files) + 1:05d}.safetensors"  # renamed to -of-NNNNN once the count is known
        save_file(shards[-1], str(out / file), metadata={"format": "pt"})
        files.append(file)
        shards[-1] = {}  # drop the tensors: at most one shard is ever held in memory

    weight_map: dict[str, int] = {}
    total = 0
    for name, t in _random_tensors(args, seed):
        nbytes = t.numel() * t.element_size()
        if shards[-1] and sizes[-1] + nbytes > shard_bytes:
            flush()
            sizes.append(0)
        shards[-1][name] = t
        sizes[-1] += nbytes
        weight_map[name] = len(files)
        total += nbytes
    flush()
    names = {}
    for i, file in enumerate(files):
        final = f"model-{i + 1:05d}-of-{len(files):05d}.safetensors"
        (out / file).rename(out / final)
        names[i] = final
    index = {"metadata": {"total_size": total}, "weight_map": {n: names[i] for n, i in weight_map.items()}}
    (out / "model.safetensors.index.json").write_text(json.dumps(index))
    return total


def make_prompts(tokenizer: Path, texts: list[str], sizes: list[int], decode_tokens: int) -> dict[str, Any]:
    """Prompt token lists: BOS + stdlib code, cut to each size; the re-request edits the last tokens."""
    from .tokenizer import Tokenizer

    tok = Tokenizer(tokenizer)
    need = max(sizes + [HIT_SIZE]) + EDITED_TAIL + 1
    ids: list[int] = []
    for text in texts:
        ids += tok.encode(text, bos=False, eos=False)
        if len(ids) >= need:
            break
    if len(ids) < need:
        raise RuntimeError(f"the stdlib corpus gave only {len(ids)} tokens; {need} are needed")
    prompt = [tok.bos_id] + ids
    hit = min(HIT_SIZE, max(sizes))  # the engine's context is sized for the largest prompt
    base = prompt[:hit]
    # The user typed on: the same window with a different ending (the text that follows, shifted).
    edited = base[:-EDITED_TAIL] + prompt[hit:hit + EDITED_TAIL]
    assert edited != base
    return {"sizes": {str(n): prompt[:n] for n in sizes}, "decode": prompt[:min(sizes)],
            "decode_tokens": decode_tokens, "hit_base": base, "hit_edited": edited, "warmup": prompt[:64]}


# --- measurement (inside a worker process) --------------------------------------------------------------


def _peak_mem_mib(device: Any) -> float:
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / 2**20 if sys.platform == "darwin" else maxrss / 2**10  # bytes on macOS, KiB on Linux


def _best(repeats: int, run: Callable[[], float]) -> float:
    # Best of N: on a shared machine the minimum is the least noisy estimate of the code's own cost.
    return min(run() for _ in range(repeats))


def run_ours(ckpt: Path, prompts: dict[str, Any], device_name: str, dtype_name: str, quant: str,
             repeats: int) -> dict[str, Any]:
    import torch

    from .engine import Engine
    from .loader import DTYPES, load_model

    device = torch.device(device_name)
    baseline = _peak_mem_mib(device)
    sizes = [int(n) for n in prompts["sizes"]]
    # The first meta-device op of a process loads torch's meta kernels (~1 s); transformers pays that at
    # import time, outside its clock. Pay it here too, so load_s is the cost of loading this checkpoint.
    t_init = time.perf_counter()
    with torch.device("meta"):
        torch.nn.Embedding(2, 2)
    init_s = time.perf_counter() - t_init
    context = max(sizes + [len(prompts["decode"]) + prompts["decode_tokens"]]) + 8
    t0 = time.perf_counter()
    model, tok = load_model(str(ckpt), device=device, dtype=DTYPES[dtype_name], quant=quant)  # type: ignore[arg-type]
    engine = Engine(model, tok, context_length=context)
    if device.type == "cuda":
        torch.cuda.synchronize()
    res: dict[str, Any] = {"load_s": time.perf_counter() - t0, "meta_init_s": init_s, "context": engine.context_length,
                           "model_bytes": engine.memory_bytes()}
    # Random weights may emit <EOT>/EOS at any step; benchmark a fixed number of decode steps instead.
    tok.stop_ids = frozenset()
    engine.generate(prompts["warmup"], max_new_tokens=4)

    def cold(prompt: list[int], new: int = 1) -> Any:
        engine.reset_cache()
        return engine.generate(prompt, max_new_tokens=new)

    for n in sizes:
        runs = [cold(prompts["sizes"][str(n)]).timings for _ in range(repeats)]
        res[f"ttft_ms@{n}"] = min(t.first_token_ms for t in runs)
        res[f"prefill_tok_s@{n}"] = n / (min(t.prefill_ms for t in runs) / 1000)

    def decode_rate() -> float:
        g = cold(prompts["decode"], prompts["decode_tokens"])
        assert g.timings.new_tokens == prompts["decode_tokens"]
        return (g.timings.new_tokens - 1) / ((g.timings.total_ms - g.timings.first_token_ms) / 1000)
    res["decode_tok_s"] = max(decode_rate() for _ in range(repeats))

    res["rerequest_cold_ms"] = _best(repeats, lambda: cold(prompts["hit_edited"]).timings.first_token_ms)

    def hit() -> float:
        cold(prompts["hit_base"])
        g = engine.generate(prompts["hit_edited"], max_new_tokens=1)
        res["rerequest_cached_tokens"] = g.timings.cached_tokens
        return g.timings.first_token_ms
    res["rerequest_hit_ms"] = _best(repeats, hit)
    res["peak_mem_mib"] = _peak_mem_mib(device)
    res["baseline_mem_mib"] = baseline
    return res


def run_transformers(ckpt: Path, prompts: dict[str, Any], device_name: str, dtype_name: str, quant: str,
                     repeats: int) -> dict[str, Any]:
    import torch
    import transformers
    from transformers import LlamaForCausalLM

    from .loader import DTYPES

    transformers.logging.set_verbosity_error()
    device = torch.device(device_name)
    dtype = DTYPES[dtype_name]
    baseline = _peak_mem_mib(device)
    from packaging.version import Version

    # transformers 4.56 renamed torch_dtype to dtype; older versions would silently ignore `dtype`.
    kwargs: dict[str, Any] = {"dtype" if Version(transformers.__version__) >= Version("4.56") else "torch_dtype": dtype}
    if device.type == "cuda":
        kwargs["device_map"] = {"": device.index or 0}
        if quant in ("nf4", "fp4"):
            kwargs["quantization_config"] = transformers.BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type=quant, bnb_4bit_compute_dtype=dtype)
        elif quant == "int8":
            kwargs["quantization_config"] = transformers.BitsAndBytesConfig(load_in_8bit=True)
    t0 = time.perf_counter()
    model = LlamaForCausalLM.from_pretrained(str(ckpt), **kwargs).eval()
    if device.type == "cuda":
        torch.cuda.synchronize()
    res: dict[str, Any] = {"load_s": time.perf_counter() - t0, "quant": quant if device.type == "cuda" else "none"}

    @torch.inference_mode()
    def gen_ms(prompt: list[int], new: int = 1) -> float:
        ids = torch.tensor([prompt], device=device)
        start = time.perf_counter()
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new, min_new_tokens=new,
                             do_sample=False, pad_token_id=0)
        if device.type == "cuda":
            torch.cuda.synchronize()
        assert out.shape[1] == len(prompt) + new
        return (time.perf_counter() - start) * 1000

    gen_ms(prompts["warmup"], 4)
    for n in [int(n) for n in prompts["sizes"]]:
        # No separate prefill clock in generate(): its first token's latency is the prefill.
        res[f"ttft_ms@{n}"] = _best(repeats, lambda: gen_ms(prompts["sizes"][str(n)]))
        res[f"prefill_tok_s@{n}"] = n / (res[f"ttft_ms@{n}"] / 1000)
    decode, new = prompts["decode"], prompts["decode_tokens"]
    first = _best(repeats, lambda: gen_ms(decode))
    res["decode_tok_s"] = (new - 1) / ((_best(repeats, lambda: gen_ms(decode, new)) - first) / 1000)
    res["rerequest_cold_ms"] = _best(repeats, lambda: gen_ms(prompts["hit_edited"]))

    def hit() -> float:  # transformers keeps no cache between generate() calls: the "hit" is a cold run
        gen_ms(prompts["hit_base"])
        return gen_ms(prompts["hit_edited"])
    res["rerequest_hit_ms"] = _best(repeats, hit)
    res["peak_mem_mib"] = _peak_mem_mib(device)
    res["baseline_mem_mib"] = baseline
    return res


def default_threads() -> int:
    """CPU threads to use: the cores not already busy (1-minute load average), at least one.

    PyTorch's CPU kernels end each op at a barrier; on a shared machine one descheduled thread stalls them all
    (here: 20x slower with 2 threads than with 1 while another process trains). Idle cores only, then.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cores, cores - round(os.getloadavg()[0])))


def worker_main(ns: argparse.Namespace) -> None:
    import torch

    if ns.threads:
        torch.set_num_threads(ns.threads)
    prompts = json.loads(Path(ns.prompts).read_text())
    run = run_ours if ns.worker == "ours" else run_transformers
    res = run(Path(ns.ckpt), prompts, ns.device, ns.dtype, ns.quant, ns.repeats)
    Path(ns.result).write_text(json.dumps(res))


# --- driver ---------------------------------------------------------------------------------------------


def _spawn(side: str, ckpt: Path, prompts: Path, work: Path, ns: argparse.Namespace, device: str, dtype: str,
           quant: str) -> dict[str, Any] | None:
    result = work / f"{side}.json"
    cmd = [sys.executable, "-m", "model.bench", "--worker", side, "--ckpt", str(ckpt), "--prompts", str(prompts),
           "--result", str(result), "--device", device, "--dtype", dtype, "--quant", quant,
           "--repeats", str(ns.repeats), "--threads", str(ns.threads)]
    # Run from the directory that holds this package, so `-m model.bench` finds it installed or not.
    proc = subprocess.run(cmd, cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True)
    if proc.returncode != 0 or not result.exists():
        print(f"[{side}] failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}", file=sys.stderr)
        return None
    return json.loads(result.read_text())


def _fmt(v: float | None) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}" if abs(v) < 1 else f"{v:.1f}"


def format_table(report: dict[str, Any]) -> str:
    ours, theirs = report["ours"], report.get("transformers") or {}
    rows = [("metric", "ours", "transformers", "ours/theirs", "")]
    for key, label, higher in METRICS:
        a, b = ours.get(key), theirs.get(key)
        if a is None and b is None:
            continue
        ratio = a / b if a is not None and b else None
        better = "" if ratio is None else ("better" if (ratio > 1) == higher and ratio != 1 else "")
        rows.append((label, _fmt(a), _fmt(b), "-" if ratio is None else f"{ratio:.2f}x", better))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
             for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m model.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--shape", choices=sorted(SHAPES), default="tiny")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--quant", default="auto", help="auto (nf4 on CUDA, none on CPU), nf4, fp4, int8, none")
    p.add_argument("--dtype", default="auto", help="auto (bf16/fp16 on CUDA, float32 on CPU), float32, bfloat16, "
                                                   "float16")
    p.add_argument("--json", type=Path, help="also write every number to this file")
    p.add_argument("--sizes", default=",".join(map(str, PROMPT_SIZES)), help="prompt sizes for TTFT")
    p.add_argument("--decode-tokens", type=int, help="tokens per decode run (default 32 tiny, 128 otherwise)")
    p.add_argument("--repeats", type=int, help="runs per figure, best kept (default 3 tiny, 2 otherwise)")
    p.add_argument("--no-reference", action="store_true", help="skip transformers")
    p.add_argument("--workdir", type=Path, help="build the checkpoint here and keep it (default: a temp dir)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="CPU threads per side (default: idle cores on CPU; torch's own on "
                                               "CUDA)")
    # Worker mode (internal): one side's measurements in a fresh process.
    p.add_argument("--worker", choices=["ours", "transformers"], help=argparse.SUPPRESS)
    p.add_argument("--ckpt", help=argparse.SUPPRESS)
    p.add_argument("--prompts", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    ns = p.parse_args(argv)
    if ns.worker:
        worker_main(ns)
        return 0

    import torch

    from .config import ModelArgs
    from .loader import resolve_device, resolve_dtype, resolve_quant

    device = resolve_device(ns.device)
    dtype = resolve_dtype(ns.dtype, device)
    quant = resolve_quant(ns.quant, device)
    dtype_name = str(dtype).removeprefix("torch.")
    ns.repeats = ns.repeats or (3 if ns.shape == "tiny" else 2)
    if ns.threads is None and device.type == "cpu":
        ns.threads = default_threads()  # decided before we add load of our own
    ns.threads = ns.threads or 0  # 0: leave torch's default
    decode_tokens = ns.decode_tokens or (32 if ns.shape == "tiny" else 128)
    args = ModelArgs(vocab_size=VOCAB, norm_eps=1e-5, rope_theta=1e6, **SHAPES[ns.shape])
    requested = [int(s) for s in ns.sizes.split(",") if s.strip()]
    sizes = [n for n in requested if n < args.max_seq_len]
    skipped = [n for n in requested if n not in sizes]
    if not sizes:
        p.error(f"no prompt size fits the context of {args.max_seq_len}")

    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        work = ns.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        ckpt = work / f"random-{ns.shape}"
        t0 = time.perf_counter()
        texts = stdlib_texts()
        tokenizer = build_tokenizer(work / "tokenizer.model", texts)
        weight_bytes = write_random_checkpoint(ckpt, args, tokenizer, seed=ns.seed)
        build_s = time.perf_counter() - t0
        prompts_file = work / "prompts.json"
        prompts = make_prompts(tokenizer, texts, sizes, decode_tokens)
        prompts_file.write_text(json.dumps(prompts))
        print(f"checkpoint: {ns.shape} ({weight_bytes / 2**30:.2f} GiB fp16, built in {build_s:.1f}s) "
              f"device={device} dtype={dtype_name} quant={quant}", flush=True)

        ours = _spawn("ours", ckpt, prompts_file, work, ns, str(device), dtype_name, quant)
        if ours is None:
            return 1
        theirs = None
        reference = "skipped (--no-reference)" if ns.no_reference else "transformers is not installed"
        if not ns.no_reference and importlib.util.find_spec("transformers") is not None:
            theirs = _spawn("transformers", ckpt, prompts_file, work, ns, str(device), dtype_name, quant)
            reference = "failed (see above)" if theirs is None else (
                f"transformers LlamaForCausalLM, {dtype_name}, "
                + (f"bitsandbytes {theirs['quant']}" if theirs["quant"] != "none" else "no quantization"))

    report: dict[str, Any] = {
        "shape": ns.shape, "args": args.to_dict(), "device": str(device), "dtype": dtype_name, "quant": quant,
        "checkpoint_bytes": weight_bytes, "checkpoint_build_s": build_s, "prompt_sizes": sizes,
        "skipped_sizes": skipped, "decode_tokens": decode_tokens, "repeats": ns.repeats,
        "rerequest_prompt_tokens": len(prompts["hit_base"]), "reference": reference,
        "ours": ours, "transformers": theirs,
        "ratios": {k: ours[k] / theirs[k] for k, _, _ in METRICS if theirs and ours.get(k) and theirs.get(k)},
        "env": {"python": platform.python_version(), "torch": torch.__version__,
                "cpu_threads": ns.threads or torch.get_num_threads(), "load_average": os.getloadavg()[0],
                "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None},
    }
    print(f"reference: {reference}")
    print(f"prompt sizes {sizes}" + (f" (skipped, beyond the {args.max_seq_len}-token context: {skipped})"
                                      if skipped else "")
          + f"; decode {decode_tokens} tokens after a {min(sizes)}-token prompt; best of {ns.repeats}; "
          f"{report['env']['cpu_threads']} CPU threads")
    print(f"re-request: a {report['rerequest_prompt_tokens']}-token prompt whose last {EDITED_TAIL} tokens changed; "
          f"the prefix hit reused {ours.get('rerequest_cached_tokens')} cached tokens")
    peak_note = "CUDA max_memory_allocated" if device.type == "cuda" else "process RSS high-water mark"
    print(f"peak memory: {peak_note}" + ("" if device.type == "cuda" else
                                         f" (ours {ours['baseline_mem_mib']:.0f} MiB before loading)"))
    print()
    print(format_table(report))
    if ns.json:
        ns.json.write_text(json.dumps(report, indent=2))
        print(f"\nwrote {ns.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
