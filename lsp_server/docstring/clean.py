"""Turn raw model output into one tidy description, or a neutral phrase when it is unusable."""

from __future__ import annotations

import re
import unicodedata

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
# A name and a colon leading the words: another parameter's blank (`module: The module.`), its own label
# having been stripped already.
_LABEL = re.compile(r"^(?:[\w.]+|\([^)]*\))\s*:\s")  # or its type: `(int, optional): The ...`
# Words a finished sentence does not end on: `Return a list of.` (nor does it start with `: int, optional`).
_DANGLING = frozenset("a an the of to with from and or for in into by on at is are as than that".split())
# Code outside backticks: a call or subscript (`get(`, `x[`, but not `value(s)`), the object's own or a private
# attribute (`self.name`, `a._x`; prose may name `os.path` plainly), an assignment, an operator prose does not
# use (`|` and `->` as in `int | None`, `(x) -> y`), an attribute path, an import.
_CODE = re.compile(r"[A-Za-z_]\w*(?:\((?!s\))|\[)|\b(?:self|cls|this)\.\w|\w\._\w|\s=\s|==|!=|\*\*|^import\s"
                   r"|(?<!:)//|\||->"  # a comment's mark (or floor division), not a URL's `://`; types
                   r"|\b[A-Za-z_]\w*\.[A-Za-z]\w*_\w",  # an attribute path: `policy.max_line_length`
                   re.IGNORECASE)
# A word of prose, as a whole token: letters, maybe joined by a hyphen or apostrophe (`non-empty`, `user's`);
# not an identifier (`curve_mag`, `x1`), a path (`from/path/python`) or a dotted name.
_PLAIN = re.compile(r"[^\W\d_]{2,}(?:['\u2019-][^\W\d_]+)*")
# Marks that come in pairs: one left open leaves the rest of the comment quoted, bracketed or in code.
_PAIRS = (("(", ")"), ("[", "]"), ("{", "}"))


def poor(text: str, document: str = "", context: str = "") -> str | None:
    """Why model words are no description worth showing (None when they are): too few real words (numbers,
    hex, identifiers, paths, symbols), a word or phrase repeated, another section's or blank's label, code
    instead of words, a backtick, quote or bracket left open, a sentence begun or left hanging, words copied
    from elsewhere in the file (see `copied`), or words about things `context` (the code the model was
    shown) never mentions."""
    words = _WORD.findall(text)
    prose = re.sub(r"(`+)[^`]*?\1", "", text)  # code in backticks is fine: `x`, reST's ``x``
    plain = [w for w in prose.split() if _PLAIN.fullmatch(w.strip(".,;:!?()[]{}\"'"))]
    if len(plain) < 2 or sum(map(len, words)) < 0.5 * sum(c.isalnum() for c in text):
        return "too few words"
    lowered = [w.lower() for w in words]
    tokens = text.split()  # marks too: `a * * * *` repeats no word, and is the model going round
    if any(a == b for seq in (lowered, tokens) for a, b in zip(seq, seq[1:])) \
            or max(map(lowered.count, lowered)) >= 4 or _repeated_phrase(lowered) or _going_round(lowered):
        return "repeated words"
    if _FOREIGN_LABEL.match(text):
        return "another section's label"
    if _LABEL.match(text):
        return "another blank's label"
    if _CODE.search(prose) or prose.count(")") > prose.count("("):
        return "code, not words"
    if text.count("`") % 2 or text.count('"') % 2 or any(prose.count(a) != prose.count(b) for a, b in _PAIRS):
        return "unbalanced marks"
    if text.rstrip(" .").rsplit(None, 1)[-1].lower() in _DANGLING or text[0] in ",;:.)]}":
        return "an unfinished sentence"
    if document and copied(text, document):
        return "copied from the file"
    if context and unrelated(text, context):
        return "about other code"
    return None


# What leads a line of prose in a file: a docstring's quotes, a comment's marks.
_LEADER = re.compile(r"""^(?:[rRbBuU]?(?:\"\"\"|''')|#+|//+|/?\*+)\s*""")


def copied(text: str, document: str) -> bool:
    """Whether `text` copies the file: a run of four or more words found in it, or the whole of one of
    its lines (another function's summary: `PPM (portable pixmap).`), quotes and comment marks aside."""
    said = " ".join(text.rstrip(".").split()).lower()
    if len(said.split()) >= 4:
        return said in " ".join(document.split()).lower()
    return len(said.split()) >= 2 and any(
        " ".join(_LEADER.sub("", line.strip()).rstrip("\"'. ").split()).lower() == said
        for line in document.splitlines())


