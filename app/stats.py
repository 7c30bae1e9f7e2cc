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


class StageStats:
    def __init__(self) -> None:
        self.stages: dict[str, StageCounter] = {}

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
