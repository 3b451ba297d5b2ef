"""Where docstring targets are found: a child process of its own, so that a parse never holds the server's GIL.

Finding a target parses the whole file, from scratch while it does not parse, and tree-sitter holds the GIL for all
of a parse: on a thread of the server, typing in a broken 5 MB Python file held the event loop 400-520 ms per code
action (a cursor move), when no didChange, completion or cancellation was read. In a process of its own the parse
holds only that process's GIL. The parsers' caches (recent texts, trees) live there, and with them the hashes of each
document's texts, by which a closed document's parses are forgotten (`forget`).

The child is started (spawned: the server has threads, torch and maybe a model, none of which a fork may copy) at
the first request; one that dies is replaced at the next, the request it was answering answered with no target. Where
no process can be started, targets are found on a thread of the server instead, as before.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import CancelledError, Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeoutError  # not the builtin before Python 3.11
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from .docstring import DocTarget, find_target, forget_parses, python_target, ts_util

log = logging.getLogger(__name__)

T = TypeVar("T")

# -- in the child (or on the thread, where no child can be had) ----------------------------------------------------
# The hashes of the texts of each open document (by URI) targets were found in: what the parsers' caches hold of it.
# A few more than the parsers keep of one text's versions (4).
_PARSED: dict[str, deque[int]] = {}


def find_here(uri: str | None, text: str, language_id: str, line: int, end_line: int | None) -> DocTarget | None:
    """find_target, noting the text's hash under `uri` (None: a file not open, which no close will forget)."""
    parsed = _PARSED.setdefault(uri, deque(maxlen=8)) if uri is not None else None
    return find_target(text, language_id, line, end_line, parsed=parsed)


def forget_here(uri: str) -> None:
    """Forget what the parsers hold of the document `uri`: the trees of a 4 MB file held ~200 MB after it closed."""
    if (hashes := _PARSED.pop(uri, None)) is not None:
        forget_parses(set(hashes))


def cache_sizes() -> dict[str, int]:
    """How much the parsers hold, where they run: for the soak tool's probe and the tests."""
    try:
        with open("/proc/self/status") as f:  # Linux
            rss_kib = next((int(line.split()[1]) for line in f if line.startswith("VmRSS:")), 0)
    except OSError:
        rss_kib = 0
    return {
        "pid": os.getpid(), "rss_kib": rss_kib,
        "python_layouts": len(python_target._RECENT),
        "python_group_trees": python_target._group_tree.cache_info().currsize,
        "ts_trees": sum(len(kept) for kept in ts_util._TREES.values()),
    }


def _start_child(server_pid: int) -> None:
    """The child's first step. Its stdout is the server's, which may be the LSP channel: nothing may reach it. And it
    ends with the server: a killed server cannot stop it, and it would wait for work forever."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    threading.Thread(target=_exit_with, args=(server_pid,), name="exit-with-server", daemon=True).start()


def _exit_with(server_pid: int) -> None:
    while os.getppid() == server_pid:
        time.sleep(1)
    os._exit(0)


# -- in the server -------------------------------------------------------------------------------------------
class Targets:
    """The process (or, failing that, the thread) that docstring targets are found in, one request at a time."""

    def __init__(self) -> None:
        self._pool: Executor | None = None  # started at the first request
        self._ping: Future[int] | None = None  # the child's first job: one that never answers it could not start
        self._on_thread = False  # no process could be started: a thread instead, from then on
        self._closed = False

    async def find(self, uri: str | None, text: str, language_id: str, line: int,
                   end_line: int | None = None) -> DocTarget | None:
        """The target at `line` (to `end_line`) of `text`, as find_target finds it; None also when the child died
        (or ran out of memory) finding it: the next request starts a new one."""
        pool, future = self._submit(find_here, uri, text, language_id, line, end_line)
        try:
            return await asyncio.wrap_future(future)
        except BrokenProcessPool:
            self._died(pool)
            if self._on_thread:  # the child could not even start: found on the thread instead, as asked
                return await self.find(uri, text, language_id, line, end_line)
            return None
        except MemoryError:
            # The child's caches may be what filled memory: a fresh one starts with none. (On the thread, what it
            # holds is the server's; it is forgotten with the documents.)
            log.warning("out of memory finding a docstring target in %s", uri)
            self._discard(pool)
            return None

    def forget(self, uri: str) -> None:
        """Have what the parsers hold of the document `uri` (closed) forgotten, after the requests before. Where no
        child runs, none holds anything: none is started for it (a session without code actions never has one)."""
        if not self._closed and self._pool is not None:
            self._submit(forget_here, uri)

    def call(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        """fn(*args) where targets are found (a module's function, when that is a process): for probes and tests."""
        return self._submit(fn, *args)[1]

    def close(self) -> None:
        """End the child without waiting for it (a parse of megabytes may be under way); requests pending are
        cancelled. Nothing is submitted after."""
        self._closed = True
        if self._pool is not None:
            self._discard(self._pool, cancel=True)

    def _submit(self, fn: Callable[..., T], *args: Any) -> tuple[Executor, Future[T]]:
        if self._closed:
            raise RuntimeError("the session is over: no more docstring targets")
        while True:  # at most: a pool whose child died, a new one that cannot start, the thread
            pool = self._pool = self._pool or self._start()
            try:
                return pool, pool.submit(fn, *args)
            except BrokenProcessPool:  # its child died since the last request, noticed first here
                self._died(pool)

    def _start(self) -> Executor:
        if not self._on_thread:
            pool = None
            try:
                pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                           initializer=_start_child, initargs=(os.getpid(),))
                self._ping = pool.submit(os.getpid)  # spawns the child
                return pool
            except (OSError, ImportError) as e:  # no semaphores (a sandbox without /dev/shm), no processes left
                if pool is not None:
                    pool.shutdown(wait=False, cancel_futures=True)
                self._use_thread(e)
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix="targets")

    def _died(self, pool: Executor) -> None:
        """The child of `pool` died: the next request starts another, or, where it died before it answered its
        first job, which runs nothing of ours (its interpreter would not run, or not import the parsers), the
        thread instead. Said once for all the requests it failed."""
        if pool is not self._pool:
            return
        try:
            never_started = self._ping is not None and self._ping.exception(timeout=5) is not None
        except (CancelledError, FutureTimeoutError):
            never_started = False
        self._discard(pool)
        if never_started:
            self._use_thread("its process exited as it started")
        else:
            log.warning("the process finding docstring targets died: a new one starts at the next request")

    def _use_thread(self, why: object) -> None:
        if not self._on_thread:
            log.warning("docstring targets are found on a thread of the server, not a process of their own (%s): "
                        "a big file's parse may hold up other requests", why)
        self._on_thread = True

    def _discard(self, pool: Executor, *, cancel: bool = False) -> None:
        """Stop using `pool` (if still in use) and end its child, at whatever it is doing: the requests it holds
        then fail as broken, answering no target (or, with `cancel`, are cancelled)."""
        if pool is not self._pool:  # already replaced
            return
        self._pool = self._ping = None
        children = list((getattr(pool, "_processes", None) or {}).values())  # taken before shutdown clears them
        pool.shutdown(wait=False, cancel_futures=cancel)
        for child in children:
            child.terminate()
