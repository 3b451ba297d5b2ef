"""What a long session leaves behind in the real server process: tables that grew by one entry per message or per
model load, for as long as the editor stays open. Counted through the soak tool's probe (lsp_server/tools/soak.py),
which answers the sizes of the server's tables in `codellama.status`, run only in the process these tests start."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from lsp_server.docstring import find_target
from lsp_server.tools.soak import PROBE
from tests.wire import Wire

# A client that answers the server's progress requests (see `reload`), resolves code actions and applies edits.
CAPABILITIES = {
    "workspace": {"applyEdit": True, "workspaceFolders": True},
    "window": {"workDoneProgress": True},
    "textDocument": {"inlineCompletion": {}},
}
SOURCE = "import math\n\n\n" + "".join(f"def area_{i}(radius):\n    return math.pi * radius ** {i}\n\n\n"
                                       for i in range(20))


@pytest.fixture(scope="module")
def wire() -> Wire:
    wire = Wire(command=[sys.executable, "-c", PROBE, "--log-level", "WARNING", "serve"])
    try:
        wire.initialize(CAPABILITIES, load=False, options={"codellama": {"maxTokens": 4, "maxTokensSingleLine": 4}})
        reload(wire, "initialized")
        yield wire
    finally:
        wire.kill()


def sizes(wire: Wire) -> dict:
    return wire.result("workspace/executeCommand", {"command": "codellama.status"})["soak"]


def reload(wire: Wire, how: str = "command") -> None:
    """Load the model (at `initialized`, or by the reload command), answering its progress request as an editor
    does, so that the load makes a progress token; returns once it is loaded."""
    answered = {m["id"] for m in wire.server_requests}
    msg_id = None
    if how == "initialized":
        wire.notify("initialized", {})
    else:
        msg_id = wire.request("workspace/executeCommand", {"command": "codellama.reloadModel"})
    end = time.monotonic() + 30
    while time.monotonic() < end:
        asked = [m for m in wire.server_requests if m["method"] == "window/workDoneProgress/create"
                 and m["id"] not in answered]
        if asked:
            wire.send({"jsonrpc": "2.0", "id": asked[0]["id"], "result": None})
            break
        time.sleep(0.02)
    else:
        raise AssertionError("the server did not ask to create a progress token")
    if msg_id is not None:
        assert "error" not in wire.response(msg_id, 120)
    assert wire.wait_ready()["state"] == "ready"


def type_in(wire: Wire, uri: str) -> None:
    """Open `uri`, type a few characters with completions, as the tokenizer's caches fill up when typing. Its last
    line names it: another document's cached completions are no hit here."""
    wire.open(uri, f"{SOURCE}# {uri}\n")
    for i, ch in enumerate("total", 1):
        wire.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": i + 1}, "contentChanges": [
            {"range": {"start": {"line": 5, "character": i - 1}, "end": {"line": 5, "character": i - 1}},
             "text": ch}]})
        assert "error" not in wire.inline(uri, 5, i)


def test_a_model_reload_frees_the_model_it_replaces_its_tokenizer_and_the_documents_open_then(wire: Wire) -> None:
    """The tokenizer caches (lines' tokens, token counts) are keyed by the tokenizer: each reload kept the old one
    alive (Code Llama's: megabytes of vocabulary tables). The load freezes the heap (gc.freeze): a document open
    then must still be freed when it is closed."""
    type_in(wire, "file:///long/a.py")
    assert sizes(wire)["line_tokens"] > 0 and sizes(wire)["token_counters"] > 0
    for n in range(3):
        reload(wire)
        type_in(wire, f"file:///long/b{n}.py")
    wire.notify("textDocument/didClose", {"textDocument": {"uri": "file:///long/a.py"}})
    for n in range(3):
        wire.notify("textDocument/didClose", {"textDocument": {"uri": f"file:///long/b{n}.py"}})
    now = sizes(wire)
    assert now["engines_loaded"] >= 4
    assert (now["engines_alive"], now["tokenizers_alive"]) == (1, 1)
    assert (now["documents_open"], now["documents_alive"]) == (0, 0)


def test_a_closed_documents_completions_leave_the_cache(wire: Wire) -> None:
    """Each completion cache entry holds its document's whole text: a closed document's stayed until evicted (128
    entries, 16 million characters). A notebook's cells go when it closes."""
    for n in range(2):
        type_in(wire, f"file:///long/c{n}.py")
    assert sizes(wire)["completion_cache"] > 0
    wire.notify("textDocument/didClose", {"textDocument": {"uri": "file:///long/c0.py"}})
    left = sizes(wire)["completion_cache"]
    assert left > 0  # the other document's
    wire.notify("textDocument/didClose", {"textDocument": {"uri": "file:///long/c1.py"}})
    assert sizes(wire)["completion_cache"] == 0


def code_action(wire: Wire, uri: str, line: int) -> None:
    at = {"line": line, "character": 0}
    assert "error" not in wire.call("textDocument/codeAction", {
        "textDocument": {"uri": uri}, "range": {"start": at, "end": at}, "context": {"diagnostics": []}})


