"""The kernel-OOM -> restart -> degraded chain on the real cluster: its workloads and what a watch of them says.

Fed by: a test or the recording script (`benchmarks/record_kernel_oom.py`) with a running
`realcluster.RealCluster`. Feeds: the real cluster (a Deployment `hog` whose container serves for 8 s, then
outgrows its 32Mi memory limit with `tail /dev/zero` and is OOM-killed, after every start, behind a Service,
and its healthy twin `calm`, same limit, `sleep`), and the waits on what the API says of them.
"""

from __future__ import annotations

import time
from typing import Any

import kubernetes
from realcluster.images import BUSYBOX_IMAGE

LIMIT = "32Mi"
#: serves (Ready) for 8 s, then leaks: `tail` reads zeros into one ever-growing line and the memcg OOM killer
#: ends it; the kubelet restarts it, it serves again, and so on, so its Service loses its endpoint at each kill
HOG = ("sh", "-c", "sleep 8; tail /dev/zero")
CALM = ("sh", "-c", "sleep 3600")


def manifests(name: str, command: tuple[str, ...]) -> list[dict[str, Any]]:
    """A one-replica Deployment `name` with a 32Mi limit and a readiness probe, and its Service."""
    labels = {"app": name}
    container = {"name": name, "image": BUSYBOX_IMAGE, "imagePullPolicy": "Never", "command": list(command),
                 "resources": {"limits": {"memory": LIMIT}, "requests": {"memory": LIMIT}},
                 "readinessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 2}}
    deploy = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": labels},
              "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                       "template": {"metadata": {"labels": labels},
                                    "spec": {"terminationGracePeriodSeconds": 0, "containers": [container]}}}}
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "labels": labels},
               "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]}}
    return [deploy, service]


def create(api: kubernetes.client.ApiClient, namespace: str, name: str, command: tuple[str, ...]) -> None:
    core, apps = kubernetes.client.CoreV1Api(api), kubernetes.client.AppsV1Api(api)
    core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    deploy, service = manifests(name, command)
    apps.create_namespaced_deployment(namespace, deploy)
    core.create_namespaced_service(namespace, service)


def delete(api: kubernetes.client.ApiClient, namespace: str) -> None:
    try:
        kubernetes.client.CoreV1Api(api).delete_namespace(namespace, grace_period_seconds=0)
    except kubernetes.client.ApiException as e:
        if e.status != 404:
            raise


def pod_state(api: kubernetes.client.ApiClient, namespace: str) -> tuple[str, str, int, bool]:
    """(pod name, uid, restarts, ready) of the namespace's one pod; ("", "", 0, False) before it exists."""
    pods = kubernetes.client.CoreV1Api(api).list_namespaced_pod(namespace).items
    if not pods:
        return "", "", 0, False
    pod = pods[0]
    statuses = pod.status.container_statuses or []
    restarts = sum(s.restart_count for s in statuses)
    ready = bool(statuses) and all(s.ready for s in statuses)
    return pod.metadata.name, pod.metadata.uid, restarts, ready


def wait_until(api: kubernetes.client.ApiClient, namespace: str, *, restarts: int = 0, ready: bool = False,
               deadline: float = 180.0) -> tuple[str, str, int, bool]:
    """Poll the namespace's pod until it has restarted `restarts` times (and is ready when `ready`)."""
    until = time.monotonic() + deadline
    state = pod_state(api, namespace)
    while time.monotonic() < until:
        state = pod_state(api, namespace)
        if state[0] and state[2] >= restarts and (state[3] or not ready):
            return state
        time.sleep(0.5)
    raise AssertionError(f"{namespace}: the pod did not reach restarts>={restarts} ready={ready} in "
                         f"{deadline:.0f}s: {state}")
