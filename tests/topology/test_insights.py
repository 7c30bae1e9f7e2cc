"""Pattern matches and predictions in the graph, against the session's real FalkorDB (and the
neo4j-driver path over a private FalkorDB's Bolt listener): idempotent writes, event links,
IMPACTS edges, ranked reads, and the sink's dead-lettering of a match the graph cannot take.
Results are compared as exact sets."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from agents import sink
from agents.sink import write_insights_with_backoff
from app.stack import _terminate, start_falkordb
from core.events import K8sContext, ObjectRef, SemanticContext, UnifiedEvent
from core.ports import GraphQueryError, GraphUnavailable
from core.records import InsightBatch, Link, PatternMatch, Prediction
from core.settings import GraphSettings
from topology import insight_queries, queries
from topology.graph import GraphStore, open_graph
from topology.predictions import ImpactedResource, hypotheses_for, list_predictions
from topology.relations import Alias, ObjectNode, TopologyChange
from topology.writer import apply_changes

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
T0_MS = 1_772_366_400_000
CFG = K8sContext(kind="ConfigMap", name="cfg", namespace="shop", uid="u-cfg")
WEB1 = K8sContext(kind="Pod", name="web-1", namespace="shop", uid="u-web-1")
WEB2 = K8sContext(kind="Pod", name="web-2", namespace="shop", uid="u-web-2")
DB0 = K8sContext(kind="Pod", name="db-0", namespace="data", uid="u-db-0")


def event(eid: str, second: int, k8s: K8sContext | None = None) -> UnifiedEvent:
    return UnifiedEvent(id=eid, timestamp=T0 + timedelta(seconds=second), type="kubeapi", source="test",
                        semantic=SemanticContext(intent="test", category="test", narrative=eid), k8s=k8s)


def match(mid: str, **changes: object) -> PatternMatch:
    base = PatternMatch(id=mid, pattern="config-drift", version="1.2.0", scope="configmap:ConfigMap/shop/cfg",
                        matched_at=T0 + timedelta(seconds=30), window_start=T0, event_ids=[], count=3, boost=0.1,
                        priority=70)
    return msgspec.structs.replace(base, **changes)


def prediction(pid: str, mid: str, **changes: object) -> Prediction:
    base = Prediction(
        id=pid, match_id=mid, pattern="config-drift", version="1.2.0", type="crashloop", confidence=0.8,
        time_horizon_s=120.0, message="web-1 will crash-loop", scope="configmap:ConfigMap/shop/cfg",
        at=T0 + timedelta(seconds=30), due=T0 + timedelta(seconds=150), score=0.96, impact=["availability"],
        remediation="roll back the ConfigMap")
    return msgspec.structs.replace(base, **changes)


async def inventory(store: GraphStore) -> dict[str, list[tuple]]:
    """Every node and edge these tests touch, as sorted lists of tuples: a duplicate would show."""
    reads = {
        "patterns": insight_queries.ALL_PATTERNS, "predicted": insight_queries.ALL_PREDICTED,
        "impacts": insight_queries.ALL_IMPACTS, "links": insight_queries.ALL_EVENT_LINKS,
        "events": queries.ALL_EVENT_IDS, "affected": queries.ALL_AFFECTED, "resources": queries.ALL_RESOURCES,
    }
    found = {name: sorted(tuple(r.values()) for r in await store.query(q)) for name, q in reads.items()}
    found["matches"] = sorted((r["event"], r["pattern"], r["match_id"])
                              for r in await store.query(insight_queries.ALL_MATCHES))
    return found


def drift(mid: str = "m1", second: int = 30) -> PatternMatch:
    """A ConfigMap edit, then web-1 failing 19 s later: a config-drift sequence match."""
    return match(mid, matched_at=T0 + timedelta(seconds=second), event_ids=["e-cfg", "e-web1"],
                 evidence=[event("e-cfg", 1, CFG), event("e-web1", 20, WEB1)],
                 links=[Link(cause="e-cfg", effect="e-web1", delay_s=19.0)])


DRIFT_PREDICTION = prediction("p1", "m1", impacted=[
    ObjectRef(kind="Pod", name="web-1", namespace="shop", uid="u-web-1"),
    ObjectRef(kind="Service", name="front", namespace="shop")])


async def test_writing_the_same_matches_twice_leaves_one_copy(store: GraphStore) -> None:
    assert await store.write_insights([drift()], [DRIFT_PREDICTION]) == 2
    first = await inventory(store)
    assert first == {
        "patterns": [("config-drift", "1.2.0", 70, T0_MS + 30_000)],
        "matches": [("e-cfg", "config-drift", "m1"), ("e-web1", "config-drift", "m1")],
        "predicted": [("config-drift", "p1")],
        "impacts": [("p1", "Pod", "u-web-1"), ("p1", "Service", "Service:shop/front")],
        "links": [("CAUSED", "e-cfg", "e-web1", None), ("PRECEDED", "e-cfg", "e-web1", 19.0)],
        "events": [("e-cfg",), ("e-web1",)],
        "affected": [("e-cfg", "u-cfg"), ("e-web1", "u-web-1")],
        "resources": [("ConfigMap", "u-cfg"), ("Pod", "u-web-1"), ("Service", "Service:shop/front")],
    }
    props = await store.query(insight_queries.ALL_MATCHES)
    await store.write_insights([drift(), drift()], [DRIFT_PREDICTION])
    await store.write_insights([drift()], [DRIFT_PREDICTION, DRIFT_PREDICTION])
    assert await inventory(store) == first
    assert await store.query(insight_queries.ALL_MATCHES) == props
    assert await store.query(insight_queries.COUNT_PREDICTIONS) == [{"n": 1}]
    assert [r["event"] for r in props] == ["e-cfg", "e-web1"]
    assert all({k: v for k, v in r.items() if k != "event"} == {
        "pattern": "config-drift", "match_id": "m1", "scope": "configmap:ConfigMap/shop/cfg",
        "matched_at": T0_MS + 30_000, "window_start": T0_MS, "count": 3, "boost": 0.1} for r in props)


async def test_an_evidence_event_not_yet_written_is_created_once_with_its_affected_edge(store: GraphStore) -> None:
    await store.write_insights([drift()], [])
    (row,) = await store.query(queries.EVENT_TIMES, ids=["e-web1"])
    assert row["timestamp"] == T0_MS + 20_000
    # the event's own batch arrives later: written once, left as it is
    await store.write_events([event("e-web1", 20, WEB1), event("e-web2", 21, WEB2)])
    assert await store.query(queries.EVENT_TIMES, ids=["e-web1"]) == [row]
    assert (await inventory(store))["affected"] == [("e-cfg", "u-cfg"), ("e-web1", "u-web-1"), ("e-web2", "u-web-2")]
    rows = await store.query(queries.events_for_resource("Pod"), namespace="shop", name="web-1")
    assert [r["id"] for r in rows] == ["e-web1"]


async def test_links_chain_events_with_their_delay(store: GraphStore) -> None:
    chain = match("m-chain", event_ids=["a", "b", "c"],
                  evidence=[event("a", 0, CFG), event("b", 5, WEB1), event("c", 12, WEB2)],
                  links=[Link(cause="a", effect="b", delay_s=5.0), Link(cause="a", effect="c", delay_s=12.0),
                         Link(cause="a", effect="missing", delay_s=1.0)])
    await store.write_insights([chain], [])
    assert (await inventory(store))["links"] == [("CAUSED", "a", "b", None), ("CAUSED", "a", "c", None),
                                                 ("PRECEDED", "a", "b", 5.0), ("PRECEDED", "a", "c", 12.0)]
    (cause,) = await store.query(queries.CONTEXT_CAUSES, id="c")
    assert cause == {"chain": ["a", "c"]}
    assert ("missing",) not in (await inventory(store))["events"]  # never a bare Event for an unknown id


async def test_impacts_reach_known_nodes_placeholders_and_follow_an_alias(store: GraphStore) -> None:
    await store.write_events([event("e-db", 1, DB0)])
    p = prediction("p-db", "m9", scope="node:node-a",
                   impacted=[ObjectRef(kind="Pod", name="db-0", namespace="data", uid="u-db-0"),
                             ObjectRef(kind="Node", name="node-a"),
                             ObjectRef(kind="Widget", name="w", namespace="data")])
    await store.write_insights([], [p])
    assert (await inventory(store))["impacts"] == [("p-db", "Node", "Node:/node-a"), ("p-db", "Pod", "u-db-0"),
                                                   ("p-db", "Resource", "Widget:data/w")]
    (node,) = await store.query(queries.resource("Node"), namespace="", name="node-a")
    assert node["props"] == {"uid": "Node:/node-a", "kind": "Node", "name": "node-a"}
    (db,) = await store.query(queries.resource("Pod"), namespace="data", name="db-0")
    assert db["props"]["last_seen"] == T0_MS + 1000  # the known node is used, not touched
    (listed,) = await list_predictions(store, namespace="data")  # namespace from the impacted pod
    assert listed.namespace == "data"
    # the topology service learns node-a's uid: the IMPACTS edge moves with the events
    await apply_changes(store, [TopologyChange(
        upsert=[ObjectNode(kind="Node", uid="u-node-a", name="node-a")],
        aliases=[Alias(kind="Node", namespace="", name="node-a", synthetic_key="Node:/node-a", uid="u-node-a")])])
    assert ("p-db", "Node", "u-node-a") in (await inventory(store))["impacts"]
    assert ("p-db", "Node", "Node:/node-a") not in (await inventory(store))["impacts"]


async def test_a_replayed_older_match_does_not_move_the_pattern_back(store: GraphStore) -> None:
    await store.write_insights([drift("new", 60)], [])
    await store.write_insights([msgspec.structs.replace(drift("old", 10), version="1.0.0", priority=10)], [])
    assert (await inventory(store))["patterns"] == [("config-drift", "1.2.0", 70, T0_MS + 60_000)]


async def test_a_prediction_sent_again_after_a_newer_version_of_itself_stays_the_newer(store: GraphStore) -> None:
    # A diagnosis is one prediction updated in place, then resolved. A restarted worker sends its standing
    # diagnoses again with the first batch it reads, on that batch's partition: the sink may read the
    # resent (newer) version before an older one still in another partition.
    updated = prediction("p1", "m1", at=T0 + timedelta(seconds=40), message="web-1 failed 50 times")
    await store.write_insights([], [updated])
    await store.write_insights([], [prediction("p1", "m1", at=T0 + timedelta(seconds=30), message="49 times")])
    assert [(p.at, p.message) for p in await list_predictions(store)] == [(updated.at, "web-1 failed 50 times")]
    resolved = msgspec.structs.replace(updated, resolved_at=T0 + timedelta(seconds=90))
    for late in (updated, resolved, updated):  # the resolution stays whatever comes after it
        await store.write_insights([], [late])
    assert [p.resolved_at for p in await list_predictions(store)] == [resolved.resolved_at]
    # of two versions of the same moment, the resolution
    same = msgspec.structs.replace(updated, id="p2", match_id="m2", message="recovered at once")
    await store.write_insights([], [msgspec.structs.replace(same, resolved_at=same.at)])
    await store.write_insights([], [same])
    assert {p.id: p.resolved_at for p in await list_predictions(store)}["p2"] == same.at
    # of the same moment, the higher revision, whichever is written last (versions of one diagnosis
    # come on different partitions); and a resolution stays over the update of its revision
    rev2 = prediction("p3", "m3", at=T0, message="50 failures", revision=2)
    for version in (rev2, msgspec.structs.replace(rev2, message="47 failures", revision=1)):
        await store.write_insights([], [version])
    assert {p.id: p.message for p in await list_predictions(store)}["p3"] == "50 failures"
    await store.write_insights([], [msgspec.structs.replace(rev2, resolved_at=T0 + timedelta(seconds=5))])
    await store.write_insights([], [rev2])
    assert {p.id: p.resolved_at for p in await list_predictions(store)}["p3"] == T0 + timedelta(seconds=5)


async def test_an_episode_updated_in_place_keeps_when_it_was_first_predicted(store: GraphStore) -> None:
    """The matches of one ongoing incident share an id (agents/windows.py): the graph keeps one
    prediction, the newest, and when the episode's first came (`since`)."""
    first = prediction("p1", "m1")
    update = prediction("p1", "m1", at=T0 + timedelta(seconds=330), message="still failing", since=first.at)
    for version in (first, update, first):  # an older version sent again changes nothing
        await store.write_insights([], [version])
    assert [(p.at, p.since, p.message) for p in await list_predictions(store)] == [
        (update.at, first.at, "still failing")]


