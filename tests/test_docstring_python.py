"""Python docstrings: targets found with ast (tree-sitter when the file has syntax errors),
skeletons in each style, and the fill-in-the-middle contract with the model."""

from __future__ import annotations

import ast
import gc
import textwrap

import pytest

from lsp_server.docstring import DocEdit, DocTarget, find_target, generate_docstring, python_target
from lsp_server.docstring.clean import unrelated as about_other_code
from tests.docstring_helpers import Numbered, target_at


def replying(*answers: str):
    """Fake model returning the given answers in order, then nothing."""
    queue = list(answers)
    return lambda prefix, suffix, n: queue.pop(0) if queue else ""


def apply(text: str, edit: DocEdit) -> str:
    lines = text.split("\n")
    line = lines[edit.line]
    lines[edit.line] = line[: edit.character] + edit.new_text + line[edit.character + edit.replaced:]  # ASCII tests
    return "\n".join(lines)


def first_docstring(src: str) -> str:
    node = ast.parse(src).body[0]
    assert isinstance(node, ast.FunctionDef)
    doc = ast.get_docstring(node)
    assert doc is not None
    return doc


def document(src: str, line: int, **kw) -> tuple[DocTarget, str]:
    src = textwrap.dedent(src)
    target = target_at(src, "python", line)
    assert target is not None
    out = apply(src, generate_docstring(src, target, Numbered(), **kw))
    ast.parse(out)
    return target, out


AREA = '''\
def area(width, height):
    if width < 0:
        raise ValueError("negative")
    return width * height
'''


def test_google_golden_and_position() -> None:
    target = target_at(AREA, "python", 0)
    assert target == DocTarget("python", "function", "area", ("width", "height"), True, False,
                               ("ValueError",), 0, 1, "    ")
    edit = generate_docstring(AREA, target, Numbered())
    assert (edit.line, edit.character) == (1, 0)
    assert edit.new_text == '''\
    """Text number 1.

    Args:
        width: Text number 2.
        height: Text number 3.

    Returns:
        Text number 4.

    Raises:
        ValueError: Text number 5.
    """
'''
    assert first_docstring(apply(AREA, edit)).startswith("Text number 1.")


@pytest.mark.parametrize("style, expected", [
    ("numpy", '''\
    """Text number 1.

    Parameters
    ----------
    width
        Text number 2.
    height
        Text number 3.

    Returns
    -------
    Text number 4.

    Raises
    ------
    ValueError
        Text number 5.
    """
'''),
    ("sphinx", '''\
    """Text number 1.

    :param width: Text number 2.
    :param height: Text number 3.
    :returns: Text number 4.
    :raises ValueError: Text number 5.
    """
'''),
    ("plain", '    """Text number 1."""\n'),
])
def test_other_styles(style: str, expected: str) -> None:
    target = target_at(AREA, "python", 2)
    edit = generate_docstring(AREA, target, Numbered(), style=style)
    assert edit.new_text == expected
    ast.parse(apply(AREA, edit))


def test_infill_gets_prefix_up_to_blank_and_suffix_after_it() -> None:
    model = Numbered()
    generate_docstring(AREA, target_at(AREA, "python", 0), model, max_words=10)
    assert len(model.calls) == 5
    prefix, suffix, budget = model.calls[2]  # the `height` blank
    assert prefix == 'def area(width, height):\n    """Text number 1.\n\n    Args:\n        width: Text number 2.\n        height: '
    assert suffix == ('\n\n    Returns:\n\n\n    Raises:\n        ValueError:\n    """\n'
                      '    if width < 0:\n        raise ValueError("negative")\n    return width * height\n')
    assert budget == 20
    summary_prefix, summary_suffix, _ = model.calls[0]
    assert summary_prefix.endswith('def area(width, height):\n    """')
    assert summary_suffix.startswith('\n\n    Args:\n        width:\n        height:\n')


