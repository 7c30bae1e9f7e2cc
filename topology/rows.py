"""UnifiedEvents -> graph write parameters. Pure: no I/O, deterministic (sorted) output.

Fed by: the graph backends' `write_events` (one call per batch of `GraphSettings.batch_size`).
Feeds: the write queries of `topology.queries` (`$rows` per label, `$events` for events
without a Kubernetes object).

Shapes (plain dicts, passed as query parameters as they are):
- EventRow: `{"id", "ingested_at", "props"}`. `ingested_at` is set only when the Event node
  is created, so a replay keeps the first ingestion time.
- ResourceRow: `{"uid", "props", "events": [EventRow...]}`, one per resource and batch.

Property values are scalars or lists of scalars only (neither FalkorDB nor Neo4j stores
maps). Empty strings and missing values are left out rather than stored.

Resource key: `k8s.uid` when the event carries it, else the synthetic key
`f"{kind}:{namespace}/{name}"` (namespace "" for cluster-scoped objects, kind normalized to
the model's label when known). Later topology work, which reads objects with their real
uids, will write the real keys; events seen before then stay on the synthetic node.
"""

from __future__ import annotations

from typing import Sequence, TypedDict

import msgspec

from app.events import K8sContext, UnifiedEvent, epoch_ms
from topology.model import GENERIC_LABEL, label_for

Scalar = str | int | float | bool
Props = dict[str, Scalar | list[Scalar]]


class EventRow(TypedDict):
    id: str
    ingested_at: int
    props: Props


class ResourceRow(TypedDict):
    uid: str
    props: Props
    events: list[EventRow]


class WriteBatch(msgspec.Struct, frozen=True, kw_only=True):
    """One batch of writes: per label, rows sorted by uid; events without a resource by id."""

    resources: dict[str, list[ResourceRow]]  # label -> rows; labels in sorted order
    orphans: list[EventRow]

    @property
    def event_count(self) -> int:
        return len(self.orphans) + sum(len(r["events"]) for rows in self.resources.values() for r in rows)


def kind_of(k8s: K8sContext) -> str:
    """The kind as stored: the model's label for a known kind (any case), else as given."""
    label = label_for(k8s.kind)
    return k8s.kind if label == GENERIC_LABEL else label


def resource_key(k8s: K8sContext) -> str:
    """The resource's `uid` property: the real uid, else `kind:namespace/name`."""
    return k8s.uid or f"{kind_of(k8s)}:{k8s.namespace}/{k8s.name}"


def _clean(props: dict[str, object]) -> Props:
    return {k: v for k, v in props.items() if v is not None and v != ""}  # type: ignore[misc]


def event_props(event: UnifiedEvent) -> Props:
    """The Event node's properties (all but `id` and `ingested_at`, which the row carries)."""
    sem, k8s, kube, trace = event.semantic, event.k8s, event.kubernetes, event.trace
    return _clean({
        "type": event.type,
        "source": event.source,
        "timestamp": epoch_ms(event.timestamp),
        "severity": sem.severity,
        "intent": sem.intent,
        "category": sem.category,
        "narrative": sem.narrative,
        "namespace": k8s.namespace if k8s else None,
        "kind": kind_of(k8s) if k8s else None,
        "name": k8s.name if k8s else None,
        "reason": kube.reason if kube else None,
        "message": kube.message if kube else None,
        "event_type": kube.event_type if kube else None,
        "count": kube.count if kube else None,
        "action": kube.action if kube else None,
        "trace_id": trace.trace_id if trace else None,
        "span_id": trace.span_id if trace else None,
    })


def _resource_props(k8s: K8sContext, uid: str) -> Props:
    owner = k8s.owner
    return _clean({
        "uid": uid,
        "kind": kind_of(k8s),
        "name": k8s.name,
        "namespace": k8s.namespace,
        "node": k8s.node,
        "labels": sorted(f"{k}={v}" for k, v in k8s.labels.items()) or None,
        "owner_kind": owner.kind if owner else None,
        "owner_name": owner.name if owner else None,
        "owner_uid": owner.uid if owner else None,
    })


def event_rows(events: Sequence[UnifiedEvent], *, ingested_at_ms: int) -> WriteBatch:
    """Group `events` by the resource they affect, ready for the write queries.

    Duplicate ids keep the last occurrence. A resource's props come from its events folded
    oldest to newest (a newer non-empty value wins); `last_seen` is the newest timestamp.
    """
    unique = {e.id: e for e in events}
    grouped: dict[tuple[str, str], list[tuple[UnifiedEvent, EventRow]]] = {}
    orphans: list[EventRow] = []
    for event in unique.values():
        row = EventRow(id=event.id, ingested_at=ingested_at_ms, props=event_props(event))
        if event.k8s is None:
            orphans.append(row)
            continue
        key = (label_for(event.k8s.kind), resource_key(event.k8s))
        grouped.setdefault(key, []).append((event, row))

    resources: dict[str, list[ResourceRow]] = {}
    for (label, uid), members in sorted(grouped.items()):
        members.sort(key=lambda m: (m[1]["props"]["timestamp"], m[1]["id"]))
        props: Props = {}
        for event, _ in members:
            assert event.k8s is not None
            props.update(_resource_props(event.k8s, uid))
        props["last_seen"] = members[-1][1]["props"]["timestamp"]
        rows = sorted((row for _, row in members), key=lambda r: r["id"])
        resources.setdefault(label, []).append(ResourceRow(uid=uid, props=props, events=rows))
    orphans.sort(key=lambda r: r["id"])
    return WriteBatch(resources=resources, orphans=orphans)
