"""JavaScript / TypeScript (and JSX/TSX) declarations for JSDoc comments."""

from __future__ import annotations

from .ts_util import Facts, Found, Node, dedupe, own_descendants, start_with_siblings, text_of

_FUNCS = frozenset({"function_declaration", "generator_function_declaration", "function_expression",
                    "function", "generator_function", "arrow_function"})
_METHODS = frozenset({"method_definition", "abstract_method_signature", "method_signature"})
# TypeScript's interfaces, type aliases and enums are documented like classes.
_CLASSES = frozenset({"class_declaration", "abstract_class_declaration", "class", "interface_declaration",
                      "type_alias_declaration", "enum_declaration"})
_STOP = _FUNCS | _METHODS | _CLASSES
_FIELDS = frozenset({"field_definition", "public_field_definition"})
_DECORATORS = frozenset({"decorator"})
_NO_VALUE_TYPES = {"void", "never", "undefined", "Promise<void>"}


def describe(node: Node) -> Found | None:
    kind = "class" if node.type in _CLASSES else "method" if node.type in _METHODS else None
    name = node.child_by_field_name("name")
    # function_signature: an overload or a `declare function` (a .d.ts file's functions), body-less.
    if node.type in ("function_declaration", "generator_function_declaration", "function_signature"):
        kind = "function"
    elif node.type in _FUNCS and node.parent is not None:
        # Function values are documented where they are bound: `const f = () => ...`, `h = () => ...`.
        owner = node.parent
        if owner.type == "variable_declarator":
            kind, name = "function", owner.child_by_field_name("name")
        elif owner.type in _FIELDS:
            kind = "method"
            name = owner.child_by_field_name("property") or owner.child_by_field_name("name")
        elif _module_exports(node):
            kind = "function"  # named by its own name if it has one, else `default`
        elif owner.type == "assignment_expression" and owner.parent is not None \
                and owner.parent.type == "expression_statement":  # `module.exports.run = function () {...}`
            left = owner.child_by_field_name("left")
            kind = "function"
            name = left.child_by_field_name("property") if left is not None and left.type == "member_expression" \
                else left
        elif owner.type == "pair":  # an object literal's `{ greet: (name) => ... }`
            kind, name = "method", owner.child_by_field_name("key")
        elif _default_export(owner):
            kind = "function"
    if kind is None or (name is None and not _default_export(node.parent) and not _module_exports(node)):
        return None
    # `export default function (a) {}`, `export default class {}`: ECMAScript names them `default`, and
    # `module.exports = (a) => a` is the CommonJS form of it (what Node imports as a CommonJS module's default).
    label = text_of(name) if name is not None else "default"
    first = _first_overload(node, label) if node.type in ("function_declaration", "method_definition") else None
    if first is not None:
        node = first  # its parameters are the ones the doc's @param tags name
    # TypeScript puts member decorators beside the member in the class body.
    return Found(kind, label, node, start_with_siblings(_outer(node), _DECORATORS))


def _default_export(node: Node | None) -> bool:
    return node is not None and node.type == "export_statement" and any(c.type == "default" for c in node.children)


def _module_exports(node: Node) -> bool:
    """Whether `node` is the value of a `module.exports = ...` statement: the module's one export."""
    owner = node.parent
    return owner is not None and owner.type == "assignment_expression" and owner.child_by_field_name("right") == node \
        and "".join(text_of(owner.child_by_field_name("left")).split()) == "module.exports" \
        and owner.parent is not None and owner.parent.type == "expression_statement"


def _first_overload(node: Node, name: str) -> Node | None:
    """The first of the overload signatures (`function f(x: string): number;`) right before an implementation:
    TypeScript shows their documentation, the first one's for a call no other matches, and never the
    implementation's."""
    first = None
    prev = _outer(node).prev_named_sibling
    while prev is not None:
        decl = prev.child_by_field_name("declaration") if prev.type == "export_statement" else prev
        if decl is not None and decl.type in ("function_signature", "method_signature") \
                and text_of(decl.child_by_field_name("name")) == name:
            first = decl
        elif prev.type != "comment":  # another overload's own doc comment
            break
        prev = prev.prev_named_sibling
    return first


def _outer(node: Node) -> Node:
    """The statement the comment must precede: the declaration, its `const`, its `declare`, its `export`, the
    assignment's statement, the object literal's property."""
    cur = node
    if cur.parent is not None and cur.parent.type in ("variable_declarator", "assignment_expression", "pair",
                                                      *_FIELDS):
        cur = cur.parent
        if cur.type in ("variable_declarator", "assignment_expression") and cur.parent is not None:
            cur = cur.parent  # the `const` declaration, the expression statement
    if cur.parent is not None and cur.parent.type == "ambient_declaration":
        cur = cur.parent
    if cur.parent is not None and cur.parent.type == "export_statement":
        cur = cur.parent
    return cur


def facts(found: Found) -> Facts:
    decl = found.decl
    if found.kind == "class":
        return (), False, False, ()
    own = list(own_descendants(decl.child_by_field_name("body") or decl, _STOP))
    yields = any(n.type == "yield_expression" for n in own)
    return _params(decl), _returns(decl, own, yields, found.name), yields, _throws(own)


def _params(decl: Node) -> tuple[str, ...]:
    single = decl.child_by_field_name("parameter")  # `x => x`
    if single is not None:
        return (text_of(single),)
    params = decl.child_by_field_name("parameters")
    names: list[str] = []
    for i, p in enumerate(params.named_children if params is not None else []):
        if p.type in ("required_parameter", "optional_parameter"):
            p = p.child_by_field_name("pattern") or p
        if p.type == "assignment_pattern":
            p = p.child_by_field_name("left") or p
        if p.type == "rest_pattern" and p.named_children:
            p = p.named_children[0]
        if p.type in ("comment", "this"):
            continue
        # Destructured parameters get JSDoc's conventional positional name.
        names.append(text_of(p) if p.type == "identifier" else f"param{i}")
    return tuple(names)


def _returns(decl: Node, own: list[Node], yields: bool, name: str) -> bool:
    annotation = decl.child_by_field_name("return_type")
    if any(n.type == "return_statement" and n.named_children for n in own):
        return True
    if yields or name == "constructor":
        return False
    if annotation is not None:
        return text_of(annotation).lstrip(":").replace(" ", "") not in _NO_VALUE_TYPES
    body = decl.child_by_field_name("body")
    return decl.type == "arrow_function" and body is not None and body.type != "statement_block"


def _throws(own: list[Node]) -> tuple[str, ...]:
    names = []
    for n in sorted((n for n in own if n.type == "throw_statement"), key=lambda n: n.start_byte):
        value = n.named_children[0] if n.named_children else None
        if value is not None and value.type in ("new_expression", "call_expression"):
            value = value.child_by_field_name("constructor") or value.child_by_field_name("function")
        name = text_of(value) if value is not None and value.type in ("identifier", "member_expression") else ""
        if name.rsplit(".", 1)[-1][:1].isupper():  # `throw err` rethrows a variable, not a type
            names.append(name)
    return dedupe(names)
