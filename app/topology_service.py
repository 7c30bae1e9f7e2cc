"""The topology service: keeps the graph's topology current and turns object edits into change events.

Fed by: the `objects` topic (one record per observed Kubernetes object, from the bridge), read
from its first offset at every start. Feeds: the graph (nodes and edges, via
`topology.writer`) and JetStream (`events.kubeapi.<ns>`: one change event per tracked edit,
which the dataflow then carries like any event).

State: an `ObjectIndex` and the last version of every object, in memory, rebuilt at start by
reading the topic from the beginning. In a real Kafka that topic is compacted by object key,
so the rebuild reads about one record per live object; this replaces a Faust table, whose
recovery Tansu breaks (shared/notes/stack.md). Replaying is harmless: graph writes MERGE,
and a change event's id is derived from the object's uid and resourceVersion, so JetStream's
duplicate window and the graph's write-once events drop repeats.
One service per worker group is enough (`worker.stages` includes `topology`); more just
write the same thing twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime
from typing import Any

import msgspec
import nats.errors
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from mode import Service

from app.bridge import OBJECT_CODEC
from app.jetstream import EventPublisher, PublishFailed
from app.runtime import Runtime
from app.topics import topic_name
from core.events import RawEvent, content_id
from core.kube.changes import REVERTED, ObjectChange, diff_objects, tracked_values
from core.log_context import bind as bind_log
from core.ports import GraphError, GraphQueryError
from core.settings import Settings
from topology.index import ObjectIndex
from topology.relations import TopologyChange
from topology.writer import apply_changes

log = logging.getLogger(__name__)
STAGE = "topology"
#: a batch slower than this is logged with where the time went (the graph, or JetStream)
SLOW_BATCH_S = 5.0


def change_event(change: ObjectChange, source: RawEvent, *, reverts: datetime | None = None) -> RawEvent:
    """Pure: the RawEvent recording one object edit (what changed, old -> new where not secret).
    `reverts`: when the version it goes back to was replaced (the edit it undoes)."""
    message = change.summary if reverts is None else \
        f"{change.summary} (reverted to its version before the edit of {reverts:%Y-%m-%d %H:%M:%S}Z)"
    return RawEvent(
        id=content_id("change", change.uid or f"{change.kind}:{change.namespace}/{change.name}",
                      change.resource_version),
        timestamp=source.timestamp, type="kubeapi", data=msgspec.json.encode(change),
        metadata={"kind": change.kind, "name": change.name, "namespace": change.namespace, "uid": change.uid,
                  "action": "CHANGE", "reason": "Changed" if reverts is None else REVERTED,
                  "message": message[:1000],
                  "resource_version": change.resource_version, "source": f"topology:{source.id}"},
        trace_id=source.trace_id, span_id=source.span_id)


def controlled(obj: dict) -> bool:
    """An object a controller owns (a Deployment's ReplicaSet, a CronJob's Job): its spec going back to
    an earlier value is the controller scaling it (an old ReplicaSet 2 -> 1 during a rollout), not an
    operator's remedy, so it is never told as a revert."""
    return any(ref.get("controller") for ref in (obj.get("metadata") or {}).get("ownerReferences") or []
               if isinstance(ref, dict))


class TopologyState:
    """Pure state machine: object events in, topology changes and change events out."""

    def __init__(self) -> None:
        self.index = ObjectIndex()
        self.last: dict[str, tuple[datetime, dict]] = {}
        # per object, what it tracked before its last edit and when that edit came: an edit back to it is a revert
        self.before: dict[str, tuple[datetime, dict[str, str]]] = {}

    def observe(self, event: RawEvent) -> tuple[TopologyChange, RawEvent | None]:
        """The topology change and change event one observation brings. An observation older
        than the last one of the same object (recordings replayed out of order) changes nothing."""
        obj = msgspec.json.decode(event.data)
        if not isinstance(obj, dict):
            raise ValueError("payload is not a Kubernetes object")
        key = event.metadata.get("uid") or content_id(event.metadata.get("kind", ""),
                                                       event.metadata.get("namespace", ""),
                                                       event.metadata.get("name", ""))
        seen = self.last.get(key)
        if seen is not None and event.timestamp < seen[0]:
            return TopologyChange(), None
        if event.metadata.get("action") == "DELETED":
            self.last.pop(key, None)
            self.before.pop(key, None)
            return self.index.remove(obj), None
        self.last[key] = (event.timestamp, obj)
        topology = self.index.add(obj)
        change = diff_objects(seen[1], obj) if seen is not None else None
        if change is None or seen is None:
            return topology, None
        earlier = self.before.get(key)
        reverts = earlier[0] if earlier is not None and earlier[1] == tracked_values(obj) \
            and not controlled(obj) else None
        self.before[key] = (event.timestamp, tracked_values(seen[1]) or {})
        return topology, change_event(change, event, reverts=reverts)


