"""`python -m lsp_server.typists`: several people typing at once, each on a local engine or all on one vLLM.

Each simulated typist is a language server process of its own, as each editor starts one, and types held-out
lines back one character per keystroke (lsp_server/replay.py's session, with lines of its own), all typists
at the same time. The two sides run one after the other, with the same typists and lines:

- local: N `serve` processes, each generating with its own engine (N copies of the model);
- vllm:  N `serve --backend vllm` processes, all generating on the one vLLM server at --remote-url.

Printed side by side: the client round trip of each keystroke that ran the model (p50/p95), of the first
request in a new document, and the wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

from .client import ServerProcess
from .replay import Typed, pct, type_lines


async def run_side(server_args: list[str], typists: int, lines: int, seed: int) -> dict[str, float | int]:
    """N servers started with `server_args`, typed on at once; their latencies pooled."""
    servers = [ServerProcess(server_args) for _ in range(typists)]
    statuses = await asyncio.gather(*(s.start() for s in servers))
    try:
        if failed := [s for s in statuses if s["state"] != "ready"]:
            raise SystemExit(f"a server failed to load: {failed[0]['error']}")
        t0 = time.perf_counter()
        sessions: list[Typed] = await asyncio.gather(*(
            type_lines(server, lines, seed + i, f"file:///typist{i}") for i, server in enumerate(servers)))
        wall = time.perf_counter() - t0
    finally:
        await asyncio.gather(*(s.stop() for s in servers))
    keystroke = [ms for s in sessions for ms in s.keystroke]
    cold = [ms for s in sessions for ms in s.cold]
    return {"keystroke_p50_ms": pct(keystroke, 0.5), "keystroke_p95_ms": pct(keystroke, 0.95),
            "keystroke_n": len(keystroke), "cold_p50_ms": pct(cold, 0.5), "cold_p95_ms": pct(cold, 0.95),
            "type_through_n": sum(len(s.type_through) for s in sessions), "wall_s": round(wall, 1)}


async def compare(server_args: list[str], remote_url: str, typists: int, lines: int, seed: int) -> dict:
    local = await run_side([*server_args, "--backend", "local"], typists, lines, seed)
    remote = await run_side([*server_args, "--backend", "vllm", "--remote-url", remote_url], typists, lines, seed)
    return {"typists": typists, "lines_each": lines, "local": local, "vllm": remote}


def table(result: dict) -> str:
    n = result["typists"]
    local, remote = result["local"], result["vllm"]
    rows = [("keystroke p50 / p95 (ms)", "keystroke_p50_ms", "keystroke_p95_ms"),
            ("new document p50 / p95 (ms)", "cold_p50_ms", "cold_p95_ms")]
    out = [f"{n} typists at once, {result['lines_each']} lines each; keystrokes that ran the model: "
           f"local {local['keystroke_n']}, vllm {remote['keystroke_n']}",
           f"{'':30s}{f'local: {n} engines':>22s}{'vllm: 1 server':>22s}"]
    for label, p50, p95 in rows:
        out.append(f"{label:30s}{f'{local[p50]} / {local[p95]}':>22s}{f'{remote[p50]} / {remote[p95]}':>22s}")
    out.append(f"{'wall (s)':30s}{local['wall_s']:>22}{remote['wall_s']:>22}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m lsp_server.typists", description=__doc__.split("\n\n")[0])
    p.add_argument("--remote-url", required=True, help="the vLLM server, serving the same model as --model")
    p.add_argument("--typists", type=int, default=4)
    p.add_argument("--lines", type=int, default=5, help="held-out lines each typist types")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path)
    p.add_argument("server_args", nargs="*", help="`serve` flags for both sides after --, e.g. -- --model DIR")
    a = p.parse_args(argv)
    result = asyncio.run(compare(a.server_args, a.remote_url, a.typists, a.lines, a.seed))
    print(table(result))
    if a.json:
        a.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
