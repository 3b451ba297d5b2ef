"""End to end: the real server process over stdio, driven by pytest-lsp as an editor would drive it."""

from __future__ import annotations

import ast
import asyncio
import sys
from typing import Any, Union

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.exceptions import JsonRpcRequestCancelled
from pytest_lsp import ClientServerConfig, LanguageClient

from lsp_server.completion import complete, complete_alternatives
from lsp_server.loading import load_engine
from lsp_server.server import COMMANDS
from lsp_server.settings import Settings
from lsp_server.text import offset_at
from model.loader import DEMO_MODEL_DIR

SERVE = [sys.executable, "-m", "lsp_server", "serve"]
URI = "file:///work/example.py"


async def ready(client: LanguageClient, timeout: float = 60) -> dict:
    for _ in range(int(timeout * 20)):
        status = await client.workspace_execute_command_async(types.ExecuteCommandParams("codellama.status"))
        if status["state"] not in ("idle", "loading"):
            return status
        await asyncio.sleep(0.05)
    raise AssertionError("model did not load")


def open_doc(client: LanguageClient, text: str, uri: str = URI, language: str = "python") -> None:
    client.text_document_did_open(types.DidOpenTextDocumentParams(types.TextDocumentItem(uri, language, 1, text)))


async def inline(client: LanguageClient, line: int, character: int, uri: str = URI,
                 kind: types.InlineCompletionTriggerKind = types.InlineCompletionTriggerKind.Automatic,
                 ) -> list[types.InlineCompletionItem]:
    result = await client.text_document_inline_completion_async(types.InlineCompletionParams(
        context=types.InlineCompletionContext(kind),
        text_document=types.TextDocumentIdentifier(uri), position=types.Position(line, character)))
    return list(result.items) if isinstance(result, types.InlineCompletionList) else list(result or [])


def capabilities(encodings: list[str] | None = None, resolve: bool = True) -> types.ClientCapabilities:
    return types.ClientCapabilities(
        notebook_document=types.NotebookDocumentClientCapabilities(types.NotebookDocumentSyncClientCapabilities()),
        general=types.GeneralClientCapabilities(position_encodings=encodings) if encodings else None,
        window=types.WindowClientCapabilities(work_done_progress=True),
        workspace=types.WorkspaceClientCapabilities(configuration=True, apply_edit=True),
        text_document=types.TextDocumentClientCapabilities(
            inline_completion=types.InlineCompletionClientCapabilities(),
            code_action=types.CodeActionClientCapabilities(
                data_support=True,
                resolve_support=types.ClientCodeActionResolveOptions(properties=["edit"]) if resolve else None)))


def utf16_len(s: str) -> int:
    return len(s.encode("utf-16-le")) // 2


INITIALIZED: dict[int, types.InitializeResult] = {}


# No wall-clock cut on a busy machine: a suggestion made as the user types stops at timeBudgetMs (2 s by
# default), and one cut short is not the one the tests foretell (untimed), nor kept for typing through.
UNTIMED = {"codellama": {"timeBudgetMs": 600_000}}


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVE + ["--model", str(DEMO_MODEL_DIR)]))
async def client(lsp_client: LanguageClient):
    INITIALIZED[id(lsp_client)] = await lsp_client.initialize_session(
        types.InitializeParams(capabilities=capabilities(), initialization_options=UNTIMED))
    yield
    await lsp_client.shutdown_session()


async def test_capabilities_and_progress(client: LanguageClient) -> None:
    caps = INITIALIZED[id(client)].capabilities
    assert caps.inline_completion_provider is not None
    assert caps.completion_provider is not None
    assert caps.code_action_provider.resolve_provider is True
    assert set(caps.execute_command_provider.commands) == set(COMMANDS)
    status = await ready(client)
    assert status["state"] == "ready" and status["device"] == "cpu"
    kinds = [type(v).__name__ for reports in client.progress_reports.values() for v in reports]
    assert kinds[0] == "WorkDoneProgressBegin" and kinds[-1] == "WorkDoneProgressEnd"
    assert "WorkDoneProgressReport" in kinds


