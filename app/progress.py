"""Is the dataflow moving? A part that has work waiting and takes none of it is stalled.

Fed by: what the worker can see of its parts, sampled when `/readyz` is asked: per Kafka
partition a stage reads, the committed offset (how far it has taken its input) and the
partition's end (Faust's monitor, from the fetch responses' high watermarks); for the bridge in
this process, how many events it has bridged and how many wait in its JetStream consumer.
Not seen here: a broker that came back empty (its ends fall below the committed offsets, so nothing
looks waiting). The Kafka epoch sees that instead (`app.kafka_epoch`): the bridge has the topics
rebuilt and bridges again what the graph lacks, and the workers restart themselves on them
(tests/test_kafka_loss.py).
Feeds: the `progress` check of `/readyz` (app.api): not ready while a part is stalled, with
what is stalled and for how long.

A part is stalled when work has waited for it (backlog > 0) and its position has not moved for
`stall_s` seconds (`api.stall_after_s`). So a quiet dataflow is ready (no backlog), a busy one
is ready (its positions move), and one whose broker came back empty while the bridge cannot
produce, or whose agent hangs, is not. `judge` is pure; `ProgressWatch` samples and keeps the
marks between two looks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import msgspec


class Mark(msgspec.Struct, frozen=True):
    position: int
    since: float  # monotonic seconds: when the position was first seen at this value


class Sample(msgspec.Struct, frozen=True):
    position: int  # how far the part has come (an offset, a count)
    backlog: int  # how much waits for it


def judge(samples: Mapping[str, Sample], marks: Mapping[str, Mark], now: float,
          stall_s: float) -> tuple[dict[str, Mark], list[str]]:
    """The new marks, and one line per part stalled: backlog waiting, position unchanged for stall_s."""
    out: dict[str, Mark] = {}
    stalled: list[str] = []
    for name, sample in sorted(samples.items()):
        mark = marks.get(name)
        if mark is None or mark.position != sample.position or sample.backlog <= 0:
            out[name] = Mark(sample.position, now)
            continue
        out[name] = mark
        if now - mark.since >= stall_s:
            stalled.append(f"{name}: {sample.backlog} waiting, none taken for {now - mark.since:.0f} s")
    return out, stalled


def kafka_samples(monitor: Any) -> dict[str, Sample]:
    """Per partition a stage of this worker reads and has committed on (Faust's monitor: the
    committed offsets, and the ends its fetches saw): its committed offset and what is left."""
    ends: Mapping[Any, int] = getattr(monitor, "tp_end_offsets", None) or {}
    committed: Mapping[Any, int] = getattr(monitor, "tp_committed_offsets", None) or {}
    return {f"{tp.topic}[{tp.partition}]": Sample(position=committed[tp], backlog=max(0, end - committed[tp]))
            for tp, end in ends.items() if tp in committed}


class ProgressWatch:
    """The marks between two looks; `check` raises LookupError naming what is stalled."""

    def __init__(self, stall_s: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.stall_s = stall_s
        self.clock = clock
        self.marks: dict[str, Mark] = {}

    def check(self, samples: Mapping[str, Sample]) -> str:
        self.marks, stalled = judge(samples, self.marks, self.clock(), self.stall_s)
        if stalled:
            raise LookupError("stalled: " + "; ".join(stalled))
        waiting = ", ".join(f"{name} {s.backlog}" for name, s in sorted(samples.items()) if s.backlog)
        return f"{len(samples)} input(s) moving or idle" + (f"; waiting: {waiting}" if waiting else "")
