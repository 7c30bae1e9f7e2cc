"""Faust's flow control, telling the consumer which messages a rebalance dropped from the streams' queues.

Fed by: Faust, which clears every stream's queue at a rebalance (`flow_control.clear()`, and again on
`resume()`). Feeds: `app.transport._Consumer`, which stops waiting for those messages.

A topic two agents read (`raw`: the front chain and diagnose) delivers each message to both streams'
queues with a reference count of 2; the first stream to take it adds it to the consumer's unacked set,
and it is acked when both have. When a rebalance clears the other stream's queue, the message's
second reference is gone with it, so it is never acked and `Consumer.wait_empty()` waits for it for
ever: the worker never finishes the rebalance and the group stalls (issue 14: a worker group after
a SIGKILL, "wait_empty: Waiting for tasks [(1, <ConsumerMessage ... raw[1] offset=13>)]", agents idle).
Not acking it is right: its offset stays uncommitted and Faust seeks back to the committed offsets
after the rebalance, so it is read again (the stages are idempotent per event). Waiting for it is not.
"""

from __future__ import annotations

from typing import Any

from mode.utils.queues import FlowControlEvent


class ReleasingFlowControl(FlowControlEvent):
    """`FlowControlEvent` that remembers the messages of the events it clears from the queues."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._dropped: list[Any] = []

    def clear(self) -> None:
        for queue in self._queues:
            for item in list(getattr(queue, "_queue", ())):
                message = getattr(item, "message", None)
                if message is not None:
                    self._dropped.append(message)
        super().clear()

    def take_dropped(self) -> list[Any]:
        """The messages dropped since the last call: a stream will never ack them."""
        dropped, self._dropped = self._dropped, []
        return dropped
