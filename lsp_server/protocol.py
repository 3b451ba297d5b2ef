"""JSON-RPC for the server, strict where pygls is lenient: every request gets exactly one response.

pygls answers a request whose params do not parse with an error popup instead of a response, drops
requests after shutdown silently and has no answer for a body that is not JSON. Here each message body
is checked in order: UTF-8, JSON, a JSON-RPC envelope, the session's state (initialized, shut down),
then the params' types; the first failure is the JSON-RPC error response to that request (-32700,
-32600, -32002 or -32602), naming what was wrong. Notifications cannot be answered: a bad one is
logged and dropped. Messages that pass are handled by pygls as usual.

The server's own requests to the client (workspace/configuration, progress creation, workspace/applyEdit)
are given up after a time (REPLY_S), so that a client that never answers leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid
from collections import deque
from concurrent.futures import Future
from typing import Any

import attrs
import cattrs
from cattrs.errors import BaseValidationError
from lsprotocol import types
from pygls.exceptions import (
    JsonRpcException,
    JsonRpcInternalError,
    JsonRpcInvalidParams,
    JsonRpcInvalidRequest,
    JsonRpcMethodNotFound,
    JsonRpcParseError,
    JsonRpcServerNotInitialized,
)
from pygls.protocol import JsonRPCNotification, JsonRPCRequestMessage, JsonRPCResponseMessage, LanguageServerProtocol

from .text import replace_lone_surrogates

log = logging.getLogger(__name__)

MsgId = int | str
# How long the server waits for the client's answer to one of its requests before it gives the request up.
REPLY_S = 2.0
REPLY_S_BY_METHOD = {types.WORKSPACE_APPLY_EDIT: 30.0}  # may wait for the user (a file to save, a dialog)
# JSON can only spell a lone surrogate as an escape; without one, a message needs no scrubbing.
_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
# A body over this is read by decode_in_steps, STEP_CHARS at a time (json.loads: about 0.2 ms per 64K characters).
STEPPED_BODY_BYTES = 256 << 10
STEP_CHARS = 64 << 10
MAX_STEPPED_STRINGS = 4096  # a body with more strings is decoded at once
_NO_BACKSLASH_RUN = re.compile(r"[^\\]{6}")


class Rejected(Exception):
    """A message that cannot be handled; `msg_id` is the request to answer with `error` (None: unknown)."""

    def __init__(self, error: JsonRpcException, msg_id: MsgId | None = None) -> None:
        super().__init__(error.message)
        self.error, self.msg_id = error, msg_id


def decode(body: bytes) -> dict[str, Any]:
    """The JSON object in `body`, with lone surrogates replaced; Rejected when it is not one."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        error = JsonRpcParseError(f"Parse error: the message is not UTF-8 ({e.reason} at byte {e.start})")
        raise Rejected(error, request_id(body.decode("utf-8", "replace"))) from e
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise Rejected(JsonRpcParseError(f"Parse error: {e}")) from e
    if not isinstance(data, dict):
        raise Rejected(JsonRpcInvalidRequest("Invalid request: a message is one JSON object (LSP has no batches)"))
    try:
        return _scrub(data) if _ESCAPED_SURROGATE.search(text) else data
    except RecursionError as e:  # _scrub takes two frames a level where json.loads took one
        msg_id = _valid_id(data.get("id")) if "method" in data else None
        raise Rejected(JsonRpcParseError("Parse error: the message is nested too deeply"), msg_id) from e


async def decode_in_steps(body: bytes) -> dict[str, Any]:
    """decode(body), the event loop given back (asyncio.sleep(0)) every STEP_CHARS characters or so: its long strings
    (a document's text) are decoded in pieces, the rest at once. json.loads holds the GIL throughout, so on a thread
    it would hold the loop as long: 15-30 ms for a 5 MB document. Falls back to decode(body) for what it cannot
    split (a body of many short strings) and for what is not valid JSON, whose error decode names."""
    try:
        data = await _decode_long_strings(body.decode("utf-8"))
    except (ValueError, RecursionError):
        data = None
    return decode(body) if data is None else data


