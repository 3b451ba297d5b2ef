"""Protocol abuse against the real server process: every request gets exactly one response, a result or a
JSON-RPC error with its id, and no error ever turns into a popup. The model is not loaded here (no
`initialized`): these are the protocol's answers, which must not depend on it. At the end, the decoder of big
bodies alone, in-process."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lsp_server import protocol
from lsp_server.protocol import Rejected, decode, decode_in_steps
from tests.wire import Wire

PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS, NOT_INITIALIZED = -32700, -32600, -32601, -32602, -32002
URI = "file:///work/protocol.py"


@pytest.fixture(scope="module")
def wire() -> Iterator[Wire]:
    server = Wire()
    server.initialize()
    server.open(URI, "def f(x):\n    return x\n")
    yield server
    server.kill()


def error_of(reply: dict) -> int | None:
    return reply["error"]["code"] if "error" in reply else None


def position_params(line: object, character: object) -> dict:
    return {"textDocument": {"uri": URI}, "position": {"line": line, "character": character},
            "context": {"triggerKind": 2}}


@pytest.mark.parametrize(("params", "field"), [
    (position_params(-1, 0), "position"),
    (position_params(0, "four"), "position.character"),
    ({"position": {"line": 0, "character": 0}, "context": {"triggerKind": 2}}, "textDocument"),
    (position_params(None, None), "position"),
    (None, "params"),
    ([1, 2], "params"),
    ({"textDocument": None, "position": None, "context": None}, "textDocument"),
])
def test_params_that_do_not_parse_get_an_error_with_their_id(wire: Wire, params: object, field: str) -> None:
    msg_id = wire.request("textDocument/inlineCompletion", params)
    reply = wire.response(msg_id)
    assert error_of(reply) == INVALID_PARAMS and field in reply["error"]["message"], reply
    assert wire.answers[msg_id] == 1
    assert wire.popups() == []


@pytest.mark.parametrize("padding", [0, 300_000])  # decoded at once, and in steps (over 256 KB)
def test_a_message_nested_deeper_than_its_scrubbing_can_go_is_answered_with_its_id(wire: Wire, padding: int) -> None:
    # json.loads takes 700 nested arrays, but replacing the lone surrogate deep inside them took twice the frames:
    # the request was left unanswered, and a body big enough to be decoded in steps ended the server.
    head = json.dumps({"jsonrpc": "2.0", "id": f"deep-{padding}", "method": "textDocument/hover"})[:-1]
    body = f'{head}, "params": {{"pad": "{"a" * padding}", "deep": {"[" * 700}"\\ud800"{"]" * 700}}}}}'.encode()
    wire.send(body)
    reply = wire.response(f"deep-{padding}", timeout=10)
    assert error_of(reply) == PARSE_ERROR and "nested too deeply" in reply["error"]["message"], reply
    assert error_of(wire.call("textDocument/hover", position_params(0, 0))) == METHOD_NOT_FOUND  # the session goes on
    assert wire.answers[f"deep-{padding}"] == 1


def test_a_body_that_is_not_utf8_is_answered_with_its_id(wire: Wire) -> None:
    body = b'{"jsonrpc": "2.0", "id": "latin-1", "method": "textDocument/inlineCompletion", "params": ' \
           b'{"textDocument": {"uri": "file:///caf\xe9.py"}, "position": {"line": 0, "character": 0}}}'
    wire.send(body)
    reply = wire.response("latin-1")
    assert error_of(reply) == PARSE_ERROR and "UTF-8" in reply["error"]["message"]


@pytest.mark.parametrize(("body", "code"), [
    (b'{"jsonrpc": "2.0", "id": 1, "method": ', PARSE_ERROR),
    (b"", PARSE_ERROR),
    (b"[" * 100_000 + b"]" * 100_000, PARSE_ERROR),  # nested past the JSON decoder's recursion limit
    (b'[{"jsonrpc": "2.0", "id": 1, "method": "shutdown"}]', INVALID_REQUEST),  # LSP has no batches
    (b'"just a string"', INVALID_REQUEST),
    (b'{"jsonrpc": "2.0", "id": null, "method": "shutdown"}', INVALID_REQUEST),
    (b'{"jsonrpc": "2.0", "id": {"a": 1}, "method": "shutdown"}', INVALID_REQUEST),
    (b'{"jsonrpc": "2.0", "id": 1.5, "method": "shutdown"}', INVALID_REQUEST),
    (b'{"jsonrpc": "2.0"}', INVALID_REQUEST),
])
def test_messages_without_a_usable_id_get_an_error_with_a_null_id(wire: Wire, body: bytes, code: int) -> None:
    before = wire.answers[None]
    wire.send(body)
    reply = wire.response(None)
    assert error_of(reply) == code
    assert wire.answers[None] == before + 1  # exactly one
    assert wire.result("workspace/executeCommand", {"command": "codellama.status"})["state"] == "idle"


@pytest.mark.parametrize(("message", "code"), [
    ({"jsonrpc": "1.0", "id": "old", "method": "shutdown"}, INVALID_REQUEST),
    ({"jsonrpc": "2.0", "id": "num", "method": 42}, INVALID_REQUEST),
    ({"jsonrpc": "2.0", "id": "unknown", "method": "codellama/noSuchMethod"}, METHOD_NOT_FOUND),
    ({"jsonrpc": "2.0", "id": "again", "method": "initialize", "params": {"capabilities": {}}}, INVALID_REQUEST),
    ({"jsonrpc": "2.0", "id": "cmd", "method": "workspace/executeCommand", "params": {"command": "nope"}},
     INVALID_PARAMS),
    ({"jsonrpc": "2.0", "id": "doc", "method": "workspace/executeCommand",
      "params": {"command": "codellama.generateDocstring", "arguments": [1, "x"]}}, INVALID_PARAMS),
    ({"jsonrpc": "2.0", "id": "resolve", "method": "codeAction/resolve",
      "params": {"title": "t", "data": {"uri": URI, "line": "zero"}}}, INVALID_PARAMS),
    # A notification's method with an id: pygls ran the notification and answered nothing; exit ended the server.
    ({"jsonrpc": "2.0", "id": "open", "method": "textDocument/didOpen", "params": {"textDocument": {
        "uri": "file:///work/opened-by-request.py", "languageId": "python", "version": 1, "text": "x"}}},
     INVALID_REQUEST),
    ({"jsonrpc": "2.0", "id": "initialized", "method": "initialized", "params": {}}, INVALID_REQUEST),
    ({"jsonrpc": "2.0", "id": "exit", "method": "exit"}, INVALID_REQUEST),
])
def test_invalid_requests_are_answered_with_their_id(wire: Wire, message: dict, code: int) -> None:
    wire.send(message)
    reply = wire.response(message["id"])
    assert error_of(reply) == code, reply
    assert wire.answers[message["id"]] == 1
    assert wire.result("workspace/executeCommand", {"command": "codellama.status"})["state"] == "idle"


def test_a_bad_notification_is_dropped_without_a_popup(wire: Wire) -> None:
    wire.notify("textDocument/didOpen", {"textDocument": {"uri": 5}})
    wire.notify("textDocument/didChange", {"textDocument": {"uri": URI, "version": 2},
                                           "contentChanges": [{"range": "everywhere", "text": "x"}]})
    wire.notify("workspace/didChangeConfiguration", None)
    wire.notify("$/cancelRequest", {"id": None})
    assert wire.result("workspace/executeCommand", {"command": "codellama.status"})["state"] == "idle"
    assert wire.popups() == []


def test_responses_are_never_answered_even_when_broken(wire: Wire) -> None:
    """Answering a broken response with an error could start two peers answering each other forever."""
    before = wire.answers[None]
    wire.send({"jsonrpc": "2.0", "id": None, "error": {"code": PARSE_ERROR, "message": "your message was bad"}})
    wire.send({"jsonrpc": "2.0", "id": "nobody-asked", "result": {"x": 1}})
    wire.send({"jsonrpc": "1.0", "id": "old-response", "result": None})
    assert wire.result("workspace/executeCommand", {"command": "codellama.status"})["state"] == "idle"
    assert wire.answers[None] == before and wire.answers["nobody-asked"] == wire.answers["old-response"] == 0


def containers(inner: st.SearchStrategy) -> st.SearchStrategy:
    return st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)


json_values = st.recursive(st.none() | st.booleans() | st.integers(-2**63, 2**63) | st.floats() | st.text(max_size=8),
                           containers, max_leaves=8)
numbers = st.integers(-2**40, 2**40) | st.floats() | st.text(max_size=4) | st.none()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(method=st.sampled_from(["textDocument/inlineCompletion", "textDocument/completion",
                               "textDocument/codeAction", "codeAction/resolve", "workspace/executeCommand"]),
       line=numbers, character=numbers, extra=st.dictionaries(st.sampled_from(["context", "range", "data", "command",
                                                                              "arguments", "textDocument"]),
                                                              json_values, max_size=3))
def test_any_params_get_exactly_one_answer(wire: Wire, method: str, line: object, character: object,
                                           extra: dict) -> None:
    params = {**position_params(line, character), **extra}
    msg_id = wire.request(method, params)
    reply = wire.response(msg_id)
    # A result, or InvalidParams: anything else (an internal error) is a server bug.
    assert error_of(reply) in (None, INVALID_PARAMS), reply
    assert wire.answers[msg_id] == 1


def test_framing_errors_resynchronise(wire: Wire) -> None:
    status = {"jsonrpc": "2.0", "method": "workspace/executeCommand", "params": {"command": "codellama.status"}}
    body = json.dumps({**status, "id": "long"}).encode()
    wire.send(body, length=len(body) + 25)  # runs 25 bytes into the next message
    wire.send({**status, "id": "after-long"})
    assert "result" in wire.response("long") and "result" in wire.response("after-long")
    body = json.dumps({**status, "id": "short"}).encode()
    wire.send(body, length=len(body) - 10)  # leaves 10 bytes behind
    wire.send_bytes(b"garbage\r\n\r\nContent-Type: x\r\n")
    wire.send({**status, "id": "after-short"})
    assert error_of(wire.response(None)) == PARSE_ERROR  # the cut body: its id cannot be known
    assert "result" in wire.response("after-short")
    wire.send_bytes(b"Content-Length: 99999999999\r\n\r\n")  # over the size limit: skipped
    wire.send({**status, "id": "after-huge"})
    assert "result" in wire.response("after-huge")
    body = json.dumps({**status, "id": "lf-alone"}).encode()
    wire.send_bytes(b"Content-Length: %d\n\n%s" % (len(body), body))  # as printf writes it: skipped, unanswered
    assert "result" in wire.response("lf-alone")


def test_before_initialize_and_after_shutdown() -> None:
    server = Wire()
    try:
        early = server.call("textDocument/inlineCompletion", position_params(0, 0))
        assert error_of(early) == NOT_INITIALIZED
        server.notify("textDocument/didOpen", {"textDocument": {"uri": URI, "languageId": "python", "version": 1,
                                                                "text": "x"}})  # dropped: before initialize
        server.initialize()
        assert server.result("shutdown") is None
        late = server.call("workspace/executeCommand", {"command": "codellama.status"})
        assert error_of(late) == INVALID_REQUEST and "after shutdown" in late["error"]["message"]
        server.notify("exit")
        assert server.wait() == 0
    finally:
        server.kill()


@pytest.mark.parametrize("ending", ["exit notification", "end of input", "end of input inside a message"])
def test_a_session_ended_without_shutdown_exits_with_code_1(ending: str) -> None:
    server = Wire()
    try:
        server.initialize()
        if ending == "exit notification":
            server.notify("exit")
        else:
            if ending == "end of input inside a message":
                server.send_bytes(b'Content-Length: 100\r\n\r\n{"jsonrpc": "2.0", ')
            server.proc.stdin.close()  # the editor died
        assert server.wait(10) == 1
    finally:
        server.kill()


# --- client mistakes: a one-line warning in the log, never a traceback -----------------------------------


def new_log(server: Wire, start: int, expected: str) -> str:
    """What the server logged since `start` (a length of its log), once `expected` is among it."""
    assert server.logged(expected, since=start), server.log()[start:]
    return server.log()[start:]


@pytest.mark.parametrize(("method", "params", "warning"), [
    ("workspace/executeCommand", {"command": "nope.unknown"}, "Command name 'nope.unknown' is not defined"),
    ("workspace/executeCommand", {"command": "codellama.generateDocstring", "arguments": [1]},
     "codellama.generateDocstring takes [uri, {line, character}]"),
    ("codeAction/resolve", {"title": "t", "data": {"uri": 5, "line": "a"}}, "data must be {uri, line, endLine}"),
    ("codeAction/resolve", {"title": "t", "data": "not an object"}, "data must be {uri, line, endLine}"),
    ("textDocument/inlineCompletion", {"textDocument": {"uri": URI}, "position": {"line": 0},
                                       "context": {"triggerKind": 2}}, "params.position.character"),
])
def test_a_clients_mistake_is_one_warning_line_and_its_error(wire: Wire, method: str, params: dict,
                                                             warning: str) -> None:
    # pygls logged each with a traceback, which editors show in their LSP log as the server failing.
    start = len(wire.log())
    assert error_of(wire.call(method, params)) == INVALID_PARAMS
    log = new_log(wire, start, warning)
    assert "Traceback" not in log and "ERROR" not in log and "WARNING" in log, log


def test_a_notification_for_a_document_that_is_not_open_is_one_warning_line(wire: Wire) -> None:
    start = len(wire.log())
    wire.notify("textDocument/didChange", {"textDocument": {"uri": "file:///work/never.py", "version": 2},
                                           "contentChanges": [{"text": "x"}]})
    log = new_log(wire, start, "file:///work/never.py, which is not open")
    assert "Traceback" not in log and "ERROR" not in log, log


def test_a_client_that_refuses_the_docstrings_edit_gets_a_result_saying_so() -> None:
    server = Wire()
    try:
        server.initialize({"workspace": {"applyEdit": True}}, load=True)
        assert server.wait_ready()["state"] == "ready"
        server.open(URI, "def f(x):\n    return x\n")
        msg_id = server.request("workspace/executeCommand", {"command": "codellama.generateDocstring",
                                                             "arguments": [URI, {"line": 0, "character": 4}]})
        asked = server.inbox.get(timeout=60)
        while asked.get("method") != "workspace/applyEdit":
            asked = server.inbox.get(timeout=60)
        server.send({"jsonrpc": "2.0", "id": asked["id"], "error": {"code": -32603, "message": "read-only file"}})
        reply = server.response(msg_id, 60)
        assert reply.get("result") == {"applied": False, "reason": "the client refused the edit: read-only file"}
        log = new_log(server, 0, "answered workspace/applyEdit with an error: read-only file")
        assert "Traceback" not in log and "ERROR" not in log, log
        assert server.stop() == 0
    finally:
        server.kill()


_BROKEN_HANDLER = """
import sys
import lsp_server.docstring_action
def broken(args):
    raise KeyError("a bug of ours")
