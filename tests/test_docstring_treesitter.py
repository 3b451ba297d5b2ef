"""Doc comments for the tree-sitter languages: JSDoc, Javadoc, Go, Rust and Doxygen."""

from __future__ import annotations

import ast
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lsp_server.docstring import SUPPORTED_LANGUAGES, Blank, DocEdit, DocTarget, find_target, generate_docstring
from lsp_server.docstring.ts_util import Node, parse
from tests.docstring_helpers import Numbered, target_at


def apply(text: str, edit: DocEdit) -> str:
    lines = text.split("\n")
    line = lines[edit.line]
    lines[edit.line] = line[: edit.character] + edit.new_text + line[edit.character + edit.replaced:]
    return "\n".join(lines)


def errors(text: str, language: str) -> int:
    def count(node: Node) -> int:
        return (node.type == "ERROR" or node.is_missing) + sum(count(c) for c in node.children)
    root = parse(text, language)
    assert root is not None
    return count(root)


def document(src: str, language: str, line: int) -> tuple[DocTarget, DocEdit, str]:
    target = target_at(src, language, line)
    assert target is not None
    edit = generate_docstring(src, target, Numbered())
    out = apply(src, edit)
    assert errors(out, language) == errors(src, language)
    # No trailing blanks (after its last line break comes the indent of the declaration's line).
    assert all(line == line.rstrip() for line in edit.new_text.split("\n")[:-1])
    return target, edit, out


CASES = [
    ("javascript", "import x from 'y';\n\nexport function scale(v, {factor}, ...rest) {\n"
                   "  if (!v) throw new TypeError('v');\n  return v * factor;\n}\n", 3, 2, """\
/**
 * Text number 1.
 *
 * @param v - Text number 2.
 * @param param1 - Text number 3.
 * @param rest - Text number 4.
 * @returns Text number 5.
 * @throws {TypeError} Text number 6.
 */
"""),
    ("javascriptreact", "const Button = ({label}) => <button>{label}</button>;\n", 0, 0, """\
/**
 * Text number 1.
 *
 * @param param0 - Text number 2.
 * @returns Text number 3.
 */
"""),
    ("typescript", "class Repo {\n  @cached()\n  async get(id: string, opt?: number): Promise<void> {\n"
                   "    await this.db.load(id);\n  }\n}\n", 1, 1, """\
  /**
   * Text number 1.
   *
   * @param id - Text number 2.
   * @param opt - Text number 3.
   */
"""),
    ("typescriptreact", "export const View = (p: Props): JSX.Element => <div/>;\n", 0, 0, """\
/**
 * Text number 1.
 *
 * @param p - Text number 2.
 * @returns Text number 3.
 */
"""),
    ("java", "public class Io {\n    @Override\n    public int read(byte[] buf, int... more) throws IOException {\n"
             "        return 0;\n    }\n}\n", 3, 1, """\
    /**
     * Text number 1.
     *
     * @param buf Text number 2.
     * @param more Text number 3.
     * @return Text number 4.
     * @throws IOException Text number 5.
     */
"""),
    ("go", "package geo\n\nfunc (p *Point) Move(dx, dy float64, tags ...string) (Point, error) {\n"
           "\treturn *p, nil\n}\n", 3, 2, """\
// Move text number 1.
"""),
    ("rust", "impl Stack {\n    #[inline]\n    #[must_use]\n    pub fn pop(&mut self, n: usize) -> Option<u8> {\n"
             "        if n == 0 { panic!(\"empty\"); }\n        self.items.pop()\n    }\n}\n", 2, 1, """\
    /// Text number 1.
    ///
    /// # Arguments
    ///
    /// * `n` - Text number 2.
    ///
    /// # Returns
    ///
    /// Text number 3.
    ///
    /// # Panics
    ///
    /// Text number 4.
"""),
    ("c", "#include <stdio.h>\n\nstatic char *join(const char **parts, size_t n, ...) {\n  return 0;\n}\n", 2, 2, """\
/**
 * @brief Text number 1.
 *
 * @param parts Text number 2.
 * @param n Text number 3.
 * @return Text number 4.
 */
"""),
    ("cpp", "namespace m {\ntemplate <typename T>\nvoid check(const T& value) {\n"
            "  if (!value) throw std::invalid_argument(\"value\");\n}\n}\n", 3, 1, """\
/**
 * @brief Text number 1.
 *
 * @tparam T Text number 2.
 * @param value Text number 3.
 * @throws std::invalid_argument Text number 4.
 */
"""),
]


@pytest.mark.parametrize("language, src, cursor, insert_line, expected", CASES, ids=[c[0] for c in CASES])
def test_golden_doc_comment(language: str, src: str, cursor: int, insert_line: int, expected: str) -> None:
    target, edit, out = document(src, language, cursor)
    assert (edit.line, edit.character, target.line, target.insert_line) == (insert_line, 0, insert_line, insert_line)
    assert edit.new_text == expected
    # Documenting again finds the new comment and offers nothing.
    assert find_target(out, language, cursor + expected.count("\n")) is None


