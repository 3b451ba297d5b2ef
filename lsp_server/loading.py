"""The configured backend, from settings to a warm engine: checked before the model in use is released,
then loaded (a local engine) or connected to (a vLLM server).

torch and httpx are imported inside the functions, by those who use them: the server answers its first
messages before either is loaded.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from model.backend import Backend

from .settings import Settings

if TYPE_CHECKING:
    from model.vllm_backend import VllmBackend


class SettingError(ValueError):
    """A load refused for one setting, not for the checkpoint: `setting` is its camelCase name, so that the
    user is told which one to fix."""

    def __init__(self, setting: str, reason: str) -> None:
        super().__init__(reason)
        self.setting = setting


def load_engine(settings: Settings, progress: Callable[[float, str], None] | None = None) -> Backend:
    """The configured backend: a warm local engine, or the vLLM server at `remote_url` (see connect_vllm).

    Local: the model (None: the embedded demo) is loaded and warmed up. progress(fraction, message) sees the
    tensors load (to 90%), then the warm-up: the first forward pass and, on CUDA, the capture of the decode
    graphs (the rest), so that no request pays for either.
    """
    if settings.backend == "vllm":
        return connect_vllm(settings, progress)

    from model.engine import Engine
    from model.loader import NotEnoughMemory, load_model, resolve_device, resolve_kernel, resolve_quant
    from model.ngram_cache import resolve_weights
    from model.quant import use_4bit_kernel

    device = resolve_device(settings.device)
    quant = resolve_quant(settings.quant, device)
    ngram_cache = resolve_weights(settings.ngram_cache, model_dir(settings))
    loading = (lambda f, m: progress(0.9 * f, m)) if progress else None
    warming = (lambda f, m: progress(0.9 + 0.1 * f, m)) if progress else None
    try:
        model, tokenizer = load_model(settings.model, device=device, dtype=settings.dtype, quant=quant,
                                      progress=loading, context_length=settings.context_length)
    except NotEnoughMemory as e:  # the editor's message names the setting to change
        raise SettingError(e.setting, str(e)) from None
    if quant in ("nf4", "fp4"):
        use_4bit_kernel(model, resolve_kernel(settings.kernel, device, quant))
    return Engine(model, tokenizer, context_length=settings.context_length, ngram_cache=ngram_cache,
                  progress=warming)


def time_left(fraction: float, elapsed_s: float) -> str | None:
    """The rest of a load at the pace so far, in words ("about 6 min left"); None until the pace means
    something (a few seconds and percent in) and once it is done."""
    if elapsed_s < 5 or not 0.05 <= fraction < 1:
        return None
    left = elapsed_s * (1 - fraction) / fraction
    return f"about {round(left / 60)} min left" if left >= 90 else f"about {max(5, round(left / 5) * 5)} s left"


def model_dir(settings: Settings) -> Path:
    """The directory of the configured model (the embedded demo model's when none is)."""
    from model.checkpoint import resolve_model_dir
    from model.loader import DEMO_MODEL_DIR
    return resolve_model_dir(settings.model) if settings.model else DEMO_MODEL_DIR


def connect_vllm(settings: Settings, progress: Callable[[float, str], None] | None = None) -> VllmBackend:
    """Generation on the vLLM server at `remote_url`; only our tokenizer is loaded here, from `model`.

    The served model is checked now: one whose vocabulary is not the tokenizer's is refused (IncompatibleModel).
    A server that cannot be reached yet is not an error: requests fail until it answers. While the check waits
    on the server (up to remoteTimeoutMs per request), `progress` is called every 0.1 s: a progress callback
    that raises (the language server's, once it shuts down) ends the wait, and leaves the check to a daemon
    thread that cannot hold the process's exit.
    """
    from model.checkpoint import open_tokenizer
    from model.vllm_backend import API_KEY_ENV, VllmBackend  # httpx is imported only by those who use it

    if settings.ngram_cache == "on":
        raise SettingError("ngramCache", "ngramCache \"on\" needs the local backend: vLLM chooses the tokens on "
                           "its own server, where the n-gram cache cannot take part; set it to auto or off")
    backend = VllmBackend(settings.remote_url, open_tokenizer(model_dir(settings)), model=settings.model,
                          api_key=os.environ.get(API_KEY_ENV) or None, timeout=settings.remote_timeout_ms / 1000,
                          context_length=settings.context_length)
    if progress is None:
        backend.connect()
        return backend
    failure: list[BaseException] = []

    def connect() -> None:
        try:
            backend.connect()
        except BaseException as e:  # handed to the caller's thread
            failure.append(e)

    thread = threading.Thread(target=connect, name="vllm-connect", daemon=True)
    thread.start()
    while thread.is_alive():
        progress(0.0, f"connecting to {backend.url}")
        thread.join(0.1)
    if failure:
        raise failure[0]
    return backend


def check_model(settings: Settings, *, memory: bool = False) -> str | None:
    """What can be checked before the current model is released: the checkpoint's files, config, tensor
    names and shapes, the n-gram cache's weights, and the device, dtype, quantization and kernel. Raises with
    the reason. With `memory` (nothing loaded yet, so what is available is all there will be), returns why the
    model as `settings` ask for it would not fit the memory (None: it fits), which the load itself refuses."""
    # torch: imported here, not at start-up
    from model.checkpoint import check_shapes, open_checkpoint, open_tokenizer
    from model.loader import (NotEnoughMemory, available_memory, fit_in_memory, resolve_device, resolve_dtype,
                              resolve_kernel, resolve_quant)
    from model.ngram_cache import resolve_weights

    root = model_dir(settings)
    if settings.backend == "vllm":  # only the tokenizer is loaded here; the vLLM server is checked on connect
        open_tokenizer(root)
        return
    _, reader = open_checkpoint(root)
    check_shapes(reader)
    resolve_weights(settings.ngram_cache, root)
    try:
        device = resolve_device(settings.device)
    except ValueError as e:  # a GPU asked for where there is none
        raise SettingError("device", str(e)) from None
    resolve_dtype(settings.dtype, device)
    quant = resolve_quant(settings.quant, device)
    resolve_kernel(settings.kernel, device, quant)
    if memory and device.type == "cpu":
        try:
            fit_in_memory(reader.args, dtype=settings.dtype, quant=quant, context_length=settings.context_length,
                          available=available_memory())
        except NotEnoughMemory as e:
            return str(e)
    return None
