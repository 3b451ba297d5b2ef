"""`sample`: greedy at temperature 0, nucleus sampling above, and never a nan for a tiny temperature."""

from __future__ import annotations

import torch

from model.engine import sample


def test_a_tiny_temperature_tends_to_greedy_instead_of_failing() -> None:
    # Before: logits / 1e-300 overflowed to inf, softmax gave nan, and every completion failed.
    logits = torch.tensor([3.0, 9.5, -2.0, float("-inf"), 9.0])
    for temperature in (1e-300, 1e-30, 1e-6):
        assert sample(logits, temperature, top_p=0.95) == 1


def test_nucleus_sampling_keeps_only_the_top_mass() -> None:
    logits = torch.log(torch.tensor([0.6, 0.3, 0.06, 0.04]))
    generator = torch.Generator().manual_seed(0)
    seen = {sample(logits, 1.0, top_p=0.8, generator=generator) for _ in range(200)}
    assert seen == {0, 1}
    assert sample(logits, 0.0, top_p=0.8) == 0
