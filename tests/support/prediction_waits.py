"""Waiting on a running worker's predictions, for the end-to-end tests (not a test module).

Importable from any test (`pythonpath = ["tests/support"]` in pyproject.toml): `from prediction_waits import settle`.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from app.workers import ChildProcess
from core.settings import Settings
from topology.graph import open_graph
from topology.predictions import StoredPrediction, list_predictions


async def stored_predictions(settings: Settings, since: datetime, until: datetime) -> list[StoredPrediction]:
    graph = open_graph(settings.graph)
    try:
        return await list_predictions(graph, since=since, until=until, limit=1000)
    finally:
        await graph.close()


async def settle(settings: Settings, since: datetime, until: datetime, proc: ChildProcess, *,
                 at_least: int = 0, quiet_s: float = 6.0, timeout: float = 120.0) -> list[StoredPrediction]:
    """Predictions with since <= at < until once at least `at_least` exist and none came for `quiet_s`."""
    loop = asyncio.get_running_loop()
    deadline, last, stable_since = loop.time() + timeout, None, loop.time()
    while loop.time() < deadline:
        assert proc.alive(), proc.log_tail()
        found = await stored_predictions(settings, since, until)
        ids = sorted(p.id for p in found)
        if ids != last:
            last, stable_since = ids, loop.time()
        elif len(found) >= at_least and loop.time() - stable_since >= quiet_s:
            return found
        await asyncio.sleep(0.5)
    raise AssertionError(f"predictions did not settle: {last}\n{proc.log_tail()}")
