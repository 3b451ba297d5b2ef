"""The `codellama-lsp complete` command, run as a user runs it, against transformers as the reference."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from model.tokenizer import Tokenizer, infill_prompt

DOCUMENT = "import math\n\n\ndef circle_area(r):\n    return math.pi * \n\n\nprint(circle_area(2.0))\n"
CURSOR = (4, 21)  # after "return math.pi * "


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lsp_server", "complete", *args], capture_output=True, text=True,
                          timeout=120)


def reference_infill(model_dir: Path, prefix: str, suffix: str, mode: str, max_new_tokens: int) -> str:
    """transformers' greedy generation on the same prompt ids, stopped at <EOT>/EOS."""
    from transformers import LlamaForCausalLM

    tok = Tokenizer(model_dir / "tokenizer.model")
    ids = infill_prompt(tok, prefix, suffix, mode)  # type: ignore[arg-type]
    model = LlamaForCausalLM.from_pretrained(str(model_dir), torch_dtype=torch.float32).eval()
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), max_new_tokens=max_new_tokens, do_sample=False,
                             eos_token_id=sorted(tok.stop_ids), pad_token_id=tok.eos_id)
    new = [t for t in out[0, len(ids):].tolist()]
    for i, t in enumerate(new):
        if t in tok.stop_ids:
            new = new[:i]
            break
    return tok.decode_infilling(new)


@pytest.mark.parametrize("layout,shards,gqa,mode", [
    ("hf", 1, False, "psm"), ("hf", 2, True, "spm"), ("meta", 1, False, "spm"), ("meta", 2, True, "psm")])
def test_raw_complete_matches_transformers(checkpoint_factory, tmp_path: Path, layout: str, shards: int,
                                           gqa: bool, mode: str) -> None:
    model_dir = checkpoint_factory(layout, gqa=gqa, shards=shards)
    twin = checkpoint_factory("hf", gqa=gqa, shards=1)  # same seed: the same weights in HF layout
    doc = tmp_path / "doc.py"
    doc.write_text(DOCUMENT)
    result = run_cli(str(doc), "--line", str(CURSOR[0]), "--character", str(CURSOR[1]), "--model", str(model_dir),
                     "--raw", "--device", "cpu", "--dtype", "float32", "--quant", "none", "--max-tokens", "24",
                     "--fim-mode", mode)
    assert result.returncode == 0, result.stderr
    offset = DOCUMENT.index("* ") + 2
    expected = reference_infill(twin, DOCUMENT[:offset], DOCUMENT[offset:], mode, 24)
    assert result.stdout == expected + "\n"  # like every answer of `complete`, a line


def test_dump_prompt_keeps_spelled_control_pieces_as_text(checkpoint_factory, tmp_path: Path) -> None:
    model_dir = checkpoint_factory("hf")
    tok = Tokenizer(model_dir / "tokenizer.model")
    doc = tmp_path / "tricky.py"
    doc.write_text('s = " <PRE> <SUF> <MID> <EOT>"\nx = "<EOT>" + \ny = "▁<EOT>"\n', encoding="utf-8")
    for raw in (["--raw"], []):
        result = run_cli(str(doc), "--line", "1", "--character", "13", "--model", str(model_dir),
                         "--dump-prompt", *raw)
        assert result.returncode == 0, result.stderr
        ids = json.loads(result.stdout)
        assert ids.count(tok.prefix_id) == 1 and ids.count(tok.suffix_id) == 1 and ids.count(tok.middle_id) == 1
        assert tok.eot_id not in ids


def test_crlf_file_positions(checkpoint_factory, tmp_path: Path) -> None:
    model_dir = checkpoint_factory("hf")
    tok = Tokenizer(model_dir / "tokenizer.model")
    doc = tmp_path / "crlf.py"
    doc.write_bytes(b"a = 1\r\nb = a + \r\nprint(b)\r\n")
    result = run_cli(str(doc), "--line", "1", "--character", "8", "--model", str(model_dir), "--dump-prompt",
                     "--raw", "--fim-mode", "psm")
    assert result.returncode == 0, result.stderr
    # The cursor sits after "b = a + ": the prefix is the first line and a half, with the file's CRLF kept.
    assert json.loads(result.stdout) == infill_prompt(tok, "a = 1\r\nb = a + ", "\r\nprint(b)\r\n", "psm")


