"""Typed server settings, parsed tolerantly from editor configuration.

Editors send whatever the user wrote: camelCase or snake_case keys, numbers
as strings, a ``{"codellama": {...}}`` section or the bare section. Parsing
never raises; every rejected key or value yields a readable warning and
keeps the base value, so one typo cannot take the server down.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import urlsplit

from model.backend import redact_url

__all__ = ["PROMPT_OVERHEAD", "SETTING_NAMES", "Settings", "consistency_warnings", "extra_budget", "parse_settings",
           "setting_value"]

SECTION = "codellama"


@dataclass(frozen=True)
class Settings:
    """All server settings with their defaults (see ``SETTING_NAMES``)."""

    model: str | None = None  # checkpoint dir, HF-cache repo id, or None: embedded demo model
    device: str = "auto"  # auto|cpu|cuda
    dtype: str = "auto"  # auto|float32|bfloat16|float16
    quant: str = "auto"  # auto|nf4|fp4|int8|none  (auto: nf4 on cuda, none on cpu)
    kernel: str = "auto"  # auto|bnb|triton: 4-bit decode kernel (auto: triton on cuda when installed)
    ngram_cache: str = "auto"  # auto|on|off: mix a document n-gram cache into the model's (auto: if the model asks)
    max_tokens: int = 96  # multi-line completions
    max_tokens_single_line: int = 48
    temperature: float = 0.0
    top_p: float = 0.95
    prefix_tokens: int = 1024
    suffix_tokens: int = 256
    fim_mode: str = "spm"  # psm|spm
    extra_context: bool = True
    extra_context_tokens: int = 256
    debounce_ms: int = 0
    invoked_suggestions: int = 3  # suggestions offered when asked for (Alt+\\, Ctrl+Space); typing gets one
    time_budget_ms: int = 2000
    disabled_languages: tuple[str, ...] = ()
    line_policy: str = "auto"  # auto|single|multi
    docstring_style: str = "google"  # google|numpy|sphinx|plain
    enabled: bool = True
    context_length: int = 4096  # KV cache size (tokens)
    backend: str = "local"  # local|vllm: generate here, or on the vLLM server at remote_url
    remote_url: str = "http://127.0.0.1:8000"  # the vLLM server (its API key: $CODELLAMA_API_KEY)
    remote_timeout_ms: int = 5000  # wait this long to connect, or for the next token, before calling it down

    def merged(self, **changes: Any) -> Settings:
        """Copy with ``changes`` (snake_case or camelCase) applied and validated.

        Unlike :func:`parse_settings` this is for code, so an unknown key or an
        invalid value raises ``ValueError``.
        """
        settings, errors = _apply(changes, self)
        if errors:
            raise ValueError("; ".join(errors))
        return settings

    def to_camel_dict(self) -> dict[str, Any]:
        """camelCase mapping, e.g. for logging or echoing to the client."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[_camel(f.name)] = list(value) if isinstance(value, tuple) else value
        return out


# --------------------------------------------------------------------------
# Key handling
# --------------------------------------------------------------------------


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _snake(name: str) -> str:
    name = name.strip().replace("-", "_")
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


_FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in fields(Settings))
SETTING_NAMES: tuple[str, ...] = tuple(_camel(name) for name in _FIELD_NAMES)
"""camelCase names of every setting, in declaration order."""


# --------------------------------------------------------------------------
# Value coercion: each returns the coerced value or raises _Invalid(reason).
# --------------------------------------------------------------------------


class _Invalid(Exception):
    pass


