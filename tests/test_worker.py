"""The model thread: jobs never block the event loop; a newer job for a key cancels the older one."""

from __future__ import annotations

import asyncio
import threading

import pytest

from lsp_server.worker import CancelFlag, Cancelled, ModelWorker


class FakeEngine:
    """Stands in for model.engine.Engine: the worker only hands it to jobs."""


def loaded_worker() -> ModelWorker:
    worker = ModelWorker()
    worker.load(FakeEngine).result(timeout=5)  # type: ignore[arg-type]
    assert worker.ready
    return worker


def generating(started: threading.Event, steps: list[int]):
    """A job that 'decodes' until cancelled, checking its flag between tokens as the engine does."""
    def job(engine: FakeEngine, cancel: CancelFlag) -> str:
        started.set()
        for i in range(2000):
            if cancel():
                steps.append(i)
                return "cancelled"
            threading.Event().wait(0.005)
        return "finished"
    return job


async def test_event_loop_runs_while_a_job_generates() -> None:
    worker = loaded_worker()
    started, steps = threading.Event(), []
    task = asyncio.ensure_future(worker.run("a.py", generating(started, steps)))
    while not started.is_set():
        await asyncio.sleep(0.001)
    await asyncio.sleep(0.02)  # the loop keeps turning while the job generates on the model thread
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    worker.shutdown()


async def test_cancelling_the_awaiting_task_stops_its_job() -> None:
    # $/cancelRequest cancels the handler's task: the job on the model thread must stop at its next token,
    # not run to its end holding the thread that every other document's request waits for.
    worker = loaded_worker()
    started, steps = threading.Event(), []
    task = asyncio.ensure_future(worker.run("a.py", generating(started, steps)))
    while not started.is_set():
        await asyncio.sleep(0.001)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # One model thread: a job for another document runs once the cancelled one has returned.
    assert await worker.run("b.py", lambda engine, cancel: list(steps)), "the cancelled job ran to its end"
    worker.shutdown()


async def test_newer_job_for_same_document_cancels_older() -> None:
    worker = loaded_worker()
    started, steps = threading.Event(), []
    older = asyncio.ensure_future(worker.run("a.py", generating(started, steps)))
    while not started.is_set():
        await asyncio.sleep(0.001)
    newer = await worker.run("a.py", lambda engine, cancel: "newer")
    assert newer == "newer"
    assert await older == "cancelled" and steps  # stopped at a token boundary
    worker.shutdown()


async def test_other_documents_do_not_cancel_each_other() -> None:
    worker = loaded_worker()
    first = worker.submit("a.py", lambda engine, cancel: cancel())[0]
    second = worker.submit("b.py", lambda engine, cancel: cancel())[0]
    assert first.result(timeout=5) is False and second.result(timeout=5) is False
    worker.shutdown()


async def test_superseded_queued_job_never_runs() -> None:
    worker = loaded_worker()
    gate = threading.Event()
    ran: list[str] = []
    blocker = worker.submit("x.py", lambda engine, cancel: gate.wait(5))[0]
    queued = worker.submit("a.py", lambda engine, cancel: ran.append("old"))[0]
    latest = worker.submit("a.py", lambda engine, cancel: ran.append("new"))[0]
    gate.set()
    blocker.result(timeout=5)
    with pytest.raises(Cancelled):
        queued.result(timeout=5)
    latest.result(timeout=5)
    assert ran == ["new"]
    worker.shutdown()


def test_failed_load_reports_error_and_jobs_fail_cleanly() -> None:
    worker = ModelWorker()

    def broken() -> FakeEngine:
        raise FileNotFoundError("no tokenizer.model in /nowhere")

    with pytest.raises(FileNotFoundError):
        worker.load(broken).result(timeout=5)  # type: ignore[arg-type]
    assert worker.state == "failed" and "tokenizer.model" in (worker.error or "")
    with pytest.raises(RuntimeError, match="model not loaded"):
        worker.submit("a.py", lambda engine, cancel: None)[0].result(timeout=5)
    worker.shutdown()


def test_a_load_refused_by_its_check_keeps_the_engine_in_use() -> None:
    worker = loaded_worker()
    engine = worker.engine

    def refuse() -> None:
        raise ValueError("config.json: num_attention_heads is missing")

    with pytest.raises(ValueError):
        worker.load(FakeEngine, check=refuse).result(timeout=5)  # type: ignore[arg-type]
    assert worker.ready and worker.engine is engine
    assert worker.error == "config.json: num_attention_heads is missing"
    assert worker.submit("a.py", lambda e, cancel: e)[0].result(timeout=5) is engine


def test_a_load_that_fails_after_its_check_leaves_no_engine() -> None:
    worker = loaded_worker()

    def broken() -> FakeEngine:
        raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError):
        worker.load(broken, check=lambda: None).result(timeout=5)  # type: ignore[arg-type]
    assert worker.state == "failed" and worker.engine is None  # the server then loads the previous model again


def test_a_load_asked_for_after_shutdown_is_cancelled_not_a_failure() -> None:
    # An editor that connects and leaves at once: the exit shuts the worker down before the load task runs, and
    # the executor's "cannot schedule new futures after shutdown" was logged as a failed load, with its traceback.
    worker = ModelWorker()
    worker.shutdown()
    with pytest.raises(Cancelled):
        worker.load(lambda: None)  # type: ignore[arg-type, return-value]
