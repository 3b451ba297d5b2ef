"""Benchmark our loader + engine against the seed recipe (transformers + bitsandbytes) on a random checkpoint.

    codellama-lsp bench --shape tiny|7b|13b [--layout hf|meta --shards N] --device auto|cpu|cuda \
        --quant auto|nf4|fp4|int8|none --dtype auto|float32|bfloat16|float16 [--json PATH]

The checkpoint (random fp16 weights of the named shape, a 32016-piece tokenizer trained on the Python
standard library) is written once; Hugging Face layout streams into size-capped safetensors shards, Meta
layout into model-parallel consolidated.NN.pth shards (transformers reads only the former, so for
`--layout meta` the reference gets an HF copy of the same weights, written after ours has run).

Each side runs in its own subprocess, so that load time and peak memory (CUDA max_memory_allocated, and the
process's RSS high-water mark) belong to that side alone. Our side measures each engine variant on one load.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from .fixtures import EDITED_TAIL, VOCAB

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
    ("peak_gpu_mib", "peak GPU memory (MiB)", False),
    ("peak_rss_mib", "peak host RSS (MiB)", False),
    ("decode_tok_s", "decode tok/s", True),
    ("ttft_ms", "time to first token (ms)", False),
    ("prefill_tok_s", "prefill tok/s", True),
    ("rerequest_cold_ms", "re-request, cold (ms)", False),
    ("rerequest_hit_ms", "re-request, prefix hit (ms)", False),
    ("warmup_s", "warm-up + graph capture (s)", False),
]


def default_threads() -> int:
    """CPU threads to use: the cores not already busy (1-minute load average), at least one.

    PyTorch's CPU kernels end each op at a barrier; on a shared machine one descheduled thread stalls them all
    (here: 20x slower with 2 threads than with 1 while another process trains). Idle cores only, then.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cores, cores - round(os.getloadavg()[0])))


def worker_main(ns: argparse.Namespace) -> None:
    import torch

    from .sides import SIDES

    if ns.threads:
        torch.set_num_threads(ns.threads)
    prompts = json.loads(Path(ns.prompts).read_text())
    res = SIDES[ns.worker](Path(ns.ckpt), prompts, ns.device, ns.dtype, ns.quant, ns.repeats, ns.context)
    Path(ns.result).write_text(json.dumps(res))


def _spawn(side: str, ckpt: Path, prompts: Path, work: Path, ns: argparse.Namespace, device: str, dtype: str,
           quant: str) -> tuple[dict[str, Any] | None, str]:
    """Run one side in a fresh process: (its results, "") or (None, why it failed)."""
    result = work / f"{side}.json"
    cmd = [sys.executable, "-m", "model.bench", "--worker", side, "--ckpt", str(ckpt), "--prompts", str(prompts),
           "--result", str(result), "--device", device, "--dtype", dtype, "--quant", quant,
           "--repeats", str(ns.repeats), "--threads", str(ns.threads), "--context", str(ns.context)]
    # Run from the directory that holds this package, so `-m model.bench` finds it installed or not.
    proc = subprocess.run(cmd, cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True)
    if proc.returncode != 0 or not result.exists():
        return None, f"exit {proc.returncode}: {proc.stderr.strip()[-3000:]}"
    return json.loads(result.read_text()), ""


def _fmt(v: float | None) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}" if abs(v) < 1 else f"{v:.1f}"


