"""What the kubelet's stats say: per-container memory and CPU against the pod spec's limits, the node's
eviction signals and pressure, as metric samples and the findings that cross a line.

Fed by: `collectors.kubelet` (the kubelet's `/stats/summary` and `/pods` JSON, `/metrics/cadvisor` and
`/metrics` text, `/proc/pressure/*`), decoded here into typed Structs. Feeds: the kubelet collector, which
turns `Sample`s and `Finding`s into node events (`collectors.node`); the `metric` pattern condition reads
the samples (`metric.<name>` in the event's metadata, `UnifiedEvent.metrics[<name>]`).

Sample names (the names a pattern's `metric` condition uses):
- per container (about its Pod): `memory.working_set_bytes`, `memory.limit_bytes`,
  `memory.working_set_percent` (of the limit: what the OOM killer compares), `cpu.usage_cores`,
  `cpu.limit_cores`, `cpu.usage_percent` (of the limit), `cpu.throttled_percent` (CFS periods throttled
  since the last poll, from cAdvisor);
- per node: `memory.usage_percent` (working set of capacity, capacity = working set + available, as the
  kubelet's `memory.available` signal counts), `memory.available_bytes`, `nodefs.available_percent`,
  `nodefs.inodes_free_percent`, `imagefs.available_percent`, `cpu.usage_cores`, `psi.<resource>.<some|full>_avg10`
  (PSI, percent of the last 10 s stalled) and `kubelet.pleg_seconds_since_relist`.

Findings: `MemoryNearLimit` when a container's working set passes `near_limit_percent` (90) of its limit,
once, until it falls below `near_limit_percent - rearm_margin`; `NodeMemoryPressure` / `NodeDiskPressure` /
`NodeInodePressure` when an eviction signal comes within `warn_factor` of its threshold (warning) or
passes it (error, the kubelet evicts now), and `NodeMemoryStall` when PSI memory `full` avg10 passes
`psi_full_percent`. `Thresholds` default to the kubelet's default hard eviction thresholds. Pure.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

import msgspec
from kubernetes.utils import parse_quantity
from prometheus_client.parser import text_string_to_metric_families

# -- /stats/summary (kubelet statsapi v1alpha1) -------------------------------------------------------------


class CPUStats(msgspec.Struct, frozen=True, rename="camel"):
    usage_nano_cores: int | None = None
    usage_core_nano_seconds: int | None = None


class MemoryStats(msgspec.Struct, frozen=True, rename="camel"):
    available_bytes: int | None = None
    usage_bytes: int | None = None
    working_set_bytes: int | None = None
    rss_bytes: int | None = None


class FsStats(msgspec.Struct, frozen=True, rename="camel"):
    available_bytes: int | None = None
    capacity_bytes: int | None = None
    inodes_free: int | None = None
    inodes: int | None = None


class RuntimeStats(msgspec.Struct, frozen=True, rename="camel"):
    image_fs: FsStats | None = None


class ContainerStats(msgspec.Struct, frozen=True):
    name: str
    cpu: CPUStats | None = None
    memory: MemoryStats | None = None


class PodReference(msgspec.Struct, frozen=True):
    name: str
    namespace: str
    uid: str = ""


class PodStats(msgspec.Struct, frozen=True, rename="camel"):
    pod_ref: PodReference
    containers: list[ContainerStats] = []


class NodeStats(msgspec.Struct, frozen=True, rename="camel"):
    node_name: str = ""
    cpu: CPUStats | None = None
    memory: MemoryStats | None = None
    fs: FsStats | None = None
    runtime: RuntimeStats | None = None


class Summary(msgspec.Struct, frozen=True):
    node: NodeStats
    pods: list[PodStats] = []


# -- /pods (a v1 PodList: what the limits and container ids are) -------------------------------------------


class Resources(msgspec.Struct, frozen=True):
    limits: dict[str, str] = {}
    requests: dict[str, str] = {}


class ContainerSpec(msgspec.Struct, frozen=True):
    name: str
    resources: Resources = Resources()


class ContainerStatus(msgspec.Struct, frozen=True, rename="camel"):
    name: str
    container_id: str = msgspec.field(name="containerID", default="")


class PodSpec(msgspec.Struct, frozen=True):
    containers: list[ContainerSpec] = []


class PodStatus(msgspec.Struct, frozen=True, rename="camel"):
    container_statuses: list[ContainerStatus] = []


class ObjectMeta(msgspec.Struct, frozen=True):
    name: str
    namespace: str = ""
    uid: str = ""


class Pod(msgspec.Struct, frozen=True):
    metadata: ObjectMeta
    spec: PodSpec = PodSpec()
    status: PodStatus = PodStatus()


class PodList(msgspec.Struct, frozen=True):
    items: list[Pod] | None = None  # a kubelet with no pod says `"items": null`


def decode_summary(body: bytes) -> Summary:
    """Raises msgspec.DecodeError / ValidationError for a body that is not a stats summary."""
    return msgspec.json.decode(body, type=Summary)


def decode_pods(body: bytes) -> PodList:
    return msgspec.json.decode(body, type=PodList)


# -- what comes out --------------------------------------------------------------------------------------


class Sample(msgspec.Struct, frozen=True, kw_only=True):
    """Metric samples about one object: a container of a pod (`container` set) or the node."""

    pod: PodReference | None = None
    container: str = ""
    container_id: str = ""
    values: dict[str, float]


class Finding(msgspec.Struct, frozen=True, kw_only=True):
    reason: str
    message: str
    intent: str
    category: str
    severity: str
    pod: PodReference | None = None
    container: str = ""
    container_id: str = ""
    values: dict[str, float] = {}


class Thresholds(msgspec.Struct, frozen=True, kw_only=True):
    """Eviction thresholds as the kubelet has them (its defaults: `memory.available<100Mi`,
    `nodefs.available<10%`, `imagefs.available<15%`, `nodefs.inodesFree<5%`)."""

    memory_available_bytes: float = 100 * 2**20
    nodefs_available_percent: float = 10.0
    imagefs_available_percent: float = 15.0
    nodefs_inodes_free_percent: float = 5.0
    warn_factor: float = 1.5  # warn when a signal is within this factor of its threshold
    near_limit_percent: float = 90.0
    rearm_margin: float = 5.0
    psi_full_percent: float = 10.0


# -- limits and ids from /pods ---------------------------------------------------------------------------

_CONTAINER_ID = re.compile(r"([0-9a-f]{64})(?:\.scope)?$")


def container_id(text: str) -> str:
    """The 64-hex container id in `containerd://<id>`, a cgroup path `/k8s.io/<id>` or
    `.../cri-containerd-<id>.scope`; "" when there is none."""
    found = _CONTAINER_ID.search(text)
    return found.group(1) if found else ""


class Limits(msgspec.Struct, frozen=True):
    memory_bytes: float | None = None
    cpu_cores: float | None = None
    container_id: str = ""


def limits_by_container(pods: PodList) -> dict[tuple[str, str, str], Limits]:
    """(namespace, pod, container) -> its limits and running container id, from the pod specs."""
    out: dict[tuple[str, str, str], Limits] = {}
    for pod in pods.items or []:
        ids = {s.name: container_id(s.container_id) for s in pod.status.container_statuses}
        for spec in pod.spec.containers:
            out[(pod.metadata.namespace, pod.metadata.name, spec.name)] = Limits(
                memory_bytes=_quantity(spec.resources.limits.get("memory")),
                cpu_cores=_quantity(spec.resources.limits.get("cpu")),
                container_id=ids.get(spec.name, ""))
    return out


def _quantity(text: str | None) -> float | None:
    if not text:
        return None
    try:
        value = float(parse_quantity(text))
    except ValueError:
        return None
    return value if value > 0 and math.isfinite(value) else None


# -- cAdvisor and kubelet metrics ------------------------------------------------------------------------


def _only(text: str, prefixes: tuple[str, ...]) -> str:
    """The lines of a Prometheus text exposition about metrics named with one of `prefixes` (their samples and
    their HELP / TYPE lines): the parser then reads a few lines, not the kubelet's 80 KB (17 ms -> well under 1)."""
    keep = []
    for line in text.splitlines():
        name = line.split(" ", 3)[2] if line.startswith("# ") and line.count(" ") >= 2 else line
        if name.startswith(prefixes):
            keep.append(line)
    return "\n".join(keep) + "\n"


