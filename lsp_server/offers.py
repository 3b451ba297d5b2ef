"""What a suggestion becomes for the client: an Offer (its text and the range it replaces), shaped anew when the
cache serves it again, or an item of the completion menu. Pure: the server's `suggest` makes the Offers, its
handlers turn them into lsprotocol types with these.
"""

from __future__ import annotations

import dataclasses

from lsprotocol import types

from .cache import Found
from .shaping import Shaped, shape
from .text import split_lines


@dataclasses.dataclass(frozen=True)
class Offer:
    """A suggestion as the client applies it: `text` replaces `range` (the cursor, plus the closers right of
    it that the suggestion types over, plus the selected completion item it extends)."""
    text: str
    range: types.Range


def served_again(found: Found, prefix: str, suffix: str, line_break: str, markup: bool = False) -> Shaped | None:
    """A cached suggestion (kept with the document's line breaks) for this cursor: at the cursor it was made at,
    what was shown there, as it was (shaping the shaped text anew may judge it otherwise than the model's middle
    it came from: `foo(x` + `, y⏎    bar)` shows `, y⏎    ` before `bar)`, which looks like a middle whose
    last line the model ended); typed into, its rest shaped anew (:func:`reshaped`)."""
    if found.replace_chars is None:
        return reshaped(found.completion, prefix, suffix, line_break, markup)
    return Shaped(found.completion.replace(line_break, "\n"), found.replace_chars) if found.completion.strip() else None


def reshaped(cached: str, prefix: str, suffix: str, line_break: str, markup: bool = False) -> Shaped | None:
    """A cached suggestion (kept with the document's line breaks) shaped anew at this cursor: as the user
    types it through, which closers right of the cursor it types over changes. Its end is not trimmed against the
    suffix again: the cache's entry has this same suffix, against which it was trimmed when it was made."""
    cached = cached.replace(line_break, "\n")
    return shape(cached, prefix=prefix[-2000:], suffix=suffix[:2000], mode="multi" if "\n" in cached else "single",
                 markup=markup, suffix_trimmed=True)


def completion_item(offer: Offer, rank: int, *, markdown: bool) -> types.CompletionItem:
    """`offer` as the completion menu's `rank`-th item (0: preselected), labelled by its first line; its full
    text is the item's documentation, in a code block where the client reads `markdown`. Its lines after the first
    carry their own indentation (the document's), so it is inserted as is: a client whose default is to indent
    them as the cursor's line (VS Code's) would indent them twice."""
    text = offer.text
    # First lines by LSP's line breaks: a suggestion's lines end as the document's do ("\r\n", "\r").
    return types.CompletionItem(
        label=split_lines(text.strip())[0][:60] or text, kind=types.CompletionItemKind.Snippet,
        detail="codellama",
        documentation=types.MarkupContent(types.MarkupKind.Markdown, f"```\n{text}\n```") if markdown else text,
        text_edit=types.TextEdit(offer.range, text), insert_text_format=types.InsertTextFormat.PlainText,
        insert_text_mode=types.InsertTextMode.AsIs,
        sort_text=str(rank), filter_text=split_lines(text)[0], preselect=rank == 0)


def reads_markdown_documentation(caps: types.ClientCapabilities) -> bool:
    """Whether the client renders completion items' documentation as Markdown (if not, it gets a plain
    string, which every client takes)."""
    item = caps.text_document and caps.text_document.completion and caps.text_document.completion.completion_item
    return bool(item and types.MarkupKind.Markdown in (item.documentation_format or ()))
