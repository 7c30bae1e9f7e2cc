"""kubectl's printed tables of objects (`kubectl get pods|nodes|deployments|...`) -> the objects they show.

Fed by: `collectors.kubetext`, which finds the tables in a text file (a header line, then rows up
to a blank line). Feeds: `collectors.kubetext`, which places each object at the capture time and
turns it into a SNAPSHOT RawEvent.

Tables read (the columns of kubectl's printers, `-o wide` and `-A` forms included; a header with
any other column, a `-L` label column say, is not one of these and is left alone):
- pods: `NAME READY STATUS RESTARTS AGE` (+ `IP NODE NOMINATED NODE READINESS GATES`);
- nodes: `NAME STATUS ROLES AGE VERSION` (+ `INTERNAL-IP EXTERNAL-IP OS-IMAGE KERNEL-VERSION
  CONTAINER-RUNTIME`);
- deployments `NAME READY UP-TO-DATE AVAILABLE AGE`, replicasets `NAME DESIRED CURRENT READY AGE`,
  statefulsets `NAME READY AGE`, daemonsets `NAME DESIRED CURRENT READY UP-TO-DATE AVAILABLE NODE
  SELECTOR AGE` (+ `CONTAINERS IMAGES SELECTOR`);
- jobs: `NAME COMPLETIONS DURATION AGE` (newer kubectl: `NAME STATUS COMPLETIONS DURATION AGE`).
`kubectl get all` names rows `kind/name` (`deployment.apps/web`); that prefix is read too.

Each row is the object as the API would serve it, with only the fields the table shows; nothing
is filled in that the table does not say. AGE is the creation time (`metadata.creationTimestamp`,
`now` minus the age). A pod's STATUS is what kubectl's pod printer derives from the status
(`printPod`): a pod-level reason (`Evicted`, `OutOfcpu`, `NodeLost`), else the reason of a
container that is waiting (`CrashLoopBackOff`, `ImagePullBackOff`...) or terminated (`Error`,
`OOMKilled`, `Completed`, `ExitCode:N`, `Signal:N`), `Init:...` for init containers, else the
phase (`Running`, `Pending`, ...), `Terminating` when deleted. The table does not name
containers: the container statuses it implies (READY `r/m`: m containers, r of them ready; the
one STATUS names first, with the pod's RESTARTS total and, from `5 (2m13s ago)`, its last
termination's `finishedAt`) carry no `name`. Pure: no clock.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import msgspec

from collectors.kubetables import TextError, cells, fragment, header_columns, kind_of, parse_age, rfc3339

__all__ = ["GetRow", "get_object", "is_get_header", "parse_get_table", "table_kind"]

_WORKLOAD_WIDE = frozenset({"CONTAINERS", "IMAGES", "SELECTOR"})
#: kind -> (the columns its header always has, the columns it may add)
_TABLES: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "Pod": (frozenset({"NAME", "READY", "STATUS", "RESTARTS", "AGE"}),
            frozenset({"NAMESPACE", "IP", "NODE", "NOMINATED NODE", "READINESS GATES"})),
    "Node": (frozenset({"NAME", "STATUS", "ROLES", "AGE", "VERSION"}),
             frozenset({"INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME"})),
    "Deployment": (frozenset({"NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"}), _WORKLOAD_WIDE | {"NAMESPACE"}),
    "ReplicaSet": (frozenset({"NAME", "DESIRED", "CURRENT", "READY", "AGE"}), _WORKLOAD_WIDE | {"NAMESPACE"}),
    "StatefulSet": (frozenset({"NAME", "READY", "AGE"}), frozenset({"NAMESPACE", "CONTAINERS", "IMAGES"})),
    "DaemonSet": (frozenset({"NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE SELECTOR",
                             "AGE"}), _WORKLOAD_WIDE | {"NAMESPACE"}),
    "Job": (frozenset({"NAME", "COMPLETIONS", "DURATION", "AGE"}), _WORKLOAD_WIDE | {"NAMESPACE", "STATUS"}),
}

#: what kubectl's pod printer shows, by where it comes from
POD_PHASES = frozenset({"Pending", "Running", "Succeeded", "Failed", "Unknown"})
#: pod.status.reason values (the kubelet's admission and eviction, the node controller); `OutOf<resource>` too
POD_REASONS = frozenset({"Evicted", "NodeLost", "NodeAffinity", "Shutdown", "Terminated", "UnexpectedAdmissionError",
                         "InvalidNodeInfo", "PodOSNotSupported", "PodOSSelectorNodeLabelDoesNotMatch",
                         "SysctlForbidden", "AppArmor", "Preempting", "NodeShutdown"})
TERMINATED_REASONS = frozenset({"Completed", "Error", "OOMKilled", "ContainerCannotRun", "DeadlineExceeded",
                                "ContainerStatusUnknown", "StartError"})
#: waiting reasons that come after the container ran (the pod is Running); the others precede a first start
_WAITING_AFTER_RUN = frozenset({"CrashLoopBackOff", "RunContainerError"})
_EXIT = re.compile(r"(ExitCode|Signal):(-?\d+)")
_INIT_PROGRESS = re.compile(r"Init:(\d+)/(\d+)")
_FRACTION = re.compile(r"(\d+)/(\d+)")
_RESTARTS = re.compile(r"(\d+)(?: \((\S+) ago\))?")
_COMPLETIONS = re.compile(r"(\d+)/(\d+)(?: of (\d+))?")
_NAME = re.compile(r"[a-z0-9]([-a-z0-9.:]*[a-z0-9])?")
_JOB_STATUS = {"Complete": "Complete", "Failed": "Failed", "Suspended": "Suspended", "FailureTarget": "FailureTarget",
               "SuccessCriteriaMet": "SuccessCriteriaMet"}
_NONE = ("<none>", "<unknown>", "")


class GetRow(msgspec.Struct, kw_only=True):
    """One row of a `kubectl get` table: its object, by kind, and the cells under each header."""

    line: int
    kind: str
    name: str
    namespace: str = ""
    age: timedelta | None = None  # how long before the capture it was created (None: not shown)
    cells: dict[str, str] = {}

    @property
    def table(self) -> str:
        """How the table was printed: `kubectl get pods`."""
        return f"kubectl get {self.kind.lower()}s"


def table_kind(line: str) -> str:
    """The kind whose `kubectl get` table this header line heads, or "" if it is none of them."""
    if not line or line[0].isspace():
        return ""
    names = {name for name, _ in header_columns(line)}
    first = header_columns(line)[0][0] if names else ""
    if first not in ("NAME", "NAMESPACE"):
        return ""
    for kind, (needed, extra) in _TABLES.items():
        if needed <= names <= needed | extra:
            return kind
    return ""


def is_get_header(line: str) -> bool:
    return bool(table_kind(line))


def parse_get_table(lines: list[tuple[int, str]], namespace: str = "") -> list[GetRow | TextError]:
    """The rows of one `kubectl get` table: `lines[0]` is its header (see `table_kind`).

    `namespace` is the namespace of a table without a NAMESPACE column (`kubectl get pods -n x`);
    "" leaves it unknown.
    """
    header = lines[0][1]
    kind = table_kind(header)
    columns = header_columns(header)
    out: list[GetRow | TextError] = []
    for number, line in lines[1:]:
        if not line.strip():
            continue
        row = cells(line, columns)
        if row is None:
            out.append(TextError(number, f"{kind.lower()}s row not aligned with the table header (garbled or cut)",
                                 fragment(line)))
            continue
        try:
            out.append(_row(number, kind, row, namespace))
        except ValueError as exc:
            out.append(TextError(number, f"{kind.lower()}s row: {exc}", fragment(line)))
    return out


def _row(number: int, kind: str, row: dict[str, str], namespace: str) -> GetRow:
    name = row["NAME"]
    if "/" in name:  # `kubectl get all`: deployment.apps/web
        shown, _, name = name.partition("/")
        if kind_of(shown)[0] != kind:
            raise ValueError(f"NAME {row['NAME']!r} is not a {kind}")
    if not _NAME.fullmatch(name):
        raise ValueError(f"NAME {row['NAME']!r} is not an object name")
    ns = row.get("NAMESPACE", namespace) if kind != "Node" else ""
    if ns and not _NAME.fullmatch(ns):
        raise ValueError(f"NAMESPACE {ns!r} is not a namespace name")
    age = parse_age(row["AGE"])
    return GetRow(line=number, kind=kind, name=name, namespace=ns, age=age,
                  cells={k: ("" if v in _NONE else v) for k, v in row.items()})


# -- a row -> the object -------------------------------------------------------------------


def get_object(row: GetRow, now: datetime) -> dict[str, Any]:
    """The object a row shows, as the API would serve it with only those fields; `now` is the
    capture time its AGE counts back from. ValueError when a cell does not read as its column."""
    _, api_version, _ = kind_of(row.kind)
    meta: dict[str, Any] = {"name": row.name}
    if row.namespace:
        meta["namespace"] = row.namespace
    if row.age is not None:
        meta["creationTimestamp"] = rfc3339(now - row.age)
    obj: dict[str, Any] = {"apiVersion": api_version, "kind": row.kind, "metadata": meta}
    build = {"Pod": _pod, "Node": _node, "Job": _job}.get(row.kind, _workload)
    build(obj, row.cells, now)
    return obj


def _count(text: str, column: str) -> int:
    if not text.isdigit():
        raise ValueError(f"{column} {text!r} is not a number")
    return int(text)


def _fraction(text: str, column: str) -> tuple[int, int]:
    match = _FRACTION.fullmatch(text)
    if match is None:
        raise ValueError(f"{column} {text!r} is not n/m")
    return int(match.group(1)), int(match.group(2))


def _nonzero(target: dict[str, Any], **values: int) -> None:
    """The API leaves a zero count out (`omitempty`)."""
    target.update({k: v for k, v in values.items() if v})


def _pod(obj: dict[str, Any], row: dict[str, str], now: datetime) -> None:
    ready, total = _fraction(row["READY"], "READY")
    match = _RESTARTS.fullmatch(row["RESTARTS"])
    if match is None:
        raise ValueError(f"RESTARTS {row['RESTARTS']!r} is not a count (`5` or `5 (2m13s ago)`)")
    restarts = int(match.group(1))
    last_age = parse_age(match.group(2)) if match.group(2) else None
    shown = row["STATUS"]
    if not shown or " " in shown:
        raise ValueError(f"STATUS {shown!r} is not one word")
    spec: dict[str, Any] = {}
    status: dict[str, Any] = {}
    if row.get("NODE"):
        spec["nodeName"] = row["NODE"]
    if row.get("IP"):
        status["podIP"] = row["IP"]
    if row.get("NOMINATED NODE"):
        status["nominatedNodeName"] = row["NOMINATED NODE"]

    def restarted(cs: dict[str, Any]) -> dict[str, Any]:
        cs["restartCount"] = restarts
        if last_age is not None:
            cs["lastState"] = {"terminated": {"finishedAt": rfc3339(now - last_age)}}
        return cs

    def others(count: int) -> list[dict[str, Any]]:
        """The containers STATUS does not speak of: `ready` of them ready (and so running)."""
        return [{"ready": True, "restartCount": 0, "state": {"running": {}}} if i < ready else
                {"ready": False, "restartCount": 0, "state": {}} for i in range(count)]

    statuses: list[dict[str, Any]] = []
    if shown.startswith("Init:"):
        status["phase"] = "Pending"
        status["initContainerStatuses"] = _init_statuses(shown[len("Init:"):], restarted)
    elif shown in ("Running", "NotReady"):  # NotReady: running, the pod's Ready condition not True
        status["phase"] = "Running"
        statuses = [{"ready": i < ready, "restartCount": 0, "state": {"running": {}}} for i in range(total)]
        if statuses:
            restarted(next((cs for cs in statuses if not cs["ready"]), statuses[0]))
    elif shown in POD_PHASES:
        status["phase"] = shown
        statuses = others(total) if ready else []
    elif shown == "SchedulingGated":  # the printer reads it off the PodScheduled condition
        status["phase"] = "Pending"
        status["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]
    elif shown == "Terminating":
        meta = obj["metadata"]
        meta["deletionTimestamp"] = rfc3339(now)  # deleted at or before the capture (the table says no more)
        statuses = others(total) if ready else []
    elif shown in POD_REASONS or shown.startswith("OutOf"):
        status["reason"] = shown
        if shown != "NodeLost":
            status["phase"] = "Failed"  # the kubelet rejected or evicted it
        statuses = others(total) if ready else []
    else:
        state = _container_state(shown)
        if "terminated" in state:
            # restarted: restartPolicy Always/OnFailure runs it again (even after exit 0: the pod stays Running)
            status["phase"] = "Running" if restarts else "Succeeded" if shown == "Completed" else "Failed"
        else:
            status["phase"] = "Running" if restarts or shown in _WAITING_AFTER_RUN else "Pending"
        statuses = [restarted({"ready": False, "state": state}), *others(max(total - 1, 0))]
    if statuses:
        status["containerStatuses"] = statuses
    if spec:
        obj["spec"] = spec
    obj["status"] = status


def _container_state(reason: str) -> dict[str, Any]:
    """The state a container reason stands for: terminated (`Error`, `ExitCode:1`...) or waiting."""
    exit_ = _EXIT.fullmatch(reason)
    if exit_:
        key = "exitCode" if exit_.group(1) == "ExitCode" else "signal"
        return {"terminated": {key: int(exit_.group(2))}}
    if reason in TERMINATED_REASONS:
        term: dict[str, Any] = {"reason": reason}
        if reason == "Completed":
            term["exitCode"] = 0  # the kubelet says Completed for exit code 0 only
        return {"terminated": term}
    if not re.fullmatch(r"[A-Z][A-Za-z]*", reason):
        raise ValueError(f"STATUS {reason!r} is not a pod status kubectl prints")
    return {"waiting": {"reason": reason}}


def _init_statuses(shown: str, restarted: Any) -> list[dict[str, Any]]:
    progress = _INIT_PROGRESS.fullmatch(f"Init:{shown}")
    if progress:  # Init:1/3: one init container done, the next one running or about to
        done, total = int(progress.group(1)), int(progress.group(2))
        return [{"ready": False, "restartCount": 0, "state": {"terminated": {"reason": "Completed", "exitCode": 0}}}
                if i < done else {"ready": False, "restartCount": 0, "state": {}} for i in range(total)]
    return [restarted({"ready": False, "state": _container_state(shown)})]


def _node(obj: dict[str, Any], row: dict[str, str], now: datetime) -> None:
    parts = row["STATUS"].split(",")
    ready = {"Ready": "True", "NotReady": "False", "Unknown": "Unknown"}.get(parts[0])
    if ready is None or any(p != "SchedulingDisabled" for p in parts[1:]):
        raise ValueError(f"STATUS {row['STATUS']!r} is not a node status (Ready, NotReady, ...,SchedulingDisabled)")
    roles = [r for r in row["ROLES"].split(",") if r]
    if roles:
        obj["metadata"]["labels"] = {f"node-role.kubernetes.io/{r}": "" for r in roles}
    if "SchedulingDisabled" in parts[1:]:
        obj["spec"] = {"unschedulable": True}
    info = {key: row[column] for column, key in (("VERSION", "kubeletVersion"), ("OS-IMAGE", "osImage"),
                                                 ("KERNEL-VERSION", "kernelVersion"),
                                                 ("CONTAINER-RUNTIME", "containerRuntimeVersion")) if row.get(column)}
    status: dict[str, Any] = {"conditions": [{"type": "Ready", "status": ready}], "nodeInfo": info}
    addresses = [{"type": kind, "address": row[column]} for column, kind in
                 (("INTERNAL-IP", "InternalIP"), ("EXTERNAL-IP", "ExternalIP")) if row.get(column)]
    if addresses:
        status["addresses"] = addresses
    obj["status"] = status


def _pairs(text: str) -> dict[str, str] | None:
    """`app=web,tier=api` -> its labels; None when it holds set-based terms (`app in (a,b)`)."""
    if not text:
        return {}
    out = {}
    for part in text.split(","):
        key, eq, value = part.partition("=")
        if not eq or not key or " " in part:
            return None
        out[key] = value
    return out


def _template(obj: dict[str, Any], row: dict[str, str]) -> None:
    """-o wide: CONTAINERS and IMAGES (comma-separated, in order), SELECTOR."""
    spec = obj.setdefault("spec", {})
    names, images = row.get("CONTAINERS", "").split(","), row.get("IMAGES", "").split(",")
    if row.get("CONTAINERS") and len(names) == len(images):
        spec["template"] = {"spec": {"containers": [{"name": n, "image": i} for n, i in zip(names, images,
                                                                                           strict=True)]}}
    selector = _pairs(row.get("SELECTOR", ""))
    if selector:
        spec["selector"] = {"matchLabels": selector}


def _workload(obj: dict[str, Any], row: dict[str, str], now: datetime) -> None:
    kind = obj["kind"]
    spec: dict[str, Any] = {}
    status: dict[str, Any] = {}
    obj["spec"], obj["status"] = spec, status
    if kind in ("Deployment", "StatefulSet"):
        ready, desired = _fraction(row["READY"], "READY")
        spec["replicas"] = desired
        _nonzero(status, readyReplicas=ready)
        if kind == "Deployment":
            _nonzero(status, updatedReplicas=_count(row["UP-TO-DATE"], "UP-TO-DATE"),
                     availableReplicas=_count(row["AVAILABLE"], "AVAILABLE"))
    elif kind == "ReplicaSet":
        spec["replicas"] = _count(row["DESIRED"], "DESIRED")
        _nonzero(status, replicas=_count(row["CURRENT"], "CURRENT"), readyReplicas=_count(row["READY"], "READY"))
    else:  # DaemonSet: its counts are of nodes
        status.update(desiredNumberScheduled=_count(row["DESIRED"], "DESIRED"),
                      currentNumberScheduled=_count(row["CURRENT"], "CURRENT"),
                      numberReady=_count(row["READY"], "READY"))
        _nonzero(status, updatedNumberScheduled=_count(row["UP-TO-DATE"], "UP-TO-DATE"),
                 numberAvailable=_count(row["AVAILABLE"], "AVAILABLE"))
        selector = _pairs(row["NODE SELECTOR"])
        if selector:
            spec.setdefault("template", {}).setdefault("spec", {})["nodeSelector"] = selector
    _template(obj, row)


def _job(obj: dict[str, Any], row: dict[str, str], now: datetime) -> None:
    match = _COMPLETIONS.fullmatch(row["COMPLETIONS"])
    if match is None:
        raise ValueError(f"COMPLETIONS {row['COMPLETIONS']!r} is not n/m (or n/1 of p)")
    succeeded, completions, parallelism = match.groups()
    spec: dict[str, Any] = {"parallelism": int(parallelism)} if parallelism else {"completions": int(completions)}
    status: dict[str, Any] = {}
    _nonzero(status, succeeded=int(succeeded))
    shown = row.get("STATUS", "")
    if shown in _JOB_STATUS:
        status["conditions"] = [{"type": _JOB_STATUS[shown], "status": "True"}]
        if shown == "Suspended":
            spec["suspend"] = True
    elif shown == "SchedulingGated":  # the printer reads it off the PodScheduled condition
        status["phase"] = "Pending"
        status["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]
    elif shown == "Terminating":
        obj["metadata"]["deletionTimestamp"] = rfc3339(now)
    elif shown not in ("", "Running"):
        raise ValueError(f"STATUS {shown!r} is not a job status (Running, Complete, Failed, Suspended...)")
    obj["spec"], obj["status"] = spec, status
    _template(obj, row)
