from __future__ import annotations

import pytest

from lsp_server.shaping import (
    Shaped,
    block_indent,
    completion_mode,
    indent_width,
    make_stop,
    closing_line_below,
    next_suffix_line,
    opened_element,
    opener_indent,
    opens_block,
    drop_partial_line,
    drop_repeated_lines,
    drop_partial_word,
    drop_loop,
    framing_start,
    looping,
    repetition_start,
    shape,
)

# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "width"),
    [("", 0), ("x", 0), ("    x", 4), ("\tx", 4), ("  \tx", 4), ("\t  x", 6), ("\t\t", 8), ("   ", 3)],
)
def test_indent_width(line: str, width: int) -> None:
    assert indent_width(line) == width


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("def f(x):", True),
        ("if (x) {", True),
        ("foo(", True),
        ("xs = [", True),
        ("const f = (a) =>", True),
        ("fn add(a: i32) ->", True),
        ("  for i in 1..3 do", True),
        ("if x then", True),
        ("} else", True),
        ("x = 1", False),
        ("return x", False),
        ("std::", False),
        ("p->", False),  # C member access, not an opener
        ("undo", False),
        ("obj.do", False),
        ("", False),
        ("   ", False),
    ],
)
def test_opens_block(line: str, expected: bool) -> None:
    assert opens_block(line) is expected


def test_next_suffix_line() -> None:
    assert next_suffix_line(")\n\n    return x\n") == "    return x"
    assert next_suffix_line("rest of line only") is None
    assert next_suffix_line("\r\n\r\n}\r\n") == "}"
    assert next_suffix_line("") is None


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("def f():\n    x = 1\n    ", 4),  # blank line: the cursor column
        ("def f():", 1),  # opener on the cursor line: anything deeper
        ("    if x:", 5),
        ("def f():\n", 1),  # blank cursor line at col 0 right after an opener
        ("def f():\n    ", 4),
        ("class A:\n\tdef f(self):\n\t\t", 8),
        ("    return foo(a,", 4),
        ("x = 1\n\n\n", 0),
        ("", 0),
        ("int main() {\r\n    int x;\r\n    ", 4),
    ],
)
def test_block_indent(prefix: str, expected: int) -> None:
    assert block_indent(prefix) == expected


# --------------------------------------------------------------------------
# completion_mode
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "after", "policy", "mode"),
    [
        ("    ", "", "auto", "multi"),  # blank line
        ("", "", "auto", "multi"),
        ("def parse(text):", "", "auto", "multi"),
        ("    for (int i = 0; i < n; i++) {", "", "auto", "multi"),
        ("const add = (a, b) =>", "  ", "auto", "multi"),
        ("    result = compute(", "", "auto", "multi"),
        ("    x = 1", "", "auto", "single"),  # the line already has code
        ("    return a +", "", "auto", "single"),
        ("print(", ")", "auto", "single"),  # mid-line: code right of the cursor
        ("    ", "return x", "auto", "single"),
        ("    x = 1", "", "multi", "multi"),
        ("    ", "", "single", "single"),
        ("    ", "", "bogus", "multi"),  # unknown policy behaves as auto
    ],
)
def test_completion_mode(before: str, after: str, policy: str, mode: str) -> None:
    assert completion_mode(before, after, policy) == mode


# --------------------------------------------------------------------------
# make_stop
# --------------------------------------------------------------------------


def _first_stop(stop, text: str) -> str | None:
    """Feed ``text`` one character at a time; return the text at the first stop."""
    for i in range(1, len(text) + 1):
        if stop(text[:i]):
            return text[:i]
    return None


def test_stop_single_mode_at_first_newline() -> None:
    stop = make_stop("single", line_before_cursor="x = ", next_suffix_line=None, block_indent=0)
    assert _first_stop(stop, "compute(a, b)\nprint(x)\n") == "compute(a, b)\n"
    assert _first_stop(stop, "\nfoo") == "\n"  # the model ended the line: nothing to add
    assert _first_stop(stop, "abc") is None


def test_stop_multi_on_dedent_python() -> None:
    stop = make_stop("multi", line_before_cursor="def f(x):", next_suffix_line=None, block_indent=1)
    raw = "\n    y = x * 2\n    return y\n\ndef g():\n    pass\n"
    # Stops as soon as the dedented `d` appears, without waiting for the newline.
    # Stops once the dedented line can no longer become a closing line like
    # `done`/`end` (kept, see below), without waiting for its newline.
    assert _first_stop(stop, raw) == "\n    y = x * 2\n    return y\n\nde"


def test_stop_multi_waits_for_possible_closing_line() -> None:
    stop = make_stop("multi", line_before_cursor="int main() {", next_suffix_line=None, block_indent=1)
    raw = "\n    return 0;\n}\nint g;"
    assert _first_stop(stop, raw) == "\n    return 0;\n}\n"
    ruby = make_stop("multi", line_before_cursor="  items.each do |i|", next_suffix_line=None,
                     block_indent=3)
    assert _first_stop(ruby, "\n    puts i\n  end\nfoo") == "\n    puts i\n  end\n"
    assert _first_stop(ruby, "\n    puts i\n  endpoint = 1\n") == "\n    puts i\n  endp"


def test_stop_multi_on_suffix_repeat() -> None:
    stop = make_stop("multi", line_before_cursor="    ", next_suffix_line="    return total",
                     block_indent=4)
    raw = "total += x\n    return total\n    extra\n"
    assert _first_stop(stop, raw) == "total += x\n    return total\n"
    # The first line counts with the text before the cursor.
    assert _first_stop(stop, "return total\n") == "return total\n"


def test_stop_multi_on_blank_pair() -> None:
    stop = make_stop("multi", line_before_cursor="", next_suffix_line=None, block_indent=0)
    assert _first_stop(stop, "import os\nimport sys\n\n\nx = 1\n") == "import os\nimport sys\n\n\n"
    assert _first_stop(stop, "a = 1\n\nb = 2\n") is None  # one blank line is fine


def test_stop_multi_max_lines() -> None:
    stop = make_stop("multi", line_before_cursor="", next_suffix_line=None, block_indent=0,
                     max_lines=2)
    assert _first_stop(stop, "a\nb\nc\nd\n") == "a\nb\n"
    default = make_stop("multi", line_before_cursor="", next_suffix_line=None, block_indent=0)
    raw = "".join(f"x{i} = {i}\n" for i in range(20))
    assert _first_stop(default, raw) == "".join(f"x{i} = {i}\n" for i in range(16))


# --------------------------------------------------------------------------
# shape: golden cases
# --------------------------------------------------------------------------


def test_single_line_cut_at_newline() -> None:
    got = shape("os.path.join(root, name)\n    print(x)\n", prefix="    path = ",
                suffix="\n    return path\n", mode="single")
    assert got == Shaped("os.path.join(root, name)", 0)


def test_none_for_empty_or_whitespace() -> None:
    assert shape("", prefix="x = ", suffix="", mode="single") is None
    assert shape("   \n  foo", prefix="x = ", suffix="", mode="single") is None
    assert shape("\n\n\n", prefix="def f():", suffix="", mode="multi") is None