async def test_inline_completion_range_with_emoji_and_cjk(client: LanguageClient) -> None:
    await ready(client)
    line = 'greeting = "héllo 😀 世界"; value = compute('
    text = f"def compute(x):\n    return x * 2\n\n\n{line})\n"
    open_doc(client, text)
    col = utf16_len(line)  # the cursor sits before the auto-closed ")"
    items = await inline(client, 4, col)
    assert items, "the demo model should complete a call's argument"
    item = items[0]
    assert item.range is not None and item.range.start == types.Position(4, col)
    assert item.range.end.line == 4
    replaced = item.range.end.character - col
    assert replaced in (0, 1)  # at most the ")" right of the cursor
    if replaced:
        assert ")" in item.insert_text  # the closer it replaces is written back
    assert "\n" not in item.insert_text  # mid-line: a single line


async def test_crlf_document(client: LanguageClient) -> None:
    await ready(client)
    text = "def area(w, h):\r\n    return \r\n\r\nprint(area(2, 3))\r\n"
    open_doc(client, text)
    items = await inline(client, 1, 11)
    assert items
    assert items[0].range.start == types.Position(1, 11)
    assert "\r" not in items[0].insert_text
    # A multi-line suggestion ends its lines as the document does: an editor may insert it as sent.
    text = "for i in range(10):\r\n    \r\n"
    open_doc(client, text, uri="file:///work/crlf_loop.py")
    items = await inline(client, 1, 4, uri="file:///work/crlf_loop.py", kind=types.InlineCompletionTriggerKind.Invoked)
    suggestions = [item.insert_text for item in items]
    assert any("\n" in s for s in suggestions), suggestions
    assert all(s.count("\r\n") == s.count("\n") == s.count("\r") for s in suggestions), suggestions


async def test_type_through_answers_from_cache(client: LanguageClient) -> None:
    await ready(client)
    # A few places to complete: type-through needs a suggestion of two characters or more.
    docs = ["import os\n\n\ndef read_file(path):\n    with open(path) as f:\n        return \n",
            "def total(items):\n    result = 0\n    for item in items:\n        result += \n    return result\n",
            "class Config:\n    def __init__(self, name):\n        self.name = \n"]
    for n, text in enumerate(docs):
        uri = f"file:///work/typing_{n}.py"
        open_doc(client, text, uri=uri)
        row = next(i for i, line in enumerate(text.split("\n")) if line.endswith(("return ", "+= ", "= ")))
        col = len(text.split("\n")[row])
        first = await inline(client, row, col, uri=uri)
        if first and len(first[0].insert_text) > 1:
            break
    else:
        pytest.fail("no multi-character suggestion to type through")
    suggestion = first[0].insert_text
    before = await client.workspace_execute_command_async(types.ExecuteCommandParams("codellama.status"))
    # The user types the suggestion's first character.
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        types.VersionedTextDocumentIdentifier(version=2, uri=uri),
        [types.TextDocumentContentChangePartial(types.Range(types.Position(row, col), types.Position(row, col)),
                                                suggestion[0])]))
    second = await inline(client, row, col + 1, uri=uri)
    after = await client.workspace_execute_command_async(types.ExecuteCommandParams("codellama.status"))
    assert second and second[0].insert_text == suggestion[1:]
    assert after["cache_hit_rate"] > before["cache_hit_rate"]


async def test_type_through_a_line_break_in_a_crlf_document(client: LanguageClient) -> None:
    await ready(client)
    uri = "file:///work/crlf_typing.py"
    text = "for i in range(10):\r\n    \r\n"
    open_doc(client, text, uri=uri)
    first = await inline(client, 1, 4, uri=uri)
    assert first and "\r\n" in first[0].insert_text, first
    suggestion = first[0].insert_text
    line, rest = suggestion.split("\r\n", 1)
    before = await client.workspace_execute_command_async(types.ExecuteCommandParams("codellama.status"))
    # The user types the first line and Enter, which is "\r\n" in this file, and the next line's indent.
    indent = rest[:len(rest) - len(rest.lstrip(" "))]
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        types.VersionedTextDocumentIdentifier(version=2, uri=uri),
        [types.TextDocumentContentChangePartial(types.Range(types.Position(1, 4), types.Position(1, 4)),
                                                line + "\r\n" + indent)]))
    second = await inline(client, 2, len(indent), uri=uri)
    after = await client.workspace_execute_command_async(types.ExecuteCommandParams("codellama.status"))
    assert second and second[0].insert_text == rest[len(indent):], (second, rest)
    assert after["cache_hit_rate"] > before["cache_hit_rate"]  # answered from the cache, not the model


