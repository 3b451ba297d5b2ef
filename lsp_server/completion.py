r"""One inline completion, from document text and cursor to the text the editor shows.

    text, offset -> windows (context.py) -> FIM prompt -> engine.generate (early stop) -> shaping.py -> Suggestion
                    \___________ prepare ____________/    \______________________ generate ______________________/

This module is the whole completion path without LSP: the server, the `complete` CLI and the evaluation
all call it, so what they measure is what users get.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TypeVar

from model.backend import Backend, Generation, Timings
from model.tokenizer import Tokenizer, infill_prompt

from .context import FimContext, build_context, forget_counters
from .extra_context import DATA_LINE_CHARS
from .settings import PROMPT_OVERHEAD, Settings
from .shaping import (block_indent, closing_line_below, completion_mode, drop_loop, drop_partial_line,
                      drop_partial_word, drop_repeated_lines, framing_start, looping, make_stop, next_suffix_line,
                      opened_element, opener_indent, shape)
from .tags import TAIL_CHARS, in_markup
from .text import LinesAround, split_lines

log = logging.getLogger(__name__)
# How much of the document outside the windows the n-gram cache copies from, nearest lines first: about
# 120 KB of code. Moving the windows re-indexes it (15 ms for 100 KB); more would slow every look-up too.
RECALL_TOKENS = 32_768
# How much of the end of the cursor's line is tokenized to find its last token (token healing): far more than
# any token spans.
HEALING_CONTEXT_CHARS = 1000
# First tokens tried beyond the suggestions asked for, to make up for alternatives that come out alike.
ALTERNATIVE_SPARES = 2
T = TypeVar("T")


@dataclass(frozen=True)
class Suggestion:
    text: str
    replace_chars: int  # characters right of the cursor (on its line) that the text replaces
    mode: str  # single | multi
    stop_reason: str
    timings: Timings
    context_ms: float


def budgets(settings: Settings, max_tokens: int, context_length: int, extra_tokens: int = 0) -> tuple[int, int]:
    """Prefix and suffix token budgets, shrunk in proportion when the model's context is smaller."""
    room = context_length - max_tokens - PROMPT_OVERHEAD - extra_tokens
    want = settings.prefix_tokens + settings.suffix_tokens
    if want <= room:
        return settings.prefix_tokens, settings.suffix_tokens
    scale = max(room, 16) / want
    return max(8, int(settings.prefix_tokens * scale)), max(8, int(settings.suffix_tokens * scale))


def line_around(text: str, offset: int) -> tuple[str, str]:
    """The cursor line's text before and after the cursor."""
    start = max(text.rfind("\n", 0, offset), text.rfind("\r", 0, offset)) + 1
    ends = [i for i in (text.find("\n", offset), text.find("\r", offset)) if i >= 0]
    return text[start:offset], text[offset:min(ends) if ends else len(text)]


def cursor_mode(text: str, offset: int, policy: str, markup: bool) -> str:
    """:func:`shaping.completion_mode` at `offset`, with the lines above in markup: a tag whose `>` the cursor
    follows may start there (`<div⏎  className="x"⏎>|`)."""
    before, after = line_around(text, offset)
    line_start = offset - len(before)
    return completion_mode(before, after, policy, markup=markup,
                           above=text[max(0, line_start - TAIL_CHARS):line_start] if markup else "")


def inside_a_word(text: str, offset: int) -> bool:
    """Whether the cursor is inside a word: letters, digits or `_` on both sides of it. A suggestion there
    splits the word (`os.pa|th.getsize(name)` + `th.join(name))`), so the server makes one only when the
    user asks for it; elsewhere mid-line (`f(a, |b)`, `x = |  # note`) infilling is what the model is for."""
    return 0 < offset < len(text) and all(c.isalnum() or c == "_" for c in text[offset - 1:offset + 1])