def test_crlf_cleaned_and_spelled_out_markers_kept() -> None:
    got = shape("1\r\n    y = 2\r\n", prefix="def f():\n    x = ", suffix="", mode="multi")
    assert got == Shaped("1\n    y = 2", 0)
    # Before: the text was cut at "</s>" (and "<EOT>"), which in code is code: the engine stops on token ids.
    assert shape('"<s>" + text + "</s>";', prefix="  return ", suffix="\n}", mode="single") == \
        Shaped('"<s>" + text + "</s>";', 0)
    assert shape('"<EOT>")', prefix="stop = (", suffix=")\n", mode="single") == Shaped('"<EOT>")', 1)


@pytest.mark.parametrize("text, line_before, expected", [
    # A model that writes the prompt's framing for other files goes on with another file's code: the user saw
    # `# Path: /p/emoji.py` and that file's first line below a completion.
    ("x = 1\n# Path: /p/emoji.py\ns = 'ok'", "", 6),
    ("# Path: util.py\nA = 1", "", 0),
    ("Path: util.py", "    # ", None),  # the user is writing this comment, the model finishes it
    ("return x\n    // Path: web/app.js", "    ", 9),  # indented, another comment syntax
    ("x = 1\n<!-- Path: a.html -->", "", 6),
    ("x = 1\n# The Path: of least resistance", "", None),
    ("x = Path: 1", "", None),
])
def test_framing_start(text: str, line_before: str, expected: int | None) -> None:
    assert framing_start(text, line_before) == expected


def test_a_copy_of_the_context_framing_is_cut() -> None:
    got = shape("if ok:\n        return 1\n\n# Path: /p/other.py\nimport os", prefix="def f(ok):\n    ",
                suffix="", mode="multi")
    assert got == Shaped("if ok:\n        return 1", 0)
    assert shape("# Path: /p/other.py\nimport os", prefix="x = 1\n", suffix="", mode="multi") is None


def test_multi_python_function_body_dedent() -> None:
    prefix = "import math\n\n\ndef area(r):"
    suffix = "\n\n\ndef main():\n    print(area(2))\n"
    raw = "\n    return math.pi * r ** 2\n\n\ndef perimeter(r):\n    return 2 * math.pi * r\n"
    got = shape(raw, prefix=prefix, suffix=suffix, mode="multi")
    assert got == Shaped("\n    return math.pi * r ** 2", 0)


def test_multi_python_else_is_dedent() -> None:
    raw = "\n        return -x\n    else:\n        return x\n"
    got = shape(raw, prefix="def absval(x):\n    if x < 0:", suffix="\n", mode="multi")
    assert got == Shaped("\n        return -x", 0)


def test_multi_blank_line_in_body() -> None:
    prefix = "def main():\n    "
    raw = "args = parse()\n\n    run(args)\n    return 0\nif __name__"
    got = shape(raw, prefix=prefix, suffix="\n", mode="multi")
    assert got == Shaped("args = parse()\n\n    run(args)\n    return 0", 0)


def test_multi_cut_at_suffix_repeat() -> None:
    prefix = "def total(xs):\n    s = 0\n    "
    suffix = "\n    return s\n"
    raw = "for x in xs:\n        s += x\n    return s\n"
    got = shape(raw, prefix=prefix, suffix=suffix, mode="multi")
    assert got == Shaped("for x in xs:\n        s += x", 0)


def test_multi_c_closing_brace_kept_when_missing() -> None:
    prefix = "#include <stdio.h>\n\nint main(void) {"
    raw = "\n    printf(\"hi\\n\");\n    return 0;\n}\n\nint other(void) {\n"
    got = shape(raw, prefix=prefix, suffix="\n", mode="multi")
    assert got == Shaped("\n    printf(\"hi\\n\");\n    return 0;\n}", 0)


def test_multi_c_closing_brace_not_duplicated() -> None:
    prefix = "int main(void) {\n    "
    raw = "return 0;\n}\n"
    got = shape(raw, prefix=prefix, suffix="\n}\n", mode="multi")
    assert got == Shaped("return 0;", 0)


def test_multi_js_arrow_closer_line() -> None:
    prefix = "const handler = async (req, res) => {"
    raw = "\n  const user = await db.find(req.id);\n  res.json(user);\n});\n\napp.listen(3000);\n"
    got = shape(raw, prefix=prefix, suffix="\n", mode="multi")
    assert got == Shaped("\n  const user = await db.find(req.id);\n  res.json(user);\n});", 0)


def test_multi_closing_line_at_wrong_indent_is_cut() -> None:
    # Cursor inside a body (no opener just above): a `}` closes an outer block.
    prefix = "int f(int x) {\n    int y = x * 2;\n    "
    raw = "y += 1;\n    return y;\n}\n"
    got = shape(raw, prefix=prefix, suffix="\n\nint g;", mode="multi")
    assert got == Shaped("y += 1;\n    return y;", 0)


def test_multi_max_lines() -> None:
    raw = "".join(f"x{i} = {i}\n" for i in range(30))
    got = shape(raw, prefix="", suffix="", mode="multi", max_lines=3)
    assert got == Shaped("x0 = 0\nx1 = 1\nx2 = 2", 0)


def test_trailing_whitespace_trimmed() -> None:
    raw = "\n    a = 1   \n    b = 2\t\n    \n"
    got = shape(raw, prefix="def f():", suffix="", mode="multi")
    assert got == Shaped("\n    a = 1\n    b = 2", 0)


def test_trailing_space_kept_when_it_joins_text_right_of_cursor() -> None:
    got = shape("alpha, ", prefix="call(", suffix="beta)\n", mode="single")
    assert got == Shaped("alpha, ", 0)
    got = shape("alpha ", prefix="x = ", suffix="\n", mode="single")
    assert got == Shaped("alpha", 0)


def test_suffix_overlap_trimmed_mid_line() -> None:
    # Model re-typed the rest of the line.
    got = shape("a, b, c)", prefix="print(", suffix="b, c)\n", mode="single")
    assert got == Shaped("a, ", 0)
    # C: the condition's rest `) {` duplicated.
    got = shape(" > 0) {", prefix="    if (n", suffix=") {\n", mode="single")
    assert got == Shaped(" > 0", 0)
    # Three characters are a duplicate mid-line too (fewer are not: see below).
    assert shape("total_sum", prefix="x = ", suffix="sum + 1\n", mode="single") == Shaped("total_", 0)


def test_suffix_overlap_requires_meaningful_match() -> None:
    # A lone shared letter mid-line is not treated as a duplicate.
    got = shape("total", prefix="x = ", suffix="l + 1\n", mode="single")
    assert got == Shaped("total", 0)
    # ...but a whole-line duplicate is, however short.
    assert shape("ab", prefix="x = ", suffix="ab\n", mode="single") is None


def test_suffix_overlap_across_lines() -> None:
    prefix = "function add(a, b) {\n  "
    raw = "const sum = a + b;\n  return sum;"
    got = shape(raw, prefix=prefix, suffix="\n  return sum;\n}\n", mode="multi")
    assert got == Shaped("const sum = a + b;", 0)