async def test_newest_request_wins(client: LanguageClient) -> None:
    await ready(client)
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(
        {"codellama": {"linePolicy": "multi", "maxTokens": 256, "timeBudgetMs": 20000}}))
    text = "class Stack:\n    def __init__(self):\n        \n"
    open_doc(client, text)
    older = asyncio.ensure_future(inline(client, 2, 8))
    await asyncio.sleep(0)  # sent first; the newer request follows while the older one generates
    newer = await inline(client, 2, 8)
    assert await older == []  # superseded: answered empty, within a token
    assert newer


async def test_an_invoked_request_gets_the_whole_suggestion_whatever_the_time_budget(client: LanguageClient) -> None:
    await ready(client)
    settings = Settings(model=str(DEMO_MODEL_DIR)).merged(linePolicy="multi", maxTokens=24)
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(
        {"codellama": {"linePolicy": "multi", "maxTokens": 24, "timeBudgetMs": 1}}))
    text = "class Stack:\n    def __init__(self):\n        \n"
    open_doc(client, text)
    # Typing: 1 ms is spent before the first token is out, so the answer is cut short (and not cached) ...
    typed = "".join(item.insert_text for item in await inline(client, 2, 8))
    # ... asking (Alt+\\) gets what the model writes given all the time it needs: maxTokens bounds it.
    asked = [item.insert_text for item in await inline(client, 2, 8, kind=types.InlineCompletionTriggerKind.Invoked)]
    whole = complete_alternatives(load_engine(settings), text, len(text) - 1, settings, 3)  # at (2, 8), untimed
    assert asked == [s.text for s in whole]
    assert len(typed) < len(asked[0])
    listed = await client.text_document_completion_async(types.CompletionParams(  # Ctrl+Space, the same
        types.TextDocumentIdentifier(URI), types.Position(2, 8), types.CompletionContext(types.CompletionTriggerKind.Invoked)))
    assert [item.text_edit.new_text for item in listed.items] == asked
    assert [item.preselect for item in listed.items] == [True, False, False]


async def test_no_suggestion_inside_a_word_unless_asked(client: LanguageClient) -> None:
    await ready(client)
    text = "import os\n\nfor name in os.listdir('.'):\n    print(os.path.getsize(name))\n"
    open_doc(client, text)
    typed = "    print(os.pa"  # the cursor in `os.pa|th.getsize`, where the demo model writes `th.join(name, name))`
    settings = Settings(model=str(DEMO_MODEL_DIR))
    whole = complete(load_engine(settings), text, text.index(typed) + len(typed), settings, timed=False)
    assert whole is not None  # the model has something to say here ...
    assert await inline(client, 3, len(typed)) == []  # ... but as the user types, it would split `path`
    asked = await inline(client, 3, len(typed), kind=types.InlineCompletionTriggerKind.Invoked)
    assert asked[0].insert_text == whole.text  # asked for, it is shown


async def test_a_suggestion_extends_the_item_selected_in_the_completion_menu(client: LanguageClient) -> None:
    await ready(client)
    text = "import os\n\nfor name in os.listdir('.'):\n    print(os.pa)\n"
    open_doc(client, text)
    # The editor's completion menu (another language server's) has `path` selected, to replace `pa`.
    menu = types.SelectedCompletionInfo(types.Range(types.Position(3, 13), types.Position(3, 15)), "path")
    accepted = text.replace("os.pa)", "os.path)")  # the document as it would be with the item accepted
    settings = Settings(model=str(DEMO_MODEL_DIR))
    whole = complete(load_engine(settings), accepted, accepted.index("os.path)") + len("os.path"), settings,
                     timed=False)
    assert whole is not None
    result = await client.text_document_inline_completion_async(types.InlineCompletionParams(
        context=types.InlineCompletionContext(types.InlineCompletionTriggerKind.Invoked, menu),
        text_document=types.TextDocumentIdentifier(URI), position=types.Position(3, 15)))
    items = result.items if isinstance(result, types.InlineCompletionList) else result
    assert items and items[0].insert_text == "path" + whole.text  # an editor shows only what extends the item
    for item in items:
        assert item.insert_text.startswith("path")
        assert item.range.start == menu.range.start  # the item's range, and the closers typed over past it
        assert item.range.end.character >= menu.range.end.character
    assert items[0].range.end == types.Position(3, 15 + whole.replace_chars)


