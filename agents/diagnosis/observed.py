"""What a recording (or the live stream) shows of each object: its last state, its Events, its logs.

Fed by: RawEvents as every reader and collector makes them (`type` "kubeapi": objects as the API
serves them, and core/v1 or events.k8s.io Events; `type` "logs": container-log lines that carry a
signal; ROLLOUT events of a Deployment's revisions). Feeds: every diagnosis family
(`agents.diagnosis.*`), which read objects, Events and log lines by object.

Pure: no clock, no I/O. `end` is the newest time the input shows (what "still failing at the end"
is measured against); an object seen several times keeps its newest state.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any, NamedTuple

import msgspec

from core.events import RawEvent
from core.kube.owners import workload_of as workload_of_kind
from core.kube.rollouts import rollouts
from core.kube.status import owner

ROLLOUT = "ROLLOUT"
#: a failure whose last sign is this close to the end of the input is ongoing (the kubelet refreshes
#: a repeating Event at least every few minutes while it goes on)
RECENT_S = 300
_REPLICASET = re.compile(r"ReplicaSet ([a-z0-9][-a-z0-9.]*)\)$")


class ObjectKey(NamedTuple):
    """A Kubernetes object by kind, namespace ("" for cluster-scoped kinds) and name."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}" if self.namespace else f"{self.kind}/{self.name}"

    @property
    def short(self) -> str:
        """How a person names it in prose: `pod web-1 in namespace shop`."""
        where = f" in namespace {self.namespace}" if self.namespace else ""
        return f"{self.kind.lower()} {self.name}{where}"


class Seen(msgspec.Struct, kw_only=True):
    """An object's newest state in the input and where it was read."""

    key: ObjectKey
    obj: dict[str, Any]
    at: datetime
    source: str
    action: str


class KubeEvent(msgspec.Struct, kw_only=True, frozen=True):
    """A Kubernetes Event about one object (the kubelet's, the scheduler's, a controller's)."""

    about: ObjectKey
    reason: str
    type: str  # Normal / Warning
    message: str
    count: int
    at: datetime  # its newest occurrence
    source: str
    component: str = ""
    node: str = ""  # the node that reported it (a kubelet's Events)
    field_path: str = ""  # spec.containers{name} for container-level Events
    uid: str = ""  # the Event object's own uid: its observations (count 1, 2, 3...) are one Event

    @property
    def container(self) -> str:
        """The container a kubelet Event names through its field path (`spec.containers{web}`)."""
        if "{" in self.field_path and self.field_path.endswith("}"):
            return self.field_path.rsplit("{", 1)[1][:-1]
        return ""


class LogLine(msgspec.Struct, kw_only=True, frozen=True):
    """One container-log line that carries a signal (`core/kube/vocabulary/log_signals.yaml`)."""

    pod: ObjectKey
    container: str
    previous: bool
    signal: str
    signals: tuple[str, ...]
    text: str
    at: datetime
    source: str


class Rollout(msgspec.Struct, kw_only=True, frozen=True):
    """A Deployment revision whose pod template differs from the revision before it."""

    deployment: ObjectKey
    replicaset: ObjectKey
    message: str  # the template diff, in prose
    at: datetime
    source: str
    keys: tuple[str, ...] = ()  # the template keys it changed (`core.kube.changes`), when known


class Observed(msgspec.Struct, kw_only=True):
    objects: dict[ObjectKey, Seen] = {}
    events: dict[ObjectKey, list[KubeEvent]] = {}
    logs: dict[ObjectKey, list[LogLine]] = {}
    rollouts: list[Rollout] = []
    end: datetime | None = None

    def of_kind(self, kind: str) -> Iterator[Seen]:
        return (seen for key, seen in sorted(self.objects.items()) if key.kind == kind)

    def get(self, kind: str, namespace: str, name: str) -> Seen | None:
        return self.objects.get(ObjectKey(kind, namespace, name))

    def events_of(self, key: ObjectKey) -> list[KubeEvent]:
        return self.events.get(key, [])

    def warnings_of(self, key: ObjectKey) -> list[KubeEvent]:
        return [e for e in self.events_of(key) if e.type == "Warning"]

    def logs_of(self, pod: ObjectKey, container: str = "") -> list[LogLine]:
        return [line for line in self.logs.get(pod, []) if not container or line.container == container]

    def recent(self, at: datetime, seconds: float = RECENT_S) -> bool:
        """Within the last `seconds` (RECENT_S) of the input: a failure seen then is still going on."""
        return self.end is None or (self.end - at).total_seconds() <= seconds

    def subjects(self) -> list[ObjectKey]:
        """Every object the input shows, as an object or as the subject of an Event, sorted."""
        return sorted(set(self.objects) | set(self.events))


