"""kubectl text output (describe, get events, events) -> RawEvents, on holmesgpt's real recordings and inline samples.

The expected counts of the real files were read off the files by eye (rows under each `Events:`
header, one object per `Name:` block), not computed with the parser under test.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agents.enrich import enrich_event
from agents.normalize import normalize_event
from collectors.kubetables import parse_age, parse_interval
from collectors.kubetext import MissingNowError, looks_like_kubectl_text, parse_kubectl_text, strip_harness
from collectors.unusable import UnusableInput
from core.events import RawEvent

REALDATA = Path(__file__).resolve().parents[3] / "shared" / "realdata"
HOLMES = REALDATA / "holmesgpt"
IMAGE_PULL = HOLMES / "test_ask_holmes" / "10_image_pull_backoff" / "kubectl_describe.txt"
PVC_DIR = HOLMES / "test_ask_holmes" / "24a_misconfigured_pvc_basic"
PVC = PVC_DIR / "kubectl_describe_persistentvolumeclaim_redis-standard-pvc_app-24a.txt"
REDIS = PVC_DIR / "kubectl_describe_pod_redis-747ffc844f-f9ghd_app-24a.txt"
OOM = HOLMES / "test_investigate" / "01_oom_kill" / "kubectl_describe.txt"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def parse(text: str | bytes, file: str = "out.txt", **kw) -> tuple[list[RawEvent], list[UnusableInput]]:
    data = text.encode() if isinstance(text, str) else text
    out = list(parse_kubectl_text(data, file, **kw))
    return [o for o in out if isinstance(o, RawEvent)], [o for o in out if isinstance(o, UnusableInput)]


def real(path: Path, **kw) -> tuple[RawEvent, list[RawEvent]]:
    """(the object's SNAPSHOT, its Events) of a one-object holmesgpt recording; no errors allowed."""
    events, errors = parse(strip_harness(path.read_text()), str(path), **kw)
    assert errors == []
    snapshots = [e for e in events if e.metadata["action"] == "SNAPSHOT"]
    assert len(snapshots) == 1 and events[0] is snapshots[0]
    return snapshots[0], events[1:]


def payload(event: RawEvent) -> dict:
    return json.loads(event.data)


def unified(event: RawEvent):
    return normalize_event(enrich_event(event))


# -- the harness around holmesgpt's recordings ------------------------------------------------


@pytest.mark.parametrize(("path", "first"), [
    (IMAGE_PULL, "Name:             customer-relations-webapp-7c67c65579-ch5p9"),
    (PVC, "Name:          redis-standard-pvc"),
    (REDIS, "Name:             redis-747ffc844f-f9ghd"),
    (OOM, "Name:             analytics-exporter-fast-76897854c-cw5wh"),
])
def test_strip_harness_leaves_the_kubectl_text(path: Path, first: str) -> None:
    raw = path.read_text()
    text = strip_harness(raw)
    assert text.split("\n", 1)[0] == first
    assert "stderr:" not in text and "stdout:" not in text and '"toolset_name"' not in text
    assert text.endswith("\n") and not text.endswith("\n\n")
    assert not looks_like_kubectl_text(raw.encode())  # the harness's JSON header first
    assert looks_like_kubectl_text(text.encode())


def test_strip_harness_on_plain_text_changes_nothing() -> None:
    assert strip_harness("Name: x\nEvents:  <none>\n") == "Name: x\nEvents:  <none>\n"


# -- 10_image_pull_backoff: ErrImagePull / ImagePullBackOff ------------------------------------


def test_image_pull_pod_object() -> None:
    snapshot, events = real(IMAGE_PULL, now=at("2024-11-26T11:37:44Z"))
    assert len(events) == 6
    pod = payload(snapshot)
    assert (pod["kind"], pod["metadata"]["name"], pod["metadata"]["namespace"]) == (
        "Pod", "customer-relations-webapp-7c67c65579-ch5p9", "default")
    assert pod["metadata"]["labels"] == {"app": "customer-relations", "pod-template-hash": "7c67c65579",
                                         "visualize": "true"}
    assert pod["metadata"]["ownerReferences"] == [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "controller": True,
                                                   "name": "customer-relations-webapp-7c67c65579"}]
    assert pod["spec"]["nodeName"] == "kind-control-plane" and pod["status"]["hostIP"] == "172.18.0.2"
    assert pod["status"]["phase"] == "Pending" and pod["status"]["startTime"] == "2024-11-26T11:37:10Z"
    [status] = pod["status"]["containerStatuses"]
    assert status == {"name": "crw-main-container", "image": "yourcompany/crw:latest", "ready": False,
                      "restartCount": 0, "state": {"waiting": {"reason": "ErrImagePull"}}}
    assert {c["type"]: c["status"] for c in pod["status"]["conditions"]} == {
        "PodReadyToStartContainers": "True", "Initialized": "True", "Ready": "False", "ContainersReady": "False",
        "PodScheduled": "True"}
    assert pod["spec"]["volumes"] == [{"name": "kube-api-access-c6ztg",
                                       "projected": {"sources": [{"configMap": {"name": "kube-root-ca.crt"}}]}}]
    assert snapshot.timestamp == at("2024-11-26T11:37:10Z")  # the newest time the object shows
    assert snapshot.metadata["node"] == "kind-control-plane"


