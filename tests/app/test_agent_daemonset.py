"""docker/agent-daemonset.yaml: valid Kubernetes documents (kubernetes-validate, offline, strict), and it
grants exactly what the node collectors need (app.node_privileges): no host path, capability or host
namespace that none of them uses, none missing that one of them needs."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from app.node_privileges import NEEDS, grants
from app.node_registry import REGISTRY

MANIFEST = Path(__file__).resolve().parents[2] / "docker" / "agent-daemonset.yaml"


def _documents() -> list[dict]:
    return [d for d in yaml.safe_load_all(MANIFEST.read_text()) if d]


def _daemonset() -> dict:
    [ds] = [d for d in _documents() if d["kind"] == "DaemonSet"]
    return ds


@pytest.mark.parametrize("doc", _documents(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_every_document_is_valid_for_the_latest_kubernetes(doc: dict) -> None:
    kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)


def test_every_collector_declares_what_it_needs_from_the_host() -> None:
    assert set(NEEDS) == set(REGISTRY)
    assert all(need.why for need in NEEDS.values())
    assert all(set(need.writable) <= set(need.paths) for need in NEEDS.values())


def test_the_host_paths_and_capabilities_are_exactly_the_collectors_needs() -> None:
    pod = _daemonset()["spec"]["template"]["spec"]
    [container] = pod["containers"]
    need = grants()
    host_paths = {v["name"]: v["hostPath"]["path"] for v in pod["volumes"] if "hostPath" in v}
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert sorted(host_paths.values()) == sorted(need.paths)
    for name, path in host_paths.items():  # mounted where the collectors look, writable only where they write
        assert mounts[name]["mountPath"] == path
        assert mounts[name].get("readOnly", False) is (path not in need.writable), path
    security = container["securityContext"]
    assert sorted(security["capabilities"]["add"]) == sorted(need.capabilities)
    assert security["capabilities"]["drop"] == ["ALL"] and security["privileged"] is False
    assert pod["hostPID"] is need.host_pid and pod["hostNetwork"] is need.host_network


def test_the_agent_knows_its_node_serves_health_on_the_probed_port_and_fits_the_cost_target() -> None:
    pod = _daemonset()["spec"]["template"]["spec"]
    [container] = pod["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert env["HOST_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.hostIP"
    [port] = container["ports"]
    assert env["TAPIO_AGENT_WEB_PORT"]["value"] == str(port["containerPort"])
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["args"] == ["agent"]
    assert container["resources"]["requests"] == {"cpu": "50m", "memory": "100Mi"}  # 5 % of a core, 100 MiB


def test_the_service_account_may_read_the_kubelet_the_pods_and_the_api_servers_metrics_only() -> None:
    [role] = [d for d in _documents() if d["kind"] == "ClusterRole"]
    granted = {(r, v) for rule in role["rules"] for r in rule.get("resources", []) for v in rule["verbs"]}
    assert granted == {("nodes/proxy", "get"), ("nodes/stats", "get"), ("nodes/metrics", "get"),
                       ("pods", "get"), ("pods", "list"), ("pods", "watch")}
    urls = {(u, v) for rule in role["rules"] for u in rule.get("nonResourceURLs", []) for v in rule["verbs"]}
    assert urls == {("/metrics", "get")}
    [binding] = [d for d in _documents() if d["kind"] == "ClusterRoleBinding"]
    assert binding["subjects"][0]["name"] == _daemonset()["spec"]["template"]["spec"]["serviceAccountName"]
