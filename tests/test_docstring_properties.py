"""Properties of the "Generate docstring" edit, for any file built from realistic fragments (nested and one-line
defs, decorators and attributes, comments, blank lines, every LSP line break, tabs or spaces, astral characters)
and any model text (delimiters, backslashes, control text, long lines, nothing): the file parses as before, the
code is the same code, the edit is at a real UTF-16 position with the document's line breaks and the target's
indent, and the action is not offered again at the same place."""

from __future__ import annotations

import ast
import re

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from lsp_server.docstring import DocEdit, DocTarget, find_target, generate_docstring
from lsp_server.docstring.ts_util import Node, parse
from lsp_server.text import line_break_of, lone_cr_to_lf

CHECKS = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
BREAKS = ["\n", "\r\n", "\r"]
_BREAK = re.compile(r"\r\n|\r|\n")
# What a model may write into a blank: closing and opening delimiters, escapes, code, FIM control text, lines at
# column 0, a very long line, nothing.
MODEL_PIECES = ['"""', "'''", "*/", "/*", "\\", "`", "``", "<EOT>", "\n", "\nx = 1", "\ndef g():", "\n}",
                "Return the sum", " of values", "😀", "𐐀", "é", "\t", '"', "'", "#", "//", "///", "-->", "*",
                "{@code x}", "<b>", "&", "a < b", "x" * 300, " ", "\r", "\x00", "\u202e", "\\n", "\\x", "$", "%s"]
model_texts = st.lists(st.sampled_from(MODEL_PIECES), max_size=6).map("".join)


def lsp_lines(text: str) -> list[tuple[int, int]]:
    """(start, end) code-point offsets of each LSP line's text, without its line break."""
    spans, start = [], 0
    for m in _BREAK.finditer(text):
        spans.append((start, m.start()))
        start = m.end()
    return [*spans, (start, len(text))]


def lsp_lines_text(text: str, line: int) -> str:
    start, end = lsp_lines(text)[line]
    return text[start:end]


def code_points(line: str, units: int) -> int:
    """The code-point index `units` UTF-16 units into `line`; it must fall between two characters of the line."""
    i = used = 0
    while used < units:
        assert i < len(line), "a UTF-16 position past the end of its line"
        used += 2 if ord(line[i]) > 0xFFFF else 1
        i += 1
    assert used == units, "a UTF-16 position inside a surrogate pair"
    return i


def apply(text: str, edit: DocEdit) -> tuple[str, int]:
    """The text with the edit applied as an editor applies it, and the offset where the new text starts."""
    spans = lsp_lines(text)
    assert 0 <= edit.line < len(spans), "the edit's line is not a line of the document"
    start, end = spans[edit.line]
    line = text[start:end]
    begin = code_points(line, edit.character)
    stop = begin + code_points(line[begin:], edit.replaced)
    # Only blanks are taken out, and a backslash that ends the line (`def f(x): \\`, the body under it).
    replaced = line[begin:stop]
    assert not replaced.strip(" \t") or (replaced.strip(" \t") == "\\" and stop == len(line)), replaced
    return text[:start + begin] + edit.new_text + text[start + stop:], start + begin


def check_layout(text: str, target: DocTarget, edit: DocEdit) -> None:
    """The new text's line breaks are the document's, and each of its lines starts with the target's indent."""
    line_break = line_break_of(text)
    assert set(_BREAK.findall(edit.new_text)) <= {line_break}
    for piece in edit.new_text.split(line_break):
        assert not piece or piece.startswith(target.indent), piece
        assert not piece.strip() or piece == piece.rstrip(), "a trailing blank"


def generate(text: str, language: str, lines: tuple[int, int], answers: list[str],
             style: str) -> tuple[DocTarget, DocEdit] | None:
    target = find_target(text, language, *lines)
    if target is None:
        return None
    replies = iter(answers)
    return target, generate_docstring(text, target, lambda prefix, suffix, n: next(replies, ""), style=style)


def selection(text: str, data: st.DataObject) -> tuple[int, int]:
    """The lines of a cursor (first == last) or a selection."""
    first = data.draw(st.integers(0, len(lsp_lines(text)) - 1))
    return first, data.draw(st.one_of(st.just(first), st.integers(first, len(lsp_lines(text)) - 1)))


# --------------------------------------------------------------------------
# The defects these properties found
# --------------------------------------------------------------------------


def documented(text: str, line: int) -> str:
    made = generate(text, "python", (line, line), ["Add one"], "plain")
    assert made is not None
    out = apply(text, made[1])[0]
    ast.parse(out)
    return out


