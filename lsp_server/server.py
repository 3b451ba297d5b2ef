"""The language server: one LanguageServer subclass holding the state, thin handlers around pure helpers.

Handlers never run the model: they read the document, hand a job to the model thread (worker.py) and
await it, so didChange and friends are processed while a completion is being generated.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

from lsprotocol import types
from pygls.lsp.server import LanguageServer
from pygls.workspace import TextDocument

from model.backend import Backend, BackendUnavailable

from . import __version__
from .cache import CompletionCache
from .completion import complete, infill_text, load_engine
from .context import ExtraContext
from .docstring import DocEdit, DocTarget, find_target, generate_docstring
from .metrics import LatencyStats
from .outage import OutageNotice
from .settings import Settings, parse_settings
from .shaping import Shaped, shape
from .text import offset_at
from .worker import CancelFlag, Cancelled, ModelWorker

log = logging.getLogger(__name__)

CMD_STATUS, CMD_RELOAD, CMD_TOGGLE, CMD_DOCSTRING = (
    "codellama.status", "codellama.reloadModel", "codellama.toggle", "codellama.generateDocstring")
COMMANDS = (CMD_STATUS, CMD_RELOAD, CMD_TOGGLE, CMD_DOCSTRING)
RELOAD_KEYS = ("model", "device", "dtype", "quant", "kernel", "context_length", "backend", "remote_url",
               "remote_timeout_ms")


class CodeLlamaServer(LanguageServer):
    def __init__(self, settings: Settings) -> None:
        super().__init__("codellama-lsp", __version__)
        self.settings = settings
        self.worker = ModelWorker()
        self.cache = CompletionCache()
        self.extra = ExtraContext()
        self.stats = LatencyStats()
        self.enabled = settings.enabled
        self.outage = OutageNotice(
            lambda m: self.window_show_message(types.ShowMessageParams(types.MessageType.Warning, m)),
            lambda m: self.window_log_message(types.LogMessageParams(types.MessageType.Info, m)))

    # -- settings and model ---------------------------------------------------------------------------
    def apply_settings(self, raw: object) -> None:
        """Merge client settings; reload the model when a setting it depends on changed."""
        new, warnings = parse_settings(raw, self.settings)
        for w in warnings:
            self.window_show_message(types.ShowMessageParams(types.MessageType.Warning, f"codellama: {w}"))
        old, self.settings = self.settings, new
        if new.enabled != old.enabled:
            self.enabled = new.enabled
        self.cache.clear()
        if self.worker.state != "idle" and any(getattr(old, k) != getattr(new, k) for k in RELOAD_KEYS):
            self.start_loading()

    def start_loading(self) -> None:
        asyncio.ensure_future(self._load())

    async def _load(self) -> None:
        settings = self.settings
        name = settings.model or "the embedded demo model"
        token = str(uuid.uuid4())
        loop = asyncio.get_running_loop()
        progress = await self._begin_progress(token, f"Loading {name}")
        last = [0]

        def report(fraction: float, tensor: str) -> None:  # called on the model thread
            pct = int(fraction * 100)
            if progress and pct >= last[0] + 5:
                last[0] = pct
                loop.call_soon_threadsafe(self.work_done_progress.report, token,
                                          types.WorkDoneProgressReport(message=tensor, percentage=pct))

        t0 = time.perf_counter()
        try:
            engine = await asyncio.wrap_future(self.worker.load(lambda: load_engine(settings, report)))
        except Exception as e:  # a bad path or a broken checkpoint must not take the server down
            log.exception("model load failed")
            if progress:
                self.work_done_progress.end(token, types.WorkDoneProgressEnd(message="failed"))
            self.window_show_message(types.ShowMessageParams(
                types.MessageType.Error,
                f"codellama: could not load {name}: {e}. Fix the `codellama.model` setting (a Code Llama "
                "directory with tokenizer.model and config.json or params.json, or a cached repo id such as "
                "codellama/CodeLlama-7b-hf) and run the `codellama.reloadModel` command."))
            return
        self.cache.clear()
        msg = (f"{name} ready on {engine.describe()['device']} in {time.perf_counter() - t0:.1f}s "
               f"({engine.memory_bytes() / 2**20:.0f} MiB)")
        log.info(msg)
        self.window_log_message(types.LogMessageParams(types.MessageType.Info, f"codellama: {msg}"))
        if progress:
            self.work_done_progress.end(token, types.WorkDoneProgressEnd(message=msg))

    async def _begin_progress(self, token: str, title: str) -> bool:
        caps = self.client_capabilities.window
        if not (caps and caps.work_done_progress):
            return False
        try:
            await self.work_done_progress.create_async(token)
        except Exception:  # the client refused: load silently
            return False
        self.work_done_progress.begin(token, types.WorkDoneProgressBegin(title=title, percentage=0,
                                                                         cancellable=False))
        return True

    def status(self) -> dict[str, Any]:
        engine = self.worker.engine
        return {
            "state": self.worker.state, "error": self.worker.error, "enabled": self.enabled,
            "model": self.settings.model or "embedded demo",
            "device": engine.describe()["device"] if engine else None,
            "memory_mib": round(engine.memory_bytes() / 2**20, 1) if engine else None,
            "context_length": engine.context_length if engine else None,
            "runtime": engine.describe() if engine else None,
            "fim_mode": self.settings.fim_mode,
            **self.stats.summary(),
            "cache_hit_rate": round(self.cache.hit_rate, 3),
        }

    def document(self, uri: str) -> TextDocument | None:
        """The open document, or the file on disk; None when neither can be read."""
        doc = self.workspace.get_text_document(uri)
        try:
            doc.source  # an unopened document is read from disk here
        except (OSError, UnicodeDecodeError) as e:
            log.warning("cannot read %s: %s", uri, e)
            return None
        return doc

    # -- completions ------------------------------------------------------------------------------------
    def completion_allowed(self, doc: TextDocument) -> bool:
        return (self.enabled and self.worker.ready
                and (doc.language_id or "") not in self.settings.disabled_languages)

    async def suggest(self, uri: str, position: types.Position) -> tuple[TextDocument, Shaped] | None:
        """The shaped suggestion at `position`, from the cache or the model; None when there is none."""
        doc = self.document(uri)
        if doc is None or not self.completion_allowed(doc):
            return None
        t0 = time.perf_counter()
        text = doc.source
        offset = doc.offset_at_position(position)
        prefix, suffix = text[:offset], text[offset:]
        cached = self.cache.lookup(prefix, suffix)
        if cached is not None:
            # Re-shaping the cached rest recomputes which closers right of the cursor it now types over.
            shaped = shape(cached, prefix=prefix[-2000:], suffix=suffix[:2000],
                           mode="multi" if "\n" in cached else "single")
            self.stats.record((time.perf_counter() - t0) * 1000, cache_hit=True)
            log.debug("completion from cache in %.2fms", (time.perf_counter() - t0) * 1000)
            return (doc, shaped) if shaped else None
        if self.settings.debounce_ms:
            flag = self.worker.submit(uri, lambda engine, cancel: None)[1]  # supersedes older jobs now
            await asyncio.sleep(self.settings.debounce_ms / 1000)
            if flag():
                return None
        settings = self.settings
        extra = ""
        if settings.extra_context and self.worker.engine is not None:
            extra = self.extra.render(doc.language_id or "", uri, self.worker.engine.tokenizer.count_tokens,
                                      settings.extra_context_tokens)
        try:
            suggestion = await self.worker.run(
                uri, lambda engine, cancel: complete(engine, text, offset, settings, extra=extra, cancel=cancel))
        except Cancelled:
            return None
        except BackendUnavailable as e:  # an empty answer; the user hears of it once per outage
            self.outage.failed(e)
            return None
        except Exception:  # a completion that fails is no completion; the editor gets no error popup
            log.exception("completion failed at %s:%s", uri, position)
            return None
        self.outage.succeeded()
        self.stats.record((time.perf_counter() - t0) * 1000, cache_hit=False)
        if suggestion is None:
            return None
        self.cache.put(prefix, suffix, suggestion.text)
        return doc, Shaped(suggestion.text, suggestion.replace_chars)

    # -- docstrings -------------------------------------------------------------------------------------
    def client_resolves_edits(self) -> bool:
        caps = self.client_capabilities.text_document
        support = caps and caps.code_action and caps.code_action.resolve_support
        return bool(support and "edit" in support.properties)

    async def docstring_edit(self, uri: str, target: DocTarget) -> types.WorkspaceEdit | None:
        """Write the docstring for `target` on the model thread; None when superseded or out of time."""
        doc = self.document(uri)
        if doc is None:
            return None
        text, settings = doc.source, self.settings
        deadline = time.monotonic() + 4 * settings.time_budget_ms / 1000

        def write(engine: Backend, cancel: CancelFlag) -> DocEdit:
            def infill(prefix: str, suffix: str, max_tokens: int) -> str:
                if time.monotonic() > deadline:  # out of time: the skeleton keeps its neutral words
                    return ""
                return infill_text(engine, prefix, suffix, max_tokens, settings, cancel)
            return generate_docstring(text, target, infill, style=settings.docstring_style)

        try:
            edit = await self.worker.run(uri + "#docstring", write)
        except Cancelled:
            return None
        except BackendUnavailable as e:
            self.outage.failed(e)
            return None
        except Exception:
            log.exception("docstring generation failed at %s:%s", uri, target.line)
            return None
        self.outage.succeeded()
        # DocEdit counts UTF-16 units; the client may have negotiated another position encoding.
        at = doc.client_position_at_offset(offset_at(text, edit.line, edit.character))
        return types.WorkspaceEdit(changes={uri: [types.TextEdit(types.Range(at, at), edit.new_text)]})

    async def pull_configuration(self) -> None:
        """Ask the client for the `codellama` section (workspace/configuration), when it can answer."""
        caps = self.client_capabilities.workspace
        if not (caps and caps.configuration):
            return
        try:
            result = await self.workspace_configuration_async(
                types.ConfigurationParams(items=[types.ConfigurationItem(section="codellama")]))
        except Exception as e:
            log.warning("workspace/configuration failed: %s", e)
            return
        if result and isinstance(result[0], dict):
            self.apply_settings(result[0])


def replace_range(doc: TextDocument, position: types.Position, replace_chars: int) -> types.Range:
    """The range a suggestion replaces: from the cursor over `replace_chars` characters of its line."""
    offset = doc.offset_at_position(position)
    return types.Range(position, doc.client_position_at_offset(offset + replace_chars))


def create_server(settings: Settings) -> CodeLlamaServer:
    ls = CodeLlamaServer(settings)

    @ls.feature(types.INITIALIZE)
    def initialize(ls: CodeLlamaServer, params: types.InitializeParams) -> None:
        if params.initialization_options is not None:
            ls.apply_settings(params.initialization_options)

    @ls.feature(types.INITIALIZED)
    async def initialized(ls: CodeLlamaServer, params: types.InitializedParams) -> None:
        await ls.pull_configuration()
        ls.start_loading()

    @ls.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    async def did_change_configuration(ls: CodeLlamaServer, params: types.DidChangeConfigurationParams) -> None:
        if isinstance(params.settings, dict) and params.settings:
            ls.apply_settings(params.settings)
        else:  # the "pull" model: the notification only says that something changed
            await ls.pull_configuration()

    @ls.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: CodeLlamaServer, params: types.DidOpenTextDocumentParams) -> None:
        d = params.text_document
        ls.extra.note_document(d.uri, d.language_id, d.text, 0)

    @ls.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: CodeLlamaServer, params: types.DidChangeTextDocumentParams) -> None:
        doc = ls.workspace.get_text_document(params.text_document.uri)
        changes = params.content_changes
        line = changes[-1].range.start.line if changes and hasattr(changes[-1], "range") else 0
        ls.extra.note_edit(doc.uri, doc.language_id or "", doc.source, line)

    @ls.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: CodeLlamaServer, params: types.DidCloseTextDocumentParams) -> None:
        pass  # its chunks stay in the ring buffer: recently seen code is still good context

    @ls.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
    async def inline_completion(ls: CodeLlamaServer, params: types.InlineCompletionParams
                                ) -> types.InlineCompletionList | None:
        found = await ls.suggest(params.text_document.uri, params.position)
        if found is None:
            return types.InlineCompletionList(items=[])
        doc, s = found
        rng = replace_range(doc, params.position, s.replace_chars)
        return types.InlineCompletionList(items=[types.InlineCompletionItem(insert_text=s.text, range=rng)])

    @ls.feature(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions(trigger_characters=[".", "("]))
    async def completion(ls: CodeLlamaServer, params: types.CompletionParams) -> types.CompletionList:
        found = await ls.suggest(params.text_document.uri, params.position)
        if found is None:
            return types.CompletionList(is_incomplete=True, items=[])
        doc, s = found
        text, rng = s.text, replace_range(doc, params.position, s.replace_chars)
        label = text.strip().split("\n", 1)[0][:60] or text
        item = types.CompletionItem(
            label=label, kind=types.CompletionItemKind.Snippet, detail="codellama",
            documentation=types.MarkupContent(types.MarkupKind.Markdown, f"```\n{text}\n```"),
            text_edit=types.TextEdit(rng, text), insert_text_format=types.InsertTextFormat.PlainText,
            sort_text="0", filter_text=text.split("\n", 1)[0], preselect=True)
        return types.CompletionList(is_incomplete=True, items=[item])

    # -- docstrings -------------------------------------------------------------------------------------
    @ls.feature(types.TEXT_DOCUMENT_CODE_ACTION, types.CodeActionOptions(
        code_action_kinds=[types.CodeActionKind.RefactorRewrite], resolve_provider=True))
    async def code_action(ls: CodeLlamaServer, params: types.CodeActionParams) -> list[types.CodeAction] | None:
        doc = ls.document(params.text_document.uri)
        if doc is None or not ls.worker.ready:
            return None
        target = find_target(doc.source, doc.language_id or "", params.range.start.line, params.range.end.line)
        if target is None:
            return None
        data = {"uri": doc.uri, "line": params.range.start.line, "endLine": params.range.end.line}
        action = types.CodeAction(title=f"Generate docstring for {target.name}",
                                  kind=types.CodeActionKind.RefactorRewrite, data=data)
        if ls.client_resolves_edits():
            return [action]
        edit = await ls.docstring_edit(doc.uri, target)  # eager, within the time budget
        if edit is None:
            return None
        action.edit = edit
        return [action]

    @ls.feature(types.CODE_ACTION_RESOLVE)
    async def resolve_code_action(ls: CodeLlamaServer, action: types.CodeAction) -> types.CodeAction:
        data = action.data if isinstance(action.data, dict) else {}
        uri = data.get("uri")
        if not isinstance(uri, str):
            return action
        doc = ls.document(uri)
        target = doc and find_target(doc.source, doc.language_id or "", int(data.get("line", 0)),
                                     int(data.get("endLine", data.get("line", 0))))
        if target:
            action.edit = await ls.docstring_edit(uri, target)
        return action

    @ls.command(CMD_DOCSTRING)
    async def generate_docstring_command(ls: CodeLlamaServer, *args: Any) -> dict[str, Any]:
        uri, line = _uri_and_line(args)
        doc = ls.document(uri)
        target = doc and find_target(doc.source, doc.language_id or "", line)
        if not target:
            return {"applied": False, "reason": "no function or class without a docstring here"}
        if not ls.worker.ready:
            return {"applied": False, "reason": f"model {ls.worker.state}"}
        edit = await ls.docstring_edit(uri, target)
        if edit is None:
            return {"applied": False, "reason": "cancelled"}
        result = await ls.workspace_apply_edit_async(types.ApplyWorkspaceEditParams(edit, label="Generate docstring"))
        return {"applied": bool(result and result.applied)}

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
        await ls._load()
        return ls.status()

    return ls


def _uri_and_line(args: tuple[Any, ...]) -> tuple[str, int]:
    """(uri, position) as [uri, {line, character}] or [{uri, position}]; a clear error otherwise."""
    if len(args) == 1 and isinstance(args[0], dict):
        args = (args[0].get("uri"), args[0].get("position"))
    if len(args) < 2 or not isinstance(args[0], str):
        raise ValueError("codellama.generateDocstring takes [uri, {line, character}]")
    pos = args[1]
    line = pos.get("line") if isinstance(pos, dict) else getattr(pos, "line", None)
    if not isinstance(line, int):
        raise ValueError("codellama.generateDocstring: position must be {line, character}")
    return args[0], line
