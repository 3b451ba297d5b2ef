"""`codellama-lsp soak`: whether the real server's memory and per-request cost grow over a long session.

Editors keep the server running for days. This tool drives one server process through a compressed version of
that: rounds of files opened, typed in with inline completions, asked for code actions and docstrings, and closed
(Python, TypeScript, Go, untitled buffers, notebooks), with settings changes, workspace folder changes and model
reloads between rounds. After each round it reads the server's resident memory and the sizes of its tables and
caches through a probe added only in the process this tool starts (never in the server's code), which answers
them in `codellama.status` after a full garbage collection. A table that grows round after round is a leak.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from lsprotocol import types

from .client import ServerProcess
from .terminal import add_report_and_server_args, format_table, positive_int, run_command, show_result

# Run as `python -c PROBE ARGS...`: `codellama.status` also answers "soak", the sizes below, then the CLI runs.
# Weak references count what is still alive of what was made: every engine loaded, every Document (open ones and
# the snapshots requests take).
PROBE = """
import dataclasses, gc, sys, weakref
import lsp_server.model_load as model_load
import lsp_server.server as server
from lsp_server import completion, context, documents, targets
from lsp_server.docstring import python_target, ts_util
engines, tokenizers, docs = [], [], []  # weak references (a Document is unhashable: no WeakSet)
load_engine = model_load.load_engine
def loading(*args, **kwargs):
    engine = load_engine(*args, **kwargs)
    engines.append(weakref.ref(engine))
    tokenizers.append(weakref.ref(engine.tokenizer))
    return engine
model_load.load_engine = loading
init = documents.Document.__init__
def tracked(self, *args, **kwargs):
    init(self, *args, **kwargs)
    docs.append(weakref.ref(self))
documents.Document.__init__ = tracked
def rss_kib():
    with open("/proc/self/status") as f:
        return next((int(line.split()[1]) for line in f if line.startswith("VmRSS:")), 0)
status = server.CodeLlamaServer.status
def probed(self):
    gc.collect()
    docs[:] = [ref for ref in docs if ref() is not None]
    ws, proto = self.workspace, self.protocol
    parsers = self.targets.call(targets.cache_sizes).result(120)  # where targets are found: the targets process
    sizes = {
        "rss_mib": round(rss_kib() / 1024, 1),
        "gc_objects": len(gc.get_objects()), "gc_frozen": gc.get_freeze_count(),
        "engines_alive": sum(ref() is not None for ref in engines), "engines_loaded": len(engines),
        "tokenizers_alive": sum(ref() is not None for ref in tokenizers),
        "documents_open": len(self.documents._open), "documents_alive": len(docs),
        "notebooks": len(self.notebooks._cells), "notebook_cells": len(self.notebooks._notebook_of),
        "completion_cache": len(self.cache), "completion_cache_kchars": self.cache._chars // 1000,
        "extra_chunks": len(self.extra._chunks),
        "latency_samples": len(self.stats._samples),
        "line_tokens": completion._line_tokens.cache_info().currsize,
        "recalled_lines": completion._recalled_lines.cache_info().currsize,
        "token_counters": len(context._COUNTERS),
        "token_counter_memo": sum(len(c) for c in context._COUNTERS.values()),
        "python_layouts": parsers["python_layouts"], "python_group_trees": parsers["python_group_trees"],
        "ts_trees": parsers["ts_trees"], "targets_pid": parsers["pid"],
        "targets_rss_mib": round(parsers["rss_kib"] / 1024, 1),
        # What the parsers hold in the server process itself: nothing, unless targets are found on a thread there.
        "parses_in_server": len(python_target._RECENT) + sum(len(kept) for kept in ts_util._TREES.values()),
        "worker_jobs": len(self.worker._latest),
        "pygls_documents": len(ws._text_documents) + len(ws._notebook_documents),
        "workspace_folders": len(ws._folders),
        "request_futures": len(proto._request_futures), "result_types": len(proto._result_types),
        "request_methods": len(proto._methods),
        "progress_tokens": len(self.work_done_progress.tokens),
        "tasks": len(__import__("asyncio").all_tasks()),
    }
    return {**status(self), "soak": sizes}