@pytest.mark.parametrize(
    ("prefix", "suffix", "raw", "expected"),
    [
        # Python: the completion closes print( itself -> type over `)`.
        ('    print(', ")\n", "f'{name}: {value}')", Shaped("f'{name}: {value}')", 1)),
        # Completion lacks the closer -> keep the existing one.
        ("    print(", ")\n", "f'{name}: {value}'", Shaped("f'{name}: {value}'", 0)),
        # The `)` closes the completion's own call: not a duplicate.
        ("    print(", ")\n", "len(items)", Shaped("len(items)", 0)),
        # Both: own call closed, then the outer one.
        ("    print(", ")\n", "len(items))", Shaped("len(items))", 1)),
        # Inside a string: the quote and paren both close outer things.
        ('    log("hel', '")\n', 'lo, world")', Shaped('lo, world")', 2)),
        # A quote the completion opened itself is not a closer.
        ("    log(", ")\n", '"hi")', Shaped('"hi")', 1)),
        # `]):` after a comprehension in a call in an if.
        ("    if any([x.ok for x in", "]):\n", " items]):", Shaped(" items]):", 3)),
        # Partial: completion ends with `)` only, `:` is kept.
        ("def handle(request", "):\n", ", *args)", Shaped(", *args)", 1)),
        # JS: `");` after the cursor.
        # The completion closes the string and the call, then goes on: the
        # whole `");` is replaced, or accepting would leave `n);");`.
        ('  console.log("count', '");\n', ': " + n);', Shaped(': " + n);', 3)),
        ('  console.log("count: ', '");\n', '" + n);', Shaped('" + n);', 3)),
        # Closes the outer call and adds a comment after it.
        ("    run(", ")\n", "job)  # retry later", Shaped("job)  # retry later", 1)),
        # Closes more than the line has: replace what is there.
        ("    f(g(", ")\n", "x))", Shaped("x))", 1)),
        # Closes in a different order than the line: leave it alone.
        ("    f([", "])\n", "x)", Shaped("x)", 0)),
        ('  console.log("count: ', '");\n', 'ok");', Shaped('ok");', 3)),
        # C: array initializer.
        ("int xs[] = {1, 2", "};\n", ", 3};", Shaped(", 3};", 2)),
        # Emoji/CJK content does not confuse the count (code points).
        ('    label = t("😀 日本', '")\n', '語")', Shaped('語")', 2)),
    ],
)
def test_closers_right_of_cursor(prefix: str, suffix: str, raw: str, expected: Shaped) -> None:
    assert shape(raw, prefix=prefix, suffix=suffix, mode="single") == expected


def test_closers_in_multi_line_completion() -> None:
    prefix = "result = compute("
    raw = "\n    alpha,\n    beta,\n)"
    got = shape(raw, prefix=prefix, suffix=")\n", mode="multi")
    assert got == Shaped("\n    alpha,\n    beta,\n)", 1)


def test_comment_apostrophe_does_not_open_string() -> None:
    got = shape("x)", prefix="foo(  # don't ", suffix=")\n", mode="single")
    assert got == Shaped("x)", 1)


@pytest.mark.parametrize("text,expected", [
    ("print(1, 1, 1, 1, 1", 10),            # keeps "print(1, 1": the first ", 1" of the loop
    ("x = ['S', 'S', 'S', 'S', 'S', ", 10),
    ("return a + b", None),
    ("foo(foo(foo(foo(", 4),
    ("x = ['BZPath', 'BZPath', 'BZPath', 'BZPath', 'BZ", 16),  # the budget ran out inside one more copy
    # A 26-character unit (the demo model's third suggestion for `print(`): units up to a line of code.
    ('print(scale.dtype("Polynomial", Position): ' + '("Polynomial", Position): ' * 4 + '("', 45),
    # Literals and names are never loops, however many equal characters they hold.
    ("0000", None), ("x = 10000", None), ("mask = 0xFFFF", None), ("if n == 1111", None), ("aaaa_aaaa", None),
    ("x = 1000000000000000000000000000", None),
    ("        ", None),                    # indentation is not a loop
    ("# " + "-" * 40, None),              # nor is a separator line
])
def test_repetition_start(text: str, expected: int | None) -> None:
    assert repetition_start(text) == expected


@pytest.mark.parametrize("text,expected", [
    # A single-line completion stops at its first line break, so the loop ends the line, not the text: the demo
    # model's answer to `    Optional de` in a docstring reached the editor with all five copies.
    (" ders the string to the string to the string to the string to the string to the\n", " ders the string to the"),
    ("print(1, 1, 1, 1, 1\r\n", "print(1, 1"),
    ("x = ['S', 'S', 'S', 'S', 'S', ", "x = ['S', "),  # cut by the budget, no line break
    # No loop: the text is left as it is, its line break included.
    ("return a + b\n", "return a + b\n"), ("x = 10000\n", "x = 10000\n"), ("", ""),
    # Only the end counts: a loop on an earlier line, followed by code, is the model's business.
    ("a a a a a\nb = 1\n", "a a a a a\nb = 1\n"),
])
def test_drop_loop(text: str, expected: str) -> None:
    assert drop_loop(text) == expected


@pytest.mark.parametrize("text", [
    "board = [0, 0, 0, 0, 0, 0",                 # five zeros and counting: a literal, let the model close it
    'HEADER = b"\\x00\\x00\\x00\\x00\\x00\\x00',
    "x = ['S', 'S', 'S', 'S', 'S', ",
])
def test_a_few_repeats_do_not_stop_generation(text: str) -> None:
    # They were cut to one copy (`board = [0, 0`) before the model could write the closing bracket.
    assert repetition_start(text) is not None and not looping(text)


@pytest.mark.parametrize("text", ["print(" + "1, " * 9, "x = " + "'S', " * 8, "# the" + " the" * 8])
def test_a_loop_that_goes_on_stops_generation(text: str) -> None:
    assert looping(text)


@pytest.mark.parametrize("text,expected", [
    ("return self.na", "return self."), ("foo(a, ", "foo(a, "), ("x = 10", "x = "), ("", ""), ("abc", ""),
])
def test_drop_partial_word(text: str, expected: str) -> None:
    assert drop_partial_word(text) == expected


@pytest.mark.parametrize("text,expected", [
    # The loop the budget stopped in a user's file: its unfinished last copy is gone.
    ("if ok:\n        dir, dirs = os.path.exists(dir):\n        dir, dirs =",
     "if ok:\n        dir, dirs = os.path.exists(dir):\n"),
    ("x = 1\n", "x = 1\n"),
    ("x = compute(", "x = compute("),  # one line, unfinished: what single-line completions show
    ("\n    return compute(", "\n    return compute("),  # nothing complete before it
])
def test_drop_partial_line(text: str, expected: str) -> None:
    assert drop_partial_line(text) == expected


@pytest.mark.parametrize("text,expected", [
    # Cut by the budget at the third copy (the model would have written eight): one is shown.
    ("if ok:\n    top.close()\n    top.close()\n    top.close()\n", "if ok:\n    top.close()\n"),
    ("a = 1\nb = 2\n", "a = 1\nb = 2\n"),
    ("x = [\n\n\n", "x = [\n\n\n"),  # blank lines are shaping's business
    ("close()\nclose()", "close()"),
])
def test_drop_repeated_lines(text: str, expected: str) -> None:
    assert drop_repeated_lines(text) == expected