def test_image_pull_events_with_explicit_now() -> None:
    now = at("2024-11-26T11:37:44Z")
    _, events = real(IMAGE_PULL, now=now)
    assert [e.metadata["reason"] for e in events] == ["Scheduled", "Pulling", "Failed", "Failed", "BackOff", "Failed"]
    assert [e.metadata["count"] for e in events] == ["1", "2", "2", "2", "2", "2"]
    assert [e.metadata["event_type"] for e in events] == ["Normal", "Normal", "Warning", "Warning", "Normal",
                                                          "Warning"]
    scheduled, pulling, _, _, backoff, _ = (payload(e) for e in events)
    # Scheduled 34s before now: exactly the pod's Start Time
    assert scheduled["firstTimestamp"] == scheduled["lastTimestamp"] == "2024-11-26T11:37:10Z"
    assert (pulling["firstTimestamp"], pulling["lastTimestamp"]) == ("2024-11-26T11:37:10Z", "2024-11-26T11:37:26Z")
    assert (backoff["firstTimestamp"], backoff["lastTimestamp"]) == ("2024-11-26T11:37:12Z", "2024-11-26T11:37:40Z")
    assert events[4].timestamp == now - timedelta(seconds=4)
    assert scheduled["involvedObject"] == {"apiVersion": "v1", "kind": "Pod", "namespace": "default",
                                           "name": "customer-relations-webapp-7c67c65579-ch5p9"}
    assert scheduled["source"] == {"component": "default-scheduler"}
    assert pulling["source"] == {"component": "kubelet", "host": "kind-control-plane"}  # a kubelet on the pod's node
    assert events[2].metadata["message"].startswith('Failed to pull image "yourcompany/crw:latest": failed to pull')
    assert len({e.id for e in events}) == 6 and len({payload(e)["metadata"]["name"] for e in events}) == 6


def test_image_pull_is_understood_by_enrich_and_normalize() -> None:
    snapshot, events = real(IMAGE_PULL, now=at("2024-11-26T11:37:44Z"))
    pod = unified(snapshot)
    assert pod.semantic.intent == "image-pull-failure" and pod.kubernetes.container_reason == "ErrImagePull"
    assert pod.k8s.owner.kind == "ReplicaSet" and pod.k8s.node == "kind-control-plane"
    assert pod.k8s.refs == ["ConfigMap/kube-root-ca.crt"]
    intents = [unified(e).semantic.intent for e in events]
    assert intents == ["lifecycle", "lifecycle", "container-failure", "image-pull-failure", "image-pull-failure",
                       "image-pull-failure"]
    assert "node:kind-control-plane" in unified(events[-1]).correlation_hints


def test_without_now_the_newest_absolute_time_is_the_reference() -> None:
    _, events = real(IMAGE_PULL)  # only Start Time: 11:37:10Z
    assert payload(events[0])["lastTimestamp"] == "2024-11-26T11:36:36Z"  # 34s before
    assert events[4].timestamp == at("2024-11-26T11:37:06Z")


# -- 01_oom_kill: OOMKilled -> CrashLoopBackOff ------------------------------------------------


def test_oom_pod_object() -> None:
    snapshot, events = real(OOM, now=at("2025-02-27T06:37:08Z"))
    assert len(events) == 10
    [status] = payload(snapshot)["status"]["containerStatuses"]
    assert status["restartCount"] == 6 and status["ready"] is False
    assert status["state"] == {"waiting": {"reason": "CrashLoopBackOff"}}
    assert status["lastState"] == {"terminated": {"reason": "OOMKilled", "exitCode": 137,
                                                  "startedAt": "2025-02-27T06:36:21Z",
                                                  "finishedAt": "2025-02-27T06:36:22Z"}}
    assert status["containerID"].startswith("containerd://0ca62d24")
    [container] = payload(snapshot)["spec"]["containers"]
    assert container["args"] == ["80Mi", "0", "100Mi", "10", "1"]
    assert container["resources"] == {"limits": {"memory": "100Mi"}, "requests": {"memory": "100Mi"}}
    assert payload(snapshot)["spec"]["nodeSelector"] == {"kubernetes.io/arch": "amd64"}
    assert snapshot.timestamp == at("2025-02-27T06:36:22Z")