def healing_text(tokenizer: Tokenizer, line_before_cursor: str, *, words: bool = True) -> str:
    """The end of the cursor's line that the prompt leaves out for the model to write back (token healing).

    A prompt ending in a lone space token ("return ▁") is one the model rarely saw in training: words carry
    their leading space ("▁self"), so a bare "▁" mostly came before digits and it answers "0". Likewise a
    cursor inside a word ("os.pa") ends the prompt in a fragment ("pa") where training text had "path", and
    one after punctuation ("self.", "os.getcwd(") in a piece that training text merged with what followed
    ("._items", "()"). Leaving that tail out and constraining the first generated tokens to agree with it lets
    the model pick its own split: trailing blanks after code, or (with `words`) the line's last tokens, as
    many as one vocabulary piece can write back (llama.cpp's "dynamic" token healing): a word cut short is
    often spelled in fragments ("rc = sel" is `▁se` `l`), and healing only the last left the others in the
    prompt ("rc = se"). No further back: a rare name ("frobnicate_") stays spelled as the document spells
    it, which the n-gram cache needs to match it, and the model would write it back letter by letter.
    """
    stripped = line_before_cursor.rstrip(" \t")
    if not stripped.strip():
        return ""
    if len(stripped) < len(line_before_cursor):
        return line_before_cursor[len(stripped):]
    if words:
        # Any last token, not only a word's: punctuation merges too (`(` + `)` is the one piece `()`). Its end
        # decides the last tokens: a long line (minified code) is not tokenized whole at every keystroke.
        piece = tokenizer.healing_tail(line_before_cursor[-HEALING_CONTEXT_CHARS:])
        if piece.strip() and line_before_cursor.endswith(piece):
            return piece
    return ""


def forget_tokenizer() -> None:
    """Drop what is remembered by tokenizer (lines' tokens, recalled text, token counts): keyed by the tokenizer, it
    kept each model's alive after a reload (Code Llama's: megabytes of vocabulary tables), one more per reload, and
    the next model's tokenizer never asks for it."""
    _line_tokens.cache_clear()
    _recalled_lines.cache_clear()
    forget_counters()


@lru_cache(maxsize=1 << 15)
def _line_tokens(tokenizer: Tokenizer, line: str) -> tuple[int, ...]:
    return tuple(tokenizer.encode_infilling(line))


def recall_tokens(tokenizer: Tokenizer, text: str, ctx: FimContext, limit: int = RECALL_TOKENS, *,
                  offset: int = 0) -> tuple[int, ...]:
    """The document outside the prompt's windows as tokens, for the n-gram cache: the lines above the prefix
    window, then those below the suffix window; of them at most `limit` tokens, nearest the windows first,
    leaving out lines of more than DATA_LINE_CHARS characters. `offset`: a place in the windows (the cursor),
    from which their edges are found.

    While the user types inside the windows the text outside them does not change, and the same tuple is
    returned without splitting it into lines again (the memo's key is that text: hashed and compared in C, where
    a tuple of its lines cost a string per line, milliseconds a completion in a 20,000-line file); lines are
    tokenized one at a time and remembered, so moving the windows costs look-ups, not a tokenization of the
    file. (Code Llama's vocabulary, like the demo's, spells a line break as a byte piece of its own, so line
    by line gives the same tokens as the whole text.)
    """
    lines = LinesAround(text, offset)
    above_end = lines.start(ctx.prefix_start_line) or 0
    below_start = lines.start(ctx.suffix_end_line + 1)
    return _recalled_lines(tokenizer, text[:above_end], None if below_start is None else text[below_start:], limit)


