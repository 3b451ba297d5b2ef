"""What long commands show: progress on a terminal's stderr (none in a pipe), results as tables or JSON."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import threading
from pathlib import Path

import pytest

from lsp_server.settings import Settings
from lsp_server.tools.evaluate import Report, format_report, margin_95
from lsp_server.tools.replay import format_result
from lsp_server.tools.terminal import format_table, ms, show_result


def run_with_terminal_stderr(*args: str, timeout: float = 300) -> tuple[subprocess.CompletedProcess[str], str]:
    """`codellama-lsp ARGS` with stderr on a pseudo-terminal of 120 columns: (the result, what the terminal got)."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    seen = bytearray()

    def drain() -> None:  # a full terminal buffer would block the command
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the follower side closed
                return
            if not chunk:
                return
            seen.extend(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        result = subprocess.run([sys.executable, "-m", "lsp_server", *args], stdout=subprocess.PIPE, stderr=follower,
                                stdin=subprocess.DEVNULL, text=True, timeout=timeout)
    finally:
        os.close(follower)
    reader.join(timeout=10)
    os.close(leader)
    return result, seen.decode("utf-8", "replace")


def test_eval_shows_progress_on_a_terminal_and_prints_a_table(tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    result, terminal = run_with_terminal_stderr("eval", "--cases", "2", "--alternatives", "3", "--json", str(out))
    assert result.returncode == 0, terminal[-2000:]
    assert "loading the demo model:" in terminal and "100%" in terminal
    assert "eval: 100%" in terminal and "2/2" in terminal
    assert "exact match" in result.stdout and "latency p50" in result.stdout and " ms" in result.stdout
    assert "exact among the 3 suggestions offered when asked" in result.stdout and "x one)" in result.stdout
    saved = json.loads(out.read_text())
    assert saved["report"]["cases"] == 2 and len(saved["cases"]) == 2
    for case in saved["cases"]:  # the lines offered, different, one of them the expected one if "exact_among"
        assert 1 <= len(set(case["offered"])) == len(case["offered"]) <= 3
        assert case["exact_among"] == (case["expected"].strip() in [o.strip() for o in case["offered"]])


def test_model_loading_progress_on_a_terminal_only(tmp_path: Path) -> None:
    doc = tmp_path / "a.py"
    doc.write_text("def add(a, b):\n    return a + \n")
    args = ("complete", str(doc), "--line", "1", "--character", "15", "--max-tokens", "4")
    result, terminal = run_with_terminal_stderr(*args)
    assert result.returncode == 0 and "loading the demo model:" in terminal
    assert re.search(r"\d+:\d+, (\d+:\d+|\?) left", terminal), terminal  # elapsed, and the time left
    piped = subprocess.run([sys.executable, "-m", "lsp_server", *args], capture_output=True, text=True, timeout=120)
    assert piped.returncode == 0 and piped.stderr == ""


def test_format_table_aligns_labels_left_and_figures_right() -> None:
    table = format_table(["what", "value"], [["a long label", "1 ms"], ["b", "100 ms"]])
    assert table.splitlines() == ["what           value", "-" * 20, "a long label    1 ms",
                                  "b             100 ms"]


@pytest.mark.parametrize("value,text", [(44.71, "44.7 ms"), (171.4, "171 ms"), (None, "-"), (float("nan"), "-")])
def test_ms(value: float | None, text: str) -> None:
    assert ms(value) == text


def test_a_table_for_people_and_json_for_machines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    show_result("the table", {"a": 1}, None)
    assert capsys.readouterr().out == "the table\n"
    show_result("the table", {"a": 1}, tmp_path / "r.json")
    assert capsys.readouterr().out == "the table\n" and json.loads((tmp_path / "r.json").read_text()) == {"a": 1}
    show_result("the table", {"b": 2}, Path("-"))
    assert json.loads(capsys.readouterr().out) == {"b": 2}  # JSON alone on stdout, ready for a pipe


def test_eval_report_in_words() -> None:
    text = format_report(Report(200, 0.07, 0.285, 0.045, 130.2, 410.0), Settings(device="cpu"))
    assert "200 cursors" in text and "SPM prompts" in text
    assert "7.0%" in text and "0.285" in text and "4.5%" in text and "130 ms" in text and "410 ms" in text
    assert "±" not in text  # no margins were given
    text = format_report(Report(200, 0.07, 0.285, 0.045, 130.2, 410.0, exact_match_margin=0.035,
                                edit_similarity_margin=0.041), Settings(device="cpu"))
    assert "7.0% ± 3.5%" in text and "0.285 ± 0.041" in text and "95% confidence interval" in text


def test_margin_95_is_the_normal_interval_of_the_mean() -> None:
    values = [1.0] * 41 + [0.0] * 159  # 20.5% of 200 cursors
    assert margin_95(values) == pytest.approx(1.96 * (0.205 * 0.795 * 200 / 199 / 200) ** 0.5, abs=5e-4)
    assert margin_95([0.0] * 10) == 0.0 and margin_95([1.0]) is None  # one cursor: no interval, not NaN


def test_replay_labels_its_numbers_in_words_with_units() -> None:
    result = {"model": "embedded demo", "device": "cpu", "fim_mode": "spm", "lines": 10,
              "cold_p50_ms": 171.0, "cold_p95_ms": 240.0, "keystroke_p50_ms": 44.7, "keystroke_p95_ms": 140.0,
              "keystroke_n": 180, "type_through_p50_ms": 1.7, "type_through_p95_ms": 3.1, "type_through_n": 60,
              "keystroke_vs_cold": 0.261, "type_through_vs_cold": 0.0099, "request_while_generating_p50_ms": 2.4,
              "request_idle_p50_ms": 0.9, "server_p50_ms": 40.0, "server_p95_ms": 120.0}
    text = format_result(result)
    assert "_ms" not in text and "_n" not in text  # no raw keys
    keystroke = next(line for line in text.splitlines() if line.startswith("keystroke"))
    assert keystroke.split()[-5:] == ["ms", "140", "ms", "180", "0.261x"] and "44.7 ms" in keystroke
    assert "while a generation runs: p50 2.4 ms (idle server: 0.9 ms)" in text