class TopologyService(Service):
    def __init__(self, settings: Settings, runtime: Runtime, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.runtime = runtime
        self.topology = TopologyState()
        self.topic = topic_name(settings.kafka, "objects")
        self.consumer: AIOKafkaConsumer | None = None  # made in on_start

    async def on_start(self) -> None:
        self.consumer = AIOKafkaConsumer(bootstrap_servers=self.settings.kafka.bootstrap_servers,
                                         enable_auto_commit=False, fetch_max_wait_ms=50,
                                         max_partition_fetch_bytes=16 * 1024 * 1024)
        await self.consumer.start()

    async def on_stop(self) -> None:
        if self.consumer is not None:  # a worker that failed before this started stops it too
            await self.consumer.stop()

    async def _assign(self) -> None:
        assert self.consumer is not None
        partition = TopicPartition(self.topic, 0)
        while not self.should_stop:  # the bridge creates the topic; wait for it
            if partition.topic in await self.consumer.topics():
                self.consumer.assign([partition])
                await self.consumer.seek_to_beginning(partition)
                return
            await asyncio.sleep(1.0)

    @Service.task
    async def _run(self) -> None:
        bind_log(stage="topology")
        await self.runtime.ready()
        await self._assign()
        publisher = EventPublisher(self.runtime.nc.jetstream(), self.settings.nats)
        assert self.consumer is not None
        while not self.should_stop:
            try:
                batches = await self.consumer.getmany(timeout_ms=200, max_records=2000)
            except KafkaError as e:
                log.error("topology: cannot read %s: %r; retrying", self.topic, e)
                await asyncio.sleep(1.0)
                continue
            records = [r for batch in batches.values() for r in batch]
            if records:
                await self._handle(records, publisher)

    async def _handle(self, records: list, publisher: EventPublisher) -> None:
        changes: list[TopologyChange] = []
        edits: list[RawEvent] = []
        for record in records:
            where = f"{record.topic}[{record.partition}]@{record.offset}"
            try:
                event = OBJECT_CODEC.decode(record.value)
                topology, edit = self.topology.observe(event)
            except Exception as e:  # a bad object must not stop the topology
                await self.runtime.dead_letter(stage=STAGE, reason=f"{type(e).__name__}: {e}", where=where,
                                               payload=record.value or b"")
                continue
            changes.append(topology)
            if edit is not None:
                edits.append(edit)
        started = time.monotonic()
        await self._write(changes, where=f"{self.topic}@{records[0].offset}-{records[-1].offset}")
        written = time.monotonic()
        if edits:
            await self._publish(edits, publisher)
        done = time.monotonic()
        if done - started >= SLOW_BATCH_S:
            log.warning("topology: %d object records (offsets %d-%d) took %.1f s: %.1f s writing the graph, %.1f s "
                        "publishing %d change events; change events lag the objects by as much", len(records),
                        records[0].offset, records[-1].offset, done - started, written - started, done - written,
                        len(edits))
        self.runtime.stats.add(STAGE, len(records))

    async def _publish(self, edits: list[RawEvent], publisher: EventPublisher) -> None:
        """Publish with backoff while JetStream does not acknowledge: the state has moved past these
        objects' versions, so a change event given up here would come back only at the next start
        (it did not, on a loaded machine: explain never heard of a ConfigMap put back). Repeats are
        dropped by their Nats-Msg-Id (the event id)."""
        delay = 0.5
        while not self.should_stop:
            try:
                await publisher.publish_many(edits)
                return
            except (PublishFailed, nats.errors.Error, OSError, TimeoutError) as e:
                log.error("topology: %d change events not acknowledged (%s); holding them and retrying in "
                          "%.1fs: check that nats-server is up and the EVENTS stream accepts them",
                          len(edits), e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 15.0)

    async def _write(self, changes: list[TopologyChange], *, where: str) -> None:
        """Write with backoff while the graph is down; a change the graph rejects is dead-lettered alone."""
        delay = 0.5
        while not self.should_stop:
            try:
                await apply_changes(self.runtime.graph, changes)
                return
            except GraphQueryError as e:
                log.error("topology: the graph rejected a batch (%s); writing changes one by one", e)
                for change in changes:
                    try:
                        await apply_changes(self.runtime.graph, [change])
                    except GraphQueryError as one:
                        await self.runtime.dead_letter(stage=STAGE, reason=f"graph rejected the change: {one}",
                                                       where=where, payload=msgspec.json.encode(change))
                return
            except GraphError as e:
                log.error("topology: graph write failed (%s); retrying in %.1fs", e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 15.0)
