from __future__ import annotations

from collections.abc import Callable

import pytest

from lsp_server.context import FimContext, TokenCounter, _fit_head, _fit_tail, build_context
from lsp_server.extra_context import ContextChunk, ExtraContext, comment_syntax
from lsp_server.text import offset_at
from tests.recorders import SlicedStr


def words(s: str) -> int:
    return len(s.split())


def quarter(s: str) -> int:
    """~chars/4, rounded up, like a rough BPE estimate."""
    return (len(s) + 3) // 4


PY = (
    "import os\n"
    "\n"
    "\n"
    "def load(path):\n"
    "    with open(path) as f:\n"
    "        return f.read()\n"
    "\n"
    "\n"
    "def main():\n"
    "    data = load(os.environ['CFG'])\n"
    "    print(data)\n"
)

NUMBERED = "".join(f"x{i} = {i}\n" for i in range(100))  # 3 words per line


# --------------------------------------------------------------------------
# build_context
# --------------------------------------------------------------------------


def test_whole_document_fits() -> None:
    offset = PY.index("(data)") + 1
    ctx = build_context(PY, offset, words, prefix_tokens=1000, suffix_tokens=1000)
    assert ctx == FimContext(
        prefix=PY[:offset], suffix=PY[offset:], prefix_start_line=0, suffix_end_line=11
    )


def test_golden_windows_with_snap() -> None:
    # Cursor at the end of "x40 = 40": head 3 words, 27 left = 9 lines, so the
    # earliest start that fits is 31; the earliest multiple of 8 from it is 32.
    ctx = build_context(
        NUMBERED, offset_at(NUMBERED, 40, 8), words, prefix_tokens=30, suffix_tokens=9, snap_lines=8
    )
    assert ctx.prefix_start_line == 32
    assert ctx.prefix == "".join(f"x{i} = {i}\n" for i in range(32, 40)) + "x40 = 40"
    assert ctx.suffix == "\nx41 = 41\nx42 = 42\nx43 = 43"
    assert ctx.suffix_end_line == 43


def test_start_moves_only_every_snap_lines() -> None:
    starts = [
        build_context(
            NUMBERED, offset_at(NUMBERED, line, 8), words, prefix_tokens=30, suffix_tokens=9,
            snap_lines=4,
        ).prefix_start_line
        for line in range(40, 60)
    ]
    # Earliest fitting start is line-9 (line-9 for 41 too: 3+27=30 fits).
    assert starts == [32] * 2 + [36] * 4 + [40] * 4 + [44] * 4 + [48] * 4 + [52] * 2


def test_snap_never_drops_more_than_half_the_lines_that_fit() -> None:
    # 9 lines fit above the cursor. A grain of 8 would start at the next multiple of 8 (line 48 for a cursor
    # on line 50: 2 lines of the 9, none at all on line 48); the grain is cut to 4, so 5 lines or more stay.
    for line in range(40, 60):
        ctx = build_context(NUMBERED, offset_at(NUMBERED, line, 8), words, prefix_tokens=30, suffix_tokens=9,
                            snap_lines=8)
        assert line - ctx.prefix_start_line >= 5, line
    # The default grain of 32 with 31 lines fitting: a cursor on line 64 kept no line above it.
    ctx = build_context(NUMBERED, offset_at(NUMBERED, 64, 8), words, prefix_tokens=3 + 31 * 3, suffix_tokens=9)
    assert 64 - ctx.prefix_start_line >= 16


@pytest.mark.parametrize("counter", [words, quarter])
@pytest.mark.parametrize("budget", [0, 1, 7, 40, 333])
def test_budgets_respected(counter, budget: int) -> None:
    text = (PY * 30).replace("print(data)", "print(data, sep='日本語😀')")
    for offset in range(0, len(text), 97):
        ctx = build_context(
            text, offset, counter, prefix_tokens=budget, suffix_tokens=budget // 2, snap_lines=16
        )
        assert counter(ctx.prefix) <= budget
        assert counter(ctx.suffix) <= budget // 2
        # Windows are contiguous slices of the document around the cursor.
        assert text[:offset].endswith(ctx.prefix)
        assert text[offset:].startswith(ctx.suffix)


