"""What the graph holds, in JetStream's terms, and which Kafka the dataflow's state refers to.

Kafka is the dataflow's buffer, JetStream its durable log. When Kafka loses data (the embedded
Tansu keeps nothing on disk: a restart empties it; in production, a topic deleted by hand), the
events the bridge had acknowledged to JetStream but the graph had not yet written are gone from
Kafka. Two records in a NATS key-value bucket (`nats.progress_bucket`) let the bridge bring them
back:

- `sink.p<N>`: the highest JetStream stream sequence among the events of raw partition N that the
  graph sink has written (every batch carries its `core.records.Progress`). Partitions keep their
  order through every stage, so every event of partition N up to that sequence is in the graph.
  `graph_checkpoint` is the minimum over all partitions: every event at or below it is in the graph.
- `kafka.epoch`: the identity of the Kafka data the dataflow has been using (`app.kafka_epoch`).
  A bridge that finds another epoch on the broker knows the broker lost what it held.

Fed by: the graph sink (`SinkProgress`), the bridge (`record_epoch`). Feeds: the bridge's recovery.
"""

from __future__ import annotations

import logging
import time

import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.kv import KeyValue

from core.settings import NatsSettings

log = logging.getLogger(__name__)

EPOCH_KEY = "kafka.epoch"


def sink_key(partition: int) -> str:
    return f"sink.p{partition}"


async def progress_bucket(js: JetStreamContext, settings: NatsSettings) -> KeyValue:
    """The bucket, created on first use (file storage: it outlives a nats-server restart)."""
    try:
        return await js.key_value(settings.progress_bucket)
    except (nats.js.errors.BucketNotFoundError, nats.js.errors.NotFoundError):
        return await js.create_key_value(KeyValueConfig(bucket=settings.progress_bucket, history=1,
                                                        storage=StorageType.FILE,
                                                        replicas=settings.replicas))


async def _get_int(kv: KeyValue, key: str) -> int | None:
    try:
        entry = await kv.get(key)
    except nats.js.errors.KeyNotFoundError:
        return None
    try:
        return int(entry.value or b"")
    except ValueError:
        log.warning("progress bucket: %s holds %r, not a sequence; ignoring it", key, entry.value)
        return None


async def graph_checkpoint(kv: KeyValue, partitions: int) -> int:
    """Pure read: the stream sequence at or below which every event is in the graph (0: none known)."""
    marks = [await _get_int(kv, sink_key(p)) for p in range(partitions)]
    return min((m or 0) for m in marks) if marks else 0


async def recorded_epoch(kv: KeyValue) -> str | None:
    try:
        entry = await kv.get(EPOCH_KEY)
    except nats.js.errors.KeyNotFoundError:
        return None
    return (entry.value or b"").decode() or None


async def record_epoch(kv: KeyValue, epoch: str) -> None:
    await kv.put(EPOCH_KEY, epoch.encode())


class SinkProgress:
    """The graph sink's newest written sequence per raw partition, saved at most once per
    `every_s` (a sequence saved late only makes a recovery bridge a little more again)."""

    def __init__(self, kv: KeyValue, *, every_s: float = 1.0) -> None:
        self.kv = kv
        self.every_s = every_s
        self.newest: dict[int, int] = {}
        self._saved: dict[int, int] = {}
        self._last = 0.0

    def written(self, partition: int, seq: int) -> None:
        if seq > self.newest.get(partition, 0):
            self.newest[partition] = seq

    async def save(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.every_s:
            return
        self._last = now
        for partition, seq in list(self.newest.items()):
            if self._saved.get(partition) != seq:
                await self.kv.put(sink_key(partition), str(seq).encode())
                self._saved[partition] = seq
