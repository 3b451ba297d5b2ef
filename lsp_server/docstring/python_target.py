"""Find an undocumented Python def/class with `ast`; tree-sitter only locates it when `ast` cannot parse the file."""

from __future__ import annotations

import ast
import bisect
import gc
import io
import re
import tokenize
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from functools import lru_cache

from .core import DocTarget, common_prefix, common_suffix, leading_ws, split_lines
from .python_fallback import OVERLOAD_DECORATORS, innermost_def

_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_FuncDef = ast.FunctionDef | ast.AsyncFunctionDef
_DefNode = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef


# What ast.parse raises on text it cannot take: a syntax error, a NUL, or nesting too deep for the parser
# (a 6,000-term expression) or for memory.
_UNPARSABLE = (SyntaxError, ValueError, RecursionError, MemoryError)


def find_python_target(text: str, line: int, end_line: int) -> DocTarget | None:
    layout = _layout(text)
    if layout.starts is None:
        return _find_with_tree_sitter(text, line, end_line)
    # Only the top-level statements around the lines can hold the def: parse those alone.
    k = bisect.bisect_right(layout.starts, line) - 1
    if k < 0 or layout.ends[k] < end_line:
        return None  # between top-level statements, or across several: no def holds the lines
    tree = _group_tree(text, layout.starts[k], *layout.chars[k])
    found = tree and _innermost(tree, line, end_line)
    if found is None:
        return None
    node, in_class = found
    if _is_overload(node):
        later = (s for j in range(k + 1, len(layout.starts)) for s in _top_level(text, layout, j))
        node = _implementation(node, _siblings_after(tree, node, later)) or node
    return _describe(text, node, in_class)


def _is_overload(node: _DefNode) -> bool:
    return isinstance(node, _FuncDef) and any(_dotted(d) in OVERLOAD_DECORATORS for d in node.decorator_list)


def _top_level(text: str, layout: _Layout, j: int) -> list[ast.stmt]:
    """The statements of top-level group j (a group's tree may be the whole file's: only those of its lines)."""
    assert layout.starts is not None
    group = _group_tree(text, layout.starts[j], *layout.chars[j])
    return [s for s in group.body if layout.starts[j] <= s.lineno - 1 <= layout.ends[j]] if group else []


def _siblings_after(tree: ast.Module, node: _DefNode, later_top_level: Iterator[ast.stmt]) -> Iterator[ast.stmt]:
    """The statements after `node` in the body that holds it; a top-level def's go on in the later groups."""
    if node in tree.body:
        yield from tree.body[tree.body.index(node) + 1:]
        yield from later_top_level
        return
    for parent in ast.walk(tree):
        for field in ("body", "orelse", "finalbody"):
            body = getattr(parent, field, None)
            if isinstance(body, list) and node in body:
                yield from body[body.index(node) + 1:]
                return


def _implementation(stub: _DefNode, following: Iterator[ast.stmt]) -> _FuncDef | None:
    """The def whose `@overload` signature `stub` is: the next def of its name that is no overload, with only
    overloads of that name between (a stub file's overloads have none)."""
    for stmt in following:
        if not isinstance(stmt, _FuncDef) or stmt.name != stub.name:
            return None
        if not _is_overload(stmt):
            return stmt
    return None


def _parse(source: str) -> ast.Module | None:
    """ast.parse, None when the text does not parse."""
    # With the cyclic collector off: the tree's objects are not garbage, but the collections their creation
    # set off walk every object in the server (torch's: 200,000), which made a 10,000-line file's parse take
    # 250 ms instead of 140.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return ast.parse(source)
    except _UNPARSABLE:
        return None
    finally:
        if collecting:
            gc.enable()


@lru_cache(maxsize=8)
def _group_tree(text: str, row: int, begin: int, stop: int) -> ast.Module | None:
    """The tree of the top-level statements at text[begin:stop], which begin on line `row` of a text that parses."""
    # Blank lines above: the nodes' line numbers are the file's. A last line `x = 1 \` (then a blank line, then the
    # next statement) parses only in the whole text.
    return _parse("\n" * row + text[begin:stop]) or _parse(text)


