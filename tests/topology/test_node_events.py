"""The kubelet's Node Events join the real Node in the graph (the session's real FalkorDB).

The kubelet names its Node in the Events it reports with the node's name as `involvedObject.uid`
(it does not know the Node object's uid). Keyed by that "uid", they used to collect on a second
Node of the same name, and `tapio explain node/<name>` showed the real Node's events only.
"""

from __future__ import annotations

from agents.enrich import enrich_event
from agents.normalize import normalize_event
from core.events import UnifiedEvent
from core.kube.objects import raw_event_from_object
from topology import queries
from topology.graph import GraphStore
from topology.index import ObjectIndex
from topology.writer import apply_changes

NODE_UID = "8d4c1a52-7b0e-4c3e-9f1d-2a6b5c4d3e21"


def node_object() -> dict:
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "worker-1", "uid": NODE_UID, "resourceVersion": "500",
                         "creationTimestamp": "2026-11-20T08:00:00Z"},
            "status": {"conditions": [{"type": "Ready", "status": "True",
                                       "lastTransitionTime": "2026-11-20T08:01:00Z"}]}}


def kubelet_event(name: str, reason: str, at: str, *, type_: str = "Normal") -> dict:
    """A core/v1 Event as the kubelet of worker-1 reports it about its own Node."""
    return {"apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"worker-1.{name}", "namespace": "default", "uid": f"uid-{name}",
                         "resourceVersion": "600", "creationTimestamp": at},
            "involvedObject": {"kind": "Node", "name": "worker-1", "uid": "worker-1"},
            "reason": reason, "message": f"Node worker-1 status is now: {reason}", "type": type_,
            "source": {"component": "kubelet", "host": "worker-1"}, "count": 1,
            "firstTimestamp": at, "lastTimestamp": at}


def unified(obj: dict, action: str) -> UnifiedEvent:
    return normalize_event(enrich_event(raw_event_from_object(obj, action=action, source="test")))


async def node_rows(store: GraphStore) -> list[tuple[str, str]]:
    return sorted((r["label"], r["uid"]) for r in await store.query(queries.ALL_RESOURCES) if r["label"] == "Node")


async def test_kubelet_node_events_join_the_real_node(store: GraphStore) -> None:
    early = unified(kubelet_event("a1", "NodeHasSufficientMemory", "2026-11-20T08:00:30Z"), "EVENT")
    assert early.k8s is not None and early.k8s.uid == ""  # a uid equal to the Node's name is no uid
    await store.write_events([early])  # before the Node object is known: on the name's node
    # the topology service sees the Node: its node, and what hung on the name folded into it
    index = ObjectIndex()
    await apply_changes(store, [index.add(node_object())])
    await store.write_events([unified(node_object(), "SNAPSHOT")])
    later = [unified(kubelet_event(f"b{i}", reason, f"2026-11-20T09:0{i}:00Z", type_=type_), "EVENT")
             for i, (reason, type_) in enumerate((("NodeNotReady", "Normal"), ("Rebooted", "Warning"),
                                                  ("NodeReady", "Normal")))]
    await store.write_events(later)
    assert await node_rows(store) == [("Node", NODE_UID)]  # one Node, no twin keyed by its name
    events = await store.query(queries.events_for_resource("Node"), namespace="", name="worker-1")
    assert {r["id"] for r in events} == {early.id, *(e.id for e in later), unified(node_object(), "SNAPSHOT").id}
    [node] = await store.query(queries.resource("Node"), namespace="", name="worker-1")
    assert node["uid"] == NODE_UID


async def test_a_node_recreated_under_its_name_gets_the_events_not_its_deleted_self(store: GraphStore) -> None:
    index = ObjectIndex()
    old = node_object()
    await apply_changes(store, [index.add(old)])
    await apply_changes(store, [index.remove(old)])
    new = node_object()
    new["metadata"]["uid"] = "0b7e6f5a-1c2d-4e3f-8a9b-0c1d2e3f4a5b"
    await apply_changes(store, [index.add(new)])
    event = unified(kubelet_event("c1", "NodeReady", "2026-11-20T10:00:00Z"), "EVENT")
    await store.write_events([event])
    affected = {(r["event"], r["uid"]) for r in await store.query(queries.ALL_AFFECTED)}
    assert affected == {(event.id, new["metadata"]["uid"])}
    assert await node_rows(store) == sorted([("Node", NODE_UID), ("Node", new["metadata"]["uid"])])
