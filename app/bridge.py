"""The bridge: JetStream `EVENTS` -> Kafka topic `raw`, acknowledged only after Kafka has the events.

Fed by: a durable JetStream pull consumer (`tapio-bridge`) on `events.>`, shared by every bridge
(each worker runs one, `tapio bridge` runs one alone through `run_alone`).
Feeds: the `raw` topic (one `RawBatch` record per partition per fetch), read by the enrich agent,
and the `objects` topic (one record per observed Kubernetes object, keyed by uid, one partition),
read by the topology service.

Delivery: at least once. A fetched message is acked to JetStream only after Kafka acked every
record holding it; a crash before that makes JetStream redeliver it after `ack_wait`, and the
graph sink's idempotent MERGE keeps the graph exactly-once.

One bad message never holds the others back: each is judged alone (`check_message`). One the
bridge cannot use (not a RawEvent: invalid UTF-8 or nesting too deep in its envelope; larger than
`nats.bridge_max_event_bytes`; stamped more than `match.max_ahead_s` ahead of the wall clock, the
event-time guard of `agents.partition_windows`) is sent to `deadletter.bridge` with the reason and
its stream sequence, then terminated: JetStream never delivers it again. Kafka's answer is taken
per record: the messages of the records it took are acked, the others are nak'ed and come back;
one whose record Kafka refuses for what it is (`REFUSALS`: too large, invalid) is dead-lettered
once it has been delivered `nats.bridge_max_deliver` times (`give_up`), while Kafka being away
is waited out, however long, because nothing is wrong with the message.

When Kafka loses data (`app.kafka_epoch`: the embedded Tansu restarted empty, a topic deleted), what
the bridge had acknowledged to JetStream but the graph had not written is gone from Kafka. The
bridge notices it before it produces again (it checks the broker's epoch every
`kafka.epoch_check_s` and after every Kafka error) and asks for the topics to be rebuilt as a
recycle (`app.recycle`): once every worker is off them, the topics are recreated and every message
after the graph's checkpoint (`app.checkpoint`) up to the last one the durable consumer delivered
is bridged again from JetStream (`recover`). The graph's MERGE and the windows' per-event counting
make what is bridged twice count once.

The embedded Tansu keeps every record in memory: a bridge that has bridged
`kafka.recycle_after_mib` asks for the topics to be recycled, and every bridge pauses while that
runs (`app.recycle`): the same recovery, on purpose.

Tansu notes (shared/notes/stack.md): the idempotent producer fails there (`InitProducerId`),
so it is off; the topic is created here with the configured partition count so that the
bridge and Faust agree on partitioning whoever starts first.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
import uuid
import zlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import msgspec
import nats.errors
import nats.js.errors
from aiohttp import web
from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    CorruptRecordException,
    InvalidMessageError,
    InvalidTimestampError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordTooLargeError,
)
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from opentelemetry.trace import NonRecordingSpan, NoOpTracer, Tracer, set_span_in_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from agents.partition_windows import beyond_wall_clock
from app import recycle
from app.checkpoint import lowest_mark, progress_bucket, record_epoch, recorded_epoch
from app.jetstream import RAW_CODEC, DeadLetterPublisher, PullBatches, connect, ensure_streams, events_in
from app.kafka_epoch import broker_epoch
from app.topics import ensure_topics, faust_topics, recreate_topics, topic_name
from app.tracing import tracer_for
from core.codec import Codec, utf8_problem
from core.events import RawEvent, epoch_ms, is_object_event
from core.log_context import bind as bind_log
from core.records import Progress, RawBatch, byte_slices
from core.settings import Settings
from core.stats import StageStats
from core.trace_links import span_context, stage_span, traced

log = logging.getLogger(__name__)

RAW_BATCH_CODEC = Codec(RawBatch, "msgpack")
OBJECT_CODEC = Codec(RawEvent, "msgpack")
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
    ctx = span_context(event.trace_id, event.span_id)
    if ctx is None:
        return None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=set_span_in_context(NonRecordingSpan(ctx)))
    return carrier.get("traceparent")


class Decoded(msgspec.Struct):
    """Fetched messages, sorted: the events of each partition (with, in the same order, the message
    each came in and its MessagePack), the messages the bridge cannot use with the reason, and the
    end-of-input markers."""

    events: dict[int, list[RawEvent]]
    poison: list[tuple[Msg, str]]  # whole messages: dead-lettered and terminated
    marks: list[RawEvent] = []  # end-of-input markers: they move event time, they are not events
    msgs: dict[int, list[Msg]] = {}
    wire: dict[int, list[bytes]] = {}
    #: single events of a batch message the bridge cannot use: (message, index in it, its JSON, why);
    #: each is dead-lettered alone, the batch's other events go on and the message is acknowledged
    poison_items: list[tuple[Msg, int, bytes, str]] = []


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    """What the bridge takes: `max_event_bytes` per message, event times up to `max_ahead_ms` ahead
    of the wall clock `wall_ms` (None: no time guard)."""

    max_event_bytes: int = 1024 * 1024
    wall_ms: int | None = None
    max_ahead_ms: int = 300_000


END_MARKER_TYPE = "control"
END_MARKER_ACTION = "END_OF_INPUT"


def end_marker(at: datetime, *, subject_namespace: str = "_control") -> RawEvent:
    """A message that says "the input ends here; event time is now `at`": an isolated run (a
    replayed range, `tapio analyze`) publishes it after its last event so the last windows close
    at once instead of waiting for the idle advance. The bridge moves its watermark and drops it.
    Its id is new each time: a second run of the same isolated dataflow (the same input analysed again)
    finds its events already in the stream, and a marker JetStream dropped as a duplicate of the first
    run's would leave it waiting for event time that never comes."""
    return RawEvent(id=f"end-of-input-{epoch_ms(at)}-{uuid.uuid4().hex[:12]}", timestamp=at, type=END_MARKER_TYPE,
                    data=b"",
                    metadata={"action": END_MARKER_ACTION, "namespace": subject_namespace})


