"""Find an undocumented Python def/class with `ast`; tree-sitter only locates it when `ast` cannot parse the file."""

from __future__ import annotations

import ast
import gc
import io
import tokenize
from collections.abc import Iterator
from functools import lru_cache

from .core import DocTarget, leading_ws, split_lines
from .python_fallback import innermost_def

_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_FuncDef = ast.FunctionDef | ast.AsyncFunctionDef
_DefNode = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef


# What ast.parse raises on text it cannot take: a syntax error, a NUL, or nesting too deep for the parser
# (a 6,000-term expression) or for memory.
_UNPARSABLE = (SyntaxError, ValueError, RecursionError, MemoryError)


@lru_cache(maxsize=1)
def _parsed(text: str) -> ast.Module | None:
    """The document's tree, None when it does not parse. Cached for the latest text: an editor asks for
    code actions at every cursor move, and a big file takes a good part of a second to parse."""
    # With the cyclic collector off: the tree's objects are not garbage, but the collections their creation
    # set off walk every object in the server (torch's: 200,000), which made a 10,000-line file's parse take
    # 250 ms instead of 140.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return ast.parse(text)
    except _UNPARSABLE:
        return None
    finally:
        if collecting:
            gc.enable()


def find_python_target(text: str, line: int, end_line: int) -> DocTarget | None:
    tree = _parsed(text)
    if tree is None:
        return _find_with_tree_sitter(text, line, end_line)
    found = _innermost(tree, line, end_line)
    if found is None:
        return None
    node, in_class = found
    return _describe(text, node, in_class)


def header_colon(text: str, def_row: int) -> tuple[int, int] | None:
    """(row, column) of the ':' that ends the def/class header starting on `def_row`.

    Tokenizing (rather than searching for ':') skips colons inside annotations, defaults,
    strings and comments; tokenizing stops at that colon, so broken code further down is harmless.
    """
    source = "\n".join(split_lines(text)[def_row:]) + "\n"
    depth = 0
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type != tokenize.OP:
                continue
            if tok.string in ("(", "[", "{"):
                depth += 1
            elif tok.string in (")", "]", "}"):
                depth -= 1
            elif tok.string == ":" and depth == 0:
                return def_row + tok.start[0] - 1, tok.start[1]
    except (tokenize.TokenError, SyntaxError):
        pass
    return None


def _span_start(node: _DefNode) -> int:
    """0-based first line, counting decorators, so a cursor on a decorator selects the def."""
    return min([node.lineno] + [d.lineno for d in node.decorator_list]) - 1


def _innermost(tree: ast.AST, first: int, last: int) -> tuple[_DefNode, bool] | None:
    """The innermost def or class whose lines (with its decorators) hold lines first..last, and whether it is a
    method (a function right in a class's body).

    Only statements that hold those lines are entered (a def lies within the lines of every statement around
    it): an editor asks for code actions at every cursor move, and a walk of every node of a 10,000-line file's
    tree took longer than parsing it.
    """
    best: tuple[_DefNode, bool] | None = None
    stack: list[tuple[ast.AST, bool]] = [(tree, False)]
    while stack:
        node, is_method = stack.pop()
        # Nested definitions always start on a later line than their parent.
        if isinstance(node, _DEFS) and (best is None or _span_start(node) > _span_start(best[0])):
            best = node, is_method
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.match_case) or (
                    isinstance(child, (ast.stmt, ast.excepthandler)) and _holds(child, first, last)):
                stack.append((child, isinstance(node, ast.ClassDef) and isinstance(child, _FuncDef)))
    return best


def _holds(node: ast.stmt | ast.excepthandler, first: int, last: int) -> bool:
    """Whether the node's lines (a def's or class's with its decorators) hold lines first..last."""
    start = _span_start(node) if isinstance(node, _DEFS) else node.lineno - 1
    return start <= first and last <= (node.end_lineno or node.lineno) - 1


def _describe(text: str, node: _DefNode, in_class: bool) -> DocTarget | None:
    if ast.get_docstring(node, clean=False) is not None:
        return None
    colon = header_colon(text, node.lineno - 1)
    if colon is None or not node.body:
        return None
    lines = split_lines(text)
    colon_row = colon[0]
    body_row = node.body[0].lineno - 1
    if body_row > colon_row:
        insert_line, indent = colon_row + 1, leading_ws(lines[body_row])
    else:
        # One-line body (`def f(x): return x`): the generator splits the line at the statement.
        insert_line, indent = colon_row, leading_ws(lines[node.lineno - 1]) + _indent_unit(lines)
    params: tuple[str, ...] = ()
    raises: tuple[str, ...] = ()
    returns = yields = False
    if isinstance(node, ast.ClassDef):
        kind = "class"
        init = next((c for c in node.body if isinstance(c, _FuncDef) and c.name == "__init__"), None)
        if init is not None:  # the class docstring documents the constructor's arguments
            params = _params(init, True)
    else:
        kind = "method" if in_class else "function"
        params = _params(node, in_class)
        own = list(_own_nodes(node))
        yields = any(isinstance(n, (ast.Yield, ast.YieldFrom)) for n in own)
        returns, raises = _returns(node, own, yields), _raises(own)
    return DocTarget("python", kind, node.name, params, returns, yields, raises,
                     node.lineno - 1, insert_line, indent)


