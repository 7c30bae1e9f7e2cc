"""The dataflow split across workers by `worker.stages` gives the graph one worker gives.

One worker chains enrich -> normalize -> select on the raw topic (agents.front). Split by
`worker.stages`, each stage runs on its own topics instead (`enriched`, `unified`): here one
worker runs enrich and normalize (and the rest but match) with the bridge, a second runs match
alone. The labelled incidents of the corpus that match behavior patterns, each in a slot of its
own, go through it: every event is in the graph once, and the pattern predictions are those of
the same events matched in-process (`tapio analyze`, the backtests); the first worker's pages
show it ran enrich and normalize and no match, the second's that it ran match (issue 17, bar 4).

Real servers: the session's embedded stack, an isolated dataflow on it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest
from prediction_waits import web_page
from waiting import until

from agents.catalog import Catalog
from agents.diagnose import PATTERN_PREFIX
from agents.offline import match_events
from app.analyze import read
from app.demo import wait_for_events
from app.diagnosis_backtest import find_cases, inputs_of
from app.isolated import publish_end_marker
from app.jetstream import publish_events
from app.stack import EmbeddedStack, free_port
from app.workers import start_worker, with_worker_port
from collectors.replay import shifted
from core.events import RawEvent, publish_order
from core.settings import isolated
from topology.graph import open_graph
from topology.predictions import list_predictions

ROOT = Path(__file__).resolve().parents[1]
BASE = datetime(2026, 3, 2, tzinfo=UTC)  # in the past: no event-time guard to widen
SLOT = timedelta(hours=2)

pytestmark = [pytest.mark.xdist_group("split-stages"), pytest.mark.timeout(600)]


def _stream(catalog: Catalog, incidents: int = 4) -> list[RawEvent]:
    events: list[RawEvent] = []
    taken = 0
    for case in find_cases([ROOT / "patterns" / "scenarios" / "diagnosis"]):
        own = read(inputs_of(case)).events
        moved = shifted(own, BASE + taken * SLOT + SLOT / 2 - max(e.timestamp for e in own))
        if match_events(moved, catalog).predictions:
            events += moved
            taken += 1
            if taken == incidents:
                break
    assert taken == incidents, "the labelled corpus should hold incidents that match behavior patterns"
    return publish_order(events)


def _key(p: object) -> tuple:
    return (p.pattern, p.scope, p.at, p.message)  # type: ignore[attr-defined]


async def test_match_in_a_worker_of_its_own_gives_the_predictions_of_one_worker(
        embedded: EmbeddedStack, tmp_path: Path) -> None:
    catalog = Catalog(ROOT / "patterns")
    events = _stream(catalog)
    expected = {_key(p) for p in match_events(events, catalog).predictions}
    assert expected

    base = isolated(with_worker_port(embedded.settings(), free_port(), data_dir=str(tmp_path / "first")),
                    "split-stages")
    first = msgspec.structs.replace(base, match=msgspec.structs.replace(base.match, idle_advance_s=1.0))
    second = with_worker_port(first, free_port(), data_dir=str(tmp_path / "second"))
    procs = [start_worker(first, name="first", log_dir=tmp_path,
                          stages=["enrich", "normalize", "predict", "sink", "diagnose", "topology"]),
             start_worker(second, name="second", log_dir=tmp_path, with_bridge=False, stages=["match"])]
    try:
        for settings, proc in zip((first, second), procs, strict=True):
            await until(lambda settings=settings: web_page(settings, "/tapio/health/"), timeout=90,
                        ignoring=(OSError,), procs=[proc], what="the worker's web server to answer")
        assert await publish_events(first.nats, events, name="split-stages") == len(events)
        await publish_end_marker(first, max(e.timestamp for e in events) + timedelta(
            seconds=first.match.allowed_lateness_s + 1))
        ids = [e.id for e in events]
        assert await wait_for_events(first, ids, timeout=180) == len(set(ids)), procs[0].log_tail()

        graph = open_graph(first.graph)
        got: set[tuple] = set()
        try:
            async def predicted() -> bool:
                got.clear()
                got.update(_key(p) for p in await list_predictions(graph, limit=100_000)
                           if not p.pattern.startswith(PATTERN_PREFIX))
                return got >= expected
            await until(predicted, timeout=120, procs=procs,
                        what=lambda: f"the pattern predictions (missing {sorted(expected - got, key=str)[:3]})")
        finally:
            await graph.close()
        assert got == expected

        split, alone = await web_page(first, "/tapio/stages/"), await web_page(second, "/tapio/stages/")
        assert split["enrich"]["events"] >= len(set(ids)) and split["normalize"]["events"] >= len(set(ids))
        assert "match" not in split and "enrich" not in alone  # each stage ran where worker.stages put it
        assert alone["match"]["events"] >= len(set(ids)) and alone["hits"]["events"] > 0
    finally:
        for proc in procs:
            proc.stop()
