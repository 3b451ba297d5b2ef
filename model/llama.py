"""The Llama transformer behind Code Llama, in plain PyTorch.

Parameter names follow Meta's checkpoints (tok_embeddings, layers.N.attention.wq, ...), so Meta weights
load as they are. Rotary embeddings rotate interleaved pairs (Meta's layout); Hugging Face checkpoints,
whose q/k rows are permuted for rotate-half, are un-permuted by the loader.

Inference keeps a static KV cache as module buffers and takes explicit positions, so one forward serves
prefill (T prompt tokens) and decode (T = 1). The q/k/v projections run as one fused matmul (wqkv), and so
do the SwiGLU gate and up projections (w13): fewer, larger kernels, which is what a GPU decode step needs.
Checkpoints keep Meta's separate names; `fuse_state` / `split_state` convert between the two.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import ModelArgs


class KVCache(nn.Module):
    def __init__(self, batch: int, seq_len: int, n_kv_heads: int, head_dim: int, dtype: torch.dtype) -> None:
        super().__init__()
        shape = (batch, n_kv_heads, seq_len, head_dim)
        self.register_buffer("k_cache", torch.zeros(shape, dtype=dtype), persistent=False)
        self.register_buffer("v_cache", torch.zeros(shape, dtype=dtype), persistent=False)

    def update(self, input_pos: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        # input_pos: (T,); k, v: (B, n_kv_heads, T, head_dim)
        self.k_cache.index_copy_(2, input_pos, k.to(self.k_cache.dtype))
        self.v_cache.index_copy_(2, input_pos, v.to(self.v_cache.dtype))
        return self.k_cache, self.v_cache


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).type_as(x) * self.weight


def rope_table(seq_len: int, head_dim: int, theta: float) -> Tensor:
    """cos/sin of every position and frequency: (seq_len, head_dim // 2, 2), float32."""
    freqs = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float32), freqs)
    return torch.stack([angles.cos(), angles.sin()], dim=-1)


def apply_rope(x: Tensor, rope: Tensor) -> Tensor:
    # x: (B, T, n_heads, head_dim); rope: (T, head_dim // 2, 2). Rotates pairs (x[2i], x[2i+1]).
    pairs = x.float().reshape(*x.shape[:-1], -1, 2)
    cos, sin = rope[None, :, None, :, 0], rope[None, :, None, :, 1]
    real, imag = pairs[..., 0], pairs[..., 1]
    out = torch.stack([real * cos - imag * sin, imag * cos + real * sin], dim=-1)
    return out.flatten(3).type_as(x)


class Attention(nn.Module):
    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = args.n_heads, args.n_kv_heads, args.head_dim
        self.q_size, self.kv_size = args.n_heads * args.head_dim, args.n_kv_heads * args.head_dim
        self.wqkv = nn.Linear(args.dim, self.q_size + 2 * self.kv_size, bias=False)  # rows: wq | wk | wv
        self.wo = nn.Linear(self.q_size, args.dim, bias=False)
        self.kv_cache: KVCache | None = None

    def forward(self, x: Tensor, rope: Tensor, mask: Tensor | None, input_pos: Tensor | None,
                kv_len: int | None) -> Tensor:
        B, T, _ = x.shape  # x: (B, T, dim)
        q, k, v = self.wqkv(x).split([self.q_size, self.kv_size, self.kv_size], dim=-1)
        q = apply_rope(q.view(B, T, self.n_heads, self.head_dim), rope)
        k = apply_rope(k.view(B, T, self.n_kv_heads, self.head_dim), rope)
        v = v.view(B, T, self.n_kv_heads, self.head_dim)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, heads, T, head_dim)
        gqa = self.n_kv_heads != self.n_heads
        if self.kv_cache is not None:
            assert input_pos is not None and kv_len is not None, "a model with a KV cache needs input_pos, kv_len"
            k_all, v_all = self.kv_cache.update(input_pos, k, v)  # (B, n_kv_heads, cache_len, head_dim)
            if mask is None:  # a prefill from position 0: the new keys are the whole context
                y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)
            else:
                k, v = k_all[:, :, :kv_len], v_all[:, :, :kv_len]
                y = F.scaled_dot_product_attention(q, k.to(q.dtype), v.to(q.dtype), attn_mask=mask,
                                                   enable_gqa=gqa)
        else:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)
        return self.wo(y.transpose(1, 2).reshape(B, T, -1))


