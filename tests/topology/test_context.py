"""Context revelation on a real FalkorDB: a ConfigMap edit and the crash-looping pods behind a service."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from core.events import K8sContext, KubernetesData, SemanticContext, UnifiedEvent
from core.settings import Settings
from topology import queries
from topology.context import ContextError, reveal_context
from topology.graph import open_graph

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def ev(eid: str, second: int, kind: str, name: str, uid: str, reason: str, *, node: str = "",
       intent: str = "") -> UnifiedEvent:
    return UnifiedEvent(id=eid, timestamp=T0 + timedelta(seconds=second), type="kubeapi", source="test",
                        semantic=SemanticContext(intent=intent or reason.lower(), category="test",
                                                 narrative=f"{name}: {reason}"),
                        k8s=K8sContext(kind=kind, name=name, namespace="shop", uid=uid, node=node),
                        kubernetes=KubernetesData(action="EVENT", reason=reason))


EVENTS = [
    ev("cm-edit", 0, "ConfigMap", "nginx-config", "u-cm", "Updated", intent="config-change"),
    ev("p1-backoff", 40, "Pod", "nginx-1", "u-p1", "BackOff", node="node-a"),
    ev("p1-unhealthy", 35, "Pod", "nginx-1", "u-p1", "Unhealthy", node="node-a"),
    ev("p2-backoff", 50, "Pod", "nginx-2", "u-p2", "BackOff", node="node-b"),
    ev("p1-old", -900, "Pod", "nginx-1", "u-p1", "Started", node="node-a"),  # outside the 5 min window
    ev("node-a-pressure", 20, "Node", "node-a", "u-na", "NodeHasDiskPressure"),
]
EDGES = {  # (relation, src label, dst label): [(src uid, dst uid)]
    ("OWNS", "Deployment", "ReplicaSet"): [("u-dep", "u-rs")],
    ("OWNS", "ReplicaSet", "Pod"): [("u-rs", "u-p1"), ("u-rs", "u-p2")],
    ("RUNS_ON", "Pod", "Node"): [("u-p1", "u-na"), ("u-p2", "u-nb")],
    ("MOUNTS", "Pod", "ConfigMap"): [("u-p1", "u-cm"), ("u-p2", "u-cm")],
    ("SELECTS", "Service", "Pod"): [("u-svc", "u-p1"), ("u-svc", "u-p2")],
    ("ROUTES_TO", "Ingress", "Service"): [("u-ing", "u-svc")],
}


@pytest.fixture
async def graph(settings: Settings):
    store = open_graph(msgspec.structs.replace(settings.graph, name=f"ctx_{uuid.uuid4().hex[:10]}"))
    await store.setup_schema()
    await store.write_events(EVENTS)
    for (relation, src, dst), pairs in EDGES.items():
        await store.execute(queries.link_objects(relation, src, dst), rows=[[a, b, f"{a}-{relation}->{b}", {}]
                                                                           for a, b in pairs])
    await store.execute(queries.link_objects("CAUSED", "Event", "Event"), rows=[["cm-edit", "p1-unhealthy", "c1", {}],
                                                                                ["p1-unhealthy", "p1-backoff", "c2", {}]])
    yield store
    await store.clear()
    await store.close()


async def test_context_of_a_crash_looping_pod(graph) -> None:
    ctx = await reveal_context(graph, "p1-backoff")
    assert ctx.event.id == "p1-backoff" and ctx.event.reason == "BackOff"
    assert [(r.label, r.uid, r.node) for r in ctx.affected] == [("Pod", "u-p1", "node-a")]
    assert [(o.label, o.uid, o.distance) for o in ctx.owners] == [("ReplicaSet", "u-rs", 1), ("Deployment", "u-dep", 2)]
    deps = {(d.label, d.uid, d.distance) for d in ctx.dependencies}
    # the mounted ConfigMap and the selecting Service (1 hop), the sibling pod and the Ingress (2 hops)
    assert deps == {("ConfigMap", "u-cm", 1), ("Service", "u-svc", 1), ("Pod", "u-p2", 2), ("Ingress", "u-ing", 2)}
    correlated = {(c.event.id, c.on_label) for c in ctx.correlated}
    # same pod within 5 min, its ConfigMap's edit, its node's pressure; not the old start, not pod 2's own events
    assert correlated == {("p1-unhealthy", "Pod"), ("cm-edit", "ConfigMap"), ("node-a-pressure", "Node")}
    assert ctx.causes[0] == ["cm-edit", "p1-unhealthy", "p1-backoff"]
    assert ctx.consequences == []
    assert ctx.previous is None  # no earlier BackOff under the same owner


async def test_previous_occurrence_on_a_sibling(graph) -> None:
    await graph.write_events([ev("p2-old-backoff", -3600, "Pod", "nginx-2", "u-p2", "BackOff", node="node-b")])
    ctx = await reveal_context(graph, "p1-backoff")
    assert ctx.previous is not None and ctx.previous.event.id == "p2-old-backoff"
    assert (ctx.previous.on_label, ctx.previous.on_name) == ("Pod", "nginx-2")


async def test_consequences_of_the_config_edit(graph) -> None:
    ctx = await reveal_context(graph, "cm-edit")
    assert [(c.id, ) for c in ctx.consequences] == [("p1-unhealthy",), ("p1-backoff",)]
    assert {(d.label, d.uid) for d in ctx.dependencies} >= {("Pod", "u-p1"), ("Pod", "u-p2"), ("Service", "u-svc")}


async def test_unknown_event_is_a_clear_error(graph) -> None:
    with pytest.raises(ContextError, match="no event 'nope'"):
        await reveal_context(graph, "nope")


def test_edge_queries_only_take_the_model_vocabulary() -> None:
    with pytest.raises(ValueError, match="unknown relation"):
        queries.link_objects("DROP", "Pod", "Node")
    with pytest.raises(ValueError, match="unknown label"):
        queries.link_objects("OWNS", "Pod) DETACH DELETE (x", "Node")


async def test_tree_names_the_change_behind_the_crash(graph) -> None:
    from topology.narrative import render_tree

    ctx = await reveal_context(graph, "p2-backoff")  # no CAUSED chain: the cause comes from correlation
    text = "\n".join(render_tree(ctx))
    assert text.splitlines()[0] == "nginx-2: BackOff  [info]"
    assert "affects Pod shop/nginx-2 on node node-b" in text
    assert "owned by ReplicaSet u-rs <- Deployment u-dep" in text  # nameless (edge-only) nodes show their uid
    assert ("probable root cause: 50s before: nginx-config: Updated "
            "(a change on ConfigMap nginx-config, correlated, not proven)") in text
    assert "2 pods on 2 nodes (node-a, node-b) share these dependencies: nginx-1, nginx-2" in text
    assert [c.event.id for c in ctx.changes] == ["cm-edit"]


async def test_routine_status_updates_are_never_the_probable_root_cause(settings: Settings) -> None:
    """A Node's heartbeat and the controller-manager's status write on a Deployment are MODIFIED
    observations like an edit (intents changed, rollout); the edit itself is the topology service's
    CHANGE. On a real 1.20 node `tapio explain` named the Node updates as the probable root cause."""
    from topology.narrative import probable_cause

    def observed(eid: str, second: int, kind: str, name: str, uid: str, intent: str, action: str) -> UnifiedEvent:
        return UnifiedEvent(id=eid, timestamp=T0 + timedelta(seconds=second), type="kubeapi", source="test",
                            semantic=SemanticContext(intent=intent, category="test", narrative=f"{kind} {name} {action}"),
                            k8s=K8sContext(kind=kind, name=name, namespace="" if kind == "Node" else "shop", uid=uid),
                            kubernetes=KubernetesData(action=action))

    store = open_graph(msgspec.structs.replace(settings.graph, name=f"ctx_{uuid.uuid4().hex[:10]}"))
    await store.setup_schema()
    try:
        await store.write_events([
            observed("node-beat", 30, "Node", "node-1", "u-n1", "changed", "MODIFIED"),
            observed("dep-status", 35, "Deployment", "web", "u-dep", "rollout", "MODIFIED"),
            ev("crash", 40, "Pod", "web-1", "u-p1", "BackOff", node="node-1", intent="crash-loop"),
        ])
        for relation, src, dst, a, b in [("OWNS", "ReplicaSet", "Pod", "u-rs", "u-p1"),
                                         ("OWNS", "Deployment", "ReplicaSet", "u-dep", "u-rs"),
                                         ("RUNS_ON", "Pod", "Node", "u-p1", "u-n1")]:
            await store.execute(queries.link_objects(relation, src, dst), rows=[[a, b, f"{a}-{b}", {}]])
        ctx = await reveal_context(store, "crash")
        assert "node-beat" in {c.event.id for c in ctx.correlated}
        assert ctx.changes == [] and probable_cause(ctx) is None
        # the edit, as the topology service records it, is one
        await store.write_events([observed("dep-edit", 10, "Deployment", "web", "u-dep", "rollout", "CHANGE")])
        ctx = await reveal_context(store, "crash")
        assert [c.event.id for c in ctx.changes] == ["dep-edit"]
        assert "Deployment web CHANGE (a change on Deployment web" in (probable_cause(ctx) or "")
    finally:
        await store.clear()
        await store.close()
