"""The `codellama-lsp` command: serve, complete, demo, eval, bench, train-demo."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from . import __version__
from .settings import Settings

if TYPE_CHECKING:
    from model.engine import Engine, Generation

ENGINE_FLAGS = ("model", "device", "dtype", "quant", "kernel", "context_length")


def add_engine_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", help="checkpoint directory or cached HF repo id (default: the embedded demo model)")
    g.add_argument("--device", default="auto", help="auto | cpu | cuda (default: auto)")
    g.add_argument("--dtype", default="auto", help="auto | float32 | bfloat16 | float16")
    g.add_argument("--quant", default="auto", help="auto | nf4 | fp4 | int8 | none (auto: nf4 on CUDA, none on CPU)")
    g.add_argument("--kernel", default="auto",
                   help="auto | bnb | triton: 4-bit decode kernel (auto: our Triton kernel on CUDA when installed)")
    g.add_argument("--context-length", type=int, default=Settings.context_length, help="KV cache size in tokens")


def settings_from(args: argparse.Namespace, **extra: object) -> Settings:
    raw = {k: getattr(args, k) for k in ENGINE_FLAGS if getattr(args, k, None) is not None}
    from .settings import parse_settings
    settings, warnings = parse_settings({**raw, **extra}, Settings())
    if warnings:
        raise SystemExit("codellama-lsp: " + "; ".join(warnings))
    return settings


def check_engine_settings(settings: Settings) -> None:
    """Fail at start-up, not when an editor connects, when the model cannot load: its files are found and
    parse (tokenizer, config, tensor index; no weights are read) and the device exists."""
    from model.checkpoint import open_checkpoint
    from model.loader import resolve_device

    resolve_device(settings.device)
    if settings.model is not None:  # the embedded demo model ships with the package
        open_checkpoint(settings.model)


def cmd_serve(args: argparse.Namespace) -> None:
    settings = settings_from(args)
    check_engine_settings(settings)
    from .server import create_server
    server = create_server(settings)
    if args.tcp:
        host, _, port = args.tcp.rpartition(":")
        server.start_tcp(host or "127.0.0.1", int(port))
    else:
        server.start_io()


def cmd_complete(args: argparse.Namespace) -> None:
    from .completion import complete, load_engine
    from .terminal import loading_bar

    path = Path(args.file)
    try:
        # bytes, not read_text(): universal newlines would turn CRLF into LF and shift every offset
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise SystemExit(f"codellama-lsp: cannot read {path}: {e}") from e
    settings = settings_from(args, fim_mode=args.fim_mode, temperature=args.temperature,
                             **({"max_tokens": args.max_tokens, "max_tokens_single_line": args.max_tokens}
                                if args.max_tokens else {}))
    offset = checked_offset(text, args.line, args.character, path)
    if args.dump_prompt:
        print(json.dumps(_windowed_prompt(settings, text, offset, args.raw)))
        return
    with loading_bar(settings.model or "the demo model") as progress:
        engine = load_engine(settings, progress)
    if args.raw:  # Meta's reference behaviour: whole file, stop only at <EOT>/EOS/max tokens, text untouched
        gen = engine.infill(text[:offset], text[offset:], mode=settings.fim_mode,
                            max_new_tokens=args.max_tokens or settings.max_tokens, temperature=settings.temperature,
                            top_p=settings.top_p)
        if gen.text:
            sys.stdout.write(gen.text + "\n")
        else:
            _no_suggestion(path, args, why_nothing(gen, engine.context_length))
        return
    watched = GenerationWatch(engine)
    suggestion = complete(cast("Engine", watched), text, offset, settings)
    if suggestion is None:
        _no_suggestion(path, args, why_nothing(watched.last, engine.context_length))
        return
    sys.stdout.write(suggestion.text + "\n")


def checked_offset(text: str, line: int, character: int, path: Path) -> int:
    """The offset of an LSP position given on the command line; a position outside the file is an error."""
    from .text import offset_at, split_lines, utf16_len

    lines = split_lines(text)
    if not 0 <= line < len(lines):
        raise ValueError(f"--line {line} is outside {path}, whose lines are 0 to {len(lines) - 1}")
    width = utf16_len(lines[line])
    if not 0 <= character <= width:
        raise ValueError(f"--character {character} is outside line {line} of {path}, whose characters are "
                         f"0 to {width} (UTF-16 code units)")
    return offset_at(text, line, character)


class GenerationWatch:
    """An engine that remembers its last generation, so that an empty completion can say why it is empty."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.last: Generation | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)

    def generate(self, *args: Any, **kwargs: Any) -> Generation:
        self.last = self.engine.generate(*args, **kwargs)
        return self.last


