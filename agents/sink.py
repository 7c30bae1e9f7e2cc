"""Stage 5, graph sink: write events, the resources they affect and the AFFECTED edges.

Fed by: topic `insights` (InsightBatch). Feeds: the graph (FalkorDB embedded, Neo4j in production).

Writes are batched (several topic records are merged into one write of up to
`graph.batch_size` events per statement) and idempotent (MERGE on event id and resource uid),
so at-least-once delivery upstream still leaves each event once in the graph. When the graph
is down the sink retries with backoff and does not move on: offsets are not committed for
records that are not in the graph, and Kafka holds the backlog (backpressure).
A write the graph rejects is retried event by event; the events it still rejects go to
`deadletter.sink` with the graph's error, the others are written.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust

from app.codec import Poison, msgpack_encoder
from app.events import UnifiedEvent
from app.runtime import Runtime
from topology.graph import GraphQueryError, GraphUnavailable

log = logging.getLogger(__name__)

STAGE = "sink"


async def write_with_backoff(runtime: Runtime, events: list[UnifiedEvent]) -> None:
    graph = runtime.graph
    assert graph is not None
    delay = 0.5
    while True:
        try:
            await graph.write_events(events)
            return
        except GraphUnavailable as e:
            log.error("graph sink: %s; holding %d events and retrying in %.1fs", e, len(events), delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 15.0)
        except GraphQueryError as e:
            log.error("graph sink: the graph rejected a batch of %d (%s); writing them one by one", len(events), e)
            for event in events:
                try:
                    await graph.write_events([event])
                except GraphQueryError as one:
                    await runtime.dead_letter(stage=STAGE, reason=f"graph rejected the event: {one}",
                                              where=f"event {event.id}", payload=msgpack_encoder.encode(event),
                                              event_id=event.id)
            return


def register_sink(app: faust.App, *, source: faust.TopicT, runtime: Runtime, max_records: int = 50,
                  within: float = 0.05) -> Any:
    async def sink(stream: faust.StreamT) -> None:
        await runtime.ready()
        async for values in stream.take(max_records, within=within):
            events: list[UnifiedEvent] = []
            for value in values:
                if isinstance(value, Poison):
                    await runtime.dead_letter(stage=STAGE, reason=value.reason, where=value.where,
                                              payload=value.payload)
                else:
                    events.extend(value.events)
            if events:
                try:
                    await write_with_backoff(runtime, events)
                except Exception as e:  # never leave the loop: keep the events in the dead-letter stream
                    log.exception("graph sink failed unexpectedly on %d events; dead-lettering them", len(events))
                    for event in events:
                        await runtime.dead_letter(stage=STAGE, reason=f"{type(e).__name__}: {e}",
                                                  where=f"event {event.id}", payload=msgpack_encoder.encode(event),
                                                  event_id=event.id)
            runtime.stats.add(STAGE, len(events))

    return app.agent(source, name="tapio.sink")(sink)