NOTEBOOK = "file:///work/analysis.ipynb"
CIRCLES = "import math\n\n\ndef circle_area(radius):\n    return math.pi * radius ** 2\n"


def cell(n: int) -> str:
    return f"vscode-notebook-cell:/work/analysis.ipynb#W{n}sZmlsZQ%3D%3D"


async def test_a_notebook_cell_is_completed_with_the_code_cells_around_it(client: LanguageClient) -> None:
    await ready(client)
    code, markup = types.NotebookCellKind.Code, types.NotebookCellKind.Markup
    cells = [(code, "python", CIRCLES), (markup, "markdown", "## Areas\n"), (code, "python", "area = math")]
    client.notebook_document_did_open(types.DidOpenNotebookDocumentParams(
        types.NotebookDocument(NOTEBOOK, "jupyter-notebook", 1, [types.NotebookCell(k, cell(n))
                                                                for n, (k, _, _) in enumerate(cells)]),
        [types.TextDocumentItem(cell(n), language, 1, text) for n, (_, language, text) in enumerate(cells)]))

    def change(version: int, **cells: Any) -> None:
        client.notebook_document_did_change(types.DidChangeNotebookDocumentParams(
            types.VersionedNotebookDocumentIdentifier(version, NOTEBOOK),
            types.NotebookDocumentChangeEvent(cells=types.NotebookDocumentCellChanges(**cells))))

    change(2, text_content=[types.NotebookDocumentCellContentChanges(  # the user types "."
        types.VersionedTextDocumentIdentifier(2, cell(2)), [types.TextDocumentContentChangePartial(
            types.Range(types.Position(0, 11), types.Position(0, 11)), ".")])])
    settings = Settings(model=str(DEMO_MODEL_DIR))
    engine = load_engine(settings)
    typed = "area = math."
    with_code_above = CIRCLES.rstrip("\n") + "\n\n\n" + typed
    expected = complete(engine, with_code_above, len(with_code_above), settings, timed=False)
    alone = complete(engine, typed, len(typed), settings, timed=False)
    assert expected is not None and alone is not None and expected.text != alone.text  # the test can tell
    asked = types.InlineCompletionTriggerKind.Invoked
    assert (await inline(client, 0, 12, uri=cell(2), kind=asked))[0].insert_text == expected.text

    # The first cell deleted: the cell has nothing above it; put back: the same answer as before.
    change(3, structure=types.NotebookDocumentCellChangeStructure(
        types.NotebookCellArrayChange(0, 1), did_close=[types.TextDocumentIdentifier(cell(0))]))
    assert (await inline(client, 0, 12, uri=cell(2), kind=asked))[0].insert_text == alone.text
    change(4, structure=types.NotebookDocumentCellChangeStructure(
        types.NotebookCellArrayChange(0, 0, [types.NotebookCell(code, cell(3))]),
        did_open=[types.TextDocumentItem(cell(3), "python", 1, CIRCLES)]))
    assert (await inline(client, 0, 12, uri=cell(2), kind=asked))[0].insert_text == expected.text
    client.notebook_document_did_close(types.DidCloseNotebookDocumentParams(
        types.NotebookDocumentIdentifier(NOTEBOOK), [types.TextDocumentIdentifier(cell(n)) for n in (1, 2, 3)]))
    assert await inline(client, 0, 12, uri=cell(2), kind=asked) == []  # closed, and no file on disk


