"""A node collector that hands over one batch and then fails, every time it is started: what the agent's
restart with backoff is tested with (tests/app/test_agent.py). Registered through agent.extra as
`crashing_collector:CrashingCollector` (tests/support is on the path). Not a test module."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from collectors.node import Emit, node_event


class SourceBroke(RuntimeError):
    """What the collector fails with: its message is what /healthz must show as the last error."""


class CrashingCollector:
    name = "crashing"

    def __init__(self, *, node: str, message: str = "the source went away") -> None:
        self.node = node
        self.message = message
        self.starts = 0

    def check(self) -> None:
        pass

    async def run(self, emit: Emit, stop: asyncio.Event) -> None:
        self.starts += 1
        await emit([node_event("crashing", node=self.node, at=datetime.now(UTC), reason="Started",
                               message=f"start {self.starts}", intent="observed", category="state",
                               severity="info", facts={"metric.starts": str(self.starts)})])
        raise SourceBroke(f"{self.message} (start {self.starts})")

    def lost(self) -> int:
        return 0
