"""The DNS failure -> pod failure chain on the real cluster: its workloads, the DNS server they ask, and
the DNS collector on a thread of its own.

Fed by: a test or the recording script (`benchmarks/record_dns_crash.py`) with a running
`realcluster.RealCluster`. Feeds: the real cluster (a Deployment `lookup` whose app needs the name
`orders-db.test`, behind a Service: it is Ready while the dnsmasq on the bridge's gateway holds the
name's record (`RECORDS`), and once the server runs again without it (the record removed) the lookups
get NXDOMAIN, it exits 1 at every start, crash-loops and its Service has no ready endpoint; its
healthy twin `resolved`, same app asking `good.test`, which resolves), and the DNS collector
(`collectors.dns`, AF_PACKET, pods named through the kubelet's `/pods`) to run on `collectorthread.Running`.
"""

from __future__ import annotations

import ipaddress
import time
from typing import Any

import kubernetes
from nodesources.dns import GOOD_NAME
from realcluster.images import BUSYBOX_IMAGE
from realcluster.node import RealCluster

from collectors.dns import DnsCollector, DnsSettings, KubeletPods

BAD_NAME = "orders-db.test"  # under dnsmasq's --local=/test/: NXDOMAIN, unless the server holds its record
#: the address `orders-db.test` has while its record exists (the story: the record is then removed)
RECORDS = {BAD_NAME: "192.0.2.40"}


def gateway(cluster: RealCluster) -> str:
    """The CNI bridge's gateway, where the dnsmasq listens."""
    return str(ipaddress.ip_network(cluster.subnet)[1])


def app(name: str, server: str) -> tuple[str, ...]:
    """An app that needs `name`: looks it up every 2 s and exits 1 (says why) the first time it fails."""
    return ("sh", "-c", f"while nslookup {name} {server}; do sleep 2; done; "
                        f"echo cannot resolve {name}; exit 1")


def manifest(deployment: str, command: tuple[str, ...], server: str) -> dict[str, Any]:
    """A one-replica Deployment whose pod resolves through `server` only (dnsPolicy None)."""
    labels = {"app": deployment}
    container = {"name": deployment, "image": BUSYBOX_IMAGE, "imagePullPolicy": "Never", "command": list(command),
                 "readinessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 2}}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": deployment, "labels": labels},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"terminationGracePeriodSeconds": 0, "containers": [container],
                                           "dnsPolicy": "None", "dnsConfig": {"nameservers": [server]}}}}}


def create(api: kubernetes.client.ApiClient, namespace: str, deployment: str, command: tuple[str, ...],
           server: str) -> None:
    """The namespace, the Deployment and a Service `deployment` in front of it (its Endpoints say
    whether the pod is ready)."""
    core, apps = kubernetes.client.CoreV1Api(api), kubernetes.client.AppsV1Api(api)
    core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    apps.create_namespaced_deployment(namespace, manifest(deployment, command, server))
    core.create_namespaced_service(namespace, {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": deployment},
        "spec": {"selector": {"app": deployment}, "ports": [{"port": 80, "targetPort": 8080}]}})


def hold_gateway(api: kubernetes.client.ApiClient, namespace: str) -> str:
    """A sleeping pod in its own namespace, so that the bridge and its gateway exist before the dnsmasq
    starts and before the apps ask it anything (an app started earlier would fail its first lookup)."""
    core = kubernetes.client.CoreV1Api(api)
    core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    core.create_namespaced_pod(namespace, {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "gateway-holder"},
        "spec": {"terminationGracePeriodSeconds": 0,
                 "containers": [{"name": "sleep", "image": BUSYBOX_IMAGE, "imagePullPolicy": "Never",
                                 "command": ["sleep", "3600"]}]}})
    return pod_ip(api, namespace)


def pod_ip(api: kubernetes.client.ApiClient, namespace: str, deadline: float = 120.0) -> str:
    """Wait for the namespace's pod to have an IP (the bridge and its gateway exist from then on)."""
    until = time.monotonic() + deadline
    while time.monotonic() < until:
        for pod in kubernetes.client.CoreV1Api(api).list_namespaced_pod(namespace).items:
            if pod.status.pod_ip:
                return pod.status.pod_ip
        time.sleep(0.5)
    raise AssertionError(f"{namespace}: no pod with an IP in {deadline:.0f}s")


def collector(cluster: RealCluster) -> DnsCollector:
    """The DNS collector on port 53 of every interface, 0.5 s reports, pods through the kubelet's `/pods`."""
    return DnsCollector(node=cluster.node_name, pods=KubeletPods(f"{cluster.kubelet_read_only_url}/pods", min_age=0.5),
                        settings=DnsSettings(ports=(53,), interval=0.5, timeout=3.0, tick=0.2))


__all__ = ["BAD_NAME", "GOOD_NAME", "RECORDS", "app", "collector", "create", "gateway", "hold_gateway", "manifest", "pod_ip"]