server.CodeLlamaServer.status = probed
from lsp_server.cli import main
main(sys.argv[1:])
"""

# What the client says it can do: resolve code actions (the docstring is written at codeAction/resolve), workspace
# folders, and progress (each model load creates a progress token).
CAPABILITIES = types.ClientCapabilities(
    text_document=types.TextDocumentClientCapabilities(code_action=types.CodeActionClientCapabilities(
        code_action_literal_support=types.ClientCodeActionLiteralOptions(
            types.ClientCodeActionKindOptions([types.CodeActionKind.Refactor])),
        data_support=True, resolve_support=types.ClientCodeActionResolveOptions(properties=["edit"]))),
    workspace=types.WorkspaceClientCapabilities(workspace_folders=True),
    window=types.WindowClientCapabilities(work_done_progress=True))

SETTINGS = {"maxTokens": 4, "maxTokensSingleLine": 4, "invokedSuggestions": 2, "timeBudgetMs": 500}


def python_file(round_: int, functions: int = 30) -> str:
    return "import math\n\n\n" + "".join(
        f"def area_{round_}_{i}(radius):\n    scale = {i} * radius\n    return math.pi * scale ** 2\n\n\n"
        for i in range(functions))


def typescript_file(round_: int, functions: int = 30) -> str:
    return "".join(f"export function f{round_}_{i}(a: number, b: number): number {{\n  const c = a * {i} + b;\n"
                   f"  return c - 1;\n}}\n\n" for i in range(functions))


def go_file(round_: int, functions: int = 30) -> str:
    return "package main\n\n" + "".join(f"func f{round_}_{i}(a int, b int) int {{\n\tc := a * {i} + b\n"
                                        f"\treturn c - 1\n}}\n\n" for i in range(functions))


class Session:
    """One server, the documents open in it, and the time each keystroke's completion took."""

    def __init__(self, server: ServerProcess, keystrokes: int) -> None:
        self.server, self.client, self.keystrokes = server, server.client, keystrokes
        self.versions: dict[str, int] = {}
        self.keystroke_ms: list[float] = []
        self.requests = 0

    def open(self, uri: str, text: str, language: str) -> None:
        self.versions[uri] = 1
        self.server.open(uri, text, language)

    def close(self, uri: str) -> None:
        self.versions.pop(uri, None)
        self.client.text_document_did_close(types.DidCloseTextDocumentParams(types.TextDocumentIdentifier(uri)))

    async def type_line(self, uri: str, line: int, text: str) -> None:
        """Type `text` as a new line above `line`, one keystroke at a time, each followed by an inline completion as
        typing asks for it; the last one is asked for (Alt+\\)."""
        indent = text[:len(text) - len(text.lstrip())]  # auto-indented by the editor
        self.versions[uri] += 1
        self.server.insert(uri, self.versions[uri], line, 0, indent + "\n")
        typed = text[len(indent):][:self.keystrokes]
        for i, ch in enumerate(typed, len(indent)):
            self.versions[uri] += 1
            self.server.insert(uri, self.versions[uri], line, i, ch)
            t = time.perf_counter()
            await self.server.inline(uri, line, i + 1, invoked=i == len(indent) + len(typed) - 1)
            self.keystroke_ms.append((time.perf_counter() - t) * 1000)
            self.requests += 1

    async def docstring(self, uri: str, line: int, resolve: bool) -> None:
        """The code action at `line` (as the light bulb asks), and, when `resolve`, its docstring written."""
        at = types.Position(line, 0)
        actions = await self.client.text_document_code_action_async(types.CodeActionParams(
            types.TextDocumentIdentifier(uri), types.Range(at, at), types.CodeActionContext(diagnostics=[])))
        self.requests += 1
        for action in actions or ():
            if resolve and isinstance(action, types.CodeAction):
                await self.client.code_action_resolve_async(action)
                self.requests += 1

    def settings(self, changes: dict) -> None:
        self.client.workspace_did_change_configuration(types.DidChangeConfigurationParams({"codellama": changes}))

    def folders(self, added: list[str], removed: list[str]) -> None:
        self.client.workspace_did_change_workspace_folders(types.DidChangeWorkspaceFoldersParams(
            types.WorkspaceFoldersChangeEvent(added=[types.WorkspaceFolder(u, u.rsplit("/", 1)[-1]) for u in added],
                                              removed=[types.WorkspaceFolder(u, u.rsplit("/", 1)[-1])
                                                       for u in removed])))


