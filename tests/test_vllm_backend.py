"""The vLLM backend's pure pieces (request, stream and error handling) and its behaviour with no server.

The real server is exercised by tests/test_vllm.py (`pytest -m vllm`).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from lsp_server.completion import healing_text
from lsp_server.loading import connect_vllm
from lsp_server.outage import OutageNotice
from lsp_server.settings import Settings, parse_settings
from model.backend import BackendUnavailable, IncompatibleModel
from model.tokenizer import Tokenizer
from model.vllm_backend import VllmBackend
from model.vllm_wire import completion_body, event_tokens, http_error, pick_model, ranked_tokens, sse_events, sse_lines
from tests.vllm_server import free_port
from tests.wire import SERVE, Wire


def test_completion_body_sends_token_ids_and_asks_for_token_ids_back() -> None:
    body = completion_body("m", [1, 3, 4], max_tokens=8, temperature=0.0, top_p=0.95, stop_ids=frozenset({6, 2}))
    assert body == {"model": "m", "prompt": [1, 3, 4], "max_tokens": 8, "temperature": 0.0, "top_p": 0.95,
                    "stop_token_ids": [2, 6], "stream": True, "return_token_ids": True}
    assert completion_body("m", [1], max_tokens=1, temperature=0.0, top_p=1.0, stop_ids=(),
                           allowed=[7, 9])["allowed_token_ids"] == [7, 9]


def test_an_alternatives_first_token_is_chosen_from_the_likeliest_by_id() -> None:
    body = completion_body("m", [1], max_tokens=1, temperature=0.0, top_p=1.0, stop_ids=(), logprobs=20)
    assert (body["logprobs"], body["return_tokens_as_token_ids"]) == (20, True)  # ids: two pieces may read alike
    event = {"choices": [{"token_ids": [9], "logprobs": {
        "tokens": ["token_id:9"], "token_logprobs": [-0.2],
        "top_logprobs": [{"token_id:9": -0.2, "token_id:31": -3.5, "token_id:4": -1.0}]}}]}
    assert ranked_tokens(event) == [9, 4, 31]
    assert ranked_tokens({"choices": [{"token_ids": [], "finish_reason": "length"}]}) == []
    assert ranked_tokens({"choices": [], "usage": {}}) == []


def test_sse_events_stop_at_done_and_skip_other_lines() -> None:
    lines = ['data: {"choices": [{"token_ids": [5]}]}', "", ": keep-alive", 'data: {"choices": []}',
             "data: [DONE]", 'data: {"never": "read"}']
    assert list(sse_events(lines)) == [{"choices": [{"token_ids": [5]}]}, {"choices": []}]


def test_event_tokens() -> None:
    assert event_tokens({"choices": [{"token_ids": [5, 6], "finish_reason": None}]}) == [5, 6]
    assert event_tokens({"choices": [{"token_ids": [6], "finish_reason": "stop", "stop_reason": 6}]}) == [6]
    assert event_tokens({"choices": [], "usage": {"completion_tokens": 3}}) == []
    with pytest.raises(BackendUnavailable, match="abort"):
        event_tokens({"choices": [{"token_ids": [], "finish_reason": "abort"}]})
    with pytest.raises(BackendUnavailable, match="engine dead"):
        event_tokens({"error": {"message": "engine dead", "code": 500}})


@pytest.mark.parametrize(("status", "body", "expected"), [
    (400, '{"error": {"message": "Token id 4096 is out of vocabulary", "code": 400}}',
     "HTTP 400: Token id 4096 is out of vocabulary"),
    (401, '{"error": "Unauthorized"}', "HTTP 401: Unauthorized (set CODELLAMA_API_KEY to the server's API key)"),
    (404, '{"detail": "Not Found"}', "HTTP 404: Not Found"),
    (502, "<html>Bad gateway</html>", "HTTP 502: <html>Bad gateway</html>"),
    (503, "", "HTTP 503: Service Unavailable"),
])  # fmt: skip
def test_http_errors_read_as_one_line(status: int, body: str, expected: str) -> None:
    assert http_error(status, body) == expected


def test_pick_model() -> None:
    one = [{"id": "/srv/models/CodeLlama-7b-hf", "root": "/srv/models/CodeLlama-7b-hf", "max_model_len": 16384}]
    two = [*one, {"id": "codellama/CodeLlama-13b-hf", "max_model_len": 4096}]
    assert pick_model(one, None).name == "/srv/models/CodeLlama-7b-hf"
    assert pick_model(one, "~/models/whatever").max_model_len == 16384  # the only one
    assert pick_model(two, "codellama/CodeLlama-13b-hf").name == "codellama/CodeLlama-13b-hf"
    assert pick_model(two, "/home/me/CodeLlama-7b-hf").name == "/srv/models/CodeLlama-7b-hf"  # same last part
    with pytest.raises(IncompatibleModel, match="serves /srv/models/CodeLlama-7b-hf, codellama/CodeLlama-13b-hf"):
        pick_model(two, None)
    with pytest.raises(IncompatibleModel, match="serves nothing"):
        pick_model([], None)


def test_remote_settings() -> None:
    settings, warnings = parse_settings({"backend": "vllm", "remoteUrl": "https://llm.example.com:8000/v1/",
                                         "remoteTimeoutMs": "2500"})
    assert warnings == []
    assert (settings.backend, settings.remote_url, settings.remote_timeout_ms) == (
        "vllm", "https://llm.example.com:8000", 2500)
    for bad in ("llm.example.com:8000", "ftp://host", 8000):
        assert parse_settings({"remoteUrl": bad})[1] == [
            f"settings: invalid value {bad!r} for 'remoteUrl': expected an http:// or https:// URL; "
            "keeping 'http://127.0.0.1:8000'"]


def test_an_unreachable_server_fails_fast_and_is_retried(tiny_model_dir: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    backend = VllmBackend(url, Tokenizer(tiny_model_dir / "tokenizer.model"), timeout=2)
    backend.connect()  # not an error: the server may come up later
    assert backend.describe()["health"].startswith(f"unreachable: {url}: cannot connect")
    with pytest.raises(BackendUnavailable, match="cannot connect"):
        backend.generate([1, 2, 3])
    retry_at = backend._retry_at
    with pytest.raises(BackendUnavailable):  # within the retry interval: no new connection attempt
        backend.generate([1, 2, 3])
    assert backend._retry_at == retry_at
    time.sleep(max(0.0, retry_at - time.monotonic() + 0.01))
    with pytest.raises(BackendUnavailable):  # tried again, and failed again
        backend.generate([1, 2, 3])
    assert backend._retry_at > retry_at
    assert backend.memory_bytes() == 0 and backend.describe()["backend"] == "vllm"


@contextmanager
def silent_server() -> Iterator[str]:
    """The URL of a server that accepts connections (the kernel's backlog) and never reads or writes."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        yield f"http://127.0.0.1:{silent.getsockname()[1]}"


def test_a_server_that_never_answers_times_out(tiny_model_dir: Path) -> None:
    with silent_server() as url:
        backend = VllmBackend(url, Tokenizer(tiny_model_dir / "tokenizer.model"), timeout=0.3)
        t0 = time.monotonic()
        backend.connect()
        assert time.monotonic() - t0 < 10  # the 0.3 s timeout, not a wait without end
        assert backend.describe()["health"] == f"unreachable: {url}: timed out (ReadTimeout)"


def test_one_message_per_outage() -> None:
    shown: list[str] = []
    noted: list[str] = []
    outage = OutageNotice(shown.append, noted.append)
    outage.succeeded()
    for _ in range(3):
        outage.failed(BackendUnavailable("http://gpu:8000: cannot connect"))
    assert len(shown) == 1 and "http://gpu:8000: cannot connect" in shown[0] and noted == []
    outage.succeeded()
    outage.succeeded()
    assert noted == ["codellama: the model server answers again"]
    outage.failed(BackendUnavailable("HTTP 503"))
    assert len(shown) == 2


# -- against a fake vLLM: the wire's odd cases ----------------------------------------------------------------
class FakeVllm(BaseHTTPRequestHandler):
    """/v1/models, /detokenize and /v1/completions as vLLM answers them; `stream` writes a streamed answer's
    body (a list of SSE text pieces, or a callable that writes it) and `page` answers every request instead."""
    protocol_version = "HTTP/1.1"
    tokenizer: Tokenizer
    stream: list[str] | None = None
    page: bytes | None = None
    rows: int | None = None  # the served model's embedding rows: the tokenizer's pieces unless set (a fine-tune's)
    stall = False  # a busy server or a proxy's queue: no answer to a streamed request, not even its headers
    keys: list[str] = []
    disconnected = threading.Event()

    def log_message(self, *args: object) -> None:
        pass

    def answer(self, status: int, data: bytes, kind: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        FakeVllm.keys.append(self.headers.get("Authorization", ""))
        if self.page is not None:
            return self.answer(200, self.page, "text/html")
        self.answer(200, json.dumps({"data": [{"id": "fake", "max_model_len": 1024}]}).encode())

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        if self.page is not None:
            return self.answer(200, self.page, "text/html")
        if self.path == "/detokenize":
            return self.answer(200, json.dumps({"prompt": self.tokenizer.sp.id_to_piece(body["tokens"][0])}).encode())
        if any(t >= (self.rows or self.tokenizer.n_words) for t in body["prompt"]):  # as vLLM checks prompt ids
            return self.answer(400, b'{"error": {"message": "out of vocabulary"}}')
        if not body.get("stream"):
            return self.answer(200, b'{"choices": [{"text": "x"}]}')
        if self.stall:
            if self.rfile.read(1) == b"":  # returns when the client closes the connection
                FakeVllm.disconnected.set()
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()  # no length, no chunks: the body ends when the connection does
        try:
            for piece in self.stream or []:
                if piece == "<wait>":  # a busy server: nothing for a long while
                    self.wfile.flush()
                    if self.rfile.read(1) == b"":  # returns when the client shuts the connection down
                        FakeVllm.disconnected.set()
                    return
                self.wfile.write(piece.encode())
        except OSError:
            FakeVllm.disconnected.set()
        self.close_connection = True


@pytest.fixture
def fake_vllm(tiny_model_dir: Path) -> Iterator[str]:
    FakeVllm.tokenizer = Tokenizer(tiny_model_dir / "tokenizer.model")
    FakeVllm.stream, FakeVllm.page, FakeVllm.keys, FakeVllm.stall, FakeVllm.rows = None, None, [], False, None
    FakeVllm.disconnected = threading.Event()
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeVllm)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def event(tokens: list[int], text: str = "", finish: str | None = None) -> str:
    # As vLLM writes it (pydantic): non-ASCII text raw, U+2028 included.
    return "data: " + json.dumps({"choices": [{"index": 0, "text": text, "token_ids": tokens,
                                               "finish_reason": finish}]}, ensure_ascii=False) + "\n\n"


def test_sse_lines_end_at_line_feeds_alone() -> None:
    chunks = ['data: {"choices": [{"text": "a\u2028b\x85c\u2029", "tok', 'en_ids": [5]}]}\r', "\n\r\n",
              "data: [DONE]\n\n"]
    assert list(sse_events(sse_lines(chunks))) == [{"choices": [{"text": "a\u2028b\x85c\u2029", "token_ids": [5]}]}]


def test_a_token_whose_text_is_a_unicode_line_separator_is_read(fake_vllm: str, tiny_model_dir: Path) -> None:
    FakeVllm.stream = [event([281]), event([388], "\u2028"), event([6], "", "stop"), "data: [DONE]\n\n"]
    backend = VllmBackend(fake_vllm, Tokenizer(tiny_model_dir / "tokenizer.model"), timeout=5)
    gen = backend.generate([1, 5, 6], max_new_tokens=8)
    assert (gen.tokens, gen.stop_reason) == ([281, 388], "eot")


@pytest.mark.parametrize("line", ["data: <html>", "data: 5", 'data: {"choices": ["x"]}',
                                  'data: {"choices": [{"token_ids": "5"}]}'])
def test_a_malformed_event_is_an_outage(fake_vllm: str, tiny_model_dir: Path, line: str) -> None:
    FakeVllm.stream = [event([281]), line + "\n\n"]
    backend = VllmBackend(fake_vllm, Tokenizer(tiny_model_dir / "tokenizer.model"), timeout=5)
    with pytest.raises(BackendUnavailable, match="malformed"):
        backend.generate([1, 5, 6], max_new_tokens=8)
    assert backend.describe()["health"].startswith("unreachable")


def test_a_stream_cut_before_done_is_an_outage_not_a_suggestion(fake_vllm: str, tiny_model_dir: Path) -> None:
    # vLLM ends every stream with [DONE]: one that stops before it (the server died, a proxy's timeout cut it)
    # used to read as a generation stopped by the deadline, and its first tokens were shown as a suggestion.
    FakeVllm.stream = [event([281]), event([388])]
    backend = VllmBackend(fake_vllm, Tokenizer(tiny_model_dir / "tokenizer.model"), timeout=5)
    with pytest.raises(BackendUnavailable, match="ended before"):
        backend.generate([1, 5, 6], max_new_tokens=8)
    assert backend.describe()["health"].startswith("unreachable")
    with pytest.raises(BackendUnavailable, match="ended before"):
        list(sse_events(['data: {"choices": []}', ""]))


def test_a_web_page_at_the_url_is_an_outage_that_says_so(fake_vllm: str, tiny_model_dir: Path) -> None:
    FakeVllm.page = b"<html><body>Sign in</body></html>"  # a web UI or a proxy's login page, answering 200
    backend = VllmBackend(fake_vllm, Tokenizer(tiny_model_dir / "tokenizer.model"), timeout=5)
    backend.connect()  # not a crash: an outage, retried
    assert "not JSON: is this a vLLM server's URL?" in str(backend.describe()["health"])


def test_the_api_key_is_sent_without_blanks_and_never_shown(fake_vllm: str, tiny_model_dir: Path) -> None:
    tokenizer = Tokenizer(tiny_model_dir / "tokenizer.model")
    VllmBackend(fake_vllm, tokenizer, api_key="sk-secret-1\r\n").connect()  # a key file's line break
    assert FakeVllm.keys == ["Bearer sk-secret-1"]
    backend = VllmBackend(fake_vllm, tokenizer, api_key="sk-secret-1\nsk-secret-2")
    backend.connect()
    with pytest.raises(BackendUnavailable) as failure:
        backend.generate([1, 5, 6])
    shown = [str(failure.value), str(backend.describe())]
    assert "Illegal header value" in shown[0] and not any("secret" in s for s in shown), shown


@pytest.mark.parametrize("stop", ["cancel", "deadline"])
def test_a_wait_for_the_next_token_ends_when_cancelled_or_out_of_time(fake_vllm: str, tiny_model_dir: Path,
                                                                      stop: str) -> None:
    FakeVllm.stream = [event([281]), "<wait>"]  # one token, then a long silence (other clients' requests first)
    backend = VllmBackend(fake_vllm, Tokenizer(tiny_model_dir / "tokenizer.model"), timeout=30)
    backend.connect()
    t0 = time.monotonic()
    gen = backend.generate([1, 5, 6], max_new_tokens=8, cancel=(lambda: time.monotonic() > t0 + 0.3)
                           if stop == "cancel" else None, deadline=t0 + 0.3 if stop == "deadline" else None)
    assert (gen.tokens, gen.stop_reason) == ([281], stop)
    assert time.monotonic() - t0 < 10  # not the 30 s timeout (a bound far from both: the machine may be busy)
    assert FakeVllm.disconnected.wait(10)  # the server saw the stream closed: vLLM aborts the request
    assert backend.describe()["health"] == "ok"


def test_a_wait_for_the_answers_headers_ends_when_cancelled(fake_vllm: str, tiny_model_dir: Path) -> None:
    FakeVllm.stall = True
    backend = VllmBackend(fake_vllm, Tokenizer(tiny_model_dir / "tokenizer.model"), timeout=30)
    backend.connect()
    t0 = time.monotonic()
    gen = backend.generate([1, 5, 6], max_new_tokens=8, cancel=lambda: time.monotonic() > t0 + 0.3)
    assert (gen.tokens, gen.stop_reason) == ([], "cancel")
    assert time.monotonic() - t0 < 10  # not the 30 s timeout, which held the model thread and the exit
    # The connection is closed now, not at the timeout: vLLM aborts the request (before: it went on for 30 s).
    assert FakeVllm.disconnected.wait(10)
    assert time.monotonic() - t0 < 10
    assert backend.describe()["health"] == "ok"
    FakeVllm.stall, FakeVllm.stream = False, [event([281]), event([282], finish="length"), "data: [DONE]\n\n"]
    assert backend.generate([1, 5, 6], max_new_tokens=2).tokens == [281, 282]  # the next request is served


def test_a_check_of_a_server_that_never_answers_ends_when_cancelled(tiny_model_dir: Path) -> None:
    with silent_server() as url:
        # Never reached yet (or back after an outage): checked first, on the first request.
        backend = VllmBackend(url, Tokenizer(tiny_model_dir / "tokenizer.model"), timeout=30)
        for _ in range(2):  # the second waits for the check the first left running
            t0 = time.monotonic()
            gen = backend.generate([1, 5, 6], max_new_tokens=8, cancel=lambda: time.monotonic() > t0 + 0.3)
            assert (gen.tokens, gen.stop_reason) == ([], "cancel")
            assert time.monotonic() - t0 < 10  # not the 30 s timeout
        assert sum(t.name == "vllm-check" for t in threading.enumerate()) == 1


def test_the_server_exits_promptly_while_a_completion_waits_for_vllms_answer(fake_vllm: str) -> None:
    """shutdown and exit while vLLM has not even answered a completion's request (its headers): the model
    thread leaves the wait, and the process exits, without waiting out remoteTimeoutMs."""
    FakeVllm.stall = True
    wire = Wire()
    try:
        wire.initialize({}, load=True, options={"backend": "vllm", "remoteUrl": fake_vllm, "remoteTimeoutMs": 30_000})
        assert wire.wait_ready()["state"] == "ready"
        wire.open("file:///work/stall.py", "def add(a, b):\n    return \n")
        wire.request("textDocument/inlineCompletion", {"textDocument": {"uri": "file:///work/stall.py"},
                                                       "position": {"line": 1, "character": 11},
                                                       "context": {"triggerKind": 1}})  # invoked: no deadline
        time.sleep(0.5)  # the request is on its way to the stalled server
        t0 = time.monotonic()
        assert wire.stop(timeout=40) == 0
        assert time.monotonic() - t0 < 15, time.monotonic() - t0
    finally:
        wire.kill()


def test_a_shutdown_while_connecting_does_not_wait_for_the_server(tiny_model_dir: Path) -> None:
    with silent_server() as url:
        settings = Settings(backend="vllm", remote_url=url, remote_timeout_ms=30_000)
        closing = threading.Event()

        def progress(fraction: float, message: str) -> None:  # the language server's: raises once it shuts down
            if closing.is_set():
                raise RuntimeError("the server is shutting down")

        threading.Timer(0.3, closing.set).start()
        t0 = time.monotonic()
        with pytest.raises(RuntimeError, match="shutting down"):
            connect_vllm(settings, progress)
        assert time.monotonic() - t0 < 10  # not the 30 s timeout


def test_a_server_back_with_another_model_is_told() -> None:
    shown: list[str] = []
    outage = OutageNotice(shown.append, lambda m: None)
    outage.failed(BackendUnavailable("http://gpu:8000: cannot connect"))
    outage.failed(IncompatibleModel("http://gpu:8000: m does not have the tokenizer's 32016-piece vocabulary"))
    outage.failed(BackendUnavailable("http://gpu:8000: m does not have the tokenizer's 32016-piece vocabulary"))
    outage.failed(IncompatibleModel("http://gpu:8000: m does not have the tokenizer's 32016-piece vocabulary"))
    assert len(shown) == 2 and "unavailable" in shown[0] and "32016-piece vocabulary" in shown[1]


def test_credentials_in_the_url_are_used_but_never_shown(fake_vllm: str) -> None:
    """http://user:password@host: httpx sends them as basic auth; the status, the messages to the editor,
    progress and the log show the URL with `***` in their place (they showed the password)."""
    FakeVllm.page = b"<html><body>Sign in</body></html>"  # an outage, whose message names the URL
    url = fake_vllm.replace("http://", "http://alice:s3cret-pw@")
    wire = Wire(command=[*SERVE[:-2], "INFO", "serve"])
    try:
        wire.initialize({"window": {"workDoneProgress": True}}, load=True,
                        options={"backend": "vllm", "remoteUrl": url})
        status = wire.wait_ready()
        wire.open("file:///work/creds.py", "def add(a, b):\n    return \n")
        wire.inline("file:///work/creds.py", 1, 11)
        wire.notify("workspace/didChangeConfiguration", {"settings": {"codellama": {"remoteUrl": "ftp://bob:pw2@h"}}})
        end = time.monotonic() + 10
        while not any("invalid value" in json.dumps(n) for n in wire.notifications) and time.monotonic() < end:
            time.sleep(0.05)
        assert FakeVllm.keys and all(key == "Basic YWxpY2U6czNjcmV0LXB3" for key in FakeVllm.keys)  # alice:s3cret-pw
        assert status["runtime"]["url"] == fake_vllm.replace("http://", "http://***@")
        shown = [json.dumps(status), wire.log(), *map(json.dumps, wire.notifications + wire.server_requests)]
        assert "unreachable" in shown[0] and any("ftp://***@h" in s for s in shown)
        assert not [s for s in shown if "s3cret" in s or "pw2" in s], shown
        assert wire.stop() == 0
    finally:
        wire.kill()


def test_a_suggestion_ends_before_bytes_that_are_no_character(fake_vllm: str) -> None:
    """vLLM streams token ids: "€" comes as three byte pieces, and a model can write a lead byte that no
    continuation follows. The served suggestion keeps "€" and a U+FFFD copied from the document (its own
    three bytes), and ends before the broken byte as a cut answer ends, at its last whole word (it showed
    U+FFFD there, which the document never held)."""
    tok = FakeVllm.tokenizer
    byte = {tok.sp.id_to_piece(i): i for i in range(tok.n_words) if tok.sp.is_byte(i)}
    euro, fffd = [byte["<0xE2>"], byte["<0x82>"], byte["<0xAC>"]], [byte["<0xEF>"], byte["<0xBF>"], byte["<0xBD>"]]
    answer = [*tok.encode_infilling('s = "5 '), *euro, *tok.encode_infilling('" + "'), *fffd,
              *tok.encode_infilling('ok" + "ab'), byte["<0xE2>"], *tok.encode_infilling('x"')]
    FakeVllm.stream = [*(event([t]) for t in answer), event([tok.eot_id], "", "stop"), "data: [DONE]\n\n"]
    wire = Wire()
    try:
        wire.initialize({}, load=True, options={"backend": "vllm", "remoteUrl": fake_vllm})
        assert wire.wait_ready()["state"] == "ready"
        wire.open("file:///work/price.py", 'MISSING = "\ufffd"\n\n\ndef price():\n    \n')
        reply = wire.inline("file:///work/price.py", 4, 4)
        assert [item["insertText"] for item in reply["result"]["items"]] == ['s = "5 €" + "\ufffdok" + "']
        assert wire.stop() == 0
    finally:
        wire.kill()


def test_generation_stops_at_bytes_that_are_no_text(fake_vllm: str, tiny_model_dir: Path) -> None:
    """The text ends before a control character for good: the stream is closed there (vLLM aborts the
    request) instead of read to the budget; before, this waited for the server's next token."""
    tok = FakeVllm.tokenizer
    control = next(i for i in range(tok.n_words) if tok.sp.id_to_piece(i) == "<0x03>")
    FakeVllm.stream = [event([281]), event([388]), event([control]), event([281]), "<wait>"]
    backend = VllmBackend(fake_vllm, Tokenizer(tiny_model_dir / "tokenizer.model"), timeout=5)
    t0 = time.monotonic()
    gen = backend.generate([1, 5, 6], max_new_tokens=50)
    assert (gen.tokens, gen.stop_reason) == ([281, 388, control], "invalid")
    assert time.monotonic() - t0 < 4  # not the 5 s timeout
    assert FakeVllm.disconnected.wait(10)


@pytest.mark.parametrize(("extra", "served"), [(1, True), (64, True), (255, True), (256, False), (-1, False)])
def test_a_fine_tune_with_a_few_rows_past_the_tokenizer_is_served(fake_vllm: str, tiny_model_dir: Path, extra: int,
                                                                  served: bool) -> None:
    """vLLM takes prompt ids up to its model's last row: a Code Llama fine-tune with a pad token added (32017,
    or 32064 rounded up) takes ids past tokenizer.model's. Before, any id past them read as another vocabulary
    ("does not have the tokenizer's 32016-piece vocabulary"); still refused: fewer rows, or many more."""
    FakeVllm.rows = FakeVllm.tokenizer.n_words + extra
    backend = VllmBackend(fake_vllm, Tokenizer(tiny_model_dir / "tokenizer.model"), timeout=5)
    if served:
        backend.connect()
        assert backend.describe()["health"] == "ok"
    else:
        with pytest.raises(IncompatibleModel, match="does not have the tokenizer's 4096-piece vocabulary"):
            backend.connect()


def test_an_id_past_the_tokenizer_ends_the_text(fake_vllm: str, tiny_model_dir: Path) -> None:
    """A padded fine-tune served by vLLM may write a row tokenizer.model has no piece for (its [PAD]): the text
    ends before it, as at bytes that are no text, and the stream is closed there. Before: SentencePiece's
    IndexError ("piece id is out of range") out of generate, and no suggestion at all."""
    n = FakeVllm.tokenizer.n_words
    FakeVllm.rows = n + 64
    FakeVllm.stream = [event([281]), event([388]), event([n + 3]), event([281]), "<wait>"]
    backend = VllmBackend(fake_vllm, Tokenizer(tiny_model_dir / "tokenizer.model"), timeout=5)
    for decode in (None, FakeVllm.tokenizer.decode):  # the infilling decode, and a caller's own
        gen = backend.generate([1, 5, 6], max_new_tokens=50, decode=decode)
        assert (gen.tokens, gen.stop_reason) == ([281, 388], "invalid")
        assert gen.text == (decode or FakeVllm.tokenizer.decode_infilling)([281, 388])
        assert FakeVllm.disconnected.wait(10)
        FakeVllm.disconnected.clear()


def test_an_alternative_never_begins_with_an_id_past_the_tokenizer(fake_vllm: str, tiny_model_dir: Path) -> None:
    n = FakeVllm.tokenizer.n_words
    FakeVllm.rows = n + 64
    ranked = {"choices": [{"token_ids": [n + 1], "logprobs": {"top_logprobs": [
        {f"token_id:{n + 1}": -0.1, "token_id:281": -0.5, "token_id:388": -1.0}]}}]}
    FakeVllm.stream = ["data: " + json.dumps(ranked) + "\n\n", event([FakeVllm.tokenizer.eot_id], "", "stop"),
                       "data: [DONE]\n\n"]
    backend = VllmBackend(fake_vllm, Tokenizer(tiny_model_dir / "tokenizer.model"), timeout=5)
    assert backend.generate([1, 5, 6], max_new_tokens=8, first_rank=0).tokens[:1] == [281]
    assert backend.generate([1, 5, 6], max_new_tokens=8, first_rank=1).tokens[:1] == [388]


def test_the_server_shows_the_text_before_an_id_past_the_tokenizer(fake_vllm: str) -> None:
    """On the wire: a padded fine-tune on the vLLM server writes `value = compute(` and then its pad row."""
    tok = FakeVllm.tokenizer
    FakeVllm.rows = tok.n_words + 64
    FakeVllm.stream = [*(event([t]) for t in tok.encode_infilling("value = compute(")), event([tok.n_words]),
                       event([tok.eot_id], "", "stop"), "data: [DONE]\n\n"]
    wire = Wire()
    try:
        wire.initialize({}, load=True, options={"backend": "vllm", "remoteUrl": fake_vllm})
        assert wire.wait_ready()["state"] == "ready"
        wire.open("file:///work/a.py", "def f():\n    \n")
        reply = wire.inline("file:///work/a.py", 1, 4)
        assert [item["insertText"] for item in reply["result"]["items"]] == ["value = compute("]
        assert wire.stop() == 0
        assert "Traceback" not in wire.log()
    finally:
        wire.kill()


# Documents with `|` at the cursor, the middle the model writes there, and the document once the suggestion is
# accepted: what Code Llama writes between tags and in attribute values, and at generics, which must not read
# as tags.
MARKUP_CASES = [
    # The element's content on lines of its own: the closing tag goes below it (before: no suggestion).
    ("javascriptreact", "const A = () => (\n  <div>|</div>\n);\n", "\n    <h1>Hello</h1>\n  </div>\n);\n",
     "const A = () => (\n  <div>\n    <h1>Hello</h1>\n  </div>\n);\n"),
    ("html", "<ul>|\n</ul>\n", "\n  <li>One</li>\n  <li>Two</li>\n</ul>\n",
     "<ul>\n  <li>One</li>\n  <li>Two</li>\n</ul>\n"),
    ("javascript", "const L = () => (\n  <ul>|\n  </ul>\n);\n", "\n    <li>One</li>\n  </ul>\n);\n",
     "const L = () => (\n  <ul>\n    <li>One</li>\n  </ul>\n);\n"),  # JSX in a .js file: its closing tag says so
    # Text or a value, ending before the closing tag or quote the line has (before: the rest came twice).
    ("vue", "<template>\n  <h1>|</h1>\n</template>\n", "{{ title }}</h1><p>{{ body }}</p>",
     "<template>\n  <h1>{{ title }}</h1>\n</template>\n"),
    ("typescriptreact", 'export const P = () => <p className="|"></p>;\n', 'text-lg">Hello</p>;',
     'export const P = () => <p className="text-lg"></p>;\n'),
    ("javascriptreact", "const B = () => <button onClick={|}></button>;\n", "() => inc(1)}>Add</button>;",
     "const B = () => <button onClick={() => inc(1)}></button>;\n"),
    # The element closed inline after its last child, its closing tag already on the next line: one `</ol>`.
    ("html", "<ol>|\n</ol>\n", "\n  <li>a</li>\n  <li>b</li></ol>", "<ol>\n  <li>a</li>\n  <li>b</li>\n</ol>\n"),
    ("html", "<p>\n  Hello |\n</p>\n", "world</p>\n<p>x</p>", "<p>\n  Hello world\n</p>\n"),  # opened above
    # The value closed, then more attributes and the tag's `>`: the line's `">` typed over (before: `>>`).
    ("html", "<nav>\n  <a href=\"|\">\n</nav>\n", 'x" title="y">Home</a>',
     '<nav>\n  <a href="x" title="y">Home</a>\n</nav>\n'),
    # Values after an element in an attribute's expression (its text's apostrophe is no string) or in a template
    # literal's field (its `${` is not the expression's `{`).
    ("typescriptreact", "const R = () => <Route render={() => <p>Don't</p>} path=\"|\" />;\n", '/home" exact />;',
     "const R = () => <Route render={() => <p>Don't</p>} path=\"/home\" />;\n"),
    ("typescriptreact", "const N = () => <p>{`${n} item|`}</p>;\n", "s`}</p>; // it's",
     "const N = () => <p>{`${n} items`}</p>;\n"),
    # A Svelte block's content, its `{/if}` below it (before: single-line, no suggestion).
    ("svelte", "{#if open}|\n{/if}\n", "\n  <p>Open</p>\n{/if}\n", "{#if open}\n  <p>Open</p>\n{/if}\n"),
    # Its `{:else}` in the middle: the block goes on to its `{/if}` (before: the first branch only).
    ("svelte", "{#if ok}|\n{/if}\n", "\n  <p>Yes</p>\n{:else}\n  <p>No</p>\n{/if}\n",
     "{#if ok}\n  <p>Yes</p>\n{:else}\n  <p>No</p>\n{/if}\n"),
    # Prettier's `>` line of a tag begun above opens a block (before: single-line, no suggestion).
    ("typescriptreact", 'const C = () => (\n  <div\n    className="card"\n  >|\n  </div>\n);\n',
     "\n    <p>a</p>\n    <p>b</p></div>\n);", 'const C = () => (\n  <div\n    className="card"\n  >\n    <p>a</p>\n'
     '    <p>b</p>\n  </div>\n);\n'),
    # New children above the document's own, its `</div>` below them: the model's is not kept (before: doubled).
    ("html", "<div>|\n  <p>old</p>\n</div>\n", "\n  <p>new</p></div>", "<div>\n  <p>new</p>\n  <p>old</p>\n</div>\n"),
    # A value after a TSX generic arrow in another attribute (before: `<T extends User>` read as a tag, the rest
    # of the line came twice).
    ("typescriptreact", 'const U = () => <List render={<T extends User>(u: T) => u.name} title="|" onSelect={go} />;\n',
     'Users" />;', 'const U = () => <List render={<T extends User>(u: T) => u.name} title="Users" onSelect={go} />;\n'),
    # A value in HTML built in a template literal (before: the rest of the line came twice).
    ("javascript", 'const a = (url, label) => `<a href="${url}" class="|">${label}</a>`;\n',
     'nav-link">${icon(url)} ${label}</a>`;',
     'const a = (url, label) => `<a href="${url}" class="nav-link">${label}</a>`;\n'),
    # A value in a script's code (before: read as an element's text, `";` came twice).
    ("html", '<head>\n  <script>window.API_URL = "|";</script>\n</head>\n', 'https://api.example.com/v1";',
     '<head>\n  <script>window.API_URL = "https://api.example.com/v1";</script>\n</head>\n'),
    # A JSX component named like a void element holds children (before: single-line, no suggestion).
    ("typescriptreact", "const G = () => (\n  <Col span={12}>|</Col>\n);\n", "\n    <Card />\n  </Col>\n);",
     "const G = () => (\n  <Col span={12}>\n    <Card />\n  </Col>\n);\n"),
    # An opening tag with a comment after it opens a block (before: single-line, no suggestion).
    ("html", "<div class=\"container\"> <!-- main -->|\n</div>\n", "\n  <h1>Shop</h1>\n</div>\n",
     "<div class=\"container\"> <!-- main -->\n  <h1>Shop</h1>\n</div>\n"),
    # Content at the tag's own indent ends before an outer element's closing tag (before: ran on past it).
    ("html", "<ul>\n<li>Flour</li>\n<li>|", "Milk\n</ul>\n<h2>Steps</h2>\n<p>Mix.</p>\n",
     "<ul>\n<li>Flour</li>\n<li>Milk"),
    # Generics and comparisons: as before.
    ("cpp", "std::vector<int|> v;\n", ", int", "std::vector<int, int> v;\n"),
    ("typescriptreact", "const m = new Map<string, |>();\n", "number>();\nconst n = 1;\n",
     "const m = new Map<string, number>();\n"),
    ("typescript", "const m = new Map<string, |>();\n", "number", "const m = new Map<string, number>();\n"),
    ("cpp", "bool f(int a, int b) {\n  return a < b && |\n}\n", "b > 0;", "bool f(int a, int b) {\n  return a < b && b > 0;\n}\n"),
]


def test_suggestions_in_markup_through_the_server(fake_vllm: str) -> None:
    """The real server with the model's middles at markup cursors (a fake vLLM streams them): the document as
    accepting the suggestion leaves it."""
    tok = FakeVllm.tokenizer
    wire = Wire()
    try:
        wire.initialize({}, load=True, options={"backend": "vllm", "remoteUrl": fake_vllm, "debounceMs": 0})
        assert wire.wait_ready()["state"] == "ready"
        accepted = []
        for n, (language, marked, middle, _) in enumerate(MARKUP_CASES):
            cursor, text = marked.index("|"), marked.replace("|", "", 1)
            line, character = text.count("\n", 0, cursor), cursor - text.rfind("\n", 0, cursor) - 1
            healed = healing_text(tok, text[cursor - character:cursor])  # the prompt leaves it for the model
            FakeVllm.stream = [*(event([t]) for t in tok.encode_infilling(healed + middle)),
                               event([tok.eot_id], "", "stop"), "data: [DONE]\n\n"]
            wire.open(f"file:///work/markup{n}", text, language)
            items = (wire.inline(f"file:///work/markup{n}", line, character)["result"] or {}).get("items")
            if not items:
                accepted.append(None)  # no suggestion
                continue
            start, end = items[0]["range"]["start"], items[0]["range"]["end"]
            assert start == {"line": line, "character": character} and end["line"] == line
            accepted.append(text[:cursor] + items[0]["insertText"] + text[cursor + end["character"] - character:])
        assert accepted == [case[3] for case in MARKUP_CASES]
        assert wire.stop() == 0
    finally:
        wire.kill()


def test_the_complete_command_shapes_markup_by_the_files_extension(fake_vllm: str, tmp_path: Path) -> None:
    """`codellama-lsp complete page.html`: the file's extension names its language, as an editor would."""
    tok = FakeVllm.tokenizer
    page = tmp_path / "page.html"
    page.write_text("<ul>\n</ul>\n", encoding="utf-8")
    middle = "\n  <li>One</li>\n</ul>\n"
    healed = healing_text(tok, "<ul>")
    FakeVllm.stream = [*(event([t]) for t in tok.encode_infilling(healed + middle)), event([tok.eot_id], "", "stop"),
                       "data: [DONE]\n\n"]
    done = subprocess.run([*SERVE[:-1], "complete", str(page), "--line", "0", "--character", "4", "--backend", "vllm",
                           "--remote-url", fake_vllm], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    assert (done.returncode, done.stdout) == (0, "\n  <li>One</li>\n"), done.stderr  # before: nothing
