"""SentencePiece tokenizer with Code Llama's infilling pieces, and the FIM prompt formats.

Control ids are resolved once, by piece name, when the tokenizer is loaded: the same code serves
Code Llama (where `▁<PRE>` is 32007) and any model of our own that carries the same pieces.
"""

from __future__ import annotations

import bisect
import codecs
import re
from functools import cached_property
from pathlib import Path
from typing import Literal

import sentencepiece as spm

FimMode = Literal["psm", "spm"]

PREFIX_PIECE, SUFFIX_PIECE, MIDDLE_PIECE, EOT_PIECE = "▁<PRE>", "▁<SUF>", "▁<MID>", "▁<EOT>"
FIM_PIECES = (PREFIX_PIECE, SUFFIX_PIECE, MIDDLE_PIECE, EOT_PIECE)
# Encoding "☺" + text and dropping the sentinel's tokens encodes text without SentencePiece's
# implicit leading space (Meta's encode_infilling does the same).
SENTINEL = "☺"
# ASCII control characters that never belong in code a model writes (all but \t \n \v \f \r): a model emits
# their byte pieces only when it has lost its way, and they would reach the editor as invisible garbage.
_CONTROL_BYTES = frozenset(range(0x20)) - {0x09, 0x0A, 0x0B, 0x0C, 0x0D} | {0x7F}
# A lone UTF-16 surrogate (JSON allows "\ud800") is no character: SentencePiece cannot encode it.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(s: str) -> str:
    """`s` with each lone surrogate replaced by U+FFFD (same length, so offsets into `s` stay valid)."""
    return _LONE_SURROGATE.sub("\ufffd", s) if not s.isascii() else s


