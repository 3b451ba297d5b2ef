"""Markup around the cursor: HTML, XML, JSX/TSX, Vue and Svelte templates. Pure functions over the cursor's line.

A tag is told from a generic or a comparison by what surrounds it, so these rules never fire in C++, Rust, Java
or TypeScript: a tag starts after a blank, a bracket or an operator, never right after a name (`vector<int>`,
`Map<string, number>`, `x<y>z`), and its name follows the `<` at once (`a < b` is a comparison). Rules that
would still fire on such code (an opening tag that ends a line, like C++'s `template <typename T>`) apply only
where :func:`in_markup` says the cursor is in markup: a markup language, or a closing tag right of the cursor.
"""

from __future__ import annotations

import re
from functools import lru_cache

from .closers import CLOSER_CHARS, first_close
from .text import split_lines

__all__ = ["MARKUP_LANGUAGES", "closing_tag_at", "closing_tag_start", "in_empty_element", "in_markup", "markup_end",
           "opening_tag", "opening_tag_at_end", "tag_end_overlap"]

# LSP language ids (VS Code's; Neovim's filetypes are the same) of documents written in tags.
MARKUP_LANGUAGES = frozenset({"html", "xml", "xsl", "javascriptreact", "typescriptreact", "vue", "svelte", "astro"})

_NAME = r"[A-Za-z][\w.:-]*"
# `</div>`, `</Foo.Bar>`, `</svg:rect >`, and `</>` (a JSX fragment's end).
_CLOSING_TAG = re.compile(rf"</({_NAME})?\s*>")
# A tag's start: after a blank, a bracket, `>`, an operator (not a name's end) or a template literal's backtick
# (`` `<a href="${url}"> ``: HTML built in JavaScript), the name at once after `<` and then a blank, `>` or `/`;
# or a JSX fragment's `<>`. Not a TSX generic arrow's type parameters
# (`render={<T extends Row>(r: T) => r.id}`, `<T = unknown>`): no tag has an attribute `extends` or a bare `=`.
_TAG_START = re.compile(rf"(?:^|(?<=[\s(\[{{}}>=?:,&|;`]))<(?:({_NAME})(?!\s+(?:extends\s|=))(?=[\s>/])|(?=>))")
# Elements that never have content or a closing tag in HTML: a line ending in one opens nothing.
_VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
                   "track", "wbr"})
_QUOTES = "\"'`"
# How much of the cursor's line the rules read, back from its end: far more than a tag or a value spans, and a
# minified page's 100 KB line is not scanned at every generated token.
TAIL_CHARS = 2000
# A line that starts with an attribute and its value's quote or brace: `className="`, `:class="`, `@click="`.
_ATTRIBUTE_LINE = re.compile(r"\s*[\w:@.-]+=[\"'{]")


def _is_html(name: str, names: frozenset[str]) -> bool:
    """Whether `name` is one of HTML's element `names`, in HTML's any case (`br`, `BR`); not a JSX component
    named like one (`<Link href="/">`, `<Col span={8}>`, `<Script>`), which has children of its own kind."""
    return name.lower() in names and (name.islower() or name.isupper())


def _is_void(name: str) -> bool:
    """Whether `name` is an HTML void element's (:func:`_is_html`)."""
    return _is_html(name, _VOID)


def in_markup(language_id: str, suffix: str) -> bool:
    """Whether the cursor that `suffix` follows is in markup: in a markup language's document, or before a
    closing tag (`</li>` on the cursor's line, or starting the next line that is not blank), whatever the
    language (JSX in a `.js` file, HTML in a Python string)."""
    if language_id in MARKUP_LANGUAGES:
        return True
    lines = split_lines(suffix)
    if _CLOSING_TAG.search(lines[0]):
        return True
    following = next((line for line in lines[1:] if line.strip()), "")
    return closing_tag_at(following) is not None


def closing_tag_at(text: str) -> str | None:
    """The name of the closing tag that `text` begins with, after blanks (`""` for a fragment's `</>`); else
    None."""
    match = _CLOSING_TAG.match(text.lstrip(" \t"))
    return None if match is None else match.group(1) or ""


