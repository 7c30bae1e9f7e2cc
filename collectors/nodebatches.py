"""Hands a node collector's RawEvents to the agent in batches: what it saw in about a second, or `max_batch`.

Fed by a collector's reading task (`collectors.cri`, `collectors.etcd`), which `offer`s each RawEvent as its
source delivers it without waiting; feeds the collector's `emit` (`collectors.node.Emit`). The queue is
bounded: an event offered while it is full is dropped and counted (`dropped`), never blocking the reader of
a stream the source would otherwise buffer or cut.
"""

from __future__ import annotations

import asyncio
import contextlib
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
        rest = self._drain(self._queue.qsize())
        if rest:
            await self._emit(rest)

    async def _next_batch(self, stop: asyncio.Event) -> list[RawEvent]:
        stopping = asyncio.ensure_future(stop.wait())
        try:
            first = asyncio.ensure_future(self._queue.get())
            done, _ = await asyncio.wait({first, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if first not in done:
                first.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await first
                if first.done() and not first.cancelled():
                    return [first.result()]
                return []
            batch = [first.result()]
            deadline = time.monotonic() + self._every
            while len(batch) < self._max and not stop.is_set():
                batch.extend(self._drain(self._max - len(batch)))
                left = deadline - time.monotonic()
                if left <= 0 or len(batch) >= self._max:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), timeout=left))
                except TimeoutError:
                    break
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