def ranked(pid: str, mid: str, second: int, score: float, *, pattern: str = "config-drift",
           scope: str = "namespace:shop", impacted: list[ObjectRef] | None = None) -> Prediction:
    at = T0 + timedelta(seconds=second)
    return prediction(pid, mid, pattern=pattern, scope=scope, at=at, due=at + timedelta(minutes=2), score=score,
                      impacted=impacted or [])


async def test_list_predictions_ranks_and_filters(store: GraphStore) -> None:
    await store.write_insights([], [
        ranked("a", "m1", 10, 0.5), ranked("b", "m2", 20, 0.9), ranked("c", "m3", 30, 0.5),
        ranked("d", "m4", 40, 0.7, pattern="oom-cascade"), ranked("e", "m5", 50, 0.99, scope="namespace:data"),
        ranked("f", "m6", 60, 0.6, scope="node:node-a")])
    ids = lambda predictions: [p.id for p in predictions]  # noqa: E731
    assert ids(await list_predictions(store)) == ["e", "b", "d", "f", "c", "a"]
    assert ids(await list_predictions(store, namespace="shop")) == ["b", "d", "c", "a"]
    assert ids(await list_predictions(store, namespace="shop", pattern="config-drift")) == ["b", "c", "a"]
    assert ids(await list_predictions(store, since=T0 + timedelta(seconds=20), until=T0 + timedelta(seconds=40))) == [
        "b", "c"]
    assert ids(await list_predictions(store, limit=2)) == ["e", "b"]
    assert await list_predictions(store, pattern="absent") == []
    (b,) = await list_predictions(store, namespace="shop", limit=1)
    assert (b.at, b.due, b.score, b.scope, b.remediation) == (
        T0 + timedelta(seconds=20), T0 + timedelta(seconds=140), 0.9, "namespace:shop", "roll back the ConfigMap")
    with pytest.raises(ValueError, match="limit"):
        await list_predictions(store, limit=0)


