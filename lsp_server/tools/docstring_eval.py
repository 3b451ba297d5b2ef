"""`codellama-lsp eval --suite docstrings`: the docstring writer on documented functions it never trained on.

Each case is a function or method of a held-out file (model.training.corpus's split) whose author wrote a
docstring: the docstring is removed and the server's writer (`generate_docstring`, each blank filled by
the model through `infill_text`) writes one again. Reported: how many blanks kept the model's words (the
rest got the neutral wording, counted by the reason), and how close the summary line comes to the
author's in words, against the neutral wording made from the function's name on the same cases.
"""

from __future__ import annotations

import argparse
import ast
import random
import re
import statistics
from collections import Counter
from dataclasses import asdict, dataclass

from tqdm import tqdm

from model.backend import BackendUnavailable
from model.training import corpus

from ..completion import infill_text
from ..docstring import Blank, find_target, generate_docstring
from ..docstring.clean import fallback
from ..docstring.styles import Slot
from ..loading import load_engine
from ..settings import Settings
from .terminal import format_table, loading_bar, output_path, positive_int, show_result


@dataclass(frozen=True)
class Case:
    name: str
    text: str  # the file with this function's docstring removed
    line: int  # the def line (0-based)
    summary: str  # the first line of the author's docstring


def documented_functions(name: str, text: str) -> list[Case]:
    """Every function in `text` whose docstring, alone on its lines, can be cut out leaving a body, in file order."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return []
    lines = text.split("\n")
    cases = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or len(node.body) < 2:
            continue
        doc = node.body[0]
        summary = (ast.get_docstring(node) or "").strip().split("\n", 1)[0].strip()
        if not summary or doc.end_lineno is None or doc.end_col_offset is None:
            continue
        first, last = doc.lineno - 1, doc.end_lineno - 1
        if lines[first][:doc.col_offset].strip() or lines[last][doc.end_col_offset:].strip():
            continue  # shares a line with code: `def f(): "doc"; return 1`
        cut = "\n".join(lines[:first] + lines[last + 1:])
        cases.append(Case(f"{name}:{node.lineno}", cut, node.lineno - 1, summary))
    return sorted(cases, key=lambda c: c.line)


def word_f1(got: str, expected: str) -> float:
    """F1 of the two texts' words (case-folded, as multisets): 1 for the same words, 0 for none shared."""
    a, b = Counter(re.findall(r"[a-z0-9]+", got.lower())), Counter(re.findall(r"[a-z0-9]+", expected.lower()))
    common = sum((a & b).values())
    return 0.0 if not common else 2 * common / (sum(a.values()) + sum(b.values()))


@dataclass(frozen=True)
class Report:
    functions: int
    blanks: int
    kept: float  # share of blanks that kept the model's words
    rejected: dict[str, int]  # blanks that got the neutral wording, by reason
    summary_f1: float  # the written summary against the author's
    neutral_f1: float  # the neutral summary (from the name) against the author's


def evaluate(settings: Settings, n: int, seed: int, verbose: bool = False) -> tuple[Report, list[dict]]:
    _, held = corpus.split(corpus.collect())
    pool = [c for f in held for c in documented_functions(f.name, corpus.read(f))]
    cases = random.Random(seed).sample(pool, min(n, len(pool)))
    with loading_bar(settings.model or "the demo model") as progress:
        engine = load_engine(settings, progress)

    def infill(prefix: str, suffix: str, max_tokens: int) -> str:
        return infill_text(engine, prefix, suffix, max_tokens, settings)

    rows, blanks = [], []
    for case in tqdm(cases, desc="docstrings", unit="function", disable=None):
        target = find_target(case.text, "python", case.line)
        if target is None:  # cannot happen for a def that parsed; never count it as a score
            continue
        written: list[Blank] = []
        generate_docstring(case.text, target, infill, style=settings.docstring_style, blanks=written)
        summary = next(b.text for b in written if b.slot.role == "summary")
        rows.append({"case": case.name, "author": case.summary, "summary": summary,
                     "summary_f1": round(word_f1(summary, case.summary), 3),
                     "neutral_f1": round(word_f1(fallback(Slot("summary"), target), case.summary), 3),
                     "blanks": [{**asdict(b), "slot": asdict(b.slot)} for b in written]})
        blanks += written
        if verbose:
            tqdm.write(f"{case.name}\n  author: {case.summary}\n  wrote:  {summary}")
    if not rows:
        raise ValueError("no documented functions in the held-out files")
    report = Report(len(rows), len(blanks), round(statistics.mean(b.rejected is None for b in blanks), 3),
                    dict(Counter(b.rejected for b in blanks if b.rejected).most_common()),
                    round(statistics.mean(r["summary_f1"] for r in rows), 3),
                    round(statistics.mean(r["neutral_f1"] for r in rows), 3))
    return report, rows


def format_report(report: Report, settings: Settings) -> str:
    model = settings.model or "the embedded demo model"
    reasons = [[f"  neutral wording: {why}", f"{count / report.blanks:.1%}"] for why, count in report.rejected.items()]
    return (f"{report.functions} documented functions in held-out files, {report.blanks} blanks; {model} on "
            f"{settings.device}, {settings.fim_mode.upper()} prompts\n\n" + format_table(["measure", "result"], [
                ["blanks that kept the model's words", f"{report.kept:.1%}"], *reasons,
                ["summary's words against the author's (F1)", f"{report.summary_f1:.3f}"],
                ["  the neutral summary's, on the same functions", f"{report.neutral_f1:.3f}"]]))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="codellama-lsp eval --suite docstrings", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="checkpoint directory or cached HF repo id (default: the embedded demo model)")
    p.add_argument("--device", default="cpu", help="cpu | cuda (default: cpu)")
    p.add_argument("--fim-mode", choices=("psm", "spm"), default="spm", help="prompt order (default spm)")
    p.add_argument("--ngram-cache", choices=("auto", "on", "off"), default="auto",
                   help="the document n-gram cache (default auto: as the model directory asks)")
    p.add_argument("--cases", type=positive_int, default=100, help="functions to document (default 100)")
    p.add_argument("--seed", type=int, default=0, help="which functions (default 0)")
    p.add_argument("--json", type=output_path, metavar="PATH", help="write the report and every docstring's blanks as JSON ('-': stdout)")
    p.add_argument("--verbose", action="store_true", help="print each summary beside the author's as it is done")
    return p


def main(argv: list[str] | None = None) -> None:
    a = build_parser().parse_args(argv)
    settings = Settings(model=a.model, device=a.device, fim_mode=a.fim_mode).merged(ngram_cache=a.ngram_cache)
    try:
        report, rows = evaluate(settings, a.cases, a.seed, a.verbose)
    except (ValueError, BackendUnavailable) as e:
        raise SystemExit(f"codellama-lsp eval: {e}") from e
    show_result(format_report(report, settings),
                {"report": asdict(report), "settings": asdict(settings), "functions": rows},
                a.json)


if __name__ == "__main__":
    main()
