"""A stateful fuzzer against one long-lived server process (the demo model, on the CPU).

Hypothesis drives random sessions: documents opened with any text (CRLF, lone CR, tabs, emoji, combining
marks, NUL, lone surrogates, long lines), incremental edits over any range (past the line's or the
document's end, reversed, splitting a surrogate pair or a UTF-8 sequence), full replacements, inline and
menu completions at any position, code actions and their resolution (accepted into the document), requests
cancelled or followed at once by an edit, settings right and wrong, closing and re-opening, a notebook's
cells edited, inserted and removed. The client keeps
its own copy of every document by LSP's rules, written out here rather than taken from the server, and
checks:

- every request gets exactly one response, in time, and stdout carries nothing but framed JSON-RPC;
- every range in an answer lies in the document as it was when the request was sent, on code-unit
  boundaries; an inline completion starts at the cursor and replaces only closers it also types;
- a code action's edit applies cleanly;
- the server logs no internal error and shows no error popup;
- at the end of each session the server's view of each document equals the client's: a fresh copy of the
  client's text gets the same code actions on every line and the same completions.

Derandomized and without a database, so CI runs the same sessions every time (CODELLAMA_FUZZ_SESSIONS runs
new ones); nothing here times the server (the bound on a response only catches a server that stopped
answering).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from lsp_server.framing import frame
from tests.wire import Wire

# CI runs a few fixed sessions. CODELLAMA_FUZZ_SESSIONS=N runs N new random ones instead, without shrinking a
# failure (each step is a round trip to the server: shrinking takes many minutes); the failing steps are printed.
_SESSIONS = int(os.environ.get("CODELLAMA_FUZZ_SESSIONS", "0"))
RUN = ({"max_examples": _SESSIONS, "derandomize": False, "phases": [Phase.explicit, Phase.generate]} if _SESSIONS
       else {"max_examples": 6, "derandomize": True})
REPLY_S = 60  # "still answering", generously: a loaded CI machine must never fail this
CANCELLED = -32800
# Deterministic answers: no other files in the prompt, no wall-clock cut; short completions of several lines.
BASELINE = {"extraContext": False, "timeBudgetMs": 600_000, "maxTokens": 24, "maxTokensSingleLine": 16,
            "invokedSuggestions": 2, "enabled": True, "disabledLanguages": [], "debounceMs": 0,
            "linePolicy": "multi", "fimMode": "spm", "prefixTokens": 1024, "suffixTokens": 256,
            "docstringStyle": "google", "temperature": 0}
LINE_BREAK = re.compile(r"\r\n|\r|\n")
CLOSERS = ")]}\"'`"
PIECES = ["def f(x):", "\n    return x", "class C:", "\n    pass", "(", ")", "[", "]", "{", "}", '"', "'", ":",
          " ", "    ", "\t", "\n", "\n", "\r\n", "\r", "😀", "𝔘", "e\u0301", "\u0301", "\x00", "\f", "\u2028",
          "\x85", "#", "a", "é", "\ud800", "\udc00", "x" * 300, "return ", "\n\ndef g(a, b):\n    "]
texts = st.lists(st.sampled_from(PIECES), max_size=24).map("".join)
LANGUAGES = ["python", "python", "javascript", "go", "plaintext"]


def on_the_wire(text: str) -> str:
    """`text` as the server receives it: JSON joins an escaped pair of surrogates into one character, and
    the server replaces a lone surrogate by U+FFFD."""
    return re.sub("[\ud800-\udfff]", "\ufffd", json.loads(json.dumps(text)))


def width(ch: str, encoding: str) -> int:
    return len(ch.encode("utf-16-le" if encoding == "utf-16" else encoding, "surrogatepass")) // (
        2 if encoding == "utf-16" else 4 if encoding == "utf-32" else 1)


class Mirror:
    """The client's copy of a document, by LSP's rules."""

    def __init__(self, text: str, language: str, encoding: str) -> None:
        self.text, self.language, self.encoding, self.version = on_the_wire(text), language, encoding, 1

    def spans(self) -> list[tuple[int, int]]:
        """(start, end) code-point offsets of each line, without its line break."""
        spans, start = [], 0
        for m in LINE_BREAK.finditer(self.text):
            spans.append((start, m.start()))
            start = m.end()
        return [*spans, (start, len(self.text))]

    def offset(self, line: int, character: int) -> int:
        """A position's offset: a line past the end is the end, a character past the line's end is its end,
        and one inside a character (half a surrogate pair) is that character's start (as VS Code has it)."""
        spans = self.spans()
        if line >= len(spans):
            return len(self.text)
        i, end = spans[line]
        units = 0
        while i < end and units + width(self.text[i], self.encoding) <= character:
            units += width(self.text[i], self.encoding)
            i += 1
        return i

    def position(self, offset: int) -> dict[str, int]:
        for line, (start, end) in enumerate(self.spans()):
            if offset <= end:
                return {"line": line, "character": sum(width(c, self.encoding) for c in self.text[start:offset])}
        raise AssertionError(offset)

    def at(self, position: dict[str, int]) -> int:
        """The offset of a position the server sent, which must be a real place in the document."""
        line, character = position["line"], position["character"]
        spans = self.spans()
        assert 0 <= line < len(spans), f"line {line} of a {len(spans)}-line document"
        offset = self.offset(line, character)
        assert self.position(offset) == position, f"{position} is past its line's end or inside a character"
        return offset

    def span(self, rng: dict[str, Any]) -> tuple[int, int]:
        start, end = self.at(rng["start"]), self.at(rng["end"])
        assert start <= end, rng
        return start, end

    def edit(self, start: int, end: int, new: str) -> None:
        self.text = self.text[:start] + on_the_wire(new) + self.text[end:]