async def test_hypotheses_for_a_resource_are_all_kept_and_ranked(store: GraphStore) -> None:
    # web-1 crash-loops: three hypotheses fit. The config drift names web-1, and its match rests
    # on web-1's event; an OOM match rests on web-1's event only; a node pressure prediction
    # names web-1 only. A fourth prediction is about web-2 alone.
    oom = match("m-oom", pattern="oom-cascade", event_ids=["e-web1"], evidence=[event("e-web1", 20, WEB1)], links=[])
    predictions = [
        msgspec.structs.replace(DRIFT_PREDICTION, score=0.7),
        ranked("p-oom", "m-oom", 31, 0.9, pattern="oom-cascade"),
        ranked("p-node", "m-node", 32, 0.7, pattern="node-pressure", scope="node:node-a",
               impacted=[ObjectRef(kind="Pod", name="web-1", namespace="shop", uid="u-web-1")]),
        ranked("p-web2", "m-web2", 33, 0.99, pattern="probe-failure",
               impacted=[ObjectRef(kind="Pod", name="web-2", namespace="shop", uid="u-web-2")]),
    ]
    await store.write_insights([drift(), oom], predictions)
    found = await hypotheses_for(store, "Pod", "shop", "web-1")
    assert [(h.prediction.id, h.via) for h in found] == [
        ("p-oom", ["evidence"]), ("p-node", ["impacts"]), ("p1", ["impacts", "evidence"])]  # 0.7 tie: newest first
    assert found[2].prediction.impacted == [
        ImpactedResource(kind="Pod", name="web-1", namespace="shop", key="u-web-1"),
        ImpactedResource(kind="Service", name="front", namespace="shop", key="Service:shop/front")]
    assert [h.prediction.id for h in await hypotheses_for(store, "Pod", "shop", "web-1", limit=1)] == ["p-oom"]
    assert [h.prediction.id for h in await hypotheses_for(store, "ConfigMap", "shop", "cfg")] == ["p1"]
    assert [h.prediction.id for h in await hypotheses_for(store, "Pod", "shop", "web-2")] == ["p-web2"]
    assert await hypotheses_for(store, "Pod", "shop", "absent") == []


