"""Outages of a remote model server, told to the user once each: not once per keystroke."""

from __future__ import annotations

import logging
from collections.abc import Callable

from model.backend import BackendUnavailable

log = logging.getLogger(__name__)


class OutageNotice:
    """Shows one message when the model server stops answering and logs one line when it is back.

    `failed` and `succeeded` are called with the outcome of every request that used the backend.
    """

    def __init__(self, show: Callable[[str], None], note: Callable[[str], None]) -> None:
        """show: a message the user sees (window/showMessage); note: one for the log (window/logMessage)."""
        self._show = show
        self._note = note
        self.error: str | None = None  # the current outage's first error; None while the server answers

    def failed(self, error: BackendUnavailable) -> None:
        if self.error is None:
            self.error = str(error)
            log.warning("model server unavailable: %s", error)
            self._show(f"codellama: the model server is unavailable ({error}). Completions stay empty until it "
                       "answers again; it is retried as you type.")
        else:
            log.debug("model server still unavailable: %s", error)

    def succeeded(self) -> None:
        if self.error is not None:
            self.error = None
            log.info("model server answers again")
            self._note("codellama: the model server answers again")
