"""What goes to a vLLM server and what comes back, read as pure functions (no I/O: model/vllm_backend.py sends
and receives): the streamed completion request, the server-sent events it is answered with and the token ids
they carry, the served model to use, and failures put in one readable line."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from .backend import BackendUnavailable, IncompatibleModel

# The environment variable the server's API key is read from (lsp_server/loading.py): a refused key's message
# names it.
API_KEY_ENV = "CODELLAMA_API_KEY"


@dataclass(frozen=True)
class ServedModel:
    """A model the server serves, as /v1/models lists it."""

    name: str  # the `model` field of requests
    max_model_len: int  # its context in tokens; 0 where the server does not say


def completion_body(model: str, prompt: list[int], *, max_tokens: int, temperature: float, top_p: float,
                    stop_ids: Iterable[int], allowed: list[int] | None = None, logprobs: int = 0) -> dict[str, Any]:
    """A streamed /v1/completions request for token-id `prompt`; `allowed` restricts the tokens drawn;
    `logprobs` > 0 asks for that many likeliest tokens at each step, named by id (see ranked_tokens)."""
    body: dict[str, Any] = {
        "model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": temperature, "top_p": top_p,
        "stop_token_ids": sorted(stop_ids), "stream": True, "return_token_ids": True,
    }
    if allowed is not None:
        body["allowed_token_ids"] = allowed
    if logprobs:
        body["logprobs"] = logprobs
        body["return_tokens_as_token_ids"] = True  # keys "token_id:123", not text (which pieces can share)
    return body


def sse_lines(chunks: Iterable[str]) -> Iterator[str]:
    """The lines of a server-sent event stream's text: ended by LF or CRLF only. Not by the other line
    boundaries of str.splitlines() (and httpx's iter_lines): vLLM writes a token's text raw in its JSON, and
    U+2028, U+2029 or U+0085 there would cut an event in two."""
    rest = ""
    for chunk in chunks:
        *lines, rest = (rest + chunk).split("\n")
        for line in lines:
            yield line.removesuffix("\r")
    if rest:
        yield rest


def sse_events(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """The JSON payloads of a server-sent event stream's `data:` lines, up to `[DONE]`; a payload that is not
    a JSON object, or lines that end before `[DONE]` (vLLM always ends with it: the server went down or a
    proxy cut the answer), raise BackendUnavailable: the tokens so far are not a whole answer."""
    for line in lines:
        if not line.startswith("data:"):
            continue  # blank separators, comments, other fields
        data = line[5:].strip()
        if data == "[DONE]":
            return
        try:
            event = json.loads(data)
        except ValueError:
            event = None
        if not isinstance(event, dict):
            raise BackendUnavailable(f"malformed event in the stream: {data[:80]!r}")
        yield event
    raise BackendUnavailable("the stream ended before [DONE]: the server stopped or a proxy cut the answer")


def event_tokens(event: dict[str, Any]) -> list[int]:
    """The token ids one streamed event carries (the stop token included, as vLLM sends it)."""
    if "error" in event:  # vLLM reports a failure during generation as an event
        raise BackendUnavailable(f"generation failed: {error_message(event)}")
    if not event.get("choices"):
        return []  # the usage summary
    choice = event["choices"][0] if isinstance(event["choices"], list) else None
    if not isinstance(choice, dict):
        raise BackendUnavailable(f"malformed event in the stream: {str(event)[:80]!r}")
    if choice.get("finish_reason") in ("abort", "error"):
        raise BackendUnavailable(f"the server ended the generation ({choice['finish_reason']})")
    tokens = choice.get("token_ids") or []
    if not isinstance(tokens, list) or not all(isinstance(t, int) for t in tokens):
        raise BackendUnavailable(f"malformed token ids in the stream: {str(tokens)[:80]!r}")
    return tokens


def ranked_tokens(event: dict[str, Any]) -> list[int]:
    """The ids of the first step's likeliest tokens in a `logprobs` event, likeliest first."""
    choices = event.get("choices") or [{}]
    top = ((choices[0].get("logprobs") or {}).get("top_logprobs") or [None])[0] or {}
    ranked = sorted(top.items(), key=lambda kv: -kv[1])
    return [int(key.removeprefix("token_id:")) for key, _ in ranked if key.startswith("token_id:")]


def error_message(payload: object) -> str:
    """The message of an OpenAI-style error body ({"error": {"message": ...}}), else the body itself."""
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return error["message"]
        if isinstance(error, str):
            return error
        if isinstance(payload.get("detail"), str):  # FastAPI's own errors, e.g. a bad API key
            return payload["detail"]
    return str(payload)[:300]


def http_error(status: int, body: str) -> str:
    """One readable line for a failed HTTP answer."""
    try:
        message = error_message(json.loads(body))
    except ValueError:
        message = body.strip()[:300]
    hint = f" (set {API_KEY_ENV} to the server's API key)" if status in (401, 403) else ""
    return f"HTTP {status}: {message or httpx.codes.get_reason_phrase(status)}{hint}"


def describe_transport_error(error: httpx.HTTPError) -> str:
    """A short reason for a failure below HTTP: refused, timed out, reset."""
    if isinstance(error, httpx.ConnectError):
        return f"cannot connect ({error})"
    if isinstance(error, httpx.TimeoutException):
        return f"timed out ({type(error).__name__})"
    return f"{type(error).__name__}: {error}"


def pick_model(models: list[dict[str, Any]], wanted: str | None) -> ServedModel:
    """The served model to use: the one named `wanted` (its id, path or last path part), else the only one."""
    def names(m: dict[str, Any]) -> set[str]:
        return {str(m.get("id")), str(m.get("root"))}

    def last_part(name: str) -> str:
        return name.rstrip("/").rsplit("/", 1)[-1]

    found: list[dict[str, Any]] = []
    if wanted:
        found = ([m for m in models if wanted in names(m)]
                 or [m for m in models if last_part(wanted) in {last_part(n) for n in names(m)}])
    if not found and len(models) == 1:
        found = models
    if not found:
        ids = ", ".join(str(m.get("id")) for m in models) or "nothing"
        raise IncompatibleModel(f"the server serves {ids}; pass --model with the one to use")
    return ServedModel(str(found[0]["id"]), int(found[0].get("max_model_len") or 0))
