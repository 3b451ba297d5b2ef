"""Request latency statistics over a bounded window of recent requests."""

from __future__ import annotations

import math
from collections import deque

__all__ = ["LatencyStats"]


class LatencyStats:
    """Recent request timings: percentiles and cache hit rate.

    Percentiles use the nearest-rank method on the last ``window`` samples
    (p50 of ``[10, 20, 30, 40]`` is 20): it always returns an observed
    latency, which reads better in logs than an interpolated one.
    """

    def __init__(self, window: int = 256) -> None:
        self.window = max(1, window)
        self._samples: deque[tuple[float, bool]] = deque(maxlen=self.window)
        self.total = 0  # requests recorded over the lifetime, not just the window

    def __len__(self) -> int:
        return len(self._samples)

    def record(self, total_ms: float, cache_hit: bool = False) -> None:
        """Add one request's end-to-end time; negative times are clamped to 0."""
        self._samples.append((max(0.0, float(total_ms)), bool(cache_hit)))
        self.total += 1

    def percentile(self, p: float) -> float | None:
        """Nearest-rank ``p``-th percentile (0 < p <= 100) in ms; None if empty."""
        if not self._samples:
            return None
        ordered = sorted(ms for ms, _ in self._samples)
        rank = math.ceil(max(0.0, min(p, 100.0)) / 100.0 * len(ordered))
        return ordered[max(rank, 1) - 1]

    @property
    def p50(self) -> float | None:
        return self.percentile(50)

    @property
    def p95(self) -> float | None:
        return self.percentile(95)

    @property
    def hit_rate(self) -> float:
        """Fraction of windowed requests served from the cache; 0.0 if empty."""
        if not self._samples:
            return 0.0
        return sum(hit for _, hit in self._samples) / len(self._samples)

    def summary(self) -> dict[str, float | int | None]:
        """Snapshot for logs: counts, p50/p95/max in ms (rounded to 0.1), hit rate."""

        def rounded(value: float | None) -> float | None:
            return None if value is None else round(value, 1)

        return {
            "count": len(self._samples),
            "total": self.total,
            "p50_ms": rounded(self.p50),
            "p95_ms": rounded(self.p95),
            "max_ms": rounded(max((ms for ms, _ in self._samples), default=None)),
            "hit_rate": round(self.hit_rate, 3),
        }