def strict_frames(raw: bytes) -> int:
    """The number of messages in `raw`, which must be framed JSON-RPC and nothing else."""
    count, at = 0, 0
    header = re.compile(rb"Content-Length: (\d+)\r\n(?:Content-Type: [^\r\n]*\r\n)?\r\n")
    while at < len(raw):
        m = header.match(raw, at)
        assert m, f"not a header at byte {at} of stdout: {raw[at:at + 80]!r}"
        body = raw[m.end():m.end() + int(m.group(1))]
        assert json.loads(body)["jsonrpc"] == "2.0"
        at, count = m.end() + int(m.group(1)), count + 1
    return count


@pytest.fixture(scope="module", params=["utf-16", "utf-8"])
def server(request: pytest.FixtureRequest) -> Iterator[tuple[Wire, str]]:
    """A loaded server, and the position encoding it was given (UTF-16, LSP's default, or UTF-8)."""
    wire = Wire()
    wire.initialize({"general": {"positionEncodings": [request.param]},
                     "textDocument": {"inlineCompletion": {},
                                      "codeAction": {"dataSupport": True, "resolveSupport": {"properties": ["edit"]}}}},
                    load=True, options=BASELINE)
    wire.wait_ready()
    yield wire, request.param
    wire.kill()


junk = st.one_of(st.lists(st.none(), min_size=1, max_size=2), st.dictionaries(st.text(max_size=3), st.integers(),
                                                                               max_size=2))
SAFE = {"maxTokens": st.integers(1, 32), "maxTokensSingleLine": st.integers(1, 24),
        "linePolicy": st.sampled_from(["auto", "single", "multi", "MULTI "]),
        "fimMode": st.sampled_from(["psm", "spm"]), "prefixTokens": st.integers(0, 2048),
        "suffixTokens": st.integers(0, 512), "invokedSuggestions": st.integers(1, 3),
        "docstringStyle": st.sampled_from(["google", "numpy", "sphinx", "plain"]), "enabled": st.booleans(),
        "disabledLanguages": st.lists(st.sampled_from(LANGUAGES)), "debounceMs": st.integers(0, 20),
        "extraContext": st.booleans(), "extraContextTokens": st.integers(0, 300),
        "temperature": st.floats(0, 2) | st.text(max_size=3)}