# --- the sink: backoff and dead letters, without Faust ----------------------------------------

class FakeRuntime:
    """What the sink's write helpers use of a Runtime: the graph, and dead letters (kept here)."""

    def __init__(self, graph: GraphStore) -> None:
        self.graph = graph
        self.dead: list[dict] = []

    async def dead_letter(self, **letter: object) -> None:
        self.dead.append(letter)


class Rejecting:
    """The real store, except that the graph rejects any write holding match `bad`."""

    def __init__(self, graph: GraphStore, bad: str) -> None:
        self._graph, self._bad, self.calls = graph, bad, 0

    async def write_insights(self, matches: list[PatternMatch], predictions: list[Prediction]) -> int:
        self.calls += 1
        if any(m.id == self._bad for m in matches):
            raise GraphQueryError(f"FalkorDB rejected query 'write_insights:Pod': match {self._bad}")
        return await self._graph.write_insights(matches, predictions)


async def test_an_invalid_match_is_dead_lettered_and_the_others_written(store: GraphStore) -> None:
    runtime = FakeRuntime(store)
    bad = msgspec.structs.replace(drift("m-bad"), boost=float("nan"))
    good = [drift("m1"), drift("m2", 40)]
    await write_insights_with_backoff(runtime, [bad, *good],  # type: ignore[arg-type]
                                      [DRIFT_PREDICTION, prediction("p-bad", "m-bad")])
    (letter,) = runtime.dead
    assert (letter["stage"], letter["where"]) == ("sink", "match m-bad")
    assert "invalid match" in letter["reason"] and "boost is nan" in letter["reason"]
    held = msgspec.msgpack.decode(letter["payload"], type=InsightBatch)
    assert ([m.id for m in held.matches], [p.id for p in held.predictions]) == (["m-bad"], ["p-bad"])
    assert {r["match_id"] for r in await store.query(insight_queries.ALL_MATCHES)} == {"m1", "m2"}
    assert [p.id for p in await list_predictions(store)] == ["p1"]


