"""UnifiedEvents -> graph write rows. Pure: no I/O, deterministic (sorted) output.

Fed by: the graph backends' `write_events` (one call per batch of `GraphSettings.batch_size`).
Feeds: the write queries of `topology.queries`, as `$rows` (ResourceRows of one label) and
`$events` (EventRows of events without a Kubernetes object).

Rows are `array_like` msgspec Structs: they travel as positional lists (FalkorDB parses
lists several times faster than the same data as maps, and no map key needs quoting), and
`topology.queries` generates its `row[i]` / `ev[i]` indexes from the field order declared here.
Property values are scalars or lists of scalars (neither FalkorDB nor Neo4j stores maps);
empty strings become None, and a None is simply not stored.

Resource key: `k8s.uid` when the event carries it, else the synthetic key
`f"{kind}:{namespace}/{name}"` (namespace "" for cluster-scoped objects; kind normalized to
the model's label when known). Later topology work, which reads objects with their real
uids, will write the real keys; events seen before then stay on the synthetic node until the
topology service folds it into the real one. An event of a JOINED_BY_NAME kind (Node) without a
uid joins the real object of that name when the graph already knows it (`WriteBatch.by_name`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

import msgspec

from core.events import K8sContext, ObjectRef, UnifiedEvent, epoch_ms
from topology.model import CLUSTER_SCOPED, GENERIC_LABEL, JOINED_BY_NAME, label_for


class EventRow(msgspec.Struct, array_like=True, frozen=True, kw_only=True):
    """One Event node. `id` is its key; every other field is a property of the same name.

    `ingested_at` (epoch ms) is kept from the first write: an Event is written once, and a
    replay of the same id leaves the node as it is.
    """

    id: str
    ingested_at: int
    type: str | None = None
    source: str | None = None
    timestamp: int | None = None  # epoch ms
    severity: str | None = None
    intent: str | None = None
    category: str | None = None
    narrative: str | None = None
    namespace: str | None = None
    kind: str | None = None
    name: str | None = None
    reason: str | None = None
    message: str | None = None
    event_type: str | None = None
    count: int | None = None
    action: str | None = None
    trace_id: str | None = None
    span_id: str | None = None


class ResourceRow(msgspec.Struct, array_like=True, kw_only=True):
    """One resource node and the events of this batch that affect it.

    `uid` is its key, `events` its AFFECTED events (sorted by id); the other fields are
    properties. A row replaces a property only if it is at least as recent (`last_seen`) as
    the node, and never with a None: replays and late events never move it backwards.
    """

    uid: str
    events: list[EventRow]
    last_seen: int  # epoch ms of the newest event
    kind: str
    name: str | None = None
    namespace: str | None = None
    node: str | None = None
    labels: list[str] | None = None  # "key=value", sorted
    owner_kind: str | None = None
    owner_name: str | None = None
    owner_uid: str | None = None


class WriteBatch(msgspec.Struct, frozen=True, kw_only=True):
    """One batch of writes: per label (sorted), rows sorted by uid; resource-less events by id.

    `by_name`: rows of a kind in JOINED_BY_NAME keyed by their synthetic key (the event named its
    object without a uid): written to the real object of that name when the graph knows it.
    """

    resources: dict[str, list[ResourceRow]]
    orphans: list[EventRow]
    by_name: dict[str, list[ResourceRow]] = {}

    @property
    def event_count(self) -> int:
        return len(self.orphans) + sum(len(r.events) for group in (self.resources, self.by_name)
                                       for rows in group.values() for r in rows)


def kind_of(k8s: K8sContext | ObjectRef) -> str:
    """The kind as stored: the model's label for a known kind (any case), else as given."""
    label = label_for(k8s.kind)
    return k8s.kind if label == GENERIC_LABEL else label


def synthetic_key(k8s: K8sContext | ObjectRef) -> str:
    """`kind:namespace/name`: the key of an object known only by name (namespace "" for a cluster-scoped
    kind: a kubelet's Node Event lives in `default`, its Node in no namespace)."""
    kind = kind_of(k8s)
    return f"{kind}:{'' if kind in CLUSTER_SCOPED else k8s.namespace}/{k8s.name}"


def resource_key(k8s: K8sContext | ObjectRef) -> str:
    """The resource's `uid` property: the real uid, else `kind:namespace/name` (an event's object
    and a prediction's impacted object are keyed alike, so both land on the same node)."""
    return k8s.uid or synthetic_key(k8s)


