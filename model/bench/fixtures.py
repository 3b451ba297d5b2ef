"""What the benchmark runs on: a Code-Llama-shaped tokenizer, random checkpoints, prompts of set lengths."""

from __future__ import annotations

import io
import json
import os
import sysconfig
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import checkpoint_shapes, hf_name, save_meta
from ..config import ModelArgs
from ..tokenizer import FIM_PIECES, SENTINEL, Tokenizer

VOCAB = 32016  # Code Llama's vocabulary: 32000 + infilling pieces + padding
HIT_SIZE = 1536  # prompt length for the prefix-cache re-request
EDITED_TAIL = 4  # the re-request differs in its last this-many tokens (a keystroke re-tokenizes a few)
SHARD_BYTES = 2 << 30  # cap per safetensors shard while writing


def stdlib_texts(max_files: int = 80) -> list[str]:
    """Python source from the standard library: the tokenizer's corpus and the prompts' text."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(root.glob("*.py"))[:max_files]
    return [f.read_text(encoding="utf-8", errors="replace") for f in files]


def build_tokenizer(out: Path, texts: list[str], vocab_size: int = VOCAB, learned: int = 2000) -> Path:
    """A Code-Llama-shaped SentencePiece model with exactly `vocab_size` pieces.

    A 32k BPE needs far more text than the stdlib offers in a second of training, so only `learned` pieces
    are learned and the vocabulary is filled up with unused control pieces (never produced from text).
    Embedding and output matrices then have Code Llama's exact shape.
    """
    import sentencepiece as spm

    specials = 3 + len(FIM_PIECES) + 1  # unk/bos/eos, infilling pieces, sentinel
    padding = [f"<unused{i}>" for i in range(vocab_size - specials - learned)]
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=(line for text in texts for line in text.splitlines() if line.strip()),
        model_writer=model, model_type="bpe", vocab_size=vocab_size, character_coverage=0.9999,
        byte_fallback=True, split_digits=True, allow_whitespace_only_pieces=True, remove_extra_whitespaces=False,
        normalization_rule_name="identity", max_sentence_length=8192, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        num_threads=min(4, os.cpu_count() or 1), minloglevel=2,
        control_symbols=list(FIM_PIECES) + padding, user_defined_symbols=[SENTINEL])
    out.write_bytes(model.getvalue())
    return out


def random_tensors(args: ModelArgs, seed: int, dtype: torch.dtype = torch.float16
                   ) -> Iterator[tuple[str, torch.Tensor]]:
    """(our name, CPU tensor of `dtype`) one at a time, in checkpoint order; drawn on the GPU when there is one."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    g = torch.Generator(device).manual_seed(seed)
    for name, shape in checkpoint_shapes(args).items():
        if len(shape) == 1:  # norms
            t = 1.0 + 0.05 * torch.randn(shape, generator=g, device=device)
        else:
            # Unit-gain init keeps activations O(1) through 40 fp16 layers (no inf/nan in the timings).
            t = torch.randn(shape, generator=g, device=device)
            t.mul_(1.0 if name == "tok_embeddings.weight" else shape[1] ** -0.5)
        # Random weights: HF's rotate-half permutation of q/k would only reorder noise, so none is applied.
        yield name, t.to(dtype).cpu()


def write_random_checkpoint(out: Path, args: ModelArgs, tokenizer: Path, *, layout: str = "hf", shards: int = 1,
                            seed: int = 0, shard_bytes: int = SHARD_BYTES, dtype: torch.dtype = torch.float16) -> int:
    """A random checkpoint in Hugging Face layout (safetensors shards of at most shard_bytes, written as they
    fill, so a 7B model never sits in memory whole) or Meta's (`shards` model-parallel consolidated.NN.pth), its
    weights of `dtype` (fp16; Code Llama's Hugging Face release is bf16). Returns the bytes of weights written."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "tokenizer.model").write_bytes(tokenizer.read_bytes())
    if layout == "meta":
        state = dict(random_tensors(args, seed, dtype))
        save_meta(state, args, out, shards=shards)
        return sum(t.numel() * t.element_size() for t in state.values())
    if layout != "hf":
        raise ValueError(f"unknown layout {layout!r}; expected hf or meta")
    from safetensors.torch import save_file

    (out / "config.json").write_text(json.dumps(args.to_hf_config(), indent=2))
    shard: dict[str, torch.Tensor] = {}
    size = 0
    files: list[str] = []
    weight_map: dict[str, int] = {}

    def flush() -> None:
        file = f"model-{len(files) + 1:05d}.safetensors"  # renamed to -of-NNNNN once the count is known
        save_file(shard, str(out / file), metadata={"format": "pt"})
        files.append(file)
        shard.clear()  # drop the tensors: at most one shard is ever held in memory

    total = 0
    for name, t in random_tensors(args, seed, dtype):
        nbytes = t.numel() * t.element_size()
        if shard and size + nbytes > shard_bytes:
            flush()
            size = 0
        shard[hf_name(name)] = t
        size += nbytes
        weight_map[hf_name(name)] = len(files)
        total += nbytes
    flush()
    final = [f"model-{i + 1:05d}-of-{len(files):05d}.safetensors" for i in range(len(files))]
    for file, name in zip(files, final):
        (out / file).rename(out / name)
    index = {"metadata": {"total_size": total}, "weight_map": {n: final[i] for n, i in weight_map.items()}}
    (out / "model.safetensors.index.json").write_text(json.dumps(index))
    return total


def make_prompts(tokenizer: Path, texts: list[str], sizes: list[int], decode_context: int,
                 decode_tokens: int) -> dict[str, Any]:
    """Prompt token lists: BOS + stdlib code, cut to each size; the re-request edits the last tokens."""
    tok = Tokenizer(tokenizer)
    need = max(sizes + [HIT_SIZE, decode_context]) + EDITED_TAIL + 1
    ids: list[int] = []
    for text in texts:
        ids += tok.encode(text, bos=False, eos=False)
        if len(ids) >= need:
            break
    if len(ids) < need:
        raise RuntimeError(f"the stdlib corpus gave only {len(ids)} tokens; {need} are needed")
    prompt = [tok.bos_id] + ids
    base = prompt[:HIT_SIZE]
    # The user typed on: the same window with a different ending (the text that follows, shifted).
    edited = base[:-EDITED_TAIL] + prompt[HIT_SIZE:HIT_SIZE + EDITED_TAIL]
    assert edited != base
    return {"sizes": {str(n): prompt[:n] for n in sizes}, "decode": prompt[:decode_context],
            "decode_tokens": decode_tokens, "hit_base": base, "hit_edited": edited, "warmup": prompt[:64]}
