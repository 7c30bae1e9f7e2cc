"""What every cross-layer chain test (`tests/cluster/test_*_chain.py`) runs its collectors into: an isolated
dataflow on the embedded stack with one worker, and a pump that publishes the collectors' events into it
as they come.

Fed by: the embedded stack fixture, the collectors running on their threads (`collectorthread`, `kernelrun`).
Feeds: the dataflow's JetStream stream (batched, as the agent publishes), the worker's graph.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from app.jetstream import DeadLetterPublisher, EventPublisher, connect, ensure_streams
from app.stack import EmbeddedStack, free_port
from app.workers import start_worker, with_worker_port
from core.events import RawEvent
from core.settings import Settings, isolated

#: what a pump reads: a collector's events so far, in the order it emitted them
Source = Callable[[], Sequence[RawEvent]]


def isolated_flow(embedded: EmbeddedStack, tmp: Path, name: str) -> Iterator[Settings]:
    """An isolated dataflow `name` on the embedded stack: its stream, topics, tables and graph; one worker
    (logs under `tmp`), stopped when the generator is closed."""
    settings = isolated(with_worker_port(embedded.settings(), free_port(), data_dir=str(tmp / "worker")), name)
    worker = start_worker(settings, name=f"worker-{name}", log_dir=tmp)
    try:
        yield settings
    finally:
        worker.stop()


async def pump(sources: Sequence[Source], flow: Settings, stop: asyncio.Event, *, name: str,
               keep: Callable[[RawEvent], bool] = lambda e: True) -> int:
    """Publish the events of `sources` that `keep` accepts into the dataflow as they come, until `stop`
    (after a last round); how many events were read."""
    nc = await connect(flow.nats, name=f"test-{name}")
    sent = [0] * len(sources)
    try:
        js = nc.jetstream()
        await ensure_streams(js, flow.nats)
        publisher = EventPublisher(js, flow.nats, deadletters=DeadLetterPublisher(js, flow.nats))
        while True:
            for i, source in enumerate(sources):
                batch = list(source()[sent[i]:])
                sent[i] += len(batch)
                mine = [e for e in batch if keep(e)]
                if mine:
                    await publisher.publish_many(mine)
            if stop.is_set():
                return sum(sent)
            try:
                await asyncio.wait_for(stop.wait(), 0.3)
            except TimeoutError:
                pass
    finally:
        await nc.drain()
