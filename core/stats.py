"""Per-stage counters of this worker process: what each stage has handled and when.

Fed by: the bridge and every agent (`StageStats.add`). Feeds: the web page `/tapio/stages/`
that `tapio worker` serves, read by the benchmark and by operators.
"""

from __future__ import annotations

import time

import msgspec


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


class StageStats:
    def __init__(self) -> None:
        self.stages: dict[str, StageCounter] = {}
        self.timings: dict[str, Reservoir] = {}

    def time(self, name: str, seconds: float, weight: int = 1) -> None:
        self.timings.setdefault(name, Reservoir()).add(seconds, weight)

    def add(self, stage: str, events: int, *, rejected: int = 0) -> None:
        counter = self.stages.setdefault(stage, StageCounter())
        now = time.time()
        if not counter.batches:
            counter.first_at = now
        counter.events += events
        counter.rejected += rejected
        counter.batches += 1
        counter.last_at = now

    def snapshot(self) -> dict[str, StageCounter]:
        return dict(self.stages)
