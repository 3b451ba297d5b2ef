"""Turn the model's raw FIM middle into what the editor shows.

Pure functions, one rule each. The pipeline is :func:`shape`; the engine's
early-stop predicate (:func:`make_stop`) applies the same end-of-block rules
incrementally so generation stops where shaping would cut anyway.

Conventions: indentation widths expand tabs to the next multiple of
:data:`TAB_WIDTH` (4) columns, the common editor default; mixing tabs and
spaces in one file is rare enough that an exact per-file width is not needed
for a "shallower than the block" comparison.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from .closers import CLOSER_CHARS, closer_overlap, in_empty_braces
from .extra_context import is_context_header
from .tags import (closing_tag_at, closing_tag_start, in_empty_element, markup_end, opening_tag,
                   opening_tag_at_end, tag_end_overlap)
from .text import split_lines

__all__ = [
    "Mode",
    "Shaped",
    "TAB_WIDTH",
    "block_indent",
    "closing_line_below",
    "closing_tag_below_start",
    "completion_mode",
    "drop_partial_line",
    "drop_repeated_lines",
    "drop_partial_word",
    "drop_loop",
    "framing_start",
    "indent_width",
    "looping",
    "make_stop",
    "next_suffix_line",
    "opened_element",
    "opener_indent",
    "opens_block",
    "repetition_start",
    "shape",
]

Mode = Literal["single", "multi"]

TAB_WIDTH = 4

# A line that only closes blocks: `}`, `})`, `]);`, `end`, `fi`, ..., and a Svelte block's `{/if}`.
_CLOSING_LINE = re.compile(r"^(?:[)\]}]+|end|fi|done|esac|\{/[a-z]+\})[)\]};,]*$")
# A Svelte template block that the lines below fill: `{#if open}`, `{#each items as item}`, `{:else}`.
_SVELTE_BLOCK = re.compile(r"\{[#:][a-z]+\b[^{}]*\}$")
# A Svelte block's next branch, which closes one and opens the next: `{:else}`, `{:else if x}`, `{:then v}`.
_SVELTE_BRANCH = re.compile(r"\{:[a-z]+\b[^{}]*\}$")
_CLOSING_WORDS = ("end", "fi", "done", "esac")

_OPENER_WORD = re.compile(r"(?:^|[^\w.$])(?:do|then|else|begin|repeat)$")

@dataclass(frozen=True)
class Shaped:
    """A shaped completion: insert ``text`` at the cursor, replacing the first
    ``replace_chars`` characters of the line right of the cursor."""

    text: str
    replace_chars: int = 0


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def indent_width(line: str) -> int:
    """Columns of leading whitespace; a tab advances to the next tab stop."""
    width = 0
    for ch in line:
        if ch == " ":
            width += 1
        elif ch == "\t":
            width += TAB_WIDTH - width % TAB_WIDTH
        else:
            break
    return width


def opens_block(line: str, *, markup: bool = False, above: str = "") -> bool:
    """Whether ``line`` ends with a block/continuation opener.

    ``:`` (not ``::``), ``{``, ``(``, ``[``, ``=>``, ``->`` (only after a space
    or ``)``, so C's ``ptr->`` member access is not an opener), and the words
    ``do then else begin repeat``; in ``markup`` (see :func:`tags.in_markup`),
    also an element's opening tag (``<ul>``, ``<div className="a">``, or the
    ``>`` line of one whose attributes take lines of their own, begun in
    ``above``: see :func:`tags.opening_tag_at_end`) and a Svelte block's
    (``{#if open}``, ``{:else}``).
    """
    s = line.rstrip()
    if not s:
        return False
    if s.endswith("::"):
        return False  # C++/Rust path separator: the user is typing a name
    if s.endswith((":", "{", "(", "[", "=>")):
        return True
    if s.endswith("->") and not s.endswith("-->"):  # `-->` ends an HTML comment, maybe after a tag (below)
        return len(s) == 2 or s[-3] in " \t)"
    return _OPENER_WORD.search(s) is not None or (markup and (opening_tag_at_end(s, above) is not None
                                                              or _SVELTE_BLOCK.search(s) is not None))


def next_suffix_line(suffix: str) -> str | None:
    """First non-blank line after the cursor's line in ``suffix``, or None."""
    for line in split_lines(suffix)[1:]:
        if line.strip():
            return line
    return None


def _block_info(prefix: str, markup: bool = False, rest_of_line: str = "") -> tuple[int, int | None, str | None]:
    """``(block_indent, opener_indent, element)`` for the cursor at the end of ``prefix``, before
    ``rest_of_line``.

    ``opener_indent`` is the indent of the line that opened the cursor's block
    when that line is the cursor line or the previous non-blank line, else None.
    ``element``: in ``markup``, the name of the element whose opening tag is
    that line's end (``<ul>``), else None. Its content may sit at the tag's own
    indent (`<body>` under `<html>`), so lines there stay in the block, which
    ends with the element's closing tag. An element closed right of the cursor
    (``<ul>|</ul>``) is a block like ``{|}``: its content lines go deeper, and
    the closing tag ends it (:func:`tags.markup_end`).
    """
    lines = split_lines(prefix)
    current = lines[-1]
    if current.strip():
        width = indent_width(current)
        # A tag's `>` on a line below its start (Prettier's `<div⏎  className="x"⏎>`): the element's indent is
        # that of the line it starts on.
        if markup and (found := opening_tag(current, _lines_above(lines, len(lines) - 1))) is not None:
            element, width = found[0], indent_width(found[1])
            return (width + 1, width, None) if closing_tag_at(rest_of_line) == element else (width, width, element)
        return (width + 1, width, None) if opens_block(current, markup=markup) else (width, None, None)
    column = indent_width(current)
    for index in range(len(lines) - 2, -1, -1):
        previous = lines[index]
        if previous.strip():
            width = indent_width(previous)
            if markup and (found := opening_tag(previous, _lines_above(lines, index))) is not None:
                return column, indent_width(found[1]), found[0]  # the editor's indent says where the content goes
            if opens_block(previous, markup=markup):
                return max(column, width + 1), width, None
            break
    return column, None, None


def _lines_above(lines: list[str], index: int, count: int = 40) -> str:
    """The `count` lines above `lines[index]`, each with its line break: where a tag that ends there starts."""
    return "".join(line + "\n" for line in lines[max(0, index - count):index])


def block_indent(prefix: str, *, markup: bool = False, rest_of_line: str = "") -> int:
    """Minimum indent of a line that still belongs to the cursor's block.

    After a block opener (on the cursor line, or on the previous non-blank
    line when the cursor line is blank) it is the opener's indent + 1, i.e.
    anything deeper; on a blank line it is at least the cursor's column (the
    editor's auto-indent says where the block is); otherwise it is the cursor
    line's indent. Tabs count to the next multiple of :data:`TAB_WIDTH`. In
    ``markup``, after an opening tag it is the tag's indent on its line, the
    cursor's column on a blank line below it (see :func:`opened_element`), and
    deeper than the tag when ``rest_of_line`` begins with its closing tag.
    """
    return _block_info(prefix, markup, rest_of_line)[0]


def opener_indent(prefix: str, *, markup: bool = False, rest_of_line: str = "") -> int | None:
    """Indent of the line that opened the cursor's block, when that is the cursor line or the previous
    non-blank line (the block the completion fills); else None. A closing line (``}``) at this indent ends
    the block and is kept."""
    return _block_info(prefix, markup, rest_of_line)[1]


def opened_element(prefix: str, *, markup: bool = False, rest_of_line: str = "") -> str | None:
    """In ``markup``, the name of the element whose opening tag ends the cursor's line, or the previous
    non-blank line when the cursor's is blank (``<ul>|``): a multi-line completion ends with the line of its
    closing tag (``</ul>``), kept. None elsewhere, and where ``rest_of_line`` begins with that closing tag."""
    return _block_info(prefix, markup, rest_of_line)[2]


def closing_tag_below_start(text: str, element: str | None, opener_indent: int | None,
                            next_line: str | None) -> int | None:
    """Where `text` writes the closing tag that the document's next non-blank line begins with, blanks before it
    left out: the model's own would double it, on its own line or inline after the last child or text
    (`<li>b</li></ul>`, `Hello world</p>`). That is the first closing tag of that name that `text` did not open
    (its own nested elements are kept), which closes the element open at the cursor as the line below does;
    unless that element's opening tag is the cursor's line or the line above (`element`, see
    :func:`opened_element`) and the closing tag below sits at another indent than it, so it closes an outer one
    (`<li>`+`<ul>|` above `</ul>`). None elsewhere."""
    name = None if next_line is None else closing_tag_at(next_line)
    if name is None or (element == name and indent_width(next_line or "") != opener_indent):
        return None
    end = closing_tag_start(text, name)
    if end is not None:
        while end and text[end - 1] in " \t":
            end -= 1
    return end


def closing_line_below(suffix: str, block_indent: int, opener_indent: int | None, element: str | None,
                       limit: int = 200) -> str | None:
    """The line below the cursor's whose closing tag ends the element the cursor is in, for
    :func:`closing_tag_below_start`: the next non-blank line if it begins with one; else the first line that
    leaves the cursor's block, if it begins with one (`<div>|` above children the document has, then its
    `</div>`). That line is shallower than ``block_indent``; with ``element`` opened on the cursor's line or the
    one above, shallower than its tag (``opener_indent``) or a closing tag at its indent. None elsewhere; only
    `limit` lines are read."""
    lines = split_lines(suffix)[1:limit]
    below = [line for line in lines if line.strip()]
    if not below or closing_tag_at(below[0]) is not None:
        return below[0] if below else None
    if element is not None and opener_indent is not None:
        # Content may sit at the tag's own indent (`<body>` under `<html>`): only a closing tag ends it there.
        def inside(line: str) -> bool:
            width = indent_width(line)
            return width > opener_indent or width == opener_indent and closing_tag_at(line) is None
    else:
        def inside(line: str) -> bool:
            return indent_width(line) >= block_indent
    leaving = next((line for line in below if not inside(line)), None)
    return leaving if leaving is not None and closing_tag_at(leaving) is not None else None


# --------------------------------------------------------------------------
# Mode and early stop
# --------------------------------------------------------------------------


def completion_mode(line_before_cursor: str, line_after_cursor: str, policy: str, *, markup: bool = False,
                    above: str = "") -> Mode:
    """Single- or multi-line completion for this cursor.

    ``policy`` ``single``/``multi`` force the mode; anything else means auto.
    Auto is multi only with nothing but whitespace right of the cursor and
    either a blank line before it or a line ending in a block opener; code
    right of the cursor means an inline edit, which stays single-line. The
    ``}`` an editor closed as the user typed ``{`` is no code: ``f() {|}``
    is the start of an empty block, where the body goes (as Copilot and
    Tabby take it), not an inline edit. Likewise in ``markup`` an empty
    element's closing tag: ``<ul>|</ul>`` is where its content goes, one line
    of text or lines of elements; and a line ending in an opening tag
    (``<ul>|``) opens a block, as does the ``>|`` line of a tag begun in
    ``above`` (the text before the cursor's line).
    """
    if policy in ("single", "multi"):
        return policy  # type: ignore[return-value]
    if line_after_cursor.strip():
        return "multi" if in_empty_braces(line_before_cursor, line_after_cursor) or (
            markup and in_empty_element(line_before_cursor, line_after_cursor, above)) else "single"
    if not line_before_cursor.strip() or opens_block(line_before_cursor, markup=markup, above=above):
        return "multi"
    return "single"


def _end_of_block(
    lines: list[str],
    *,
    line_before_cursor: str,
    next_line: str | None,
    block_indent: int,
    opener_indent: int | None = None,
    element: str | None = None,
    markup: bool = False,
) -> int | None:
    """How many of ``lines`` (the completion split at newlines) to keep, or None
    if the block has not ended within them.

    The first line continues the cursor line, so only later lines are checked
    for dedent. Ends: a line shallower than ``block_indent`` (kept if it is a
    closing-only line like ``}`` at exactly ``opener_indent``; one there that
    closes and reopens, ``} else {`` or in ``markup`` Svelte's ``{:else}``, goes
    on to the next block), a line equal to
    the next non-blank suffix line (the model is re-emitting existing code; a
    closing line there counts with more or less punctuation, ``};`` for ``}``),
    two consecutive blank lines, or the line with the closing tag of ``element``
    (see :func:`opened_element`), kept.
    """
    target = next_line.strip() if next_line else ""
    text = "\n".join(lines)
    close_line = None
    if element is not None and (close := closing_tag_start(text, element)) is not None:
        close_line = text[:close].count("\n")
    blank_run = 0
    line_start = 0
    for i, line in enumerate(lines):
        line_start += len(lines[i - 1]) + 1 if i > 0 else 0
        full = line_before_cursor + line if i == 0 else line
        stripped = full.strip()
        if not stripped:
            blank_run += 1
            if blank_run == 2:
                return i - 1
            continue
        blank_run = 0
        # A repeat of the next suffix line at its own depth: a `}` deeper than the suffix's closes a block
        # the completion opened itself (`if (a) {` ... `  }`), and is kept.
        if target and indent_width(full) == indent_width(next_line or "") and (
                stripped == target or _same_closer(stripped, target)):
            return i
        if i == close_line:
            return i + 1
        if i > 0 and element is not None and indent_width(line) == opener_indent \
                and _closes_an_outer_element(text[:line_start + len(line)], line_start):
            # Content at the tag's own indent (`<li>` under `<ul>` unindented) ends where the model closes an
            # element around it (`</ul>`, its own `</li>` left out): a deeper one would have dedented.
            return i
        if i > 0 and indent_width(line) < block_indent:
            if opener_indent is not None and indent_width(line) == opener_indent:
                if _CLOSING_LINE.match(stripped):
                    return i + 1
                if stripped[0] in ")]}" and opens_block(stripped):
                    # `} else {`, `} catch (e) {`, `}).then((r) => {`: cut here, the block would be left
                    # without its `}`; the next block is the same statement's and ends at its own closer.
                    continue
                if markup and _SVELTE_BRANCH.match(stripped):
                    continue  # `{:else}`: the same, the block going on to its `{/if}`
            return i
    return None


def _closes_an_outer_element(text: str, line_start: int) -> bool:
    """Whether the last line of `text`, from `text[line_start]`, begins with a closing tag that closes no element
    `text` opened before it, but one around the cursor."""
    name = closing_tag_at(text[line_start:])
    if name is None:
        return False
    end = closing_tag_start(text, name)
    return end is not None and end >= line_start


def _same_closer(line: str, other: str) -> bool:
    """Whether two stripped closing-only lines close the same block, one with more punctuation: the `};` a
    model writes for the `}` an editor closed `const f = () => {` with, or `})` for `});`."""
    return (_CLOSING_LINE.match(line) is not None and _CLOSING_LINE.match(other) is not None
            and (line.startswith(other) or other.startswith(line)))


def _dedent_in_progress(line: str, block_indent: int) -> bool:
    """Whether a not-yet-finished line already shows a dedent that will be cut.

    Not when it could still become a closing-only line (``}``, ``end``, ``</ul>``, ``{/if}``...)
    or a Svelte branch (``{:else}``), which shaping may keep: then we must see the whole line.
    """
    stripped = line.lstrip(" \t")
    if not stripped or indent_width(line) >= block_indent or stripped[0] in ")]}" or stripped in ("<", "{") \
            or stripped.startswith(("</", "{/", "{:")):
        return False
    word = re.match(r"\w+", stripped)
    # A word that may still grow into `end`, `fi`, ...: wait for the newline.
    return not (word and any(w.startswith(word.group()) for w in _CLOSING_WORDS))


def make_stop(
    mode: str,
    *,
    line_before_cursor: str,
    next_suffix_line: str | None,
    block_indent: int,
    opener_indent: int | None = None,
    max_lines: int | None = 16,
    markup: bool = False,
    rest_of_line: str = "",
    element: str | None = None,
    closing_below: str | None = None,
) -> Callable[[str], bool]:
    """Early-stop predicate over the generated text so far.

    Single mode: stop at the first newline (shaping keeps only the first line,
    so anything after it is wasted work; a leading newline means the model
    considers the line complete). Multi mode: stop when a completed line ends
    the block (see :func:`shape`), when an unfinished line is already
    shallower than the block, or after ``max_lines`` completed lines (default
    16, the same as :func:`shape`'s cut; None for no limit). ``opener_indent``
    (see :func:`opener_indent`) lets generation go on through a line there
    that closes the block and opens the next (``} else {``), as shaping does.
    In ``markup``, both modes also stop where :func:`tags.markup_end` cuts
    (the model wrote the closing tag or closing quote ``rest_of_line`` has)
    or :func:`closing_tag_below_start` does (the closing tag that
    ``closing_below``, see :func:`closing_line_below`, or else
    ``next_suffix_line`` begins with), and multi mode at the line closing
    ``element`` (:func:`opened_element`).
    """
    def markup_ended(text: str) -> bool:
        return markup and (markup_end(text, line_before_cursor, rest_of_line) is not None or closing_tag_below_start(
            text, element, opener_indent, closing_below or next_suffix_line) is not None)

    if mode != "multi":
        return lambda text: "\n" in text or markup_ended(text)

    def stop(text: str) -> bool:
        if markup_ended(text):
            return True
        if "\n" not in text:
            return False
        lines = text.split("\n")
        complete, partial = lines[:-1], lines[-1]
        if (
            _end_of_block(
                complete,
                line_before_cursor=line_before_cursor,
                next_line=next_suffix_line,
                block_indent=block_indent,
                opener_indent=opener_indent,
                element=element,
                markup=markup,
            )
            is not None
        ):
            return True
        if max_lines is not None and len(complete) >= max_lines:
            return True
        return _dedent_in_progress(partial, block_indent)

    return stop


# --------------------------------------------------------------------------
# Shaping
# --------------------------------------------------------------------------


def shape(
    raw: str, *, prefix: str, suffix: str, mode: str, max_lines: int = 16, markup: bool = False,
    suffix_trimmed: bool = False,
) -> Shaped | None:
    """Shape the model's raw middle for display; None if nothing is left.

    In order: normalize newlines (nothing else: "<EOT>" spelled out is code); cut where the model
    starts copying the prompt's other-file framing (:func:`framing_start`); single mode keeps the
    first line, multi mode cuts at the end of the block (dedent, a repeat of
    the next suffix line, a blank-line pair) and at ``max_lines``; trim
    trailing whitespace; drop an end that duplicates the start of the suffix;
    finally, if the completion itself closes what the closers right of the
    cursor (``)``, ``")``, ``]):`` ...) close, report how many of them it
    replaces in ``replace_chars`` so accepting leaves exactly one set. A
    multi-line completion whose last line the model ended (a line break,
    maybe blanks) before text it does not replace (the ``}`` of ``f() {|}``)
    keeps the break: that text starts a line of its own at the cursor line's
    indent, rather than being joined to the completion's last line.
    In ``markup`` (see :func:`tags.in_markup`) the text ends first where
    :func:`tags.markup_end` says (before the element's closing tag, or the
    value's closing quote, that the rest of the line has) or before the
    closing tag that a line below has (:func:`closing_tag_below_start`),
    and an opening tag opens a block.
    ``suffix_trimmed``: ``raw`` was shaped before, before this same ``suffix`` (a cached suggestion), so its
    end is not compared with the suffix again: it already lost the copy of the suffix the model wrote, and
    what is left may end as the suffix begins (``10`` before ``0``) without repeating it. One that ends with a
    line of blanks before the rest of the line (``, y⏎    `` before ``bar)``) was shown with that rest on its
    last line: that line is kept as it is when the lines before it come back whole.
    """
    text = _clean_raw(raw)
    prefix_lines = split_lines(prefix)
    line_before = prefix_lines[-1]
    rest_of_line = split_lines(suffix)[0]
    if suffix_trimmed and _rest_on_last_line(text, rest_of_line):
        # Not the model ending its line (the rest would go below at the cursor line's indent), nor a blank line
        # that may end a block: the line the rest goes on, at the indent it was shown at.
        body, last = text.rsplit("\n", 1)
        again = shape(body, prefix=prefix, suffix=suffix, mode=mode, max_lines=max_lines, markup=markup,
                      suffix_trimmed=True)
        if again is None or again.text != body:
            return again  # the lines before it were cut: what is left is shaped as any text
        return Shaped(f"{body}\n{last}", _leading_blanks(rest_of_line))
    text = text[:framing_start(text, line_before)]
    if markup:
        text = text[:markup_end(text, line_before, rest_of_line)]
        indent, opener, element = _block_info(prefix, markup, rest_of_line)
        below = closing_line_below(suffix, indent, opener, element)
        text = text[:closing_tag_below_start(text, element, opener, below)]

    if mode == "multi":
        text = _cut_multi(text, prefix=prefix, suffix=suffix, max_lines=max_lines, markup=markup)
    else:
        text = text.split("\n", 1)[0]
    ends_line = mode == "multi" and "\n" in text and not text.rsplit("\n", 1)[1].strip()

    text = _trim_trailing_whitespace(text, rest_of_line, keep_last=suffix_trimmed)
    if not text.strip():
        return None
    if not suffix_trimmed:
        text = _trim_suffix_overlap(text, suffix.replace("\r\n", "\n").replace("\r", "\n"))
    if not text.strip():
        return None
    if _rest_on_last_line(text, rest_of_line):
        # The model's copy of the rest of the line began a line (`foo(x` + `, y⏎    bar)`): the rest goes on that
        # line, at the model's indent. The blanks the copy began with come back, replacing the rest's own, as
        # where the rest goes below by the rule further down: one form, which a cached text keeps as it is.
        blanks = _leading_blanks(rest_of_line)
        return Shaped(text + rest_of_line[:blanks], blanks)
    replace = closer_overlap(text, rest_of_line, line_before)
    if markup:
        replace = max(replace, tag_end_overlap(text, line_before, rest_of_line))
    if ends_line and replace == 0 and _rest_goes_below(text, rest_of_line):
        # The rest of the line, blanks before it left out, goes below the completion: `{` + body + `}`.
        text += "\n" + line_before[:_leading_blanks(line_before)]
        replace = _leading_blanks(rest_of_line)
    return Shaped(text=text, replace_chars=replace)


def _leading_blanks(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _rest_on_last_line(text: str, rest_of_line: str) -> bool:
    """Whether the code right of the cursor goes on the last line of a multi-line `text`, which has only blanks
    (the indent it goes at) and replaces the blanks that begin it."""
    return bool(rest_of_line.strip()) and "\n" in text and not text.rsplit("\n", 1)[1].strip()


def _rest_goes_below(text: str, rest_of_line: str) -> bool:
    """Whether the text right of the cursor starts a line of its own below a completion whose last line the
    model ended: when it is code, or closers below a completion of several lines (the `}` of `f() {|}` below
    the body). Closers after one line close that line (`print(x` + `)`); a completion that already ends its
    last line (it was cut before a repeat of the suffix) needs no second break. A closing tag after one line
    ends that line's element: `<p>Hello` + `</p>`."""
    rest = rest_of_line.strip()
    if not rest or not text.rsplit("\n", 1)[-1].strip():
        return False
    if "\n" not in text and closing_tag_at(rest) is not None:
        return False
    return "\n" in text or any(ch not in CLOSER_CHARS for ch in rest)


def framing_start(text: str, line_before_cursor: str) -> int | None:
    """Where `text` starts a line that opens another file as the prompt's other-file context does
    (``# Path: util.py``), or None.

    A model that writes one is imitating the prompt, not this file: what follows is another file's code.
    The first line counts only on a line blank before the cursor (it is then the line's start).
    """
    start = 0
    for i, line in enumerate(text.split("\n")):
        whole_line = line_before_cursor + line if i == 0 else line
        if (i > 0 or not line_before_cursor.strip()) and is_context_header(whole_line):
            return start
        start += len(line) + 1
    return None


def _clean_raw(raw: str) -> str:
    # Only line breaks: the engine stops at <EOT>'s token id, so "<EOT>" or "</s>" in the text is code the
    # model wrote (an HTML strikethrough, a tokenizer's test), never an end marker to cut at.
    return raw.replace("\r\n", "\n").replace("\r", "\n")


def _cut_multi(text: str, *, prefix: str, suffix: str, max_lines: int, markup: bool = False) -> str:
    indent, opener, element = _block_info(prefix, markup, split_lines(suffix)[0])
    lines = text.split("\n")
    keep = _end_of_block(
        lines,
        line_before_cursor=split_lines(prefix)[-1],
        next_line=next_suffix_line(suffix),
        block_indent=indent,
        opener_indent=opener,
        element=element,
        markup=markup,
    )
    if keep is not None:
        lines = lines[:keep]
    return "\n".join(lines[: max(1, max_lines)])


def _trim_trailing_whitespace(text: str, rest_of_line: str, keep_last: bool = False) -> str:
    """Strip trailing whitespace of every line and drop trailing blank lines.

    Exception: the last line's trailing whitespace is kept when it joins
    non-whitespace text right of the cursor (``foo(a, |b)`` needs the space),
    or with ``keep_last`` wherever text is right of the cursor (a cached suggestion, trimmed before: blanks
    left at its end are those that a copy of the suffix began with, ``x  `` of ``x    x`` before ``  x``).
    """
    lines = text.split("\n")
    while len(lines) > 1 and not lines[-1].strip():
        lines.pop()
    keep_last = bool(rest_of_line) and (keep_last or not rest_of_line[0].isspace()) and bool(lines[-1].strip())
    last = lines[-1]
    lines = [line.rstrip() for line in lines]
    if keep_last:
        lines[-1] = last
    return "\n".join(lines)


def _trim_suffix_overlap(text: str, suffix: str) -> str:
    """Drop the completion's end where it duplicates the start of the suffix.

    The overlap must contain non-whitespace, and be at least 3 characters or
    end at a line end of the suffix, blanks before it aside (so a lone shared letter is not
    mistaken for a duplicate). Overlaps made only of closers within the
    cursor's line are left to :func:`closers.closer_overlap`, which replaces them.
    """
    for k in range(min(len(text), len(suffix)), 0, -1):
        overlap = suffix[:k]
        if not text.endswith(overlap) or not overlap.strip():
            continue
        # Blanks after the overlap, ending the line, count as its end: the text's own were trimmed (` = ` at
        # `x| = ` comes as ` =`).
        if k < 3 and _rest_of_line(suffix, k).strip():
            continue
        if "\n" not in overlap and all(ch in CLOSER_CHARS for ch in overlap):
            continue
        return text[:-k]
    return text


def _rest_of_line(text: str, start: int) -> str:
    """``text`` from ``start`` to the end of its line (without copying the lines after it)."""
    end = text.find("\n", start)
    return text[start:] if end < 0 else text[start:end]


def _is_word(c: str) -> bool:
    return c.isalnum() or c == "_"


def repetition_start(text: str, *, min_repeats: int = 4, max_unit: int = 80) -> int | None:
    """Where a degenerate loop at the end of `text` begins, after its first occurrence; else None.

    Small models fall into loops (`1, 1, 1, 1, …`, `'S', 'S', 'S', …`). When the text ends with the same
    unit (1 to `max_unit` characters, up to a line of code, with a letter or digit: `----` separators are
    fine) `min_repeats`
    times in a row, then possibly the start of one more copy (the budget ran out inside it), the
    completion keeps one copy of the unit. A repeat that splits a word is no loop: `10000`, `0xFFFF` and
    `aaaa` are literals and names, never cut.
    """
    for unit_len in range(1, max_unit + 1):
        if unit_len * min_repeats > len(text):
            break
        # The longest end of `text` with this period (copies, then maybe part of one more): one character
        # compared for most periods, since this runs after every generated token.
        periodic = unit_len
        while periodic < len(text) and text[-periodic - 1] == text[-periodic - 1 + unit_len]:
            periodic += 1
        for partial in range(unit_len):
            end = len(text) - partial  # where the last whole copy ends
            copies = (end - (len(text) - periodic)) // unit_len
            if copies < min_repeats:
                break  # a later end leaves fewer whole copies
            start = end - copies * unit_len
            if not any(c.isalnum() for c in text[end - unit_len:end]) or any(
                    0 < b < len(text) and _is_word(text[b - 1]) and _is_word(text[b])
                    for b in range(start, end + 1, unit_len)):
                continue  # no letter or digit (`----`), or a boundary between copies inside a word
            return start + unit_len
    return None


def drop_loop(text: str) -> str:
    """`text` with a loop that ends it cut after the loop's first copy (see :func:`repetition_start`).

    The line break that generation stopped at (a single-line completion ends at the first one) does not hide
    the loop before it: `the string to the string to the string to the string to the` + a line break is
    cut to `the string to the` too.
    """
    body = text.rstrip("\r\n")
    start = repetition_start(body)
    return text if start is None else body[:start]


LOOP_STOP_REPEATS = 8


def looping(text: str) -> bool:
    """Whether generation should stop on a loop: `text` ends with a unit repeated LOOP_STOP_REPEATS times.

    Four copies (repetition_start's default) are enough to cut a loop the text never came out of, but too few
    to stop generating: `[0, 0, 0, 0, 0, 0]` and `b"\\x00\\x00\\x00\\x00"` are code, shown in full when
    the model is let to close them. A loop the model never leaves still ends after a few more copies (and a
    literal of nine or more equal items is taken for one).
    """
    return repetition_start(text, min_repeats=LOOP_STOP_REPEATS) is not None


def drop_partial_word(text: str) -> str:
    """`text` without a trailing word fragment: generation was cut there, so the word may be unfinished."""
    end = len(text)
    while end and _is_word(text[end - 1]):
        end -= 1
    return text[:end]


def drop_partial_line(text: str) -> str:
    """A multi-line completion cut by its budget without its unfinished last line (half a statement is not
    code to accept), unless that line is all there is."""
    complete, _, _ = text.rpartition("\n")
    return complete + "\n" if complete.strip() else text


def drop_repeated_lines(text: str, line_before_cursor: str = "") -> str:
    """A multi-line completion cut by its budget with its last line, or its last block of lines, once, not
    repeated: the model was in a loop that the budget ended before it could be told from code (`looping`
    needs eight copies), and a block of two or three lines fits the budget only twice. The first line is
    compared as the line it completes (`line_before_cursor` + it), which holds its indentation."""
    body = text.rstrip("\n")
    lines = body.split("\n")
    whole = [line_before_cursor + lines[0], *lines[1:]]
    keep = len(lines)
    while True:
        period = next((k for k in range(1, keep // 2 + 1)
                       if any(line.strip() for line in whole[keep - k:keep])
                       and whole[keep - k:keep] == whole[keep - 2 * k:keep - k]), None)
        if period is None:
            return "\n".join(lines[:keep]) + text[len(body):]
        keep -= period
