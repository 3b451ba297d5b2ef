"""The stdio reader on its own: chunks arrive in order, and input after the event loop has closed (a client
writing or closing stdin while the server exits) is dropped quietly."""

from __future__ import annotations

import asyncio
import gc
import os
import threading
import warnings

from lsp_server.transport import StdinReader


def test_chunks_arrive_in_order_then_end_of_input() -> None:
    read_fd, write_fd = os.pipe()

    async def main() -> list[bytes]:
        reader = StdinReader(read_fd, asyncio.get_running_loop())
        for part in (b"Content-", b"Length: 2\r\n\r\n{}"):
            os.write(write_fd, part)
            await asyncio.sleep(0.05)  # one read each
        os.close(write_fd)
        chunks = []
        while chunk := await reader.read():
            chunks.append(chunk)
        return chunks

    assert b"".join(asyncio.run(main())) == b"Content-Length: 2\r\n\r\n{}"
    os.close(read_fd)


def test_input_after_the_loop_has_closed_is_dropped_without_a_warning() -> None:
    read_fd, write_fd = os.pipe()
    loop = asyncio.new_event_loop()
    reader = StdinReader(read_fd, loop)
    loop.close()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        os.write(write_fd, b"late")
        reader.thread.join(timeout=10)
        gc.collect()  # a coroutine left unawaited warns when it is collected
    assert not reader.thread.is_alive(), "the reading thread did not end"
    assert [str(w.message) for w in caught] == []
    os.close(write_fd)
    os.close(read_fd)


def test_a_put_left_waiting_when_the_loop_ends_ends_the_thread_quietly(monkeypatch) -> None:
    read_fd, write_fd = os.pipe()
    failures: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: failures.append(args.exc_value))

    async def main() -> StdinReader:
        reader = StdinReader(read_fd, asyncio.get_running_loop())
        for _ in range(18):  # more chunks than the queue holds, none of them read
            os.write(write_fd, b"x")
            await asyncio.sleep(0.02)
        return reader

    reader = asyncio.run(main())  # cancels the put still waiting for room
    reader.thread.join(timeout=10)
    assert not reader.thread.is_alive(), "the reading thread did not end"
    assert failures == []
    os.close(write_fd)
    os.close(read_fd)
