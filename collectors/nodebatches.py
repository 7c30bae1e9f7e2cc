"""Hands a node collector's RawEvents to the agent in batches: what it saw in about a second, or `max_batch`.

Fed by a collector's reading task (`collectors.cri`, `collectors.etcd`), which `offer`s each RawEvent as its
source delivers it without waiting; feeds the collector's `emit` (`collectors.node.Emit`). The queue is
bounded: an event offered while it is full is dropped and counted (`dropped`), never blocking the reader of
a stream the source would otherwise buffer or cut.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time

from collectors.node import Emit
from core.events import RawEvent

EVERY = 1.0
MAX_BATCH = 500
QUEUE = 10_000


class Batches:
    def __init__(self, emit: Emit, *, every: float = EVERY, max_batch: int = MAX_BATCH, size: int = QUEUE) -> None:
        self._emit, self._every, self._max = emit, every, max_batch
        self._queue: asyncio.Queue[RawEvent] = asyncio.Queue(maxsize=size)
        self.dropped = 0

    def offer(self, event: RawEvent) -> None:
        """Queue one event for the next batch; count it as dropped when the queue is full."""
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1

    async def pump(self, stop: asyncio.Event) -> None:
        """Emit batches until `stop` is set, then emit what is left."""
        while not stop.is_set():
            batch = await self._next_batch(stop)
            if batch:
                await self._emit(batch)
        while rest := self._drain(self._max):
            await self._emit(rest)

    async def _next_batch(self, stop: asyncio.Event) -> list[RawEvent]:
        """The next batch: from the first event, what comes within `every` (up to `max_batch`); what is
        queued when `stop` is set."""
        stopping = asyncio.ensure_future(stop.wait())
        batch: list[RawEvent] = []
        deadline = math.inf
        try:
            while len(batch) < self._max and not stop.is_set():
                batch.extend(self._drain(self._max - len(batch)))
                if len(batch) >= self._max:
                    break
                if batch and deadline == math.inf:
                    deadline = time.monotonic() + self._every
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                getting = asyncio.ensure_future(self._queue.get())
                await asyncio.wait({getting, stopping}, timeout=None if math.isinf(left) else left,
                                   return_when=asyncio.FIRST_COMPLETED)
                if not getting.done():
                    getting.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await getting
                if getting.done() and not getting.cancelled():
                    batch.append(getting.result())
            return batch
        finally:
            stopping.cancel()

    def _drain(self, most: int) -> list[RawEvent]:
        out = []
        while len(out) < most:
            try:
                out.append(self._queue.get_nowait())
            except asyncio.QueueEmpty:
                break
        return out