# What the lexer is in, innermost last, each frame with where it starts: an element's text (its name), a tag's
# attributes (its name), an attribute's quoted value (its quote), a `{` expression's code and a string of code
# (its quote; a template literal's `${` opens code again). At the bottom, what lies around the line's
# outermost elements, which may be code (`return <p>`) or an element's text opened on an earlier line (`Don't
# <a>`): only a tag or a `{` there opens anything, as in the rest of this module. A `<script>`'s or `<style>`'s
# content is code (its name), to its closing tag: `"</div>"` there is a string, not the end of an element.
_GAP, _TEXT, _TAG, _VALUE, _CODE, _STRING, _RAW = "gap", "text", "tag", "value", "code", "string", "raw"
# HTML's elements whose content is JavaScript or CSS, not markup.
_RAW_TEXT = frozenset({"script", "style"})
_Frame = tuple[str, str, int]
_CLOSING_AT = re.compile(rf"</({_NAME})?\s*>")


def _lex(s: str, stack: tuple[_Frame, ...], offset: int = 0) -> tuple[str, tuple[_Frame, ...], int | None]:
    """Markup and the code in it, left to right from the frames `stack` (never empty at the start): `s` with
    every character of an element's text and of a comment in code blanked (`Don't` between tags is no string,
    its quote opens nothing for the string scanner of closers.py; line breaks are kept), the frames open at its
    end, and the index of the character that closed the bottom frame, where lexing stopped (None if it stayed
    open). `offset` is added to the start recorded for each frame.

    In code a string, a template literal's fields and comments are told apart, and a tag starts only as
    :data:`_TAG_START` says, so a generic or a comparison (`Map<string, T>`, `a < b`) opens nothing."""
    frames, i = list(stack), 0
    blanks: list[list[int]] = []  # [start, end) runs to blank; the line is copied once, at the end
    while i < len(s):
        kind, detail, _ = frames[-1]
        ch = s[i]
        closed = False
        if kind == _TEXT:
            if s.startswith("</", i) and (match := _CLOSING_AT.match(s, i)):
                name = match.group(1) or ""
                depth = next((d for d in range(len(frames) - 1, -1, -1) if frames[d][:2] == (_TEXT, name)), None)
                if depth is not None:  # else an element opened above the text lexed: no frame of its own
                    del frames[depth:]
                    closed = depth == 0
                i = match.end() - 1
            elif ch == "<" and (match := _TAG_START.match(s, i)):
                frames.append((_TAG, match.group(1) or "", offset + i))
                i = match.end() - 1
            elif ch == "{":
                frames.append((_CODE, "", offset + i))
            elif ch != "\n":
                if blanks and blanks[-1][1] == i:
                    blanks[-1][1] = i + 1
                else:
                    blanks.append([i, i + 1])
        elif kind == _RAW:
            if s.startswith("</", i) and (match := _CLOSING_AT.match(s, i)) and match.group(1) == detail:
                frames.pop()
                closed = not frames
                i = match.end() - 1
            elif ch in _QUOTES:
                frames.append((_STRING, ch, offset + i))
            elif ch == "{":
                frames.append((_CODE, "", offset + i))
            elif s.startswith("/*", i) or (s.startswith("//", i) and detail.lower() == "script"):  # CSS has no `//`
                end = _comment_end(s, i)
                blanks.append([i, end])
                i = end - 1
        elif kind == _TAG:
            if ch in "\"'":
                frames.append((_VALUE, ch, offset + i))
            elif ch == "{":
                frames.append((_CODE, "", offset + i))
            elif ch == ">" or s.startswith("/>", i):
                i += ch == "/"
                frames.pop()
                closed = not frames
                if ch == ">" and not _is_void(detail):
                    frames.append((_RAW if _is_html(detail, _RAW_TEXT) else _TEXT, detail, offset + i + 1))
        elif kind == _VALUE:
            if ch == detail:
                frames.pop()
                closed = not frames
        elif kind == _STRING:
            if ch == "\\":
                i += 1
            elif ch == detail or (ch == "\n" and detail != "`"):
                frames.pop()
                closed = not frames
            elif detail == "`" and s.startswith("${", i):
                frames.append((_CODE, "", offset + i + 1))
                i += 1
        elif ch == "{":
            frames.append((_CODE, "", offset + i))
        elif kind == _GAP:
            if ch == "<" and (match := _TAG_START.match(s, i)):
                frames.append((_TAG, match.group(1) or "", offset + i))
                i = match.end() - 1
        elif ch in _QUOTES:
            frames.append((_STRING, ch, offset + i))
        elif ch == "}":
            frames.pop()
            closed = not frames
        elif s.startswith(("//", "/*"), i):
            end = _comment_end(s, i)
            blanks.append([i, end])
            i = end - 1
        elif ch == "<" and (match := _TAG_START.match(s, i)):
            frames.append((_TAG, match.group(1) or "", offset + i))
            i = match.end() - 1
        if closed:
            return _blank(s[:i + 1], blanks), (), i
        i += 1
    return _blank(s, blanks), tuple(frames), None


