"""Java declarations for Javadoc comments."""

from __future__ import annotations

from .ts_util import Facts, Found, Node, dedupe, own_descendants, text_of

_METHODS = frozenset({"method_declaration", "constructor_declaration", "compact_constructor_declaration"})
_CLASSES = frozenset({"class_declaration", "interface_declaration", "enum_declaration",
                      "record_declaration", "annotation_type_declaration"})
_STOP = _CLASSES | frozenset({"lambda_expression", "class_body"})  # class_body: anonymous classes


def describe(node: Node) -> Found | None:
    if node.type not in _METHODS and node.type not in _CLASSES:
        return None
    name = node.child_by_field_name("name")
    if name is None:
        return None
    kind = "class" if node.type in _CLASSES else "method"
    # Annotations live inside the declaration's `modifiers`, so its start is already above them.
    return Found(kind, text_of(name), node, node)


def facts(found: Found) -> Facts:
    decl = found.decl
    # Javadoc's `@param <T>` for type parameters comes first; records document their components as @param too.
    params = _type_params(decl) + _params(decl)
    if found.kind == "class":
        return params, False, False, ()
    throws = next((c for c in decl.named_children if c.type == "throws"), None)
    declared = [text_of(t) for t in throws.named_children] if throws is not None else []
    body = decl.child_by_field_name("body")
    own = own_descendants(body, _STOP) if body is not None else iter(())
    thrown = [text_of(n.named_children[0].child_by_field_name("type"))
              for n in sorted((n for n in own if n.type == "throw_statement"), key=lambda n: n.start_byte)
              if n.named_children and n.named_children[0].type == "object_creation_expression"]
    result = decl.child_by_field_name("type")
    returns = result is not None and result.type != "void_type"
    return params, returns, False, dedupe(declared + thrown)


def _params(decl: Node) -> tuple[str, ...]:
    params = decl.child_by_field_name("parameters")
    names = []
    for p in params.named_children if params is not None else []:
        if p.type == "formal_parameter":
            names.append(text_of(p.child_by_field_name("name")))
        elif p.type == "spread_parameter":  # `String... args`
            declarator = next((c for c in p.named_children if c.type == "variable_declarator"), None)
            names.append(text_of(declarator.child_by_field_name("name")) if declarator else "")
    return dedupe(names)


def _type_params(decl: Node) -> tuple[str, ...]:
    """`<T>` for each type parameter of a generic class or method (`<T extends Number, U>`)."""
    params = decl.child_by_field_name("type_parameters")
    names = [next((text_of(c) for c in p.named_children if c.type == "type_identifier"), "")
             for p in (params.named_children if params is not None else []) if p.type == "type_parameter"]
    return tuple(f"<{n}>" for n in dedupe(names))