def test_drop_repeated_lines_shows_a_repeated_block_once() -> None:
    # The demo model in optparse.py, cut by its 96 tokens: a two-line block twice. The first line is compared
    # with the cursor line's indentation in front of it.
    block = ("if not (c_option._short_opts or c_option._long_opts):\n"
             "                        c_option.container.option_list.remove(c_option)\n")
    text = block + "                    " + block
    assert drop_repeated_lines(text, "                    ") == block
    # A block that differs (the second `if` tests another name) is code, not a loop.
    assert drop_repeated_lines(text.replace("_short_opts or", "_opts or", 1), "                    ") == \
        text.replace("_short_opts or", "_opts or", 1)
    # Nested: a two-line block made of a repeated line, then repeated itself.
    assert drop_repeated_lines("x = 1\ny = 2\nx = 1\ny = 2\nx = 1\ny = 2\n") == "x = 1\ny = 2\n"


@pytest.mark.parametrize(("prefix", "raw"), [
    ("function f(a) {\n  ", "if (a) {\n    return 1;\n  }\n  return 2;\n}\n"),
    ("func sum(xs []int) int {\n\ts := 0\n\t", "for _, x := range xs {\n\t\ts += x\n\t}\n\treturn s\n}\n"),
])
def test_multi_nested_block_closer_is_not_the_suffix_repeat(prefix: str, raw: str) -> None:
    # The `}` of a block the completion opened is deeper than the suffix's `}`: it is kept.
    got = shape(raw, prefix=prefix, suffix="\n}\n", mode="multi")
    assert got is not None and got.text == raw.rstrip("\n").rsplit("\n", 1)[0]


@pytest.mark.parametrize(("prefix", "suffix", "raw", "replaced"), [
    ('    this.#name = "', '";\n', 'Bob";', 2),  # a JavaScript private name is no comment
    ('#[serde(rename = "', '")]\n', 'id")]', 3),  # nor is a Rust attribute
    ("    let s: &'static str = foo(", ");\n", "bar);", 2),  # a lifetime opens no string
    ("fn f<'a>(", ")\n", "x: &'a str)", 1),
    ('    """', '"""\n', 'Summary."""', 3),  # a triple quote is closed whole
])
def test_closers_after_hash_lifetime_and_triple_quote(prefix: str, suffix: str, raw: str, replaced: int) -> None:
    assert shape(raw, prefix=prefix, suffix=suffix, mode="single") == Shaped(raw, replaced)


@pytest.mark.parametrize(("prefix", "suffix", "raw", "replaced"), [
    # Inside an f-string's field the code's own brackets close first, then the field's `}`, the string's
    # quote and the call: all of them were typed over, not doubled (`print(f"{len(item)}"))}")`).
    ('    print(f"{len(', ')}")\n', 'items)}")', 4),
    ("    x = f\"{d['", "']}\"\n", "key']}\"", 4),  # a quote inside the field is the innermost string
    ('    x = f"{d["', '"]}"\n', 'key"]}"', 4),  # Python 3.12: the same quote nests inside a field
    ('    msg = rf"{a} {{b}} {c.get(', ')}"\n', 'k)}"', 3),  # `{{` is a literal brace, not a field
    ('    print(f"Hello, {', '}")\n', 'name}!")', 3),  # the field closes, the string goes on, then closes
    ("  const s = `${foo(", ")}`;\n", "a)}`;", 4),  # a JavaScript template literal's `${...}`
    ('    x = "{" + foo(', ")\n", "a)", 1),  # a plain string's brace opens nothing
    ('    s = self.elf"', '"\n', 'x"', 1),  # `elf"` ends a name: no f-string
    # A completion that ends inside a string or call of its own needs the line's closers to close it.
    ("    x = d['", "']\n", "a', '", 0),
    ("    x = f(", ")\n", "a), g(b", 0),
    ("    x = f\"{d['", "']}\"\n", "a', '", 0),
    # A quote in a comment after the closers is prose, and Python's floor division no comment.
    ("    foo(", ")\n", "bar)  # don't", 1),
    ("  foo(", ");\n", "bar); // it's", 2),
    ("    x = f(", ")\n", "a // 2)", 1),
])
def test_closers_inside_string_fields(prefix: str, suffix: str, raw: str, replaced: int) -> None:
    assert shape(raw, prefix=prefix, suffix=suffix, mode="single") == Shaped(raw, replaced)


# --------------------------------------------------------------------------
# brace languages: the `}` an editor closed as the user typed `{`
# --------------------------------------------------------------------------


@pytest.mark.parametrize(("before", "after", "mode"), [
    ("function add(a, b) {", "}", "multi"),  # VS Code, nvim-autopairs: typing `{` gives `{|}`
    ("  app.get('/', (req, res) => {", "});", "multi"),
    ("\tif x > 0 {", "}", "multi"),
    ("const o = { ", " };", "multi"),
    ("    d = {", "}", "multi"),  # a Python dict too
    ('    print(f"{', '}")', "single"),  # an f-string's field is no block
    ("  const s = `${", "}`;", "single"),  # nor is a template literal's
    ('  x = "{', '}"', "single"),  # nor a brace in a string
    ("  // see {", "}", "single"),  # nor one in a comment
    ("  foo(", ")", "single"),
    ("  if (x) {", "} else {", "single"),  # code right of the cursor
])
def test_completion_mode_inside_empty_braces(before: str, after: str, mode: str) -> None:
    assert completion_mode(before, after, "auto") == mode


@pytest.mark.parametrize(("prefix", "suffix", "raw", "expected"), [
    # The model writes the block's body, ending its last line: the `}` goes on a line of its own below it.
    ("function add(a, b) {", "}\n", "\n  return a + b;\n", Shaped("\n  return a + b;\n", 0)),
    ("func f(x int) int {\n\tif x > 0 {", "}\n\treturn 0\n}\n", "\n\t\treturn x\n\t",
     Shaped("\n\t\treturn x\n\t", 0)),
    ("app.get('/', (req, res) => {", "});\n", "\n  res.send('hi');\n", Shaped("\n  res.send('hi');\n", 0)),
    ("const o = { ", " };\n", "\n  a: 1,\n  b: 2,\n", Shaped("\n  a: 1,\n  b: 2,\n", 1)),  # the blank goes too
    # It wrote the `}` itself: that one replaces the editor's, as a single-line one's does.
    ("function add(a, b) {", "}\n", "\n  return a + b;\n}\n", Shaped("\n  return a + b;\n}", 1)),
    ("app.get('/', (req, res) => {", "});\n", "\n  res.send('hi');\n});\n", Shaped("\n  res.send('hi');\n});", 3)),
    ("function add(a, b) {", "}\n", " return a + b; ", Shaped(" return a + b; ", 0)),
    # A last line the model did not end stays as it wrote it.
    ("function add(a, b) {", "}\n", "\n  return a + b;", Shaped("\n  return a + b;", 0)),
])
def test_multi_line_body_inside_empty_braces(prefix: str, suffix: str, raw: str, expected: Shaped) -> None:
    # Before: single-line mode cut `\n  return a + b;\n` to nothing, and multi-line mode glued the `}` to
    # the body's last line (`return a + b;}`).
    assert shape(raw, prefix=prefix, suffix=suffix, mode="multi") == expected


