"""Shared by the docstring tests: a strict target lookup and a fake model that numbers its answers."""

from __future__ import annotations

from lsp_server.docstring import DocTarget, find_target


def target_at(text: str, language: str, line: int, end_line: int | None = None) -> DocTarget:
    """find_target for a position that must have a target."""
    target = find_target(text, language, line, end_line)
    assert target is not None
    return target


class Numbered:
    """Fake model: the n-th blank gets "text number n", and every call is recorded."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, int]] = []

    def __call__(self, prefix: str, suffix: str, max_new_tokens: int) -> str:
        self.calls.append((prefix, suffix, max_new_tokens))
        return f"text number {len(self.calls)}"
