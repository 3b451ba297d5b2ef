"""`codellama-lsp eval`: how well completions match real code the model never trained on.

For held-out files (model.training.corpus's split) at seeded random cursors, the rest of the cursor's line is
erased and the completion path the server uses (windows, FIM prompt, early stop, shaping) fills it in.
Scores: exact match and edit similarity of the completed line, and latency; with --alternatives N, also how
often the line is among the N suggestions a user asking for them cycles through.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm import tqdm

from model.backend import BackendUnavailable, redact_url
from model.training import corpus

from ..cli import setting_flag
from ..completion import complete, complete_alternatives
from ..loading import load_engine
from ..settings import Settings
from .terminal import format_table, loading_bar, ms, output_path, positive_int, show_result


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
    alternatives: int = 1  # suggestions offered when asked for, how often one of them is exact, how long
    exact_among: float | None = None
    offered_p50_ms: float | None = None
    # Half-widths of the 95% confidence intervals of the two scores: how far another sample of as many cursors
    # may land (200 cursors: about ±5.6 points of exact match), so that two models are not told apart by noise.
    exact_match_margin: float | None = None
    edit_similarity_margin: float | None = None


def margin_95(values: list[float]) -> float | None:
    """Half-width of the normal-approximation 95% confidence interval of the mean of `values` (rounded to 3
    places), or None for fewer than two values."""
    return round(1.96 * statistics.stdev(values) / len(values) ** 0.5, 3) if len(values) > 1 else None


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


def first_line(text: str) -> str:
    return text.split("\n", 1)[0].rstrip()


def held_out_cases(n: int, seed: int) -> list[Case]:
    """The n cursors of `seed` in the held-out files: known before any model is loaded."""
    _, held = corpus.split(corpus.collect())
    return make_cases([(f.name, corpus.read(f)) for f in held], n, seed)


def evaluate(settings: Settings, cases: list[Case], verbose: bool = False, heal_words: bool = True,
             alternatives: int = 1) -> tuple[Report, list[dict]]:
    with loading_bar(settings.model or "the demo model") as progress:
        engine = load_engine(settings, progress)
    rows = []
    for case in tqdm(cases, desc="eval", unit="case", disable=None):
        t0 = time.perf_counter()
        # Untimed: a score must depend on the model, not on how busy the machine is.
        suggestion = complete(engine, case.text, case.offset, settings, timed=False, heal_words=heal_words)
        ms = (time.perf_counter() - t0) * 1000
        got = first_line(suggestion.text) if suggestion else ""
        rows.append({"case": case.name, "expected": case.expected, "got": got, "ms": round(ms, 1),
                     "exact": got.strip() == case.expected.strip(),
                     "similarity": round(edit_similarity(got.strip(), case.expected.strip()), 3)})
        if alternatives > 1:
            engine.reset_cache()  # cold, as the single suggestion was: the ratio of the two is what asking costs
            t0 = time.perf_counter()
            offered = [first_line(s.text) for s in complete_alternatives(engine, case.text, case.offset, settings,
                                                                         alternatives, heal_words=heal_words)]
            rows[-1]["offered_ms"] = round((time.perf_counter() - t0) * 1000, 1)
            rows[-1]["offered"] = offered
            rows[-1]["exact_among"] = any(o.strip() == case.expected.strip() for o in offered)
        if verbose:
            tqdm.write(json.dumps(rows[-1]))
    times = sorted(r["ms"] for r in rows)
    exact, similarity = [float(r["exact"]) for r in rows], [r["similarity"] for r in rows]
    report = Report(len(rows), round(statistics.mean(exact), 3), round(statistics.mean(similarity), 3),
                    round(statistics.mean(not r["got"] for r in rows), 3),
                    times[len(times) // 2], times[min(len(times) - 1, int(len(times) * 0.95))], alternatives,
                    round(statistics.mean(r["exact_among"] for r in rows), 3) if alternatives > 1 else None,
                    sorted(r["offered_ms"] for r in rows)[len(rows) // 2] if alternatives > 1 else None,
                    margin_95(exact), margin_95(similarity))
    return report, rows


def within(margin: float | None, spec: str) -> str:
    """' ± margin' (the 95% interval's half-width), or nothing when there is none."""
    return "" if margin is None else f" ± {margin:{spec}}"


@dataclass(frozen=True)
class Difference:
    """This run's scores minus an earlier run's on the same cursors, each with its 95% margin: pairing the
    cursors takes out how hard each one is, so a change shows through with fewer cases than two margins."""
    baseline: str
    exact_match: float
    exact_match_margin: float | None
    edit_similarity: float
    edit_similarity_margin: float | None


def read_baseline(path: Path) -> list[dict]:
    """The cases of an earlier `eval --json` report; ValueError with the reason when it is not one."""
    try:
        cases = json.loads(path.read_text(encoding="utf-8"))["cases"]
        if all({"case", "exact", "similarity"} <= case.keys() for case in cases):
            return cases
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"--compare {path}: not an `eval --json` report ({e})") from e
    raise ValueError(f"--compare {path}: not an `eval --json` report (its cases lack scores)")