lsp_server.docstring_action._uri_and_line = broken
from lsp_server.cli import main
main(sys.argv[1:])
"""


def test_a_bug_of_ours_is_still_logged_with_its_traceback() -> None:
    server = Wire(command=[sys.executable, "-c", _BROKEN_HANDLER, "--log-level", "WARNING", "serve"])
    try:
        server.initialize()
        reply = server.call("workspace/executeCommand", {"command": "codellama.generateDocstring", "arguments": []})
        assert error_of(reply) == -32603
        log = new_log(server, 0, "a bug of ours")
        assert server.logged("Traceback") and "KeyError" in server.log(), log
    finally:
        server.kill()


# A bug at the message layer: in the stepped decoder of big bodies (the message whose id is "in-steps"), or in pygls'
# dispatch of a message that passed our checks (id "dispatch").
_BROKEN_MESSAGE_LAYER = """
import sys
from lsp_server import protocol
decode_long_strings, handle_message = protocol._decode_long_strings, protocol.CodeLlamaProtocol.handle_message
async def broken_decoder(text):
    if '"id": "in-steps"' in text[:100]:
        raise KeyError("a bug in the stepped decoder")
    return await decode_long_strings(text)
def broken_dispatch(self, message):
    if getattr(message, "id", None) == "dispatch":
        raise KeyError("a bug in the dispatch")
    return handle_message(self, message)