def test_context_is_truncated_at_line_boundaries() -> None:
    filler = "".join(f"x{i} = {i}\n" for i in range(2000))
    src = filler + "def f(a):\n    return a\n" + filler
    model = Numbered()
    generate_docstring(src, target_at(src, "python", 2000), model)
    prefix, suffix, _ = model.calls[0]
    assert len(prefix) <= 4010 and prefix.startswith("x") and prefix.endswith('def f(a):\n    """')
    assert len(suffix) <= 2000 + 200 and suffix.endswith("\n") and "return a" in suffix


def test_methods_skip_self_and_cls_but_not_staticmethod_args() -> None:
    src = textwrap.dedent('''\
        class Box:
            def put(self, item, /, *, force=False):
                self.items.append(item)

            @classmethod
            def make(cls, *args, **kwargs):
                return cls(*args, **kwargs)

            @staticmethod
            def check(value):
                pass
        ''')
    put, make, check = (target_at(src, "python", n) for n in (2, 4, 9))
    assert (put.kind, put.params, put.returns) == ("method", ("item", "force"), False)
    assert (make.params, make.returns, make.line) == (("*args", "**kwargs"), True, 5)
    assert check.params == ("value",)
    out = apply(src, generate_docstring(src, make, replying("Build a box", "", "")))
    assert """
    def make(cls, *args, **kwargs):
        \"\"\"Build a box.

        Args:
            *args: Additional positional arguments.
            **kwargs: Additional keyword arguments.

        Returns:
            The result.
        \"\"\"
        return cls(*args, **kwargs)
""" in out


def test_decorator_line_and_multiline_signature() -> None:
    src = '''\
import functools

@functools.cache
@other(
    1,
)
async def fetch(
    url: str,
    *,
    timeout: float = 1.0,
) -> dict[str, int]:
    # a comment before the first statement
    ...
'''
    target = target_at(src, "python", 3)  # cursor on a decorator
    assert (target.name, target.line, target.insert_line, target.indent) == ("fetch", 6, 11, "    ")
    assert target.params == ("url", "timeout") and target.returns  # annotated, body is `...`
    out = apply(src, generate_docstring(src, target, Numbered()))
    assert out.split("\n")[10:13] == [") -> dict[str, int]:", '    """Text number 1.', ""]
    ast.parse(out)


def test_tabs_are_kept() -> None:
    src = "class A:\n\tdef f(self, x):\n\t\treturn x\n"
    target = target_at(src, "python", 2)
    edit = generate_docstring(src, target, Numbered())
    assert target.indent == "\t\t"
    assert edit.new_text == '\t\t"""Text number 1.\n\n\t\tArgs:\n\t\t\tx: Text number 2.\n\n\t\tReturns:\n\t\t\tText number 3.\n\t\t"""\n'
    ast.parse(apply(src, edit))


def test_nested_defs_pick_the_innermost() -> None:
    src = textwrap.dedent('''\
        def outer(a):
            def inner(b):
                yield b
            return inner(a)
        ''')
    inner = target_at(src, "python", 2)
    outer = target_at(src, "python", 3)
    assert (inner.name, inner.yields, inner.returns, inner.indent) == ("inner", True, False, "        ")
    # The inner generator's yield is not outer's; outer returns a value.
    assert (outer.name, outer.yields, outer.returns, outer.insert_line) == ("outer", False, True, 1)
    assert target_at(src, "python", 0, 3).name == "outer"  # a selection spanning both


# Every kind of statement a def can sit in, decorators, methods, nested classes, a one-line body.
NESTED = textwrap.dedent('''\
    import os

    @decorator(
        arg=1)
    def top(a):
        if a:
            def in_if(b):
                return b
        else:
            try:
                class InTry:
                    @staticmethod
                    def method(c):
                        async def deeper(d):
                            return d
                        return deeper
            except (ValueError, KeyError) as e:
                def in_handler(): return e
            finally:
                pass
        for x in a:
            with open(x) as f:
                def in_with(): ...
        match a:
            case [1, *rest]:
                def in_case(z): return z
            case _:
                pass
        while False:
            pass
        return 1; x = 2

    class Outer:
        class Inner:
            def method(self, y):
                pass
    ''')


