"""bitsandbytes' Linear4bit with its few-row matmuls (decode, draft verification) on our Triton kernel."""

from __future__ import annotations

import bitsandbytes as bnb
from torch import Tensor

from .nf4_triton import MAX_ROWS, INTERPRET, nf4_matmul


class TritonLinear4bit(bnb.nn.Linear4bit):
    """Same packed weights and quantization state as Linear4bit; only the kernel for <= MAX_ROWS rows differs."""

    def forward(self, x: Tensor) -> Tensor:
        state = self.weight.quant_state
        rows = x.numel() // x.shape[-1]
        if (x.is_cuda or INTERPRET) and 0 < rows <= MAX_ROWS and self.bias is None and state is not None \
                and x.shape[-1] % state.blocksize == 0:
            return nf4_matmul(x.to(self.compute_dtype or x.dtype), self.weight, state).to(x.dtype)
        return super().forward(x)