async def _decode_long_strings(text: str) -> dict[str, Any] | None:
    # The strings' delimiters: the quotes left once escaped backslashes, then escaped quotes, are masked (JSON has
    # no backslash outside strings). Masked a piece at a time between safe cuts: a run of backslashes never spans one.
    quotes: list[int] = []
    start = 0
    while start < len(text):
        end = _safe_cut(text, start + STEP_CHARS)
        masked = text[start:end].replace("\\\\", "  ").replace('\\"', "  ")
        found = masked.find('"')
        while found != -1:
            quotes.append(start + found)
            found = masked.find('"', found + 1)
        if len(quotes) > MAX_STEPPED_STRINGS * 2:
            return None  # many short strings: no piece of work here is long, nor any saved by steps
        start = end
        await asyncio.sleep(0)
    if len(quotes) % 2:
        return None
    token = uuid.uuid4().hex  # names the long strings' places in the rest, which no message can contain by chance
    skeleton, long_strings, done = [], {}, 0
    for opening, closing in zip(quotes[::2], quotes[1::2]):
        if closing - opening <= STEP_CHARS:
            continue
        pieces, start = [], opening + 1
        while start < closing:
            end = min(_safe_cut(text, start + STEP_CHARS), closing)
            piece = json.loads(f'"{text[start:end]}"')
            pieces.append(replace_lone_surrogates(piece) if _ESCAPED_SURROGATE.search(text, start, end) else piece)
            start = end
            await asyncio.sleep(0)
        place = f"{token}:{len(long_strings)}"
        long_strings[place] = "".join(pieces)
        skeleton += [text[done:opening], json.dumps(place)]
        done = closing + 1
    if not long_strings:
        return None
    skeleton.append(text[done:])
    rest = "".join(skeleton)
    data = json.loads(rest)
    if not isinstance(data, dict):
        return None
    data = _put_back(_scrub(data) if _ESCAPED_SURROGATE.search(rest) else data, long_strings)
    return data if not long_strings else None  # one was dropped (a duplicate key): whatever decode makes of it


def _safe_cut(text: str, at: int) -> int:
    """The first place from `at` (or the end) with no backslash in the 6 characters before: never inside an escape
    (\\n, \\uXXXX) nor between the two of a surrogate pair, which decode apart as two lone surrogates."""
    if at >= len(text):
        return len(text)
    found = _NO_BACKSLASH_RUN.search(text, max(0, at - 6))
    return found.end() if found else len(text)


def _put_back(value: Any, long_strings: dict[str, str]) -> Any:
    """`value` with each place named in `long_strings` replaced by its string, taken from `long_strings`."""
    if isinstance(value, str):
        return long_strings.pop(value, value)
    if isinstance(value, list):
        return [_put_back(v, long_strings) for v in value]
    if isinstance(value, dict):
        return {long_strings.pop(k, k): _put_back(v, long_strings) for k, v in value.items()}
    return value


def request_id(text: str) -> MsgId | None:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return _valid_id(data.get("id")) if isinstance(data, dict) else None


def _is_notification(kind: type | None) -> bool:
    """Whether lsprotocol's type for a method's message is a notification's (None: a method it does not know)."""
    return kind is not None and attrs.has(kind) and "id" not in attrs.fields_dict(kind)


def _valid_id(value: object) -> MsgId | None:
    return value if isinstance(value, (int, str)) and not isinstance(value, bool) else None


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return replace_lone_surrogates(value)
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    if isinstance(value, dict):
        return {_scrub(k): _scrub(v) for k, v in value.items()}
    return value


def _describe(error: BaseException) -> str:
    """cattrs' validation errors as "field.path: problem", with LSP's camelCase field names."""
    if not isinstance(error, BaseValidationError):
        return str(error)
    problems = []
    for line in cattrs.transform_error(error):
        problem, _, where = line.rpartition(" @ ")
        where = re.sub(r"_([a-z])", lambda m: m.group(1).upper(), where.removeprefix("$").lstrip("."))
        problems.append(f"{where}: {problem}" if where else problem)
    return "; ".join(problems)


class ReplyTimeout(TimeoutError):
    """The client did not answer one of the server's requests in time; the request was given up."""


