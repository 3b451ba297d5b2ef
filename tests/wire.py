"""The real server process spoken to in raw bytes: for what no well-behaved client library would send.

Synchronous (a reader thread parses the server's output), so that hypothesis can drive one long-lived
server from an ordinary test function.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from lsp_server.framing import Framer, frame

SERVE = [sys.executable, "-m", "lsp_server", "--log-level", "WARNING", "serve"]
ROOT = Path(__file__).resolve().parent.parent

_SLOW_LOADING = """
import sys, time
import model.loader
from lsp_server.cli import main
load_model = model.loader.load_model
def slow(*args, progress=None, **kwargs):
    for i in range({steps}):
        time.sleep(0.1)
        if progress:
            progress(i / {steps}, f"layers.{{i}}")
    return load_model(*args, progress=progress, **kwargs)
model.loader.load_model = slow
main(sys.argv[1:])
"""


def slow_loading_server(seconds: float) -> list[str]:
    """`python ...` (then the `codellama-lsp` arguments): the real CLI, whose model load takes `seconds` more,
    reporting progress as the real one does, tensor by tensor; for what happens while a model loads."""
    return [sys.executable, "-c", _SLOW_LOADING.format(steps=max(1, round(seconds * 10)))]


_SLOW_PREFILL = """
import sys, time
from pathlib import Path
import model.engine
from lsp_server.cli import main
from model.llama import Transformer
if {chunk}:
    model.engine.PREFILL_CHUNK["cpu"] = {chunk}
forward = Transformer.forward
def slow(self, idx, *args, **kwargs):
    if idx.shape[1] > 1 and Path({arm!r}).exists():
        time.sleep({seconds} * (idx.shape[1] if {per_token} else 1))
    return forward(self, idx, *args, **kwargs)
