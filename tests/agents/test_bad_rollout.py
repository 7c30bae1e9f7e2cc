"""A bad rollout: a Deployment's newest revision fails while the previous one still serves.

The real cluster's `configmap-rollout` case (a ConfigMap edit picked up by `kubectl rollout restart`):
the new pod exits 2 and the old ones serve. Its snapshot holds no edit, only the ConfigMap's new
value, two ReplicaSets one revision apart and a pod template that differs by the restart stamp. The
diagnosis (`agents.diagnosis.causes`) names the rollout as the root, keeps the pod's own cause, and
points at what the pods read at start. Pure: objects in, diagnoses out.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from agents.diagnosis import diagnose_events
from core.events import RawEvent
from core.kube.changes import diff_objects
from core.kube.objects import raw_event_from_object

NS = "ledger"
T0 = datetime(2026, 12, 5, 1, 50, tzinfo=UTC)
DEPLOYMENT_UID = "0f6c1d2e-0000-4000-8000-000000000001"


def stamp(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


def at(raw: RawEvent, minutes: float) -> RawEvent:
    return msgspec.structs.replace(raw, timestamp=T0 + timedelta(minutes=minutes))


def template(*, image: str = "busybox:1", restarted: str | None = None, config: tuple[str, ...] = ("ledger-config",)
             ) -> dict[str, Any]:
    env = [{"name": f"VAR_{i}", "valueFrom": {"configMapKeyRef": {"name": name, "key": "mode"}}}
           for i, name in enumerate(config)]
    meta: dict[str, Any] = {"labels": {"app": "ledger-api"}}
    if restarted:
        meta["annotations"] = {"kubectl.kubernetes.io/restartedAt": restarted}
    return {"metadata": meta, "spec": {"containers": [{"name": "ledger-api", "image": image, "env": env}]}}


def replicaset(name: str, revision: int, created: float, ready: int, tmpl: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": name, "namespace": NS, "uid": f"uid-{name}", "creationTimestamp": stamp(created),
                         "annotations": {"deployment.kubernetes.io/revision": str(revision)},
                         "ownerReferences": [{"kind": "Deployment", "name": "ledger-api", "uid": DEPLOYMENT_UID,
                                              "controller": True}]},
            "spec": {"replicas": 2, "template": tmpl}, "status": {"replicas": 2, "readyReplicas": ready}}


def crashing_pod(name: str, rs: str, tmpl: dict[str, Any], started: float) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NS, "uid": f"uid-{name}", "creationTimestamp": stamp(started),
                         "ownerReferences": [{"kind": "ReplicaSet", "name": rs, "uid": f"uid-{rs}",
                                              "controller": True}]},
            "spec": tmpl["spec"],
            "status": {"phase": "Running", "containerStatuses": [{
                "name": "ledger-api", "ready": False, "restartCount": 3, "image": "busybox:1",
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed"}},
                "lastState": {"terminated": {"exitCode": 2, "reason": "Error", "startedAt": stamp(started + 1),
                                             "finishedAt": stamp(started + 1)}}}]}}


def config_map(name: str, mode: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "data": {"mode": mode},
            "metadata": {"name": name, "namespace": NS, "uid": f"uid-{name}", "creationTimestamp": stamp(0)}}


def deployment(tmpl: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "ledger-api", "namespace": NS, "uid": DEPLOYMENT_UID, "creationTimestamp": stamp(0),
                         "annotations": {"deployment.kubernetes.io/revision": "2"}},
            "spec": {"replicas": 2, "template": tmpl}, "status": {"replicas": 3, "readyReplicas": 2}}


def snapshot(*objects: dict[str, Any], minutes: float = 8) -> list[RawEvent]:
    return [at(raw_event_from_object(o, action="SNAPSHOT", source="objects.json"), minutes) for o in objects]


def restart_only(*, old_ready: int = 2, config: tuple[str, ...] = ("ledger-config",)) -> list[dict[str, Any]]:
    old, new = template(config=config), template(restarted=stamp(5), config=config)
    return [deployment(new), replicaset("ledger-api-old", 1, 0, old_ready, old),
            replicaset("ledger-api-new", 2, 5, 0, new), crashing_pod("ledger-api-new-x1", "ledger-api-new", new, 5)]


def test_the_restart_stamp_of_a_pod_template_is_a_tracked_change() -> None:
    change = diff_objects(deployment(template()), deployment(template(restarted=stamp(5))))
    assert change is not None
    assert [(c.key, c.change, c.new) for c in change.changes] == [("restartedAt", "added", stamp(5))]


def test_a_new_revision_failing_while_the_old_one_serves_is_a_bad_rollout_behind_its_configmap() -> None:
    [top] = [d for d in diagnose_events(snapshot(config_map("ledger-config", "archive"), *restart_only())) if d.ongoing]
    assert (top.cause, top.detail["pod_cause"]) == ("bad-rollout", "app-error-exit")
    assert str(top.caused_by) == f"ConfigMap/{NS}/ledger-config"
    assert f"Deployment/{NS}/ledger-api" in [str(m) for m in top.members]
    assert top.message.startswith(f"Bad rollout of Deployment ledger-api (namespace {NS}) (restartedAt added")
    assert "ConfigMap ledger-config (now mode = 'archive')" in top.message
    assert "the previous ReplicaSet ledger-api-old still serves 2 ready pods" in top.message
    assert top.chain[0] == f"ConfigMap/{NS}/ledger-config: now mode = 'archive'"
    assert top.remediation.startswith("Roll back while you fix it: `kubectl rollout undo deployment/ledger-api")
    assert top.confidence >= 0.85


def test_a_rollout_that_changed_the_image_is_bad_without_blaming_a_configmap() -> None:
    old, new = template(), template(image="busybox:2")
    objects = [config_map("ledger-config", "primary"), deployment(new), replicaset("ledger-api-old", 1, 0, 2, old),
               replicaset("ledger-api-new", 2, 5, 0, new), crashing_pod("ledger-api-new-x1", "ledger-api-new", new, 5)]
    [top] = [d for d in diagnose_events(snapshot(*objects)) if d.ongoing]
    assert top.cause == "bad-rollout" and "image modified (busybox:1 -> busybox:2)" in top.message
    assert str(top.caused_by) == f"ReplicaSet/{NS}/ledger-api-new" and "config" not in top.detail


def test_without_a_serving_revision_the_pod_keeps_its_own_cause() -> None:
    objects = [config_map("ledger-config", "archive"), *restart_only(old_ready=0)]
    [top] = [d for d in diagnose_events(snapshot(*objects)) if d.ongoing]
    assert top.cause == "app-error-exit" and "it began with the rollout of Deployment ledger-api" in top.message


def test_of_two_configmaps_a_live_stream_names_the_one_edited_after_the_serving_pods_started() -> None:
    objects = restart_only(config=("ledger-config", "ledger-limits"))
    stream = snapshot(config_map("ledger-limits", "strict"), minutes=0) + [
        at(raw_event_from_object(config_map("ledger-config", "archive"), action="MODIFIED", source="watch"), 4)]
    [top] = [d for d in diagnose_events(stream + snapshot(*objects)) if d.ongoing]
    assert str(top.caused_by) == f"ConfigMap/{NS}/ledger-config"
    assert "edited at 01:54:00Z" in top.message

    # a snapshot shows both as they are: which one changed cannot be told, both are named
    [top] = [d for d in diagnose_events(snapshot(config_map("ledger-limits", "strict"),
                                                 config_map("ledger-config", "archive"), *objects)) if d.ongoing]
    assert top.cause == "bad-rollout" and str(top.caused_by) == f"ReplicaSet/{NS}/ledger-api-new"
    assert "(ConfigMap ledger-config, ConfigMap ledger-limits)" in top.message