def observe(events: Iterable[RawEvent]) -> Observed:
    """Fold RawEvents into the newest state of each object, its Events and its log lines."""
    out = Observed(objects={}, events={}, logs={}, rollouts=[])
    end: datetime | None = None
    for raw in events:
        md = raw.metadata
        action = md.get("action", "")
        if raw.type == "logs":
            _add_log(out, raw)
        elif action == ROLLOUT:
            _add_rollout(out, raw)
        elif action == "EVENT":
            _add_event(out, raw)
        elif raw.type == "kubeapi" and md.get("kind"):
            _add_object(out, raw, action)
        else:
            continue
        end = raw.timestamp if end is None or raw.timestamp > end else end
    out.end = end
    _join_namespaces(out)
    _add_replicaset_rollouts(out)
    return out


def _add_replicaset_rollouts(out: Observed) -> None:
    """The rollouts the ReplicaSets held show (`core.kube.rollouts`), where no ROLLOUT event (a
    recording's, read by `collectors.bundles`) said them already: the live stage holds objects only."""
    told = {(r.deployment, r.replicaset) for r in out.rollouts}
    for r in rollouts((seen.obj, seen.source) for seen in out.of_kind("ReplicaSet")):
        found = Rollout(deployment=ObjectKey("Deployment", r.namespace, r.deployment),
                        replicaset=ObjectKey("ReplicaSet", r.namespace, r.replicaset), message=r.message, at=r.at,
                        source=r.source, keys=tuple(c.key for c in r.changes))
        if (found.deployment, found.replicaset) not in told:
            out.rollouts.append(found)


def _join_namespaces(out: Observed) -> None:
    """An events table of one namespace (or a log file) names no namespace: its Events and lines
    belong to the one object of that kind and name the input shows in a namespace."""
    by_name: dict[tuple[str, str], list[ObjectKey]] = {}
    for key in out.objects:
        by_name.setdefault((key.kind, key.name), []).append(key)
    for table in (out.events, out.logs):
        for key in [k for k in table if not k.namespace]:
            found = by_name.get((key.kind, key.name), [])
            if len(found) == 1 and found[0].namespace:
                moved = table.pop(key)
                target = found[0]
                if table is out.events:
                    moved = [msgspec.structs.replace(e, about=target) for e in moved]  # type: ignore[attr-defined]
                else:
                    moved = [msgspec.structs.replace(line, pod=target) for line in moved]  # type: ignore[attr-defined]
                table.setdefault(target, []).extend(moved)  # type: ignore[arg-type]


def key_of(raw: RawEvent) -> ObjectKey:
    """The object a RawEvent is about: an Event's involved object, else the object itself."""
    md = raw.metadata
    if md.get("action") == "EVENT":
        return ObjectKey(md.get("involved_kind", ""), md.get("involved_namespace", "") or md.get("namespace", ""),
                         md.get("involved_name", ""))
    return ObjectKey(md.get("kind", ""), md.get("namespace", ""), md.get("name", ""))


#: decoded objects by event id (ids are content hashes): the live stage folds the same objects again
#: every second it diagnoses their namespace; decoding them once is enough. Read-only: nothing here
#: writes into an object.
_DECODED: dict[str, Any] = {}
_DECODED_MAX = 50_000


def _decoded(raw: RawEvent) -> Any:
    if raw.id not in _DECODED:
        if len(_DECODED) >= _DECODED_MAX:
            _DECODED.clear()
        try:
            _DECODED[raw.id] = msgspec.json.decode(raw.data)
        except msgspec.DecodeError:
            _DECODED[raw.id] = None
    return _DECODED[raw.id]


