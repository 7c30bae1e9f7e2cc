"""Replay a range of the live `EVENTS` stream into an isolated dataflow, to backtest patterns.

Fed by: `tapio replay --since TIME | --from-seq N [--until ...] [--subject S] [--speed X]` and
`tapio backtest --since ... --labels FILE`. Ranges are in stream terms: sequence numbers, or the
time a message was stored in the stream.
Feeds: an isolated dataflow (`core.settings.isolated`: its own stream, bridge consumer, topics,
tables, consumer group and graph) that a worker started here processes, then a summary.

The live stream is read through an ephemeral pull consumer with no acks, so live processing,
its durable consumer, its tables and its graph are untouched. Messages are copied in stream
order, as recorded, at full speed or paced by their event times (`speed` 2 = twice as fast as
they happened). Event time drives the windows, so the pace changes nothing in the matches.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime

import msgspec
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from app.isolated import IsolatedRun, run_isolated
from app.jetstream import RAW_CODEC, EventPublisher, connect, ensure_streams, events_in
from core.events import RawEvent
from core.settings import Settings


class ReplayRangeError(ValueError):
    """The range is empty or malformed; the message says which bound to fix."""


class RangeSummary(msgspec.Struct, kw_only=True):
    copied: int = 0
    skipped: int = 0  # not RawEvents (they would be dead letters live too)
    first_seq: int = 0
    last_seq: int = 0
    event_ids: list[str] = []
    newest: datetime | None = None  # the newest event time copied


Progress = Callable[[int, int], None]  # (done, total)


async def copy_range(live: Settings, target: Settings, *, since: datetime | None = None, from_seq: int = 0,
                     until: datetime | None = None, to_seq: int = 0, subject: str = "", speed: float = 0.0,
                     progress: Progress | None = None, batch: int = 1000) -> RangeSummary:
    """Copy live stream messages in [start, end] (and matching `subject`) into `target`'s stream."""
    if since is not None and from_seq:
        raise ReplayRangeError("give --since or --from-seq, not both")
    if until is not None and since is not None and until <= since:
        raise ReplayRangeError(f"--until {until.isoformat()} is not after --since {since.isoformat()}")
    source = await connect(live.nats, name="tapio-replay-source")
    sink = await connect(target.nats, name="tapio-replay-target")
    summary = RangeSummary()
    try:
        js = source.jetstream()
        info = await js.stream_info(live.nats.stream)
        last = min(info.state.last_seq, to_seq) if to_seq else info.state.last_seq
        if since is not None:
            config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_TIME, opt_start_time=since.isoformat(),
                                    ack_policy=AckPolicy.NONE, inactive_threshold=60)
        elif from_seq:
            config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=from_seq,
                                    ack_policy=AckPolicy.NONE, inactive_threshold=60)
        else:
            config = ConsumerConfig(deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE, inactive_threshold=60)
        filter_subject = subject or f"{live.nats.subject_prefix}.>"
        sub = await js.pull_subscribe(filter_subject, stream=live.nats.stream, config=config)
        tjs = sink.jetstream()
        await ensure_streams(tjs, target.nats)
        publisher = EventPublisher(tjs, target.nats)
        first_event: datetime | None = None
        started = time.monotonic()
        total = max(last - (from_seq or info.state.first_seq) + 1, 0)
        done = False
        while not done:
            try:
                msgs = await sub.fetch(batch, timeout=1.0)
            except TimeoutError:
                break  # nothing left in the range
            events: list[RawEvent] = []
            for msg in msgs:
                seq = msg.metadata.sequence.stream
                if seq > last:
                    done = True
                    break
                summary.first_seq = summary.first_seq or seq
                summary.last_seq = seq
                if until is not None and msg.metadata.timestamp > until:
                    done = True  # stored in the stream after the range
                    break
                try:
                    parts = events_in(msg.data)  # one event, or a batch of them
                except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
                    summary.skipped += 1
                    continue
                for part in parts:
                    try:
                        event = RAW_CODEC.decode(part)
                    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError):
                        summary.skipped += 1
                        continue
                    if speed > 0:  # pace by event time
                        first_event = first_event or event.timestamp
                        due = started + (event.timestamp - first_event).total_seconds() / speed
                        await asyncio.sleep(max(0.0, due - time.monotonic()))
                    events.append(event)
            if events:
                newest = max(e.timestamp for e in events)
                summary.newest = newest if summary.newest is None else max(summary.newest, newest)
                await publisher.publish_many(events)
                summary.copied += len(events)
                summary.event_ids.extend(e.id for e in events)
            if progress is not None:
                progress(summary.last_seq - (summary.first_seq or summary.last_seq) + 1, total)
            if summary.last_seq >= last:
                break
        await sub.unsubscribe()
    finally:
        await source.drain()
        await sink.drain()
    if not summary.copied:
        raise ReplayRangeError(f"no events in that range of stream {live.nats.stream} "
                               f"(seq {info.state.first_seq}..{info.state.last_seq}); "
                               "check --since/--from-seq/--subject")
    return summary


async def replay_range(live: Settings, name: str, *, patterns_dir: str | None = None,
                       progress: Callable[[str, int, int], None] | None = None, timeout: float = 600.0,
                       keep: bool = False, **bounds: object) -> IsolatedRun:
    """Copy a range of the live stream into the isolated dataflow `name`, run a worker on it until
    every event is in its graph and its windows have closed, and return what it predicted."""
    async def feed(target: Settings) -> list[str]:
        copied = await copy_range(live, target, progress=(lambda d, t: progress("copied", d, t)) if progress else None,
                                  **bounds)  # type: ignore[arg-type]
        summaries.append(copied)
        return copied.event_ids, copied.newest

    summaries: list[RangeSummary] = []
    run = await run_isolated(live, name, feed, patterns_dir=patterns_dir, progress=progress, timeout=timeout,
                             keep=keep)
    run.detail = summaries[0]
    return run