class FeedForward(nn.Module):
    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        self.hidden_dim = args.hidden_dim
        self.w13 = nn.Linear(args.dim, 2 * args.hidden_dim, bias=False)  # rows: w1 (gate) | w3 (up)
        self.w2 = nn.Linear(args.hidden_dim, args.dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        gate, up = self.w13(x).split(self.hidden_dim, dim=-1)  # (B, T, hidden_dim) each
        return self.w2(F.silu(gate) * up)


class TransformerBlock(nn.Module):
    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        self.attention = Attention(args)
        self.feed_forward = FeedForward(args)
        self.attention_norm = RMSNorm(args.dim, args.norm_eps)
        self.ffn_norm = RMSNorm(args.dim, args.norm_eps)

    def forward(self, x: Tensor, rope: Tensor, mask: Tensor | None, input_pos: Tensor | None,
                kv_len: int | None) -> Tensor:
        h = x + self.attention(self.attention_norm(x), rope, mask, input_pos, kv_len)
        return h + self.feed_forward(self.ffn_norm(h))


class Transformer(nn.Module):
    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        self.args = args
        self.tok_embeddings = nn.Embedding(args.vocab_size, args.dim)
        self.layers = nn.ModuleList(TransformerBlock(args) for _ in range(args.n_layers))
        self.norm = RMSNorm(args.dim, args.norm_eps)
        self.output = nn.Linear(args.dim, args.vocab_size, bias=False)
        self.cache_len = 0
        # Not registered as buffers: they are rebuilt by setup_caches, never loaded from a checkpoint.
        self.rope: Tensor | None = None
        self.positions: Tensor | None = None  # arange(cache_len): the key positions that masks compare against
        self.register_load_state_dict_pre_hook(_fuse_on_load)

    def setup_caches(self, cache_len: int, *, batch: int = 1, dtype: torch.dtype | None = None,
                     device: torch.device | str | None = None) -> None:
        """Allocate the KV cache (cache_len positions) and the rope table on the model's device.

        Asked again for the same cache, it keeps the buffers it has: CUDA graphs captured over them
        (model/steppers.py) hold their addresses, and would go on reading and writing freed memory.
        """
        if cache_len > self.args.max_seq_len:
            raise ValueError(f"cache of {cache_len} tokens exceeds the model's context of {self.args.max_seq_len}")
        device = device or self.tok_embeddings.weight.device
        dtype = dtype or self.tok_embeddings.weight.dtype
        cache = self.layers[0].attention.kv_cache if len(self.layers) else None
        if cache is not None and cache_len == self.cache_len and cache.k_cache.shape[0] == batch \
                and cache.k_cache.dtype == dtype and cache.k_cache.device == torch.device(device):
            return
        for layer in self.layers:
            layer.attention.kv_cache = KVCache(batch, cache_len, self.args.n_kv_heads, self.args.head_dim,
                                               dtype).to(device)
        self.rope = rope_table(cache_len, self.args.head_dim, self.args.rope_theta).to(device)
        self.positions = torch.arange(cache_len, device=device)
        self.cache_len = cache_len

    def forward(self, idx: Tensor, input_pos: Tensor | None = None, *, kv_len: int | None = None,
                last_only: bool = False) -> Tensor:
        """idx: (B, T) token ids; input_pos: (T,) their positions, all below kv_len, when a KV cache is set up.

        Attention reads the first kv_len cache positions, masked to each query's own position and before, so
        a fixed kv_len gives fixed shapes (CUDA graphs) while a tight one (start + T) gives eager speed.
        kv_len == T means a prefill from position 0 (causal attention over the new tokens alone).
        last_only returns the logits of the last position only. Returns float32 logits (B, T, vocab).
        """
        T = idx.shape[1]
        if self.cache_len:
            assert input_pos is not None and self.rope is not None and self.positions is not None
            kv_len = kv_len or self.cache_len
            rope = self.rope[input_pos]  # (T, head_dim // 2, 2)
            # (1, 1, T, kv_len): query at position p sees keys 0..p
            mask = None if kv_len == T else (self.positions[:kv_len] <= input_pos[:, None])[None, None]
        else:  # training / plain scoring: full causal attention over idx
            rope = rope_table(T, self.args.head_dim, self.args.rope_theta).to(idx.device)
            mask = None
        h = self.tok_embeddings(idx)  # (B, T, dim)
        for layer in self.layers:
            h = layer(h, rope, mask, input_pos, kv_len)
        if last_only:
            h = h[:, -1:]
        return self.output(self.norm(h)).float()


# Fused parameter -> the checkpoint tensors stacked (by rows) into it, in order.
FUSED = {"attention.wqkv": ("attention.wq", "attention.wk", "attention.wv"),
         "feed_forward.w13": ("feed_forward.w1", "feed_forward.w3")}


def fuse_state(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Checkpoint names (wq, wk, wv, w1, w3) -> this model's fused ones (wqkv, w13); other keys pass through."""
    out = dict(state)
    for fused, parts in FUSED.items():
        first = f".{parts[0]}.weight"
        for key in [k for k in state if k.endswith(first)]:
            layer = key[: -len(first)]
            names = [f"{layer}.{part}.weight" for part in parts]
            if all(n in out for n in names):
                out[f"{layer}.{fused}.weight"] = torch.cat([out.pop(n) for n in names])
    return out


def split_state(state: dict[str, Tensor], args: ModelArgs) -> dict[str, Tensor]:
    """This model's fused names -> the checkpoint's (the inverse of fuse_state)."""
    kv = args.n_kv_heads * args.head_dim
    sizes = {"attention.wqkv": [args.dim, kv, kv], "feed_forward.w13": [args.hidden_dim, args.hidden_dim]}
    out = {}
    for key, t in state.items():
        for fused, parts in FUSED.items():
            if key.endswith(f".{fused}.weight"):
                layer = key[: -len(f".{fused}.weight")]
                out.update({f"{layer}.{p}.weight": piece for p, piece in zip(parts, t.split(sizes[fused]))})
                break
        else:
            out[key] = t
    return out


def _fuse_on_load(module: nn.Module, state: dict[str, Tensor], prefix: str, *args: object) -> None:
    # load_state_dict with checkpoint names (wq, wk, ...) fills the fused parameters.
    fused = fuse_state({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
    for k in [k for k in state if k.startswith(prefix)]:
        del state[k]
    state.update({prefix + k: v for k, v in fused.items()})