def test_a_body_carried_onto_the_next_line_by_a_backslash_stays_the_body() -> None:
    # `def f(x): \` above `return x` is a one-line body; the docstring went on the line below the header, after
    # the backslash, which joined it to the header and left `return x` an unexpected indent: the file broke.
    assert documented("def f(x): \\\n    return x + 1\n", 0) == 'def f(x):\n    """Add one."""\n    return x + 1\n'
    assert documented("class A:\r\n\tdef f(self):\\\r\n\t\treturn 1\r\n", 1) \
        == 'class A:\r\n\tdef f(self):\r\n\t\t"""Add one."""\r\n\t\treturn 1\r\n'
    # The statement not deeper than the header (legal after a backslash): no indent for a docstring fits both.
    ast.parse("def f(x): \\\nreturn x\n")
    assert find_target("def f(x): \\\nreturn x\n", "python", 0) is None


def test_a_form_feed_before_the_body_s_indent_is_no_indent() -> None:
    # Python counts a line's indent from after a form feed (a page break); the docstring went at column 0, and
    # the function lost its body.
    assert documented("def f(x):\n\x0c    return x + 1\n", 0) \
        == 'def f(x):\n    """Add one."""\n\x0c    return x + 1\n'


def test_no_docstring_above_a_bare_backslash_that_begins_a_body() -> None:
    # `\t\\` is a line CPython takes only as its block's first (else: inconsistent tabs and spaces), and the edit
    # cannot take it out: the action is not offered rather than break the file.
    text = "class A:\n\t\\\n\tx = 1\n"
    ast.parse(text)
    assert find_target(text, "python", 0) is None


# --------------------------------------------------------------------------
# Python
# --------------------------------------------------------------------------

_NAMES = ["f", "café", "𐐀x", "_g", "__init__", "run"]
_PARAMS = ["", "x", "self, x", "a, b=1", "s='😀', *args, **kw", "x: int = 2", "a,\n{i}    b"]
_ONE_LINERS = ["return x", "a = 1; return a", "pass", "yield x", "return x  # 😀 c", "raise ValueError('x')",
               "...", "return '\\t\"\"\"'"]
_STATEMENTS = ["x = 1", "pass", "s = '😀 é'", "# a comment 😀", "", "print(x)  # trailing", "return x",
               "raise KeyError(x)", "t = '''\n''' ", "if x: y = 2"]


@st.composite
def python_block(draw: st.DrawFn, level: int) -> list[str]:
    """Lines of a block at `level` (indent written as `{i}` per level, replaced with the file's unit)."""
    ind = "{i}" * level
    out: list[str] = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["stmt", "def", "def", "class"] if level < 3 else ["stmt"]))
        if kind == "stmt":
            # A form feed (a page break) may lead a line: Python counts the indent from after it.
            page = draw(st.sampled_from(["", "", "\x0c"]))
            out += [page + ind + line if line else "" for line in draw(st.sampled_from(_STATEMENTS)).split("\n")]
            continue
        out += [ind + d for d in draw(st.lists(st.sampled_from(["@dec", "@staticmethod", "@a.b(1)"]), max_size=2))]
        if draw(st.booleans()):
            out.append(ind + "# about it")
        if kind == "class":
            bases = draw(st.sampled_from(['', '(B)', '()']))
            header = f"class {draw(st.sampled_from(['A', 'Ünï', '𐐀']))}{bases}:"
        else:
            asyncness = draw(st.sampled_from(["", "async "]))
            params = draw(st.sampled_from(_PARAMS)).replace("{i}", ind)
            returns = draw(st.sampled_from(['', ' -> int']))
            header = f"{asyncness}def {draw(st.sampled_from(_NAMES))}({params}){returns}:"
        if draw(st.booleans()):
            one = draw(st.sampled_from(_ONE_LINERS))
            # A backslash may carry the one-line body onto the next line: `def f(x): \\` above `    return x`.
            gap = draw(st.sampled_from([" ", "  ", "\t", " \\\n" + ind + "{i}", "\\\n" + ind + "  ", " \\\n",
                                        " \\\n{i} \\\n" + ind + "{i}"]))
            out += f"{ind}{header}{gap}{one}".split("\n")
        else:
            out.append(ind + header)
            if draw(st.booleans()):
                # A blank line, a comment, or a bare backslash that joins the body's first line to nothing above.
                out.append(draw(st.sampled_from(["", ind + "# first", ind + "{i}\\"])))
            out += draw(python_block(level + 1))
        if draw(st.booleans()):
            out.append("")
    return out