def test_supported_languages() -> None:
    expected = {"python", "javascript", "javascriptreact", "typescript", "typescriptreact",
                "java", "go", "rust", "c", "cpp"}
    assert expected == SUPPORTED_LANGUAGES
    assert find_target("fn main() {}\n", "zig", 0) is None


def test_summary_only_is_one_line() -> None:
    _, edit, _ = document("class Queue {\n  size = 0;\n}\n", "javascript", 1)
    assert edit.new_text == "/** Text number 1. */\n"
    _, edit, _ = document("pub struct Id(u32);\n", "rust", 0)
    assert edit.new_text == "/// Text number 1.\n"
    _, edit, _ = document("package a\n\ntype (\n\tID int\n\tName string\n)\n", "go", 4)
    assert edit.new_text == "\t// Name text number 1.\n"


def test_targets_describe_the_code() -> None:
    ts = "export const load = async (url: string, retries = 3): Promise<Response> => {\n  return fetch(url);\n};\n"
    assert target_at(ts, "typescript", 1) == DocTarget(
        "typescript", "function", "load", ("url", "retries"), True, False, (), 0, 0, "")
    js = "function* ids(start) {\n  yield start;\n}\n"
    assert target_at(js, "javascript", 0).yields and not target_at(js, "javascript", 0).returns
    java = "record Pair(int left, int right) {}\n"
    assert target_at(java, "java", 0).params == ("left", "right")
    cpp = "class Shape {\n public:\n  Shape(int sides);\n  virtual ~Shape() {}\n  double area() const;\n};\n"
    assert [(t.kind, t.name, t.returns) for t in (target_at(cpp, "cpp", n) for n in (2, 3, 4, 0))] == [
        ("method", "Shape", False), ("method", "~Shape", False), ("method", "area", True), ("class", "Shape", False)]
    c = "typedef struct {\n  int x;\n} Vec;\nvoid free_vec(Vec *v);\n"
    assert (target_at(c, "c", 1).name, target_at(c, "c", 3).returns) == ("Vec", False)
    go = "package a\n\nfunc noop(int) {}\n"
    assert target_at(go, "go", 2).params == ()


def test_nested_innermost_and_outside() -> None:
    js = "function outer(a) {\n  const inner = (b) => b + 1;\n  return inner(a);\n}\n\nlet z = 1;\n"
    assert target_at(js, "javascript", 1).name == "inner"
    assert target_at(js, "javascript", 2).name == "outer"
    assert find_target(js, "javascript", 5) is None
    assert find_target(js, "javascript", 4) is None


def test_javascript_functions_bound_to_a_property_are_documented_where_they_are_bound() -> None:
    # `module.exports.run = function ...` and an object literal's `greet: (name) => ...` were offered nothing.
    src = ("module.exports.run = function (task, retries = 2) {\n  if (!task) throw new Error('no task');\n"
           "  return go(task, retries);\n};\n\nconst api = {\n  greet: (name) => `hi ${name}`,\n};\n")
    run, edit, out = document(src, "javascript", 1)
    assert (run.name, run.kind, run.params, run.raises, edit.line) == ("run", "function", ("task", "retries"),
                                                                       ("Error",), 0)
    assert out.startswith("/**\n * Text number 1.") and "\n */\nmodule.exports.run = function" in out
    greet, edit, out = document(src, "javascript", 6)
    assert (greet.name, greet.kind, greet.params, edit.line, edit.character) == ("greet", "method", ("name",), 6, 0)
    assert "  /**\n   * Text number 1." in out and "   */\n  greet: (name) =>" in out
    assert find_target("foo(function (a) { return a; });\n", "javascript", 0) is None  # a callback: no name


@pytest.mark.parametrize("language, src, line", [
    ("javascript", "/**\n * Adds.\n */\nfunction add(a, b) { return a + b; }\n", 3),
    ("javascript", "/** Runs. */\nmodule.exports.run = function (t) { return t; };\n", 1),
    ("javascript", "const a = {\n  /** Hi. */\n  greet: (n) => n,\n};\n", 2),
    ("typescript", "class A {\n  /** Doc. */\n  @dec\n  m(): void {}\n}\n", 3),
    ("java", "class A {\n  /**\n   * Doc.\n   */\n  @Override\n  public void m() {}\n}\n", 5),
    ("go", "package a\n\n// Add adds.\nfunc Add(a, b int) int { return a + b }\n", 3),
    ("go", "package a\n\n/* Add adds. */\nfunc Add(a, b int) int { return a + b }\n", 3),
    ("rust", "/// Doc.\n#[derive(Debug)]\nstruct S;\n", 2),
    ("rust", "#[derive(Debug)]\n/// Doc.\nstruct S;\n", 2),
    ("c", "/** @brief Doc. */\nint f(void);\n", 1),
    ("cpp", "/// Doc.\nint f();\n", 1),
    ("cpp", "//! Doc.\nint f();\n", 1),
])
def test_existing_doc_comment_means_no_target(language: str, src: str, line: int) -> None:
    assert find_target(src, language, line) is None


