"""The topology among a set of Kubernetes objects, by resource name: what a report draws around a root cause.

Fed by: the objects a recording holds (`tapio analyze`: its object observations, in order). Feeds: the
incident picture (`app.report.picture`). The live topology service builds the same edges from the same
index (`topology.index.ObjectIndex`); here they are named "Kind/namespace/name" ("Kind/name" for a
cluster-scoped kind) instead of keyed by uid, so they meet the resources a root cause names.
Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from topology.index import ObjectIndex


class TopologyLink(msgspec.Struct, frozen=True, kw_only=True):
    type: str  # OWNS, RUNS_ON, MOUNTS, SELECTS, USES_SECRET, CLAIMS...
    source: str  # "Kind/namespace/name" ("Kind/name" cluster-scoped)
    target: str


def resource_name(kind: str, namespace: str, name: str) -> str:
    return f"{kind}/{namespace}/{name}" if namespace else f"{kind}/{name}"


def surroundings(objects: Iterable[dict]) -> list[TopologyLink]:
    """The edges the topology service would write for these objects (an object seen again replaces
    what it declared before); an edge to an object the recording lacks ends at its name, so a
    ConfigMap that is mounted but was not captured is still drawn."""
    index = ObjectIndex()
    names: dict[str, str] = {}
    for obj in objects:
        change = index.add(obj)
        for node in (*change.upsert, *change.placeholders):
            names[node.uid] = resource_name(node.kind, node.namespace, node.name)
    out = {TopologyLink(type=e.type, source=names[e.src_key], target=names[e.dst_key])
           for e in index.edges() if e.src_key in names and e.dst_key in names}
    return sorted(out, key=lambda link: (link.type, link.source, link.target))