@dataclass(frozen=True)
class _Layout:
    """Where a text's top-level statements lie. Group i, statements that share lines (`x = 1; y = 2`), is lines
    starts[i]..ends[i] (0-based, a def's or class's from its first decorator), characters chars[i] (end: its
    last line's end). `starts` is None when the text does not parse."""

    text: str
    starts: list[int] | None
    ends: list[int]
    chars: list[tuple[int, int]]


# The layouts of the texts asked about last, latest first: about one per document being edited.
_RECENT: list[_Layout] = []
_KEEP = 4
# This future import changes how `<>` parses: with it anywhere, a part of the file does not parse as in the whole.
_PARSER_FUTURE = "barry_as_FLUFL"


def _layout(text: str) -> _Layout:
    """The text's layout: from a recent text's that differs from it in a few lines, by parsing only the top-level
    statements those lines are in (an editor asks for code actions at every cursor move and after every edit, and
    a 10,000-line file takes ~90 ms to parse); else by parsing the whole text."""
    for known in _RECENT:
        if known.text == text:
            return known
    bases = [b for b in _RECENT if b.starts is not None]
    if bases and _PARSER_FUTURE not in text:
        base = max(bases, key=lambda b: common_prefix(b.text, text) + common_suffix(b.text, text))
        layout = _reparsed(base, text)
    else:
        layout = _parsed_in_parts(text)
    # Those that parse are what later edits are parsed from: one text that does not (the cursor moves in it, or
    # in another document) never takes their place.
    parsing = [k for k in _RECENT if k.starts is not None][:_KEEP - 1]
    broken = [k for k in _RECENT if k.starts is None][:1] if layout.starts is not None else []
    _RECENT[:] = [layout, *parsing, *broken]
    return layout


def forget_layouts(hashes: Collection[int]) -> None:
    """Drop the layouts (and the statements' trees) of the texts of these hashes: a closed document's."""
    kept = [k for k in _RECENT if hash(k.text) not in hashes]
    if len(kept) < len(_RECENT):
        _RECENT[:] = kept
        _group_tree.cache_clear()


# How many lines a part of a text parsed from scratch has, at least (~4 ms each): where targets are found on a
# thread of the server (no process could be started, targets.py), a thread that holds the GIL in ast.parse holds
# the event loop too, until it returns.
_PART_LINES = 200
# Where a text may be cut into parts that parse alone: a line at column 0 that starts a statement, not one that
# goes on with the statement before it (`else:`, `except:`), closes a bracket or is blank or a comment.
_CUT = re.compile(r"(?![ \t\f#\r\n)\]}]|(?:else|elif|except|finally)\b)")


def _parsed_in_parts(text: str) -> _Layout:
    """The text's layout from parses of its parts (_in_parts): a 10,000-line file took one 90-200 ms parse, for
    which nothing else runs."""
    if _PARSER_FUTURE in text:  # it changes how the rest parses: only the whole text says how
        tree = _parse(text)
        return _Layout(text, *_groups(text, 0, tree)) if tree is not None else _Layout(text, None, [], [])
    found = _in_parts(text, 0)
    return _Layout(text, *found) if found is not None else _Layout(text, None, [], [])


def _in_parts(source: str, row: int) -> tuple[list[int], list[int], list[tuple[int, int]]] | None:
    """_groups of `source` (which begins a top-level statement on line `row` of the file) from parses of its parts,
    a few hundred lines each, cut where a top-level statement starts; None when it does not parse alone.

    As in _reparsed, the parts' statements are the whole's: a part that parses alone leaves nothing open (no
    string, bracket, block or continued line), so the next part begins a statement of its own at the top level,
    which cannot go on a statement of the part before (`else` and friends are never cut at). A part that does not
    parse alone (the cut was inside a string, or between a decorator and its def) is parsed again with twice the
    lines; one that runs to the end and does not parse is where the source does not parse.
    """
    line_starts = [0, *(m.end() for m in re.finditer("\n", source))]
    if line_starts[-1] == len(source):
        line_starts.pop()  # no line after the last line break
    starts: list[int] = []
    ends: list[int] = []
    chars: list[tuple[int, int]] = []
    first, lines = 0, _PART_LINES
    while first < len(line_starts):
        stop = first + lines
        while stop < len(line_starts) and not _CUT.match(source, line_starts[stop]):
            stop += 1
        begin, end = line_starts[first], line_starts[stop] if stop < len(line_starts) else len(source)
        part = source[begin:end]
        tree = None if stop < len(line_starts) and part.rstrip().endswith("\\") else _parse(part)
        if tree is None:
            if end == len(source):
                return None
            lines *= 2
            continue
        found = _groups(part, row + first, tree)
        starts += found[0]
        ends += found[1]
        chars += [(a + begin, b + begin) for a, b in found[2]]
        first, lines = stop, _PART_LINES
    return starts, ends, chars