@pytest.mark.parametrize("language, src, line", [
    ("javascript", "// just a note\nfunction f() {}\n", 1),
    ("javascript", "/** Detached. */\n\nfunction f() {}\n", 2),
    ("java", "class A {\n  /* not javadoc */\n  void m() {}\n}\n", 2),
    ("go", "package a\n\n//go:noinline\nfunc F() {}\n", 3),
    ("rust", "// plain\nfn f() {}\n", 1),
    ("rust", "//// not doc\nfn f() {}\n", 1),
])
def test_ordinary_comment_does_not_count(language: str, src: str, line: int) -> None:
    assert target_at(src, language, line) is not None


@pytest.mark.parametrize("language, src, line, name", [
    ("javascript", "const x = {;\n\nfunction ok(a) {\n  return a;\n}\n", 3, "ok"),
    ("typescript", "function ok(a: number): number {\n  return a;\n}\nfunction bad( {\n", 1, "ok"),
    ("java", "class A {\n  int ok(int a) { return a; }\n  void bad( { }\n}\n", 1, "ok"),
    ("go", "package main\n\nfunc ok(a int) int {\n\treturn a\n}\n\nfunc bad( {\n", 3, "ok"),
    ("rust", "fn ok(a: i32) -> i32 { a }\n\nfn bad( {\n", 0, "ok"),
    ("c", "int ok(int a) { return a; }\nint bad( { \n", 0, "ok"),
    ("cpp", "int ok(int a) { return a; }\nclass {\n", 0, "ok"),
])
def test_syntax_errors_elsewhere(language: str, src: str, line: int, name: str) -> None:
    target, _, _ = document(src, language, line)  # also checks no new ERROR nodes
    assert target.name == name and target.params == ("a",)


def test_infill_prefix_and_suffix_for_a_comment() -> None:
    src = "const a = 1;\n\nfunction add(x, y) {\n  return x + y;\n}\n\nconst b = 2;\n"
    model = Numbered()
    generate_docstring(src, target_at(src, "javascript", 2), model)
    prefix, suffix, _ = model.calls[1]  # the `x` blank
    assert prefix == "const a = 1;\n\n/**\n * Text number 1.\n *\n * @param x - "
    assert suffix == ("\n * @param y -\n * @returns\n */\n"
                      "function add(x, y) {\n  return x + y;\n}\n\nconst b = 2;\n")


def test_go_summary_continues_the_name() -> None:
    # Go's doc comment is a sentence that starts with the name and names the parameters in its prose
    # (go.dev/doc/comment): no `Parameters:` list, no `Returns:` heading, one infill call.
    src = "package a\n\nfunc Sum(xs []int) int { return 0 }\n"
    model = Numbered()
    edit = generate_docstring(src, target_at(src, "go", 2), lambda p, s, n: model(p, s, n) and "Sum Adds up xs")
    assert edit.new_text == "// Sum adds up xs.\n"
    prefix, suffix, _ = model.calls[0]
    assert len(model.calls) == 1 and prefix.endswith("\n// Sum ") and suffix.startswith("\nfunc Sum(")


def test_jsdoc_close_in_model_output_cannot_break_the_comment() -> None:
    src = "function f(a) {}\n"
    edit = generate_docstring(src, target_at(src, "javascript", 0), lambda p, s, n: "ends here */ code();")
    # The parameter's blank got the same words, which say nothing about it: the neutral wording instead.
    assert edit.new_text == "/**\n * Ends here.\n *\n * @param a - The a.\n */\n"


def test_rust_sections_errors_panics_and_safety() -> None:
    # `# Errors` for a `Result` (any path to it), `# Panics` for what panics (assert!, unwrap, expect, std::panic!),
    # `# Safety` for `unsafe fn`: what clippy's missing_errors_doc / missing_panics_doc / missing_safety_doc ask.
    src = ("pub unsafe fn load(path: &Path) -> io::Result<Config> {\n    let s = read(path).expect(\"readable\");\n"
           "    Ok(parse(&s))\n}\n")
    target, edit, _ = document(src, "rust", 1)
    assert target.raises == ("panic", "error", "safety")
    assert edit.new_text == """\
/// Text number 1.
///
/// # Arguments
///
/// * `path` - Text number 2.
///
/// # Returns
///
/// Text number 3.
///
/// # Panics
///
/// Text number 4.
///
/// # Errors
///
/// Text number 5.
///
/// # Safety
///
/// Text number 6.
"""
    cases = {
        "fn f() -> fmt::Result { Ok(()) }": ("error",),
        "fn f() -> Result<(), E> { Ok(()) }": ("error",),
        "fn f(v: Vec<u8>) -> u8 { assert!(!v.is_empty()); v[0] }": ("panic",),
        "fn f(x: Option<u8>) -> u8 { x.unwrap() }": ("panic",),
        "fn f() { std::panic!(\"no\"); }": ("panic",),
        "fn f() { debug_assert!(true); unreachable!(); }": (),
        "fn f(&mut self) -> Option<Token> { self.expect(Token::Comma)?; self.next() }": (),  # a parser's own expect
        "fn f() { let g = || x.unwrap(); }": (),  # the closure's panic, when it is called
        "trait T { unsafe fn f(&self); }": ("safety",),
    }
    assert {src: target_at(src, "rust", 0).raises for src in cases} == cases
    src = "fn f() -> Result<(), E> { Ok(()) }\n"
    edit = generate_docstring(src, target_at(src, "rust", 0), lambda p, s, n: "")  # no words: the neutral ones
    assert "/// # Errors\n///\n/// Returns an error if the operation fails.\n" in edit.new_text