def test_oom_events_with_explicit_now() -> None:
    _, events = real(OOM, now=at("2025-02-27T06:37:08Z"))
    assert [e.metadata["reason"] for e in events] == ["Scheduled", "Pulled", "Pulled", "Pulled", "Pulled", "Started",
                                                      "Pulling", "Created", "Pulled", "BackOff"]
    assert Counter(e.metadata["reason"] for e in events)["Pulled"] == 5
    scheduled, backoff = payload(events[0]), payload(events[-1])
    assert scheduled["lastTimestamp"] == "2025-02-27T06:30:28Z"  # 6m40s before now: the pod's Start Time
    assert backoff["count"] == 23 and backoff["type"] == "Warning"
    assert (backoff["firstTimestamp"], backoff["lastTimestamp"]) == ("2025-02-27T06:30:35Z", "2025-02-27T06:35:41Z")
    assert events[-1].metadata["node"] == "grafana-cloud-control-plane"
    assert [e.metadata["count"] for e in events] == ["1", "1", "1", "1", "1", "4", "5", "5", "1", "23"]


def test_oom_without_now_uses_the_last_termination_time() -> None:
    _, events = real(OOM)  # newest absolute time: Last State Finished 07:36:22 +0100
    assert payload(events[0])["lastTimestamp"] == "2025-02-27T06:29:42Z"  # 6m40s before it: early, never late


def test_oom_is_understood_by_enrich_and_normalize() -> None:
    snapshot, events = real(OOM, now=at("2025-02-27T06:37:08Z"))
    pod = unified(snapshot)
    assert pod.kubernetes.exit_code == 137 and pod.kubernetes.restart_count == 6
    assert pod.k8s.owner.name == "analytics-exporter-fast-76897854c" and pod.k8s.node == "grafana-cloud-control-plane"
    # waiting CrashLoopBackOff with lastState OOMKilled: the pod is being OOM-killed (enrich says so)
    assert pod.kubernetes.container_reason == "OOMKilled" and pod.semantic.intent == "oom-kill"
    assert unified(events[-1]).semantic.intent == "crash-loop"  # the BackOff Event itself
    assert [unified(e).semantic.intent for e in events[:-1]] == ["lifecycle"] * 9


def test_oom_snapshot_reads_as_an_oom_kill() -> None:
    snapshot, _ = real(OOM, now=at("2025-02-27T06:37:08Z"))
    assert unified(snapshot).semantic.intent == "oom-kill"


# -- 24a_misconfigured_pvc_basic: a PVC whose StorageClass does not exist -> pod unschedulable --


def test_pvc_case_needs_now() -> None:
    for path in (PVC, REDIS):
        with pytest.raises(MissingNowError, match=r"pass --now TIME"):
            parse_kubectl_text(strip_harness(path.read_text()).encode(), str(path))


def test_unschedulable_pod() -> None:
    now = at("2025-03-01T12:00:00Z")
    snapshot, [event] = real(REDIS, now=now)
    pod = payload(snapshot)
    assert pod["status"]["conditions"] == [{"type": "PodScheduled", "status": "False"}]
    assert pod["status"]["phase"] == "Pending" and "nodeName" not in pod["spec"]
    assert "containerStatuses" not in pod["status"]  # describe shows no State: none exists yet
    assert {"name": "redis-storage", "persistentVolumeClaim": {"claimName": "redis-standard-pvc", "readOnly": False}} \
        in pod["spec"]["volumes"]
    assert pod["spec"]["containers"][0]["command"][:2] == ["redis-server", "--save"]
    assert snapshot.timestamp == now  # the pod shows no time of its own: seen at now
    assert "startTime" not in pod["status"] and "creationTimestamp" not in pod["metadata"]
    scheduling = payload(event)
    assert (scheduling["reason"], scheduling["count"], scheduling["type"]) == ("FailedScheduling", 2, "Warning")
    assert "unbound immediate PersistentVolumeClaims" in scheduling["message"]
    assert (scheduling["firstTimestamp"], scheduling["lastTimestamp"]) == ("2025-03-01T11:53:15Z",
                                                                           "2025-03-01T11:58:20Z")
    unified_pod, unified_event = unified(snapshot), unified(event)
    assert unified_event.semantic.intent == "scheduling-failure" and unified_event.semantic.severity == "warning"
    assert unified_event.k8s.name == "redis-747ffc844f-f9ghd" and unified_event.k8s.namespace == "app-24a"
    assert "PersistentVolumeClaim/redis-standard-pvc" in unified_pod.k8s.refs
    assert unified_pod.k8s.owner.name == "redis-747ffc844f"


def test_pvc_object_and_provisioning_failure() -> None:
    now = at("2025-03-01T12:00:00Z")
    snapshot, [event] = real(PVC, now=now)
    pvc = payload(snapshot)
    assert pvc == {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                   "metadata": {"name": "redis-standard-pvc", "namespace": "app-24a"},
                   "spec": {"storageClassName": "standard-v2", "volumeMode": "Filesystem"},
                   "status": {"phase": "Pending"}}
    failed = payload(event)
    assert (failed["reason"], failed["count"]) == ("ProvisioningFailed", 42)
    assert failed["message"] == 'storageclass.storage.k8s.io "standard-v2" not found'
    assert (failed["firstTimestamp"], failed["lastTimestamp"]) == ("2025-03-01T11:48:00Z", "2025-03-01T11:57:48Z")
    assert failed["source"] == {"component": "persistentvolume-controller"}
    assert unified(event).semantic.intent == "volume-failure"
    assert unified(event).k8s.kind == "PersistentVolumeClaim"


