"""Reliability through the real server process: what a client asks for cannot freeze or break it.

One loaded server (the demo model) is shared by most tests here; its client claims workspace/configuration
and workDoneProgress but never answers the server's requests, so it also shows that loading does not
depend on the client's goodwill.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lsp_server.protocol import REPLY_S, STEPPED_BODY_BYTES
from lsp_server.text import split_lines
from lsp_server.tools.keystrokes import python_file
from lsp_server.tools.soak import PROBE
from tests.wire import Wire, slow_loading_server

CAPABILITIES = {
    "workspace": {"configuration": True, "applyEdit": True},
    "window": {"workDoneProgress": True},
    "textDocument": {"inlineCompletion": {}, "codeAction": {"dataSupport": True,
                                                            "resolveSupport": {"properties": ["edit"]}}},
}


@pytest.fixture(scope="module")
def server() -> Iterator[Wire]:
    wire = Wire()
    wire.initialize(CAPABILITIES, load=True)
    yield wire
    wire.kill()


def status(wire: Wire) -> dict:
    return wire.result("workspace/executeCommand", {"command": "codellama.status"})


def items(reply: dict) -> list[dict]:
    assert "error" not in reply, reply
    return reply["result"]["items"]


def code_action(wire: Wire, uri: str, line: int) -> list[dict]:
    at = {"line": line, "character": 0}
    reply = wire.call("textDocument/codeAction", {"textDocument": {"uri": uri}, "range": {"start": at, "end": at},
                                                  "context": {"diagnostics": []}})
    assert "error" not in reply, reply
    return reply["result"] or []


def test_loads_although_the_client_never_answers(server: Wire) -> None:
    t0 = time.monotonic()
    assert server.wait_ready(60)["state"] == "ready"
    asked = {r["method"] for r in server.server_requests}
    assert {"workspace/configuration", "window/workDoneProgress/create"} <= asked  # asked, and never answered
    assert time.monotonic() - t0 < 45


def test_requests_the_client_never_answers_are_given_up_and_leave_nothing_behind() -> None:
    """pygls kept each request of the server's that the client left unanswered (workspace/configuration, progress
    creation) in its tables for the session, one per load and per settings pull. Now each is given up after its
    time; an answer that comes later is dropped with a debug line (pygls warned of an unknown id)."""
    wire = Wire(command=[sys.executable, "-c", PROBE, "--log-level", "DEBUG", "serve"])

    def tables() -> tuple[int, int]:
        soak = wire.result("workspace/executeCommand", {"command": "codellama.status"})["soak"]
        return soak["request_futures"], soak["result_types"]  # the status request being answered is one of the first

    try:
        wire.initialize(CAPABILITIES, load=True)
        assert wire.wait_ready(60)["state"] == "ready"
        for _ in range(4):  # a settings pull each
            wire.notify("workspace/didChangeConfiguration", {"settings": None})
        assert wire.result("workspace/executeCommand", {"command": "codellama.reloadModel"}, 60)  # progress creation
        end = time.monotonic() + 10
        while len(asked := list(wire.server_requests)) < 7 and time.monotonic() < end:
            time.sleep(0.01)
        assert [r["method"] for r in asked].count("workspace/configuration") == 5, asked
        assert [r["method"] for r in asked].count("window/workDoneProgress/create") == 2, asked
        time.sleep(REPLY_S + 0.5)
        assert tables() == (1, 0)  # the status request asking; before: (8, 7)

        since = len(wire.log())
        for request in asked:  # late: each request was given up
            wire.send({"jsonrpc": "2.0", "id": request["id"], "result": [{}] if "configuration" in request["method"]
                       else None})
        wire.send({"jsonrpc": "2.0", "id": asked[0]["id"], "error": {"code": -32603, "message": "late, and wrong"}})
        assert tables() == (1, 0)
        assert wire.logged("dropped the client's late answer", since=since)
        late = wire.log()[since:]
        assert late.count("dropped the client's late answer") == len(asked) + 1, late
        assert "unknown message id" not in late and "Traceback" not in late and "ERROR" not in late, late

        # An error answer in time (pygls kept the result type of the request it answered)
        wire.notify("workspace/didChangeConfiguration", {"settings": None})
        while len(wire.server_requests) == len(asked) and time.monotonic() < end + 10:
            time.sleep(0.01)
        wire.send({"jsonrpc": "2.0", "id": wire.server_requests[-1]["id"], "error": {"code": -32601, "message": "no"}})
        assert wire.logged("workspace/configuration failed: no")
        assert tables() == (1, 0)
        assert wire.stop() == 0
    finally:
        wire.kill()


# -- class 2: documents that are not open --------------------------------------------------------------
def test_unopened_documents_that_are_not_regular_files_cannot_freeze_the_server(server: Wire,
                                                                               tmp_path: Path) -> None:
    server.wait_ready()
    fifo = tmp_path / "fifo.py"
    os.mkfifo(fifo)
    big = tmp_path / "big.py"
    big.write_bytes(b"x = 1\n" * (1 << 20))  # 6 MiB
    readable = tmp_path / "on_disk.py"
    readable.write_text("def double(x):\n    return \n")
    t0 = time.monotonic()
    for path in (fifo, "/dev/zero", "/dev/stdin", "/proc/self/fd/0", tmp_path, big, tmp_path / "missing.py"):
        assert items(server.inline(f"file://{path}", 0, 0)) == []
        assert code_action(server, f"file://{path}", 0) == []
    assert time.monotonic() - t0 < 20
    assert status(server)["state"] == "ready"
    assert server.rss_kib() < 2 << 20  # nothing like /dev/zero's endless bytes was read
    assert items(server.inline(f"file://{readable}", 1, 11))  # a regular file is read and completed
    # ... in its language, known by its extension: Python's docstring action is offered.
    assert [a["title"] for a in code_action(server, f"file://{readable}", 0)] == ["Generate docstring for double"]


# -- class 4: bad text in one document ------------------------------------------------------------------
def test_a_lone_surrogate_in_one_document_breaks_nothing(server: Wire) -> None:
    server.wait_ready()
    # json.dumps spells the lone surrogate as the escape "\ud800", as a client's JSON would.
    server.open("file:///work/bad.py", 'BAD = "\ud800"\n\ndef bad(x):\n    return x\n')
    good = "def scale(values, factor):\n    return [v * factor for v in values]\n\n\nresult = scale(\n"
    server.open("file:///work/good.py", good)
    assert items(server.inline("file:///work/good.py", 4, 15))  # other-file context includes bad.py
    assert "result" in server.inline("file:///work/bad.py", 1, 0)
    assert [a["title"] for a in code_action(server, "file:///work/bad.py", 2)] == ["Generate docstring for bad"]
    server.notify("textDocument/didClose", {"textDocument": {"uri": "file:///work/bad.py"}})
    server.notify("textDocument/didChange", {"textDocument": {"uri": "file:///work/good.py", "version": 2},
                                             "contentChanges": [{"range": {"start": {"line": 4, "character": 15},
                                                                           "end": {"line": 4, "character": 15}},
                                                                 "text": "\udfff"}]})
    assert "result" in server.inline("file:///work/good.py", 4, 16)
    assert server.popups() == []


# -- class 5: one position conversion -------------------------------------------------------------------
def test_positions_past_form_feeds_and_unicode_line_separators(server: Wire) -> None:
    server.wait_ready()
    # None of \f, \v, U+0085, U+2028 ends a line in LSP; str.splitlines would see seven lines before the def.
    text = "# \f form feed\n# \u2028 line separator, \x85 next line, \v vertical tab\ndef area(w, h):\n" \
           "    return w * h\n\n\nx = area(\n"
    uri = "file:///work/separators.py"
    server.open(uri, text)
    actions = code_action(server, uri, 2)
    assert [a["title"] for a in actions] == ["Generate docstring for area"]
    resolved = server.result("codeAction/resolve", actions[0])
    edit = resolved["edit"]["changes"][uri][0]
    assert edit["range"]["start"] == edit["range"]["end"] == {"line": 3, "character": 0}
    lines = split_lines(text)
    assert lines[3] == "    return w * h" and '"""' in edit["newText"]
    # A cursor where the demo model writes something whatever the earlier tests left in the server's caches
    # (after "print(area(2, " it wrote only a loop of zeros when this test ran alone).
    completion = items(server.inline(uri, 6, 9))
    assert completion and completion[0]["range"]["start"] == {"line": 6, "character": 9}