def _innermost_by_walking_every_node(tree: ast.AST, first: int, last: int) -> tuple[str, int, bool] | None:
    # The reference: every def in the tree (ast.walk), the latest-starting one around the lines.
    methods = {id(c) for n in ast.walk(tree) if isinstance(n, ast.ClassDef) for c in n.body
               if isinstance(c, (ast.FunctionDef, ast.AsyncFunctionDef))}
    around = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
              and python_target._span_start(n) <= first and last <= n.end_lineno - 1]
    best = max(around, key=python_target._span_start, default=None)
    return None if best is None else (best.name, best.lineno, id(best) in methods)


def test_innermost_def_is_the_one_a_walk_of_every_node_finds() -> None:
    tree = ast.parse(NESTED)
    count = len(NESTED.split("\n"))
    for first in range(count):
        for last in range(first, count):
            found = python_target._innermost(tree, first, last)
            assert (None if found is None else (found[0].name, found[0].lineno, found[1])) == \
                _innermost_by_walking_every_node(tree, first, last), (first, last)


def test_a_cursor_move_in_a_big_file_visits_the_statements_around_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # Code actions are asked for at every cursor move: walking each of a 10,000-line file's 52,000 nodes took
    # ~120 ms on top of the parse. Only the statements whose lines hold the cursor's are entered now.
    text = "".join(f"def f{i}(a, b):\n    '''Doc.'''\n    c = a * {i} + b\n    return c\n\n" for i in range(2_000))
    text += "def last(x):\n    return [y for y in x if y]\n"
    tree = ast.parse(text)
    entered = 0
    children = ast.iter_child_nodes

    def counted(node: ast.AST):
        nonlocal entered
        entered += 1
        return children(node)

    monkeypatch.setattr(ast, "iter_child_nodes", counted)
    found = python_target._innermost(tree, 10_001, 10_001)
    assert found is not None and found[0].name == "last"
    assert entered < 10


def test_a_file_is_parsed_with_the_cyclic_collector_off(monkeypatch: pytest.MonkeyPatch) -> None:
    # In the server (torch loaded) the collections that creating a big tree sets off doubled the parse's time.
    collecting: list[bool] = []
    parse = ast.parse

    def noting(*args: object, **kwargs: object) -> ast.AST:
        collecting.append(gc.isenabled())
        return parse(*args, **kwargs)

    monkeypatch.setattr(ast, "parse", noting)
    assert find_target("def f(x):\n    return x\n# one\n", "python", 0) is not None
    assert find_target("def f(x):\n    return x\n\ndef g(:\n", "python", 0) is not None  # a syntax error
    assert collecting[:2] == [False, False] and gc.isenabled()


def test_one_line_body_is_split() -> None:
    src = "def double(x): return 2 * x\nclass Empty: pass\n"
    target = target_at(src, "python", 0)
    assert (target.insert_line, target.indent) == (0, "    ")
    model = Numbered()  # one model for both: a second "Text number 1." would copy the first docstring
    edit = generate_docstring(src, target, model)
    out = apply(src, edit)
    assert out.split("\n")[:9] == ["def double(x):", '    """Text number 1.', "", "    Args:", "        x: Text number 2.",
                                   "", "    Returns:", "        Text number 3.", '    """']
    assert out.split("\n")[9] == "    return 2 * x"
    out2 = apply(out, generate_docstring(out, target_at(out, "python", 10), model))
    assert out2.split("\n")[10:13] == ["class Empty:", '    """Text number 4."""', "    pass"]
    ast.parse(out2)