def test_go_interface_method() -> None:
    src = ("package geo\n\n// Shape is a figure.\ntype Shape interface {\n\tArea() float64\n"
           "\tScale(f float64) Shape\n}\n")
    target, edit, _ = document(src, "go", 5)
    assert (target.kind, target.name, target.params, target.returns) == ("method", "Scale", ("f",), True)
    assert edit.new_text.startswith("\t// Scale text number 1.\n") and edit.line == 5
    assert find_target(src, "go", 3) is None  # the interface itself is documented


def test_c_function_returning_a_function_pointer() -> None:
    # The function's own declarator is the innermost one; the outer parameters are the returned pointer's.
    src = "void (*signal(int sig, void (*func)(int)))(int);\n"
    assert target_at(src, "c", 0) == DocTarget("c", "function", "signal", ("sig", "func"), True, False, (), 0, 0, "")
    _, edit, _ = document("char *(*pick(int n))(void) {\n  return 0;\n}\n", "c", 1)
    assert edit.new_text.startswith("/**\n * @brief Text number 1.\n *\n * @param n Text number 2.\n * @return")
    # A function pointer's own name, not its declarator's text `(*open)`.
    assert target_at("struct ops {\n  int (*open)(const char *path);\n};\n", "c", 1).name == "open"


def test_cpp_parameter_pack_is_a_parameter() -> None:
    src = "template <typename... Args>\nvoid log(const char* fmt, Args&&... args) {}\n"
    assert target_at(src, "cpp", 1).params == ("<Args>", "fmt", "args")
    assert target_at("void log(const char *fmt, ...);\n", "c", 0).params == ("fmt",)


@pytest.mark.parametrize("src, line, kind, name", [
    ("export interface Repo {\n  name: string;\n}\n", 0, "class", "Repo"),
    ("export type Id = string | number;\n", 0, "class", "Id"),
    ("const enum Color { Red, Green }\n", 0, "class", "Color"),
    ("export declare function greet(name: string): void;\n", 0, "function", "greet"),
    ("export function parse(x: string): number;\nexport function parse(x: any): any {\n  return x;\n}\n", 0,
     "function", "parse"),
])
def test_typescript_declarations(src: str, line: int, kind: str, name: str) -> None:
    # What a .d.ts file and a TypeScript API are made of: interfaces, type aliases, enums, overloads, `declare`.
    target, edit, _ = document(src, "typescript", line)
    assert (target.kind, target.name, edit.line, edit.character) == (kind, name, line, 0)
    if name == "greet":
        assert edit.new_text == "/**\n * Text number 1.\n *\n * @param name - Text number 2.\n */\n"


def test_type_parameters_javadoc_and_doxygen() -> None:
    # javadoc warns "no @param for <R>" without them; Doxygen's is @tparam (for any template parameter).
    java = "class Box<T> {\n  <R extends Comparable<R>> R map(Function<T, R> fn) {\n    return null;\n  }\n}\n"
    _, edit, _ = document(java, "java", 1)
    assert "   * @param <R> Text number 2.\n   * @param fn Text number 3.\n" in edit.new_text
    assert target_at(java, "java", 0).params == ("<T>",)
    cpp = "template <typename T, class... Ts, int N = 3, template <class> class C>\nT make(Ts&&... args) {}\n"
    _, edit, _ = document(cpp, "cpp", 1)
    assert (" * @tparam T Text number 2.\n * @tparam Ts Text number 3.\n * @tparam N Text number 4.\n"
            " * @tparam C Text number 5.\n * @param args Text number 6.\n") in edit.new_text
    edit = generate_docstring(java, target_at(java, "java", 1), lambda p, s, n: "")
    assert "@param <R> The type parameter R.\n" in edit.new_text


def test_private_method_neutral_summary_is_words() -> None:
    src = "class Counter {\n  #bump(by) {\n    this.n += by;\n  }\n}\n"
    edit = generate_docstring(src, target_at(src, "javascript", 1), lambda p, s, n: "")
    assert edit.new_text.startswith("  /**\n   * Bump.\n")


# --- nothing the model writes can break the file -------------------------------------------------------

