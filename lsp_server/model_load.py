"""A model load in the session, as the user sees it: progress reported to the client, a failure told with the
setting to fix, the previous model loaded again when the failed one had already replaced it, and what was loaded
frozen out of the garbage collector's walks. loading.py makes the engine; this is the LSP side around it, for
CodeLlamaServer, whose state (worker, loaded settings, cache) it updates.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
import uuid
from typing import TYPE_CHECKING

from lsprotocol import types

from model.backend import BackendUnavailable

from .completion import forget_tokenizer
from .loading import SettingError, check_model, load_engine, time_left
from .settings import Settings
from .worker import Cancelled

if TYPE_CHECKING:
    from .server import CodeLlamaServer

log = logging.getLogger(__name__)


def model_name(settings: Settings) -> str:
    return settings.model or "the embedded demo model"


async def load(ls: CodeLlamaServer, settings: Settings | None = None) -> None:
    """Load the model of `settings` (default: the current ones). A load that fails keeps the model in
    use: the checks that need no weights run before it is released, and should the load fail after
    that, the previous model is loaded again."""
    settings = settings or ls.settings
    name = model_name(settings)
    token = str(uuid.uuid4())
    gc.unfreeze()  # the model in use may be released now: its reference cycles must be collectable again
    loop = asyncio.get_running_loop()
    progress = await _begin_progress(ls, token, f"Loading {name}")
    last = [0]

    def report(fraction: float, tensor: str) -> None:  # called on the model thread
        if ls.worker.closing.is_set():  # the session is over: stop loading, do not hold the exit
            raise Cancelled("the server is shutting down")
        pct = int(fraction * 100)
        if progress and pct >= last[0] + 5:
            last[0] = pct
            left = time_left(fraction, time.perf_counter() - t0)  # a 7B quantized on a CPU takes minutes
            loop.call_soon_threadsafe(ls.work_done_progress.report, token, types.WorkDoneProgressReport(
                message=f"{tensor} ({left})" if left else tensor, percentage=pct))

    t0 = time.perf_counter()
    try:
        engine = await asyncio.wrap_future(ls.worker.load(lambda: load_engine(settings, report),
                                                          check=lambda: check_model(settings)))
    except Cancelled:  # shutdown or exit: nobody is waiting for this model any more
        return
    except Exception as e:  # a bad path or a broken checkpoint must not take the server down
        if isinstance(e, (ValueError, OSError, BackendUnavailable)):  # the checkpoint's or a setting's fault,
            log.error("model load failed: %s", e)  # which the message names: a traceback says no more
        else:
            log.exception("model load failed")
        if progress:
            _end_progress(ls, token, "failed")
        if (previous := _load_failed(ls, settings, e)) is not None:
            ls.loaded = None
            await load(ls, previous)
        return
    ls.loaded = settings
    ls.cache.clear()
    ls.slow.reset()
    forget_tokenizer()
    # What is loaded now (the model, torch, the LSP stack) lives as long as the model: out of the cyclic
    # collector's way. Each full collection walked it all (100-200 ms), holding the GIL, and with it the event
    # loop, whichever thread's allocations had set it off. One collection first, once per load: the model this
    # one replaced may be garbage in reference cycles, which a freeze would keep for good.
    gc.collect()
    gc.freeze()
    if (why := ls.cannot_infill()) is not None:  # it loads, but cannot fill in the middle: say so once
        ls.worker.error = why
        ls.window_show_message(types.ShowMessageParams(
            types.MessageType.Error, f"codellama: {why}. No completions or docstrings are offered until "
            "`codellama.model` names a base or Instruct Code Llama model."))
    msg = (f"{name} ready on {engine.describe()['device']} in {time.perf_counter() - t0:.1f}s "
           f"({engine.memory_bytes() / 2**20:.0f} MiB)")
    log.info(msg)
    ls.window_log_message(types.LogMessageParams(types.MessageType.Info, f"codellama: {msg}"))
    if progress:
        _end_progress(ls, token, msg)


def _load_failed(ls: CodeLlamaServer, settings: Settings, error: Exception) -> Settings | None:
    """Tell the user why the model of `settings` did not load, and what is used instead. Returns the
    settings to load again: the previous model's, when it was released before the load failed (its
    check passed), unless it is the one that failed."""
    previous, outcome, restore = ls.loaded, "", None
    if previous is not None and ls.worker.engine is not None:  # the check failed: the model in use is kept
        outcome = f" Still using {model_name(previous)}."
    elif previous is not None and previous is not settings:  # it was released before the load failed
        outcome, restore = f" Loading {model_name(previous)} again.", previous
    fix = (f"the `codellama.{error.setting}` setting" if isinstance(error, SettingError) else
           "the `codellama.model` setting (a Code Llama directory with tokenizer.model and config.json or "
           "params.json, or a cached repo id such as codellama/CodeLlama-7b-hf)")
    ls.window_show_message(types.ShowMessageParams(
        types.MessageType.Error,
        f"codellama: could not load {model_name(settings)}: {error}. Fix {fix} and run the "
        f"`codellama.reloadModel` command.{outcome}"))
    return restore


async def _begin_progress(ls: CodeLlamaServer, token: str, title: str) -> bool:
    caps = ls.client_capabilities.window
    if not (caps and caps.work_done_progress):
        return False
    try:
        await ls.work_done_progress.create_async(token)  # given up after protocol.REPLY_S
    except Exception as e:  # the client refused or is silent: load without progress
        log.warning("no progress report: %s", e)
        return False
    ls.work_done_progress.begin(token, types.WorkDoneProgressBegin(title=title, percentage=0,
                                                                   cancellable=False))
    return True


def _end_progress(ls: CodeLlamaServer, token: str, message: str) -> None:
    ls.work_done_progress.end(token, types.WorkDoneProgressEnd(message=message))
    # pygls keeps every token it created, with a future for the client's cancellation, for the whole session:
    # one more per model load. An ended one can be cancelled no more.
    ls.work_done_progress.tokens.pop(token, None)
