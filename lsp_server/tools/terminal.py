"""What the commands show a person at a terminal: progress on stderr, results as tables, JSON for machines."""

from __future__ import annotations

import argparse
import json
import os
import select
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tqdm import tqdm

# progress(fraction done, what is being done): the callback model loading reports to.
Progress = Callable[[float, str], None]


@contextmanager
def loading_bar(what: str) -> Iterator[Progress]:
    """A progress callback drawn as a bar on stderr while `what` loads; the bar goes when it is done.

    Like every bar here it is drawn only when stderr is a terminal (tqdm's disable=None), so logs,
    pipes and editors' stderr captures stay clean. It says the time left too: a 7B model quantized on a
    CPU takes minutes.
    """
    with tqdm(total=100, desc=f"loading {what}", disable=None, leave=False,
              bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}, {remaining} left") as bar:

        def report(fraction: float, _message: str) -> None:
            bar.update(max(0, round(fraction * 100) - bar.n))

        yield report


def positive_int(text: str) -> int:
    """An argparse type for counts: `--cases 0` is refused with a clear message instead of failing later."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def output_path(text: str) -> Path:
    """An argparse type for `--json PATH`: '-' (stdout) or a file that can be written, checked before the run,
    not after it, when its figures would be lost to a traceback."""
    path = Path(text)
    if text == "-":
        return path
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a directory")
    parent = path.parent
    if not parent.is_dir():
        raise argparse.ArgumentTypeError(f"no directory {parent} to write {path.name} in")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise argparse.ArgumentTypeError(f"cannot write {text}: permission denied")
    return path


def add_report_and_server_args(p: argparse.ArgumentParser, *, sides: str = "") -> None:
    """The arguments every tool that measures a `serve` process takes: `--json PATH` and the `serve` flags after
    `--` (`sides`: whose, when the tool starts more than one kind of server)."""
    p.add_argument("--json", type=output_path, metavar="PATH",
                   help="also write every figure as JSON to PATH ('-': stdout, no table)")
    p.add_argument("server_args", nargs="*", help=f"`serve` flags{sides} after --, e.g. -- --model DIR")


def run_command(main: Callable[[], object], name: str = "codellama-lsp") -> None:
    """Run a command as a person at a terminal expects: Ctrl+C ends it with status 130 and one line, not a
    traceback; a reader of stdout that went away (`| head`) ends it quietly; main()'s int is the exit status."""
    try:
        code = main()
    except KeyboardInterrupt:
        print(f"\n{name}: interrupted", file=sys.stderr, flush=True)
        sys.exit(130)
    except BrokenPipeError:
        if not _stdout_gone():  # another pipe (a socket) broke: not the reader going away
            raise
        # Python flushes stdout once more at exit: let that go nowhere rather than warn about it.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


def _stdout_gone() -> bool:
    """Whether stdout is a pipe whose reader has closed it (poll reports an error on its write end)."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll() on this system, or no stdout: assume it was stdout
        return True


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell: the first (labels) left-aligned, the others (figures) right-aligned."""
    table = [list(header), *(list(row) for row in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
             .rstrip() for row in table]
    lines.insert(1, "-" * max(map(len, lines)))
    return "\n".join(lines)


def ms(value: float | None) -> str:
    """A latency for people: '44.7 ms', '171 ms' ('-' when there is none)."""
    if value is None or value != value:  # NaN: nothing was measured
        return "-"
    return f"{value:.1f} ms" if value < 100 else f"{value:.0f} ms"


def show_result(table: str, data: Any, json_dest: Path | None) -> None:
    """Print the table for people, and with `--json PATH` write the full result for machines.

    PATH '-' puts the JSON on stdout instead of the table, so that it can be piped as it is.
    """
    if json_dest is None or str(json_dest) != "-":
        print(table)
    if json_dest is not None:
        write_json(json_dest, data)


def write_json(dest: Path, data: Any) -> None:
    """The full result for machines, written to `dest`, or to stdout when it is '-'."""
    text = json.dumps(data, indent=1)
    if str(dest) == "-":
        print(text)
        return
    try:
        dest.write_text(text + "\n", encoding="utf-8")
    except OSError as e:  # checked when parsed (output_path), but the disk may fill or the directory go
        raise SystemExit(f"codellama-lsp: cannot write {dest}: {e.strerror or e}") from e
