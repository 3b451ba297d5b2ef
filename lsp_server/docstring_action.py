"""The "Generate docstring" code action over LSP: which form the client takes it in, where its target is, and the
edit the model writes for it. docstring/ finds targets and writes docstrings without LSP; this is the flow
around it, for the textDocument/codeAction, codeAction/resolve and codellama.generateDocstring handlers that
create_server registers. The state it uses (the targets process, targets.py) is CodeLlamaServer's.

Targets are found in a process of their own (`target_at`), never on the event loop: a whole file is parsed.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams

from model.backend import Backend, BackendUnavailable

from .completion import infill_text
from .docstring import DocEdit, DocTarget, generate_docstring
from .documents import Document
from .protocol import ReplyTimeout
from .text import offset_at, rebased_offset
from .worker import CancelFlag, Cancelled

if TYPE_CHECKING:
    from .server import CodeLlamaServer

log = logging.getLogger(__name__)

CMD_DOCSTRING = "codellama.generateDocstring"


# -- what the client takes -------------------------------------------------------------------------------
def takes_code_actions(caps: types.ClientCapabilities) -> bool:
    """Whether a textDocument/codeAction result may hold CodeAction literals. Without codeActionLiteralSupport
    a client takes Command literals only (LSP 3.8); one that resolves actions or keeps their data takes them
    too, since those are CodeAction properties."""
    action = caps.text_document and caps.text_document.code_action
    return bool(action and (action.code_action_literal_support is not None
                            or action.resolve_support is not None or action.data_support))


def resolves_edits(caps: types.ClientCapabilities) -> bool:
    """Whether the client fills in an action's edit by codeAction/resolve, sending back the action's `data`
    (which it keeps only with dataSupport), which says where the docstring goes."""
    action = caps.text_document and caps.text_document.code_action
    return bool(action and action.data_support and action.resolve_support
                and "edit" in action.resolve_support.properties)


def applies_edits(caps: types.ClientCapabilities) -> bool:
    """Whether the client takes workspace/applyEdit, through which the docstring command writes."""
    return bool(caps.workspace and caps.workspace.apply_edit)


def kind_requested(kind: str, only: list[str] | None) -> bool:
    """Whether a code action of `kind` is among those asked for: LSP kinds are hierarchical, so `only`
    ["refactor"] asks for "refactor.rewrite" too."""
    return not only or any(not wanted or kind == wanted or kind.startswith(wanted + ".") for wanted in only)


def _uri_and_line(args: tuple[Any, ...]) -> tuple[str, int]:
    """(uri, position) as [uri, {line, character}] or [{uri, position}]; a clear error otherwise."""
    if len(args) == 1 and isinstance(args[0], dict):
        args = (args[0].get("uri"), args[0].get("position"))
    if len(args) < 2 or not isinstance(args[0], str):
        raise JsonRpcInvalidParams("codellama.generateDocstring takes [uri, {line, character}]")
    pos = args[1]
    line = pos.get("line") if isinstance(pos, dict) else getattr(pos, "line", None)
    if not isinstance(line, int) or isinstance(line, bool):
        raise JsonRpcInvalidParams("codellama.generateDocstring: position must be {line, character}")
    return args[0], line


# -- the handlers' logic -------------------------------------------------------------------------------
async def code_actions(ls: CodeLlamaServer, params: types.CodeActionParams
                       ) -> list[types.CodeAction] | list[types.Command] | None:
    """textDocument/codeAction: "Generate docstring for …" where a target is, in the form the client takes."""
    if not kind_requested(types.CodeActionKind.RefactorRewrite, params.context.only):
        return None  # e.g. quick fixes only: nothing of ours would be shown
    doc = await ls.document(params.text_document.uri)
    await ls.current_settings()
    if doc is None or not ls.serves(doc):
        return None
    start, end = params.range.start, params.range.end
    target = await target_at(ls, doc, start.line, end.line)
    if target is None:
        return None
    caps = ls.client_capabilities
    title = f"Generate docstring for {target.name}"
    command = types.Command(title=title, command=CMD_DOCSTRING, arguments=[
        doc.uri, {"line": start.line, "character": start.character}])
    if not takes_code_actions(caps):  # Command literals only: the command writes it when chosen
        return [command] if applies_edits(caps) else None
    action = types.CodeAction(title=title, kind=types.CodeActionKind.RefactorRewrite,
                              data={"uri": doc.uri, "line": start.line, "endLine": end.line})
    if resolves_edits(caps):
        return [action]
    if params.context.trigger_kind == types.CodeActionTriggerKind.Automatic:
        # Asked for at a cursor move, not by the user: writing the docstring now would hold the model
        # thread (and the completions queued behind it) for an action that is rarely chosen. The command
        # writes it when it is, through workspace/applyEdit: a client without that gets the action when
        # it asks for the menu.
        if not applies_edits(caps):
            return None
        action.command = command
        return [action]
    edit = await docstring_edit(ls, doc, target)  # eager, within the time budget
    if edit is None:
        return None
    action.edit = edit
    return [action]


async def resolve_code_action(ls: CodeLlamaServer, action: types.CodeAction) -> types.CodeAction:
    """codeAction/resolve: the action's edit, written for the place its `data` names."""
    data = action.data if isinstance(action.data, dict) else {}
    uri, line = data.get("uri"), data.get("line")
    end_line = data.get("endLine", line)
    if not (isinstance(uri, str) and isinstance(line, int) and isinstance(end_line, int)):
        raise JsonRpcInvalidParams("codeAction/resolve: data must be {uri, line, endLine}, as sent")
    doc = await ls.document(uri)
    await ls.current_settings()  # the docstring style, time budget
    target = doc and await target_at(ls, doc, line, end_line)
    if doc and target:
        action.edit = await docstring_edit(ls, doc, target)
    return action