def check_same_cursors(cursors: list[str], baseline: list[dict], name: str) -> None:
    """ValueError unless `baseline` ran exactly `cursors` (case names), in that order."""
    if cursors != [b["case"] for b in baseline]:
        raise ValueError(f"--compare {name}: it ran other cursors; use the same --cases and --seed")


def paired_difference(rows: list[dict], baseline: list[dict], name: str) -> Difference:
    """rows' scores minus baseline's, cursor by cursor; ValueError unless both ran the same cursors."""
    check_same_cursors([r["case"] for r in rows], baseline, name)
    exact = [float(r["exact"]) - float(b["exact"]) for r, b in zip(rows, baseline)]
    similarity = [r["similarity"] - b["similarity"] for r, b in zip(rows, baseline)]
    return Difference(name, round(statistics.mean(exact), 3), margin_95(exact),
                      round(statistics.mean(similarity), 3), margin_95(similarity))


def format_report(report: Report, settings: Settings, difference: Difference | None = None) -> str:
    """The scores as a table, with what was measured above it (the ± is a 95% confidence interval)."""
    model = settings.model or "the embedded demo model"
    where = f"the vLLM server at {redact_url(settings.remote_url)}" if settings.backend == "vllm" else settings.device
    margins = "; ± is the 95% confidence interval over cursors" if report.exact_match_margin is not None else ""
    return (f"{report.cases} cursors in held-out files; {model} on {where}, "
            f"{settings.fim_mode.upper()} prompts{margins}\n\n" + format_table(["measure", "result"], [
                ["exact match (the completed line as written)",
                 f"{report.exact_match:.1%}" + within(report.exact_match_margin, ".1%")],
                *([[f"exact among the {report.alternatives} suggestions offered when asked", f"{report.exact_among:.1%}"]]
                  if report.exact_among is not None else []),
                ["edit similarity (1 = identical, 0 = nothing alike)",
                 f"{report.edit_similarity:.3f}" + within(report.edit_similarity_margin, ".3f")],
                ["no suggestion", f"{report.empty:.1%}"],
                ["latency p50", ms(report.p50_ms)],
                ["latency p95", ms(report.p95_ms)],
                *([[f"latency p50 of the {report.alternatives} suggestions offered when asked",
                    f"{ms(report.offered_p50_ms)} ({report.offered_p50_ms / max(report.p50_ms, 0.1):.1f}x one)"]]
                  if report.offered_p50_ms is not None else []),
                *([[f"exact match minus {difference.baseline}'s, same cursors",
                    f"{difference.exact_match * 100:+.1f} points"
                    + within(None if difference.exact_match_margin is None else difference.exact_match_margin * 100,
                             ".1f")],
                   [f"edit similarity minus {difference.baseline}'s",
                    f"{difference.edit_similarity:+.3f}" + within(difference.edit_similarity_margin, ".3f")]]
                  if difference is not None else [])]))


