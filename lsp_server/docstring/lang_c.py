"""C and C++ declarations for Doxygen comments."""

from __future__ import annotations

from .ts_util import Facts, Found, Node, dedupe, own_descendants, text_of

_TYPES = frozenset({"struct_specifier", "class_specifier", "union_specifier", "enum_specifier"})
_PROTOTYPES = frozenset({"declaration", "field_declaration"})
_WRAPPED = frozenset({"pointer_declarator", "reference_declarator", "parenthesized_declarator",
                      "attributed_declarator"})
_STOP = _TYPES | frozenset({"lambda_expression", "function_definition"})
_IN_CLASS = frozenset({"field_declaration_list"})
# `int x`, `int step = 1`, and a pack `Args&&... args` (C's bare `...` has no name and is left out).
_PARAMS = frozenset({"parameter_declaration", "optional_parameter_declaration", "variadic_parameter_declaration"})


def describe(node: Node) -> Found | None:
    if node.type == "function_definition" or (node.type in _PROTOTYPES and not _in_body(node)):
        func = function_declarator(node.child_by_field_name("declarator"))
        if func is None:
            return None
        name = text_of(_unwrap(func.child_by_field_name("declarator")))  # `(*fp)(int)` declares `fp`
        in_class = node.parent is not None and node.parent.type in _IN_CLASS
        kind = "method" if in_class or "::" in name else "function"
        return Found(kind, name.rsplit("::", 1)[-1], node, _outer(node))
    if node.type in _TYPES and node.child_by_field_name("body") is not None:
        outer = _outer(node)
        name_node = node.child_by_field_name("name")
        if name_node is None and outer.type == "type_definition":  # typedef struct { ... } Name;
            name_node = outer.child_by_field_name("declarator")
        return Found("class", text_of(name_node), node, outer) if name_node else None
    return None


def _in_body(node: Node) -> bool:
    """A "prototype" inside a function body is really a variable (`Widget w(Gadget());`)."""
    return node.parent is not None and node.parent.type == "compound_statement"


def _outer(node: Node) -> Node:
    """Climb to what the comment must precede: `template <...>`, `extern "C"` before a single declaration (not
    a `extern "C" { ... }` block: that holds its declarations in a declaration_list), or the declaration/typedef
    that a struct definition is part of."""
    cur = node
    while cur.parent is not None and (
        cur.parent.type in ("template_declaration", "linkage_specification")
        or (cur.type in _TYPES and cur.parent.type in ("declaration", "type_definition")
            and cur.parent.start_point.row == cur.start_point.row)
    ):
        cur = cur.parent
    return cur


def _unwrap(decl: Node | None) -> Node | None:
    """What pointer/reference/parentheses wrap: `name` in `*name`, `&name`, `(*name)`."""
    while decl is not None and decl.type in _WRAPPED:
        decl = decl.child_by_field_name("declarator") or (decl.named_children[-1] if decl.named_children else None)
    return decl


def function_declarator(decl: Node | None) -> Node | None:
    """The function's own function_declarator under pointer/reference wrappers (`char *name(...)`). A function
    returning a function pointer, `void (*signal(int sig, void (*f)(int)))(int)`, nests its own declarator
    inside the returned pointer's: the innermost one names the function and holds its parameters."""
    func = _unwrap(decl)
    if func is None or func.type != "function_declarator":
        return None
    inner = _unwrap(func.child_by_field_name("declarator"))
    while inner is not None and inner.type == "function_declarator":
        func, inner = inner, _unwrap(inner.child_by_field_name("declarator"))
    return func


def _first_identifier(node: Node | None) -> str:
    """A parameter's name: the identifier inside `*argv[]`, `&b`, `(*cb)(int)`."""
    stack = [node] if node is not None else []
    while stack:
        cur = stack.pop()
        if cur.type == "identifier":
            return text_of(cur)
        if cur.type != "parameter_list":  # a function pointer's own parameters are not ours
            stack.extend(reversed(cur.named_children))
    return ""


def facts(found: Found) -> Facts:
    decl = found.decl
    template = _template_params(decl)  # `<T>` for Doxygen's `@tparam T`, before the parameters
    if found.kind == "class":
        return template, False, False, ()
    top = decl.child_by_field_name("declarator")
    func = function_declarator(top)
    params = func.child_by_field_name("parameters") if func is not None else None
    # A K&R definition's list holds bare names (`int f(a, b) int a; char *b; {`), typed in the lines after it.
    names = [text_of(p) if p.type == "identifier" else _first_identifier(p.child_by_field_name("declarator"))
             for p in (params.named_children if params is not None else [])
             if p.type in _PARAMS or p.type == "identifier"]
    result = decl.child_by_field_name("type")
    # `void *f()` returns a pointer: only a bare `void` declarator means no value.
    returns = result is not None and not (text_of(result) == "void" and top is func)
    body = decl.child_by_field_name("body")
    thrown = []
    for n in sorted(own_descendants(body, _STOP) if body is not None else [], key=lambda n: n.start_byte):
        if n.type == "throw_statement" and n.named_children:
            value = n.named_children[0]
            if value.type == "call_expression":
                value = value.child_by_field_name("function") or value
            if value.type in ("identifier", "qualified_identifier", "type_identifier"):
                thrown.append(text_of(value))
    return template + dedupe(names), returns, False, dedupe(thrown)


def _template_params(decl: Node) -> tuple[str, ...]:
    """`<T>` for each parameter of the `template <...>` directly around `decl` (types, packs, values, templates)."""
    template = decl.parent
    in_template = template is not None and template.type == "template_declaration"
    params = template.child_by_field_name("parameters") if in_template else None
    names = []
    for p in params.named_children if params is not None else []:
        if p.type == "template_template_parameter_declaration" and p.named_children:
            p = p.named_children[-1]  # `template <class> class C`: C is named after the inner list
        name = p.child_by_field_name("name") or p.child_by_field_name("declarator")
        if name is None:
            name = next((c for c in p.named_children if c.type == "type_identifier"), None)
        names.append(_first_identifier(name) if name is not None and name.type != "type_identifier" else text_of(name))
    return tuple(f"<{n}>" for n in dedupe(names))
