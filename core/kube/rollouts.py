"""Rollouts a recording holds only as state: a Deployment's ReplicaSets, one per revision.

Fed by: the ReplicaSets of a support bundle, must-gather or object list (SNAPSHOT RawEvents,
from `collectors.bundles`), and the ReplicaSets the live diagnose stage holds (`agents.diagnosis.observed`).
Feeds: one ROLLOUT RawEvent per revision after the first, read like the topology service's live
change events, except that it counts: in a recording nothing else says that the Deployment was
edited; and the diagnoses' rollouts (a pod of the newest revision carries it as its first link).

The Deployment controller keeps one ReplicaSet per pod template, annotated with the revision
(`deployment.kubernetes.io/revision`), created when that revision rolled out. So consecutive
revisions give the edit (`core.kube.changes.diff_objects` of their pod templates: image, command,
env, resources, probes, volumes, a `kubectl rollout restart`) and its time (the newer ReplicaSet's creationTimestamp). A
rollback re-uses an older ReplicaSet: its creationTimestamp predates the revision it replaced,
so that rollout's time is unknown and it is left out.

Pure: no I/O.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import msgspec

from core.events import RawEvent, content_id
from core.kube.changes import REVISION_ANNOTATION, KeyChange, diff_objects, summarize
from core.kube.objects import parse_time

ROLLOUT = "ROLLOUT"
_NOT_TEMPLATE = frozenset({"revision", "replicas"})  # differ between any two ReplicaSets


def _time(text: str) -> datetime | None:
    return parse_time(text)  # aware UTC, as the events' (fromisoformat left a time without offset naive)


_REVISION = re.compile(r"[0-9]{1,18}")


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _deployment_of(meta: dict[str, Any]) -> dict[str, Any] | None:
    refs = meta.get("ownerReferences")
    if not isinstance(refs, list):
        return None
    return next((r for r in refs if isinstance(r, dict) and r.get("kind") == "Deployment"
                 and r.get("controller", True)), None)


class RolloutChange(msgspec.Struct, frozen=True, kw_only=True):
    """A Deployment revision whose pod template differs from the revision before it."""

    namespace: str
    deployment: str
    uid: str  # the Deployment's
    replicaset: str  # the new revision's
    revision: int
    at: datetime  # the new ReplicaSet's creationTimestamp
    changes: list[KeyChange]
    message: str  # the template diff in prose, the revisions and the ReplicaSet
    source: str = ""  # where the new ReplicaSet was read


def rollouts(replicasets: Iterable[tuple[Any, str]]) -> list[RolloutChange]:
    """The rollouts a set of ReplicaSet objects (each with where it was read) shows: one per
    revision after the first whose template differs from the one before it. Objects of other kinds,
    or of any odd shape, imply nothing."""
    revisions: dict[tuple[str, str, str], list[tuple[int, datetime, dict[str, Any], str]]] = defaultdict(list)
    for obj, source in replicasets:
        meta = obj.get("metadata") if isinstance(obj, dict) and obj.get("kind", "ReplicaSet") == "ReplicaSet" else None
        if not isinstance(meta, dict):
            continue
        owner = _deployment_of(meta)
        annotations = meta.get("annotations")
        revision = annotations.get(REVISION_ANNOTATION) if isinstance(annotations, dict) else None
        stamp = meta.get("creationTimestamp")
        created = _time(stamp) if isinstance(stamp, str) else None
        if owner is None or created is None or not isinstance(revision, str) or not _REVISION.fullmatch(revision):
            continue  # what is not a ReplicaSet of a Deployment's revision as Kubernetes writes it
        key = (_text(meta.get("namespace")), _text(owner.get("name")), _text(owner.get("uid")))
        revisions[key].append((int(revision), created, obj, source))
    out: list[RolloutChange] = []
    for (namespace, deployment, uid), found in revisions.items():
        found.sort(key=lambda r: r[0])
        for (old_rev, old_at, old, _), (new_rev, new_at, new, source) in zip(found, found[1:], strict=False):
            if new_at <= old_at:  # a rollback to an older ReplicaSet: when it happened is unknown
                continue
            change = diff_objects(old, new)
            changes = [c for c in (change.changes if change else []) if c.key not in _NOT_TEMPLATE]
            if not changes:
                continue
            summary = summarize("Deployment", namespace, deployment, changes)
            name = _text(new["metadata"].get("name"))
            out.append(RolloutChange(
                namespace=namespace, deployment=deployment, uid=uid, replicaset=name, revision=new_rev, at=new_at,
                changes=changes, message=f"{summary} (revision {old_rev} -> {new_rev}, ReplicaSet {name})",
                source=source))
    return out


def rollout_events(replicasets: Iterable[RawEvent]) -> list[RawEvent]:
    """A ROLLOUT event per Deployment revision whose template differs from the revision before it."""
    decoded = []
    for raw in replicasets:
        if raw.metadata.get("kind") != "ReplicaSet":
            continue
        try:
            obj = json.loads(raw.data)
        except ValueError:
            continue  # the enricher names it
        decoded.append((obj, raw.metadata.get("source", "")))
    return [RawEvent(
        id=content_id("rollout", r.namespace, r.deployment, str(r.revision), r.message), timestamp=r.at,
        type="kubeapi", data=b"",
        metadata={"kind": "Deployment", "name": r.deployment, "namespace": r.namespace, "uid": r.uid,
                  "action": ROLLOUT, "reason": "RolledOut", "message": r.message[:1000],
                  "revision": str(r.revision), "keys": ",".join(c.key for c in r.changes), "source": r.source})
        for r in rollouts(decoded)]
