"""Broken checkpoints fail with a message that names the file and tensor; HF-cache repo ids resolve offline."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from model.checkpoint import CheckpointError, resolve_model_dir
from model.loader import load_model

CPU = torch.device("cpu")


def load(path: Path | str) -> None:
    load_model(str(path), device=CPU, dtype=torch.float32, quant="none")


@pytest.fixture()
def copy_of(checkpoint_factory, tmp_path: Path):  # noqa: ANN201 - a small closure factory
    """`copy_of(layout, shards=1, gqa=False) -> Path`: a private, editable copy of a session checkpoint."""
    def make(layout: str = "hf", *, shards: int = 1, gqa: bool = False) -> Path:
        return Path(shutil.copytree(checkpoint_factory(layout, gqa=gqa, shards=shards), tmp_path / "ckpt"))
    return make


def edit_json(path: Path, **changes: object) -> None:
    path.write_text(json.dumps(json.loads(path.read_text()) | changes))


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_the_intact_copies_load(copy_of) -> None:
    load(copy_of("hf", shards=2))  # the baseline the damaged variants below start from


def test_missing_tensor_hf(copy_of) -> None:
    root = copy_of("hf")
    tensors = load_file(str(root / "model.safetensors"))
    del tensors["model.layers.1.mlp.up_proj.weight"]
    save_file(tensors, str(root / "model.safetensors"))
    with pytest.raises(CheckpointError, match=re.escape(f"{root}: tensor model.layers.1.mlp.up_proj.weight "
                                                        "is missing from the checkpoint")):
        load(root)


def test_tensor_listed_in_index_but_absent_from_shard(copy_of) -> None:
    root = copy_of("hf", shards=2)
    index = json.loads((root / "model.safetensors.index.json").read_text())["weight_map"]
    name = "model.layers.0.self_attn.o_proj.weight"
    shard = root / index[name]
    tensors = load_file(str(shard))
    del tensors[name]
    save_file(tensors, str(shard))
    with pytest.raises(CheckpointError, match=re.escape(f"{shard}: cannot read tensor {name}")):
        load(root)


def test_index_names_a_missing_shard_file(copy_of) -> None:
    root = copy_of("hf", shards=2)
    (root / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(CheckpointError, match=re.escape(f"cannot read {root / 'model-00002-of-00002.safetensors'}")):
        load(root)


def test_missing_tensor_meta(copy_of) -> None:
    root = copy_of("meta", shards=2)
    shard = root / "consolidated.01.pth"
    tensors = torch.load(shard, weights_only=True)
    del tensors["layers.1.feed_forward.w3.weight"]
    torch.save(tensors, shard)
    with pytest.raises(CheckpointError, match=re.escape(f"{shard}: tensor layers.1.feed_forward.w3.weight "
                                                        "is missing")):
        load(root)


@pytest.mark.parametrize(("shards", "victim"), [(1, "model.safetensors"), (2, "model-00002-of-00002.safetensors")])
def test_truncated_safetensors(copy_of, shards: int, victim: str) -> None:
    root = copy_of("hf", shards=shards)
    truncate(root / victim)
    with pytest.raises(CheckpointError, match=re.escape(f"cannot read {root / victim}: ")):
        load(root)


@pytest.mark.parametrize("victim", ["consolidated.00.pth", "consolidated.01.pth"])
def test_truncated_pth(copy_of, victim: str) -> None:
    root = copy_of("meta", shards=2)
    truncate(root / victim)
    with pytest.raises(CheckpointError, match=re.escape(f"cannot read {root / victim}: ")):
        load(root)


def test_shape_mismatch_hf(copy_of) -> None:
    # The tensor is named as the files name it (before: by this model's Meta-style name, not in the files).
    root = copy_of("hf")
    edit_json(root / "config.json", intermediate_size=256)
    with pytest.raises(CheckpointError, match=re.escape(f"{root / 'model.safetensors'}: tensor "
                                                        "model.layers.0.mlp.gate_proj.weight has shape (192, 64), "
                                                        "but the config implies (256, 64)")) as err:
        load(root)
    assert str(root) in str(err.value)


def test_shape_mismatch_hf_gqa(copy_of) -> None:
    root = copy_of("hf", gqa=True)
    edit_json(root / "config.json", num_key_value_heads=4)  # the files hold 2 K/V heads
    with pytest.raises(CheckpointError, match=re.escape("tensor model.layers.0.self_attn.k_proj.weight has shape "
                                                        "(32, 64), but the config implies (64, 64)")):
        load(root)


def test_shape_mismatch_meta(copy_of) -> None:
    root = copy_of("meta")
    edit_json(root / "params.json", multiple_of=256)  # the FFN formula now gives 256, the files hold 192
    with pytest.raises(CheckpointError, match=re.escape("tensor layers.0.feed_forward.w1.weight has shape (192, 64), "
                                                        "but the config implies (256, 64)")):
        load(root)


@pytest.mark.parametrize("layout", ["hf", "meta"])
def test_missing_tokenizer(copy_of, layout: str) -> None:
    root = copy_of(layout)
    (root / "tokenizer.model").unlink()
    with pytest.raises(CheckpointError, match=re.escape(f"{root}: tokenizer.model is missing")):
        load(root)


@pytest.mark.parametrize("layout", ["hf", "meta"])
def test_a_tokenizer_with_more_pieces_than_the_model_has_rows_is_refused(copy_of, layout: str) -> None:
    """The opposite of a fine-tune's added rows (tests/test_padded_vocab.py): ids the tokenizer produces would
    have no embedding."""
    root = copy_of(layout)
    config = root / ("config.json" if layout == "hf" else "params.json")
    edit_json(config, vocab_size=400)
    with pytest.raises(CheckpointError, match=re.escape(
            f"{root}: tokenizer.model has 512 pieces, but the model's vocabulary ({config.name} vocab_size) has "
            "only 400: tokenizer.model is not this model's")):
        load(root)


@pytest.mark.parametrize(("layout", "tensor"), [("hf", "model.embed_tokens.weight"),
                                               ("meta", "tok_embeddings.weight")])
def test_a_vocab_size_the_tensors_do_not_have_is_refused_naming_the_tensor(copy_of, layout: str, tensor: str) -> None:
    """More rows in the config than the tokenizer has pieces, but not in the files: every vocabulary tensor's
    shape is still checked against the config, before any is read."""
    root = copy_of(layout)
    edit_json(root / ("config.json" if layout == "hf" else "params.json"), vocab_size=576)
    with pytest.raises(CheckpointError, match=re.escape(f"tensor {tensor} has shape (512, 64), but the config "
                                                        "implies (576, 64)")):
        load(root)


def test_gapped_meta_shards(copy_of) -> None:
    root = copy_of("meta", shards=2)
    (root / "consolidated.01.pth").rename(root / "consolidated.02.pth")
    with pytest.raises(CheckpointError, match=r"numbered without gaps; found \['consolidated.00.pth', "
                                              r"'consolidated.02.pth'\]"):
        load(root)


def test_a_missing_meta_shard_is_named(copy_of) -> None:
    # Before: "tensor tok_embeddings.weight has shape (512, 32), but the config implies (512, 64)".
    root = copy_of("meta", shards=2)
    (root / "consolidated.01.pth").unlink()
    with pytest.raises(CheckpointError, match=re.escape(f"{root}: the checkpoint is split into 2 model-parallel "
                                                        "shards, but only 1 is here; missing: consolidated.01.pth")):
        load(root)


@pytest.mark.parametrize(("name", "change", "message"), [
    # Before: a raw RuntimeError from torch.cat after the shape check had passed.
    ("layers.0.attention.wq.weight", lambda t: t[:, :-1], "which does not fit consolidated.00.pth's (32, 64): "
                                                          "every shard's must be the same but along dimension 0"),
    # Before: loaded silently, with shard 0's copy.
    ("norm.weight", lambda t: t + 1, "differs from consolidated.00.pth's, though every shard holds the same copy"),
])
def test_meta_shards_that_do_not_fit_together(copy_of, name: str, change, message: str) -> None:
    root = copy_of("meta", shards=2)
    shard = root / "consolidated.01.pth"
    tensors = torch.load(shard, weights_only=True)
    tensors[name] = change(tensors[name]).contiguous()
    torch.save(tensors, shard)
    with pytest.raises(CheckpointError, match=re.escape(f"{shard}: tensor {name} ") + ".*" + re.escape(message)):
        load(root)


def test_replicated_norms_that_differ_in_their_last_bits_load_with_shard_0s(copy_of) -> None:
    """Meta's replicated copies can differ by rounding (Llama 3 70B's norms do; HF's converter keeps shard 0's):
    before, any difference refused the checkpoint as corrupt."""
    root = copy_of("meta", shards=2)
    shard = root / "consolidated.01.pth"
    tensors = torch.load(shard, weights_only=True)
    first = torch.load(root / "consolidated.00.pth", weights_only=True)["layers.0.ffn_norm.weight"]
    for name in ("layers.0.ffn_norm.weight", "norm.weight"):  # one bf16 step off, in every element
        tensors[name] = tensors[name].to(torch.bfloat16).view(torch.int16).add(1).view(torch.bfloat16).float()
    torch.save(tensors, shard)
    model, _ = load_model(str(root), device=CPU, dtype=torch.float32, quant="none")
    assert torch.equal(model.layers[0].ffn_norm.weight, first)


def test_meta_without_shards(copy_of) -> None:
    root = copy_of("meta")
    (root / "consolidated.00.pth").unlink()
    with pytest.raises(CheckpointError, match=re.escape(f"{root}: params.json but no consolidated.NN.pth shards")):
        load(root)


def test_no_config_and_no_safetensors(copy_of) -> None:
    root = copy_of("hf")
    (root / "model.safetensors").rename(root / "model.gguf")
    with pytest.raises(CheckpointError, match=re.escape(f"{root}: config.json but no weights: none of "
                                                        "model.safetensors.index.json, model.safetensors, "
                                                        "pytorch_model.bin.index.json, pytorch_model.bin")):
        load(root)
    (root / "config.json").unlink()
    with pytest.raises(CheckpointError, match="neither config.json .* nor params.json"):
        load(root)


def test_corrupt_config_json(copy_of) -> None:
    root = copy_of("hf")
    (root / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match=re.escape(f"cannot read {root / 'config.json'}")):
        load(root)


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=re.escape(f"model directory {tmp_path / 'nope'} does not exist")):
        load(tmp_path / "nope")


def _fake_hub(hub: Path, repo: str, checkpoint: Path, *, with_ref: bool = True) -> Path:
    entry = hub / ("models--" + repo.replace("/", "--"))
    snapshot = entry / "snapshots" / "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(checkpoint, snapshot)
    # An older, empty snapshot whose hash sorts last: the resolver must not pick it by name.
    stale = entry / "snapshots" / "ffffffffffffffffffffffffffffffffffffffff"
    stale.mkdir()
    os.utime(stale, (1_000_000_000, 1_000_000_000))
    if with_ref:
        (entry / "refs").mkdir()
        (entry / "refs" / "main").write_text(snapshot.name + "\n")
    return snapshot


def test_unknown_hf_cache_repo_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(CheckpointError, match=re.escape(f"'acme/no-such-model' is not a directory and is not in "
                                                        f"the Hugging Face cache at {tmp_path / 'hub'}")):
        load("acme/no-such-model")


def test_resolve_repo_id_in_hf_hub_cache(checkpoint_factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         ) -> None:
    monkeypatch.chdir(tmp_path)  # "acme/tiny-code" must not exist relative to the working directory
    snapshot = _fake_hub(tmp_path / "hub", "acme/tiny-code", checkpoint_factory("hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert resolve_model_dir("acme/tiny-code") == snapshot
    load("acme/tiny-code")  # end to end through the loader


def test_resolve_repo_id_via_hf_home(checkpoint_factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    snapshot = _fake_hub(tmp_path / "home" / "hub", "acme/tiny-code", checkpoint_factory("meta"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    assert resolve_model_dir("acme/tiny-code") == snapshot


def test_resolve_repo_id_without_refs(checkpoint_factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    snapshot = _fake_hub(tmp_path / "hub", "acme/tiny-code", checkpoint_factory("hf"), with_ref=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert resolve_model_dir("acme/tiny-code") == snapshot


def test_hf_hub_cache_with_tilde(checkpoint_factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    snapshot = _fake_hub(tmp_path / "user" / "hub", "acme/tiny-code", checkpoint_factory("hf"))
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.setenv("HF_HUB_CACHE", "~/hub")  # as users write it in shell profiles
    assert resolve_model_dir("acme/tiny-code") == snapshot


def test_hf_query_rows_that_do_not_match_the_heads_name_the_tensor(checkpoint_factory, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(checkpoint_factory("hf"), broken)
    tensors = load_file(str(broken / "model.safetensors"))
    name = "model.layers.0.self_attn.q_proj.weight"
    tensors[name] = tensors[name][:-2].contiguous()
    save_file(tensors, str(broken / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match=re.escape(f"{broken / 'model.safetensors'}: tensor "
                                                        "model.layers.0.self_attn.q_proj.weight has shape (62, 64), "
                                                        "but")):
        load_model(broken, device=torch.device("cpu"), dtype=torch.float32, quant="none")  # from the headers
    from model.checkpoint import HFReader
    with pytest.raises(CheckpointError, match="q_proj.weight has shape \\(62, 64\\), which does not split"):
        HFReader(broken).get("layers.0.attention.wq.weight")  # a reader asked directly


# -- configs: every field checked, the file and key named, before anything is allocated ------------------
def without(key: str):  # noqa: ANN201 - an edit for broken_config
    return lambda config: {k: v for k, v in config.items() if k != key}


def replaced(**changes: object):  # noqa: ANN201
    return lambda config: config | changes


@pytest.mark.parametrize(("layout", "edit", "message"), [
    ("hf", lambda config: [config], "config.json must hold a JSON object, not an array"),
    ("hf", lambda config: None, "config.json must hold a JSON object, not null"),
    ("hf", without("hidden_size"), "config.json: hidden_size is missing"),
    ("hf", without("vocab_size"), "config.json: vocab_size is missing"),
    ("hf", replaced(hidden_size="64"), 'config.json: hidden_size must be an integer from 1 to 262144, not "64"'),
    ("hf", replaced(num_attention_heads=0), "config.json: num_attention_heads must be an integer from 1"),
    ("hf", replaced(num_key_value_heads=3), "config.json: num_attention_heads 4 is not a multiple of "
                                            "num_key_value_heads 3"),
    ("hf", replaced(num_attention_heads=3), "config.json: hidden_size 64 is not divisible by num_attention_heads 3"),
    ("hf", replaced(num_attention_heads=64), "config.json: hidden_size / num_attention_heads = 1 must be even"),
    ("hf", replaced(max_position_embeddings=0), "config.json: max_position_embeddings must be an integer from 1"),
    ("hf", replaced(num_hidden_layers=10**9), "config.json: num_hidden_layers must be an integer from 1 to 1024"),
    ("hf", replaced(num_hidden_layers=3), "config.json: num_hidden_layers is 3, but model.safetensors holds 2 layers"),
    ("hf", replaced(num_hidden_layers=True), "config.json: num_hidden_layers must be an integer"),
    ("hf", replaced(rms_norm_eps=-1), "config.json: rms_norm_eps must be a number above 0"),
    ("hf", replaced(rope_theta="big"), "config.json: rope_theta must be a number above 0"),
    ("hf", replaced(rope_scaling=[1]), "config.json: rope_scaling must be an object"),
    ("hf", replaced(model_type=7), "config.json: model_type must be a string"),
    ("meta", lambda params: [1, 2], "params.json must hold a JSON object, not an array"),
    ("meta", without("n_heads"), "params.json: n_heads is missing"),
    ("meta", replaced(dim=64.5), "params.json: dim must be an integer"),
    ("meta", replaced(n_layers=10**9), "params.json: n_layers must be an integer from 1 to 1024"),
    ("meta", replaced(n_layers=1), "params.json: n_layers is 1, but consolidated.00.pth holds 2 layers"),
    ("meta", replaced(n_kv_heads=0), "params.json: n_kv_heads must be an integer from 1"),
    ("meta", replaced(multiple_of=0), "params.json: multiple_of must be an integer from 1"),
    ("meta", replaced(ffn_dim_multiplier="x"), "params.json: ffn_dim_multiplier must be a number above 0"),
    ("meta", replaced(max_seq_len=0), "params.json: max_seq_len must be an integer from 1"),
])
def test_broken_configs_name_the_file_and_key(copy_of, layout: str, edit, message: str) -> None:
    root = copy_of(layout)
    name = "config.json" if layout == "hf" else "params.json"
    (root / name).write_text(json.dumps(edit(json.loads((root / name).read_text()))))
    with pytest.raises(ValueError) as err:
        load(root)
    assert str(err.value).startswith(str(root / name)) and message in str(err.value), str(err.value)


def test_an_index_without_a_weight_map(copy_of) -> None:
    root = copy_of("hf", shards=2)
    (root / "model.safetensors.index.json").write_text(json.dumps({"weight_map": ["a"]}))
    with pytest.raises(CheckpointError, match=re.escape(f"{root / 'model.safetensors.index.json'}: weight_map "
                                                        "must be an object")):
        load(root)


@pytest.mark.parametrize("layout", ["hf", "meta"])
def test_shapes_are_checked_from_the_headers(copy_of, layout: str) -> None:
    from model.checkpoint import check_shapes, open_checkpoint
    root = copy_of(layout, shards=2)
    check_shapes(open_checkpoint(root)[1])  # the intact checkpoint passes
    name = "config.json" if layout == "hf" else "params.json"
    key = "intermediate_size" if layout == "hf" else "multiple_of"
    (root / name).write_text(json.dumps(json.loads((root / name).read_text()) | {key: 256}))
    stored = "model.layers.0.mlp.gate_proj.weight" if layout == "hf" else "layers.0.feed_forward.w1.weight"
    with pytest.raises(CheckpointError, match=re.escape(f"tensor {stored} has shape (192, 64), but the config "
                                                        "implies (256, 64)")):
        check_shapes(open_checkpoint(root)[1])


@pytest.mark.parametrize("layout", ["hf", "meta"])
def test_a_wrong_shape_fails_before_any_tensor_is_read(copy_of, monkeypatch: pytest.MonkeyPatch,
                                                        layout: str) -> None:
    # Before: the output projection, the last tensor loaded, was found wrong only after every other tensor had
    # been read (and, on a GPU, quantized): a minute into loading a 7B model.
    from model import checkpoint

    root = copy_of(layout)
    if layout == "hf":
        tensors = load_file(str(root / "model.safetensors"))
        tensors["lm_head.weight"] = tensors["lm_head.weight"][:, :-2].contiguous()
        save_file(tensors, str(root / "model.safetensors"))
    else:
        shard = torch.load(root / "consolidated.00.pth", weights_only=True)
        shard["output.weight"] = shard["output.weight"][:, :-2].clone()
        torch.save(shard, root / "consolidated.00.pth")
    read: list[str] = []
    for reader in (checkpoint.HFReader, checkpoint.MetaReader):
        get = reader.get
        monkeypatch.setattr(reader, "get", lambda self, name, get=get: read.append(name) or get(self, name))
    stored = "lm_head.weight" if layout == "hf" else "output.weight"
    with pytest.raises(CheckpointError, match=re.escape(f"tensor {stored} has shape (512, 62), but the config "
                                                        "implies (512, 64)")):
        load(root)
    assert read == []


@pytest.mark.parametrize("where", ["../outside/{file}", "/ABS/outside/{file}", "sub/../../outside/{file}"])
def test_an_index_cannot_name_files_outside_the_checkpoint(copy_of, tmp_path: Path, where: str) -> None:
    """A downloaded index.json is data: its shards are files of the checkpoint, never a path out of it (it
    loaded weights from any file the user can read)."""
    root = copy_of("hf", shards=2)
    index = root / "model.safetensors.index.json"
    listed = json.loads(index.read_text())
    (tmp_path / "outside").mkdir()
    for file in set(listed["weight_map"].values()):
        shutil.copy(root / file, tmp_path / "outside" / file)
    bad = {n: where.replace("/ABS", str(tmp_path)).format(file=f) for n, f in listed["weight_map"].items()}
    index.write_text(json.dumps({"weight_map": bad}))
    with pytest.raises(CheckpointError, match=re.escape(f"{index}: weight_map names {next(iter(bad.values()))!r}, "
                                                        "which is not a file in this directory")):
        load(root)


@pytest.mark.parametrize("victim", ["model.safetensors", "model-00001-of-00002.safetensors", "index",
                                    "consolidated.00.pth"])
def test_a_checkpoint_file_that_is_not_a_regular_file_is_refused_at_once(copy_of, tmp_path: Path, victim: str) -> None:
    """A FIFO (or a link to one, or to a device) in place of a checkpoint file: opening it blocked the load for
    good (safetensors holds the GIL meanwhile, so the real CLI runs it: the whole process froze)."""
    root = copy_of("meta" if victim.endswith(".pth") else "hf", shards=1 if victim == "model.safetensors" else 2)
    path = root / ("model.safetensors.index.json" if victim == "index" else victim)
    path.unlink()
    os.mkfifo(path)
    (tmp_path / "a.py").write_text("def add(a, b):\n    return \n")
    run = subprocess.run([sys.executable, "-m", "lsp_server", "complete", "--model", str(root), "--line", "1",
                          "--character", "11", str(tmp_path / "a.py")], capture_output=True, text=True, timeout=60)
    assert run.returncode != 0 and f"{path}: not a regular file" in run.stderr, run.stderr


def _stored_int8(root: Path) -> None:
    """Rewrite an HF checkpoint as transformers saves a bitsandbytes 8-bit model: int8 projection weights with
    their row scales (SCB) beside them."""
    tensors = load_file(str(root / "model.safetensors"))
    for name in [n for n in tensors if n.endswith("proj.weight")]:
        scale = tensors[name].abs().amax(dim=1)
        tensors[name] = torch.round(tensors[name] * 127 / scale[:, None]).to(torch.int8)
        tensors[name.removesuffix("weight") + "SCB"] = scale
    save_file(tensors, str(root / "model.safetensors"), metadata={"format": "pt"})


def test_a_checkpoint_stored_quantized_is_refused(copy_of) -> None:
    """A bitsandbytes 8-bit checkpoint (an int8 weight and a scale per row) loaded without an error: its int8
    codes, read as weights, generated garbage."""
    root = copy_of("hf")
    _stored_int8(root)
    edit_json(root / "config.json", quantization_config={"quant_method": "bitsandbytes", "load_in_8bit": True})
    with pytest.raises(ValueError, match=re.escape(f"{root / 'config.json'}: quantization_config says the weights "
                                                   "are stored quantized (bitsandbytes); this loader reads 16- or "
                                                   "32-bit weights")):
        load(root)
    edit_json(root / "config.json", quantization_config=None)  # the same weights, their config stripped
    with pytest.raises(CheckpointError, match=re.escape(f"{root / 'model.safetensors'}: tensor "
                                                        "model.layers.0.self_attn.q_proj.weight holds int8 values, "
                                                        "not 16- or 32-bit weights")):
        load(root)


def test_a_hf_cache_entry_resolves_to_its_snapshot(checkpoint_factory, tmp_path: Path) -> None:
    """The cache's directory for a repo (models--org--name), as a user finds it under ~/.cache/huggingface/hub:
    before, 'tokenizer.model is missing', though the snapshot inside holds it."""
    snapshot = _fake_hub(tmp_path / "hub", "acme/tiny-code", checkpoint_factory("hf"))
    assert resolve_model_dir(tmp_path / "hub" / "models--acme--tiny-code") == snapshot
    load(tmp_path / "hub" / "models--acme--tiny-code")


def test_a_directory_of_checkpoints_names_them(checkpoint_factory, tmp_path: Path) -> None:
    """download.sh's target folder holds CodeLlama-7b/, CodeLlama-13b/...: before, 'tokenizer.model is missing'."""
    shutil.copytree(checkpoint_factory("meta"), tmp_path / "CodeLlama-7b")
    shutil.copytree(checkpoint_factory("meta", shards=2), tmp_path / "CodeLlama-13b")
    (tmp_path / "notes").mkdir()
    with pytest.raises(CheckpointError, match=re.escape(f"{tmp_path} holds no checkpoint itself; the directories in "
                                                        "it that do: CodeLlama-13b, CodeLlama-7b (give one as the "
                                                        f"model, e.g. {tmp_path / 'CodeLlama-13b'})")):
        load(tmp_path)
    with pytest.raises(CheckpointError, match=re.escape(f"{tmp_path / 'notes'}: tokenizer.model is missing")):
        load(tmp_path / "notes")  # nothing below it either: the message it always had


def test_gguf_files_are_named_as_such(checkpoint_factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """llama.cpp's GGUF files, as a file, a directory or a cached repo id: before, 'give the directory that holds
    it', then 'tokenizer.model is missing' for that directory: a loop with no way out."""
    gguf = tmp_path / "gguf" / "codellama-7b.Q4_K_M.gguf"
    gguf.parent.mkdir()
    gguf.write_bytes(b"GGUF\x03\x00\x00\x00")
    message = re.escape(f"{gguf} is a GGUF file (llama.cpp's format), which this server cannot load")
    for model in (gguf, gguf.parent):
        with pytest.raises(CheckpointError, match=message):
            load(model)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    snapshot = _fake_hub(tmp_path / "hub", "acme/code-GGUF", gguf.parent)
    with pytest.raises(CheckpointError, match=re.escape(f"{snapshot / gguf.name} is a GGUF file")):
        load("acme/code-GGUF")
