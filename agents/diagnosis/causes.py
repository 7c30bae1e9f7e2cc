"""Causes joined to symptoms: the diagnoses of one input folded into ranked root causes.

Fed by: every family's Diagnoses of one input (`agents.diagnosis.diagnose`) and what the input
holds around them (`Observed`: owners, ReplicaSet revisions, nodes). Feeds: the ranked roots that
`tapio analyze` prints and the live diagnose stage writes.

Rules, in order:
1. one hypothesis per object: the most specific wins (a liveness probe that kills a container
   explains its exit 137; a pull or a missing ConfigMap explains a container that never ran);
2. a Job, a node or a claim that explains pods becomes their root, the pods its members;
3. pods of one workload failing the same way are one hypothesis (the others are members), and a
   workload's own degradation joins its pods' root instead of competing with it;
4. a pod of a Deployment's newest revision carries that rollout (its pod-template diff) as the
   first link of its chain; while the previous ReplicaSet still serves, the rollout is bad
   (cause `bad-rollout`, the pod's own cause kept as `pod_cause`), and a restart that changed
   nothing else in the template points at what the pods read at start (the ConfigMap or Secret);
5. ranked: still failing at the end first, then by confidence, then the earlier failure.
"""

from __future__ import annotations

from collections import defaultdict

import msgspec

from agents.diagnosis.model import Diagnosis, in_namespace
from agents.diagnosis.observed import ObjectKey, Observed, Rollout, Seen, workload_of
from core.kube.changes import RESTARTED_AT
from core.kube.objects import parse_time
from core.kube.refs import IMAGE_PULL_SECRET, PodSpec, pod_refs
from core.kube.status import owner

#: for one object, which family's diagnosis explains the others (higher wins at equal standing)
_SPECIFICITY = {"alerts": 0, "volumes": 6, "images": 6, "nodes": 5, "scheduling": 5, "network": 4, "probes": 3,
                "jobs": 3, "containers": 2, "workloads": 1}
_GENERIC_CONTAINER = frozenset({"killed", "crash-loop", "app-error-exit", "command-exits"})


def _rank_for_subject(d: Diagnosis) -> tuple[int, int, float]:
    specific = _SPECIFICITY.get(d.family, 0)
    if d.family == "containers" and d.cause not in _GENERIC_CONTAINER:
        specific = 4  # a cause read from the logs or the state outranks a probe's symptom
    return (1 if d.ongoing else 0, specific, d.confidence)


def one_per_subject(found: list[Diagnosis]) -> list[Diagnosis]:
    by_subject: dict[ObjectKey, list[Diagnosis]] = defaultdict(list)
    for d in found:
        by_subject[d.subject].append(d)
    out = []
    for group in by_subject.values():
        group.sort(key=_rank_for_subject, reverse=True)
        best = group[0]
        for other in group[1:]:
            best.chain = best.chain + [line for line in other.chain if line not in best.chain]
            best.evidence = best.evidence + [e for e in other.evidence[:2] if e not in best.evidence]
        out.append(best)
    return out


def _absorb(root: Diagnosis, member: Diagnosis) -> None:
    if member.subject not in root.members and member.subject != root.subject:
        root.members.append(member.subject)
    root.members += [m for m in member.members if m not in root.members and m != root.subject]
    root.chain = root.chain + [line for line in member.chain if line not in root.chain]


#: a failure first seen this close to the end of the input, on a pod placed in that time, may still
#: settle (a Secret an operator is about to create, a volume being attached): not yet an incident
SETTLING_S = 180


#: failures that resolve by themselves while things start (an operator creates the Secret, the
#: volume gets attached, a node joins); a pull denied or a crashing command does not
_MAY_SETTLE = frozenset({"volumes", "scheduling"})


def _settling(d: Diagnosis, observed: Observed) -> bool:
    if d.family not in _MAY_SETTLE or d.subject.kind != "Pod" or observed.end is None \
            or (observed.end - d.at).total_seconds() > SETTLING_S:
        return False
    placed = [e.at for e in observed.events_of(d.subject) if e.reason == "Scheduled"]
    return bool(placed) and (observed.end - max(placed)).total_seconds() <= SETTLING_S