def _params(fn: _FuncDef, skip_self: bool) -> tuple[str, ...]:
    a = fn.args
    names = [p.arg for p in a.posonlyargs + a.args]
    if skip_self and names and names[0] in ("self", "cls") and not _is_staticmethod(fn):
        names = names[1:]
    if a.vararg:
        names.append("*" + a.vararg.arg)
    names += [p.arg for p in a.kwonlyargs]
    if a.kwarg:
        names.append("**" + a.kwarg.arg)
    return tuple(names)


def _is_staticmethod(fn: _FuncDef) -> bool:
    return any(isinstance(d, ast.Name) and d.id == "staticmethod" for d in fn.decorator_list)


def _own_nodes(fn: _FuncDef) -> Iterator[ast.AST]:
    """Nodes of fn's body, not descending into nested functions, lambdas or classes (their
    returns/raises are not fn's)."""
    stack: list[ast.AST] = list(fn.body)
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, (*_DEFS, ast.Lambda)):
            stack.extend(ast.iter_child_nodes(node))


def _is_none(node: ast.AST | None) -> bool:
    return node is None or (isinstance(node, ast.Constant) and node.value is None)


def _returns(fn: _FuncDef, own: list[ast.AST], yields: bool) -> bool:
    if any(isinstance(n, ast.Return) and not _is_none(n.value) for n in own):
        return True
    if yields or fn.returns is None or _is_none(fn.returns):
        return False  # a generator's annotation describes what it yields
    return ast.unparse(fn.returns) not in ("None", "NoReturn", "Never", "typing.NoReturn")


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def _raises(own: list[ast.AST]) -> tuple[str, ...]:
    # `except ValueError as e: raise e` documents ValueError, not `e`.
    aliases: dict[str, list[str]] = {}
    for n in own:
        if isinstance(n, ast.ExceptHandler) and n.name and n.type is not None:
            types = n.type.elts if isinstance(n.type, ast.Tuple) else [n.type]
            aliases[n.name] = [t for t in map(_dotted, types) if t]
    found: list[str] = []
    # ast.walk order is not source order; sort raises by position for a stable, readable list.
    for n in sorted((n for n in own if isinstance(n, ast.Raise)), key=lambda r: (r.lineno, r.col_offset)):
        if n.exc is None:
            continue
        name = _dotted(n.exc.func if isinstance(n.exc, ast.Call) else n.exc)
        # Only CamelCase names are exception types; `raise make_error()` names a factory.
        names = aliases.get(name or "") or ([name] if name and name.rsplit(".", 1)[-1][:1].isupper() else [])
        found += [x for x in names if x not in found]
    return tuple(found)


def _indent_unit(lines: list[str]) -> str:
    """The file's indentation step, measured under the first block header (a line ending in
    ':'), since continuation lines inside brackets may be aligned arbitrarily. Default: four spaces."""
    for i, line in enumerate(lines):
        if not line.rstrip().endswith(":"):
            continue
        below = next((n for n in lines[i + 1:] if n.strip()), "")
        outer, inner = leading_ws(line), leading_ws(below)
        if len(inner) > len(outer) and inner.startswith(outer):
            return inner[len(outer):]
    return "    "


def _find_with_tree_sitter(text: str, line: int, end_line: int) -> DocTarget | None:
    """The file does not parse: let tree-sitter find the enclosing def, then run `ast` on just
    that def's lines (others blanked, so line/column numbers stay valid)."""
    found = innermost_def(text, line, end_line)
    if found is None:
        return None
    start, end, first_stmt_end, in_class = found
    lines = split_lines(text)
    # Retry with the body cut after its first statement: still enough to place a docstring
    # when the syntax error is inside this def (e.g. in a later method of this class).
    for last in dict.fromkeys((end, first_stmt_end)):
        kept = [""] * len(lines)
        kept[start:last + 1] = lines[start:last + 1]
        if start > 0 and leading_ws(lines[start]):
            kept[start - 1] = "if 1:"  # lets an indented def parse on its own
        source = "\n".join(kept)
        try:
            tree = ast.parse(source)
        except _UNPARSABLE:
            continue
        # A cursor below the cut means the ts node itself, never a def that happens to be kept.
        lo, hi = (line, end_line) if end_line <= last else (start, start)
        inner = _innermost(tree, lo, hi)
        if inner is None:
            continue
        node, nested_in_class = inner
        return _describe(source, node, in_class if _span_start(node) == start else nested_in_class)
    return None
