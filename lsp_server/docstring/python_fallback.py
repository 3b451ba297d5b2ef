"""Tree-sitter's view of a Python file that `ast` cannot parse: where the defs are."""

from __future__ import annotations

from .ts_util import Node, enclosing, parse


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
    span = best.parent if best.parent is not None and best.parent.type == "decorated_definition" else best
    body = best.child_by_field_name("body")
    first = body.named_children[0] if body is not None and body.named_children else None
    in_class = best.type == "function_definition" and _in_class(span)
    return (span.start_point.row, span.end_point.row,
            first.end_point.row if first is not None else span.end_point.row, in_class)


def _start_row(node: Node) -> int:
    parent = node.parent
    if parent is not None and parent.type == "decorated_definition":
        return parent.start_point.row  # decorators sit beside the def in the tree
    return node.start_point.row


def _in_class(span: Node) -> bool:
    block = span.parent
    return block is not None and block.type == "block" and block.parent is not None \
        and block.parent.type == "class_definition"
