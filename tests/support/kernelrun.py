"""The kernel collector run on a thread of its own for the tests that make real kernel events
(tests/collectors/test_kernel_real.py, tests/cluster/test_kernel_pods.py): what it emitted, and a
wait with a deadline for the events a test looks for."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

from collectors.kernel import KernelCollector
from core.events import RawEvent

DEADLINE = 20.0


class Running:
    """The collector on its own thread and event loop; what it emitted, for the tests to wait on."""

    def __init__(self, collector: KernelCollector) -> None:
        self.collector = collector
        self.events: list[RawEvent] = []
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="kernel-collector", daemon=True)

    def _main(self) -> None:
        async def emit(batch: list[RawEvent]) -> None:
            with self._lock:
                self.events.extend(batch)

        async def main() -> None:
            self._stop = asyncio.Event()
            await self.collector.run(emit, self._stop)

        try:
            self._loop.run_until_complete(main())
        except BaseException as e:  # noqa: BLE001 - reported by wait_for/stop
            self.error = e
            self.collector.loaded.set()

    def start(self) -> Running:
        self._thread.start()
        assert self.collector.loaded.wait(60), "the BPF programs did not load in 60 s"
        if self.error:
            raise self.error
        return self

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def wait_for(self, what: str, match: Callable[[dict[str, str]], bool], count: int = 1,
                 deadline: float = DEADLINE) -> list[dict[str, str]]:
        until = time.monotonic() + deadline
        while time.monotonic() < until:
            if self.error:
                raise self.error
            with self._lock:
                found = [e.metadata for e in self.events if match(e.metadata)]
            if len(found) >= count:
                return found
            time.sleep(0.05)
        with self._lock:
            near = [e.metadata for e in self.events if e.metadata.get("reason", "").startswith("TCP")][-10:]
        raise AssertionError(f"no {what} within {deadline:.0f}s; last TCP events: {near}")

    def seen(self, match: Callable[[dict[str, str]], bool]) -> list[dict[str, str]]:
        with self._lock:
            return [e.metadata for e in self.events if match(e.metadata)]
