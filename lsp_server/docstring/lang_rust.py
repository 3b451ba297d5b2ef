"""Rust items for `///` doc comments."""

from __future__ import annotations

from .ts_util import Facts, Found, Node, own_descendants, start_with_siblings, text_of

_FUNCS = frozenset({"function_item", "function_signature_item"})
_TYPES = frozenset({"struct_item", "enum_item", "trait_item", "union_item", "type_item"})
# `#[...]` attributes are siblings of the item in this grammar.
_ATTRIBUTES = frozenset({"attribute_item"})
_STOP = _FUNCS | frozenset({"closure_expression"})


def describe(node: Node) -> Found | None:
    if node.type not in _FUNCS and node.type not in _TYPES:
        return None
    name = node.child_by_field_name("name")
    if name is None:
        return None
    if node.type in _TYPES:
        kind = "class"
    else:
        owner = node.parent.parent if node.parent is not None else None
        kind = "method" if owner is not None and owner.type in ("impl_item", "trait_item") else "function"
    return Found(kind, text_of(name), node, start_with_siblings(node, _ATTRIBUTES))


def facts(found: Found) -> Facts:
    decl = found.decl
    if found.kind == "class":
        return (), False, False, ()
    params = decl.child_by_field_name("parameters")
    names = []
    for p in params.named_children if params is not None else []:
        if p.type == "parameter":  # self_parameter is the receiver, not documented
            names.append(text_of(p.child_by_field_name("pattern")))
    result = decl.child_by_field_name("return_type")
    returns = result is not None and result.type not in ("unit_type", "never_type") and text_of(result) != "!"
    body = decl.child_by_field_name("body")
    panics = body is not None and any(
        n.type == "macro_invocation" and text_of(n.child_by_field_name("macro")) == "panic"
        for n in own_descendants(body, _STOP))
    # Rust's convention documents panics in a `# Panics` section; "panic" stands in as the raise.
    return tuple(names), returns, False, ("panic",) if panics else ()