@lru_cache(maxsize=4)
def _recalled_lines(tokenizer: Tokenizer, above_text: str, below_text: str | None, limit: int) -> tuple[int, ...]:
    """recall_tokens of the text above the windows (ending with a line break, or "") and the text below them
    (None: no lines)."""
    above_lines = split_lines(above_text)[:-1]  # the piece after the last line break is the windows'
    below_lines = split_lines(below_text) if below_text is not None else []
    up = [line if len(line) <= DATA_LINE_CHARS else "" for line in reversed(above_lines)]  # nearest first
    down = [line if len(line) <= DATA_LINE_CHARS else "" for line in below_lines]
    above: list[tuple[int, ...]] = []
    below: list[tuple[int, ...]] = []
    room = limit
    while len(above) < len(up) or len(below) < len(down):
        go_up = len(below) == len(down) or (len(above) < len(up) and len(above) <= len(below))
        tokens = _line_tokens(tokenizer, (up[len(above)] if go_up else down[len(below)]) + "\n")
        if len(tokens) > room:
            break
        room -= len(tokens)
        (above if go_up else below).append(tokens)
    return tuple(t for line in [*reversed(above), *below] for t in line)


def fitting_prompt(tokenizer: Tokenizer, context_length: int, text: str, offset: int, settings: Settings,
                   mode: str, extra: str = "", healed: str = "") -> tuple[FimContext, list[int]] | None:
    """The windows around `offset` and the FIM prompt built from them, leaving room for max_tokens.

    The windows are sized by per-line token counts; tokens can merge across line ends, so a prompt that
    still comes out too long is rebuilt with smaller windows. The `healed` tail is left out of the prompt.
    """
    max_tokens = settings.max_tokens_single_line if mode == "single" else settings.max_tokens
    extra_tokens = tokenizer.count_tokens(extra) if extra else 0
    prefix_tokens, suffix_tokens = budgets(settings, max_tokens, context_length, extra_tokens)

    def build(shrink: float) -> tuple[FimContext, list[int]]:
        ctx = build_context(text, offset, tokenizer.count_tokens, prefix_tokens=int(prefix_tokens * shrink),
                            suffix_tokens=int(suffix_tokens * shrink), extra=extra)
        return ctx, infill_prompt(tokenizer, ctx.prefix[:len(ctx.prefix) - len(healed)], ctx.suffix,
                                  settings.fim_mode)  # type: ignore[arg-type]

    return _shrunk_to_fit(context_length - max_tokens, build)


def _shrunk_to_fit(room: int, build: Callable[[float], tuple[T, list[int]]]) -> tuple[T, list[int]] | None:
    """build(shrink) -> (windows, prompt) with the windows' budgets scaled by `shrink`: tried at 1, then smaller
    until the prompt fits in `room` tokens. Windows are sized by per-line token counts, and tokens can merge
    across line ends, so one pass can come out a little too long."""
    shrink = 1.0
    for _ in range(4):
        windows, prompt = build(shrink)
        if len(prompt) <= room:
            return windows, prompt
        shrink *= 0.9 * max(room, 0) / len(prompt)
    return None


@dataclass(frozen=True)
class Prepared:
    """A completion at one cursor, ready for the model: everything that does not depend on which first token
    the generation takes, built once for a suggestion and its alternatives."""
    mode: str  # single | multi
    markup: bool  # the cursor is in markup (tags.in_markup): tags shape the suggestion
    healed: str  # the end of the cursor's line, left out of the prompt for the model to write back
    ctx: FimContext
    prompt: list[int]
    stop: Callable[[str], bool]
    recall: tuple[int, ...]
    context_ms: float


