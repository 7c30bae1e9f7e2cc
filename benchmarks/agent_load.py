"""A node collector that makes `rate` kernel-like events a second, in one batch every `batch_s`: the load
`benchmarks/agent.py` runs `tapio agent` with (registered through agent.extra as `agent_load:SteadyCollector`).
Each event is what the kernel collector's exec/exit events look like (node_event with kernel.* facts)."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime

from collectors.node import Emit, node_event


class SteadyCollector:
    name = "steady"

    def __init__(self, *, node: str, rate: float = 1000.0, batch_s: float = 1.0) -> None:
        self.node, self.rate, self.batch_s = node, rate, batch_s
        self.seq = itertools.count()

    def check(self) -> None:
        pass

    async def run(self, emit: Emit, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        per_batch = max(1, round(self.rate * self.batch_s))
        while not stop.is_set():
            at = datetime.now(UTC)
            batch = []
            for _ in range(per_batch):
                n = next(self.seq)
                batch.append(node_event(
                    "steady", node=self.node, at=at, reason="ProcessExit", message=f"worker (pid {n}) exited with 1",
                    intent="process-exit", category="process", severity="info", key=str(n),
                    facts={"pid": str(n), "kernel.comm": "worker", "kernel.exit_code": "1", "kernel.signal": "0",
                           "container_id": "0123456789abcdef" * 4}))
            await emit(batch)
            due += self.batch_s
            try:
                await asyncio.wait_for(stop.wait(), max(0.0, due - loop.time()))
            except TimeoutError:
                pass

    def lost(self) -> int:
        return 0
