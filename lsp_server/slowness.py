"""A model too slow for completions as you type, told to the user once: not once per keystroke.

A 7B on a CPU reads a 1,500-token prompt in minutes; every completion made as the user types then ends at the
time budget (`timeBudgetMs`) with nothing to show, and the editor shows nothing, forever. This says so, with the
numbers measured, once a few in a row have. The editors' status displays follow it until completions come in time
again; a later streak of misses sets them again, but pops up no second message for the same model and budget.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from model.backend import Timings

log = logging.getLogger(__name__)
# Misses in a row before the user is told. One alone is no pattern: the first request after a load or in a newly
# opened file reads its whole prompt cold, and a busy machine can hold up any one; the engine keeps what it read,
# so the next request usually comes in time. Three with nothing in time between is a model that cannot keep up;
# more would keep the user waiting longer, since on a CPU each miss lasts a whole prefill chunk (30-60 s for a 7B).
MISSES_TO_TELL = 3


def _seconds(s: float) -> str:
    return f"~{s / 60:.0f} min" if s >= 120 else f"~{s:.0f} s" if s >= 10 else f"~{s:.1f} s"


def slow_message(misses: list[Timings], budget_ms: int, *, remote: bool = False, gpu: bool = False,
                 quantized: bool = False, demo: bool = False) -> str:
    """What the user is told about `misses`, completions cut by the time budget with nothing to show (oldest
    first): how many, how fast the model read their prompts (unless it runs on a `remote` server, whose reading is
    not seen from here), and what to do, of what the model in use is not already: on a GPU, `quantized`, the
    `demo` model."""
    last = misses[-1]
    read_tokens, read_ms = sum(t.prefilled_tokens for t in misses), sum(t.prefill_ms for t in misses)
    head = (f"codellama: the last {len(misses)} completions as you type ran out of their {budget_ms} ms time budget "
            f"(`timeBudgetMs`) before the model{' server' if remote else ''} had written anything to show")
    asked = ("A completion you ask for (Alt+\\ in VS Code, Ctrl+Space) is not timed: it waits for the model. "
             "For completions as you type: ")
    if remote:
        return f"{head}. {asked}a larger `timeBudgetMs`, or a less busy model server."
    if read_tokens and last.prefilled_tokens < last.prompt_tokens - last.cached_tokens:  # cut while reading
        rate = read_tokens / (read_ms / 1000)
        why = (f"it reads about {rate:.{0 if rate >= 10 else 1}f} prompt tokens a second here, so this "
               f"{last.prompt_tokens:,}-token prompt takes {_seconds(last.prompt_tokens / rate)} to read. What was "
               "read is kept for the next request, so one may yet come in time once the whole prompt is read, while "
               "you edit in one place")
    else:
        why = (f"reading the {last.prompt_tokens:,}-token prompt took {_seconds(last.prefill_ms / 1000)} "
               f"({last.cached_tokens:,} tokens of it already read before), leaving too little time to write")
    fixes = [*(["a GPU"] if not gpu else []), *(["`quant: nf4`"] if not quantized else []),
             "smaller `prefixTokens`/`suffixTokens` or `contextLength`", "a larger `timeBudgetMs`",
             *(["the demo model (`model: \"\"`)"] if not demo else [])]
    return f"{head}: {why}. {asked}{', '.join(fixes[:-1])}, or {fixes[-1]}."


class SlowNotice:
    """Tells of MISSES_TO_TELL completions in a row that ran out of time with nothing to show, and logs one line
    when one comes in time again. The first time for a model and time budget the message pops up; later streaks
    only log it and set `told`, which status displays show: a machine just too slow would otherwise pop it up again
    every few keystrokes.

    `missed` is called for each completion made as the user types that ended at the time budget without a
    suggestion; `answered` for each one the model answered within it (suggestion or not) or cut at it with a
    suggestion to show. Cancelled and failed requests, cache hits and completions asked for (untimed) are neither.
    """

    def __init__(self, show: Callable[[str], None], note: Callable[[str], None],
                 changed: Callable[[str | None], None] = lambda told: None) -> None:
        """show: a message the user sees (window/showMessage); note: one for the log (window/logMessage);
        changed: called with `told` each time it changes (set, or back to None), for editors' status displays."""
        self._show = show
        self._note = note
        self._changed = changed
        self.misses: list[Timings] = []  # the last misses since a completion last came in time
        self.told: str | None = None  # the message shown for the misses in progress; None until then
        self.popped_up = False  # whether it was shown since the last reset

    def missed(self, timings: Timings, budget_ms: int, *, remote: bool = False, gpu: bool = False,
               quantized: bool = False, demo: bool = False) -> None:
        """One more miss, cut at `budget_ms`, of a model as slow_message's arguments describe it."""
        self.misses = [*self.misses, timings][-MISSES_TO_TELL:]  # all the message is made of
        if self.told is None and len(self.misses) >= MISSES_TO_TELL:
            self.told = slow_message(self.misses, budget_ms, remote=remote, gpu=gpu, quantized=quantized,
                                      demo=demo)
            log.warning("%s", self.told)
            if self.popped_up:
                self._note(self.told)
            else:
                self._show(self.told)
                self.popped_up = True
            self._changed(self.told)

    def answered(self) -> None:
        if self.told is not None:
            log.info("completions as you type come in time again")
            self._note("codellama: completions as you type come in time again")
        self._forget_misses()

    def reset(self) -> None:
        """Forget the misses and that the message popped up: another model or time budget is another story."""
        self._forget_misses()
        self.popped_up = False

    def _forget_misses(self) -> None:
        told, self.misses, self.told = self.told, [], None
        if told is not None:
            self._changed(None)