class CFSPeriods(msgspec.Struct, frozen=True):
    periods: float
    throttled: float


def cfs_periods(text: str) -> dict[str, CFSPeriods]:
    """container id -> its CFS period counters, from `/metrics/cadvisor` (containers with a CPU limit)."""
    periods: dict[str, float] = {}
    throttled: dict[str, float] = {}
    for family in text_string_to_metric_families(_only(text, ("container_cpu_cfs_periods_total",
                                                              "container_cpu_cfs_throttled_periods_total"))):
        if family.name not in ("container_cpu_cfs_periods", "container_cpu_cfs_throttled_periods"):
            continue
        into = periods if family.name == "container_cpu_cfs_periods" else throttled
        for sample in family.samples:
            if sample.name.endswith("_total") and (cid := container_id(sample.labels.get("id", ""))):
                into[cid] = sample.value
    return {cid: CFSPeriods(periods[cid], throttled.get(cid, 0.0)) for cid in periods}


def throttled_percent(before: CFSPeriods | None, now: CFSPeriods) -> float | None:
    """Percent of the CFS periods since `before` in which the container was throttled."""
    if before is None or now.periods <= before.periods:
        return None
    return 100.0 * max(0.0, now.throttled - before.throttled) / (now.periods - before.periods)


def pleg_seconds_since_relist(text: str, now: float) -> float | None:
    """Seconds since the kubelet's PLEG last relisted (`kubelet_pleg_last_seen_seconds`, `/metrics`)."""
    for family in text_string_to_metric_families(_only(text, ("kubelet_pleg_last_seen_seconds",))):
        if family.name == "kubelet_pleg_last_seen_seconds":
            for sample in family.samples:
                return max(0.0, now - sample.value)
    return None