def test_a_forced_multi_line_completion_before_code_keeps_its_line_break() -> None:
    # `linePolicy: multi` with code right of the cursor: the code starts the line below the completion.
    assert shape("y = 1\n    ", prefix="def f():\n    ", suffix="return x\n", mode="multi") == Shaped("y = 1\n    ", 0)
    # The model went on to repeat that code, which is dropped: the break is not doubled.
    assert shape("y = 1\n    return x\n", prefix="def f():\n    ", suffix="return x\n", mode="multi") == \
        Shaped("y = 1\n    ", 0)
    # One line before closers: they close it, on its line.
    assert shape("x\n", prefix="    print(", suffix=")\n", mode="multi") == Shaped("x", 0)
    assert shape("x\n\n    y = 1\n", prefix="    print(", suffix=")\n", mode="multi") == Shaped("x", 0)
    # Several lines before closers: they go below them (the closing `)` of a call written one argument a line).
    assert shape("\n    alpha,\n    beta,\n", prefix="result = compute(", suffix=")\n", mode="multi") == \
        Shaped("\n    alpha,\n    beta,\n", 0)


@pytest.mark.parametrize(("prefix", "raw", "expected"), [
    # A line that closes the cursor's block and opens the next one goes on with it, to that one's `}`.
    ("function g(x) {\n  if (x) {", "\n    a();\n  } else {\n    b();\n  }\n  return x;\n}\n",
     "\n    a();\n  } else {\n    b();\n  }"),
    ("fn f(x: i32) -> i32 {\n    if x > 0 {", "\n        x\n    } else {\n        -x\n    }\n}\n",
     "\n        x\n    } else {\n        -x\n    }"),
    ("func f(x int) int {\n\tif x > 0 {", "\n\t\treturn 1\n\t} else if x < 0 {\n\t\treturn -1\n\t}\n\treturn 0\n}\n",
     "\n\t\treturn 1\n\t} else if x < 0 {\n\t\treturn -1\n\t}"),
    ("  try {\n    ", "run();\n  } catch (e) {\n    log(e);\n  }\n  done();\n",
     "run();\n  } catch (e) {\n    log(e);\n  }"),
    ("fetch(url).then((r) => {", "\n  return r.json();\n}).then((data) => {\n  show(data);\n});\nnext();\n",
     "\n  return r.json();\n}).then((data) => {\n  show(data);\n});"),
    # Python's `else:` is no closer: the `if` body alone is a whole suggestion there (nothing is left open).
    ("def absval(x):\n    if x < 0:", "\n        return -x\n    else:\n        return x\n", "\n        return -x"),
])
def test_multi_block_goes_on_through_a_closing_and_opening_line(prefix: str, raw: str, expected: str) -> None:
    # Before: cut at `} else {`, which left the block the suggestion was in without its `}`.
    assert shape(raw, prefix=prefix, suffix="\n", mode="multi") == Shaped(expected, 0)
    # Generation stops where shaping cuts, not at the `} else {`.
    stop = make_stop("multi", line_before_cursor=prefix.split("\n")[-1], next_suffix_line=None,
                     block_indent=block_indent(prefix), opener_indent=opener_indent(prefix))
    stopped = _first_stop(stop, raw)
    assert stopped is not None and stopped.startswith(expected)


def test_multi_else_branch_the_suffix_closes_is_not_closed_twice() -> None:
    # The editor closed the `if` block (`{|` + `\n  }`): the suggestion's own `}` of the else is that one.
    got = shape("\n    a();\n  } else {\n    b();\n  }\n", prefix="function g(x) {\n  if (x) {",
                suffix="\n  }\n}\n", mode="multi")
    assert got == Shaped("\n    a();\n  } else {\n    b();", 0)
    # The user is filling the `if` of an existing if/else: the suggestion ends where that `} else {` is.
    got = shape("\n    a();\n  } else {\n    b();\n  }\n", prefix="function g(x) {\n  if (x) {",
                suffix="\n  } else {\n    c();\n  }\n}\n", mode="multi")
    assert got == Shaped("\n    a();", 0)


@pytest.mark.parametrize(("prefix", "suffix", "raw", "expected"), [
    # The editor closed the block with `}` (nvim-autopairs, `{<CR>`); the model ends the statement with `};`.
    # Both close the same block: the suggestion stops before its own, or accepting leaves `};` + `}`.
    ("const onClick = (e) => {\n  ", "\n}\n", "e.preventDefault();\n};\n", "e.preventDefault();"),
    ("  items.forEach((x) => {\n    ", "\n  })\n", "total += x;\n  });\n", "total += x;"),
    ("const onClick = (e) => {", "\n}\n", "\n  e.preventDefault();\n};\n", "\n  e.preventDefault();"),
    # A `}` of the completion's own block is deeper than the suffix's: kept, as before.
    ("function f(a) {\n  ", "\n};\n", "if (a) {\n    g();\n  }\n};\n", "if (a) {\n    g();\n  }"),
])
def test_multi_closing_line_like_the_suffix_s_is_a_repeat(prefix: str, suffix: str, raw: str, expected: str) -> None:
    assert shape(raw, prefix=prefix, suffix=suffix, mode="multi") == Shaped(expected, 0)
    stop = make_stop("multi", line_before_cursor=prefix.split("\n")[-1], next_suffix_line=next_suffix_line(suffix),
                     block_indent=block_indent(prefix), opener_indent=opener_indent(prefix))
    stopped = _first_stop(stop, raw)
    assert stopped is not None and stopped.rstrip("\n").endswith(raw.rstrip("\n").split("\n")[-1])


# --------------------------------------------------------------------------
# markup: HTML, XML, JSX/TSX, Vue and Svelte templates (tags.py)
# --------------------------------------------------------------------------


@pytest.mark.parametrize(("before", "after", "markup", "mode"), [
    ("  <ul>", "</ul>", True, "multi"),  # an editor closed the tag: the element's content goes here
    ('<div className="app">', "</div>", True, "multi"),
    ("return <>", "</>", True, "multi"),
    ("  <ul>", "", True, "multi"),  # an opening tag ends the line: a block
    ('  <button onClick={() => go()}>', "", True, "multi"),
    ("  <ul>", "</ul>", False, "single"),  # not in markup: as before
    ("  <ul>", "", False, "single"),
    ("  <br>", "", True, "single"),  # void and self-closing elements hold nothing
    ("  <Icon />", "", True, "single"),
    ("  <li>Hi ", "</li>", True, "single"),  # text already there: an inline edit
    ('  return `<div class="card">', "", True, "multi"),  # HTML in a template literal
    ('  <div class="container"> <!-- main wrapper -->', "", True, "multi"),  # a note after the tag
    ("    <Col span={12}>", "</Col>", True, "multi"), ('  <Link href="/about">', "", True, "multi"),  # components
    ("{#if open}", "", True, "multi"), ("  {#each items as item}", "", True, "multi"), ("{:else}", "", True, "multi"),
    ("const o = {a: 1}", "", True, "single"), ("{#if open}", "", False, "single"),  # Svelte blocks, in markup
    ('<p className="', '"></p>', True, "single"),
    ("<button onClick={", "}></button>", True, "single"),
    # Generics and comparisons stay single-line, in a TSX document too.
    ("const m = new Map<string, ", ">();", True, "single"),
    ("std::vector<int", "> v;", False, "single"),
    ("function id<T>", "", True, "single"),
    ("template <typename T>", "", False, "single"),
    ("  if (a < b)", "", True, "single"),
])  # fmt: skip
def test_completion_mode_in_markup(before: str, after: str, markup: bool, mode: str) -> None:
    assert completion_mode(before, after, "auto", markup=markup) == mode


