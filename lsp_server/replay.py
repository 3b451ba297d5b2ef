"""`python -m lsp_server.replay`: replay typing against the real server process and time what users feel.

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
import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from model import corpus

from .client import ServerProcess


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


async def type_lines(server: ServerProcess, lines: int, seed: int, uri_prefix: str = "file:///replay") -> Typed:
    """Erase the tails of `lines` held-out lines (chosen by `seed`) and type each back, as an editor would."""
    rng = random.Random(seed)
    _, held = corpus.split(corpus.collect())
    typed = Typed()
    for n in range(lines):
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
    server = ServerProcess(server_args, settings=settings)
    if (s := await server.start())["state"] != "ready":
        raise SystemExit(f"model failed to load: {s['error']}")
    typed = await type_lines(server, lines, seed)
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


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m lsp_server.replay", description=__doc__.split("\n\n")[0])
    p.add_argument("--lines", type=int, default=20, help="held-out lines to type")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fim-mode", choices=("psm", "spm"), help="override the server's default")
    p.add_argument("--json", type=Path)
    p.add_argument("server_args", nargs="*", help="`serve` flags after --, e.g. -- --model DIR")
    a = p.parse_args(argv)
    settings = {"fimMode": a.fim_mode} if a.fim_mode else None
    result = asyncio.run(replay(a.server_args, a.lines, a.seed, settings))
    for k, v in result.items():
        print(f"{k:34s} {v}")
    if a.json:
        a.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