def _sibling_scheduled_since(d: Diagnosis, observed: Observed) -> bool:
    """A pod of the same ReplicaSet/Job was placed after this one last failed to be: what blocked it
    (no node yet, a node not ready) has passed."""
    if d.family != "scheduling" or d.subject.kind != "Pod" or "-" not in d.subject.name:
        return False
    last = max((e.at for e in observed.events_of(d.subject) if e.reason == "FailedScheduling"), default=None)
    prefix = d.subject.name.rsplit("-", 1)[0] + "-"
    return last is not None and any(
        key.kind == "Pod" and key != d.subject and key.namespace == d.subject.namespace and key.name.startswith(prefix)
        and any(e.reason == "Scheduled" and e.at > last for e in events)
        for key, events in observed.events.items())


def join(found: list[Diagnosis], observed: Observed) -> list[Diagnosis]:
    for d in found:
        if d.ongoing and _sibling_scheduled_since(d, observed):
            d.ongoing = False
            d.message += " (a pod of the same workload was scheduled since: resolved)"
        elif d.ongoing and _settling(d, observed):
            d.confidence = min(d.confidence, 0.45)
            d.message += (f" (first seen {int((observed.end - d.at).total_seconds())} s before the end of the input, "  # type: ignore[operator]
                          "on a pod placed then: it may still settle)")
    roots = one_per_subject(found)
    by_subject = {d.subject: d for d in roots}
    absorbed: set[ObjectKey] = set()
    # 2. Jobs, nodes and claims that explain pods
    for d in roots:
        if d.family == "jobs":
            absorbed.update(m for m in d.members if m in by_subject)
        if d.family == "nodes" and d.subject.kind == "Node":
            for pod, other in by_subject.items():
                if pod in absorbed:
                    continue
                waits_for_nodes = other.family == "scheduling" and other.cause == "node-not-ready" \
                    and d.cause == "node-not-ready"
                if other.caused_by == d.subject or waits_for_nodes or (other.cause == "node-not-ready"
                                                                       and pod in d.members):
                    _absorb(d, other)
                    absorbed.add(pod)
        if d.subject.kind == "PersistentVolumeClaim":
            for pod, other in by_subject.items():
                if other.caused_by == d.subject:
                    _absorb(d, other)
                    d.message += f"; pod {pod.name} waits for it"
                    absorbed.add(pod)
        if d.family == "volumes" and d.subject.kind in ("ReplicaSet", "StatefulSet", "Job", "DaemonSet"):
            workload = _workload_of_controller(observed, d.subject)
            if workload in by_subject and by_subject[workload].family == "workloads":
                _absorb(d, by_subject[workload])
                absorbed.add(workload)
    roots = [d for d in roots if d.subject not in absorbed]
    # 3. one hypothesis per workload and cause; workloads fold into their pods' root
    groups: dict[tuple[ObjectKey | None, str], list[Diagnosis]] = defaultdict(list)
    for d in roots:
        workload = workload_of(observed, d.subject) if d.subject.kind == "Pod" else None
        groups[(workload, d.cause) if workload else (d.subject, d.cause)].append(d)
    merged: list[Diagnosis] = []
    for (workload, _), group in groups.items():
        group.sort(key=lambda d: (not d.ongoing, -d.confidence, d.at, d.subject))
        head = group[0]
        for other in group[1:]:
            _absorb(head, other)
        if workload is not None and workload.kind != "Pod" and workload not in head.members:
            head.detail.setdefault("workload", str(workload))
        if len(group) > 1:
            more = len(group) - 1
            head.message += f" (and {more} more {'pod' if more == 1 else 'pods'} of {workload})"
        merged.append(head)
    pods_by_workload: dict[ObjectKey, list[Diagnosis]] = defaultdict(list)
    for d in merged:
        parts = d.detail.get("workload", "").split("/", 2)
        if len(parts) == 3:
            pods_by_workload[ObjectKey(*parts)].append(d)
    out: list[Diagnosis] = []
    for d in merged:
        if d.family == "workloads" and pods_by_workload.get(d.subject):
            best = max(pods_by_workload[d.subject], key=lambda x: (x.ongoing, x.confidence))
            folded = [line for line in d.chain if line not in best.chain]
            # a node-side cause comes first, the workload's state is its effect; else the workload leads
            infrastructure = best.caused_by is not None and best.caused_by.kind in _INFRASTRUCTURE
            best.chain = best.chain + folded if infrastructure else folded + best.chain
            best.message += f"; {d.message}"
            best.detail["workload_cause"] = d.cause
            if d.caused_by and best.caused_by is None:
                best.caused_by = d.caused_by
            continue
        out.append(d)
    for d in out:
        _join_rollout(d, observed)
    out.sort(key=lambda d: (not d.ongoing, -weight(d), d.at, str(d.subject)))
    return out