async def test_a_notebook_cell_in_old_mac_line_breaks_is_completed_on_its_last_line(client: LanguageClient) -> None:
    # The cell ends with a lone "\r": the cursor is on its last line, empty. Joined to the cell below by "\n\n\n",
    # that "\r" and the first "\n" were one CRLF: the model completed `def circle_area(radius):` from its end.
    await ready(client)
    code = types.NotebookCellKind.Code
    cells = ["import math\r", "def circle_area(radius):\r", "print(circle_area(2))\r"]
    notebook = "file:///work/old_mac.ipynb"
    uris = [f"vscode-notebook-cell:/work/old_mac.ipynb#W{n}" for n in range(len(cells))]
    client.notebook_document_did_open(types.DidOpenNotebookDocumentParams(
        types.NotebookDocument(notebook, "jupyter-notebook", 1, [types.NotebookCell(code, uri) for uri in uris]),
        [types.TextDocumentItem(uri, "python", 1, text) for uri, text in zip(uris, cells)]))
    settings = Settings(model=str(DEMO_MODEL_DIR))
    engine = load_engine(settings)
    above = "import math\n\n\ndef circle_area(radius):\n"  # the same cells in LF
    expected = complete(engine, above + "\n\n\nprint(circle_area(2))", len(above), settings, timed=False)
    above_line = "import math\n\n\ndef circle_area(radius):"  # the cursor at the end of the line above
    wrong = complete(engine, above_line + "\n\n\n\nprint(circle_area(2))", len(above_line), settings, timed=False)
    assert expected is not None and (wrong is None or wrong.text != expected.text)  # the test can tell
    items = await inline(client, 1, 0, uri=uris[1], kind=types.InlineCompletionTriggerKind.Invoked)
    assert items and items[0].insert_text == expected.text.replace("\n", "\r")
    assert items[0].range is not None and items[0].range.start == types.Position(1, 0)


async def test_asking_offers_different_suggestions_and_typing_one(client: LanguageClient) -> None:
    await ready(client)
    text = "import math\n\n\ndef circle_area(radius):\n    return \n"
    open_doc(client, text)
    settings = Settings(model=str(DEMO_MODEL_DIR))
    expected = [s.text for s in complete_alternatives(load_engine(settings), text, len(text) - 1, settings, 3)]
    typed = await inline(client, 4, 11)
    assert len(typed) == 1  # as the user types: the best one
    asked = await inline(client, 4, 11, kind=types.InlineCompletionTriggerKind.Invoked)
    assert [item.insert_text for item in asked] == expected and len(set(expected)) == 3  # Alt+\, then Alt+]
    assert typed[0].insert_text == expected[0]
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(
        {"codellama": {"invokedSuggestions": 1}}))
    assert [item.insert_text for item in await inline(client, 4, 11, kind=types.InlineCompletionTriggerKind.Invoked)
            ] == expected[:1]


async def test_names_from_outside_the_window_are_copied(client: LanguageClient) -> None:
    # The demo model's window holds about 750 tokens of prefix; the definition is 1,800 tokens above the cursor.
    await ready(client)
    definition = "def frobnicate_widget_count(widgets):\n    return len(widgets)\n\n\n"
    helpers = "".join(f"def helper_{i}(value):\n    return value + {i}\n\n\n" for i in range(120))
    typed = "total = frobnicate_"
    line = helpers.count("\n")
    open_doc(client, helpers + typed + "\n", uri="file:///work/without.py")
    without = await inline(client, line, len(typed), uri="file:///work/without.py",
                           kind=types.InlineCompletionTriggerKind.Invoked)
    open_doc(client, definition + helpers + typed + "\n")
    copied = await inline(client, line + 4, len(typed), kind=types.InlineCompletionTriggerKind.Invoked)
    assert copied and copied[0].insert_text.startswith("widget_count(")
    assert not (without and without[0].insert_text.startswith("widget_count("))  # the model alone cannot know it


async def test_cancel_request_is_honoured(client: LanguageClient) -> None:
    await ready(client)
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(
        {"codellama": {"linePolicy": "multi", "maxTokens": 256, "timeBudgetMs": 20000}}))
    open_doc(client, "def fib(n):\n    \n")
    params = types.InlineCompletionParams(
        context=types.InlineCompletionContext(types.InlineCompletionTriggerKind.Invoked),
        text_document=types.TextDocumentIdentifier(URI), position=types.Position(1, 4))
    pending = asyncio.ensure_future(client.protocol.send_request_async(
        types.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id="to-cancel"))
    await asyncio.sleep(0)  # the request goes out first
    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="to-cancel"))
    with pytest.raises(JsonRpcRequestCancelled):
        await pending
    assert (await ready(client))["state"] == "ready"  # and the server goes on answering
    assert await inline(client, 1, 4) is not None