STOPPED = {"eot": "it ended the infill (<EOT>)", "eos": "it ended the text (EOS)",
           "max_tokens": "it reached the token limit", "stop": "a stop rule ended it",
           "deadline": "the time budget ran out", "context": "the context is full", "cancel": "it was cancelled"}


def why_nothing(gen: Generation | None, context_length: int) -> str:
    """Why a completion came back empty, in words."""
    if gen is None:
        return f"no prompt fits the model's context of {context_length} tokens"
    if not gen.text.strip():
        if "\n" in gen.text:
            return "the model ended the line at once: it takes the line to be complete"
        return f"the model wrote nothing before {STOPPED.get(gen.stop_reason, gen.stop_reason)}"
    return (f"the model wrote {gen.text!r}, and none of it fits here (it repeats the code after the cursor "
            "or does not continue the line)")


def _no_suggestion(path: Path, args: argparse.Namespace, why: str) -> None:
    """Nothing on stdout (a script sees an empty answer), the reason on stderr (a person sees why)."""
    print(f"codellama-lsp: no suggestion at {path}:{args.line}:{args.character}: {why}", file=sys.stderr)


def _windowed_prompt(settings: Settings, text: str, offset: int, raw: bool) -> list[int]:
    """The prompt `complete` would run, from the tokenizer and config alone (no weights are loaded)."""
    from model.checkpoint import open_checkpoint, resolve_model_dir
    from model.loader import DEMO_MODEL_DIR
    from model.tokenizer import infill_prompt

    from .completion import fitting_prompt, healed_whitespace, line_around
    from .shaping import completion_mode

    tokenizer, reader = open_checkpoint(resolve_model_dir(settings.model) if settings.model else DEMO_MODEL_DIR)
    if raw:
        return infill_prompt(tokenizer, text[:offset], text[offset:], settings.fim_mode)  # type: ignore[arg-type]
    before, after = line_around(text, offset)
    context_length = min(settings.context_length, reader.args.max_seq_len)
    fitted = fitting_prompt(tokenizer, context_length, text, offset, settings,
                            completion_mode(before, after, settings.line_policy), healed=healed_whitespace(before))
    if fitted is None:
        raise ValueError(f"no prompt fits the context of {context_length} tokens")
    return fitted[1]


# Subcommands that own their flags: everything after the name goes to the module's main().
PASSTHROUGH = {"demo": ("lsp_server.demo", "show completions and a docstring through LSP on an example file"),
               "eval": ("lsp_server.evaluate", "evaluate completions on held-out files"),
               "bench": ("model.bench", "benchmark the engine on a random checkpoint of a named shape"),
               "train-demo": ("model.train", "train the embedded demo model")}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="codellama-lsp", description=__doc__)
    p.add_argument("--log-level", default="INFO", help="DEBUG shows per-request timings (logs go to stderr)")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run the language server (stdio by default)")
    add_engine_flags(s)
    s.add_argument("--tcp", metavar="HOST:PORT", help="listen on TCP instead of stdio (host defaults to 127.0.0.1)")
    s.set_defaults(run=cmd_serve)

    c = sub.add_parser("complete", help="print the completion at a position of FILE")
    c.add_argument("file", help="the source file (UTF-8)")
    c.add_argument("--line", type=int, required=True, help="zero-based line")
    c.add_argument("--character", type=int, required=True, help="zero-based UTF-16 column, as in LSP")
    add_engine_flags(c)
    c.add_argument("--max-tokens", type=int, help="most tokens to generate (default: the server's maxTokens)")
    c.add_argument("--temperature", type=float, default=0.0, help="sampling temperature (default 0: greedy)")
    c.add_argument("--fim-mode", choices=("psm", "spm"), default="spm", help="infilling prompt order (default spm)")
    c.add_argument("--raw", action="store_true",
                   help="Meta-exact prompt from the whole file; stop only at EOT/EOS/max tokens; no shaping")
    c.add_argument("--dump-prompt", action="store_true", help="print the prompt token ids as JSON and exit")
    c.set_defaults(run=cmd_complete)

    for name, (_, text) in PASSTHROUGH.items():
        sub.add_parser(name, help=f"{text} (see `codellama-lsp {name} --help`)", add_help=False)
    return p


def main(argv: list[str] | None = None) -> None:
    p = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), None)
    if command in PASSTHROUGH:
        import importlib
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
        importlib.import_module(PASSTHROUGH[command][0]).main(argv[argv.index(command) + 1:])
        return
    args = p.parse_args(argv)
    level = args.log_level.upper()
    logging.basicConfig(level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if level != "DEBUG":  # pygls logs every message it sends at INFO
        logging.getLogger("pygls").setLevel(logging.WARNING)
    try:
        args.run(args)
    except (ValueError, FileNotFoundError) as e:  # bad input: one clear line, no traceback
        raise SystemExit(f"codellama-lsp: {e}") from e