JUNK = st.text(alphabet=st.sampled_from(["a", " ", "\f", "\v", "\x85", "\u2028", "\u2029", "é", "😀", "\ud800", "#"]),
               max_size=6)
BREAK = st.sampled_from(["\n", "\r\n", "\r"])


LINE_BREAK = re.compile(r"\r\n|\r|\n")  # LSP's, written out here rather than taken from the server


def utf16_position(text: str, offset: int) -> dict:
    breaks = [m.end() for m in LINE_BREAK.finditer(text, 0, offset)]
    start = breaks[-1] if breaks else 0
    return {"line": len(breaks), "character": len(text[start:offset].encode("utf-16-le", "surrogatepass")) // 2}


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 6), st.integers(0, 6), JUNK,
                          st.one_of(st.just(""), BREAK.map(lambda b: b + "# "))), max_size=5))
def test_edits_with_any_code_points_keep_every_line_in_place(server: Wire, edits: list) -> None:
    """Random edits inside comment lines full of characters that are not LSP line breaks (and of some that
    are), sent as one didChange: the server's idea of where each def starts stays LSP's."""
    server.wait_ready()
    uri, names = "file:///work/edits.py", ["alpha", "beta"]
    text = "# é\f😀\n" + "".join(f"def {n}(x):\n    return x\n# \u2028\x85 {n}\n" for n in names)
    server.open(uri, text)
    changes = []
    for block, a, b, junk, new_line in edits:
        lines = LINE_BREAK.split(text)
        row = [i for i, line in enumerate(lines) if line.startswith("#")][block]
        row_start = [0, *(m.end() for m in LINE_BREAK.finditer(text))][row]
        a, b = sorted(max(2, min(x, len(lines[row]))) for x in (a, b))  # keep the "# " that makes a comment
        start, end = row_start + a, row_start + b
        changes.append({"range": {"start": utf16_position(text, start), "end": utf16_position(text, end)},
                        "text": junk + new_line})
        text = text[:start] + junk + new_line + text[end:]
    server.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": 2}, "contentChanges": changes})
    lines = LINE_BREAK.split(text)
    for name in names:
        row = next(i for i, line in enumerate(lines) if line.startswith(f"def {name}("))
        assert [a["title"] for a in code_action(server, uri, row)] == [f"Generate docstring for {name}"]


