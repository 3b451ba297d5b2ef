"""The README's main job (`codellama-lsp demo`) and the evaluation's pure parts."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lsp_server.evaluate import edit_similarity, make_cases


def test_demo_shows_completions_and_a_docstring_through_lsp(tiny_model_dir) -> None:
    result = subprocess.run([sys.executable, "-m", "lsp_server", "demo"], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert out.count("inline completion at line") == 4
    assert "Generate docstring for polygon_perimeter" in out
    assert '"""' in out and "points:" in out  # the parameter is documented by name
    assert "latency p50" in out


@pytest.mark.parametrize("a,b,expected", [
    ("", "", 1.0), ("abc", "abc", 1.0), ("abc", "abd", 1 - 1 / 3), ("", "xy", 0.0), ("kitten", "sitting", 1 - 3 / 7)])
def test_edit_similarity(a: str, b: str, expected: float) -> None:
    assert edit_similarity(a, b) == pytest.approx(expected)


def test_cases_erase_the_tail_of_a_line_and_are_reproducible() -> None:
    files = [("a.py", "import os\n\n\ndef size(path):\n    return os.path.getsize(path)\n")]
    cases = make_cases(files, 5, seed=3)
    assert cases == make_cases(files, 5, seed=3)
    for case in cases:
        restored = case.text[:case.offset] + case.expected + case.text[case.offset:]
        assert restored == files[0][1]
        assert case.expected and "\n" not in case.expected
