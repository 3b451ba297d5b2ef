"""What the commands show a person at a terminal: progress on stderr, results as tables, JSON for machines."""

from __future__ import annotations

import argparse
import json
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
    pipes and editors' stderr captures stay clean.
    """
    with tqdm(total=100, desc=f"loading {what}", disable=None, leave=False,
              bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}") as bar:

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
    else:
        dest.write_text(text + "\n", encoding="utf-8")
