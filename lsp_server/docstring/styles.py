"""Docstring / doc-comment skeletons: literal text derived from the code, with `Slot`s where
the model writes a description."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .core import DocTarget

STYLES = ("google", "numpy", "sphinx", "plain")


@dataclass(frozen=True)
class Slot:
    role: str  # "summary" | "param" | "returns" | "yields" | "raises"
    subject: str = ""  # the parameter or exception name


Part = str | Slot


class _Lines:
    """Accumulates parts line by line, prefixing each with the comment leader."""

    def __init__(self, lead: str, blank: str) -> None:
        self.parts: list[Part] = []
        self.lead, self.blank_line = lead, blank

    def add(self, *items: Part) -> None:
        self.parts += [self.lead, *items, "\n"]

    def blank(self) -> None:
        self.parts.append(self.blank_line + "\n")  # bare leader: no trailing whitespace


def _entries(t: DocTarget) -> list[tuple[str, list[tuple[str, Slot]]]]:
    """(section, [(label, slot)]) for the sections the code calls for, in conventional order."""
    sections = [("params", [(p, Slot("param", p)) for p in t.params]),
                ("returns", [("", Slot("returns"))] if t.returns else []),
                ("yields", [("", Slot("yields"))] if t.yields else []),
                ("raises", [(r, Slot("raises", r)) for r in t.raises])]
    return [(key, items) for key, items in sections if items]


def skeleton(t: DocTarget, style: str = "google", unit: str = "    ") -> list[Part]:
    """The complete text to insert, as parts; `unit` is one indentation step (Python only)."""
    if t.language == "python":
        return _python(t, style if style in STYLES else "google", unit)
    if t.language == "go":
        return _go(t)
    if t.language == "rust":
        return _rust(t)
    return _block(t)


def _python(t: DocTarget, style: str, unit: str) -> list[Part]:
    q, sections = '"""', _entries(t)
    if style == "plain" or not sections:
        return [t.indent + q, Slot("summary"), q + "\n"]
    out = _Lines(t.indent, "")
    out.parts += [t.indent + q, Slot("summary"), "\n"]
    if style == "sphinx":
        out.blank()
        fields = {"params": ":param {}: ", "returns": ":returns: ", "yields": ":yields: ", "raises": ":raises {}: "}
        for key, items in sections:
            for label, slot in items:
                out.add(fields[key].format(label), slot)
    else:
        titles = {"params": "Parameters", "returns": "Returns", "yields": "Yields", "raises": "Raises"}
        for key, items in sections:
            out.blank()
            if style == "google":
                out.add("Args:" if key == "params" else titles[key] + ":")
                for label, slot in items:
                    out.add(unit, label + ": " if label else "", slot)
            else:
                # numpy: underlined headings; a name line then the indented description. DocTarget
                # carries no types, so a Returns/Yields entry is the description line alone.
                out.add(titles[key])
                out.add("-" * len(titles[key]))
                for label, slot in items:
                    if label:
                        out.add(label)
                    out.add(unit if label else "", slot)
    out.add(q)
    return out.parts


_JSDOC_TAGS = {"params": "@param {} - ", "returns": "@returns ", "yields": "@yields ", "raises": "@throws {{{}}} "}
# Javadoc and Doxygen share these; neither has a yields tag.
_JAVADOC_TAGS = {"params": "@param {} ", "returns": "@return ", "yields": "@return ", "raises": "@throws {} "}


def _block(t: DocTarget) -> list[Part]:
    """JSDoc, Javadoc and Doxygen: `/** ... */` with @-tags."""
    brief = "@brief " if t.language in ("c", "cpp") else ""
    sections = _entries(t)
    if not sections:
        return [t.indent + "/** " + brief, Slot("summary"), " */\n"]
    out = _Lines(t.indent + " * ", t.indent + " *")
    out.parts.append(t.indent + "/**\n")
    out.add(brief, Slot("summary"))
    out.blank()
    tags = _JSDOC_TAGS if t.language not in ("java", "c", "cpp") else _JAVADOC_TAGS
    for key, items in sections:
        for label, slot in items:
            # A template parameter `<T>`: Javadoc writes `@param <T>`, Doxygen `@tparam T`.
            tparam = key == "params" and label.startswith("<") and t.language in ("c", "cpp")
            out.add(f"@tparam {label[1:-1]} " if tparam else tags[key].format(label), slot)
    out.parts.append(t.indent + " */\n")
    return out.parts


