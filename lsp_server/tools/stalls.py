"""`codellama-lsp stalls`: how long the real server process's event loop is held, per operation, in realistic sessions.

The server runs as `serve` does, with one thing added for the measurement (in the process this tool starts, never in
the server's code): every callback its asyncio loop runs is timed, as asyncio's debug mode does with
slow_callback_duration, and those of a millisecond or more are written to a file with when they began. While the loop
runs one, nothing else is read or answered: a keystroke, a cancellation, a completion's answer all wait. This tool
opens big and awkward documents and types, syncs, asks for inline completions and the docstring code action (as the
light bulb does at a cursor move: the first request in a file, later ones, and ones while the file does not parse),
each operation in a window of its own closed by a `codellama.status` round trip; an operation's stall is the longest
callback in its window. GIL contention counts: a callback that waits for the model thread's Python is as late.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from lsprotocol import types

from .client import ServerProcess
from .keystrokes import minified_js, python_file
from .terminal import add_report_and_server_args, format_table, positive_int, run_command, show_result

# Run as `python -c PROBE ARGS...`: times the loop's callbacks (asyncio.events.Handle._run, which every callback,
# task step and timer of the pure-Python event loop goes through), and how late a heartbeat task on the loop wakes
# from a 5 ms sleep (which a thread holding the GIL makes it, outside any callback), then runs the CLI with ARGS.
PROBE = """
import asyncio.events, sys, time
from lsp_server.cli import main
out = open({path!r}, "a", buffering=1)
run = asyncio.events.Handle._run
beating = []
async def beat():
    while True:
        t = time.monotonic()
        await asyncio.sleep(0.005)
        late = time.monotonic() - t - 0.005
        if late >= 0.001:
            out.write(f"lag {{time.monotonic():.6f}} {{late * 1000:.3f}} heartbeat\\n")
def name(callback):
    task = getattr(callback, "__self__", None)  # a task's step: named by its coroutine
    if isinstance(task, asyncio.Task):
        return task.get_coro().__qualname__
    return getattr(callback, "__qualname__", type(callback).__name__)
def timed(self):
    if not beating:
        beating.append(asyncio.get_running_loop().create_task(beat()))
        out.write(f"probe {{time.monotonic():.6f}} 0 running\\n")
    t = time.monotonic()
    run(self)
    took = time.monotonic() - t
    if took >= 0.001:
        out.write(f"callback {{t + took:.6f}} {{took * 1000:.3f}} {{name(self._callback)}}\\n")
