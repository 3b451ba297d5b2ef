"""How the server talks: stdio, or TCP with one client at a time; both feed framing.py and protocol.py.

TCP serves one session, like stdio: the first client to connect gets it, a later one is answered with an
error while it lasts (its first request gets a RequestFailed response saying so) and disconnected, and
the server exits when its client does. On Linux a connection from another user of this machine is refused
the same way: loopback is open to every local user, and a session reads files and sends code as ours.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import socket
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import BinaryIO

from pygls.io_ import StdoutWriter

from .framing import Framer, frame
from .protocol import STEPPED_BODY_BYTES, CodeLlamaProtocol, request_id

log = logging.getLogger(__name__)

READ_CHUNK = 1 << 16
REFUSAL_WAIT_S = 5.0  # how long a refused TCP client has to send the request its refusal answers
REQUEST_FAILED = -32803  # LSP's RequestFailed


async def run_session(read: Callable[[], Awaitable[bytes]], protocol: CodeLlamaProtocol) -> None:
    """Feed what `read` returns to the protocol until end of input or the exit notification."""
    framer = Framer()
    try:
        while protocol.exit_code is None and (data := await read()):
            for body in framer.feed(data):
                if len(body) > STEPPED_BODY_BYTES:  # a big document's text: decoded in pieces, the loop free between
                    await protocol.receive_in_steps(body)  # awaited: the next message waits for this one
                else:
                    protocol.receive(body)
                if protocol.exit_code is not None:
                    break
                # pygls starts an async handler as a task, which first runs when the loop next gets control.
                # Give it that now, before the next message: a request takes its snapshot of the document
                # (server.document) as it was when the request came, not after the edits read behind it.
                await asyncio.sleep(0)
    except ConnectionError as e:  # includes BrokenPipeError: the client is gone
        log.info("connection to the client lost: %s", e)


def _proc_net_address(host: str, port: int) -> str:
    """host:port as /proc/net/tcp{,6} spell it: the address's 32-bit words in host byte order, in hex."""
    host = host.removeprefix("::ffff:") if "." in host else host  # an IPv4 client of a dual-stack socket
    packed = socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
    words = (int.from_bytes(packed[i:i + 4], sys.byteorder) for i in range(0, len(packed), 4))
    return "".join(f"{word:08X}" for word in words) + f":{port:04X}"


def peer_uid(local: tuple[str, int], peer: tuple[str, int], tables: str = "/proc/net") -> int | None:
    """The user id that owns the other end of a TCP connection from this machine (Linux); None where that is
    not known: another machine's socket, or no /proc."""
    try:
        want = (_proc_net_address(*peer[:2]), _proc_net_address(*local[:2]))
    except (OSError, ValueError):  # not an IP address (a link-local one with its %scope)
        return None
    for table in ("tcp", "tcp6"):
        try:
            with open(os.path.join(tables, table), encoding="ascii") as rows:
                for row in rows:
                    fields = row.split()  # sl local_address rem_address st queues tr retrnsmt uid ...
                    if len(fields) > 7 and (fields[1], fields[2]) == want:
                        return int(fields[7])
        except (OSError, ValueError):
            continue
    return None


def session_exit_code(protocol: CodeLlamaProtocol) -> int:
    """LSP's rule: 0 after shutdown, 1 otherwise (exit without shutdown, or the client vanished)."""
    if protocol.exit_code is not None:
        return protocol.exit_code
    return 0 if protocol._shutdown else 1


class StdinReader:
    """Reads stdin on a daemon thread, so that a blocked read never keeps the process from exiting."""

    def __init__(self, fd: int, loop: asyncio.AbstractEventLoop) -> None:
        self._fd, self._loop = fd, loop
        self._chunks: asyncio.Queue[bytes] = asyncio.Queue(maxsize=16)  # a full queue pauses reading
        self.thread = threading.Thread(target=self._pump, name="stdin", daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        data = b"x"
        while data:
            try:
                data = os.read(self._fd, READ_CHUNK)
            except OSError:
                data = b""
            put = self._chunks.put(data)
            try:
                asyncio.run_coroutine_threadsafe(put, self._loop).result()
            except (RuntimeError, concurrent.futures.CancelledError):
                # The event loop has closed (or cancelled the put on its way out): the session is over and
                # the input goes nowhere. A put never scheduled is closed instead of left to warn.
                put.close()
                return

    async def read(self) -> bytes:
        return await self._chunks.get()


def serve_stdio(protocol: CodeLlamaProtocol, stdin: BinaryIO, stdout: BinaryIO) -> int:
    """Serve one session on the process's standard streams; the exit code."""
    protocol.set_writer(StdoutWriter(stdout))

    async def main() -> None:
        reader = StdinReader(stdin.fileno(), asyncio.get_running_loop())
        await run_session(reader.read, protocol)

    asyncio.run(main())
    return session_exit_code(protocol)


def serve_tcp(protocol: CodeLlamaProtocol, host: str, port: int,
              listening: Callable[[list[tuple[str, int]]], None]) -> int:
    """Listen on host:port (OSError when that fails), serve the first client's session; the exit code.

    `listening(addresses)` is called once bound: a name such as localhost may bind IPv4 and IPv6 both,
    and port 0 binds free ports.
    """
    async def main() -> None:
        done = asyncio.Event()
        busy = False

        async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal busy
            peer = writer.get_extra_info("peername")
            uid = peer_uid(writer.get_extra_info("sockname"), peer)
            if uid is not None and uid != os.geteuid():
                log.warning("refused a client of another user (uid %d, from %s)", uid, peer)
                await refuse(reader, writer, f"this codellama-lsp serves its own user only, not uid {uid}")
                return
            if busy:
                log.warning("refused a second client (%s): this server already has one", peer)
                await refuse(reader, writer, "this codellama-lsp is serving another client; start another "
                                             "server (with its own --tcp port) for this one")
                return
            busy = True
            log.info("client connected from %s", peer)
            protocol.set_writer(writer)  # type: ignore[arg-type]  # StreamWriter.write takes bytes
            try:
                await run_session(lambda: reader.read(READ_CHUNK), protocol)
            finally:
                writer.close()
                done.set()

        server = await asyncio.start_server(connected, host, port)
        listening([sock.getsockname()[:2] for sock in server.sockets])
        async with server:
            await done.wait()

    asyncio.run(main())
    return session_exit_code(protocol)


async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, reason: str) -> None:
    """Answer the first request on this connection with RequestFailed(reason), then close it."""
    framer, bodies = Framer(), []

    async def first_message() -> None:
        nonlocal bodies
        while not bodies and (data := await reader.read(READ_CHUNK)):
            bodies = framer.feed(data)

    try:
        await asyncio.wait_for(first_message(), REFUSAL_WAIT_S)
        msg_id = request_id(bodies[0].decode("utf-8", "replace")) if bodies else None
        if msg_id is not None:
            error = {"jsonrpc": "2.0", "id": msg_id, "error": {"code": REQUEST_FAILED, "message": reason}}
            writer.write(frame(json.dumps(error).encode()))
            await writer.drain()
    except (asyncio.TimeoutError, ConnectionError):
        pass
    finally:
        writer.close()