def test_same_input_same_ids() -> None:
    text = strip_harness(OOM.read_text()).encode()
    first = [e.id for e in parse_kubectl_text(text, "a.txt", now=at("2025-02-27T06:37:08Z"))]
    again = [e.id for e in parse_kubectl_text(text, "a.txt", now=at("2025-02-27T06:37:08Z"))]
    assert first == again and len(set(first)) == 11


# -- ages --------------------------------------------------------------------------------------


def test_ages() -> None:
    assert parse_age("9m22s") == timedelta(minutes=9, seconds=22)
    assert parse_age("3h5m") == timedelta(hours=3, minutes=5)
    assert parse_age("2d4h") == timedelta(days=2, hours=4)
    assert parse_age("3y45d") == timedelta(days=3 * 365 + 45)
    assert parse_age("<unknown>") is None and parse_age("<invalid>") == timedelta(0)  # a cluster clock ahead
    assert parse_interval("9m22s (x37 over 3h5m)") == (timedelta(minutes=9, seconds=22), 37, timedelta(hours=3,
                                                                                                     minutes=5))
    assert parse_interval("34s") == (timedelta(seconds=34), None, None)
    for bad in ("9x", "m5", "5 m", "87s (x23 ov", ""):
        with pytest.raises(ValueError):
            parse_interval(bad)


# -- kubectl get events / kubectl events ---------------------------------------------------------

NOW = at("2026-11-20T12:00:00Z")

GET_EVENTS_A = """\
NAMESPACE     LAST SEEN   TYPE      REASON              OBJECT                               MESSAGE
shop          2m10s       Warning   BackOff             pod/web-0                            Back-off restarting failed container nginx in pod web-0_shop(5f0c2a8e-1b9d-4c57-9a51-0f2b7e3c9d11)
shop          9m22s       Normal    ScalingReplicaSet   deployment.apps/web                  Scaled up replica set web-7c9d8f6b5 to 3
default       3h5m        Warning   NodeNotReady        node/worker-2                        Node worker-2 status is now: NodeNotReady
shop          2d4h        Warning   FailedMount         pod/web-1                            MountVolume.SetUp failed for volume "config" : configmap "nginx-config" not found
kube-system   <unknown>   Normal    LeaderElection      lease/kube-scheduler                 minikube_3c1f9e2a became leader
shop          45s         Warning   ProvisioningFailed  persistentvolumeclaim/data-web-0     storageclass.storage.k8s.io "fast" not found
"""


def test_get_events_all_namespaces() -> None:
    events, errors = parse(GET_EVENTS_A, "events.txt", now=NOW)
    assert [e.metadata["reason"] for e in events] == ["BackOff", "ScalingReplicaSet", "NodeNotReady", "FailedMount",
                                                      "LeaderElection", "ProvisioningFailed"]
    backoff, scaled, node, mount, leader, pvc = (payload(e) for e in events)
    # an age kubectl shows as <unknown> is read, placed at the oldest age of its table: never the newest
    assert leader["lastTimestamp"] == mount["lastTimestamp"]
    assert backoff["involvedObject"] == {"apiVersion": "v1", "kind": "Pod", "name": "web-0", "namespace": "shop"}
    assert backoff["message"].startswith("Back-off restarting failed container nginx in pod web-0_shop(")
    assert backoff["lastTimestamp"] == backoff["firstTimestamp"] == "2026-11-20T11:57:50Z" and backoff["count"] == 1
    assert scaled["involvedObject"]["kind"] == "Deployment" and scaled["involvedObject"]["apiVersion"] == "apps/v1"
    assert node["involvedObject"] == {"apiVersion": "v1", "kind": "Node", "name": "worker-2"}  # cluster-scoped
    assert node["metadata"]["namespace"] == "default" and node["lastTimestamp"] == "2026-11-20T08:55:00Z"
    assert mount["lastTimestamp"] == "2026-11-18T08:00:00Z"
    assert pvc["involvedObject"]["kind"] == "PersistentVolumeClaim"
    assert errors == []
    intents = [unified(e).semantic.intent for e in events]
    assert intents == ["crash-loop", "scaling", "node-not-ready", "volume-failure", "observed", "volume-failure"]
    assert unified(events[2]).k8s.node == "worker-2"