async def test_a_match_the_graph_rejects_is_dead_lettered_and_the_others_written(store: GraphStore) -> None:
    graph = Rejecting(store, bad="m2")
    runtime = FakeRuntime(graph)  # type: ignore[arg-type]
    matches = [drift("m1"), drift("m2", 40), drift("m3", 50)]
    await write_insights_with_backoff(runtime, matches, [DRIFT_PREDICTION])  # type: ignore[arg-type]
    (letter,) = runtime.dead
    assert letter["where"] == "match m2" and "graph rejected the match" in letter["reason"]
    assert {r["match_id"] for r in await store.query(insight_queries.ALL_MATCHES)} == {"m1", "m3"}
    assert graph.calls == 4  # the batch, then match by match


async def test_the_sink_holds_insights_while_the_graph_is_down(store: GraphStore, monkeypatch: pytest.MonkeyPatch,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    outages = [GraphUnavailable("down"), GraphUnavailable("still down")]

    class Flaky:
        async def write_insights(self, matches: list, predictions: list) -> int:
            if outages:
                raise outages.pop(0)
            return await store.write_insights(matches, predictions)

    monkeypatch.setattr(sink, "BACKOFF_FIRST_S", 0.01)
    runtime = FakeRuntime(Flaky())  # type: ignore[arg-type]
    await write_insights_with_backoff(runtime, [drift()], [DRIFT_PREDICTION])  # type: ignore[arg-type]
    assert runtime.dead == []
    retries = [r.getMessage() for r in caplog.records if r.name == "agents.sink"]
    assert len(retries) == 2 and all("holding 1 matches and 1 predictions and retrying" in m for m in retries)
    assert [p.id for p in await list_predictions(store)] == ["p1"]


# --- the neo4j driver path, over FalkorDB's experimental Bolt listener ----------------------

async def test_neo4j_store_writes_and_reads_insights_over_bolt(tmp_path: Path) -> None:
    server = start_falkordb(tmp_path, bolt_port=0)  # a private server: see test_graph's Bolt test
    try:
        graph = open_graph(GraphSettings(uri=f"bolt://127.0.0.1:{server.extra_ports['bolt']}", name="boltgraph"))
        try:
            for _ in range(2):
                assert await asyncio.wait_for(graph.write_insights([drift()], [DRIFT_PREDICTION]), 60) == 2
            found = await asyncio.wait_for(inventory(graph), 60)
            assert (found["matches"], found["predicted"], found["links"]) == (
                [("e-cfg", "config-drift", "m1"), ("e-web1", "config-drift", "m1")], [("config-drift", "p1")],
                [("CAUSED", "e-cfg", "e-web1", None), ("PRECEDED", "e-cfg", "e-web1", 19.0)])
            assert found["impacts"] == [("p1", "Pod", "u-web-1"), ("p1", "Service", "Service:shop/front")]
            hypotheses = await asyncio.wait_for(hypotheses_for(graph, "Pod", "shop", "web-1"), 60)
            assert [(h.prediction.id, h.via) for h in hypotheses] == [("p1", ["impacts", "evidence"])]
            # a provisional match withdrawn, in the same transaction path (WITHDRAW after the groups)
            early = msgspec.structs.replace(drift("m2", second=40), provisional=True)
            await asyncio.wait_for(graph.write_insights([early], [prediction("p2", "m2", provisional=True)]), 60)
            assert {p.id for p in await asyncio.wait_for(list_predictions(graph), 60)} == {"p1", "p2"}
            gone = match("m2", withdrawn=True, matched_at=T0 + timedelta(seconds=40))
            assert await asyncio.wait_for(graph.write_insights([gone], []), 60) == 1
            assert await asyncio.wait_for(inventory(graph), 60) == found
        finally:
            await asyncio.wait_for(graph.close(), 30)
    finally:
        _terminate(server.pid)


async def test_a_provisional_match_is_confirmed_in_place_or_withdrawn_with_its_predictions(store: GraphStore) -> None:
    # agents/windows.py sends a match ahead of the watermark (provisional), then the final
    # evaluation confirms it (the same id, final) or withdraws it: the graph then holds what a run
    # with final matches only would hold, and never drops a final match on a withdrawal
    early = msgspec.structs.replace(drift(), provisional=True)
    early_prediction = msgspec.structs.replace(DRIFT_PREDICTION, provisional=True)
    await store.write_insights([early], [early_prediction])
    [stored] = await list_predictions(store)
    assert stored.id == "p1" and stored.provisional
    await store.write_insights([drift()], [DRIFT_PREDICTION])  # confirmed
    confirmed = await inventory(store)
    [stored] = await list_predictions(store)
    assert not stored.provisional
    assert await store.query(insight_queries.ALL_MATCHES) == [
        {"event": e, "pattern": "config-drift", "match_id": "m1", "scope": "configmap:ConfigMap/shop/cfg",
         "matched_at": T0_MS + 30_000, "window_start": T0_MS, "count": 3, "boost": 0.1} for e in ("e-cfg", "e-web1")]
    withdrawn_final = match("m1", withdrawn=True, matched_at=T0 + timedelta(seconds=30))
    await store.write_insights([withdrawn_final], [])  # (never sent for a final match; it must not drop one)
    assert await inventory(store) == confirmed

    other = msgspec.structs.replace(drift("m2", second=40), provisional=True)
    other_prediction = prediction("p2", "m2", provisional=True, at=T0 + timedelta(seconds=40),
                                  impacted=[ObjectRef(kind="Pod", name="web-1", namespace="shop", uid="u-web-1")])
    await store.write_insights([other], [other_prediction])
    assert {p.id for p in await list_predictions(store)} == {"p1", "p2"}
    await store.write_insights([match("m2", withdrawn=True, matched_at=T0 + timedelta(seconds=40))], [])
    assert await inventory(store) == confirmed  # its prediction, IMPACTS and MATCHES edges gone; events kept
    # a provisional match and its withdrawal in one sink batch: the withdrawal is the newer version
    await store.write_insights([other, match("m2", withdrawn=True, matched_at=T0 + timedelta(seconds=40))],
                               [other_prediction])
    assert await inventory(store) == confirmed
    # a pattern only a withdrawn match named leaves no Pattern node behind
    lone = match("m3", pattern="oom-cascade", provisional=True, event_ids=["e-web1"])
    await store.write_insights([lone], [prediction("p3", "m3", pattern="oom-cascade", provisional=True)])
    assert len((await inventory(store))["patterns"]) == 2
    await store.write_insights([match("m3", pattern="oom-cascade", withdrawn=True)], [])
    assert await inventory(store) == confirmed
