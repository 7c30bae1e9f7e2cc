"""A node collector (`collectors.node` contract) on its own thread and event loop, for the real-cluster
tests and recorders: what it emitted, in order, for them to wait on and publish.

Fed by: a collector built by the caller (DNS, CNI...). Feeds: `events` (its RawEvents as emitted).
The kernel collector has its own runner (`kernelrun`): it waits for its BPF programs to load.
"""

from __future__ import annotations

import asyncio
import threading

from collectors.node import NodeCollector
from core.events import RawEvent


class Running:
    """The collector on its own thread and event loop; what it emitted."""

    def __init__(self, collector: NodeCollector) -> None:
        self.collector = collector
        self.events: list[RawEvent] = []
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._main, name=f"{collector.name}-collector", daemon=True)

    def _main(self) -> None:
        async def emit(batch: list[RawEvent]) -> None:
            with self._lock:
                self.events.extend(batch)

        async def main() -> None:
            self._stop = asyncio.Event()
            self._started.set()
            await self.collector.run(emit, self._stop)

        try:
            self._loop.run_until_complete(main())
        except BaseException as e:  # noqa: BLE001 - reported by stop
            self.error = e
            self._started.set()

    def start(self) -> Running:
        self.collector.check()
        self._thread.start()
        assert self._started.wait(30), f"the {self.collector.name} collector did not start in 30 s"
        if self.error:
            raise self.error
        return self

    def snapshot(self) -> list[RawEvent]:
        with self._lock:
            return list(self.events)

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        if self.error:
            raise self.error
