"""Train a SentencePiece model shaped like Code Llama's: BPE, byte fallback, the FIM pieces."""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path

import sentencepiece as spm

from ..tokenizer import FIM_PIECES, SENTINEL


def train_tokenizer(texts: Iterable[str], out_path: Path, vocab_size: int, *,
                    fim_as: str = "user_defined") -> Path:
    """Train on `texts` and write `out_path` (a .model file).

    Like Llama's tokenizer: unk/bos/eos = 0/1/2, digits split, no whitespace normalisation (indentation
    matters in code), whitespace-only pieces allowed, unknown characters fall back to bytes. The FIM pieces
    carry Code Llama's names. `fim_as="user_defined"` makes plain text able to spell them, the worst case
    the tokenizer's guard must handle; "control" makes that impossible by construction.
    """
    fim = list(FIM_PIECES)
    options = {"user_defined_symbols": fim + [SENTINEL]} if fim_as == "user_defined" else {
        "control_symbols": fim, "user_defined_symbols": [SENTINEL]}
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=(line for text in texts for line in text.splitlines() if line.strip()),
        model_writer=model,
        model_type="bpe",
        vocab_size=vocab_size,
        character_coverage=0.9999,
        byte_fallback=True,
        split_digits=True,
        allow_whitespace_only_pieces=True,
        remove_extra_whitespaces=False,
        normalization_rule_name="identity",
        max_sentence_length=8192,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        num_threads=2,
        minloglevel=2,
        **options,
    )
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_bytes(model.getvalue())
    return out_path