def _describe(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _as_int(value: object) -> int:
    if isinstance(value, bool):
        raise _Invalid("expected an integer, got a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
        try:
            number = float(value.strip())
        except ValueError:
            raise _Invalid("expected an integer") from None
        if number.is_integer():
            return int(number)
    raise _Invalid("expected an integer")


def _as_float(value: object) -> float:
    if isinstance(value, bool):
        raise _Invalid("expected a number, got a boolean")
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise _Invalid("expected a number") from None
    else:
        raise _Invalid("expected a number")
    if not math.isfinite(number):
        raise _Invalid("expected a finite number")
    return number


def _as_bool(value: object) -> bool:
    # Numbers are deliberately not booleans: `1` is more likely a mistake
    # (a value meant for another key) than a way to write true.
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "yes", "on"):
            return True
        if lowered in ("false", "no", "off"):
            return False
    raise _Invalid("expected true or false")


def _int_range(low: int, high: int | None = None) -> Callable[[object], int]:
    def coerce(value: object) -> int:
        number = _as_int(value)
        if number < low or (high is not None and number > high):
            bound = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise _Invalid(f"must be {bound}")
        return number

    return coerce


def _float_range(
    low: float, high: float, *, low_open: bool = False
) -> Callable[[object], float]:
    def coerce(value: object) -> float:
        number = _as_float(value)
        if number > high or number < low or (low_open and number == low):
            left = "(" if low_open else "["
            raise _Invalid(f"must be in {left}{low:g}, {high:g}]")
        return number

    return coerce


def _enum(*choices: str) -> Callable[[object], str]:
    def coerce(value: object) -> str:
        if not isinstance(value, str):
            raise _Invalid(f"expected one of {', '.join(choices)}")
        lowered = value.strip().lower()
        if lowered not in choices:
            raise _Invalid(f"expected one of {', '.join(choices)}")
        return lowered

    return coerce


def _model(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _Invalid("expected a path or model id (string) or null")
    return value.strip() or None  # "" means "use the demo model" too


def _url(value: object) -> str:
    if not isinstance(value, str):
        raise _Invalid("expected an http:// or https:// URL")
    url = value.strip().rstrip("/")
    url = url[: -len("/v1")] if url.endswith("/v1") else url  # an OpenAI base URL names the same server
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise _Invalid("expected an http:// or https:// URL")
    return url


def _languages(value: object) -> tuple[str, ...]:
    if isinstance(value, str):  # "markdown, plaintext" from a flat config
        items: list[object] = list(value.split(","))
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise _Invalid("expected a list of language ids")
    out: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise _Invalid(f"expected language ids (strings), got {_describe(item)}")
        item = item.strip()
        if item and item not in out:
            out.append(item)
    return tuple(out)


_COERCE: dict[str, Callable[[object], Any]] = {
    "model": _model,
    "device": _enum("auto", "cpu", "cuda"),
    "dtype": _enum("auto", "float32", "bfloat16", "float16"),
    "quant": _enum("auto", "nf4", "fp4", "int8", "none"),
    "kernel": _enum("auto", "bnb", "triton"),
    "ngram_cache": _enum("auto", "on", "off"),
    "max_tokens": _int_range(1, 4096),
    "max_tokens_single_line": _int_range(1, 4096),
    "temperature": _float_range(0.0, 2.0),
    "top_p": _float_range(0.0, 1.0, low_open=True),
    "prefix_tokens": _int_range(0, 1 << 20),
    "suffix_tokens": _int_range(0, 1 << 20),
    "fim_mode": _enum("psm", "spm"),
    "extra_context": _as_bool,
    "extra_context_tokens": _int_range(0, 1 << 20),
    "debounce_ms": _int_range(0, 60_000),
    "invoked_suggestions": _int_range(1, 10),
    "time_budget_ms": _int_range(1, 600_000),
    "disabled_languages": _languages,
    "line_policy": _enum("auto", "single", "multi"),
    "docstring_style": _enum("google", "numpy", "sphinx", "plain"),
    "enabled": _as_bool,
    "context_length": _int_range(128, 1 << 20),
    "backend": _enum("local", "vllm"),
    "remote_url": _url,
    "remote_timeout_ms": _int_range(1, 600_000),
}
assert set(_COERCE) == set(_FIELD_NAMES), "every setting needs a coercer"

# Tokens of a prompt beyond its windows: BOS and the FIM control tokens, with room to spare.
PROMPT_OVERHEAD = 8


# --------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------


def _section(raw: Mapping[Any, Any]) -> Mapping[Any, Any] | None:
    """The ``codellama`` section if ``raw`` wraps one, else ``raw`` itself."""
    for key, value in raw.items():
        if isinstance(key, str) and key.lower() == SECTION:
            return value if isinstance(value, Mapping) else None
    return raw


def parse_settings(raw: object, base: Settings = Settings(),
                   defaults: Settings = Settings()) -> tuple[Settings, list[str]]:
    """Apply the settings in ``raw`` on top of ``base``; never raises.

    ``raw`` is a mapping with camelCase, snake_case or kebab-case keys,
    optionally nested under ``"codellama"`` or written as dotted
    ``"codellama.maxTokens"`` keys. ``None`` or a non-mapping leaves ``base``
    unchanged. A JSON ``null`` value means "not set" (editors send it for
    settings without a default, and for one the user took back): the
    setting gets its value in ``defaults`` (for the server, its command-line
    flags). Unknown keys and invalid values produce one warning each and
    keep the base value.
    """
    if raw is None:
        return base, []
    if not isinstance(raw, Mapping):
        return base, [f"settings: expected an object, got {type(raw).__name__}; ignored"]
    section = _section(raw)
    if section is None:
        return base, [f"settings: '{SECTION}' must be an object; ignored"]
    settings, warnings = _apply(section, base, defaults)
    return settings, warnings + consistency_warnings(settings)


def _apply(section: Mapping[Any, Any], base: Settings,
           defaults: Settings = Settings()) -> tuple[Settings, list[str]]:
    """Validate and apply one flat section; returns the per-key problems."""
    warnings: list[str] = []
    changes: dict[str, Any] = {}
    for key, value in section.items():
        if not isinstance(key, str):
            warnings.append(f"settings: ignoring non-string key {_describe(key)}")
            continue
        name = key[len(SECTION) + 1 :] if key.lower().startswith(SECTION + ".") else key
        field = _snake(name)
        if field not in _COERCE:
            hint = difflib.get_close_matches(_camel(field), SETTING_NAMES, n=1)
            suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
            warnings.append(f"settings: unknown setting '{key}'{suggestion}; ignored")
            continue
        if value is None:
            changes[field] = getattr(defaults, field)
            continue
        try:
            changes[field] = _COERCE[field](value)
        except _Invalid as reason:
            shown, kept = value, getattr(base, field)
            if field == "remote_url":  # a URL may hold a password: never in a message
                shown, kept = (redact_url(v) if isinstance(v, str) else v for v in (shown, kept))
            warnings.append(
                f"settings: invalid value {_describe(shown)} for '{_camel(field)}': "
                f"{reason}; keeping {_describe(kept)}"
            )
    return (dataclasses.replace(base, **changes) if changes else base), warnings


def setting_value(name: str, value: object) -> Any:
    """`value` as the setting `name` (snake_case) holds it, checked as parse_settings checks an editor's
    (for command-line flags); ValueError saying why it cannot be."""
    try:
        return _COERCE[name](value)
    except _Invalid as reason:
        raise ValueError(str(reason)) from None


def extra_budget(s: Settings, context_length: int) -> int:
    """Tokens for other files' snippets: extraContextTokens, but never more than half of the context left after
    the answer, so that the document's own windows keep the other half (a budget the model's context cannot hold
    left no room for any prompt, and so gave no completion at all)."""
    room = context_length - max(s.max_tokens, s.max_tokens_single_line) - PROMPT_OVERHEAD
    return max(0, min(s.extra_context_tokens, room // 2))


def consistency_warnings(s: Settings) -> list[str]:
    """Cross-setting problems; reported only, never errors (the windows shrink to fit at run time)."""
    extra = extra_budget(s, s.context_length) if s.extra_context else 0
    needed = s.prefix_tokens + s.suffix_tokens + extra + max(s.max_tokens, s.max_tokens_single_line) + PROMPT_OVERHEAD
    if needed > s.context_length:
        return [
            f"settings: prefixTokens + suffixTokens + extraContextTokens (at most half the room) + maxTokens "
            f"(+{PROMPT_OVERHEAD}) = {needed} exceeds contextLength {s.context_length}; "
            "prompts must be trimmed to fit"
        ]
    return []
