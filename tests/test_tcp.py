"""`codellama-lsp serve --tcp`: loopback only unless asked, one client at a time, clear messages."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
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


def _as_user(uid: int, port: int, message: bytes) -> bytes:
    """The first message the server sends back for `message` on a connection made by user `uid` (a forked
    child: no exec, so the venv need not be readable by that user)."""
    "127.0.0.1".encode("idna")  # imported now: the child, as that user, may not be able to read the codec
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child
        try:
            os.close(read)
            os.setgid(uid)
            os.setuid(uid)
            framer, bodies = Framer(), []
            with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
                sock.sendall(message)
                while not bodies and (chunk := sock.recv(1 << 16)):
                    bodies = framer.feed(chunk)
            os.write(write, bodies[0] if bodies else b"")
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as answer:
        data = answer.read()
    os.waitpid(child, 0)
    return data


@pytest.mark.skipif(not sys.platform.startswith("linux") or os.geteuid() != 0,
                    reason="Linux only, and root to connect as another user")
def test_a_client_of_another_user_is_refused(stop: list[subprocess.Popen]) -> None:
    """Loopback is open to every user of the machine: one who connected first got the session, in which the
    server reads any file we can read and sends code and CODELLAMA_API_KEY to the remoteUrl it is given."""
    proc, host, port = serve_tcp("127.0.0.1:0")
    stop.append(proc)
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                  "params": {"processId": None, "rootUri": None, "capabilities": {}}}
    refusal = json.loads(_as_user(65534, port, frame(json.dumps(initialize).encode())))
    assert refusal["error"]["code"] == -32803 and "its own user only, not uid 65534" in refusal["error"]["message"]
    own = TcpClient(host, port)  # the session is still free for our own user
    assert "result" in own.call(1, "initialize", initialize["params"])
    own.call(2, "shutdown")
    own.send({"method": "exit"})
    assert proc.wait(30) == 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/net/tcp")
@pytest.mark.parametrize(("listen", "connect"), [("127.0.0.1", "127.0.0.1"), ("::1", "::1"), ("::", "127.0.0.1")])
def test_the_owner_of_a_local_connection_is_found(listen: str, connect: str) -> None:
    from lsp_server.transport import peer_uid
    try:
        server = socket.create_server((listen, 0), family=socket.AF_INET6 if ":" in listen else socket.AF_INET,
                                      dualstack_ipv6=listen == "::")
    except OSError:
        pytest.skip(f"cannot listen on {listen} here")
    with server, socket.create_connection((connect, server.getsockname()[1])):
        accepted, _ = server.accept()
        with accepted:  # an IPv4 client of a dual-stack socket is ::ffff:127.0.0.1 to the server
            assert peer_uid(accepted.getsockname(), accepted.getpeername()) == os.geteuid()
    assert peer_uid(("127.0.0.1", 1), ("192.0.2.1", 2)) is None  # a socket not on this machine
