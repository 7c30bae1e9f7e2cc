"""The node collectors that read a real node's kubelet and runtime, on the real single-node cluster
(`real_cluster`; one start for both, the machine runs one cluster at a time).

kubelet: its read-only port, a pod whose container fills 58 MiB of its 64 MiB memory limit and one that
spins against a 100m CPU limit. The collector must sample them against their limits, find
`MemoryNearLimit` once, see the CFS throttling, and report the node's signals (with a memory threshold
above the node's memory: `NodeMemoryPressure`); the samples read through the enrich and normalize stages
as the `metric` condition's `UnifiedEvent.metrics`.

cni: the node's own network namespace, the cluster's CNI conf dir and the result cache containerd's libcni
writes (`/var/lib/cni/results`): a pod's sandbox made by the real containerd and bridge plugin is attached
(`CNIAttached`, with its address and veth), its veth added as a port of the cluster's bridge, the pool's
usage sampled; deleting the pod removes the veth (named as the pod's) and detaches it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import kubernetes
import pytest
from nodesources.journald import JournalNamespace
from nodesources.journald import unavailable as journald_unavailable
from realcluster.images import BUSYBOX_IMAGE
from realcluster.node import RealCluster

from agents.enrich import enrich_event
from agents.normalize import normalize_event
from collectors.cni import CniCollector
from collectors.journald import JournaldCollector
from collectors.kubelet import KubeletCollector
from collectors.kubeletstats import Thresholds
from collectors.node import SourceUnavailable
from core.events import RawEvent

pytestmark = [pytest.mark.xdist_group("real-cluster"), pytest.mark.timeout(600)]

KEEP = "trap 'exit 0' TERM; sleep 3600 & wait"


def _container(name: str, script: str, limits: dict[str, str]) -> dict:
    return {"name": name, "image": BUSYBOX_IMAGE, "imagePullPolicy": "Never", "command": ["sh", "-c", script],
            "resources": {"limits": limits, "requests": limits}}


async def test_a_container_near_its_memory_limit_a_throttled_one_and_the_node_signals(
        real_cluster: RealCluster, api: kubernetes.client.ApiClient, namespace: str) -> None:
    core = kubernetes.client.CoreV1Api(api)
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "filler", "namespace": namespace},
           "spec": {"nodeName": real_cluster.node_name, "terminationGracePeriodSeconds": 1, "containers": [
               _container("fill", f"head -c 58m /dev/zero > /dev/shm/fill; {KEEP}", {"memory": "64Mi"}),
               _container("spin", "while :; do :; done", {"cpu": "100m", "memory": "32Mi"})]}}
    core.create_namespaced_pod(namespace, pod)
    collector = KubeletCollector(real_cluster.node_name, url=real_cluster.kubelet_read_only_url, interval=1.0,
                                 thresholds=Thresholds(memory_available_bytes=2.0**50))
    collector.check()
    batches: list[list[RawEvent]] = []

    async def emit(batch: list[RawEvent]) -> None:
        batches.append(batch)

    def events(reason: str, **metadata: str) -> list[RawEvent]:
        return [e for b in batches for e in b if e.metadata["reason"] == reason
                and all(e.metadata.get(k) == v for k, v in metadata.items())]

    def throttled() -> list[float]:
        return [float(e.metadata["metric.cpu.throttled_percent"])
                for e in events("MetricSample", name="filler", container="spin")
                if "metric.cpu.throttled_percent" in e.metadata]

    stop = asyncio.Event()
    task = asyncio.create_task(collector.run(emit, stop))
    try:
        deadline = time.monotonic() + 180
        while not (events("MemoryNearLimit") and any(p > 0 for p in throttled())):
            assert not task.done(), "the collector stopped"
            assert time.monotonic() < deadline, (f"after {collector.polls} polls: near-limit "
                                                 f"{events('MemoryNearLimit')}, throttled {throttled()}")
            await asyncio.sleep(0.5)
        polls = collector.polls
        while collector.polls < polls + 2:  # two more polls: the finding is not repeated
            assert time.monotonic() < deadline + 30, "the collector stopped polling"
            await asyncio.sleep(0.2)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        core.delete_namespaced_pod("filler", namespace, grace_period_seconds=1)
        gone_by = time.monotonic() + 60  # its containers stopped before the cluster stops
        while core.list_namespaced_pod(namespace, field_selector="metadata.name=filler").items:
            assert time.monotonic() < gone_by, "the pod was not deleted"
            await asyncio.sleep(0.5)

    near = events("MemoryNearLimit")
    assert len(near) == 1, near
    md = near[0].metadata
    assert (md["kind"], md["namespace"], md["name"], md["container"]) == ("Pod", namespace, "filler", "fill")
    assert float(md["metric.memory.working_set_percent"]) >= 90 and md["metric.memory.limit_bytes"] == str(64 * 2**20)
    assert md["severity"] == "warning" and md["intent"] == "resource-pressure"
    # the container id comes from the pod's status in /pods, which can lag the first samples
    assert len(events("MetricSample", name="filler", container="fill")[-1].metadata["container_id"]) == 64
    nodes = events("MetricSample", kind="Node")
    assert nodes and 0 < float(nodes[-1].metadata["metric.memory.usage_percent"]) < 100
    assert "metric.psi.memory.some_avg10" in nodes[-1].metadata  # /proc/pressure on this kernel
    assert float(nodes[-1].metadata["metric.kubelet.pleg_seconds_since_relist"]) < 60
    pressure = events("NodeMemoryPressure")
    assert len(pressure) == 1 and pressure[0].metadata["severity"] == "error"
    assert collector.lost() == 0

    unified = normalize_event(enrich_event(events("MetricSample", name="filler", container="fill")[-1]))
    assert unified.metrics["memory.working_set_percent"] >= 90 and unified.k8s.name == "filler"


def test_a_kubelet_that_does_not_answer_is_named(tmp_path: Path) -> None:
    with pytest.raises(SourceUnavailable, match="does not answer /healthz"):
        KubeletCollector("node-1", url="http://127.0.0.1:9", timeout=2).check()


async def test_a_pod_sandbox_made_by_the_real_runtime_is_seen_by_the_cni_collector(
        real_cluster: RealCluster, api: kubernetes.client.ApiClient, namespace: str) -> None:
    assert real_cluster.paths is not None
    core = kubernetes.client.CoreV1Api(api)
    collector = CniCollector(real_cluster.node_name, conf_dir=real_cluster.paths.cni_conf_dir, scan_interval=0.5,
                             batch_seconds=0.3)
    collector.check()
    batches: list[list[RawEvent]] = []

    async def emit(batch: list[RawEvent]) -> None:
        batches.append(batch)

    def seen(reason: str, **metadata: str) -> list[RawEvent]:
        return [e for b in batches for e in b if e.metadata["reason"] == reason
                and all(e.metadata.get(k) == v for k, v in metadata.items())]

    async def until(reason: str, timeout: float = 120, **metadata: str) -> RawEvent:
        deadline = time.monotonic() + timeout
        while not seen(reason, **metadata):
            assert not task.done(), "the collector stopped"
            assert time.monotonic() < deadline, f"no {reason} {metadata}"
            await asyncio.sleep(0.2)
        return seen(reason, **metadata)[-1]

    stop = asyncio.Event()
    task = asyncio.create_task(collector.run(emit, stop))
    try:
        network = real_cluster.network
        before = await until("IPAMUsage", **{"net.cni_network": network})
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-net", "namespace": namespace},
               "spec": {"nodeName": real_cluster.node_name, "terminationGracePeriodSeconds": 1,
                        "containers": [_container("web", KEEP, {"memory": "32Mi"})]}}
        core.create_namespaced_pod(namespace, pod)
        attached = await until("CNIAttached", name="web-net")
        md = attached.metadata
        assert (md["kind"], md["namespace"], md["net.cni_network"]) == ("Pod", namespace, network)
        assert md["net.address"].startswith(real_cluster.subnet.rsplit(".", 2)[0]) and len(md["container_id"]) == 64
        veth = md["net.interface"]
        port = await until("LinkAdded", **{"net.interface": veth})
        if "net.bridge" not in port.metadata:  # made a port of the bridge after the collector's batch
            port = await until("LinkJoinedBridge", **{"net.interface": veth})
        assert (port.metadata["net.link_kind"], port.metadata["net.bridge"]) == ("veth", real_cluster.bridge)
        grown = await until("IPAMUsage", **{"net.cni_network": network,
                                            "metric.cni.ipam_used": str(int(before.metadata["metric.cni.ipam_used"]) + 1)})
        assert grown.metadata["metric.cni.ipam_capacity"] == "253"

        core.delete_namespaced_pod("web-net", namespace, grace_period_seconds=1)
        removed = await until("LinkRemoved", **{"net.interface": veth})
        assert (removed.metadata["kind"], removed.metadata["name"]) == ("Pod", "web-net")
        await until("CNIDetached", name="web-net")
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    assert collector.lost() == 0


async def test_the_real_kubelet_and_containerd_logs_through_a_journal_name_a_failed_image_pull(
        real_cluster: RealCluster, api: kubernetes.client.ApiClient, namespace: str, tmp_path: Path) -> None:
    """journald: the cluster's kubelet and containerd write their logs to files; on a systemd node their
    stderr is the journal (SYSLOG_IDENTIFIER kubelet / containerd). Each new line of those files goes into
    a journald namespace as such, and a pod whose image no registry serves makes both fail to pull it."""
    if why := journald_unavailable():
        pytest.skip(why)
    core = kubernetes.client.CoreV1Api(api)
    logs = real_cluster.work_dir / "logs"
    offsets = {name: (logs / f"{name}.log").stat().st_size for name in ("kubelet", "containerd")}
    with JournalNamespace() as journal:
        collector = JournaldCollector(real_cluster.node_name, cursor_file=tmp_path / "cursor",
                                      namespace=journal.name, batch_seconds=0.3)
        batches: list[list[RawEvent]] = []

        async def emit(batch: list[RawEvent]) -> None:
            batches.append(batch)

        def pump() -> None:
            for name, offset in offsets.items():
                with (logs / f"{name}.log").open("rb") as log:
                    log.seek(offset)
                    data = log.read()
                complete = data[: data.rfind(b"\n") + 1]
                offsets[name] = offset + len(complete)
                for line in complete.decode(errors="replace").splitlines():
                    journal.write(line, SYSLOG_IDENTIFIER=name)

        def pulls() -> list[RawEvent]:
            return [e for b in batches for e in b if e.metadata["reason"] == "ErrImagePull"
                    and e.metadata.get("image") == "tapio.invalid/absent:1"]

        stop = asyncio.Event()
        task = asyncio.create_task(collector.run(emit, stop))
        try:
            await asyncio.sleep(1)  # journalctl follows from the end
            pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "absent-image", "namespace": namespace},
                   "spec": {"nodeName": real_cluster.node_name, "terminationGracePeriodSeconds": 1, "containers": [
                       {"name": "app", "image": "tapio.invalid/absent:1", "imagePullPolicy": "IfNotPresent"}]}}
            core.create_namespaced_pod(namespace, pod)
            deadline = time.monotonic() + 120
            while len({e.metadata["journal.identifier"] for e in pulls()}) < 2:
                assert not task.done(), "the collector stopped"
                assert time.monotonic() < deadline, f"pull failures seen: {[e.metadata for e in pulls()]}"
                pump()
                await asyncio.sleep(0.3)
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
            core.delete_namespaced_pod("absent-image", namespace, grace_period_seconds=0)
    kubelet = [e.metadata for e in pulls() if e.metadata["journal.identifier"] == "kubelet"]
    containerd = [e.metadata for e in pulls() if e.metadata["journal.identifier"] == "containerd"]
    # the kubelet names the pod ("Error syncing pod"); containerd only the image: about the node
    assert all((md["kind"], md["namespace"], md["name"]) == ("Pod", namespace, "absent-image") for md in kubelet)
    assert all((md["kind"], md["name"]) == ("Node", real_cluster.node_name) for md in containerd)
    assert all(md["intent"] == "image-pull-failure" and md["severity"] == "warning" for md in kubelet + containerd)
    assert "&Container{" not in " ".join(md["message"] for md in kubelet)