# One documentable function per language, and the model's words drawn from what ends or breaks a comment or a
# string in some language (closers, quotes, backslashes, line breaks, NUL, a bidi override) among plain words.
UNDOCUMENTED = {
    "python": "def scale(v, factor):\n    if not v:\n        raise ValueError('v')\n    return v * factor\n",
    "javascript": "function scale(v, factor) {\n  if (!v) throw new TypeError('v');\n  return v * factor;\n}\n",
    "typescript": "class Queue {\n  size = 0;\n}\n",
    "java": "class A {\n    int read(byte[] buf) throws IOException {\n        return 0;\n    }\n}\n",
    "go": "package geo\n\nfunc Move(dx float64) float64 {\n\treturn dx\n}\n",
    "rust": "pub fn pop(n: usize) -> Option<u8> {\n    if n == 0 { panic!(\"e\"); }\n    None\n}\n",
    "c": "static int join(const char **parts, size_t n) {\n  return 0;\n}\n",
    "cpp": "int f();\n",
}
MARKS = ['"""', "'''", '"', "'", "`", "*/", "/*", "*", "/", "//", "///", "\\", "#", "\n", "\r", "\r\n", "\x00",
         "\x0b", "\x0c", "\x1b", "\x85", "\u2028", "\u2029", "\u202e", "\u2066", "\ufeff", "\t", " ", "{", "}",
         "(", ")", "<!--", "-->", "??/", "@param", ":", "-", "."]
model_words = st.lists(st.one_of(st.sampled_from(MARKS), st.sampled_from(["the", "value", "scale", "n", "read"]),
                                 st.text(max_size=3)), max_size=12).map("".join)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(sorted(UNDOCUMENTED)), st.lists(model_words, min_size=1, max_size=6))
def test_no_model_output_breaks_the_file(language: str, outputs: list[str]) -> None:
    src = UNDOCUMENTED[language]
    target = target_at(src, language, {"typescript": 1, "java": 1, "go": 2}.get(language, 0))
    answers = iter(outputs)
    edit = generate_docstring(src, target, lambda p, s, n: next(answers, ""))
    lines = src.split("\n")
    lines[edit.line] = lines[edit.line][:edit.character] + edit.new_text + lines[edit.line][edit.character:]
    out = "\n".join(lines)
    assert errors(out, language) == errors(src, language)
    # Only the skeleton's line breaks, and no control or format character for a compiler to refuse (rustc:
    # a bare CR or a bidi override in a doc comment; Python and Go: a NUL).
    assert re.findall(r"\r\n?|\n|[\x00-\x08\x0b-\x1f\x7f\x85\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]",
                      edit.new_text) == ["\n"] * edit.new_text.count("\n")
    # The comment is taken as the declaration's documentation: the action is not offered again.
    assert find_target(out, language, target.line + edit.new_text.count("\n")) is None
    if language == "python":
        assert ast.get_docstring(ast.parse(out).body[0]) is not None



# The model's words for (summary, map, low, high, returns), and what each comment shows.
HTML_WORDS = ["Names for a Map<String, Integer> of user ids", "The user map, keyed by List<String>",
              "True when low < high && both > 0", "The `List<T>` of names", "The names & ids"]


@pytest.mark.parametrize("language, src, expected", [
    ("java", "class A {\n    List<String> names(Map<String, Integer> map, int low, int high) {\n"
             "        return null;\n    }\n}\n",
     ["Names for a {@code Map<String, Integer>} of user ids.",
      "@param map The user map, keyed by {@code List<String>}.",
      "@param low True when low &lt; high &amp;&amp; both &gt; 0.", "@param high The {@code List<T>} of names.",
      "@return The names &amp; ids."]),
    ("typescript", "function names(map: Map<string, number>, low: number, high: number): string[] {\n"
                   "  return [];\n}\n",
     ["Names for a `Map<String, Integer>` of user ids.", "@param map - The user map, keyed by `List<String>`.",
      "@param low - True when low &lt; high &amp;&amp; both &gt; 0.", "@param high - The `List<T>` of names.",
      "@returns The names &amp; ids."]),
    ("cpp", "std::vector<std::string> names(const Map& map, int low, int high) {\n  return {};\n}\n",
     ["@brief Names for a `Map<String, Integer>` of user ids.", "@param map The user map, keyed by `List<String>`.",
      "@param low True when low &lt; high &amp;&amp; both &gt; 0.", "@param high The `List<T>` of names.",
      "@return The names &amp; ids."]),
])
def test_angle_brackets_and_ampersands_are_not_html(language: str, src: str, expected: list[str]) -> None:
    # Javadoc, JSDoc and Doxygen read HTML: a bare `List<String>` shows as `List` (an unknown tag), and javadoc's
    # doclint fails on `a < b` and a bare `&`. A word with them goes in code markup, an operator becomes an entity,
    # and a backtick span (literal text in a Javadoc `/**` comment) becomes `{@code ...}` there.
    answers = iter(HTML_WORDS)
    blanks: list[Blank] = []
    edit = generate_docstring(src, target_at(src, language, 1), lambda p, s, n: next(answers), blanks=blanks)
    assert [b.rejected for b in blanks] == [None] * 5
    lines = [line.lstrip(" */") for line in edit.new_text.split("\n")]
    assert [line for line in lines if line and not line.startswith("/")] == expected


