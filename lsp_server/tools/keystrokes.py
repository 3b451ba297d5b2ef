"""`codellama-lsp keystrokes`: what a keystroke costs the real server process in big and awkward documents.

Each document is opened in `codellama-lsp serve`, then typed into one character at a time (a didChange each,
sent back to back as a fast typist's editor does), then `codellama.status` is asked: the time until its answer,
over the keystrokes, is what one keystroke holds the server's event loop (JSON and the pipe included). Then the
light bulb's code action after an edit is timed (the docstring action parses what the edit touched). Every figure is set
against a small file's in the same run: the model never runs, so this is the server's own work, which must not
grow with the document.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable

from lsprotocol import types

from .client import ServerProcess, ready_server
from .terminal import add_report_and_server_args, format_table, ms, positive_int, run_command, show_result


def python_file(lines: int) -> str:
    """`lines` lines of plain Python: small functions, one after another."""
    out: list[str] = []
    for i in range(lines // 5 + 1):
        out += [f"def function_{i}(alpha, beta, gamma):", f'    """Compute thing {i} from alpha and beta."""',
                f"    result = alpha * {i} + beta - gamma  # a comment", "    return result", ""]
    return "\n".join(out[:lines]) + "\n"


def with_data_line(lines: int) -> str:
    """Python with a 200 KB data line in its middle, as generated tables have."""
    half = python_file(lines // 2)
    return half + "DATA = [" + ", ".join(str(i * 7919 % 100_003) for i in range(30_000)) + "]\n" + half


def minified_js(functions: int) -> str:
    """JavaScript: readable functions around one 200 KB minified line."""
    readable = "".join(f"function f{i}(a, b) {{\n  return a * {i} + b;\n}}\n\n" for i in range(functions // 2))
    return readable + "var a=function(n){return n+1};" * 7_000 + "\n" + readable


# name -> (what it is, its language, the document's text, how many other 2,000-line files are open beside it)
SCENARIOS: dict[str, tuple[str, str, Callable[[], str], int]] = {
    "small": ("200 lines of Python (the baseline)", "python", lambda: python_file(200), 0),
    "big": ("10,000 lines, 360 KB", "python", lambda: python_file(10_000), 0),
    "crlf": ("the same, CRLF line breaks", "python", lambda: python_file(10_000).replace("\n", "\r\n"), 0),
    "data-line": ("4,000 lines and a 200 KB data line", "python", lambda: with_data_line(4_000), 0),
    "minified": ("JavaScript, a 200 KB minified line", "javascript", lambda: minified_js(1_000), 0),
    "many-open": ("10,000 lines, 50 other files open", "python", lambda: python_file(10_000), 50),
}


async def measure(server: ServerProcess, name: str, keystrokes: int) -> dict:
    """One scenario: ms per keystroke (didChange) and the code action's round trip after an edit (p50 of 5)."""
    _, language, make, others = SCENARIOS[name]
    for k in range(others):
        server.open(f"file:///keystrokes/{name}/other{k}.py", python_file(2_000))
    text = make()
    uri = f"file:///keystrokes/{name}/main" + (".py" if language == "python" else ".js")
    server.open(uri, text, language)
    row = text.count("\n") * 9 // 10  # near the end: positions there are the costliest to find
    await server.status()  # the opens are handled
    t = time.perf_counter()
    for k in range(keystrokes):
        server.insert(uri, k + 2, row, 4 + k, "x")
    await server.status()
    per_key = (time.perf_counter() - t) * 1000 / keystrokes
    actions: list[float] = []
    for k in range(5):
        server.insert(uri, keystrokes + 2 + k, row, 4, "y")  # an edit: what it touched is parsed again
        t = time.perf_counter()
        at = types.Position(row, 4)
        await server.client.text_document_code_action_async(types.CodeActionParams(
            types.TextDocumentIdentifier(uri), types.Range(at, at), types.CodeActionContext(diagnostics=[])))
        actions.append((time.perf_counter() - t) * 1000)
    return {"keystroke_ms": round(per_key, 3), "code_action_ms": round(statistics.median(actions), 2)}


async def run(server_args: list[str], names: list[str], keystrokes: int) -> dict:
    server = await ready_server(server_args)
    try:
        figures = {name: await measure(server, name, keystrokes) for name in ["small", *names]}
    finally:
        await server.stop()
    base = figures["small"]
    for name, f in figures.items():
        f["keystroke_vs_small"] = round(f["keystroke_ms"] / base["keystroke_ms"], 2)
        f["code_action_vs_small"] = round(f["code_action_ms"] / base["code_action_ms"], 2)
    return {"keystrokes": keystrokes, "scenarios": figures}


def format_result(result: dict) -> str:
    rows = [[f"{name}: {SCENARIOS[name][0]}", ms(f["keystroke_ms"]), f"{f['keystroke_vs_small']:g}x",
             ms(f["code_action_ms"]), f"{f['code_action_vs_small']:g}x"] for name, f in result["scenarios"].items()]
    head = (f"{result['keystrokes']} keystrokes per document, each a didChange, then codellama.status; "
            "the code action: p50 of 5, each after an edit")
    return head + "\n\n" + format_table(
        ["document", "per keystroke", "/ small", "code action", "/ small"], rows)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="codellama-lsp keystrokes", description=__doc__.split("\n\n")[0])
    p.add_argument("--keystrokes", type=positive_int, default=200, help="characters typed per document (default 200)")
    p.add_argument("--only", choices=[n for n in SCENARIOS if n != "small"], action="append",
                   help="measure only this document beside the small one (repeatable)")
    add_report_and_server_args(p)
    return p


def main(argv: list[str] | None = None) -> None:
    a = build_parser().parse_args(argv)
    names = a.only or [n for n in SCENARIOS if n != "small"]
    result = asyncio.run(run(a.server_args, names, a.keystrokes))
    show_result(format_result(result), result, a.json)


if __name__ == "__main__":
    run_command(main, "codellama-lsp keystrokes")
