"""The language server: one LanguageServer subclass holding the state, thin handlers around pure helpers.

Handlers never run the model: they read the document, hand a job to the model thread (worker.py) and
await it, so didChange and friends are processed while a completion is being generated. Nor do they parse a
whole file: docstring targets are found in a process of their own (targets.py). Messages reach
them through protocol.py (every request gets exactly one response) and transport.py (stdio or TCP).

Here: CodeLlamaServer (the session's state: settings, documents, model worker, cache; the completion flow) and
create_server, the one place every handler is registered. Beside it, each with the flow of one feature over that
state: model_load.py (a model load: progress, failure, recovery), docstring_action.py (the "Generate docstring"
code action and command), offers.py (suggestions as the client applies them: pure).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sys
import time
from collections.abc import Callable
from typing import Any, BinaryIO
from urllib.parse import unquote

from cattrs import Converter
from lsprotocol import types
from pygls.lsp.server import LanguageServer
from pygls.protocol import default_converter

from model.backend import Backend, BackendUnavailable, Generation

from . import __version__, docstring_action
from .cache import CompletionCache
from .completion import Suggestion, complete, complete_alternatives, inside_a_word
from .docstring_action import CMD_DOCSTRING
from .documents import Document, Documents, Notebooks, encoding_named, read_document
from .extra_context import ExtraContext
from .metrics import LatencyStats
from .model_load import load, model_name
from .offers import Offer, completion_item, reads_markdown_documentation, served_again
from .outage import OutageNotice
from .protocol import CodeLlamaProtocol
from .settings import Settings, consistency_warnings, extra_budget, parse_settings
from .shaping import Shaped
from .slowness import SlowNotice
from .tags import in_markup
from .targets import Targets
from .text import line_break_of
from .transport import serve_stdio, serve_tcp
from .worker import Cancelled, ModelWorker

log = logging.getLogger(__name__)

CMD_STATUS, CMD_RELOAD, CMD_TOGGLE = "codellama.status", "codellama.reloadModel", "codellama.toggle"
COMMANDS = (CMD_STATUS, CMD_RELOAD, CMD_TOGGLE, CMD_DOCSTRING)
RELOAD_KEYS = ("model", "device", "dtype", "quant", "kernel", "ngram_cache", "context_length", "backend",
               "remote_url", "remote_timeout_ms")
# How long a request waits for the settings a workspace/configuration pull under way will bring (from the
# pull's start): a client that sends a bare didChangeConfiguration and then a request means the request to
# see the change, and answers within milliseconds; one that does not answer costs requests no more than this.
SETTINGS_WAIT_S = 1.0
# Settings problems shown as popups per change; the rest go to the log. A settings object full of unknown keys
# (a workspace's settings.json) showed one popup per key: thousands.
MAX_SETTINGS_POPUPS = 3
# Sent with {"too_slow": <codellama.status's too_slow>} each time that changes, so that an editor's status display
# follows it without asking for the status at every keystroke. `$/`: a client that does not know it may ignore it
# (LSP), as Neovim's and most others do silently.
TOO_SLOW_NOTIFICATION = "$/codellama/tooSlow"


def lenient_converter() -> Converter:
    """pygls' converter, also accepting the trigger kinds of pre-3.18 inline completion clients.

    vscode-languageclient 9 numbered them like VS Code's API (0 = invoked, 1 = automatic); lsprotocol only
    knows 3.18's 1 and 2 and would reject the request before any handler sees it.
    """
    converter = default_converter()

    def trigger_kind(value: object, _: type) -> types.InlineCompletionTriggerKind:
        if value == 0:
            return types.InlineCompletionTriggerKind.Invoked
        try:
            return types.InlineCompletionTriggerKind(value)
        except ValueError:  # a kind from a newer protocol: nothing explicit is known about it
            return types.InlineCompletionTriggerKind.Automatic

    converter.register_structure_hook(types.InlineCompletionTriggerKind, trigger_kind)
    return converter


# Every cell of every notebook: a cell is completed with the code cells around it (Notebooks.around).
NOTEBOOK_SYNC = types.NotebookDocumentSyncOptions([types.NotebookDocumentFilterWithNotebook(notebook="*")])


class CodeLlamaServer(LanguageServer):
    protocol: CodeLlamaProtocol  # made by pygls from protocol_cls

    def __init__(self, settings: Settings) -> None:
        super().__init__("codellama-lsp", __version__, protocol_cls=CodeLlamaProtocol,
                         converter_factory=lenient_converter, notebook_document_sync=NOTEBOOK_SYNC)
        self.settings = settings
        # What a setting the client leaves out or sends as null goes back to: the command line's flags (and
        # initializationOptions, once given), not the value the client set last.
        self.defaults = settings
        self.loaded: Settings | None = None  # the settings the model in use was loaded with
        self.worker = ModelWorker()
        # Where docstring targets are found (docstring_action.target_at): a process of their own, one at a time, which
        # keeps the parsers' caches of recent texts and trees; a document's are forgotten when it closes.
        self.targets = Targets()
        self.documents = Documents()
        self.notebooks = Notebooks()
        self.cache = CompletionCache()
        self.extra = ExtraContext()
        self.stats = LatencyStats()
        self.enabled = settings.enabled
        self.exit_code = 1  # LSP's, set when the session ends: 0 only after shutdown and exit
        self.pull: asyncio.Future[None] | None = None  # the workspace/configuration pull under way, if any
        self.pull_deadline = 0.0  # until when requests wait for it (time.monotonic())
        self.pull_wait_logged = False  # a request went on without its answer (said once per pull)
        self.outage = OutageNotice(
            lambda m: self.window_show_message(types.ShowMessageParams(types.MessageType.Warning, m)),
            lambda m: self.window_log_message(types.LogMessageParams(types.MessageType.Info, m)))
        self.slow = SlowNotice(
            lambda m: self.window_show_message(types.ShowMessageParams(types.MessageType.Warning, m)),
            lambda m: self.window_log_message(types.LogMessageParams(types.MessageType.Info, m)),
            lambda told: self.protocol.notify(TOO_SLOW_NOTIFICATION, {"too_slow": told}))

    # -- transport --------------------------------------------------------------------------------------
    def start_io(self, stdin: BinaryIO | None = None, stdout: BinaryIO | None = None) -> None:
        """Serve one session on stdin/stdout; `exit_code` then holds LSP's exit code."""
        try:
            self.exit_code = serve_stdio(self.protocol, stdin or sys.stdin.buffer, stdout or sys.stdout.buffer)
        finally:
            self.worker.shutdown()
            self.targets.close()

    def start_tcp(self, host: str, port: int,
                  listening: Callable[[list[tuple[str, int]]], None] = lambda addresses: None) -> None:
        """Serve one client's session on host:port (OSError when it cannot listen there)."""
        try:
            self.exit_code = serve_tcp(self.protocol, host, port, listening)
        finally:
            self.worker.shutdown()
            self.targets.close()

    def report_server_error(self, error: Exception, source: Any) -> None:
        # pygls' default shows a popup for errors outside requests; a request already carries its error
        # in its response, and a bad notification is the client's bug, not the user's: log them.
        log.error("%s", error)

    # -- settings ---------------------------------------------------------------------------------------
    def apply_settings(self, raw: object, *, whole: bool = False) -> None:
        """Apply client settings; reload the model when a setting it depends on changed.

        whole: `raw` is the client's whole section (its answer to workspace/configuration), so a setting it
        leaves out has its default; else (didChangeConfiguration's settings, which VS Code's extension sends as
        the changes only) `raw` is merged into the settings in use. A null value is the default in both.
        """
        new, warnings = parse_settings(raw, self.defaults if whole else self.settings, self.defaults)
        told = consistency_warnings(self.settings)  # shown when it arose, not again at every unrelated change
        fresh = [w for w in warnings if w not in told]
        for w in fresh[:MAX_SETTINGS_POPUPS]:
            self.window_show_message(types.ShowMessageParams(types.MessageType.Warning, f"codellama: {w}"))
        if len(fresh) > MAX_SETTINGS_POPUPS:
            for w in fresh[MAX_SETTINGS_POPUPS:]:
                log.warning("%s", w)
            self.window_show_message(types.ShowMessageParams(
                types.MessageType.Warning, f"codellama: settings: {len(fresh) - MAX_SETTINGS_POPUPS} more problems, "
                                           "in the server's log"))
        old, self.settings = self.settings, new
        if new.enabled != old.enabled:
            self.enabled = new.enabled
        if new.time_budget_ms != old.time_budget_ms:
            self.slow.reset()  # told in numbers of the old budget
        self.cache.clear()
        if self.worker.state != "idle" and any(getattr(old, k) != getattr(new, k) for k in RELOAD_KEYS):
            self.start_loading()

    def start_pull(self) -> asyncio.Future[None]:
        """Start asking the client for its settings (pull_configuration), which requests from now on wait for
        (current_settings)."""
        self.pull = asyncio.ensure_future(self.pull_configuration())
        self.pull_deadline, self.pull_wait_logged = time.monotonic() + SETTINGS_WAIT_S, False
        return self.pull

    async def current_settings(self) -> Settings:
        """The settings to answer a request with: once a pull under way is answered, those it brought; after
        SETTINGS_WAIT_S from its start, the settings known before (said in the log once per pull)."""
        pull = self.pull
        if pull is not None and not pull.done():
            try:
                # shield: a request cancelled while it waits must not cancel the pull
                await asyncio.wait_for(asyncio.shield(pull), max(0.0, self.pull_deadline - time.monotonic()))
            except asyncio.TimeoutError:
                if not self.pull_wait_logged:
                    self.pull_wait_logged = True
                    log.warning("the client has not answered workspace/configuration within %gs: requests go on "
                                "with the settings known before", SETTINGS_WAIT_S)
        return self.settings

    async def pull_configuration(self) -> None:
        """Ask the client for the `codellama` section (workspace/configuration), when it can answer."""
        caps = self.client_capabilities.workspace
        if not (caps and caps.configuration):
            return
        try:
            result = await self.workspace_configuration_async(  # given up after protocol.REPLY_S
                types.ConfigurationParams(items=[types.ConfigurationItem(section="codellama")]))
        except Exception as e:  # go on with the settings already known
            log.warning("workspace/configuration failed: %s", e)
            return
        if result and isinstance(result[0], dict):
            self.apply_settings(result[0], whole=True)

    # -- model and status -------------------------------------------------------------------------------
    def start_loading(self) -> None:
        """Load the model of the current settings (model_load.py), without waiting for it."""
        asyncio.ensure_future(load(self))

    def status(self) -> dict[str, Any]:
        engine = self.worker.engine
        return {
            "state": self.worker.state, "error": self.worker.error, "enabled": self.enabled,
            "model": self.settings.model or "embedded demo",
            "loaded": (self.loaded.model or "embedded demo") if self.loaded and engine else None,
            # False for a loaded model that cannot fill in the middle (its reason in "error"): editors say so.
            "infilling": self.cannot_infill() is None if engine else None,
            "device": engine.describe()["device"] if engine else None,
            "memory_mib": round(engine.memory_bytes() / 2**20, 1) if engine else None,
            "context_length": engine.context_length if engine else None,
            "runtime": engine.describe() if engine else None,
            "fim_mode": self.settings.fim_mode,
            "too_slow": self.slow.told,  # why completions as you type stay empty, while they do
            **self.stats.summary(),
            "cache_hit_rate": round(self.cache.hit_rate, 3),
        }

    # -- documents --------------------------------------------------------------------------------------
    async def document(self, uri: str) -> Document | None:
        """A snapshot of the open document (edits arriving while a request waits for the model do not move
        its positions), or else the file on disk (read off the event loop, regular files of a bounded size
        only); None when neither can be had."""
        if (doc := self.documents.get(uri)) is not None:
            return dataclasses.replace(doc)
        return await read_document(uri, self.documents.encoding)

    def close_document(self, uri: str) -> None:
        """Forget the open document `uri`. A suggestion being generated for it can be shown nowhere: it is
        cancelled, so that the model thread is free for the next request."""
        self.documents.close(uri)
        self.cache.forget(unquote(uri))  # its completions hold its text
        self.worker.cancel(uri)
        self.targets.forget(unquote(uri))

    # -- completions ------------------------------------------------------------------------------------
    def serves(self, doc: Document) -> bool:
        """Whether to offer completions and the docstring action in `doc`: on, not a disabled language, and
        the model ready and able to fill in the middle."""
        return self.enabled and self.can_infill() and doc.language_id not in self.settings.disabled_languages

    def can_infill(self) -> bool:
        """Whether the model is ready and can fill in the middle (Code Llama's Python variants cannot)."""
        return self.worker.ready and self.cannot_infill() is None

    def cannot_infill(self) -> str | None:
        """Why the loaded model cannot fill in the middle; None when it can (or none is loaded)."""
        engine = self.worker.engine
        if engine is None or engine.tokenizer.has_fim:
            return None
        return (f"{model_name(self.loaded) if self.loaded else 'the model'} cannot fill in the middle: its tokenizer "
                f"({engine.tokenizer.path}) has no infilling pieces (Code Llama's Python variants and 34B have none)")

    def extra_context(self, doc: Document) -> str:
        """Snippets of other documents for the prompt; "" when off or when they cannot be had, since a
        completion must never fail because of another document."""
        engine = self.worker.engine
        if not self.settings.extra_context or engine is None:
            return ""
        try:
            # Headers name files relative to their workspace folder (`# Path: util.py`), as the model saw in
            # training, not by absolute path (`/home/alice/...`: tokens spent, and the user's name sent along).
            self.extra.roots = tuple(f.uri for f in self.workspace.folders.values()) or (
                (self.workspace.root_uri,) if self.workspace.root_uri else ())
            return self.extra.render(doc.language_id, doc.uri, engine.tokenizer.count_tokens,
                                     extra_budget(self.settings, engine.context_length))
        except Exception:
            log.exception("extra context left out")
            return ""

    async def suggest(self, uri: str, position: types.Position, *, invoked: bool = False,
                      selected: types.SelectedCompletionInfo | None = None) -> list[Offer] | None:
        """The suggestions at `position`, best first, from the cache or the model; None when there are none.

        invoked: the user asked (Alt+\\, Ctrl+Space) and is waiting for this answer: no debounce, no
        wall-clock cut (maxTokens bounds it, a newer request still cancels it), and up to invokedSuggestions
        different suggestions to cycle through. Suggestions made as the user types are one, from the cache
        when it has one, and stop at timeBudgetMs.
        selected: the item selected in the editor's completion menu. The model completes the document as it
        would be with that item accepted, and each suggestion begins with the item's text and replaces its
        range: an editor shows ghost text then only where it extends the selected item (LSP 3.18).
        """
        doc = await self.document(uri)  # first: the document as it was when asked, whatever the wait below
        await self.current_settings()  # a settings change the client announced before asking applies
        if doc is None or not self.serves(doc):
            return None
        t0 = time.perf_counter()
        # Each offer replaces start..end and begins with `lead`: at the cursor, nothing; else the selected item.
        start = end = doc.offset_at(position)
        lead = ""
        if selected is not None:
            start, end, lead = doc.offset_at(selected.range.start), doc.offset_at(selected.range.end), selected.text
            if start > end:
                return None
        head, tail = self.notebooks.around(uri, self.documents)  # a notebook cell: the code cells around it
        text, offset = head + doc.text[:start] + lead + doc.text[end:] + tail, len(head) + start + len(lead)
        if not invoked and inside_a_word(text, offset):
            return None
        prefix, suffix = text[:offset], text[offset:]
        line_break = line_break_of(doc.text)  # a multi-line suggestion's lines end as the document's do
        count = self.settings.invoked_suggestions if invoked else 1
        cached = self.cache.find(prefix, suffix) if count == 1 else None
        if cached is not None:
            shaped = served_again(cached, prefix, suffix, line_break, in_markup(doc.language_id, suffix[:4000]))
            found = [shaped] if shaped is not None else []
            self.stats.record((time.perf_counter() - t0) * 1000, cache_hit=True)
            log.debug("completion from cache in %.2fms", (time.perf_counter() - t0) * 1000)
        else:
            suggestions = await self.model_suggestions(uri, position, doc, text, offset, count, invoked=invoked)
            if suggestions is None:
                return None
            self.stats.record((time.perf_counter() - t0) * 1000, cache_hit=False)
            if suggestions and suggestions[0].stop_reason != "deadline":  # a half answer is not served again
                # With the document's line breaks, as the user types it: Enter in a CRLF file types "\r\n".
                self.cache.put(prefix, suffix, suggestions[0].text.replace("\n", line_break), unquote(uri),
                               suggestions[0].replace_chars)
            found = [Shaped(s.text, s.replace_chars) for s in suggestions]
        return [Offer(lead + s.text.replace("\n", line_break),
                      types.Range(doc.position_at(start), doc.position_at(end + s.replace_chars)))
                for s in found] or None

    async def model_suggestions(self, uri: str, position: types.Position, doc: Document, text: str, offset: int,
                                count: int, *, invoked: bool) -> list[Suggestion] | None:
        """Up to `count` suggestions for `text` (`doc` as the model completes it) at `offset`, from the model
        thread; None when a newer request superseded this one or the model failed (no error reaches the
        editor: a completion that fails is no completion)."""
        if self.settings.debounce_ms and not invoked:
            flag = self.worker.submit(uri, lambda engine, cancel: None)[1]  # supersedes older jobs now
            await asyncio.sleep(self.settings.debounce_ms / 1000)
            if flag():
                return None
        settings, extra, language = self.settings, self.extra_context(doc), doc.language_id
        answers: list[Generation] = []  # the model's raw answer, which says why there is no suggestion

        def job(engine: Backend, cancel: Callable[[], bool]) -> list[Suggestion]:
            if count > 1:
                return complete_alternatives(engine, text, offset, settings, count, extra=extra, cancel=cancel,
                                             language=language)
            found = complete(engine, text, offset, settings, extra=extra, cancel=cancel, timed=not invoked,
                             language=language, seen=answers.append)
            return [found] if found is not None else []

        try:
            suggestions = await self.worker.run(uri, job)
        except Cancelled:
            return None
        except BackendUnavailable as e:  # an empty answer; the user hears of it once per outage
            self.outage.failed(e)
            return None
        except Exception:
            log.exception("completion failed at %s:%s", uri, position)
            return None
        self.outage.succeeded()
        if answers and not invoked:  # only completions made as you type are timed
            if suggestions or answers[0].stop_reason not in ("deadline", "cancel", "error"):
                self.slow.answered()
            elif answers[0].stop_reason == "deadline" and (engine := self.worker.engine) is not None:
                runtime = engine.describe()
                self.slow.missed(answers[0].timings, settings.time_budget_ms, remote=runtime["backend"] != "local",
                                 gpu=str(runtime["device"]).startswith("cuda"),
                                 quantized=runtime.get("layers", ["Linear"]) != ["Linear"],
                                 demo=self.loaded is not None and not self.loaded.model)
        return suggestions