def psi_avg10(text: str) -> dict[str, float]:
    """`some_avg10` / `full_avg10` of one `/proc/pressure/<resource>` file."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        for field in rest.split():
            key, _, value = field.partition("=")
            if key == "avg10" and kind in ("some", "full"):
                out[f"{kind}_avg10"] = float(value)
    return out


# -- samples -----------------------------------------------------------------------------------------------


def container_samples(summary: Summary, limits: dict[tuple[str, str, str], Limits],
                      throttled: dict[str, float]) -> list[Sample]:
    """One Sample per running container: its memory and CPU, against its limits where it has them;
    `throttled` maps a container id to its throttled percent since the last poll."""
    out = []
    for pod in summary.pods:
        for stats in pod.containers:
            limit = limits.get((pod.pod_ref.namespace, pod.pod_ref.name, stats.name), Limits())
            values: dict[str, float] = {}
            working = stats.memory.working_set_bytes if stats.memory else None
            if working is not None:
                values["memory.working_set_bytes"] = float(working)
                if limit.memory_bytes:
                    values["memory.limit_bytes"] = limit.memory_bytes
                    values["memory.working_set_percent"] = round(100.0 * working / limit.memory_bytes, 2)
            cores = stats.cpu.usage_nano_cores if stats.cpu else None
            if cores is not None:
                values["cpu.usage_cores"] = round(cores / 1e9, 4)
                if limit.cpu_cores:
                    values["cpu.limit_cores"] = limit.cpu_cores
                    values["cpu.usage_percent"] = round(100.0 * cores / 1e9 / limit.cpu_cores, 2)
            if limit.container_id in throttled:
                values["cpu.throttled_percent"] = round(throttled[limit.container_id], 2)
            if values:
                out.append(Sample(pod=pod.pod_ref, container=stats.name, container_id=limit.container_id,
                                  values=values))
    return out


def node_samples(summary: Summary, psi: dict[str, dict[str, float]], pleg_age: float | None) -> Sample:
    """The node's eviction signals, usage, PSI (`psi`: resource -> its avg10s) and PLEG age."""
    node = summary.node
    values: dict[str, float] = {}
    memory = node.memory
    if memory and memory.available_bytes is not None:
        values["memory.available_bytes"] = float(memory.available_bytes)
        if memory.working_set_bytes is not None:
            capacity = memory.available_bytes + memory.working_set_bytes
            if capacity > 0:
                values["memory.usage_percent"] = round(100.0 * memory.working_set_bytes / capacity, 2)
    if node.cpu and node.cpu.usage_nano_cores is not None:
        values["cpu.usage_cores"] = round(node.cpu.usage_nano_cores / 1e9, 4)
    for prefix, fs in (("nodefs", node.fs), ("imagefs", node.runtime.image_fs if node.runtime else None)):
        if fs and fs.available_bytes is not None and fs.capacity_bytes:
            values[f"{prefix}.available_bytes"] = float(fs.available_bytes)
            values[f"{prefix}.available_percent"] = round(100.0 * fs.available_bytes / fs.capacity_bytes, 2)
        if prefix == "nodefs" and fs and fs.inodes_free is not None and fs.inodes:
            values["nodefs.inodes_free_percent"] = round(100.0 * fs.inodes_free / fs.inodes, 2)
    for resource, avgs in psi.items():
        for key, value in avgs.items():
            values[f"psi.{resource}.{key}"] = value
    if pleg_age is not None:
        values["kubelet.pleg_seconds_since_relist"] = round(pleg_age, 1)
    return Sample(values=values)