def prepare(engine: Backend, text: str, offset: int, settings: Settings, *, extra: str = "",
            heal_words: bool = True, language: str = "") -> Prepared | None:
    """The windows, FIM prompt, stop rule and recall for a completion at `offset` (a code-point offset into
    `text`, a document in LSP's `language`); None when no prompt fits the model's context."""
    t0 = time.perf_counter()
    before, after = line_around(text, offset)
    markup = in_markup(language, text[offset:offset + 4000])
    mode = cursor_mode(text, offset, settings.line_policy, markup)
    healed = healing_text(engine.tokenizer, before, words=heal_words)
    fitted = fitting_prompt(engine.tokenizer, engine.context_length, text, offset, settings, mode, extra, healed)
    if fitted is None:
        return None
    ctx, prompt = fitted
    indent = block_indent(ctx.prefix, markup=markup, rest_of_line=after)
    opener = opener_indent(ctx.prefix, markup=markup, rest_of_line=after)
    element = opened_element(ctx.prefix, markup=markup, rest_of_line=after)
    block_end = make_stop(mode, line_before_cursor=before, next_suffix_line=next_suffix_line(ctx.suffix),
                          block_indent=indent, opener_indent=opener, element=element, markup=markup,
                          rest_of_line=after,
                          closing_below=closing_line_below(ctx.suffix, indent, opener, element) if markup else None)

    def stop(generated: str) -> bool:
        generated = generated[len(healed):]  # healing guarantees the text begins with `healed`
        return block_end(generated) or looping(generated) or framing_start(generated, before) is not None

    recall = recall_tokens(engine.tokenizer, text, ctx, offset=offset) if engine.recalls else ()
    return Prepared(mode, markup, healed, ctx, prompt, stop, recall, (time.perf_counter() - t0) * 1000)


def generate(engine: Backend, prepared: Prepared, settings: Settings, *, cancel: Callable[[], bool] | None = None,
             timed: bool = True, first_rank: int | None = None,
             seen: Callable[[Generation], None] | None = None) -> Suggestion | None:
    """The model's shaped answer to `prepared`, or None when there is none (see complete; first_rank: an
    alternative, see Backend.generate; `seen` is handed the model's raw answer, which says why there is none)."""
    deadline = time.monotonic() + settings.time_budget_ms / 1000 if timed else None
    mode, healed, ctx = prepared.mode, prepared.healed, prepared.ctx
    max_tokens = settings.max_tokens_single_line if mode == "single" else settings.max_tokens
    gen = engine.generate(prepared.prompt, max_new_tokens=max_tokens, temperature=settings.temperature,
                          top_p=settings.top_p, stop=prepared.stop, cancel=cancel, deadline=deadline,
                          constraint=healed, recall=prepared.recall, first_rank=first_rank)
    if seen is not None:
        seen(gen)
    if gen.stop_reason in ("cancel", "error") or not gen.text.startswith(healed):
        return None  # cancelled, failed, or cut before it wrote the healed tail back
    raw = drop_loop(gen.text[len(healed):])
    # The text ends where the model wrote bytes that are no character (never shown as U+FFFD): cut short.
    if gen.stop_reason in ("deadline", "max_tokens", "context", "invalid"):
        raw = drop_partial_word(raw)  # cut mid-word: show whole words only
        if mode == "multi":
            # and whole lines after the first, loops once
            raw = drop_repeated_lines(drop_partial_line(raw), split_lines(ctx.prefix)[-1])
    shaped = shape(raw, prefix=ctx.prefix, suffix=ctx.suffix, mode=mode, markup=prepared.markup)
    t = gen.timings
    log.debug("completion mode=%s context=%.1fms prompt=%d cached=%d prefill=%.1fms first=%.1fms decode=%.1fms "
              "new=%d drafted=%d accepted=%d total=%.1fms stop=%s rank=%s", mode, prepared.context_ms,
              t.prompt_tokens, t.cached_tokens, t.prefill_ms, t.first_token_ms, t.decode_ms, t.new_tokens,
              t.drafted_tokens, t.accepted_tokens, t.total_ms, gen.stop_reason, first_rank)
    if shaped is None:
        return None
    return Suggestion(shaped.text, shaped.replace_chars, mode, gen.stop_reason, t, prepared.context_ms)


def complete(engine: Backend, text: str, offset: int, settings: Settings, *, extra: str = "",
             cancel: Callable[[], bool] | None = None, timed: bool = True,
             heal_words: bool = True, language: str = "",
             seen: Callable[[Generation], None] | None = None) -> Suggestion | None:
    """The shaped completion at `offset` (a code-point offset into `text`, a document in LSP's `language`:
    markup is shaped by its tags, see tags.py), or None when there is none.

    timed: stop at the settings' time budget (interactive use); scripts and evaluations pass False, so that
    their results depend on the model alone, not on how busy the machine is.
    seen: handed the model's raw answer (not called when no prompt fits), e.g. to tell a cut by the time budget.
    """
    prepared = prepare(engine, text, offset, settings, extra=extra, heal_words=heal_words, language=language)
    return None if prepared is None else generate(engine, prepared, settings, cancel=cancel, timed=timed, seen=seen)