class Tokenizer:
    def __init__(self, model_path: str | Path) -> None:
        path = Path(model_path)
        if not path.is_file():
            raise FileNotFoundError(f"tokenizer model not found: {path}")
        try:
            self.sp = spm.SentencePieceProcessor(model_file=str(path))
        except (OSError, RuntimeError) as e:
            raise ValueError(f"{path} is not a SentencePiece model: {e}") from e
        self.path = path
        self.n_words: int = self.sp.vocab_size()
        self.bos_id: int = self.sp.bos_id()
        self.eos_id: int = self.sp.eos_id()
        self.prefix_id = self._piece_id(PREFIX_PIECE)
        self.suffix_id = self._piece_id(SUFFIX_PIECE)
        self.middle_id = self._piece_id(MIDDLE_PIECE)
        self.eot_id = self._piece_id(EOT_PIECE)
        self.has_fim = None not in (self.prefix_id, self.suffix_id, self.middle_id, self.eot_id)

        self._sentinel_id = self._piece_id(SENTINEL)
        self._sentinel_ids: list[int] = self.sp.encode(SENTINEL)
        if self._sentinel_id is None or self.sp.decode(self._sentinel_ids) != SENTINEL:
            raise ValueError(f"{path}: the vocabulary has no {SENTINEL!r} piece, needed to encode infilling text")
        # Ids that ordinary text must never produce: a document spelling " <EOT>" stays text.
        self.control_ids = frozenset(i for i in (self.bos_id, self.eos_id, self.prefix_id, self.suffix_id,
                                                 self.middle_id, self.eot_id) if i is not None and i >= 0)
        self.stop_ids = frozenset(i for i in (self.eot_id, self.eos_id) if i is not None and i >= 0)
        # Byte-fallback pieces (<0xAB>) and their byte: a character outside the vocabulary spans several.
        self._byte_of = {i: int(self.sp.id_to_piece(i)[3:5], 16) for i in range(self.n_words) if self.sp.is_byte(i)}

    @cached_property
    def newline_ids(self) -> frozenset[int]:
        """Ids of the pieces that write a line break (a pass over the vocabulary: built when first asked)."""
        return frozenset(i for i in range(self.n_words) if self._byte_of.get(i) == 0x0A
                         or (i not in self._byte_of and "\n" in self.sp.id_to_piece(i)))

    def _piece_id(self, piece: str) -> int | None:
        i = self.sp.piece_to_id(piece)
        # piece_to_id answers unk for a piece the vocabulary lacks.
        return None if i == self.sp.unk_id() and piece != self.sp.id_to_piece(i) else i

    def encode(self, s: str, *, bos: bool, eos: bool) -> list[int]:
        """Encode text as SentencePiece does (with its implicit leading space)."""
        ids = self._guard(self.sp.encode(clean_text(s)))
        return ([self.bos_id] if bos else []) + ids + ([self.eos_id] if eos else [])

    def encode_infilling(self, s: str) -> list[int]:
        """Encode text without the implicit leading space (for a suffix, which continues a line)."""
        ids = self.sp.encode(SENTINEL + clean_text(s))
        n = len(self._sentinel_ids)
        assert ids[:n] == self._sentinel_ids, "sentinel merged with the text"
        return self._guard(ids[n:])

    def decode(self, ids: list[int]) -> str:
        return self.sp.decode([i for i in ids if i not in self.control_ids])

    def decode_infilling(self, ids: list[int]) -> str:
        """Decode a generated middle, keeping a leading space the model generated.

        A character outside the vocabulary is spelled as byte pieces (`<0xE2><0x82><0xAC>` for "€"), and
        only whole, valid UTF-8 ever reaches the text (see `whole_text_len`): generation can stop inside a
        character, whose bytes so far are held back, and a model can write bytes that are no character,
        where the text ends. SentencePiece would decode either to U+FFFD, which the document never held.
        A U+FFFD the model copies (its bytes, or a piece) is a character like any other and stays.
        """
        ids = [i for i in ids if i not in self.control_ids]
        ids = ids[:self.whole_text_len(ids)[0]]
        return self.sp.decode([self._sentinel_id] + ids)[len(SENTINEL):]

    def ends_in_bad_bytes(self, ids: list[int]) -> bool:
        """Whether generated `ids` hold bytes that are no UTF-8 character: their text (decode_infilling)
        ends before them, cut short as if by a token budget."""
        return self.whole_text_len([i for i in ids if i not in self.control_ids])[1]

    def whole_text_len(self, ids: list[int]) -> tuple[int, bool]:
        """(n, broken): the first n of `ids` (no control ids among them) spell whole, valid UTF-8 text;
        `broken` when what follows them is invalid for good (a byte that begins or continues no character,
        a character cut short by a piece that is not a byte, an ASCII control character other than
        whitespace, `<unk>`), not merely a character still being written."""
        start = None  # where the run of byte pieces being read began
        for k in range(len(ids) + 1):
            if k < len(ids) and ids[k] in self._byte_of:
                if self._byte_of[ids[k]] in _CONTROL_BYTES:  # never code: garbage even where it is valid UTF-8
                    return self.whole_text_len(ids[:k])[0], True
                start = k if start is None else start
                continue
            if k < len(ids) and ids[k] == self.sp.unk_id():  # decodes to " ⁇ ", which nobody wrote
                return self.whole_text_len(ids[:k])[0], True
            if start is not None:
                run = bytes(self._byte_of[i] for i in ids[start:k])
                try:
                    # Final unless the run ends the ids: only a last character may still be unfinished.
                    _, used = codecs.utf_8_decode(run, "strict", k < len(ids))
                except UnicodeDecodeError as e:
                    return start + e.start, True
                if used < len(run):
                    return start + used, False
                start = None
        return len(ids), False

    def count_tokens(self, s: str) -> int:
        """len(encode(s)) without BOS/EOS: what `s` adds to a prompt (a FIM piece it spells counts as spelled)."""
        return len(self._guard(self.sp.encode(clean_text(s))))

    def last_piece(self, s: str) -> str:
        """The text of the last token `s` encodes to (as a continuation of a line): "pa" for "os.pa"."""
        ids = self.encode_infilling(s)
        return self.sp.id_to_piece(ids[-1]).replace("▁", " ") if ids and not self.sp.is_byte(ids[-1]) else ""

    def healing_tail(self, s: str) -> str:
        """The text of the most last tokens of `s` (encoded as a continuation of a line) that together still
        begin one vocabulary piece: " sel" for "rc = sel" (`▁se` `l`, and `▁self` begins with it), "pa" for
        "os.pa". At least the last token; "" when that is a byte piece (part of a character)."""
        ids = self.encode_infilling(s)
        text = ""
        for i in reversed(ids):
            if self.sp.is_byte(i):
                break
            longer = self.sp.id_to_piece(i).replace("▁", " ") + text
            if text and not self._begins_a_piece(longer):
                break
            text = longer
        return text

    @cached_property
    def _sorted_piece_texts(self) -> list[str]:
        return sorted(t for t in self.piece_texts() if t)

    def _begins_a_piece(self, text: str) -> bool:
        pieces = self._sorted_piece_texts
        k = bisect.bisect_left(pieces, text)
        return k < len(pieces) and pieces[k].startswith(text)

    def piece_texts(self) -> list[str | None]:
        """The text each id stands for in generated output: None for control pieces and for the byte pieces
        of non-ASCII bytes (a part of a character). An ASCII byte piece stands for its character: Llama's
        vocabulary spells a tab only as `<0x09>`."""
        texts: list[str | None] = []
        for i in range(self.n_words):
            if (byte := self._byte_of.get(i)) is not None:
                texts.append(chr(byte) if byte < 0x80 else None)
                continue
            piece = self.sp.id_to_piece(i)
            plain = not (self.sp.is_control(i) or self.sp.is_unknown(i) or i in self.control_ids or piece == SENTINEL)
            texts.append(piece.replace("▁", " ") if plain else None)
        return texts

    def _guard(self, ids: list[int]) -> list[int]:
        if self.control_ids.isdisjoint(ids):
            return ids
        out: list[int] = []
        for i in ids:
            out.extend(self._spell(i) if i in self.control_ids else (i,))
        return out

    def _spell(self, token_id: int) -> list[int]:
        # A reserved piece that came out of user text: encode its characters one by one, so that no
        # multi-character piece, and so no control piece, can form again.
        text = self.sp.id_to_piece(token_id).replace("▁", " ")
        return [t for ch in text for t in self.sp.encode(SENTINEL + ch)[len(self._sentinel_ids):]]