def _go(t: DocTarget) -> list[Part]:
    """Go's doc comment is prose that starts with the declared name (go.dev/doc/comment): `// Parse reads ...`.
    Parameters and results are named in that prose, never in a list or under headings."""
    return [t.indent + "// " + t.name + " ", Slot("summary"), "\n"]


# Rust's DocTarget.raises names sections, not exceptions (see lang_rust).
_RUST_SECTIONS = {"panic": "# Panics", "error": "# Errors", "safety": "# Safety"}


def _rust(t: DocTarget) -> list[Part]:
    out = _Lines(t.indent + "/// ", t.indent + "///")
    out.add(Slot("summary"))
    headings = {"params": "# Arguments", "returns": "# Returns", "yields": "# Yields"}
    for key, items in _entries(t):
        # Each of `raises` ("panic", "error", "safety") is a section of its own: `# Panics`, `# Errors`, `# Safety`.
        groups = [(_RUST_SECTIONS[label], [(label, slot)]) for label, slot in items] if key == "raises" \
            else [(headings[key], items)]
        for heading, entries in groups:
            out.blank()
            out.add(heading)
            out.blank()
            for label, slot in entries:
                out.add(f"* `{label}` - " if key == "params" else "", slot)
    return out.parts


# What a description may already mark up, kept as written: a code span, an inline tag (`{@link Foo}`).
_MARKED = re.compile(r"(`[^`]*`|\{@[^{}]*\})")
# Markup that reads the same in each of these comments: an HTML entity, a few inline elements.
_HTML = re.compile(r"&(?:[A-Za-z]+|#\d+|#[xX][0-9A-Fa-f]+);|</?(?:code|tt|b|i|em|strong|var|sub|sup)>|<br\s*/?>")
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def in_markup(words: str, language: str) -> str:
    """`words` as a description in `language`'s doc comment. Javadoc, JSDoc and Doxygen read HTML and rustdoc
    warns of unclosed tags, so a bare `<`, `>` or `&` would start a tag or an entity and vanish from the page:
    a word holding one (`List<String>`, `a<b`) goes in code markup (`{@code ...}` in Javadoc, a code span
    elsewhere) and one standing alone (`a < b`) becomes an entity. Javadoc's `/**` comment has no code spans:
    a backtick span becomes `{@code ...}`. Doxygen's `\\` and `@` outside code become `\\\\` and `\\@`."""
    if language in ("python", "go"):
        return words
    java = language == "java"
    out = []
    for i, piece in enumerate(_MARKED.split(words)):
        if i % 2:  # already marked up
            inner = piece[1:-1]
            if java and piece.startswith("`"):
                balanced = inner.count("{") == inner.count("}")
                piece = f"{{@code {inner}}}" if balanced and inner.strip() else f"<code>{_escape(inner)}</code>"
            out.append(piece)
        else:
            out.append(" ".join(_plain_word(w, language) for w in _words(piece)))
    return "".join(out)


def _plain_word(word: str, language: str) -> str:
    if any(c in word for c in "<>&"):
        return _mark_word(word, language == "java", language == "rust")
    if language in ("c", "cpp"):
        # Doxygen reads `\word` and `@word` anywhere in the text as commands (`\n` a line break, `\c x` code, `@p x`
        # a parameter): the model's are text, written with Doxygen's own escapes. Code spans keep theirs as written.
        return word.replace("\\", "\\\\").replace("@", "\\@")
    return word


def _words(text: str) -> list[str]:
    """`text` split at spaces, but not inside a type's argument list: `Map<K, V>` is one word."""
    words: list[str] = []
    for w in text.split(" "):
        if words and words[-1].endswith(",") and words[-1].count("<") > words[-1].count(">"):
            words[-1] += " " + w
        else:
            words.append(w)
    return words


def _mark_word(word: str, java: bool, markdown_only: bool) -> str:
    if not any(ch in "<>&" for ch in _HTML.sub("", word)):
        return word  # `&amp;`, `<code>x</code>` are markup already
    # Leading/trailing punctuation stays prose: `(List<String>).` -> `(`List<String>`).`
    core = word.strip("(),.;:!?\"'")
    start = word.find(core) if core else 0
    head, tail = word[:start], word[start + len(core):]
    if not any(ch.isalnum() for ch in core):
        return word if markdown_only else _escape(word)  # an operator: `a < b` (no tag in Markdown)
    balanced = core.count("{") == core.count("}")
    if java:
        return head + (f"{{@code {core}}}" if balanced else f"<code>{_escape(core)}</code>") + tail
    return f"{head}`{core}`{tail}"


def _escape(text: str) -> str:
    return "".join(_ENTITIES.get(ch, ch) for ch in text)
