"""Outages of a remote model server, told to the user once each: not once per keystroke."""

from __future__ import annotations

import logging
from collections.abc import Callable

from model.backend import BackendUnavailable, IncompatibleModel

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
        self._refused = False  # whether the current outage was told as a refused model

    def failed(self, error: BackendUnavailable) -> None:
        refused = isinstance(error, IncompatibleModel)
        if self.error is None or (refused and not self._refused):
            # A server that comes back with a model our tokenizer does not fit is told too, though the outage
            # was: it will not come right by itself, as the first message said.
            self.error, self._refused = str(error), refused
            log.warning("model server unavailable: %s", error)
            self._show(f"codellama: the model server now serves another model ({error}). Completions stay empty "
                       "until it serves this tokenizer's model again." if refused else
                       f"codellama: the model server is unavailable ({error}). Completions stay empty until it "
                       "answers again; it is retried as you type.")
        else:
            log.debug("model server still unavailable: %s", error)

    def succeeded(self) -> None:
        if self.error is not None:
            self.error, self._refused = None, False
            log.info("model server answers again")
            self._note("codellama: the model server answers again")
