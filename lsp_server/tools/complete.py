"""`codellama-lsp complete`: one completion from the command line, for scripts and debugging.

The suggestion goes to stdout as a line; when there is none, stdout stays empty and stderr says why.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from model.backend import Backend, Generation, infill

from ..completion import complete
from ..languages import language_of
from ..loading import load_engine
from ..settings import Settings
from ..text import offset_at, split_lines, utf16_len
from .terminal import loading_bar


def run(args: argparse.Namespace, settings: Settings) -> None:
    """Print the completion at args.line/args.character of args.file (settings already hold the flags)."""
    path = Path(args.file)
    try:
        # bytes, not read_text(): universal newlines would turn CRLF into LF and shift every offset
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise SystemExit(f"codellama-lsp: cannot read {path}: {e}") from e
    offset = checked_offset(text, args.line, args.character, path)
    if args.dump_prompt:
        print(json.dumps(_windowed_prompt(settings, text, offset, args.raw, language_of(str(path)))))
        return
    with loading_bar(settings.model or "the demo model") as progress:
        engine = load_engine(settings, progress)
    if args.raw:  # Meta's reference behaviour: whole file, stop at <EOT>/EOS/max tokens, text unshaped
        gen = infill(engine, text[:offset], text[offset:], mode=settings.fim_mode,
                            max_new_tokens=settings.max_tokens, temperature=settings.temperature,
                            top_p=settings.top_p)
        if gen.text:
            sys.stdout.write(gen.text + "\n")
        else:
            _no_suggestion(path, args, why_nothing(gen, engine.context_length))
        return
    watched = GenerationWatch(engine)
    # Untimed: the model's answer, however busy the machine.
    suggestion = complete(watched, text, offset, settings, timed=False,  # type: ignore[arg-type]
                          language=language_of(str(path)))
    if suggestion is None:
        _no_suggestion(path, args, why_nothing(watched.last, engine.context_length))
        return
    sys.stdout.write(suggestion.text + "\n")


def checked_offset(text: str, line: int, character: int, path: Path) -> int:
    """The offset of an LSP position given on the command line; a position outside the file is an error."""
    lines = split_lines(text)
    if not 0 <= line < len(lines):
        raise ValueError(f"--line {line} is outside {path}, whose lines are 0 to {len(lines) - 1}")
    width = utf16_len(lines[line])
    if not 0 <= character <= width:
        raise ValueError(f"--character {character} is outside line {line} of {path}, whose characters are "
                         f"0 to {width} (UTF-16 code units)")
    return offset_at(text, line, character)


class GenerationWatch:
    """An engine that remembers its last generation, so that an empty completion can say why it is empty.

    complete() answers None for several reasons without naming one; its single model call tells them apart.
    """

    def __init__(self, engine: Backend) -> None:
        self.engine = engine
        self.last: Generation | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)

    def generate(self, *args: Any, constraint: str = "", **kwargs: Any) -> Generation:
        gen = self.engine.generate(*args, constraint=constraint, **kwargs)
        # What the model wrote after the text that token healing left out of the prompt and had it write back:
        # at `xs = [1, 2]` it writes `]` + `\n`, which is ending the line at once.
        self.last = dataclasses.replace(gen, text=gen.text.removeprefix(constraint))
        return gen


STOPPED = {"eot": "it ended the infill (<EOT>)", "eos": "it ended the text (EOS)",
           "max_tokens": "it reached the token limit", "stop": "a stop rule ended it",
           "deadline": "the time budget ran out", "context": "the context is full", "cancel": "it was cancelled",
           "invalid": "it wrote bytes that are no text"}


def why_nothing(gen: Generation | None, context_length: int) -> str:
    """Why a completion came back empty, in words."""
    if gen is None:
        return f"no prompt fits the model's context of {context_length} tokens"
    if not gen.text.strip():
        if "\n" in gen.text:
            return "the model ended the line at once: it takes the line to be complete"
        return f"the model wrote nothing before {STOPPED.get(gen.stop_reason, gen.stop_reason)}"
    return (f"the model wrote {gen.text!r}, and none of it fits here (it repeats the code after the cursor "
            "or does not continue the line)")


def _no_suggestion(path: Path, args: argparse.Namespace, why: str) -> None:
    """Nothing on stdout (a script sees an empty answer), the reason on stderr (a person sees why)."""
    print(f"codellama-lsp: no suggestion at {path}:{args.line}:{args.character}: {why}", file=sys.stderr)


def _windowed_prompt(settings: Settings, text: str, offset: int, raw: bool, language: str) -> list[int]:
    """The prompt `complete` would run, from the tokenizer and config alone (no weights are loaded)."""
    from model.checkpoint import open_checkpoint
    from model.tokenizer import infill_prompt

    from ..completion import cursor_mode, fitting_prompt, healing_text, line_around
    from ..loading import model_dir
    from ..tags import in_markup

    tokenizer, reader = open_checkpoint(model_dir(settings))
    if raw:
        return infill_prompt(tokenizer, text[:offset], text[offset:], settings.fim_mode)  # type: ignore[arg-type]
    before, _ = line_around(text, offset)
    markup = in_markup(language, text[offset:offset + 4000])
    context_length = min(settings.context_length, reader.args.max_seq_len)
    fitted = fitting_prompt(tokenizer, context_length, text, offset, settings,
                            cursor_mode(text, offset, settings.line_policy, markup),
                            healed=healing_text(tokenizer, before))
    if fitted is None:
        raise ValueError(f"no prompt fits the context of {context_length} tokens")
    return fitted[1]
