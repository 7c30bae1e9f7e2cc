"""A recovery of lost Kafka data that fails part way (`app.bridge.Bridge.recover`), against the
session's real nats-server and Tansu.

What Kafka took of a failed re-bridge reaches the graph, and the sink's marks move past records
of the same partition that Kafka refused; the durable consumer delivered those long ago and never
will again. The next recovery must start where the failed one did, not at the moved marks: the
kafka-loss test saw events missing from the graph after exactly such a second recovery."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from aiokafka.errors import KafkaConnectionError

from app.bridge import Bridge, BridgeError
from app.checkpoint import StageProgress
from app.jetstream import publish_events
from core.events import RawEvent, content_id
from core.settings import Settings, isolated

pytestmark = pytest.mark.xdist_group("bridge-recovery")

EVENTS = 100


async def test_a_recovery_after_one_that_failed_starts_where_that_one_did(settings: Settings) -> None:
    mine = isolated(settings, "bridge-recovery")
    # one event a message (publish_batch_events=1): the marks below are stream sequences of events
    mine = msgspec.structs.replace(mine, nats=msgspec.structs.replace(mine.nats, bridge_fetch=EVENTS,
                                                                      publish_batch_events=1))
    at = datetime.now(UTC) - timedelta(minutes=1)
    events = [RawEvent(id=content_id("bridge-recovery", str(i)), timestamp=at + timedelta(milliseconds=i),
                       type="kubeapi", data=b"{}", metadata={"namespace": f"ns-{i % 4}"}) for i in range(EVENTS)]
    assert await publish_events(mine.nats, events, name="bridge-recovery") == EVENTS
    bridge = Bridge(mine)
    await bridge.start()
    try:
        taken = 0
        for _ in range(50):
            taken += await bridge.step()
            if taken >= EVENTS:
                break
        assert taken == EVENTS
        marks = StageProgress(bridge.kv, every_s=0.0)

        async def mark_all(seq: int) -> None:  # the sink and the windows holding every partition to `seq`
            for p in range(bridge.partitions):
                marks.written(p, seq)
                for q in range(bridge.partitions):
                    marks.absorbed(q, p, seq)
            await marks.save()

        await mark_all(20)
        real_send, sends = bridge._send, 0

        async def refusing_send(topic: str, **record: Any) -> asyncio.Future:
            nonlocal sends
            sends += 1
            if sends == 1:  # the first record goes, the next ones are refused
                return await real_send(topic, **record)
            future: asyncio.Future = asyncio.get_running_loop().create_future()
            future.set_exception(KafkaConnectionError("refused by the test"))
            return future

        bridge._send = refusing_send  # type: ignore[method-assign]
        with pytest.raises(BridgeError, match="the recovery starts over"):
            await bridge.recover("test: Kafka lost its data")
        # what Kafka took of it reached the graph: the marks moved on, over records it refused
        await mark_all(80)
        bridge._send = real_send  # type: ignore[method-assign]
        before = bridge.rebridged
        await bridge.recover("test: Kafka lost its data again")
        assert bridge.rebridged - before == EVENTS - 20, "bridged again from where the failed recovery started"
        # a recovery that succeeded leaves nothing behind: the next one starts at the marks
        before = bridge.rebridged
        await bridge.recover("test: and once more")
        assert bridge.rebridged - before == EVENTS - 80
    finally:
        await bridge.close()
