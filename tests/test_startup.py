"""Start-up stays fast: the server answers its first messages before torch is imported, and loading a model
skips weight initialisation (on the meta device its first call imports torch._dynamo: seconds)."""

from __future__ import annotations

import subprocess
import sys


def modules_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running `code`."""
    result = subprocess.run([sys.executable, "-c", f"{code}\nimport sys; print(' '.join(sys.modules))"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split())


def test_the_server_module_does_not_import_torch() -> None:
    assert "torch" not in modules_after("import lsp_server.server, lsp_server.cli")


def test_loading_a_model_does_not_import_dynamo() -> None:
    loaded = modules_after("import torch\nfrom model.loader import load_model\n"
                           "load_model(None, device=torch.device('cpu'), dtype=torch.float32, quant='none')")
    assert "model.llama" in loaded and "torch._dynamo" not in loaded
