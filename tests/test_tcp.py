"""`codellama-lsp serve --tcp`: loopback only unless asked, one client at a time, clear messages."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

from lsp_server.framing import Framer, frame
from tests.wire import ROOT, SERVE


class TcpClient:
    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port), timeout=30)
        self.framer, self.pending = Framer(), []

    def send(self, message: dict) -> None:
        self.sock.sendall(frame(json.dumps({"jsonrpc": "2.0", **message}).encode()))

    def response(self, msg_id: object) -> dict:
        while True:
            while self.pending:
                message = self.pending.pop(0)
                if "method" not in message and message.get("id") == msg_id:
                    return message
            data = self.sock.recv(1 << 16)
            assert data, f"connection closed before the response to {msg_id!r}"
            self.pending += [json.loads(b) for b in self.framer.feed(data)]

    def call(self, msg_id: object, method: str, params: object = None) -> dict:
        self.send({"id": msg_id, "method": method, "params": params})
        return self.response(msg_id)

    def closed_by_server(self) -> bool:
        try:
            return self.sock.recv(1 << 16) == b""
        except ConnectionResetError:
            return True


def serve_tcp(*args: str, said: list[str] | None = None) -> tuple[subprocess.Popen, str, int]:
    """The server on `--tcp ARGS`, and where it says it listens; `said` gets the lines it wrote before."""
    proc = subprocess.Popen([*SERVE, "--tcp", *args], cwd=ROOT, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    end = time.monotonic() + 60
    while time.monotonic() < end and (line := proc.stderr.readline()):
        if line.startswith("codellama-lsp: listening on "):
            host, _, port = line.removeprefix("codellama-lsp: listening on ").strip().rpartition(":")
            return proc, host.strip("[]"), int(port)
        (said if said is not None else []).append(line)
    proc.kill()
    raise AssertionError(f"no 'listening on' line; stderr: {proc.stderr.read()}")


@pytest.fixture()
def stop() -> Iterator[list[subprocess.Popen]]:
    procs: list[subprocess.Popen] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_one_client_at_a_time_on_loopback(stop: list[subprocess.Popen]) -> None:
    proc, host, port = serve_tcp("127.0.0.1:0")
    stop.append(proc)
    assert host == "127.0.0.1" and port > 0
    first = TcpClient(host, port)
    assert "capabilities" in first.call(1, "initialize", {"processId": None, "rootUri": None, "capabilities": {}})[
        "result"]

    second = TcpClient(host, port)  # refused while the first is connected
    refusal = second.call(1, "initialize", {"processId": None, "rootUri": None, "capabilities": {}})
    assert refusal["error"]["code"] == -32803 and "serving another client" in refusal["error"]["message"]
    assert second.closed_by_server()
    silent = TcpClient(host, port)  # one that never says anything is let go as well
    silent.sock.close()

    status = first.call(2, "workspace/executeCommand", {"command": "codellama.status"})
    assert status["result"]["state"] == "idle"  # the first client's session goes on, answered to it
    assert proc.poll() is None  # the others' disconnects did not end it
    assert first.call(3, "shutdown")["result"] is None
    first.send({"method": "exit"})
    assert proc.wait(30) == 0
    assert "Traceback" not in proc.stderr.read()


def test_ipv6_loopback(stop: list[subprocess.Popen]) -> None:
    try:
        socket.create_server(("::1", 0), family=socket.AF_INET6).close()
    except OSError:
        pytest.skip("no IPv6 loopback here")
    proc, host, port = serve_tcp("[::1]:0")
    stop.append(proc)
    assert host == "::1"
    client = TcpClient(host, port)
    assert "result" in client.call(1, "initialize", {"processId": None, "rootUri": None, "capabilities": {}})
    client.sock.close()  # the client vanishing ends the server
    assert proc.wait(30) == 1


def test_other_interfaces_need_allow_remote(stop: list[subprocess.Popen]) -> None:
    refused = subprocess.run([*SERVE, "--tcp", "0.0.0.0:0"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "refusing to listen on 0.0.0.0:0" in refused.stderr and "--allow-remote" in refused.stderr
    said: list[str] = []
    proc, host, port = serve_tcp("0.0.0.0:0", "--allow-remote", said=said)
    stop.append(proc)
    assert said == ["codellama-lsp: warning: listening on 0.0.0.0:0: other machines can reach it (every network "
                    "interface), and whoever connects uses the model and sees the code sent to it: there is no "
                    "authentication\n"]
    client = TcpClient("127.0.0.1", port)
    assert "result" in client.call(1, "initialize", {"processId": None, "rootUri": None, "capabilities": {}})
    client.call(2, "shutdown")
    client.send({"method": "exit"})
    assert proc.wait(30) == 0


@pytest.mark.parametrize(("value", "message"), [
    ("localhost", "expected HOST:PORT, [IPV6]:PORT or PORT, not 'localhost'"),
    ("127.0.0.1:99999", "port 99999 is out of range (0-65535)"),
    ("::1:2087", "expected HOST:PORT, [IPV6]:PORT or PORT, not '::1:2087'"),
    ("no-such-host.invalid:2087", "cannot listen on no-such-host.invalid:2087"),
])
def test_bad_tcp_values_get_one_clear_line(value: str, message: str) -> None:
    result = subprocess.run([*SERVE, "--tcp", value], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and message in result.stderr and "Traceback" not in result.stderr


def test_a_port_in_use_gets_one_clear_line() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = subprocess.run([*SERVE, "--tcp", f"127.0.0.1:{port}"], cwd=ROOT, capture_output=True, text=True,
                                timeout=60)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip() == f"codellama-lsp: cannot listen on 127.0.0.1:{port}: Address already in use"


def test_port_alone_means_loopback(stop: list[subprocess.Popen]) -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        free = probe.getsockname()[1]
    proc, host, port = serve_tcp(str(free))
    stop.append(proc)
    assert (host, port) == ("127.0.0.1", free)
