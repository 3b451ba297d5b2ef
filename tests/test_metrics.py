from __future__ import annotations

import pytest

from lsp_server.metrics import LatencyStats


def test_empty() -> None:
    stats = LatencyStats()
    assert (stats.p50, stats.p95, stats.hit_rate, len(stats)) == (None, None, 0.0, 0)
    assert stats.summary() == {
        "count": 0, "total": 0, "p50_ms": None, "p95_ms": None, "max_ms": None, "hit_rate": 0.0,
    }  # fmt: skip


def test_nearest_rank_percentiles_golden() -> None:
    stats = LatencyStats()
    for ms in [40, 10, 30, 20]:
        stats.record(ms)
    assert stats.p50 == 20
    assert stats.p95 == 40
    assert stats.percentile(25) == 10
    assert stats.percentile(26) == 20
    assert stats.percentile(0) == 10
    assert stats.percentile(100) == 40


def test_p95_of_hundred() -> None:
    stats = LatencyStats(window=1000)
    for ms in range(1, 101):
        stats.record(float(ms), cache_hit=ms % 4 == 0)
    assert stats.p50 == 50
    assert stats.p95 == 95
    assert stats.hit_rate == 0.25


def test_window_is_bounded() -> None:
    stats = LatencyStats(window=3)
    for ms, hit in [(1000, False), (1, True), (2, True), (3, False)]:
        stats.record(ms, cache_hit=hit)
    assert len(stats) == 3
    assert stats.total == 4
    assert stats.p95 == 3  # the 1000 ms outlier has left the window
    assert stats.hit_rate == pytest.approx(2 / 3)


def test_summary_golden() -> None:
    stats = LatencyStats(window=10)
    for ms, hit in [(12.34, False), (0.5, True), (250.06, False), (-3, True)]:
        stats.record(ms, cache_hit=hit)
    assert stats.summary() == {
        "count": 4, "total": 4, "p50_ms": 0.5, "p95_ms": 250.1, "max_ms": 250.1, "hit_rate": 0.5,
    }  # fmt: skip
