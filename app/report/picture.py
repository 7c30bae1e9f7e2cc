"""The picture of one root cause: its causal graph with the topology around it, and its timeline.

Fed by: a `RootCause` (`app.hypotheses`: the root resource, the affected ones, the CAUSED links between
them, the evidence lines with their resource and time) and the topology edges among the cluster's
objects (`topology.surroundings`: from the objects a recording holds, or read from the graph).
Feeds: `app.report.page`, which draws it: Cytoscape.js lays the graph out (dagre, left to right), the
timeline is one lane per resource on a time axis.

What is drawn:
- nodes: the root cause's resource ("root"), every resource it affected or an evidence line is about
  ("impacted"), and the topology around them ("context": owners up the chain, the node each pod runs
  on, the ConfigMaps and Secrets mounted, the Services selecting them...), at most `limit` in all;
- edges: CAUSED (a pattern linked the two resources' events, labelled with the delay), PRECEDED (an
  affected resource failed after the root's first event, with the delay, where nothing links them),
  and the topology's own relations (OWNS, RUNS_ON, MOUNTS, SELECTS...);
- lanes: per resource, its evidence lines as marks at their time; the root's first line and the
  predicted failure (a pattern's due time) are marked as such.
Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import msgspec

from app.hypotheses import RootCause
from topology.surroundings import TopologyLink

__all__ = ["Lane", "Mark", "Picture", "PictureEdge", "PictureNode", "picture", "since"]

#: the CA bundle every namespace has and every pod mounts: drawn, it ties every pod to every other
_EVERYWHERE = "ConfigMap/{namespace}/kube-root-ca.crt"


class PictureNode(msgspec.Struct, frozen=True, kw_only=True):
    id: str  # the resource, as TopologyLink's ends
    kind: str
    name: str
    namespace: str
    role: str  # root, impacted, context


class PictureEdge(msgspec.Struct, frozen=True, kw_only=True):
    source: str
    target: str
    type: str  # CAUSED, PRECEDED, or a topology relation
    label: str
    #: laid out from target to source, so the picture flows away from the root cause (a pod MOUNTS the
    #: edited ConfigMap: the ConfigMap is left of the pod); the arrow still points at the target
    backwards: bool = False


class Mark(msgspec.Struct, frozen=True, kw_only=True):
    at: datetime
    offset: float  # 0..1 along the timeline
    text: str
    severity: str
    source: str  # file#position
    role: str  # root, evidence, predicted


class Lane(msgspec.Struct, frozen=True, kw_only=True):
    resource: str
    role: str  # as the resource's node
    marks: list[Mark]


class Picture(msgspec.Struct, frozen=True, kw_only=True):
    nodes: list[PictureNode]
    edges: list[PictureEdge]
    lanes: list[Lane]
    start: datetime | None
    end: datetime | None


def since(seconds: float | None) -> str:
    """A delay as a person reads it: +40s, +2m05s, +1h03m."""
    if seconds is None:
        return ""
    whole = round(seconds)
    sign = "-" if whole < 0 else "+"
    whole = abs(whole)
    if whole < 60:
        return f"{sign}{whole}s"
    if whole < 3600:
        return f"{sign}{whole // 60}m{whole % 60:02d}s"
    return f"{sign}{whole // 3600}h{whole % 3600 // 60:02d}m"


def picture(cause: RootCause, topology: Iterable[TopologyLink], *, limit: int = 40) -> Picture:
    root = cause.root or next(iter(cause.affected), "")
    involved = _ordered([root, *(link.cause for link in cause.links), *(link.effect for link in cause.links),
                         *cause.affected, *(e.resource for e in cause.evidence)])
    roles = {r: "impacted" for r in involved}
    if root:
        roles[root] = "root"
    edges = _causal_edges(cause, root, set(involved))
    for link in _around(set(involved), list(topology), limit - len(involved)):
        for end in (link.source, link.target):
            roles.setdefault(end, "context")
        edges.append(PictureEdge(source=link.source, target=link.target, type=link.type, label=link.type))
    nodes = [_node(r, role) for r, role in roles.items()]
    lanes, start, end = _lanes(cause, root, roles)
    return Picture(nodes=nodes, edges=_flowing_from(root, edges), lanes=lanes, start=start, end=end)


def _flowing_from(root: str, edges: list[PictureEdge]) -> list[PictureEdge]:
    """Each edge marked `backwards` where its target is nearer the root than its source (hops, either way)."""
    near: dict[str, set[str]] = {}
    for e in edges:
        near.setdefault(e.source, set()).add(e.target)
        near.setdefault(e.target, set()).add(e.source)
    hops = {root: 0}
    frontier = [root]
    while frontier:
        reached = []
        for resource in frontier:
            for other in sorted(near.get(resource, ())):
                if other not in hops:
                    hops[other] = hops[resource] + 1
                    reached.append(other)
        frontier = reached
    far = len(hops)
    return [msgspec.structs.replace(e, backwards=hops.get(e.target, far) < hops.get(e.source, far)) for e in edges]


def _ordered(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(i for i in items if i))


def _node(resource: str, role: str) -> PictureNode:
    parts = resource.split("/")
    kind, namespace, name = (parts[0], parts[1], "/".join(parts[2:])) if len(parts) > 2 else (
        parts[0], "", parts[-1])
    return PictureNode(id=resource, kind=kind, name=name, namespace=namespace, role=role)


def _first_times(cause: RootCause) -> tuple[dict[str, datetime], dict[str, datetime]]:
    """Per resource, its first evidence line and its first failing one (warning or worse)."""
    first: dict[str, datetime] = {}
    failing: dict[str, datetime] = {}
    for e in cause.evidence:
        if not e.resource or e.at is None:
            continue
        first[e.resource] = min(first.get(e.resource, e.at), e.at)
        if e.severity not in ("info", "debug"):
            failing[e.resource] = min(failing.get(e.resource, e.at), e.at)
    return first, failing


def _causal_edges(cause: RootCause, root: str, involved: set[str]) -> list[PictureEdge]:
    edges = [PictureEdge(source=link.cause, target=link.effect, type=link.type,
                         label=f"{link.type} {since(link.delay_s)}".strip())
             for link in cause.links if link.cause in involved and link.effect in involved]
    reached = {link.effect for link in cause.links}
    first, failing = _first_times(cause)
    began = first.get(root)
    for resource in _ordered([*cause.affected, *(e.resource for e in cause.evidence)]):
        if resource == root or resource in reached or began is None or resource not in failing:
            continue
        if failing[resource] >= began:
            edges.append(PictureEdge(source=root, target=resource, type="PRECEDED",
                                     label=f"PRECEDED {since((failing[resource] - began).total_seconds())}"))
    return edges


def _around(involved: set[str], topology: list[TopologyLink], room: int) -> list[TopologyLink]:
    """The topology around the involved resources, within `room` new resources: first the chain of
    owners above them (Pod <- ReplicaSet <- Deployment), then every other edge touching them or
    their owners (the node a pod runs on, what it mounts, the Services selecting it...)."""
    topology = [link for link in topology if not _everywhere(link.target)]
    chosen: list[TopologyLink] = []
    drawn = set(involved)

    def take(link: TopologyLink) -> bool:
        nonlocal room
        new = {link.source, link.target} - drawn
        if link in chosen or len(new) > room:
            return False
        room -= len(new)
        drawn.update(new)
        chosen.append(link)
        return True

    owned = set(involved)
    while owned:
        owners = [link for link in topology if link.type == "OWNS" and link.target in owned]
        owned = {link.source for link in sorted(owners, key=lambda link: (link.source, link.target)) if take(link)}
    near = set(drawn)
    for link in sorted(topology, key=lambda link: (link.type, link.source, link.target)):
        if link.source in near or link.target in near:
            take(link)
    return chosen


def _everywhere(resource: str) -> bool:
    parts = resource.split("/")
    return len(parts) == 3 and resource == _EVERYWHERE.format(namespace=parts[1])


def _lanes(cause: RootCause, root: str, roles: dict[str, str]) -> tuple[list[Lane], datetime | None,
                                                                         datetime | None]:
    lines = [(e.at, e) for e in cause.evidence if e.at is not None]
    times = [at for at, _ in lines] + ([cause.due] if cause.due else [])
    if not times:
        return [], None, None
    start, end = min(times), max(times)
    span = (end - start).total_seconds() or 1.0

    def offset(at: datetime) -> float:
        return (at - start).total_seconds() / span

    by_lane: dict[str, list[Mark]] = {}
    root_line = min((line for line in lines if line[1].resource == root), key=lambda line: line[0], default=None)
    for at, e in sorted(lines, key=lambda line: (line[0], line[1].resource)):
        by_lane.setdefault(e.resource or "(unplaced)", []).append(
            Mark(at=at, offset=offset(at), text=e.text, severity=e.severity, source=e.source,
                 role="root" if root_line is not None and e is root_line[1] else "evidence"))
    if cause.due is not None:
        scoped = cause.scope.split(":", 1)[-1]  # the failure predicted is on what was hit, not on the root
        lane = scoped if scoped in roles and scoped != root else next((a for a in cause.affected if a != root), root)
        by_lane.setdefault(lane, []).append(Mark(at=cause.due, offset=offset(cause.due),
                                                 text=f"predicted: {cause.message}", severity="critical",
                                                 source="", role="predicted"))
    order = sorted(by_lane, key=lambda r: (r != root, min(m.at for m in by_lane[r]), r))
    return [Lane(resource=r, role=roles.get(r, "impacted"), marks=by_lane[r]) for r in order], start, end
