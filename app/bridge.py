"""The bridge: JetStream `EVENTS` -> Kafka topic `raw`, acknowledged only after Kafka has the events.

Fed by: a durable JetStream pull consumer (`tapio-bridge`) on `events.>`, shared by every bridge
(each worker runs one, `tapio bridge` runs one alone through `run_alone`).
Feeds: the `raw` topic (one `RawBatch` record per partition per fetch), read by the enrich agent,
and the `objects` topic (one record per observed Kubernetes object, keyed by uid, one partition),
read by the topology service.

Delivery: at least once. A fetched message is acked to JetStream only after Kafka acked the
record holding it; a crash before that makes JetStream redeliver it after `ack_wait`, and the
graph sink's idempotent MERGE keeps the graph exactly-once. A message that is not a RawEvent
is sent to `deadletter.bridge` with the reason, then acked (it would never decode later).

Tansu notes (shared/notes/stack.md): the idempotent producer fails there (`InitProducerId`),
so it is off; the topic is created here with the configured partition count so that the
bridge and Faust agree on partitioning whoever starts first.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
import zlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime

import msgspec
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from nats.aio.msg import Msg
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from app.jetstream import RAW_CODEC, DeadLetterPublisher, PullBatches, connect, ensure_streams
from app.topics import ensure_topics, topic_name
from core.codec import Codec
from core.events import RawEvent, epoch_ms
from core.records import RawBatch
from core.settings import Settings

log = logging.getLogger(__name__)

RAW_BATCH_CODEC = Codec(RawBatch, "msgpack")
OBJECT_CODEC = Codec(RawEvent, "msgpack")
OBJECT_ACTIONS = frozenset({"SNAPSHOT", "ADDED", "MODIFIED", "DELETED"})


def is_object_event(event: RawEvent) -> bool:
    """A Kubernetes object as observed (not an Event about one): what the topology is built from."""
    return event.type == "kubeapi" and event.metadata.get("action") in OBJECT_ACTIONS


def object_key(event: RawEvent) -> str:
    """The objects topic's record key: one key per object, so a compacted topic keeps its latest state."""
    md = event.metadata
    return md.get("uid") or f"{md.get('kind', '')}:{md.get('namespace', '')}/{md.get('name', '')}"
_PROPAGATOR = TraceContextTextMapPropagator()


class BridgeError(Exception):
    """The bridge cannot reach Kafka or NATS; it retries, and this says which one to check."""


def partition_for(namespace: str, partitions: int) -> int:
    """Stable across processes and restarts (unlike hash()): all of a namespace on one partition."""
    return zlib.crc32(namespace.encode()) % partitions


def traceparent(event: RawEvent) -> str | None:
    """W3C traceparent for the event's trace context, or None when it has none or it is malformed."""
    if not event.trace_id:
        return None
    try:
        ctx = SpanContext(trace_id=int(event.trace_id, 16), span_id=int(event.span_id or "1", 16),
                          is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    except ValueError:
        return None
    if not ctx.is_valid:
        return None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=set_span_in_context(NonRecordingSpan(ctx)))
    return carrier.get("traceparent")


class Decoded(msgspec.Struct):
    events: dict[int, list[RawEvent]]
    poison: list[tuple[Msg, str]]
    marks: list[RawEvent] = []  # end-of-input markers: they move event time, they are not events


END_MARKER_TYPE = "control"
END_MARKER_ACTION = "END_OF_INPUT"


def end_marker(at: datetime, *, subject_namespace: str = "_control") -> RawEvent:
    """A message that says "the input ends here; event time is now `at`": an isolated run (a
    replayed range, `tapio analyze`) publishes it after its last event so the last windows close
    at once instead of waiting for the idle advance. The bridge moves its watermark and drops it."""
    return RawEvent(id=f"end-of-input-{epoch_ms(at)}", timestamp=at, type=END_MARKER_TYPE, data=b"",
                    metadata={"action": END_MARKER_ACTION, "namespace": subject_namespace})


def is_end_marker(event: RawEvent) -> bool:
    return event.type == END_MARKER_TYPE and event.metadata.get("action") == END_MARKER_ACTION


