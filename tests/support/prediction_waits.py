"""Waiting on a running dataflow's predictions, for the end-to-end tests (not a test module).

Importable from any test (`pythonpath = ["tests/support"]` in pyproject.toml):
`from prediction_waits import settle`.

A test that asserts which predictions a dataflow made must also know that no other one is still
on its way. `settle` waits for conditions the dataflow shows, in the order the data goes:

1. at least the predictions the test expects are in the graph;
2. every hits partition's event time has passed `through` (the newest event time the test
   published), read from the worker's `tapio-watermarks` table page: every window holding a hit
   at or before it has been evaluated, and a hit at or before it arriving now is late;
3. the windows agent has taken one more batch since (its counter on /tapio/stages/ moved): the
   batch that evaluated them has sent its matches on;
4. a fence is through: one event per raw partition, published now, is in the graph. On each
   partition it comes after those matches (same topics, same partitions, read in order by
   predict and the sink), so their predictions are in the graph before it.

Only then are the predictions read. A late prediction is seen, not raced by a quiet period.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
import uuid
from collections.abc import Sequence
from datetime import datetime

from waiting import until

from app.bridge import partition_for
from app.jetstream import publish_events
from app.workers import ChildProcess
from collectors.replay import raw_event_from_object
from core.events import RawEvent
from core.settings import Settings
from topology import queries
from topology.graph import open_graph
from topology.predictions import StoredPrediction, list_predictions


async def stored_predictions(settings: Settings, since: datetime, until: datetime) -> list[StoredPrediction]:
    graph = open_graph(settings.graph)
    try:
        return await list_predictions(graph, since=since, until=until, limit=1000)
    finally:
        await graph.close()


async def web_page(settings: Settings, path: str) -> dict:
    """A worker's JSON page (read in a thread: the test's event loop keeps running)."""
    def read() -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{settings.worker.web_port}{path}", timeout=10) as r:
            return json.load(r)
    return await asyncio.to_thread(read)


async def event_times(workers: Sequence[Settings]) -> dict[int, datetime | None]:
    """Each hits partition's event time, as the worker(s) holding it show it."""
    out: dict[int, datetime | None] = {}
    for settings in workers:
        for row in (await web_page(settings, "/tapio/tables/tapio-watermarks/"))["rows"]:
            at = datetime.fromisoformat(row["event_time"]) if row.get("event_time") else None
            known = out.get(row["partition"])
            out[row["partition"]] = at if known is None or (at is not None and at > known) else known
    return out


async def evaluated_through(workers: Sequence[Settings], through: datetime, procs: Sequence[ChildProcess], *,
                            within: float = 120.0) -> dict[int, datetime | None]:
    """Until every hits partition's event time is at or past `through` (2. above)."""
    partitions = workers[0].kafka.partitions

    async def passed() -> dict | None:
        times = await event_times(workers)
        done = all(times.get(p) is not None and times[p] >= through for p in range(partitions))
        return times if done else None
    return await until(passed, timeout=within, procs=procs, ignoring=(OSError,),
                       what=f"every hits partition's event time to pass {through.isoformat()}")


async def windows_batches(settings: Settings) -> int:
    return (await web_page(settings, "/tapio/stages/")).get("windows", {}).get("batches", 0)


async def windows_moved_on(workers: Sequence[Settings], procs: Sequence[ChildProcess], *,
                           within: float = 60.0) -> None:
    """Until each worker's windows agent has finished one more batch than now (3. above)."""
    for settings in workers:
        before = await windows_batches(settings)

        async def moved(settings: Settings = settings, before: int = before) -> bool:
            return await windows_batches(settings) > before
        await until(moved, timeout=within, procs=procs, ignoring=(OSError,),
                    what=f"the windows agent of the worker on port {settings.worker.web_port} to take another batch")


def fence_namespaces(partitions: int) -> list[str]:
    """One namespace per raw partition (`app.bridge.partition_for`)."""
    found: dict[int, str] = {}
    k = 0
    while len(found) < partitions:
        found.setdefault(partition_for(f"tapio-fence-{k}", partitions), f"tapio-fence-{k}")
        k += 1
    return [found[p] for p in range(partitions)]


def fence_events(at: datetime, partitions: int) -> list[RawEvent]:
    """Normal Events about a Service, one per raw partition, stamped `at` (no later than what the
    test published, so event time does not move), matching no pattern."""
    run = uuid.uuid4().hex[:12]
    stamp = at.isoformat().replace("+00:00", "Z")
    return [raw_event_from_object({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": f"fence.{run}", "namespace": ns, "uid": f"fence-{run}-{ns}"},
        "involvedObject": {"kind": "Service", "name": "fence", "namespace": ns, "uid": f"fence-{ns}"},
        "reason": "TapioTestFence", "message": f"fence {run}", "type": "Normal", "count": 1,
        "firstTimestamp": stamp, "lastTimestamp": stamp}, action="EVENT", source="test-fence")
        for ns in fence_namespaces(partitions)]


async def fence(settings: Settings, at: datetime, procs: Sequence[ChildProcess], *, within: float = 60.0) -> None:
    """Publish a fence (4. above) and wait until all of it is in the graph."""
    events = fence_events(at, settings.kafka.partitions)
    await publish_events(settings.nats, events, name="test-fence")
    ids = [e.id for e in events]

    async def through() -> bool:
        graph = open_graph(settings.graph)
        try:
            return (await graph.query(queries.COUNT_EVENTS, ids=ids))[0]["n"] == len(ids)
        finally:
            await graph.close()
    await until(through, timeout=within, procs=procs, what=f"the fence {ids} in the graph")


async def flushed(settings: Settings, through: datetime, procs: Sequence[ChildProcess], *,
                  workers: Sequence[Settings] | None = None, within: float = 120.0) -> None:
    """2. to 4. above: every match of a hit at or before `through` has its predictions in the graph.
    `workers`: the workers running the match stage (default: the one of `settings`)."""
    workers = list(workers or [settings])
    await evaluated_through(workers, through, procs, within=within)
    await windows_moved_on(workers, procs)
    await fence(settings, through, procs)


async def settle(settings: Settings, since: datetime, until_: datetime, procs: ChildProcess | Sequence[ChildProcess],
                 *, through: datetime, at_least: int = 0, workers: Sequence[Settings] | None = None,
                 within: float = 120.0) -> list[StoredPrediction]:
    """The predictions with since <= at < until_, once at least `at_least` are there and every
    prediction of a hit at or before `through` is in the graph (see the module docstring)."""
    procs = [procs] if isinstance(procs, ChildProcess) else list(procs)

    async def enough() -> list[StoredPrediction] | None:
        found = await stored_predictions(settings, since, until_)
        return found if len(found) >= at_least else None
    if at_least:
        await until(enough, timeout=within, procs=procs,
                    what=f"at least {at_least} predictions in [{since}, {until_})")
    await flushed(settings, through, procs, workers=workers, within=within)
    return await stored_predictions(settings, since, until_)
