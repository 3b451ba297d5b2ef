"""Properties of the text a suggestion inserts, for any document, cursor and model middle: the windows
(context.py), shaping (shaping.py, closers.py) and the range the server sends (text.py, offers.py), without
a model. Documents mix every LSP line break, tabs, astral characters and FIM control text."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lsp_server.cache import CompletionCache
from lsp_server.closers import CLOSER_CHARS
from lsp_server.completion import cursor_mode, generate, prepare
from lsp_server.context import build_context
from lsp_server.offers import reshaped, served_again
from lsp_server.settings import Settings
from lsp_server.shaping import Shaped, drop_loop, shape
from lsp_server.text import line_break_of, offset_at, position_at
from model.backend import Generation
from model.loader import DEMO_MODEL_DIR
from model.tokenizer import Tokenizer

FRAGMENTS = ["x", "foo", "def f(a):", "if (x) {", "}", "  ", "    ", "\t", "return 1", "(", ")", "]", '"', "'", "`",
             ";", ":", ",", "{", "<div>", "</div>", "<li>", "</li>", "😀", "é", "\u2028", "\x0c", "#", "//", " = ",
             "end", "<PRE>", "<SUF>", "<MID>", "<EOT>", "▁"]
BREAKS = ["\n", "\r\n", "\r"]
FIM_TEXT = ["<PRE>", "<SUF>", "<MID>", "<EOT>"]
pieces = st.one_of(st.sampled_from(FRAGMENTS), st.sampled_from(BREAKS))
documents = st.lists(pieces, max_size=14).map("".join)
middles = st.lists(st.one_of(pieces, st.sampled_from(["\n    ", "\n}", "\n\n", "  \n"])), max_size=10).map("".join)
modes = st.sampled_from(["single", "multi"])
policies = st.sampled_from(["auto", "single", "multi"])  # lineCompletions
TOKENIZER = Tokenizer(DEMO_MODEL_DIR / "tokenizer.model")
CHECKS = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))


def lf(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def cursor_in(text: str, data: st.DataObject) -> int:
    """A cursor an editor can have: anywhere but between the two characters of a CRLF."""
    offset = data.draw(st.integers(0, len(text)))
    return offset - 1 if 0 < offset < len(text) and text[offset - 1:offset + 1] == "\r\n" else offset


# --------------------------------------------------------------------------
# The defects these properties found
# --------------------------------------------------------------------------


def test_a_cached_suggestion_is_not_trimmed_against_the_suffix_a_second_time() -> None:
    # `x = |0`: the model wrote `100`, whose last `0` repeats the suffix; `10` is shown (`x = 100`). Served again
    # from the cache at the same cursor it was trimmed again, to `1` (`x = 10`), and typed through (`1` typed)
    # it was trimmed to nothing: the suggestion vanished.
    assert shape("100", prefix="x = ", suffix="0\n", mode="single") == Shaped("10", 0)
    assert reshaped("10", "x = ", "0\n", "\n") == Shaped("10", 0)
    assert reshaped("0", "x = 1", "0\n", "\n") == Shaped("0", 0)


def test_a_cached_suggestion_keeps_the_blanks_it_ends_with_before_the_suffix() -> None:
    # The blanks were what the model wrote before its copy of the suffix (`  x`): shown at first, lost on a cache hit.
    assert shape("x    x", prefix="", suffix="  x", mode="single") == Shaped("x  ", 0)
    assert reshaped("x  ", "", "  x", "\n") == Shaped("x  ", 0)


def test_a_middle_that_retypes_the_rest_of_the_line_before_its_trailing_blanks_adds_nothing() -> None:
    # `x| = ` (a blank ends the line): the middle ` = ` lost its last blank to trimming, and its ` =` was then too
    # short to count as a copy: `x = = `.
    assert shape(" = ", prefix="x", suffix=" = \ny = 1", mode="single") is None
    assert shape("y = ", prefix="", suffix="y \n", mode="single") == Shaped("y = ", 0)  # not the suffix: kept


def served_from_the_cache(shaped: Shaped, prefix: str, suffix: str, typed: int = 0) -> Shaped | None:
    """What the server serves for `shaped`, made at `prefix`|`suffix` in an LF document, once the user typed its
    first `typed` characters."""
    cache = CompletionCache()
    cache.put(prefix, suffix, shaped.text, "", shaped.replace_chars)
    found = cache.find(prefix + shaped.text[:typed], suffix)
    assert found is not None
    return served_again(found, prefix + shaped.text[:typed], suffix, "\n")


def test_a_suggestion_that_puts_the_rest_of_the_line_below_is_served_again_at_the_indent_it_gave_it() -> None:
    # lineCompletions "multi" at `foo(x|bar)`: the model wrote `, y⏎    bar)`, shown as `, y⏎    ` before `bar)`.
    # From the cache it was taken for a middle whose line the model ended, and `bar)` went below at the cursor
    # line's indent: `foo(x, y⏎bar)`, at the same cursor and with `,` typed.
    shaped = shape(", y\n    bar)", prefix="foo(x", suffix="bar)\n", mode="multi")
    assert shaped == Shaped(", y\n    ", 0)
    assert served_from_the_cache(shaped, "foo(x", "bar)\n") == shaped
    assert served_from_the_cache(shaped, "foo(x", "bar)\n", typed=1) == Shaped(" y\n    ", 0)
    # Blanks before the rest of the line were part of the model's copy: they come back, and replace the rest's own.
    shaped = shape(", y\n    bar)", prefix="foo(x", suffix="  bar)\n", mode="multi")
    assert shaped == Shaped(", y\n    ", 2)
    assert served_from_the_cache(shaped, "foo(x", "  bar)\n", typed=1) == Shaped(" y\n    ", 2)
    # `    f() {|}` typed through past the body's line break: the `}` still goes below, at the indent of `f`.
    shaped = shape("\n        body\n", prefix="    f() {", suffix="}\n", mode="multi")
    assert shaped == Shaped("\n        body\n    ", 0)
    assert served_from_the_cache(shaped, "    f() {", "}\n", typed=9) == Shaped("body\n    ", 0)
    # The line the rest goes on is no blank line: with the blank line above it, no pair of blank lines ends a block.
    shaped = shape("a\nx\n\nx", prefix="", suffix="x", mode="multi")
    assert shaped == Shaped("a\nx\n\n", 0)
    assert served_from_the_cache(shaped, "", "x", typed=2) == Shaped("x\n\n", 0)


def test_a_suggestion_served_again_at_the_same_cursor_is_what_was_shown() -> None:
    # Shaping the shown text anew judges it otherwise than the model's middle: `\nxx` before `x⏎x` is shown as
    # `\nx`, whose last line, anew, repeats the line below (`x`), so it was cut, to nothing: the suggestion vanished.
    shaped = shape("\nxx", prefix="", suffix="x\nx", mode="multi")
    assert shaped == Shaped("\nx", 0)
    assert served_from_the_cache(shaped, "", "x\nx") == shaped


# --------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------


@CHECKS
@given(documents, middles, modes, st.booleans(), st.data())
def test_an_accepted_suggestion_keeps_the_text_around_it(text: str, raw: str, mode: str, markup: bool,
                                                         data: st.DataObject) -> None:
    """As the server sends it (the document's line breaks, a UTF-16 range) and a client applies it: the text
    before the cursor and after the range stay as they were; the range is on the cursor's line and covers only
    closers and blanks; the text has no FIM control text the middle lacked and no line break but the document's."""
    offset = cursor_in(text, data)
    ctx = build_context(text, offset, len, prefix_tokens=400, suffix_tokens=400)
    shaped = shape(raw, prefix=ctx.prefix, suffix=ctx.suffix, mode=mode, markup=markup)
    if shaped is None:
        return
    line_break = line_break_of(text)
    insert = shaped.text.replace("\n", line_break)
    start, end = position_at(text, offset), position_at(text, offset + shaped.replace_chars)
    assert start[0] == end[0] and start[1] <= end[1]
    first, last = offset_at(text, *start), offset_at(text, *end)  # as the client finds them, in UTF-16
    assert (first, last) == (offset, offset + shaped.replace_chars)
    replaced = text[first:last]
    assert all(ch in CLOSER_CHARS or ch in " \t" for ch in replaced)  # never a line break or code
    applied = text[:first] + insert + text[last:]
    assert applied.startswith(text[:offset]) and applied.endswith(text[last:])
    assert shaped.text.strip() and "\r" not in shaped.text
    assert all(fim in lf(raw) for fim in FIM_TEXT if fim in shaped.text)


@CHECKS
@given(documents, middles, modes, st.booleans(), st.data())
def test_shaping_reads_every_line_break_alike(text: str, raw: str, mode: str, markup: bool,
                                              data: st.DataObject) -> None:
    # The cache's path shapes at the document's own prefix and suffix (any line breaks), the model's at the
    # windows (LF): the same middle must come out the same.
    offset = cursor_in(text, data)
    prefix, suffix = text[:offset], text[offset:]
    assert shape(raw, prefix=prefix, suffix=suffix, mode=mode, markup=markup) == shape(
        raw, prefix=lf(prefix), suffix=lf(suffix), mode=mode, markup=markup)


def with_a_copy_of_the_suffix(raw: str, suffix: str, data: st.DataObject) -> str:
    """`raw`, maybe ending with a copy of the start of `suffix`, on a line of its own or not, as models write."""
    if not data.draw(st.booleans()):
        return raw
    return raw + data.draw(st.sampled_from(["", "\n", "\n  ", "\n    "])) + lf(suffix)[:data.draw(st.integers(1, 12))]


@CHECKS
@given(documents, middles, policies, st.booleans(), st.data())
def test_a_suggestion_served_again_from_the_cache_is_the_same(text: str, raw: str, policy: str, markup: bool,
                                                              data: st.DataObject) -> None:
    """At the same cursor, as the server stores it (the document's line breaks) and serves it from the cache."""
    offset = cursor_in(text, data)
    prefix, suffix = text[:offset], text[offset:]
    raw = with_a_copy_of_the_suffix(raw, suffix, data)
    shaped = shape(raw, prefix=prefix, suffix=suffix, mode=cursor_mode(text, offset, policy, markup), markup=markup)
    if shaped is None:
        return
    line_break = line_break_of(text)
    cache = CompletionCache()
    cache.put(prefix, suffix, shaped.text.replace("\n", line_break), "", shaped.replace_chars)
    found = cache.find(prefix, suffix)
    assert found is not None and served_again(found, prefix, suffix, line_break, markup) == shaped


@CHECKS
@given(documents, middles, policies, st.booleans(), st.data())
def test_typing_a_suggestion_through_leaves_the_rest_of_it(text: str, raw: str, policy: str, markup: bool,
                                                           data: st.DataObject) -> None:
    """The rest of a single-line suggestion is served whole as it is typed through; the rest of a multi-line one,
    or one in markup, may come out shorter, never longer or other: its lines are judged anew against the block
    that the typed text opens (``x:`` typed, an unindented ``x`` below it ends the block), and a closing tag
    against the element open at the new cursor, by design. Which closers right of the
    cursor the rest replaces may change: that is what reshaping a cached suggestion is for. Outside markup, a
    rest of several lines that keeps them all makes the document that the whole suggestion made (the rest of
    the cursor's line goes where it went: `foo(x` + `, y⏎    ` before `bar)`, typed through `,`, is ` y⏎    `).
    A rest that was cut may end with a line that the rest of the cursor's line goes on."""
    offset = cursor_in(text, data)
    prefix, suffix = text[:offset], text[offset:]
    raw = with_a_copy_of_the_suffix(raw, suffix, data)
    mode = cursor_mode(text, offset, policy, markup)
    shaped = shape(raw, prefix=prefix, suffix=suffix, mode=mode, markup=markup)
    if shaped is None or len(shaped.text) < 2:
        return
    line_break = line_break_of(text)
    shown = shaped.text.replace("\n", line_break)
    typed = data.draw(st.integers(1, len(shown) - 1))
    if shown[typed - 1:typed + 1] == "\r\n" or not shown[typed:].strip():
        return  # Enter types a CRLF whole; nothing but blanks left is no suggestion
    cache = CompletionCache()
    cache.put(prefix, suffix, shown)
    rest = cache.lookup(prefix + shown[:typed], suffix)
    assert rest == shown[typed:]
    again = reshaped(rest, prefix + shown[:typed], suffix, line_break, markup)
    if mode == "single" and not markup:
        assert again is not None and again.text == rest
    elif again is not None:
        # Cut, its last line may be the new one that the rest of the cursor's line goes on.
        body, _, last = again.text.rpartition("\n")
        assert rest.startswith((body if body and not last.strip() else again.text).replace("\n", line_break))
    if again is not None and not markup and "\n" in again.text and again.text.count("\n") == lf(rest).count("\n"):
        assert (shown[:typed] + again.text.replace("\n", line_break) + suffix[again.replace_chars:]
                == shown + suffix[shaped.replace_chars:])


@CHECKS
@given(documents, st.sampled_from(["", "foo", "x = ", "😀 "]), modes, st.data())
def test_a_middle_that_ends_with_a_copy_of_the_suffix_does_not_repeat_it(text: str, lead: str, mode: str,
                                                                         data: st.DataObject) -> None:
    offset = cursor_in(text, data)
    prefix, suffix = text[:offset], lf(text[offset:])
    lines = suffix.split("\n")
    copy = "\n".join(lines[:data.draw(st.integers(1, len(lines)))])
    # Narrowed: closers alone are typed over only where they close what the line opened (closers.py), and in a
    # multi-line completion a copy that begins mid-line is taken for the model ending its line (the rest below).
    if all(ch in CLOSER_CHARS or ch.isspace() for ch in (lines[0] if mode == "single" else copy)) or (
            mode == "multi" and lines[0].strip()):
        return
    shaped = shape(lead + copy, prefix=prefix, suffix=text[offset:], mode=mode)
    if shaped is not None:
        applied = shaped.text + suffix[shaped.replace_chars:]
        assert applied.endswith(suffix) and len(applied) - len(suffix) <= len(lead)


@CHECKS
@given(documents, st.text(" \t\n\r\u3000\x0b", max_size=8), modes, st.booleans(), st.data())
def test_a_blank_middle_is_no_suggestion(text: str, raw: str, mode: str, markup: bool, data: st.DataObject) -> None:
    offset = cursor_in(text, data)
    assert shape(raw, prefix=text[:offset], suffix=text[offset:], mode=mode, markup=markup) is None


@CHECKS
@given(documents, st.integers(0, 60), st.integers(0, 60), st.integers(1, 8), st.integers(-3, 200))
def test_the_windows_are_the_text_around_the_cursor(text: str, prefix_tokens: int, suffix_tokens: int, snap: int,
                                                    offset: int) -> None:
    """The prompt's windows, for any cursor (clamped; one inside a CRLF is at its line's end): the LF text right
    before and right after the cursor, of whole lines but the cursor's own, within their budgets (a token a
    character here), and their line numbers those of the document."""
    ctx = build_context(text, offset, len, prefix_tokens=prefix_tokens, suffix_tokens=suffix_tokens,
                        snap_lines=snap)
    at = max(0, min(offset, len(text)))
    at -= 0 < at < len(text) and text[at - 1:at + 1] == "\r\n"
    before, after = lf(text[:at]), lf(text[at:])
    assert before.endswith(ctx.prefix) and after.startswith(ctx.suffix)
    assert len(ctx.prefix) <= prefix_tokens and len(ctx.suffix) <= suffix_tokens
    line = before.count("\n")
    assert ctx.prefix_start_line <= line <= ctx.suffix_end_line
    assert ctx.suffix.count("\n") == ctx.suffix_end_line - line
    if ctx.prefix_start_line < line:  # whole lines above the cursor's
        assert before[:len(before) - len(ctx.prefix)] == "".join(
            f"{above}\n" for above in before.split("\n")[:ctx.prefix_start_line])
    if ctx.suffix_end_line > line:  # whole lines below it
        assert after[len(ctx.suffix):].startswith("\n") or len(ctx.suffix) == len(after)


@CHECKS
@given(documents, middles, st.sampled_from(["auto", "single", "multi"]), st.data())
def test_the_completion_path_shapes_the_middle_as_the_document_has_it(text: str, raw: str, policy: str,
                                                                      data: st.DataObject) -> None:
    """prepare + generate (windows, token healing, loop cut) give what shaping the model's middle at the
    document's own prefix and suffix gives, in any line breaks: the windows lose nothing shaping reads."""
    offset = cursor_in(text, data)
    chosen = Settings(line_policy=policy)
    engine = CannedBackend("", "stop")
    prepared = prepare(engine, text, offset, chosen)  # type: ignore[arg-type]
    assert prepared is not None
    engine.text = prepared.healed + raw  # healing: the model writes the healed end of the line back first
    suggestion = generate(engine, prepared, chosen, timed=False)  # type: ignore[arg-type]
    expected = shape(drop_loop(raw), prefix=text[:offset], suffix=text[offset:], mode=prepared.mode,
                     markup=prepared.markup)
    assert (None if suggestion is None else Shaped(suggestion.text, suggestion.replace_chars)) == expected


class CannedBackend:
    """A model that answers `text`, stopped as `stop_reason` says."""

    def __init__(self, text: str, stop_reason: str) -> None:
        self.tokenizer, self.context_length, self.recalls = TOKENIZER, 4096, False
        self.text, self.stop_reason = text, stop_reason

    def generate(self, prompt: list[int], **kwargs: object) -> Generation:
        return Generation([], self.text, self.stop_reason)