asyncio.events.Handle._run = timed
main(sys.argv[1:])
"""


def typescript_file(functions: int) -> str:
    """Readable TypeScript: small typed functions, one after another (5 lines each)."""
    return "".join(f"export function f{i}(a: number, b: number): number {{\n  const c = a * {i} + b;\n"
                   f"  return c - 1;\n}}\n\n" for i in range(functions))


@dataclass
class Windows:
    """The windows (start, end) of each operation, in time.monotonic() (the same clock in both processes)."""

    spans: dict[str, list[tuple[float, float]]] = field(default_factory=dict)

    async def time(self, name: str, operation: Callable[[], Awaitable[object]]) -> None:
        t = time.monotonic()
        await operation()
        self.spans.setdefault(name, []).append((t, time.monotonic()))


class Session:
    """One server and the documents opened in it."""

    def __init__(self, server: ServerProcess, windows: Windows) -> None:
        self.server, self.windows, self.versions = server, windows, {}  # type: dict[str, int]
        self.count = 0

    def fresh_uri(self, stem: str, suffix: str) -> str:
        self.count += 1
        return f"file:///stalls/{stem}{self.count}{suffix}"

    async def barrier(self) -> None:
        await self.server.status()

    def open(self, uri: str, text: str, language: str) -> None:
        self.versions[uri] = 1
        self.server.open(uri, text, language)

    def insert(self, uri: str, line: int, character: int, text: str) -> None:
        self.versions[uri] += 1
        self.server.insert(uri, self.versions[uri], line, character, text)

    def replace(self, uri: str, text: str) -> None:
        self.versions[uri] += 1
        self.server.replace(uri, self.versions[uri], text)

    async def code_action(self, uri: str, line: int) -> object:
        """The light bulb's request at a cursor move (triggerKind Automatic): the action's edit is not written."""
        at = types.Position(line, 0)
        return await self.server.client.text_document_code_action_async(types.CodeActionParams(
            types.TextDocumentIdentifier(uri), types.Range(at, at),
            types.CodeActionContext(diagnostics=[], trigger_kind=types.CodeActionTriggerKind.Automatic)))

    async def timed(self, name: str, operation: Callable[[], Awaitable[object]]) -> None:
        await self.windows.time(name, operation)


async def document_session(s: Session, name: str, text: str, language: str, runs: int, *,
                           completions: bool = True) -> None:
    """didOpen, typing, full-text syncs, code actions (first in the file, after edits, while it does not parse)
    and inline completions in one document."""
    suffix = {"python": ".py", "javascript": ".js", "typescript": ".ts"}[language]
    lines = text.split("\n")
    # Typing goes on a `return` line near the end (positions there are the costliest to find), after its
    # expression, where the file still parses.
    row = next(i for i in range(len(lines) * 9 // 10, len(lines)) if lines[i].lstrip().startswith("return"))
    column = len(lines[row].rstrip("\r"))
    uri = s.fresh_uri(name, suffix)

    async def open_document() -> None:
        s.open(uri, text, language)
        await s.barrier()
    await s.timed(f"{name}: didOpen", open_document)
    for _ in range(runs):  # the first code action in a file: a fresh copy each time, which no cache knows
        other = s.fresh_uri(name, suffix)
        # Names changed throughout: no text parsed before is like it.
        s.open(other, text.replace("def function_", f"def function{s.count}_").replace(
            "function f", f"function f{s.count}_"), language)
        await s.barrier()
        await s.timed(f"{name}: code action, first in the file", lambda: s.code_action(other, row))
    await s.code_action(uri, row)  # not the first any more
    for k in range(runs * 4):
        async def keystroke() -> None:
            s.insert(uri, row, column + k, "x")
            await s.barrier()
        await s.timed(f"{name}: keystroke (didChange)", keystroke)
    for _ in range(runs):
        async def edit_then_action() -> None:
            s.insert(uri, row, column, "y")
            await s.code_action(uri, row)
        await s.timed(f"{name}: keystroke + code action", edit_then_action)
    current = text.replace("\n", "\nz = 0\n", 1)
    for k in range(runs):
        async def full_sync() -> None:
            s.replace(uri, current + "#" * k)
            await s.barrier()
        await s.timed(f"{name}: full-text didChange", full_sync)
    # An unfinished line that breaks the file, then typing on and asking for actions, as while writing it.
    s.replace(uri, current)
    s.insert(uri, row, 0, "def broken(:\n" if language == "python" else "function broken( {\n")
    await s.barrier()
    for k in range(runs):
        async def broken_action() -> None:
            s.insert(uri, row, 13 + k, "q")
            await s.code_action(uri, row + 2)
        await s.timed(f"{name}: keystroke + code action, not parsing", broken_action)
    if completions:
        s.replace(uri, current)
        await s.barrier()
        for k in range(runs):
            async def complete() -> None:
                s.insert(uri, row, column, "r")
                await s.server.inline(uri, row, column + 1)
            await s.timed(f"{name}: keystroke + inline completion", complete)


async def notebook_session(s: Session, cells: int, runs: int) -> None:
    """A notebook of `cells` Python cells: typing in the last one, completions and code actions there."""
    name = f"notebook ({cells} cells)"
    book = s.fresh_uri("book", ".ipynb")
    items = [types.TextDocumentItem(f"{book}#cell{i}", "python", 1, python_file(20)) for i in range(cells)]
    for item in items:
        s.versions[item.uri] = 1

    async def open_notebook() -> None:
        s.server.client.notebook_document_did_open(types.DidOpenNotebookDocumentParams(
            types.NotebookDocument(book, "jupyter-notebook", 1, [
                types.NotebookCell(types.NotebookCellKind.Code, item.uri) for item in items]), items))
        await s.barrier()
    await s.timed(f"{name}: didOpen", open_notebook)
    cell = items[-1].uri

    def insert(line: int, character: int, text: str) -> None:
        s.versions[cell] += 1
        at = types.Position(line, character)
        s.server.client.notebook_document_did_change(types.DidChangeNotebookDocumentParams(
            types.VersionedNotebookDocumentIdentifier(s.versions[cell], book),
            types.NotebookDocumentChangeEvent(cells=types.NotebookDocumentCellChanges(text_content=[
                types.NotebookDocumentCellContentChanges(
                    types.VersionedTextDocumentIdentifier(s.versions[cell], cell),
                    [types.TextDocumentContentChangePartial(types.Range(at, at), text)])]))))
    for k in range(runs * 4):
        async def keystroke() -> None:
            insert(10, 4 + k, "x")
            await s.barrier()
        await s.timed(f"{name}: keystroke", keystroke)
    for _ in range(runs):
        async def action() -> None:
            insert(10, 4, "y")
            await s.code_action(cell, 10)
        await s.timed(f"{name}: keystroke + code action", action)
    for _ in range(runs):
        async def complete() -> None:
            insert(10, 4, "r")
            await s.server.inline(cell, 10, 5)
        await s.timed(f"{name}: keystroke + inline completion", complete)


async def many_open_session(s: Session, others: int, runs: int) -> None:
    """`others` 2,000-line files open beside the one typed in: their snippets are the prompt's extra context."""
    name = f"{others} other files open"

    async def open_all() -> None:
        for _ in range(others):
            s.open(s.fresh_uri("other", ".py"), python_file(2_000), "python")
        await s.barrier()
    await s.timed(f"{name}: didOpen of them all", open_all)
    uri = s.fresh_uri("many", ".py")
    s.open(uri, python_file(2_000), "python")
    await s.barrier()
    for _ in range(runs):
        async def complete() -> None:
            s.insert(uri, 1_000, 4, "r")
            await s.server.inline(uri, 1_000, 5)
        await s.timed(f"{name}: keystroke + inline completion", complete)