async def test_did_change_is_handled_while_generating(client: LanguageClient) -> None:
    await ready(client)
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(
        {"codellama": {"linePolicy": "multi", "maxTokens": 256, "timeBudgetMs": 20000}}))
    open_doc(client, "def parse(text):\n    \n")
    pending = asyncio.ensure_future(inline(client, 1, 4))
    await asyncio.sleep(0)
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        types.VersionedTextDocumentIdentifier(version=2, uri="file:///work/other.py"), []))
    status = await client.workspace_execute_command_async(types.ExecuteCommandParams("codellama.status"))
    # The event loop answered while the model thread was busy with the completion.
    assert status["state"] == "ready" and not pending.done()
    await pending


async def test_configuration_toggle_and_invalid_values(client: LanguageClient) -> None:
    await ready(client)
    open_doc(client, "def square(x):\n    return \n")
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(
        {"codellama": {"enabled": False, "temperature": "hot", "fimMode": "xyz", "noSuchSetting": 1}}))
    await asyncio.sleep(0.1)
    assert await inline(client, 1, 11) == []
    warnings = [m.message for m in client.messages if m.type == types.MessageType.Warning]
    assert any("temperature" in w for w in warnings) and any("fimMode" in w or "fim_mode" in w for w in warnings)
    toggled = await client.workspace_execute_command_async(types.ExecuteCommandParams("codellama.toggle"))
    assert toggled == {"enabled": True}
    assert await inline(client, 1, 11)


async def test_docstring_action_resolves_to_valid_python(client: LanguageClient) -> None:
    await ready(client)
    text = ("def mean(values, weights=None):\n"
            "    if not values:\n"
            "        raise ValueError('empty')\n"
            "    return sum(values) / len(values)\n")
    open_doc(client, text)
    actions = await client.text_document_code_action_async(types.CodeActionParams(
        types.TextDocumentIdentifier(URI), types.Range(types.Position(0, 5), types.Position(0, 5)),
        types.CodeActionContext(diagnostics=[])))
    assert actions and actions[0].edit is None  # lazy: the edit is computed on resolve
    resolved = await client.code_action_resolve_async(actions[0])
    edit = resolved.edit.changes[URI][0]
    lines = text.split("\n")
    row = edit.range.start.line
    new = "\n".join(lines[:row]) + "\n" + edit.new_text + "\n".join(lines[row:])
    tree = ast.parse(new)
    doc = ast.get_docstring(tree.body[0])
    assert doc and "values" in doc and "weights" in doc and "ValueError" in doc
    # No action where a docstring now exists, nor outside any function.
    open_doc(client, new, uri="file:///work/documented.py")
    assert not await client.text_document_code_action_async(types.CodeActionParams(
        types.TextDocumentIdentifier("file:///work/documented.py"),
        types.Range(types.Position(0, 5), types.Position(0, 5)), types.CodeActionContext(diagnostics=[])))


async def test_a_one_line_body_is_split_with_nothing_left_behind_in_a_tab_indented_file(client: LanguageClient) -> None:
    # The blank after the colon has to go (a replacement, not an insertion): it used to stay at the end of
    # the header line, since it could not lead the statement line in a file indented with tabs.
    await ready(client)
    uri = "file:///work/tabs.py"
    text = "class Shape:\n\tdef twice(self, x):  return 2 * x\n"
    open_doc(client, text, uri=uri)
    actions = await client.text_document_code_action_async(types.CodeActionParams(
        types.TextDocumentIdentifier(uri), types.Range(types.Position(1, 6), types.Position(1, 6)),
        types.CodeActionContext(diagnostics=[])))
    edit = (await client.code_action_resolve_async(actions[0])).edit.changes[uri][0]
    start, end = (offset_at(text, p.line, p.character) for p in (edit.range.start, edit.range.end))
    lines = (text[:start] + edit.new_text + text[end:]).split("\n")
    assert lines[1] == "\tdef twice(self, x):" and lines[2].startswith('\t\t"""')
    assert "\t\treturn 2 * x" in lines and all(line == line.rstrip() for line in lines)
    assert "x:" in (ast.get_docstring(ast.parse("\n".join(lines)).body[0].body[0]) or "")


