"""Tree-sitter trees after an edit are parsed from the tree before it: they must be the trees a parse from scratch
makes, and the declaration found the one found then."""

from __future__ import annotations

import random
import sysconfig
from pathlib import Path

import pytest
import tree_sitter

from lsp_server.docstring import find_target, ts_util
from lsp_server.tools.keystrokes import minified_js

ROOT = Path(__file__).resolve().parent.parent


def shape(node: tree_sitter.Node) -> list[tuple[str, tuple[int, int], tuple[int, int], bool]]:
    """Every node of the tree, in order, with where it is."""
    out = []
    cursor = node.walk()
    while True:
        n = cursor.node
        out.append((n.type, tuple(n.start_point), tuple(n.end_point), n.is_named))
        if cursor.goto_first_child() or cursor.goto_next_sibling():
            continue
        while cursor.goto_parent():
            if cursor.goto_next_sibling():
                break
        else:
            return out


def fresh(text: str, language_id: str) -> tree_sitter.Node:
    return ts_util._parser(language_id).parse(text.encode("utf-8")).root_node


PIECES = ["{", "}", "(", ")", ";", '"', "'", "`", "/*", "*/", "//", "\n", "  ", "x", "é", "🙂", "\r\n",
          "function f(a) {\n", "int g(void) {\n", "return 1;\n", "/** Doc. */\n", "#define X 1\n", "@dec\n"]


def edited(rng: random.Random, text: str) -> str:
    at = rng.randrange(len(text) + 1)
    if rng.random() < 0.6:
        return text[:at] + rng.choice(PIECES) + text[at:]
    return text[:at] + text[at + rng.randrange(1, 60):]


def sources() -> list[tuple[Path, str]]:
    scripts = [(p, "typescript") for p in sorted((ROOT / "editors" / "vscode" / "src").glob("*.ts"))]
    headers = sorted(Path(sysconfig.get_paths()["include"]).glob("*.h"), key=lambda p: -p.stat().st_size)
    return scripts[:3] + [(p, "c") for p in headers[:3]]


@pytest.mark.parametrize(("path", "language_id"), sources(), ids=lambda x: getattr(x, "name", x))
def test_a_tree_parsed_from_the_last_is_the_tree_parsed_from_scratch(path: Path, language_id: str) -> None:
    rng = random.Random(path.name)
    text = path.read_text(encoding="utf-8")
    ts_util._TREES.pop(language_id, None)
    for _ in range(30):
        before = text
        text = edited(rng, text)
        root = ts_util.parse(text, language_id)
        assert shape(root) == shape(fresh(text, language_id))
        lines = text.count("\n") + 1
        kept = list(ts_util._TREES[language_id])
        for line in rng.sample(range(lines), min(lines, 4)):
            found = find_target(text, language_id, line)
            ts_util._TREES[language_id] = []  # the reference: from scratch
            assert find_target(text, language_id, line) == found, line
            ts_util._TREES[language_id] = list(kept)
        if root.has_error and rng.random() < 0.7:
            text = before  # most broken edits are undone, so that most trees are parsed from an older one


def test_an_edit_is_parsed_from_the_tree_before_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # The light bulb asks at every cursor move and after every edit: a 200 KB script took ~65 ms to parse anew.
    text = minified_js(1_000).replace("function f", "function g")  # a text no other test has parsed
    parser = ts_util._parser("javascript")
    given: list[bool] = []

    class Noting:
        def parse(self, data: bytes, old_tree: tree_sitter.Tree | None = None) -> tree_sitter.Tree:
            given.append(old_tree is not None)
            return parser.parse(data, old_tree) if old_tree is not None else parser.parse(data)

    monkeypatch.setattr(ts_util, "_parser", lambda language_id: Noting())
    monkeypatch.setitem(ts_util._TREES, "javascript", [])  # none from other tests
    row = text.split("\n").index("function g400(a, b) {")
    assert find_target(text, "javascript", row).name == "g400"
    lines = text.split("\n")
    for k in range(3):
        lines[row] = lines[row].replace("function ", "function y", 1)
        assert find_target("\n".join(lines), "javascript", row).name == "y" * (k + 1) + "g400"
    assert given == [False, True, True, True]


def test_parses_from_scratch_leave_no_memory_behind() -> None:
    """Each parse from scratch (a file's first, or one after an edit while it does not parse: the light bulb asks at
    every cursor move) kept about twice the text alive for good while tree-sitter read it through a callback."""
    import gc
    import tracemalloc

    texts = [minified_js(2_000).replace("function", f"function v{n}_", 1) for n in range(12)]  # no shared tree
    ts_util.parse(texts[0], "javascript")  # the parser and grammar, made once
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for text in texts[1:]:
            ts_util.forget_trees({hash(t) for t in texts})  # nothing to parse from: each is a parse from scratch
            assert ts_util.parse(text, "javascript") is not None
        ts_util.forget_trees({hash(t) for t in texts})
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 1_000_000, f"{grown:,} bytes kept after 11 parses of {len(texts[1]):,} characters"
