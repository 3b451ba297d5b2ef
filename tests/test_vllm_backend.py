"""The vLLM backend's pure pieces (request, stream and error handling) and its behaviour with no server.

The real server is exercised by tests/test_vllm.py (`pytest -m vllm`).
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from lsp_server.outage import OutageNotice
from lsp_server.settings import parse_settings
from model.backend import BackendUnavailable
from model.tokenizer import Tokenizer
from model.vllm_backend import (IncompatibleModel, VllmBackend, completion_body, event_tokens, http_error,
                                pick_model, ranked_tokens, sse_events)
from tests.vllm_server import free_port


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


def test_a_server_that_never_answers_times_out(tiny_model_dir: Path) -> None:
    with socket.socket() as silent:  # accepts connections (the kernel's backlog), never reads or writes
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        backend = VllmBackend(url, Tokenizer(tiny_model_dir / "tokenizer.model"), timeout=0.3)
        t0 = time.monotonic()
        backend.connect()
        assert time.monotonic() - t0 < 3
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
