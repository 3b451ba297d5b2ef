"""Turn raw model output into one tidy description, or a neutral phrase when it is unusable."""

from __future__ import annotations

import re

from .core import DocTarget
from .styles import Slot

# Cut at any closing/opening delimiter: past it the model is writing code, not prose.
_DELIMITERS = ('"""', "'''", "*/", "/*")
# Output that starts another section or tag instead of describing this blank.
_SECTION = re.compile(
    r"^(?:@\w+|:\w+.*:|(?:args|arguments|parameters|params|returns?|yields?|raises|throws)\s*:?$|#+\s)",
    re.IGNORECASE)


def max_tokens(max_words: int) -> int:
    """Token budget for one blank: about two tokens a word leaves room to finish the sentence."""
    return min(128, max(16, 2 * max_words))


# A label of another section leading the words: "Returns: the number of ..." written into a summary.
_FOREIGN_LABEL = re.compile(r"^(?:args|arguments|parameters|params|returns?|yields?|raises|throws|note|example)\s*:",
                            re.IGNORECASE)
_WORD = re.compile(r"[^\W\d_]{2,}")  # letters only: "x1" and "0x00ef" are not words of a sentence


def poor(text: str, document: str = "") -> str | None:
    """Why model words are no description worth showing (None when they are): too few real words (numbers,
    hex, symbols), a word repeated over and over, another section's label, or a run of four or more words
    copied from elsewhere in the file (another docstring's line, a comment)."""
    words = _WORD.findall(text)
    if len(words) < 2 or sum(map(len, words)) < 0.5 * sum(c.isalnum() for c in text):
        return "too few words"
    lowered = [w.lower() for w in words]
    if any(a == b for a, b in zip(lowered, lowered[1:])) or max(map(lowered.count, lowered)) >= 4:
        return "repeated words"
    if _FOREIGN_LABEL.match(text):
        return "another section's label"
    if len(text.split()) >= 4 and " ".join(text.rstrip(".").split()).lower() in " ".join(document.split()).lower():
        return "copied from the file"
    return None


def clean(raw: str, slot: Slot, t: DocTarget, max_words: int = 40, document: str = "") -> str:
    """One description from raw model output for `slot`; the neutral fallback when it is unusable."""
    text = raw.lstrip(" \t").split("\n", 1)[0]
    for delimiter in _DELIMITERS:
        text = text.split(delimiter, 1)[0]
    text = re.sub(r"^(?:///?|\*+(?!\*?\w)|-\s)\s*", "", text.strip())  # a repeated comment leader
    text = " ".join(text.split())
    text = _strip_label(text, slot, t)
    # A partial closing delimiter at the very end (`""`, `*`), or an unbalanced quote.
    text = re.sub(r'\s*(?:""|\*+|/)$', "", text)
    if text.count('"') % 2:
        text = text.rstrip('"')
    if not any(ch.isalnum() for ch in text) or _SECTION.match(text) or poor(text, document):
        return fallback(slot, t)
    words = text.split()
    if len(words) > max_words:
        text = " ".join(words[:max_words])
    return _finish(text, slot, t)


def _strip_label(text: str, slot: Slot, t: DocTarget) -> str:
    """Drop a label the skeleton already wrote, e.g. `x: ...` for x's blank, `Add ...` after `// Add`."""
    if slot.role in ("param", "raises") and slot.subject:
        label = re.escape(slot.subject.lstrip("*."))
        return re.sub(rf"^[`*]*{label}`?\s*(?:\([^)]*\))?\s*[:\-\u2013]\s*", "", text)
    if slot.role == "summary" and t.language == "go" and text.startswith(t.name + " "):
        return text[len(t.name) + 1:]
    if slot.role == "summary" and t.language in ("c", "cpp"):
        return re.sub(r"^[@\\]brief\s+", "", text)
    return text


def _finish(text: str, slot: Slot, t: DocTarget) -> str:
    if slot.role == "summary" and t.language == "go":
        # The sentence continues after the declared name: "Add returns ...", not "Add Returns ...".
        if text[:1].isupper() and text[1:2].islower():
            text = text[0].lower() + text[1:]
    else:
        text = text[0].upper() + text[1:]
    text = text.rstrip(" ,;:-")
    return text if text.endswith((".", "!", "?")) else text + "."


def humanize(name: str) -> str:
    """`parse_config` / `parseConfig` / `HTTPServer` -> `parse config` / `parse config` / `HTTP server`."""
    name = name.strip("*.~_")
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1 \2", name)
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    words = name.replace("_", " ").split()
    return " ".join(w if len(w) > 1 and w.isupper() else w.lower() for w in words) or "value"


def fallback(slot: Slot, t: DocTarget) -> str:
    words = humanize(t.name)
    if slot.role == "summary":
        if t.language == "go":
            return f"represents a {words}." if t.kind == "class" else f"performs the {words} operation."
        if t.name in ("__init__", "constructor"):
            return "Initialize the instance."
        return words[0].upper() + words[1:] + "."
    if slot.role == "param":
        if slot.subject.startswith("**"):
            return "Additional keyword arguments."
        if slot.subject.startswith("*"):
            return "Additional positional arguments."
        return f"The {humanize(slot.subject)}."
    if slot.role == "returns":
        return "The result."
    if slot.role == "yields":
        return "The next value."
    return "If an internal invariant is violated." if slot.subject == "panic" else "If the operation fails."