def test_a_one_line_body_in_a_tab_indented_file_leaves_no_blank_on_the_header() -> None:
    src = "class A:\n\tdef f(self, x): return x\n"
    edit = generate_docstring(src, target_at(src, "python", 1), Numbered())
    out = apply(src, edit).split("\n")
    assert (out[1], out[2], out[-2]) == ("\tdef f(self, x):", '\t\t"""Text number 1.', "\t\treturn x")


def test_class_docstring_lists_init_params() -> None:
    _, out = document('''\
        class Point:
            def __init__(self, x, y=0):
                self.x, self.y = x, y
        ''', 0)
    assert '    """Text number 1.\n\n    Args:\n        x: Text number 2.\n        y: Text number 3.\n    """\n    def __init__' in out


@pytest.mark.parametrize("src, line", [
    ('def f(x):\n    """Has one."""\n    return x\n', 2),
    ("def f(x):\n    'single quoted'\n", 0),
    ("class A:\n    r'''Raw.'''\n", 0),
    ("import os\n\nx = 1\n", 2),        # not in any def
    ("def f(x):\n    return x\n\n\ny = 2\n", 4),  # after the def
])
def test_no_target(src: str, line: int) -> None:
    assert find_target(src, "python", line) is None


def test_unsupported_language() -> None:
    assert find_target("def f(): pass\n", "cobol", 0) is None
    assert find_target("sub f { }\n", "perl", 0) is None


def test_documented_method_in_undocumented_class_is_not_a_target() -> None:
    src = 'class A:\n    def f(self):\n        """Doc."""\n        return 1\n'
    assert find_target(src, "python", 3) is None  # innermost def decides
    assert target_at(src, "python", 0).name == "A"


def test_syntax_error_elsewhere_falls_back_to_tree_sitter() -> None:
    src = textwrap.dedent('''\
        class Service:
            @property
            def name(self, default=None):
                if default is None:
                    raise KeyError("name")
                return default

            def broken(self:
                pass

        x = (
        ''')
    target = target_at(src, "python", 4)
    assert target == DocTarget("python", "method", "name", ("default",), True, False, ("KeyError",), 2, 3, "        ")
    out = apply(src, generate_docstring(src, target, Numbered()))
    assert out.split("\n")[2:5] == ["    def name(self, default=None):", '        """Text number 1.', ""]
    # The class itself holds the error; its header and first statement still place a docstring.
    cls = target_at(src, "python", 0)
    assert (cls.kind, cls.insert_line, cls.indent) == ("class", 1, "    ")
    # Inside the broken def tree-sitter sees no def, so the enclosing class is the target.
    assert target_at(src, "python", 8).name == "Service"


def test_raises_resolves_except_aliases_and_skips_variables() -> None:
    src = textwrap.dedent('''\
        def load(path):
            try:
                return open(path).read()
            except (OSError, UnicodeError) as exc:
                raise exc
            except Exception as err:
                raise errors.LoadError(path) from err
            raise build_error()
        ''')
    assert target_at(src, "python", 0).raises == ("OSError", "UnicodeError", "errors.LoadError")


def test_none_returns_and_generators() -> None:
    src = textwrap.dedent('''\
        def a() -> None:
            return None
        def b() -> Iterator[int]:
            yield from range(3)
        def c():
            return
        ''')
    a, b, c = (target_at(src, "python", n) for n in (0, 2, 4))
    assert (a.returns, b.returns, b.yields, c.returns) == (False, False, True, False)


def test_model_output_is_cleaned() -> None:
    src = "def f(a, b, c):\n    pass\n"
    target = target_at(src, "python", 0)
    model = replying(
        '  Compute   the thing"""\n    more',       # delimiter, newline, extra spaces
        "a: the first value\nignored",               # repeated label
        "Args:",                                     # another section: unusable
        " the value used for scaling all of the results",  # over max_words
    )
    text = generate_docstring(src, target, model, max_words=5, style="google").new_text
    assert text == ('    """Compute the thing.\n\n    Args:\n        a: The first value.\n'
                    '        b: The b.\n        c: The value used for scaling.\n    """\n')


