"""Prediction messages count what they say they count: distinct failing pods (not Events or hits), in
the singular or the plural as the number asks, and "no pod is ready" when the Service has none.

The shipped patterns (patterns/*.yaml) on small streams, through the functions the dataflow runs.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agents.hits import Selector, compile_pattern
from agents.pattern_files import load_pattern
from agents.patterns import Template
from agents.predict import predictions_for
from agents.windows import WindowState, add_hits, advance
from core.events import K8sContext, KubernetesData, ObjectRef, SemanticContext, UnifiedEvent, content_id

CATALOG = Path(__file__).resolve().parents[2] / "patterns"
T0 = datetime(2026, 12, 3, 15, 0, tzinfo=UTC)
END = 2**62


def ev(sec: float, intent: str, *, kind: str = "Pod", name: str, ns: str = "shop", action: str = "EVENT",
       reason: str = "", message: str = "", refs: list[str] | None = None, owner: ObjectRef | None = None,
       content_hash: str = "", ready_endpoints: int = -1, event_type: str = "") -> UnifiedEvent:
    return UnifiedEvent(
        id=content_id(str(sec), intent, kind, name, action, reason, message, content_hash, str(ready_endpoints)),
        timestamp=T0 + timedelta(seconds=sec), type="kubeapi", source="test",
        semantic=SemanticContext(intent=intent, category="test", narrative=f"{kind} {name} {intent}"),
        k8s=K8sContext(kind=kind, name=name, namespace=ns, refs=refs or [], owner=owner),
        kubernetes=KubernetesData(action=action, reason=reason, message=message, content_hash=content_hash,
                                  ready_endpoints=ready_endpoints, event_type=event_type))


def messages(pattern_name: str, events: list[UnifiedEvent]) -> list[str]:
    pattern = compile_pattern(load_pattern(CATALOG / f"{pattern_name}.yaml"))
    selector, store = Selector([pattern]), {}
    states: dict[str, WindowState] = {}
    for event in events:
        for hit in selector.hits(event, store):
            add_hits(states.setdefault(hit.key, WindowState()), [hit])
    matches = [m for key, state in states.items() for m in advance(pattern, key, state, END)]
    return [p.message for m in matches for p in predictions_for(m, pattern.pattern)]


def rs_pod(name: str, rs: str = "web-7c9f") -> list[UnifiedEvent]:
    """A ReplicaSet of Deployment web and one of its pods, as observed (their owners learned)."""
    return [ev(0, "observed", kind="ReplicaSet", name=rs, action="SNAPSHOT",
               owner=ObjectRef(kind="Deployment", name="web", namespace="shop")),
            ev(0, "observed", name=name, action="SNAPSHOT", refs=["ConfigMap/web-config"],
               owner=ObjectRef(kind="ReplicaSet", name=rs, namespace="shop"))]


def config_edit() -> list[UnifiedEvent]:
    return [ev(0, "observed", kind="ConfigMap", name="web-config", action="SNAPSHOT", content_hash="a"),
            ev(10, "config-change", kind="ConfigMap", name="web-config", action="MODIFIED", content_hash="b")]


@pytest.mark.parametrize("pods, failures, expected", [
    (1, 3, "(1 failing pod mounts it)"),
    (3, 3, "(3 failing pods mount it)"),
])
def test_config_drift_counts_the_failing_pods_that_mount_the_config(pods: int, failures: int, expected: str) -> None:
    stream = config_edit()
    names = [f"web-7c9f-p{i}" for i in range(pods)]
    for name in names:
        stream += rs_pod(name)[1:]
    # the failures of one moment (a match is the first time a pattern holds: it counts what is failing then)
    stream += [ev(20, "crash-loop", name=names[i % pods], reason="BackOff", event_type="Warning",
                  message=f"Back-off restarting failed container ({i})") for i in range(failures)]
    [message] = messages("config-drift", stream)
    assert message == (f"{names[0]} started failing after ConfigMap/shop/web-config changed {expected}: every pod "
                       "that restarts or rolls out will pick up the same configuration and fail")


@pytest.mark.parametrize("pods, expected", [
    (1, "1 new pod is failing (2 failures)"),
    (2, "2 new pods are failing (2 failures)"),
])
def test_bad_rollout_counts_new_pods_not_their_events(pods: int, expected: str) -> None:
    stream = [ev(0, "observed", kind="ReplicaSet", name="web-7c9f", action="SNAPSHOT",
                 owner=ObjectRef(kind="Deployment", name="web", namespace="shop"))]
    stream += [ev(0, "observed", name=f"web-7c9f-p{i}", action="SNAPSHOT",
                  owner=ObjectRef(kind="ReplicaSet", name="web-7c9f", namespace="shop")) for i in range(pods)]
    stream.append(ev(10, "rollout", kind="Deployment", name="web", action="ROLLOUT"))
    stream += [ev(20 + i, "crash-loop", name=f"web-7c9f-p{i % pods}", reason="BackOff", event_type="Warning",
                  message="Back-off restarting failed container") for i in range(2)]
    [message, *_] = messages("bad-rollout", stream)
    assert message == (f"The rollout of Deployment/shop/web is failing: {expected} while the old ReplicaSet still "
                       "serves; the rollout will stall at progressDeadlineSeconds")


READINESS = "Readiness probe failed: HTTP probe failed with statuscode: 503"


def probe_stream(pods: int, *, endpoints_gone_at: float | None) -> list[UnifiedEvent]:
    stream = [ev(0, "observed", kind="ReplicaSet", name="web-7c9f", action="SNAPSHOT",
                 owner=ObjectRef(kind="Deployment", name="web", namespace="shop"))]
    names = [f"web-7c9f-p{i}" for i in range(pods)]
    stream += [ev(0, "observed", name=n, action="SNAPSHOT",
                  owner=ObjectRef(kind="ReplicaSet", name="web-7c9f", namespace="shop")) for n in names]
    if endpoints_gone_at is not None:
        stream.append(ev(endpoints_gone_at, "changed", kind="Endpoints", name="web", action="MODIFIED",
                         refs=[f"Pod/{n}" for n in names], ready_endpoints=0))
    stream += [ev(30, "probe-failure", name=n, reason="Unhealthy", event_type="Warning", message=READINESS)
               for n in names]
    return stream


def test_probe_failure_says_no_pod_is_ready_when_the_service_has_no_ready_endpoint() -> None:
    # Events listed after the fact: the Endpoints had lost their last ready address before the
    # failures' newest times (what a first run on a real node read as "the remaining pods take all
    # the traffic" with 0 of 2 ready)
    assert messages("probe-failure", probe_stream(2, endpoints_gone_at=20)) == [
        "Readiness probes are failing on 2 pods of Deployment/shop/web and no pod is ready: its Service has no "
        "endpoint left, so every request to it fails"]
    assert messages("probe-failure", probe_stream(1, endpoints_gone_at=35)) == [
        "Readiness probes are failing on 1 pod of Deployment/shop/web and no pod is ready: its Service has no "
        "endpoint left, so every request to it fails"]
    assert messages("probe-failure", probe_stream(3, endpoints_gone_at=None)) == [
        "Readiness probes are failing on 3 pods of Deployment/shop/web: they leave the Service endpoints and the "
        "pods still ready take all the traffic"]


def test_a_number_placeholder_writes_the_words_that_agree_with_it() -> None:
    template = Template("{pods} failing {pods:pod mounts/pods mount} it ({count} {count:failure/failures})")
    assert template.render(pods=1, count=1) == "1 failing pod mounts it (1 failure)"
    assert template.render(pods=3, count=7) == "3 failing pods mount it (7 failures)"
    assert template.render(pods=0, count=0) == "0 failing pods mount it (0 failures)"
    for bad in ("{scope:a/b}", "{pods:only}", "{pods:a/b/c}", "{pods!r}"):
        with pytest.raises(ValueError):
            Template(bad)


def test_the_diagnosis_counts_each_occurrence_of_a_watched_event_once() -> None:
    """A watch sees an Event again at each count (x1 ... x5): five failures, not 1+2+3+4+5."""
    from app.analyze import analyze

    scenarios = CATALOG / "scenarios"
    [first, *_] = analyze([str(scenarios / "probe-failure" / "last-endpoint")]).hypotheses
    assert "fails: HTTP status 503 (5 failures)" in first.message
    [first, *_] = analyze([str(scenarios / "image-not-present" / "positive")]).hypotheses
    assert "(and 1 more pod of Deployment/reports/report-gen)" in first.message