SUITES = ("held-out", "humaneval-infilling", "docstrings")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="codellama-lsp eval", description=__doc__.split("\n\n")[0],
                                epilog="--suite humaneval-infilling runs the public HumanEval infilling benchmark "
                                       "instead (see `codellama-lsp eval --suite humaneval-infilling --help`); "
                                       "--suite docstrings, the docstring writer on held-out functions.")
    p.add_argument("--suite", choices=SUITES, default="held-out",
                   help="held-out lines of the project's own corpus (default), HumanEval infilling, or docstrings")
    p.add_argument("--model", help="checkpoint directory or cached HF repo id (default: the embedded demo model)")
    p.add_argument("--device", default="cpu", help="cpu | cuda (default: cpu)")
    p.add_argument("--backend", choices=("local", "vllm"), default="local",
                   help="generate here (default) or on the vLLM server at --remote-url")
    p.add_argument("--remote-url", type=setting_flag("remote_url"), default=Settings.remote_url,
                   help=f"the vLLM server, with --backend vllm (default {Settings.remote_url})")
    p.add_argument("--cases", type=positive_int, default=200, help="cursors to complete (default 200)")
    p.add_argument("--seed", type=int, default=0, help="seed for the cursors' files, lines and columns (default 0)")
    p.add_argument("--fim-mode", choices=("psm", "spm"), default=Settings.fim_mode,
                   help=f"infilling prompt order (default {Settings.fim_mode})")
    p.add_argument("--ngram-cache", choices=("auto", "on", "off"), default=Settings.ngram_cache,
                   help="the document n-gram cache (default auto: as the model directory asks)")
    p.add_argument("--json", type=output_path, metavar="PATH",
                   help="write the report, the settings and every case as JSON to PATH ('-': stdout, no table)")
    p.add_argument("--verbose", action="store_true", help="print each case (expected, got, latency) as it is done")
    p.add_argument("--alternatives", type=positive_int, default=1, metavar="N",
                   help="also ask for N suggestions at each cursor, as a user cycling through them (Alt+]) gets, "
                        "and count how often the line is among them (default 1: no)")
    p.add_argument("--compare", type=Path, metavar="PATH",
                   help="an earlier run's --json report of the same cursors: also print this run's scores minus "
                        "those, cursor by cursor, with their 95%% margins (is a model or a change better?)")
    p.add_argument("--no-word-healing", action="store_true",
                   help="heal only trailing blanks, not the line's last token (to measure it)")
    return p


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    suite = argparse.ArgumentParser(add_help=False)
    suite.add_argument("--suite", choices=SUITES, default="held-out")
    chosen, rest = suite.parse_known_args(argv)
    if chosen.suite == "humaneval-infilling":
        from . import humaneval
        humaneval.main(rest)
        return
    if chosen.suite == "docstrings":
        from . import docstring_eval
        docstring_eval.main(rest)
        return
    p = build_parser()
    a = p.parse_args(argv)
    try:
        settings = Settings(model=a.model, device=a.device, fim_mode=a.fim_mode, line_policy="single").merged(
            backend=a.backend, remote_url=a.remote_url, ngram_cache=a.ngram_cache)
    except ValueError as e:  # an unusable --remote-url
        p.error(str(e))
    try:
        baseline = read_baseline(a.compare) if a.compare else None  # before the run, not after it
        if baseline is not None and len(baseline) != a.cases:
            raise ValueError(f"--compare {a.compare}: it ran {len(baseline)} cursors, not {a.cases}")
        cases = held_out_cases(a.cases, a.seed)
        if baseline is not None:  # other cursors (another --seed) are told before the model runs, too
            check_same_cursors([c.name for c in cases], baseline, str(a.compare))
        report, rows = evaluate(settings, cases, a.verbose, heal_words=not a.no_word_healing,
                                alternatives=a.alternatives)
        difference = paired_difference(rows, baseline, str(a.compare)) if baseline is not None else None
    except (ValueError, BackendUnavailable) as e:  # a bad --model or --device, no vLLM: one line, no traceback
        raise SystemExit(f"codellama-lsp eval: {e}") from e
    result = {"report": asdict(report), "settings": asdict(settings), "cases": rows}
    if difference is not None:
        result["difference"] = asdict(difference)
    show_result(format_report(report, settings, difference), result, a.json)


if __name__ == "__main__":
    main()