def _rows(report: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(value key, label, higher is better), with the per-size metrics expanded."""
    rows = []
    for key, label, higher in METRICS:
        if key in ("ttft_ms", "prefill_tok_s"):
            rows += [(f"{key}@{n}", f"{label} @{n}", higher) for n in report["prompt_sizes"]]
        else:
            rows.append((key, label, higher))
    return rows


def _value(side: dict[str, Any], variant: str, key: str) -> float | None:
    figures = side["variants"][variant]
    if key in figures:
        return figures[key]
    if key == "peak_gpu_mib" and side.get("load_peak_gpu_mib") is not None:  # the load counts too
        return max(side["load_peak_gpu_mib"], figures.get(key) or 0)
    return side.get(key)


def format_table(report: dict[str, Any]) -> str:
    ours, theirs = report["ours"], report.get("transformers")
    columns = [("ours", v) for v in ours["variants"]] + ([("theirs", "transformers")] if theirs else [])
    header = [f"ours: {v}" if s == "ours" else "seed recipe" for s, v in columns]
    rows = [["metric", *header] + (["best ours / seed"] if theirs else [])]
    for key, label, higher in _rows(report):
        values = [_value(ours if s == "ours" else theirs, v, key) for s, v in columns]
        if all(v is None for v in values):
            continue
        row = [label, *map(_fmt, values)]
        if theirs:
            mine = [v for (s, _), v in zip(columns, values) if s == "ours" and v is not None]
            base = values[-1]
            best = (max if higher else min)(mine) if mine else None
            row.append(f"{best / base:.2f}x" if best is not None and base else "-")
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
             for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="codellama-lsp bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--shape", choices=sorted(SHAPES), default="tiny", help="model shape (default tiny)")
    p.add_argument("--layout", choices=("hf", "meta"), default="hf", help="checkpoint layout to load (default hf)")
    p.add_argument("--shards", type=int, default=1, help="model-parallel shards for --layout meta (13B has 2)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--quant", default="auto", help="auto (nf4 on CUDA, none on CPU), nf4, fp4, int8, none")
    p.add_argument("--dtype", default="auto", help="auto (bf16/fp16 on CUDA, float32 on CPU), float32, bfloat16, "
                                                   "float16")
    p.add_argument("--json", type=Path, help="also write every number to this file")
    p.add_argument("--sizes", default="512,1536,3072", help="prompt sizes for time to first token")
    p.add_argument("--context", type=int, default=4096, help="KV cache size in tokens (default 4096)")
    p.add_argument("--decode-context", type=int, default=1024, help="prompt tokens before decoding (default 1024)")
    p.add_argument("--decode-tokens", type=int, help="tokens per decode run (default 32 tiny, 128 otherwise)")
    p.add_argument("--repeats", type=int, help="runs per figure, best kept (default 3 tiny, 2 otherwise)")
    p.add_argument("--no-reference", action="store_true", help="skip the seed recipe (transformers)")
    p.add_argument("--workdir", type=Path, help="build the checkpoint here and keep it (default: a temp dir)")
    p.add_argument("--seed", type=int, default=0, help="random weights' seed")
    p.add_argument("--threads", type=int, help="CPU threads per side (default: idle cores on CPU; torch's own on "
                                               "CUDA)")
    # Worker mode (internal): one side's measurements in a fresh process.
    p.add_argument("--worker", choices=["ours", "transformers"], help=argparse.SUPPRESS)
    p.add_argument("--ckpt", help=argparse.SUPPRESS)
    p.add_argument("--prompts", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    ns = p.parse_args(argv)
    if ns.worker:
        worker_main(ns)
        return 0
    if ns.json is not None and (ns.json.is_dir() or not ns.json.parent.is_dir()):  # known now, not after the run
        p.error(f"--json {ns.json}: not a file in an existing directory")
    if str(ns.json) == "-":  # the other tools' stdout: bench's stdout is its table, printed as it runs
        p.error("--json -: bench writes its JSON to a file only (its table goes to stdout); give a path")

    import importlib.util

    import torch

    from ..config import ModelArgs
    from ..loader import NotEnoughMemory, available_memory, fit_in_memory, resolve_device, resolve_dtype, resolve_quant
    from .fixtures import build_tokenizer, make_prompts, stdlib_texts, write_random_checkpoint

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
    sizes = [n for n in requested if n + 1 < ns.context]
    skipped = [n for n in requested if n not in sizes]
    if ns.context > args.max_seq_len:
        p.error(f"--context {ns.context} exceeds the model's {args.max_seq_len}")
    if device.type == "cpu":  # before a 13.5 GB checkpoint is written for a load the memory cannot hold
        try:
            dtype = fit_in_memory(args, dtype=ns.dtype, quant=quant, context_length=ns.context,
                                  available=available_memory())
        except NotEnoughMemory as e:
            p.error(str(e))
        dtype_name = str(dtype).removeprefix("torch.")
    if not sizes or ns.decode_context + decode_tokens >= ns.context:
        p.error(f"prompts and decoding must fit the context of {ns.context} tokens")
    reference = not ns.no_reference
    if reference and importlib.util.find_spec("transformers") is None:  # a baseline never drops out silently
        p.error("the baseline (the seed recipe) needs transformers: pip install -e '.[bench]', "
                "or --no-reference to measure ours alone")

    # Progress by stage, on stderr and only on a terminal; each side measures in its own process, undisturbed.
    stages = tqdm(total=2 + reference, desc="bench: building the checkpoint", unit="stage", leave=False,
                  disable=None, bar_format="{desc} ({n_fmt}/{total_fmt} stages done, {elapsed})")
    with stages, tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        work = ns.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        ckpt = work / f"random-{ns.shape}-{ns.layout}"
        t0 = time.perf_counter()
        texts = stdlib_texts()
        tokenizer = build_tokenizer(work / "tokenizer.model", texts)
        weight_bytes = write_random_checkpoint(ckpt, args, tokenizer, layout=ns.layout, shards=ns.shards,
                                               seed=ns.seed)
        build_s = time.perf_counter() - t0
        prompts_file = work / "prompts.json"
        prompts = make_prompts(tokenizer, texts, sizes, ns.decode_context, decode_tokens)
        prompts_file.write_text(json.dumps(prompts))
        tqdm.write(f"checkpoint: {ns.shape}, {ns.layout} layout"
                   + (f", {ns.shards} shards" if ns.layout == "meta" else "")
                   + f" ({weight_bytes / 2**30:.2f} GiB fp16, built in {build_s:.1f}s); device={device} "
                   f"dtype={dtype_name} quant={quant}", file=sys.stdout)
        sys.stdout.flush()
        stages.update()
        stages.set_description_str("bench: measuring ours")
        ours, why = _spawn("ours", ckpt, prompts_file, work, ns, str(device), dtype_name, quant)
        if ours is None:
            tqdm.write(f"our side failed ({why})", file=sys.stderr)
            return 1
        stages.update()
        theirs = None
        if reference:
            stages.set_description_str("bench: measuring the seed recipe (transformers)")
            if ns.layout != "hf":  # transformers reads HF layout only: the same weights, rewritten
                shutil.rmtree(ckpt)
                ckpt = work / f"random-{ns.shape}-hf"
                write_random_checkpoint(ckpt, args, tokenizer, seed=ns.seed)
            theirs, why = _spawn("transformers", ckpt, prompts_file, work, ns, str(device), dtype_name, quant)
            if theirs is None:  # a comparison without its baseline is no comparison: say so, and fail
                tqdm.write(f"the seed recipe (transformers) failed ({why})", file=sys.stderr)
            stages.update()

    report: dict[str, Any] = {
        "shape": ns.shape, "layout": ns.layout, "shards": ns.shards, "args": args.to_dict(), "device": str(device),
        "dtype": dtype_name, "quant": ours["quant"], "checkpoint_bytes": weight_bytes,
        "checkpoint_build_s": build_s, "prompt_sizes": sizes, "skipped_sizes": skipped, "context": ns.context,
        "decode_context": ns.decode_context, "decode_tokens": decode_tokens, "repeats": ns.repeats,
        "rerequest_prompt_tokens": len(prompts["hit_base"]), "ours": ours, "transformers": theirs,
        "env": {"python": platform.python_version(), "torch": torch.__version__,
                "cpu_threads": ns.threads or torch.get_num_threads(), "load_average": os.getloadavg()[0],
                "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None},
    }
    ref_text = ("seed recipe: transformers LlamaForCausalLM + generate(), " + theirs["quant"]) if theirs else \
        ("seed recipe: skipped" if not reference else "seed recipe: FAILED (see above)")
    print(f"ours: {ours['quant']}; {ref_text}")
    print(f"prompt sizes {sizes}" + (f" (skipped, beyond the context: {skipped})" if skipped else "")
          + f"; decode {decode_tokens} tokens after a {ns.decode_context}-token prompt; KV cache {ns.context}; "
          f"best of {ns.repeats}; {report['env']['cpu_threads']} CPU threads"
          + (f"; {report['env']['gpu']}" if report["env"]["gpu"] else ""))
    hits = {v: f.get("rerequest_cached_tokens") for v, f in ours["variants"].items()}
    print(f"re-request: a {report['rerequest_prompt_tokens']}-token prompt whose last {EDITED_TAIL} tokens changed; "
          f"the prefix hit reused {max(hits.values(), default=None)} cached tokens")
    print()
    print(format_table(report))
    if ns.json:
        ns.json.write_text(json.dumps(report, indent=2))
        print(f"\nwrote {ns.json}")
    return 1 if reference and theirs is None else 0