def test_a_closed_documents_parse_trees_are_forgotten(wire: Wire) -> None:
    """The docstring action's parsers keep the trees of recent texts (four per language) to reparse edits cheaply;
    a closed document's stayed (four closed 4 MB TypeScript files: 850 MB). Those of documents still open stay."""
    ts = "".join(f"export function f{i}(a: number): number {{\n  return a * {i};\n}}\n\n" for i in range(50))
    for uri in ("file:///long/t0.ts", "file:///long/t1.ts"):
        wire.open(uri, f"// {uri}\n{ts}", "typescript")
        code_action(wire, uri, 0)
    wire.open("file:///long/p.py", SOURCE)
    code_action(wire, "file:///long/p.py", 3)
    before = sizes(wire)
    assert before["ts_trees"] == 2 and before["python_layouts"] == 1
    wire.notify("textDocument/didClose", {"textDocument": {"uri": "file:///long/t0.ts"}})
    assert sizes(wire)["ts_trees"] == 1
    for uri in ("file:///long/t1.ts", "file:///long/p.py"):
        wire.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
    now = sizes(wire)
    assert (now["ts_trees"], now["python_layouts"], now["python_group_trees"]) == (0, 0, 0)


def test_model_loads_leave_no_progress_token_behind(wire: Wire) -> None:
    """pygls keeps each progress token the server creates, for the session: one more per model load."""
    for _ in range(2):
        reload(wire)
    assert sizes(wire)["progress_tokens"] == 0


def test_notifications_and_async_commands_leave_no_request_bookkeeping(wire: Wire) -> None:
    """pygls kept the done future of every async or generator handler it ran for a notification (a workspace folder
    change) or for an async command (generateDocstring, reloadModel) under an id nobody popped: one per message."""
    before = sizes(wire)["request_futures"]
    for n in range(30):
        wire.notify("workspace/didChangeWorkspaceFolders", {"event": {
            "added": [{"uri": f"file:///long/p{n}", "name": f"p{n}"}],
            "removed": [{"uri": f"file:///long/p{n - 1}", "name": f"p{n - 1}"}] if n else []}})
        reply = wire.result("workspace/executeCommand", {"command": "codellama.generateDocstring", "arguments": [
            "file:///long/not-open.py", {"line": 0, "character": 0}]})
        assert reply["applied"] is False
    now = sizes(wire)
    assert now["request_futures"] <= before
    assert now["workspace_folders"] == 1


def broken_python(functions: int) -> str:
    """Python that does not parse (a def left unfinished halfway), of functions without docstrings: 44 bytes each."""
    defs = [f"def scale_{i}(value, factor):\n    return value * factor + {i}\n\n\n" for i in range(functions)]
    return "".join(defs[:functions // 2]) + "def unfinished(:\n\n\n" + "".join(defs[functions // 2:])


def titles(wire: Wire, uri: str, line: int, timeout: float = 60) -> list[str] | None:
    at = {"line": line, "character": 0}
    actions = wire.result("textDocument/codeAction", {"textDocument": {"uri": uri}, "range": {"start": at, "end": at},
                                                       "context": {"diagnostics": []}}, timeout)
    return actions and [action["title"] for action in actions]


def test_docstring_targets_are_found_in_a_process_of_their_own(wire: Wire) -> None:
    """A file that does not parse is parsed from scratch at each code action (a cursor move), and tree-sitter holds
    the GIL for all of a parse: on a thread of the server, typing in a broken 5 MB file held its event loop ~0.5 s per
    code action. Targets are found in a child process, with the answers found in-process, and the parses kept there."""
    uri, text = "file:///long/broken.py", broken_python(4_000)
    wire.open(uri, text)
    for line in (4, 8_004, 16_000):  # before the broken def, just after it, at the end
        expected = find_target(text, "python", line)
        assert expected is not None
        assert titles(wire, uri, line) == [f"Generate docstring for {expected.name}"]
    now = sizes(wire)
    assert now["targets_pid"] != wire.proc.pid
    assert now["python_layouts"] == 1 and now["parses_in_server"] == 0
    wire.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
    assert (sizes(wire)["python_layouts"], sizes(wire)["ts_trees"]) == (0, 0)


def test_a_targets_process_that_dies_is_replaced(wire: Wire) -> None:
    """Killed (or crashed) while it parses, the targets process answers the code action with no action, and the next
    one is answered by a new process: the session goes on."""
    uri, text = "file:///long/huge.py", broken_python(60_000)  # 2.6 MB: a parse from scratch of a few hundred ms
    wire.open(uri, text)
    expected = [f"Generate docstring for {find_target(text, 'python', 4).name}"]
    first = sizes(wire)["targets_pid"]
    at = {"line": 4, "character": 0}
    asked = wire.request("textDocument/codeAction", {"textDocument": {"uri": uri}, "range": {"start": at, "end": at},
                                                     "context": {"diagnostics": []}})
    os.kill(first, signal.SIGKILL)
    reply = wire.response(asked, 60)
    assert "error" not in reply
    assert reply["result"] is None or [a["title"] for a in reply["result"]] == expected  # answered before the kill
    assert titles(wire, uri, 4) == expected
    assert sizes(wire)["targets_pid"] not in (first, wire.proc.pid)
    wire.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
