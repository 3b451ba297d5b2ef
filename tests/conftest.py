"""Session-wide fixtures: one trained tokenizer and cached tiny checkpoints (seconds, no downloads)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

# Without a GPU, Triton kernels run in Triton's interpreter on the CPU. The switch is read when a kernel is
# defined, so it is set here, before any test module imports one.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from tests.tiny import make_checkpoint, make_tokenizer

CheckpointFactory = Callable[..., Path]


@pytest.fixture(scope="session")
def tokenizer_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 512-piece SentencePiece model with Code Llama's FIM pieces (user-defined: the worst case)."""
    return make_tokenizer(tmp_path_factory.mktemp("tokenizer") / "tokenizer.model")


@pytest.fixture(scope="session")
def checkpoint_factory(tmp_path_factory: pytest.TempPathFactory, tokenizer_path: Path) -> CheckpointFactory:
    """`factory(layout="hf"|"meta", gqa=False, shards=1, seed=0) -> Path`, built once per argument set.

    The directories are shared by the whole session: copy one (shutil.copytree) before altering it.
    """
    built: dict[tuple[str, bool, int, int], Path] = {}

    def factory(layout: str = "hf", *, gqa: bool = False, shards: int = 1, seed: int = 0) -> Path:
        key = (layout, gqa, shards, seed)
        if key not in built:
            out = tmp_path_factory.mktemp(f"{layout}-{'gqa' if gqa else 'mha'}-{shards}shard-s{seed}")
            built[key] = make_checkpoint(out, tokenizer_path, layout=layout, gqa=gqa, shards=shards, seed=seed)
        return built[key]

    return factory


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    """The embedded demo model: small, trained, and the server's default, so tests exercise what users run."""
    from model.loader import DEMO_MODEL_DIR

    assert (DEMO_MODEL_DIR / "config.json").is_file(), f"the demo model is missing from {DEMO_MODEL_DIR}"
    return DEMO_MODEL_DIR
