from __future__ import annotations

import dataclasses

import pytest

from lsp_server.settings import SETTING_NAMES, Settings, parse_settings

DEFAULT = Settings()


def test_setting_names_are_camel_case_and_complete() -> None:
    assert SETTING_NAMES == (
        "model", "device", "dtype", "quant", "kernel", "ngramCache", "maxTokens", "maxTokensSingleLine",
        "temperature", "topP", "prefixTokens", "suffixTokens", "fimMode", "extraContext",
        "extraContextTokens", "debounceMs", "invokedSuggestions", "timeBudgetMs", "disabledLanguages", "linePolicy",
        "docstringStyle", "enabled", "contextLength", "backend", "remoteUrl", "remoteTimeoutMs",
    )  # fmt: skip
    assert len(SETTING_NAMES) == len(dataclasses.fields(Settings))


@pytest.mark.parametrize("raw", [None, 3, "maxTokens=4", ["a"]])
def test_non_dict_keeps_base(raw: object) -> None:
    settings, warnings = parse_settings(raw)
    assert settings == DEFAULT
    assert len(warnings) == (0 if raw is None else 1)


def test_empty_dict() -> None:
    assert parse_settings({}) == (DEFAULT, [])


def test_camel_snake_kebab_nested_and_dotted() -> None:
    expected = dataclasses.replace(DEFAULT, max_tokens=64, top_p=0.5, fim_mode="psm")
    for raw in (
        {"maxTokens": 64, "topP": 0.5, "fimMode": "psm"},
        {"max_tokens": 64, "top_p": 0.5, "fim_mode": "psm"},
        {"max-tokens": 64, "top-p": 0.5, "fim-mode": "psm"},
        {"codellama": {"maxTokens": 64, "topP": 0.5, "fimMode": "psm"}},
        {"codeLlama": {"maxTokens": 64, "topP": 0.5, "fimMode": "psm"}},
        {"codellama.maxTokens": 64, "codellama.topP": 0.5, "codellama.fimMode": "psm"},
    ):
        assert parse_settings(raw) == (expected, []), raw


def test_all_fields_golden() -> None:
    raw = {
        "codellama": {
            "model": "/models/CodeLlama-7b-hf",
            "device": "CUDA",
            "dtype": "bfloat16",
            "quant": "nf4",
            "maxTokens": "128",
            "maxTokensSingleLine": 32.0,
            "temperature": "0.2",
            "topP": 1,
            "prefixTokens": 2048,
            "suffixTokens": 512,
            "fimMode": "PSM",
            "extraContext": "false",
            "extraContextTokens": 0,
            "debounceMs": 75,
            "timeBudgetMs": 1500,
            "disabledLanguages": ["markdown", "plaintext", "markdown"],
            "linePolicy": "single",
            "docstringStyle": "numpy",
            "enabled": False,
            "contextLength": 8192,
        }
    }
    settings, warnings = parse_settings(raw)
    assert warnings == []
    assert settings == Settings(
        model="/models/CodeLlama-7b-hf",
        device="cuda",
        dtype="bfloat16",
        quant="nf4",
        max_tokens=128,
        max_tokens_single_line=32,
        temperature=0.2,
        top_p=1.0,
        prefix_tokens=2048,
        suffix_tokens=512,
        fim_mode="psm",
        extra_context=False,
        extra_context_tokens=0,
        debounce_ms=75,
        time_budget_ms=1500,
        disabled_languages=("markdown", "plaintext"),
        line_policy="single",
        docstring_style="numpy",
        enabled=False,
        context_length=8192,
    )
    assert isinstance(settings.top_p, float) and isinstance(settings.max_tokens_single_line, int)


@pytest.mark.parametrize(
    ("key", "value", "warning"),
    [
        ("enabled", 1, "settings: invalid value 1 for 'enabled': expected true or false; keeping True"),
        ("maxTokens", True, "settings: invalid value True for 'maxTokens': expected an integer, got a boolean; keeping 96"),
        ("maxTokens", 12.5, "settings: invalid value 12.5 for 'maxTokens': expected an integer; keeping 96"),
        ("maxTokens", 0, "settings: invalid value 0 for 'maxTokens': must be between 1 and 4096; keeping 96"),
        ("maxTokens", "lots", "settings: invalid value 'lots' for 'maxTokens': expected an integer; keeping 96"),
        ("topP", 0, "settings: invalid value 0 for 'topP': must be in (0, 1]; keeping 0.95"),
        ("temperature", -0.1, "settings: invalid value -0.1 for 'temperature': must be in [0, 2]; keeping 0.0"),
        ("temperature", "nan", "settings: invalid value 'nan' for 'temperature': expected a finite number; keeping 0.0"),
        ("device", "tpu", "settings: invalid value 'tpu' for 'device': expected one of auto, cpu, cuda; keeping 'auto'"),
        ("quant", 4, "settings: invalid value 4 for 'quant': expected one of auto, nf4, fp4, int8, none; keeping 'auto'"),
        ("model", 7, "settings: invalid value 7 for 'model': expected a path or model id (string) or null; keeping None"),
        ("disabledLanguages", ["go", 3], "settings: invalid value ['go', 3] for 'disabledLanguages': expected language ids (strings), got 3; keeping ()"),
        ("debounceMs", -5, "settings: invalid value -5 for 'debounceMs': must be between 0 and 60000; keeping 0"),
    ],
)  # fmt: skip
def test_invalid_values_warn_and_keep_base(key: str, value: object, warning: str) -> None:
    settings, warnings = parse_settings({key: value})
    assert settings == DEFAULT
    assert warnings == [warning]