def _add_object(out: Observed, raw: RawEvent, action: str) -> None:
    md = raw.metadata
    key = key_of(raw)
    if action == "DELETED":
        out.objects.pop(key, None)
        return
    obj = _decoded(raw)
    if not isinstance(obj, dict):
        return
    before = out.objects.get(key)
    if before is None or raw.timestamp >= before.at:
        out.objects[key] = Seen(key=key, obj=obj, at=raw.timestamp, source=md.get("source", ""), action=action)


def _add_event(out: Observed, raw: RawEvent) -> None:
    md = raw.metadata
    about = key_of(raw)
    if not about.kind:
        return
    field_path = ""
    if about.kind == "Pod" and raw.data:
        obj = _decoded(raw)
        if isinstance(obj, dict):
            involved = obj.get("involvedObject") or obj.get("regarding") or {}
            field_path = str(involved.get("fieldPath") or "") if isinstance(involved, dict) else ""
    try:
        count = int(md.get("count") or 1)
    except ValueError:
        count = 1
    event = KubeEvent(
        about=about, reason=md.get("reason", ""), type=md.get("event_type", ""), message=md.get("message", ""),
        count=count, at=raw.timestamp, source=md.get("source", ""), component=md.get("reporting_component", ""),
        node=md.get("node", ""), field_path=field_path, uid=md.get("uid", ""))
    kept = out.events.setdefault(about, [])
    # a watch sees one Event again at each count (x1, x2, x3...): its newest observation stands for it,
    # so a sum of counts counts each occurrence once
    same = next((i for i, e in enumerate(kept) if event.uid and e.uid == event.uid), None)
    if same is None:
        kept.append(event)
    elif (event.at, event.count) >= (kept[same].at, kept[same].count):
        kept[same] = event


def _add_log(out: Observed, raw: RawEvent) -> None:
    md = raw.metadata
    pod = ObjectKey("Pod", md.get("namespace", ""), md.get("name", ""))
    signals = tuple(s for s in md.get("signals", md.get("signal", "")).split(",") if s)
    out.logs.setdefault(pod, []).append(LogLine(
        pod=pod, container=md.get("container", ""), previous=md.get("previous") == "true",
        signal=md.get("signal", ""), signals=signals, text=md.get("message", "") or raw.data.decode("utf-8", "replace"),
        at=raw.timestamp, source=md.get("source", "")))


def _add_rollout(out: Observed, raw: RawEvent) -> None:
    md = raw.metadata
    namespace = md.get("namespace", "")
    message = md.get("message", "")
    found = _REPLICASET.search(message)
    out.rollouts.append(Rollout(
        deployment=ObjectKey("Deployment", namespace, md.get("name", "")),
        replicaset=ObjectKey("ReplicaSet", namespace, found.group(1) if found else ""),
        message=message, at=raw.timestamp, source=md.get("source", ""),
        keys=tuple(k for k in md.get("keys", "").split(",") if k)))


def workload_of(observed: Observed, pod: ObjectKey) -> ObjectKey | None:
    """The workload a pod counts for (`core.kube.owners.workload_of`: a ReplicaSet rolls up to its
    Deployment, a Job stays its own); None for a bare pod, which is only itself."""
    def owner_of(kind: str, name: str) -> tuple[str, str] | None:
        seen = observed.objects.get(ObjectKey(kind, pod.namespace, name))
        return owner(seen.obj) if seen else None

    found = workload_of_kind(pod.kind, pod.name, owner_of=owner_of)
    if found is None or found == (pod.kind, pod.name):
        return None
    return ObjectKey(found[0], pod.namespace, found[1])


def pods_of(observed: Observed, workload: ObjectKey) -> list[ObjectKey]:
    """The pods the input shows for a workload (through their owners)."""
    return [key for key in observed.objects if key.kind == "Pod" and key.namespace == workload.namespace
            and (workload_of(observed, key) == workload
                 or (workload.kind == "ReplicaSet" and (owner(observed.objects[key].obj) or ("", ""))[1]
                     == workload.name))]
