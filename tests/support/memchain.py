"""Node memory pressure -> the kubelet's eviction, on a real cluster whose kubelet has a memory eviction
threshold: the threshold, the workloads, and the kubelet collector that watches the node.

Fed by: the recording script (`benchmarks/record_memory_pressure.py`). Feeds: `RealCluster(kubelet_settings=...)`
(`evictionHard: memory.available` set `HEADROOM` below the node's memory.available when the kubelet starts, so that a
pod taking that much memory puts the node under pressure without the machine running short; a short
`evictionPressureTransitionPeriod`), the real cluster (a Deployment `cache` whose pod fills a
memory-backed emptyDir 40 MiB a second with no limit, and its twin `warm` that fills 256 MiB and stops),
and the kubelet collector's thresholds (the same line, and a warning `WARN` above it).

The test cluster of `tests/cluster` keeps the kubelet's evictions off (`evictionHard: {}`): only a
recording starts a cluster of its own with this threshold.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes
from realcluster.images import BUSYBOX_IMAGE

from collectors.kubelet import KubeletCollector
from collectors.kubeletstats import Thresholds

MI = 2**20
HEADROOM = 2048 * MI  # what a pod may take before the node reaches the threshold
WARN = 1024 * MI  # the collector warns this far above the threshold
FILL = 40  # MiB a second the `cache` pod writes into its memory-backed volume


def kubelet_available(proc: Path = Path("/proc"), cgroup: Path = Path("/sys/fs/cgroup/memory")) -> int:
    """The node's `memory.available` as the kubelet computes it (cgroup v1): MemTotal minus the root
    memory cgroup's working set (its usage less its inactive file pages)."""
    total = next(int(line.split()[1]) * 1024 for line in (proc / "meminfo").read_text().splitlines()
                 if line.startswith("MemTotal:"))
    usage = int((cgroup / "memory.usage_in_bytes").read_text())
    inactive = next(int(line.split()[1]) for line in (cgroup / "memory.stat").read_text().splitlines()
                    if line.startswith("total_inactive_file "))
    return total - max(0, usage - inactive)


class EvictionLine:
    """The kubelet's memory eviction line, set HEADROOM below the node's memory.available when the
    kubelet's config is written (the control plane and containerd already run): `settings` is what
    `RealCluster(kubelet_settings=...)` asks for then; `threshold` what it set."""

    def __init__(self) -> None:
        self.threshold = 0

    def settings(self) -> dict[str, Any]:
        available = kubelet_available()
        self.threshold = (available - HEADROOM) // MI * MI
        if self.threshold < 512 * MI:
            raise RuntimeError(f"the node has {available // MI} MiB available: too little to put it under pressure "
                               f"{HEADROOM // MI} MiB from now and keep the rest running")
        return {"evictionHard": {"memory.available": f"{self.threshold // MI}Mi"},
                "evictionPressureTransitionPeriod": "30s"}


def collector(node: str, url: str, threshold: int) -> KubeletCollector:
    """The kubelet collector every second, its memory line the kubelet's, warning WARN above it."""
    return KubeletCollector(node, url=url, interval=1.0,
                            thresholds=Thresholds(memory_available_bytes=threshold,
                                                  warn_factor=(threshold + WARN) / threshold))


def fill(mib_per_second: int, *, total_mib: int | None = None) -> str:
    """A shell script writing into /cache (a memory-backed emptyDir) `mib_per_second`, up to `total_mib`."""
    stop = f'[ "$i" -ge {total_mib // mib_per_second} ] && break; ' if total_mib else ""
    return (f'echo "filling the cache"; i=0; while true; do {stop}dd if=/dev/zero of=/cache/block$i bs=1M '
            f'count={mib_per_second} 2>/dev/null; i=$((i+1)); sleep 1; done; echo "cache warm"; '
            "trap 'exit 0' TERM; sleep 3600 & wait")


def create(api: kubernetes.client.ApiClient, namespace: str, name: str, script: str) -> None:
    """A namespace with a one-replica Deployment `name` (no requests, no limits) running `script` with a
    memory-backed emptyDir at /cache."""
    labels = {"app": name}
    core, apps = kubernetes.client.CoreV1Api(api), kubernetes.client.AppsV1Api(api)
    core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    apps.create_namespaced_deployment(namespace, {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": labels},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"terminationGracePeriodSeconds": 0,
                                       "volumes": [{"name": "cache", "emptyDir": {"medium": "Memory"}}],
                                       "containers": [{"name": name, "image": BUSYBOX_IMAGE,
                                                       "imagePullPolicy": "Never", "command": ["sh", "-c", script],
                                                       "volumeMounts": [{"name": "cache", "mountPath": "/cache"}]}]}}}})


def evictions(api: kubernetes.client.ApiClient, namespace: str) -> list[str]:
    """The messages of the namespace's Evicted Events."""
    events = kubernetes.client.CoreV1Api(api).list_namespaced_event(namespace).items
    return [e.message or "" for e in events if e.reason == "Evicted"]
