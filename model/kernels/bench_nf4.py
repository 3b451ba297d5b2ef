"""Time 4-bit matmuls of a few rows on Code Llama's layer shapes: our Triton kernel (several tiles) against
bitsandbytes' own kernel and against dequantize + bf16 matmul, each replayed in a CUDA graph.

    python -m model.kernels.bench_nf4 [--shape 7b|13b] [--rows 1,4,8] [--json PATH]

Reports microseconds per call and the bandwidth of the weight bytes read (packed weights + 8-bit scales):
the roofline for a 4-bit GEMV is the GPU's memory bandwidth.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import torch

SHAPES = {  # (name, out_features, in_features) of the fused layers our model runs
    "7b": [("wqkv", 12288, 4096), ("wo", 4096, 4096), ("w13", 22016, 4096), ("w2", 4096, 11008)],
    "13b": [("wqkv", 15360, 5120), ("wo", 5120, 5120), ("w13", 27648, 5120), ("w2", 5120, 13824)],
}
TILES = {  # rows -> (BLOCK_N, BLOCK_K, num_warps) tried
    1: [(4, 512, 4), (8, 512, 4), (16, 512, 4), (32, 256, 4), (8, 1024, 4), (16, 1024, 8), (4, 1024, 2),
        (16, 256, 4)],
    4: [(4, 256, 4), (8, 256, 4), (16, 128, 4), (8, 128, 4)],
    8: [(4, 256, 4), (8, 128, 4), (4, 128, 4), (16, 128, 8)],
}


def graph_us(fn: Callable[[], object], rep_ms: int = 50) -> float:
    """Median microseconds of one call of `fn`, captured in a CUDA graph and replayed for about `rep_ms`
    milliseconds (triton.testing.do_bench_cudagraph)."""
    import triton.testing

    return triton.testing.do_bench_cudagraph(fn, rep=rep_ms, return_mode="median") * 1000


def main(argv: list[str] | None = None) -> None:
    import bitsandbytes as bnb
    from bitsandbytes import functional as BF

    from .nf4_triton import nf4_matmul

    p = argparse.ArgumentParser(prog="python -m model.kernels.bench_nf4", description=__doc__.split("\n\n")[0])
    p.add_argument("--shape", choices=sorted(SHAPES), default="7b")
    p.add_argument("--rows", default="1,4,8")
    p.add_argument("--json", type=Path)
    a = p.parse_args(argv)
    dev = torch.device("cuda")
    results = []
    for name, n, k in SHAPES[a.shape]:
        w = torch.randn(n, k, device=dev, dtype=torch.bfloat16) * 0.02
        layer = bnb.nn.Linear4bit(k, n, bias=False, compute_dtype=torch.bfloat16, quant_type="nf4",
                                  compress_statistics=True)
        layer.weight = bnb.nn.Params4bit(w.cpu(), requires_grad=False, quant_type="nf4", blocksize=64,
                                         compress_statistics=True)
        layer = layer.to(dev)
        packed, state = layer.weight, layer.weight.quant_state
        weight_bytes = n * k // 2 + state.absmax.numel() * state.absmax.element_size()
        for rows in [int(r) for r in a.rows.split(",")]:
            x = torch.randn(rows, k, device=dev, dtype=torch.bfloat16)
            want = (x.float() @ BF.dequantize_4bit(packed, state).float().T)
            row = {"layer": name, "n": n, "k": k, "rows": rows}
            with torch.inference_mode():
                row["bnb_us"] = graph_us(lambda: layer(x))
                row["dequant_matmul_us"] = graph_us(lambda: x @ BF.dequantize_4bit(packed, state).T)
                best = None
                for bn, bk, warps in TILES.get(rows, TILES[8]):
                    got = nf4_matmul(x, packed, state, block_n=bn, block_k=bk, num_warps=warps).float()
                    err = ((got - want).norm() / want.norm()).item()
                    us = graph_us(lambda: nf4_matmul(x, packed, state, block_n=bn, block_k=bk, num_warps=warps))
                    row[f"triton_{bn}x{bk}w{warps}_us"] = us
                    if err < 1e-2 and (best is None or us < best[0]):
                        best = (us, f"{bn}x{bk}w{warps}")
                    assert err < 1e-2, (name, rows, bn, bk, err)
            row["triton_best_us"], row["triton_best_tile"] = best
            for key in ("bnb_us", "dequant_matmul_us", "triton_best_us"):
                row[key.replace("_us", "_gb_s")] = weight_bytes / (row[key] * 1e-6) / 1e9
            results.append(row)
            print(f"{name:5s} {n:6d}x{k:<6d} rows={rows}: bnb {row['bnb_us']:7.1f} us "
                  f"({row['bnb_gb_s']:6.0f} GB/s)  dequant+mm {row['dequant_matmul_us']:7.1f} us  "
                  f"triton {row['triton_best_us']:7.1f} us ({row['triton_best_gb_s']:6.0f} GB/s, "
                  f"{row['triton_best_tile']})", flush=True)
    if a.json:
        a.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
