"""The Helm chart (docker/helm/tapio), linted and rendered offline with the Helm SDK that PyPI's
helm-python-sdk bundles (no cluster, no helm binary), every rendered document validated against the
Kubernetes schemas (kubernetes-validate), and what an operator relies on checked: the worker group's
state and probes, secrets by reference, the patterns where hot reload reads them, least privilege."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import helm_python
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "docker" / "helm" / "tapio"
KUBE = "1.30.0"
FULL = {"api": {"token": "tok"}, "graph": {"password": "pw"}, "metrics": {"serviceMonitor": {"enabled": True}},
        "patterns": {"files": {"my-pattern.yaml": "apiVersion: behavior.tapio.io/v1\nkind: BehaviorPattern\n"}},
        "extraEnv": {"TAPIO_OTEL_ENDPOINT": "http://otel:4318/v1/traces"}}


def render(values: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    out = helm_python.Chart.load(CHART).render(values, name="tapio", namespace="observability")
    docs = [d for path, text in out.items() if not path.endswith("NOTES.txt") for d in yaml.safe_load_all(text) if d]
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def _container(doc: dict[str, Any]) -> dict[str, Any]:
    [container] = doc["spec"]["template"]["spec"]["containers"]
    return container


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_the_chart_lints_clean() -> None:
    report = helm_python.lint(CHART, FULL, strict=True, kube_version=KUBE)
    assert report["errors"] == [] and [m for m in report["messages"] if m["severity"] > 1] == [], report


@pytest.mark.parametrize("values", [{}, FULL], ids=["defaults", "everything"])
def test_every_rendered_document_is_valid_kubernetes(values: dict[str, Any]) -> None:
    docs = render(values)
    for (kind, _), doc in docs.items():
        if kind in ("ServiceMonitor", "PodMonitor"):  # the Prometheus Operator's CRDs: not in the schemas
            assert doc["apiVersion"] == "monitoring.coreos.com/v1"
            continue
        kubernetes_validate.validate(doc, KUBE, strict=True)
    kinds = {kind for kind, _ in docs}
    assert {"StatefulSet", "Deployment", "DaemonSet", "Service", "ClusterRole", "ClusterRoleBinding"} <= kinds
    assert ("ServiceMonitor" in kinds) == bool(values)


def test_the_worker_group_keeps_its_tables_is_probed_and_reads_secrets_by_reference() -> None:
    docs = render(FULL)
    worker = docs[("StatefulSet", "tapio-worker")]
    container = _container(worker)
    assert container["args"] == ["worker", "--no-bridge"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    [claim] = worker["spec"]["volumeClaimTemplates"]
    assert {"name": "data", "mountPath": "/var/lib/tapio"} in container["volumeMounts"]
    env = _env(container)
    assert env["TAPIO_WORKER_DATA_DIR"].startswith("/var/lib/tapio/") and claim["metadata"]["name"] == "data"
    assert env["TAPIO_API_TOKEN"] == {"secretKeyRef": {"name": "tapio-secrets", "key": "api-token"}}
    assert env["TAPIO_GRAPH_PASSWORD"] == {"secretKeyRef": {"name": "tapio-secrets", "key": "graph-password"}}
    assert env["TAPIO_OTEL_ENDPOINT"] == "http://otel:4318/v1/traces" and env["TAPIO_LOG_FORMAT"] == "json"
    assert docs[("Secret", "tapio-secrets")]["stringData"] == {"api-token": "tok", "graph-password": "pw"}
    # the patterns: a ConfigMap mounted where the worker's catalog is read and hot-reloaded
    patterns_dir = env["TAPIO_MATCH_PATTERNS_DIR"]
    assert {"name": "patterns", "mountPath": patterns_dir, "readOnly": True} in container["volumeMounts"]
    assert "my-pattern.yaml" in docs[("ConfigMap", "tapio-patterns")]["data"]
    security = container["securityContext"]
    assert security["runAsNonRoot"] and security["readOnlyRootFilesystem"] and security["capabilities"]["drop"] == [
        "ALL"]
    monitor = docs[("ServiceMonitor", "tapio-worker")]
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    selected = [d for (kind, _), d in docs.items() if kind == "Service" and all(
        d["metadata"]["labels"].get(k) == v for k, v in monitor["spec"]["selector"]["matchLabels"].items())]
    assert [d["metadata"]["name"] for d in selected] == ["tapio-worker"]  # scraped once, not through both Services
    # the bridge's and the agents' /metrics through a PodMonitor each, on the port their pods name
    for component, port in (("bridge", "http"), ("agent", "health")):
        monitor = docs[("PodMonitor", f"tapio-{component}")]
        [pod] = [d for (kind, _), d in docs.items() if kind in ("Deployment", "DaemonSet") and d["spec"]["selector"][
            "matchLabels"] == monitor["spec"]["selector"]["matchLabels"]]
        assert monitor["spec"]["podMetricsEndpoints"][0] == {"port": port, "path": "/metrics", "interval": "30s"}
        assert port in {p["name"] for p in _container(pod)["ports"]}


def test_an_existing_secret_is_referenced_and_nothing_is_created_without_values() -> None:
    docs = render({"api": {"existingSecret": "ops-tapio"}})
    env = _env(_container(docs[("StatefulSet", "tapio-worker")]))
    assert env["TAPIO_API_TOKEN"] == {"secretKeyRef": {"name": "ops-tapio", "key": "api-token"}}
    # no Secret and no patterns ConfigMap (the agent's settings are its ConfigMap, always there)
    assert not [(kind, name) for kind, name in docs if kind in ("Secret", "ConfigMap") and name != "tapio-agent"]
    assert "TAPIO_GRAPH_PASSWORD" not in env and "TAPIO_MATCH_PATTERNS_DIR" not in env  # the image's catalog


def test_the_collector_may_read_what_docker_rbac_yaml_grants_and_nothing_more() -> None:
    docs = render({})
    shipped = next(d for d in yaml.safe_load_all((ROOT / "docker" / "rbac.yaml").read_text())
                   if d and d["kind"] == "ClusterRole")
    role = docs[("ClusterRole", "tapio-kubeapi-reader")]
    assert role["rules"] == shipped["rules"]
    assert all(set(rule["verbs"]) <= {"get", "list", "watch"} for rule in role["rules"])
    collector = docs[("Deployment", "tapio-collector")]
    assert collector["spec"]["template"]["spec"]["serviceAccountName"] == "tapio-collector"
    binding = docs[("ClusterRoleBinding", "tapio-kubeapi-reader")]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "tapio-collector", "namespace": "observability"}]
    bridge = _container(docs[("Deployment", "tapio-bridge")])
    assert bridge["livenessProbe"]["httpGet"]["path"] == "/healthz" and _env(bridge)["TAPIO_NATS_BRIDGE_WEB_PORT"] == "6068"
    assert bridge["readinessProbe"]["httpGet"]["path"] == "/readyz"
    # the worker and the bridge need no API access at all
    for name in (("StatefulSet", "tapio-worker"), ("Deployment", "tapio-bridge")):
        assert docs[name]["spec"]["template"]["spec"]["automountServiceAccountToken"] is False


def test_a_cluster_before_1_30_gets_the_apparmor_annotation_instead_of_the_field() -> None:
    def agent(values: dict[str, Any]) -> dict[str, Any]:
        return render(values)[("DaemonSet", "tapio-agent")]["spec"]["template"]

    apparmor = "container.apparmor.security.beta.kubernetes.io/agent"
    old = agent({"kubeVersionOverride": "1.20.2"})
    assert old["metadata"]["annotations"][apparmor] == "unconfined"
    assert "appArmorProfile" not in old["spec"]["containers"][0]["securityContext"]
    new = agent({"kubeVersionOverride": "1.30.0"})
    assert apparmor not in new["metadata"]["annotations"]
    assert new["spec"]["containers"][0]["securityContext"]["appArmorProfile"] == {"type": "Unconfined"}


def test_servers_on_the_node_and_no_volume_provisioner() -> None:
    docs = render({"hostNetwork": True, "worker": {"persistence": {"enabled": False}}})
    for kind, name in (("StatefulSet", "tapio-worker"), ("Deployment", "tapio-bridge"), ("Deployment", "tapio-collector")):
        spec = docs[(kind, name)]["spec"]["template"]["spec"]
        assert spec["hostNetwork"] is True and spec["dnsPolicy"] == "ClusterFirstWithHostNet", name
    worker = docs[("StatefulSet", "tapio-worker")]
    assert "volumeClaimTemplates" not in worker["spec"]
    assert {"name": "data", "emptyDir": {}} in worker["spec"]["template"]["spec"]["volumes"]
    for doc in docs.values():
        if doc["kind"] not in ("ServiceMonitor", "PodMonitor"):
            kubernetes_validate.validate(doc, KUBE, strict=True)
    defaults = render({})
    assert "hostNetwork" not in defaults[("Deployment", "tapio-bridge")]["spec"]["template"]["spec"]


def test_the_agent_is_granted_what_its_collectors_need_and_no_more() -> None:
    from app.node_privileges import grants

    [container] = render({})[("DaemonSet", "tapio-agent")]["spec"]["template"]["spec"]["containers"]
    assert sorted(container["securityContext"]["capabilities"]["add"]) == list(grants().capabilities)
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    trimmed = render({"agent": {"capabilities": ["BPF", "PERFMON"]}})[("DaemonSet", "tapio-agent")]
    assert trimmed["spec"]["template"]["spec"]["containers"][0]["securityContext"]["capabilities"]["add"] == [
        "BPF", "PERFMON"]


def test_the_agent_reads_its_collectors_and_their_settings_from_the_values(tmp_path: Path) -> None:
    # a k3s node keeps containerd's socket under /run/k3s: without a value for it the CRI collector was
    # unavailable on such nodes, and no collector setting could be given but through extraEnv
    from app.node_registry import build
    from collectors.cri import CriCollector
    from core.settings import load_settings

    def agent(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], Any]:
        docs = render(values)
        spec = docs[("DaemonSet", "tapio-agent")]["spec"]["template"]
        [container] = spec["spec"]["containers"]
        config = tmp_path / "agent.yaml"  # the file the pod reads, as the ConfigMap holds it
        config.write_text(docs[("ConfigMap", "tapio-agent")]["data"]["agent.yaml"])
        assert _env(container)["TAPIO_CONFIG"] == "/etc/tapio/agent.yaml"
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert mounts["config"] == "/etc/tapio"
        return spec, mounts, load_settings(config, environ={}).agent

    spec, mounts, settings = agent({})
    assert mounts["containerd"] == "/run/containerd" and settings.only == [] and settings.disable == []
    assert settings.options == {"cri": {"socket": "/run/containerd/containerd.sock"}}
    k3s = {"containerdSocket": "/run/k3s/containerd/containerd.sock", "disable": ["kernel"],
           "options": {"kubelet": {"url": "https://127.0.0.1:10250"}}}
    spec_k3s, mounts, settings = agent({"agent": k3s})
    assert mounts["containerd"] == "/run/k3s/containerd"
    assert {"name": "containerd", "hostPath": {"path": "/run/k3s/containerd"}} in spec_k3s["spec"]["volumes"]
    assert settings.disable == ["kernel"] and settings.options["kubelet"] == {"url": "https://127.0.0.1:10250"}
    cri = build("cri", "collectors.cri:CriCollector", node="node-1", options=settings.options["cri"])
    assert isinstance(cri, CriCollector)
    assert cri.socket == "/run/k3s/containerd/containerd.sock"
    # a change of them rolls the agents (the pod template changes with the config)
    assert spec_k3s["metadata"]["annotations"]["checksum/config"] != spec["metadata"]["annotations"]["checksum/config"]
