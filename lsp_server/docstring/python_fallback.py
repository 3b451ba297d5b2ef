"""Tree-sitter's view of a Python file that `ast` cannot parse: where the defs are."""

from __future__ import annotations

from .ts_util import Node, enclosing, parse, text_of


def innermost_def(text: str, line: int, end_line: int) -> tuple[int, int, int, bool] | None:
    """(start row, end row, end row of first body statement, is a method) of the innermost
    function_definition/class_definition that tree-sitter finds around the lines."""
    root = parse(text, "python")
    if root is None:
        return None
    best = None
    for node in enclosing(root, line, end_line, _start_row):
        if node.type in ("function_definition", "class_definition"):
            best = node
    if best is None:
        return None
    if best.type == "function_definition" and _is_overload(best):
        best = _implementation(best) or best
    span = best.parent if best.parent is not None and best.parent.type == "decorated_definition" else best
    body = best.child_by_field_name("body")
    first = body.named_children[0] if body is not None and body.named_children else None
    in_class = best.type == "function_definition" and _in_class(span)
    return (span.start_point.row, span.end_point.row,
            first.end_point.row if first is not None else span.end_point.row, in_class)


# The decorators that make a def an overload signature, whose docstring help() and Sphinx never show.
OVERLOAD_DECORATORS = frozenset({"overload", "typing.overload", "typing_extensions.overload"})


def _decorators(func: Node) -> list[str]:
    """The decorators' expressions of a function_definition, spaces taken out (`typing.overload`)."""
    parent = func.parent
    if parent is None or parent.type != "decorated_definition":
        return []
    return ["".join(text_of(d).lstrip("@").split()) for d in parent.named_children if d.type == "decorator"]


def _is_overload(func: Node) -> bool:
    return any(d in OVERLOAD_DECORATORS for d in _decorators(func))


def _implementation(stub: Node) -> Node | None:
    """The def whose `@overload` signature `stub` is, as python_target finds it where `ast` can parse: the next def
    of its name that is no overload, with only overloads of that name (and comments) between."""
    name = text_of(stub.child_by_field_name("name"))
    sibling = stub.parent.next_named_sibling if stub.parent is not None else None
    while sibling is not None:
        func = sibling.child_by_field_name("definition") if sibling.type == "decorated_definition" else sibling
        if sibling.type != "comment":
            if func is None or func.type != "function_definition" or text_of(func.child_by_field_name("name")) != name:
                return None
            if not _is_overload(func):
                return func
        sibling = sibling.next_named_sibling
    return None


def _start_row(node: Node) -> int:
    parent = node.parent
    if parent is not None and parent.type == "decorated_definition":
        return parent.start_point.row  # decorators sit beside the def in the tree
    return node.start_point.row


def _in_class(span: Node) -> bool:
    block = span.parent
    return block is not None and block.type == "block" and block.parent is not None \
        and block.parent.type == "class_definition"