@pytest.mark.parametrize("value", ["true", " Yes", "ON", "false", "no ", "Off"])
def test_booleans_spelled_as_words(value: str) -> None:
    # A base opposite to the value: a word read as the wrong boolean would keep it.
    wanted = value.strip().lower() in ("true", "yes", "on")
    settings, warnings = parse_settings({"enabled": value, "extraContext": value},
                                        dataclasses.replace(DEFAULT, enabled=not wanted, extra_context=not wanted))
    assert warnings == [] and (settings.enabled, settings.extra_context) == (wanted, wanted)


def test_unknown_keys_with_suggestions() -> None:
    settings, warnings = parse_settings({"maxToken": 5, "colour": "red", "maxTokens": 50, 3: 1})
    assert settings == dataclasses.replace(DEFAULT, max_tokens=50)
    assert warnings == [
        "settings: unknown setting 'maxToken' (did you mean 'maxTokens'?); ignored",
        "settings: unknown setting 'colour'; ignored",
        "settings: ignoring non-string key 3",
    ]


def test_one_bad_value_does_not_spoil_the_rest() -> None:
    settings, warnings = parse_settings({"codellama": {"maxTokens": -1, "temperature": 0.3}})
    assert settings.max_tokens == 96
    assert settings.temperature == 0.3
    assert len(warnings) == 1


def test_null_means_unset_the_default_again() -> None:
    base = Settings(model="/m", max_tokens=10, temperature=0.5)
    settings, warnings = parse_settings({"maxTokens": None, "model": None}, base)
    assert settings == Settings(temperature=0.5)  # the defaults, not the values set before
    assert warnings == []
    flags = Settings(model="/flag", max_tokens=20)  # the server's defaults: its command line
    assert parse_settings({"maxTokens": None, "model": None}, base, flags)[0] == flags.merged(temperature=0.5)
    assert parse_settings({"model": "  "}, base, flags)[0].model is None  # blank: the demo model, whatever the flag


def test_base_is_respected() -> None:
    base = Settings(temperature=0.4, disabled_languages=("markdown",))
    settings, warnings = parse_settings({"temperature": "hot", "debounceMs": 30}, base)
    assert settings == Settings(temperature=0.4, disabled_languages=("markdown",), debounce_ms=30)
    assert warnings == [
        "settings: invalid value 'hot' for 'temperature': expected a number; keeping 0.4"
    ]


def test_disabled_languages_forms() -> None:
    assert parse_settings({"disabledLanguages": "markdown, plaintext,"})[0].disabled_languages == (
        "markdown",
        "plaintext",
    )
    assert parse_settings({"disabledLanguages": ("rust",)})[0].disabled_languages == ("rust",)
    assert parse_settings({"disabledLanguages": []})[0].disabled_languages == ()


def test_section_not_a_dict() -> None:
    assert parse_settings({"codellama": "on"}) == (
        DEFAULT,
        ["settings: 'codellama' must be an object; ignored"],
    )


def test_context_length_consistency_warning() -> None:
    settings, warnings = parse_settings({"prefixTokens": 4000})
    assert settings.prefix_tokens == 4000  # kept: only reported
    assert warnings == [
        "settings: prefixTokens + suffixTokens + extraContextTokens (at most half the room) + maxTokens (+8) = 4616 "
        "exceeds contextLength 4096; prompts must be trimmed to fit"
    ]
    # The snippets take what the completion path gives them (half the room at most), as the warning counts.
    _, warnings = parse_settings({"contextLength": 1024, "extraContextTokens": 4000, "prefixTokens": 300,
                                  "suffixTokens": 100})
    assert warnings == []  # 300 + 100 + min(4000, (1024 - 96 - 8) // 2) + 96 + 8 = 964


def test_merged() -> None:
    s = DEFAULT.merged(maxTokens=10, line_policy="multi")
    assert (s.max_tokens, s.line_policy) == (10, "multi")
    assert DEFAULT.max_tokens == 96  # frozen original untouched
    assert DEFAULT.merged(prefix_tokens=4000).prefix_tokens == 4000  # consistency is not an error
    with pytest.raises(ValueError, match="unknown setting 'nope'"):
        DEFAULT.merged(nope=1)
    with pytest.raises(ValueError, match="'fimMode'"):
        DEFAULT.merged(fim_mode="xyz")


def test_to_camel_dict_round_trips() -> None:
    s = Settings(model="m", disabled_languages=("go",), temperature=0.1)
    data = s.to_camel_dict()
    assert list(data) == list(SETTING_NAMES)
    assert data["disabledLanguages"] == ["go"]
    assert parse_settings(data) == (s, [])


def test_settings_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT.max_tokens = 3  # type: ignore[misc]
