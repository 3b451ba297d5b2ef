"""The model's own thread. The event loop hands it jobs and awaits futures; it never waits on the model.

A job belongs to a key (a document URI): submitting a new job for a key cancels the one before it, which
then stops within one token (the engine checks the job's cancel flag between tokens and prefill chunks).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from model.backend import Backend

log = logging.getLogger(__name__)
T = TypeVar("T")


class Cancelled(Exception):
    """The job was superseded or cancelled before it produced a result."""


class CancelFlag:
    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def __call__(self) -> bool:
        return self._event.is_set()


class ModelWorker:
    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self._latest: dict[str, CancelFlag] = {}
        self._lock = threading.Lock()  # _latest is touched by the event loop and the model thread
        self.engine: Backend | None = None
        self.state = "idle"  # idle | loading | ready | failed
        self.error: str | None = None
        # Set by shutdown: a load under way gives up at its next progress report (model_load.py)
        # rather than hold the process's exit until the whole model has loaded.
        self.closing = threading.Event()

    @property
    def ready(self) -> bool:
        return self.state == "ready" and self.engine is not None

    def load(self, load: Callable[[], Backend], check: Callable[[], object] | None = None) -> Future[Backend]:
        """Replace the engine by `load()`, run on the model thread after the jobs already queued.

        `check()` runs first, while the current engine is still held: when it raises, that engine stays in
        use (with `error` saying why the new one was refused). Only then is it dropped, so that the new
        model does not need room for both. Raises Cancelled once the worker is shut down (a session that ended
        before its model began to load: an editor that connected and went away at once).
        """
        if self.closing.is_set():
            raise Cancelled("the server is shutting down")
        self.state, self.error = "loading", None
        with self._lock:
            for flag in self._latest.values():
                flag.set()

        def run() -> Backend:
            try:
                if check is not None:
                    check()
                self.engine = None  # drop the old model before the new one takes memory
                engine = load()
            except Exception as e:
                self.state, self.error = ("ready" if self.engine is not None else "failed"), str(e)
                raise
            self.engine, self.state = engine, "ready"
            return engine

        return self._executor.submit(run)

    def submit(self, key: str, job: Callable[[Backend, CancelFlag], T]) -> tuple[Future[T], CancelFlag]:
        """Queue `job(engine, cancel)`; an older job with the same key is cancelled."""
        flag = CancelFlag()
        with self._lock:
            if (older := self._latest.get(key)) is not None:
                older.set()
            self._latest[key] = flag

        def run() -> T:
            try:
                if flag():
                    raise Cancelled(key)
                if self.engine is None:
                    raise RuntimeError(f"model not loaded ({self.state}{': ' + self.error if self.error else ''})")
                return job(self.engine, flag)
            finally:
                with self._lock:
                    if self._latest.get(key) is flag:
                        del self._latest[key]

        return self._executor.submit(run), flag

    def cancel(self, key: str) -> None:
        """Cancel the job of `key`, queued or running, if there is one."""
        with self._lock:
            if (job := self._latest.get(key)) is not None:
                job.set()

    async def run(self, key: str, job: Callable[[Backend, CancelFlag], T]) -> T:
        """Submit and await; cancelling the awaiting task (e.g. $/cancelRequest) cancels the job."""
        future, flag = self.submit(key, job)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            flag.set()
            raise

    def shutdown(self) -> None:
        self.closing.set()
        for flag in list(self._latest.values()):
            flag.set()
        self._executor.shutdown(wait=False, cancel_futures=True)
