"""The kernel collector on the real single-node cluster (tests/support/realcluster): a container that
outgrows its memory limit is OOM-killed by the kernel, and the collector names its pod (namespace,
name, uid) through `/proc`'s cgroup and the kubelet's read-only `/pods`, at the kill itself, before
the kubelet reports the container OOMKilled.

Needs root, tracefs and the cluster (skips where the machine cannot run one: see conftest.py).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator

import kubernetes
import pytest
from kernelrun import Running
from realcluster.images import BUSYBOX_IMAGE
from realcluster.node import RealCluster

from collectors.kernel import KernelCollector
from collectors.podresolve import PodResolver

pytestmark = [pytest.mark.xdist_group("real-cluster"), pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def kernel(real_cluster: RealCluster) -> Iterator[Running]:
    if os.geteuid() != 0:
        pytest.skip("loading eBPF programs needs root")
    port = real_cluster._kubelet_ports.read_only_port  # the kubelet's read-only port (readOnlyPort)
    collector = KernelCollector(real_cluster.node_name, interval=0.5,
                                resolver=PodResolver(f"http://127.0.0.1:{port}/pods", min_refresh=0.5))
    collector.check()
    running = Running(collector).start()
    try:
        yield running
    finally:
        running.stop()


def test_a_containers_oom_kill_names_its_pod_before_the_kubelet_reports_oomkilled(
        kernel: Running, api: kubernetes.client.ApiClient, namespace: str) -> None:
    core = kubernetes.client.CoreV1Api(api)
    name = f"hog-{uuid.uuid4().hex[:6]}"
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
                     "containers": [{"name": "hog", "image": BUSYBOX_IMAGE, "imagePullPolicy": "Never",
                                     "command": ["sh", "-c", "tail /dev/zero"],
                                     "resources": {"limits": {"memory": "32Mi"}, "requests": {"memory": "32Mi"}}}]}}
    core.create_namespaced_pod(namespace, body)
    try:
        reported = None
        deadline = time.monotonic() + 120
        while reported is None and time.monotonic() < deadline:
            pod = core.read_namespaced_pod(name, namespace)
            for status in pod.status.container_statuses or []:
                if status.state.terminated and status.state.terminated.reason == "OOMKilled":
                    reported = (time.time(), status.container_id.split("://", 1)[-1], pod.metadata.uid)
            time.sleep(0.2)
        assert reported is not None, "the kubelet never reported the container OOMKilled"
        seen_at, container_id, uid = reported
        (oom,) = kernel.wait_for("the pod's OOMKill", lambda m: m["reason"] == "OOMKill"
                                 and m.get("container_id") == container_id, deadline=30)
        assert (oom["kind"], oom["namespace"], oom["name"], oom["uid"]) == ("Pod", namespace, name, uid), oom
        assert oom["kernel.comm"] == "tail" and oom["kernel.cgroup"].endswith(container_id)
        assert oom["kernel.container"] == "hog"
        kill = next(e for e in kernel.events if e.metadata is oom)
        assert kill.timestamp.timestamp() < seen_at  # the kernel's kill came before the kubelet's report
        died = kernel.wait_for("tail's exit", lambda m: m["reason"] == "ProcessExit"
                               and m.get("pid") == oom["pid"], deadline=10)
        assert (died[0]["kernel.signal"], died[0].get("name")) == ("SIGKILL", name)
    finally:
        core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)