# -- class 7: messages that come together --------------------------------------------------------------
@pytest.mark.parametrize("method", ["textDocument/codeAction", "textDocument/inlineCompletion"])
def test_a_request_answers_for_the_document_as_it_was_when_asked(server: Wire, method: str) -> None:
    """A request is about the document as it was when the client sent it, also when an edit right behind it
    is read in the same chunk (a client typing while the server is busy): positions are never taken in a
    later version of the document than the one they were counted in."""
    server.wait_ready()
    uri = f"file:///work/together_{method.rsplit('/', 1)[1]}.py"
    server.open(uri, "def area(w, h):\n    return w * h\n")
    above = {"range": {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 0}},
             "text": "import math\n\n"}
    edit = ("textDocument/didChange", {"textDocument": {"uri": uri, "version": 2}, "contentChanges": [above]})
    if method == "textDocument/codeAction":  # line 0, the def; in version 2 it is an import
        at = {"line": 0, "character": 0}
        msg_id = server.request_then(method, {"textDocument": {"uri": uri}, "range": {"start": at, "end": at},
                                              "context": {"diagnostics": []}}, edit)
        actions = server.response(msg_id)["result"] or []
        assert [(a["title"], a["data"]["line"]) for a in actions] == [("Generate docstring for area", 0)]
    else:  # past the end of line 1, "    return w * h" (16); in version 2 line 1 is blank
        msg_id = server.request_then(method, {"textDocument": {"uri": uri}, "position": {"line": 1, "character": 40},
                                              "context": {"triggerKind": 1}}, edit)
        found = items(server.response(msg_id))
        assert found and all(i["range"]["start"] == {"line": 1, "character": 16} for i in found), found
    assert code_action(server, uri, 2)  # version 2 is what the server has now


def test_a_big_full_text_change_is_taken_before_the_messages_read_behind_it(server: Wire) -> None:
    """A body over STEPPED_BODY_BYTES is decoded a piece at a time, other work of the loop running between; the
    edit and the request read behind it in the same chunk must still wait for it, in order."""
    server.wait_ready()
    uri = "file:///work/big_then_small.py"
    server.open(uri, "x = 1\n")
    big = "def add(a, b):\n    return a + b\n\n\n" + "y = 2\n" * 60_000
    assert len(json.dumps(big)) > STEPPED_BODY_BYTES
    rename = {"range": {"start": {"line": 0, "character": 4}, "end": {"line": 0, "character": 7}}, "text": "total"}
    at = {"line": 0, "character": 0}
    msg_id = server.notifications_then([
        ("textDocument/didChange", {"textDocument": {"uri": uri, "version": 2}, "contentChanges": [{"text": big}]}),
        ("textDocument/didChange", {"textDocument": {"uri": uri, "version": 3}, "contentChanges": [rename]}),
    ], "textDocument/codeAction", {"textDocument": {"uri": uri}, "range": {"start": at, "end": at},
                                   "context": {"diagnostics": []}})
    actions = server.response(msg_id, 60)["result"] or []
    # Overtaken by the request: no action (in "x = 1"); by the small edit: "add", which it renamed in "x = 1".
    assert [a["title"] for a in actions] == ["Generate docstring for total"]
    server.notify("textDocument/didClose", {"textDocument": {"uri": uri}})


