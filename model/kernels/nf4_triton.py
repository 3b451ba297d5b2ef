"""A Triton matmul for a few rows of activations against bitsandbytes' packed 4-bit weights.

Decoding multiplies one row (or a handful, when verifying drafted tokens) by every weight matrix: the work
is reading 4-bit weights, so the kernel reads bitsandbytes' own packed layout once and dequantizes in
registers, the same way bitsandbytes' `dequantize_4bit` does:

    byte j of the flattened (N, K) weight holds element 2j in its high nibble and 2j+1 in its low nibble;
    W[i] = code[nibble(i)] * absmax[i // 64];
    with double quantization: absmax[b] = code2[absmax_u8[b]] * absmax2[b // B2] + offset,
    B2 being the nested state's own block size (256 as bitsandbytes quantizes).

The arithmetic is float32 throughout (weights are never rounded to 16 bits), so the result equals
x @ dequantize_4bit(W).T in float32 up to summation order. Under TRITON_INTERPRET=1 the same kernel runs
on the CPU, which is how the tests pin it down without a GPU.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl
from torch import Tensor

MAX_ROWS = 8  # activation rows handled here; more rows are a prefill, where dequantize + matmul wins
INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"


@triton.jit
def _nf4_matmul(x_ptr, w_ptr, absmax_ptr, absmax2_ptr, code2_ptr, offset_ptr, code_ptr, y_ptr,
                M, N, K, stride_xm, stride_ym,
                NESTED: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                QBLOCK: tl.constexpr, QBLOCK2: tl.constexpr):
    # One program: BLOCK_N output features for all M rows, looping over K in BLOCK_K steps.
    NB: tl.constexpr = BLOCK_K // QBLOCK  # quantization blocks per step
    HALF: tl.constexpr = QBLOCK // 2  # bytes per quantization block
    rows = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)  # (BN,)
    rows_ok = rows < N
    rows64 = rows.to(tl.int64)
    ms = tl.arange(0, BLOCK_M)
    ms_ok = ms < M
    blocks = tl.arange(0, NB)  # (NB,)
    in_block = tl.arange(0, HALF)  # (HALF,)
    pair = tl.arange(0, BLOCK_K // 2)  # byte index within a step: block * HALF + position in block
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        # Block scales: (BN, NB); each covers QBLOCK consecutive weights of one row (K % QBLOCK == 0).
        block = rows64[:, None] * (K // QBLOCK) + k0 // QBLOCK + blocks[None, :]
        block_ok = rows_ok[:, None] & (k0 + blocks[None, :] * QBLOCK < K)
        if NESTED:
            q = tl.load(absmax_ptr + block, mask=block_ok, other=0).to(tl.int32)
            scale = tl.load(code2_ptr + q) * tl.load(absmax2_ptr + block // QBLOCK2, mask=block_ok, other=0.0)
            scale += tl.load(offset_ptr)
        else:
            scale = tl.load(absmax_ptr + block, mask=block_ok, other=0.0)
        # Packed weights: (BN, NB, HALF) bytes, two weights each.
        byte = (rows64[:, None, None] * (K // 2) + k0 // 2
                + blocks[None, :, None] * HALF + in_block[None, None, :])
        packed = tl.load(w_ptr + byte, mask=block_ok[:, :, None], other=0).to(tl.int32)
        w_hi = (tl.load(code_ptr + (packed >> 4)) * scale[:, :, None]).reshape(BLOCK_N, BLOCK_K // 2)
        w_lo = (tl.load(code_ptr + (packed & 0xF)) * scale[:, :, None]).reshape(BLOCK_N, BLOCK_K // 2)
        # Activations: even and odd columns of the step, (BM, BK/2).
        k_even = k0 + 2 * pair
        x_ok = ms_ok[:, None] & (k_even[None, :] < K)
        x_row = x_ptr + ms[:, None] * stride_xm + k_even[None, :]
        x_even = tl.load(x_row, mask=x_ok, other=0.0).to(tl.float32)
        x_odd = tl.load(x_row + 1, mask=x_ok, other=0.0).to(tl.float32)
        acc += tl.sum(x_even[:, None, :] * w_hi[None, :, :] + x_odd[:, None, :] * w_lo[None, :, :], axis=2)
    tl.store(y_ptr + ms[:, None] * stride_ym + rows[None, :], acc, mask=ms_ok[:, None] & rows_ok[None, :])


def _tile(rows: int) -> tuple[int, int, int]:
    """(BLOCK_M, BLOCK_N, BLOCK_K) for `rows` activation rows: the (BM, BN, BK/2) product stays ~4k values."""
    block_m = triton.next_power_of_2(rows)
    return {1: (1, 16, 512), 2: (2, 16, 256), 4: (4, 16, 128), 8: (8, 8, 128)}[block_m]


def nf4_matmul(x: Tensor, packed: Tensor, quant_state: object, *, block_n: int | None = None,
               block_k: int | None = None, num_warps: int = 4) -> Tensor:
    """x (..., K) @ W.T for bitsandbytes 4-bit W (out_features N, in_features K): returns (..., N) in x's dtype.

    At most MAX_ROWS rows of x; K must be a multiple of the quantization block size.
    """
    N, K = quant_state.shape  # type: ignore[attr-defined]
    qblock = quant_state.blocksize  # type: ignore[attr-defined]
    rows = x.numel() // K
    if rows > MAX_ROWS or K % qblock or x.shape[-1] != K:
        raise ValueError(f"nf4_matmul takes up to {MAX_ROWS} rows of {K} (a multiple of {qblock}); got {tuple(x.shape)}")
    x2 = x.reshape(rows, K)
    if x2.stride(-1) != 1:
        x2 = x2.contiguous()
    y = torch.empty(rows, N, dtype=x.dtype, device=x.device)
    state2 = quant_state.state2  # type: ignore[attr-defined]
    nested = state2 is not None
    # Without nested scales the kernel never reads absmax2, code2 or offset: any tensor stands in for them.
    absmax2 = state2.absmax if nested else quant_state.absmax  # type: ignore[attr-defined]
    code2 = state2.code if nested else quant_state.code  # type: ignore[attr-defined]
    offset = quant_state.offset if nested else quant_state.absmax  # type: ignore[attr-defined]
    block_m, bn, bk = _tile(rows)
    block_n, block_k = block_n or bn, block_k or bk
    grid = (triton.cdiv(N, block_n),)
    _nf4_matmul[grid](x2, packed, quant_state.absmax, absmax2, code2, offset, quant_state.code, y,  # type: ignore[attr-defined]
                      rows, N, K, x2.stride(0), y.stride(0),
                      NESTED=nested, BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_K=block_k, QBLOCK=qblock,
                      QBLOCK2=state2.blocksize if nested else 1, num_warps=num_warps)
    return y.reshape(*x.shape[:-1], N)
