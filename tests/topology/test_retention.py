"""Retention of Event nodes (`topology.retention`) against the session's real FalkorDB: what goes,
what stays (cited events, changes under the cap), oldest first, and every deletion counted."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.events import K8sContext, SemanticContext, UnifiedEvent
from core.records import Link, PatternMatch
from core.settings import GraphSettings
from topology import queries, retention
from topology.graph import GraphStore
from topology.retention import EventRetention, over_cap, pruned_events

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
WALL = 1_800_000_000.0  # the ingest clock of generation 0 (seconds); generation g is written g minutes later
POD = K8sContext(kind="Pod", name="web-1", namespace="shop", uid="u-web-1")
CFG = K8sContext(kind="ConfigMap", name="cfg", namespace="shop", uid="u-cfg")


def event(eid: str, *, intent: str = "crash-loop", k8s: K8sContext = POD) -> UnifiedEvent:
    return UnifiedEvent(id=eid, timestamp=T0, type="kubeapi", source="test",
                        semantic=SemanticContext(intent=intent, category="c", narrative=eid), k8s=k8s)


async def write_generations(store: GraphStore, monkeypatch: pytest.MonkeyPatch, generations: int = 3,
                            size: int = 10) -> None:
    """Generation g: events g-0 .. g-9, written g minutes after WALL; g0-0 is a ConfigMap edit
    (a change), g0-1 and g0-2 are a match's evidence (cause -> effect)."""
    for g in range(generations):
        monkeypatch.setattr("topology.rows.time.time", lambda g=g: WALL + 60 * g)
        batch = [event(f"g{g}-{i}") for i in range(size)]
        if g == 0:
            batch[0] = event("g0-0", intent="config-change", k8s=CFG)
        await store.write_events(batch)
    cited = PatternMatch(id="m1", pattern="p", version="1", scope="s", matched_at=T0, window_start=T0,
                         event_ids=["g0-1", "g0-2"], count=2, evidence=[event("g0-1"), event("g0-2")],
                         links=[Link(cause="g0-1", effect="g0-2", delay_s=1.0)])
    await store.write_insights([cited], [])
    monkeypatch.undo()


async def event_ids(store: GraphStore) -> set[str]:
    return {row["id"] for row in await store.query(queries.ALL_EVENT_IDS)}


def test_over_cap_deletes_down_to_the_low_water_mark() -> None:
    assert over_cap(100, 0) == 0 and over_cap(100, 100) == 0
    assert over_cap(101, 100) == 101 - 90


async def test_the_cap_deletes_the_oldest_and_keeps_cited_events_and_changes(
        store: GraphStore, monkeypatch: pytest.MonkeyPatch) -> None:
    await write_generations(store, monkeypatch)
    keeper = EventRetention(store, GraphSettings(max_events=20), clock=lambda: WALL + 600)
    keeper.step_ms = 1_000
    done = await keeper.prune()
    # 30 events over a cap of 20: down to 18, so 12 go. Generation 0 has 7 deletable ones (the
    # change and the match's two stay), the 5 others come from generation 1, none from generation 2.
    assert (done.by_cap, done.by_age, done.total) == (12, 0, 12)
    left = await event_ids(store)
    assert {"g0-0", "g0-1", "g0-2"} <= left
    assert not {f"g0-{i}" for i in range(3, 10)} & left
    assert len({f"g1-{i}" for i in range(10)} & left) == 5
    assert {f"g2-{i}" for i in range(10)} <= left
    assert await pruned_events(store) == 12 and len(left) + 12 == 30
    # under the cap now: the next round deletes nothing
    assert (await keeper.prune()).by_cap == 0


async def test_age_deletes_what_was_written_before_the_cutoff_but_cited_events(
        store: GraphStore, monkeypatch: pytest.MonkeyPatch) -> None:
    await write_generations(store, monkeypatch)
    # 150 s after generation 0 with a retention of 90 s: written before WALL + 60 goes
    done = await EventRetention(store, GraphSettings(retention_s=90), clock=lambda: WALL + 150).prune()
    left = await event_ids(store)
    assert done.by_age == 8  # the change goes too: age spares only what a match cites
    assert left == {"g0-1", "g0-2"} | {f"g{g}-{i}" for g in (1, 2) for i in range(10)}
    assert await pruned_events(store) == 8


async def test_a_round_on_an_empty_graph_or_with_retention_off_does_nothing(store: GraphStore) -> None:
    assert not EventRetention(store, GraphSettings()).enabled
    done = await EventRetention(store, GraphSettings(max_events=5, retention_s=60)).prune()
    assert (done.by_age, done.by_cap) == (0, 0)
    assert await pruned_events(store) == 0


async def test_the_cap_walks_over_a_gap_of_ingest_time_in_few_statements(
        store: GraphStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Generations an hour apart: the floor jumps over the empty hour instead of stepping through it."""
    for g, at in enumerate((WALL, WALL + 3600)):
        monkeypatch.setattr("topology.rows.time.time", lambda at=at: at)
        await store.write_events([event(f"h{g}-{i}") for i in range(10)])
    monkeypatch.undo()
    keeper = EventRetention(store, GraphSettings(max_events=10), clock=lambda: WALL + 7200)
    done = await keeper.prune()
    assert done.by_cap == 11  # 20 -> 9
    assert len(await event_ids(store) & {f"h1-{i}" for i in range(10)}) == 9
    assert keeper.statements < 20 < retention.MAX_STATEMENTS


def test_settings_refuse_a_negative_retention() -> None:
    with pytest.raises(ValueError, match="graph.retention_s"):
        GraphSettings(max_events=-1)