def test_a_files_first_parse_holds_no_other_request_and_answers_for_its_version(server: Wire) -> None:
    """The first code action in a big file parses all of it (a second and more at 40,000 lines): off the event loop,
    so that a request behind it is answered first; and for the document as it was when asked, though an edit that
    moves every line came right behind the request."""
    server.wait_ready()
    uri = "file:///work/first_parse.py"
    # Functions without docstrings: line 5k is `def first_parse_k(...)`.
    server.open(uri, python_file(40_000).replace("function_", "first_parse_").replace('    """Compute', "    # Compute"))
    at = {"line": 30_000, "character": 0}
    above = {"range": {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 0}},
             "text": "import math\n\n"}
    action = server.request_then("textDocument/codeAction", {
        "textDocument": {"uri": uri}, "range": {"start": at, "end": at}, "context": {"diagnostics": []}},
        ("textDocument/didChange", {"textDocument": {"uri": uri, "version": 2}, "contentChanges": [above]}))
    assert status(server)["state"] == "ready"
    assert server.answers[action] == 0  # the status request, read after it, was answered first
    actions = server.response(action)["result"] or []
    assert [(a["title"], a["data"]["line"]) for a in actions] == [("Generate docstring for first_parse_6000", 30_000)]
    assert [a["title"] for a in code_action(server, uri, 30_000)] == ["Generate docstring for first_parse_5999"]


def test_a_notebook_cell_edit_past_its_line_end_lands_where_the_client_puts_it(server: Wire) -> None:
    """A cell edit at a position past its line's end is made at the line's end, as in any document (pygls'
    own notebook bookkeeping once moved the position in place, one before the end, before ours read it),
    and notebook notifications about a notebook that is not open cost nothing but a warning."""
    server.wait_ready()
    book, cell = "file:///work/book.ipynb", "vscode-notebook-cell:/work/book.ipynb#C1"
    server.notify("notebookDocument/didOpen", {
        "notebookDocument": {"uri": book, "notebookType": "jupyter-notebook", "version": 1,
                             "cells": [{"kind": 2, "document": cell}]},
        "cellTextDocuments": [{"uri": cell, "languageId": "python", "version": 1, "text": "ab"}]})
    past = {"line": 0, "character": 9}  # "ab" has 2: the client inserts at its end, giving "ab\n\n\nz"
    server.notify("notebookDocument/didChange", {
        "notebookDocument": {"uri": book, "version": 2}, "change": {"cells": {"textContent": [
            {"document": {"uri": cell, "version": 2}, "changes": [{"range": {"start": past, "end": past},
                                                                   "text": "\n\n\nz"}]}]}}})
    found = items(server.call("textDocument/inlineCompletion", {
        "textDocument": {"uri": cell}, "position": {"line": 3, "character": 9}, "context": {"triggerKind": 1}}, 60))
    assert found and all(i["range"]["start"] == {"line": 3, "character": 1} for i in found), found  # after "z"
    server.notify("notebookDocument/didClose", {"notebookDocument": {"uri": book},
                                                "cellTextDocuments": [{"uri": cell}]})
    server.notify("notebookDocument/didChange", {"notebookDocument": {"uri": book, "version": 3},
                                                 "change": {"cells": {"data": []}}})
    assert status(server)["state"] == "ready"
    assert " ERROR " not in server.log() and "Traceback" not in server.log(), server.log()[-2000:]


def test_closing_a_document_stops_the_suggestion_being_generated_for_it(server: Wire) -> None:
    """didClose right behind a completion request for the document: the generation stops (it can be shown
    nowhere, and the next request would wait for it) and the request is answered with no suggestion."""
    server.wait_ready()
    uri = "file:///work/closed_while_generating.py"
    server.open(uri, "def add(a, b):\n    return ")
    asked = {"textDocument": {"uri": uri}, "position": {"line": 1, "character": 11}, "context": {"triggerKind": 1}}
    msg_id = server.request_then("textDocument/inlineCompletion", asked,
                                 ("textDocument/didClose", {"textDocument": {"uri": uri}}))
    assert items(server.response(msg_id)) == []
    server.open(uri, "def add(a, b):\n    return ")  # open again, the same request is answered
    assert items(server.call("textDocument/inlineCompletion", asked))


