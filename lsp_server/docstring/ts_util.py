"""Tree-sitter parser loading and small node helpers shared by the per-language modules."""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass

import tree_sitter

from .core import common_prefix, common_suffix

# LSP languageId -> (grammar module, function returning the language pointer).
_GRAMMARS: dict[str, tuple[str, str]] = {
    "python": ("tree_sitter_python", "language"),
    "javascript": ("tree_sitter_javascript", "language"),
    "javascriptreact": ("tree_sitter_javascript", "language"),  # the JS grammar parses JSX
    "typescript": ("tree_sitter_typescript", "language_typescript"),
    "typescriptreact": ("tree_sitter_typescript", "language_tsx"),
    "java": ("tree_sitter_java", "language"),
    "go": ("tree_sitter_go", "language"),
    "rust": ("tree_sitter_rust", "language"),
    "c": ("tree_sitter_c", "language"),
    "cpp": ("tree_sitter_cpp", "language"),
}

Node = tree_sitter.Node


@functools.cache
def _parser(language_id: str) -> tree_sitter.Parser | None:
    spec = _GRAMMARS.get(language_id)
    if spec is None:
        return None
    try:
        module = importlib.import_module(spec[0])
    except ImportError:  # grammar not installed: treat the language as unsupported
        return None
    return tree_sitter.Parser(tree_sitter.Language(getattr(module, spec[1])()))


# The trees of the texts parsed last, per language, latest first, with each text's hash (forget_trees): the next
# edit of one is parsed from its tree.
_TREES: dict[str, list[tuple[int, bytes, tree_sitter.Tree]]] = {}
_KEEP = 4


def parse(text: str, language_id: str) -> Node | None:
    """The text's tree. An editor asks for code actions at every cursor move and after every edit: the tree of a
    recent text that differs from it in a few lines is reused, tree-sitter parsing again only what the edit
    touched (a 200 KB file took ~65 ms to parse). A tree so made with an error in it is made again from scratch,
    since error recovery may read a text differently from an older tree than from none; a text edited from one with
    an error is parsed from scratch straight away."""
    parser = _parser(language_id)
    if parser is None:
        return None
    data = text.encode("utf-8")
    kept = _TREES.setdefault(language_id, [])
    for _, old, tree in kept:
        if old == data:
            return tree.root_node
    # Bytes, not a read callback: tree-sitter 0.26 keeps what a callback returns (twice the text per parse, for
    # good). A callback's GIL breaks held the event loop less (a 400 KB file's first parse: 8-23 ms against 30-60),
    # not worth a leak at every cursor move in a file that does not parse.
    tree = None
    if kept:
        _, old, base = max(kept, key=lambda k: common_prefix(k[1], data) + common_suffix(k[1], data))
        # Not from a tree with an error (typing on in a broken file): the edited tree has one too unless the edit
        # fixed it, and is parsed again from scratch. That first parse took 7-30 ms of each keystroke in a broken
        # 360 KB Python file, holding the GIL (and so the event loop) throughout.
        if not base.root_node.has_error:
            tree = parser.parse(data, _edited(base.copy(), old, data))
            if tree.root_node.has_error:
                tree = None
    if tree is None:
        tree = parser.parse(data)
    kept[:] = [(hash(text), data, tree), *kept[:_KEEP - 1]]
    return tree.root_node


def forget_trees(hashes: Collection[int]) -> None:
    """Drop the trees of the texts of these hashes (a closed document's: a 4 MB file's tree held ~200 MB)."""
    for kept in _TREES.values():
        kept[:] = [k for k in kept if k[0] not in hashes]


def _edited(tree: tree_sitter.Tree, old: bytes, new: bytes) -> tree_sitter.Tree:
    """`tree`, the tree of `old`, told where `new` differs from it."""
    prefix = common_prefix(old, new)
    suffix = min(common_suffix(old, new), len(old) - prefix, len(new) - prefix)
    tree.edit(prefix, len(old) - suffix, len(new) - suffix,
              _point(old, prefix), _point(old, len(old) - suffix), _point(new, len(new) - suffix))
    return tree


def _point(data: bytes, offset: int) -> tuple[int, int]:
    """(row, byte column) of the offset."""
    return data.count(b"\n", 0, offset), offset - (data.rfind(b"\n", 0, offset) + 1)


def text_of(node: Node | None) -> str:
    return "" if node is None or node.text is None else node.text.decode("utf-8", "replace")


def last_row(node: Node) -> int:
    """Last row holding the node's text (a node ending in '\\n' reports the next row, column 0)."""
    end = node.end_point
    return end.row - 1 if end.column == 0 and end.row > node.start_point.row else end.row


def enclosing(root: Node, first: int, last: int,
              start_row: Callable[[Node], int] = lambda n: n.start_point.row) -> Iterator[Node]:
    """Named nodes whose rows cover [first, last], outermost first. `start_row` may extend a
    node upwards, never down: over the siblings right above it (decorators or attributes that the grammar puts
    beside it, each ending on the line before the next or later), or to an ancestor other than the root."""
    stack = [root]
    while stack:
        node = stack.pop()
        # start_row, which may describe the node, only where the cheap tests cannot tell: a file's thousands of
        # top-level nodes took 40 ms.
        covering = [c for c in _reachable(node, first) if last <= last_row(c) and (
            c.start_point.row <= first or start_row(c) <= first)]
        yield from covering
        stack.extend(reversed(covering))


def _reachable(node: Node, first: int) -> list[Node]:
    """`node`'s named children, less the top-level ones that no `start_row` can take up to row `first`: after one
    that starts below it with a gap above (a blank line, code of another line), none joins it by its siblings.
    Rust's top-level `impl` blocks describe themselves: testing each one of a long file's took a few ms."""
    children = node.named_children
    if node.parent is not None:  # an ancestor (an `export`) may take it up
        return children
    for i, child in enumerate(children):
        start = child.start_point.row
        if start > first and (i == 0 or last_row(children[i - 1]) < start - 1):
            return children[:i]
    return children


def own_descendants(node: Node, stop: frozenset[str]) -> Iterator[Node]:
    """Descendants of `node`, not entering nested nodes of the `stop` types (inner functions,
    lambdas, classes), whose returns and throws belong to them, not to `node`."""
    stack = list(node.named_children)
    while stack:
        cur = stack.pop()
        yield cur
        if cur.type not in stop:
            stack.extend(cur.named_children)


@dataclass(frozen=True)
class Found:
    """A documentable declaration: `decl` holds its parameters/body; the comment goes right before `start`, the
    first node of what it documents (its `export`, `template <...>`, first attribute, decorator or directive)."""

    kind: str
    name: str
    decl: Node
    start: Node

    @property
    def start_row(self) -> int:
        return self.start.start_point.row


# (params, returns, yields, raises) as DocTarget stores them.
Facts = tuple[tuple[str, ...], bool, bool, tuple[str, ...]]


def dedupe(names: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(n for n in names if n))


def start_with_siblings(node: Node, types: frozenset[str]) -> Node:
    """The first of the `types` siblings (attributes, decorators) directly above `node`, else `node`: some
    grammars put them beside the declaration instead of inside it."""
    first = node
    prev = node.prev_named_sibling
    while prev is not None and prev.type in types and last_row(prev) >= first.start_point.row - 1:
        first = prev
        prev = prev.prev_named_sibling
    return first