def test_rustdoc_gets_generics_in_code_spans() -> None:
    # rustdoc reads Markdown with HTML in it: `Vec<u8>` bare is an unclosed `<u8>` tag (its invalid_html_tags
    # lint), `a < b` with spaces is no tag.
    src = "fn bytes(n: usize) -> Vec<u8> {\n    vec![0; n]\n}\n"
    answers = iter(["Returns a Vec<u8> of n zero bytes", "How many bytes, when n < limit", "The Vec<u8>, zeroed"])
    edit = generate_docstring(src, target_at(src, "rust", 0), lambda p, s, n: next(answers))
    assert "/// Returns a `Vec<u8>` of n zero bytes.\n" in edit.new_text
    assert "/// * `n` - How many bytes, when n < limit.\n" in edit.new_text
    assert "/// The `Vec<u8>`, zeroed.\n" in edit.new_text


def test_go_doc_comment_goes_above_directives() -> None:
    # gofmt keeps directives below a doc comment's text (go.dev/doc/comment): the doc comment there documents
    # the function, and a new one goes above the directives, not between them and `func`.
    assert find_target("package a\n\n// F does x.\n//go:noinline\n//go:nosplit\nfunc F() {}\n", "go", 5) is None
    assert find_target("package a\n\n// Export does x.\n//export Export\nfunc Export() {}\n", "go", 4) is None
    src = "package a\n\n//go:noinline\nfunc F(x int) int { return x }\n"
    target, edit, out = document(src, "go", 3)
    assert (target.line, edit.line) == (2, 2)
    assert out == "package a\n\n// F text number 1.\n//go:noinline\nfunc F(x int) int { return x }\n"
    assert find_target(out, "go", 4) is None


def test_rust_impl_block_is_documented() -> None:
    # rustdoc shows an impl block's doc with the impl; the cursor on `impl Display for Point {` offered nothing.
    src = "struct Point;\n\n#[cfg(feature = \"std\")]\nimpl<T: Clone> fmt::Display for geo::Point<T> {\n" \
          "    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result { Ok(()) }\n}\n"
    target, edit, out = document(src, "rust", 3)
    assert (target.kind, target.name, edit.line) == ("class", "Point", 2)
    assert out == src.replace("#[cfg", "/// Text number 1.\n#[cfg")
    assert find_target(out, "rust", 4) is None
    assert target_at(src, "rust", 4).name == "fmt"  # its methods are their own
    assert target_at(src, "rust", 2).name == "Point"  # the cursor on its attribute
    # Among many top-level items (only those joined to the cursor's line by the lines above them are described).
    items = "".join(f"struct S{i};\nimpl S{i} {{}}\n\n" for i in range(3))
    stacked = items + "#[cfg(test)]\n#[allow(dead_code)]\n#[inline]\nfn t() {}\n\n" + items
    assert [target_at(stacked, "rust", row).name for row in (9, 10, 11, 12)] == ["t"] * 4
    assert find_target(stacked, "rust", 8) is None


def test_rust_doc_attribute_is_documentation() -> None:
    # `#[doc = "..."]` is what `///` stands for: the item is documented, and offering the action wrote a second doc.
    assert find_target('#[cfg(test)]\n#[doc = "Docs."]\nfn f() {}\n', "rust", 2) is None
    assert find_target('#[doc = include_str!("f.md")]\npub fn f() {}\n', "rust", 1) is None
    assert target_at("#[doc(hidden)]\npub fn f() {}\n", "rust", 1).name == "f"


@pytest.mark.parametrize("language, src, line, expected", [
    ("javascript", "let x = 1; function f(a) { return a }\n", 0,
     "let x = 1;\n/**\n * Text number 1.\n *\n * @param a - Text number 2.\n * @returns Text number 3.\n */\n"
     "function f(a) { return a }\n"),
    ("typescript", "class A { f(): void {} }\n", 0, "class A {\n    /** Text number 1. */\n    f(): void {} }\n"),
    ("c", "int g;  static void f(void) { g++; }\n", 0,
     "int g;\n/** @brief Text number 1. */\nstatic void f(void) { g++; }\n"),
    ("go", "package a\n\nvar s = \"x\"; func F() {}\n", 2, "package a\n\nvar s = \"x\";\n// F text number 1.\nfunc F() {}\n"),
    ("cpp", "namespace m { void f(void); }\n", 0, "namespace m {\n/** @brief Text number 1. */\nvoid f(void); }\n"),
    ("rust", "struct A;\nimpl A {\n\tfn new() {} fn f(&self) {} }\n", 2,
     "struct A;\nimpl A {\n\tfn new() {}\n\t/// Text number 1.\n\tfn f(&self) {} }\n"),
])
def test_declaration_after_other_code_on_its_line(language: str, src: str, line: int, expected: str) -> None:
    # A comment above the line would document the code before the declaration (TypeScript's hover shows it on
    # `x`, on the class A): the line is split, the comment on lines of its own right before the declaration.
    target, edit, out = document(src, language, line)
    assert out == expected
    assert find_target(out, language, expected.count("\n") - 1) is None  # the declaration's line