@pytest.mark.parametrize("line_break", ["\r\n", "\r"])
def test_completion_items_are_labelled_with_a_first_line_in_any_line_break(server: Wire, line_break: str) -> None:
    """A multi-line suggestion's lines end as the document's do; its menu label and filter text are its first
    line, without a CR (a lone CR is a whole line break in LSP, and a CR shown in a menu is ^M)."""
    server.wait_ready()
    uri = f"file:///work/menu_{len(line_break)}.py"
    server.open(uri, line_break.join(["def total(values):", "    result = 0", "    ", "", "print(total([1, 2]))", ""]))
    server.notify("workspace/didChangeConfiguration", {"settings": {"codellama": {"linePolicy": "multi"}}})
    try:
        found = server.result("textDocument/completion", {"textDocument": {"uri": uri},
                                                          "position": {"line": 2, "character": 4},
                                                          "context": {"triggerKind": 1}})["items"]
    finally:
        server.notify("workspace/didChangeConfiguration", {"settings": {"codellama": {"linePolicy": "auto"}}})
    assert any(line_break in item["textEdit"]["newText"] for item in found), found  # multi-line, as typed there
    for item in found:
        first = split_lines(item["textEdit"]["newText"])[0]
        assert item["filterText"] == first and item["label"] == first.strip()[:60], item


# -- class 6 (e2e): a failed reload keeps the model in use -----------------------------------------------
def test_a_reload_with_a_broken_config_keeps_the_model_in_use(server: Wire, checkpoint_factory,
                                                              tmp_path: Path) -> None:
    server.wait_ready()
    broken = Path(shutil.copytree(checkpoint_factory("hf"), tmp_path / "broken"))
    config = json.loads((broken / "config.json").read_text())
    (broken / "config.json").write_text(json.dumps(config | {"num_attention_heads": 0}))
    server.notify("workspace/didChangeConfiguration", {"settings": {"codellama": {"model": str(broken)}}})
    for _ in range(100):
        if any("num_attention_heads" in p for p in server.popups()):
            break
        time.sleep(0.1)
    message = next(p for p in server.popups() if "num_attention_heads" in p)
    assert f"{broken / 'config.json'}: num_attention_heads must be an integer from 1" in message
    assert "Still using the embedded demo model" in message
    now = status(server)
    assert now["state"] == "ready" and now["loaded"] == "embedded demo" and "num_attention_heads" in now["error"]
    server.open("file:///work/after_reload.py", "def square(x):\n    return \n")
    assert "result" in server.inline("file:///work/after_reload.py", 1, 11)
    server.notify("workspace/didChangeConfiguration", {"settings": {"codellama": {"model": None}}})
    # That reloads the demo model: the module's later tests share this server and expect it ready.
    for _ in range(600):
        if (now := status(server))["model"] == "embedded demo" and now["state"] == "ready" and not now["error"]:
            break
        time.sleep(0.1)
    assert now["state"] == "ready" and not now["error"], now


# -- fault injection ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Wire, Path]]:
    arm = tmp_path_factory.mktemp("fault") / "arm"
    wire = Wire(command=[sys.executable, "tests/fault_server.py", str(arm), "--log-level", "WARNING", "serve"])
    wire.initialize(CAPABILITIES | {"workspace": {}, "window": {}}, load=True)
    wire.wait_ready()
    yield wire, arm
    wire.kill()


@pytest.mark.parametrize(("kind", "logged"), [("error", "RuntimeError: injected fault"),
                                              ("oom", "OutOfMemoryError: CUDA out of memory")])
def test_a_fault_during_generation_costs_one_request(faulty: tuple[Wire, Path], kind: str, logged: str) -> None:
    wire, arm = faulty
    uri = f"file:///work/fault_{kind}.py"
    wire.open(uri, f"def fib_{kind}(n):\n    if n < 2:\n        return n\n    return \n")  # no cache hit
    arm.write_text(kind)
    assert items(wire.inline(uri, 3, 11)) == []  # answered, empty
    assert not arm.exists()  # the fault fired
    assert wire.logged(logged)
    assert items(wire.inline(uri, 3, 11))  # the next request works
    assert wire.popups() == []


def test_a_load_that_fails_after_its_checks_brings_the_previous_model_back(faulty: tuple[Wire, Path],
                                                                           checkpoint_factory) -> None:
    wire, arm = faulty
    arm.write_text("load")  # the new model's warm-up forward pass fails
    wire.notify("workspace/didChangeConfiguration",
                {"settings": {"codellama": {"model": str(checkpoint_factory("hf"))}}})
    for _ in range(300):
        now = status(wire)
        if any("injected fault: load" in p for p in wire.popups()) and now["state"] == "ready":
            break
        time.sleep(0.1)
    assert now["state"] == "ready" and now["loaded"] == "embedded demo", now
    wire.open("file:///work/after_fault.py", "def square(x):\n    return \n")
    assert items(wire.inline("file:///work/after_fault.py", 1, 11))


