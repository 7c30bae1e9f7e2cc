"""The node collectors' contract (`collectors.node`): what their RawEvents say, and how the enrich and
normalize stages read it into a UnifiedEvent's Kubernetes, kernel and network layers. Pure."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agents.enrich import enrich_event
from agents.normalize import NormalizeError, normalize_event
from collectors.node import node_event

AT = datetime(2026, 12, 5, 3, 0, tzinfo=UTC)
POD = {"kind": "Pod", "namespace": "shop", "name": "web-0", "uid": "u-web-0"}


def test_a_kernel_oom_kill_of_a_pod_container_reads_as_the_pod_with_its_kernel_layer() -> None:
    raw = node_event("kernel", node="node-1", at=AT, reason="OOMKill", message="tail (pid 42) killed by the OOM killer",
                     intent="oom-kill", category="memory", severity="error", about=POD,
                     facts={"pid": "42", "kernel.comm": "tail", "kernel.cgroup": "/k8s.io/abc", "container_id": "abc",
                            "kernel.oom_score_adj": "1000"})
    event = normalize_event(enrich_event(raw))
    assert (event.type, event.k8s.kind, event.k8s.name, event.k8s.node) == ("kernel", "Pod", "web-0", "node-1")
    assert (event.semantic.intent, event.semantic.severity) == ("oom-kill", "error")
    assert event.semantic.narrative == "Pod shop/web-0: OOMKill: tail (pid 42) killed by the OOM killer"
    assert (event.kernel.pid, event.kernel.comm, event.kernel.cgroup) == (42, "tail", "/k8s.io/abc")
    assert event.kernel.detail == {"oom_score_adj": "1000"} and event.network is None


def test_an_event_no_pod_owns_is_about_the_node_and_a_dns_answer_fills_the_network_layer() -> None:
    raw = node_event("dns", node="node-1", at=AT, reason="DNSNXDomain", message="api.shop.svc: NXDOMAIN",
                     intent="dns-failure", category="dns", severity="warning",
                     facts={"net.protocol": "udp", "net.query": "api.shop.svc", "net.rcode": "NXDOMAIN",
                            "net.port": "53", "net.latency_ms": "3.1", "metric.dns.latency_ms": "3.1"})
    event = normalize_event(enrich_event(raw))
    assert (event.k8s.kind, event.k8s.name, event.k8s.namespace) == ("Node", "node-1", "")
    assert (event.network.query, event.network.rcode, event.network.port) == ("api.shop.svc", "NXDOMAIN", 53)
    assert event.network.detail == {"latency_ms": "3.1"} and event.metrics == {"dns.latency_ms": 3.1}
    assert event.kernel is None


def test_the_same_observation_has_one_id_and_a_bad_severity_or_sample_is_refused() -> None:
    args = dict(node="node-1", at=AT, reason="ProcessExit", message="x", intent="process-exit", category="process",
                severity="info", facts={"pid": "7"})
    assert node_event("kernel", **args).id == node_event("kernel", **args).id
    assert node_event("kernel", **args).id != node_event("kernel", **{**args, "facts": {"pid": "8"}}).id
    with pytest.raises(ValueError, match="severity 'fatal' is not one of"):
        node_event("kernel", **{**args, "severity": "fatal"})
    with pytest.raises(NormalizeError, match="metric.memory"):
        normalize_event(enrich_event(node_event("kubelet", **{**args, "facts": {"metric.memory": "nan"}})))
