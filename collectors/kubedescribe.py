"""`kubectl describe <kind> <name>` text, one object's block -> the Kubernetes object it shows.

Fed by: `collectors.kubetext`, which cuts the output into blocks (one per `Name:` header).
Feeds: `collectors.kubetext`, which turns the object into a SNAPSHOT RawEvent and the rows of its
`Events:` table (read by `collectors.kubetables`) into Kubernetes Event RawEvents. The parts
describe prints alike for every kind (pod specs, containers, Conditions tables) are read by
`collectors.kubefields`; here: the kind (inferred from the fields, or the caller's hint) and
what each kind adds.

The object is rebuilt in the shape the API serves, with the fields `agents.enrich` reads:
metadata (name, namespace, labels, annotations, ownerReferences from `Controlled By:`),
spec.nodeName, containers and volumes (ConfigMap, Secret, PVC, projected sources), a workload's
pod template, status.phase, conditions and containerStatuses (state / lastState with reason,
exit code and times, restartCount). Times kubectl prints (`Tue, 26 Nov 2024 12:37:10 +0100`)
become RFC3339 UTC. What describe does not print (uids, resourceVersions, a pod condition's
reason) is left out, never invented. Pure: no clock.
"""

from __future__ import annotations

import re
from datetime import datetime

import msgspec

from collectors.kubefields import (
    Bad,
    Node,
    children,
    container_status,
    node_spec,
    parse_time,
    pod_spec,
    read_conditions,
    read_pairs,
    read_selector,
    replica_status,
    time_of,
    tree,
    workload_spec,
)
from collectors.kubetables import (
    DESCRIBE_HEADER,
    OLD_DESCRIBE_HEADER,
    EventRow,
    TextError,
    fragment,
    kind_of,
    parse_describe_events,
)
from core.kube.owners import WORKLOAD_KINDS

TIME_RE = re.compile(r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} [+-]\d{4}")
_PHASES = {"Pod": {"Pending", "Running", "Succeeded", "Failed", "Unknown"},
           "PersistentVolumeClaim": {"Pending", "Bound", "Lost"},
           "PersistentVolume": {"Pending", "Available", "Bound", "Released", "Failed"},
           "Namespace": {"Active", "Terminating"}}
_ACCESS = {"RWO": "ReadWriteOnce", "ROX": "ReadOnlyMany", "RWX": "ReadWriteMany", "RWOP": "ReadWriteOncePod"}
_WORKLOADS = WORKLOAD_KINDS | {"ReplicationController"}  # kinds whose describe shows a pod template
# (kind, top-level keys of which any one says it), first match wins
_INFER = (
    ("Pod", {"Containers", "Init Containers", "QoS Class"}),
    ("Deployment", {"StrategyType", "NewReplicaSet", "OldReplicaSets", "RollingUpdateStrategy"}),
    ("DaemonSet", {"Desired Number of Nodes Scheduled", "Number of Nodes Scheduled with Up-to-date Pods"}),
    ("StatefulSet", {"Volume Claims", "Pod Management Policy"}),
    ("CronJob", {"Schedule", "Concurrency Policy", "Last Schedule Time"}),
    ("Job", {"Completions", "Parallelism", "Pods Statuses", "Completion Mode"}),
    ("ReplicaSet", {"Pods Status"}),
    ("Node", {"Roles", "Taints", "System Info", "Unschedulable", "PodCIDR", "Non-terminated Pods"}),
    ("PersistentVolume", {"Reclaim Policy"}),
    ("PersistentVolumeClaim", {"Used By", "VolumeMode", "Access Modes", "StorageClass"}),
    ("HorizontalPodAutoscaler", {"Reference", "Min replicas", "Max replicas"}),
    ("Ingress", {"Ingress Class", "Rules", "Default backend"}),
    ("Service", {"Endpoints", "IP Family Policy", "TargetPort", "Session Affinity"}),
)


class Described(msgspec.Struct, kw_only=True):
    """One describe block: the object (None if it could not be rebuilt) and its Events rows."""

    line: int
    kind: str
    api_version: str
    namespaced: bool
    name: str
    namespace: str
    node: str = ""
    obj: dict | None = None
    error: TextError | None = None  # why obj is None
    events: list[EventRow | TextError] = []
    times: list[datetime] = []  # every absolute time the block shows (outside its Events table)


