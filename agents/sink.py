"""Stage 5, graph sink: write events, the resources they affect and the AFFECTED edges, then the
batch's pattern matches and predictions.

Fed by: topic `insights` (InsightBatch). Feeds: the graph (FalkorDB embedded, Neo4j in production).

Writes are batched (several topic records are merged into one write of up to
`graph.batch_size` events per statement) and idempotent (MERGE on event id and resource uid),
so at-least-once delivery upstream still leaves each event once in the graph. After each write the
sink records how far the graph holds each raw partition (`app.checkpoint.StageProgress`): the
bridge's recovery point when Kafka loses data. When the graph
is down the sink retries with backoff and does not move on: offsets are not committed for
records that are not in the graph, and Kafka holds the backlog (backpressure).
A write the graph rejects is retried event by event; the events it still rejects go to
`deadletter.sink` with the graph's error, the others are written.

Matches and predictions are written after the events (`GraphStore.write_insights`, which also
writes each match's evidence events, so a match never waits for its events' own batch), with
the same backoff. A batch the graph rejects is retried match by match (a match with the
predictions made from it); a match it still rejects goes to `deadletter.sink` as an
InsightBatch holding that match and its predictions, the others are written.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import faust

from core.codec import Poison, msgpack_encoder
from core.events import UnifiedEvent
from core.log_context import bind as bind_log
from core.ports import GraphQueryError, GraphUnavailable, InvalidInsight, StageRuntime
from core.records import InsightBatch, MatchGroup, PatternMatch, Prediction, Progress, by_match
from core.trace_links import stage_span, traced

log = logging.getLogger(__name__)

STAGE = "sink"
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 15.0

T = TypeVar("T")


async def _until_reachable(op: Callable[[], Awaitable[T]], *, what: str) -> T:
    """Run `op` until the graph is reachable: GraphUnavailable is retried with backoff, forever."""
    delay = BACKOFF_FIRST_S
    while True:
        try:
            return await op()
        except GraphUnavailable as e:
            log.error("graph sink: %s; holding %s and retrying in %.1fs", e, what, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX_S)


async def write_with_backoff(runtime: StageRuntime, events: list[UnifiedEvent]) -> None:
    graph = runtime.graph
    assert graph is not None
    try:
        await _until_reachable(lambda: graph.write_events(events), what=f"{len(events)} events")
    except GraphQueryError as e:
        log.error("graph sink: the graph rejected a batch of %d (%s); writing them one by one", len(events), e)
        for event in events:
            try:
                await _until_reachable(lambda event=event: graph.write_events([event]), what=f"event {event.id}")
            except GraphQueryError as one:
                await runtime.dead_letter(stage=STAGE, reason=f"graph rejected the event: {one}",
                                          where=f"event {event.id}", payload=msgpack_encoder.encode(event),
                                          event_id=event.id)


async def dead_letter_match(runtime: StageRuntime, group: MatchGroup, reason: str) -> None:
    """Send one match and its predictions to `deadletter.sink`, as the InsightBatch they came in."""
    batch = InsightBatch(matches=[group.match] if group.match is not None else [], predictions=group.predictions)
    await runtime.dead_letter(stage=STAGE, reason=reason, where=f"match {group.match_id}",
                              payload=msgpack_encoder.encode(batch))


async def write_insights_with_backoff(runtime: StageRuntime, matches: list[PatternMatch],
                                      predictions: list[Prediction]) -> None:
    graph = runtime.graph
    assert graph is not None
    what = f"{len(matches)} matches and {len(predictions)} predictions"
    try:
        await _until_reachable(lambda: graph.write_insights(matches, predictions), what=what)
    except (GraphQueryError, InvalidInsight) as e:
        log.error("graph sink: the graph rejected %s (%s); writing them match by match", what, e)
        for group in by_match(matches, predictions):
            one_match = [group.match] if group.match is not None else []
            try:
                await _until_reachable(lambda one_match=one_match, group=group: graph.write_insights(
                    one_match, group.predictions), what=f"match {group.match_id}")
            except GraphQueryError as one:
                await dead_letter_match(runtime, group, f"graph rejected the match: {one}")
            except InvalidInsight as one:
                await dead_letter_match(runtime, group, f"invalid match: {one}")


async def _write(runtime: StageRuntime, events: list[UnifiedEvent], matches: list[PatternMatch],
                 predictions: list[Prediction]) -> None:
    """One write of what the sink took: the events, then the matches and predictions; whatever fails
    unexpectedly goes to the dead letters (the loop never stops)."""
    if events:
        try:
            await write_with_backoff(runtime, events)
        except Exception as e:  # never leave the loop: keep the events in the dead-letter stream
            log.exception("graph sink failed unexpectedly on %d events; dead-lettering them", len(events))
            for event in events:
                await runtime.dead_letter(stage=STAGE, reason=f"{type(e).__name__}: {e}",
                                          where=f"event {event.id}", payload=msgpack_encoder.encode(event),
                                          event_id=event.id)
    if matches or predictions:
        try:
            await write_insights_with_backoff(runtime, matches, predictions)
        except Exception as e:  # as above: keep them in the dead-letter stream
            log.exception("graph sink failed unexpectedly on %d matches; dead-lettering them", len(matches))
            for group in by_match(matches, predictions):
                await dead_letter_match(runtime, group, f"{type(e).__name__}: {e}")


def register_sink(app: faust.App, *, source: faust.TopicT, runtime: StageRuntime, max_records: int = 50,
                  within: float = 0.02) -> Any:
    """Up to `max_records` insights records a write, waiting at most `within` s for them to come:
    20 ms (50 before 2026-12-05) cut publish -> graph p50 from ~165 to ~140 ms at a steady 5,000
    events/s for the same CPU; a burst fills the batch before the wait ends."""
    async def sink(stream: faust.StreamT) -> None:
        await runtime.ready()
        bind_log(stage="sink")  # its batches gather records of every partition it holds
        async for values in stream.take(max_records, within=within):
            events: list[UnifiedEvent] = []
            matches: list[PatternMatch] = []
            predictions: list[Prediction] = []
            written: list[Progress] = []
            for value in values:
                if isinstance(value, Poison):
                    await runtime.dead_letter(stage=STAGE, reason=value.reason, where=value.where,
                                              payload=value.payload)
                else:
                    events.extend(value.events)
                    matches.extend(value.matches)
                    predictions.extend(value.predictions)
                    if value.progress is not None:
                        written.append(value.progress)
            with stage_span(runtime.tracer, STAGE, traced(events), limit=runtime.settings.otel.max_links):
                await _write(runtime, events, matches, predictions)
            runtime.stats.add(STAGE, len(events))
            if events:  # an event's time -> its write: publish -> graph where collectors stamp what they see
                oldest = min(e.timestamp for e in events)
                runtime.stats.time("graph_event_delay", time.time() - oldest.timestamp(), len(events))
            for prediction in predictions:
                runtime.stats.count("predictions", prediction.pattern)
            if written and runtime.progress is not None:  # what the graph now holds, in JetStream's terms
                for progress in written:
                    runtime.progress.written(progress.partition, progress.seq)
                runtime.progress.save_behind()

    return app.agent(source, name="tapio.sink")(sink)
