"""A model too slow for completions as you type is told once (slowness.py): the rule, then the real server."""

from __future__ import annotations

import time
from pathlib import Path

from lsp_server.slowness import MISSES_TO_TELL, SlowNotice, slow_message
from model.backend import Timings
from tests.wire import Wire, slow_prefill_server


def cut_reading(prompt: int = 1500, read: int = 512, ms: float = 40_000, cached: int = 0) -> Timings:
    """A miss cut while the prompt was read: `read` of its tokens in `ms`."""
    return Timings(prompt_tokens=prompt, cached_tokens=cached, prefilled_tokens=read, prefill_ms=ms, total_ms=ms)


def test_the_message_says_how_slow_and_what_to_do() -> None:
    message = slow_message([cut_reading(1600, 480), cut_reading(1600, 480, cached=480),
                            cut_reading(1600, 480, cached=960)], 2000)
    assert "the last 3 completions as you type ran out of their 2000 ms time budget" in message
    # 1,440 tokens read in 120 s: 12 a second, so the whole prompt takes over two minutes
    assert "about 12 prompt tokens a second" in message and "1,600-token prompt takes ~2 min" in message
    assert "is kept for the next request" in message  # true: the engine keeps what it read
    assert "not timed: it waits for the model" in message
    for fix in ("a GPU", "`quant: nf4`", "`prefixTokens`", "`contextLength`", "a larger `timeBudgetMs`", "demo model"):
        assert fix in message, fix


def test_the_message_offers_only_what_the_model_is_not() -> None:
    message = slow_message([cut_reading()] * 3, 2000, gpu=True, quantized=True, demo=True)
    assert "GPU" not in message and "nf4" not in message and "demo model" not in message
    assert message.endswith("smaller `prefixTokens`/`suffixTokens` or `contextLength`, or a larger `timeBudgetMs`.")


def test_a_prompt_read_in_time_but_nothing_written_says_how_long_the_reading_took() -> None:
    read = Timings(prompt_tokens=900, cached_tokens=100, prefilled_tokens=800, prefill_ms=1900, total_ms=2100,
                   new_tokens=1)
    message = slow_message([read] * 3, 2000)
    assert "reading the 900-token prompt took ~1.9 s (100 tokens of it already read before)" in message
    assert "is kept" not in message


def test_a_remote_server_is_not_told_to_buy_a_gpu() -> None:
    message = slow_message([Timings(prompt_tokens=900, prefill_ms=2000)] * 3, 2000, remote=True)
    assert "before the model server had written anything" in message
    assert "GPU" not in message and "a less busy model server" in message


def test_told_once_per_streak_and_popped_up_once_per_model_and_budget() -> None:
    shown: list[str] = []
    noted: list[str] = []
    notice = SlowNotice(shown.append, noted.append)
    for _ in range(MISSES_TO_TELL - 1):
        notice.missed(cut_reading(), 2000)
    assert not shown and notice.told is None
    notice.missed(cut_reading(), 2000)
    assert len(shown) == 1 and notice.told == shown[0]
    for _ in range(10):  # every keystroke misses: still one message
        notice.missed(cut_reading(), 2000)
    assert len(shown) == 1 and len(notice.misses) == MISSES_TO_TELL
    notice.answered()
    assert notice.told is None and noted == ["codellama: completions as you type come in time again"]
    notice.answered()
    assert len(noted) == 1  # said once
    for _ in range(MISSES_TO_TELL):  # a second streak: told again, to the log and the status displays only
        notice.missed(cut_reading(), 2000)
    assert len(shown) == 1 and notice.told is not None and noted[1:] == [notice.told]
    notice.reset()  # another model or time budget
    for _ in range(MISSES_TO_TELL):
        notice.missed(cut_reading(), 2000)
    assert len(shown) == 2 and len(noted) == 2


