"""Run an isolated dataflow to the end: feed it, wait until its graph holds everything, read its predictions.

Fed by: `tapio replay` of a stream range (app.stream_replay) and `tapio analyze` (app.analyze),
each with a `feed` coroutine that publishes into the isolated stream and returns the event ids.
Feeds: an `IsolatedRun` (the isolated settings, how many events reached the graph, predictions).

The dataflow is `core.settings.isolated(live, name)`: its own stream, bridge consumer, topics,
tables, consumer group and graph on the same servers. One worker (with its bridge) runs it; its
feed reports the newest event time of its input, and an end-of-input marker then moves event
time past the last window (`app.bridge.end_marker`), so every window closes at once, however
far a snapshot's time lies beyond the last event.

The run ends once its predictions are all in the graph. With an end marker, that is seen on the
worker's own pages: every hits partition's event time (`tapio-watermarks`) has passed the newest
event, so every window holding an event has been evaluated; the windows agent has taken one more
batch since (`/tapio/stages/`), so the matches of that evaluation are counted; and the graph holds
every match counted (a match is written with its predictions in one query), and each of the newest
matches the windows keep to send again (`tapio-sent-matches`), as new as they were sent: after a
restart of the worker (Kafka lost its data) its count starts again, and the graph's older matches
would otherwise make up for those still on their way; and no match in the graph is still
provisional (`match.early_firing`: a provisional match has its final version's id and time, and
the evaluation past the input settles every one; a withdrawn one kept must be gone). Whichever comes
first, that or no new prediction for a few seconds (as before, and the only way without a marker).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec

from core.settings import Settings, isolated

log = logging.getLogger(__name__)


class IsolatedRun(msgspec.Struct, kw_only=True):
    name: str
    settings: Settings
    event_ids: list[str]
    in_graph: int
    predictions: list
    detail: Any = None  # what the feed reported (a RangeSummary, a list of files...)


Feed = Callable[[Settings], Awaitable[tuple[list[str], datetime | None]]]
"""Publishes into the isolated stream; returns the event ids and the newest event time (snapshots too)."""


async def run_isolated(live: Settings, name: str, feed: Feed, *,
                       patterns_dir: str | None = None, progress: Callable[[str, int, int], None] | None = None,
                       timeout: float = 600.0, keep: bool = False) -> IsolatedRun:
    from app.demo import wait_for_events
    from app.stack import free_port
    from app.workers import start_worker, with_worker_port
    from topology.graph import open_graph
    from topology.predictions import list_predictions

    root = Path(live.state_dir) / "isolated" / name
    target = with_worker_port(isolated(live, name), free_port(), data_dir=str(root / "worker"))
    match = msgspec.structs.replace(target.match, idle_advance_s=1.0,
                                    **({"patterns_dir": patterns_dir} if patterns_dir else {}))
    target = msgspec.structs.replace(target, match=match)
    worker = start_worker(target, name=f"worker-{name}", log_dir=root)
    try:
        event_ids, newest = await feed(target)
        if newest is not None:  # the input ends here: event time jumps past the last window at once
            await publish_end_marker(target, newest + timedelta(seconds=target.match.allowed_lateness_s + 1))
        in_graph = await wait_for_events(target, event_ids, timeout=timeout, alive=worker.alive)
        if progress:
            progress("in graph", in_graph, len(set(event_ids)))
        if not worker.alive():
            raise RuntimeError(f"the isolated worker stopped; its log ends:\n{worker.log_tail()}")
        # the end marker closed the last windows; their matches take a few hops to reach the graph
        settle = 4.0 if newest is not None else target.match.idle_advance_s + target.match.allowed_lateness_s + 3.0
        graph = open_graph(target.graph)
        try:
            if newest is not None:
                # every window evaluated and its matches in the graph, the diagnose stage past the
                # newest event; then quiet, for what the diagnose stage sent last to be written
                await asyncio.wait_for(_all_matches_written(target, newest, alive=worker.alive), timeout)
            await _quiet(graph, settle, within=timeout, alive=worker.alive)
            predictions = await list_predictions(graph, limit=100_000)
        finally:
            await graph.close()
    finally:
        if not keep:
            worker.stop()
    return IsolatedRun(name=name, settings=target, event_ids=event_ids, in_graph=in_graph, predictions=predictions)


async def _quiet(graph: Any, settle: float, *, within: float, alive: Callable[[], bool]) -> None:
    """Until no prediction came or changed (a diagnosis updated, resolved) for `settle` seconds
    (or `within` seconds, or the worker stopped)."""
    from topology.predictions import list_predictions

    seen: object = None
    quiet_since = time.monotonic()
    deadline = time.monotonic() + within
    while time.monotonic() < deadline and alive():
        found = await list_predictions(graph, limit=100_000)
        now = sorted((p.id, p.message, p.type, p.resolved_at is not None) for p in found)
        if now != seen:
            seen, quiet_since = now, time.monotonic()
        elif time.monotonic() - quiet_since >= settle:
            return
        await asyncio.sleep(0.5)


POLL_S = 0.1  # between two looks at the isolated worker's pages and graph


async def _all_matches_written(target: Settings, newest: datetime, *, alive: Callable[[], bool]) -> None:
    """Until every match of every event up to `newest` is in the graph (see the module docstring).

    Returns only when that is seen (the caller bounds the wait)."""
    import aiohttp

    from agents.diagnose import PATTERN_PREFIX as DIAGNOSIS_PREFIX
    from app.table_view import SENT
    from core.events import epoch_ms
    from topology import insight_queries
    from topology.graph import open_graph

    base = f"http://{target.worker.web_host}:{target.worker.web_port}"
    partitions = set(range(target.kafka.partitions))

    async def page(http: aiohttp.ClientSession, path: str) -> dict | None:
        try:
            async with http.get(base + path) as response:
                return await response.json() if response.status == 200 else None
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None  # not up yet, or busy: look again

    async def evaluated(http: aiohttp.ClientSession) -> bool:
        marks = await page(http, "/tapio/tables/tapio-watermarks/")
        if marks is None:
            return False
        past = {row["partition"] for row in marks.get("rows", [])
                if row.get("event_time") and datetime.fromisoformat(row["event_time"]) >= newest}
        return past >= partitions

    async def diagnosed(http: aiohttp.ClientSession) -> bool:
        stage = await page(http, "/tapio/diagnose/")
        if stage is None:
            return "diagnose" not in target.worker.stages
        return stage.get("applied_until_ms", 0) > epoch_ms(newest)

    async def windows_batches(http: aiohttp.ClientSession) -> tuple[int, int] | None:
        stages = await page(http, "/tapio/stages/")
        if stages is None:
            return None
        return stages.get("windows", {}).get("batches", 0), stages.get("matches", {}).get("events", 0)

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        while True:
            if alive() and await evaluated(http) and await diagnosed(http):
                break
            await asyncio.sleep(POLL_S)
        before = None
        while before is None:
            before = await windows_batches(http)
            await asyncio.sleep(POLL_S)
        while True:  # one more batch: the one that evaluated them has sent its matches and counted them
            now = await windows_batches(http)
            if now is not None and now[0] > before[0]:
                matches = now[1]
                break
            await asyncio.sleep(POLL_S)
        kept = await page(http, f"/tapio/tables/{SENT}/")
    # the newest matches each hits partition sent (they outlive a restart of the worker, whose count of
    # matches starts again at 0): each in the graph, as new as it was sent (an episode's update keeps its id)
    # (a provisional match withdrawn, `withdrawn`: gone from the graph)
    sent: dict[str, int] = {}
    withdrawn: set[str] = set()
    for row in (kept or {}).get("rows", []):
        for m in row["matches"]:
            if m.get("withdrawn"):
                withdrawn.add(m["id"])
                continue
            at = epoch_ms(datetime.fromisoformat(m["matched_at"]))
            sent[m["id"]] = max(at, sent.get(m["id"], at))
    log.info("isolated run: every window evaluated; waiting for %d match(es) counted and the %d kept to send "
             "again in the graph", matches, len(sent))
    graph = open_graph(target.graph)
    try:
        while True:
            rows = await graph.query(insight_queries.ALL_MATCHES)
            # the windows' matches only: the diagnose stage's are written beside them
            written: dict[str, int] = {}
            for row in rows:
                if not row["pattern"].startswith(DIAGNOSIS_PREFIX):
                    written[row["match_id"]] = max(row["matched_at"] or 0, written.get(row["match_id"], 0))
            if (len(written) - len(written.keys() & withdrawn) >= matches
                    and all(written.get(i, -1) >= at for i, at in sent.items()) and not written.keys() & withdrawn
                    # a provisional match and its final version share id and time: the final one must be in
                    and not await graph.query(insight_queries.PROVISIONAL_MATCH_IDS)):
                return
            await asyncio.sleep(POLL_S)
    finally:
        await graph.close()


async def publish_end_marker(target: Settings, at: datetime) -> None:
    """Tell the isolated dataflow's bridge that event time is now `at` (app.bridge.end_marker)."""
    from app.bridge import end_marker
    from app.jetstream import publish_events

    await publish_events(target.nats, [end_marker(at)], name="tapio-end-marker")
