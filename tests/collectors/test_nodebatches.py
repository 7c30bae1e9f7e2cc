"""`collectors.nodebatches`: a node collector's events handed on in batches of at most `max_batch`, what is
queued when `stop` is set still handed on, and what a full queue refuses counted as dropped."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from waiting import until

from collectors.node import node_event
from collectors.nodebatches import Batches
from core.events import RawEvent

AT = datetime(2026, 12, 5, 3, 0, tzinfo=UTC)


def event(n: int) -> RawEvent:
    return node_event("cri", node="n", at=AT, reason="ContainerStart", message=f"{n}", intent="lifecycle",
                      category="lifecycle", severity="info", facts={"pid": str(n)})


async def test_batches_are_bounded_and_the_rest_is_handed_on_at_stop() -> None:
    batches: list[list[RawEvent]] = []

    async def emit(batch: list[RawEvent]) -> None:
        batches.append(batch)

    pump = Batches(emit, every=60.0, max_batch=4, size=100)
    for n in range(10):
        pump.offer(event(n))
    stop = asyncio.Event()
    task = asyncio.create_task(pump.pump(stop))
    await until(lambda: sum(map(len, batches)) >= 8, timeout=5,
                what="two full batches at once, without waiting `every`")
    stop.set()
    await asyncio.wait_for(task, timeout=5)
    assert [len(b) for b in batches] == [4, 4, 2]
    assert [e.metadata["pid"] for b in batches for e in b] == [str(n) for n in range(10)]


async def test_a_full_queue_drops_and_counts() -> None:
    async def emit(batch: list[RawEvent]) -> None:
        return None

    pump = Batches(emit, size=3)
    for n in range(5):
        pump.offer(event(n))
    assert pump.dropped == 2


async def test_a_lone_event_goes_after_about_every() -> None:
    got = asyncio.Event()

    async def emit(batch: list[RawEvent]) -> None:
        got.set()

    pump = Batches(emit, every=0.05)
    stop = asyncio.Event()
    task = asyncio.create_task(pump.pump(stop))
    pump.offer(event(1))
    await asyncio.wait_for(got.wait(), timeout=5)
    stop.set()
    await asyncio.wait_for(task, timeout=5)