def complete_alternatives(engine: Backend, text: str, offset: int, settings: Settings, count: int, *,
                          extra: str = "", cancel: Callable[[], bool] | None = None,
                          heal_words: bool = True, language: str = "") -> list[Suggestion]:
    """Up to `count` different suggestions at `offset`, likeliest first, for a user who asked for them and
    waits (untimed): each begins with another of the model's likeliest first tokens (0, 1, 2, ...), never
    with the end of the text, so the first is the best suggestion the model has even where, as the user typed,
    it would have offered none. Alternatives that shape to the same text count once; a few more first tokens
    are tried to make up for them. The prompt is built once, and the engine prefills it once for all."""
    prepared = prepare(engine, text, offset, settings, extra=extra, heal_words=heal_words, language=language)
    if prepared is None:
        return []
    found: list[Suggestion] = []
    for rank in range(count + ALTERNATIVE_SPARES):
        suggestion = generate(engine, prepared, settings, cancel=cancel, timed=False, first_rank=rank)
        if cancel is not None and cancel():
            break
        if suggestion is not None and all((s.text, s.replace_chars) != (suggestion.text, suggestion.replace_chars)
                                          for s in found):
            found.append(suggestion)
            if len(found) == count:
                break
    return found


def infill_text(engine: Backend, prefix: str, suffix: str, max_tokens: int, settings: Settings,
                cancel: Callable[[], bool] | None = None) -> str:
    """A plain infill (the docstring writer's model call): stops at <EOT>, a new line or a loop.

    Blanks ending the prefix (`    width: `) are healed as completions' are: a prompt ending in a lone space
    token is answered with a digit. Whole lines are left out at the far ends of `prefix` and `suffix` when
    the prompt would not fit.
    """
    healed = healing_text(engine.tokenizer, prefix[prefix.rfind("\n") + 1:], words=False)
    prompt = fitting_infill_prompt(engine.tokenizer, engine.context_length, prefix[:len(prefix) - len(healed)],
                                   suffix, max_tokens, settings.fim_mode)
    if prompt is None:
        return ""
    gen = engine.generate(prompt, max_new_tokens=max_tokens, temperature=settings.temperature,
                          top_p=settings.top_p, cancel=cancel, constraint=healed,
                          stop=lambda s: "\n" in s[len(healed):].lstrip("\n") or looping(s))
    if not gen.text.startswith(healed):
        return ""  # cut before the healed blanks were written back
    return drop_loop(gen.text[len(healed):])


def fitting_infill_prompt(tokenizer: Tokenizer, context_length: int, prefix: str, suffix: str, max_tokens: int,
                          mode: str) -> list[int] | None:
    """The FIM prompt for `prefix` and `suffix`, leaving room for max_tokens in the context: while it is
    too long, both are cut at line boundaries, from the far ends, in proportion to their lengths."""
    def build(shrink: float) -> tuple[None, list[int]]:
        if shrink < 1:
            ctx = build_context(prefix + suffix, len(prefix), tokenizer.count_tokens, snap_lines=1,
                                prefix_tokens=int(tokenizer.count_tokens(prefix) * shrink),
                                suffix_tokens=int(tokenizer.count_tokens(suffix) * shrink))
            return None, infill_prompt(tokenizer, ctx.prefix, ctx.suffix, mode)  # type: ignore[arg-type]
        return None, infill_prompt(tokenizer, prefix, suffix, mode)  # type: ignore[arg-type]

    fitted = _shrunk_to_fit(context_length - max_tokens, build)
    return None if fitted is None else fitted[1]