def weight(d: Diagnosis) -> float:
    """Confidence, raised a little for each further object it explains (up to 4) and for a cause
    read from the logs: of two ongoing failures, the one with the wider blast radius and the
    more specific evidence is the one to look at first."""
    return round(d.confidence + 0.02 * min(len(d.members), 4) + (0.03 if "log" in d.detail else 0.0), 3)


def _workload_of_controller(observed: Observed, controller: ObjectKey) -> ObjectKey | None:
    seen = observed.objects.get(controller)
    found = owner(seen.obj) if seen else None
    return ObjectKey(found[0], controller.namespace, found[1]) if found else None


#: kinds a pod's cause can be that no rollout of its workload changes
_INFRASTRUCTURE = frozenset({"Node", "RuntimeClass"})


def _join_rollout(d: Diagnosis, observed: Observed) -> None:
    """A pod of a Deployment's newest revision: that rollout is the first link of its chain. While
    the previous ReplicaSet still serves, the rollout is bad: the hypothesis is the Deployment's. A cause
    on the node's side (its pod addresses, its runtime: `caused_by` a Node or RuntimeClass) stays the
    root: the same pod of any revision would fail there."""
    if d.subject.kind != "Pod" or (d.caused_by is not None and d.caused_by.kind in _INFRASTRUCTURE):
        return
    seen = observed.objects.get(d.subject)
    rs = owner(seen.obj) if seen else None
    if not seen or not rs or rs[0] != "ReplicaSet":
        return
    workload = workload_of(observed, d.subject)
    rollouts = sorted((r for r in observed.rollouts if r.deployment == workload), key=lambda r: r.at)
    if not rollouts or rollouts[-1].replicaset.name != rs[1]:
        return
    newest = rollouts[-1]
    d.caused_by = newest.replicaset
    d.chain = [f"{newest.deployment}: rollout {newest.message}"] + d.chain
    old = [s for k, s in observed.objects.items() if k.kind == "ReplicaSet" and k.namespace == d.subject.namespace
           and k.name != rs[1] and owner(s.obj) == ("Deployment", newest.deployment.name)
           and int((s.obj.get("status") or {}).get("readyReplicas") or 0) > 0]
    d.confidence = min(0.95, d.confidence + 0.05)
    d.detail["rollout"] = newest.message
    serving = old[0] if old else None
    ready = int((serving.obj.get("status") or {}).get("readyReplicas") or 0) if serving else 0
    if serving is not None:
        d.detail["previous_replicaset"] = serving.key.name
        if d.ongoing:
            _bad_rollout(d, observed, seen, newest, serving, ready)
            return
    d.message += f"; it began with the rollout of {newest.deployment.kind} {newest.deployment.name}: {newest.message}"
    if serving is not None:
        d.message += (f" (the previous ReplicaSet {serving.key.name} still serves {ready} ready "
                      f"{'pod' if ready == 1 else 'pods'})")


#: a new revision failing while the previous one serves, whatever the pods' own failure says
BAD_ROLLOUT_CONFIDENCE = 0.8
#: a template change that leaves what the pods run as it was: the restart stamp (`kubectl rollout restart`)
_RESTART_ONLY = frozenset({RESTARTED_AT})