def test_backslashes_make_a_raw_docstring() -> None:
    src = "def digits(s):\n    pass\n"
    edit = generate_docstring(src, target_at(src, "python", 0), replying(r"Match \d+ or \N", "the s"))
    assert edit.new_text.startswith('    r"""Match \\d+ or \\N.')
    assert first_docstring(apply(src, edit)).startswith("Match \\d+")


def test_crlf_and_selection_range() -> None:
    src = "def f(x):\r\n    y = x\r\n    return y\r\n"
    target = target_at(src, "python", 2, 1)  # reversed selection
    edit = generate_docstring(src, target, Numbered(), style="plain")
    assert (edit.line, edit.new_text) == (1, '    """Text number 1."""\r\n')
    # Before: a file of lone \r line breaks got \n lines inserted.
    src = "x = 1\rdef g(a):\r    return a\r"
    edit = generate_docstring(src, target_at(src, "python", 1), Numbered())
    assert "\n" not in edit.new_text and edit.new_text.endswith('"""\r') and edit.new_text.count("\r") > 3


def test_non_ascii_before_a_one_line_body_uses_utf16_columns() -> None:
    src = "def f(x=\"😀\"): return x\n"
    edit = generate_docstring(src, target_at(src, "python", 0), Numbered(), style="plain")
    assert (edit.line, edit.character) == (0, len("def f(x=\"😀\"):") + 1)  # the emoji is 2 UTF-16 units


# --- model words that are no description --------------------------------------------------------------

GRAPH = '''def nodes(graph):
    """The number of nodes in the graph."""
    return len(graph)


def gap(a, b):
    """Space between two boxes."""
    return b.left - a.right


def distance(a, b):
    return abs(a - b)
'''


@pytest.mark.parametrize("words", [
    "x1: 0x00ef, 0x00f6.",                          # numbers, not words
    "Returns: The number of nodes in the graph.",   # another section's label
    "The number of nodes in the graph.",            # copied from another docstring in the file
    "Space between two boxes.",                     # the whole of another docstring, however short
    "Sorted list of the edges in a network.",       # about other code: remembered from training
    "Return failobj.get(header, missing).",         # code, not words
    "Self.width = self.height",
    "Return a ** b",
    "Return a._numerator // a._denominator).",
    "Import re.",
    "module: The module.",                          # another parameter's blank
    "2: 'ACCT ' + password.",
    "Return a list of.",                            # an unfinished sentence
    "the value of the distance is the value of the distance",  # going round
    "distance distance distance distance",          # a loop
    "the the difference",
    "Is the absolute distance of a * * * * * * * *",  # marks going round: no word repeated
    "absolute distance -- absolute distance -- absolute.",  # going round in a short loop
    "abs_distance.",                                # an identifier, not words
    "From/graph/distance.",                         # a path
    "The distance between `a and b.",               # a backtick left open: the rest would be code
    'The "distance" between a and "b.',             # a quote left open
    "The distance (never negative between a and b.",
    "The distance a // b.",                         # a line comment's mark, or floor division
    "Float | None for the distance.",               # a type, not words
    ": float, the distance.",                       # the rest of a label
    "``None`` distance.",                           # reST's code is code too: one word is left
    "(float, optional): The distance.",             # another blank's label, by its type
    "Integer (a, b) -> distance between a and b.",
    "Return None if a is None else graph.max_distance.",
])
def test_poor_model_words_give_way_to_the_neutral_wording(words: str) -> None:
    target = target_at(GRAPH, "python", GRAPH[:GRAPH.index("def distance")].count("\n"))
    edit = generate_docstring(GRAPH, target, lambda prefix, suffix, n: words)
    body = edit.new_text
    assert words.rstrip(".") not in body and "Distance." in body  # the summary falls back to the name
    ast.parse(GRAPH[:GRAPH.index("    return abs")] + body + GRAPH[GRAPH.index("    return abs"):])