# Words any description may use without the code naming them: grammar, common qualities, and the
# vocabulary of docstrings. What is left are mostly the things a description is about.
_COMMON = frozenset("""
    a about above after again all already also always an and any are as at back be been before being
    below between both but by can could do does down each either else even every for from given has have
    here how if in into is it its just may more most must never no none not now of off often on one only
    or other otherwise out over same should so still such than that the then there these this those
    through to true false under until up upon used uses using very was were what when where whether which
    while will with within without would yes
    apart big close empty equal far few first full good bad high large last less long low many much near
    negative next non part positive previous short small whole zero
    argument arguments attribute calculate calculates call called check checks class compute computes
    create created creates current data default element elements function get gets given instance item
    items key keys list make makes method new number object objects optional parameter parameters
    result results return returned returns set sets specified string type value values
""".split())


def unrelated(text: str, code: str) -> bool:
    """Whether a description names two or more things `code` never mentions and nothing it does:
    `The number of nodes in the graph.` beside geometry code is another docstring remembered from
    training. A word relates to the code when one of the code's words (identifier parts included)
    equals it or starts it (`abs` for `absolute`), or it starts one of them (`node` for `nodes`)."""
    own = {w.lower() for w in _WORD.findall(_split_identifiers(code))}
    named = {w.lower() for w in _WORD.findall(text)} - _COMMON
    named = {w for w in named if len(w) >= 3}

    def relates(word: str) -> bool:
        return any(word == o or (len(o) >= 3 and word.startswith(o)) or o.startswith(word) for o in own)

    return len(named) >= 2 and not any(map(relates, named))


def _split_identifiers(code: str) -> str:
    """`polygon_perimeter`, `distanceTo`, `HTTPServer` -> their words, the whole identifiers kept too."""
    parts = re.sub(r"([A-Z]+)([A-Z][a-z])|([a-z0-9])([A-Z])", r"\1\3 \2\4", code).replace("_", " ")
    return code + " " + parts


def _repeated_phrase(words: list[str], n: int = 4) -> bool:
    """A run of n words said twice: the model going round (`is the number of ... is the number of`)."""
    runs = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    return len(set(runs)) < len(runs)


def _going_round(words: list[str]) -> bool:
    """A run of words said again at once (`move curve mag move curve mag`): the model in a loop shorter than
    `_repeated_phrase` sees."""
    return any(words[i:i + n] == words[i + n:i + 2 * n]
               for n in range(2, len(words) // 2 + 1) for i in range(len(words) - 2 * n + 1))


def clean(raw: str, slot: Slot, t: DocTarget, max_words: int = 40, document: str = "",
          context: str = "") -> tuple[str, str | None]:
    """One description from raw model output for `slot`, and None; or the neutral fallback and why
    the model's words were unusable."""
    text = _visible(raw.lstrip(" \t").split("\n", 1)[0])
    for delimiter in _DELIMITERS:
        text = text.split(delimiter, 1)[0]
    text = re.sub(r"^(?:///?|\*+(?!\*?\w)|-\s)\s*", "", text.strip())  # a repeated comment leader
    text = " ".join(text.split())
    text = _strip_label(text, slot, t)
    # A partial closing delimiter at the very end (`""`, `*`), or an unbalanced quote.
    text = re.sub(r'\s*(?:""|\*+|/)$', "", text)
    if text.count('"') % 2:
        text = text.rstrip('"')
    # Cut to length before the checks: they judge the words the docstring would show (a cut can leave a
    # sentence hanging or a backtick open).
    text = " ".join(text.split()[:max_words])
    why = ("nothing" if not any(ch.isalnum() for ch in text) else
           "another section" if _SECTION.match(text) else poor(text, document, context))
    if why:
        return fallback(slot, t), why
    return _finish(text, slot, t), None


def _visible(line: str) -> str:
    """`line` with its control and format characters as spaces: a NUL fails Python's and Go's parse of the
    whole file, a bidi override (U+202E) fails rustc's lint, and no description has them; the joiners
    (U+200C, U+200D) that some scripts and emoji spell words with are kept."""
    return "".join(" " if unicodedata.category(ch) in ("Cc", "Cf") and ch not in "\u200c\u200d" else ch
                   for ch in line)


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
    name = name.strip("*.~_#")  # `#` leads a JavaScript private name (`#helper`)
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
    if slot.role == "param" and slot.subject.startswith("<"):  # Java's and C++'s type parameters: `<T>`
        return f"The {'type' if t.language == 'java' else 'template'} parameter {slot.subject[1:-1]}."
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
    if t.language == "rust" and slot.subject in ("error", "safety"):
        return ("Returns an error if the operation fails." if slot.subject == "error"
                else "The caller must uphold the invariants this function relies on.")
    return "If an internal invariant is violated." if slot.subject == "panic" else "If the operation fails."
