"""Model hyper-parameters, read from a checkpoint's own files (never guessed from a model name)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

# Code Llama was trained (long-context fine-tuning) at 16k tokens; Meta's params.json does not record it.
CODE_LLAMA_CONTEXT = 16384


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
        if self.dim % self.n_heads:
            raise ValueError(f"dim {self.dim} is not divisible by n_heads {self.n_heads}")
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"n_heads {self.n_heads} is not a multiple of n_kv_heads {self.n_kv_heads}")
        if self.head_dim % 2:
            raise ValueError(f"head_dim {self.head_dim} must be even for rotary embeddings")

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    @classmethod
    def from_meta_params(cls, params: dict[str, Any], vocab_size: int) -> ModelArgs:
        """From Meta's params.json. The FFN size is derived exactly as Meta's reference model does."""
        dim = int(params["dim"])
        hidden = int(2 * (4 * dim) / 3)
        if params.get("ffn_dim_multiplier") is not None:
            hidden = int(float(params["ffn_dim_multiplier"]) * hidden)
        multiple_of = int(params.get("multiple_of", 256))
        hidden = multiple_of * math.ceil(hidden / multiple_of)
        file_vocab = int(params.get("vocab_size", -1))
        if file_vocab > 0 and file_vocab != vocab_size:
            raise ValueError(f"params.json vocab_size {file_vocab} != tokenizer vocabulary {vocab_size}")
        return cls(
            dim=dim,
            n_layers=int(params["n_layers"]),
            n_heads=int(params["n_heads"]),
            n_kv_heads=int(params.get("n_kv_heads") or params["n_heads"]),
            vocab_size=vocab_size,
            hidden_dim=hidden,
            norm_eps=float(params.get("norm_eps", 1e-5)),
            rope_theta=float(params.get("rope_theta", 10000.0)),
            max_seq_len=int(params.get("max_seq_len", CODE_LLAMA_CONTEXT)),
        )

    @classmethod
    def from_hf_config(cls, config: dict[str, Any]) -> ModelArgs:
        """From a Hugging Face LlamaForCausalLM config.json."""
        if config.get("model_type", "llama") != "llama":
            raise ValueError(f"unsupported model_type {config.get('model_type')!r}; expected 'llama'")
        scaling = config.get("rope_scaling")
        if scaling and scaling.get("rope_type", scaling.get("type")) not in (None, "default"):
            raise ValueError(f"rope_scaling {scaling} is not supported (Code Llama uses none)")
        theta = config.get("rope_theta")
        if theta is None:  # transformers >= 5 nests it under rope_parameters
            theta = (config.get("rope_parameters") or {}).get("rope_theta", 10000.0)
        return cls(
            dim=int(config["hidden_size"]),
            n_layers=int(config["num_hidden_layers"]),
            n_heads=int(config["num_attention_heads"]),
            n_kv_heads=int(config.get("num_key_value_heads") or config["num_attention_heads"]),
            vocab_size=int(config["vocab_size"]),
            hidden_dim=int(config["intermediate_size"]),
            norm_eps=float(config.get("rms_norm_eps", 1e-5)),
            rope_theta=float(theta),
            max_seq_len=int(config.get("max_position_embeddings", CODE_LLAMA_CONTEXT)),
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


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read {path}: {e}") from e
