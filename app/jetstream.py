"""NATS JetStream: the EVENTS and DEADLETTER streams, and publishing to them with confirmed acks.

Fed by: collectors (`EventPublisher.publish_many`), any stage that rejects input
(`DeadLetterPublisher.send`). Feeds: the bridge, which pulls from EVENTS.

A message carries one RawEvent (a JSON object) or, as `EventPublisher` publishes them, a batch of
RawEvents of one subject (a JSON array; `batch_messages`, at most `nats.publish_batch_events` and
`nats.publish_batch_bytes`): a message costs the publisher, nats-server and the bridge about as
much as an event inside it, so a batch of 500 costs them a 500th (issue 17). Readers split a
message with `events_in`: each event is still judged alone (the bridge dead-letters one bad event
of a batch, not the batch).

Every publish carries `Nats-Msg-Id`: the event's id, or for a batch a digest of its events' ids, so
the stream's duplicate window drops a re-publish of the same events. Events stay idempotent one by
one downstream too (the graph merges them by id, the windows count an event's hit once). Every ack
is awaited; a publish whose ack fails or times out is retried with backoff and only then reported
as `PublishFailed`: never dropped silently.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime

import msgspec
import nats
import nats.aio.msg
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from core.codec import Codec, safe_text
from core.events import RawEvent, content_id, subject_token
from core.ports import DeadLetterSink
from core.records import DeadLetter
from core.settings import NatsSettings

log = logging.getLogger(__name__)

RAW_CODEC = Codec(RawEvent, "json")
_ITEMS = msgspec.json.Decoder(list[msgspec.Raw])


def batch_id(event_ids: Sequence[str]) -> str:
    """A batch's `Nats-Msg-Id`: its one event's id, or a digest of its events' ids in order."""
    if len(event_ids) == 1:
        return event_ids[0]
    return "batch-" + content_id(*event_ids)


Message = tuple[str, list[RawEvent], bytes]  # subject, its events, the payload


def batch_messages(events: Iterable[RawEvent], *, subject_of: Callable[[RawEvent], str], max_events: int,
                   max_bytes: int, max_payload: int) -> Iterator[Message | tuple[RawEvent, int]]:
    """Pure: the events as messages of one subject each, (subject, events, payload): one event's
    JSON object, or a JSON array of several, at most `max_events` and `max_bytes`. An event too
    large to share a message goes alone; one over `max_payload` (the server's limit) comes as
    (event, size) for the caller to refuse. The events of one subject keep their order; a subject's
    message goes out when it is full, the rest at the end."""
    open_: dict[str, tuple[list[RawEvent], list[bytes], int]] = {}

    def message(subject: str, held: list[RawEvent], parts: list[bytes]) -> Message:
        return subject, held, parts[0] if len(parts) == 1 else b"[" + b",".join(parts) + b"]"

    for event in events:
        data = RAW_CODEC.encode(event)
        if len(data) > max_payload:
            yield event, len(data)
            continue
        if len(data) + 2 > max_bytes:
            yield subject_of(event), [event], data
            continue
        subject = subject_of(event)
        held, parts, size = open_.get(subject) or ([], [], 2)
        if parts and (len(parts) >= max_events or size + len(data) + 1 > max_bytes):
            yield message(subject, held, parts)
            held, parts, size = [], [], 2
        held.append(event)
        parts.append(data)
        open_[subject] = (held, parts, size + len(data) + 1)
    for subject, (held, parts, _) in open_.items():
        if parts:
            yield message(subject, held, parts)


def events_in(data: bytes) -> list[bytes]:
    """Pure: the JSON of each event a message carries (one, or each of a batch's array), undecoded.
    Raises msgspec.DecodeError when a batch's array itself is broken (the message is poison whole)."""
    if data[:1] != b"[":
        return [data]
    return [bytes(item) for item in _ITEMS.decode(data)]
DEADLETTER_CODEC = Codec(DeadLetter, "json")

STATUS_HEADER = "Status"  # nats.py's key for the status line of a JetStream status message
REASON_HEADER = "Tapio-Reason"
WHERE_HEADER = "Tapio-Where"