GET_EVENTS_WIDE = """\
LAST SEEN   TYPE      REASON      OBJECT      SUBOBJECT                SOURCE            MESSAGE                                                         FIRST SEEN   COUNT   NAME
9m22s       Warning   BackOff     pod/web-0   spec.containers{nginx}   kubelet, node-a   Back-off restarting failed container nginx in pod web-0_shop    3h5m         37      web-0.17a8e2b0c1d2e3f4
12m         Normal    Killing     pod/web-0   spec.containers{nginx}   kubelet, node-a   Container nginx failed liveness probe, will be restarted        12m          1       web-0.17a8e2b0c1d2e3f5
"""


def test_get_events_wide_namespace_from_the_caller() -> None:
    events, errors = parse(GET_EVENTS_WIDE, now=NOW, namespace="shop")
    assert errors == []
    backoff, killing = (payload(e) for e in events)
    assert backoff["metadata"] == {"name": "web-0.17a8e2b0c1d2e3f4", "namespace": "shop"}
    assert backoff["involvedObject"]["fieldPath"] == "spec.containers{nginx}"
    assert backoff["source"] == {"component": "kubelet", "host": "node-a"}
    assert (backoff["count"], backoff["firstTimestamp"], backoff["lastTimestamp"]) == (
        37, "2026-11-20T08:55:00Z", "2026-11-20T11:50:38Z")
    assert killing["message"] == "Container nginx failed liveness probe, will be restarted"
    assert events[0].metadata["node"] == "node-a" and events[0].metadata["namespace"] == "shop"
    assert unified(events[0]).kubernetes.count == 37


KUBECTL_EVENTS = """\
NAMESPACE   LAST SEEN                TYPE      REASON             OBJECT                MESSAGE
shop        9m22s (x37 over 3h5m)    Warning   BackOff            Pod/web-0             Back-off restarting failed container nginx in pod web-0_shop(5f0c2a8e)
shop        2d4h                     Normal    Scheduled          Pod/web-1             Successfully assigned shop/web-1 to node-b
            4m (x3 over 20m)         Warning   NodeNotReady       Node/worker-2         Node worker-2 status is now: NodeNotReady
shop        87s (x23 ov
shop        30s                      Warning   Unhealthy          Pod/web-1             Liveness probe failed: Get "http://10.244.0.7:8080/healthz": context deadline exceeded
"""


def test_kubectl_events_with_repeat_counts_and_a_cut_row() -> None:
    events, errors = parse(KUBECTL_EVENTS, "kubectl-events.txt", now=NOW)
    assert [e.metadata["reason"] for e in events] == ["BackOff", "Scheduled", "NodeNotReady", "Unhealthy"]
    backoff, scheduled, node, unhealthy = (payload(e) for e in events)
    assert (backoff["count"], backoff["firstTimestamp"], backoff["lastTimestamp"]) == (
        37, "2026-11-20T08:55:00Z", "2026-11-20T11:50:38Z")
    assert events[0].timestamp == NOW - timedelta(minutes=9, seconds=22)
    assert scheduled["lastTimestamp"] == "2026-11-18T08:00:00Z" and scheduled["count"] == 1
    assert node["involvedObject"]["kind"] == "Node" and node["count"] == 3
    assert unhealthy["message"].endswith("context deadline exceeded")
    [error] = errors
    assert error.position == "line 5" and error.fragment == "shop        87s (x23 ov"
    assert [unified(e).semantic.intent for e in events] == ["crash-loop", "lifecycle", "node-not-ready",
                                                            "probe-failure"]


def test_events_tables_need_now() -> None:
    with pytest.raises(MissingNowError, match="tapio analyze --now"):
        parse_kubectl_text(KUBECTL_EVENTS.encode(), "kubectl-events.txt")


# -- describe of other kinds, several objects, damage -----------------------------------------