def _comment_end(s: str, i: int) -> int:
    """Where the `//` or `/*` comment at `s[i]` ends: after its `*/`, at its line break, or at the end of `s`."""
    end = s.find("\n", i) if s[i + 1] == "/" else s.find("*/", i + 2) + 1
    return len(s) if end <= 0 else end + (s[i + 1] == "*")


def _blank(s: str, runs: list[list[int]]) -> str:
    """`s` with the characters of `runs` blanked, line breaks kept."""
    if not runs:
        return s
    out = list(s)
    for start, end in runs:
        out[start:end] = (" " if c != "\n" else c for c in s[start:end])
    return "".join(out)


def _tag_end(line: str, start: int) -> int | None:
    """The index of the `>` that ends the tag whose attributes start at `line[start]`; None if the line ends
    first. A `>` in a quoted value or in braces (`onClick={() => go()}`, `{a > b}`, `render={() => <p>Don't</p>}`)
    is the value's."""
    _, _, end = _lex(line[start:], ((_TAG, "", start),))
    return None if end is None else start + end


def opening_tag_at_end(line: str, above: str = "") -> str | None:
    """The name of the element whose opening tag ends `line` (`<ul>`, `<div className="a">`, `<>`: "" for a
    fragment), which the lines below fill; None for anything else, a self-closing tag (`<br/>`) and HTML's void
    elements (`<br>`) included. `above`: the text before `line` (up to its line break), where a tag whose
    attributes take lines of their own starts (Prettier's `<div⏎  className="x"⏎>`)."""
    found = opening_tag(line, above)
    return None if found is None else found[0]


# How many tag starts above a line are tried for the tag its `>` ends: a tag's attributes hold few elements, and
# each try lexes to that tag's end (a page of unclosed `<a {` would take the rest of the text each time).
_TRIED_ABOVE = 16


def opening_tag(line: str, above: str = "") -> tuple[str, str] | None:
    """:func:`opening_tag_at_end`'s element name, and the line its tag starts on (`line` itself, or one in
    `above`: its indent is the element's)."""
    s = _without_trailing_comments(line.rstrip()[-TAIL_CHARS:])
    if not s.endswith(">") or s.endswith("/>"):
        return None
    found = _tag_ending(s, 0)
    if found is None and above and not _TAG_START.search(s):
        # A line with no tag start of its own may end one begun above: the nearest start whose tag ends here.
        text = above[-TAIL_CHARS:] + s
        found = _tag_ending(text, len(text) - len(s) - 1, _TRIED_ABOVE)
        if found is not None:
            start = text.rfind("\n", 0, found[1]) + 1
            end = text.find("\n", found[1])
            return found[0], text[start:end]
    if found is None:
        return None
    return found[0], line


def _without_trailing_comments(s: str) -> str:
    """`s` without the HTML comments that end it, and the blanks before them: the tag before a note
    (`<div class="container"> <!-- main wrapper -->`) still ends the line's markup."""
    while s.endswith("-->") and (start := s.rfind("<!--")) >= 0:
        s = s[:start].rstrip()
    return s


def _tag_ending(s: str, before: int, tried: int | None = None) -> tuple[str, int] | None:
    """The name and start of the tag, starting before `s[before]`, whose `>` is the last character of `s`,
    the nearest such start of the `tried` nearest (all if None); None if there is none or it is a void
    element's."""
    for match in list(reversed(list(_TAG_START.finditer(s, 0, len(s) if before <= 0 else before + 1))))[:tried]:
        if _tag_end(s, match.end()) == len(s) - 1:
            name = match.group(1) or ""
            return None if _is_void(name) else (name, match.start())
    return None


def in_empty_element(line_before: str, rest_of_line: str, above: str = "") -> bool:
    """Whether the cursor is between an opening tag and its closing tag, with nothing between them but
    blanks: `<ul>|</ul>` (an editor closed the tag as the user typed it), where the element's content goes.
    `above`: as for :func:`opening_tag_at_end`."""
    name = opening_tag_at_end(line_before, above)
    return name is not None and closing_tag_at(rest_of_line) == name


