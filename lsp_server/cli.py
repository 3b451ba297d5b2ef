"""The `codellama-lsp` command: serve, complete, demo, eval, bench, train-demo."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import re
import socket
import sys

from . import __version__
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


def tcp_address(value: str) -> tuple[str, int]:
    """--tcp's value: HOST:PORT, [IPV6]:PORT or PORT (on 127.0.0.1); port 0 picks a free one."""
    m = re.fullmatch(r"\[([^\]]+)\]:(\d{1,5})|([^:\[\]]*):(\d{1,5})|(\d{1,5})", value)
    if m is None:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, [IPV6]:PORT or PORT, not {value!r}")
    host, port = m.group(1) or m.group(3) or "127.0.0.1", int(m.group(2) or m.group(4) or m.group(5))
    if port > 65535:
        raise argparse.ArgumentTypeError(f"port {port} is out of range (0-65535)")
    return host, port


def show_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def remote_addresses(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to that other machines can reach (not loopback)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as e:
        raise SystemExit(f"codellama-lsp: cannot listen on {show_address(host, port)}: {e}") from e
    found = {ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos}
    return sorted("every network interface" if a.is_unspecified else str(a) for a in found if not a.is_loopback)


def check_engine_settings(settings: Settings) -> None:
    """Fail at start-up, not when an editor connects, when the model cannot load: its files are found and
    parse (tokenizer, config, tensor index; no weights are read) and the device exists."""
    from model.checkpoint import open_checkpoint
    from model.loader import resolve_device

    resolve_device(settings.device)
    if settings.model is not None:  # the embedded demo model ships with the package
        open_checkpoint(settings.model)


def cmd_serve(args: argparse.Namespace) -> None:
    if args.node_ipc:
        raise SystemExit("codellama-lsp: --node-ipc is a Node.js-only channel; start the server with stdio "
                         "(TransportKind.stdio), --socket=PORT or --pipe=PATH instead")
    settings = settings_from(args)
    check_engine_settings(settings)
    from .server import create_server
    if not args.tcp:
        server = create_server(settings)
        if args.socket is not None or args.pipe is not None:  # the editor listens; we connect
            stream = _connect_to_client(args.socket, args.pipe)
            server.start_io(stream.makefile("rb"), stream.makefile("wb"))
            sys.exit(server.exit_code)
        server.start_io()
        sys.exit(server.exit_code)
    host, port = args.tcp
    where = show_address(host, port)
    if remote := remote_addresses(host, port):  # checked first: a refusal costs no model import
        risk = (f"other machines can reach it ({', '.join(remote)}), and whoever connects uses the model and "
                "sees the code sent to it: there is no authentication")
        if not args.allow_remote:
            raise SystemExit(f"codellama-lsp: refusing to listen on {where}: {risk}. Listen on a loopback "
                             "address (127.0.0.1, [::1], localhost), or add --allow-remote to accept that.")
        print(f"codellama-lsp: warning: listening on {where}: {risk}", file=sys.stderr, flush=True)

    def listening(addresses: list[tuple[str, int]]) -> None:  # the port is known only now when 0 was asked
        shown = ", ".join(show_address(h, p) for h, p in addresses)
        print(f"codellama-lsp: listening on {shown}", file=sys.stderr, flush=True)

    server = create_server(settings)
    try:
        server.start_tcp(host, port, listening)
    except OSError as e:
        reason = os.strerror(e.errno) if e.errno else str(e)  # asyncio's message repeats the address
        raise SystemExit(f"codellama-lsp: cannot listen on {where}: {reason}") from e
    sys.exit(server.exit_code)


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
    from .complete_command import run

    run(args, settings_from(args, fim_mode=args.fim_mode, temperature=args.temperature,
                            **({"max_tokens": args.max_tokens, "max_tokens_single_line": args.max_tokens}
                               if args.max_tokens else {})))


# Subcommands that own their flags: everything after the name goes to the module's main().
PASSTHROUGH = {"demo": ("lsp_server.demo", "show completions and a docstring through LSP on an example file"),
               "eval": ("lsp_server.evaluate", "evaluate completions on held-out files"),
               "bench": ("model.bench", "benchmark the engine on a random checkpoint of a named shape"),
               "train-demo": ("model.train", "train the embedded demo model")}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="codellama-lsp", description=__doc__)
    log_help = "WARNING (default) | INFO | DEBUG: DEBUG shows per-request timings (logs go to stderr)"
    p.add_argument("--log-level", default="WARNING", help=log_help)
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run the language server (stdio by default)")
    add_engine_flags(s)
    # Also after `serve`, where editors' "server arguments" settings put it; SUPPRESS keeps the value given before.
    s.add_argument("--log-level", default=argparse.SUPPRESS, help=log_help)
    t = s.add_argument_group("transport (the flags LSP clients such as vscode-languageclient pass)")
    transport = t.add_mutually_exclusive_group()
    transport.add_argument("--stdio", action="store_true", help="talk LSP over stdin/stdout (the default)")
    transport.add_argument("--tcp", metavar="HOST:PORT", type=tcp_address,
                           help="listen on TCP instead of stdio, for one client (HOST:PORT, [IPV6]:PORT or PORT on "
                                "127.0.0.1; port 0 picks a free one)")
    transport.add_argument("--socket", type=int, metavar="PORT",
                           help="connect to the editor listening on 127.0.0.1:PORT")
    transport.add_argument("--pipe", metavar="PATH", help="connect to the editor listening on a Unix domain socket")
    transport.add_argument("--node-ipc", action="store_true", help=argparse.SUPPRESS)  # rejected with a reason
    # vscode-languageclient appends its pid; the server ends when the connection closes, so it is not needed.
    s.add_argument("--clientProcessId", help=argparse.SUPPRESS)
    s.add_argument("--allow-remote", action="store_true",
                   help="let --tcp listen on an address other machines can reach (off: loopback only)")
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
    # Clients cancel requests the server has just answered (a race LSP allows); pygls warns about each one.
    logging.getLogger("pygls.protocol.json_rpc").addFilter(
        lambda record: not record.getMessage().startswith("Cancel notification for unknown message id"))
    try:
        args.run(args)
    except (ValueError, FileNotFoundError) as e:  # bad input: one clear line, no traceback
        raise SystemExit(f"codellama-lsp: {e}") from e