class JetStreamError(Exception):
    """JetStream refused or did not answer: check that nats-server runs with -js and the stream config."""


class PublishFailed(JetStreamError):
    """Events could not be stored after retries; they were NOT acknowledged by JetStream."""

    def __init__(self, event_ids: Sequence[str], cause: BaseException) -> None:
        super().__init__(f"{len(event_ids)} event(s) not stored in JetStream after retries "
                         f"(first {event_ids[:3]}): {cause!r}; is nats-server up and the EVENTS stream present?")
        self.event_ids = list(event_ids)


async def _quiet(e: Exception) -> None:  # nats.py prints every failed attempt otherwise
    log.debug("nats: %r", e)


def _on_disconnect(nc_ref: list[NATS]) -> Callable[[], Awaitable[None]]:
    async def disconnected() -> None:
        if nc_ref and not (nc_ref[0].is_closed or nc_ref[0].is_draining):  # not our own close
            log.warning("nats: disconnected; reconnecting (check nats-server if this lasts)")
    return disconnected


async def _reconnected() -> None:
    log.warning("nats: reconnected")


def _then(on_reconnect: Callable[[], None]) -> Callable[[], Awaitable[None]]:
    async def reconnected() -> None:
        await _reconnected()
        on_reconnect()
    return reconnected


async def connect(settings: NatsSettings, *, name: str, on_reconnect: Callable[[], None] | None = None) -> NATS:
    """Connect, giving up after a few attempts with a clear error; once connected, reconnect forever.
    `on_reconnect` runs after every reconnection (what was in flight on the old connection is gone)."""
    holder: list[NATS] = []
    try:
        nc = await nats.connect(servers=settings.urls, name=name, max_reconnect_attempts=3,
                                reconnect_time_wait=0.5, connect_timeout=5, allow_reconnect=True,
                                error_cb=_quiet, disconnected_cb=_on_disconnect(holder),
                                reconnected_cb=_reconnected if on_reconnect is None else _then(on_reconnect))
    except (OSError, nats.errors.Error) as e:
        raise JetStreamError(f"cannot reach NATS at {settings.urls}: {e!r}; start it (`tapio up`) "
                             f"or set nats.urls / TAPIO_NATS_URLS") from e
    # nats.py uses one limit for the first connection and for reconnects: a running worker or
    # collector must ride out a NATS restart, so lift it now that the servers are known good.
    nc.options["max_reconnect_attempts"] = -1
    holder.append(nc)
    return nc


def _stream(settings: NatsSettings, *, name: str, prefix: str, max_age_s: float, **extra: object) -> StreamConfig:
    return StreamConfig(name=name, subjects=[f"{prefix}.>"], retention=RetentionPolicy.LIMITS,
                        max_msgs=settings.max_msgs, max_age=max_age_s, num_replicas=settings.replicas,
                        storage=StorageType.FILE, **extra)


def events_stream_config(settings: NatsSettings) -> StreamConfig:
    return _stream(settings, name=settings.stream, prefix=settings.subject_prefix, max_age_s=settings.max_age_s,
                   duplicate_window=settings.duplicate_window_s, discard=DiscardPolicy.OLD)


def deadletter_stream_config(settings: NatsSettings) -> StreamConfig:
    return _stream(settings, name=settings.deadletter_stream, prefix=settings.deadletter_prefix,
                   max_age_s=7 * 24 * 3600, duplicate_window=settings.duplicate_window_s)


async def ensure_streams(js: JetStreamContext, settings: NatsSettings) -> None:
    """Create or update both streams; safe to run any number of times."""
    for config in (events_stream_config(settings), deadletter_stream_config(settings)):
        try:
            await js.add_stream(config)
        except nats.js.errors.BadRequestError:
            # exists with another configuration: bring it to ours
            await js.update_stream(config)


def event_subject(settings: NatsSettings, event: RawEvent) -> str:
    return f"{settings.subject_prefix}.{subject_token(event.type)}.{subject_token(event.namespace)}"


