"""A rebalance finishes when it cleared a message from one stream's queue that another stream had taken.

`raw` is read by two agents of a worker (the front chain and diagnose): each message reaches both
streams' queues with a reference count of 2. A rebalance clears every queue (`flow_control.clear()`);
the copy cleared there is never acked, and Faust's `Consumer.wait_empty()` used to wait for it for ever
(issue 14: a worker group after a SIGKILL stalled with "wait_empty: Waiting for tasks [(1, raw[1]@13)]").
Real Faust channels, messages and the worker's consumer class; nothing is committed, so no broker.
"""

from __future__ import annotations

import asyncio

from faust.types import Message

from app.faust_app import TapioApp


def _message(offset: int) -> Message:
    return Message("t.raw", 1, offset, 0.0, 0, None, b"key", b"value", None)


async def test_wait_empty_returns_when_the_other_streams_copy_was_cleared() -> None:
    app = TapioApp("flow-control-test", broker="kafka://127.0.0.1:1")
    front, diagnose = app.channel(), app.channel()
    consumer = app.consumer
    message = _message(13)
    message.incref(2)  # as the conductor does for a topic two channels read
    for channel in (front, diagnose):
        channel.queue.put_nowait(await channel.decode(message))
    taken = front.queue.get_nowait()  # the front chain takes and finishes it
    consumer.track_message(message)
    taken.ack()
    assert not message.acked and message in consumer._unacked_messages
    app.flow_control.clear()  # the rebalance: diagnose's copy is gone with its queue

    await asyncio.wait_for(consumer.wait_empty(), timeout=30)

    assert diagnose.queue.qsize() == 0 and not consumer._unacked_messages
    assert not message.acked  # not acked: its offset stays uncommitted, and it is read again after the seek


async def test_a_message_a_stream_still_holds_is_waited_for() -> None:
    app = TapioApp("flow-control-test-2", broker="kafka://127.0.0.1:1")
    front = app.channel()
    consumer = app.consumer
    message = _message(14)
    message.incref(1)
    front.queue.put_nowait(await front.decode(message))
    taken = front.queue.get_nowait()  # in the agent's hands when the rebalance starts
    consumer.track_message(message)
    app.flow_control.clear()

    waiting = asyncio.ensure_future(consumer.wait_empty())
    await asyncio.sleep(1.5)
    assert not waiting.done()  # still waited for: the agent has not finished it
    taken.ack()
    await asyncio.wait_for(waiting, timeout=30)
    assert message.acked and not consumer._unacked_messages