async def play_round(s: Session, r: int, files: int, big_mb: float = 0) -> None:
    """One round: `files` of each kind opened, typed in and closed, with code actions and a docstring or two; with
    `big_mb`, also a TypeScript file of that many megabytes opened, asked for a code action and closed."""
    folder = f"file:///soak/project{r % 3}"
    if big_mb:
        big = f"{folder}/bundle{r}.ts"
        s.open(big, typescript_file(r, int(big_mb * 1e6 / 90)), "typescript")
        await s.docstring(big, 5, resolve=False)
        s.close(big)
    for f in range(files):
        py, ts, go = (f"{folder}/r{r}_{f}.{ext}" for ext in ("py", "ts", "go"))
        untitled = f"untitled:Untitled-{r}-{f}"
        s.open(py, python_file(r), "python")
        s.open(ts, typescript_file(r), "typescript")
        s.open(go, go_file(r), "go")
        s.open(untitled, python_file(r, 5), "python")
        await s.type_line(py, 10, "    total = area_0_1(radius) + math.sqrt(radius)")
        await s.type_line(ts, 6, "  const d = f0_1(a, b) + Math.max(a, b);")
        await s.type_line(go, 7, "\td := f0_1(a, b) + a")
        await s.type_line(untitled, 3, "    half = radius / 2")
        await s.docstring(py, 13, resolve=f == 0)
        await s.docstring(ts, 1, resolve=f == 0 and r % 2 == 0)
        await s.docstring(py, 30, resolve=False)
        for uri in (py, ts, go, untitled):
            s.close(uri)
    await notebook(s, r)


async def notebook(s: Session, r: int) -> None:
    """A notebook of three code cells and a Markdown one: opened, a cell added and typed in, one removed, closed."""
    nb = f"file:///soak/notebook{r}.ipynb"
    cells = [f"vscode-notebook-cell:/soak/notebook{r}.ipynb#c{i}" for i in range(4)]
    texts = ["import math\n", "def circle(radius):\n    return math.pi * radius ** 2\n", "# Notes\n", "x = 1\n"]
    kinds = [types.NotebookCellKind.Code, types.NotebookCellKind.Code, types.NotebookCellKind.Markup,
             types.NotebookCellKind.Code]
    s.client.notebook_document_did_open(types.DidOpenNotebookDocumentParams(
        types.NotebookDocument(nb, "jupyter-notebook", 1, [types.NotebookCell(k, c) for k, c in zip(kinds, cells)]),
        [types.TextDocumentItem(c, "markdown" if k == types.NotebookCellKind.Markup else "python", 1, t)
         for c, k, t in zip(cells, kinds, texts)]))
    for c in cells:
        s.versions[c] = 1
    new = f"vscode-notebook-cell:/soak/notebook{r}.ipynb#c4"
    s.versions[new] = 1
    s.client.notebook_document_did_change(types.DidChangeNotebookDocumentParams(
        types.VersionedNotebookDocumentIdentifier(2, nb), types.NotebookDocumentChangeEvent(
            cells=types.NotebookDocumentCellChanges(structure=types.NotebookDocumentCellChangeStructure(
                types.NotebookCellArrayChange(4, 0, [types.NotebookCell(types.NotebookCellKind.Code, new)]),
                did_open=[types.TextDocumentItem(new, "python", 1, "\n")])))))
    await s.type_line(new, 0, "area = circle(2) + math.pi")
    s.client.notebook_document_did_change(types.DidChangeNotebookDocumentParams(
        types.VersionedNotebookDocumentIdentifier(3, nb), types.NotebookDocumentChangeEvent(
            cells=types.NotebookDocumentCellChanges(structure=types.NotebookDocumentCellChangeStructure(
                types.NotebookCellArrayChange(3, 1, []),
                did_close=[types.TextDocumentIdentifier(cells[3])])))))
    s.client.notebook_document_did_close(types.DidCloseNotebookDocumentParams(
        types.NotebookDocumentIdentifier(nb), [types.TextDocumentIdentifier(c) for c in (*cells[:3], new)]))
    for c in (*cells, new):
        s.versions.pop(c, None)