class CodeLlamaProtocol(LanguageServerProtocol):
    """pygls' LSP protocol, fed one body at a time by transport.py through `receive`."""

    def __init__(self, server: Any, converter: cattrs.Converter) -> None:
        super().__init__(server, converter)
        # The server keeps the open documents and notebooks itself (documents.py): pygls' copies would split
        # lines with str.splitlines and apply edits at the wrong place after a form feed or U+2028. Its
        # notebook handlers must go too: they run before ours with the same params, and pygls' position
        # conversion moves a position past its line's end in place (to one before the end, by its lines),
        # so our copy of a cell then took the edit at the wrong place.
        for method in (types.TEXT_DOCUMENT_DID_OPEN, types.TEXT_DOCUMENT_DID_CHANGE, types.TEXT_DOCUMENT_DID_CLOSE,
                       types.NOTEBOOK_DOCUMENT_DID_OPEN, types.NOTEBOOK_DOCUMENT_DID_CHANGE,
                       types.NOTEBOOK_DOCUMENT_DID_CLOSE):
            self.fm.builtin_features.pop(method, None)
        self.initialize_received = False
        self.exit_code: int | None = None  # set by the exit notification: 0 after shutdown, 1 without
        self._methods: dict[MsgId, str] = {}  # the method of each request being handled, for the log
        self._given_up: deque[MsgId] = deque(maxlen=64)  # the server's requests given up lately, whose answer is late
        self._loop: asyncio.AbstractEventLoop | None = None  # the session's, where requests are given up

    def receive(self, body: bytes) -> None:
        """Handle one message body, answering a request that cannot be handled with its error."""
        self._handle(body, None)

    async def receive_in_steps(self, body: bytes) -> None:
        """`receive` for a big body (over STEPPED_BODY_BYTES): its JSON is decoded a piece at a time, the event loop
        free between pieces (decode_in_steps). The caller awaits it before it hands on the next message."""
        data: dict[str, Any] | Rejected | None
        try:
            data = await decode_in_steps(body)
        except Rejected as rejected:
            data = rejected
        except Exception:  # a bug in the stepped decoder: escaping, it ended the session
            log.exception("cannot decode a %d-byte message in steps: decoded at once", len(body))
            data = None  # _handle decodes it as it does a small one, and answers whatever fails there
        self._handle(body, data)

    def _handle(self, body: bytes, decoded: dict[str, Any] | Rejected | None) -> None:
        msg_id = None
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        try:
            if isinstance(decoded, Rejected):
                raise decoded
            data = decode(body) if decoded is None else decoded
            msg_id = _valid_id(data.get("id")) if "method" in data else None
            message = self._admit(data)
        except Rejected as rejected:
            log.warning("%s", rejected.error.message)
            self.send_error(rejected.msg_id, rejected.error)
            return
        except Exception as e:  # a bug here must cost one message, never the session
            self._lost_to_a_bug(msg_id, e)
            return
        if message is None:
            return
        try:
            self.handle_message(message)  # pygls answers what its handlers raise, but not what it raises itself
        except ConnectionError:  # the client is gone: the session ends (transport.py)
            raise
        except Exception as e:
            self._lost_to_a_bug(msg_id, e)

    def _lost_to_a_bug(self, msg_id: MsgId | None, error: Exception) -> None:
        log.exception("cannot handle a message")
        if msg_id is not None:
            self.send_error(msg_id, JsonRpcInternalError(f"Internal error: {error}"))

    def send_error(self, msg_id: MsgId | None, error: JsonRpcException) -> None:
        # Written by hand: lsprotocol's converter leaves out "id": null, which JSON-RPC requires here.
        self._send_data({"jsonrpc": "2.0", "id": msg_id, "error": {"code": error.code, "message": error.message}})

    def _admit(self, data: dict[str, Any]) -> Any:
        """The typed message, None to drop it, or Rejected."""
        if "method" not in data and ("result" in data or "error" in data):
            return self._admit_response(data)
        method = data.get("method")
        if "id" not in data and method is not None:
            return self._admit_notification(method, data)
        msg_id = _valid_id(data.get("id"))
        if msg_id is None:
            raise Rejected(JsonRpcInvalidRequest("Invalid request: a request needs an id, an integer or a string"))
        if data.get("jsonrpc") != "2.0":
            raise Rejected(JsonRpcInvalidRequest('Invalid request: "jsonrpc" must be "2.0"'), msg_id)
        if not isinstance(method, str):
            raise Rejected(JsonRpcInvalidRequest("Invalid request: method must be a string"), msg_id)
        if _is_notification(self.get_message_type(method)):
            # With an id, pygls ran it as the notification and answered nothing (exit: the process ended).
            raise Rejected(JsonRpcInvalidRequest(f"Invalid request: {method} is a notification, which has no id"),
                           msg_id)
        if self._shutdown:
            raise Rejected(JsonRpcInvalidRequest(f"Invalid request: {method} after shutdown"), msg_id)
        if method == types.INITIALIZE and self.initialize_received:
            raise Rejected(JsonRpcInvalidRequest("Invalid request: initialize was already received"), msg_id)
        if method != types.INITIALIZE and not self.initialize_received:
            raise Rejected(JsonRpcServerNotInitialized(f"Server not initialized: {method} before initialize"),
                           msg_id)
        if method not in self.fm.builtin_features and method not in self.fm.features:
            raise Rejected(JsonRpcMethodNotFound.of(method), msg_id)
        try:
            message = self.structure_message(data)
        except JsonRpcException as e:
            raise Rejected(e, msg_id) from e
        if method == types.INITIALIZE:
            self.initialize_received = True
        self._methods[msg_id] = method
        return message

    def _execute_handler(self, msg_id: MsgId, handler: Any, callback: Any, args: tuple[Any, ...] | None = None,
                         kwargs: dict[str, Any] | None = None) -> None:
        super()._execute_handler(msg_id, handler, callback, args, kwargs)
        # pygls keeps the future of each async or generator handler it runs under the id it ran it with, to cancel
        # it; for a notification's handler and a handler its own handlers call (an async command, through
        # workspace/executeCommand) that id is a fresh uuid nobody ever pops: one done future kept per such
        # message, for the whole session. A done future has nothing left to cancel: it is forgotten.
        # Forgotten on the event loop, later: a generator handler's future runs its callbacks at once when cancelled,
        # which pygls' shutdown does while it iterates over this table, and a thread handler's on its own thread.
        if (future := self._request_futures.get(msg_id)) is not None:
            loop = asyncio.get_running_loop()  # handlers run on it
            future.add_done_callback(lambda done: self._forget_later(loop, msg_id, done))

    def _forget_later(self, loop: asyncio.AbstractEventLoop, msg_id: MsgId, future: Future[Any]) -> None:
        try:
            loop.call_soon_threadsafe(self._forget_future, msg_id, future)
        except RuntimeError:  # the loop is closed: the session is over, and the table with it
            pass

    def _forget_future(self, msg_id: MsgId, future: Future[Any]) -> None:
        if self._request_futures.get(msg_id) is future:
            del self._request_futures[msg_id]

    def _send_handler_result(self, future: Future[Any], *, msg_id: MsgId) -> None:
        """A handler's result as the request's response. A JsonRpcException it raised is its answer to the
        client's mistake (bad arguments, an unknown command): one warning line and the error response, where
        pygls logs a traceback, which editors show in their LSP log as the server's failure. Anything else is
        a bug of ours: pygls' answer (-32603) and its traceback."""
        method = self._methods.pop(msg_id, "a request")
        error = future.exception() if future.done() and not future.cancelled() else None
        if not isinstance(error, JsonRpcException):
            super()._send_handler_result(future, msg_id=msg_id)
            return
        self._request_futures.pop(msg_id, None)
        # Our messages often name the method already ("codeAction/resolve: data must be ..."): said once.
        log.warning("%s", error.message if error.message.startswith(method) else f"{method} failed: {error.message}")
        self._send_response(msg_id, error=error.to_response_error())

    def send_request(self, method: str, params: Any | None = None, callback: Any = None,
                     msg_id: MsgId | None = None) -> Future[Any]:
        """pygls' request to the client, given up after REPLY_S (REPLY_S_BY_METHOD): its future then fails with
        ReplyTimeout and leaves pygls' tables. pygls keeps an unanswered request there for the session, and awaits
        it for ever."""
        msg_id = str(uuid.uuid4()) if msg_id is None else msg_id  # pygls' default, made here to know it
        future = super().send_request(method, params, callback, msg_id)
        timeout = REPLY_S_BY_METHOD.get(method, REPLY_S)
        try:
            asyncio.get_running_loop().call_later(timeout, self._give_up, msg_id, future, method, timeout)
        except RuntimeError:  # sent from another thread: the timer is set on the session's loop
            if self._loop is not None:
                self._loop.call_soon_threadsafe(self._loop.call_later, timeout, self._give_up, msg_id, future,
                                                method, timeout)
        return future

    def _give_up(self, msg_id: MsgId, future: Future[Any], method: str, timeout: float) -> None:
        if self._request_futures.get(msg_id) is not future:  # answered
            return
        del self._request_futures[msg_id]
        self._result_types.pop(msg_id, None)
        self._given_up.append(msg_id)
        if not future.done():  # else its waiter was cancelled, which cancelled it
            future.set_exception(ReplyTimeout(f"the client did not answer {method} within {timeout:g}s"))

    def _handle_response(self, msg_id: MsgId, result: Any | None = None,
                         error: types.ResponseError | None = None) -> None:
        """pygls' handling of the client's answer, but a late one (to a request given up, or whose waiter was
        cancelled) is dropped with a debug line: pygls warned of an unknown id, or raised InvalidStateError
        setting the result of a cancelled future."""
        self._result_types.pop(msg_id, None)  # left there by an error answer (structure_message pops a result's)
        future = self._request_futures.get(msg_id)
        if future is None and msg_id in self._given_up or future is not None and future.done():
            self._request_futures.pop(msg_id, None)
            log.debug("dropped the client's late answer to request %s", msg_id)
            return
        super()._handle_response(msg_id, result, error)

    def _admit_notification(self, method: object, data: dict[str, Any]) -> Any:
        if method == types.EXIT:
            self.exit_code = 0 if self._shutdown else 1
            return None
        if not isinstance(method, str) or data.get("jsonrpc") != "2.0":
            log.warning("dropped a notification that is not JSON-RPC 2.0")
            return None
        if self._shutdown or not self.initialize_received:
            log.info("dropped a %s notification (%s)", method,
                     "after shutdown" if self._shutdown else "before initialize")
            return None
        try:
            return self.structure_message(data)
        except JsonRpcException as e:
            log.warning("dropped a %s notification: %s", method, e.message)
            return None

    def _admit_response(self, data: dict[str, Any]) -> Any:
        """A response to one of the server's requests. Never answered, even when broken: two peers answering
        each other's errors would never stop."""
        msg_id = _valid_id(data.get("id"))
        if msg_id is None or ("result" in data and "error" in data) or data.get("jsonrpc") != "2.0":
            log.warning("dropped a response that is not JSON-RPC 2.0 or has no usable id")
            return None
        try:
            return self.structure_message(data)
        except JsonRpcException as e:  # fail the request it answers, rather than leave it waiting
            self._handle_response(msg_id, error=types.ResponseError(e.code, e.message))
            return None

    def structure_message(self, data: dict[str, Any]) -> Any:
        """`data` as lsprotocol's type for its method; JsonRpcInvalidParams names each field that does not fit."""
        method = data.get("method")
        if "method" not in data:
            kind = types.ResponseErrorMessage if "error" in data else (
                self._result_types.pop(data["id"], None) or JsonRPCResponseMessage)
        else:
            kind = self.get_message_type(method) or (JsonRPCRequestMessage if "id" in data else JsonRPCNotification)
            if kind in (JsonRPCRequestMessage, JsonRPCNotification):
                data = {"params": None, **data}  # optional in JSON-RPC, required by pygls' generic types
        try:
            return self._converter.structure(data, kind)
        except (BaseValidationError, TypeError, ValueError, KeyError, AttributeError) as e:
            raise JsonRpcInvalidParams(f"Invalid params for {method or 'a response'}: {_describe(e)}") from e