DEPLOYMENT_AND_NODE = """\
Name:                   web
Namespace:              shop
CreationTimestamp:      Thu, 20 Nov 2026 09:00:00 +0000
Labels:                 app=web
Annotations:            deployment.kubernetes.io/revision: 3
Selector:               app=web
Replicas:               3 desired | 1 updated | 4 total | 2 available | 2 unavailable
StrategyType:           RollingUpdate
MinReadySeconds:        0
RollingUpdateStrategy:  25% max unavailable, 25% max surge
Pod Template:
  Labels:  app=web
  Containers:
   nginx:
    Image:      nginx:1.25.3
    Port:       80/TCP
    Host Port:  0/TCP
    Environment:
      LOG_LEVEL:  <set to the key 'level' of config map 'web-settings'>  Optional: false
      API_TOKEN:  <set to the key 'token' in secret 'web-secrets'>       Optional: false
    Mounts:
      /etc/nginx/conf.d from config (rw)
  Volumes:
   config:
    Type:          ConfigMap (a volume populated by a ConfigMap)
    Name:          nginx-config
    Optional:      false
  Node-Selectors:  <none>
  Tolerations:     <none>
Conditions:
  Type           Status  Reason
  ----           ------  ------
  Available      False   MinimumReplicasUnavailable
  Progressing    True    ReplicaSetUpdated
OldReplicaSets:  web-5d4f8b (3/3 replicas created)
NewReplicaSet:   web-7c9d8f6b5 (1/1 replicas created)
Events:
  Type    Reason             Age   From                   Message
  ----    ------             ----  ----                   -------
  Normal  ScalingReplicaSet  12m   deployment-controller  Scaled up replica set web-7c9d8f6b5 to 1


Name:               worker-2
Roles:              <none>
Labels:             kubernetes.io/hostname=worker-2
                    kubernetes.io/os=linux
Annotations:        node.alpha.kubernetes.io/ttl: 0
CreationTimestamp:  Mon, 17 Nov 2026 08:00:00 +0000
Taints:             node.kubernetes.io/unreachable:NoExecute
                    node.kubernetes.io/unreachable:NoSchedule
Unschedulable:      false
Lease:
  HolderIdentity:  worker-2
  AcquireTime:     <unset>
  RenewTime:       Thu, 20 Nov 2026 10:02:13 +0000
Conditions:
  Type             Status    LastHeartbeatTime                 LastTransitionTime                Reason              Message
  ----             ------    -----------------                 ------------------                ------              -------
  MemoryPressure   Unknown   Thu, 20 Nov 2026 10:02:13 +0000   Thu, 20 Nov 2026 10:06:55 +0000   NodeStatusUnknown   Kubelet stopped posting node status.
  Ready            Unknown   Thu, 20 Nov 2026 10:02:13 +0000   Thu, 20 Nov 2026 10:06:55 +0000   NodeStatusUnknown   Kubelet stopped posting node status.
Addresses:
  InternalIP:  172.18.0.3
  Hostname:    worker-2
Events:
  Type    Reason        Age               From             Message
  ----    ------        ----              ----             -------
  Normal  NodeNotReady  3m (x2 over 55m)  node-controller  Node worker-2 status is now: NodeNotReady
"""


