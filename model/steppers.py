"""How the engine runs the model: eager forwards, or replays of CUDA graphs captured while loading.

A stepper runs a few tokens at given cache positions and returns their logits; the engine decides what to
run. On a GPU a 4-bit decode step is hundreds of small kernels, and launching them costs more than running
them (a 32-layer bitsandbytes stack: ~30 ms per token eager, ~5 ms replayed as one graph). A graph needs
fixed shapes, so steps of 1..16 tokens are padded to a few sizes, and attention reads a fixed number of
cache positions (a bucket at or above the last position, masked): a handful of graphs covers every step.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from typing import Protocol

import torch
from torch import Tensor

from .llama import Transformer

Progress = Callable[[float, str], None]
GRAPH_TOKENS = (1, 2, 4, 8, 16)  # step sizes captured; a step of T tokens runs in the smallest size >= T


class Stepper(Protocol):
    def __call__(self, tokens: list[int], start: int, *, all_logits: bool = False) -> Tensor:
        """Run `tokens` at cache positions start, start+1, ...; return float32 logits of the last position
        (1, vocab), or of every position (T, vocab) with all_logits. Valid until the next call."""
        ...

    def warmup(self, progress: Progress | None = None) -> None:
        """Do the one-time work (kernel selection, graph capture) now rather than in the first request."""
        ...


class EagerStepper:
    def __init__(self, model: Transformer) -> None:
        self.model = model
        self.device = model.tok_embeddings.weight.device

    @torch.inference_mode()
    def __call__(self, tokens: list[int], start: int, *, all_logits: bool = False) -> Tensor:
        idx = torch.tensor([tokens], dtype=torch.long, device=self.device)
        input_pos = torch.arange(start, start + len(tokens), device=self.device)
        # Attend to exactly the filled part of the cache: the least work when shapes may change every call.
        return self.model(idx, input_pos, kv_len=start + len(tokens), last_only=not all_logits)[0]

    def warmup(self, progress: Progress | None = None) -> None:
        self(list(range(min(8, self.model.cache_len))), 0)  # first-call costs: allocator, kernels, libraries
        if progress:
            progress(1.0, "warm-up")


def kv_buckets(cache_len: int, smallest: int = 256) -> list[int]:
    """Cache lengths attention is captured at: 4 steps per power of two (at most 25% read past the end)."""
    buckets: set[int] = set()
    size = smallest
    while size < cache_len:
        buckets.update(min(size + i * size // 4, cache_len) for i in range(4))
        size *= 2
    buckets.add(cache_len)
    return sorted(buckets)


class StaticStepper:
    """Steps of up to 16 tokens run at fixed shapes, replayed as CUDA graphs once captured; longer prefills run
    eagerly. Without capture (any device) the same shapes run as plain forwards: that is how the padding and
    bucketing are tested on the CPU."""

    def __init__(self, model: Transformer, *, capture: bool = True,
                 token_sizes: tuple[int, ...] = GRAPH_TOKENS) -> None:
        assert model.cache_len, "set up the KV cache first"
        self.model = model
        self.eager = EagerStepper(model)
        self.device = self.eager.device
        self.capture = capture
        if capture and self.device.type != "cuda":
            raise ValueError("CUDA graphs need the model on a CUDA device")
        self.token_sizes = token_sizes
        fine = kv_buckets(model.cache_len)
        coarse = sorted({b for b in fine if b & (b - 1) == 0} | {model.cache_len})
        # Decode (1 token) is every step of every completion: fine buckets. Longer steps are rarer: powers of two.
        self.buckets = {size: fine if size == 1 else coarse for size in token_sizes}
        width = max(token_sizes)
        # Static inputs: row 0 token ids, row 1 positions; filled from (pinned) host memory by one copy a step.
        self.inputs = torch.zeros(2, width, dtype=torch.long, device=self.device)
        self.staging = torch.zeros(2, width, dtype=torch.long, pin_memory=capture)
        self.copied = torch.cuda.Event() if capture else None
        self.graphs: dict[tuple[int, int], tuple[torch.cuda.CUDAGraph, Tensor]] = {}
        self._rope = model.rope  # replaced, with the KV cache, only when the cache is set up anew

    @torch.inference_mode()
    def warmup(self, progress: Progress | None = None) -> None:
        """Capture every (step size, bucket) graph; all share one memory pool, which is safe because they never
        run concurrently and each one's output is read before the next replay."""
        if not self.capture:
            self.eager.warmup(progress)
            return
        shapes = [(size, kv) for size in self.token_sizes for kv in self.buckets[size]]
        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):  # lazy initialisation (cuBLAS handles, kernel choice, Triton builds)
            for size in self.token_sizes:
                for _ in range(2):
                    self._forward(size, self.buckets[size][-1])
        torch.cuda.current_stream(self.device).wait_stream(stream)
        pool = None
        for k, (size, kv) in enumerate(shapes):
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=pool):
                logits = self._forward(size, kv)
            pool = graph.pool()
            self.graphs[(size, kv)] = (graph, logits)
            if progress:
                progress((k + 1) / len(shapes), f"captured {size}-token step at {kv} positions")
        torch.cuda.synchronize(self.device)

    def _forward(self, size: int, kv_len: int) -> Tensor:
        return self.model(self.inputs[:1, :size], self.inputs[1, :size], kv_len=kv_len)[0]  # (size, vocab)

    @torch.inference_mode()
    def __call__(self, tokens: list[int], start: int, *, all_logits: bool = False) -> Tensor:
        if self.graphs and self.model.rope is not self._rope:
            # The graphs hold the old cache's addresses: replaying them would read and write freed memory.
            raise RuntimeError("the model's KV cache was set up anew (another engine, of another context length, "
                               "on the same model?) after these CUDA graphs were captured over the old one")
        n = len(tokens)
        size = next((s for s in self.token_sizes if s >= n), 0)
        buckets = self.buckets.get(size, [])
        i = bisect.bisect_left(buckets, start + size)
        if not size or i == len(buckets):
            return self.eager(tokens, start, all_logits=all_logits)
        kv_len = buckets[i]
        # Padding repeats the last token at the following positions: those cache slots are past the end of
        # the sequence, masked from every real query, and overwritten when real tokens reach them.
        if self.copied is not None:
            self.copied.synchronize()  # the previous step's copy has left the staging buffer
        self.staging[0, :n] = torch.as_tensor(tokens)
        self.staging[0, n:size] = tokens[-1]
        torch.arange(start, start + size, out=self.staging[1, :size])
        self.inputs[:, :size].copy_(self.staging[:, :size], non_blocking=self.capture)
        if self.copied is not None:
            self.copied.record()
        if (size, kv_len) in self.graphs:
            graph, logits = self.graphs[(size, kv_len)]
            graph.replay()
        else:
            logits = self._forward(size, kv_len)
        return logits[:n] if all_logits else logits[n - 1:n]


def make_stepper(model: Transformer, *, graphs: bool | None = None) -> Stepper:
    """CUDA graphs on a CUDA model (unless graphs=False), eager forwards otherwise."""
    on_cuda = model.tok_embeddings.weight.device.type == "cuda"
    if graphs and not on_cuda:
        raise ValueError("CUDA graphs need the model on a CUDA device")
    return StaticStepper(model) if (on_cuda if graphs is None else graphs) else EagerStepper(model)
