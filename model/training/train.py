"""Train the embedded demo model: a small Llama with Code Llama's tokenizer pieces and infilling objective.

    codellama-lsp train-demo --out runs/demo --steps 1000

Documents are cut into windows and split at random character positions into prefix / middle / suffix,
formatted half PSM and half SPM exactly as model.tokenizer builds inference prompts, with the middle
closed by <EOT>; a share stays plain left-to-right text. The checkpoint is written in the Hugging Face
layout that the loader reads for real Code Llama weights.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from .. import ngram_cache
from ..checkpoint import save_hf
from ..config import ModelArgs
from ..llama import Transformer, split_state
from ..loader import load_model, resolve_device
from ..tokenizer import Tokenizer
from . import corpus
from .tokenizer import train_tokenizer


@dataclass(frozen=True)
class TrainConfig:
    vocab_size: int = 4096
    dim: int = 256
    n_layers: int = 6
    n_heads: int = 8
    seq_len: int = 1024
    batch_size: int = 8
    steps: int = 1000
    lr: float = 2e-3
    warmup: int = 60
    weight_decay: float = 0.1
    fim_rate: float = 0.9  # Code Llama: 90% of documents become infilling examples, half PSM, half SPM
    seed: int = 1234

    def model_args(self) -> ModelArgs:
        hidden = 16 * math.ceil(int(2 * 4 * self.dim / 3) / 16)  # Meta's SwiGLU sizing, multiple_of 16
        return ModelArgs(dim=self.dim, n_layers=self.n_layers, n_heads=self.n_heads, n_kv_heads=self.n_heads,
                         vocab_size=self.vocab_size, hidden_dim=hidden, norm_eps=1e-5, rope_theta=1e6,
                         max_seq_len=self.seq_len)


# What each field means, as `codellama-lsp train-demo --help` shows it.
FIELD_HELP: dict[str, str] = {
    "vocab_size": "SentencePiece vocabulary of a fresh tokenizer", "dim": "model width",
    "n_layers": "transformer blocks", "n_heads": "attention heads", "seq_len": "tokens per training row",
    "batch_size": "rows per step", "steps": "optimizer steps", "lr": "peak learning rate",
    "warmup": "linear warm-up steps", "weight_decay": "AdamW weight decay of the matrices",
    "fim_rate": "share of windows that become infilling examples", "seed": "seed for data order and init",
}


def fim_example(text: str, tok: Tokenizer, rng: random.Random, fim_rate: float) -> list[int]:
    """One training example from a window of source text (token ids, BOS first)."""
    if rng.random() >= fim_rate or len(text) < 3:
        return tok.encode(text, bos=True, eos=False)
    cursor = rng.randrange(1, len(text) - 1)
    kind = rng.random()
    if kind < 0.5:  # the rest of a line: the commonest inline completion
        end = text.find("\n", cursor)
        end = len(text) if end < 0 else end
    elif kind < 0.75:  # a few whole lines, as after a block opener
        end = cursor
        for _ in range(rng.randint(1, 6)):
            nl = text.find("\n", end + 1)
            end = len(text) if nl < 0 else nl
    else:  # a random span (Code Llama's uniform split)
        end = min(len(text), cursor + rng.randint(0, 400))
    prefix, middle, suffix = text[:cursor], text[cursor:end], text[end:]
    middle_ids = tok.encode_infilling(middle) + [tok.eot_id]
    if rng.random() < 0.5:  # PSM: BOS <PRE> prefix <SUF> suffix <MID> middle <EOT>
        return ([tok.bos_id, tok.prefix_id] + tok.encode(prefix, bos=False, eos=False) + [tok.suffix_id]
                + tok.encode_infilling(suffix) + [tok.middle_id] + middle_ids)
    # SPM: BOS <PRE> <SUF> suffix <MID> prefix middle <EOT>
    return ([tok.bos_id, tok.prefix_id, tok.suffix_id] + tok.encode_infilling(suffix) + [tok.middle_id]
            + tok.encode(prefix, bos=False, eos=False) + middle_ids)


def window(text: str, rng: random.Random, max_chars: int) -> str:
    """A random window of whole lines, at most max_chars long."""
    if len(text) <= max_chars:
        return text
    start = rng.randrange(0, len(text) - max_chars)
    start = text.rfind("\n", 0, start) + 1
    return text[start:start + max_chars]


def batches(texts: list[str], tok: Tokenizer, cfg: TrainConfig, rng: random.Random):
    """Rows of seq_len + 1 tokens packed with whole examples; -1 marks padding (no loss)."""
    while True:
        rows = torch.full((cfg.batch_size, cfg.seq_len + 1), -1, dtype=torch.long)
        for r in range(cfg.batch_size):
            filled = 0
            while filled < cfg.seq_len // 2:
                text = window(rng.choice(texts), rng, rng.randint(300, 3 * cfg.seq_len))
                ids = fim_example(text, tok, rng, cfg.fim_rate)[: cfg.seq_len + 1 - filled]
                rows[r, filled:filled + len(ids)] = torch.tensor(ids)
                filled += len(ids)
                if filled >= cfg.seq_len:
                    break
        yield rows


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """bf16 autocast where it pays: always on a GPU; on a CPU only if bf16 matmuls beat fp32 ones there.

    CPUs without native bf16 (AVX2 only) emulate it: a training step ran 12x slower with autocast than
    without on one, so the choice is measured (a few milliseconds), not assumed.
    """
    if device.type == "cuda":
        return torch.bfloat16
    a = torch.randn(256, 256)

    def seconds(dtype: torch.dtype) -> float:
        x = a.to(dtype)
        x @ x  # warm-up
        t = time.perf_counter()
        for _ in range(5):
            x @ x
        return time.perf_counter() - t

    return torch.bfloat16 if seconds(torch.bfloat16) < seconds(torch.float32) else None


def lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def loss_on(model: Transformer, rows: torch.Tensor, device: torch.device, amp: torch.dtype | None) -> torch.Tensor:
    rows = rows.to(device)
    inputs, targets = rows[:, :-1].clamp(min=0), rows[:, 1:]
    with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
        logits = model(inputs)
    return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1)


def train(cfg: TrainConfig, out: Path, device: torch.device, log_every: int = 20, init: Path | None = None) -> dict:
    """Train from scratch, or continue from the checkpoint `init` (its tokenizer and weights)."""
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    train_files, held_files = corpus.split(corpus.collect())
    texts = [corpus.read(f) for f in train_files]
    out.mkdir(parents=True, exist_ok=True)
    if init is None:
        tok_path = train_tokenizer(texts, out / "tokenizer.model", cfg.vocab_size, fim_as="user_defined")
    else:
        tok_path = out / "tokenizer.model"
        shutil.copy(init / "tokenizer.model", tok_path)
    tok = Tokenizer(tok_path)
    args = cfg.model_args()
    model = Transformer(args).to(device)
    if init is not None:
        loaded, _ = load_model(init, device=device, dtype=torch.float32, quant="none")
        model.load_state_dict({k: v.detach().clone() for k, v in loaded.state_dict().items()})
    else:
        for name, p in model.named_parameters():  # small init keeps the residual stream calm at the start
            if p.dim() == 2:
                std = 0.02 / (math.sqrt(2 * cfg.n_layers) if name.endswith(("wo.weight", "w2.weight")) else 1)
                torch.nn.init.normal_(p, std=std)
    decay = [p for p in model.parameters() if p.dim() == 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.95),
                            fused=device.type in ("cuda", "cpu"))
    amp = autocast_dtype(device)
    held_texts = [corpus.read(f) for f in held_files]
    held_rows = list(zip(range(4), batches(held_texts, tok, cfg, random.Random(0))))
    curve = []
    t0 = time.time()
    stream = batches(texts, tok, cfg, rng)
    bar = tqdm(range(cfg.steps), desc="training", unit="step", disable=None)
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        loss = loss_on(model, next(stream), device, amp)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % log_every == 0 or step == cfg.steps - 1:
            entry = {"step": step, "loss": round(loss.item(), 4), "lr": round(lr_at(step, cfg), 6),
                     "elapsed_s": round(time.time() - t0, 1)}
            if step % (log_every * 5) == 0 or step == cfg.steps - 1:
                model.eval()
                with torch.no_grad():
                    entry["held_out_loss"] = round(sum(loss_on(model, r, device, amp).item()
                                                       for _, r in held_rows) / len(held_rows), 4)
                model.train()
            curve.append(entry)
            bar.set_postfix(loss=entry["loss"], refresh=False)
            tqdm.write(log_line(entry, cfg.steps))
            if step % (log_every * 10) == 0 and step:
                save(model, args, out, cfg, curve, train_files, held_files, texts, t0, device)
    return save(model, args, out, cfg, curve, train_files, held_files, texts, t0, device, init)


def log_line(entry: dict, steps: int) -> str:
    """One logged step for people (the full curve is kept in train_log.json)."""
    held = f"  held-out {entry['held_out_loss']:.3f}" if "held_out_loss" in entry else ""
    return (f"step {entry['step']:>{len(str(steps))}}/{steps}  loss {entry['loss']:.3f}{held}  "
            f"lr {entry['lr']:.2e}  {entry['elapsed_s']:.0f} s")


def save(model: Transformer, args: ModelArgs, out: Path, cfg: TrainConfig, curve: list[dict],
         train_files: list[corpus.SourceFile], held_files: list[corpus.SourceFile], texts: list[str],
         t0: float, device: torch.device, init: Path | None = None) -> dict:
    """Write the checkpoint (fp16, Hugging Face layout) and the training log beside it."""
    state = split_state({k: v.detach().to(torch.float16).cpu() for k, v in model.state_dict().items()}, args)
    save_hf(state, args, out)
    # Serving stacks that read Hugging Face directories (vLLM) need to know which tokenizer class reads ours.
    (out / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "LlamaTokenizer"}) + "\n")
    # A model this small copies names from the file poorly on its own: ask the engine for the n-gram cache.
    tok = Tokenizer(out / "tokenizer.model")
    (out / ngram_cache.CONFIG_FILE).write_text(json.dumps({
        "bos_token_id": tok.bos_id, "eos_token_id": tok.eos_id,
        ngram_cache.CONFIG_KEY: list(ngram_cache.DEFAULT_WEIGHTS)}) + "\n")
    step = curve[-1]["step"] + 1 if curve else 0
    manifest = {
        "config": asdict(cfg), "model_args": args.to_dict(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_files": len(train_files), "held_out_files": len(held_files),
        "train_chars": sum(map(len, texts)),
        "steps_done": step, "tokens_seen": step * cfg.batch_size * cfg.seq_len,
        "sources": sorted({(f.name.split("/")[0], f.licence) for f in train_files}),
        "train_seconds": round(time.time() - t0), "device": str(device), "torch": torch.__version__,
        "curve": curve,
        "continued_from": None if init is None else json.loads((init / "train_log.json").read_text()),
    }
    (out / "train_log.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="codellama-lsp train-demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/demo"),
                   help="directory for the checkpoint and train_log.json (default runs/demo)")
    p.add_argument("--device", default="cpu", help="cpu | cuda (default: cpu)")
    p.add_argument("--log-every", type=int, default=20, help="steps between log lines (default 20)")
    p.add_argument("--init", type=Path, help="continue training this checkpoint (keeps its tokenizer)")
    for f in TrainConfig.__dataclass_fields__.values():
        p.add_argument("--" + f.name.replace("_", "-"), type=type(f.default), default=f.default,
                       help=f"{FIELD_HELP[f.name]} (default {f.default})")
    return p


def main(argv: list[str] | None = None) -> None:
    p = build_parser()
    a = vars(p.parse_args(argv))
    if a["init"] is not None and not (a["init"] / "tokenizer.model").is_file():  # before the corpus is read
        p.error(f"--init {a['init']}: no tokenizer.model there (give a checkpoint this command wrote)")
    out, device, log_every, init = a.pop("out"), resolve_device(a.pop("device")), a.pop("log_every"), a.pop("init")
    train(TrainConfig(**a), out, device, log_every, init)


if __name__ == "__main__":
    main()
