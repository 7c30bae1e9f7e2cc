"""`tapio explain`: kubectl-style targets, the event it picks, and its context from a real graph."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import msgspec
import pytest

from app.events import K8sContext, KubernetesData, SemanticContext, UnifiedEvent
from app.explain import ExplainError, explain, parse_target, pick_event
from app.settings import Settings
from topology import queries
from topology.graph import open_graph

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=timezone.utc)


def test_targets_follow_kubectl() -> None:
    assert parse_target(("pod/web-0",)) == ("Pod", "web-0")
    assert parse_target(("po", "web-0")) == ("Pod", "web-0")
    assert parse_target(("cm/nginx-config",)) == ("ConfigMap", "nginx-config")
    assert parse_target(("deploy", "web")) == ("Deployment", "web")
    assert parse_target(("Widget/x",)) == ("Widget", "x")
    for bad in [(), ("pod",), ("pod/",), ("a", "b", "c")]:
        with pytest.raises(ExplainError):
            parse_target(bad)


def test_picks_the_newest_of_the_worst_severity() -> None:
    rows = [{"id": "a", "severity": "info", "timestamp": 9}, {"id": "b", "severity": "warning", "timestamp": 5},
            {"id": "c", "severity": "warning", "timestamp": 7}, {"id": "d", "severity": None, "timestamp": 8}]
    assert pick_event(rows)["id"] == "c"


def ev(eid: str, second: int, kind: str, name: str, reason: str, severity: str, intent: str) -> UnifiedEvent:
    return UnifiedEvent(id=eid, timestamp=T0 + timedelta(seconds=second), type="kubeapi", source="test",
                        semantic=SemanticContext(intent=intent, category="t", narrative=f"{name}: {reason}",
                                                 severity=severity),
                        k8s=K8sContext(kind=kind, name=name, namespace="shop", uid=f"u-{name}"),
                        kubernetes=KubernetesData(action="EVENT", reason=reason))


async def test_explain_a_pod_from_the_graph(settings: Settings) -> None:
    graph = open_graph(msgspec.structs.replace(settings.graph, name=f"explain_{uuid.uuid4().hex[:8]}"))
    try:
        await graph.write_events([
            ev("cfg", 0, "ConfigMap", "nginx-config", "Updated", "info", "config-change"),
            ev("start", 10, "Pod", "web-0", "Started", "info", "lifecycle"),
            ev("crash", 40, "Pod", "web-0", "BackOff", "warning", "crash-loop"),
        ])
        await graph.execute(queries.link_objects("MOUNTS", "Pod", "ConfigMap"),
                            rows=[["u-web-0", "u-nginx-config", "m1", {}]])
        found = await explain(graph, kind="Pod", name="web-0", namespace="shop")
        assert found.events == 2 and found.context.event.id == "crash"
        assert {c.event.id for c in found.context.correlated} == {"start", "cfg"}
        assert [(d.label, d.name) for d in found.context.dependencies] == [("ConfigMap", "nginx-config")]
        with pytest.raises(ExplainError, match="no events about Pod web-9 in namespace shop"):
            await explain(graph, kind="Pod", name="web-9", namespace="shop")
    finally:
        await graph.clear()
        await graph.close()
