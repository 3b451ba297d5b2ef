"""The Python target after an edit is found by parsing only the top-level statements the edit touched: it must be
the target a parse of the whole file finds, wherever the cursor and whatever the edit."""

from __future__ import annotations

import ast
import random
import sysconfig
from pathlib import Path

import pytest
import tree_sitter

from lsp_server.docstring import DocTarget, find_target, python_target, ts_util
from lsp_server.tools.keystrokes import python_file

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::SyntaxWarning")  # edited code


def whole_file_target(text: str, first: int, last: int) -> DocTarget | None:
    """The reference: the whole file parsed, as the server did before it parsed regions."""
    tree = parses(text)
    if tree is None:
        return python_target._find_with_tree_sitter(text, first, last)
    found = python_target._innermost(tree, first, last)
    return None if found is None else python_target._describe(text, *found)


# What edits are made of: characters that open and close strings, brackets and blocks, or continue lines.
PIECES = ['"""', "'''", '"', "(", ")", "[", "]", ":", "\\", "\n", "\n\n", "    ", "#", "def f(x):\n", "class C:\n",
          "@dec\n", "x = 1; y = 2\n", "    return x\n", "pass", " ", "\t", "\r\n", 'f"{x}"', "async def g():\n"]


def edited(rng: random.Random, text: str) -> tuple[str, int]:
    """`text` with a random edit, and the line it was made on."""
    at = rng.randrange(len(text) + 1)
    if rng.random() < 0.25:  # at a line's start, where top-level statements begin
        at = text.rfind("\n", 0, at) + 1
    kind = rng.random()
    if kind < 0.5:
        text = text[:at] + rng.choice(PIECES) + text[at:]
    elif kind < 0.8:
        text = text[:at] + text[at + rng.randrange(1, 80):]
    else:  # a line moved
        lines = text.split("\n")
        line = lines.pop(rng.randrange(len(lines)))
        lines.insert(rng.randrange(len(lines) + 1), line)
        text = "\n".join(lines)
        at = min(at, len(text))
    return text, text.count("\n", 0, at)


def parses(text: str) -> ast.Module | None:
    try:
        return ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def stdlib_files(count: int) -> list[Path]:
    files = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))
    small = [f for f in files if 2_000 < f.stat().st_size < 60_000]
    return random.Random(7).sample(small, count)


@pytest.mark.parametrize("path", stdlib_files(12), ids=lambda p: p.name)
def test_the_target_after_edits_is_the_whole_files(path: Path) -> None:
    rng = random.Random(path.name)
    text = path.read_text(encoding="utf-8")
    python_target._RECENT.clear()
    for _ in range(16):
        lines = text.count("\n") + 1
        near = [rng.randrange(lines) for _ in range(3)]
        for first in near + [min(lines - 1, n + d) for n in near for d in (-1, 1)]:
            first = max(first, 0)
            last = first + (rng.randrange(4) if rng.random() < 0.2 else 0)
            assert find_target(text, "python", first, last) == whole_file_target(text, first, last), (first, last)
        before = text
        text, line = edited(rng, text)
        for first in (line - 1, line, line + 1, rng.randrange(text.count("\n") + 1)):
            first = max(first, 0)
            assert find_target(text, "python", first) == whole_file_target(text, first, first), first
        if parses(text) is None and rng.random() < 0.75:
            text = before  # most edits that break the file are undone, so that most are parsed from the last


def test_an_edit_that_opens_a_string_is_read_as_the_whole_file_reads_it() -> None:
    python_target._RECENT.clear()
    text = 'def a():\n    return 1\n\n\nX = 1\n\n\ndef b(y):\n    return y\n\n\ndef c(z):\n    return z\n'
    assert find_target(text, "python", 8).name == "b"
    opened = text.replace("X = 1", 'X = """')  # b and c are now in a string that does not end: no def parses
    assert find_target(opened, "python", 8) == whole_file_target(opened, 8, 8)
    closed = opened.replace("    return z\n", '    return z\n"""\n')  # ... and one that ends: only a is a def
    assert find_target(closed, "python", 8) is None and find_target(closed, "python", 0).name == "a"
    continued = text.replace("X = 1", "X = 1 \\")  # the blank line after it ends the statement
    assert find_target(continued, "python", 8) == whole_file_target(continued, 8, 8)