def test_current_line_head_always_included() -> None:
    text = "a b c d e f\n" * 5 + "g h i j"
    ctx = build_context(text, len(text), words, prefix_tokens=4, suffix_tokens=0)
    assert ctx.prefix == "g h i j"
    assert ctx.prefix_start_line == 5
    ctx = build_context(text, len(text), words, prefix_tokens=10, suffix_tokens=0)
    assert ctx.prefix == "a b c d e f\ng h i j"  # line 4 fits; the snap grain drops to 1


def test_start_stable_while_typing_and_lines_memoized() -> None:
    base = NUMBERED[: NUMBERED.index("x50")]
    rest = NUMBERED[NUMBERED.index("x50") :]
    calls: list[str] = []

    def counting(s: str) -> int:
        calls.append(s)
        return words(s)

    counter = TokenCounter(counting)
    typed = "    result = compute(alpha, beta)"
    starts = set()
    build_context(base + rest, len(base), counter, prefix_tokens=60, suffix_tokens=20)
    for i in range(1, len(typed) + 1):
        text = base + typed[:i] + "\n" + rest
        before = len(calls)
        ctx = build_context(text, len(base) + i, counter, prefix_tokens=60, suffix_tokens=20)
        starts.add(ctx.prefix_start_line)
        assert ctx.prefix.endswith(typed[:i])
        # Only the edited line's head (and at most its new rest) are tokenized.
        assert len(calls) - before <= 2
    assert starts == {32}


def test_crlf_document() -> None:
    text = PY.replace("\n", "\r\n")
    offset = text.index("load(os") + len("load(")
    ctx = build_context(text, offset, words, prefix_tokens=1000, suffix_tokens=1000)
    lf_offset = PY.index("load(os") + len("load(")
    assert ctx.prefix == PY[:lf_offset]
    assert ctx.suffix == PY[lf_offset:]
    assert "\r" not in ctx.prefix + ctx.suffix
    assert (ctx.prefix_start_line, ctx.suffix_end_line) == (0, 11)


def test_offset_inside_crlf_clamps_to_line_end() -> None:
    text = "ab\r\ncd"
    ctx = build_context(text, 3, words, prefix_tokens=10, suffix_tokens=10)
    assert (ctx.prefix, ctx.suffix) == ("ab", "\ncd")


def test_cursor_at_document_start_and_end() -> None:
    ctx = build_context(PY, 0, words, prefix_tokens=10, suffix_tokens=5)
    assert ctx.prefix == ""
    assert ctx.prefix_start_line == 0
    assert ctx.suffix == "import os\n\n\ndef load(path):"
    assert ctx.suffix_end_line == 3

    ctx = build_context(PY, len(PY), words, prefix_tokens=6, suffix_tokens=5)
    assert ctx.suffix == ""
    assert ctx.suffix_end_line == 11
    # Lines 6-7 are blank (0 words), so the earliest fit is line 6; 5 lines
    # fit, so the grain drops to 2 and line 6 is a multiple of it.
    assert ctx.prefix == "\n\ndef main():\n    data = load(os.environ['CFG'])\n    print(data)\n"
    assert ctx.prefix_start_line == 6


def test_out_of_range_offsets_clamp() -> None:
    big = build_context(PY, 10**6, words, prefix_tokens=1000, suffix_tokens=10)
    assert (big.prefix, big.suffix) == (PY, "")
    neg = build_context(PY, -4, words, prefix_tokens=10, suffix_tokens=1000)
    assert (neg.prefix, neg.suffix) == ("", PY)


def test_empty_document() -> None:
    ctx = build_context("", 0, words, prefix_tokens=100, suffix_tokens=100)
    assert ctx == FimContext("", "", 0, 0)


def test_huge_single_line_is_cut() -> None:
    line = "".join(f"v{i} = f(v{i - 1}, '日本'); " for i in range(1, 2000))
    offset = len(line) // 2
    ctx = build_context(line, offset, quarter, prefix_tokens=100, suffix_tokens=50)
    assert quarter(ctx.prefix) <= 100
    assert quarter(ctx.suffix) <= 50
    assert line[:offset].endswith(ctx.prefix)
    assert line[offset:].startswith(ctx.suffix)
    # Budget is used, not wasted: within one 64-char grain of the maximum.
    assert len(ctx.prefix) > 400 - 64
    assert len(ctx.suffix) == 200
    # Cut from the left at a multiple of 64 code points.
    assert (offset - len(ctx.prefix)) % 64 == 0
    assert (ctx.prefix_start_line, ctx.suffix_end_line) == (0, 0)