# -- findings (edge-triggered) -----------------------------------------------------------------------------


class Judge:
    """Turns samples into findings, each once per crossing: a condition fires when its line is crossed
    and again only after it has cleared (`active` holds what is standing)."""

    def __init__(self, thresholds: Thresholds | None = None) -> None:
        self.thresholds = thresholds or Thresholds()
        self.active: dict[str, str] = {}  # condition key -> severity it fired with

    def findings(self, containers: Iterable[Sample], node: Sample) -> list[Finding]:
        out = [f for sample in containers if (f := self._near_limit(sample)) is not None]
        out += self._node(node)
        return out

    def _near_limit(self, sample: Sample) -> Finding | None:
        t = self.thresholds
        percent = sample.values.get("memory.working_set_percent")
        if percent is None or sample.pod is None:
            return None
        key = f"near-limit/{sample.pod.namespace}/{sample.pod.name}/{sample.container}"
        if key in self.active:
            if percent < t.near_limit_percent - t.rearm_margin:
                del self.active[key]
            return None
        if percent < t.near_limit_percent:
            return None
        self.active[key] = "warning"
        limit = sample.values["memory.limit_bytes"]
        return Finding(reason="MemoryNearLimit", intent="resource-pressure", category="resources", severity="warning",
                       message=f"container {sample.container} of {sample.pod.namespace}/{sample.pod.name} uses "
                               f"{percent:.0f}% of its memory limit ({_mib(sample.values['memory.working_set_bytes'])}"
                               f" of {_mib(limit)}): the OOM killer takes it at 100%",
                       pod=sample.pod, container=sample.container, container_id=sample.container_id,
                       values=sample.values)

    def _node(self, node: Sample) -> list[Finding]:
        t = self.thresholds
        v = node.values
        signals = (  # (condition, reason, sample, threshold, what)
            ("memory", "NodeMemoryPressure", "memory.available_bytes", t.memory_available_bytes, "memory.available"),
            ("nodefs", "NodeDiskPressure", "nodefs.available_percent", t.nodefs_available_percent,
             "nodefs.available"),
            ("imagefs", "NodeDiskPressure", "imagefs.available_percent", t.imagefs_available_percent,
             "imagefs.available"),
            ("inodes", "NodeInodePressure", "nodefs.inodes_free_percent", t.nodefs_inodes_free_percent,
             "nodefs.inodesFree"),
        )
        out = []
        for condition, reason, name, threshold, what in signals:
            if name not in v:
                continue
            value = v[name]
            severity = "error" if value < threshold else "warning" if value < threshold * t.warn_factor else ""
            key = f"node/{condition}"
            if not severity:
                if value >= threshold * t.warn_factor * 1.05:  # cleared, with a margin against flapping
                    self.active.pop(key, None)
                continue
            if self.active.get(key) in (severity, "error"):
                continue
            self.active[key] = severity
            shown = _mib(value) if name.endswith("_bytes") else f"{value:.1f}%"
            limit = _mib(threshold) if name.endswith("_bytes") else f"{threshold:g}%"
            verb = "is below" if severity == "error" else "nears"
            out.append(Finding(reason=reason, intent="resource-pressure", category="resources", severity=severity,
                               message=f"{what} {shown} {verb} the eviction threshold {limit}: the kubelet "
                                       f"{'evicts pods now' if severity == 'error' else 'will evict pods'}",
                               values=v))
        stall = v.get("psi.memory.full_avg10")
        if stall is not None:
            if stall >= t.psi_full_percent and "node/psi-memory" not in self.active:
                self.active["node/psi-memory"] = "warning"
                out.append(Finding(reason="NodeMemoryStall", intent="resource-pressure", category="resources",
                                   severity="warning", values=v,
                                   message=f"every task on the node stalled on memory {stall:.1f}% of the last 10 s "
                                           "(PSI memory full avg10): reclaim is thrashing"))
            elif stall < t.psi_full_percent / 2:
                self.active.pop("node/psi-memory", None)
        return out


def _mib(value: float) -> str:
    return f"{value / 2**20:.0f}Mi"