def test_doc_comment_earlier_on_the_line_documents_the_declaration() -> None:
    assert find_target("/** Adds. */ function add(a, b) { return a + b }\n", "javascript", 0) is None
    assert find_target("/** Adds. */ int add(int a, int b) { return a + b; }\n", "c", 0) is None
    assert target_at("/* Adds. */ function add(a, b) { return a + b }\n", "javascript", 0).name == "add"


def test_typescript_overload_implementation_is_documented_on_the_first_signature() -> None:
    # TypeScript's hover and signature help show the overload signatures' docs (the first one's for a call that
    # matches no other), never the implementation's: its comment goes above the first signature.
    src = ("export function parse(s: string): number;\n/** From a number. */\nexport function parse(n: number): string;\n"
           "export function parse(x: any): any {\n  return x;\n}\n")
    target, edit, out = document(src, "typescript", 4)
    assert (target.name, target.params, edit.line) == ("parse", ("s",), 0)
    assert out.startswith("/**\n * Text number 1.\n *\n * @param s - Text number 2.\n * @returns Text number 3.\n */\n"
                          "export function parse(s: string): number;\n")
    assert find_target(out, "typescript", 10) is None  # documented now, from the implementation too
    assert target_at(src, "typescript", 0).params == ("s",)  # a signature is its own
    cls = "class A {\n  f(s: string): void;\n  f(n: number): void;\n  f(x: any) {}\n}\n"
    assert (target_at(cls, "typescript", 3).line, target_at(cls, "typescript", 2).line) == (1, 2)


def test_doxygen_commands_in_the_model_words_are_escaped() -> None:
    # Doxygen reads `\n` (a line break), `\c x`, `@p x` and `\word` anywhere in the text as commands: the model's
    # are text (`\\`, `\@`), ours (`@brief`, `@param`) stay commands, and a code span's are shown as written.
    src = "int split(const char *s, char sep) {\n  return 0;\n}\n"
    answers = iter(["Splits s at each \\n or at @p sep", "The string \\c s to split", "The separator, `'\\t'` say",
                    "How many parts s splits into, @c 0 for none"])
    blanks: list[Blank] = []
    edit = generate_docstring(src, target_at(src, "c", 0), lambda p, s, n: next(answers), blanks=blanks)
    assert [b.rejected for b in blanks] == [None] * 4
    assert edit.new_text == ("/**\n * @brief Splits s at each \\\\n or at \\@p sep.\n *\n"
                             " * @param s The string \\\\c s to split.\n * @param sep The separator, `'\\t'` say.\n"
                             " * @return How many parts s splits into, \\@c 0 for none.\n */\n")


@pytest.mark.parametrize("src, line", [
    ("package a\n\n/* x */ func F() {}\n", 2),  # on the declaration's line: go/ast's doc is the group above
    ("package a\n\nvar v = 1 /* the v */\nfunc F() {}\n", 3),  # after code on its line: v's line comment
    ("package a\n\nvar v = 1 /* the v,\n   in words */\nfunc F() {}\n", 4),
])
def test_go_comment_that_is_not_a_doc_comment(src: str, line: int) -> None:
    # go/ast attaches a comment group as a declaration's doc only when it ends on the line before and starts its
    # own line; these were taken for docs, and the action was not offered.
    target, edit, out = document(src, "go", line)
    assert target.name == "F"
    assert out.endswith("\n// F text number 1.\nfunc F() {}\n")
    assert find_target(out, "go", out.count("\n") - 1) is None


@pytest.mark.parametrize("src, line, expected", [
    ("package a\n\n/* x */ func F() {}\n", 2, "package a\n\n/* x */\n\n// F text number 1.\nfunc F() {}\n"),
    ("package a\n\n/* a,\n b */ func F() {}\n", 3, "package a\n\n/* a,\n b */\n\n// F text number 1.\nfunc F() {}\n"),
    # After code the comment is that code's line comment, a group of its own: no blank line needed.
    ("package a\n\nvar v = 1 /* v */; func F() {}\n", 2,
     "package a\n\nvar v = 1 /* v */;\n// F text number 1.\nfunc F() {}\n"),
    ("package a\n\nvar v = 1; /* v */ func F() {}\n", 2,
     "package a\n\nvar v = 1; /* v */\n// F text number 1.\nfunc F() {}\n"),
])
def test_go_comment_on_the_func_line_stays_out_of_the_doc(src: str, line: int, expected: str) -> None:
    # Split off onto the line above the new doc comment, a user's `/* x */` joined its comment group: go/ast's
    # doc read "x\nF text number 1." (`go doc` showed both, and the doc no longer began with F). A blank line
    # between keeps them apart.
    _, _, out = document(src, "go", line)
    assert out == expected


def test_go_block_comment_on_lines_of_its_own_is_a_doc_comment() -> None:
    assert find_target("package a\n\n/*\nF adds.\n*/\nfunc F() {}\n", "go", 5) is None


