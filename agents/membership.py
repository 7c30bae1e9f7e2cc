"""What the match stage knows about where an event belongs: a pod's node, workload, ConfigMaps, Services.

Fed by: the object observations in the unified stream (Pods, ReplicaSets, Services, ConfigMaps,
Secrets, workloads), in stream order. Feeds: the scope keys of hits (`agents.hits`).

A Kubernetes Event about a Pod names only the Pod; to count it for "the Deployment", "the node"
or "the ConfigMap the pod mounts", the match stage keeps one small record per object, learned
from the objects that went by earlier in the same partition (one namespace stays on one
partition, so a pod and its Events meet in order). It also tells an edit from a status update:
a MODIFIED ConfigMap or workload whose `content_hash` did not change is not a change.

The Kubernetes facts are not modelled here: the workload roll-up is `core.kube.owners`, Service
selection `core.kube.selectors` and a pod's ConfigMaps `core.kube.refs` (read by the enrich stage),
the same the topology's graph is built from. This module keeps only what the match stage learned.

Pure: the records live in any mutable mapping (a dict offline, a RocksDB-backed Faust table in
the worker), keyed `namespace/Kind/name`; values are msgspec Structs.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import MutableMapping

import msgspec

from core.events import UnifiedEvent
from core.kube import owners
from core.kube.owners import WORKLOAD_KINDS
from core.kube.selectors import LabelSelector

TRACKED_KINDS = WORKLOAD_KINDS | {"Pod", "Service", "ConfigMap", "Secret"}
CONTENT_KINDS = frozenset({"ConfigMap", "Secret", "Deployment", "StatefulSet", "DaemonSet"})
#: the endpoints of a Service: an Endpoints is named after its Service, an EndpointSlice labelled with it
ENDPOINT_KINDS = frozenset({"Endpoints", "EndpointSlice"})
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


class Member(msgspec.Struct, frozen=True, kw_only=True, gc=False, omit_defaults=True):
    """What one object contributes to scope keys."""

    uid: str = ""
    node: str = ""
    owner: str = ""  # "Kind/name" of the controlling owner
    refs: list[str] = []
    labels: dict[str, str] = {}
    selector: dict[str, str] = {}
    content_hash: str = ""
    previous_hash: str = ""  # the content before its last edit: an edit back to it is a revert
    restarts: int = -1  # a pod's container restarts at its last observation (-1: unknown)
    status: str = ""  # a pod's container reason and exit code at its last observation
    seen: list[int] = []  # the last SEEN_KEEP observations: (56-bit hash of the event id << 1) | news


class ServiceIndex(msgspec.Struct, frozen=True, kw_only=True, gc=False, omit_defaults=True):
    """Every Service of one namespace with its selector (key `namespace/Service/*`)."""

    selectors: dict[str, dict[str, str]] = {}


Store = MutableMapping[str, msgspec.Struct]

#: observations of one object whose verdict (news or not) is remembered. Delivery is at least once:
#: after a worker restart or a Kafka loss the same observations come again, behind the newest one
#: the record holds. Judged again against it, a pod's OOM kill or a ConfigMap's edit would no longer
#: be news and its hit would be lost; recognised, each gets the verdict it had, and the record is
#: left as it is. An object's observations delivered again beyond its last SEEN_KEEP are judged again.
SEEN_KEEP = 32


def member_key(namespace: str, kind: str, name: str) -> str:
    return f"{namespace}/{kind}/{name}"


def services_key(namespace: str) -> str:
    return f"{namespace}/Service/*"


def _set(store: Store, key: str, value: msgspec.Struct) -> None:
    if store.get(key) != value:  # a table write is a changelog record: only on change
        store[key] = value


#: a controller's own Events name what it created: "Created pod: web-7c9f-x2x1z" (ReplicaSet,
#: Job, DaemonSet, StatefulSet), "Created job nightly-2907" (CronJob), "Scaled up replica set
#: web-7c9f to 3" / "Scaled down replica set web-6b8d from 2 to 1" (Deployment)
_CREATED = re.compile(r"^Created (pod|job):? (\S+)")
_SCALED = re.compile(r"^Scaled (?:up|down) replica set (\S+) (?:to|from) ")


def learn_from_event(store: Store, event: UnifiedEvent) -> None:
    """Ownership a controller's Event states, for objects never seen as objects (an events-only
    recording, or an Event that overtook its pod). An owner an observation gave is kept."""
    k8s, kube = event.k8s, event.kubernetes
    if k8s is None or kube is None:
        return
    child = ""
    if kube.reason == "SuccessfulCreate" and k8s.kind in WORKLOAD_KINDS:
        found = _CREATED.match(kube.message)
        if found:
            child = ("Pod" if found.group(1) == "pod" else "Job") + "/" + found.group(2)
    elif kube.reason == "ScalingReplicaSet" and k8s.kind == "Deployment":
        found = _SCALED.match(kube.message)
        if found:
            child = "ReplicaSet/" + found.group(1)
    if not child:
        return
    kind, _, name = child.partition("/")
    key = member_key(k8s.namespace, kind, name)
    previous = store.get(key)
    if isinstance(previous, Member):
        if not previous.owner:
            _set(store, key, msgspec.structs.replace(previous, owner=f"{k8s.kind}/{k8s.name}"))
    else:
        _set(store, key, Member(owner=f"{k8s.kind}/{k8s.name}"))


def learn(store: Store, event: UnifiedEvent) -> bool:
    """Record what an object observation says; True when the observation is news, not a repeat.

    News is: a ConfigMap, Secret or workload whose content changed since its previous
    observation (a MODIFIED with the same content is a status or metadata update; one back to the
    content it had before its last edit is a revert, a remedy, not news), or a Pod
    whose container restarts went up or whose container reason / exit code changed (a new
    termination, including a Job pod's single one; the same `lastState: OOMKilled` seen again
    at the next status update is not a new OOM kill). A first
    observation is news for a Pod (nothing says the termination it shows was seen) and not for
    the others (nothing to compare with). Only ADDED/MODIFIED/SNAPSHOT/DELETED teach anything.
    """
    k8s, kube = event.k8s, event.kubernetes
    if k8s is not None and kube is not None and kube.action == "EVENT" and \
            kube.reason in ("SuccessfulCreate", "ScalingReplicaSet"):
        learn_from_event(store, event)
        return False
    if k8s is None or kube is None or kube.action not in ("ADDED", "MODIFIED", "SNAPSHOT", "DELETED"):
        return False
    if k8s.kind not in TRACKED_KINDS:
        return False
    key = member_key(k8s.namespace, k8s.kind, k8s.name)
    previous = store.get(key)
    if not isinstance(previous, Member) or (previous.uid and k8s.uid and previous.uid != k8s.uid):
        previous = None  # never seen, or a new object under an old name (a recreated StatefulSet pod)
    mark = _mark(event.id)
    for seen in previous.seen if previous is not None and kube.action != "DELETED" else ():
        if seen >> 1 == mark:
            return bool(seen & 1)  # delivered again: the verdict it had, the record unchanged
    if kube.action == "DELETED":
        if k8s.kind == "Service":
            _forget_service(store, k8s.namespace, k8s.name)
        if key in store:
            del store[key]
        return False
    owner = f"{k8s.owner.kind}/{k8s.owner.name}" if k8s.owner else ""
    member = Member(uid=k8s.uid, node=k8s.node, owner=owner, refs=k8s.refs,
                    labels=k8s.labels if k8s.kind == "Pod" else {}, selector=k8s.selector,
                    content_hash=kube.content_hash, restarts=kube.restart_count if k8s.kind == "Pod" else -1,
                    status=f"{kube.container_reason}/{kube.exit_code}" if k8s.kind == "Pod" else "")
    if k8s.kind == "Pod":
        news = (previous is None or previous.restarts < 0 or kube.restart_count > previous.restarts
                or member.status != previous.status)
    else:
        news = False
        if (k8s.kind in CONTENT_KINDS and kube.action == "MODIFIED" and previous is not None
                and bool(kube.content_hash) and previous.content_hash != kube.content_hash):
            # an edit back to the content before the last edit (a rollout undo, a ConfigMap restored)
            # remedies: no change a failure can follow from
            news = kube.content_hash != previous.previous_hash
            member = msgspec.structs.replace(member, previous_hash=previous.content_hash)
    seen = [*(previous.seen[1 - SEEN_KEEP:] if previous is not None else ()), mark << 1 | news]
    if previous is not None:  # keep what a thinner observation lacks (a status-only watch line)
        member = msgspec.structs.replace(
            member, uid=member.uid or previous.uid, node=member.node or previous.node,
            owner=member.owner or previous.owner, refs=member.refs or previous.refs,
            content_hash=member.content_hash or previous.content_hash,
            previous_hash=member.previous_hash or previous.previous_hash)
    _set(store, key, msgspec.structs.replace(member, seen=seen))
    if k8s.kind == "Service":
        index = store.get(services_key(k8s.namespace))
        selectors = dict(index.selectors) if isinstance(index, ServiceIndex) else {}
        selectors[k8s.name] = k8s.selector
        _set(store, services_key(k8s.namespace), ServiceIndex(selectors=selectors))
    return news


def _mark(event_id: str) -> int:
    """A 56-bit hash of an event id (stored in 8 bytes of MessagePack)."""
    return int.from_bytes(hashlib.blake2b(event_id.encode(), digest_size=7).digest(), "big")


def _forget_service(store: Store, namespace: str, name: str) -> None:
    index = store.get(services_key(namespace))
    if isinstance(index, ServiceIndex) and name in index.selectors:
        selectors = {k: v for k, v in index.selectors.items() if k != name}
        _set(store, services_key(namespace), ServiceIndex(selectors=selectors))


def _get(store: Store, namespace: str, kind: str, name: str) -> Member | None:
    found = store.get(member_key(namespace, kind, name))
    return found if isinstance(found, Member) else None


def workload_of(store: Store, namespace: str, kind: str, name: str) -> tuple[str, str] | None:
    """(kind, name) of the workload an object counts for (`core.kube.owners.workload_of`), by the
    owners learned so far: a pod's owner, a ReplicaSet's Deployment; a pod with no known owner is
    its own workload."""
    def owner_of(kind: str, name: str) -> tuple[str, str] | None:
        member = _get(store, namespace, kind, name)
        if member is None or not member.owner:
            return None
        owner_kind, _, owner_name = member.owner.partition("/")
        return owner_kind, owner_name

    return owners.workload_of(kind, name, owner_of=owner_of)


def node_of(store: Store, event: UnifiedEvent) -> str:
    k8s = event.k8s
    if k8s is None:
        return ""
    if k8s.kind == "Node":
        return k8s.name
    if k8s.kind == "Pod":
        pod = _get(store, k8s.namespace, "Pod", k8s.name)
        if pod is not None and pod.node:
            return pod.node
    return k8s.node


def refs_of(store: Store, event: UnifiedEvent) -> list[tuple[str, str, str]]:
    """(kind, namespace, name) of the ConfigMaps/Secrets an event is about: itself, or the ones its
    pod (or workload) uses."""
    k8s = event.k8s
    if k8s is None:
        return []
    if k8s.kind in ("ConfigMap", "Secret"):
        return [(k8s.kind, k8s.namespace, k8s.name)]
    if k8s.kind == "Pod" or k8s.kind in WORKLOAD_KINDS:
        member = _get(store, k8s.namespace, k8s.kind, k8s.name)
        refs = (member.refs if member else []) or k8s.refs
        return [(kind, k8s.namespace, name) for kind, _, name in (ref.partition("/") for ref in refs)
                if kind in ("ConfigMap", "Secret")]
    return []


def services_of(store: Store, event: UnifiedEvent) -> list[tuple[str, str]]:
    """(namespace, name) of the Services selecting the event's pod, of the Service itself, or of the
    Service whose endpoints an Endpoints or EndpointSlice lists."""
    k8s = event.k8s
    if k8s is None:
        return []
    if k8s.kind == "Service":
        return [(k8s.namespace, k8s.name)]
    if k8s.kind == "Endpoints":
        return [(k8s.namespace, k8s.name)]
    if k8s.kind == "EndpointSlice":
        service = k8s.labels.get(SERVICE_NAME_LABEL, "")
        return [(k8s.namespace, service)] if service else []
    if k8s.kind != "Pod":
        return []
    pod = _get(store, k8s.namespace, "Pod", k8s.name)
    labels = (pod.labels if pod else {}) or k8s.labels
    index = store.get(services_key(k8s.namespace))
    if not labels or not isinstance(index, ServiceIndex):
        return []
    return [(k8s.namespace, name) for name, sel in sorted(index.selectors.items())
            if LabelSelector.of_map(sel).matches(labels)]
