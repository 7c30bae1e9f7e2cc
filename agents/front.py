"""The front of the dataflow, chained in one agent: enrich -> normalize -> select, on topic `raw`.

Fed by: topic `raw` (RawBatch, from the bridge). Feeds: topic `insights` (the unified events, for
the graph sink) and topic `hits` (keyed by pattern and scope, for the windows).

Kafka Streams and Flink chain operators that need no repartitioning between them: a record passes
from one to the next as a function call, not through a topic. enrich and normalize are stateless
and keep their input's partition; select keeps its membership records per raw partition (one
namespace stays on one partition). Between them a topic cost, per event, a MessagePack encode and
decode and the broker's copy, and bought nothing: no key changes, no stage scales apart. The first
topic is `hits`, where the key changes. Each stage stays its own module and pure typed function
(`enrich_stage`, `normalize_stage`, `agents.match.select_events`), tested on its own; `front_batch`
composes them and the agent is a thin shell around it.

A worker runs the chain when it runs all three stages (the default). Where `worker.stages` splits
them, each runs on its own topics (`enriched`, `unified`) as before (app.faust_app).

Dead letters are the same as with a topic between the stages: each reject names the stage that
made it (`enrich`, `normalize`, `match`), the batch's `topic[partition]@offset` and the event; a
stage that raises on the whole batch (a bug) dead-letters the raw batch under its name.
"""

from __future__ import annotations

import logging
import time
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any

import faust
import msgspec

from agents.catalog import Catalog
from agents.enrich import enrich_stage
from agents.hits import Selector
from agents.match import TableStore, dead_letter_selected, select_events, send_selected
from agents.normalize import normalize_stage
from agents.stage import Rejected, dead_letter_rejects, encode_each
from core.codec import Poison, where_of
from core.log_context import bind as bind_log
from core.ports import StageRuntime
from core.records import Hit, Progress, RawBatch
from core.trace_links import batch_events, stage_span, traced

log = logging.getLogger(__name__)


class StageFailed(Exception):
    """A stage of the chain raised on the whole batch: `stage` names it."""

    def __init__(self, stage: str, cause: BaseException) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.stage = stage


@dataclass
class FrontResult:
    """What one raw batch became: the events for the graph (MessagePack each), the hits by hits
    partition, the rejects of each stage, and how many events each stage passed on."""

    events: list[bytes]
    hits: dict[int, list[Hit]]
    rejected: list[tuple[str, Rejected]] = field(default_factory=list)  # (stage, reject)
    passed: dict[str, int] = field(default_factory=dict)  # stage -> events it passed on
    watermark: int = 0
    progress: Progress | None = None


def front_batch(batch: RawBatch, *, selector: Selector, store: MutableMapping, partitions: int) -> FrontResult:
    """Pure over `store` (select's membership records): the raw batch through the three stages."""
    try:
        enriched, enrich_rejects = enrich_stage(batch)
    except Exception as e:
        raise StageFailed("enrich", e) from e
    try:
        unified, normalize_rejects = normalize_stage(enriched)
        encoded, unencodable = encode_each(list(unified.events))
    except Exception as e:
        raise StageFailed("normalize", e) from e
    # a hit carries its event's bytes as msgspec.Raw, written into the hits record as they are
    raws = [(event, msgspec.Raw(data)) for event, data in encoded]
    try:
        by_partition, select_rejects = select_events(raws, selector, store, partitions)  # type: ignore[arg-type]
    except Exception as e:
        raise StageFailed("match", e) from e
    rejected: list[tuple[str, Rejected]] = [("enrich", r) for r in enrich_rejects]
    rejected += [("normalize", r) for r in [*normalize_rejects, *unencodable]]
    rejected += [("match", r) for r in select_rejects]
    return FrontResult(events=[data for _, data in encoded], hits=by_partition, rejected=rejected,
                       passed={"enrich": len(enriched.events), "normalize": len(encoded)},
                       watermark=batch.watermark, progress=batch.progress)


def register_front(app: faust.App, *, source: faust.TopicT, insights: faust.TopicT, hits: faust.TopicT,
                   catalog: Catalog, runtime: StageRuntime, store: TableStore) -> Any:
    partitions = runtime.settings.kafka.partitions

    async def front(stream: faust.StreamT) -> None:
        await runtime.ready()
        async for event in stream.events():
            message, value = event.message, event.value
            bind_log(stage="front", partition=message.partition, offset=message.offset)
            where = where_of(message)
            if isinstance(value, Poison):
                await runtime.dead_letter(stage="enrich", reason=value.reason, where=value.where, payload=value.payload)
                continue
            selected_at = time.time()
            with stage_span(runtime.tracer, "front", traced(batch_events(value)), limit=runtime.settings.otel.max_links,
                            partition=message.partition, offset=message.offset):
                try:
                    out = front_batch(value, selector=catalog.selector, store=store, partitions=partitions)
                except StageFailed as e:  # a bug or a case nobody foresaw: keep the batch, keep going
                    log.exception("%s failed on %s; the batch is dead-lettered", e.stage, where)
                    await runtime.dead_letter(stage=e.stage, reason=str(e), where=where,
                                              payload=message.value or b"")
                    continue
                for stage, reject in out.rejected:
                    if stage == "match":  # the event goes on to the graph; its matching is dead-lettered (and logged)
                        await dead_letter_selected(runtime, [reject], where)  # type: ignore[list-item]
                    else:
                        await dead_letter_rejects(runtime, stage, where, [reject])
                await send_selected(runtime, partition=message.partition, insights=insights, hits=hits,
                                    events=out.events, by_partition=out.hits, watermark=out.watermark,
                                    progress=out.progress, selected_at=selected_at)
            for stage, n in out.passed.items():
                runtime.stats.add(stage, n)

    return app.agent(source, name="tapio.front")(front)