def test_huge_line_cut_is_stable_while_typing() -> None:
    head = "x" * 5000
    cuts = set()
    for extra in range(0, 40):
        text = head + "y" * extra
        ctx = build_context(text, len(text), quarter, prefix_tokens=200, suffix_tokens=10)
        assert quarter(ctx.prefix) <= 200
        cuts.add(len(text) - len(ctx.prefix))
    assert len(cuts) <= 3  # moves one 64-char grain at a time, not per keystroke


@pytest.mark.parametrize("where", ["middle", "end"])
def test_long_lines_are_counted_only_as_far_as_the_budget_reaches(where: str) -> None:
    # The cursor in a 240 KB minified line, a 150 KB data line above and below it: counting them whole (their
    # counts are not memoized) took 30-130 ms a keystroke. Only strings about twice what fits are counted now.
    data = "DATA = [" + ", ".join(str(i * 0.123) for i in range(25_000)) + "]"
    minified = "".join(f"var a{i}=function(b,c){{return b+c*{i}}};" for i in range(6_000))
    text = f"x = 1\n{data}\n{minified}\n{data}\ny = 2\n"
    offset = text.index(minified) + (len(minified) // 2 if where == "middle" else len(minified))
    counted: list[int] = []

    def count(s: str) -> int:
        counted.append(len(s))
        return quarter(s)

    ctx = build_context(text, offset, TokenCounter(count), prefix_tokens=1024, suffix_tokens=256)
    assert sum(counted) < 100_000, sorted(counted)[-5:]
    assert ctx == build_context(text, offset, quarter, prefix_tokens=1024, suffix_tokens=256)  # the same windows
    assert quarter(ctx.prefix) <= 1024 and text[:offset].endswith(ctx.prefix) and ctx.prefix_start_line == 2


@pytest.mark.parametrize("count", [quarter, words, lambda s: len(s.encode())])
def test_fitting_cuts_are_the_tightest(count: Callable[[str], int]) -> None:
    # The searches grow from one end before bisecting: they must still find the cut a scan of every cut finds.
    line = "".join(f"v{i} = f(v{i - 1}, '日本'); " * (i % 3) for i in range(1, 60))
    for budget in (0, 1, 5, 17, 64, 200, 10_000):
        tightest_tail = next(cut for cut in [*range(0, len(line), 64), len(line)] if count(line[cut:]) <= budget)
        if tightest_tail == len(line) and line:
            tightest_tail = next(cut for cut in range(len(line) - (len(line) - 1) % 64 - 1, len(line) + 1)
                                 if count(line[cut:]) <= budget)
        assert _fit_tail(line, count, budget) == tightest_tail, budget
        assert _fit_head(line, count, budget) == max(end for end in range(len(line) + 1)
                                                     if count(line[:end]) <= budget), budget


def test_extra_is_prepended_with_newline() -> None:
    ctx = build_context("x = 1\ny = ", 10, words, prefix_tokens=100, suffix_tokens=0,
                        extra="# Path: a.py\nA = 1")
    assert ctx.prefix == "# Path: a.py\nA = 1\nx = 1\ny = "
    ctx = build_context("y = ", 4, words, prefix_tokens=100, suffix_tokens=0, extra="# b\n")
    assert ctx.prefix == "# b\ny = "


def test_c_snippet_suffix_whole_lines() -> None:
    c = "int add(int a, int b) {\n    return a + b;\n}\n\nint main(void) {\n    return add(1, 2);\n}\n"
    offset = c.index("a + b")
    ctx = build_context(c, offset, quarter, prefix_tokens=64, suffix_tokens=6)
    # rest "a + b;" = 2, "}\n" = 1, "\n" = 1, next line 5 would overflow 6.
    assert ctx.suffix == "a + b;\n}\n"
    assert ctx.suffix_end_line == 3
    assert ctx.prefix == "int add(int a, int b) {\n    return "


def test_token_counter_is_bounded_lru() -> None:
    counter = TokenCounter(words, max_entries=2)
    assert counter("a b") == 2
    assert counter("c") == 1
    assert counter("a b") == 2  # refresh
    assert counter("d e f") == 3  # evicts "c"
    assert len(counter) == 2
    assert counter.calls == 3
    counter("c")
    assert counter.calls == 4


# --------------------------------------------------------------------------
# ExtraContext
# --------------------------------------------------------------------------

UTIL_PY = "\n".join(
    ["import math", "", ""]
    + [f"def f{i}(x):\n    return math.sqrt(x) * {i}\n" for i in range(10)]
)


def test_comment_syntax() -> None:
    assert comment_syntax("python") == ("#", "")
    assert comment_syntax("typescriptreact") == ("//", "")
    assert comment_syntax("lua") == ("--", "")
    assert comment_syntax("html") == ("<!--", " -->")
    assert comment_syntax("brainfuck") == ("//", "")


def test_note_document_chunk_around_cursor() -> None:
    extra = ExtraContext(document_lines=2)
    extra.note_document("file:///p/util.py", "python", UTIL_PY, 9)
    (chunk,) = extra.chunks
    lines = UTIL_PY.split("\n")
    assert chunk == ContextChunk(
        uri="file:///p/util.py",
        language_id="python",
        text="\n".join(lines[7:11]),  # line 11 is blank: trimmed
        start_line=7,
        end_line=11,
        focus_line=9,
    )


@pytest.mark.parametrize("line_break", ["\n", "\r\n", "\r"])
def test_an_edit_splits_only_the_lines_around_it(line_break: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # note_edit runs at every keystroke: splitting a 10,000-line file into lines each time cost ~5 ms.
    import lsp_server.text

    lines = [f"value_{i} = {i}" if i % 7 else "" for i in range(10_000)]
    doc = line_break.join(lines)
    split: list[int] = []  # the length of each text split into lines
    original = lsp_server.text.split_lines
    monkeypatch.setattr(lsp_server.text, "split_lines", lambda text: split.append(len(text)) or original(text))
    extra = ExtraContext(edit_lines=3)
    extra.note_edit("file:///p/a.py", "python", doc, 9_001)
    extra.note_edit("file:///p/b.py", "python", doc, 50_000)  # past the end: the last lines
    assert all(n < 1_000 for n in split)  # (the lines around the edit are found without any split)
    assert [(c.start_line, c.end_line, c.focus_line, c.text) for c in extra.chunks] == [
        (8_998, 9_005, 9_001, "\n".join(lines[8_998:9_005])),  # line 9002 is blank
        (9_997, 10_000, 9_999, "\n".join(lines[9_997:])),  # line 9996 is blank: trimmed
    ]


def test_blank_edges_trimmed_and_blank_chunk_ignored() -> None:
    extra = ExtraContext(document_lines=3)
    extra.note_document("file:///p/a.py", "python", "\n\n\nx = 1\n\n\n", 3)
    assert [c.text for c in extra.chunks] == ["x = 1"]
    extra.note_document("file:///p/b.py", "python", "\n\n\n", 1)
    assert len(extra.chunks) == 1


def test_dedup_same_uri_same_text_newest_wins() -> None:
    extra = ExtraContext()
    extra.note_document("file:///p/a.py", "python", "A = 1", 0)
    extra.note_document("file:///p/b.py", "python", "B = 2", 0)
    extra.note_document("file:///p/a.py", "python", "A = 1", 0)
    assert [c.uri for c in extra.chunks] == ["file:///p/b.py", "file:///p/a.py"]


def test_successive_edits_replace_overlapping_chunk() -> None:
    extra = ExtraContext(edit_lines=1)
    doc = "a = 1\nb = 2\nc = 3\nd = 4\n"
    extra.note_edit("file:///p/a.py", "python", doc, 1)
    extra.note_edit("file:///p/a.py", "python", doc.replace("b = 2", "b = 22"), 1)
    assert [c.text for c in extra.chunks] == ["a = 1\nb = 22\nc = 3"]
    # A far-away edit in the same file is a separate chunk.
    far = "\n".join(f"l{i} = {i}" for i in range(40))
    extra.note_edit("file:///p/a.py", "python", far, 30)
    assert len(extra.chunks) == 2


def test_contained_chunk_dropped() -> None:
    extra = ExtraContext(edit_lines=1)
    big = "def f():\n    a = 1\n    b = 2\n    return a + b"
    extra.note_document("file:///p/one.py", "python", big, 1)
    extra.note_edit("file:///p/two.py", "python", "    a = 1\n    b = 2", 0)  # inside big
    assert [c.uri for c in extra.chunks] == ["file:///p/one.py"]
    extra.note_document("file:///p/three.py", "python", "x", 0)
    extra.note_document("file:///p/four.py", "python", "x = 1\ny = 2", 0)  # contains three
    assert [c.uri for c in extra.chunks] == ["file:///p/one.py", "file:///p/four.py"]


def test_ring_buffer_bounded() -> None:
    extra = ExtraContext(max_chunks=3)
    for i in range(5):
        extra.note_document(f"file:///p/m{i}.py", "python", f"value_{i} = {i}", 0)
    assert [c.uri for c in extra.chunks] == [f"file:///p/m{i}.py" for i in (2, 3, 4)]
    extra.forget("file:///p/m3.py")
    assert [c.uri for c in extra.chunks] == ["file:///p/m2.py", "file:///p/m4.py"]


def test_render_golden_order_language_and_exclusion() -> None:
    extra = ExtraContext(roots=("file:///home/me/proj",))
    extra.note_document("file:///home/me/proj/util.py", "python", "def helper():\n    return 42", 0)
    extra.note_document("file:///home/me/proj/web/app.js", "javascript", "const x = 1;", 0)
    extra.note_document("file:///home/me/proj/models.py", "python", "class User:\n    name: str", 0)
    extra.note_document("file:///home/me/proj/main.py", "python", "import util", 0)
    out = extra.render("python", "file:///home/me/proj/main.py", words, 1000)
    assert out == (
        "# Path: util.py\n"
        "def helper():\n"
        "    return 42\n"
        "\n"
        "# Path: models.py\n"  # newest last: closest to the cursor
        "class User:\n"
        "    name: str\n"
        "\n"
    )
    js = extra.render("typescript", "file:///other.ts", words, 1000)  # same family
    assert js == "// Path: web/app.js\nconst x = 1;\n\n"
    assert extra.render("rust", "file:///x.rs", words, 1000) == ""


def test_render_budget_newest_first_and_trimmed_around_focus() -> None:
    extra = ExtraContext(document_lines=3)
    extra.note_document("file:///p/old.py", "python", "OLD = 1", 0)
    code = "\n".join(f"v{i} = {i}" for i in range(20))  # 3 words/line
    extra.note_document("file:///p/new.py", "python", code, 10)  # lines 7..13
    # Header "# Path: /p/new.py" = 3 words; budget 12 leaves 9 = 3 lines,
    # grown from the focus line downward first, then upward.
    out = extra.render("python", "file:///p/cur.py", words, 12)
    assert out == "# Path: /p/new.py\nv9 = 9\nv10 = 10\nv11 = 11\n\n"
    assert words(out) <= 12
    # A large budget takes both chunks, the newest closest to the cursor.
    out = extra.render("python", "file:///p/cur.py", words, 100)
    assert out.startswith("# Path: /p/old.py\nOLD = 1\n\n# Path: /p/new.py\nv7 = 7\n")
    assert out.endswith("v13 = 13\n\n")


@pytest.mark.parametrize("budget", [0, 3, 5, 9, 25, 60])
def test_render_respects_budget(budget: int) -> None:
    extra = ExtraContext(document_lines=4)
    for i in range(6):
        extra.note_document(f"file:///p/m{i}.py", "python", UTIL_PY.replace("math", f"m{i}"), 3 + i)
    out = extra.render("python", "file:///p/cur.py", quarter, budget)
    assert sum(quarter(line + "\n") for line in out.split("\n")[:-1]) <= budget
    assert quarter(out) <= budget
    if budget >= 25:
        assert out.count("# Path: ") >= 1


def test_windows_uri_path() -> None:
    extra = ExtraContext()
    extra.note_document("file:///c%3A/src/lib.c", "c", "int x;", 0)
    assert extra.render("cpp", "file:///c%3A/src/main.cpp", words, 50) == (
        "// Path: c:/src/lib.c\nint x;\n\n"
    )


def test_bound_method_counter_is_memoized_across_calls() -> None:
    class Tokenizer:
        def __init__(self) -> None:
            self.seen: list[str] = []

        def count_tokens(self, s: str) -> int:
            self.seen.append(s)
            return words(s)

    tok = Tokenizer()
    build_context(PY, len(PY) - 3, tok.count_tokens, prefix_tokens=100, suffix_tokens=10)
    first = len(tok.seen)
    # A fresh bound method object each access, but equal: same memo.
    build_context(PY, len(PY) - 3, tok.count_tokens, prefix_tokens=100, suffix_tokens=10)
    assert first > 0
    assert len(tok.seen) == first


def test_headers_relative_to_the_innermost_workspace_folder() -> None:
    extra = ExtraContext()
    extra.roots = ("file:///home/me/proj", "file:///home/me/proj/vendor/lib", "file:///home/me/other")
    extra.note_document("file:///home/me/proj/vendor/lib/core.py", "python", "A = 1", 0)
    extra.note_document("file:///home/me/other/pkg/util.py", "python", "B = 2", 0)
    extra.note_document("file:///opt/elsewhere/x.py", "python", "C = 3", 0)
    out = extra.render("python", "file:///home/me/proj/main.py", words, 100)
    assert out == "# Path: core.py\nA = 1\n\n# Path: pkg/util.py\nB = 2\n\n# Path: /opt/elsewhere/x.py\nC = 3\n\n"


def test_minified_lines_never_enter_a_chunk() -> None:
    bundle = ";".join(f"var a{i}=function(b){{return b*{i}}}" for i in range(200))  # one 6 KB line
    extra = ExtraContext()
    extra.note_document("file:///w/dist/app.min.js", "javascript", bundle + "\n//# sourceMappingURL=app.js.map", 0)
    extra.note_document("file:///w/src/mixed.js", "javascript", "const a = 1;\n" + bundle + "\nconst b = 2;", 2)
    assert [c.text for c in extra.chunks] == ["const b = 2;"]


def test_an_edit_beside_a_minified_line_never_copies_it() -> None:
    # A keystroke in (or beside) a 2 MB minified line notes no snippet of it: copying the line out and splitting
    # it first, to find that out, cost ~5 ms a keystroke.
    bundle = "var a=function(n){return n+1};" * 70_000
    doc = SlicedStr(f"function f(a) {{\n  return a;\n}}\n{bundle}\nconst x = 1;\n")
    extra = ExtraContext(edit_lines=3)
    extra.note_edit("file:///p/app.js", "javascript", doc, 3)  # in the bundle: nothing
    extra.note_edit("file:///p/app.js", "javascript", doc, 1)  # two lines above it: the lines up to it
    assert [c.text for c in extra.chunks] == ["function f(a) {\n  return a;\n}"]
    assert max(doc.sliced) < 1_000


@pytest.mark.parametrize("line_break", ["\n", "\r\n", "\r"])
def test_the_windows_of_a_big_file_are_cut_without_splitting_it(line_break: str) -> None:
    # A completion's windows hold a few hundred lines: splitting all 20,000 of the file into lines at every
    # request, to take those, cost more than the rest of building the prompt.
    import sys
    from types import FrameType

    lines = [f"    value_{i} = compute({i})" for i in range(20_000)]
    text = line_break.join(lines)
    offset = offset_at(text, 19_000, 10)
    splits: list[int] = []  # the length of each str split, -1 for a pattern's split (of a length unseen)

    def profile(frame: FrameType, event: str, arg: object) -> None:
        target = getattr(arg, "__self__", None)
        if event == "c_call" and getattr(arg, "__name__", "") == "split":
            splits.append(len(target) if isinstance(target, str) else -1)

    sys.setprofile(profile)
    try:
        ctx = build_context(text, offset, lambda s: len(s) // 4, prefix_tokens=400, suffix_tokens=200, snap_lines=8)
    finally:
        sys.setprofile(None)
    assert all(0 <= n < 1_000 for n in splits)
    assert ctx.prefix.endswith("\n".join(lines[ctx.prefix_start_line:19_000]) + "\n    value_")
    assert ctx.suffix == lines[19_000][10:] + "".join("\n" + line for line in lines[19_001:ctx.suffix_end_line + 1])
    assert 18_900 < ctx.prefix_start_line < 19_000 < ctx.suffix_end_line < 19_100
