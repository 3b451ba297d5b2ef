"""`codellama-lsp typists`: several people typing at once, each on a local engine or all on one vLLM.

Each simulated typist is a language server process of its own, as each editor starts one, and types held-out
lines back one character per keystroke (lsp_server/tools/replay.py's session, with lines of its own), all typists
at the same time. The two sides take turns (--rounds times each), with the same typists and lines:

- local: N `serve` processes, each generating with its own engine (N copies of the model);
- vllm:  N `serve --backend vllm` processes, all generating on the one vLLM server at --remote-url.

Both sides get the model's whole answer (no time budget), so that they type the same completions and run
the model on the same keystrokes; each local engine computes with --threads threads (default 1: N engines
share the machine's cores). Printed side by side: the client round trip of each keystroke that ran the model
(p50/p95), of the first request in a new document, and the wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from dataclasses import dataclass, field

from ..cli import setting_flag
from .client import ServerExited, ServerProcess
from .replay import Typed, pct, type_lines
from .terminal import add_report_and_server_args, positive_int, run_command, show_result

UNTIMED = {"timeBudgetMs": 600_000}  # the longest budget there is: answers do not depend on the machine's speed


@dataclass
class Side:
    """Pooled client round trips (ms) of one side's typists, and the time they took to type."""
    keystroke: list[float] = field(default_factory=list)
    cold: list[float] = field(default_factory=list)
    wall_s: float = 0.0

    def summary(self) -> dict[str, float | int]:
        return {"keystroke_p50_ms": pct(self.keystroke, 0.5), "keystroke_p95_ms": pct(self.keystroke, 0.95),
                "keystroke_n": len(self.keystroke), "cold_p50_ms": pct(self.cold, 0.5),
                "cold_p95_ms": pct(self.cold, 0.95), "wall_s": round(self.wall_s, 1)}


def check_reachable(statuses: list[dict]) -> None:
    """Refuse to report a side whose vLLM server is down: while it is, every completion is answered at once
    with nothing, which would be timed as the fastest keystrokes (a wrong --remote-url gave vLLM a p50 of 4 ms)."""
    for status in statuses:
        if (health := (status.get("runtime") or {}).get("health", "ok")) != "ok":
            raise SystemExit(f"codellama-lsp typists: the vLLM server is {health}: its completions were empty, "
                             "so there is nothing to time")


async def run_side(side: Side, server_args: list[str], typists: int, lines: int, seed: int) -> None:
    """Start N servers with `server_args`, type on all of them at once, add their latencies to `side`."""
    servers = [ServerProcess(server_args, settings=UNTIMED) for _ in range(typists)]
    statuses = await asyncio.gather(*(s.start() for s in servers))
    try:
        if failed := [s for s in statuses if s["state"] != "ready"]:
            raise SystemExit(f"a server failed to load: {failed[0]['error']}")
        check_reachable(statuses)
        t0 = time.perf_counter()
        sessions: list[Typed] = await asyncio.gather(*(
            type_lines(server, lines, seed + i, f"file:///typist{i}") for i, server in enumerate(servers)))
        side.wall_s += time.perf_counter() - t0
        check_reachable(await asyncio.gather(*(s.status() for s in servers)))  # down since: answers were empty
    finally:
        await asyncio.gather(*(s.stop() for s in servers))
    for typed in sessions:
        side.keystroke += typed.keystroke
        side.cold += typed.cold


async def compare(server_args: list[str], remote_url: str, typists: int, lines: int, seed: int,
                  rounds: int) -> dict:
    """The two sides in turn, `rounds` times each, so that a change in the machine's other load over the run
    falls on both. Server processes inherit this process's environment (OMP_NUM_THREADS). The local side
    decodes as vLLM does, without the n-gram cache, so that both sides answer alike and do the same work."""
    local, remote = Side(), Side()
    for r in range(rounds):
        round_seed = seed + r * typists  # new lines each round, the same for both sides
        await run_side(local, ["--ngram-cache", "off", *server_args, "--backend", "local"], typists, lines,
                       round_seed)
        await run_side(remote, [*server_args, "--backend", "vllm", "--remote-url", remote_url], typists, lines,
                       round_seed)
    return {"typists": typists, "lines_each": lines * rounds,
            "threads_per_local_engine": os.environ.get("OMP_NUM_THREADS"),
            "local": local.summary(), "vllm": remote.summary()}


def table(result: dict) -> str:
    """compare()'s result, the two sides in columns."""
    n = result["typists"]
    local, remote = result["local"], result["vllm"]
    rows = [("keystroke p50 / p95 (ms)", "keystroke_p50_ms", "keystroke_p95_ms"),
            ("new document p50 / p95 (ms)", "cold_p50_ms", "cold_p95_ms")]
    out = [f"{n} typists at once, {result['lines_each']} lines each; keystrokes that ran the model: "
           f"local {local['keystroke_n']}, vllm {remote['keystroke_n']}; "
           f"{result['threads_per_local_engine'] or 'default'} torch thread(s) per local engine",
           f"{'':30s}{f'local: {n} engines':>22s}{'vllm: 1 server':>22s}"]
    for label, p50, p95 in rows:
        out.append(f"{label:30s}{f'{local[p50]} / {local[p95]}':>22s}{f'{remote[p50]} / {remote[p95]}':>22s}")
    out.append(f"{'wall (s)':30s}{local['wall_s']:>22}{remote['wall_s']:>22}")
    return "\n".join(out)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="codellama-lsp typists", description=__doc__.split("\n\n")[0])
    p.add_argument("--remote-url", type=setting_flag("remote_url"), required=True, help="the vLLM server, serving the same model as --model")
    p.add_argument("--typists", type=positive_int, default=4, help="people typing at once (default 4)")
    p.add_argument("--lines", type=positive_int, default=2, help="held-out lines each typist types per round")
    p.add_argument("--rounds", type=positive_int, default=3, help="times each side runs, alternately")
    p.add_argument("--seed", type=int, default=0, help="seed for choosing the held-out lines")
    p.add_argument("--threads", type=positive_int, default=1, help="torch threads of each local engine")
    add_report_and_server_args(p, sides=" for both sides")
    return p


def main(argv: list[str] | None = None) -> None:
    a = build_parser().parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = str(a.threads)  # read by torch in the server processes started below
    try:
        result = asyncio.run(compare(a.server_args, a.remote_url, a.typists, a.lines, a.seed, a.rounds))
    except ServerExited as e:  # a bad `serve` flag after --: the server's own line says which
        raise SystemExit(str(e)) from e
    show_result(table(result), result, a.json)


if __name__ == "__main__":
    run_command(main, "codellama-lsp typists")