def test_an_edit_in_a_big_file_parses_only_the_statements_around_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # The light bulb asks at every cursor move and after every edit: a 10,000-line file took ~90 ms to parse.
    # Without docstrings (the tool's have them), in a text no other test has parsed.
    text = python_file(10_000).replace("function_", "region_").replace('    """Compute', "    # Compute")
    parsed: list[int] = []
    parse = ast.parse

    def counted(source: str, *args: object, **kwargs: object) -> ast.AST:
        parsed.append(len(source.lstrip("\n")))  # the blank lines that place a group at its line are not text
        return parse(source, *args, **kwargs)

    monkeypatch.setattr(ast, "parse", counted)
    row = 9_000
    assert find_target(text, "python", row).name == "region_1800"
    assert sum(parsed) >= len(text)  # the first time: the whole file
    cut = text.index("def region_1800") + 4
    for k in range(5):
        parsed.clear()
        text = text[:cut] + "y" + text[cut:]  # an edit in region_1800's header, as the keystrokes tool makes
        target = find_target(text, "python", row)
        assert target is not None and target.name == f"{'y' * (k + 1)}region_1800"
        assert 0 < sum(parsed) < 400, parsed  # that function, and its group again to describe it


def whole_layout(text: str) -> tuple[list[int], list[int], list[tuple[int, int]]] | None:
    tree = parses(text)
    return None if tree is None else python_target._groups(text, 0, tree)


TRICKY = ('"""Module.\n\nUsage:\nrun it\n"""\n', "@dec\ndef f(x):\n    return x\n", "if x:\n    y = 1\nelse:\n    y = 2\n",
          "try:\n    pass\nexcept E:\n    pass\nfinally:\n    pass\n", "x = [\n1,\n2,\n]\n", "y = 1 + \\\n2\n",
          "s = '''\ndef not_a_def():\n'''\n", "match p:\n    case 1:\n        pass\n", "for i in r:\n    pass\nelse:\n    pass\n",
          "class C:\n    def m(self):\n        pass\n", "a = 1; b = 2\n", "# comment\n\n", "\f\nz = 3\n", "while 1:\n    break\n")


@pytest.mark.parametrize("part_lines", [1, 3])
def test_a_file_parsed_in_parts_reads_as_the_whole(monkeypatch: pytest.MonkeyPatch, part_lines: int) -> None:
    """The first parse of a file, part by part (so that the event loop is never held for a whole file's parse),
    finds the statements one parse of the whole finds; a file that does not parse does not."""
    monkeypatch.setattr(python_target, "_PART_LINES", part_lines)
    rng = random.Random(part_lines)
    texts = [path.read_text(encoding="utf-8") for path in stdlib_files(4)]
    texts += ["".join(rng.choice(TRICKY) for _ in range(30)) for _ in range(40)]
    for text in texts:
        for _ in range(6):
            layout = python_target._parsed_in_parts(text)
            expected = whole_layout(text)
            assert (None if layout.starts is None else (layout.starts, layout.ends, layout.chars)) == expected
            text = edited(rng, text)[0]


JOINING = 'def a():\n    return 1\n\n\nif X:\n    pass\ny = 2\n\n\ntry:\n    pass\nexcept E:\n    pass\nz = 3\n'


@pytest.mark.parametrize("edit", [("y = 2", "else:\n    y = 2"), ("\ny = 2", "\n    y = 2"),
                                  ("z = 3", "finally:\n    z = 3"), ("\nz = 3", "\n    z = 3"),
                                  ("\n\n\nif X", "\n    x = 0\nif X")])
def test_an_edit_that_goes_on_with_the_statement_above_is_read_as_the_whole_file_reads_it(
        edit: tuple[str, str]) -> None:
    # The edited lines do not parse alone (`else:` without its `if`, an indented line), the whole text does: the
    # text is read from the statement above them, not from them.
    python_target._RECENT.clear()
    assert find_target(JOINING, "python", 0).name == "a"  # what the edited text is parsed from
    text = JOINING.replace(*edit)
    layout = python_target._layout(text)
    assert (layout.starts, layout.ends, layout.chars) == whole_layout(text)
    for line in range(text.count("\n")):
        assert find_target(text, "python", line) == whole_file_target(text, line, line), line