async def generate_docstring_command(ls: CodeLlamaServer, args: tuple[Any, ...]) -> dict[str, Any]:
    """codellama.generateDocstring: write the docstring at [uri, position] through workspace/applyEdit; says
    whether it was applied, and if not, why."""
    uri, line = _uri_and_line(args)
    if not applies_edits(ls.client_capabilities):  # the edit could reach it no other way: nothing to write it for
        return {"applied": False, "reason": "the client does not take workspace/applyEdit"}
    doc = await ls.document(uri)
    await ls.current_settings()
    target = doc and await target_at(ls, doc, line)
    if not doc or not target:
        return {"applied": False, "reason": "no function or class without a docstring here"}
    if not ls.worker.ready:
        return {"applied": False, "reason": f"model {ls.worker.state}"}
    if (why := ls.cannot_infill()) is not None:
        return {"applied": False, "reason": why}
    edit = await docstring_edit(ls, doc, target)
    if edit is None:
        return {"applied": False, "reason": "cancelled"}
    try:
        result = await ls.workspace_apply_edit_async(
            types.ApplyWorkspaceEditParams(edit, label="Generate docstring"))
    except ReplyTimeout as e:  # given up after protocol.REPLY_S_BY_METHOD
        return {"applied": False, "reason": str(e)}
    except JsonRpcException as e:  # the client answered with an error: its refusal, not our failure
        log.warning("the client answered workspace/applyEdit with an error: %s", e.message)
        return {"applied": False, "reason": f"the client refused the edit: {e.message}"}
    return {"applied": bool(result and result.applied)}


# -- targets, in the targets process ------------------------------------------------------------------------
async def target_at(ls: CodeLlamaServer, doc: Document, line: int, end_line: int | None = None) -> DocTarget | None:
    """The docstring target at `line` (to `end_line`) of `doc`, a snapshot: the answer is for the version asked
    about, whatever edits come meanwhile. Found in the targets process (targets.py): a file's first parse, or one
    while it does not parse, took 50-300 ms at 10,000 lines (seconds at megabytes), when nothing else was read or
    answered."""
    uri = unquote(doc.uri) if ls.documents.get(doc.uri) is not None else None  # a file not open: no close
    return await ls.targets.find(uri, doc.text, doc.language_id, line, end_line)


# -- the edit, on the model thread --------------------------------------------------------------------------
async def docstring_edit(ls: CodeLlamaServer, doc: Document, target: DocTarget) -> types.WorkspaceEdit | None:
    """Write the docstring for `target` on the model thread; None when superseded or out of time."""
    uri, text, settings = doc.uri, doc.text, ls.settings
    deadline = time.monotonic() + 4 * settings.time_budget_ms / 1000

    def write(engine: Backend, cancel: CancelFlag) -> DocEdit:
        def infill(prefix: str, suffix: str, max_tokens: int) -> str:
            if time.monotonic() > deadline:  # out of time: the skeleton keeps its neutral words
                return ""
            return infill_text(engine, prefix, suffix, max_tokens, settings, cancel)
        return generate_docstring(text, target, infill, style=settings.docstring_style)

    try:
        edit = await ls.worker.run(uri + "#docstring", write)
    except Cancelled:
        return None
    except BackendUnavailable as e:
        ls.outage.failed(e)
        return None
    except Exception:
        log.exception("docstring generation failed at %s:%s", uri, target.line)
        return None
    ls.outage.succeeded()
    # The user may have typed while it was written (seconds): it goes where its place is now. DocEdit
    # counts UTF-16 units; the client may have negotiated another position encoding.
    now = ls.documents.get(uri) or doc
    start = offset_at(text, edit.line, edit.character, "utf-16")
    end = offset_at(text, edit.line, edit.character + edit.replaced, "utf-16")
    start_now, end_now = rebased_offset(text, now.text, start), rebased_offset(text, now.text, end)
    if start_now is None or end_now is None or end_now - start_now != end - start:
        log.info("docstring for %s left out: the document changed where it goes", target.name)
        return None
    span = types.Range(now.position_at(start_now), now.position_at(end_now))
    return types.WorkspaceEdit(changes={uri: [types.TextEdit(span, edit.new_text)]})
