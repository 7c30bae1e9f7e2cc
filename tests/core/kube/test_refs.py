"""core.kube.refs: every way a pod spec names a ConfigMap, Secret or PVC, and what each caller keeps."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from agents.enrich import enrich_event
from core.events import RawEvent
from core.kube.refs import PodRef, PodSpec, pod_refs
from topology.index import ObjectIndex

SPEC = {
    "volumes": [
        {"name": "cfg", "configMap": {"name": "app-config", "items": [{"key": "a.yaml", "path": "a"}]}},
        {"name": "data", "persistentVolumeClaim": {"claimName": "data-pvc"}},
        {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}},
    ],
    "containers": [{"name": "main", "envFrom": [{"secretRef": {"name": "api-keys"}}]}],
    "ephemeralContainers": [{"name": "debug", "env": [
        {"name": "DBG", "valueFrom": {"configMapKeyRef": {"name": "debug-config", "key": "on"}}}]}],
    "imagePullSecrets": [{"name": "registry"}],
}
POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "shop", "uid": "uid-p"}, "spec": SPEC}


def test_pod_refs_read_every_source_in_spec_order() -> None:
    assert pod_refs(msgspec.convert(SPEC, PodSpec), pod_name="p") == [
        PodRef("ConfigMap", "app-config", "volume", "cfg", "a.yaml"),
        PodRef("PersistentVolumeClaim", "data-pvc", "volume", "data"),
        PodRef("PersistentVolumeClaim", "p-scratch", "ephemeral", "scratch"),
        PodRef("Secret", "api-keys", "envFrom", containers="containers"),
        PodRef("ConfigMap", "debug-config", "env", key="on", containers="ephemeralContainers"),
        PodRef("Secret", "registry", "imagePullSecret"),
    ]
    # a pod template has no pod name yet: no ephemeral claim
    assert all(r.via != "ephemeral" for r in pod_refs(msgspec.convert(SPEC, PodSpec)))


def test_the_graph_draws_every_reference_the_match_stage_learns_its_own_subset() -> None:
    edges = ObjectIndex().add(POD).add_edges
    assert {e.dst_key for e in edges if e.type in ("MOUNTS", "USES_SECRET", "CLAIMS")} == {
        "ConfigMap:shop/app-config", "PersistentVolumeClaim:shop/data-pvc", "PersistentVolumeClaim:shop/p-scratch",
        "Secret:shop/api-keys", "ConfigMap:shop/debug-config", "Secret:shop/registry"}
    raw = RawEvent(id="e", timestamp=datetime(2024, 1, 1, tzinfo=UTC), type="kubeapi",
                   data=msgspec.json.encode(POD), metadata={"action": "SNAPSHOT"})
    # imagePullSecrets, ephemeral containers and ephemeral claims stay out of the match stage's
    # refs: they would add `configmap` scope keys (a behaviour change, not made here)
    assert enrich_event(raw).k8s.refs == ["ConfigMap/app-config", "PersistentVolumeClaim/data-pvc", "Secret/api-keys"]
