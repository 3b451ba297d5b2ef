"""The server sends a client only what the client announced it takes, and says so where the client's default would
do otherwise (LSP's client capabilities): the real server process over raw JSON-RPC, one process per set of
capabilities, each as a client that says no more than that."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.wire import Wire

URI = "file:///work/capabilities.py"
TEXT = "def add(a, b):\n    return a + b\n"
LITERALS = {"codeActionLiteralSupport": {"codeActionKind": {"valueSet": ["refactor"]}}}
AUTOMATIC, INVOKED = 2, 1


@pytest.fixture
def connect() -> Iterator[Any]:
    servers: list[Wire] = []

    def start(capabilities: dict[str, Any], options: dict[str, Any] | None = None) -> Wire:
        wire = Wire()
        servers.append(wire)
        wire.initialize(capabilities, load=True, options=options)
        wire.wait_ready()
        wire.open(URI, TEXT)
        return wire

    yield start
    for wire in servers:
        wire.kill()


def code_actions(wire: Wire, trigger: int | None = None) -> list[dict[str, Any]] | None:
    at = {"line": 0, "character": 4}
    context = {"diagnostics": [], **({"triggerKind": trigger} if trigger else {})}
    return wire.result("textDocument/codeAction", {"textDocument": {"uri": URI}, "range": {"start": at, "end": at},
                                                   "context": context}, timeout=120)


def test_a_client_without_code_action_literals_gets_commands(connect: Any) -> None:
    # Before: a CodeAction literal, which such a client cannot read (its `command` is no command name).
    wire = connect({"workspace": {"applyEdit": True}})
    found = code_actions(wire)
    assert found == [{"title": "Generate docstring for add", "command": "codellama.generateDocstring",
                      "arguments": [URI, {"line": 0, "character": 4}]}]
    assert code_actions(wire, AUTOMATIC) == found
    assert code_actions(connect({}), INVOKED) is None  # a command could not reach it either: no workspace/applyEdit


def test_a_client_without_apply_edit_is_never_sent_one(connect: Any) -> None:
    # Before: the light bulb's action ran a command that wrote the docstring (seconds on the model thread), then
    # sent workspace/applyEdit to a client that never said it takes it and waited 30 s for its answer.
    wire = connect({"textDocument": {"codeAction": {**LITERALS}}})
    assert code_actions(wire, AUTOMATIC) is None
    t0 = time.monotonic()
    answer = wire.result("workspace/executeCommand", {"command": "codellama.generateDocstring",
                                                      "arguments": [URI, {"line": 0, "character": 4}]}, timeout=120)
    assert answer == {"applied": False, "reason": "the client does not take workspace/applyEdit"}
    assert time.monotonic() - t0 < 5
    assert [r for r in wire.server_requests if r["method"] == "workspace/applyEdit"] == []


def test_a_client_that_keeps_no_data_gets_the_edit_at_once(connect: Any) -> None:
    # codeAction/resolve finds the function by the action's `data`, which a client keeps only with dataSupport.
    # Before: the action came without its edit, and resolving it (without the data) was an InvalidParams error.
    wire = connect({"textDocument": {"codeAction": {**LITERALS, "resolveSupport": {"properties": ["edit"]}}}})
    found = code_actions(wire, INVOKED)
    assert found and '"""' in found[0]["edit"]["changes"][URI][0]["newText"]


def test_completion_items_keep_their_own_indentation(connect: Any) -> None:
    # VS Code's client (vscode-languageclient) says its default insertTextMode is adjustIndentation: the lines of
    # an item after the first get the cursor line's indentation added. Before: items left the default, so the
    # second line of `if x < 0:\n            self.items = []` came 20 spaces in, where the model put it at 12.
    wire = connect({"textDocument": {"completion": {"insertTextMode": 2, "completionItem": {
        "insertTextModeSupport": {"valueSet": [1, 2]}}}}}, {"codellama": {"linePolicy": "multi"}})
    wire.open(URI, "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, x):\n        ")
    at = {"line": 5, "character": 8}
    found = wire.result("textDocument/completion", {"textDocument": {"uri": URI}, "position": at,
                                                    "context": {"triggerKind": 1}}, timeout=120)["items"]
    assert any("\n        " in item["textEdit"]["newText"] for item in found), found  # lines indented as the file
    assert [item.get("insertTextMode") for item in found] == [1] * len(found)  # InsertTextMode.asIs
