"""Properties of the text a suggestion inserts, for any document, cursor and model middle: the windows
(context.py), shaping (shaping.py, closers.py) and the range the server sends (text.py, server.py), without
a model. Documents mix every LSP line break, tabs, astral characters and FIM control text."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lsp_server.cache import CompletionCache
from lsp_server.closers import CLOSER_CHARS
from lsp_server.completion import cursor_mode
from lsp_server.context import build_context
from lsp_server.server import reshaped
from lsp_server.shaping import Shaped, shape
from lsp_server.text import line_break_of, offset_at, position_at

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


@CHECKS
@given(documents, middles, policies, st.booleans(), st.data())
def test_a_suggestion_served_again_from_the_cache_is_the_same(text: str, raw: str, policy: str, markup: bool,
                                                              data: st.DataObject) -> None:
    offset = cursor_in(text, data)
    prefix, suffix = text[:offset], text[offset:]
    shaped = shape(raw, prefix=prefix, suffix=suffix, mode=cursor_mode(text, offset, policy, markup), markup=markup)
    # Narrowed, where lineCompletions forces "multi" with code right of the cursor: a text whose copy of the suffix
    # began a line ends with a line break and blanks, which shaping anew takes for the model ending its last line
    # (the rest of the line then goes below it at the cursor line's indent).
    if shaped is None or (policy == "multi" and not shaped.text.rsplit("\n", 1)[-1].strip()):
        return
    line_break = line_break_of(text)
    assert reshaped(shaped.text.replace("\n", line_break), prefix, suffix, line_break, markup) == shaped


@CHECKS
@given(documents, middles, st.sampled_from(["auto", "single"]), st.booleans(), st.data())
def test_typing_a_suggestion_through_leaves_the_rest_of_it(text: str, raw: str, policy: str, markup: bool,
                                                           data: st.DataObject) -> None:
    """The rest of a single-line suggestion is served whole as it is typed through; the rest of a multi-line one
    may come out shorter, never longer or other: its lines are judged anew against the block that the typed text
    opens (``x:`` typed, an unindented ``x`` below it ends the block), by design. Which closers right of the
    cursor the rest replaces may change: that is what reshaping a cached suggestion is for."""
    offset = cursor_in(text, data)
    prefix, suffix = text[:offset], text[offset:]
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
    if mode == "single":
        assert again is not None and again.text == rest
    else:
        assert again is None or rest.startswith(again.text.replace("\n", line_break))


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