@pytest.mark.parametrize(("prefix", "suffix", "mode", "raw", "expected"), [
    # Between tags: the text, ending before the closing tag the editor added (not a second one).
    ("const A = () => (\n  <div>", "</div>\n);\n", "multi", "Hello</div><span>x</span>", Shaped("Hello")),
    ("const A = () => (\n  <div>", "</div>\n);\n", "multi", "Hello</div>\n  <p>more</p>\n", Shaped("Hello")),
    ("const A = () => (\n  <div>", "</div>\n);\n", "multi", "Hello\n", Shaped("Hello")),  # no break before </div>
    ("<ul>\n  <li>", "</li>\n</ul>\n", "single", "{item.name}</li>", Shaped("{item.name}")),
    # The content on lines of its own: the closing tag goes below it, at the opening tag's indent.
    ("const A = () => (\n  <div>", "</div>\n);\n", "multi", "\n    <h1>Hello</h1>\n  </div>\n);\n",
     Shaped("\n    <h1>Hello</h1>\n  ")),
    ("<body>\n  <ul>", "</ul>\n</body>\n", "multi", "\n    <li>One</li>\n    <li>Two</li>\n  ",
     Shaped("\n    <li>One</li>\n    <li>Two</li>\n  ")),
    # Not the element's content: lines no deeper than its tag, which the closing tag right of the cursor ends.
    ("<h1>", "</h1>\n", "multi", '\n\n"""\n\nimport re\n', None),
    ("  <p>", "</p>\n", "multi", "Hi\n  <p>more</p>\n", Shaped("Hi")),
    # An opening tag ends the line: its content, to the closing tag below (a repeat), or to its own one.
    ("<ul>", "\n</ul>\n", "multi", "\n  <li>One</li>\n  <li>Two</li>\n</ul>\n", Shaped("\n  <li>One</li>\n  <li>Two</li>")),
    ("<ul>", "\n", "multi", "\n  <li>One</li>\n</ul>\n<p>x</p>\n", Shaped("\n  <li>One</li>\n</ul>")),
    ("<ul>\n  ", "\n</ul>\n", "multi", "<li>One</li>\n  <li>Two</li>\n</ul>\n", Shaped("<li>One</li>\n  <li>Two</li>")),
    # A value: ending where it closes, not before the rest of the line's copy.
    ('export const P = () => <p className="', '"></p>;\n', "single", 'text-lg">Hello</p>;', Shaped("text-lg")),
    ("const B = () => <button onClick={", "}></button>;\n", "single", "() => inc(1)}>Add</button>;",
     Shaped("() => inc(1)")),
    ('<p className="', '">\n', "single", 'a">Hi</p>', Shaped('a">Hi</p>', 2)),  # closers only: typed over
    # More attributes before the tag's `>`: the rest's closers up to its `>` are typed over too (before: `>>`).
    ('<nav>\n  <a href="', '">\n</nav>\n', "single", 'x" title="y">Home</a>', Shaped('x" title="y">Home</a>', 2)),
    ('<button onClick={() => f("', '")}>\n', "single", 'x")} title="a">Go</button>',
     Shaped('x")} title="a">Go</button>', 4)),
    ('<a href="', '">\n', "single", 'x" title="y', Shaped('x" title="y')),  # the tag not ended: the rest ends it
    # Generics in a TSX document: as in any other.
    ("const m = new Map<string, ", ">();\n", "single", "number>();", Shaped("number")),
    ("const m = new Map<string, ", ">();\n", "single", "number", Shaped("number")),
    ("const v = useState<", ">(0);\n", "single", "number | null", Shaped("number | null")),
])  # fmt: skip
def test_shape_in_markup(prefix: str, suffix: str, mode: str, raw: str, expected: Shaped | None) -> None:
    # Before: a body on lines of its own was cut to nothing (single-line mode), and what the model wrote after
    # the closing tag or quote was offered too, doubling the rest of the line (`text-lg">Hello</p>;"></p>;`).
    assert shape(raw, prefix=prefix, suffix=suffix, mode=mode, markup=True) == expected


@pytest.mark.parametrize(("prefix", "suffix", "raw", "expected"), [
    ("std::vector<int", "> v;\n", ", int", ", int"),
    ("  if (a < b) ", "\n", "return a;", "return a;"),
    ("auto y = x<", ">z;\n", "y", "y"),
    ("fn f<'a>(x: &'a str) -> Vec<", "> {\n", "&'a str", "&'a str"),
])
def test_shape_of_generics_and_comparisons_is_unchanged(prefix: str, suffix: str, raw: str, expected: str) -> None:
    assert shape(raw, prefix=prefix, suffix=suffix, mode="single") == Shaped(expected)
    assert shape(raw, prefix=prefix, suffix=suffix, mode="single", markup=True) == Shaped(expected)


def test_stop_in_markup_at_the_closing_tag_or_quote() -> None:
    # Generation stops where shaping cuts, in both modes: not at the next line or the token budget.
    single = make_stop("single", line_before_cursor="  <li>", next_suffix_line=None, block_indent=2, markup=True,
                       rest_of_line="</li>")
    assert _first_stop(single, "{item.name}</li><li>{item.id}</li>") == "{item.name}</li>"
    value = make_stop("single", line_before_cursor='<p className="', next_suffix_line=None, block_indent=0,
                      markup=True, rest_of_line='"></p>')
    assert _first_stop(value, 'text-lg">Hello</p>') == 'text-lg"'
    prefix = "const A = () => (\n  <div>"
    multi = make_stop("multi", line_before_cursor="  <div>", next_suffix_line=");", markup=True, rest_of_line="</div>",
                      block_indent=block_indent(prefix, markup=True, rest_of_line="</div>"),
                      opener_indent=opener_indent(prefix, markup=True, rest_of_line="</div>"),
                      element=opened_element(prefix, markup=True, rest_of_line="</div>"))
    assert _first_stop(multi, "Hello</div><div>World</div>\n") == "Hello</div>"
    assert _first_stop(multi, "\n    <h1>Hi</h1>\n    <p>x</p>\n  </div>\n") == "\n    <h1>Hi</h1>\n    <p>x</p>\n  </div>"
    # Not in markup: a `>` or `<` is no tag.
    generic = make_stop("single", line_before_cursor="std::vector<", next_suffix_line=None, block_indent=0,
                        rest_of_line="> v;")
    assert _first_stop(generic, "int> w;\n") == "int> w;\n"


