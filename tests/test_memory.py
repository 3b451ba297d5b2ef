"""Host memory on the CPU path: loaded weights never stay mapped from the checkpoint file."""

from __future__ import annotations

import gc
import sys
from pathlib import Path

import pytest
import torch

from model.loader import load_model

CPU = torch.device("cpu")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_loaded_weights_are_not_views_of_the_checkpoint_file(checkpoint_factory) -> None:
    """safetensors maps its file and hands out views of it: weights kept as such views (those whose dtype needs
    no conversion) kept the file mapped, its pages counted in the process's RSS beside the copies of the rest."""
    root = checkpoint_factory("hf")
    model, _ = load_model(str(root), device=CPU, dtype=torch.float32, quant="none")
    gc.collect()
    mapped = [line for line in Path("/proc/self/maps").read_text().splitlines() if str(root) in line]
    assert mapped == []
    del model
