"""Go declarations for `// Name ...` doc comments."""

from __future__ import annotations

import re

from .ts_util import Facts, Found, Node, last_row, text_of

# A directive comment, as go/ast tells one from a doc comment's text: `//go:noinline`, `//export F`, `//line f:1`.
_DIRECTIVE = re.compile(r"//(?:line |extern |export |[a-z0-9]+:[a-z0-9])")


def describe(node: Node) -> Found | None:
    # An interface's methods (`method_elem`; `method_spec` in older grammars) are documented one by one too.
    if node.type in ("function_declaration", "method_declaration", "method_elem", "method_spec"):
        kind = "function" if node.type == "function_declaration" else "method"
        name = node.child_by_field_name("name")
        return Found(kind, text_of(name), node, _above_directives(node)) if name is not None else None
    if node.type == "type_spec":
        name = node.child_by_field_name("name")
        parent = node.parent
        # `type T struct{}` is documented above `type`; inside `type ( ... )` above the spec.
        start = parent if parent is not None and parent.start_point.row == node.start_point.row else node
        return Found("class", text_of(name), node, _above_directives(start)) if name is not None else None
    return None


def _above_directives(node: Node) -> Node:
    """The first of the directives (`//go:noinline`) right above `node`, else `node`: a doc comment goes above
    them (gofmt moves directives below its text), and one already there documents `node`."""
    first = node
    prev = node.prev_named_sibling
    while prev is not None and prev.type == "comment" and last_row(prev) == first.start_point.row - 1 \
            and _DIRECTIVE.match(text_of(prev)):
        first = prev
        prev = prev.prev_named_sibling
    return first


def facts(found: Found) -> Facts:
    if found.kind == "class":
        return (), False, False, ()
    params = found.decl.child_by_field_name("parameters")
    names = []
    for p in params.named_children if params is not None else []:
        if p.type in ("parameter_declaration", "variadic_parameter_declaration"):
            # `a, b int` declares two names; unnamed parameters (`func(int)`) have none.
            names += [text_of(n) for n in p.children_by_field_name("name")]
    returns = found.decl.child_by_field_name("result") is not None
    # Go has no exceptions; panics are not part of the doc convention.
    return tuple(names), returns, False, ()
