"""`codellama-lsp demo`: start the server as an editor would, and show what it answers.

A small LSP client (pygls) launches `python -m lsp_server serve` over stdio, opens an example file with
the end of a few lines erased, asks `textDocument/inlineCompletion` at each cursor as an editor does while
the user types, then once more as a user asking for suggestions does (Alt+\\: several to cycle through),
then asks for the "Generate docstring" code action, resolves it and prints the documented function.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from lsprotocol import types

from .client import ServerExited, ServerProcess
from .terminal import loading_bar

EXAMPLE = Path(__file__).parent / "examples" / "shapes.py"
DIM, BOLD, GREEN, RESET = "\033[2m", "\033[1m", "\033[32m", "\033[0m"


@dataclass(frozen=True)
class Probe:
    """Erase `line`'s text after `keep`, put the cursor there, and see what the model suggests."""
    line_startswith: str
    keep: str


PROBES = (
    Probe("        return math.sqrt", "        return "),
    Probe("    return abs(area)", "    return abs("),
    Probe("        result.append(", "        result."),
    Probe("    print(polygon_area", "    print("),
)


def color(text: str, code: str) -> str:
    # https://no-color.org: NO_COLOR set to anything but "" turns colour off, as a dumb terminal does
    plain = not sys.stdout.isatty() or os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb"
    return text if plain else f"{code}{text}{RESET}"


def say_what_it_showed(server: ServerProcess) -> None:
    """What the server popped up (window/showMessage) since the last call, on stderr, as an editor would show it:
    an empty suggestion then comes with its reason (vLLM unreachable, a model that cannot infill)."""
    for message in server.shown:
        print(f"the server says: {message}", file=sys.stderr)
    server.shown.clear()


async def run(server_args: list[str], example: Path) -> int:
    caps = types.ClientCapabilities(text_document=types.TextDocumentClientCapabilities(
        code_action=types.CodeActionClientCapabilities(
            resolve_support=types.ClientCodeActionResolveOptions(properties=["edit"]), data_support=True)))
    t0 = time.perf_counter()
    with loading_bar("the model in the server") as progress:
        # The longest time budget the server accepts: what the demo shows is the model's answer, however busy
        # the machine (an editor keeps the 2-second default, so that a slow answer never blocks typing).
        server = ServerProcess(server_args, caps, loading=progress, settings={"timeBudgetMs": 600_000})
        try:
            status = await server.start()
        except ServerExited as e:  # a bad `serve` flag after --: the server said why, in one line
            print(e, file=sys.stderr)
            return 1
    say_what_it_showed(server)
    if status["state"] != "ready":
        print(f"model failed to load: {status['error']}", file=sys.stderr)
        return 1
    print(f"{color('codellama-lsp', BOLD)}: {status['model']} on {status['device']}, "
          f"{status['memory_mib']} MiB, started and loaded in {time.perf_counter() - t0:.1f}s\n")

    original = example.read_text(encoding="utf-8")
    lines = original.split("\n")
    shown = 0
    # One document, edited as a user would: copies open side by side would feed each other's prompts (the
    # server shows the model recently seen code of other files).
    uri = f"file://{example}"
    server.open(uri, original)
    for version, probe in enumerate(PROBES, 2):
        row = next(i for i, line in enumerate(lines) if line.startswith(probe.line_startswith))
        edited = lines.copy()
        edited[row] = probe.keep
        server.replace(uri, version, "\n".join(edited))
        t = time.perf_counter()
        items = await server.inline(uri, row, len(probe.keep))
        ms = (time.perf_counter() - t) * 1000
        suggestion = items[0].insert_text if items else ""
        suggestion = suggestion if isinstance(suggestion, str) else suggestion.value
        shown += bool(suggestion)
        say_what_it_showed(server)
        print(f"{color(f'inline completion at line {row + 1}', BOLD)} ({ms:.0f} ms)")
        print(f"  {probe.keep}{color(suggestion or '<nothing>', GREEN)}")
        print(f"  {color('original: ' + lines[row].strip(), DIM)}\n")

    # The last cursor again, asked for: the server offers several suggestions, the best first.
    t = time.perf_counter()
    items = await server.inline(uri, row, len(probe.keep), invoked=True)
    ms = (time.perf_counter() - t) * 1000
    print(f"{color(f'asked for at line {row + 1}', BOLD)} (Alt+\\, then Alt+] to cycle; "
          f"{len(items)} suggestions in {ms:.0f} ms)")
    for k, item in enumerate(items, 1):
        text = item.insert_text if isinstance(item.insert_text, str) else item.insert_text.value
        print(f"  {k}  {probe.keep}{color(text, GREEN)}")
    print()

    server.replace(uri, len(PROBES) + 2, original)
    row = next(i for i, line in enumerate(lines) if line.startswith("def polygon_perimeter"))
    t = time.perf_counter()
    client = server.client
    actions = await client.text_document_code_action_async(types.CodeActionParams(
        types.TextDocumentIdentifier(uri), types.Range(types.Position(row, 4), types.Position(row, 4)),
        types.CodeActionContext(diagnostics=[])))
    action = next((a for a in actions or [] if isinstance(a, types.CodeAction)), None)
    resolved = await client.code_action_resolve_async(action) if action else None
    ms = (time.perf_counter() - t) * 1000
    edit = next(iter(resolved.edit.changes.values()))[0] if resolved and resolved.edit and resolved.edit.changes else None
    if action is None or edit is None:
        say_what_it_showed(server)
        print("no docstring edit came back", file=sys.stderr)
        await server.stop()
        return 1
    row_at = edit.range.start.line
    documented = lines[:row_at] + edit.new_text.rstrip("\n").split("\n") + lines[row_at:]
    print(f"{color(action.title, BOLD)} ({ms:.0f} ms, code action + resolve)")
    end = next(i for i in range(row + 1, len(documented)) if documented[i].startswith("    return"))
    for i, line in enumerate(documented[row:end + 1], row):
        inserted = row_at <= i < row_at + edit.new_text.count("\n")
        print("  " + (color(line, GREEN) if inserted else line))

    status = await server.status()
    print(f"\nlatency p50 {status['p50_ms']} ms, p95 {status['p95_ms']} ms over {status['count']} requests")
    await server.stop()
    return 0 if shown else 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="codellama-lsp demo", description=__doc__.split("\n\n")[0])
    p.add_argument("server_args", nargs="*", help="extra `serve` flags after --, e.g. -- --model DIR")
    return p


def main(argv: list[str] | None = None) -> None:
    a = build_parser().parse_args(argv)
    sys.exit(asyncio.run(run(a.server_args, EXAMPLE)))


if __name__ == "__main__":
    main()
