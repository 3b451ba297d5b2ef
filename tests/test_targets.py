"""The docstring targets process (lsp_server/targets.py): where no process can be started, targets are found on a
thread instead; and the process ends with the server, however the server ends."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import multiprocessing.resource_tracker
import multiprocessing.spawn
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from lsp_server.docstring import find_target
from lsp_server.targets import Targets
from lsp_server.tools.soak import PROBE
from tests.wire import Wire

SOURCE = "".join(f"def scale_{i}(value, factor):\n    return value * factor + {i}\n\n\n" for i in range(20))


def alive(pid: int) -> bool:
    """Whether process `pid` runs (a zombie, ended but not yet waited for, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_targets_are_found_on_a_thread_where_no_process_starts(caplog: pytest.LogCaptureFixture) -> None:
    """A process that cannot be spawned (here: its interpreter is missing) leaves the docstring action working, on a
    thread of the server, said once in the log."""
    multiprocessing.resource_tracker.ensure_running()  # with this process's interpreter: the tracker is not tested
    executable = multiprocessing.spawn.get_executable()
    multiprocessing.set_executable("/nonexistent/python")
    targets = Targets()
    try:
        with caplog.at_level(logging.WARNING, logger="lsp_server.targets"):
            for line in (0, 4, 8):
                found = asyncio.run(targets.find("file:///t.py", SOURCE, "python", line))
                assert found == find_target(SOURCE, "python", line) and found is not None
        assert targets.call(os.getpid).result(30) == os.getpid()
        assert sum("on a thread" in r.getMessage() for r in caplog.records) == 1
    finally:
        targets.close()
        multiprocessing.set_executable(executable)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_targets_process_ends_with_the_server_killed() -> None:
    """A killed server cannot stop its targets process, which would wait for work forever: it sees the server gone
    and exits."""
    wire = Wire(command=[sys.executable, "-c", PROBE, "--log-level", "WARNING", "serve"])
    child = None
    try:
        wire.initialize({}, load=True)
        wire.wait_ready()
        wire.open("file:///t.py", SOURCE)
        at = {"line": 0, "character": 0}
        assert "error" not in wire.call("textDocument/codeAction", {
            "textDocument": {"uri": "file:///t.py"}, "range": {"start": at, "end": at}, "context": {"diagnostics": []}})
        child = wire.result("workspace/executeCommand", {"command": "codellama.status"})["soak"]["targets_pid"]
        assert alive(child)
        wire.proc.kill()
        wire.proc.wait()
        end = time.monotonic() + 30
        while alive(child) and time.monotonic() < end:
            time.sleep(0.1)
        assert not alive(child)
    finally:
        if child is not None and alive(child):
            os.kill(child, signal.SIGKILL)  # it holds the server's stderr, which the wire's reader waits on
        wire.kill()


def test_closing_a_document_starts_no_process_where_none_runs() -> None:
    """A session without code actions never starts the targets process: a document closed there has nothing in it to
    forget (before, its didClose spawned one, to forget nothing)."""
    before = set(multiprocessing.active_children())
    targets = Targets()
    try:
        targets.forget("file:///closed.py")
        assert set(multiprocessing.active_children()) == before
    finally:
        targets.close()