def decode_messages(msgs: Sequence[Msg], partitions: int) -> Decoded:
    """Pure: split fetched messages into RawEvents grouped by partition, and poison with its reason."""
    groups: dict[int, list[RawEvent]] = defaultdict(list)
    poison: list[tuple[Msg, str]] = []
    marks: list[RawEvent] = []
    for msg in msgs:
        try:
            event = RAW_CODEC.decode(msg.data)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            poison.append((msg, f"not a RawEvent: {e}"))
            continue
        if is_end_marker(event):
            marks.append(event)
            continue
        groups[partition_for(event.namespace, partitions)].append(event)
    return Decoded(events=dict(groups), poison=poison, marks=marks)


def batch_headers(events: Sequence[RawEvent]) -> list[tuple[str, bytes]]:
    headers = [("tapio-events", str(len(events)).encode()),
               ("tapio-event-time-min", str(epoch_ms(min(e.timestamp for e in events))).encode())]
    seen: set[str] = set()
    for event in events:
        tp = traceparent(event)
        if tp and tp not in seen:
            seen.add(tp)
            headers.append(("traceparent", tp.encode()))
    return headers


class Watermark:
    """The event-time watermark the bridge stamps on every batch: the newest event time it has bridged.

    Every round sends a batch to every partition (an empty one where the round had no events), so
    each partition learns how far event time has come even when its namespaces are quiet. Snapshots
    (objects read from a list) carry no moment of their own and do not move it. When nothing
    arrives for `idle_advance_s`, the stamp moves on with the wall clock (once a second), so the
    last windows of a quiet stream still close; a replay at full speed is never idle that long.
    The allowed lateness is subtracted by the windows, not here.
    """

    def __init__(self, *, idle_advance_s: float) -> None:
        self.newest = 0  # epoch ms
        self.idle_advance_s = idle_advance_s
        self._last_event = 0.0  # monotonic time of the last event
        self._last_idle = 0.0

    def observe(self, events: Iterable[RawEvent], now: float) -> int:
        for event in events:
            if event.metadata.get("action") != "SNAPSHOT":
                self.newest = max(self.newest, epoch_ms(event.timestamp))
        self._last_event = now
        return self.newest

    def idle_stamp(self, now: float) -> int | None:
        """The stamp to send while idle, or None (not idle long enough, or sent less than 1 s ago)."""
        idle = now - self._last_event
        if not self.newest or idle < self.idle_advance_s or now - self._last_idle < 1.0:
            return None
        self._last_idle = now
        return self.newest + round(idle * 1000)


