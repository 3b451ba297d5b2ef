"""Fill a docstring skeleton blank by blank with fill-in-the-middle calls, and build the edit."""

from __future__ import annotations

from dataclasses import dataclass

from ..text import line_break_of, lone_cr_to_lf
from .clean import clean, fallback, max_tokens
from .core import DocEdit, DocTarget, Infill, line_offset, split_lines, utf16_len
from .python_target import continued_header, header_colon
from .styles import Part, Slot, in_markup, skeleton
from .treesitter_target import joins_go_doc

PREFIX_CHARS = 4000
SUFFIX_CHARS = 2000


@dataclass(frozen=True)
class Blank:
    """How one blank of a docstring was filled (what `eval --suite docstrings` counts)."""

    slot: Slot
    raw: str  # the model's words
    text: str  # what the docstring got
    rejected: str | None  # why the neutral wording replaced the model's words; None when they were kept


def generate_docstring(text: str, target: DocTarget, infill: Infill, *, style: str = "google",
                       max_words: int = 40, blanks: list[Blank] | None = None) -> DocEdit:
    """The edit inserting `target`'s docstring; its line is an LSP line of `text`, its character in UTF-16.
    Each blank's story is appended to `blanks` when given."""
    line_break = line_break_of(text)  # the document's, for the docstring's lines
    text = lone_cr_to_lf(text)  # the same lines and offsets as LSP's, split on "\n" alone
    lines = split_lines(text)
    char, gap, head, tail = 0, "", "", ""
    joined = False  # a header's backslash taken out: the statement keeps its own line
    if target.language == "python":
        split = _python_split(text, lines, target)
        if split is not None:
            char, gap = split
            joined = gap.endswith("\\")
            head, tail = "\n", "" if joined else target.indent
    elif target.column:
        # Other code before the declaration on its line: the comment goes on lines of its own between the two,
        # in place of the blanks that separated them.
        before = lines[target.insert_line][:target.column].rstrip(" \t")
        char, gap = len(before), lines[target.insert_line][len(before):target.column]
        # A blank line keeps a user's `/* x */` (that was on the `func` line) out of the new Go doc comment's group.
        head = "\n\n" if target.language == "go" and joins_go_doc(lines, target.insert_line, target.column) else "\n"
        tail = target.indent
    body = skeleton(target, style, _unit(target.indent))
    if joined:  # the line's own break follows the docstring, and the statement, already indented, after it
        body[-1] = str(body[-1]).removesuffix("\n")
    parts: list[Part] = [head, *body, tail]
    offset = line_offset(text, target.insert_line) + char
    # The skeleton uses '\n'; give the model one line-ending convention throughout.
    before = _tail(text[:offset], PREFIX_CHARS).replace("\r\n", "\n")
    after = _head(text[offset + len(gap):], SUFFIX_CHARS).replace("\r\n", "\n")

    filled: list[str] = []
    # A blank's words are its own: the model repeating an earlier blank (`data: The sock.` then `address:
    # The sock.`) or another parameter's neutral wording (`passwd: The user.`) says nothing about this one.
    said = {fallback(Slot("param", name), target) for name in target.params}
    for i, part in enumerate(parts):
        if isinstance(part, str):
            filled.append(part)
            continue
        prefix = before + "".join(filled)
        suffix = _render_rest(parts[i + 1:]) + after
        raw = infill(prefix, suffix, max_tokens(max_words))
        words, rejected = clean(raw, part, target, max_words, document=text, context=before + after)
        if rejected is None and words in said and words != fallback(part, target):
            words, rejected = fallback(part, target), "another blank's words"
        said.add(words)
        words = in_markup(words, target.language)
        filled.append(words)
        if blanks is not None:
            blanks.append(Blank(part, raw, words, rejected))

    new_text = "".join(filled)
    if target.language == "python" and "\\" in new_text:
        new_text = new_text.replace('"""', 'r"""', 1)  # PEP 257: backslashes need a raw docstring
    new_text = new_text.replace("\n", line_break)
    line_text = lines[target.insert_line] if target.insert_line < len(lines) else ""
    return DocEdit(target.insert_line, utf16_len(line_text[:char]), new_text, replaced=utf16_len(gap))


def _python_split(text: str, lines: list[str], target: DocTarget) -> tuple[int, str] | None:
    """For a one-line body (`def f(x): return x`) return (column right after the colon, the blank gap that
    follows it): the docstring goes in place of the gap, so the statement moves onto its own line below
    it with the body's indent and no blank is left at the end of the header; None for an ordinary body.
    A body carried onto the next line by a backslash (`def f(x): \\`) has the gap and the backslash taken out."""
    colon = header_colon(text, target.line)
    if colon is None or colon[0] != target.insert_line:
        return None
    row, col = colon
    rest = lines[row][col + 1:]
    if continued_header(lines, colon):  # `def f(x): \\`, the statement on the next line: the backslash goes too
        return col + 1, rest
    gap = rest[: len(rest) - len(rest.lstrip(" \t"))]
    if not rest.strip() or rest.lstrip().startswith("#"):
        return None
    return col + 1, gap


def _unit(indent: str) -> str:
    return "\t" if "\t" in indent else "    "


def _render_rest(parts: list[Part]) -> str:
    """The skeleton after a blank, with later blanks left empty (and no dangling spaces)."""
    text = "".join(p for p in parts if isinstance(p, str))
    return "\n".join(line.rstrip(" \t") for line in text.split("\n"))


def _tail(text: str, limit: int) -> str:
    """The last `limit` characters, starting at a line boundary when truncated."""
    if len(text) <= limit:
        return text
    cut = text[-limit:]
    nl = cut.find("\n")
    return cut[nl + 1:] if nl >= 0 else cut


def _head(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit]
    nl = cut.rfind("\n")
    return cut[: nl + 1] if nl >= 0 else cut
