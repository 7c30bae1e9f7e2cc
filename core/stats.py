"""Per-stage counters of this worker process: what each stage has handled and when.

Fed by: the bridge and every agent (`StageStats.add`, `time`, `count`, `gauge`). Feeds: the web page
`/tapio/stages/` that `tapio worker` serves, read by the benchmark and by operators, and the Prometheus
`/metrics` endpoint (`app.metrics`), which turns the counters, histograms and gauges here into its
text format when scraped.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Sequence

import msgspec

#: seconds: the upper bounds of every duration's histogram (Prometheus' default buckets, and 30 s)
DURATION_BOUNDS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: events: the upper bounds of the batch-size histograms
SIZE_BOUNDS: tuple[float, ...] = (1, 10, 50, 100, 250, 500, 1000, 2500, 5000)


class StageCounter(msgspec.Struct, kw_only=True):
    events: int = 0
    batches: int = 0
    rejected: int = 0
    first_at: float = 0.0  # wall-clock seconds of the first batch handled
    last_at: float = 0.0

    @property
    def rate(self) -> float:
        span = self.last_at - self.first_at
        return self.events / span if span > 0 else 0.0


class Percentiles(msgspec.Struct, kw_only=True):
    samples: int
    p50_ms: float
    p99_ms: float
    max_ms: float


class Reservoir:
    """The last `size` samples of a duration (seconds), weighted, for percentiles on the stats page."""

    def __init__(self, size: int = 20_000) -> None:
        self.size = size
        self.values: list[float] = []
        self.weights: list[int] = []
        self._next = 0

    def add(self, seconds: float, weight: int = 1) -> None:
        if len(self.values) < self.size:
            self.values.append(seconds)
            self.weights.append(weight)
        else:
            self.values[self._next], self.weights[self._next] = seconds, weight
            self._next = (self._next + 1) % self.size

    def percentiles(self) -> Percentiles:
        pairs = sorted(zip(self.values, self.weights, strict=True))
        total = sum(w for _, w in pairs)

        def at(q: float) -> float:
            seen = 0
            for value, weight in pairs:
                seen += weight
                if seen >= q * total:
                    return round(value * 1000, 3)
            return 0.0
        return Percentiles(samples=total, p50_ms=at(0.5), p99_ms=at(0.99),
                           max_ms=round(pairs[-1][0] * 1000, 3) if pairs else 0.0)


class Histogram:
    """Observations counted under fixed upper bounds, with their sum: a Prometheus histogram's data."""

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last: above every bound
        self.sum = 0.0
        self.count = 0

    def add(self, value: float, weight: int = 1) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += weight
        self.sum += value * weight
        self.count += weight

    def cumulative(self) -> list[tuple[str, int]]:
        """(upper bound, observations at or under it) per bound, the last "+Inf" (Prometheus' `le`)."""
        out, seen = [], 0
        for bound, n in zip((*(repr(float(b)) for b in self.bounds), "+Inf"), self.counts, strict=True):
            seen += n
            out.append((bound, seen))
        return out


class StageStats:
    def __init__(self) -> None:
        self.stages: dict[str, StageCounter] = {}
        self.timings: dict[str, Reservoir] = {}
        self.durations: dict[str, Histogram] = {}  # the same timings, as histograms (seconds)
        self.sizes: dict[str, Histogram] = {}  # per stage, its batches' sizes
        self.labelled: dict[str, dict[str, int]] = {}  # name -> label -> count (predictions per pattern)
        self.gauges: dict[str, Callable[[], float]] = {}  # name -> how to read it now (window states held)

    def time(self, name: str, seconds: float, weight: int = 1) -> None:
        self.timings.setdefault(name, Reservoir()).add(seconds, weight)
        histogram = self.durations.get(name)
        if histogram is None:
            histogram = self.durations[name] = Histogram(DURATION_BOUNDS)
        histogram.add(seconds, weight)

    def add(self, stage: str, events: int, *, rejected: int = 0) -> None:
        counter = self.stages.setdefault(stage, StageCounter())
        now = time.time()
        if not counter.batches:
            counter.first_at = now
        counter.events += events
        counter.rejected += rejected
        counter.batches += 1
        counter.last_at = now
        if rejected and not events:  # a dead letter, not a batch handled
            return
        sizes = self.sizes.get(stage)
        if sizes is None:
            sizes = self.sizes[stage] = Histogram(SIZE_BOUNDS)
        sizes.add(events)

    def count(self, name: str, label: str, n: int = 1) -> None:
        counts = self.labelled.setdefault(name, {})
        counts[label] = counts.get(label, 0) + n

    def gauge(self, name: str, read: Callable[[], float]) -> None:
        """A value read when the metrics are scraped (the last one registered under `name` counts)."""
        self.gauges[name] = read

    def snapshot(self) -> dict[str, StageCounter]:
        return dict(self.stages)