protocol._decode_long_strings = broken_decoder
protocol.CodeLlamaProtocol.handle_message = broken_dispatch
from lsp_server.cli import main
main(sys.argv[1:])
"""


@pytest.mark.parametrize(("msg_id", "padding", "answer"), [
    ("in-steps", 300_000, "result"),  # the stepped decoder failed: the body is decoded at once instead, and handled
    ("dispatch", 0, "error"),  # pygls' dispatch failed: the request gets an internal error
])
def test_a_bug_at_the_message_layer_costs_one_message_not_the_session(msg_id: str, padding: int, answer: str) -> None:
    # Either bug escaped to the reading loop, which ended: the server exited with a traceback, unanswered.
    server = Wire(command=[sys.executable, "-c", _BROKEN_MESSAGE_LAYER, "--log-level", "WARNING", "serve"])
    try:
        server.initialize()
        server.send({"jsonrpc": "2.0", "id": msg_id, "method": "workspace/executeCommand",
                     "params": {"command": "codellama.status", "pad": "x" * padding}})
        reply = server.response(msg_id, timeout=20)
        assert answer in reply, reply
        assert answer == "result" or error_of(reply) == -32603 and "a bug in the dispatch" in reply["error"]["message"]
        assert server.result("workspace/executeCommand", {"command": "codellama.status"})["state"] == "idle"
        assert server.logged("Traceback") and "a bug in the" in server.log()
        assert server.stop() == 0
    finally:
        server.kill()


# -- big bodies, decoded in steps (in-process: the decoder alone) ---------------------------------------
def outcome(decoding: Callable[[], dict]) -> object:
    try:
        return decoding()
    except Rejected as rejected:
        return rejected.error.code, rejected.error.message, rejected.msg_id


# Characters that escapes and cuts can go wrong on: quotes, backslashes, control characters, a surrogate pair, lone
# surrogates, non-ASCII.
TRICKY = st.sampled_from(['"', "\\", "\\\\", '\\"', "\n", "\t", "\x00", "é", "\U0001f600", "\ud83d", "\ude00",
                          "\u2028", "u", "d83d", " ", "x" * 7])


@settings(max_examples=300, deadline=None)
@given(texts=st.lists(st.lists(TRICKY, max_size=60).map("".join), min_size=1, max_size=4),
       ascii_only=st.booleans(), cut=st.integers(0, 400), step=st.integers(1, 16))
def test_decoding_in_steps_gives_what_decoding_at_once_does(texts: list[str], ascii_only: bool, cut: int,
                                                            step: int) -> None:
    """Whatever the strings hold and wherever the pieces are cut, the same message, or the same error: a lone
    surrogate scrubbed, a pair kept whole, a body cut short (`cut`) or not UTF-8 rejected with the same words."""
    message = {"jsonrpc": "2.0", "id": 7, "method": "textDocument/didOpen",
               "params": {"text": texts[0], "more": texts[1:], texts[-1]: {"key": texts[0][::-1]}}}
    body = json.dumps(message, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    if cut % 5 == 0:
        body = body[:cut]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(protocol, "STEP_CHARS", step)  # a piece every few characters: every kind of cut is tried
        assert outcome(lambda: asyncio.run(decode_in_steps(body))) == outcome(lambda: decode(body))
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return
        if cut % 5:  # whole, valid JSON: decoded in steps, not at once for want of a way to cut it
            assert asyncio.run(protocol._decode_long_strings(text)) == decode(body)


def test_a_big_body_is_decoded_with_the_event_loop_free_between_pieces() -> None:
    """json.loads of a 5 MB document held the loop 15-30 ms; in steps, the loop runs other work between pieces."""
    text = 'def f(x):\n    return "\\"" + x\n' * 40_000
    body = json.dumps({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": {
        "uri": URI, "languageId": "python", "version": 1, "text": text}}}).encode()

    async def decode_counting_turns() -> tuple[dict, int]:
        turns = 0

        async def count() -> None:
            nonlocal turns
            while True:
                turns += 1
                await asyncio.sleep(0)

        counter = asyncio.create_task(count())
        await asyncio.sleep(0)
        data = await decode_in_steps(body)
        counter.cancel()
        return data, turns - 1

    data, turns = asyncio.run(decode_counting_turns())
    assert data == decode(body)
    assert turns >= len(body) // protocol.STEP_CHARS  # at once: 0
