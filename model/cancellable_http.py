"""Cancellable HTTP: an httpx request that another thread can abandon the moment it is no longer wanted.

A newer keystroke cancels the completion under way, but a blocking httpx call cannot be interrupted: a server
that holds back its answer's headers (busy, or behind a proxy's queue) or its next token would hold the
calling thread, every request queued behind it and the process's exit until the timeout. So the request is
sent on a daemon thread that the caller stops waiting for once cancelled (send_cancellable), and the
connection under a wait is shut down, which wakes the blocked read and tells the server the request is gone
(StreamWatcher while a response streams; before its headers come, through the sockets name_sockets makes
known).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

import httpcore
import httpx

# How often a wait checks whether it was cancelled or is out of time.
WATCH_S = 0.02
T = TypeVar("T")


def in_thread(call: Callable[[], T], name: str) -> Future[T]:
    """`call()` run on a daemon thread (which never holds the process's exit), as a future."""
    answer: Future[T] = Future()

    def run() -> None:
        try:
            answer.set_result(call())
        except BaseException as e:  # raised in the thread that waits for it, if one still does
            answer.set_exception(e)

    threading.Thread(target=run, name=name, daemon=True).start()
    return answer


def wait_cancellable(answer: Future[T], cancel: Callable[[], bool]) -> T | None:
    """`answer`'s result (or its exception raised); None once `cancel()` turns true first, checked every
    WATCH_S."""
    while True:
        try:
            return answer.result(WATCH_S)
        except FutureTimeout:
            if cancel():
                return None


def send_cancellable(client: httpx.Client, request: httpx.Request, cancel: Callable[[], bool], *,
                     thread_name: str) -> httpx.Response | None:
    """`client`'s streamed response to `request`; None once `cancel()` turns true before its headers came.

    A server that holds the headers back (busy, or a proxy queueing requests) would hold the calling thread
    for up to the timeout: every request queued behind one the user no longer wants, and the process's exit,
    would wait as long. So the request is sent on a daemon thread named `thread_name`, and once it is
    cancelled its connection is shut down (where the client's sockets are named, see name_sockets), which
    ends that thread's wait and makes the server abort the request (vLLM does when its connection closes),
    rather than leave both to the timeout. A response that comes all the same is closed unread, and a failure
    then is nobody's (the next request meets the outage itself)."""
    sending = _Sending()

    def send() -> httpx.Response:
        _sent_here.request = sending  # this thread sends this one request: its writes name the socket
        return client.send(request, stream=True)

    answer = in_thread(send, thread_name)
    response = wait_cancellable(answer, cancel)
    if response is None:
        sending.abandon()
        answer.add_done_callback(_close_unread)
    return response


def _close_unread(answer: Future[httpx.Response]) -> None:
    """Close the response an abandoned request got all the same (a failure then is nobody's to hear)."""
    if answer.exception() is None:
        answer.result().close()


class _Sending:
    """The connection a request is sent on, shut down once the request is abandoned: whether it is abandoned
    before its connection is known (still connecting) or after."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self._abandoned = False

    def uses(self, sock: socket.socket | None) -> None:
        """The request is being written on `sock`: shut it down at once if the request is abandoned already."""
        with self._lock:
            self._socket = sock
            if self._abandoned:
                _shut_down(sock)

    def abandon(self) -> None:
        """Shut the request's connection down now, or as soon as it is known (uses)."""
        with self._lock:
            self._abandoned = True
            _shut_down(self._socket)


def _shut_down(sock: socket.socket | None) -> None:
    """Shut `sock` down both ways, which wakes a read blocked on it in another thread (closing does not)."""
    if sock is None:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:  # already closed
        pass


class _SentHere(threading.local):
    """Per thread: the request it sends (send_cancellable), if any. A connection's writes happen on the sending
    thread, so _NamedStream.write finds here whom to tell its socket."""

    request: _Sending | None = None


_sent_here = _SentHere()


class _NamedStream(httpcore.NetworkStream):
    """httpcore's connection stream, telling the request being sent on it (_sent_here) which socket it is:
    a connection from the pool, reused, is not connected again, but every request writes on it."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if (sending := _sent_here.request) is not None:
            sending.uses(self._stream.get_extra_info("socket"))
        self._stream.write(buffer, timeout)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, timeout)

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return _NamedStream(self._stream.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _NamingBackend(httpcore.NetworkBackend):
    """httpcore's network backend, its streams wrapped in _NamedStream."""

    def __init__(self, backend: httpcore.NetworkBackend) -> None:
        self._backend = backend

    def connect_tcp(self, *args: Any, **kwargs: Any) -> httpcore.NetworkStream:
        return _NamedStream(self._backend.connect_tcp(*args, **kwargs))

    def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.NetworkStream:
        return _NamedStream(self._backend.connect_unix_socket(*args, **kwargs))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


def name_sockets(client: httpx.Client) -> None:
    """Make `client`'s connections name their socket to a request sent by send_cancellable, so that it can be
    shut down when the request is cancelled before its answer's headers come. httpx has no public way to give
    httpcore a network backend: this reaches into its transports' pools, and leaves any it does not
    recognise as they are (a cancelled request then keeps its connection until the timeout, as before)."""
    for transport in (getattr(client, "_transport", None), *getattr(client, "_mounts", {}).values()):
        pool = getattr(transport, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if isinstance(backend, httpcore.NetworkBackend) and not isinstance(backend, _NamingBackend):
            pool._network_backend = _NamingBackend(backend)  # type: ignore[union-attr]


class StreamWatcher:
    """Shuts a streamed response's connection down once `cancel()` turns true or `deadline` passes, which
    wakes a read blocked on it; checked every WATCH_S, on a daemon thread named `thread_name`, until the
    `with` block it guards is left. `interrupted` says whether it shut the connection: a read that failed
    then was stopped on purpose, not by the server."""

    def __init__(self, response: httpx.Response, cancel: Callable[[], bool], deadline: float | None, *,
                 thread_name: str) -> None:
        stream = response.extensions.get("network_stream")
        self._socket: socket.socket | None = stream.get_extra_info("socket") if stream is not None else None
        self._cancel, self._deadline = cancel, deadline
        self._thread_name = thread_name
        self._left = threading.Event()
        # Held while shutting the socket down and while leaving: once the block is left, the connection
        # may go back to httpx's pool (a stream read to its end), and must never be shut from here then.
        self._lock = threading.Lock()
        self.interrupted = False

    def __enter__(self) -> StreamWatcher:
        if self._socket is not None:
            threading.Thread(target=self._watch, name=self._thread_name, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._left.set()

    def _watch(self) -> None:
        while not self._left.wait(WATCH_S):
            if self._cancel() or (self._deadline is not None and time.monotonic() >= self._deadline):
                with self._lock:
                    if self._left.is_set():
                        return
                    self.interrupted = True
                    _shut_down(self._socket)
                return