@pytest.mark.parametrize(("words", "code", "unrelated"), [
    ("The number of nodes in the graph.", "def polygon_perimeter(points):\n    return total", True),
    ("The perimeter of the polygon.", "def polygon_perimeter(points):\n    return total", False),
    ("Euclidean distance to the other point.", "function distanceTo(p) { return Math.hypot(p.x) }", False),
    ("The absolute value of a connection pool.", "def f(x):\n    return abs(x)", False),  # `abs`
    ("The result as text.", "def f(x):\n    return x", False),  # one stray word proves nothing
    ("True if successful, False otherwise.", "def f(x):\n    return x", False),
])
def test_descriptions_must_be_about_the_code(words: str, code: str, unrelated: bool) -> None:
    assert about_other_code(words, code) is unrelated


@pytest.mark.parametrize("words", [
    "Distance between a and b, e.g. for sorting.",
    "The same as `abs(a - b)`.",
    "The distance(s) from a to b, as os.path would say it.",
    "How far apart a and b are: never negative.",
    "The non-negative distance between a and b (see https://en.wikipedia.org/wiki/Distance).",
    "The user's distance between `a` and \"b\".",
    "The distance between ``a`` and ``b``.",
])
def test_sentences_with_code_like_marks_are_kept(words: str) -> None:
    target = target_at(GRAPH, "python", GRAPH[:GRAPH.index("def distance")].count("\n"))
    edit = generate_docstring(GRAPH, target, lambda prefix, suffix, n: words)
    assert words.rstrip(".") in edit.new_text


def test_a_blank_never_repeats_another_blanks_words() -> None:
    src = "def send(sock, data, address):\n    sock.sendto(data, address)\n"
    edit = generate_docstring(src, target_at(src, "python", 0),
                              replying("Send a datagram", "the sock", "the bytes to send", "the bytes to send"))
    assert edit.new_text == ('    """Send a datagram.\n\n    Args:\n        sock: The sock.\n'
                             '        data: The bytes to send.\n        address: The address.\n    """\n')


def test_a_real_sentence_is_kept() -> None:
    target = target_at(GRAPH, "python", GRAPH[:GRAPH.index("def distance")].count("\n"))
    edit = generate_docstring(GRAPH, target, lambda prefix, suffix, n: "the absolute difference between a and b")
    assert "The absolute difference between a and b." in edit.new_text


def test_a_file_too_deep_for_ast_still_gets_its_docstring_action() -> None:
    # Before: ast.parse raised RecursionError on a long expression, and the code action failed with -32603.
    text = 'def area(w, h):\n    return w * h\n\n\nTABLE = ' + " + ".join(['"ab"'] * 6000) + "\n"
    target = find_target(text, "python", 0)
    assert target is not None and target.name == "area"


@pytest.mark.parametrize(("char", "kept"), [
    ("\x00", "The absolute difference of a and b."),   # a byte-fallback token: Python refuses the file
    ("\x1b", "The absolute difference of a and b."),
    ("\u202e", "The absolute difference of a and b."),  # a bidi override: rustc refuses it in a doc comment
    ("\ufeff", "The absolute difference of a and b."),
    ("\r", "The absolute difference of a and b."),      # a line break to the editor
])
def test_control_and_format_characters_never_reach_the_file(char: str, kept: str) -> None:
    target = target_at(GRAPH, "python", GRAPH[:GRAPH.index("def distance")].count("\n"))
    edit = generate_docstring(GRAPH, target, lambda prefix, suffix, n: f"the absolute{char} difference of a and b")
    assert kept in edit.new_text and char not in edit.new_text
    ast.parse(GRAPH[:GRAPH.index("    return abs")] + edit.new_text + GRAPH[GRAPH.index("    return abs"):])


