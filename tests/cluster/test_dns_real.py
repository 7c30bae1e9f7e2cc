"""The DNS collector on a real node: a busybox pod of the real single-node cluster resolves names
against a real dnsmasq on its bridge's gateway (port 53); the collector captures on every interface
(the pod's veth and the bridge both carry each packet) and names the pod through the real kubelet's
read-only `/pods`. Needs root (AF_PACKET) and the real cluster (`tests/cluster/conftest.py`)."""

from __future__ import annotations

import asyncio
import ipaddress
import time

import kubernetes
import pytest
from nodesources.dns import Dnsmasq
from realcluster.images import BUSYBOX_IMAGE
from realcluster.node import RealCluster

from collectors.dns import DnsCollector, DnsSettings, KubeletPods, open_capture
from collectors.node import SourceUnavailable
from core.events import RawEvent

pytestmark = [pytest.mark.xdist_group("real-cluster"), pytest.mark.timeout(900)]  # with the wait for the machine's one cluster

POD = "dns-client"


def client_pod(gateway: str) -> dict:
    """Waits for the server (good.test), then asks for nope.test (A and AAAA: NXDOMAIN) every second."""
    script = (f"until nslookup good.test {gateway}; do sleep 1; done; "
              f"while true; do nslookup nope.test {gateway}; sleep 1; done")
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": POD},
            "spec": {"containers": [{"name": "client", "image": BUSYBOX_IMAGE, "imagePullPolicy": "Never",
                                     "command": ["sh", "-c", script]}],
                     "dnsPolicy": "None", "dnsConfig": {"nameservers": [gateway]},
                     "terminationGracePeriodSeconds": 1}}


async def test_a_pods_nxdomain_lookups_are_reported_about_the_pod_once_each(
        real_cluster: RealCluster, api: kubernetes.client.ApiClient, namespace: str) -> None:
    try:
        open_capture("", [53]).close()
    except SourceUnavailable as e:
        pytest.skip(f"no packet socket here: {e}")
    core = kubernetes.client.CoreV1Api(api)
    gateway = str(ipaddress.ip_network(real_cluster.subnet)[1])  # the CNI bridge plugin's gateway
    read_only = real_cluster._kubelet_ports.read_only_port  # the kubelet's /pods (no public accessor yet)
    collector = DnsCollector(node=real_cluster.node_name,
                             pods=KubeletPods(f"http://127.0.0.1:{read_only}/pods", min_age=1.0),
                             settings=DnsSettings(ports=(53,), interval=1.0, timeout=3.0, tick=0.2))
    events: list[RawEvent] = []

    async def emit(batch: list[RawEvent]) -> None:
        events.extend(batch)

    stop = asyncio.Event()
    task = asyncio.create_task(collector.run(emit, stop))
    core.create_namespaced_pod(namespace, client_pod(gateway))
    try:
        deadline = time.monotonic() + 120
        pod = core.read_namespaced_pod(POD, namespace)
        while not pod.status.pod_ip:
            assert time.monotonic() < deadline, f"pod {POD} got no IP in 120 s: {pod.status}"
            await asyncio.sleep(0.5)
            pod = core.read_namespaced_pod(POD, namespace)
        with Dnsmasq(address=gateway, port=53):
            def about_pod() -> list[dict[str, str]]:
                return [e.metadata for e in events if e.metadata["reason"] == "DNSNXDomain"
                        and e.metadata["net.query"] == "nope.test" and e.metadata.get("kind") == "Pod"]
            while sum(int(m["metric.dns.failures"]) for m in about_pod()) < 6:
                assert time.monotonic() < deadline, f"no NXDOMAIN events about the pod; events: {events[-5:]}"
                await asyncio.sleep(0.2)
    finally:
        stop.set()
        await task
        core.delete_namespaced_pod(POD, namespace, grace_period_seconds=0)
    nx = about_pod()
    assert {(m["namespace"], m["name"], m["uid"], m["net.src"], m["net.dst"], m["net.port"]) for m in nx} == {
        (namespace, POD, pod.metadata.uid, pod.status.pod_ip, gateway, "53")}
    # each query seen on the veth and on the bridge counts once, and no copy is left to time out
    mine = [e.metadata for e in events if e.metadata.get("net.src") == pod.status.pod_ip]
    assert not [m for m in mine if m["reason"] == "DNSTimeout" and m["net.query"] == "nope.test"]
    for m in nx:
        assert m["metric.dns.failures"] == m["metric.dns.queries"]