class EventPublisher:
    """Publishes RawEvents to `events.<type>.<namespace>`, many in flight, every ack confirmed.

    An event larger than the server's max_payload is not published (NATS would refuse it, and the
    connection's error would end the whole run): it is named in `refused` and, given `deadletters`,
    dead-lettered with the reason (stage "publish", its first PREVIEW_BYTES); the others go on.
    """

    PREVIEW_BYTES = 4096

    def __init__(self, js: JetStreamContext, settings: NatsSettings, *, ack_timeout: float = 10.0,
                 attempts: int = 5, deadletters: DeadLetterSink | None = None) -> None:
        self.js = js
        self.settings = settings
        self.ack_timeout = ack_timeout
        self.attempts = attempts
        self.duplicates = 0
        self.deadletters = deadletters
        self.refused: dict[str, str] = {}  # event id -> "<source>: <reason>", not published for its size

    async def _oversized(self, event: RawEvent, size: int, limit: int) -> None:
        reason = f"oversized: {size} bytes, over the NATS server's max_payload ({limit} bytes): not published"
        where = event.metadata.get("source") or f"event {event.id}"
        self.refused[event.id] = f"{where}: {reason}"
        log.error("%s: %s", where, reason)
        if self.deadletters is not None:
            await self.deadletters.send(stage="publish", reason=reason, where=where,
                                        payload=event.data[:self.PREVIEW_BYTES], event_id=event.id)

    async def _publish_one(self, subject: str, events: list[RawEvent], payload: bytes) -> None:
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(self.attempts), wait=wait_exponential(multiplier=0.1, max=3),
            retry=retry_if_exception_type((nats.errors.TimeoutError, nats.js.errors.NoStreamResponseError,
                                           nats.errors.ConnectionClosedError, asyncio.TimeoutError)),
            reraise=True,
        ):
            with attempt:
                ack = await self.js.publish(subject, payload, timeout=self.ack_timeout,
                                            headers={"Nats-Msg-Id": batch_id([e.id for e in events])})
                self.duplicates += len(events) if ack.duplicate else 0

    async def publish_many(self, events: Iterable[RawEvent]) -> int:
        """Publish all events; return how many JetStream acknowledged. Raises PublishFailed.

        The events go as messages of up to `publish_batch_events` events of one subject
        (`batch_messages`). Up to `publish_in_flight` messages are outstanding at once. Their acks
        come back on one wildcard inbox subscription whose callback matches them by a sequence
        token: nats.py's `publish_async` costs a task and a timer per message, which halved the rate
        here. A message whose ack is an error, or has not come within `ack_timeout`, is retried one
        by one with backoff before `PublishFailed` is raised.
        """
        nc = self.js._nc  # the JetStream context's connection: acks are plain replies
        window = self.settings.publish_in_flight
        inbox = nc.new_inbox()
        outstanding: dict[str, Message] = {}
        failed: list[Message] = []
        room = asyncio.Event()
        count = 0

        async def on_ack(msg: nats.aio.msg.Msg) -> None:
            nonlocal count
            item = outstanding.pop(msg.subject.rpartition(".")[2], None)
            if item is None:
                return
            ack = json.loads(msg.data) if msg.data else {"error": {"description": "no responders"}}
            if "error" in ack:
                failed.append(item)
            else:
                count += len(item[1])
                self.duplicates += len(item[1]) if ack.get("duplicate") else 0
            if len(outstanding) <= window // 2:
                room.set()

        messages = batch_messages(events, subject_of=lambda e: event_subject(self.settings, e),
                                  max_events=self.settings.publish_batch_events,
                                  max_bytes=min(self.settings.publish_batch_bytes, nc.max_payload),
                                  max_payload=nc.max_payload)
        sub = await nc.subscribe(f"{inbox}.*", cb=on_ack)
        try:
            for seq, message in enumerate(messages):
                if len(message) == 2:  # (event, size): over the server's max_payload
                    event, size = message
                    await self._oversized(event, size, nc.max_payload)
                    continue
                subject, held, payload = message
                outstanding[str(seq)] = message
                await nc.publish(subject, payload, reply=f"{inbox}.{seq}",
                                 headers={"Nats-Msg-Id": batch_id([e.id for e in held])})
                if len(outstanding) >= window:
                    room.clear()
                    try:
                        await asyncio.wait_for(room.wait(), timeout=self.ack_timeout)
                    except TimeoutError:
                        failed.extend(outstanding.values())
                        outstanding.clear()
            deadline = asyncio.get_running_loop().time() + self.ack_timeout
            while outstanding and asyncio.get_running_loop().time() < deadline:
                room.clear()
                try:
                    await asyncio.wait_for(room.wait(), timeout=0.05)
                except TimeoutError:
                    pass
        finally:
            await sub.unsubscribe()
        failed.extend(outstanding.values())
        outstanding.clear()
        for subject, held, payload in failed:  # retried one by one, with backoff
            try:
                await self._publish_one(subject, held, payload)
            except Exception as e:
                raise PublishFailed([e_.id for _, events_, _ in failed for e_ in events_], e) from e
            count += len(held)
        return count