def _groups(source: str, row: int, tree: ast.Module) -> tuple[list[int], list[int], list[tuple[int, int]]]:
    """(starts, ends, chars) of the groups of the module's statements; `source` is its text, which begins on line
    `row` of the file (the numbers returned are the file's lines, and characters of `source`)."""
    starts: list[int] = []
    ends: list[int] = []
    for stmt in tree.body:
        start = _span_start(stmt) if isinstance(stmt, _DEFS) else stmt.lineno - 1
        end = (stmt.end_lineno or stmt.lineno) - 1
        if ends and start <= ends[-1]:
            ends[-1] = max(ends[-1], end)
        else:
            starts.append(start)
            ends.append(end)
    offsets = [0, *(m.end() for m in re.finditer("\n", source))]
    chars = [(offsets[s], offsets[e + 1] - 1 if e + 1 < len(offsets) else len(source)) for s, e in zip(starts, ends)]
    return [s + row for s in starts], [e + row for e in ends], chars


def _reparsed(base: _Layout, text: str) -> _Layout:
    """`text`'s layout from `base`'s (a text that parses), parsing only its lines from the start of the group of
    statements the first changed line is in (or the line after the group before it) to the start of the first
    group after the last changed line. When those lines do not parse on their own, the text from the group above
    them to its end is parsed in parts instead (it may not parse either).

    This is the whole text's parse: the lines before and after the region are base's, and end and begin on
    statement boundaries at the top level there; parsed on its own, the region begins with a statement at column 0
    (else: "unexpected indent") and leaves no string, bracket or block open, nor a line continued by a backslash.
    So the text reads as base's statements before the region, the region's, and base's after; or, where the region
    does not parse alone, as base's statements before the group above it and those of the text from that group on.
    """
    old, starts, ends, chars = base.text, base.starts, base.ends, base.chars
    assert starts is not None
    prefix = common_prefix(old, text)
    suffix = min(common_suffix(old, text), len(old) - prefix, len(text) - prefix)
    first = old.count("\n", 0, prefix)  # the first changed line
    last = first + old.count("\n", prefix, len(old) - suffix)  # the last (it may end as before)
    i = bisect.bisect_right(starts, first) - 1  # the group that starts at or before the first changed line
    if i < 0:
        kept, begin_row = 0, 0
    elif first > ends[i] and not _continued(old, chars[i][1]):
        kept, begin_row = i + 1, ends[i] + 1  # the change is after that group: it is kept
    else:
        kept, begin_row = i, starts[i]
    j = bisect.bisect_right(starts, last)  # the first group after the last changed line: it is kept
    begin = _line_start(text, prefix, first - begin_row)
    if j < len(starts):
        stop = _line_start(text, len(text) - suffix, 0)  # the last changed line, in text
        for _ in range(starts[j] - last):
            stop = text.find("\n", stop) + 1
    else:
        stop = len(text)
    region = text[begin:stop]
    joins_next = j < len(starts) and region.rstrip().endswith("\\")  # `x = 1 \\` would join the next group's line
    middle = None if joins_next else _in_parts(region, begin_row)
    if middle is None:
        # The text from the group above the region to its end decides then: base's groups before are the whole text's
        # still (parsing them too took 40 ms of each keystroke in a 10,000-line file broken near its end). Not from
        # the region: an `else:` or an indented line there may go on with that group; its own first line, unchanged,
        # starts a statement that none above goes on into.
        above = max(kept - 1, 0)
        begin, begin_row = (chars[above][0], starts[above]) if kept else (0, 0)
        rest = _in_parts(text[begin:], begin_row)
        if rest is None:
            return _Layout(text, None, [], [])
        return _Layout(text, starts[:above] + rest[0], ends[:above] + rest[1],
                       chars[:above] + [(a + begin, b + begin) for a, b in rest[2]])
    shift, moved = len(text) - len(old), text.count("\n") - old.count("\n")
    return _Layout(text, starts[:kept] + middle[0] + [s + moved for s in starts[j:]],
                   ends[:kept] + middle[1] + [e + moved for e in ends[j:]],
                   chars[:kept] + [(a + begin, b + begin) for a, b in middle[2]]
                   + [(a + shift, b + shift) for a, b in chars[j:]])