def test_each_change_of_what_was_told_is_announced_once() -> None:
    """`changed` follows `told` (what codellama.status's too_slow says): set at the warning, None when a completion
    comes in time or the state is reset (a model load, a new time budget), and never called for what is no change."""
    changes: list[str | None] = []
    notice = SlowNotice(lambda m: None, lambda m: None, changes.append)
    for _ in range(MISSES_TO_TELL + 5):
        notice.missed(cut_reading(), 2000)
    assert changes == [notice.told] and notice.told is not None
    notice.answered()
    notice.answered()
    assert changes[1:] == [None]
    for _ in range(MISSES_TO_TELL - 1):
        notice.missed(cut_reading(), 2000)
    notice.reset()  # misses, nothing told yet: nothing changes for an editor
    assert len(changes) == 2
    for _ in range(MISSES_TO_TELL):
        notice.missed(cut_reading(), 2000)
    notice.reset()
    assert len(changes) == 4 and changes[2] is not None and changes[3] is None


def test_an_answer_in_time_breaks_the_streak() -> None:
    shown: list[str] = []
    notice = SlowNotice(shown.append, lambda m: None)
    for _ in range(3):
        for _ in range(MISSES_TO_TELL - 1):
            notice.missed(cut_reading(), 2000)
        notice.answered()
    notice.reset()
    assert not shown


# -- the real server ----------------------------------------------------------------------------------------
BUDGET_MS = 800
TEXT = "".join(f"def f{i}(x):\n    return x + {i}\n\n" for i in range(12)) + "def main():\n    "
URI = "file:///tmp/slowness.py"


def warnings(wire: Wire) -> list[str]:
    return [n["params"]["message"] for n in wire.notifications if n["method"] == "window/showMessage"
            and n["params"]["type"] == 2 and "time budget" in n["params"]["message"]]


def logged_back(wire: Wire) -> int:
    return sum(n["method"] == "window/logMessage" and "come in time again" in n["params"]["message"]
               for n in wire.notifications)


def announced(wire: Wire) -> list[str | None]:
    """The server's $/codellama/tooSlow notifications, which editors' status displays follow."""
    return [n["params"]["too_slow"] for n in wire.notifications if n["method"] == "$/codellama/tooSlow"]


def too_slow(wire: Wire) -> str | None:
    return wire.result("workspace/executeCommand", {"command": "codellama.status"})["too_slow"]


def automatic(wire: Wire) -> list[dict]:
    reply = wire.inline(URI, TEXT.count("\n"), 4)
    assert "error" not in reply, reply
    return reply["result"]["items"]


def test_a_model_too_slow_for_the_time_budget_is_told_once(tmp_path: Path) -> None:
    arm = tmp_path / "slow"
    # Prompts are read 8 tokens per forward pass; while armed, each pass takes 1.5 s, longer than the budget
    wire = Wire(command=[*slow_prefill_server(arm, 1.5), "--log-level", "DEBUG", "serve"])
    try:
        wire.initialize(load=True, options={"timeBudgetMs": BUDGET_MS})
        wire.wait_ready()
        wire.open(URI, TEXT)
        arm.write_text("")
        for _ in range(MISSES_TO_TELL - 2):
            assert automatic(wire) == []

        # A request superseded by a newer one (the next keystroke) does not count: two misses so far, not three.
        first = wire.request("textDocument/inlineCompletion", {
            "textDocument": {"uri": URI}, "position": {"line": TEXT.count("\n"), "character": 4},
            "context": {"triggerKind": 2}})
        time.sleep(0.3)  # the first is in its prefill pass now
        assert automatic(wire) == []
        assert wire.response(first)["result"]["items"] == []
        assert warnings(wire) == [] and too_slow(wire) is None, (wire.notifications, wire.log()[-4000:])
        assert announced(wire) == []

        assert automatic(wire) == []
        assert len(warnings(wire)) == 1, (wire.notifications, wire.log()[-4000:])
        (told,) = warnings(wire)
        assert f"the last {MISSES_TO_TELL} completions as you type ran out of their {BUDGET_MS} ms" in told
        assert "prompt tokens a second" in told and "demo model" not in told  # the demo model is in use
        assert too_slow(wire) == told and announced(wire) == [told]
        assert wire.logged("ran out of their", timeout=5)

        for _ in range(3):  # every keystroke misses: still one message
            assert automatic(wire) == []
        assert len(warnings(wire)) == 1 and announced(wire) == [told]

        arm.unlink()  # fast again: the rest of the prompt is read and the model answers in time
        for _ in range(10):
            if automatic(wire):
                break
        assert logged_back(wire) == 1 and too_slow(wire) is None, (wire.notifications, wire.log()[-4000:])
        assert announced(wire) == [told, None]  # the editors' status displays return to normal

        # Slow again, on a prompt read afresh (an edit at the top of the file): told again, in the log and the status
        # displays, but with no second popup for the same model and budget.
        arm.write_text("")
        wire.notify("textDocument/didChange", {"textDocument": {"uri": URI, "version": 2},
                                               "contentChanges": [{"text": "import os\n" + TEXT}]})
        for _ in range(MISSES_TO_TELL):
            reply = wire.inline(URI, TEXT.count("\n") + 1, 4)
            assert reply["result"]["items"] == [], reply
        assert len(warnings(wire)) == 1, (wire.notifications, wire.log()[-4000:])
        again = too_slow(wire)
        assert again is not None and again.startswith(f"codellama: the last {MISSES_TO_TELL} completions")
        assert announced(wire) == [told, None, again]
        assert any(n["method"] == "window/logMessage" and n["params"]["message"] == again for n in wire.notifications)
        # A new time budget is another story: the warning is withdrawn, and the editors are told.
        wire.notify("workspace/didChangeConfiguration", {"settings": {"codellama": {"timeBudgetMs": BUDGET_MS * 2}}})
        assert too_slow(wire) is None and announced(wire)[3:] == [None], wire.notifications
    finally:
        wire.kill()