def event_row(event: UnifiedEvent, *, ingested_at_ms: int) -> EventRow:
    sem, k8s, kube, trace = event.semantic, event.k8s, event.kubernetes, event.trace
    return EventRow(
        id=event.id, ingested_at=ingested_at_ms,
        type=event.type or None, source=event.source or None, timestamp=epoch_ms(event.timestamp),
        severity=sem.severity or None, intent=sem.intent or None, category=sem.category or None,
        narrative=sem.narrative or None,
        namespace=(k8s.namespace or None) if k8s else None,
        kind=kind_of(k8s) if k8s else None,
        name=(k8s.name or None) if k8s else None,
        reason=(kube.reason or None) if kube else None,
        message=(kube.message or None) if kube else None,
        event_type=(kube.event_type or None) if kube else None,
        count=kube.count if kube else None,
        action=(kube.action or None) if kube else None,
        trace_id=(trace.trace_id or None) if trace else None,
        span_id=(trace.span_id or None) if trace else None,
    )


def _resource_row(uid: str, members: list[tuple[UnifiedEvent, EventRow]]) -> ResourceRow:
    """Fold the members' contexts oldest to newest: a newer non-empty value wins."""
    if len(members) > 1:
        members.sort(key=lambda m: (m[1].timestamp, m[1].id))
    folded: dict[str, object] = {}
    previous: K8sContext | None = None
    for event, _ in members:
        k8s = event.k8s
        assert k8s is not None
        if k8s == previous:
            continue
        previous = k8s
        if k8s.name:
            folded["name"] = k8s.name
        if k8s.namespace and kind_of(k8s) not in CLUSTER_SCOPED:
            folded["namespace"] = k8s.namespace
        if k8s.node:
            folded["node"] = k8s.node
        if k8s.labels:
            folded["labels"] = sorted(f"{k}={v}" for k, v in k8s.labels.items())
        owner = k8s.owner
        if owner is not None:
            if owner.kind:
                folded["owner_kind"] = owner.kind
            if owner.name:
                folded["owner_name"] = owner.name
            if owner.uid:
                folded["owner_uid"] = owner.uid
    newest_event, newest_row = members[-1]
    assert newest_event.k8s is not None
    rows = [row for _, row in members]
    if len(rows) > 1:
        rows.sort(key=lambda r: r.id)
    return ResourceRow(uid=uid, events=rows, last_seen=newest_row.timestamp or 0,
                       kind=kind_of(newest_event.k8s), **folded)  # type: ignore[arg-type]


def event_rows(events: Sequence[UnifiedEvent], *, ingested_at_ms: int) -> WriteBatch:
    """Group `events` by the resource they affect, ready for the write queries.

    Duplicate ids keep the last occurrence.
    """
    unique = {e.id: e for e in events}
    grouped: dict[tuple[str, str], list[tuple[UnifiedEvent, EventRow]]] = {}
    orphans: list[EventRow] = []
    for event in unique.values():
        row = event_row(event, ingested_at_ms=ingested_at_ms)
        if event.k8s is None:
            orphans.append(row)
        else:
            key = (label_for(event.k8s.kind), resource_key(event.k8s))
            grouped.setdefault(key, []).append((event, row))

    resources: dict[str, list[ResourceRow]] = {}
    by_name: dict[str, list[ResourceRow]] = {}
    for (label, uid), members in sorted(grouped.items()):
        synthetic = label in JOINED_BY_NAME and uid == synthetic_key(members[0][0].k8s)  # type: ignore[arg-type]
        (by_name if synthetic else resources).setdefault(label, []).append(_resource_row(uid, members))
    orphans.sort(key=lambda r: r.id)
    return WriteBatch(resources=resources, orphans=orphans, by_name=by_name)


def batches(events: Sequence[UnifiedEvent], *, size: int) -> Iterator[WriteBatch]:
    """Split `events` into write batches of at most `size` events, stamped with the ingest time."""
    if size < 1:
        raise ValueError(f"graph.batch_size must be at least 1, got {size}")
    now_ms = int(time.time() * 1000)
    for start in range(0, len(events), size):
        yield event_rows(events[start:start + size], ingested_at_ms=now_ms)