class Bridge:
    """Pulls from JetStream, produces to Kafka, acks JetStream. `run()` until `stop()`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topic = topic_name(settings.kafka, "raw")
        self.objects_topic = topic_name(settings.kafka, "objects")
        self.partitions = settings.kafka.partitions
        self._stopping = asyncio.Event()
        self.watermark = Watermark(idle_advance_s=settings.match.idle_advance_s)
        self.bridged = 0
        self.dead_lettered = 0
        self._backoff = 0.5

    async def start(self) -> None:
        ns = self.settings.nats
        self.nc = await connect(ns, name="tapio-bridge")
        self.js = self.nc.jetstream()
        await ensure_streams(self.js, ns)
        self.deadletters = DeadLetterPublisher(self.js, ns)
        self.pull = PullBatches(self.js, ns, batch=ns.bridge_fetch, expires_s=ns.bridge_linger_s)
        await self.pull.start()
        try:
            await ensure_topics(self.settings.kafka)
            self.producer = AIOKafkaProducer(
                bootstrap_servers=self.settings.kafka.bootstrap_servers, acks="all",
                enable_idempotence=False, linger_ms=5, max_request_size=16 * 1024 * 1024,
                compression_type=None, request_timeout_ms=30000)
            await self.producer.start()
        except KafkaError as e:
            await self.nc.close()
            raise BridgeError(f"cannot reach Kafka at {self.settings.kafka.bootstrap_servers}: {e!r}; "
                              f"start it (`tapio up`) or set kafka.bootstrap_servers") from e
        log.info("bridge: %s.> (durable %s) -> kafka topic %s (%d partitions)",
                 ns.subject_prefix, ns.bridge_durable, self.topic, self.partitions)

    async def stop(self) -> None:
        self._stopping.set()

    async def close(self) -> None:
        await self.producer.stop()
        await self.pull.close()
        await self.nc.flush(timeout=5)  # acks are publishes: make sure they left
        await self.nc.close()

    async def step(self) -> int:
        """One batch -> produce -> ack round. Returns the number of messages handled."""
        msgs = await self.pull.next_batch()  # full, or what came within the linger time
        if not msgs:
            idle = self.watermark.idle_stamp(time.monotonic())
            if idle is not None:
                await self._heartbeat(idle, skip=())
            return 0
        decoded = decode_messages(msgs, self.partitions)
        stamp = self.watermark.observe([*(e for events in decoded.events.values() for e in events), *decoded.marks],
                                       time.monotonic())
        for msg, reason in decoded.poison:
            meta = msg.metadata
            await self.deadletters.send(stage="bridge", reason=reason, payload=msg.data,
                                        where=f"{msg.subject} stream_seq={meta.sequence.stream}")
            self.dead_lettered += 1
        futures = []
        for partition, events in decoded.events.items():
            value = RAW_BATCH_CODEC.encode(RawBatch(events=events, watermark=stamp))
            futures.append(await self.producer.send(
                self.topic, value=value, partition=partition,
                timestamp_ms=epoch_ms(max(e.timestamp for e in events)), headers=batch_headers(events)))
            for event in events:  # object observations also feed the topology, one record per object
                if is_object_event(event):
                    futures.append(await self.producer.send(
                        self.objects_topic, value=OBJECT_CODEC.encode(event), partition=0,
                        key=object_key(event).encode(), timestamp_ms=epoch_ms(event.timestamp)))
        futures.extend(await self._send_heartbeats(stamp, skip=decoded.events.keys()))
        try:
            await asyncio.gather(*futures)
        except KafkaError as e:
            # Nothing is acked: JetStream redelivers the whole fetch after a short delay.
            for msg in msgs:
                await msg.nak(delay=1.0)
            raise BridgeError(f"Kafka did not take {len(msgs)} events: {e!r}; they will be redelivered") from e
        for msg in msgs:
            await msg.ack()
        self.bridged += sum(len(v) for v in decoded.events.values())
        return len(msgs)

    async def _send_heartbeats(self, stamp: int, *, skip: Iterable[int]) -> list[asyncio.Future]:
        """An empty batch carrying the watermark to every partition this round had no events for."""
        if not stamp:
            return []
        value = RAW_BATCH_CODEC.encode(RawBatch(events=[], watermark=stamp))
        skipped = set(skip)
        return [await self.producer.send(self.topic, value=value, partition=p)
                for p in range(self.partitions) if p not in skipped]

    async def _heartbeat(self, stamp: int, *, skip: Iterable[int]) -> None:
        try:
            await asyncio.gather(*await self._send_heartbeats(stamp, skip=skip))
        except KafkaError as e:
            log.warning("bridge: watermark heartbeat not sent (%r); the next one carries it", e)

    async def step_logged(self) -> int:
        """`step`, but a failure is logged and waited out with backoff instead of raised."""
        try:
            handled = await self.step()
        except Exception as e:  # the bridge never dies: unacked messages come back from JetStream
            log.error("bridge: %r; retrying in %.1fs", e, self._backoff)
            await asyncio.sleep(self._backoff)
            self._backoff = min(self._backoff * 2, 10.0)
            return 0
        self._backoff = 0.5
        return handled

    async def run(self) -> None:
        """Standalone mode (`tapio bridge`): pump until `stop()`."""
        while not self._stopping.is_set():
            await self.step_logged()


async def run_alone(settings: Settings) -> None:
    """`tapio bridge`: one bridge in this process, pumping until SIGINT or SIGTERM."""
    bridge = Bridge(settings)
    await bridge.start()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: asyncio.ensure_future(bridge.stop()))
    try:
        await bridge.run()
    finally:
        await bridge.close()
        log.info("bridge stopped after %d events", bridge.bridged)