@pytest.mark.parametrize("src, line, expected", [
    ('extern "C" int f(void);\n', 0,
     '/**\n * @brief Text number 1.\n *\n * @return Text number 2.\n */\nextern "C" int f(void);\n'),
    ('extern "C" void g(int x) { use(x); }\n', 0,
     '/**\n * @brief Text number 1.\n *\n * @param x Text number 2.\n */\nextern "C" void g(int x) { use(x); }\n'),
    ('extern "C" {\nvoid h(void);\n}\n', 1, 'extern "C" {\n/** @brief Text number 1. */\nvoid h(void);\n}\n'),
    # A one-line block: split inside the braces, since clang (clangd's hover) takes no comment across a `{`;
    # unindented, as clang-format writes an extern "C" block (it was indented a level).
    ('extern "C" { void k(void); }\n', 0, 'extern "C" {\n/** @brief Text number 1. */\nvoid k(void); }\n'),
    ('extern "C" { void k(void); void m(void); }\n', 0,
     'extern "C" { void k(void);\n/** @brief Text number 1. */\nvoid m(void); }\n'),
])
def test_cpp_extern_c_linkage(src: str, line: int, expected: str) -> None:
    # `extern "C" int f(void);` was split after `extern "C"`, the comment inside the declaration, indented; a
    # comment above the whole line did not count. A block's declarations are documented one by one.
    _, _, out = document(src, "cpp", line)
    assert out == expected
    assert find_target(out, "cpp", out.count("\n") - 1 - (line == 1)) is None


@pytest.mark.parametrize("language, src, line", [
    ("cpp", "struct S {\n  int n; /**< The count. */\n  int size() const;\n};\n", 2),
    ("c", "int n; /*!< The count. */\nint size(void);\n", 1),
    ("rust", "/*! The crate. */\nfn f() {}\n", 1),
    ("rust", "/*** banner ***/\nfn f() {}\n", 1),
    ("java", "class A {\n    /**/\n    void f() {}\n}\n", 2),
    ("javascript", "/**/ function f() {}\n", 0),
    ("c", "int n;\n///< The count.\nint size(void);\n", 2),  # a trailing member doc wrapped onto its own line
    ("cpp", "struct S {\n  int n;\n  //!< The count.\n  int size() const;\n};\n", 3),
    ("typescript", '/// <reference types="node" />\nexport function f(a: number) { return a; }\n', 1),
])
def test_comment_documenting_something_else_does_not_count(language: str, src: str, line: int) -> None:
    # Doxygen's `<` forms document the member before them; Rust's `/*!` the enclosing module; `/***` and `/**/`
    # are plain comments; TypeScript's `/// <reference />` is a compiler directive.
    assert target_at(src, language, line) is not None


@pytest.mark.parametrize("language, src, kind, params", [
    ("javascript", "export default function (req, res) {\n  res.end();\n}\n", "function", ("req", "res")),
    ("typescript", "export default (a: number): number => a;\n", "function", ("a",)),
    ("javascript", "export default class {\n  f() {}\n}\n", "class", ()),
])
def test_anonymous_default_export_is_documented_as_default(language: str, src: str, kind: str,
                                                          params: tuple[str, ...]) -> None:
    # Nameless, it had no target; ECMAScript names it `default`, and its doc goes above `export`.
    target, edit, out = document(src, language, 0)
    assert (target.name, target.kind, target.params, edit.line, edit.character) == ("default", kind, params, 0, 0)
    assert out.startswith("/**") and find_target(out, language, out.count("\n", 0, out.index("export"))) is None
    assert find_target("export default foo(function (a) { return a; });\n", "javascript", 0) is None  # a callback


@pytest.mark.parametrize("src, kind, name, params", [
    ("module.exports = (a) => a;\n", "function", "default", ("a",)),
    ("module.exports = function parse(s) { return s; };\n", "function", "parse", ("s",)),
    ("module.exports = class {\n  f() {}\n};\n", "class", "default", ()),
    ("module.exports.foo = function (a) { return a; };\n", "function", "foo", ("a",)),
    ("exports.foo = (a) => a;\n", "function", "foo", ("a",)),
])
def test_commonjs_exports_are_named_as_node_imports_them(src: str, kind: str, name: str,
                                                         params: tuple[str, ...]) -> None:
    # `module.exports = (a) => a` was named `exports` (its neutral summary read `Exports.`): the module's one
    # export is what `import x from` gives, its default, or the function's own name; a class expression had none.
    target, edit, out = document(src, "javascript", 0)
    assert (target.kind, target.name, target.params, edit.line, edit.character) == (kind, name, params, 0, 0)
    assert out.endswith(" */\n" + src) and find_target(out, "javascript", out.count("\n") - src.count("\n")) is None


def test_c_k_and_r_definition_parameters() -> None:
    # Its parameter list holds bare names, which got no @param before.
    src = "int f(a, b)\nint a;\nchar *b;\n{\n    return a;\n}\n"
    assert target_at(src, "c", 0).params == ("a", "b")
