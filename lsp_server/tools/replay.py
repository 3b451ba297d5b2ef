"""`codellama-lsp replay`: replay typing against the real server process and time what users feel.

For held-out files, the tail of a line is erased and then typed back one character per keystroke; each
keystroke sends didChange and textDocument/inlineCompletion, as an editor does. Reported:

- cold: the first completion in a freshly opened document (the baseline: nothing cached);
- keystroke: completions that ran the model after a keystroke (the engine reuses its KV prefix);
- type-through: keystrokes answered from the completion cache because the user typed what was shown;
- didChange delay: the round trip of a request sent while a generation runs, against the same when idle.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from dataclasses import dataclass, field

from tqdm import tqdm

from model.training import corpus

from .client import ServerProcess, ready_server
from .terminal import add_report_and_server_args, format_table, ms, positive_int, run_command, show_result


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return round(s[min(len(s) - 1, int(len(s) * q))], 2) if s else float("nan")


async def timed_inline(server: ServerProcess, uri: str, line: int, col: int) -> tuple[float, str]:
    t = time.perf_counter()
    items = await server.inline(uri, line, col)
    text = items[0].insert_text if items else ""
    return (time.perf_counter() - t) * 1000, text if isinstance(text, str) else text.value


@dataclass
class Typed:
    """Client round trips (ms) of one typing session, by kind (see the module's docstring)."""
    cold: list[float] = field(default_factory=list)
    keystroke: list[float] = field(default_factory=list)
    type_through: list[float] = field(default_factory=list)


async def type_lines(server: ServerProcess, lines: int, seed: int, uri_prefix: str = "file:///replay",
                     progress: bool = False) -> Typed:
    """Erase the tails of `lines` held-out lines (chosen by `seed`) and type each back, as an editor would.

    progress: a bar on stderr (a terminal only); concurrent typists leave it off.
    """
    rng = random.Random(seed)
    _, held = corpus.split(corpus.collect())
    typed = Typed()
    for n in tqdm(range(lines), desc="typing held-out lines", unit="line", disable=None if progress else True):
        text_lines = corpus.read(rng.choice(held)).split("\n")
        row = rng.choice([i for i, x in enumerate(text_lines) if len(x.strip()) >= 12 and not x.strip().startswith("#")])
        line = text_lines[row]
        start = len(line) - len(line.lstrip()) + 1
        tail = line[start:]
        text_lines[row] = line[:start]
        uri = f"{uri_prefix}/{n}.py"
        server.open(uri, "\n".join(text_lines))
        ms, shown = await timed_inline(server, uri, row, start)
        typed.cold.append(ms)
        for k, ch in enumerate(tail[:24]):
            server.insert(uri, k + 2, row, start + k, ch)
            typed_through = len(shown) > 1 and shown.startswith(ch)
            ms, shown = await timed_inline(server, uri, row, start + k + 1)
            (typed.type_through if typed_through else typed.keystroke).append(ms)
    return typed


async def replay(server_args: list[str], lines: int, seed: int, settings: dict | None = None) -> dict:
    server = await ready_server(server_args, settings)
    typed = await type_lines(server, lines, seed, progress=True)
    cold, warm, hits = typed.cold, typed.keystroke, typed.type_through

    # Is the event loop free while the model generates? A request's round trip, busy against idle.
    uri = "file:///replay/busy.py"
    server.open(uri, "def main():\n    \n")
    idle: list[float] = []
    busy: list[float] = []
    for version in range(2, 7):
        t = time.perf_counter()
        await server.status()
        idle.append((time.perf_counter() - t) * 1000)
        pending = asyncio.ensure_future(server.inline(uri, 1, 4))
        await asyncio.sleep(0)
        t = time.perf_counter()
        server.insert("file:///replay/other.py", version, 0, 0, "")
        await server.status()
        busy.append((time.perf_counter() - t) * 1000)
        await pending
    final = await server.status()
    await server.stop()
    return {
        "model": final["model"], "device": final["device"], "fim_mode": final["fim_mode"], "lines": lines,
        "cold_p50_ms": pct(cold, 0.5), "cold_p95_ms": pct(cold, 0.95),
        "keystroke_p50_ms": pct(warm, 0.5), "keystroke_p95_ms": pct(warm, 0.95), "keystroke_n": len(warm),
        "type_through_p50_ms": pct(hits, 0.5), "type_through_p95_ms": pct(hits, 0.95), "type_through_n": len(hits),
        "keystroke_vs_cold": round(pct(warm, 0.5) / pct(cold, 0.5), 3),
        "type_through_vs_cold": round(pct(hits, 0.5) / pct(cold, 0.5), 4) if hits else None,
        "request_while_generating_p50_ms": pct(busy, 0.5), "request_idle_p50_ms": pct(idle, 0.5),
        "server_p50_ms": final["p50_ms"], "server_p95_ms": final["p95_ms"],
    }


def format_result(result: dict) -> str:
    """The replay's figures as a table, in words and units."""

    def ratio(key: str) -> str:
        return f"{result[key]:.3g}x" if result.get(key) is not None else "-"

    def row(label: str, kind: str, count: str, vs_cold: str) -> list[str]:
        return [label, ms(result[f"{kind}_p50_ms"]), ms(result[f"{kind}_p95_ms"]), count, vs_cold]

    head = (f"typing replay: {result['lines']} held-out lines typed back; {result['model']} on {result['device']}, "
            f"{result['fim_mode'].upper()} prompts")
    table = format_table(["completion request (client round trip)", "p50", "p95", "requests", "p50 / cold"], [
        row("cold: first in a new document", "cold", str(result["lines"]), "1x"),
        row("keystroke: the model runs, reusing its KV cache", "keystroke", str(result["keystroke_n"]),
            ratio("keystroke_vs_cold")),
        row("type-through: typed what was shown, from the cache", "type_through", str(result["type_through_n"]),
            ratio("type_through_vs_cold")),
        row("all completions, as the server timed them", "server", "-", "-")])
    busy = (f"a request sent while a generation runs: p50 {ms(result['request_while_generating_p50_ms'])} "
            f"(idle server: {ms(result['request_idle_p50_ms'])})")
    return f"{head}\n\n{table}\n\n{busy}"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="codellama-lsp replay", description=__doc__.split("\n\n")[0])
    p.add_argument("--lines", type=positive_int, default=20, help="held-out lines to type (default 20)")
    p.add_argument("--seed", type=int, default=0, help="seed for the lines chosen (default 0)")
    p.add_argument("--fim-mode", choices=("psm", "spm"), help="override the server's default infilling order")
    add_report_and_server_args(p)
    return p


def main(argv: list[str] | None = None) -> None:
    a = build_parser().parse_args(argv)
    settings = {"fimMode": a.fim_mode} if a.fim_mode else None
    result = asyncio.run(replay(a.server_args, a.lines, a.seed, settings))
    show_result(format_result(result), result, a.json)


if __name__ == "__main__":
    run_command(main, "codellama-lsp replay")
