"""`codellama-lsp eval`: how well completions match real code the model never trained on.

For held-out files (model.corpus's split) at seeded random cursors, the rest of the cursor's line is
erased and the completion path the server uses (windows, FIM prompt, early stop, shaping) fills it in.
Scores: exact match and edit similarity of the completed line, and latency.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from model import corpus

from .completion import complete, load_engine
from .settings import Settings


@dataclass(frozen=True)
class Case:
    name: str
    text: str  # the document with the line's tail erased
    offset: int  # cursor
    expected: str  # the erased tail


@dataclass(frozen=True)
class Report:
    cases: int
    exact_match: float
    edit_similarity: float
    empty: float
    p50_ms: float
    p95_ms: float


def edit_similarity(a: str, b: str) -> float:
    """1 - Levenshtein distance / length of the longer string (1.0 for two empty strings)."""
    if not a and not b:
        return 1.0
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return 1.0 - prev[-1] / max(len(a), len(b))


def make_cases(files: list[tuple[str, str]], n: int, seed: int) -> list[Case]:
    """n cursors in lines with code, at a random column after the indentation, the line's tail erased."""
    rng = random.Random(seed)
    cases: list[Case] = []
    while len(cases) < n:
        name, text = rng.choice(files)
        lines = text.split("\n")
        row = rng.randrange(len(lines))
        line = lines[row]
        code = line.strip()
        if len(code) < 8 or code.startswith(("#", '"""', "'''")):
            continue
        indent = len(line) - len(line.lstrip())
        col = rng.randrange(indent + 1, len(line.rstrip()))
        start = sum(len(x) + 1 for x in lines[:row])
        expected = line[col:].rstrip()
        edited = text[:start + col] + text[start + len(line):]
        cases.append(Case(f"{name}:{row + 1}:{col}", edited, start + col, expected))
    return cases


def evaluate(settings: Settings, n: int, seed: int, verbose: bool = False,
             heal_words: bool = True) -> tuple[Report, list[dict]]:
    _, held = corpus.split(corpus.collect())
    files = [(f.name, corpus.read(f)) for f in held]
    engine = load_engine(settings)
    rows = []
    for case in make_cases(files, n, seed):
        t0 = time.perf_counter()
        # Untimed: a score must depend on the model, not on how busy the machine is.
        suggestion = complete(engine, case.text, case.offset, settings, timed=False, heal_words=heal_words)
        ms = (time.perf_counter() - t0) * 1000
        got = suggestion.text.split("\n", 1)[0].rstrip() if suggestion else ""
        rows.append({"case": case.name, "expected": case.expected, "got": got, "ms": round(ms, 1),
                     "exact": got.strip() == case.expected.strip(),
                     "similarity": round(edit_similarity(got.strip(), case.expected.strip()), 3)})
        if verbose:
            print(json.dumps(rows[-1]))
    times = sorted(r["ms"] for r in rows)
    report = Report(len(rows), round(statistics.mean(r["exact"] for r in rows), 3),
                    round(statistics.mean(r["similarity"] for r in rows), 3),
                    round(statistics.mean(not r["got"] for r in rows), 3),
                    times[len(times) // 2], times[min(len(times) - 1, int(len(times) * 0.95))])
    return report, rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="codellama-lsp eval", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="checkpoint (default: the embedded demo model)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--backend", choices=("local", "vllm"), default="local")
    p.add_argument("--remote-url", default=Settings.remote_url, help="the vLLM server, with --backend vllm")
    p.add_argument("--cases", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fim-mode", choices=("psm", "spm"), default=Settings.fim_mode)
    p.add_argument("--json", type=Path, help="write the report and every case here")
    p.add_argument("--verbose", action="store_true")
    p.add_argument("--no-word-healing", action="store_true",
                   help="heal only trailing blanks, not the last token of a word being typed (to measure it)")
    a = p.parse_args(argv)
    try:
        settings = Settings(model=a.model, device=a.device, fim_mode=a.fim_mode, line_policy="single").merged(
            backend=a.backend, remote_url=a.remote_url)
    except ValueError as e:  # an unusable --remote-url
        p.error(str(e))
    report, rows = evaluate(settings, a.cases, a.seed, a.verbose, heal_words=not a.no_word_healing)
    print(json.dumps(asdict(report)))
    if a.json:
        a.json.write_text(json.dumps({"report": asdict(report), "settings": asdict(settings), "cases": rows}, indent=1))


if __name__ == "__main__":
    main()