@pytest.mark.parametrize(("prefix", "raw", "expected"), [
    # `<ul>|` with no closing tag below: the element's content, then its `</ul>`, kept; the line after is not.
    ("<ul>", "\n  <li>One</li>\n</ul>\n<p>x</p>\n", "\n  <li>One</li>\n</ul>"),
    ("  <ul>", "\n    <li>One</li>\n  </ul>\n  <p>x</p>\n", "\n    <li>One</li>\n  </ul>"),
    ("<p>", "Some text</p>\n<p>Next</p>\n", "Some text</p>"),
    # Content at the tag's own indent (`<body>` under `<html>`) is content, not the block's end.
    ("<html>\n<body>", "\n<h1>Hi</h1>\n<p>x</p>\n</body>\n</html>\n", "\n<h1>Hi</h1>\n<p>x</p>\n</body>"),
    ("<html>\n<body>\n", "<h1>Hi</h1>\n<p>x</p>\n</body>\n</html>\n", "<h1>Hi</h1>\n<p>x</p>\n</body>"),
    # There, an outer element's closing tag ends it, left out as a shallower line is (before: kept, and the
    # suggestion ran on into the markup after it); one that closes the model's own element does not.
    ("<ul>\n<li>Flour</li>\n<li>", "Milk\n</ul>\n<h2>Steps</h2>\n<p>Mix.</p>\n", "Milk"),
    ("<html>\n<body>", "\n<h1>Pancakes</h1>\n</html>\n<p>stray</p>\n", "\n<h1>Pancakes</h1>"),
    ("<template>\n<div class=\"card\">", "\n<h2>{{ title }}</h2>\n</template>\n\n<script>\nexport default {}\n",
     "\n<h2>{{ title }}</h2>"),
    ("<body>", "\n<div>\n<p>x</p>\n</div>\n</body>\n<p>y</p>\n", "\n<div>\n<p>x</p>\n</div>\n</body>"),
    # Its own elements of the same name are not its end; a line shallower than the tag is.
    ("<div>", "\n  <div>a</div>\n</div>\nx\n", "\n  <div>a</div>\n</div>"),
    ("  <div>", "\n    <p>a</p>\n</section>\n", "\n    <p>a</p>"),
    # On a blank line below the tag, the editor's indent says where the content is.
    ("<ul>\n  ", "<li>One</li>\n  <li>Two</li>\n</ul>\n<p>x</p>\n", "<li>One</li>\n  <li>Two</li>\n</ul>"),
    # A Svelte block: its content, to its `{/if}` (kept as a `}` is).
    ("{#if open}", "\n  <p>Open</p>\n{/if}\n<p>x</p>\n", "\n  <p>Open</p>\n{/if}"),
    ("<ul>\n  {#each items as item}", "\n    <li>{item}</li>\n  {/each}\n</ul>\n", "\n    <li>{item}</li>\n  {/each}"),
    # A branch in the middle (`{:else}`, `{:else if}`, `{:then}`) goes on to the block's end (before: cut there).
    ("{#if open}", "\n  <p>A</p>\n{:else}\n  <p>B</p>\n{/if}\n<p>x</p>\n", "\n  <p>A</p>\n{:else}\n  <p>B</p>\n{/if}"),
    ("<div>\n  {#if a}", "\n    1\n  {:else if b}\n    2\n  {:else}\n    3\n  {/if}\n</div>\n",
     "\n    1\n  {:else if b}\n    2\n  {:else}\n    3\n  {/if}"),
    ("{#await p}", "\n  ...\n{:then v}\n  {v}\n{/await}\nx\n", "\n  ...\n{:then v}\n  {v}\n{/await}"),
])  # fmt: skip
def test_multi_in_markup_ends_with_the_elements_closing_tag(prefix: str, raw: str, expected: str) -> None:
    # Before: `<ul>|` was single-line (nothing), and `</ul>` at the tag's indent or content there ended the block
    # (its `</ul>` dropped, or `<body>`'s content cut to its first line).
    assert completion_mode(prefix.split("\n")[-1], "", "auto", markup=True) == "multi"
    assert shape(raw, prefix=prefix, suffix="\n", mode="multi", markup=True) == Shaped(expected)
    # Generation stops where shaping cuts; a line that may still become the closing tag is waited for.
    stop = make_stop("multi", line_before_cursor=prefix.split("\n")[-1], next_suffix_line=None, markup=True,
                     block_indent=block_indent(prefix, markup=True), opener_indent=opener_indent(prefix, markup=True),
                     element=opened_element(prefix, markup=True))
    stopped = _first_stop(stop, raw)
    assert stopped is not None and stopped.startswith(expected)
    assert shape(stopped, prefix=prefix, suffix="\n", mode="multi", markup=True) == Shaped(expected)


@pytest.mark.parametrize(("prefix", "suffix", "mode", "raw", "expected"), [
    # The model closes the element inline after its last child, the document on the next line: one `</ul>`.
    ("<ul>", "\n</ul>\n", "multi", "\n  <li>a</li>\n  <li>b</li></ul>", "\n  <li>a</li>\n  <li>b</li>"),
    ("<ul>\n  ", "\n</ul>\n", "multi", "<li>a</li>\n  <li>b</li></ul>\n", "<li>a</li>\n  <li>b</li>"),
    ("const A = () => (\n  <>", "\n  </>\n);\n", "multi", "\n    <A />\n    <B /></>\n);", "\n    <A />\n    <B />"),
    ("<ul>", "\n</ul>\n", "multi", "\n  <li>a</li>\n  </ul>\n", "\n  <li>a</li>"),  # its own line, at another indent
    # Its own nested element of that name is kept; another element's closing tag is no end.
    ("<div>", "\n</div>\n", "multi", "\n  <div>\n    <p>x</p>\n  </div></div>", "\n  <div>\n    <p>x</p>\n  </div>"),
    ("<ul>", "\n</ul>\n", "multi", "\n  <li><b>a</b></li>", "\n  <li><b>a</b></li>"),
    # The closing tag below is an outer element's (deeper `<ul>` unclosed): the model's is the inner one's.
    ("<ul>\n  <li>\n    <ul>", "\n</ul>\n", "multi", "\n      <li>x</li></ul>", "\n      <li>x</li></ul>"),
    # The element was opened further up: text or children the model ends with its closing tag.
    ("<p>\n  Hello ", "\n</p>\n", "single", "world</p>", "world"),
    ("<div>\n  <p>x</p>\n  ", "\n</div>\n", "multi", "<p>y</p></div>\n</html>", "<p>y</p>"),
    ("<div>\n  <ul>", "\n</div>\n", "multi", "\n    <li>a</li></ul></div>", "\n    <li>a</li></ul>"),
    ("<div>\n  <p>Hello ", "\n</div>\n", "single", "world</p>", "world</p>"),  # the line's own `<p>`
])  # fmt: skip
def test_the_closing_tag_on_the_next_line_is_not_written_again(prefix: str, suffix: str, mode: str, raw: str,
                                                                expected: str) -> None:
    # Before: the model's inline `</ul>` was kept (the line of the element's closing tag ends the block, kept),
    # and accepting showed `<li>b</li></ul>` above the document's `</ul>`; so did `Hello world</p>` above `</p>`.
    assert shape(raw, prefix=prefix, suffix=suffix, mode=mode, markup=True) == Shaped(expected)
    line_before, rest = prefix.split("\n")[-1], suffix.split("\n")[0]
    stop = make_stop(mode, line_before_cursor=line_before, next_suffix_line=next_suffix_line(suffix), markup=True,
                     block_indent=block_indent(prefix, markup=True, rest_of_line=rest),
                     opener_indent=opener_indent(prefix, markup=True, rest_of_line=rest),
                     element=opened_element(prefix, markup=True, rest_of_line=rest), rest_of_line=rest)
    stopped = _first_stop(stop, raw) or raw
    assert shape(stopped, prefix=prefix, suffix=suffix, mode=mode, markup=True) == Shaped(expected)
    if expected != raw:  # generation stops as the model's closing tag is written, not at the end of its line
        assert stopped == raw[:raw.index(">", len(expected)) + 1]