def is_end_marker(event: RawEvent) -> bool:
    return event.type == END_MARKER_TYPE and event.metadata.get("action") == END_MARKER_ACTION


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def check_message(data: bytes, limits: Limits) -> tuple[RawEvent, bytes] | str:
    """Pure: one message's RawEvent and its MessagePack for the raw topic, or why the bridge
    cannot use it (the reason says what was wrong and, for the envelope, where). Never raises:
    one message is one decision, whatever its bytes."""
    if len(data) > limits.max_event_bytes:
        return (f"oversized: {len(data)} bytes, over nats.bridge_max_event_bytes "
                f"({limits.max_event_bytes})")
    try:
        event = RAW_CODEC.decode(data)
    except UnicodeDecodeError as e:
        return f"not a RawEvent: {utf8_problem(e)} of the envelope"
    except RecursionError:
        return "not a RawEvent: nested too deep"
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        return f"not a RawEvent: {e}"
    except Exception as e:  # a case nobody foresaw: this message only
        return f"not a RawEvent: {type(e).__name__}: {e}"
    at = epoch_ms(event.timestamp)
    if limits.wall_ms is not None and beyond_wall_clock(at, limits.wall_ms, limits.max_ahead_ms):
        ahead = (at - limits.wall_ms) / 3_600_000
        return (f"event time {_iso(event.timestamp)} is {ahead:.1f} h ahead of the wall clock "
                f"(more than match.max_ahead_s = {limits.max_ahead_ms / 1000:g} s): it would move event time "
                f"past every event still to come")
    try:
        wire = OBJECT_CODEC.encode(event)
    except Exception as e:  # OverflowError, UnicodeEncodeError...
        return f"cannot be encoded for Kafka: {type(e).__name__}: {e}"
    return event, wire


def decode_messages(msgs: Sequence[Msg], partitions: int, limits: Limits | None = None) -> Decoded:
    """Pure: split fetched messages into RawEvents grouped by partition, and poison with its reason.

    Each event is judged alone (`check_message`): one that is not a RawEvent, too large, stamped
    too far ahead (the event-time guard) or not encodable is poison; the others go on. A message
    is one event or a batch of them (`app.jetstream.events_in`): a bad event of a batch is poison
    alone (`poison_items`), a batch whose array itself is broken is poison whole."""
    limits = limits or Limits()
    groups: dict[int, list[RawEvent]] = defaultdict(list)
    sources: dict[int, list[Msg]] = defaultdict(list)
    wires: dict[int, list[bytes]] = defaultdict(list)
    poison: list[tuple[Msg, str]] = []
    items: list[tuple[Msg, int, bytes, str]] = []
    marks: list[RawEvent] = []
    for msg in msgs:
        try:
            parts = events_in(msg.data)  # each checked for size and content below
        except Exception as e:  # DecodeError, RecursionError, UnicodeDecodeError: this message only
            poison.append((msg, f"not a batch of RawEvents: {type(e).__name__}: {e}"))
            continue
        for index, part in enumerate(parts):
            checked = check_message(part, limits)
            if isinstance(checked, str):
                if len(parts) == 1:
                    poison.append((msg, checked))
                else:
                    items.append((msg, index, part, checked))
                continue
            event, wire = checked
            if is_end_marker(event):
                marks.append(event)
                continue
            partition = partition_for(event.namespace, partitions)
            groups[partition].append(event)
            sources[partition].append(msg)
            wires[partition].append(wire)
    return Decoded(events=dict(groups), poison=poison, marks=marks, msgs=dict(sources), wire=dict(wires),
                   poison_items=items)


