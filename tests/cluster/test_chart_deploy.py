"""The images and the chart for real: built without Docker, deployed to a real node, processing a failure.

`docker/image.py` builds the worker image (Debian's python3 in a debootstrap'ed bookworm, the wheel of
this checkout, buildah with vfs storage and chroot isolation) and the node agent's (the worker image plus
Debian's BCC and journalctl), cached by the sources' hash (`make image` has built them already), and both
are imported into the real single-node cluster's containerd. The chart (docker/helm/tapio) is rendered
with the Helm SDK for this cluster's version and its documents created through the API server as they
are: the KubeAPI collector (its own service account and the read-only ClusterRole; in-cluster config),
the bridge, one worker and the node agent's DaemonSet. The servers are an embedded stack of this
module's own on the node's loopback, which the pods reach on the node's network (`hostNetwork`), and the
collector reaches the API server there too (KUBERNETES_SERVICE_HOST: the cluster runs no kube-proxy for
the `kubernetes` Service).

Then: every pod becomes ready (the worker's /readyz: NATS, Kafka, the graph, patterns loaded; the
bridge's; the agent's: JetStream and a collector running), a Deployment whose command exits is applied,
and `explain` of its pod, read from the graph the pods wrote, names the root cause; the worker's and the
bridge's /metrics count the events, and the worker's log is JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python
import kubernetes
import pytest
import yaml
from kubernetes.client import AppsV1Api, CoreV1Api
from realcluster.images import import_images
from realcluster.node import RealCluster
from realcluster.workloads import WORKLOADS, Runner, observe, symptom_object
from scrape import get, scrape

from app.explain import explain
from app.stack import EmbeddedStack, free_port
from core.settings import Settings
from topology.graph import open_graph

pytestmark = [pytest.mark.xdist_group("real-cluster"), pytest.mark.timeout(1500)]

SERVICE_ACCOUNTS = True  # tests/cluster/conftest.py: pods get their account's token (the collector's in-cluster config)
ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "docker" / "helm" / "tapio"
RELEASE, NAMESPACE = "tapio", "tapio-system"
log = logging.getLogger(__name__)
[FAILURE] = [w for w in WORKLOADS if w.case == "crashloop-exit-code"]


def _image_module() -> Any:
    spec = importlib.util.spec_from_file_location("tapio_image", ROOT / "docker" / "image.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def image() -> tuple[str, Path, str, Path]:
    """The worker's and the node agent's images and their docker-archives (built now unless `make image` built
    them from these sources)."""
    module = _image_module()
    version = module.project_version()
    return (f"{module.IMAGE_NAME}:{version}", module.build_image(),
            f"{module.AGENT_IMAGE_NAME}:{version}", module.build_agent_image())


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """NATS, Kafka (Tansu) and FalkorDB of this module's own, on the node's loopback."""
    stack = EmbeddedStack(tmp_path_factory.mktemp("chart-stack"))
    settings = stack.start()
    yield settings
    stack.stop()


def _values(image: str, agent_image: str, servers: Settings, cluster: RealCluster, ports: dict[str, int]
            ) -> dict[str, Any]:
    repository, tag = image.rsplit(":", 1)
    api_port = cluster.server.rsplit(":", 1)[1]
    return {
        "image": {"repository": repository, "tag": tag, "pullPolicy": "Never",
                  "agentRepository": agent_image.rsplit(":", 1)[0]},
        "kubeVersionOverride": "1.20.2",
        "hostNetwork": True,
        "nats": {"urls": servers.nats.urls, "replicas": 1},
        "kafka": {"bootstrapServers": servers.kafka.bootstrap_servers, "partitions": servers.kafka.partitions},
        "graph": {"uri": servers.graph.uri, "name": servers.graph.name, "username": ""},
        "extraEnv": {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": api_port},
        "worker": {"replicas": 1, "persistence": {"enabled": False},
                   "resources": {"requests": {"cpu": "200m", "memory": "512Mi"}, "limits": {"memory": "2Gi"}}},
        "bridge": {"port": ports["bridge"], "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}}},
        "collector": {"resources": {"requests": {"cpu": "50m", "memory": "128Mi"}}},
        # the DaemonSet with the chart's privileges, mounts and resources, but a capability this machine's
        # bounding set lacks (runc cannot grant it: "unable to apply caps")
        "agent": {"port": ports["agent"], "capabilities": _grantable(DEFAULT_AGENT_CAPABILITIES),
                  # the test cluster's containerd listens in its own folder, as k3s's does under /run/k3s
                  "containerdSocket": str(cluster.paths.containerd_socket)},
        "service": {"port": ports["worker"]},
    }


DEFAULT_AGENT_CAPABILITIES = yaml.safe_load((CHART / "values.yaml").read_text())["agent"]["capabilities"]
#: capability numbers (linux/capability.h) of those the agent asks for
_CAP_NUMBERS = {"NET_ADMIN": 12, "NET_RAW": 13, "SYS_ADMIN": 21, "SYS_RESOURCE": 24, "PERFMON": 38, "BPF": 39}


def _grantable(capabilities: list[str]) -> list[str]:
    """The capabilities this machine can give a container: those in its bounding set (a sandbox may lack some)."""
    status = Path("/proc/self/status").read_text()
    bounding = int(status.split("CapBnd:")[1].split()[0], 16)
    kept = [c for c in capabilities if bounding >> _CAP_NUMBERS[c] & 1]
    if kept != capabilities:
        log.warning("chart: this machine cannot grant %s; the agent runs without", sorted(set(capabilities) - set(kept)))
    return kept


def _documents(values: dict[str, Any]) -> list[dict[str, Any]]:
    rendered = helm_python.Chart.load(CHART).render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    return [d for path, text in sorted(rendered.items()) if not path.endswith("NOTES.txt")
            for d in yaml.safe_load_all(text) if d]


def _ready(api: kubernetes.client.ApiClient) -> dict[str, bool]:
    apps = AppsV1Api(api)
    out = {d.metadata.name: (d.status.ready_replicas or 0) >= 1
           for d in apps.list_namespaced_deployment(NAMESPACE).items}
    out |= {s.metadata.name: (s.status.ready_replicas or 0) >= 1
            for s in apps.list_namespaced_stateful_set(NAMESPACE).items}
    out |= {d.metadata.name: (d.status.number_ready or 0) >= 1 for d in apps.list_namespaced_daemon_set(NAMESPACE).items}
    return out


def _crash_looping(api: kubernetes.client.ApiClient) -> bool:
    """A container restarted three times: it will not become ready by waiting."""
    return any(c.restart_count >= 3 for pod in CoreV1Api(api).list_namespaced_pod(NAMESPACE).items
               for c in pod.status.container_statuses or [])


def _pod_report(api: kubernetes.client.ApiClient) -> str:
    """Each pod's phase, container states and its log's tail: why a part did not become ready."""
    core = CoreV1Api(api)
    lines = []
    for pod in core.list_namespaced_pod(NAMESPACE).items:
        statuses = pod.status.container_statuses or []
        states = [f"{c.name}: ready={c.ready} restarts={c.restart_count} {c.state} last: {c.last_state}"
                  for c in statuses]
        lines.append(f"{pod.metadata.name} {pod.status.phase} {states}")
        try:  # a container that exited: the log of the run that failed
            lines.append(core.read_namespaced_pod_log(pod.metadata.name, NAMESPACE, tail_lines=30,
                                                      previous=any(c.restart_count for c in statuses)))
        except kubernetes.client.ApiException as e:
            lines.append(f"(no log: {e.reason})")
    events = core.list_namespaced_event(NAMESPACE).items
    lines += [f"event {e.involved_object.name}: {e.reason}: {e.message}" for e in events[-20:]]
    return "\n".join(lines)


class Deployed:
    def __init__(self, api: kubernetes.client.ApiClient, ports: dict[str, int], kinds: list[str]) -> None:
        self.api, self.ports, self.kinds = api, ports, kinds


#: host folders the agent's DaemonSet mounts that containerd makes when they are missing (this machine has no
#: CNI state of its own nor a volatile journal): removed after the test when it made them
_MADE_BY_MOUNTS = (Path("/var/lib/cni"), Path("/run/log/journal"), Path("/run/log"))


@pytest.fixture(scope="module")
def deployed(real_cluster: RealCluster, api: kubernetes.client.ApiClient, image: tuple[str, Path, str, Path],
             servers: Settings) -> Iterator[Deployed]:
    name, tar, agent_name, agent_tar = image
    assert real_cluster.paths is not None
    for archive in (tar, agent_tar):
        import_images(real_cluster.paths.containerd_socket, archive, timeout=600)
    ports = {"worker": free_port(), "bridge": free_port(), "agent": free_port()}
    missing = [p for p in _MADE_BY_MOUNTS if not p.exists()]
    documents = _documents(_values(name, agent_name, servers, real_cluster, ports))
    core = CoreV1Api(api)
    core.create_namespace(kubernetes.client.V1Namespace(metadata=kubernetes.client.V1ObjectMeta(name=NAMESPACE)))
    try:
        started = time.monotonic()
        for doc in documents:  # as `helm install` or `kubectl apply` would send them
            kubernetes.utils.create_from_dict(api, doc, namespace=NAMESPACE)
        deadline = time.monotonic() + 420
        ready = _ready(api)
        while time.monotonic() < deadline and not (ready and all(ready.values())) and not _crash_looping(api):
            time.sleep(3)
            ready = _ready(api)
        assert ready and all(ready.values()), f"not ready: {ready}\n{_pod_report(api)}"
        log.info("chart: every part ready %.0f s after its documents were created", time.monotonic() - started)
        yield Deployed(api, ports, [d["kind"] for d in documents])
    finally:
        core.delete_namespace(NAMESPACE)
        for folder in missing:  # made empty for read-only mounts: gone again (the deepest first)
            with contextlib.suppress(OSError):
                folder.rmdir()


def test_the_collector_bridge_worker_and_node_agent_of_the_chart_become_ready(deployed: Deployed) -> None:
    assert {"Deployment", "StatefulSet", "DaemonSet", "ServiceAccount", "ClusterRole", "ClusterRoleBinding"} <= set(
        deployed.kinds)
    ready = _ready(deployed.api)
    assert set(ready) == {f"{RELEASE}-{part}" for part in ("collector", "bridge", "worker", "agent")}
    assert all(ready.values()), ready
    # the pods run the images built here (never pulled), as the numeric non-root user the chart asks for
    # but the node agent (root with the capabilities the DaemonSet lists)
    for pod in CoreV1Api(deployed.api).list_namespaced_pod(NAMESPACE).items:
        [container] = pod.spec.containers
        assert container.image_pull_policy == "Never"
        agent = pod.metadata.labels["app.kubernetes.io/component"] == "agent"
        assert container.security_context.run_as_user == (0 if agent else 10001), pod.metadata.name
        if agent:  # which collectors run on this node, and why the others cannot (said once at the start)
            said = [json.loads(line)["message"] for line in
                    CoreV1Api(deployed.api).read_namespaced_pod_log(pod.metadata.name, NAMESPACE).splitlines()
                    if line.startswith("{") and "running" in line and "unavailable" in line]
            assert said and ": running " in said[0], said
            running = said[0].split(": running ", 1)[1].split(";", 1)[0].split(", ")
            assert "cri" in running, said[0]  # containerd's events, on the socket the values named
            log.info("chart: %s", said[0])


def _pod(core: CoreV1Api, component: str) -> Any:
    """The one pod of a part of the chart (`app.kubernetes.io/component`)."""
    [pod] = core.list_namespaced_pod(NAMESPACE, label_selector=f"app.kubernetes.io/component={component}").items
    return pod


async def _named(servers: Settings, kind: str, ns: str, name: str) -> tuple[str, str]:
    graph = open_graph(servers.graph)
    try:
        got = await explain(graph, kind=kind, name=name, namespace=ns)
    except LookupError as e:
        return "", str(e)
    finally:
        await graph.close()
    ongoing = [h.prediction for h in got.hypotheses if h.prediction.resolved_at is None]
    return (ongoing[0].type or ongoing[0].pattern, ongoing[0].message) if ongoing else ("", "no ongoing hypothesis")


def test_a_failing_workload_is_collected_in_the_cluster_and_its_cause_named(
    deployed: Deployed, servers: Settings
) -> None:
    runner = Runner(deployed.api, (FAILURE,))
    runner.start()
    waiting = runner.run(timeout=240)
    assert not waiting, f"the workload did not fail as it should: {waiting}"
    kind, ns, name = symptom_object(FAILURE, observe(deployed.api, FAILURE.namespace)).split("/")
    deadline = time.monotonic() + 180
    named, message = asyncio.run(_named(servers, kind, ns, name))
    while time.monotonic() < deadline and named != FAILURE.cause:
        time.sleep(3)
        named, message = asyncio.run(_named(servers, kind, ns, name))
    assert named == FAILURE.cause, f"explain {kind}/{ns}/{name}: {named}: {message}\n{_pod_report(deployed.api)}"

    # the node agent's CRI collector published containerd's events of the failing container
    core = CoreV1Api(deployed.api)
    agent = _pod(core, "agent")
    health = json.loads(get(deployed.ports["agent"], "/healthz", host=agent.status.host_ip)[2])
    [cri] = [c for c in health["collectors"] if c["name"] == "cri"]
    assert cri["state"] == "running" and cri["sent"] > 0, cri
    # the worker's and the bridge's Prometheus pages count what went through them
    assert scrape(deployed.ports["worker"])[("tapio_stage_events_total", (("stage", "sink"),))] > 0
    assert scrape(deployed.ports["bridge"])[("tapio_stage_events_total", (("stage", "bridge"),))] > 0
    # the worker logs JSON (the chart's logFormat), read back through the API server as kubectl logs would
    pod = _pod(core, "worker")
    lines = [line for line in core.read_namespaced_pod_log(pod.metadata.name, NAMESPACE).splitlines() if line.strip()]
    assert lines and all(isinstance(json.loads(line), dict) for line in lines), lines[:5]
