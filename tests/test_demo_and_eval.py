"""The README's main job (`codellama-lsp demo`) and the evaluations (held-out lines, docstrings)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from lsp_server.tools.docstring_eval import documented_functions, word_f1
from lsp_server.tools.evaluate import edit_similarity, make_cases, paired_difference, read_baseline


def test_demo_shows_completions_and_a_docstring_through_lsp(tiny_model_dir) -> None:
    result = subprocess.run([sys.executable, "-m", "lsp_server", "demo"], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert out.count("inline completion at line") == 4
    asked = out.split("asked for at line ", 1)[1].split("\n\n", 1)[0].split("\n")  # header, then one per suggestion
    assert "3 suggestions" in asked[0] and [line.split()[0] for line in asked[1:]] == ["1", "2", "3"]
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


def test_a_comparison_pairs_the_cursors() -> None:
    def rows(exact: list[bool]) -> list[dict]:
        return [{"case": f"a.py:{i}:0", "exact": e, "similarity": 1.0 if e else 0.5} for i, e in enumerate(exact)]
    # Each run gets one cursor the other misses: equal on average, but not a difference of zero cursor by cursor.
    swapped = paired_difference(rows([True, False, False, False]), rows([False, True, False, False]), "old.json")
    assert (swapped.exact_match, swapped.edit_similarity) == (0.0, 0.0) and swapped.exact_match_margin > 0.5
    better = paired_difference(rows([True] * 4), rows([False] * 4), "old.json")
    assert (better.exact_match, better.exact_match_margin, better.edit_similarity) == (1.0, 0.0, 0.5)
    with pytest.raises(ValueError, match="other cursors; use the same --cases and --seed"):
        paired_difference(rows([True] * 4), rows([True] * 3), "old.json")


def test_eval_compares_with_an_earlier_run_of_the_same_cursors(tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "lsp_server", "eval", "--cases", "3", *args],
                              capture_output=True, text=True, timeout=300)
    first = run("--json", str(tmp_path / "first.json"))
    assert first.returncode == 0, first.stderr[-2000:]
    again = run("--compare", str(tmp_path / "first.json"), "--json", "-")
    assert again.returncode == 0, again.stderr[-2000:]
    difference = json.loads(again.stdout)["difference"]  # the same model on the same cursors: no difference
    assert difference == {"baseline": str(tmp_path / "first.json"), "exact_match": 0.0, "exact_match_margin": 0.0,
                          "edit_similarity": 0.0, "edit_similarity_margin": 0.0}
    # Other cursors are refused before the model is loaded (a whole run on a large model, for nothing).
    other = run("--seed", "1", "--compare", str(tmp_path / "first.json"), "--model", str(tmp_path / "missing"))
    assert other.returncode != 0 and "ran other cursors" in other.stderr and "Traceback" not in other.stderr
    (tmp_path / "junk.json").write_text("[1, 2]")
    junk = run("--compare", str(tmp_path / "junk.json"))
    assert junk.returncode != 0 and "not an `eval --json` report" in junk.stderr and "Traceback" not in junk.stderr


def test_a_baseline_must_be_an_eval_report(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not an `eval --json` report"):
        read_baseline(tmp_path / "missing.json")
    (tmp_path / "docstrings.json").write_text(json.dumps({"cases": [{"case": "a.py:1"}]}))
    with pytest.raises(ValueError, match="lack scores"):
        read_baseline(tmp_path / "docstrings.json")


DOCUMENTED = '''class Box:
    def size(self):
        """The box's size.

        More words.
        """
        return self.width * self.height

    def area(self): "One line, beside code."; return 1

    def empty(self):
        """Only a docstring."""


def volume(box, depth):
    """Volume of the box."""
    return box.size() * depth
'''


def test_docstring_cases_cut_the_authors_docstring_out_whole() -> None:
    cases = documented_functions("box.py", DOCUMENTED)
    assert [(c.name, c.summary) for c in cases] == [("box.py:2", "The box's size."), ("box.py:15", "Volume of the box.")]
    for case in cases:
        tree = ast.parse(case.text)  # still a program, and the function has no docstring now
        function = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.lineno == case.line + 1)
        assert ast.get_docstring(function) is None
    assert documented_functions("broken.py", "def f(:\n") == []


@pytest.mark.parametrize("got,expected,f1", [
    ("Volume of the box.", "volume of the BOX", 1.0), ("Box volume.", "Volume of the box.", 2 * 2 / 6),
    ("Polygon perimeter.", "The number of nodes.", 0.0), ("", "Anything.", 0.0)])
def test_word_f1(got: str, expected: str, f1: float) -> None:
    assert word_f1(got, expected) == pytest.approx(f1)


def test_eval_docstrings_through_the_demo_model(tmp_path: Path) -> None:
    out = tmp_path / "docstrings.json"
    result = subprocess.run([sys.executable, "-m", "lsp_server", "eval", "--suite", "docstrings", "--cases", "3",
                             "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "3 documented functions in held-out files" in result.stdout and "blanks that kept" in result.stdout
    data = json.loads(out.read_text())
    blanks = [b for f in data["functions"] for b in f["blanks"]]
    assert data["report"]["blanks"] == len(blanks) >= 3
    assert data["report"]["kept"] == pytest.approx(sum(b["rejected"] is None for b in blanks) / len(blanks), abs=1e-3)
    assert all(f["summary"] == next(b["text"] for b in f["blanks"] if b["slot"]["role"] == "summary")
               for f in data["functions"])


def test_the_keystroke_benchmark_times_each_document_against_the_small_one(tmp_path: Path) -> None:
    out = tmp_path / "keys.json"
    run = subprocess.run([sys.executable, "-m", "lsp_server.tools.keystrokes", "--keystrokes", "3", "--only", "crlf",
                          "--only", "minified", "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "per keystroke" in run.stdout and "crlf: the same, CRLF line breaks" in run.stdout
    result = json.loads(out.read_text())
    scenarios = result["scenarios"]
    assert list(scenarios) == ["small", "crlf", "minified"] and result["keystrokes"] == 3
    assert scenarios["small"]["keystroke_vs_small"] == 1 and scenarios["small"]["code_action_vs_small"] == 1
    for figures in scenarios.values():
        assert figures["keystroke_ms"] > 0 and figures["code_action_ms"] > 0


@pytest.mark.parametrize("module", ["docstring_eval", "humaneval"])
def test_tool_modules_run_as_scripts(module: str) -> None:
    # Like the other tools' modules: `python -m lsp_server.tools.docstring_eval` exited 0 having done nothing.
    result = subprocess.run([sys.executable, "-m", f"lsp_server.tools.{module}", "--help"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.startswith("usage: "), result.stderr[-2000:]


def test_typists_json_dash_puts_the_figures_on_stdout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    # Before: `typists --json -` printed the table and wrote the JSON to a file named '-' in the working directory.
    from lsp_server.tools import typists

    async def compare(*_: object) -> dict:  # the figures, without the servers and the vLLM they would need
        return {"typists": 1, "measured": True}

    monkeypatch.setattr(typists, "compare", compare)
    monkeypatch.setattr(typists, "table", lambda result: "the table")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # main() sets it for the servers it starts
    monkeypatch.chdir(tmp_path)
    typists.main(["--remote-url", "http://127.0.0.1:8000", "--json", "-"])
    assert json.loads(capsys.readouterr().out) == {"typists": 1, "measured": True}
    assert not (tmp_path / "-").exists()


def test_the_stalls_tool_times_each_operation_of_its_sessions_in_the_server(tmp_path: Path) -> None:
    out = tmp_path / "stalls.json"
    run = subprocess.run([sys.executable, "-m", "lsp_server.tools.stalls", "--runs", "1", "--only", "notebook",
                          "--only", "many-open", "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr  # also: the probe ran in the server
    assert "lag max" in run.stdout and "notebook (300 cells): keystroke + inline completion" in run.stdout
    operations = json.loads(out.read_text())["operations"]
    assert operations["notebook (300 cells): keystroke"]["runs"] == 4
    assert operations["50 other files open: keystroke + inline completion"]["runs"] == 1
    for figures in operations.values():
        assert figures["lag_max_ms"] >= figures["lag_p95_ms"] >= figures["lag_p50_ms"] >= 0
        assert figures["callback_max_ms"] >= figures["callback_p95_ms"] >= figures["callback_p50_ms"] >= 0


def test_the_soak_tool_tabulates_the_servers_tables_round_after_round(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    run = subprocess.run([sys.executable, "-m", "lsp_server.tools.soak", "--rounds", "2", "--files", "1",
                          "--keystrokes", "3", "--reload-every", "1", "--json", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr  # also: the probe ran in the server
    assert "keystroke p50" in run.stdout and "tokenizers_alive" in run.stdout
    samples = json.loads(out.read_text())["samples"]
    assert [s["round"] for s in samples] == [0, 1, 2]
    last = samples[-1]
    assert last["completions"] > 0 and last["requests"] > last["completions"]  # the model ran, code actions too
    assert last["engines_loaded"] == 3 and (last["engines_alive"], last["tokenizers_alive"]) == (1, 1)
    assert last["documents_open"] == last["documents_alive"] == 0
