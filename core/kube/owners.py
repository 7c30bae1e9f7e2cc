"""Who an object belongs to: its controlling owner, and the workload it counts for. Pure.

Fed by: an object's `ownerReferences` (the enrich stage picks the controller, `controller_of`)
and the ownership the match stage has learned (`agents.membership`, through `owner_of`).
Feeds: `K8sContext.owner` (enrich), the `owner` scope keys of hits (`agents.membership.workload_of`),
and the kinds the topology and the change tracker treat as workloads (`WORKLOAD_KINDS`).

The roll-up rule, in one place: a pod counts for its controller; a ReplicaSet owned by a
Deployment counts for the Deployment (one rollout's ReplicaSets are one workload); a Job stays
its own workload even when a CronJob made it (each run has its own backoff); a pod with no known
owner is its own workload; an object whose owner is not a workload (a static pod's Node) has none.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "ReplicaSet"})


class OwnerReference(Protocol):
    @property
    def controller(self) -> bool: ...


R = TypeVar("R", bound=OwnerReference)

#: (kind, name) of an object's controlling owner as learned so far, or None
OwnerOf = Callable[[str, str], "tuple[str, str] | None"]


def controller_of(refs: Sequence[R]) -> R | None:
    """The owner reference with `controller: true`, else the first one; None without any."""
    for ref in refs:
        if ref.controller:
            return ref
    return refs[0] if refs else None


def workload_of(kind: str, name: str, *, owner_of: OwnerOf) -> tuple[str, str] | None:
    """(kind, name) of the workload an object counts for (see the module doc); None if it has none."""
    if kind == "Pod":
        owner = owner_of("Pod", name)
        if owner is None:
            return "Pod", name  # a bare pod (or one whose owner nothing told) is its own workload
        kind, name = owner
    if kind == "ReplicaSet":
        owner = owner_of("ReplicaSet", name)
        if owner is not None and owner[0] == "Deployment":
            return owner
    return (kind, name) if kind in WORKLOAD_KINDS else None
