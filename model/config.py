"""Model hyper-parameters, read from a checkpoint's own files (never guessed from a model name)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

# Code Llama was trained (long-context fine-tuning) at 16k tokens; Meta's params.json does not record it.
CODE_LLAMA_CONTEXT = 16384

# Bounds far outside any Llama, inside what a loader can act on: a corrupt or hostile config fails here, with
# its file and key named, before anything is allocated from it.
MAX_LAYERS = 1024
MAX_HEADS = 1024
MAX_WIDTH = 1 << 18  # dim, hidden size
MAX_VOCAB = 1 << 21
MAX_CONTEXT = 1 << 24


class ConfigError(ValueError):
    """A checkpoint config that cannot describe a usable model; the message names the file and key."""


@dataclass(frozen=True)
class ModelArgs:
    dim: int = 4096
    n_layers: int = 32
    n_heads: int = 32
    n_kv_heads: int = 32  # grouped-query attention when < n_heads (34B, 70B)
    vocab_size: int = 32016
    hidden_dim: int = 11008  # SwiGLU inner size
    norm_eps: float = 1e-5
    rope_theta: float = 1e6
    max_seq_len: int = CODE_LLAMA_CONTEXT

    def __post_init__(self) -> None:
        check_heads(self.dim, self.n_heads, self.n_kv_heads, ("dim", "n_heads", "n_kv_heads"))

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    @classmethod
    def from_meta_params(cls, params: object, vocab_size: int, source: str = "params.json") -> ModelArgs:
        """From Meta's params.json. The FFN size is derived exactly as Meta's reference model does; `vocab_size`
        (tokenizer.model's) stands for params.json's when that is -1 or absent, as Llama 2's is."""
        f = Fields(params, source)
        dim = f.integer("dim", 1, MAX_WIDTH)
        n_heads = f.integer("n_heads", 1, MAX_HEADS)
        n_kv_heads = f.integer("n_kv_heads", 1, MAX_HEADS, n_heads)
        hidden = int(2 * (4 * dim) / 3)
        multiplier = f.number("ffn_dim_multiplier", 0.0, 64.0, None)
        if multiplier is not None:
            hidden = int(multiplier * hidden)
        multiple_of = f.integer("multiple_of", 1, MAX_WIDTH, 256)
        hidden = multiple_of * math.ceil(hidden / multiple_of)
        file_vocab = f.integer("vocab_size", -1, MAX_VOCAB, -1)
        f.consistent(dim, n_heads, n_kv_heads, ("dim", "n_heads", "n_kv_heads"))
        return cls(
            dim=dim,
            n_layers=f.integer("n_layers", 1, MAX_LAYERS),
            n_heads=n_heads,
            n_kv_heads=n_kv_heads,
            vocab_size=file_vocab if file_vocab > 0 else vocab_size,
            hidden_dim=hidden,
            norm_eps=f.number("norm_eps", 0.0, 1.0, 1e-5),
            rope_theta=f.number("rope_theta", 0.0, 1e12, 10000.0),
            max_seq_len=f.integer("max_seq_len", 1, MAX_CONTEXT, CODE_LLAMA_CONTEXT),
        )

    @classmethod
    def from_hf_config(cls, config: object, source: str = "config.json") -> ModelArgs:
        """From a Hugging Face LlamaForCausalLM config.json."""
        f = Fields(config, source)
        model_type = f.text("model_type", "llama")
        if model_type != "llama":
            raise ConfigError(f"{source}: unsupported model_type {model_type!r}; expected 'llama'")
        # transformers < 5 writes the RoPE type in rope_scaling, >= 5 in rope_parameters (with rope_theta).
        for key in ("rope_scaling", "rope_parameters"):
            rope = f.mapping(key)
            if rope.get("rope_type", rope.get("type")) not in (None, "default"):
                raise ConfigError(f"{source}: {key} {rope} is not supported (Code Llama uses plain RoPE)")
        theta_at = f if "rope_theta" in f.data or "rope_parameters" not in f.data else \
            Fields(f.mapping("rope_parameters"), f"{source}: rope_parameters")  # transformers >= 5 nests it
        dim = f.integer("hidden_size", 1, MAX_WIDTH)
        n_heads = f.integer("num_attention_heads", 1, MAX_HEADS)
        n_kv_heads = f.integer("num_key_value_heads", 1, MAX_HEADS, n_heads)
        f.consistent(dim, n_heads, n_kv_heads, ("hidden_size", "num_attention_heads", "num_key_value_heads"))
        # Llama variants this model does not compute: loading their weights anyway gives wrong logits, no error.
        head_dim = f.integer("head_dim", 1, MAX_WIDTH, dim // n_heads)
        if head_dim != dim // n_heads:
            raise ConfigError(f"{source}: head_dim {head_dim} is not hidden_size / num_attention_heads "
                              f"({dim // n_heads}), as this loader's (and Code Llama's) attention needs")
        for key in ("attention_bias", "mlp_bias"):
            if f.flag(key):
                raise ConfigError(f"{source}: {key} is true, but Code Llama's projections (and this loader's) "
                                  "have no biases")
        # Weights stored quantized (bitsandbytes, GPTQ, AWQ, FP8): read as if 16-bit, int8 ones load without an
        # error and generate garbage. This loader quantizes the 16-bit weights itself (--quant).
        quantized = f.mapping("quantization_config")
        if quantized:
            method = quantized.get("quant_method", "unnamed")
            raise ConfigError(f"{source}: quantization_config says the weights are stored quantized ({method}); this "
                              "loader reads 16- or 32-bit weights and quantizes them itself (--quant nf4, the default "
                              "on CUDA): use the unquantized checkpoint (e.g. codellama/CodeLlama-7b-hf)")
        act = f.text("hidden_act", "silu")
        if act not in ("silu", "swish"):  # transformers' names for the same function
            raise ConfigError(f"{source}: hidden_act {act!r} is not supported (Code Llama's SwiGLU uses 'silu')")
        return cls(
            dim=dim,
            n_layers=f.integer("num_hidden_layers", 1, MAX_LAYERS),
            n_heads=n_heads,
            n_kv_heads=n_kv_heads,
            vocab_size=f.integer("vocab_size", 1, MAX_VOCAB),
            hidden_dim=f.integer("intermediate_size", 1, MAX_WIDTH),
            norm_eps=f.number("rms_norm_eps", 0.0, 1.0, 1e-5),
            rope_theta=theta_at.number("rope_theta", 0.0, 1e12, 10000.0),
            max_seq_len=f.integer("max_position_embeddings", 1, MAX_CONTEXT, CODE_LLAMA_CONTEXT),
        )

    def to_hf_config(self) -> dict[str, Any]:
        """The config.json that transformers' LlamaForCausalLM reads for these arguments."""
        return {
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "hidden_size": self.dim,
            "num_hidden_layers": self.n_layers,
            "num_attention_heads": self.n_heads,
            "num_key_value_heads": self.n_kv_heads,
            "vocab_size": self.vocab_size,
            "intermediate_size": self.hidden_dim,
            "rms_norm_eps": self.norm_eps,
            "rope_theta": self.rope_theta,
            "max_position_embeddings": self.max_seq_len,
            "hidden_act": "silu",
            "tie_word_embeddings": False,
            "bos_token_id": 1,
            "eos_token_id": 2,
            "torch_dtype": "float16",
        }

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def check_heads(dim: int, heads: int, kv_heads: int, names: tuple[str, str, str]) -> None:
    """Attention heads that split `dim` evenly into rotary (even-sized) heads; `names` are the keys to blame."""
    d, h, kv = names
    if dim % heads:
        raise ValueError(f"{d} {dim} is not divisible by {h} {heads}")
    if heads % kv_heads:
        raise ValueError(f"{h} {heads} is not a multiple of {kv} {kv_heads}")
    if (dim // heads) % 2:
        raise ValueError(f"{d} / {h} = {dim // heads} must be even for rotary embeddings")


_MISSING: Any = object()


class Fields:
    """Typed, range-checked reads from one config file's JSON object; errors name the file and key."""

    def __init__(self, data: object, source: str) -> None:
        if not isinstance(data, dict):
            raise ConfigError(f"{source} must hold a JSON object, not {_json_type(data)}")
        self.data: dict[str, Any] = data
        self.source = source

    def _value(self, key: str, default: Any) -> tuple[bool, Any]:
        """(True, the file's value), or (False, default) when the key is absent or null."""
        if self.data.get(key) is not None:
            return True, self.data[key]
        if default is _MISSING:
            raise ConfigError(f"{self.source}: {key} is missing")
        return False, default

    def _wrong(self, key: str, wanted: str) -> ConfigError:
        return ConfigError(f"{self.source}: {key} must be {wanted}, not {json.dumps(self.data[key])[:40]}")

    def integer(self, key: str, low: int, high: int, default: Any = _MISSING) -> Any:
        found, value = self._value(key, default)
        if found and (not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high):
            raise self._wrong(key, f"an integer from {low} to {high}")
        return value

    def number(self, key: str, low: float, high: float, default: Any = _MISSING) -> Any:
        """A number with low < value <= high."""
        found, value = self._value(key, default)
        if not found:
            return value
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not low < value <= high:
            raise self._wrong(key, f"a number above {low:g} and at most {high:g}")
        return float(value)

    def text(self, key: str, default: Any = _MISSING) -> Any:
        found, value = self._value(key, default)
        if found and not isinstance(value, str):
            raise self._wrong(key, "a string")
        return value

    def flag(self, key: str) -> bool:
        """A boolean, False when absent."""
        found, value = self._value(key, False)
        if found and not isinstance(value, bool):
            raise self._wrong(key, "true or false")
        return value

    def mapping(self, key: str) -> dict[str, Any]:
        found, value = self._value(key, {})
        if found and not isinstance(value, dict):
            raise self._wrong(key, "an object")
        return value

    def consistent(self, dim: int, heads: int, kv_heads: int, names: tuple[str, str, str]) -> None:
        try:
            check_heads(dim, heads, kv_heads, names)
        except ValueError as e:
            raise ConfigError(f"{self.source}: {e}") from e


def _json_type(value: object) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def read_json(path: Path) -> Any:
    try:
        if path.exists() and not path.is_file():  # a FIFO or a device: reading would block, or never end
            raise OSError("not a regular file")
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read {path}: {e}") from e