#: a Kafka record holds at most this much of a partition's events (more go in the next record)
RECORD_BYTES = 8 * 1024 * 1024


def chunks(wire: Sequence[bytes], limit: int = RECORD_BYTES) -> list[tuple[int, int]]:
    """Pure: (start, end) slices of consecutive events whose MessagePack adds up to at most `limit`
    (an event alone is one slice, whatever its size)."""
    return byte_slices([len(data) for data in wire], limit)


class _RawBatchWire(msgspec.Struct, frozen=True, kw_only=True, gc=False, omit_defaults=True):
    """A RawBatch on the wire, its events already MessagePack: encodes to what RawBatch decodes."""

    events: list[msgspec.Raw]
    watermark: int = 0
    progress: Progress | None = None


#: errors with which Kafka refuses a record for what it is: trying again gives the same answer
REFUSALS: tuple[type[Exception], ...] = (MessageSizeTooLargeError, RecordTooLargeError, InvalidMessageError,
                                        CorruptRecordException, InvalidTimestampError)


def give_up(error: BaseException, delivered: int, max_deliver: int) -> bool:
    """Pure: a message whose record Kafka refused is dead-lettered once it has been delivered
    `max_deliver` times, when the refusal is about the record (REFUSALS). Kafka being unreachable,
    timing out or electing a leader is about Kafka: the message waits, however long, and nothing
    is dead-lettered (it is not lost either: JetStream redelivers it)."""
    return isinstance(error, REFUSALS) and delivered >= max_deliver


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
    arrives for `idle_advance_s` (JetStream saying it has nothing more: not while it is away), the
    stamp moves on with the wall clock (once a second), so the last windows of a quiet stream still
    close; a replay at full speed is never idle that long.
    The allowed lateness is subtracted by the windows, not here.
    """

    def __init__(self, *, idle_advance_s: float) -> None:
        self.newest = 0  # epoch ms
        self.idle_advance_s = idle_advance_s
        self._last_event = 0.0  # monotonic time of the last event
        self._last_idle = 0.0

    def observe(self, events: Iterable[RawEvent], now: float, *, wall_ms: int | None = None,
                max_ahead_ms: int = 0) -> int:
        """The newest event time so far. With the wall clock (`wall_ms`), an event time beyond the
        guard (`agents.partition_windows.beyond_wall_clock`) is not taken: `decode_messages` has
        already dead-lettered such events, this keeps the rule where the watermark is made."""
        for event in events:
            if event.metadata.get("action") != "SNAPSHOT":
                at = epoch_ms(event.timestamp)
                if wall_ms is None or not beyond_wall_clock(at, wall_ms, max_ahead_ms):
                    self.newest = max(self.newest, at)
        self._last_event = now
        return self.newest

    def idle_stamp(self, now: float, *, answered: bool = True) -> int | None:
        """The stamp to send after a round without events, or None (not idle long enough, or sent less
        than 1 s ago). `answered`: JetStream ended the round itself, having nothing more. A round it did
        not answer (NATS away or restarting) is a wait, not idleness: moving on with the wall clock then
        would make the events published meanwhile late once they arrive, so the idle clock starts again."""
        if not answered:
            self._last_event = now
            return None
        idle = now - self._last_event
        if not self.newest or idle < self.idle_advance_s or now - self._last_idle < 1.0:
            return None
        self._last_idle = now
        return self.newest + round(idle * 1000)


class Bridge:
    """Pulls from JetStream, produces to Kafka, acks JetStream. `run()` until `stop()`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.tracer: Tracer = NoOpTracer()  # a worker's runtime or `tapio bridge` sets its own (app.tracing)
        self.stats = StageStats()  # a worker's runtime's, in a worker (its /metrics and /tapio/stages/)
        self.topic = topic_name(settings.kafka, "raw")
        self.objects_topic = topic_name(settings.kafka, "objects")
        self.partitions = settings.kafka.partitions
        self._stopping = asyncio.Event()
        self.watermark = Watermark(idle_advance_s=settings.match.idle_advance_s)
        self.bridged = 0
        self.dead_lettered = 0
        self.rebridged = 0
        self._backoff = 0.5
        self._epoch_checked = 0.0  # monotonic time of the last epoch check
        self._kafka_failed = False  # a Kafka error since that check: check before producing again
        # the checkpoint a recovery started from while it runs, kept when it fails: the next one
        # starts there at the latest (`recover`)
        self._recovering_from: int | None = None
        # JetStream sequences for the Progress the records carry (app.checkpoint): the newest this
        # bridge has had Kafka take, and those Kafka did not take that come back (nak'ed)
        self._acked_seq = 0
        self._naked: set[int] = set()
        self.bytes_since_recycle = 0  # MessagePack bytes bridged since this bridge started or last recycled
        self.recycles = 0
        # a recycle is due: this bridge bridges nothing until the dataflow holds what it bridged
        # (or kafka.recycle_drain_s passed), so the recycle drops nothing the workers must redo
        self._draining_since: float | None = None
        self.name = recycle.part_name("bridge")

    async def start(self, *, pull: bool = True) -> None:
        """Connect to NATS and Kafka; with `pull=False` take nothing from the durable consumer (a
        bridge made only to run a recycle, `app.recycle`)."""
        ns = self.settings.nats
        self.nc = await connect(ns, name="tapio-bridge", on_reconnect=self._reconnected)
        self.js = self.nc.jetstream()
        await ensure_streams(self.js, ns)
        self.deadletters = DeadLetterPublisher(self.js, ns)
        self.kv = await progress_bucket(self.js, ns)
        self.pull: PullBatches | None = None
        if pull:
            self.pull = PullBatches(self.js, ns, batch=ns.bridge_fetch, expires_s=ns.bridge_linger_s)
            await self.pull.start()
        try:
            await ensure_topics(self.settings.kafka)
            self.producer = AIOKafkaProducer(
                bootstrap_servers=self.settings.kafka.bootstrap_servers, acks="all",
                enable_idempotence=False, linger_ms=5, max_request_size=16 * 1024 * 1024,
                compression_type=self.settings.kafka.compression_type, request_timeout_ms=30000)
            await self.producer.start()
        except KafkaError as e:
            await self.nc.close()
            raise BridgeError(f"cannot reach Kafka at {self.settings.kafka.bootstrap_servers}: {e!r}; "
                              f"start it (`tapio up`) or set kafka.bootstrap_servers") from e
        log.info("bridge: %s.> (durable %s) -> kafka topic %s (%d partitions)",
                 ns.subject_prefix, ns.bridge_durable, self.topic, self.partitions)
        self._kafka_failed = True  # Kafka may have lost data while no bridge ran: check before the first round
        self._taken_over = False  # what a bridge that died had fetched is bridged before anything newer

    async def stop(self) -> None:
        self._stopping.set()

    def _reconnected(self) -> None:
        """NATS came back (nats-server restarted, or the connection broke): the messages it was sending
        this bridge's pull requests are lost on the way, yet delivered as far as JetStream knows, and
        would come back only after `nats.bridge_ack_wait_s`, late for the windows. The next round
        takes them over first, as a starting bridge does."""
        self._taken_over = False

    async def close(self) -> None:
        await self.producer.stop()
        if self.pull is not None:
            await self.pull.close()
        await self.nc.flush(timeout=5)  # acks are publishes: make sure they left
        await self.nc.close()

    async def step(self) -> int:
        """One batch -> produce -> ack round. Returns the number of messages handled. Raises
        BridgeError (after acking what Kafka took and nak'ing the rest) when Kafka did not take it all."""
        if self.pull is None:
            raise BridgeError("this bridge was started without its pull consumer (start(pull=False))")
        if await self.settle_recycle():
            await asyncio.sleep(recycle.POLL_S)
            return 0  # a recycle ran or runs: nothing bridged this round
        if self._draining_since is not None:
            await self._drain_for_recycle()
            return 0
        if self._kafka_failed or time.monotonic() - self._epoch_checked >= self.settings.kafka.epoch_check_s:
            if not await self.check_epoch():
                return 0  # Kafka lost its data: the topics are rebuilt as a recycle (app.recycle)
        if not self._taken_over:
            await self.take_over()
        msgs = await self.pull.next_batch()  # full, or what came within the linger time
        if not msgs:
            idle = self.watermark.idle_stamp(time.monotonic(), answered=self.pull.answered_empty)
            if idle is not None:
                await self._heartbeat(idle, skip=())
            return 0
        limits = self._limits()
        decoded = decode_messages(msgs, self.partitions, limits)
        stamp = self.watermark.observe([*(e for events in decoded.events.values() for e in events), *decoded.marks],
                                       time.monotonic(), wall_ms=limits.wall_ms, max_ahead_ms=limits.max_ahead_ms)
        for msg, reason in decoded.poison:  # dead-lettered once, then terminated: never redelivered
            await self._reject(msg, reason)
        for msg, index, data, reason in decoded.poison_items:  # the batch's others go on
            await self._reject_item(msg, index, data, reason)
        traces = traced(e for events in decoded.events.values() for e in events)
        with stage_span(self.tracer, "bridge", traces, limit=self.settings.otel.max_links):
            sent = await self._send_decoded(decoded, stamp)
            beats = await self._send_heartbeats(stamp, skip=decoded.events.keys())
            results = await asyncio.gather(*(f for f, _ in sent), *beats, return_exceptions=True)
        failed: dict[int, tuple[Msg, BaseException]] = {}
        for (_, held), result in zip(sent, results, strict=False):
            if isinstance(result, BaseException):
                for msg in held:
                    failed[id(msg)] = (msg, result)
        rejected = {id(msg) for msg, _ in decoded.poison}
        for msg in msgs:  # events and end markers Kafka has (poison was terminated above)
            seq = msg.metadata.sequence.stream
            if id(msg) not in failed:
                self._naked.discard(seq)
            if id(msg) not in rejected and id(msg) not in failed:
                await msg.ack()
                self._acked_seq = max(self._acked_seq, seq)
        taken = sum(len(v) for v in decoded.msgs.values()) - len(failed)
        errors = [r for r in results if isinstance(r, BaseException)]
        for msg, error in failed.values():
            delivered = msg.metadata.num_delivered
            if give_up(error, delivered, self.settings.nats.bridge_max_deliver):
                await self._reject(msg, f"Kafka refused it {delivered} times: {error!r}")
                self._naked.discard(msg.metadata.sequence.stream)
            else:
                await msg.nak(delay=1.0)  # JetStream redelivers it after a short delay
                self._naked.add(msg.metadata.sequence.stream)
        self.bridged += taken
        self.bytes_since_recycle += sum(len(b) for wire in decoded.wire.values() for b in wire)
        if recycle.due(self.bytes_since_recycle, self.settings.kafka.recycle_after_mib) and not errors:
            self._draining_since = time.monotonic()
            log.info("bridge: %.0f MiB bridged since the last recycle: waiting for the dataflow to hold "
                     "sequence %d, then asking for one", self.bytes_since_recycle / 2**20, self._acked_seq)
        if errors:
            self._kafka_failed = True
            raise BridgeError(f"Kafka did not take {len(failed)} of {len(msgs)} events: {errors[0]!r}; "
                              f"they will be redelivered")
        return len(msgs)

    def _limits(self) -> Limits:
        """What the bridge takes now: the size limit, and event times guarded against the wall clock."""
        return Limits(max_event_bytes=self.settings.nats.bridge_max_event_bytes, wall_ms=int(time.time() * 1000),
                      max_ahead_ms=int(self.settings.match.max_ahead_s * 1000))

    async def _send_decoded(self, decoded: Decoded, stamp: int) -> list[tuple[asyncio.Future, list[Msg]]]:
        """Produce decoded events: each record with the messages it holds (a message is acked
        once every record holding it is in Kafka). Raw records carry their partition's Progress."""
        sent: list[tuple[asyncio.Future, list[Msg]]] = []
        present = {m.metadata.sequence.stream for msgs in decoded.msgs.values() for m in msgs}
        for partition, events in decoded.events.items():
            wire, sources = decoded.wire[partition], decoded.msgs[partition]
            for start, end in chunks(wire):
                part = events[start:end]
                value = msgspec.msgpack.encode(_RawBatchWire(
                    events=[msgspec.Raw(w) for w in wire[start:end]], watermark=stamp,
                    progress=Progress(partition=partition,
                                      seq=self._safe_seq(sources[end - 1].metadata.sequence.stream, present))))
                sent.append((await self._send(
                    self.topic, value=value, partition=partition,
                    timestamp_ms=epoch_ms(max(e.timestamp for e in part)), headers=batch_headers(part)),
                    sources[start:end]))
            for event, data, msg in zip(events, wire, sources, strict=True):
                if is_object_event(event):  # object observations also feed the topology, one record per object
                    sent.append((await self._send(
                        self.objects_topic, value=data, partition=0,
                        key=object_key(event).encode(), timestamp_ms=epoch_ms(event.timestamp)), [msg]))
        return sent

    def _safe_seq(self, seq: int, present: Iterable[int] = ()) -> int:
        """The sequence a record's Progress may claim: `seq`, but below any message Kafka did not
        take that has not come back yet (a redelivered message arrives after newer ones). Only this
        bridge's messages are known: with several bridges, the checkpoint trusts each one's order."""
        waiting = self._naked.difference(present)
        return min(seq, min(waiting) - 1) if waiting else seq

    async def check_epoch(self) -> bool:
        """Compare the broker's Kafka epoch with the one the dataflow used (recorded in the progress
        bucket). When they differ the broker lost data: ask for the topics to be rebuilt as a
        recycle (`app.recycle`, why KAFKA_LOST), so that every worker is off them before anything is
        bridged again, and return False (bridge nothing until it ran). Raises KafkaError when the
        broker cannot be asked (the caller retries)."""
        now = await broker_epoch(self.settings.kafka)
        if now is None:  # the topics are gone: create them (and a new epoch)
            now = await ensure_topics(self.settings.kafka)
        recorded = await recorded_epoch(self.kv)
        if recorded is not None and recorded != now:
            log.error("bridge: Kafka lost its data (the dataflow used epoch %s, the broker holds %s); asking "
                      "for the topics to be rebuilt once the workers are off them", recorded, now)
            await recycle.request(self.kv, self.name, recycle.KAFKA_LOST)
            return False
        if recorded != now:
            await record_epoch(self.kv, now)
        self._epoch_checked = time.monotonic()
        self._kafka_failed = False
        return True

    async def take_over(self) -> int:
        """Before its first round: bridge again what the durable consumer delivered and nobody
        acknowledged (a bridge killed with messages in hand). JetStream would give them back only
        after `nats.bridge_ack_wait_s`, when the windows' event time has moved past them and they
        would count as late; bridged now, they come before anything newer. When bridges share the
        consumer, another one's messages in hand are bridged twice: the graph and the windows
        count each event once."""
        info = await self.js.consumer_info(self.settings.nats.stream, self.settings.nats.bridge_durable)
        first, last = info.ack_floor.stream_seq + 1, info.delivered.stream_seq
        count = 0
        if info.num_ack_pending and first <= last:
            count = await self._rebridge(first, last)
            log.warning("bridge: %d messages delivered before this bridge started and not acknowledged "
                        "(sequences %d..%d) bridged again first", count, first, last)
        self._taken_over = True
        return count

    async def settle_recycle(self) -> bool:
        """While a recycle is asked for or runs (`app.recycle`): run it when this bridge may claim
        it, else wait a moment. True when there was one (nothing is bridged this round)."""
        k = self.settings.kafka
        try:
            if not await recycle.settle(self.kv, self.name, self.run_recycle, grace_s=k.recycle_grace_s,
                                        timeout_s=k.recycle_timeout_s, wait=False):
                return False
        except (TimeoutError, nats.errors.Error) as e:
            # NATS away: no recycle can be asked for either; the pull below waits the outage out as before
            log.debug("bridge: the recycle key cannot be read (%r)", e)
            return False
        self.bytes_since_recycle = 0  # whoever runs it, what this bridge bridged is dropped with the topics
        self._draining_since = None
        return True

    async def _drain_for_recycle(self) -> None:
        """A recycle is due: send every partition this bridge's progress (an empty batch: a quiet
        partition's mark moves on too), and ask for the recycle once the graph and the windows hold
        everything it bridged, or after `kafka.recycle_drain_s` (the recycle then bridges the rest
        again from JetStream)."""
        assert self._draining_since is not None
        try:
            await asyncio.gather(*await self._send_heartbeats(self.watermark.newest, skip=()))
        except KafkaError as e:
            log.warning("bridge: progress heartbeat not sent (%r)", e)
        mark, held_by = await lowest_mark(self.kv, self.partitions)
        waited = time.monotonic() - self._draining_since
        if mark >= self._safe_seq(self._acked_seq) or waited >= self.settings.kafka.recycle_drain_s:
            if mark < self._acked_seq:
                log.warning("bridge: the dataflow holds sequence %d of %d after %.0f s (%s lags); recycling "
                            "anyway, the rest is bridged again", mark, self._acked_seq, waited, held_by)
            await recycle.request(self.kv, self.name)
            self._draining_since = None
            return
        await asyncio.sleep(0.5)

    async def run_recycle(self) -> None:
        """Rebuild the dataflow's topics now (the workers have stopped reading them, `app.recycle`):
        the recovery of a lost Kafka, or a recycle, which is the same on purpose."""
        old = await recorded_epoch(self.kv) or "none"
        epoch = await self.recover(f"rebuilding the dataflow's topics (epoch {old})")
        # the workers' changelogs too, while no worker runs: their RocksDB tables keep the state
        own = await faust_topics(self.settings.kafka, self.settings.worker.app_id)
        await recreate_topics(self.settings.kafka.bootstrap_servers, own)
        log.warning("bridge: the workers' own topics recreated too (%s)", ", ".join(t.name for t in own))
        await record_epoch(self.kv, epoch)
        self.bytes_since_recycle = 0
        self.recycles += 1
        self._epoch_checked = time.monotonic()
        self._kafka_failed = False

    async def recover(self, why: str) -> str:
        """Kafka lost data, or it is recycled: recreate the topics (a new epoch: every worker
        restarts on them), then bridge again every JetStream message after the graph's checkpoint up
        to the last one the durable consumer delivered (later ones come from it as usual). Returns
        the new epoch."""
        epoch = await ensure_topics(self.settings.kafka, fresh=True)
        checkpoint, held_by = await lowest_mark(self.kv, self.partitions)
        info = await self.js.consumer_info(self.settings.nats.stream, self.settings.nats.bridge_durable)
        end = info.delivered.stream_seq
        if checkpoint > end:  # recorded for an earlier stream of the same name: trust nothing of it
            log.warning("bridge: the graph checkpoint %d is past the stream's delivered %d; bridging "
                        "again from the stream's start", checkpoint, end)
            checkpoint = 0
        if self._recovering_from is not None and self._recovering_from < checkpoint:
            # an earlier recovery failed part way: what of it Kafka took (later records of a
            # partition after one it refused) moved the marks past records it never had, and
            # the durable consumer will not deliver them again
            log.warning("bridge: a recovery that failed started after sequence %d; the marks moved to %d "
                        "since (%s), over records it may not have sent: starting from the former",
                        self._recovering_from, checkpoint, held_by)
            checkpoint, held_by = self._recovering_from, "the recovery that failed"
        log.warning("bridge: %s: topics recreated (epoch %s); bridging again JetStream sequences %d..%d, "
                    "after what the graph holds (its lowest mark: %s)", why, epoch, checkpoint + 1, end, held_by)
        self._recovering_from = checkpoint
        count = await self._rebridge(checkpoint + 1, end)
        self._recovering_from = None
        self.rebridged += count
        log.warning("bridge: %d messages bridged again; the dataflow goes on from sequence %d", count, end + 1)
        return epoch

    async def _rebridge(self, first: int, last: int) -> int:
        if first > last:
            return 0
        ns = self.settings.nats
        sub = await self.js.pull_subscribe(
            f"{ns.subject_prefix}.>", stream=ns.stream,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=first,
                                  ack_policy=AckPolicy.NONE, inactive_threshold=120.0))
        count = 0
        try:
            while True:
                try:
                    msgs = await sub.fetch(ns.bridge_fetch, timeout=2.0)
                except TimeoutError:
                    break
                taken = [m for m in msgs if m.metadata.sequence.stream <= last]
                if taken:
                    decoded = decode_messages(taken, self.partitions, self._limits())
                    sent = await self._send_decoded(decoded, self.watermark.newest)
                    results = await asyncio.gather(*(f for f, _ in sent), return_exceptions=True)
                    failed = [r for r in results if isinstance(r, BaseException)]
                    if failed:
                        self._kafka_failed = True
                        raise BridgeError(f"Kafka did not take {len(failed)} records while bridging again: "
                                          f"{failed[0]!r}; the recovery starts over")
                    count += len(taken)
                if len(taken) < len(msgs) or (taken and taken[-1].metadata.sequence.stream >= last):
                    break
        finally:
            await sub.unsubscribe()
        return count

    async def _send(self, topic: str, **record: Any) -> asyncio.Future:
        """producer.send, with a record refused before it left (too large for the producer, no
        metadata yet) as a failed future like one Kafka refused: each record fails alone."""
        try:
            return await self.producer.send(topic, **record)
        except KafkaError as e:
            future: asyncio.Future = asyncio.get_running_loop().create_future()
            future.set_exception(e)
            return future

    async def _reject(self, msg: Msg, reason: str) -> None:
        """Dead-letter a message the bridge cannot use, with the reason and where it sits, then
        terminate it: JetStream does not deliver it again."""
        meta = msg.metadata
        await self.deadletters.send(stage="bridge", reason=reason, payload=msg.data,
                                    where=f"{msg.subject} stream_seq={meta.sequence.stream}")
        await msg.term()
        self.dead_lettered += 1
        self.stats.add("bridge", 0, rejected=1)

    async def _reject_item(self, msg: Msg, index: int, data: bytes, reason: str) -> None:
        """Dead-letter one event of a batch message (its JSON, the reason and where it sits). A batch
        delivered again dead-letters it again with the same id: the dead-letter stream drops the repeat."""
        meta = msg.metadata
        await self.deadletters.send(stage="bridge", reason=reason, payload=data,
                                    where=f"{msg.subject} stream_seq={meta.sequence.stream} event {index}")
        self.dead_lettered += 1
        self.stats.add("bridge", 0, rejected=1)

    async def _send_heartbeats(self, stamp: int, *, skip: Iterable[int]) -> list[asyncio.Future]:
        """An empty batch carrying the watermark to every partition this round had no events for."""
        if not stamp:
            return []
        skipped = set(skip)
        seq = self._safe_seq(self._acked_seq)
        out = []
        for p in range(self.partitions):
            if p not in skipped:  # every message before `seq` of partition p is in Kafka before this record
                progress = Progress(partition=p, seq=seq) if seq else None
                value = RAW_BATCH_CODEC.encode(RawBatch(events=[], watermark=stamp, progress=progress))
                out.append(await self._send(self.topic, value=value, partition=p))
        return out

    async def _heartbeat(self, stamp: int, *, skip: Iterable[int]) -> None:
        try:
            await asyncio.gather(*await self._send_heartbeats(stamp, skip=skip))
        except KafkaError as e:
            log.warning("bridge: watermark heartbeat not sent (%r); the next one carries it", e)

    async def step_logged(self) -> int:
        """`step`, but a failure is logged and waited out with backoff instead of raised."""
        bind_log(stage="bridge")
        before = self.bridged
        try:
            handled = await self.step()
        except Exception as e:  # the bridge never dies: unacked messages come back from JetStream
            if isinstance(e, KafkaError):
                self._kafka_failed = True
            log.error("bridge: %r; retrying in %.1fs", e, self._backoff)
            await asyncio.sleep(self._backoff)
            self._backoff = min(self._backoff * 2, 10.0)
            return 0
        self._backoff = 0.5
        if handled:  # counted in events (a message may hold a batch of them)
            self.stats.add("bridge", self.bridged - before)
        return handled

    async def run(self) -> None:
        """Standalone mode (`tapio bridge`): pump until `stop()`."""
        while not self._stopping.is_set():
            await self.step_logged()