def broken_big_file() -> tuple[str, int]:
    """A 10,000-line file that parses (in a text no other test has parsed), and a def's line near its end, where
    the user is about to type an unclosed parenthesis (after its `return`)."""
    text = python_file(10_000).replace("function_", "broken_").replace('    """Compute', "    # Compute")
    return text, text.split("\n").index("def broken_1800(alpha, beta, gamma):")


def test_typing_in_a_file_that_does_not_parse_parses_only_from_the_edit_on(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each keystroke parsed the whole file again (in parts) to learn that it does not parse: 40 ms of a 10,000-line
    # file broken near its end, at every keystroke, for the lines above the edit that had not changed.
    text, row = broken_big_file()
    assert find_target(text, "python", row).name == "broken_1800"  # the file's first parse: what later ones start from
    parsed: list[str] = []
    parse = ast.parse

    def counted(source: str, *args: object, **kwargs: object) -> ast.AST:
        parsed.append(source.strip("\n"))  # less the blank lines that place a part at its lines
        return parse(source, *args, **kwargs)

    monkeypatch.setattr(ast, "parse", counted)
    lines = text.split("\n")
    lines.insert(row + 4, "    x = call(")
    for k in range(4):
        lines[row + 4] += "ab"[k % 2]
        broken = "\n".join(lines)
        parsed.clear()
        found = find_target(broken, "python", row)
        # Only text from about the edit on, 90% down the file: the lines above it are as when last parsed.
        assert parsed and min(broken.index(part) for part in parsed) > len(broken) * 8 // 10
        assert found == whole_file_target(broken, row, row) and found is not None


class CountedParser:
    """The Python grammar's parser, noting for each parse whether it was from an older tree."""

    def __init__(self) -> None:
        parser = ts_util._parser("python")
        assert parser is not None
        self.parser = parser
        self.given: list[bool] = []

    def parse(self, data: bytes, old_tree: tree_sitter.Tree | None = None) -> tree_sitter.Tree:
        self.given.append(old_tree is not None)
        return self.parser.parse(data, old_tree) if old_tree is not None else self.parser.parse(data)


def test_typing_in_a_file_that_does_not_parse_parses_its_tree_once_a_keystroke(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each keystroke's tree was parsed from the last one's (with an error in it), had an error too and was parsed
    # again from scratch: 7-30 ms of a 10,000-line file for nothing, holding the GIL and so the event loop.
    text, row = broken_big_file()
    text = text.replace("broken_", "typed_")
    counted = CountedParser()
    monkeypatch.setattr(ts_util, "_parser", lambda language_id: counted)
    monkeypatch.setitem(ts_util._TREES, "python", [])  # none from other tests
    lines = text.split("\n")
    lines.insert(row + 4, "    x = call(")
    for k in range(4):
        lines[row + 4] += "ab"[k % 2]
        broken = "\n".join(lines)
        found = find_target(broken, "python", row)
        assert found is not None and found == whole_file_target(broken, row, row)
    assert counted.given == [False] * 4


def test_a_cursor_move_in_a_file_that_does_not_parse_parses_nothing_anew(monkeypatch: pytest.MonkeyPatch) -> None:
    # The light bulb asks at every cursor move: the text's layout and tree are those of the last request; only the
    # lines of the def found are parsed again, to describe it.
    text, row = broken_big_file()
    lines = text.replace("broken_", "moved_").split("\n")
    lines.insert(row + 4, "    x = call(")
    broken = "\n".join(lines)
    assert find_target(broken, "python", row).name == "moved_1800"
    counted = CountedParser()
    monkeypatch.setattr(ts_util, "_parser", lambda language_id: counted)
    parsed: list[str] = []
    parse = ast.parse

    def noted(source: str, *args: object, **kwargs: object) -> ast.AST:
        parsed.append(source.strip("\n"))
        return parse(source, *args, **kwargs)

    monkeypatch.setattr(ast, "parse", noted)
    for line in (n for n in range(row - 20, row + 4) if n % 5 != 4):  # not the blank lines between defs
        parsed.clear()
        found = find_target(broken, "python", line)
        assert found is not None and found.name == f"moved_{line // 5}"
        assert counted.given == [] and 0 < len(parsed) <= 2, parsed
        assert all(p.startswith(f"def {found.name}(") for p in parsed), parsed  # the def's lines (and those after)
