"""Prompt windows around the cursor: the FIM prefix and suffix, sized by token budget.

Everything here is pure and model-free; the tokenizer enters only as a
``count_tokens(str) -> int`` callable. Token costs are computed per line and
memoized, so a keystroke costs dictionary look-ups for the unchanged lines plus
one count of the line being edited, not a tokenization of the whole window.

Budgets are enforced on the *sum of per-line counts* (each line counted with
its newline). For subadditive tokenizers (BPE/sentencepiece in practice, and
the usual test fakes) that sum is an upper bound on the count of the joined
window, so the window never exceeds its budget.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from .text import LinesAround

__all__ = ["FimContext", "TokenCounter", "build_context", "counter_for", "forget_counters", "line_cost"]

CountTokens = Callable[[str], int]


# --------------------------------------------------------------------------
# Memoized token counting
# --------------------------------------------------------------------------


class TokenCounter:
    """``count_tokens`` wrapper with a bounded LRU memo keyed by the string.

    Pass one of these to :func:`build_context` to control the cache; plain
    callables are wrapped automatically (see :func:`counter_for`). Safe to
    share between threads (the tokenizer itself is called outside the lock).
    """

    # Strings longer than this are counted but not memoized: caching them
    # would pin large blobs (minified files) in memory for little gain.
    MAX_MEMO_CHARS = 2048

    def __init__(self, count_tokens: CountTokens, max_entries: int = 8192) -> None:
        self._count = count_tokens
        self._max_entries = max(1, max_entries)
        self._memo: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()
        self.calls = 0  # underlying tokenizer invocations (for tests/metrics)

    def __call__(self, s: str) -> int:
        memo = self._memo
        with self._lock:
            cached = memo.get(s)
            if cached is not None:
                memo.move_to_end(s)
                return cached
            self.calls += 1
        n = int(self._count(s))
        if len(s) <= self.MAX_MEMO_CHARS:
            with self._lock:
                memo[s] = n
                if len(memo) > self._max_entries:
                    memo.popitem(last=False)
        return n

    def __len__(self) -> int:
        return len(self._memo)


# A handful of recently used raw callables -> their TokenCounter, so callers
# that pass the same function (or bound method: equal and equal-hashing across
# accesses) every keystroke still get memoization. Bounded, so per-call
# lambdas in tests cannot grow it.
_COUNTERS: OrderedDict[Hashable, TokenCounter] = OrderedDict()
_COUNTERS_LOCK = threading.Lock()
_MAX_COUNTERS = 8


def counter_for(count_tokens: CountTokens) -> TokenCounter:
    """The shared memoizing counter of ``count_tokens`` (itself if it is one), so that every window and
    snippet built with one tokenizer reuses the same line counts."""
    if isinstance(count_tokens, TokenCounter):
        return count_tokens
    try:
        hash(count_tokens)
    except TypeError:  # unhashable callable: memoize for this call only
        return TokenCounter(count_tokens)
    with _COUNTERS_LOCK:
        counter = _COUNTERS.get(count_tokens)
        if counter is None:
            counter = TokenCounter(count_tokens)
            _COUNTERS[count_tokens] = counter
            if len(_COUNTERS) > _MAX_COUNTERS:
                _COUNTERS.popitem(last=False)
        else:
            _COUNTERS.move_to_end(count_tokens)
        return counter


def forget_counters() -> None:
    """Drop every shared counter: each holds its tokenizer (a bound method's object), which a model replaced
    must not keep alive."""
    with _COUNTERS_LOCK:
        _COUNTERS.clear()


# --------------------------------------------------------------------------
# FIM prefix/suffix windows
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class FimContext:
    """The prompt windows around the cursor.

    ``prefix`` is ``extra`` followed by the document from the start of line
    ``prefix_start_line`` up to the cursor; ``suffix`` is the document from the
    cursor to the end of line ``suffix_end_line`` (inclusive, without its
    terminator). Line breaks in both are normalized to ``"\\n"`` (the model
    was trained on LF text; the editor converts inserted text back).
    """

    prefix: str
    suffix: str
    prefix_start_line: int
    suffix_end_line: int


# When a single line alone exceeds the budget it is cut at a multiple of this
# many code points, so the cut (and the KV-cache prefix) stays put while the
# user types instead of sliding on every keystroke.
_CUT_GRAIN = 64


def build_context(
    text: str,
    offset: int,
    count_tokens: CountTokens,
    *,
    prefix_tokens: int,
    suffix_tokens: int,
    snap_lines: int = 32,
    extra: str = "",
) -> FimContext:
    """Cut the prefix/suffix windows around code-point ``offset`` in ``text``.

    Prefix: whole lines backward from the cursor line (whose text before the
    cursor is always included), starting at the *earliest multiple of
    ``snap_lines``* whose window fits ``prefix_tokens``. Because the start
    only moves when that rule's answer changes, it stays fixed while the user
    types on a line or moves a few lines down, which keeps the engine's KV
    prefix cache hitting. When fewer than ``2 * snap_lines`` lines fit, the
    grain is halved (down to 1) until it is at most half of them, so the snap
    never costs more than half the window. If even the cursor line's head does not
    fit, it is cut from the left (at a multiple of 64 code points when
    possible).

    Suffix: the rest of the cursor line, then whole following lines while
    within ``suffix_tokens`` (the rest of the line is cut from the right only
    if it alone exceeds the budget). It does not depend on the text before the
    cursor, so it is stable while typing.

    ``extra`` (already formatted other-file context) is prepended to the
    prefix, followed by a newline if it lacks one; it is not charged to
    ``prefix_tokens`` (it has its own budget upstream). Never raises for an
    out-of-range ``offset``; it is clamped.
    """
    counter = counter_for(count_tokens)
    # The lines are found outward from the cursor's as the windows take them: never all of the document's.
    lines = LinesAround(text, offset)
    cur, col = lines.line, lines.column  # (the column of an offset inside a "\r\n" is its line's end)
    line_text = lines[cur]
    head, rest = line_text[:col], line_text[col:]

    start_line, prefix_window = _prefix_window(
        lines, cur, head, counter, max(0, prefix_tokens), max(1, snap_lines)
    )
    end_line, suffix_window = _suffix_window(lines, cur, rest, counter, max(0, suffix_tokens))

    if extra and not extra.endswith("\n"):
        extra += "\n"
    return FimContext(
        prefix=extra + prefix_window,
        suffix=suffix_window,
        prefix_start_line=start_line,
        suffix_end_line=end_line,
    )


def line_cost(counter: TokenCounter, line: str) -> int:
    """Tokens of ``line`` with its newline: always counted so, for prefix and suffix to share memo keys."""
    return counter(line + "\n")


def _line_cost_within(counter: TokenCounter, line: str, budget: int) -> int | None:
    """line_cost when it is at most ``budget``, else None. A long line (data, a minified bundle) is counted only
    as far as it takes to tell: its count is not memoized, and counting all of it at every keystroke took tens
    of milliseconds for a 150 KB line next to the cursor."""
    if len(line) > counter.MAX_MEMO_CHARS and _over(line + "\n", counter, budget):
        return None
    cost = line_cost(counter, line)
    return cost if cost <= budget else None


def _prefix_window(
    lines: LinesAround, cur: int, head: str, counter: TokenCounter, budget: int, snap: int
) -> tuple[int, str]:
    # A long head (the cursor in a minified line) is not counted whole: _fit_tail counts tails about the size
    # of what fits.
    if len(head) > counter.MAX_MEMO_CHARS and (cut := _fit_tail(head, counter, budget)) > 0:
        return cur, head[cut:]
    head_cost = counter(head)
    if head_cost > budget:
        return cur, head[_fit_tail(head, counter, budget) :]
    available = budget - head_cost
    # Walk backward to the earliest start line that fits (costs are monotone:
    # an earlier start only adds lines).
    earliest = cur
    spent = 0
    while earliest > 0:
        cost = _line_cost_within(counter, lines[earliest - 1], available - spent)
        if cost is None:
            break
        spent += cost
        earliest -= 1
    # Earliest multiple of the grain at or after `earliest`; it fits because
    # it starts no earlier than `earliest`. The grain is at most half the
    # lines that fit, so the snap never drops more than half of them (a grain
    # of 32 with 31 lines fitting would leave none above a cursor on line 64);
    # it depends only on how many lines fit, so it too stays put while typing.
    grain = snap
    while grain > 1 and 2 * grain > cur - earliest:
        grain //= 2
    start = -(-earliest // grain) * grain
    body = "".join(lines[i] + "\n" for i in range(start, cur))
    return start, body + head


def _suffix_window(
    lines: LinesAround, cur: int, rest: str, counter: TokenCounter, budget: int
) -> tuple[int, str]:
    if len(rest) > counter.MAX_MEMO_CHARS and (fits := _fit_head(rest, counter, budget)) < len(rest):
        return cur, rest[:fits]  # a long rest of the line is not counted whole either
    rest_cost = counter(rest)
    if rest_cost > budget:
        return cur, rest[: _fit_head(rest, counter, budget)]
    spent = rest_cost
    end = cur
    while (line := lines.get(end + 1)) is not None:
        cost = _line_cost_within(counter, line, budget - spent)
        if cost is None:
            break
        spent += cost
        end += 1
    return end, rest + "".join("\n" + lines[i] for i in range(cur + 1, end + 1))


def _over(s: str, count: CountTokens, budget: int) -> bool:
    """Whether ``count(s) > budget``, told from heads of 1, 2, 4, ... grains before the whole (``count`` is
    monotone), so that a long string is counted about as far as twice what fits."""
    size = _CUT_GRAIN
    while size < len(s):
        if count(s[:size]) > budget:
            return True
        size *= 2
    return count(s) > budget


def _fit_tail(s: str, count: CountTokens, budget: int) -> int:
    """Smallest cut index with ``count(s[cut:]) <= budget``.

    Prefers cuts at multiples of ``_CUT_GRAIN`` (stable while typing at the
    end of ``s``); falls back to a code-point-exact cut inside the last grain.
    Assumes ``count`` is monotone in the string length. The tails tried grow
    from the end (1, 2, 4, ... grains) before a binary search between the last
    two: in a long line only strings about twice the size of what fits are
    counted, never halves of the whole line.
    """
    n = len(s)
    grid: list[int] = [*range(0, n, _CUT_GRAIN), n]
    # grid[fits] is a cut known to fit (the empty tail at first); cuts before grid[lo] are known not to.
    lo, fits, step = 0, len(grid) - 1, 1
    while fits > lo:
        probe = max(lo, fits - step)
        if count(s[grid[probe] :]) > budget:
            lo = probe + 1
            break
        fits, step = probe, step * 2
    hi = fits
    while lo < hi:
        mid = (lo + hi) // 2
        if count(s[grid[mid] :]) <= budget:
            hi = mid
        else:
            lo = mid + 1
    cut = grid[lo]
    if cut == n and n > 0:
        # Only the empty tail fits on the grid: search the last grain exactly.
        lo, hi = grid[-2], n  # n > 0, so grid holds 0 and n at least
        while lo < hi:
            mid = (lo + hi) // 2
            if count(s[mid:]) <= budget:
                hi = mid
            else:
                lo = mid + 1
        cut = lo
    return cut


def _fit_head(s: str, count: CountTokens, budget: int) -> int:
    """Largest end index with ``count(s[:end]) <= budget`` (code-point exact).

    Heads of 1, 2, 4, ... grains are tried before a binary search between the
    last two, so that a long line costs counts of about twice what fits.
    """
    lo, hi = 0, len(s)  # s[:lo] fits (the empty head at first); the answer is at most hi
    size = _CUT_GRAIN
    while size < hi:
        if count(s[:size]) > budget:
            hi = size - 1
            break
        lo, size = size, size * 2
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count(s[:mid]) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo
