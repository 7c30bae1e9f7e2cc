"""What a first run on a real Kubernetes 1.20 node missed: one pod failing readiness while it is the
last ready endpoint of its Service, and an image the node does not hold under `imagePullPolicy: Never`.

Labelled scenarios (`patterns/scenarios/probe-failure/last-endpoint*`, `patterns/scenarios/image-not-present/`)
through the offline runner (the dataflow's functions), the stages' pure parts on the objects, and the
diagnosis `tapio analyze` prints.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from agents.catalog import Catalog
from agents.enrich import enrich_event
from agents.hits import scope_keys
from agents.membership import learn
from agents.normalize import normalize_event
from agents.offline import match_events
from app.analyze import analyze
from collectors.replayer import read_recordings
from core.events import RawEvent
from core.kube.objects import raw_event_from_object

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "patterns" / "scenarios"


def predictions(folder: Path) -> list[tuple[str, str, str]]:
    events, unread = read_recordings([folder])
    assert unread == []
    result = match_events(events, Catalog(ROOT / "patterns"))
    assert result.errors == []
    return [(p.pattern, p.scope, p.message) for p in result.predictions]


def unified(obj: dict, action: str = "MODIFIED"):
    raw: RawEvent = raw_event_from_object(obj, action=action, source="test")
    return normalize_event(enrich_event(raw))


def test_one_pod_failing_readiness_is_an_incident_when_its_service_is_left_without_a_ready_endpoint() -> None:
    assert predictions(SCENARIOS / "probe-failure" / "last-endpoint") == [(
        "probe-failure", "owner:Deployment/shop/cart",
        "Readiness probes are failing on 1 pod of Deployment/shop/cart and no pod is ready: its Service has "
        "no endpoint left, so every request to it fails")]
    # the same failure on one pod of two: the other keeps serving, no incident
    assert predictions(SCENARIOS / "probe-failure" / "last-endpoint-negative") == []


def _endpoints(ready: list[str], not_ready: list[str]) -> dict:
    def address(name: str) -> dict:
        return {"ip": "10.244.0.9", "targetRef": {"kind": "Pod", "namespace": "shop", "name": name}}
    subset: dict = {"ports": [{"port": 8080}]}
    if ready:
        subset["addresses"] = [address(n) for n in ready]
    if not_ready:
        subset["notReadyAddresses"] = [address(n) for n in not_ready]
    return {"apiVersion": "v1", "kind": "Endpoints", "subsets": [subset],
            "metadata": {"name": "cart", "namespace": "shop", "uid": "e1", "resourceVersion": "7",
                         "annotations": {"endpoints.kubernetes.io/last-change-trigger-time": "2026-12-03T15:10:24Z"},
                         "managedFields": [{"manager": "kube-controller-manager", "operation": "Update",
                                            "time": "2026-12-03T15:10:24Z"}]}}


def test_endpoints_say_how_many_addresses_are_ready_and_key_to_the_workloads_of_their_pods() -> None:
    store: dict = {}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "cart-7c4b9d8f6-m4d8k", "namespace": "shop", "uid": "p1", "labels": {"app": "cart"},
        "creationTimestamp": "2026-12-02T11:20:00Z",
        "ownerReferences": [{"kind": "ReplicaSet", "name": "cart-7c4b9d8f6", "uid": "rs1", "controller": True}]},
        "spec": {"nodeName": "node-1", "containers": [{"name": "cart", "image": "cart:1"}]}}
    rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {
        "name": "cart-7c4b9d8f6", "namespace": "shop", "uid": "rs1", "creationTimestamp": "2026-12-02T11:20:00Z",
        "ownerReferences": [{"kind": "Deployment", "name": "cart", "uid": "d1", "controller": True}]}}
    for obj in (rs, pod):
        learn(store, unified(obj, "SNAPSHOT"))
    gone = unified(_endpoints([], ["cart-7c4b9d8f6-m4d8k"]))
    assert gone.kubernetes is not None and gone.kubernetes.ready_endpoints == 0
    assert scope_keys("owner", gone, store) == ["owner:Deployment/shop/cart"]
    assert scope_keys("service", gone, store) == ["service:shop/cart"]
    serving = unified(_endpoints(["cart-7c4b9d8f6-v2n6p"], ["cart-7c4b9d8f6-m4d8k"]))
    assert serving.kubernetes is not None and serving.kubernetes.ready_endpoints == 1
    # an EndpointSlice (1.20 serves discovery.k8s.io/v1beta1): `ready` false is not ready, unset is
    slice_ = {"apiVersion": "discovery.k8s.io/v1beta1", "kind": "EndpointSlice", "addressType": "IPv4",
              "metadata": {"name": "cart-x7k2p", "namespace": "shop", "uid": "s1", "creationTimestamp":
                           "2026-12-02T11:20:00Z", "labels": {"kubernetes.io/service-name": "cart"}},
              "endpoints": [{"addresses": ["10.244.0.21"], "conditions": {"ready": False},
                             "targetRef": {"kind": "Pod", "namespace": "shop", "name": "cart-7c4b9d8f6-m4d8k"}},
                            {"addresses": ["10.244.0.22"], "conditions": {},
                             "targetRef": {"kind": "Pod", "namespace": "shop", "name": "cart-7c4b9d8f6-v2n6p"}}]}
    seen = unified(slice_, "SNAPSHOT")
    assert seen.kubernetes is not None and seen.kubernetes.ready_endpoints == 1
    assert scope_keys("service", seen, store) == ["service:shop/cart"]
    # any other object carries no endpoint count
    assert unified(pod, "SNAPSHOT").kubernetes.ready_endpoints == -1  # type: ignore[union-attr]


NEVER = 'Container image "registry.local/report-gen:1.4.0" is not present with pull policy of Never'


def _kubelet_event(reason: str, message: str) -> dict:
    return {"apiVersion": "v1", "kind": "Event", "type": "Warning", "reason": reason, "message": message,
            "count": 3, "firstTimestamp": "2026-12-03T14:00:03Z", "lastTimestamp": "2026-12-03T14:00:33Z",
            "source": {"component": "kubelet", "host": "node-1"},
            "involvedObject": {"kind": "Pod", "namespace": "reports", "name": "report-gen-6d8f9c7b5-x7k2m",
                               "fieldPath": "spec.containers{report-gen}"},
            "metadata": {"name": "report-gen-6d8f9c7b5-x7k2m.1", "namespace": "reports", "uid": "ev-" + reason,
                         "resourceVersion": "9"}}


def test_every_image_reason_of_the_kubelet_is_an_image_problem() -> None:
    for reason, message in [("ErrImageNeverPull", NEVER), ("Failed", "Error: ErrImageNeverPull"),
                            ("InspectFailed", 'Failed to apply default image tag "Report-Gen:1.4": couldn\'t parse '
                                              'image reference "Report-Gen:1.4": invalid reference format: '
                                              'repository name must be lowercase'),
                            ("Failed", "Error: InvalidImageName"), ("Failed", "Error: ErrImageInspect"),
                            ("Failed", "Error: RegistryUnavailable")]:
        assert unified(_kubelet_event(reason, message)).semantic.intent == "image-pull-failure", (reason, message)
    for waiting in ("ErrImageNeverPull", "InvalidImageName", "ErrImageInspect", "RegistryUnavailable",
                    "ErrImagePull", "ImagePullBackOff"):
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": "p", "namespace": "reports", "uid": "p", "creationTimestamp": "2026-12-03T14:00:01Z"},
            "status": {"phase": "Pending", "containerStatuses": [{"name": "c", "restartCount": 0, "state": {
                "waiting": {"reason": waiting, "message": "..."}}}]}}
        assert unified(pod).semantic.intent == "image-pull-failure", waiting


def test_an_image_absent_under_pull_policy_never_is_named_with_its_own_remedy() -> None:
    [(pattern, scope, message)] = predictions(SCENARIOS / "image-not-present" / "positive")
    assert (pattern, scope) == ("image-not-present", "owner:Deployment/reports/report-gen")
    assert "not on the node and their imagePullPolicy is Never" in message
    events, _ = read_recordings([SCENARIOS / "image-not-present" / "positive"])
    result = match_events(events, Catalog(ROOT / "patterns"))
    assert "ctr -n k8s.io images import" in result.predictions[0].remediation
    assert "imagePullSecrets" not in result.predictions[0].remediation
    # refused once, then the image was there: no incident
    assert predictions(SCENARIOS / "image-not-present" / "negative") == []


def test_the_diagnosis_names_an_image_absent_under_pull_policy_never() -> None:
    result = analyze([str(SCENARIOS / "image-not-present" / "positive")])
    first = msgspec.to_builtins(result.hypotheses[0])
    assert (first["pattern"], first["family"]) == ("image-never-pulled", "images")
    assert first["message"].startswith(
        "Pod report-gen-6d8f9c7b5-x7k2m (namespace reports) cannot start container report-gen: its image "
        "registry.local/report-gen:1.4.0 is not on the node and its pull policy is Never")
    assert "pull error" not in first["message"]
    assert "ctr -n k8s.io images import" in first["remediation"]