Transformer.forward = slow
main(sys.argv[1:])
"""


def slow_prefill_server(arm: Path, seconds: float, chunk: int | None = 8, *, per_token: bool = False) -> list[str]:
    """`python ...` (then the `codellama-lsp` arguments): the real CLI, whose model reads prompts at most `chunk`
    tokens per forward pass (None: the engine's own sizes) and, while the file `arm` exists, takes `seconds` more
    for each such pass, or for each token of it with `per_token` (decoding one token at a time stays fast): a model
    too slow to read a prompt within the time budget, as a 7B is on a CPU. The warm-up is a prefill pass too: arm
    it after the model has loaded."""
    return [sys.executable, "-c", _SLOW_PREFILL.format(chunk=chunk, arm=str(arm), seconds=seconds,
                                                      per_token=per_token)]


class Wire:
    """`command` (default: `codellama-lsp serve ARGS`) over stdio; every message it sends is kept."""

    def __init__(self, *args: str, command: list[str] | None = None, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(command or [*SERVE, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, cwd=ROOT, env={**os.environ, **(env or {})})
        self.inbox: queue.Queue[dict[str, Any]] = queue.Queue()
        self.answers: Counter[object] = Counter()  # responses per id
        self._replies: dict[object, dict[str, Any]] = {}  # responses taken from the inbox, by id
        self.notifications: list[dict[str, Any]] = []
        self.server_requests: list[dict[str, Any]] = []  # the server's own requests (never answered here)
        self.stderr: list[bytes] = []
        self.stdout = bytearray()  # every byte the server wrote to stdout, framing included
        self._next_id = 0
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=lambda: self.stderr.extend(iter(self.proc.stderr.readline, b"")), daemon=True).start()

    def _read(self) -> None:
        framer = Framer()
        while data := self.proc.stdout.read1(1 << 16):
            self.stdout += data
            for body in framer.feed(data):
                message = json.loads(body)
                if "method" not in message:
                    self.answers[message.get("id")] += 1
                elif "id" in message:
                    self.server_requests.append(message)
                else:
                    self.notifications.append(message)
                self.inbox.put(message)

    # -- sending ----------------------------------------------------------------------------------------
    def send_bytes(self, data: bytes) -> None:
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def send(self, message: dict[str, Any] | bytes, length: int | None = None) -> None:
        """One message, framed with its own length unless `length` says otherwise."""
        body = message if isinstance(message, bytes) else json.dumps(message).encode()
        self.send_bytes(frame(body) if length is None else b"Content-Length: %d\r\n\r\n%s" % (length, body))

    def request(self, method: str, params: Any = None, **fields: Any) -> int:
        self._next_id += 1
        self.send({"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": params, **fields})
        return self._next_id

    def request_then(self, method: str, params: Any, *notifications: tuple[str, Any]) -> int:
        """A request and the notifications after it in one write, so that the server reads them together
        (as it does whatever a client sends while it is busy); the request's id."""
        self._next_id += 1
        messages = [{"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": params},
                    *({"jsonrpc": "2.0", "method": m, "params": p} for m, p in notifications)]
        self.send_bytes(b"".join(frame(json.dumps(m).encode()) for m in messages))
        return self._next_id

    def notifications_then(self, notifications: list[tuple[str, Any]], method: str, params: Any) -> int:
        """Notifications and a request after them in one write, read by the server together; the request's id."""
        self._next_id += 1
        messages = [*({"jsonrpc": "2.0", "method": m, "params": p} for m, p in notifications),
                    {"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": params}]
        self.send_bytes(b"".join(frame(json.dumps(m).encode()) for m in messages))
        return self._next_id

    def notify(self, method: str, params: Any = None) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    # -- receiving --------------------------------------------------------------------------------------
    def response(self, msg_id: object, timeout: float = 30) -> dict[str, Any]:
        """The response to `msg_id`; the server's own requests on the way are left unanswered."""
        end = time.monotonic() + timeout
        while msg_id not in self._replies and (left := end - time.monotonic()) > 0:
            try:
                message = self.inbox.get(timeout=left)
            except queue.Empty:
                break
            if "method" not in message:
                self._replies[message.get("id")] = message
        if msg_id in self._replies:
            return self._replies.pop(msg_id)
        raise AssertionError(f"no response to {msg_id!r} within {timeout}s; stderr: {self.log()[-2000:]}")

    def call(self, method: str, params: Any = None, timeout: float = 30) -> dict[str, Any]:
        return self.response(self.request(method, params), timeout)

    def result(self, method: str, params: Any = None, timeout: float = 30) -> Any:
        reply = self.call(method, params, timeout)
        assert "error" not in reply, reply
        return reply["result"]

    def rss_kib(self) -> int:
        """The server's resident memory (Linux)."""
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))

    def popups(self) -> list[str]:
        return [n["params"]["message"] for n in self.notifications if n["method"] == "window/showMessage"
                and n["params"]["type"] == 1]

    def log(self) -> str:
        return b"".join(self.stderr).decode(errors="replace")

    def logged(self, text: str, timeout: float = 10, *, since: int = 0) -> bool:
        """Whether the server writes `text` to stderr within `timeout` (stderr is read on its own thread),
        looking only past the first `since` characters of its log."""
        end = time.monotonic() + timeout
        while text not in self.log()[since:] and time.monotonic() < end:
            time.sleep(0.05)
        return text in self.log()[since:]

    # -- session ----------------------------------------------------------------------------------------
    def initialize(self, capabilities: dict[str, Any] | None = None, *, load: bool = False,
                   options: dict[str, Any] | None = None) -> dict[str, Any]:
        """initialize; with `load`, also initialized, which starts loading the model."""
        result = self.result("initialize", {"processId": None, "rootUri": None, "capabilities": capabilities or {},
                                            "initializationOptions": options})
        if load:
            self.notify("initialized", {})
        return result

    def wait_ready(self, timeout: float = 120) -> dict[str, Any]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            status = self.result("workspace/executeCommand", {"command": "codellama.status"})
            if status["state"] not in ("idle", "loading"):
                return status
            time.sleep(0.1)
        raise AssertionError("the model did not load")

    def open(self, uri: str, text: str, language: str = "python") -> None:
        self.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": language, "version": 1,
                                                              "text": text}})

    def inline(self, uri: str, line: int, character: int, timeout: float = 60) -> dict[str, Any]:
        return self.call("textDocument/inlineCompletion", {
            "textDocument": {"uri": uri}, "position": {"line": line, "character": character},
            "context": {"triggerKind": 2}}, timeout)

    def stop(self, timeout: float = 30) -> int:
        """shutdown and exit, as an editor ends a session; the exit code."""
        if self.proc.poll() is None:
            self.call("shutdown", timeout=timeout)
            self.notify("exit")
        return self.wait(timeout)

    def wait(self, timeout: float = 30) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self.kill()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                stream.close()
            except OSError:
                pass