class PullBatches:
    """A durable JetStream pull consumer read in batches, with one pull request always ahead.

    Each round asks `$JS.API.CONSUMER.MSG.NEXT.<stream>.<durable>` for up to `batch` messages
    that expire after `expires_s`; the messages (and the 408 status that ends a short round)
    arrive on this reader's own inbox through a callback. nats.py's `fetch` waits on every
    message with its own timer and task, which cost ~50 us a message here, more than the rest
    of the bridge; a callback costs a list append. While the caller works on one batch, the
    next request is already being filled. Several readers (bridges) share one durable
    consumer: JetStream hands each message to one of them.
    """

    def __init__(self, js: JetStreamContext, settings: NatsSettings, *, batch: int, expires_s: float) -> None:
        self.js = js
        self.nc = js._nc
        self.settings = settings
        self.batch = batch
        self.expires_s = expires_s
        self._rounds: dict[str, tuple[list[nats.aio.msg.Msg], asyncio.Event]] = {}
        self._order: list[str] = []
        self._seq = 0
        self._expired: set[str] = set()  # rounds JetStream ended with 408: nothing more to give
        # the last round JetStream ended itself, having nothing more (408): the stream is quiet. False
        # when it did not answer (restarting, unreachable) or refused (503 while JetStream starts)
        self.answered_empty = False

    async def start(self) -> None:
        s = self.settings
        await self.js.add_consumer(s.stream, ConsumerConfig(
            durable_name=s.bridge_durable, ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL,
            filter_subject=f"{s.subject_prefix}.>", ack_wait=s.bridge_ack_wait_s,
            max_ack_pending=s.bridge_max_ack_pending, max_deliver=-1))
        self.inbox = self.nc.new_inbox()
        self.sub = await self.nc.subscribe(f"{self.inbox}.*", cb=self._on_message)
        await self._request()

    async def _request(self) -> None:
        self._seq += 1
        token = str(self._seq)
        self._rounds[token] = ([], asyncio.Event())
        self._order.append(token)
        body = json.dumps({"batch": self.batch, "expires": int(self.expires_s * 1e9)}).encode()
        await self.nc.publish(f"$JS.API.CONSUMER.MSG.NEXT.{self.settings.stream}.{self.settings.bridge_durable}",
                              body, reply=f"{self.inbox}.{token}")

    async def _on_message(self, msg: nats.aio.msg.Msg) -> None:
        if msg.headers and msg.headers.get(STATUS_HEADER) and not msg.data:
            # a status message comes on the request's own inbox: 408 expired, 409 limits...
            token = msg.subject.rpartition(".")[2]
            round_ = self._rounds.get(token)
            if round_ is not None and msg.headers[STATUS_HEADER] != "100":  # 100: heartbeat
                if msg.headers[STATUS_HEADER] == "408":
                    self._expired.add(token)
                round_[1].set()
            return
        # A data message carries its stream subject, not the inbox. JetStream serves waiting
        # requests in order, so it belongs to the oldest round that is not complete yet.
        for token in self._order:
            msgs, done = self._rounds[token]
            if not done.is_set():
                msgs.append(msg)
                if len(msgs) >= self.batch:
                    done.set()
                return
        log.error("pull consumer: a message arrived with no round open (%s); it will be redelivered", msg.subject)

    async def next_batch(self) -> list[nats.aio.msg.Msg]:
        """The oldest round's messages once it is complete (full, or expired); asks for the next."""
        token = self._order[0]
        msgs, done = self._rounds[token]
        try:
            await asyncio.wait_for(done.wait(), timeout=self.expires_s + 5.0)
        except TimeoutError:
            pass  # the server never answered (restart?): whatever came is used, the rest redelivers
        self._order.pop(0)
        del self._rounds[token]
        self.answered_empty = token in self._expired and not msgs
        self._expired.discard(token)
        await self._request()
        return msgs

    async def close(self) -> None:
        await self.sub.unsubscribe()