def psm_prompt(tok: Tokenizer, prefix: str, suffix: str) -> list[int]:
    # BOS <PRE> enc(prefix) <SUF> enc_infilling(suffix) <MID>
    return ([tok.bos_id, tok.prefix_id] + tok.encode(prefix, bos=False, eos=False)
            + [tok.suffix_id] + tok.encode_infilling(suffix) + [tok.middle_id])


def spm_prompt(tok: Tokenizer, prefix: str, suffix: str) -> list[int]:
    # BOS <PRE> <SUF> enc_infilling(suffix) <MID> enc(prefix)
    return ([tok.bos_id, tok.prefix_id, tok.suffix_id] + tok.encode_infilling(suffix)
            + [tok.middle_id] + tok.encode(prefix, bos=False, eos=False))


def infill_prompt(tok: Tokenizer, prefix: str, suffix: str, mode: FimMode = "psm") -> list[int]:
    """The prompt whose continuation, up to <EOT>, is the text between prefix and suffix."""
    if not tok.has_fim:
        raise ValueError(f"{tok.path}: this tokenizer has no infilling pieces "
                         "(Code Llama's Python variants and 34B cannot fill in the middle)")
    if mode == "psm":
        return psm_prompt(tok, prefix, suffix)
    if mode == "spm":
        return spm_prompt(tok, prefix, suffix)
    raise ValueError(f"unknown FIM mode {mode!r}; expected 'psm' or 'spm'")
