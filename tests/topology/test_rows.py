"""Pure tests of topology.rows.event_rows: grouping, keys, labels, folding, determinism."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from core.events import K8sContext, KubernetesData, ObjectRef, SemanticContext, TraceContext, UnifiedEvent
from topology.rows import EventRow, ResourceRow, WriteBatch, event_rows

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
T0_MS = 1_772_366_400_000


def event(eid: str, second: int, *, k8s: K8sContext | None = None, **kube: object) -> UnifiedEvent:
    return UnifiedEvent(
        id=eid, timestamp=T0 + timedelta(seconds=second), type="kubeapi", source="watch",
        semantic=SemanticContext(intent="pod-lifecycle", category="workload", narrative=f"event {eid}"),
        k8s=k8s, kubernetes=KubernetesData(action="EVENT", **kube) if kube else None)  # type: ignore[arg-type]


def pod(name: str, uid: str = "", **extra: object) -> K8sContext:
    return K8sContext(kind="Pod", name=name, namespace="shop", uid=uid, **extra)  # type: ignore[arg-type]


def test_t0_constant() -> None:
    assert int(T0.timestamp() * 1000) == T0_MS


def test_groups_by_label_and_resource_and_keeps_orphans() -> None:
    events = [
        event("e1", 1, k8s=pod("web-1", "u-web-1")),
        event("e2", 2, k8s=pod("web-1", "u-web-1")),
        event("e3", 3, k8s=pod("web-2", "u-web-2")),
        event("e4", 4, k8s=K8sContext(kind="ConfigMap", name="cfg", namespace="shop", uid="u-cfg")),
        event("e5", 5, k8s=K8sContext(kind="Node", name="node-a", uid="u-node-a")),
        event("e6", 6),
    ]
    batch = event_rows(events, ingested_at_ms=7)
    assert list(batch.resources) == ["ConfigMap", "Node", "Pod"]
    assert {label: [(r.uid, [e.id for e in r.events]) for r in rows] for label, rows in batch.resources.items()} == {
        "ConfigMap": [("u-cfg", ["e4"])],
        "Node": [("u-node-a", ["e5"])],
        "Pod": [("u-web-1", ["e1", "e2"]), ("u-web-2", ["e3"])],
    }
    assert [e.id for e in batch.orphans] == ["e6"]
    assert batch.event_count == 6


def test_synthetic_keys_when_uid_missing() -> None:
    batch = event_rows([
        event("e1", 1, k8s=pod("web-1")),
        event("e2", 2, k8s=K8sContext(kind="pod", name="web-1", namespace="shop")),  # kind in any case
        event("e3", 3, k8s=K8sContext(kind="Node", name="node-a")),  # cluster-scoped: empty namespace
        # a kubelet's Node Event lives in `default`: its Node does not
        event("e4", 4, k8s=K8sContext(kind="Node", name="node-a", namespace="default")),
    ], ingested_at_ms=0)
    assert [(r.uid, r.kind, len(r.events)) for r in batch.resources["Pod"]] == [("Pod:shop/web-1", "Pod", 2)]
    # a Node known by name is written to the real Node of that name when the graph knows it
    assert "Node" not in batch.resources and [r.uid for r in batch.by_name["Node"]] == ["Node:/node-a"]
    assert batch.by_name["Node"][0].namespace is None and len(batch.by_name["Node"][0].events) == 2
    assert batch.event_count == 4


def test_unknown_kind_goes_to_resource_label_with_its_kind() -> None:
    batch = event_rows([
        event("e1", 1, k8s=K8sContext(kind="Widget", name="w", namespace="shop")),
        event("e2", 2, k8s=K8sContext(kind="Gadget", name="g", namespace="shop", uid="u-g")),
    ], ingested_at_ms=0)
    assert list(batch.resources) == ["Resource"]
    assert [(r.uid, r.kind) for r in batch.resources["Resource"]] == [("Widget:shop/w", "Widget"), ("u-g", "Gadget")]
    assert [e.kind for r in batch.resources["Resource"] for e in r.events] == ["Widget", "Gadget"]


def test_resource_props_labels_owner_and_last_seen_max() -> None:
    owner = ObjectRef(kind="ReplicaSet", name="web-abc", uid="u-rs")
    newest = pod("web-1", "u1", labels={"tier": "front", "app": "web"}, node="node-a", owner=owner)
    oldest = pod("web-1", "u1", node="node-old")
    # given newest first: folding goes by timestamp, not input order
    batch = event_rows([event("b", 30, k8s=newest), event("a", 10, k8s=oldest), event("c", 20, k8s=pod("web-1", "u1"))],
                       ingested_at_ms=0)
    (row,) = batch.resources["Pod"]
    assert row == ResourceRow(
        uid="u1", events=row.events, last_seen=T0_MS + 30_000, kind="Pod", name="web-1", namespace="shop",
        node="node-a", labels=["app=web", "tier=front"], owner_kind="ReplicaSet", owner_name="web-abc",
        owner_uid="u-rs")
    assert [e.id for e in row.events] == ["a", "b", "c"]


def test_newer_empty_value_does_not_erase_an_older_one() -> None:
    batch = event_rows([event("a", 1, k8s=pod("web-1", "u1", node="node-a")), event("b", 2, k8s=pod("web-1", "u1"))],
                       ingested_at_ms=0)
    (row,) = batch.resources["Pod"]
    assert (row.node, row.last_seen) == ("node-a", T0_MS + 2000)


def test_event_row_fields() -> None:
    full = UnifiedEvent(
        id="e1", timestamp=T0, type="kubeapi", source="watch",
        semantic=SemanticContext(intent="oom-kill", category="memory", narrative="killed", severity="error"),
        trace=TraceContext(trace_id="t" * 32, span_id="s" * 16),
        k8s=pod("web-1", "u1"),
        kubernetes=KubernetesData(action="EVENT", reason="OOMKilled", message="out of memory",
                                  event_type="Warning", count=3))
    bare = UnifiedEvent(id="e2", timestamp=T0, type="kernel", source="",
                        semantic=SemanticContext(intent="exec", category="process", narrative=""))
    batch = event_rows([full, bare], ingested_at_ms=42)
    assert batch.resources["Pod"][0].events == [EventRow(
        id="e1", ingested_at=42, type="kubeapi", source="watch", timestamp=T0_MS, severity="error",
        intent="oom-kill", category="memory", narrative="killed", namespace="shop", kind="Pod", name="web-1",
        reason="OOMKilled", message="out of memory", event_type="Warning", count=3, action="EVENT",
        trace_id="t" * 32, span_id="s" * 16)]
    # empty strings and absent layers are not stored
    assert batch.orphans == [EventRow(id="e2", ingested_at=42, type="kernel", timestamp=T0_MS, severity="info",
                                      intent="exec", category="process")]


def test_duplicate_ids_keep_the_last_occurrence() -> None:
    batch = event_rows([event("e1", 1, k8s=pod("web-1", "u1"), reason="First"),
                        event("e1", 1, k8s=pod("web-1", "u1"), reason="Second")], ingested_at_ms=0)
    assert [e.reason for e in batch.resources["Pod"][0].events] == ["Second"]
    assert batch.event_count == 1


def test_output_is_deterministic_whatever_the_input_order() -> None:
    events = [event(f"e{i:02d}", i % 7, k8s=pod(f"web-{i % 4}", f"u{i % 4}", labels={"b": "2", "a": str(i % 3)}))
              for i in range(30)] + [event(f"o{i}", i) for i in range(3)]
    expected = event_rows(events, ingested_at_ms=5)
    rng = random.Random(7)
    for _ in range(5):
        shuffled = events[:]
        rng.shuffle(shuffled)
        assert event_rows(shuffled, ingested_at_ms=5) == expected
    assert isinstance(expected, WriteBatch)
    assert [r.uid for r in expected.resources["Pod"]] == ["u0", "u1", "u2", "u3"]
    assert all([e.id for e in r.events] == sorted(e.id for e in r.events) for r in expected.resources["Pod"])