NAMES = [*SAFE, "model", "device", "dtype", "quant", "kernel", "contextLength", "backend", "remoteUrl", "maxTokenz", ""]
settings_values = st.one_of(
    st.fixed_dictionaries({}, optional={k: v | st.none() for k, v in SAFE.items()}),
    st.dictionaries(st.sampled_from(NAMES), junk, max_size=4),
    st.dictionaries(st.sampled_from(NAMES), junk, max_size=2).map(lambda d: {"codellama": d}),
    st.dictionaries(st.sampled_from(list(SAFE)), st.integers(-5, 5) | st.text(max_size=4), max_size=3).map(
        lambda d: {f"codellama.{k}": v for k, v in d.items()}),
    st.sampled_from([None, [], "codellama", 5, {"codellama": 5}, {}]))


class Session(RuleBasedStateMachine):
    """One editing session: up to three documents, each edited, completed and closed at random."""

    wire: Wire
    encoding: str
    count = 0

    def __init__(self) -> None:
        super().__init__()
        Session.count += 1
        self.n = Session.count
        self.docs: dict[str, Mirror] = {}
        self.closed: dict[str, Mirror] = {}
        self.notebook = f"file:///fuzz/s{self.n}/book.ipynb"
        self.cells: list[str] = []  # the open notebook's cells, in order (their texts are in `docs`)
        self.cell_count = 0
        self.notebook_version = 0

    # -- helpers ------------------------------------------------------------------------------------------
    def uri(self, slot: int, language: str = "python") -> str:
        suffix = {"python": "py", "javascript": "js", "go": "go"}.get(language, "txt")
        return ["file:///fuzz/s%d/a.%s", "file:///fuzz/s%d/b%%20c.%s", "untitled:Untitled-%d.%s"][slot] % (
            self.n, suffix)

    def answer(self, msg_id: int) -> dict[str, Any]:
        reply = self.wire.response(msg_id, REPLY_S)
        assert self.wire.answers[msg_id] == 1
        assert "error" not in reply or reply["error"]["code"] == CANCELLED, reply
        return reply

    def change(self, uri: str, changes: list[dict[str, Any]]) -> dict[str, Any]:
        mirror = self.docs[uri]
        mirror.version += 1
        if uri in self.cells:  # a cell's text changes as part of its notebook
            self.notebook_version += 1
            return {"jsonrpc": "2.0", "method": "notebookDocument/didChange", "params": {
                "notebookDocument": {"uri": self.notebook, "version": self.notebook_version},
                "change": {"cells": {"textContent": [{"document": {"uri": uri, "version": mirror.version},
                                                      "changes": changes}]}}}}
        return {"jsonrpc": "2.0", "method": "textDocument/didChange",
                "params": {"textDocument": {"uri": uri, "version": mirror.version}, "contentChanges": changes}}

    def ranged(self, uri: str, data: st.DataObject) -> dict[str, Any]:
        """A random range in `uri`, and the change of its text; applied to the mirror."""
        mirror = self.docs[uri]
        spans = mirror.spans()

        def position() -> dict[str, int]:
            line = data.draw(st.integers(0, len(spans)))  # one past the end, sometimes
            start, end = spans[min(line, len(spans) - 1)]
            units = sum(width(c, mirror.encoding) for c in mirror.text[start:end])
            return {"line": line, "character": data.draw(st.integers(0, units + 2))}

        rng = {"start": position(), "end": position()}
        new = data.draw(texts)
        start, end = (mirror.offset(**rng["start"]), mirror.offset(**rng["end"]))
        mirror.edit(min(start, end), max(start, end), new)
        return {"range": rng, "text": new}

    def request(self, method: str, params: Any, then: list[dict[str, Any]] = ()) -> int:
        """Send a request, and `then` notifications in the same write (the server reads them together)."""
        self.wire._next_id += 1
        msg_id = self.wire._next_id
        messages = [{"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params}, *then]
        self.wire.send_bytes(b"".join(frame(json.dumps(m).encode()) for m in messages))
        return msg_id

    def check_suggestion(self, mirror: Mirror, asked: dict[str, int], text: str, rng: dict[str, Any]) -> None:
        start, end = mirror.span(rng)
        assert start == mirror.offset(**asked), (rng, asked)  # at the cursor (clamped into the document)
        assert text, rng
        replaced = mirror.text[start:end]
        assert not LINE_BREAK.search(replaced), replaced
        closers = iter(text)
        assert all(c in closers for c in replaced if c in CLOSERS), (text, replaced)  # types them over
        breaks = set(LINE_BREAK.findall(text))
        first = LINE_BREAK.search(mirror.text)
        assert breaks <= {first.group() if first else "\n"}, (text, breaks)  # the document's line break

    # -- rules --------------------------------------------------------------------------------------------
    @initialize()
    def start(self) -> None:
        assert self.wire.proc.poll() is None

    @rule(slot=st.integers(0, 2), text=texts, language=st.sampled_from(LANGUAGES))
    def open(self, slot: int, text: str, language: str) -> None:
        uri = self.uri(slot, language)
        if any(u.rsplit(".", 1)[0] == uri.rsplit(".", 1)[0] for u in self.docs):
            return
        self.closed.pop(uri, None)
        self.wire.open(uri, text, language)
        self.docs[uri] = Mirror(text, language, self.encoding)

    @rule(data=st.data())
    def reopen(self, data: st.DataObject) -> None:
        if self.closed:
            uri = data.draw(st.sampled_from(sorted(self.closed)))
            mirror = self.closed.pop(uri)
            self.wire.open(uri, mirror.text, mirror.language)
            mirror.version = 1
            self.docs[uri] = mirror

    def new_cell(self, text: str, code: bool) -> tuple[dict[str, Any], dict[str, Any]]:
        """A cell and its text document, kept in the mirror."""
        self.cell_count += 1
        uri = f"vscode-notebook-cell:/fuzz/s{self.n}/book.ipynb#C{self.cell_count}"
        language = "python" if code else "markdown"
        self.docs[uri] = Mirror(text, language, self.encoding)
        return {"kind": 2 if code else 1, "document": uri}, {"uri": uri, "languageId": language, "version": 1,
                                                             "text": text}

    @rule(cells=st.lists(st.tuples(texts, st.booleans()), min_size=1, max_size=3))
    def open_notebook(self, cells: list[tuple[str, bool]]) -> None:
        if self.cells:
            return
        made = [self.new_cell(text, code) for text, code in cells]
        self.cells = [cell["document"] for cell, _ in made]
        self.notebook_version = 1
        self.wire.notify("notebookDocument/didOpen", {
            "notebookDocument": {"uri": self.notebook, "notebookType": "jupyter-notebook", "version": 1,
                                 "cells": [cell for cell, _ in made]},
            "cellTextDocuments": [item for _, item in made]})

    @rule(data=st.data(), text=texts, code=st.booleans(), insert=st.booleans())
    def notebook_structure(self, data: st.DataObject, text: str, code: bool, insert: bool) -> None:
        """A cell inserted, or one removed, anywhere in the notebook."""
        if not self.cells:
            return
        self.notebook_version += 1
        at = data.draw(st.integers(0, len(self.cells) - (0 if insert else 1)))
        if insert:
            cell, item = self.new_cell(text, code)
            structure = {"array": {"start": at, "deleteCount": 0, "cells": [cell]}, "didOpen": [item]}
            self.cells.insert(at, cell["document"])
        else:
            gone = self.cells.pop(at)
            del self.docs[gone]
            structure = {"array": {"start": at, "deleteCount": 1}, "didClose": [{"uri": gone}]}
        self.wire.notify("notebookDocument/didChange", {
            "notebookDocument": {"uri": self.notebook, "version": self.notebook_version},
            "change": {"cells": {"structure": structure}}})

    def close_notebook(self) -> None:
        if self.cells:
            self.wire.notify("notebookDocument/didClose", {"notebookDocument": {"uri": self.notebook},
                                                           "cellTextDocuments": [{"uri": u} for u in self.cells]})
            for uri in self.cells:
                del self.docs[uri]
            self.cells = []

    @rule(data=st.data())
    def close(self, data: st.DataObject) -> None:
        if self.docs.keys() - set(self.cells):
            uri = data.draw(st.sampled_from(sorted(self.docs.keys() - set(self.cells))))
            self.wire.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
            self.closed[uri] = self.docs.pop(uri)

    @rule(data=st.data(), count=st.integers(1, 3))
    def edit(self, data: st.DataObject, count: int) -> None:
        if self.docs:
            uri = data.draw(st.sampled_from(sorted(self.docs)))
            changes = [self.ranged(uri, data) for _ in range(count)]
            self.wire.send(self.change(uri, changes))

    @rule(data=st.data(), text=texts)
    def replace_all(self, data: st.DataObject, text: str) -> None:
        if self.docs:
            uri = data.draw(st.sampled_from(sorted(self.docs)))
            self.docs[uri].text = on_the_wire(text)
            self.wire.send(self.change(uri, [{"text": text}]))

    @rule(data=st.data(), invoked=st.booleans(), menu=st.booleans(), then_edit=st.booleans(), cancel=st.booleans())
    def complete(self, data: st.DataObject, invoked: bool, menu: bool, then_edit: bool, cancel: bool) -> None:
        """An inline completion (or the completion menu's), maybe cancelled, maybe followed at once by an edit."""
        if not self.docs:
            return
        uri = data.draw(st.sampled_from(sorted(self.docs)))
        mirror = self.docs[uri]
        spans = mirror.spans()
        line = data.draw(st.integers(0, len(spans)))
        start, end = spans[min(line, len(spans) - 1)]
        line_end = sum(width(c, mirror.encoding) for c in mirror.text[start:end])
        # At the end of a line most often, as a user types: where suggestions of several lines come.
        asked = {"line": line, "character": data.draw(st.just(line_end) | st.integers(0, line_end + 2))}
        before = Mirror.__new__(Mirror)
        before.__dict__.update(mirror.__dict__)  # the document as the request sees it
        then = [self.change(uri, [self.ranged(uri, data)])] if then_edit else []
        if cancel:
            then.append({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": self.wire._next_id + 1}})
        if menu:
            msg_id = self.request("textDocument/completion", {"textDocument": {"uri": uri}, "position": asked,
                                                             "context": {"triggerKind": 1 if invoked else 2,
                                                                         "triggerCharacter": None if invoked else "("}},
                                  then)
        else:
            msg_id = self.request("textDocument/inlineCompletion", {
                "textDocument": {"uri": uri}, "position": asked, "context": {"triggerKind": 1 if invoked else 2}}, then)
        reply = self.answer(msg_id)
        result = reply.get("result")
        if result is None:
            return
        if menu:
            for item in result["items"]:
                edit = item["textEdit"]
                self.check_suggestion(before, asked, edit["newText"], edit["range"])
                assert item["filterText"] == LINE_BREAK.split(edit["newText"])[0]
        else:
            for item in result["items"]:
                self.check_suggestion(before, asked, item["insertText"], item["range"])
            if result["items"] and not then_edit and data.draw(st.booleans()):  # accepted
                item = result["items"][0]
                self.wire.send(self.change(uri, [{"range": item["range"], "text": item["insertText"]}]))
                mirror.edit(*mirror.span(item["range"]), item["insertText"])

    @rule(data=st.data(), accept=st.booleans())
    def code_action(self, data: st.DataObject, accept: bool) -> None:
        if not self.docs:
            return
        uri = data.draw(st.sampled_from(sorted(self.docs)))
        mirror = self.docs[uri]
        lines = len(mirror.spans())
        first, last = data.draw(st.integers(0, lines)), data.draw(st.integers(0, lines))
        rng = {"start": {"line": first, "character": 0},
               "end": {"line": last, "character": data.draw(st.integers(0, 9))}}
        actions = self.answer(self.request("textDocument/codeAction", {
            "textDocument": {"uri": uri}, "range": rng, "context": {"diagnostics": [], "triggerKind": 1}}))["result"]
        for action in actions or ():
            assert action["title"].startswith("Generate docstring for "), action
            resolved = self.answer(self.request("codeAction/resolve", action))["result"]
            edit = resolved.get("edit")
            if edit is None:
                continue
            assert list(edit["changes"]) == [uri], edit
            text_edits = edit["changes"][uri]
            spans = [mirror.span(e["range"]) for e in text_edits]  # in the document, before any is applied
            assert len(text_edits) == 1 and spans[0][0] == spans[0][1], text_edits  # one insertion
            if accept:
                self.wire.send(self.change(uri, [{"range": text_edits[0]["range"], "text": text_edits[0]["newText"]}]))
                mirror.edit(*spans[0], text_edits[0]["newText"])

    @rule(values=settings_values)
    def configure(self, values: object) -> None:
        self.wire.notify("workspace/didChangeConfiguration", {"settings": values})

    @invariant()
    def alive(self) -> None:
        assert self.wire.proc.poll() is None, self.wire.log()[-3000:]
        assert self.wire.popups() == []
        assert "Traceback" not in self.wire.log() and " ERROR " not in self.wire.log(), self.wire.log()[-3000:]

    # -- the end of a session: the server's documents are the client's --------------------------------------
    def teardown(self) -> None:
        try:
            if self.wire.proc.poll() is None:
                self.wire.notify("workspace/didChangeConfiguration", {"settings": BASELINE})
                for uri, mirror in sorted(self.docs.items()):
                    self.compare(uri, mirror)
        finally:
            self.close_notebook()
            for uri in [*self.docs, *self.closed]:
                self.wire.notify("textDocument/didClose", {"textDocument": {"uri": uri}})

    def compare(self, uri: str, mirror: Mirror) -> None:
        copy = f"file:///fuzz/s{self.n}/copy.{uri.rsplit('.', 1)[1]}"
        self.wire.open(copy, mirror.text, mirror.language)
        try:
            def actions(u: str, line: int) -> list[tuple[str, int]]:
                found = self.answer(self.request("textDocument/codeAction", {
                    "textDocument": {"uri": u}, "range": {"start": {"line": line, "character": 0},
                                                          "end": {"line": line, "character": 0}},
                    "context": {"diagnostics": []}}))["result"] or []
                return [(a["title"], a["data"]["line"]) for a in found]

            lines = len(mirror.spans())
            for line in range(min(lines, 40)):
                assert actions(uri, line) == actions(copy, line), (line, mirror.text)

            def inline(u: str, position: dict[str, int]) -> list[tuple[str, dict]]:
                reply = self.answer(self.request("textDocument/inlineCompletion", {
                    "textDocument": {"uri": u}, "position": position, "context": {"triggerKind": 1}}))
                return [(i["insertText"], i["range"]) for i in (reply["result"] or {"items": []})["items"]]

            if uri in self.cells:
                return  # a cell is completed with the cells around it: not as a copy alone is
            for position in (mirror.position(len(mirror.text)), mirror.position(len(mirror.text) // 2)):
                assert inline(uri, position) == inline(copy, position), (position, mirror.text)
        finally:
            self.wire.notify("textDocument/didClose", {"textDocument": {"uri": copy}})


def test_random_sessions_keep_the_server_and_its_documents_right(server: tuple[Wire, str]) -> None:
    Session.wire, Session.encoding = server
    server = Session.wire
    run_state_machine_as_test(Session, settings=settings(
        **RUN, stateful_step_count=15, deadline=None, database=None,
        suppress_health_check=list(HealthCheck)))
    assert server.proc.poll() is None
    assert set(server.answers) <= set(range(1, server._next_id + 1)), server.answers  # none for ids never sent
    assert all(count == 1 for count in server.answers.values()), server.answers
    messages = len(server.notifications) + len(server.server_requests) + sum(server.answers.values())
    assert strict_frames(bytes(server.stdout)) == messages
