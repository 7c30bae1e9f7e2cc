"""The object index: what is known of the cluster, and the topology change each object brings.

Fed by: the topology service (`app.topology_service`), one Kubernetes object at a time
(`ObjectIndex.add` / `remove`). Feeds: a graph writer applying each `TopologyChange` (the order and keys are
in `topology.relations`' docstring). Selectors are evaluated both ways here: a new Service selects
the pods already known, a pod whose labels change gains or loses its Services.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from topology.relations import (
    Alias,
    Edge,
    ObjectNode,
    ObjId,
    Reference,
    Selection,
    TopologyChange,
    declarations,
    identity,
    node_key,
    object_node,
    synthetic_key,
)


class _Entry(NamedTuple):
    oid: ObjId
    uid: str
    key: str
    labels: dict[str, str]
    refs: tuple[Reference, ...]
    selection: Selection | None
    node: ObjectNode


def _entry(obj: dict) -> _Entry:
    oid, uid = identity(obj)
    refs, selection = declarations(oid[0], oid[1], obj)
    labels = dict((obj.get("metadata") or {}).get("labels") or {})
    return _Entry(oid, uid, node_key(oid, uid), labels, tuple(dict.fromkeys(refs)), selection, object_node(obj))


class _Delta:
    """One change in the making: edge reference counts before it, endpoint names met while resolving."""

    def __init__(self) -> None:
        self.before: dict[str, int] = {}
        self.names: dict[str, ObjId] = {}
        self.upsert: list[ObjectNode] = []
        self.deleted: list[ObjectNode] = []
        self.aliases: list[Alias] = []


class ObjectIndex:
    """What is known of the cluster: objects by (kind, namespace, name) and by key, pods and
    selectors by namespace, who names whom, and the edges each object declares. Edges are
    reference-counted: one goes when no object declares it any more (PVC volumeName and PV claimRef
    both declare BOUND_TO). Deleted uids are remembered (up to `tombstone_limit`) so references by uid
    to them (ownerReferences of orphans awaiting garbage collection) draw no edge."""

    def __init__(self, *, tombstone_limit: int = 100_000) -> None:
        self._entries: dict[ObjId, _Entry] = {}
        self._by_key: dict[str, ObjId] = {}
        self._pods: dict[str, dict[ObjId, _Entry]] = {}
        self._selectors: dict[str, set[ObjId]] = {}
        self._referrers: dict[ObjId, set[ObjId]] = {}
        self._declared: dict[ObjId, dict[str, Edge]] = {}
        self._count: dict[str, int] = {}
        self._edges: dict[str, Edge] = {}
        self._tombstones: dict[str, None] = {}
        self._tombstone_limit = tombstone_limit

    def __len__(self) -> int:
        return len(self._entries)

    def edges(self) -> list[Edge]:
        """Every edge currently declared, sorted by id."""
        return sorted(self._edges.values(), key=lambda e: e.id)

    def _target(self, kind: str, namespace: str, name: str, uid: str = "") -> str | None:
        if uid:
            return None if uid in self._tombstones else uid
        entry = self._entries.get((kind, namespace, name))
        return entry.key if entry else synthetic_key(kind, namespace, name)

    # resolution: no mutation
    def _resolve(self, entry: _Entry, names: dict[str, ObjId]) -> dict[str, Edge]:
        kind, out = entry.oid[0], {}
        for ref in entry.refs:
            target = self._target(ref.kind, ref.namespace, ref.name, ref.uid)
            if target is None:
                continue
            names[target] = (ref.kind, ref.namespace, ref.name)
            ends = (kind, entry.key, ref.kind, target) if ref.outgoing else (ref.kind, target, kind, entry.key)
            edge = Edge(type=ref.type, src_kind=ends[0], src_key=ends[1], dst_kind=ends[2], dst_key=ends[3],
                        props=dict(ref.props))
            out[edge.id] = edge
        if entry.selection is not None:
            out.update(self._selected(entry, self._pods.get(entry.oid[1], {}).values()))
        return out

    @staticmethod
    def _selected(entry: _Entry, pods: Iterable[_Entry]) -> dict[str, Edge]:
        selection = entry.selection
        assert selection is not None
        edges = (Edge(type=selection.type, src_kind=entry.oid[0], src_key=entry.key, dst_kind="Pod",
                      dst_key=pod.key) for pod in pods if selection.selector.matches(pod.labels))
        return {e.id: e for e in edges}

    # changes
    def add(self, obj: dict) -> TopologyChange:
        """Record a new or changed object; return what that does to the graph."""
        entry, delta = _entry(obj), _Delta()
        old = self._entries.get(entry.oid)
        if old is not None and old.uid != entry.uid:  # recreated under the same name (DELETE unseen),
            self._drop(old, delta, deleted=bool(old.uid))  # or first seen with its uid
            old = None
        self._tombstones.pop(entry.uid, None)
        if old is not None:
            self._unregister(old)
        self._register(entry)
        delta.upsert.append(entry.node)
        if old is None and entry.uid:
            delta.aliases.append(Alias(kind=entry.oid[0], namespace=entry.oid[1], name=entry.oid[2],
                                       synthetic_key=synthetic_key(*entry.oid), uid=entry.uid))
        self._set(entry.oid, self._resolve(entry, delta.names), delta)
        if old is None:  # those naming it pointed at its synthetic key until now
            self._refresh_referrers(entry.oid, delta)
        if entry.oid[0] == "Pod" and (old is None or old.labels != entry.labels):
            self._reselect(entry, present=True, delta=delta)
        return self._finish(delta)

    def remove(self, obj: dict) -> TopologyChange:
        """Record a deletion: every edge of the object goes; the node is listed as deleted."""
        (oid, uid), delta = identity(obj), _Delta()
        entry = self._entries.get(oid)
        if entry is not None and (not uid or uid == entry.uid):
            self._drop(entry, delta, deleted=True)
        else:  # never seen, or an older incarnation of the object now known under that name
            delta.deleted.append(object_node(obj))
            self._tombstone(uid)
        return self._finish(delta)

    def _register(self, entry: _Entry) -> None:
        oid = entry.oid
        self._entries[oid] = entry
        self._by_key[entry.key] = oid
        if oid[0] == "Pod":
            self._pods.setdefault(oid[1], {})[oid] = entry
        if entry.selection is not None:
            self._selectors.setdefault(oid[1], set()).add(oid)
        for ref in entry.refs:
            self._referrers.setdefault((ref.kind, ref.namespace, ref.name), set()).add(oid)

    def _unregister(self, entry: _Entry) -> None:
        oid = entry.oid
        for ref in entry.refs:
            referrers = self._referrers.get((ref.kind, ref.namespace, ref.name), set())
            referrers.discard(oid)
            if not referrers:
                self._referrers.pop((ref.kind, ref.namespace, ref.name), None)
        self._by_key.pop(entry.key, None)
        self._pods.get(oid[1], {}).pop(oid, None)
        self._selectors.get(oid[1], set()).discard(oid)

    def _drop(self, entry: _Entry, delta: _Delta, *, deleted: bool) -> None:
        self._unregister(entry)
        del self._entries[entry.oid]
        self._set(entry.oid, {}, delta)
        del self._declared[entry.oid]
        if deleted:
            self._tombstone(entry.uid)
            delta.deleted.append(entry.node)
        if entry.oid[0] == "Pod":
            self._reselect(entry, present=False, delta=delta)
        self._refresh_referrers(entry.oid, delta)

    def _tombstone(self, uid: str) -> None:
        if uid:
            self._tombstones[uid] = None
            while len(self._tombstones) > self._tombstone_limit:
                del self._tombstones[next(iter(self._tombstones))]

    def _refresh_referrers(self, oid: ObjId, delta: _Delta) -> None:
        for referrer in sorted(self._referrers.get(oid, ())):
            if referrer != oid:
                self._set(referrer, self._resolve(self._entries[referrer], delta.names), delta)

    def _reselect(self, pod: _Entry, *, present: bool, delta: _Delta) -> None:
        """A pod came, went or changed labels: each selector of its namespace re-evaluated on it alone."""
        for oid in sorted(self._selectors.get(pod.oid[1], ())):
            declarer = self._entries[oid]
            selection = declarer.selection
            assert selection is not None
            edge = Edge(type=selection.type, src_kind=oid[0], src_key=declarer.key, dst_kind="Pod",
                        dst_key=pod.key)
            matched = present and selection.selector.matches(pod.labels)
            self._patch(oid, drop=() if matched else (edge.id,), put={edge.id: edge} if matched else {}, delta=delta)

    def _set(self, declarer: ObjId, edges: dict[str, Edge], delta: _Delta) -> None:
        old = self._declared.get(declarer, {})
        self._patch(declarer, drop=old.keys() - edges.keys(), put=edges, delta=delta)

    def _patch(self, declarer: ObjId, *, drop: Iterable[str], put: dict[str, Edge], delta: _Delta) -> None:
        declared = self._declared.setdefault(declarer, {})
        for edge_id in drop:
            if declared.pop(edge_id, None) is not None:
                delta.before.setdefault(edge_id, self._count[edge_id])
                self._count[edge_id] -= 1
        for edge_id, edge in put.items():
            if edge_id not in declared:
                delta.before.setdefault(edge_id, self._count.get(edge_id, 0))
                self._count[edge_id] = self._count.get(edge_id, 0) + 1
                self._edges.setdefault(edge_id, edge)
                declared[edge_id] = edge

    def _finish(self, delta: _Delta) -> TopologyChange:
        added, removed = [], []
        for edge_id, before in sorted(delta.before.items()):
            after, edge = self._count.get(edge_id, 0), self._edges[edge_id]
            if before == 0 and after > 0:
                added.append(edge)
            elif before > 0 and after == 0:
                removed.append(edge)
            if after == 0:
                self._count.pop(edge_id, None)
                del self._edges[edge_id]
        placeholders = {key: ObjectNode(kind=kind, uid=key, name=delta.names[key][2], namespace=delta.names[key][1])
                        for e in added for kind, key in ((e.src_kind, e.src_key), (e.dst_kind, e.dst_key))
                        if key not in self._by_key and key in delta.names}
        return TopologyChange(
            upsert=sorted(delta.upsert, key=lambda n: n.uid), deleted=sorted(delta.deleted, key=lambda n: n.uid),
            placeholders=[placeholders[k] for k in sorted(placeholders)], add_edges=added, remove_edges=removed,
            aliases=sorted(delta.aliases, key=lambda a: a.uid))