def test_describe_deployment_and_node() -> None:
    assert looks_like_kubectl_text(DEPLOYMENT_AND_NODE.encode())
    events, errors = parse(DEPLOYMENT_AND_NODE, now=NOW)
    assert errors == []
    assert [(e.metadata["action"], e.metadata["kind"]) for e in events] == [
        ("SNAPSHOT", "Deployment"), ("EVENT", "Event"), ("SNAPSHOT", "Node"), ("EVENT", "Event")]
    deployment, scaled, node, not_ready = (payload(e) for e in events)
    assert deployment["apiVersion"] == "apps/v1" and deployment["metadata"]["creationTimestamp"] == "2026-11-20T09:00:00Z"
    assert deployment["metadata"]["annotations"] == {"deployment.kubernetes.io/revision": "3"}
    assert deployment["spec"]["replicas"] == 3 and deployment["spec"]["selector"] == {"matchLabels": {"app": "web"}}
    assert deployment["status"]["availableReplicas"] == 2 and deployment["status"]["unavailableReplicas"] == 2
    assert deployment["status"]["conditions"][0] == {"type": "Available", "status": "False",
                                                     "reason": "MinimumReplicasUnavailable"}
    template = deployment["spec"]["template"]
    assert template["metadata"] == {"labels": {"app": "web"}}
    assert template["spec"]["volumes"] == [{"name": "config", "configMap": {"name": "nginx-config"}}]
    assert template["spec"]["containers"][0]["env"][0] == {
        "name": "LOG_LEVEL", "valueFrom": {"configMapKeyRef": {"name": "web-settings", "key": "level"}}}
    assert unified(events[0]).k8s.refs == ["ConfigMap/nginx-config", "ConfigMap/web-settings", "Secret/web-secrets"]
    assert unified(events[0]).k8s.selector == {"app": "web"}
    assert scaled["involvedObject"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                                        "namespace": "shop"}
    assert node["spec"]["taints"] == [{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"},
                                      {"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"}]
    assert node["status"]["conditions"][1] == {
        "type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown",
        "message": "Kubelet stopped posting node status.", "lastHeartbeatTime": "2026-11-20T10:02:13Z",
        "lastTransitionTime": "2026-11-20T10:06:55Z"}
    assert node["status"]["addresses"][0] == {"type": "InternalIP", "address": "172.18.0.3"}
    assert "namespace" not in node["metadata"]
    assert not_ready["involvedObject"] == {"apiVersion": "v1", "kind": "Node", "name": "worker-2"}
    assert not_ready["metadata"]["namespace"] == "default" and not_ready["count"] == 2
    assert unified(events[2]).k8s.node == "worker-2" and unified(events[3]).semantic.intent == "node-not-ready"


def test_describe_without_now_takes_the_newest_time_of_all_blocks() -> None:
    events, _ = parse(DEPLOYMENT_AND_NODE)  # newest: the Node's LastTransitionTime 10:06:55
    assert payload(events[1])["lastTimestamp"] == "2026-11-20T09:54:55Z"  # ScalingReplicaSet, 12m before
    assert payload(events[3])["lastTimestamp"] == "2026-11-20T10:03:55Z"


TWO_PODS_DAMAGED = """\
Name:             web-0
Namespace:        shop
Node:             node-a/10.0.0.4
Start Time:       Thu, 20 Nov 2026 11:00:00 +0000
Status:           Running
Containers:
  nginx:
    Image:          nginx:1.25.3
    State:          Running
      Started:      Thu, 20 Nov 2026 11:40:00 +0000
    Last State:     Termin
    Ready:          True
    Restart Count:  3
Conditions:
  Type              Status
  PodScheduled      True
Events:
  Type     Reason   Age                  From     Message
  ----     ------   ----                 ----     -------
  Warning  BackOff  87s (x23 ov
  Warning  Failed   20m                  kubelet  Error: failed to create containerd task: OCI runtime create failed:
exec: "nginx-debug": executable file not found in $PATH: unknown
  Normal   Pulled   19m (x4 over 20m)  kubelet  Container image "nginx:1.25.3" already present on machine

Name:             web-1
Namespace:        shop
Node:             node-b/10.0.0.5
Start Time:       Thu, 20 Nov 2026 11:00:00 +0000
Status:           Running
Containers:
  nginx:
    Image:          nginx:1.25.3
    State:          Terminated
      Reason:       Error
      Exit Code:    1
      Started:      Thu, 20 Nov 2026 11:50:00 +0000
      Finished:     Thu, 20 Nov 2026 11:50:03 +0000
    Ready:          False
    Restart Count:  1
Conditions:
  Type              Status
  PodScheduled      True
Events:           <none>
"""


def test_damaged_block_gives_errors_with_lines_and_the_rest_parses() -> None:
    events, errors = parse(TWO_PODS_DAMAGED, "pods.txt", now=NOW)
    assert [(e.position, e.reason.split(":")[0]) for e in errors] == [
        ("line 11", "Pod web-0"), ("line 20", "events row does not read as Type Reason Age From Message (garbled or cut)")]
    assert "Last State: not a container state" in errors[0].reason and errors[0].fragment == "Last State:     Termin"
    assert errors[1].fragment == "  Warning  BackOff  87s (x23 ov"
    # web-0's object is unusable, its good Events rows are kept: a message on two lines, and the row
    # after it, which tabwriter aligned anew
    failed, pulled, web1 = events
    assert payload(failed)["message"] == ('Error: failed to create containerd task: OCI runtime create failed:\n'
                                          'exec: "nginx-debug": executable file not found in $PATH: unknown')
    assert payload(pulled)["reason"] == "Pulled" and payload(pulled)["involvedObject"]["name"] == "web-0"
    assert payload(pulled)["message"] == 'Container image "nginx:1.25.3" already present on machine'
    assert (payload(pulled)["count"], payload(pulled)["firstTimestamp"]) == (4, "2026-11-20T11:40:00Z")
    assert payload(pulled)["source"] == {"component": "kubelet", "host": "node-a"}
    assert web1.metadata["action"] == "SNAPSHOT" and web1.metadata["name"] == "web-1"
    [status] = payload(web1)["status"]["containerStatuses"]
    assert status["state"]["terminated"]["exitCode"] == 1 and status["restartCount"] == 1
    assert web1.timestamp == at("2026-11-20T11:50:03Z")
    assert unified(web1).semantic.intent == "container-failure"


def test_junk_between_outputs_is_an_error_naming_its_line() -> None:
    text = "garbage at the top\nmore garbage\n\n" + GET_EVENTS_WIDE
    events, errors = parse(text, "mixed.txt", now=NOW, namespace="shop")
    assert len(events) == 2
    [error] = errors
    assert error.position == "line 1" and "neither kubectl describe output" in error.reason
    assert not looks_like_kubectl_text(text.encode())


POD_CONFIG_ERROR = """\
Name:             api-6d8f7c9b4-x2x9q
Namespace:        shop
Priority:         0
Service Account:  api
Node:             node-a/10.0.0.4
Start Time:       Thu, 20 Nov 2026 11:00:00 +0000
Labels:           app=api
                  pod-template-hash=6d8f7c9b4
Annotations:      kubectl.kubernetes.io/restartedAt: 2026-11-20T10:59:00Z
Status:           Pending
IP:               10.244.1.9
IPs:
  IP:           10.244.1.9
Controlled By:  ReplicaSet/api-6d8f7c9b4
Init Containers:
  migrate:
    Container ID:  containerd://aaa
    Image:         api:2.1
    Image ID:      docker.io/library/api@sha256:123
    Port:          <none>
    Host Port:     <none>
    State:         Terminated
      Reason:      Completed
      Exit Code:   0
      Started:     Thu, 20 Nov 2026 11:00:05 +0000
      Finished:    Thu, 20 Nov 2026 11:00:09 +0000
    Ready:         True
    Restart Count: 0
    Environment Variables from:
      api-settings  ConfigMap  Optional: false
      api-creds     Secret     Optional: false
    Environment:   <none>
    Mounts:        <none>
Containers:
  api:
    Container ID:
    Image:          api:2.1
    Image ID:
    Port:           8080/TCP
    Host Port:      0/TCP
    State:          Waiting
      Reason:       CreateContainerConfigError
    Ready:          False
    Restart Count:  0
    Environment:
      DB_PASSWORD:  <set to the key 'password' in secret 'db'>  Optional: false
      POD_NAME:     api-6d8f7c9b4-x2x9q (v1:metadata.name)
    Mounts:
      /etc/tls from tls (ro)
Conditions:
  Type                        Status
  PodReadyToStartContainers   True
  Initialized                 True
  Ready                       False
  ContainersReady             False
  PodScheduled                True
Volumes:
  tls:
    Type:        Secret (a volume populated by a Secret)
    SecretName:  api-tls
    Optional:    false
  scratch:
    Type:       EmptyDir (a temporary directory that shares a pod's lifetime)
    Medium:
    SizeLimit:  <unset>
QoS Class:                   BestEffort
Node-Selectors:              <none>
Tolerations:                 node.kubernetes.io/not-ready:NoExecute op=Exists for 300s
Events:
  Type     Reason     Age                From               Message
  ----     ------     ----               ----               -------
  Normal   Scheduled  2m                 default-scheduler  Successfully assigned shop/api-6d8f7c9b4-x2x9q to node-a
  Warning  Failed     10s (x8 over 2m)   kubelet            Error: secret "db" not found
"""


def test_describe_pod_with_init_containers_env_references_and_secret_volume() -> None:
    [pod, _, failed], errors = parse(POD_CONFIG_ERROR, now=NOW)
    assert errors == []
    spec, status = payload(pod)["spec"], payload(pod)["status"]
    assert spec["initContainers"][0]["envFrom"] == [{"configMapRef": {"name": "api-settings"}},
                                                    {"secretRef": {"name": "api-creds"}}]
    assert spec["containers"][0]["env"] == [
        {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}}]
    assert spec["volumes"] == [{"name": "tls", "secret": {"secretName": "api-tls"}},
                               {"name": "scratch", "emptyDir": {}}]
    assert status["initContainerStatuses"][0]["state"] == {"terminated": {
        "reason": "Completed", "exitCode": 0, "startedAt": "2026-11-20T11:00:05Z", "finishedAt": "2026-11-20T11:00:09Z"}}
    assert payload(pod)["metadata"]["annotations"] == {"kubectl.kubernetes.io/restartedAt": "2026-11-20T10:59:00Z"}
    enriched = unified(pod)
    assert enriched.semantic.intent == "config-error"
    assert enriched.k8s.refs == ["ConfigMap/api-settings", "Secret/api-creds", "Secret/api-tls", "Secret/db"]
    assert payload(failed)["message"] == 'Error: secret "db" not found' and payload(failed)["count"] == 8