def test_words_are_judged_as_cut_to_length() -> None:
    # Before: the checks saw the whole answer and the cut one was shown, a backtick left open in it.
    target = target_at(GRAPH, "python", GRAPH[:GRAPH.index("def distance")].count("\n"))
    words = "the absolute distance between `a and b` on the line"
    edit = generate_docstring(GRAPH, target, lambda prefix, suffix, n: words, max_words=5)
    assert '"""Distance.' in edit.new_text
    edit = generate_docstring(GRAPH, target, lambda prefix, suffix, n: words, max_words=7)
    assert '"""The absolute distance between `a and b`.' in edit.new_text


def test_cursor_on_an_overload_signature_documents_the_implementation() -> None:
    # help(), Sphinx and pyright's fallback read the implementation's docstring; a stub's is lost at run time.
    # The cursor on a signature used to put the docstring into that stub.
    src = ("from typing import overload\n\n@overload\ndef f(x: int) -> int: ...\n@overload\ndef f(x: str) -> str: ...\n"
           "def f(x):\n    return x\n")
    assert [target_at(src, "python", row).line for row in (2, 3, 5, 6)] == [6, 6, 6, 6]
    documented = src.replace("def f(x):\n", 'def f(x):\n    """Doc."""\n')
    assert find_target(documented, "python", 3) is None
    cls = ("class A:\n    @typing.overload\n    def g(self, x: int) -> int: ...\n    @typing.overload\n"
           "    def g(self, x: str) -> str: ...\n    def g(self, x):\n        return x\n")
    target = target_at(cls, "python", 2)
    assert (target.line, target.kind, target.params) == (5, "method", ("x",))
    # No implementation after it (a stub file), or something else first: the signature itself.
    stubs = "@overload\ndef f(x: int) -> int: ...\n@overload\ndef f(x: str) -> str: ...\n"
    assert target_at(stubs, "python", 1).line == 1
    assert target_at("@overload\ndef f(x: int) -> int: ...\nX = 1\ndef f(x):\n    return x\n", "python", 1).line == 1


def test_one_line_method_in_an_indented_class_while_the_file_does_not_parse() -> None:
    # The lines kept for `ast` open with our `if 1:`, the class's line, whose body is the def: the step measured
    # there was the def's whole indent, and the docstring went eight columns deeper than the method's body.
    src = "if TYPE_CHECKING:\n    class A:\n        @property\n        def f(self): return 1\n\ndef broken(:\n"
    target = target_at(src, "python", 3)
    assert (target.insert_line, target.indent) == (3, " " * 12)
    out = apply(src, generate_docstring(src, target, Numbered()))
    assert out.split("\n")[3:5] == ["        def f(self):", ' ' * 12 + '"""Text number 1.']


def test_overload_signature_documents_the_implementation_while_the_file_does_not_parse() -> None:
    # Half-typed code elsewhere sends the lookup through tree-sitter, where the docstring went into the stub.
    broken = "\n\ndef later(:\n"
    src = ("from typing import overload\n\n@overload\ndef f(x: int) -> int: ...\n# text\n@overload\n"
           "def f(x: str) -> str: ...\ndef f(x):\n    return x\n" + broken)
    assert [target_at(src, "python", row).line for row in (2, 3, 6, 7, 8)] == [7, 7, 7, 7, 7]
    assert find_target(src.replace("def f(x):\n", 'def f(x):\n    """Doc."""\n'), "python", 3) is None
    cls = ("class A:\n    @typing.overload\n    def g(self, x: int) -> int: ...\n    @typing.overload\n"
           "    def g(self, x: str) -> str: ...\n    def g(self, x):\n        return x\n    def h(:\n")
    target = target_at(cls, "python", 2)
    assert (target.line, target.kind, target.params) == (5, "method", ("x",))
    stubs = "@overload\ndef f(x: int) -> int: ...\n@overload\ndef f(x: str) -> str: ...\n" + broken
    assert target_at(stubs, "python", 1).line == 1
    assert target_at("@overload\ndef f(x: int) -> int: ...\nX = 1\ndef f(x):\n    return x\n" + broken,
                     "python", 1).line == 1