# -- load -----------------------------------------------------------------------------------------------
def storm(wire: Wire, n: int, tag: str) -> int:
    """n requests of every kind, sent without waiting, then all their answers; how many came."""
    docs = [f"file:///work/storm_{i}.py" for i in range(3)]
    for i, uri in enumerate(docs):
        wire.open(uri, f"import os\n\n\ndef handler_{i}(event):\n    path = os.path.join(event, \n")
    sent = []
    for k in range(n):
        uri = docs[k % 3]
        if k % 5 == 4:
            sent.append(wire.request("workspace/executeCommand", {"command": "codellama.status"}))
        elif k % 7 == 6:
            sent.append(wire.request("textDocument/inlineCompletion", {"textDocument": {"uri": uri}}))  # invalid
        else:
            sent.append(wire.request("textDocument/inlineCompletion", {
                "textDocument": {"uri": uri}, "position": {"line": 4, "character": 30 - k % 4},
                "context": {"triggerKind": 1}}))
    answered = 0
    for msg_id in sent:
        wire.response(msg_id, timeout=120)
        answered += wire.answers[msg_id]
    return answered


def test_sustained_load_is_answered_in_full_with_flat_memory(server: Wire) -> None:
    server.wait_ready()
    n = 600
    assert storm(server, n, "warm-up") == n  # also brings caches and allocators to their working size
    first = server.rss_kib()
    t0 = time.monotonic()
    assert storm(server, n, "second") == n
    assert time.monotonic() - t0 < 120
    grown = server.rss_kib() - first
    assert grown < 16 << 10, f"memory grew by {grown} KiB over {n} requests"
    assert status(server)["state"] == "ready"


# -- lifecycle ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ending", ["shutdown and exit", "exit", "stdin closed"])
def test_the_server_exits_promptly_while_a_model_is_loading(ending: str) -> None:
    wire = Wire(command=[*slow_loading_server(60), "--log-level", "WARNING", "serve"])
    try:
        wire.initialize(CAPABILITIES | {"workspace": {}, "window": {}}, load=True)
        time.sleep(0.5)
        assert status(wire)["state"] == "loading"
        if ending == "shutdown and exit":
            wire.result("shutdown")
            wire.notify("exit")
        elif ending == "exit":
            wire.notify("exit")
        else:
            wire.proc.stdin.close()
        t0 = time.monotonic()
        assert wire.proc.wait(20) == (0 if ending == "shutdown and exit" else 1)
        assert time.monotonic() - t0 < 10  # not after the whole load
        assert "Traceback" not in wire.log()
    finally:
        wire.kill()


def test_a_model_that_cannot_infill_is_said_once_and_completes_nothing(tmp_path: Path) -> None:
    from tests.tiny import make_checkpoint, make_plain_tokenizer

    (tmp_path / "python-variant").mkdir()
    model = make_checkpoint(tmp_path / "python-variant", make_plain_tokenizer(tmp_path / "plain.model"))
    wire = Wire("--model", str(model))
    try:
        wire.initialize(CAPABILITIES | {"workspace": {"applyEdit": True}, "window": {}}, load=True)
        now = wire.wait_ready()
        assert now["state"] == "ready" and "has no infilling pieces" in now["error"], now
        assert now["infilling"] is False, now  # what the editors' status shows
        uri = "file:///work/no_fim.py"
        wire.open(uri, "def square(x):\n    return \n\n\ndef scale(points, factor):\n    pass\n")
        for _ in range(3):
            assert items(wire.inline(uri, 1, 11)) == []
        assert code_action(wire, uri, 4) == []
        reply = wire.result("workspace/executeCommand", {"command": "codellama.generateDocstring",
                                                         "arguments": [uri, {"line": 4, "character": 0}]})
        assert reply["applied"] is False and "has no infilling pieces" in reply["reason"], reply
        told = [p for p in wire.popups() if "cannot fill in the middle" in p]
        assert len(told) == 1 and "codellama.model" in told[0], wire.popups()
        assert "Traceback" not in wire.log(), wire.log()[-2000:]
    finally:
        wire.kill()


