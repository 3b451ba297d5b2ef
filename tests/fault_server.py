"""The real server with a fault that a test can inject into the model's forward pass.

`python tests/fault_server.py ARM_FILE [codellama-lsp arguments]` runs `codellama-lsp` unchanged, except that
while ARM_FILE exists, the next forward pass deletes it and raises what it names: `oom`, the
torch.cuda.OutOfMemoryError CUDA raises (here on the CPU), or anything else, a RuntimeError. Loading runs a
forward pass too (the warm-up): arming before a load makes that load fail after its checks.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from lsp_server.cli import main
from model.llama import Transformer

ARM = Path(sys.argv.pop(1))
_forward = Transformer.forward


def forward(self: Transformer, *args: object, **kwargs: object) -> object:
    if ARM.exists():
        kind = ARM.read_text().strip()
        ARM.unlink()
        if kind == "oom":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (injected)")
        raise RuntimeError(f"injected fault: {kind}")
    return _forward(self, *args, **kwargs)


Transformer.forward = forward  # type: ignore[method-assign]

if __name__ == "__main__":
    main()
