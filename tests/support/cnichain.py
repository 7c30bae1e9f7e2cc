"""The pod-address exhaustion -> ContainerCreating chain on the real cluster: leaked host-local
reservations, the workloads that meet them, and the CNI collector that watches the pool.

Fed by: a test or the recording script (`benchmarks/record_cni_exhaustion.py`) with a running
`realcluster.RealCluster`. Feeds: the node's host-local data dir (`<dataDir>/<network>/<ip>`, one file
per reserved address), where it writes the reservations a crashed runtime or a pod deleted mid-teardown
leaves behind (host-local frees an address only on the DEL of the container that holds it, so a leaked
file holds its address for ever), and the real cluster (one-replica Deployments of `sleep`).

With every address reserved, host-local answers the next sandbox's ADD with code 999 "failed to allocate
for range 0: no IP addresses available in range set", containerd fails RunPodSandbox, the kubelet says
FailedCreatePodSandBox and the pod stays in ContainerCreating. The CNI collector (`collectors.cni`,
scanning the pool every 0.5 s) reports CNIIPAMExhausted as soon as the last address is taken.
"""

from __future__ import annotations

import ipaddress
import time
from pathlib import Path

import kubernetes
from realcluster.images import BUSYBOX_IMAGE
from realcluster.node import RealCluster

from collectors.cni import CniCollector

LEAKED = "leaked-by-a-crashed-runtime"  # the container id the leaked reservations name


def allocations_dir(cluster: RealCluster) -> Path:
    assert cluster.paths is not None, "the cluster is not started"
    return cluster.paths.cni_ipam_dir / cluster.network


def free_addresses(cluster: RealCluster) -> list[str]:
    """The addresses of the node's pod range nobody holds (host-local's default range: the subnet's
    second address, its gateway, is never allocated)."""
    subnet = ipaddress.ip_network(cluster.subnet)
    hosts = list(subnet.hosts())[1:]  # without the gateway
    folder = allocations_dir(cluster)
    taken = {p.name for p in folder.iterdir()} if folder.exists() else set()
    return [str(a) for a in hosts if str(a) not in taken]


def leak(cluster: RealCluster, *, keep_free: int = 0) -> list[Path]:
    """Reserve every free address but `keep_free` as host-local would for a container that is gone."""
    folder = allocations_dir(cluster)
    folder.mkdir(parents=True, exist_ok=True)
    free = free_addresses(cluster)
    made = []
    for address in free[: max(0, len(free) - keep_free)]:
        path = folder / address
        path.write_text(f"{LEAKED}\r\neth0")
        made.append(path)
    return made


def unleak(paths: list[Path]) -> None:
    """Free the leaked reservations again (what an operator does once the leak is found)."""
    for path in paths:
        path.unlink(missing_ok=True)


def collector(cluster: RealCluster) -> CniCollector:
    """The CNI collector on the node's netns and its CNI conf dir, the pool scanned every 0.5 s."""
    assert cluster.paths is not None, "the cluster is not started"
    return CniCollector(cluster.node_name, conf_dir=cluster.paths.cni_conf_dir, scan_interval=0.5,
                        batch_seconds=0.5)


def create(api: kubernetes.client.ApiClient, namespace: str, name: str) -> None:
    """A namespace with a one-replica Deployment `name` that sleeps."""
    labels = {"app": name}
    core, apps = kubernetes.client.CoreV1Api(api), kubernetes.client.AppsV1Api(api)
    core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    apps.create_namespaced_deployment(namespace, {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": labels},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"terminationGracePeriodSeconds": 0,
                                       "containers": [{"name": name, "image": BUSYBOX_IMAGE,
                                                       "imagePullPolicy": "Never",
                                                       "command": ["sleep", "3600"]}]}}}})


def sandbox_failures(api: kubernetes.client.ApiClient, namespace: str) -> list[str]:
    """The messages of the namespace's FailedCreatePodSandBox Events."""
    events = kubernetes.client.CoreV1Api(api).list_namespaced_event(namespace).items
    return [e.message or "" for e in events if e.reason == "FailedCreatePodSandBox"]


def wait_for(what: str, check, deadline: float = 120.0):  # type: ignore[no-untyped-def]
    """Poll `check` every 0.5 s until it returns something true; that value."""
    until = time.monotonic() + deadline
    while time.monotonic() < until:
        got = check()
        if got:
            return got
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {deadline:.0f} s")