@pytest.mark.parametrize("options,setting", [
    ({"backend": "vllm", "ngramCache": "on"}, "ngramCache"),
    pytest.param({"device": "cuda"}, "device", marks=pytest.mark.skipif(
        __import__("torch").cuda.is_available(), reason="needs a machine without CUDA")),
])
def test_a_load_refused_for_a_setting_names_that_setting(options: dict[str, str], setting: str) -> None:
    # Before: every failed load said "Fix the `codellama.model` setting (a Code Llama directory ...)", also when the
    # model was fine and `codellama.device` asked for a GPU this machine does not have.
    wire = Wire()
    try:
        wire.initialize(CAPABILITIES | {"window": {}}, load=True, options={"codellama": options})
        assert wire.wait_ready()["state"] == "failed"
        told = [p for p in wire.popups() if "could not load" in p]
        assert len(told) == 1 and f"Fix the `codellama.{setting}` setting and run" in told[0], wire.popups()
        assert "codellama.model" not in told[0], told[0]
    finally:
        wire.kill()


def test_a_model_that_does_not_load_is_logged_in_one_line(tmp_path: Path) -> None:
    # Before: "model load failed" and a 20-line traceback down to resolve_model_dir, for a mistyped path whose one
    # line says everything (Neovim logs each stderr line of the server as [ERROR]).
    wire = Wire()
    try:
        wire.initialize(CAPABILITIES | {"window": {}}, load=True,
                        options={"codellama": {"model": str(tmp_path / "missing")}})
        assert wire.wait_ready()["state"] == "failed"
        assert wire.logged(f"model load failed: model directory {tmp_path / 'missing'} does not exist"), wire.log()
        assert "Traceback" not in wire.log(), wire.log()
    finally:
        wire.kill()


def test_a_settings_warning_is_not_repeated_at_every_unrelated_change() -> None:
    wire = Wire()
    try:
        wire.initialize(CAPABILITIES | {"workspace": {}, "window": {}}, options={"codellama": {"contextLength": 1024}})
        wire.notify("initialized", {})
        wire.wait_ready()
        for style in ("numpy", "sphinx"):
            wire.notify("workspace/didChangeConfiguration", {"settings": {"codellama": {"docstringStyle": style}}})
        wire.notify("workspace/didChangeConfiguration", {"settings": {"codellama": {"maxTokens": 200}}})

        def warned() -> list[str]:
            return [n["params"]["message"] for n in list(wire.notifications) if n["method"] == "window/showMessage"
                    and "exceeds contextLength" in n["params"]["message"]]
        end = time.monotonic() + 10
        while not any("= 1744 " in w for w in warned()) and time.monotonic() < end:
            time.sleep(0.05)
        time.sleep(0.5)  # and nothing more comes
        # once when it arose, once more when a change made it another (1744 tokens, no longer 1640)
        assert len(warned()) == 2 and "= 1640 " in warned()[0] and "= 1744 " in warned()[1], warned()
    finally:
        wire.kill()


def test_a_settings_object_full_of_mistakes_is_a_few_popups_not_thousands() -> None:
    """A popup per unknown or invalid setting: 3,000 keys (a workspace's settings.json) were 3,000 popups."""
    wire = Wire()
    try:
        options = {f"typo{i}": i for i in range(3000)} | {"maxTokens": -1}
        wire.initialize(load=True, options=options)
        assert wire.wait_ready()["state"] == "ready"
        assert wire.logged("typo2999")  # each problem is still told, in the log
        shown = [n["params"]["message"] for n in wire.notifications if n["method"] == "window/showMessage"]
        assert len(shown) == 4, shown[:5]
        assert all(p.startswith(f"codellama: settings: unknown setting 'typo{i}'") for i, p in enumerate(shown[:3]))
        assert shown[3] == "codellama: settings: 2998 more problems, in the server's log"
        assert wire.stop() == 0
    finally:
        wire.kill()


def test_a_setting_taken_back_returns_to_its_flag_or_initialization_option() -> None:
    """A setting sent as null, or left out of the client's answer to workspace/configuration (its whole section),
    gets the value the server started with: the command line's flag, the initializationOptions' value; not the
    value the client set last."""
    from model.loader import DEMO_MODEL_DIR

    wire = Wire("--model", str(DEMO_MODEL_DIR))

    def answer_pull(count: int, section: dict) -> None:
        end = time.monotonic() + 10
        while len(pulls := [r for r in list(wire.server_requests) if r["method"] == "workspace/configuration"]) < count:
            assert time.monotonic() < end, wire.server_requests
            time.sleep(0.01)
        wire.send({"jsonrpc": "2.0", "id": pulls[-1]["id"], "result": [section]})

    def settled(model: str, fim_mode: str) -> tuple[str, str]:
        end = time.monotonic() + 10
        while (now := (status(wire)["model"], status(wire)["fim_mode"])) != (model, fim_mode):
            if time.monotonic() > end:
                break
            time.sleep(0.05)
        return now

    flag = str(DEMO_MODEL_DIR)
    try:
        wire.initialize(CAPABILITIES, load=True, options={"codellama": {"fimMode": "psm"}})
        answer_pull(1, {"model": "", "fimMode": "spm"})  # "": the embedded demo model, whatever the flag
        assert settled("embedded demo", "spm") == ("embedded demo", "spm")
        wire.notify("workspace/didChangeConfiguration", {"settings": {"codellama": {"model": None, "fimMode": None}}})
        assert settled(flag, "psm") == (flag, "psm")
        wire.notify("workspace/didChangeConfiguration", {"settings": {"codellama": {"model": "", "fimMode": "spm"}}})
        assert settled("embedded demo", "spm") == ("embedded demo", "spm")
        wire.notify("workspace/didChangeConfiguration", {"settings": None})  # the pull model: the whole section
        answer_pull(2, {})
        assert settled(flag, "psm") == (flag, "psm")
        assert wire.popups() == [], wire.popups()
    finally:
        wire.kill()