def _continued(text: str, end: int) -> bool:
    """Whether the line that ends at `end` ends in a backslash, which joins the next line to it."""
    return text[text.rfind("\n", 0, end) + 1:end].rstrip().endswith("\\")


def _line_start(text: str, pos: int, up: int) -> int:
    """Offset of the start of the line `up` lines above the one that holds `pos`."""
    start = text.rfind("\n", 0, pos) + 1
    for _ in range(up):
        start = text.rfind("\n", 0, start - 1) + 1
    return start


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


def _describe(text: str, node: _DefNode, in_class: bool, unit: str | None = None) -> DocTarget | None:
    """`node`'s target; `unit`, the file's indentation step, when `text` is not the whole file."""
    if ast.get_docstring(node, clean=False) is not None:
        return None
    colon = header_colon(text, node.lineno - 1)
    if colon is None or not node.body:
        return None
    lines = split_lines(text)
    colon_row = colon[0]
    body_row = node.body[0].lineno - 1
    if body_row > colon_row and continued_header(lines, colon):
        # `def f(x): \\` above `    return x`: a one-line body on the next physical line. The docstring takes the
        # backslash's place (see generate), at the statement's indent, the statement keeping its own line: that
        # line must be the very next, and deeper than the header.
        def_indent, indent = _indent_of(lines[node.lineno - 1]), _indent_of(lines[body_row])
        if body_row != colon_row + 1 or not (len(indent) > len(def_indent) and indent.startswith(def_indent)):
            return None  # a docstring anywhere would cut the body off the header: not offered
        insert_line = colon_row
    elif body_row > colon_row:
        if any(line.strip(" \t\f") == "\\" for line in lines[colon_row + 1:body_row]):
            # A bare backslash begins the body (`\t\\` above `\treturn x`): CPython takes such a line for
            # inconsistent tabs unless it is its block's first, and an edit may take out only blanks on one line.
            return None
        insert_line, indent = colon_row + 1, _indent_of(lines[body_row])
    else:
        # One-line body (`def f(x): return x`): the generator splits the line at the statement.
        insert_line, indent = colon_row, leading_ws(lines[node.lineno - 1]) + (unit or _indent_unit(lines))
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


def _indent_of(line: str) -> str:
    """The line's indent as Python counts it: a form feed (a page break, `^L`) among the leading blanks sets the
    column back to 0, so only the blanks after the last one indent the line (`\\f    return x` is 4 deep)."""
    blanks = line[: len(line) - len(line.lstrip(" \t\f"))]
    return blanks.rsplit("\f", 1)[-1]


def continued_header(lines: list[str], colon: tuple[int, int]) -> bool:
    """Whether nothing but a backslash follows the header's colon: the body goes on the header's logical line
    (`def f(x): \\` above `return x`), and a docstring on a line of its own under the header would leave it behind."""
    row, col = colon
    return lines[row][col + 1:].strip(" \t") == "\\"


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
        # A cursor outside the kept lines (below the cut, or on an overload signature above the implementation that
        # tree-sitter found for it) means the ts node itself, never a def that happens to be kept.
        lo, hi = (line, end_line) if start <= line and end_line <= last else (start, start)
        inner = _innermost(tree, lo, hi)
        if inner is None:
            continue
        node, nested_in_class = inner
        # The step is the file's: in the kept lines the first header is our `if 1:`, the def's indent below it.
        return _describe(source, node, in_class if _span_start(node) == start else nested_in_class,
                         _indent_unit(lines))
    return None
