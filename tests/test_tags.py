"""Markup around the cursor (lsp_server/tags.py): told from generics and comparisons, and where a completion
between tags or in an attribute's value ends."""

from __future__ import annotations

import pytest

from lsp_server.tags import closing_tag_at, in_empty_element, in_markup, markup_end, opening_tag, opening_tag_at_end


@pytest.mark.parametrize(("language", "suffix", "expected"), [
    ("html", "\n", True),
    ("typescriptreact", "();\n", True),
    ("vue", "", True),
    ("javascript", "</div>\n", True),  # JSX in a .js file: the closing tag says so
    ("javascript", '"></p>;\n', True),
    ("python", "\n  </ul>\n", True),  # HTML in a string
    ("javascript", "\n\n  </>\n);\n", True),
    ("cpp", "> v;\n", False),
    ("typescript", ">();\n", False),
    ("cpp", "\n  return a < b && c > d;\n", False),
    ("rust", "\n}\n", False),
])  # fmt: skip
def test_in_markup(language: str, suffix: str, expected: bool) -> None:
    assert in_markup(language, suffix) is expected


@pytest.mark.parametrize(("line", "name"), [
    ("<ul>", "ul"),
    ("  <div className=\"app\">", "div"),
    ("    <button onClick={() => setOpen(!open)}>", "button"),  # `=>` in braces is no tag end
    ('<div :class="{ active: n > 0 }">', "div"),
    ("return (<>", ""),
    ("<li><a href=\"/\">", "a"),
    ("<Foo render={() => <Bar />}>", "Foo"),
    ("<Route render={() => <p>Don't</p>}>", "Route"),  # the apostrophe is the element's text, no string
    ("<svg:g>", "svg:g"),
    ('  return `<div class="card">', "div"),  # HTML in a template literal
    ('<div class="container"> <!-- main wrapper -->', "div"), ("<main><!-- a --><!-- b -->", "main"),  # notes after
    ('<Link href="/about">', "Link"), ("<Col span={12}>", "Col"),  # JSX components named like void elements
    # A TSX generic arrow's type parameters in an attribute's expression are no tag.
    ("<Table rowKey={<T extends Row>(r: T) => r.id}>", "Table"), ("<Foo init={<T = unknown>(x: T) => x}>", "Foo"),
    ("<template>", "template"),
    # Not an element's opening tag that the next lines fill:
    ("<br>", None), ("<BR>", None), ("<img src=\"a.png\">", None), ("<Icon />", None), ("<b>bold</b>", None),
    ("</div>", None), ("<!DOCTYPE html>", None), ('<?xml version="1.0"?>', None),
    ("<!-- <section> -->", None), ("<br> <!-- gap -->", None), ("<b>bold</b> <!-- x -->", None),
    # Generics and comparisons: a name right before `<`, or no name right after it.
    ("std::vector<int>", None), ("Map<string, number>", None), ("x<y>", None), ("function id<T>", None),
    ("const f = <T,>", None), ("if (a < b) x = c >", None), ("a <= b >", None),
])  # fmt: skip
def test_opening_tag_at_end(line: str, name: str | None) -> None:
    assert opening_tag_at_end(line) == name


@pytest.mark.parametrize(("above", "line", "expected"), [
    # A tag whose attributes take lines of their own: the element, and the line its tag starts on.
    ('<div\n  className="x"\n', ">", ("div", "<div")),
    ("  <a\n    href=\"/x\"\n", '    title="y">', ("a", "  <a")),
    ("<Route\n  render={() => <p>Don't</p>}\n  path=\"/\"\n", ">", ("Route", "<Route")),
    ("<ul>\n  <li\n    key={1}\n", "  >", ("li", "  <li")),
    # Not: a void element, a self-closing tag, a tag closed above, code, the line's own tag.
    ("<input\n  type=\"text\"\n", ">", None), ("<Foo\n  a={1}\n", "/>", None), ("<p>x</p>\n", ">", None),
    ("if (a\n  && b\n", "  >", None),
    ("<div\n", '  <span a="1">', ("span", '  <span a="1">')),
])  # fmt: skip
def test_opening_tag_begun_above(above: str, line: str, expected: tuple[str, str] | None) -> None:
    assert opening_tag(line, above) == expected
    assert opening_tag(line) == (expected if expected is not None and expected[1] == line else None)


@pytest.mark.parametrize(("before", "after", "expected"), [
    ("  <ul>", "</ul>", True), ("<div className=\"x\">", "</div>);", True), ("<>", "</>", True),
    ("<p> ", " </p>", True),
    ("<ul>", "</ol>", False), ("<p>Hi ", "</p>", False), ("std::vector<int>", "</x>", False),
])  # fmt: skip
def test_in_empty_element(before: str, after: str, expected: bool) -> None:
    assert in_empty_element(before, after) is expected


@pytest.mark.parametrize(("text", "expected"), [("</div>", "div"), ("  </Foo.Bar >x", "Foo.Bar"), ("</>", ""),
                                                ("<div>", None), ("> v;", None), ("", None)])
