"""Publishing to JetStream against the real nats-server: every ack confirmed, failures retried or raised."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import msgspec
import pytest

from app.jetstream import (
    RAW_CODEC,
    DeadLetterPublisher,
    EventPublisher,
    PublishFailed,
    connect,
    ensure_streams,
    events_in,
    events_stream_config,
    read_deadletters,
)
from core.events import RawEvent
from core.settings import Settings

T = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def events(n: int, prefix: str) -> list[RawEvent]:
    return [RawEvent(id=f"{prefix}-{i}", timestamp=T, type="kubeapi", data=b"{}",
                     metadata={"namespace": f"ns{i % 3}"}) for i in range(n)]


async def test_publishes_confirm_acks_and_drop_duplicates(settings: Settings) -> None:
    nats_settings = msgspec.structs.replace(settings.nats, stream="PUBTEST", subject_prefix="pubtest",
                                            deadletter_stream="PUBTEST_DL", deadletter_prefix="pubtest-dl")
    nc = await connect(nats_settings, name="test-pub")
    js = nc.jetstream()
    await ensure_streams(js, nats_settings)
    await ensure_streams(js, nats_settings)  # safe twice
    publisher = EventPublisher(js, nats_settings)
    assert await publisher.publish_many(events(5000, "a")) == 5000
    # the same events again, batched the same: every batch is dropped by the duplicate window
    assert await publisher.publish_many(events(5000, "a")) == 5000 and publisher.duplicates == 5000
    info = await js.stream_info("PUBTEST")
    # in batches of one subject each, at most publish_batch_events events each: 1,667/1,667/1,666 a subject
    assert info.state.messages == 3 * 4
    stored = [RAW_CODEC.decode(part) for seq in range(1, info.state.messages + 1)
              for part in events_in((await js.get_msg("PUBTEST", seq)).data)]
    assert sorted(e.id for e in stored) == sorted(e.id for e in events(5000, "a"))
    assert info.config.duplicate_window == nats_settings.duplicate_window_s
    assert info.config.max_msgs == nats_settings.max_msgs and info.config.subjects == ["pubtest.>"]
    subjects = await js.stream_info("PUBTEST", subjects_filter=">")
    assert set(subjects.state.subjects) == {"pubtest.kubeapi.ns0", "pubtest.kubeapi.ns1", "pubtest.kubeapi.ns2"}
    await nc.drain()


class RetryWatch:
    """The JetStream context, noting when the publisher gets to its retries (`js.publish`, one by
    one): by then every first attempt (the pipelined publishes) has been answered."""

    def __init__(self, js: object) -> None:
        self.js = js
        self.retrying = asyncio.Event()

    def __getattr__(self, name: str) -> object:
        return getattr(self.js, name)

    async def publish(self, *args: object, **kwargs: object) -> object:
        self.retrying.set()
        return await self.js.publish(*args, **kwargs)


async def test_publish_waits_out_a_missing_stream_then_succeeds(settings: Settings) -> None:
    late = msgspec.structs.replace(settings.nats, stream="LATE", subject_prefix="late")
    nc = await connect(late, name="test-late")
    js = nc.jetstream()
    watched = RetryWatch(js)

    async def create_stream_once_retrying() -> None:
        await asyncio.wait_for(watched.retrying.wait(), timeout=30)
        await js.add_stream(events_stream_config(late))

    creator = asyncio.ensure_future(create_stream_once_retrying())
    # nobody stores `late.>` until the publisher retries: every first attempt is refused, and retried with backoff
    assert await EventPublisher(watched, late, ack_timeout=2.0, attempts=8).publish_many(events(20, "late")) == 20
    await creator
    assert (await js.stream_info("LATE")).state.messages == 3  # 20 events of 3 subjects, a batch each
    await nc.drain()


async def test_publish_that_never_lands_raises_with_the_event_ids(settings: Settings) -> None:
    nowhere = msgspec.structs.replace(settings.nats, subject_prefix="nowhere")
    nc = await connect(nowhere, name="test-nowhere")
    with pytest.raises(PublishFailed, match="not stored in JetStream") as failed:
        await EventPublisher(nc.jetstream(), nowhere, ack_timeout=1.0, attempts=2).publish_many(events(3, "lost"))
    assert sorted(failed.value.event_ids) == ["lost-0", "lost-1", "lost-2"]
    await nc.drain()


async def test_dead_letters_keep_reason_and_payload(settings: Settings) -> None:
    dl = msgspec.structs.replace(settings.nats, stream="DLTEST", subject_prefix="dltest",
                                 deadletter_stream="DLTEST_DL", deadletter_prefix="dltest-dl")
    nc = await connect(dl, name="test-dl")
    js = nc.jetstream()
    await ensure_streams(js, dl)
    assert await read_deadletters(js, dl, limit=10) == []
    await DeadLetterPublisher(js, dl).send(stage="enrich", reason="payload is not JSON", where="t[0]@7",
                                           payload=b"\x00bad", event_id="e1")
    [letter] = await read_deadletters(js, dl, limit=10)
    assert (letter.stage, letter.reason, letter.where, letter.payload, letter.event_id) == (
        "enrich", "payload is not JSON", "t[0]@7", b"\x00bad", "e1")
    # the same event rejected again (its batch delivered twice, at another offset): one dead letter
    await DeadLetterPublisher(js, dl).send(stage="enrich", reason="payload is not JSON", where="t[0]@9",
                                           payload=b"\x00bad", event_id="e1")
    assert len(await read_deadletters(js, dl, limit=10)) == 1
    # another reason, another stage, other bytes, or input without an id at another place: each its own
    await DeadLetterPublisher(js, dl).send(stage="enrich", reason="count out of range", where="t[0]@9",
                                           payload=b"\x00bad", event_id="e1")
    await DeadLetterPublisher(js, dl).send(stage="normalize", reason="payload is not JSON", where="t[0]@9",
                                           payload=b"\x00bad", event_id="e1")
    await DeadLetterPublisher(js, dl).send(stage="enrich", reason="payload is not JSON", where="t[0]@9",
                                           payload=b"\x00worse", event_id="e1")
    for where in ("EVENTS seq=1", "EVENTS seq=2", "EVENTS seq=2"):
        await DeadLetterPublisher(js, dl).send(stage="bridge", reason="envelope", where=where, payload=b"\xff")
    assert len(await read_deadletters(js, dl, limit=10)) == 6
    await nc.drain()