def closing_tag_start(text: str, name: str) -> int | None:
    """The index in `text` of the first closing tag `</name>` that closes an element `text` did not open."""
    if name:
        opening = re.compile(rf"<{re.escape(name)}(?=[\s>/])|</{re.escape(name)}\s*>")
    else:
        opening = re.compile(r"<>|</>")
    depth = 0
    for match in opening.finditer(text):
        if match.group().startswith("</"):
            if depth == 0:
                return match.start()
            depth -= 1
        elif match.group() == "<>":
            depth += 1
        else:
            end = _tag_end(text, match.end())
            if end is None or text[end - 1] != "/":  # `<div />` closes itself
                depth += 1
    return None


def _code_start(line_before: str) -> tuple[int, str, tuple[_Frame, ...]] | None:
    """Where the markup code the cursor is in starts on its line: the outermost tag, `{` expression or script's
    content still open at the cursor (the tag whose attributes it is among, though an attribute's expression
    holds elements of its own: `render={() => <p>Don't</p>} path="|`; `<script>` + `x = "|`), or the line's
    start when the line starts with an attribute (`  onClick={`: a tag's attributes one per line); with the line
    from there on, every element's text blanked, and the lexer's frames at the cursor. None elsewhere: script
    lines of a Vue file below its `<script>`, the ordinary code of a TSX file, an element's text (its `Don't`
    opens no string)."""
    first = _TAG_START.search(line_before)
    if first is not None:
        masked, frames, _ = _lex(line_before[first.start():], ((_GAP, "", 0),), first.start())
    elif _ATTRIBUTE_LINE.match(line_before):
        masked, frames, _ = _lex(line_before, ((_GAP, "", 0), (_TAG, "", 0)))
    else:
        return None
    start = next((start for kind, _, start in frames[1:] if kind != _TEXT), None)
    if start is None:
        return None
    return start, masked[start - (first.start() if first else 0):], frames


def markup_end(text: str, line_before: str, rest_of_line: str) -> int | None:
    """Where a completion in markup ends, or None: before the closing tag that the rest of the cursor's line
    begins with (`<li>|</li>`: the model's own `</li>` would double the editor's), blanks before it left out;
    or, when the rest of the line is more than closers (`className="|"></p>`, `onClick={|}></button>`), before
    the quote or brace that closes the value the cursor is in: what the model wrote after it would go in front
    of the rest of the line, doubling it."""
    name, code = _cursor_markup(line_before, rest_of_line)
    if name is not None:
        end = closing_tag_start(text, name)
        if end is not None:
            while end and text[end - 1] in " \t":
                end -= 1
        return end
    if code is None:
        return None
    masked_code, frames = code
    masked_text, _, _ = _lex(text, frames)  # the model's own elements' text is no code either
    end = first_close(masked_text, masked_code)
    return end if end is not None and text[end] == rest_of_line[0] else None


def tag_end_overlap(text: str, line_before: str, rest_of_line: str) -> int:
    """How many characters right of the cursor `text` replaces when it ends the tag the cursor is in, where the
    rest of the line is only closers up to that tag's `>` (`<a href="|">`): the model closed the value, wrote
    more attributes and the `>` itself (`x" title="y">Home</a>`), so the rest's closers up to its `>` are
    typed over, not left after the text. 0 elsewhere."""
    rest = rest_of_line.rstrip()
    gt = rest.find(">")
    if gt < 0 or any(ch not in CLOSER_CHARS for ch in rest):
        return 0
    found = _code_start(line_before[-TAIL_CHARS:])
    if found is None:
        return 0
    frames = found[2]
    tag = max((depth for depth, frame in enumerate(frames) if frame[0] == _TAG), default=None)
    if tag is None:
        return 0
    _, _, end = _lex(text, frames[tag:])  # the tag at the bottom: where the text closes it
    return 0 if end is None else gt + 1


@lru_cache(maxsize=64)
def _cursor_markup(line_before: str, rest_of_line: str
                   ) -> tuple[str | None, tuple[str, tuple[_Frame, ...]] | None]:
    """What :func:`markup_end` needs of the cursor's line, once per cursor (it runs at every generated token):
    the closing tag's name the rest of the line begins with, or else the code of the value the cursor is in (its
    elements' text blanked) and the lexer's frames there, when the rest of the line closes it and more (None
    when it is only closers, which the completion types over: closers.py)."""
    name = closing_tag_at(rest_of_line)
    if name is not None:
        return name, None
    if not rest_of_line or rest_of_line[0] not in "\"'`)]}" or all(ch in CLOSER_CHARS for ch in rest_of_line):
        return None, None
    found = _code_start(line_before[-TAIL_CHARS:])
    return None, None if found is None else found[1:]
