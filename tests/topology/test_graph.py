"""The graph layer against real servers: the session's FalkorDB (native client), and a private
FalkorDB's Bolt listener for the neo4j-driver path. Results are compared as exact sets."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest
from falkordb.asyncio import FalkorDB

from app.stack import _terminate, free_port, start_falkordb
from core.events import K8sContext, KubernetesData, ObjectRef, SemanticContext, UnifiedEvent
from core.ports import GraphQueryError, GraphUnavailable
from core.settings import GraphSettings, Settings
from topology import queries
from topology.falkor import FalkorStore
from topology.graph import GraphStore, UnsupportedGraphURI, open_graph
from topology.model import NODE_KEYS, SECONDARY_INDEXES
from topology.neo4j_store import Neo4jStore

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
T0_MS = 1_772_366_400_000


def event(eid: str, second: int, *, k8s: K8sContext | None, reason: str = "", severity: str = "info",
          narrative: str = "", event_type: str = "") -> UnifiedEvent:
    return UnifiedEvent(
        id=eid, timestamp=T0 + timedelta(seconds=second), type="kubeapi", source="test",
        semantic=SemanticContext(intent="test", category="test", narrative=narrative or f"event {eid}",
                                 severity=severity),  # type: ignore[arg-type]
        k8s=k8s, kubernetes=KubernetesData(action="EVENT", reason=reason, event_type=event_type) if reason else None)


def pod(name: str, uid: str, **extra: object) -> K8sContext:
    return K8sContext(kind="Pod", name=name, namespace="shop", uid=uid, **extra)  # type: ignore[arg-type]


SAMPLE = [
    event("e-web1-a", 1, k8s=pod("web-1", "u-web-1", labels={"app": "web"}, node="node-a",
                               owner=ObjectRef(kind="ReplicaSet", name="web-rs", uid="u-rs")), reason="Pulled"),
    event("e-web1-b", 5, k8s=pod("web-1", "u-web-1"), reason="BackOff", severity="warning", event_type="Warning"),
    event("e-web2", 2, k8s=pod("web-2", "u-web-2"), reason="Started"),
    event("e-cfg", 3, k8s=K8sContext(kind="ConfigMap", name="app-config", namespace="shop", uid="u-cfg"),
          reason="Updated"),
    event("e-node", 4, k8s=K8sContext(kind="Node", name="node-a", uid="u-node-a"), reason="NodeNotReady",
          severity="error"),
    event("e-widget", 6, k8s=K8sContext(kind="Widget", name="gizmo", namespace="shop")),
    event("e-kernel", 7, k8s=None),
]
SAMPLE_EVENTS = {(e.id,) for e in SAMPLE}
SAMPLE_RESOURCES = {("Pod", "u-web-1"), ("Pod", "u-web-2"), ("ConfigMap", "u-cfg"), ("Node", "u-node-a"),
                    ("Resource", "Widget:shop/gizmo")}
SAMPLE_AFFECTED = {("e-web1-a", "u-web-1"), ("e-web1-b", "u-web-1"), ("e-web2", "u-web-2"), ("e-cfg", "u-cfg"),
                   ("e-node", "u-node-a"), ("e-widget", "Widget:shop/gizmo")}


async def graph_sets(store: GraphStore) -> tuple[set, set, set]:
    events = {(r["id"],) for r in await store.query(queries.ALL_EVENT_IDS)}
    resources = {(r["label"], r["uid"]) for r in await store.query(queries.ALL_RESOURCES)}
    affected = {(r["event"], r["uid"]) for r in await store.query(queries.ALL_AFFECTED)}
    return events, resources, affected


def graph_settings(settings: Settings, **changes: object) -> GraphSettings:
    return msgspec.structs.replace(settings.graph, name=f"t_{uuid.uuid4().hex[:12]}", **changes)


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[GraphStore]:
    graph = open_graph(graph_settings(settings))
    await graph.setup_schema()
    yield graph
    await graph.clear()
    await graph.close()


async def test_write_reads_back_exactly(store: GraphStore) -> None:
    assert await store.write_events(SAMPLE) == len(SAMPLE)
    assert await graph_sets(store) == (SAMPLE_EVENTS, SAMPLE_RESOURCES, SAMPLE_AFFECTED)


async def test_writing_the_same_batch_again_changes_nothing(store: GraphStore) -> None:
    await store.write_events(SAMPLE)
    before = await graph_sets(store)
    props_before = await store.query(queries.resource("Pod"), namespace="shop", name="web-1")
    shuffled = SAMPLE[:]
    random.Random(3).shuffle(shuffled)
    await store.write_events(SAMPLE)
    await store.write_events(shuffled)
    assert await graph_sets(store) == before == (SAMPLE_EVENTS, SAMPLE_RESOURCES, SAMPLE_AFFECTED)
    assert await store.query(queries.resource("Pod"), namespace="shop", name="web-1") == props_before
    ids = [e.id for e in SAMPLE]
    assert await store.query(queries.COUNT_EVENTS, ids=ids + ["absent"]) == [{"n": len(SAMPLE)}]
    assert await store.query(queries.COUNT_AFFECTED, ids=ids) == [{"n": len(SAMPLE_AFFECTED)}]
    assert await store.query(queries.COUNT_ALL_EVENTS) == [{"n": len(SAMPLE)}]


async def test_setup_schema_twice_keeps_one_index_per_label(store: GraphStore) -> None:
    await store.setup_schema()
    await store.setup_schema()
    rows = await store.query(queries.FALKOR_LIST_INDEXES)
    indexes = sorted((r["label"], prop) for r in rows for prop in r["properties"])
    assert indexes == sorted([*NODE_KEYS.items(), *SECONDARY_INDEXES])  # each once: no duplicate


async def test_batches_of_three_write_all_ten(settings: Settings) -> None:
    graph = open_graph(graph_settings(settings, batch_size=3))
    events = [event(f"b{i}", i, k8s=pod(f"web-{i % 4}", f"u{i % 4}")) for i in range(9)] + [event("b9", 9, k8s=None)]
    try:
        assert await graph.write_events(events) == 10
        assert await graph_sets(graph) == ({(e.id,) for e in events}, {("Pod", f"u{i}") for i in range(4)},
                                           {(f"b{i}", f"u{i % 4}") for i in range(9)})
    finally:
        await graph.clear()
        await graph.close()


async def test_read_queries(store: GraphStore) -> None:
    await store.write_events(SAMPLE)
    rows = await store.query(queries.events_for_resource("Pod"), kind="Pod", namespace="shop", name="web-1")
    assert [(r["id"], r["timestamp"], r["reason"], r["severity"]) for r in rows] == [
        ("e-web1-a", T0_MS + 1000, "Pulled", "info"), ("e-web1-b", T0_MS + 5000, "BackOff", "warning")]
    rows = await store.query(queries.events_for_resource("Node"), kind="Node", namespace="", name="node-a")
    assert [r["id"] for r in rows] == ["e-node"]
    rows = await store.query(queries.events_for_resource("Widget"), kind="Widget", namespace="shop", name="gizmo")
    assert [r["id"] for r in rows] == ["e-widget"]

    (web1,) = await store.query(queries.resource("Pod"), kind="Pod", namespace="shop", name="web-1")
    assert web1 == {"label": "Pod", "uid": "u-web-1", "props": {
        "uid": "u-web-1", "kind": "Pod", "name": "web-1", "namespace": "shop", "node": "node-a",
        "labels": ["app=web"], "owner_kind": "ReplicaSet", "owner_name": "web-rs", "owner_uid": "u-rs",
        "last_seen": T0_MS + 5000}}

    assert await store.query(queries.EVENT_IDS_IN_NAMESPACE, namespace="shop") == [
        {"id": i} for i in sorted(["e-web1-a", "e-web1-b", "e-web2", "e-cfg", "e-widget"])]
    assert await store.query(queries.NAMESPACE_SUMMARY, namespace="shop") == [
        {"kind": "ConfigMap", "name": "app-config", "uid": "u-cfg", "node": None, "events": 1,
         "last_reason": "Updated", "last_intent": "test", "warnings": 0},
        {"kind": "Pod", "name": "web-1", "uid": "u-web-1", "node": "node-a", "events": 2, "last_reason": "BackOff",
         "last_intent": "test", "warnings": 1},
        {"kind": "Pod", "name": "web-2", "uid": "u-web-2", "node": None, "events": 1, "last_reason": "Started",
         "last_intent": "test", "warnings": 0},
        {"kind": "Widget", "name": "gizmo", "uid": "Widget:shop/gizmo", "node": None, "events": 1,
         "last_reason": None, "last_intent": "test", "warnings": 0},
    ]
    times = await store.query(queries.EVENT_TIMES, ids=["e-web2"])
    assert [(r["id"], r["timestamp"]) for r in times] == [("e-web2", T0_MS + 2000)]
    assert times[0]["ingested_at"] > T0_MS


async def test_an_older_event_never_moves_a_resource_back(store: GraphStore) -> None:
    await store.write_events([event("new", 50, k8s=pod("web-1", "u1", node="node-new", labels={"v": "2"}))])
    await store.write_events([event("old", 10, k8s=pod("web-1", "u1", node="node-old", labels={"v": "1"}))])
    (row,) = await store.query(queries.resource("Pod"), namespace="shop", name="web-1")
    assert (row["props"]["last_seen"], row["props"]["node"], row["props"]["labels"]) == (
        T0_MS + 50_000, "node-new", ["v=2"])
    assert {(r["event"], r["uid"]) for r in await store.query(queries.ALL_AFFECTED)} == {("new", "u1"), ("old", "u1")}
    # a newer event without a node keeps the node it does not know about
    await store.write_events([event("newest", 60, k8s=pod("web-1", "u1"))])
    (row,) = await store.query(queries.resource("Pod"), namespace="shop", name="web-1")
    assert (row["props"]["last_seen"], row["props"]["node"]) == (T0_MS + 60_000, "node-new")


async def test_strings_survive_the_round_trip(store: GraphStore) -> None:
    tricky = ['quote " and \' apostrophe', "back\\slash\\", "new\nline\ttab\r", "ünïcödé 日本 🚀",
              "\x01\x1b[31mansi\x1b[0m\x7f", '{"k": 1}', ',"x":', "\\u0041 stays literal", "`backtick`"]
    events = [event(f"s{i}", i, k8s=pod(f"web-{i}", f"u-s{i}", labels={"app": text}), narrative=text)
              for i, text in enumerate(tricky)]
    await store.write_events(events)
    for i, text in enumerate(tricky):
        rows = await store.query(queries.events_for_resource("Pod"), namespace="shop", name=f"web-{i}")
        assert [r["narrative"] for r in rows] == [text]
        (res,) = await store.query(queries.resource("Pod"), namespace="shop", name=f"web-{i}")
        assert res["props"]["labels"] == [f"app={text}"]


async def test_reading_a_graph_never_written_is_empty(settings: Settings) -> None:
    graph = open_graph(graph_settings(settings))
    try:
        assert await graph.query(queries.ALL_EVENT_IDS) == []
    finally:
        await graph.close()


async def test_a_rejected_query_raises_graph_query_error(store: GraphStore) -> None:
    with pytest.raises(GraphQueryError, match="'broken'"):
        await store.query(queries.Query("broken", "RETURN nope("))
    with pytest.raises(GraphQueryError, match="Read-only"):  # query() is read only
        await store.query(queries.Query("sneaky_write", "CREATE (:Event {id: 'x'})"))


@pytest.mark.parametrize("scheme", ["falkordb", "bolt"])
async def test_an_unreachable_server_raises_graph_unavailable(scheme: str) -> None:
    graph = open_graph(GraphSettings(uri=f"{scheme}://127.0.0.1:{free_port()}", name="nowhere"))
    try:
        with pytest.raises(GraphUnavailable, match="unreachable after"):
            await graph.write_events(SAMPLE[:1])
    finally:
        await graph.close()


async def test_open_graph_picks_the_backend_by_scheme() -> None:
    for uri, cls in [("falkordb://h:1", FalkorStore), ("redis://h:1", FalkorStore), ("bolt://h:1", Neo4jStore),
                     ("neo4j://h:1", Neo4jStore), ("bolt+s://h:1", Neo4jStore), ("neo4j+s://h:1", Neo4jStore)]:
        graph = open_graph(GraphSettings(uri=uri))
        assert isinstance(graph, cls), uri
        await graph.close()
    with pytest.raises(UnsupportedGraphURI, match="postgres://db:5432"):
        open_graph(GraphSettings(uri="postgres://db:5432"))


# --- the neo4j driver path, over FalkorDB's experimental Bolt listener ----------------------

async def test_neo4j_store_over_bolt(tmp_path: Path) -> None:
    server = start_falkordb(tmp_path, bolt_port=0)  # waits until the Bolt port answers
    port = server.extra_ports["bolt"]
    try:
        # The listener's limits: ~4 KB per query+params, no quotes/backslashes in strings; and
        # after a Bolt GOODBYE (driver close) the next new connection to the server, Bolt or
        # Redis, hangs. So every connection is opened before the driver is closed, last.
        events = [event("bolt-1", 1, k8s=pod("web-1", "u-b1"), reason="Pulled"),
                  event("bolt-2", 2, k8s=pod("web-1", "u-b1"), reason="Started"),
                  event("bolt-3", 3, k8s=K8sContext(kind="Node", name="node-b", uid="u-nb"), reason="Ready"),
                  # a kubelet's Node Event, without the Node's uid: joins the Node of that name
                  event("bolt-4", 4, k8s=K8sContext(kind="Node", name="node-b", namespace="default"),
                        reason="Rebooted")]
        expected = ({(e.id,) for e in events}, {("Pod", "u-b1"), ("Node", "u-nb")},
                    {("bolt-1", "u-b1"), ("bolt-2", "u-b1"), ("bolt-3", "u-nb"), ("bolt-4", "u-nb")})
        graph = open_graph(GraphSettings(uri=f"bolt://127.0.0.1:{port}", name="boltgraph", batch_size=1))
        assert isinstance(graph, Neo4jStore)
        try:
            assert await asyncio.wait_for(graph.write_events(events), 60) == 4
            assert await asyncio.wait_for(graph_sets(graph), 60) == expected
            rows = await asyncio.wait_for(graph.query(queries.events_for_resource("Pod"), namespace="shop",
                                                      name="web-1"), 60)
            assert [(r["id"], r["timestamp"], r["reason"]) for r in rows] == [
                ("bolt-1", T0_MS + 1000, "Pulled"), ("bolt-2", T0_MS + 2000, "Started")]

            # The same data through the native client on the Redis port. The listener ignores
            # `database=` and writes to a graph of its own, so find it by listing the graphs.
            client = FalkorDB(host="127.0.0.1", port=server.port, socket_timeout=30)
            try:
                names = await client.list_graphs()
            finally:
                await client.aclose()
            assert len(names) == 1, names
            native = FalkorStore(GraphSettings(uri=f"falkordb://127.0.0.1:{server.port}", name=names[0]))
            try:
                assert await asyncio.wait_for(graph_sets(native), 60) == expected
                (res,) = await native.query(queries.resource("Pod"), namespace="shop", name="web-1")
                assert res["props"]["last_seen"] == T0_MS + 2000
            finally:
                await native.close()
        finally:
            await asyncio.wait_for(graph.close(), 30)
    finally:
        _terminate(server.pid)
