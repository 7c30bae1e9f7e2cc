"""The CRI collector on the real cluster's containerd: containers the kubelet made through the CRI plugin, with
the labels the plugin puts on them, read back as the pods the API server knows (namespace, name, uid).

A pod whose container exits 3 and a pod whose container the kernel OOM-kills under a 32 MiB limit (both
`restartPolicy: Never`) run on the real single-node cluster (`real_cluster`); the collector follows the
cluster's containerd from before they are made. Needs root (the cluster's fixture skips otherwise).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import kubernetes
import pytest
from realcluster.images import BUSYBOX_IMAGE
from realcluster.node import RealCluster
from waiting import until

from collectors.cri import CriCollector
from core.events import RawEvent

pytestmark = [pytest.mark.xdist_group("real-cluster"), pytest.mark.timeout(600)]


def _pod(name: str, script: str, **resources: dict[str, str]) -> dict:
    container = {"name": "main", "image": BUSYBOX_IMAGE, "imagePullPolicy": "Never", "command": ["sh", "-c", script]}
    if resources:
        container["resources"] = resources
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [container], "restartPolicy": "Never", "terminationGracePeriodSeconds": 1}}


async def test_the_kubelets_containers_read_as_their_pods(real_cluster: RealCluster, api: kubernetes.client.ApiClient,
                                                         namespace: str) -> None:
    events: list[RawEvent] = []

    async def emit(batch: list[RawEvent]) -> None:
        events.extend(batch)

    collector = CriCollector(node=real_cluster.node_name, socket=str(real_cluster.paths.containerd_socket),
                             every=0.2)
    collector.check()
    stop = asyncio.Event()
    task = asyncio.create_task(collector.run(emit, stop))
    core = kubernetes.client.CoreV1Api(api)
    try:
        await asyncio.wait_for(collector.connected.wait(), timeout=30)
        exiter = await asyncio.to_thread(core.create_namespaced_pod, namespace, _pod("cri-exiter", "exit 3"))
        hog = await asyncio.to_thread(core.create_namespaced_pod, namespace, _pod(
            "cri-hog", "head -c 300000000 /dev/zero | tail", limits={"memory": "32Mi"}, requests={"memory": "32Mi"}))

        def about(pod: Any, reason: str) -> Callable[[], RawEvent | None]:
            def look() -> RawEvent | None:
                return next((e for e in events if e.metadata["reason"] == reason and e.metadata.get("uid") ==
                             pod.metadata.uid and e.metadata.get("container") == "main"), None)
            return look

        exit3 = await until(about(exiter, "ContainerExit"), timeout=180, what=lambda: f"the exit of cri-exiter's "
                            f"container; seen {[(e.metadata['reason'], e.metadata.get('name')) for e in events]}")
        md = exit3.metadata
        assert (md["kind"], md["namespace"], md["name"], md["kernel.exit_code"]) == ("Pod", namespace, "cri-exiter", "3")
        assert md["node"] == real_cluster.node_name and md["kernel.cgroup"].endswith(md["container_id"])
        # containerd tells the exit before the kubelet writes the container's id into the pod's status
        def kubelets_id() -> str | None:
            status = core.read_namespaced_pod_status("cri-exiter", namespace)
            return next((c.container_id for c in status.status.container_statuses or [] if c.container_id), None)
        said = await until(lambda: asyncio.to_thread(kubelets_id), timeout=60, what="the kubelet's id of the container")
        assert said == f"containerd://{md['container_id']}"  # the kubelet's own id for it

        oom = await until(about(hog, "ContainerOOM"), timeout=180, what="the OOM kill of cri-hog's container")
        assert (oom.metadata["name"], oom.metadata["intent"], oom.metadata["severity"]) == ("cri-hog", "oom-kill", "error")
        # the pod's sandbox is the pod too: its start read as the pod's, without a container name
        sandbox = next(e for e in events if e.metadata["reason"] == "SandboxStart" and e.metadata.get("uid") ==
                       hog.metadata.uid)
        assert sandbox.metadata["message"].startswith("sandbox ")
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)
        for name in ("cri-exiter", "cri-hog"):
            await asyncio.to_thread(core.delete_namespaced_pod, name, namespace, grace_period_seconds=0)
