"""A minimal LSP client for the demo and the typing benchmark: start the real server process, talk to it."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Any

import attrs
from lsprotocol import types
from pygls.lsp.client import LanguageClient

from .terminal import loading_bar


# What this client reads, unless told otherwise: code actions as CodeAction literals (LSP 3.8; a client that does not
# say so gets Command literals).
CAPABILITIES = types.ClientCapabilities(text_document=types.TextDocumentClientCapabilities(
    code_action=types.CodeActionClientCapabilities(code_action_literal_support=types.ClientCodeActionLiteralOptions(
        types.ClientCodeActionKindOptions([types.CodeActionKind.Refactor])))))


class ServerExited(RuntimeError):
    """The server process ended before it answered `initialize`; the message is what it said on stderr."""


class ServerProcess:
    """`python -m lsp_server serve ARGS` over stdio, initialized and with its model loaded."""

    def __init__(self, server_args: list[str], capabilities: types.ClientCapabilities | None = None,
                 settings: dict | None = None, loading: Callable[[float, str], None] | None = None,
                 launcher: tuple[str, ...] = ("-m", "lsp_server")) -> None:
        """loading(fraction, message), when given, follows the model's load through LSP work-done progress;
        `launcher`: the interpreter's arguments before the CLI's (`-c CODE` runs CODE, which calls the CLI)."""
        self.args = server_args
        self.launcher = launcher
        self.settings = settings
        self.capabilities = capabilities or CAPABILITIES
        self.client = LanguageClient("codellama-lsp-client", "0.1")
        if loading:
            self._follow_progress(loading)
        self.stderr: list[bytes] = []
        self.messages: list[str] = []  # window/logMessage and window/showMessage, kept for the caller
        self.shown: list[str] = []  # window/showMessage alone: what an editor pops up
        self._drain: asyncio.Task[None] | None = None

        @self.client.feature(types.WINDOW_LOG_MESSAGE)
        def log_message(params: types.LogMessageParams) -> None:
            self.messages.append(params.message)

        @self.client.feature(types.WINDOW_SHOW_MESSAGE)
        def show_message(params: types.ShowMessageParams) -> None:
            self.messages.append(params.message)
            self.shown.append(params.message)

    def _follow_progress(self, loading: Callable[[float, str], None]) -> None:
        self.capabilities = attrs.evolve(self.capabilities, window=types.WindowClientCapabilities(
            work_done_progress=True))

        @self.client.feature(types.WINDOW_WORK_DONE_PROGRESS_CREATE)
        def create(params: types.WorkDoneProgressCreateParams) -> None:
            return None

        @self.client.feature(types.PROGRESS)
        def progress(params: types.ProgressParams) -> None:
            value: Any = params.value
            field = value.get if isinstance(value, dict) else lambda key: getattr(value, key, None)
            if field("kind") == "end":
                loading(1.0, field("message") or "")
            elif field("percentage") is not None:
                loading(field("percentage") / 100, field("message") or "")

    async def start(self, timeout: float = 300) -> dict:
        """Start, initialize and wait for the model; returns `codellama.status`."""
        await self.client.start_io(sys.executable, *self.launcher, "--log-level", "WARNING", "serve", *self.args)
        server = self.client._server
        self._drain = asyncio.create_task(self._read_stderr(server.stderr if server else None))
        try:
            await self.client.initialize_async(types.InitializeParams(
                capabilities=self.capabilities, process_id=None,
                initialization_options={"codellama": self.settings} if self.settings else None))
        except RuntimeError as e:  # pygls: "Server process N exited with return code: 1"; the reason is on stderr
            if server is None or server.returncode is None:
                raise
            if self._drain:
                await asyncio.wait_for(self._drain, 5)  # read to the end: its last line says why
            said = b"".join(self.stderr).decode("utf-8", "replace").strip().splitlines()
            raise ServerExited(said[-1] if said else f"the server exited with code {server.returncode}") from e
        self.client.initialized(types.InitializedParams())
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while (status := await self.status())["state"] in ("idle", "loading") and loop.time() < end:
            await asyncio.sleep(0.1)
        return status

    async def _read_stderr(self, stream: asyncio.StreamReader | None) -> None:
        while stream is not None and (line := await stream.readline()):
            self.stderr.append(line)  # an unread pipe would block the server once full

    async def status(self) -> dict:
        return await self.client.workspace_execute_command_async(types.ExecuteCommandParams("codellama.status"))

    async def inline(self, uri: str, line: int, character: int, *, invoked: bool = False
                     ) -> list[types.InlineCompletionItem]:
        """The inline completions at (line, character): as the user types, or `invoked` (Alt+\\)."""
        kind = types.InlineCompletionTriggerKind.Invoked if invoked else types.InlineCompletionTriggerKind.Automatic
        result = await self.client.text_document_inline_completion_async(types.InlineCompletionParams(
            context=types.InlineCompletionContext(kind),
            text_document=types.TextDocumentIdentifier(uri), position=types.Position(line, character)))
        return list(result.items) if isinstance(result, types.InlineCompletionList) else list(result or [])

    def open(self, uri: str, text: str, language: str = "python") -> None:
        self.client.text_document_did_open(types.DidOpenTextDocumentParams(
            types.TextDocumentItem(uri, language, 1, text)))

    def replace(self, uri: str, version: int, text: str) -> None:
        """The whole document becomes `text` (a full-content didChange)."""
        self.client.text_document_did_change(types.DidChangeTextDocumentParams(
            types.VersionedTextDocumentIdentifier(version=version, uri=uri),
            [types.TextDocumentContentChangeWholeDocument(text)]))

    def insert(self, uri: str, version: int, line: int, character: int, text: str) -> None:
        at = types.Position(line, character)
        self.client.text_document_did_change(types.DidChangeTextDocumentParams(
            types.VersionedTextDocumentIdentifier(version=version, uri=uri),
            [types.TextDocumentContentChangePartial(types.Range(at, at), text)]))

    async def stop(self) -> None:
        await self.client.shutdown_async(None)
        self.client.exit(None)
        await self.client.stop()
        if self._drain:
            self._drain.cancel()


async def ready_server(server_args: list[str], settings: dict | None = None) -> ServerProcess:
    """A server started with `serve ARGS` whose model has loaded, a bar on stderr following the load; SystemExit,
    in words, when the server refuses its flags (its own line says which) or the model does not load."""
    with loading_bar("the model in the server") as progress:
        server = ServerProcess(server_args, settings=settings, loading=progress)
        try:
            status = await server.start()
        except ServerExited as e:
            raise SystemExit(str(e)) from e
    if status["state"] != "ready":
        raise SystemExit(f"model failed to load: {status['error']}")
    return server
