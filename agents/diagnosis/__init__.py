"""Diagnosis: why each object that is not healthy is so, from its own state, Events and logs.

Fed by: RawEvents of one input or of the live stream (`observed.observe` folds them into the
newest state of each object). Feeds: `tapio analyze` (the ranked root causes) and the live
diagnose stage (a diagnosis is written to the graph as a match and a prediction, so it shows in
`tapio explain`, `tapio predictions` and the API).

One module per family, each pure: `containers`, `scheduling`, `probes`, `images`, `volumes`,
`jobs`, `nodes`, `workloads`, `network`, `alerts` (and `sandboxes`: a pod sandbox the node cannot make,
of family network or containers); `causes` joins them into root causes. Patterns (YAML)
find cascades over many events in a stream; diagnoses read the verdict an object's state carries,
so a recording of one moment (a describe, a pod list, a bundle) has an answer too.
"""

from __future__ import annotations

from collections.abc import Iterable

from agents.diagnosis import (
    alerts,
    containers,
    images,
    jobs,
    network,
    nodes,
    probes,
    sandboxes,
    scheduling,
    volumes,
    workloads,
)
from agents.diagnosis.causes import join, one_per_subject
from agents.diagnosis.model import INCIDENT_CONFIDENCE, Diagnosis, Evidence
from agents.diagnosis.observed import ObjectKey, Observed, observe
from core.events import RawEvent

__all__ = ["FAMILIES", "INCIDENT_CONFIDENCE", "Diagnosis", "Evidence", "ObjectKey", "Observed", "diagnose",
           "diagnose_events", "observe"]

#: every family a diagnosis can be of (the live stage writes each as pattern `diagnosis/<family>`)
FAMILIES = tuple(sorted(m.FAMILY for m in (alerts, containers, images, jobs, network, nodes, probes, scheduling,
                                           volumes, workloads)))

_CONTROLLERS = ("ReplicaSet", "StatefulSet", "DaemonSet", "Job")


def diagnose(observed: Observed) -> list[Diagnosis]:
    """Every root cause the input shows, ranked (see `agents.diagnosis.causes`)."""
    found: list[Diagnosis] = []
    pod_causes: dict[ObjectKey, Diagnosis] = {}
    for key in observed.subjects():
        if key.kind != "Pod":
            continue
        seen = observed.objects.get(key)
        per_pod: list[Diagnosis] = []
        per_pod += images.diagnose_pod(observed, key, seen)
        per_pod += volumes.diagnose_pod(observed, key, seen)
        per_pod += sandboxes.diagnose_pod(observed, key, seen)
        per_pod += scheduling.diagnose_pod(observed, key, seen)
        per_pod += probes.diagnose_pod(observed, key, seen)
        per_pod += nodes.diagnose_eviction(observed, key, seen)
        if seen is not None:
            per_pod += containers.diagnose_pod(observed, seen)
            per_pod += network.diagnose_pod(observed, seen)
        elif not per_pod:
            per_pod += containers.diagnose_events_only(observed, key)
        for best in one_per_subject(list(per_pod)):
            pod_causes[key] = best
        found += per_pod
    for key in observed.subjects():
        seen = observed.objects.get(key)
        found += alerts.diagnose(observed, key)
        if key.kind in _CONTROLLERS:
            found += volumes.diagnose_controller(observed, key)
        if key.kind == "Job":
            found += jobs.diagnose_job(observed, key, seen, pod_causes)
        if seen is None:
            continue
        if key.kind == "PersistentVolumeClaim":
            found += volumes.diagnose_claim(observed, seen)
        elif key.kind == "Node":
            found += nodes.diagnose_node(observed, seen)
        elif key.kind in ("Deployment", "StatefulSet", "DaemonSet"):
            found += workloads.diagnose_workload(observed, seen)
    return join(found, observed)


def diagnose_events(events: Iterable[RawEvent]) -> list[Diagnosis]:
    return diagnose(observe(events))
