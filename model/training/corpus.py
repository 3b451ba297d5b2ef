"""Permissively licensed Python source found on this machine, split into training and held-out files.

The split is a pure function of each file's name, so evaluation finds the same held-out files on any
machine without a stored list.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import sysconfig
from dataclasses import dataclass
from pathlib import Path

# Packages besides the standard library, if installed; each one's licence is read from its metadata.
EXTRA_PACKAGES = ("networkx", "attrs", "cattrs", "pygls", "lsprotocol", "jinja2", "markupsafe", "packaging")
# More code to learn from, never held out: adding them leaves the held-out files (and so every evaluation)
# exactly as they were. Chosen for varied, idiomatic Python; not transformers (its modules copy each other).
TRAIN_ONLY_PACKAGES = ("numpy", "rich", "triton")
PERMISSIVE = ("MIT", "BSD", "Apache", "PSF", "Python Software Foundation", "ISC", "Unlicense")
HELD_OUT_PERCENT = 3
SKIP_DIRS = {"test", "tests", "idle_test", "site-packages", "__pycache__", "lib2to3", "ensurepip", "_vendor"}
MAX_FILE_BYTES = 200_000  # generated tables and giant modules teach little


@dataclass(frozen=True)
class SourceFile:
    name: str  # package-relative path, e.g. "stdlib/json/decoder.py"
    path: Path
    licence: str
    train_only: bool = False


def is_held_out(name: str) -> bool:
    return int(hashlib.sha256(name.encode()).hexdigest(), 16) % 100 < HELD_OUT_PERCENT


def _python_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py")
                  if not SKIP_DIRS.intersection(p.relative_to(root).parts[:-1])
                  and p.stat().st_size <= MAX_FILE_BYTES)


def package_licence(dist: md.Distribution) -> str:
    meta = dist.metadata
    if expression := meta.get("License-Expression"):
        return str(expression)
    classifiers = [c.split("::")[-1].strip() for c in meta.get_all("Classifier") or [] if c.startswith("License")]
    if classifiers:
        return "; ".join(classifiers)
    lines = str(meta.get("License") or "").strip().splitlines()
    return lines[0] if lines else "unknown"


def collect(extra_packages: tuple[str, ...] = EXTRA_PACKAGES,
            train_only: tuple[str, ...] = TRAIN_ONLY_PACKAGES) -> list[SourceFile]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = [SourceFile(f"stdlib/{p.relative_to(stdlib)}", p, "PSF-2.0") for p in _python_files(stdlib)]
    for name in extra_packages + train_only:
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue
        licence = package_licence(dist)
        if not any(word.lower() in licence.lower() for word in PERMISSIVE):
            continue
        top = (dist.read_text("top_level.txt") or name).split()
        for module in top:
            root = Path(str(dist.locate_file(module)))
            if root.is_dir():
                files += [SourceFile(f"{name}/{p.relative_to(root.parent)}", p, licence, name in train_only)
                          for p in _python_files(root)]
    return files


def read(f: SourceFile) -> str:
    return f.path.read_text(encoding="utf-8", errors="replace")


def split(files: list[SourceFile]) -> tuple[list[SourceFile], list[SourceFile]]:
    held = [f for f in files if is_held_out(f.name) and not f.train_only]
    held_names = {f.name for f in held}
    train = [f for f in files if f.name not in held_names]
    return train, held
