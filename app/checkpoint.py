"""What the graph holds, in JetStream's terms, and which Kafka the dataflow's state refers to.

Kafka is the dataflow's buffer, JetStream its durable log. When Kafka loses data (the embedded
Tansu keeps nothing on disk: a restart empties it; in production, a topic deleted by hand), the
events the bridge had acknowledged to JetStream but the graph had not yet written are gone from
Kafka. Two records in a NATS key-value bucket (`nats.progress_bucket`) let the bridge bring them
back:

- `sink.p<N>`: the highest JetStream stream sequence among the events of raw partition N that the
  graph sink has written (every batch carries its `core.records.Progress`, and so do the bridge's
  empty heartbeat batches, so a quiet partition moves on too). Partitions keep their order through
  every stage, so every event of partition N up to that sequence is in the graph.
- `windows.q<Q>.p<N>`: the same for the hits of raw partition N that the windows stage of hits
  partition Q holds in its table: a hit is not in the graph, so an event in the graph whose hits
  were still in Kafka would miss its windows.
- `lowest_mark` is the minimum over all of them: every event at or below it is in the graph
  and in the windows.
- `kafka.epoch`: the identity of the Kafka data the dataflow has been using (`app.kafka_epoch`).
  A bridge that finds another epoch on the broker knows the broker lost what it held.

Fed by: the graph sink and the windows stage (`StageProgress`), the bridge (`record_epoch`).
Feeds: the bridge's recovery.
"""

from __future__ import annotations

import asyncio
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


def windows_key(hits_partition: int, partition: int) -> str:
    return f"windows.q{hits_partition}.p{partition}"


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


async def lowest_mark(kv: KeyValue, partitions: int) -> tuple[int, str]:
    """Pure read: the stream sequence at or below which every event is in the graph and its hits in
    the windows (0: none known), and the mark that holds it there."""
    keys = [sink_key(p) for p in range(partitions)]
    keys += [windows_key(q, p) for q in range(partitions) for p in range(partitions)]
    marks = [((await _get_int(kv, key)) or 0, key) for key in keys]
    return min(marks) if marks else (0, "")


async def recorded_epoch(kv: KeyValue) -> str | None:
    try:
        entry = await kv.get(EPOCH_KEY)
    except nats.js.errors.KeyNotFoundError:
        return None
    return (entry.value or b"").decode() or None


async def record_epoch(kv: KeyValue, epoch: str) -> None:
    await kv.put(EPOCH_KEY, epoch.encode())


class StageProgress:
    """The newest sequence per raw partition that the graph sink wrote (`written`) and that the
    windows stage holds per hits partition (`absorbed`), saved at most once per `every_s` (a sequence
    saved late only makes a recovery bridge a little more again)."""

    def __init__(self, kv: KeyValue, *, every_s: float = 1.0) -> None:
        self.kv = kv
        self.every_s = every_s
        self.newest: dict[str, int] = {}
        self._saved: dict[str, int] = {}
        self._last = 0.0
        self._saving: asyncio.Future | None = None  # a save_behind() running

    def _mark(self, key: str, seq: int) -> None:
        if seq > self.newest.get(key, 0):
            self.newest[key] = seq

    def written(self, partition: int, seq: int) -> None:
        self._mark(sink_key(partition), seq)

    def absorbed(self, hits_partition: int, partition: int, seq: int) -> None:
        self._mark(windows_key(hits_partition, partition), seq)

    async def save(self, *, force: bool = False) -> None:
        """Save what changed, if `every_s` passed since the last save (`force`: now), and wait for it."""
        if self._saving is not None:  # one save at a time: a save_behind() running ends first
            await asyncio.wait([self._saving])
        await self._save(force=force)

    def _due(self) -> bool:
        return time.monotonic() - self._last >= self.every_s

    async def _save(self, *, force: bool) -> None:
        if not force and not self._due():
            return
        self._last = time.monotonic()
        for key, seq in list(self.newest.items()):
            if self._saved.get(key) != seq:
                await self.kv.put(key, str(seq).encode())
                self._saved[key] = seq

    def save_behind(self) -> None:
        """`save()` in a task of its own, for the stages: their next batch does not wait for the
        bucket's answers (a save is one round trip to NATS per changed key, each answer taken at the
        event loop's next turn: ~35 ms of the windows agent once a second at 5,000 events/s, which the
        hits behind it waited for; benchmarks/README.md). A save that fails is logged and tried again
        at the next one; as a late one, it only makes a recovery bridge a little more again."""
        if self._saving is not None or not self._due():
            return
        self._saving = asyncio.ensure_future(self._save(force=False))
        self._saving.add_done_callback(self._saved_behind)

    def _saved_behind(self, task: asyncio.Future) -> None:
        self._saving = None
        if not task.cancelled() and task.exception() is not None:
            log.warning("progress bucket: saving the stages' progress failed (%s); trying again at the next "
                        "save. Until then a recovery bridge would start from an older mark.", task.exception())