LONG_TEXT = "".join(f"def handler_{i}(request, value):\n    return request.reply(value * {i} + {i * 7})\n\n"
                    for i in range(80)) + "def main():\n    "
LONG_URI = "file:///tmp/long.py"


def test_a_newer_request_and_a_cancel_wait_a_fraction_of_a_second_for_a_slow_model_reading_a_long_prompt(
        tmp_path: Path) -> None:
    # A model that reads 50 prompt tokens a second (a 7B reads 8-20 on a laptop's CPU): a 512-token prefill
    # chunk held the model thread for 10 s, and every request behind it waited. Chunks are sized to ~0.2 s now.
    arm = tmp_path / "slow"
    wire = Wire(command=[*slow_prefill_server(arm, 0.02, chunk=None, per_token=True), "serve"])
    line = LONG_TEXT.count("\n")

    def invoked(uri: str) -> int:  # asked for (Alt+\): no time budget, so only a newer request or a cancel ends it
        return wire.request("textDocument/inlineCompletion", {
            "textDocument": {"uri": uri}, "position": {"line": line, "character": 4}, "context": {"triggerKind": 1}})

    try:
        wire.initialize(load=True, options={"timeBudgetMs": BUDGET_MS})
        wire.wait_ready()
        wire.open(LONG_URI, LONG_TEXT)
        arm.write_text("")
        older = invoked(LONG_URI)
        time.sleep(1.0)  # reading its prompt now
        sent = time.monotonic()
        newer = wire.inline(LONG_URI, line, 4)  # the next keystroke: supersedes the older request, for ~0.8 s
        waited = time.monotonic() - sent
        assert wire.response(older, timeout=1)["result"]["items"] == [] and newer["result"]["items"] == []
        assert waited < 2.5, f"the newer request waited {waited:.1f} s"

        cancelled = invoked(LONG_URI)
        time.sleep(1.0)
        wire.notify("$/cancelRequest", {"id": cancelled})
        sent = time.monotonic()
        wire.open(URI, TEXT)
        other = wire.inline(URI, TEXT.count("\n"), 4)  # another document's request, for its 0.8 s time budget
        waited = time.monotonic() - sent
        assert "error" in wire.response(cancelled, timeout=1) and other["result"]["items"] == []
        assert waited < 2.5, f"the next request waited {waited:.1f} s"
    finally:
        wire.kill()