SERVICE_ACCOUNT = """\
Name:                builder
Namespace:           ci
Labels:              <none>
Annotations:         <none>
Image pull secrets:  <none>
Mountable secrets:   <none>
Tokens:              <none>
Events:              <none>
"""


def test_kind_hint_when_the_fields_do_not_tell() -> None:
    _, [error] = parse(SERVICE_ACCOUNT, "sa.txt")
    assert error.position == "line 1" and "pass the kind as a hint" in error.reason
    [account], errors = parse(SERVICE_ACCOUNT, "sa.txt", kind="sa", now=NOW)
    assert errors == [] and payload(account) == {"apiVersion": "v1", "kind": "ServiceAccount",
                                                 "metadata": {"name": "builder", "namespace": "ci"}}
    assert account.timestamp == NOW
    with pytest.raises(MissingNowError):
        parse_kubectl_text(SERVICE_ACCOUNT.encode(), "sa.txt", kind="serviceaccount")


def test_detection() -> None:
    assert looks_like_kubectl_text(b"\n\n" + GET_EVENTS_A.encode())
    assert looks_like_kubectl_text(KUBECTL_EVENTS.encode())
    assert not looks_like_kubectl_text(b'{"kind": "EventList", "items": []}')
    assert not looks_like_kubectl_text(b"apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\n")
    assert looks_like_kubectl_text(b"NAME    READY   STATUS    RESTARTS   AGE\nweb-0   1/1     Running   0          5m\n")
    assert not looks_like_kubectl_text(b"NAME        DATA   AGE\nweb-config  2      5m\n")  # configmaps: not read
    assert not looks_like_kubectl_text(b"")
    events, errors = parse(b"\xff\xfe", "bin.txt", now=NOW)
    assert events == [] and errors[0].reason.startswith("not a text file")