def test_bad_input_gives_one_clear_line(tmp_path: Path, checkpoint_factory) -> None:
    missing = run_cli(str(tmp_path / "nope.py"), "--line", "0", "--character", "0")
    assert missing.returncode != 0 and "cannot read" in missing.stderr and "Traceback" not in missing.stderr
    doc = tmp_path / "ok.py"
    doc.write_text("x = 1\n")
    bad_model = run_cli(str(doc), "--line", "0", "--character", "0", "--model", str(tmp_path / "no-model"))
    assert bad_model.returncode != 0 and "does not exist" in bad_model.stderr and "Traceback" not in bad_model.stderr


ROOT = Path(__file__).resolve().parents[1]
DOCS = ["README.md", "editors/vscode/README.md", "editors/nvim/README.md", "editors/nvim/doc/codellama.txt"]


def _help(argv: list[str]) -> str:
    """What `codellama-lsp ARGV --help` prints, in-process."""
    import contextlib
    import io

    from lsp_server.cli import _main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        _main([*argv, "--help"])
    return out.getvalue()


def _documented_commands() -> list[str]:
    """Every `codellama-lsp …` command line in the docs' code spans and blocks (continuation lines joined)."""
    from lsp_server.cli import PASSTHROUGH

    commands = []
    for doc in DOCS:
        text = (ROOT / doc).read_text(encoding="utf-8").replace("\\\n", " ")
        blocks = re.findall(r"```[a-z]*\n(.*?)```", text, re.S)
        spans = [" ".join(span.split()) for span in  # fenced blocks and ``spans with a ` `` taken out first
                  re.findall(r"`([^`]+)`", re.sub(r"```.*?```|``.*?``", "", text, flags=re.S))]
        for chunk in blocks + spans:
            commands += re.findall(r"(?:^|[\s(])codellama-lsp( [^\n#]*)", chunk, re.M)
        # A span that starts with a subcommand and has flags: `replay --lines 10 -- --ngram-cache off`.
        commands += [" " + span for span in spans if span.split()[0] in {"serve", "complete", *PASSTHROUGH}
                     and " --" in span]
    return commands


def test_every_command_in_the_docs_names_a_real_subcommand_and_flags() -> None:
    from lsp_server.cli import PASSTHROUGH, build_parser

    top_flags = set(re.findall(r"--[a-z][a-z-]*", build_parser().format_help()))
    subcommands = {"serve", "complete", *PASSTHROUGH}
    helps: dict[tuple[str, ...], set[str]] = {}
    checked = 0
    for command in _documented_commands():
        words = command.replace("\\|", "|").split()
        while words and words[0].startswith("-"):  # top-level options: --log-level DEBUG, --version
            assert words[0] in top_flags, command
            words = words[2:] if words[0] == "--log-level" else words[1:]
        if not words or words[0] == "COMMAND":
            continue
        assert words[0] in subcommands, command
        own, _, passed_on = " ".join(words).partition(" -- ")
        key = (words[0], *(["--suite", words[words.index("--suite") + 1]] if "--suite" in words else []))
        for argv, flags in ((list(key), own), (["serve"], passed_on)):
            known = helps.setdefault(tuple(argv), set(re.findall(r"--[a-z][a-z-]*", _help(argv))))
            unknown = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", flags)) - known
            assert not unknown, f"`codellama-lsp{command}`: {sorted(unknown)} not among {' '.join(argv)}'s flags"
        checked += 1
    assert checked > 30  # the docs show many; a broken extraction would check none


def test_dump_prompt_takes_the_mode_a_tag_begun_above_gives(checkpoint_factory, tmp_path: Path) -> None:
    # After Prettier's `>` line the completion is multi-line, so the prompt leaves multi-line's room for the
    # answer (before: single-line's, a prompt other than the one the server runs there).
    from lsp_server.completion import fitting_prompt, healing_text
    from lsp_server.settings import Settings

    model_dir = checkpoint_factory("hf")
    tok = Tokenizer(model_dir / "tokenizer.model")
    doc = tmp_path / "card.tsx"
    filler = "".join(f"const v{i} = {i} * 2; // filler line {i}\n" for i in range(300))
    text = filler + 'const C = () => (\n  <div\n    className="card"\n  >\n  </div>\n);\n'
    doc.write_text(text, encoding="utf-8")
    result = run_cli(str(doc), "--line", "303", "--character", "3", "--model", str(model_dir), "--dump-prompt",
                     "--context-length", "200", "--fim-mode", "spm")
    assert result.returncode == 0, result.stderr
    offset, settings = text.index("  >\n  </div>") + 3, Settings(context_length=200, fim_mode="spm")
    prompts = {mode: fitting_prompt(tok, 200, text, offset, settings, mode, healed=healing_text(tok, "  >"))[1]
               for mode in ("single", "multi")}
    assert prompts["single"] != prompts["multi"] and json.loads(result.stdout) == prompts["multi"]
