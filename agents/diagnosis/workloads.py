"""Workloads short of ready replicas: a rollout that does not progress, replicas unavailable.

Fed by: Deployments (conditions Progressing / Available / ReplicaFailure, replica counts),
StatefulSets and DaemonSets (ready against desired), ReplicaSets, and the ROLLOUT events read off
a Deployment's ReplicaSet revisions (the pod-template diff of each revision).
Feeds: Diagnoses of family `workloads`. When the workload's pods are diagnosed, the join
(`agents.diagnosis.causes`) folds this one into the pods' chain: the pods' cause is the root.
"""

from __future__ import annotations

from agents.diagnosis.model import Diagnosis, from_state, in_namespace
from agents.diagnosis.observed import Observed, Rollout, Seen
from core.kube.status import condition

FAMILY = "workloads"


def _replicas(obj: dict, kind: str) -> tuple[int, int]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    if kind == "DaemonSet":
        return int(status.get("desiredNumberScheduled") or 0), int(status.get("numberReady") or 0)
    desired = spec.get("replicas")
    desired = int(desired) if isinstance(desired, int) else 1
    ready = int(status.get("readyReplicas") or status.get("availableReplicas") or 0)
    return desired, ready


def newest_rollout(observed: Observed, seen: Seen) -> Rollout | None:
    found = [r for r in observed.rollouts if r.deployment == seen.key]
    return max(found, key=lambda r: r.at) if found else None


def diagnose_workload(observed: Observed, seen: Seen) -> list[Diagnosis]:
    key = seen.key
    if key.kind not in ("Deployment", "StatefulSet", "DaemonSet"):
        return []
    progressing = condition(seen.obj, "Progressing")
    available = condition(seen.obj, "Available")
    failure = condition(seen.obj, "ReplicaFailure")
    desired, ready = _replicas(seen.obj, key.kind)
    stuck = progressing is not None and progressing.get("reason") == "ProgressDeadlineExceeded"
    unavailable = desired > 0 and ready < desired
    if not (stuck or unavailable or (failure is not None and failure.get("status") == "True")):
        return []
    if not stuck and available is not None and available.get("status") == "True" and ready >= desired:
        return []
    rollout = newest_rollout(observed, seen) if key.kind == "Deployment" else None
    if stuck:
        cause = "progress-deadline"
        what = f"its rollout stopped progressing (ProgressDeadlineExceeded: {progressing.get('message', '')})"  # type: ignore[union-attr]
    elif failure is not None and failure.get("status") == "True":
        cause = "replica-failure"
        what = f"it cannot create replicas ({failure.get('reason', '')}: {failure.get('message', '')})"
    else:
        cause = "unavailable-replicas"
        what = f"{ready} of {desired} replicas are ready"
    if rollout is not None:
        what += f"; newest rollout: {rollout.message}"
    evidence = [from_state(seen, f"{ready}/{desired} ready"
                                 + (f", Progressing={progressing.get('status')} ({progressing.get('reason', '')})"
                                    if progressing else ""))]
    return [Diagnosis(family=FAMILY, cause=cause, subject=key,
                      message=f"{key.kind} {key.name}{in_namespace(key)} is degraded: {what}",
                      confidence=0.7, remediation="See why its pods are not ready (`kubectl describe pod`, the "
                      "newest ReplicaSet's pods); `kubectl rollout undo` returns to the last revision.",
                      at=rollout.at if rollout else seen.at, ongoing=True, evidence=evidence,
                      caused_by=rollout.replicaset if rollout else None,
                      detail={"ready": str(ready), "desired": str(desired)},
                      chain=[f"{key}: {ready}/{desired} ready"])]
