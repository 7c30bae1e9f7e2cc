"""`tapio explain`: kubectl-style targets, the event it picks, and its context from a real graph."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from app.explain import ExplainError, explain, parse_target, pick_event
from core.events import K8sContext, KubernetesData, SemanticContext, UnifiedEvent
from core.settings import Settings
from topology import queries
from topology.graph import open_graph

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


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


def test_the_headline_is_the_failure_not_a_frequent_benign_warning() -> None:
    """A 1.20 kubelet writes MissingClusterDNS (a Warning the vocabulary does not know: intent observed)
    at every sync of a pod without cluster DNS; the pod's ErrImageNeverPull is why it fails."""
    rows = [{"id": "never", "severity": "warning", "intent": "image-pull-failure", "reason": "ErrImageNeverPull",
             "timestamp": 5},
            {"id": "dns", "severity": "warning", "intent": "observed", "reason": "MissingClusterDNS", "timestamp": 9},
            {"id": "started", "severity": "info", "intent": "lifecycle", "reason": "Scheduled", "timestamp": 10}]
    assert pick_event(rows)["id"] == "never"
    for reason, intent in [("BackOff", "crash-loop"), ("OOMKilling", "oom-kill"), ("Unhealthy", "probe-failure")]:
        rows[0] = {"id": reason, "severity": "warning", "intent": intent, "reason": reason, "timestamp": 1}
        assert pick_event(rows)["id"] == reason


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


def test_scope_keys_of_a_pod_cover_every_pattern_scope_it_belongs_to() -> None:
    from app.explain import scope_keys_of
    from topology.context import Context, EventSummary, ResourceRef
    ctx = Context(event=EventSummary(id="e"), affected=[ResourceRef(label="Pod", uid="u", name="web-1", node="n1")],
                  owners=[ResourceRef(label="ReplicaSet", uid="r", name="web-5d"),
                          ResourceRef(label="Deployment", uid="d", name="web")],
                  dependencies=[ResourceRef(label="ConfigMap", uid="c", name="cfg", namespace="shop"),
                                ResourceRef(label="Service", uid="s", name="front", namespace="shop")],
                  correlated=[], changes=[], causes=[], consequences=[])
    assert scope_keys_of("Pod", "web-1", "shop", ctx) == sorted([
        "cluster", "namespace:shop", "object:Pod/shop/web-1", "node:n1", "owner:ReplicaSet/shop/web-5d",
        "owner:Deployment/shop/web", "configmap:ConfigMap/shop/cfg", "service:shop/front"])


def test_hypotheses_merge_their_reasons_and_rank_by_score() -> None:
    from topology.predictions import Hypothesis, StoredPrediction, merge_hypotheses
    at = datetime(2026, 11, 20, 10, tzinfo=UTC)

    def p(pid: str, score: float) -> StoredPrediction:
        return StoredPrediction(id=pid, match_id="m" + pid, pattern="x", at=at, due=at, score=score)
    merged = merge_hypotheses([Hypothesis(prediction=p("a", 0.4), via=["impacts"])],
                              [Hypothesis(prediction=p("b", 0.9), via=["scope"]),
                               Hypothesis(prediction=p("a", 0.4), via=["scope"])])
    assert [(h.prediction.id, h.via) for h in merged] == [("b", ["scope"]), ("a", ["impacts", "scope"])]


def change(eid: str, second: int, reason: str, message: str) -> UnifiedEvent:
    """A topology service's change event on Deployment web (reason Changed, or Reverted for an undo)."""
    return UnifiedEvent(id=eid, timestamp=T0 + timedelta(seconds=second), type="kubeapi", source="test",
                        semantic=SemanticContext(intent="rollout", category="deployment", narrative=message,
                                                 severity="warning"),
                        k8s=K8sContext(kind="Deployment", name="web", namespace="shop", uid="u-web"),
                        kubernetes=KubernetesData(action="CHANGE", reason=reason, message=message))


async def test_a_revert_is_a_remedy_and_explain_says_when_it_recovered(settings: Settings) -> None:
    """On a real node `tapio explain` named the `rollout undo` that ended the failure as its probable
    root cause, and went on saying the rollout was failing after the fix."""
    from topology.narrative import render_tree

    graph = open_graph(msgspec.structs.replace(settings.graph, name=f"explain_{uuid.uuid4().hex[:8]}"))
    await graph.setup_schema()
    edit = "Deployment shop/web: container[web].image modified (web:1.4 -> web:1.5)"
    undo = ("Deployment shop/web: container[web].image modified (web:1.5 -> web:1.4) (reverted to its version "
            "before the edit of 2026-11-20 10:00:00Z)")
    try:
        await graph.write_events([
            change("edit", 0, "Changed", edit),
            ev("crash-1", 20, "Pod", "web-1", "BackOff", "warning", "crash-loop"),
            ev("crash-2", 60, "Pod", "web-1", "BackOff", "warning", "crash-loop"),
            change("undo", 90, "Reverted", undo),
        ])
        for relation, src, dst, a, b in [("OWNS", "ReplicaSet", "Pod", "u-rs", "u-web-1"),
                                         ("OWNS", "Deployment", "ReplicaSet", "u-web", "u-rs")]:
            await graph.execute(queries.link_objects(relation, src, dst), rows=[[a, b, f"{a}-{b}", {}]])
        found = await explain(graph, kind="Pod", name="web-1", namespace="shop")
        text = "\n".join(render_tree(found.context))
        assert f"probable root cause: 60s before: {edit} (a change on Deployment web" in text
        assert f"remediation: 30s after: {undo} (a revert on Deployment web: a remedy, not a cause" in text
        assert found.recovered_at == T0 + timedelta(seconds=90)
        assert found.recovery == (f"recovered at 2026-11-20 10:01:30Z: {undo} undid the edit behind the failure, "
                                  "and no failure was seen on it since; its last failure 10:01:00Z")
        # failing again after the undo: not recovered, and the undo is still no cause
        await graph.write_events([ev("crash-3", 120, "Pod", "web-1", "BackOff", "warning", "crash-loop")])
        found = await explain(graph, kind="Pod", name="web-1", namespace="shop")
        assert (found.recovered_at, found.recovery) == (None, "")
        assert f"probable root cause: 2m before: {edit}" in "\n".join(render_tree(found.context))
    finally:
        await graph.clear()
        await graph.close()


def test_a_configmap_put_back_counts_as_the_revert_once_no_failure_follows_it() -> None:
    # a Deployment's context reaches its pods' ConfigMap three hops away, beyond its nearby changes:
    # explain reads that ConfigMap's revert on the ConfigMap itself (`reverted_inputs`)
    from app.explain import recovery
    from topology.context import Context, EventSummary

    ctx = Context(event=EventSummary(id="e"), affected=[], owners=[], dependencies=[], correlated=[], changes=[],
                  causes=[], consequences=[])
    put_back = EventSummary(id="r", timestamp=2_000_000, reason="Reverted", intent="config-change",
                            narrative="ConfigMap shop/cfg: key mode modified (archive -> primary)")
    crash = {"id": "c", "timestamp": 1_000_000, "intent": "crash-loop"}
    assert recovery([crash], ctx) == (None, "")  # nothing reverted
    when, said = recovery([crash], ctx, [put_back])
    assert when == datetime.fromtimestamp(2_000, tz=UTC)
    assert said.startswith("recovered at 1970-01-01 00:33:20Z: ConfigMap shop/cfg: key mode modified") and \
        "its last failure 00:16:40Z" in said
    assert recovery([crash, {**crash, "timestamp": 2_500_000}], ctx, [put_back]) == (None, "")  # it failed again