async def run_alone(settings: Settings) -> None:
    """`tapio bridge`: one bridge in this process, pumping until SIGINT or SIGTERM."""
    bridge = Bridge(settings)
    bridge.tracer, close_tracer = tracer_for(settings, role="bridge")
    await bridge.start()
    web = await _serve(bridge) if settings.nats.bridge_web_port else None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: asyncio.ensure_future(bridge.stop()))
    try:
        await bridge.run()
    finally:
        await bridge.close()
        close_tracer()
        if web is not None:
            await web.cleanup()
        log.info("bridge stopped after %d events", bridge.bridged)


def bridge_health(bridge: Bridge) -> tuple[bool, dict]:
    """Whether the bridge is ready, and the document its pages serve: ready while it is connected to NATS and
    Kafka answered since its last error (its epoch check after a failure, `Bridge.step`)."""
    nc = getattr(bridge, "nc", None)
    problems = []
    if nc is None or not nc.is_connected:
        problems.append("not connected to NATS")
    if bridge._kafka_failed:
        problems.append("Kafka has not answered since its last error (or since the start)")
    body = {"status": "ok" if not problems else "degraded", "problems": problems, "bridged": bridge.bridged,
            "dead_lettered": bridge.dead_lettered}
    return not problems, body


async def _serve(bridge: Bridge) -> web.AppRunner:
    """`tapio bridge`'s own pages: /healthz (200 while the process serves: NATS or Kafka away is not a
    reason for a restart, the bridge reconnects and retries by itself), /readyz (200 while it is connected
    to NATS and Kafka answers; both with its counts and what is wrong) and /metrics (`app.metrics`: the
    bridge's events, batches and dead letters, the process)."""
    from app.metrics import StatsCollector, metrics_registry, register_metrics

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response(bridge_health(bridge)[1])

    async def readyz(_: web.Request) -> web.Response:
        ready, body = bridge_health(bridge)
        return web.json_response(body, status=200 if ready else 503)

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    register_metrics(app.router, metrics_registry(StatsCollector(bridge.stats)))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    nats = bridge.settings.nats
    try:
        await web.TCPSite(runner, nats.bridge_web_host, nats.bridge_web_port).start()
    except OSError as e:
        await runner.cleanup()
        raise BridgeError(f"cannot serve /healthz and /metrics on {nats.bridge_web_host}:{nats.bridge_web_port}: "
                          f"{e}; set nats.bridge_web_port (TAPIO_NATS_BRIDGE_WEB_PORT) to a free port") from e
    return runner