def deadletter_id(*, stage: str, reason: str, where: str, payload: bytes, event_id: str = "") -> str:
    """The dead letter's `Nats-Msg-Id`: the same input rejected again by the same stage for the same
    reason (a batch delivered twice: a restart, a bridge taking over what its predecessor left)
    is one dead letter, dropped by the stream's duplicate window. An event is known by its id;
    input without one by where it sat (a stream sequence, a file position)."""
    digest = hashlib.sha256()
    for part in (stage, reason, event_id or where):
        digest.update(part.encode("utf-8", "surrogateescape") + b"\0")
    digest.update(payload)
    return f"dl-{digest.hexdigest()[:40]}"


class DeadLetterPublisher:
    """Sends rejected input to `deadletter.<stage>` with the reason, in a header and in the record."""

    def __init__(self, js: JetStreamContext, settings: NatsSettings) -> None:
        self.js = js
        self.settings = settings

    async def send(self, *, stage: str, reason: str, where: str, payload: bytes, event_id: str = "") -> None:
        # a reason may quote what was wrong with the input: it must encode whatever that was
        reason, where, event_id = safe_text(reason), safe_text(where), safe_text(event_id)
        letter = DeadLetter(stage=stage, reason=reason, where=where, payload=payload,
                            at=datetime.now(UTC), event_id=event_id)
        subject = f"{self.settings.deadletter_prefix}.{subject_token(stage)}"
        msg_id = deadletter_id(stage=stage, reason=reason, where=where, payload=payload, event_id=event_id)
        log.warning("dead-lettered %s input from %s: %s (inspect with `tapio deadletters`)", stage, where, reason,
                    extra={"stage": stage, **({"event_id": event_id} if event_id else {})})
        async for attempt in AsyncRetrying(stop=stop_after_attempt(5), wait=wait_exponential(multiplier=0.1, max=3),
                                           reraise=True):
            with attempt:
                await self.js.publish(subject, DEADLETTER_CODEC.encode(letter),
                                      headers={REASON_HEADER: reason[:1000].replace("\n", " "),
                                               WHERE_HEADER: where[:1000], "Nats-Msg-Id": msg_id})


async def publish_events(settings: NatsSettings, events: Iterable[RawEvent], *, name: str) -> int:
    """One connection that makes sure the streams exist, publishes `events` and drains: how a
    one-off publisher (an end marker, a test's input) sends RawEvents. Returns how many were acked."""
    nc = await connect(settings, name=name)
    try:
        js = nc.jetstream()
        await ensure_streams(js, settings)
        return await EventPublisher(js, settings).publish_many(events)
    finally:
        await nc.drain()


async def read_deadletters(js: JetStreamContext, settings: NatsSettings, *, limit: int = 100) -> list[DeadLetter]:
    """The newest dead letters (up to `limit`), oldest first, read without consuming them."""
    info = await js.stream_info(settings.deadletter_stream)
    if not info.state.messages:
        return []
    last = info.state.last_seq
    first = max(info.state.first_seq, last - limit + 1, 1)
    letters = []
    for seq in range(first, last + 1):
        try:
            msg = await js.get_msg(settings.deadletter_stream, seq)
        except nats.js.errors.NotFoundError:
            continue
        letters.append(DEADLETTER_CODEC.decode(msg.data))
    return letters