def create_server(settings: Settings) -> CodeLlamaServer:
    ls = CodeLlamaServer(settings)

    @ls.feature(types.INITIALIZE)
    def initialize(ls: CodeLlamaServer, params: types.InitializeParams) -> None:
        ls.documents = Documents(encoding_named(ls.workspace.position_encoding))
        if params.initialization_options is not None:
            ls.apply_settings(params.initialization_options)
            ls.defaults = ls.settings  # given once, like the command line's flags

    @ls.feature(types.INITIALIZED)
    async def initialized(ls: CodeLlamaServer, params: types.InitializedParams) -> None:
        await ls.start_pull()
        ls.start_loading()

    @ls.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    def did_change_configuration(ls: CodeLlamaServer, params: types.DidChangeConfigurationParams) -> None:
        if isinstance(params.settings, dict) and params.settings:
            ls.apply_settings(params.settings)
        else:  # the "pull" model: the notification only says that something changed
            ls.start_pull()  # synchronous: recorded before the request read next asks for the settings

    @ls.feature(types.SHUTDOWN)
    def shutdown(ls: CodeLlamaServer, params: None) -> None:
        ls.worker.shutdown()  # a generation under way stops within a token

    @ls.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: CodeLlamaServer, params: types.DidOpenTextDocumentParams) -> None:
        doc = ls.documents.open(params.text_document)
        ls.extra.note_document(doc.uri, doc.language_id, doc.text, 0)

    @ls.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: CodeLlamaServer, params: types.DidChangeTextDocumentParams) -> None:
        doc = ls.documents.change(params)
        last = params.content_changes[-1] if params.content_changes else None
        if doc is not None:
            line = last.range.start.line if isinstance(last, types.TextDocumentContentChangePartial) else 0
            ls.extra.note_edit(doc.uri, doc.language_id, doc.text, line, doc.anchor)

    @ls.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: CodeLlamaServer, params: types.DidCloseTextDocumentParams) -> None:
        # Its chunks stay in the extra context's ring buffer: recently seen code is still good context. Not an
        # untitled buffer's: closed, its text (a scratch the user threw away) exists nowhere any more.
        if not params.text_document.uri.startswith("file:"):
            ls.extra.forget(params.text_document.uri)
        ls.close_document(params.text_document.uri)

    # Notebooks: their cells are open documents, and the notebook says in which order they come.
    @ls.feature(types.NOTEBOOK_DOCUMENT_DID_OPEN)
    def notebook_did_open(ls: CodeLlamaServer, params: types.DidOpenNotebookDocumentParams) -> None:
        for cell in params.cell_text_documents:
            ls.documents.open(cell)
        ls.notebooks.open(params.notebook_document)

    @ls.feature(types.NOTEBOOK_DOCUMENT_DID_CHANGE)
    def notebook_did_change(ls: CodeLlamaServer, params: types.DidChangeNotebookDocumentParams) -> None:
        if (cells := params.change.cells) is None:
            return  # the notebook's metadata only
        if structure := cells.structure:
            for item in structure.did_open or ():
                ls.documents.open(item)
            for gone in structure.did_close or ():
                ls.close_document(gone.uri)
        ls.notebooks.change(params.notebook_document.uri, structure, cells.data or ())
        for content in cells.text_content or ():
            ls.documents.change(types.DidChangeTextDocumentParams(content.document, content.changes))

    @ls.feature(types.NOTEBOOK_DOCUMENT_DID_CLOSE)
    def notebook_did_close(ls: CodeLlamaServer, params: types.DidCloseNotebookDocumentParams) -> None:
        ls.notebooks.close(params.notebook_document.uri)
        for cell in params.cell_text_documents:
            ls.close_document(cell.uri)

    @ls.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
    async def inline_completion(ls: CodeLlamaServer, params: types.InlineCompletionParams
                                ) -> types.InlineCompletionList | None:
        invoked = params.context.trigger_kind == types.InlineCompletionTriggerKind.Invoked
        offers = await ls.suggest(params.text_document.uri, params.position, invoked=invoked,
                                  selected=params.context.selected_completion_info)
        return types.InlineCompletionList(items=[
            types.InlineCompletionItem(insert_text=o.text, range=o.range) for o in offers or ()])

    @ls.feature(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions(trigger_characters=[".", "("]))
    async def completion(ls: CodeLlamaServer, params: types.CompletionParams) -> types.CompletionList:
        invoked = params.context is not None and params.context.trigger_kind == types.CompletionTriggerKind.Invoked
        offers = await ls.suggest(params.text_document.uri, params.position, invoked=invoked)
        markdown = reads_markdown_documentation(ls.client_capabilities)
        return types.CompletionList(is_incomplete=True, items=[
            completion_item(offer, rank, markdown=markdown) for rank, offer in enumerate(offers or ())])

    # -- docstrings: the flow is docstring_action.py's ------------------------------------------------------
    @ls.feature(types.TEXT_DOCUMENT_CODE_ACTION, types.CodeActionOptions(
        code_action_kinds=[types.CodeActionKind.RefactorRewrite], resolve_provider=True))
    async def code_action(ls: CodeLlamaServer, params: types.CodeActionParams
                          ) -> list[types.CodeAction] | list[types.Command] | None:
        return await docstring_action.code_actions(ls, params)

    @ls.feature(types.CODE_ACTION_RESOLVE)
    async def resolve_code_action(ls: CodeLlamaServer, action: types.CodeAction) -> types.CodeAction:
        return await docstring_action.resolve_code_action(ls, action)

    @ls.command(CMD_DOCSTRING)
    async def generate_docstring_command(ls: CodeLlamaServer, *args: Any) -> dict[str, Any]:
        return await docstring_action.generate_docstring_command(ls, args)

    # -- commands ---------------------------------------------------------------------------------------
    @ls.command(CMD_STATUS)
    def status(ls: CodeLlamaServer, *args: Any) -> dict[str, Any]:
        return ls.status()

    @ls.command(CMD_TOGGLE)
    def toggle(ls: CodeLlamaServer, *args: Any) -> dict[str, Any]:
        ls.enabled = not ls.enabled
        return {"enabled": ls.enabled}

    @ls.command(CMD_RELOAD)
    async def reload(ls: CodeLlamaServer, *args: Any) -> dict[str, Any]:
        await load(ls)
        return ls.status()

    return ls