def test_a_request_after_a_bare_settings_change_is_answered_with_the_settings_it_announced() -> None:
    """The pull model: didChangeConfiguration without settings, then at once a request. The request waits for
    the server's workspace/configuration to be answered (it went out with the settings before, whatever the
    change said); a client that never answers holds it a bounded time, said in the log once."""
    wire = Wire()

    def pulls() -> list[dict]:
        return [r for r in list(wire.server_requests) if r["method"] == "workspace/configuration"]

    def pulled(count: int) -> dict:
        end = time.monotonic() + 10
        while len(pulls()) < count and time.monotonic() < end:
            time.sleep(0.01)
        assert len(pulls()) == count, pulls()
        return pulls()[-1]

    uri = "file:///work/pulled.py"
    at = {"line": 0, "character": 0}
    action = {"textDocument": {"uri": uri}, "range": {"start": at, "end": at}, "context": {"diagnostics": []}}
    try:
        wire.initialize(CAPABILITIES, load=True)
        wire.send({"jsonrpc": "2.0", "id": pulled(1)["id"], "result": [{}]})
        wire.wait_ready()
        wire.open(uri, "def add(a, b):\n    return \n")
        assert items(wire.inline(uri, 1, 11)) and code_action(wire, uri, 0)

        # A client that never answers: the requests go on with the settings known before, soon.
        wire.notify("workspace/didChangeConfiguration", {"settings": None})
        pulled(2)
        t0 = time.monotonic()
        assert items(wire.inline(uri, 1, 11)) and items(wire.inline(uri, 1, 11))
        assert time.monotonic() - t0 < 10
        assert wire.logged("has not answered workspace/configuration within")
        assert wire.log().count("has not answered workspace/configuration") == 1, wire.log()

        # A client that answers, a moment after the requests came.
        wire.notify("workspace/didChangeConfiguration", {"settings": None})
        completion, actions = wire.request("textDocument/inlineCompletion", {
            "textDocument": {"uri": uri}, "position": {"line": 1, "character": 11}, "context": {"triggerKind": 2}
        }), wire.request("textDocument/codeAction", action)
        pull = pulled(3)
        time.sleep(0.3)
        wire.send({"jsonrpc": "2.0", "id": pull["id"], "result": [{"disabledLanguages": ["python"]}]})
        assert items(wire.response(completion)) == []  # before: the suggestion made with the old settings
        assert wire.response(actions)["result"] in (None, [])
        assert wire.stop() == 0
    finally:
        wire.kill()


# The server, its status also saying how many objects the cyclic garbage collector leaves out of its walks.
_FROZEN = """
import gc, sys
import lsp_server.server as server
status = server.CodeLlamaServer.status
server.CodeLlamaServer.status = lambda self: {**status(self), "frozen": gc.get_freeze_count()}
from lsp_server.cli import main
main(sys.argv[1:])
"""


def test_what_the_model_load_made_is_left_out_of_the_garbage_collectors_walks() -> None:
    """A full collection walked every object in the server (torch's and the model's: 100-200 ms), holding the GIL
    and with it the event loop; what is loaded with the model lives as long as it, and is frozen once loaded."""
    wire = Wire(command=[sys.executable, "-c", _FROZEN, "--log-level", "WARNING", "serve"])
    try:
        wire.initialize(CAPABILITIES, load=True)
        wire.wait_ready()
        for _ in range(200):  # "loaded" is set on the event loop right before the freeze
            if (now := status(wire))["loaded"] is not None:
                break
            time.sleep(0.05)
        assert now["frozen"] > 50_000
    finally:
        wire.kill()
