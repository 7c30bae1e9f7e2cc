"""Topology changes applied to a real FalkorDB: the graph holds exactly the index's edges, through
updates, deletions, late objects and replays."""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path

import msgspec
import pytest

from core.settings import Settings
from topology import queries
from topology.graph import open_graph
from topology.index import ObjectIndex
from topology.relations import Edge, ObjectNode, TopologyChange
from topology.writer import apply_changes, coalesce

SCENARIO = Path(__file__).resolve().parents[2] / "patterns" / "scenarios" / "configmap-crashloop"


def objects() -> list[dict]:
    return json.loads((SCENARIO / "objects.json").read_text())["items"]


@pytest.fixture
async def graph(settings: Settings):
    store = open_graph(msgspec.structs.replace(settings.graph, name=f"topo_{uuid.uuid4().hex[:10]}"))
    await store.setup_schema()
    yield store
    await store.clear()
    await store.close()


async def graph_edges(graph) -> set[tuple[str, str, str, str]]:
    return {(r["type"], r["src"], r["dst"], r["id"]) for r in await graph.query(queries.ALL_TOPOLOGY_EDGES)}


def index_edges(index: ObjectIndex) -> set[tuple[str, str, str, str]]:
    return {(e.type, e.src_key, e.dst_key, e.id) for e in index.edges()}


async def test_graph_matches_the_index_through_changes(graph) -> None:
    index = ObjectIndex()
    items = objects()
    # the ConfigMap last: pods first mount a placeholder, then the alias folds it into the real node
    items.sort(key=lambda o: o["kind"] == "ConfigMap")
    await apply_changes(graph, [index.add(o) for o in items])
    assert await graph_edges(graph) == index_edges(index) and len(index_edges(index)) == 32
    rows = await graph.query(queries.resource("ConfigMap"), namespace="shop", name="nginx-config")
    assert len(rows) == 1 and rows[0]["uid"] != "ConfigMap:shop/nginx-config"  # placeholder folded away

    pod = next(o for o in items if o["kind"] == "Pod")
    relabelled = copy.deepcopy(pod)
    relabelled["metadata"]["labels"] = {"app": "other"}
    await apply_changes(graph, [index.add(relabelled)])
    assert await graph_edges(graph) == index_edges(index)  # SELECTS from frontend is gone
    assert not any(t == "SELECTS" and d == pod["metadata"]["uid"] for t, _, d, _ in await graph_edges(graph))

    await apply_changes(graph, [index.remove(relabelled)])
    assert await graph_edges(graph) == index_edges(index)
    [gone] = await graph.query(queries.resource("Pod"), namespace="shop", name=pod["metadata"]["name"])
    assert gone["props"]["deleted"] is True  # the node stays for its events' history

    before = await graph_edges(graph)
    await apply_changes(graph, [index.add(o) for o in items if o is not pod])  # a replay: nothing new
    assert await graph_edges(graph) == before


def edge(i: int) -> Edge:
    return Edge(type="MOUNTS", src_kind="Pod", src_key=f"p{i}", dst_kind="ConfigMap", dst_key="cm")


def test_coalesce_keeps_the_net_effect() -> None:
    node = ObjectNode(kind="Pod", uid="p1", name="p1", namespace="shop")
    net = coalesce([TopologyChange(upsert=[node], add_edges=[edge(1), edge(2)]),
                    TopologyChange(remove_edges=[edge(1)], add_edges=[edge(3)]),
                    TopologyChange(deleted=[node], remove_edges=[edge(3)], add_edges=[edge(3)])])
    assert [e.id for e in net.add_edges] == [edge(2).id, edge(3).id]
    assert [e.id for e in net.remove_edges] == [edge(1).id]
    assert net.deleted == [node] and net.upsert == []
