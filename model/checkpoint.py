"""Checkpoint layouts: Hugging Face (config.json + safetensors) and Meta (params.json + consolidated.NN.pth).

Readers hand out one tensor at a time, already renamed to our parameter names and in our layout, so the
loader can stream (and quantize) a model bigger than host or GPU memory would hold twice.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import struct
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Protocol

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor

from .config import ModelArgs, read_json
from .tokenizer import Tokenizer


class CheckpointError(ValueError):
    """A checkpoint directory that cannot be used; the message names the file and tensor at fault."""


class Reader(Protocol):
    args: ModelArgs
    def get(self, name: str) -> Tensor: ...
    def shape(self, name: str) -> tuple[int, ...]: ...
    def source(self, name: str) -> str:
        """Where a tensor (our name) is stored, for messages: its file and the name it has there."""
        ...


# Our (Meta) name -> Hugging Face name; layer tensors use {i}.
_HF_NAMES = {
    "tok_embeddings.weight": "model.embed_tokens.weight",
    "norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
    "layers.{i}.attention.wq.weight": "model.layers.{i}.self_attn.q_proj.weight",
    "layers.{i}.attention.wk.weight": "model.layers.{i}.self_attn.k_proj.weight",
    "layers.{i}.attention.wv.weight": "model.layers.{i}.self_attn.v_proj.weight",
    "layers.{i}.attention.wo.weight": "model.layers.{i}.self_attn.o_proj.weight",
    "layers.{i}.feed_forward.w1.weight": "model.layers.{i}.mlp.gate_proj.weight",
    "layers.{i}.feed_forward.w2.weight": "model.layers.{i}.mlp.down_proj.weight",
    "layers.{i}.feed_forward.w3.weight": "model.layers.{i}.mlp.up_proj.weight",
    "layers.{i}.attention_norm.weight": "model.layers.{i}.input_layernorm.weight",
    "layers.{i}.ffn_norm.weight": "model.layers.{i}.post_attention_layernorm.weight",
}
_LAYER = re.compile(r"^layers\.(\d+)\.")
_ANY_LAYER = re.compile(r"(?:^|\.)layers\.(\d+)\.")


def check_layer_count(config: Path, key: str, args: ModelArgs, names: Iterable[str], listing: str) -> None:
    """The config's layer count must be the checkpoint's (`names`, listed in the file `listing`): a wrong one
    would fail late, or allocate for layers that are not there."""
    found = 1 + max((int(m.group(1)) for n in names if (m := _ANY_LAYER.search(n))), default=-1)
    if found != args.n_layers:
        raise CheckpointError(f"{config}: {key} is {args.n_layers}, but {listing} holds {found} layers")


def hf_name(name: str) -> str:
    m = _LAYER.match(name)
    template = _LAYER.sub("layers.{i}.", name) if m else name
    return _HF_NAMES[template].replace("{i}", m.group(1)) if m else _HF_NAMES[template]


def permute_for_rotate_half(w: Tensor, n_heads: int) -> Tensor:
    """Meta's interleaved q/k rows -> Hugging Face's rotate-half order (as HF's converter does)."""
    rows, cols = w.shape
    return w.view(n_heads, rows // n_heads // 2, 2, cols).transpose(1, 2).reshape(rows, cols)


def unpermute_from_rotate_half(w: Tensor, n_heads: int) -> Tensor:
    rows, cols = w.shape
    return w.view(n_heads, 2, rows // n_heads // 2, cols).transpose(1, 2).reshape(rows, cols)


def load_pickle(path: Path) -> object:
    """A torch.save file, mmap'd (no tensor data is read until used) and loaded with weights_only (never
    running pickled code). Read its tensors through PickledTensors, not through the mapping."""
    if not path.is_file():  # a FIFO or a device: opening it could block for good
        raise CheckpointError(f"cannot read {path}: " + ("not a regular file" if path.exists() else "no such file"))
    try:
        return torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except Exception as e:
        raise CheckpointError(f"cannot read {path}: {e}") from e


def _record_offsets(path: Path) -> list[int]:
    """Where the bytes of each non-empty tensor storage (a stored, uncompressed `.../data/N` zip entry) begin in
    a torch.save file."""
    offsets = []
    with zipfile.ZipFile(path) as archive, open(path, "rb") as f:
        for info in archive.infolist():
            if (info.filename.split("/")[-2:-1] == ["data"] and info.compress_type == zipfile.ZIP_STORED
                    and info.file_size):  # an empty storage has no data pointer to match
                f.seek(info.header_offset + 26)  # the local header's name and extra field lengths
                name_len, extra_len = struct.unpack("<HH", f.read(4))
                offsets.append(info.header_offset + 30 + name_len + extra_len)
    return offsets


class PickledTensors:
    """The tensors of a torch.save file (a dict of them) read into memory of their own, one at a time.

    torch.load(mmap=True) maps the whole file, and its tensors are views of the mapping: every page read stays
    in the process's resident set while the mapping lives, and a parameter that needed no conversion stayed a
    view of the file. Loading counted a checkpoint's pages beside the copies made of them (as _SafetensorsFile
    found for safetensors). Read, the file's pages go to the page cache alone, which the kernel reclaims.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        state = load_pickle(path)
        if not isinstance(state, dict):
            raise CheckpointError(f"{path}: holds a {type(state).__name__}, not a dict of tensors")
        self.tensors: dict[str, Tensor] = {k: v for k, v in state.items() if isinstance(v, Tensor)}
        # torch.load(mmap=True) maps the file from its start and slices each storage from its record's offset,
        # so a storage's address less the mapping's is where its bytes are in the file. The mapping's address
        # is the lowest storage's less the lowest record's offset, if the storages are exactly the records: a
        # record no tensor here uses (one of a value that is not a tensor) could be the lowest, and equal spacing
        # would then pass a check of each storage alone with every tensor read from the record before its own.
        self._base: int | None = None
        pointers = {t.untyped_storage().data_ptr() for t in self.tensors.values() if t.untyped_storage().nbytes()}
        try:
            offsets = set(_record_offsets(path))
        except (OSError, zipfile.BadZipFile, struct.error):
            offsets = set()
        if pointers and offsets:
            base = min(pointers) - min(offsets)
            if {p - base for p in pointers} == offsets:
                self._base = base

    def get(self, name: str) -> Tensor:
        t = self.tensors[name]
        if self._base is None or not t.numel():  # its place in the file unknown: copied through the mapping
            return t.clone()
        # The bytes from the tensor's first element to its last (a view may use part of a larger storage).
        extent = 1 + sum((n - 1) * stride for n, stride in zip(t.shape, t.stride()))
        size = t.element_size()
        buffer = torch.empty(extent * size, dtype=torch.uint8)
        with open(self.path, "rb") as f:
            f.seek(t.untyped_storage().data_ptr() - self._base + t.storage_offset() * size)
            got = f.readinto(memoryview(buffer.numpy()))
        if got != extent * size:
            raise CheckpointError(f"{self.path}: tensor {name} ends after the file")
        return torch.empty(0, dtype=t.dtype).set_(buffer.untyped_storage(), 0, t.shape, t.stride())


class _PickledFile:
    """A pytorch_model*.bin read through the calls HFReader makes of a safetensors file."""

    def __init__(self, path: Path) -> None:
        self.file = PickledTensors(path)

    def keys(self) -> list[str]:
        return list(self.file.tensors)

    def get_tensor(self, name: str) -> Tensor:
        if name not in self.file.tensors:
            raise KeyError(f"no tensor named {name}")
        return self.file.get(name)

    def get_slice(self, name: str) -> _Shape:  # all HFReader asks of a slice is get_shape()
        if name not in self.file.tensors:
            raise KeyError(f"no tensor named {name}")
        return _Shape(self.file.tensors[name].shape)


# safetensors' dtype names; a tensor of another dtype is read through safetensors itself (and copied).
_SAFETENSORS_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
                       "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
                       "U8": torch.uint8, "BOOL": torch.bool, "F8_E4M3": torch.float8_e4m3fn,
                       "F8_E5M2": torch.float8_e5m2}


class _SafetensorsFile:
    """A safetensors file whose tensors are read into memory of their own, never left mapped from the file.

    safetensors maps the whole file, and the tensors it hands out are views of that mapping: every page read
    stays in the process's resident set while the file is open, and for as long as a parameter is such a view.
    Loading a 7B model to the CPU then showed the checkpoint's pages beside the copies made of them (the
    bf16 weights' 13.5 GB twice over in RSS, half of it page cache). Read, the file's pages go to the page
    cache alone, which the kernel reclaims as it needs.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.handle = safe_open(str(path), framework="pt", device="cpu")  # checks the header and the offsets
        with open(path, "rb") as f:
            size = int.from_bytes(f.read(8), "little")
            self.header: dict[str, dict] = json.loads(f.read(size))
        self.data_start = 8 + size

    def keys(self) -> list[str]:
        return list(self.handle.keys())

    def get_slice(self, name: str):  # noqa: ANN201 - safetensors' slice type is not exported
        return self.handle.get_slice(name)

    def get_tensor(self, name: str) -> Tensor:
        info = self.header.get(name) if name != "__metadata__" else None
        dtype = _SAFETENSORS_DTYPES.get(info["dtype"]) if info else None
        if info is None or dtype is None:
            return self.handle.get_tensor(name).clone()  # a name it lacks raises; an unusual dtype is copied
        begin, end = info["data_offsets"]
        tensor = torch.empty(info["shape"], dtype=dtype)
        raw = tensor.view(-1).view(torch.uint8).numpy()
        with open(self.path, "rb") as f:
            f.seek(self.data_start + begin)
            got = f.readinto(memoryview(raw)) if raw.size else 0
        if raw.size != end - begin or got != raw.size:
            raise CheckpointError(f"{self.path}: tensor {name} ends after the file")
        return tensor


class _Shape:
    def __init__(self, shape: torch.Size) -> None:
        self.shape = shape

    def get_shape(self) -> list[int]:
        return list(self.shape)


# (index, single file) of Hugging Face checkpoints, in order of preference: safetensors, then the PyTorch pickles
# that transformers wrote before it switched (and that Code Llama's own convert_to_hf.py still writes).
_HF_FILES = (("model.safetensors.index.json", "model.safetensors"),
             ("pytorch_model.bin.index.json", "pytorch_model.bin"))


class HFReader:
    """config.json + model.safetensors, or shards listed in model.safetensors.index.json; or the same as
    pytorch_model.bin / pytorch_model.bin.index.json."""

    def __init__(self, root: Path) -> None:
        self.root = root
        config = read_json(root / "config.json")
        self.args = ModelArgs.from_hf_config(config, str(root / "config.json"))
        self.tied = config.get("tie_word_embeddings") is True
        self._files: dict[str, object] = {}  # file -> its open handle
        index, single = (root / name for name in _HF_FILES[0])
        for pair in _HF_FILES:  # the first format present
            if any((root / name).exists() for name in pair):
                index, single = (root / name for name in pair)
                break
        if index.exists():
            listed = read_json(index)
            weight_map = listed.get("weight_map") if isinstance(listed, dict) else None
            if not (isinstance(weight_map, dict) and all(isinstance(f, str) for f in weight_map.values())):
                raise CheckpointError(f"{index}: weight_map must be an object naming a file for each tensor")
            for file in dict.fromkeys(weight_map.values()):  # the checkpoint's own files, never a path out of it
                if not file or Path(file).anchor or ".." in Path(file).parts:
                    raise CheckpointError(f"{index}: weight_map names {file!r}, which is not a file in this "
                                          "directory")
        elif single.exists():
            self._files[single.name] = self._open(single.name)
            weight_map = {n: single.name for n in self._files[single.name].keys()}
        else:
            raise CheckpointError(f"{root}: config.json but no weights: none of "
                                  f"{', '.join(f for pair in _HF_FILES for f in pair)}")
        self.weight_map: dict[str, str] = weight_map
        check_layer_count(root / "config.json", "num_hidden_layers", self.args, weight_map,
                          index.name if index.exists() else single.name)

    def _open(self, file: str):  # noqa: ANN202 - safetensors' handle type is not exported
        path = self.root / file
        if file.endswith(".bin"):
            return _PickledFile(path)
        if path.exists() and not path.is_file():  # a FIFO or a device: opening it could block for good
            raise CheckpointError(f"cannot read {path}: not a regular file")
        try:
            return _SafetensorsFile(path)
        except Exception as e:  # safetensors raises its own error types for truncated or corrupt files
            raise CheckpointError(f"cannot read {path}: {e}") from e

    def _locate(self, name: str) -> tuple[str, str]:
        """(HF tensor name, file) of one of our tensor names."""
        source = hf_name(name)
        if source == "lm_head.weight" and self.tied and source not in self.weight_map:
            source = "model.embed_tokens.weight"
        file = self.weight_map.get(source)
        if file is None:
            raise CheckpointError(f"{self.root}: tensor {source} is missing from the checkpoint")
        if file not in self._files:
            self._files[file] = self._open(file)
        return source, file

    def source(self, name: str) -> str:
        stored, file = self._locate(name)
        return f"{self.root / file}: tensor {stored}"

    def shape(self, name: str) -> tuple[int, ...]:
        """From the file's header: no tensor data is read."""
        source, file = self._locate(name)
        try:
            return tuple(self._files[file].get_slice(source).get_shape())
        except Exception as e:
            raise CheckpointError(f"{self.root / file}: cannot read tensor {source}: {e}") from e

    def get(self, name: str) -> Tensor:
        source, file = self._locate(name)
        try:
            t = self._files[file].get_tensor(source)
        except Exception as e:
            raise CheckpointError(f"{self.root / file}: cannot read tensor {source}: {e}") from e
        if name.endswith(("attention.wq.weight", "attention.wk.weight")):
            heads = self.args.n_heads if name.endswith("wq.weight") else self.args.n_kv_heads
            if t.dim() != 2 or t.shape[0] % (2 * heads):  # cannot even be split into heads to un-permute
                raise CheckpointError(f"{self.root / file}: tensor {source} has shape {tuple(t.shape)}, "
                                      f"which does not split into {heads} heads")
            t = unpermute_from_rotate_half(t, heads)
        return t


# How far a replicated tensor's copies may differ: 1/64 of the value (2 to 4 bf16 steps), or 1e-3 near zero.
REPLICA_RTOL, REPLICA_ATOL = 4 / 256, 1e-3
# How Meta's model-parallel shards split each tensor (fairscale Column/RowParallelLinear, ParallelEmbedding).
_META_SPLIT_DIM = {"tok_embeddings": 1, "wq": 0, "wk": 0, "wv": 0, "w1": 0, "w3": 0, "output": 0, "wo": 1, "w2": 1}


class MetaReader:
    """params.json + consolidated.00.pth ... consolidated.NN.pth (model-parallel shards)."""

    def __init__(self, root: Path, vocab_size: int) -> None:
        self.root = root
        self.args = ModelArgs.from_meta_params(read_json(root / "params.json"), vocab_size, str(root / "params.json"))
        self.files = sorted(root.glob("consolidated.*.pth"))
        if not self.files:
            raise CheckpointError(f"{root}: params.json but no consolidated.NN.pth shards")
        expected = [root / f"consolidated.{i:02d}.pth" for i in range(len(self.files))]
        if self.files != expected:
            raise CheckpointError(f"{root}: shards must be consolidated.00.pth ... numbered without gaps; "
                                  f"found {[f.name for f in self.files]}")
        self.pickles = [PickledTensors(f) for f in self.files]
        self.shards = [p.tensors for p in self.pickles]  # mapped: for names and shapes, never for tensor data
        check_layer_count(root / "params.json", "n_layers", self.args, self.shards[0], self.files[0].name)
        self._check_shard_count()

    def _check_shard_count(self) -> None:
        # Every shard holds dim / n_shards columns of the embedding: a shortfall by a whole factor is shards
        # left out (a 13B copied without consolidated.01.pth), which deserves better than a shape mismatch.
        embedding = self.shards[0].get("tok_embeddings.weight")
        if not isinstance(embedding, Tensor) or embedding.dim() != 2 or not embedding.shape[1]:
            return
        held, dim = embedding.shape[1] * len(self.files), self.args.dim
        if held < dim and dim % embedding.shape[1] == 0:
            want = dim // embedding.shape[1]
            missing = [f"consolidated.{i:02d}.pth" for i in range(len(self.files), want)]
            raise CheckpointError(f"{self.root}: the checkpoint is split into {want} model-parallel shards, but only "
                                  f"{len(self.files)} {'is' if len(self.files) == 1 else 'are'} here; missing: "
                                  f"{', '.join(missing)}")

    def _parts(self, name: str, *, read: bool = False) -> list[Tensor]:
        """Each shard's part of `name`: mapped (for its shape), or `read` into memory of its own."""
        parts = []
        for f, shard, pickled in zip(self.files, self.shards, self.pickles):
            if not isinstance(shard.get(name), Tensor):
                raise CheckpointError(f"{f}: tensor {name} is missing")
            parts.append(pickled.get(name) if read else shard[name])
        return parts

    def source(self, name: str) -> str:
        return f"{self.root}: tensor {name}"

    def shape(self, name: str) -> tuple[int, ...]:
        """The merged tensor's shape, from the mmap'd shards' metadata (no tensor data is read), once every
        shard's part is checked to fit: the same shape but along the dimension the shards split."""
        parts = self._parts(name)
        dim = _META_SPLIT_DIM.get(name.split(".")[-2])
        first = tuple(parts[0].shape)
        for f, part in zip(self.files[1:], parts[1:]):
            other = tuple(part.shape)
            if len(other) != len(first) or any(a != b for d, (a, b) in enumerate(zip(other, first)) if d != dim):
                split = f"but along dimension {dim}, which the shards split" if dim is not None else "(replicated)"
                raise CheckpointError(f"{f}: tensor {name} has shape {other}, which does not fit "
                                      f"{self.files[0].name}'s {first}: every shard's must be the same {split}")
        if dim is None or dim >= len(first):
            return first
        return first[:dim] + (sum(p.shape[dim] for p in parts),) + first[dim + 1:]

    def get(self, name: str) -> Tensor:
        self.shape(name)  # the parts fit together
        parts = self._parts(name, read=True)
        if len(parts) == 1:
            return parts[0]
        dim = _META_SPLIT_DIM.get(name.split(".")[-2])
        if dim is not None:
            return torch.cat(parts, dim=dim)
        # Norms are replicated, and shard 0's copy is the one HF's converter keeps. Meta's copies can differ in
        # their last bits (Llama 3 70B's were found to): only a copy that differs by more is a mixed-up checkpoint.
        for f, part in zip(self.files[1:], parts[1:]):
            if not torch.allclose(part.float(), parts[0].float(), rtol=REPLICA_RTOL, atol=REPLICA_ATOL):
                raise CheckpointError(f"{f}: tensor {name} differs from {self.files[0].name}'s, though every "
                                      "shard holds the same copy")
        return parts[0]


def resolve_model_dir(model: str | os.PathLike[str]) -> Path:
    """A checkpoint directory, or a Hugging Face repo id found in the local cache (never downloaded)."""
    path = Path(model).expanduser()
    if path.is_dir():
        return _checkpoint_in(path)
    if path.exists():
        if path.suffix.lower() == ".gguf":
            raise CheckpointError(_GGUF.format(path=path))
        raise CheckpointError(f"model path {path} is a file; give the directory that holds it, with tokenizer.model "
                              "and config.json (Hugging Face) or params.json (Meta)")
    if isinstance(model, str) and re.fullmatch(r"[\w.-]+/[\w.-]+", model):
        hub = Path(os.environ.get("HF_HUB_CACHE")
                   or Path(os.environ.get("HF_HOME", "~/.cache/huggingface")) / "hub").expanduser()
        if (snapshot := _snapshot(hub / ("models--" + model.replace("/", "--")))) is not None:
            return _checkpoint_in(snapshot)
        raise CheckpointError(f"{model!r} is not a directory and is not in the Hugging Face cache at {hub} "
                              f"(download it there first, e.g. `huggingface-cli download {model}`)")
    raise CheckpointError(f"model directory {path} does not exist")


def _snapshot(repo: Path) -> Path | None:
    """The snapshot of a Hugging Face cache entry (models--org--name) that main points to, else the newest."""
    ref = repo / "refs" / "main"
    snapshots = repo / "snapshots"
    if ref.is_file() and (snapshots / ref.read_text().strip()).is_dir():
        return snapshots / ref.read_text().strip()
    if snapshots.is_dir() and (found := [p for p in snapshots.iterdir() if p.is_dir()]):
        # Snapshot names are commit hashes: their order means nothing, the newest download wins.
        return max(found, key=lambda p: p.stat().st_mtime)
    return None


_CHECKPOINT_FILES = ("tokenizer.model", "config.json", "params.json")
# llama.cpp's quantized files: what a search for "CodeLlama 7B" often finds first, and nothing this loader reads.
_GGUF = ("{path} is a GGUF file (llama.cpp's format), which this server cannot load: give a Hugging Face (e.g. "
         "codellama/CodeLlama-7b-hf) or Meta checkpoint directory; the server quantizes it itself (--quant)")


def _holds_checkpoint(path: Path) -> bool:
    try:
        return any((path / name).is_file() for name in _CHECKPOINT_FILES)
    except OSError:  # a directory we may not read
        return False


def _checkpoint_in(path: Path) -> Path:
    """`path`, or the snapshot in it when it is a Hugging Face cache entry. A directory of GGUF files, or one
    above checkpoints (download.sh's, holding CodeLlama-7b/ and CodeLlama-13b/), is refused saying so: read as a
    checkpoint, it would only be said to lack tokenizer.model."""
    if _holds_checkpoint(path):
        return path
    if (path / "snapshots").is_dir() and (snapshot := _snapshot(path)) is not None:
        return _checkpoint_in(snapshot)
    if (gguf := next(path.glob("*.gguf"), None)) is not None:
        raise CheckpointError(_GGUF.format(path=gguf))
    try:
        inside = sorted(p.name for p in path.iterdir() if p.is_dir() and _holds_checkpoint(p))
    except OSError:
        inside = []
    if inside:
        raise CheckpointError(f"{path} holds no checkpoint itself; the directories in it that do: {', '.join(inside)} "
                              f"(give one as the model, e.g. {path / inside[0]})")
    return path


def open_tokenizer(root: Path) -> Tokenizer:
    """The checkpoint directory's tokenizer.model (all a remote backend needs of it)."""
    tok_path = root / "tokenizer.model"
    if not tok_path.is_file():
        raise CheckpointError(f"{root}: tokenizer.model is missing (Code Llama checkpoints ship a SentencePiece model)")
    return Tokenizer(tok_path)


def open_checkpoint(model: str | os.PathLike[str]) -> tuple[Tokenizer, Reader]:
    root = resolve_model_dir(model)
    tokenizer = open_tokenizer(root)
    if (root / "config.json").is_file():
        reader: Reader = HFReader(root)
    elif (root / "params.json").is_file():
        reader = MetaReader(root, tokenizer.n_words)
    else:
        raise CheckpointError(f"{root}: neither config.json (Hugging Face) nor params.json (Meta) found")
    rows, config = reader.args.vocab_size, "config.json" if isinstance(reader, HFReader) else "params.json"
    if rows < tokenizer.n_words:
        raise CheckpointError(f"{root}: tokenizer.model has {tokenizer.n_words} pieces, but the model's vocabulary "
                              f"({config} vocab_size) has only {rows}: tokenizer.model is not this model's")
    if rows > tokenizer.n_words:
        reader = VocabRows(reader, tokenizer.n_words)
    return tokenizer, reader


# The tensors with a row per token.
VOCAB_TENSORS = ("tok_embeddings.weight", "output.weight")


class VocabRows:
    """A checkpoint whose embedding and output projection have more rows than tokenizer.model has pieces, read as
    if it had only the first `n_words`: fine-tuning tools add a pad token (to added_tokens.json, which is not
    read here) or pad the rows to a multiple of 64, so Code Llama fine-tunes come with 32017, 32032 or 32064 rows.
    The tokenizer never produces the extra ids, and leaving out their output rows is masking their logits:
    the model can never emit one. Every other tensor is the wrapped reader's, as it is."""

    def __init__(self, reader: Reader, n_words: int) -> None:
        self.reader, self.stored_rows = reader, reader.args.vocab_size
        self.args = dataclasses.replace(reader.args, vocab_size=n_words)

    @property
    def dropped_rows(self) -> int:
        return self.stored_rows - self.args.vocab_size

    def source(self, name: str) -> str:
        return self.reader.source(name)

    def shape(self, name: str) -> tuple[int, ...]:
        """As stored, but the first n_words rows of the vocabulary tensors, once they are checked to hold the
        config's row count."""
        shape = self.reader.shape(name)
        if name not in VOCAB_TENSORS:
            return shape
        stored = (self.stored_rows, self.args.dim)
        if shape != stored:
            raise CheckpointError(f"{self.source(name)} has shape {shape}, but the config implies {stored}")
        return (self.args.vocab_size, self.args.dim)

    def get(self, name: str) -> Tensor:
        tensor = self.reader.get(name)
        if name in VOCAB_TENSORS and tensor.dim() == 2 and tensor.shape[0] == self.stored_rows:
            # A copy: a view would keep the dropped rows' memory alive in the loaded model.
            return tensor[: self.args.vocab_size].clone()
        return tensor


def check_shapes(reader: Reader) -> None:
    """Every tensor the config implies is in the checkpoint with the implied shape (headers only)."""
    for name, expected in checkpoint_shapes(reader.args).items():
        shape = reader.shape(name)
        if shape != expected:
            raise CheckpointError(f"{reader.source(name)} has shape {shape}, but the config implies {expected}")


def checkpoint_shapes(args: ModelArgs) -> dict[str, tuple[int, ...]]:
    """Every checkpoint tensor (our names, Meta's layout), in checkpoint order, with its shape per the config."""
    kv = args.n_kv_heads * args.head_dim
    shapes = {"tok_embeddings": (args.vocab_size, args.dim), "output": (args.vocab_size, args.dim),
              "norm": (args.dim,), "attention_norm": (args.dim,), "ffn_norm": (args.dim,),
              "wq": (args.dim, args.dim), "wk": (kv, args.dim), "wv": (kv, args.dim), "wo": (args.dim, args.dim),
              "w1": (args.hidden_dim, args.dim), "w2": (args.dim, args.hidden_dim), "w3": (args.hidden_dim, args.dim)}
    return {name: shapes[name.split(".")[-2]] for name in parameter_names(args)}


def parameter_names(args: ModelArgs) -> Iterator[str]:
    yield "tok_embeddings.weight"
    for i in range(args.n_layers):
        for t in _HF_NAMES:
            if t.startswith("layers."):
                yield t.replace("{i}", str(i))
    yield "norm.weight"
    yield "output.weight"


def save_hf(state: dict[str, Tensor], args: ModelArgs, out: Path, *, shards: int = 1) -> None:
    """Write `state` (our names and layout) as a Hugging Face checkpoint (config.json is written too)."""
    out.mkdir(parents=True, exist_ok=True)
    hf = {}
    for name, t in state.items():
        if name.endswith(("attention.wq.weight", "attention.wk.weight")):
            t = permute_for_rotate_half(t, args.n_heads if name.endswith("wq.weight") else args.n_kv_heads)
        hf[hf_name(name)] = t.contiguous()
    (out / "config.json").write_text(json.dumps(args.to_hf_config(), indent=2))
    if shards == 1:
        save_file(hf, str(out / "model.safetensors"), metadata={"format": "pt"})
        return
    names = list(hf)
    weight_map = {}
    for s in range(shards):
        file = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        part = {n: hf[n] for n in names[s::shards]}
        save_file(part, str(out / file), metadata={"format": "pt"})
        weight_map.update({n: file for n in part})
    (out / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))


def save_meta(state: dict[str, Tensor], args: ModelArgs, out: Path, *, shards: int = 1,
              multiple_of: int = 256, ffn_dim_multiplier: float | None = None) -> None:
    """Write `state` as Meta's params.json + consolidated.NN.pth, split like model-parallel shards."""
    out.mkdir(parents=True, exist_ok=True)
    params = {"dim": args.dim, "n_layers": args.n_layers, "n_heads": args.n_heads, "n_kv_heads": args.n_kv_heads,
              "multiple_of": multiple_of, "ffn_dim_multiplier": ffn_dim_multiplier, "norm_eps": args.norm_eps,
              "rope_theta": args.rope_theta, "vocab_size": args.vocab_size}
    (out / "params.json").write_text(json.dumps(params))
    for s in range(shards):
        shard = {}
        for name, t in state.items():
            dim = _META_SPLIT_DIM.get(name.split(".")[-2])
            shard[name] = t if dim is None or shards == 1 else t.chunk(shards, dim=dim)[s].clone()
        torch.save(shard, out / f"consolidated.{s:02d}.pth")
