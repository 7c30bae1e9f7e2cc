"""The refused-connections -> readiness-probe failure chain on the real cluster: a peer that stops
accepting, the client whose health depends on it, and what the API says of them.

Fed by: a test or the recording script (`benchmarks/record_tcp_refused.py`) with a running
`realcluster.RealCluster`. Feeds: the real cluster, per namespace:
- `peer` (one-replica Deployment and Service, port 8080): busybox `httpd` listens on 8080 until a
  file `stop` appears in a hostPath folder the caller holds (`control_dir`), then it is killed and the
  container sleeps on: the pod runs, nothing listens, its kernel answers each SYN with a RST;
- `client` (one-replica Deployment and Service): every second `nc -w 1 <peer's pod IP> 8080`; after
  two failures in a row the app keeps nc's error in /tmp/unhealthy, and its readiness probe (exec,
  every 2 s, as a real app's health endpoint that checks its dependency) prints it and fails; at the
  second failure (failureThreshold 2) the pod is not Ready and its Service loses it.
The API's times are whole seconds: the app's retry puts its first refused connection in an earlier
second than the kubelet's first Unhealthy Event, so the kernel's event precedes it in event time too.
The cluster has no kube-proxy (Service IPs do not route), so the client is given the peer pod's IP,
read from the API once the peer runs.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import kubernetes
from realcluster.images import BUSYBOX_IMAGE

PORT = 8080
# Serves /www on 8080 until the control file appears, then stops listening and sleeps on.
PEER = ("sh", "-c", "mkdir -p /www; echo ok > /www/index.html; httpd -f -p 8080 -h /www & server=$!; "
        "until [ -e /control/stop ]; do sleep 0.2; done; kill $server; echo 'stopped listening'; "
        "exec sleep 3600")
# Checks its dependency every second; unhealthy after two failed checks in a row (one is retried, as
# apps do), healthy again at the first that passes.
CLIENT = ("sh", "-c", "failed=0; while :; do if nc -w 1 \"$PEER\" 8080 </dev/null 2>/tmp/error; then failed=0; "
          "rm -f /tmp/unhealthy; else failed=$((failed + 1)); if [ $failed -ge 2 ]; then "
          "echo \"dependency $PEER:8080 down: $(cat /tmp/error)\" > /tmp/unhealthy; fi; fi; sleep 1; done")
READY = ["sh", "-c", "if [ -e /tmp/unhealthy ]; then cat /tmp/unhealthy; exit 1; fi"]


def _deployment(name: str, container: dict[str, Any], volumes: list[dict[str, Any]]) -> dict[str, Any]:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": labels},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"terminationGracePeriodSeconds": 0, "containers": [container],
                                           "volumes": volumes}}}}


def _service(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": PORT}]}}


def peer_manifests(control_dir: Path) -> list[dict[str, Any]]:
    """The peer's Deployment (its control folder mounted at /control) and Service."""
    container = {"name": "peer", "image": BUSYBOX_IMAGE, "imagePullPolicy": "Never", "command": list(PEER),
                 "ports": [{"containerPort": PORT}], "volumeMounts": [{"name": "control", "mountPath": "/control"}]}
    volumes = [{"name": "control", "hostPath": {"path": str(control_dir), "type": "DirectoryOrCreate"}}]
    return [_deployment("peer", container, volumes), _service("peer")]


def client_manifests(peer_ip: str) -> list[dict[str, Any]]:
    """The client's Deployment (PEER: the peer pod's IP) with its readiness probe, and Service."""
    container = {"name": "client", "image": BUSYBOX_IMAGE, "imagePullPolicy": "Never", "command": list(CLIENT),
                 "env": [{"name": "PEER", "value": peer_ip}],
                 "readinessProbe": {"exec": {"command": READY}, "periodSeconds": 2, "failureThreshold": 2}}
    return [_deployment("client", container, []), _service("client")]


def _create(api: kubernetes.client.ApiClient, namespace: str, manifests: list[dict[str, Any]]) -> None:
    core, apps = kubernetes.client.CoreV1Api(api), kubernetes.client.AppsV1Api(api)
    for body in manifests:
        if body["kind"] == "Deployment":
            apps.create_namespaced_deployment(namespace, body)
        else:
            core.create_namespaced_service(namespace, body)


def _pod(api: kubernetes.client.ApiClient, namespace: str, app: str) -> Any:
    pods = kubernetes.client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=f"app={app}").items
    return pods[0] if pods else None


def pod_of(api: kubernetes.client.ApiClient, namespace: str, app: str) -> tuple[str, str, bool]:
    """(name, pod IP, ready) of the app's one pod; ("", "", False) before it exists."""
    pod = _pod(api, namespace, app)
    if pod is None:
        return "", "", False
    statuses = pod.status.container_statuses or []
    return pod.metadata.name, pod.status.pod_ip or "", bool(statuses) and all(s.ready for s in statuses)


def wait_for(what: str, check, deadline: float = 120.0):  # type: ignore[no-untyped-def]
    """Poll `check` every 0.2 s until it returns something true; that value."""
    until = time.monotonic() + deadline
    while time.monotonic() < until:
        got = check()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {deadline:.0f} s")


def create(api: kubernetes.client.ApiClient, namespace: str, control_dir: Path) -> tuple[str, str]:
    """The namespace, the peer (listening), then the client given the peer's IP; returns (client pod,
    peer IP) once the client is Ready (its dependency answered)."""
    control_dir.mkdir(parents=True, exist_ok=True)
    (control_dir / "stop").unlink(missing_ok=True)
    kubernetes.client.CoreV1Api(api).create_namespace(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    _create(api, namespace, peer_manifests(control_dir))
    _, peer_ip, _ = wait_for(f"{namespace}: the peer running with an IP",
                             lambda: (s := pod_of(api, namespace, "peer"))[1] and s[2] and s)
    _create(api, namespace, client_manifests(peer_ip))
    client, _, _ = wait_for(f"{namespace}: the client Ready", lambda: (s := pod_of(api, namespace, "client"))[2] and s)
    return client, peer_ip


def stop_listening(control_dir: Path) -> float:
    """Make the peer stop accepting (its server killed, the pod running on); when (epoch seconds)."""
    (control_dir / "stop").touch()
    return time.time()


def readiness_failures(api: kubernetes.client.ApiClient, namespace: str, pod: str) -> list[str]:
    """The kubelet's Unhealthy Events about `pod` (its readiness probe failing): one message per
    failure (the kubelet counts a repeated message on one Event)."""
    events = kubernetes.client.CoreV1Api(api).list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={pod}").items
    return [e.message or "" for e in events if e.reason == "Unhealthy" for _ in range(e.count or 1)]


def ready_endpoints(api: kubernetes.client.ApiClient, namespace: str, service: str) -> int:
    """The Service's ready addresses now (its Endpoints' `addresses`)."""
    try:
        endpoints = kubernetes.client.CoreV1Api(api).read_namespaced_endpoints(service, namespace)
    except kubernetes.client.ApiException as e:
        if e.status == 404:
            return 0
        raise
    return sum(len(s.addresses or []) for s in endpoints.subsets or [])