def parse_describe_block(lines: list[tuple[int, str]], kind_hint: str = "") -> Described | TextError:
    """One block of describe output (`lines[0]` is its `Name:` line) -> what it shows."""
    events_at = next((i for i, (_, line) in enumerate(lines) if re.match(r"Events:(\s|$)", line)), len(lines))
    body, tail = lines[:events_at], lines[events_at:]
    root = tree(body)
    top = {c.key: c for c in root.children if c.key}
    name = root.val("Name")
    if not name:
        return TextError(lines[0][0], "describe block without a name", fragment(lines[0][1]))
    keys = set(top) | {c.text for c in root.children}
    kind = kind_of(kind_hint)[0] if kind_hint else next((k for k, say in _INFER if say & keys), "")
    if not kind:
        kind = ("Secret" if "Type" in top else "ConfigMap") if "Data" in keys else ""
    if not kind:
        return TextError(lines[0][0], f"cannot tell the kind of {name!r} from its fields: pass the kind as a hint",
                         fragment(lines[0][1]))
    _, api_version, namespaced = kind_of(kind)
    namespace = root.val("Namespace") if namespaced else ""
    out = Described(line=lines[0][0], kind=kind, api_version=api_version, namespaced=namespaced, name=name,
                    namespace=namespace)
    out.times = [parse_time(m.group(0)) for _, line in body for m in TIME_RE.finditer(line)]
    out.times = [t for t in out.times if t is not None and t.year > 1]
    try:
        out.obj = _object(root, out)
    except Bad as exc:
        out.error = TextError(exc.node.line, f"{kind} {name}: {exc}", fragment(exc.node.text))
    out.events = _events(tail, out)
    return out


def _events(tail: list[tuple[int, str]], out: Described) -> list[EventRow | TextError]:
    if not tail:
        return []
    first_number, first = tail[0]
    if first.split(":", 1)[1].strip() in ("<none>",):
        return []
    rest = [(n, line) for n, line in tail[1:] if line.strip()]
    if not rest or not (DESCRIBE_HEADER.match(rest[0][1]) or OLD_DESCRIBE_HEADER.match(rest[0][1])):
        where, what = rest[0] if rest else (first_number, first)
        return [TextError(where, "Events: without its Type Reason Age From Message header (cut or garbled)",
                          fragment(what))]
    rows = parse_describe_events(rest)
    for row in rows:
        if isinstance(row, EventRow):
            row.kind, row.name, row.namespace = out.kind, out.name, out.namespace
    return rows


# -- the object --------------------------------------------------------------------------------


def _object(root: Node, out: Described) -> dict:
    meta: dict = {"name": out.name}
    if out.namespace:
        meta["namespace"] = out.namespace
    for field, key, sep in (("labels", "Labels", "="), ("annotations", "Annotations", ": ")):
        if pairs := read_pairs(root.get(key), sep):
            meta[field] = pairs
    if created := time_of(root.get("CreationTimestamp")):
        meta["creationTimestamp"] = created
    if owner := root.val("Controlled By"):
        owner_kind, _, owner_name = owner.partition("/")
        kind, api, _ = kind_of(owner_kind)
        meta["ownerReferences"] = [{"apiVersion": api, "kind": kind, "name": owner_name, "controller": True}]
    obj: dict = {"apiVersion": out.api_version, "kind": out.kind, "metadata": meta}
    spec: dict = {}
    status: dict = {}
    phase = root.val("Status").split(" ", 1)[0]
    if phase in _PHASES.get(out.kind, ()):
        status["phase"] = phase
    for field, key in (("startTime", "Start Time"), ("completionTime", "Completed At")):
        if moment := time_of(root.get(key)):
            status[field] = moment
    if conditions := read_conditions(root.get("Conditions")):
        status["conditions"] = conditions
    if out.kind == "Pod":
        node_name, _, host_ip = root.val("Node").partition("/")
        out.node = node_name
        spec.update(pod_spec(root))
        if node_name:
            spec["nodeName"] = node_name
        for field, value in (("hostIP", host_ip), ("podIP", root.val("IP")), ("qosClass", root.val("QoS Class")),
                             ("reason", root.val("Reason")), ("message", root.val("Message"))):
            if value:
                status[field] = value
        for field, key in (("initContainerStatuses", "Init Containers"), ("containerStatuses", "Containers")):
            found = [s for c in children(root.get(key)) if (s := container_status(c))]
            if found:
                status[field] = found
    elif out.kind in _WORKLOADS:
        spec.update(workload_spec(root))
        status.update(replica_status(root.val("Replicas")))
    elif out.kind == "Node":
        spec.update(node_spec(root))
        addresses = [{"type": c.key, "address": c.value} for c in children(root.get("Addresses")) if c.key]
        if addresses:
            status["addresses"] = addresses
    elif out.kind == "PersistentVolumeClaim":
        for field, key in (("storageClassName", "StorageClass"), ("volumeName", "Volume"),
                           ("volumeMode", "VolumeMode")):
            if value := root.val(key):
                spec[field] = value
        if modes := [_ACCESS.get(m, m) for m in re.split(r"[,\s]+", root.val("Access Modes")) if m]:
            spec["accessModes"] = modes
        if capacity := root.val("Capacity"):
            status["capacity"] = {"storage": capacity}
    elif out.kind == "Service":
        for field, key in (("type", "Type"), ("clusterIP", "IP")):
            if value := root.val(key):
                spec[field] = value
        if selector := read_selector(root.val("Selector")):
            spec["selector"] = selector
    if spec:
        obj["spec"] = spec
    if status:
        obj["status"] = status
    return obj