SCENARIOS: dict[str, str] = {
    "python": "10,000 lines of Python, 360 KB",
    "crlf": "the same, CRLF line breaks",
    "typescript": "10,000 lines of TypeScript",
    "minified": "JavaScript, a 200 KB minified line",
    "huge": "5 MB of Python (140,000 lines)",
    "notebook": "a notebook of 300 cells",
    "many-open": "a file and 50 other 2,000-line files open",
}


async def run_scenarios(session: Session, names: list[str], runs: int) -> None:
    for name in names:
        if name == "python":
            await document_session(session, "python", python_file(10_000), "python", runs)
        elif name == "crlf":
            await document_session(session, "crlf", python_file(10_000).replace("\n", "\r\n"), "python", runs)
        elif name == "typescript":
            await document_session(session, "typescript", typescript_file(2_000), "typescript", runs)
        elif name == "minified":
            await document_session(session, "minified", minified_js(1_000), "javascript", runs)
        elif name == "huge":
            await document_session(session, "huge", python_file(140_000), "python", max(1, runs // 2),
                                   completions=False)
        elif name == "notebook":
            await notebook_session(session, 300, runs)
        elif name == "many-open":
            await many_open_session(session, 50, runs)


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def stalls(windows: Windows, records: list[tuple[str, float, float, str]]) -> dict[str, dict]:
    """Per operation, over its runs: the longest callback of each window and the heartbeat's worst lateness in
    it (0 when under a millisecond), their max, p95 and p50, and what the longest callback was. A record (kind,
    end, ms, what) counts in the window it began in (a heartbeat's lateness: when it was due), not in the next one,
    which began when the stall ended and the response was written."""
    result = {}
    for name, spans in windows.spans.items():
        figures: dict[str, list[tuple[float, str]]] = {"callback": [], "lag": []}
        for start, end in spans:
            for kind, worst in figures.items():
                inside = [(took, what) for k, t, took, what in records
                          if k == kind and start <= t - took / 1000 <= end]
                worst.append(max(inside, default=(0.0, "")))
        row: dict[str, object] = {"runs": len(spans)}
        for kind, worst in figures.items():
            ms_ = [w for w, _ in worst]
            row.update({f"{kind}_max_ms": round(max(ms_), 2), f"{kind}_p95_ms": round(percentile(ms_, 0.95), 2),
                        f"{kind}_p50_ms": round(percentile(ms_, 0.5), 2)})
        row["longest"] = max(figures["callback"])[1]
        result[name] = row
    return result


async def run(server_args: list[str], names: list[str], runs: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "callbacks")
        server = ServerProcess(server_args, launcher=("-c", PROBE.format(path=path)))
        status = await server.start()
        if status["state"] != "ready":
            raise SystemExit(f"model failed to load: {status['error']}")
        windows = Windows()
        try:
            await run_scenarios(Session(server, windows), names, runs)
        finally:
            await server.stop()
        with open(path) as f:
            records = [(kind, float(t), float(took), what.strip())
                       for kind, t, took, what in (line.split(" ", 3) for line in f)]
    if not any(kind == "probe" for kind, *_ in records):  # every figure would read 0
        raise SystemExit("the event loop's probe did not run in the server: no figures")
    return {"runs": runs, "operations": stalls(windows, records)}


def format_result(result: dict) -> str:
    rows = [[name, str(f["runs"]), *(f"{f[f'{kind}_{q}_ms']:.1f}" for kind in ("lag", "callback")
                                     for q in ("max", "p95", "p50")), f["longest"]]
            for name, f in result["operations"].items()]
    head = ("ms the event loop was held per operation, over its runs (0: under 1 ms). lag: how late a 5 ms heartbeat "
            "on the loop woke (a thread holding the GIL counts); callback: the longest callback the loop ran, "
            "`longest` names it")
    return head + "\n\n" + format_table(
        ["operation", "runs", "lag max", "p95", "p50", "callback max", "p95", "p50", "longest"], rows)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="codellama-lsp stalls", description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=positive_int, default=5,
                   help="runs of each operation (keystrokes: 4 times as many; default 5)")
    p.add_argument("--only", choices=list(SCENARIOS), action="append",
                   help="measure only this session (repeatable): " + "; ".join(
                       f"{k}: {v}" for k, v in SCENARIOS.items()))
    add_report_and_server_args(p)
    return p


def main(argv: list[str] | None = None) -> None:
    a = build_parser().parse_args(argv)
    result = asyncio.run(run(a.server_args, a.only or list(SCENARIOS), a.runs))
    show_result(format_result(result), result, a.json)


if __name__ == "__main__":
    run_command(main, "codellama-lsp stalls")
