"""The `codellama-lsp` command: serve, complete, demo, eval, bench, train-demo."""

from __future__ import annotations

import argparse
import json
import logging
import socket
import sys
from pathlib import Path

from .settings import Settings

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


def cmd_serve(args: argparse.Namespace) -> None:
    if args.node_ipc:
        raise SystemExit("codellama-lsp: --node-ipc is a Node.js-only channel; start the server with stdio "
                         "(TransportKind.stdio), --socket=PORT or --pipe=PATH instead")
    from .server import create_server
    server = create_server(settings_from(args))
    if args.tcp:
        host, _, port = args.tcp.rpartition(":")
        server.start_tcp(host or "127.0.0.1", int(port))
    elif args.socket is not None or args.pipe is not None:
        stream = _connect_to_client(args.socket, args.pipe)
        server.start_io(stream.makefile("rb"), stream.makefile("wb"))
    else:
        server.start_io()


def _connect_to_client(port: int | None, pipe: str | None) -> socket.socket:
    """The connection to an editor that listens itself (vscode-languageclient's socket and pipe transports)."""
    if pipe is not None and not hasattr(socket, "AF_UNIX"):
        raise SystemExit("codellama-lsp: --pipe needs Unix domain sockets; use stdio on this system")
    try:
        if pipe is None:
            return socket.create_connection(("127.0.0.1", port))
        stream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stream.connect(pipe)
        return stream
    except OSError as e:
        raise SystemExit(f"codellama-lsp: cannot connect to the editor at {pipe or f'127.0.0.1:{port}'}: {e}") from e


def cmd_complete(args: argparse.Namespace) -> None:
    from .completion import complete, load_engine
    from .text import offset_at

    path = Path(args.file)
    try:
        # bytes, not read_text(): universal newlines would turn CRLF into LF and shift every offset
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise SystemExit(f"codellama-lsp: cannot read {path}: {e}") from e
    settings = settings_from(args, fim_mode=args.fim_mode, temperature=args.temperature,
                             **({"max_tokens": args.max_tokens, "max_tokens_single_line": args.max_tokens}
                                if args.max_tokens else {}))
    offset = offset_at(text, args.line, args.character)
    if args.dump_prompt:
        print(json.dumps(_windowed_prompt(settings, text, offset, args.raw)))
        return
    engine = load_engine(settings)
    if args.raw:  # Meta's reference behaviour: whole file, stop only at <EOT>/EOS/max tokens, text untouched
        gen = engine.infill(text[:offset], text[offset:], mode=settings.fim_mode,
                            max_new_tokens=args.max_tokens or settings.max_tokens, temperature=settings.temperature,
                            top_p=settings.top_p)
        sys.stdout.write(gen.text)
        return
    suggestion = complete(engine, text, offset, settings)
    if suggestion is not None:
        sys.stdout.write(suggestion.text + "\n")


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


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="codellama-lsp", description=__doc__)
    log_help = "WARNING (default) | INFO | DEBUG: DEBUG shows per-request timings (logs go to stderr)"
    p.add_argument("--log-level", default="WARNING", help=log_help)
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run the language server (stdio by default)")
    add_engine_flags(s)
    # Also after `serve`, where editors' "server arguments" settings put it; SUPPRESS keeps the value given before.
    s.add_argument("--log-level", default=argparse.SUPPRESS, help=log_help)
    t = s.add_argument_group("transport (the flags LSP clients such as vscode-languageclient pass)")
    transport = t.add_mutually_exclusive_group()
    transport.add_argument("--stdio", action="store_true", help="talk LSP over stdin/stdout (the default)")
    transport.add_argument("--tcp", metavar="HOST:PORT",
                           help="listen on TCP instead of stdio (host defaults to 127.0.0.1)")
    transport.add_argument("--socket", type=int, metavar="PORT",
                           help="connect to the editor listening on 127.0.0.1:PORT")
    transport.add_argument("--pipe", metavar="PATH", help="connect to the editor listening on a Unix domain socket")
    transport.add_argument("--node-ipc", action="store_true", help=argparse.SUPPRESS)  # rejected with a reason
    # vscode-languageclient appends its pid; the server ends when the connection closes, so it is not needed.
    s.add_argument("--clientProcessId", help=argparse.SUPPRESS)
    s.set_defaults(run=cmd_serve)

    c = sub.add_parser("complete", help="print the completion at a position of FILE")
    c.add_argument("file")
    c.add_argument("--line", type=int, required=True, help="zero-based line")
    c.add_argument("--character", type=int, required=True, help="zero-based UTF-16 column, as in LSP")
    add_engine_flags(c)
    c.add_argument("--max-tokens", type=int)
    c.add_argument("--temperature", type=float, default=0.0)
    c.add_argument("--fim-mode", choices=("psm", "spm"), default="spm")
    c.add_argument("--raw", action="store_true",
                   help="Meta-exact prompt from the whole file; stop only at EOT/EOS/max tokens; no shaping")
    c.add_argument("--dump-prompt", action="store_true", help="print the prompt token ids as JSON and exit")
    c.set_defaults(run=cmd_complete)

    for name, (_, text) in PASSTHROUGH.items():
        sub.add_parser(name, help=f"{text} (see `codellama-lsp {name} --help`)", add_help=False)

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
    # Clients cancel requests the server has just answered (a race LSP allows); pygls warns about each one.
    logging.getLogger("pygls.protocol.json_rpc").addFilter(
        lambda record: not record.getMessage().startswith("Cancel notification for unknown message id"))
    try:
        args.run(args)
    except (ValueError, FileNotFoundError) as e:  # bad input: one clear line, no traceback
        raise SystemExit(f"codellama-lsp: {e}") from e