def test_closing_tag_at(text: str, expected: str | None) -> None:
    assert closing_tag_at(text) == expected


@pytest.mark.parametrize(("line_before", "rest", "text", "kept"), [
    # Between tags: before the closing tag the rest of the line has, blanks before it too.
    ("  <div>", "</div>", "Hello</div><span>x</span>", "Hello"),
    ("  <li>", "</li>", "{item.name} </li>", "{item.name}"),
    ("  <div>", "</div>", "<div>a</div><div>b</div></div>", "<div>a</div><div>b</div>"),  # its own divs
    ("  <div>", "</div>", "<div/>a</div>", "<div/>a"),
    ("  <div>", "</div>", "\n    <h1>Hi</h1>\n  </div>\n);", "\n    <h1>Hi</h1>\n"),
    ("return <>", "</>", "<A /></>", "<A />"),
    ("  <div>", "</div>", "Hello", "Hello"),  # nothing to cut
    # In a value: before the quote or brace that closes it, when the rest of the line is more than closers.
    ('<p className="', '"></p>;', 'text-lg">Hello</p>;', "text-lg"),
    ("<button onClick={", "}></button>", "() => go(1)}>Go</button>", "() => go(1)"),
    ("<div>{", "}</div>", "xs.map((x) => <li>{x}</li>)}</div>", "xs.map((x) => <li>{x}</li>)"),
    ("<p>Don't <a href=\"", '">x</a>', '/home">Home</a>', "/home"),  # the text's apostrophe opens no string
    ("  onChange={(e) => set(", ")} />", "e.target.value)} />", "e.target.value"),
    # An element in an attribute's expression: its text is no code, the tag's other values are cut as any.
    ('<Route render={() => <p>Don\'t</p>} path="', '" />;', '/home" exact />;', "/home"),
    ("<Foo render={() => <p>Don't {x}</p>} onClick={", "} />", "go} />", "go"),
    ("<Foo render={", "} />", "() => <p>Don't</p>} />", "() => <p>Don't</p>"),  # the model's own text too
    ("<Foo title={`a ${b} ", "`} />", "c`} />", "c"),  # a template literal, a field in it
    ("<Foo onClick={() => go() /* it's */} title=\"", '" />', 'a" b />', "a"),  # a comment
    ("<Foo html={'<p>'} show={a < b && 'x'} title=\"", '" />', 'a" b />', "a"),  # a string, a comparison
    ("<Foo value={useState<string>(\"it's\")} title=\"", '" />', 'a" b />', "a"),  # a generic
    # A script's or a style's content is code, not an element's text: its strings are strings (`</div>` too).
    ('  <script>window.API_URL = "', '";</script>', 'https://api.example.com/v1";', "https://api.example.com/v1"),
    ('<script>if (a < b) { x = "<p>" + m + "</p>"; } document.title = "', '";</script>', 'Shop";', "Shop"),
    ('<p>Hi</p><script>const close = "', '";</script>', '</div>";', "</div>"),
    ('<style>@import "', '";</style>', 'theme.css";', "theme.css"),
    # HTML in a JavaScript template literal: the backtick before the tag is no name's end.
    ('  return `<a href="${url}" class="', '">${label}</a>`;', 'nav-link">${icon} ${label}</a>`;', "nav-link"),
    ("<List render={<T extends User>(u: T) => u.name} title=\"", '" onSelect={go} />', 'Users" />', "Users"),
    ("<List render={<T = User>(u: T) => u.name} title=\"", '" onSelect={go} />', 'Users" />', "Users"),
    ("<Foo render={() => <p>Don't</p>} title=\"", '" />', "it's\" />", "it's"),
    ("  <b>x</b> isn't <a href=\"", '">x</a>', '/home">Home</a>', "/home"),  # text after an element, the line's
    ("  Don't <b>x</b> <a href=\"", '">x</a>', '/home">Home</a>', "/home"),  # element opened on an earlier line
    ("<p>if a<b it's <a href=\"", '">x</a>', '/home">Home</a>', "/home"),  # `<` after a word is text, no tag
    ('  :class="', '" @click="go">', "{ active }\" :key=\"k\">", "{ active }"),  # Vue, one attribute a line
    # Not in a tag, an expression in content or an attribute: code (a TSX file's, a Vue file's script).
    ("  return foo(", ") + bar;", "a).then(f) + bar;", "a).then(f) + bar;"),
    ("  const s = \"", '" + name;', 'Hi" + user;', 'Hi" + user;'),
    # Only closers right of the cursor: the completion types over them (closers.py), nothing is cut.
    ('<p className="', '">', 'a">Hi</p>', 'a">Hi</p>'),
    # Nothing open at the cursor, or the first closer is another: no cut.
    ("<p>Hi ", '"x"</p>', 'a" b', 'a" b'),
    ('<p title="', '"></p>', "a) b", "a) b"),
])  # fmt: skip
def test_markup_end(line_before: str, rest: str, text: str, kept: str) -> None:
    end = markup_end(text, line_before, rest)
    assert text[:end] == kept