@st.composite
def python_files(draw: st.DrawFn) -> str:
    unit = draw(st.sampled_from(["    ", "  ", "\t"]))
    lines = [line.replace("{i}", unit) for line in draw(python_block(0))]
    if draw(st.booleans()):
        text = draw(st.sampled_from(BREAKS)).join(lines)
    else:
        text = "".join(line + draw(st.sampled_from(BREAKS)) for line in lines[:-1]) + lines[-1]
    return text + draw(st.sampled_from(["", "\n", "\r\n", "\r"]))


def without_docstrings(tree: ast.AST) -> str:
    """The tree's dump with every docstring taken out: the code, what it does."""
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and body \
                and ast.get_docstring(node, clean=False) is not None:
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree)


def def_on_line(tree: ast.AST, row: int) -> ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef:
    return next(n for n in ast.walk(tree)
                if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and n.lineno - 1 == row)


@CHECKS
@given(python_files(), st.data(), st.lists(model_texts, max_size=8),
       st.sampled_from(["google", "numpy", "sphinx", "plain"]))
def test_python_docstring_keeps_the_file_and_its_code(text: str, data: st.DataObject, answers: list[str],
                                                     style: str) -> None:
    try:
        before = ast.parse(text)
    except SyntaxError:
        event("not python")
        return  # a fragment mix that is no Python (`return` at the top level)
    made = generate(text, "python", selection(text, data), answers, style)
    event("a target" if made else "no target")
    if made is None:
        return
    target, edit = made
    out, _ = apply(text, edit)
    check_layout(text, target, edit)
    after = ast.parse(out)
    node = def_on_line(after, target.line)  # the header stays where it was: the docstring goes below it
    assert node.name == target.name
    assert ast.get_docstring(node) is not None
    assert ast.get_docstring(def_on_line(before, target.line)) is None
    assert without_docstrings(after) == without_docstrings(before)
    assert find_target(out, "python", target.line) is None


# --------------------------------------------------------------------------
# The tree-sitter languages
# --------------------------------------------------------------------------

# Fragments written with two spaces per level ("  "), made the file's unit.
TS_FRAGMENTS: dict[str, list[str]] = {
    "javascript": [
        "function add(a, b) {\n  return a + b;\n}", "class A {\n  m(x) { return x; }\n  static s() {}\n}",
        "const g = (x) => x * 2;", "let s = \"😀\"; function h(y) { return y; }", "// a comment 😀",
        "/* block */ function k() {}", "async function* gen() { yield 1; }",
        "function outer() {\n  function inner(z) {\n    if (!z) throw new Error('z');\n    return z;\n  }\n"
        "  return inner;\n}", "export default class B extends A {\n  constructor(p) { super(); }\n}",
        "const o = {\n  f(x) { return x; },\n};"],
    "typescript": [
        "function id<T>(x: T): T {\n  return x;\n}", "interface I {\n  m(): void;\n}",
        "abstract class C {\n  abstract m(a: number): void;\n  @dec\n  n(): string { return '😀'; }\n}",
        "let s = '𐐀'; function h(y: number) { return y; }", "// note", "export const f = (a: string) => a;",
        "function over(x: string): string;\nfunction over(x: number): number;\nfunction over(x: any) { return x; }"],
    "java": [
        "class A {\n  int f(int x) { return x; }\n  @Override\n  public String toString() { return \"😀\"; }\n"
        "  A() {}\n}", "interface I {\n  void m(int a) throws Exception;\n}", "enum E {\n  X;\n  void m() {}\n}",
        "record R(int x) {}", "// 𐐀 comment", "class G<T> {\n  <U> U conv(T t) { return null; }\n}",
        "class B { int f() { return 1; } }"],
    "go": [
        "func F(a int) int {\n  return a\n}", "type T struct {\n  X int\n}", "func (t *T) M() error { return nil }",
        "var x = \"😀\"; func G() {}", "/* c */ func H() {}", "//go:noinline\nfunc N() {}", "// Plain comment.\n",
        "func (t T) V(a, b string) (int, error) {\n  if a == \"\" {\n    panic(\"x\")\n  }\n  return 0, nil\n}"],
    "rust": [
        "fn f(x: i32) -> i32 {\n  x\n}", "#[derive(Debug)]\nstruct S {\n  a: i32,\n}",
        "impl S {\n  pub fn new() -> Self { S { a: 1 } }\n}", "const C: &str = \"😀\"; fn g() {}",
        "/* c /* nested */ */ fn h() {}", "trait T {\n  fn m(&self);\n}",
        "mod m {\n  fn inner() -> Result<(), ()> { Ok(()) }\n}", "fn p() { panic!(\"x\"); }", "unsafe fn u() {}",
        "// 𐐀 note", "#[inline]\n#[cfg(test)]\nfn q(a: &str) -> Option<u8> { None }"],
    "c": [
        "int f(int x) {\n  return x;\n}", "struct S { int a; };", "static int g(void) { return 0; }",
        "#define M(x) \\\n  ((x) + 1)", "int x = 1; int h(void) { return x; }", "/* c */ void k(void) {}",
        "typedef struct { int a; } T;", "const char *s = \"😀\";", "// 𐐀 note", "void decl(int a, char *b);"],
    "cpp": [
        "namespace n {\nint f(int x) { return x; }\n}", "class K {\n public:\n  int m(int a) const { return a; }\n};",
        "template <typename T>\nT id(T x) { return x; }", "auto lam = [](int a) { return a; };",
        "extern \"C\" {\nvoid e(void);\n}", "int x = 1; int h() { return x; }", "// 𐐀 note",
        "struct P {\n  P(int a) : a(a) {}\n  int a;\n};", "void thrower() { throw 1; }"],
}
_PREAMBLE = {"go": "package main\n\n"}