def _bad_rollout(d: Diagnosis, observed: Observed, pod: Seen, rollout: Rollout, serving: Seen, ready: int) -> None:
    """The new revision's pod fails while the previous one serves: the Deployment's rollout is the
    root. A restart that changed nothing in the template (`kubectl rollout restart`) rolled out what
    the pods read at start: the ConfigMaps and Secrets they use."""
    deployment = rollout.deployment
    d.detail["pod_cause"] = d.cause
    d.cause = "bad-rollout"
    if deployment not in d.members:
        d.members.insert(0, deployment)
    served = f"{ready} ready {'pod' if ready == 1 else 'pods'}"
    read = _read_at_start(pod, observed) if rollout.keys and set(rollout.keys) <= _RESTART_ONLY else []
    behind = _changed_input(read, observed, serving)
    said = ""
    if behind is not None:
        key, what = behind
        d.caused_by = key
        d.detail["config"] = str(key)
        d.chain = [f"{key}: {what}"] + d.chain
        said = (f"; the pod template is unchanged but for the restart, so what the new pods read differently "
                f"at start is behind it: {key.kind} {key.name} ({what})")
    elif read:
        said = ("; the pod template is unchanged but for the restart: what the new pods read at start changed "
                f"({', '.join(f'{k.kind} {k.name}' for k in read)})")
    change = rollout.message.removeprefix(f"Deployment {deployment.namespace}/{deployment.name}: ")
    d.message = (f"Bad rollout of Deployment {deployment.name}{in_namespace(deployment)} ({change}): the new "
                 f"revision fails: {d.message}{said} (the previous ReplicaSet {serving.key.name} still serves "
                 f"{served})")
    # the new revision fails where the previous one serves: the rollout is the difference
    d.confidence = max(d.confidence, BAD_ROLLOUT_CONFIDENCE + (0.05 if behind is not None else 0.0))
    undo = f"`kubectl rollout undo deployment/{deployment.name} -n {deployment.namespace}`"
    fix = (f" Then correct {d.caused_by.kind} {d.caused_by.name} (compare it with what the serving pods started "
           f"with) and restart the rollout." if behind is not None else "")
    d.remediation = f"Roll back while you fix it: {undo} returns to the revision that served.{fix} {d.remediation}"


def _read_at_start(pod: Seen, observed: Observed) -> list[ObjectKey]:
    """The ConfigMaps and Secrets a pod's containers read (env, envFrom, volumes), in spec order, once;
    not an image pull secret, not the API server's CA bundle every pod mounts."""
    try:
        spec = msgspec.convert(pod.obj.get("spec") or {}, PodSpec)
    except msgspec.ValidationError:
        return []
    out: list[ObjectKey] = []
    for ref in pod_refs(spec):
        key = ObjectKey(ref.kind, pod.key.namespace, ref.name)
        if ref.kind in ("ConfigMap", "Secret") and ref.via != IMAGE_PULL_SECRET and ref.name != _CA_BUNDLE \
                and key not in out:
            out.append(key)
    return out


_CA_BUNDLE = "kube-root-ca.crt"


def _changed_input(read: list[ObjectKey], observed: Observed, serving: Seen) -> tuple[ObjectKey, str] | None:
    """Which of what the pods read changed: the one edited since the serving ReplicaSet was created
    (a live stream saw the edit), else the only one they read; None when that cannot be told."""
    created = parse_time(str((serving.obj.get("metadata") or {}).get("creationTimestamp") or ""))
    edited = [k for k in read if k in observed.objects and observed.objects[k].action == "MODIFIED"
              and created is not None and observed.objects[k].at > created]
    found = edited[0] if len(edited) == 1 else read[0] if len(read) == 1 else None
    if found is None:
        return None
    seen = observed.objects.get(found)
    what = "read by every new pod at start"
    if seen is not None and found.kind == "ConfigMap":
        data = seen.obj.get("data") or {}
        shown = [f"{k} = {v!r}" for k, v in sorted(data.items()) if isinstance(v, str) and len(v) <= 40
                 and "\n" not in v][:3]
        if shown:
            what = f"now {', '.join(shown)}"
    if found in edited and seen is not None:
        what += f", edited at {seen.at:%H:%M:%S}Z"
    return found, what