def test_a_svelte_branch_is_no_block_in_code() -> None:
    # Outside markup a line `{:else}` is a dedent like any other: the block ends there.
    assert shape("\n    a\n{:else}\n    b\n", prefix="if x:", suffix="\n", mode="multi") == Shaped("\n    a")


_PRETTIER = 'const A = () => (\n  <div\n    className="x"\n    id="y"\n  >'


@pytest.mark.parametrize(("prefix", "suffix", "raw", "expected"), [
    # Its closing tag below: the content, that `</div>` not written again, inline or on its own line.
    (_PRETTIER, "\n  </div>\n);\n", "\n    <p>a</p>\n  </div>\n);\n", "\n    <p>a</p>"),
    (_PRETTIER, "\n  </div>\n);\n", "\n    <p>a</p>\n    <p>b</p></div>\n);", "\n    <p>a</p>\n    <p>b</p>"),
    # None below: its own, kept at the indent of the line the tag starts on, and the line after it not.
    (_PRETTIER, "\n", "\n    <p>a</p>\n  </div>\n);\n", "\n    <p>a</p>\n  </div>"),
    # The `>` on the last attribute's line.
    ("<section>\n  <a\n    href=\"/x\">", "\n  </a>\n</section>\n", "\n    Home\n  </a>\n</section>", "\n    Home"),
    # An attribute's expression holding a tag of its own, or a TSX generic arrow (`<T extends Row>` is no tag).
    ("<Route\n  render={() => <p>Don't</p>}\n>", "\n</Route>\n", "\n  <Child />\n</Route>", "\n  <Child />"),
    ("<Table\n  rowKey={<T extends Row>(r: T) => r.id}\n>", "\n", "\n  <Column title=\"Name\" />\n</Table>\n);",
     "\n  <Column title=\"Name\" />\n</Table>"),
])  # fmt: skip
def test_the_gt_line_of_a_tag_begun_above_opens_a_block(prefix: str, suffix: str, raw: str, expected: str) -> None:
    # Before: `>|` was single-line, so a model starting on a new line gave no suggestion.
    lines = prefix.split("\n")
    above = "".join(line + "\n" for line in lines[:-1])
    assert completion_mode(lines[-1], "", "auto", markup=True, above=above) == "multi"
    assert completion_mode(lines[-1], "", "auto", markup=False, above=above) == "single"
    assert shape(raw, prefix=prefix, suffix=suffix, mode="multi", markup=True) == Shaped(expected)
    indent, opener, element = (block_indent(prefix, markup=True), opener_indent(prefix, markup=True),
                               opened_element(prefix, markup=True))
    stop = make_stop("multi", line_before_cursor=lines[-1], next_suffix_line=next_suffix_line(suffix), markup=True,
                     block_indent=indent, opener_indent=opener, element=element,
                     closing_below=closing_line_below(suffix, indent, opener, element))
    stopped = _first_stop(stop, raw)
    assert stopped is not None and shape(stopped, prefix=prefix, suffix=suffix, mode="multi", markup=True) \
        == Shaped(expected)


def test_the_gt_line_of_an_empty_element_begun_above() -> None:
    # Prettier's `<div⏎  className="x"⏎></div>`: between the tags is where its content goes, as in `<div>|</div>`.
    above = '<div\n  className="x"\n'
    assert completion_mode(">", "</div>", "auto", markup=True, above=above) == "multi"
    assert completion_mode(">", "</p>", "auto", markup=True, above=above) == "single"
    assert shape("\n  <p>a</p>\n</div>", prefix=above + ">", suffix="</div>\n", mode="multi", markup=True) \
        == Shaped("\n  <p>a</p>\n", 0)


@pytest.mark.parametrize(("prefix", "suffix", "mode", "raw", "expected"), [
    # The document has the element's children and then its closing tag: the model's own (glued to its last
    # child, or on its own line) would close the element above them.
    ("<div>", "\n  <p>old</p>\n</div>\n", "multi", "\n  <p>a</p></div>", "\n  <p>a</p>"),
    ("<div>", "\n  <p>old</p>\n</div>\n", "multi", "\n  <p>a</p>\n</div>\n", "\n  <p>a</p>"),
    ("<div>\n  <p>x</p>\n  ", "\n  <p>old</p>\n</div>\n", "multi", "<p>a</p></div>", "<p>a</p>"),
    ("<p>\n  Hello ", "\n  more\n</p>\n", "single", "world</p>", "world"),
    ("<html>\n<body>", "\n<p>x</p>\n</body>\n</html>\n", "multi", "\n<p>a</p></body>", "\n<p>a</p>"),
    # Not where the line leaving the block is an outer element's, or no closing tag at all.
    ("<ul>\n  <li>", "\n  <li>c</li>\n</ul>\n", "multi", "\n    a\n  </li>\n  <li>b</li></ul>", "\n    a\n  </li>"),
    ("<div>", "\n  <p>old</p>\n<p>y</p>\n", "multi", "\n  <p>a</p></div>", "\n  <p>a</p></div>"),
])  # fmt: skip
def test_the_closing_tag_below_the_documents_children_is_not_written_again(prefix: str, suffix: str, mode: str,
                                                                          raw: str, expected: str) -> None:
    assert shape(raw, prefix=prefix, suffix=suffix, mode=mode, markup=True) == Shaped(expected)
    line_before = prefix.split("\n")[-1]
    indent, opener, element = (block_indent(prefix, markup=True), opener_indent(prefix, markup=True),
                               opened_element(prefix, markup=True))
    stop = make_stop(mode, line_before_cursor=line_before, next_suffix_line=next_suffix_line(suffix), markup=True,
                     block_indent=indent, opener_indent=opener, element=element,
                     closing_below=closing_line_below(suffix, indent, opener, element))
    stopped = _first_stop(stop, raw) or raw
    assert shape(stopped, prefix=prefix, suffix=suffix, mode=mode, markup=True) == Shaped(expected)
    if raw[len(expected):].lstrip().startswith("</"):  # generation stops as that closing tag is written
        assert stopped == raw[:raw.index(">", len(expected)) + 1]