# The probe's figures shown in the table, in this order (the JSON has them all).
COLUMNS = ("completions", "rss_mib", "targets_rss_mib", "gc_objects", "engines_alive", "tokenizers_alive", "documents_open", "documents_alive", "notebook_cells",
           "completion_cache", "completion_cache_kchars", "extra_chunks", "line_tokens", "python_layouts", "ts_trees",
           "worker_jobs", "request_futures", "result_types", "request_methods", "progress_tokens", "tasks")


async def run(server_args: list[str], rounds: int, files: int, keystrokes: int, reload_every: int,
              big_mb: float = 0) -> dict:
    server = ServerProcess(server_args, capabilities=CAPABILITIES, settings=SETTINGS, launcher=("-c", PROBE),
                           loading=lambda fraction, message: None)
    status = await server.start()
    if status["state"] != "ready":
        raise SystemExit(f"model failed to load: {status['error']}")
    if "soak" not in status:
        raise SystemExit("the probe did not run in the server: no figures")
    s = Session(server, keystrokes)
    samples = [{"round": 0, "requests": 0, "keystroke_p50_ms": None, "completions": 0, **status["soak"]}]
    t0 = time.monotonic()
    try:
        for r in range(1, rounds + 1):
            first = len(s.keystroke_ms)
            await play_round(s, r, files, big_mb)
            # Between rounds, what a day brings: a settings change, a folder added and another removed, a reload.
            s.settings({"maxTokens": 4 + r % 2, "docstringStyle": ("google", "numpy")[r % 2]})
            s.folders([f"file:///soak/project{r % 3}"], [f"file:///soak/project{(r - 1) % 3}"] if r > 1 else [])
            if reload_every and r % reload_every == 0:  # with a document open, alive when the load freezes the heap
                pinned = f"file:///soak/open_across_reload{r}.py"
                s.open(pinned, python_file(r), "python")
                await s.client.workspace_execute_command_async(types.ExecuteCommandParams("codellama.reloadModel"))
                s.close(pinned)
            status = await server.status()
            round_ms = s.keystroke_ms[first:]
            samples.append({"round": r, "requests": s.requests, "seconds": round(time.monotonic() - t0, 1),
                            "keystroke_p50_ms": round(statistics.median(round_ms), 1) if round_ms else None,
                            "completions": status["total"], **status["soak"]})
    finally:
        await server.stop()
    return {"rounds": rounds, "files_per_round": files, "big_mb": big_mb, "keystrokes_per_line": keystrokes, "samples": samples}


def format_result(result: dict) -> str:
    rows = [[str(x["round"]), str(x["requests"]), "" if x["keystroke_p50_ms"] is None else f"{x['keystroke_p50_ms']}",
             *(str(x[c]) for c in COLUMNS)] for x in result["samples"]]
    head = ("the server's memory and tables after each round (after a full garbage collection); a figure that grows "
            "round after round is a leak. keystroke p50: the median inline completion of the round, in ms")
    return head + "\n\n" + format_table(["round", "requests", "keystroke p50", *COLUMNS], rows)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="codellama-lsp soak", description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=positive_int, default=20, help="rounds of use (default 20)")
    p.add_argument("--files", type=positive_int, default=3,
                   help="files of each kind (Python, TypeScript, Go, untitled) opened per round (default 3)")
    p.add_argument("--keystrokes", type=positive_int, default=8,
                   help="keystrokes typed per line, each with an inline completion (default 8)")
    p.add_argument("--reload-every", type=int, default=5, metavar="N",
                   help="reload the model every N rounds (0: never; default 5)")
    p.add_argument("--big-mb", type=float, default=0, metavar="MB",
                   help="also open a TypeScript file of MB megabytes per round, ask for a code action, close it")
    add_report_and_server_args(p)
    return p


def main(argv: list[str] | None = None) -> None:
    a = build_parser().parse_args(argv)
    result = asyncio.run(run(a.server_args, a.rounds, a.files, a.keystrokes, a.reload_every, a.big_mb))
    show_result(format_result(result), result, a.json)


if __name__ == "__main__":
    run_command(main, "codellama-lsp soak")