@st.composite
def ts_files(draw: st.DrawFn, language: str) -> str:
    unit = draw(st.sampled_from(["  ", "    ", "\t"]))
    chosen = draw(st.lists(st.sampled_from(TS_FRAGMENTS[language]), min_size=1, max_size=4))
    separators = draw(st.lists(st.sampled_from(["\n", "\n\n", "\n// between\n"]), min_size=len(chosen),
                               max_size=len(chosen)))
    text = _PREAMBLE.get(language, "") + "".join(f + s for f, s in zip(chosen, separators))
    text = re.sub(r"(?m)^((?:  )+)", lambda m: unit * (len(m.group(1)) // 2), text)
    if draw(st.booleans()):  # one line break throughout, or each its own (a file pasted together)
        return text.replace("\n", draw(st.sampled_from(BREAKS)))
    return re.sub("\n", lambda m: draw(st.sampled_from(BREAKS)), text)


def errors(text: str, language: str) -> int:
    def count(node: Node) -> int:
        return (node.type == "ERROR" or node.is_missing) + sum(count(c) for c in node.children)
    root = parse(lone_cr_to_lf(text), language)  # tree-sitter ends a line at "\n" alone; LSP also at "\r"
    assert root is not None
    return count(root)


def tokens(root: Node) -> list[tuple[str, bytes]]:
    """The leaves of the tree that are no comment: the code, token by token."""
    out: list[tuple[str, bytes]] = []
    stack = [root]
    while stack:
        node = stack.pop()
        if "comment" in node.type:
            continue
        if node.child_count == 0:
            out.append((node.type, node.text or b""))
        stack.extend(reversed(node.children))
    return out


def comments(root: Node) -> list[tuple[int, int]]:
    """(start, end) bytes of the comment nodes."""
    out: list[tuple[int, int]] = []
    stack = [root]
    while stack:
        node = stack.pop()
        if "comment" in node.type:
            out.append((node.start_byte, node.end_byte))
        else:
            stack.extend(node.children)
    return out


@CHECKS
@given(st.sampled_from(sorted(TS_FRAGMENTS)).flatmap(lambda lang: st.tuples(st.just(lang), ts_files(lang))),
       st.data(), st.lists(model_texts, max_size=8))
def test_doc_comment_keeps_the_code_and_documents_the_declaration(
        language_and_text: tuple[str, str], data: st.DataObject, answers: list[str]) -> None:
    language, text = language_and_text
    if errors(text, language):
        event(f"{language}: does not parse")
        return
    made = generate(text, language, selection(text, data), answers, "google")
    event(f"{language}: a target" if made else "no target")
    if made is None:
        return
    target, edit = made
    out, at = apply(text, edit)
    check_layout(text, target, edit)
    if not target.column:
        assert target.indent == re.match(r"[ \t]*", lsp_lines_text(text, target.insert_line)).group()
    assert errors(out, language) == 0
    root, old = parse(lone_cr_to_lf(out), language), parse(lone_cr_to_lf(text), language)
    assert root is not None and old is not None
    assert tokens(root) == tokens(old)  # the same code, token for token
    # The new text is comments and blanks alone, and no comment reaches past it (into the code or an old comment).
    start = len(out[:at].encode("utf-8"))
    stop = start + len(edit.new_text.encode("utf-8"))
    spans = [(a, b) for a, b in comments(root) if a < stop and b > start]
    assert spans and all(start <= a and b <= stop for a, b in spans)
    inserted = out.encode("utf-8")
    covered = bytearray(inserted[start:stop])
    for a, b in spans:
        covered[a - start:b - start] = b" " * (b - a)
    assert not covered.strip(), covered
    moved = target.line + len(_BREAK.findall(edit.new_text))
    assert find_target(out, language, moved) is None

