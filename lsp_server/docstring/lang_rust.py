"""Rust items for `///` doc comments."""

from __future__ import annotations

from .ts_util import Facts, Found, Node, own_descendants, start_with_siblings, text_of

_FUNCS = frozenset({"function_item", "function_signature_item"})
_TYPES = frozenset({"struct_item", "enum_item", "trait_item", "union_item", "type_item"})
# `#[...]` attributes are siblings of the item in this grammar.
_ATTRIBUTES = frozenset({"attribute_item"})
_STOP = _FUNCS | frozenset({"closure_expression"})
# Macros that panic when their condition fails (clippy's `missing_panics_doc` counts these, not `debug_assert!`
# or `unreachable!`, which say the panic cannot happen).
_PANIC_MACROS = frozenset({"panic", "assert", "assert_eq", "assert_ne"})

# The sections Rust's convention asks of a function, in the Rust book's order, as DocTarget.raises names them:
# "panic" (`# Panics`) for a panic, "error" (`# Errors`) for a `Result`, "safety" (`# Safety`) for `unsafe fn`.
_SECTIONS = ("panic", "error", "safety")


def describe(node: Node) -> Found | None:
    if node.type == "impl_item":  # rustdoc shows an impl block's doc above its methods (`impl Display for Point`)
        name = _base_name(node.child_by_field_name("type"))
        return Found("class", name, node, start_with_siblings(node, _ATTRIBUTES)) if name else None
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
    panics = body is not None and any(map(_panics, own_descendants(body, _STOP)))
    unsafe = any(m.type == "function_modifiers" and any(c.type == "unsafe" for c in m.children)
                 for m in decl.children)
    sections = {"panic": panics, "error": _is_result(result), "safety": unsafe}
    return tuple(names), returns, False, tuple(key for key in _SECTIONS if sections[key])


def _base_name(node: Node | None) -> str:
    """The type an impl is for: `Point` for `Point`, `Point<T>`, `geo::Point<T>`, `&Point`."""
    while node is not None and node.type in ("generic_type", "reference_type", "pointer_type"):
        node = node.child_by_field_name("type")
    return _last_segment(node)


def _last_segment(node: Node | None) -> str:
    """`panic` for `panic` and `std::panic`; `Result` for `Result` and `io::Result`."""
    if node is not None and node.type in ("scoped_identifier", "scoped_type_identifier"):
        node = node.child_by_field_name("name")
    return text_of(node)


def _is_result(result: Node | None) -> bool:
    """Whether the return type is a `Result` (`Result<T, E>`, `io::Result<T>`, `fmt::Result`)."""
    if result is not None and result.type == "generic_type":
        result = result.child_by_field_name("type")
    return result is not None and _last_segment(result) == "Result"


def _panics(node: Node) -> bool:
    """A panicking macro, or `.unwrap()` / `.expect("...")` (a parser's own `expect(Token)` takes no message)."""
    if node.type == "macro_invocation":
        return _last_segment(node.child_by_field_name("macro")) in _PANIC_MACROS
    if node.type != "call_expression":
        return False
    function, arguments = node.child_by_field_name("function"), node.child_by_field_name("arguments")
    if function is None or function.type != "field_expression" or arguments is None:
        return False
    method, args = text_of(function.child_by_field_name("field")), arguments.named_children
    return (method == "unwrap" and not args) or (method == "expect" and len(args) == 1
                                                 and args[0].type in ("string_literal", "raw_string_literal"))
