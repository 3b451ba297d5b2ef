"""What editors' LSP clients send that a strict server would refuse: the transport flags vscode-languageclient
appends to the command (`--stdio`, `--socket=N`, `--pipe=…`, `--node-ipc`, `--clientProcessId=N`), a
`--log-level` after `serve` (where "server arguments" settings put it), and the pre-3.18 inline completion
trigger kinds of vscode-languageclient 9 (0 = invoked). Each test runs the real server process and speaks
JSON-RPC to it by hand, as a client library would.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import pytest

from model.loader import DEMO_MODEL_DIR

SERVE = [sys.executable, "-m", "lsp_server", "serve", "--model", str(DEMO_MODEL_DIR)]
URI = "file:///tmp/compat.py"
TEXT = "def add(a, b):\n\nprint(add(1, 2))\n"


class Connection:
    """A blocking JSON-RPC connection that answers the server's own requests with defaults."""

    def __init__(self, reader: IO[bytes], writer: IO[bytes]) -> None:
        self.reader, self.writer = reader, writer
        self.next_id = 0

    def send(self, message: dict[str, Any]) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode()
        self.writer.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        self.writer.flush()

    def receive(self) -> dict[str, Any]:
        length = None
        while (line := self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        if length is None:
            raise EOFError("the server closed the connection")
        return json.loads(self.reader.read(length))

    def request(self, method: str, params: Any) -> dict[str, Any]:
        """The response (with `result` or `error`) to a request."""
        self.next_id += 1
        self.send({"id": self.next_id, "method": method, "params": params})
        while True:
            message = self.receive()
            if message.get("id") == self.next_id and "method" not in message:
                return message
            if "method" in message and "id" in message:  # workspace/configuration, workDoneProgress/create
                self.send({"id": message["id"], "result": [{}] if message["method"] == "workspace/configuration"
                           else None})

    def notify(self, method: str, params: Any) -> None:
        self.send({"method": method, "params": params})

    def initialize(self) -> dict[str, Any]:
        result = self.request("initialize", {"processId": None, "rootUri": None, "capabilities": {}})["result"]
        self.notify("initialized", {})
        return result

    def wait_until_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.request("workspace/executeCommand", {"command": "codellama.status", "arguments": []})
            if status["result"]["state"] == "ready":
                return
            time.sleep(0.2)
        raise AssertionError("the model did not load")

    def close(self) -> None:
        assert self.request("shutdown", None).get("error") is None
        self.notify("exit", None)


@contextmanager
def watchdog(proc: subprocess.Popen[bytes], seconds: float = 90) -> Iterator[None]:
    """Kill the server if the test hangs on it: blocked reads then end with EOFError."""
    timer = threading.Timer(seconds, proc.kill)
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def stderr_after_exit(proc: subprocess.Popen[bytes]) -> str:
    assert proc.wait(timeout=30) == 0
    assert proc.stderr is not None
    return proc.stderr.read().decode()


def test_stdio_flags_and_every_trigger_kind_get_answers() -> None:
    proc = subprocess.Popen([*SERVE, "--log-level", "INFO", "--stdio", "--clientProcessId=4242"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    with watchdog(proc):
        rpc = Connection(proc.stdout, proc.stdin)
        assert rpc.initialize()["capabilities"]["inlineCompletionProvider"] is not None
        rpc.wait_until_ready()
        rpc.notify("textDocument/didOpen",
                   {"textDocument": {"uri": URI, "languageId": "python", "version": 1, "text": TEXT}})
        answers = {}
        # 0 and 1: vscode-languageclient 9 (invoked, automatic); 1 and 2: LSP 3.18; 7: a kind from the future.
        for kind in (0, 1, 2, 7):
            answers[kind] = rpc.request("textDocument/inlineCompletion", {
                "textDocument": {"uri": URI}, "position": {"line": 0, "character": 14},
                "context": {"triggerKind": kind}})
        rpc.close()
    for kind, answer in answers.items():
        assert "error" not in answer, (kind, answer)
        assert answer["result"]["items"], (kind, answer)
    # `--log-level` given after `serve` applies.
    assert "INFO lsp_server.model_load" in stderr_after_exit(proc)


def test_stderr_carries_only_warnings_and_errors_by_default() -> None:
    # Neovim logs every stderr line of a server as an error in its lsp.log; VS Code shows them in the output.
    proc = subprocess.Popen(SERVE, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    with watchdog(proc):
        rpc = Connection(proc.stdout, proc.stdin)
        rpc.initialize()
        rpc.wait_until_ready()
        rpc.notify("$/cancelRequest", {"id": 1})  # for a request answered long ago: a normal race, not a warning
        rpc.close()
    assert stderr_after_exit(proc) == ""


@pytest.mark.parametrize("transport", ["socket", "pipe"])
def test_socket_and_pipe_transports_connect_to_the_editor(transport: str, tmp_path: Path) -> None:
    # The editor listens and passes where; the server connects (vscode-languageclient's TransportKind.socket/pipe).
    if transport == "socket":
        listener = socket.create_server(("127.0.0.1", 0))
        flag = f"--socket={listener.getsockname()[1]}"
    else:
        if not hasattr(socket, "AF_UNIX"):
            pytest.skip("no Unix domain sockets on this system")
        path = tmp_path / "lsp.sock"
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(path))
        listener.listen(1)
        flag = f"--pipe={path}"
    listener.settimeout(60)
    proc = subprocess.Popen([*SERVE, flag, "--clientProcessId=4242"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    with watchdog(proc), listener:
        conn, _ = listener.accept()
        with conn:
            rpc = Connection(conn.makefile("rb"), conn.makefile("wb"))
            assert rpc.initialize()["serverInfo"]["name"] == "codellama-lsp"
            rpc.close()
    assert stderr_after_exit(proc) == ""


@pytest.mark.parametrize(("value", "message"), [
    ("70000", "port 70000 is out of range (1-65535)"), ("0", "port 0 is out of range (1-65535)"),
    ("-1", "port -1 is out of range (1-65535)"), ("abc", "expected a port number, not 'abc'")])
def test_a_socket_port_out_of_range_is_a_usage_error(value: str, message: str) -> None:
    # Before: 70000 connected to port 4464 (the kernel keeps the low 16 bits), whoever listened there, or
    # failed with "Connection refused" (exit 1) as if the editor were not listening.
    proc = subprocess.run([*SERVE, f"--socket={value}"], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == f"codellama-lsp serve: error: argument --socket: {message}"


def test_node_ipc_is_refused_with_the_alternatives() -> None:
    proc = subprocess.run([*SERVE, "--node-ipc"], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "--node-ipc" in proc.stderr and "stdio" in proc.stderr and "Traceback" not in proc.stderr
