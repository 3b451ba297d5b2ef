"""Tiny checkpoints for tests: a SentencePiece model trained here, random Llama weights, both layouts."""

from __future__ import annotations

import shutil
import sysconfig
from pathlib import Path

import torch

from model.checkpoint import checkpoint_shapes, save_hf, save_meta
from model.config import ModelArgs
from model.training.tokenizer import train_tokenizer

STDLIB = Path(sysconfig.get_paths()["stdlib"])


def corpus(max_files: int = 40) -> list[str]:
    files = sorted((STDLIB / "json").glob("*.py")) + sorted((STDLIB / "email").glob("*.py"))
    return [f.read_text(encoding="utf-8") for f in files[:max_files]]


def make_tokenizer(path: Path, vocab_size: int = 512, fim_as: str = "user_defined") -> Path:
    return train_tokenizer(corpus(), path, vocab_size, fim_as=fim_as)


def make_plain_tokenizer(path: Path) -> Path:
    """A vocabulary without ▁<PRE>, ▁<SUF>, ▁<MID>, ▁<EOT>, as Code Llama - Python's: it cannot fill in the middle."""
    import io

    import sentencepiece as spm

    from model.tokenizer import SENTINEL
    plain = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=(line for text in corpus(10) for line in text.splitlines() if line.strip()),
        model_writer=plain, model_type="bpe", vocab_size=400, byte_fallback=True, user_defined_symbols=[SENTINEL],
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, normalization_rule_name="identity", remove_extra_whitespaces=False,
        num_threads=1, minloglevel=2)
    path.write_bytes(plain.getvalue())
    return path


def tiny_args(vocab_size: int, *, gqa: bool = False, layers: int = 2) -> ModelArgs:
    # hidden_dim as Meta's formula gives for dim 64, multiple_of 32: int(2 * 256 / 3) = 170 -> 192
    return ModelArgs(dim=64, n_layers=layers, n_heads=4, n_kv_heads=2 if gqa else 4, vocab_size=vocab_size,
                     hidden_dim=192, norm_eps=1e-5, rope_theta=1e6, max_seq_len=512)


def random_state(args: ModelArgs, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in checkpoint_shapes(args).items():
        if len(shape) == 1:
            state[name] = 1.0 + 0.1 * torch.randn(shape, generator=g)
        else:
            state[name] = torch.randn(shape, generator=g) * (0.5 / shape[1] ** 0.5)
    return state


def make_checkpoint(out: Path, tokenizer: Path, *, layout: str = "hf", gqa: bool = False, shards: int = 1,
                    seed: int = 0) -> Path:
    """A random tiny model in `layout` ("hf" or "meta") with `shards` files, plus its tokenizer."""
    import sentencepiece as spm
    vocab = spm.SentencePieceProcessor(model_file=str(tokenizer)).vocab_size()
    args = tiny_args(vocab, gqa=gqa)
    state = random_state(args, seed)
    if layout == "hf":
        save_hf(state, args, out, shards=shards)
    else:
        save_meta(state, args, out, shards=shards, multiple_of=32)
    shutil.copy(tokenizer, out / "tokenizer.model")
    return out