async def test_docstring_in_a_file_longer_than_the_models_context(client: LanguageClient) -> None:
    # The demo model's context is 1,024 tokens; the writer's windows (4,000 + 2,000 characters) are more.
    above = "".join(f"LIMIT_{i} = {i} * 1024  # bytes\n" for i in range(200))
    below = "".join(f"print(scaled({i}, LIMIT_{i}))\n" for i in range(200))
    text = above + "def scaled(count, unit):\n    total = count * unit\n    return total\n\n" + below
    row = above.count("\n")
    open_doc(client, text)
    await ready(client)
    actions = await client.text_document_code_action_async(types.CodeActionParams(
        types.TextDocumentIdentifier(URI), types.Range(types.Position(row, 5), types.Position(row, 5)),
        types.CodeActionContext(diagnostics=[])))
    resolved = await client.code_action_resolve_async(actions[0])
    assert resolved.edit is not None, "the docstring was lost"
    edit = resolved.edit.changes[URI][0]
    lines = text.split("\n")
    documented = "\n".join(lines[:edit.range.start.line]) + "\n" + edit.new_text + "\n".join(lines[edit.range.start.line:])
    function = next(n for n in ast.parse(documented).body if isinstance(n, ast.FunctionDef))
    assert "count:" in (ast.get_docstring(function) or "")


async def test_a_docstring_goes_where_its_function_is_after_edits_made_while_it_was_written(
        client: LanguageClient) -> None:
    await ready(client)
    uri = "file:///work/moving.py"
    text = "def area(w, h):\n    return w * h\n"
    open_doc(client, text, uri=uri)
    header = "import math\n\nUNIT = 1.0\n\n"  # the user adds lines above the function while it is written
    applied: list[tuple[types.WorkspaceEdit, str]] = []
    document = [text]  # the text as this client has it

    @client.feature(types.WORKSPACE_APPLY_EDIT)
    def apply_edit(params: types.ApplyWorkspaceEditParams) -> types.ApplyWorkspaceEditResult:
        applied.append((params.edit, document[0]))  # an editor applies it to the text it has now
        return types.ApplyWorkspaceEditResult(applied=True)

    command = asyncio.ensure_future(client.workspace_execute_command_async(types.ExecuteCommandParams(
        "codellama.generateDocstring", [uri, {"line": 0, "character": 4}])))
    await asyncio.sleep(0.02)  # the request is read; writing takes the model 100 ms or more
    document[0] = header + text
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        types.VersionedTextDocumentIdentifier(version=2, uri=uri),
        [types.TextDocumentContentChangePartial(types.Range(types.Position(0, 0), types.Position(0, 0)), header)]))
    assert await command == {"applied": True}
    (edit_made, base), = applied
    edit = edit_made.changes[uri][0]
    lines = base.split("\n")
    row = edit.range.start.line
    documented = "\n".join(lines[:row]) + "\n" + edit.new_text + "\n".join(lines[row:])
    if base == text:  # written before the change arrived (a fast machine): the header goes on top of it
        documented = header + documented
    assert documented.startswith(header)
    function = next(n for n in ast.parse(documented).body if isinstance(n, ast.FunctionDef))
    assert "w:" in (ast.get_docstring(function) or ""), documented


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVE + ["--model", str(DEMO_MODEL_DIR)]))
async def eager_utf8_client(lsp_client: LanguageClient):
    await lsp_client.initialize_session(types.InitializeParams(capabilities=capabilities(["utf-8"], resolve=False),
                                                               initialization_options=UNTIMED))
    yield
    await lsp_client.shutdown_session()


