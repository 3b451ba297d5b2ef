"""A release as users would get it: the sdist, the wheel built from it, and that wheel run on its own."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from lsp_server import __version__

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DATA = ["model/demo/config.json", "model/demo/model.safetensors", "model/demo/tokenizer.model",
                "model/demo/MODEL_CARD.md", "lsp_server/tools/examples/shapes.py"]


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`python -m build` (sdist, then the wheel from the sdist) on a clean copy of the source tree."""
    src = tmp_path_factory.mktemp("src") / "codellama-lsp"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".git", ".venv", "__pycache__", "*.egg-info", "build", "dist", "node_modules", "runs", ".whl", ".pytest_cache"))
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(src)], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out


def test_the_sdist_holds_the_demo_model_examples_and_docs(dist: Path) -> None:
    (sdist,) = dist.glob("*.tar.gz")
    assert sdist.name == f"codellama_lsp-{__version__}.tar.gz"
    with tarfile.open(sdist) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    assert {*PACKAGE_DATA, "README.md", "pyproject.toml"} <= names


def test_the_wheel_holds_the_demo_model_examples_and_entry_point(dist: Path) -> None:
    (wheel,) = dist.glob("*.whl")
    assert wheel.name == f"codellama_lsp-{__version__}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        entry_points = zf.read(f"codellama_lsp-{__version__}.dist-info/entry_points.txt").decode()
    assert set(PACKAGE_DATA) <= names
    assert "codellama-lsp = lsp_server.cli:main" in entry_points


def test_the_wheel_alone_completes_with_its_demo_model(dist: Path, tmp_path: Path) -> None:
    (wheel,) = dist.glob("*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    doc = tmp_path / "a.py"
    doc.write_text("def add(a, b):\n    return a + \n")
    # Run from elsewhere with the unpacked wheel first on the path: no file of the checkout is used.
    env = {**os.environ, "PYTHONPATH": str(site)}
    where = subprocess.run([sys.executable, "-c", "import lsp_server, model.loader as m; print(lsp_server.__file__);"
                            "print(m.DEMO_MODEL_DIR)"], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert all(line.startswith(str(site)) for line in where.stdout.splitlines()), where.stdout + where.stderr
    result = subprocess.run([sys.executable, "-m", "lsp_server", "complete", str(doc), "--line", "1", "--character",
                             "15", "--max-tokens", "4"], capture_output=True, text=True, cwd=tmp_path, env=env,
                            timeout=120)
    assert result.returncode == 0 and result.stdout.strip(), result.stderr