async def test_eager_docstring_and_utf8_positions(eager_utf8_client: LanguageClient) -> None:
    client = eager_utf8_client
    await ready(client)
    line = 'label = "😀 世界: " + describe('
    open_doc(client, f"def describe(item):\n    return str(item)\n\n\n{line})\n")
    col = len(line.encode("utf-8"))  # this client counts bytes
    items = await inline(client, 4, col)
    assert items and items[0].range.start == types.Position(4, col)
    actions = await client.text_document_code_action_async(types.CodeActionParams(
        types.TextDocumentIdentifier(URI), types.Range(types.Position(0, 0), types.Position(0, 0)),
        types.CodeActionContext(diagnostics=[])))
    assert actions and actions[0].edit is not None  # no resolve support: computed eagerly
    assert '"""' in actions[0].edit.changes[URI][0].new_text


async def test_a_code_action_nobody_asked_for_does_not_hold_the_model(eager_utf8_client: LanguageClient) -> None:
    # Before: a lightbulb request at every cursor move wrote a docstring on the model thread when the client
    # could not resolve, and asking for quick fixes only, or in a disabled language, still got it.
    client = eager_utf8_client
    await ready(client)
    open_doc(client, "def describe(item):\n    return str(item)\n")
    applied: list[types.WorkspaceEdit] = []

    @client.feature(types.WORKSPACE_APPLY_EDIT)
    def apply_edit(params: types.ApplyWorkspaceEditParams) -> types.ApplyWorkspaceEditResult:
        applied.append(params.edit)
        return types.ApplyWorkspaceEditResult(applied=True)

    async def actions(only: list[str] | None = None, trigger: types.CodeActionTriggerKind | None = None):
        return await client.text_document_code_action_async(types.CodeActionParams(
            types.TextDocumentIdentifier(URI), types.Range(types.Position(0, 0), types.Position(0, 0)),
            types.CodeActionContext(diagnostics=[], only=only, trigger_kind=trigger)))

    # lsprotocol reads any code action with a `command` as a Command (a Command's `command` is a string, a
    # CodeAction's a Command); editors tell them apart by that type, and so does this client now.
    converter = client.protocol._converter
    converter.register_structure_hook(Union[types.Command, types.CodeAction], lambda obj, _: converter.structure(
        obj, types.Command if isinstance(obj.get("command"), str) else types.CodeAction))
    found = await actions(trigger=types.CodeActionTriggerKind.Automatic)
    assert found and found[0].edit is None and found[0].command is not None  # written when chosen
    assert await actions(only=[types.CodeActionKind.QuickFix]) is None
    assert await actions(only=[types.CodeActionKind.Refactor]) is not None  # a parent kind asks for ours
    result = await client.workspace_execute_command_async(types.ExecuteCommandParams(
        found[0].command.command, found[0].command.arguments))
    assert result == {"applied": True} and '"""' in applied[0].changes[URI][0].new_text
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(
        {"codellama": {"disabledLanguages": ["python"]}}))
    assert await actions(trigger=types.CodeActionTriggerKind.Invoked) is None


# A bad --model stops `serve` at start-up (tests/test_cli_errors.py); a bad model *setting* from the editor
# must leave the server up and say what to fix.
@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVE))
async def bad_model_client(lsp_client: LanguageClient):
    await lsp_client.initialize_session(types.InitializeParams(
        capabilities=capabilities(), initialization_options={"codellama": {"model": "/nonexistent/model"}}))
    yield
    await lsp_client.shutdown_session()


async def test_bad_model_path_reports_and_stays_up(bad_model_client: LanguageClient) -> None:
    client = bad_model_client
    status = await ready(client)
    assert status["state"] == "failed" and "/nonexistent/model" in status["error"]
    errors = [m.message for m in client.messages if m.type == types.MessageType.Error]
    assert errors and "codellama.model" in errors[0]
    open_doc(client, "x = 1\n")
    assert await inline(client, 0, 5) == []


async def test_unknown_document_gets_an_empty_answer(client: LanguageClient) -> None:
    await ready(client)
    assert await inline(client, 0, 0, uri="file:///nowhere/missing.py") == []
    assert not await client.text_document_code_action_async(types.CodeActionParams(
        types.TextDocumentIdentifier("file:///nowhere/missing.py"),
        types.Range(types.Position(0, 0), types.Position(0, 0)), types.CodeActionContext(diagnostics=[])))
    assert (await ready(client))["state"] == "ready"
