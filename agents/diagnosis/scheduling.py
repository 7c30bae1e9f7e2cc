"""Pods the scheduler cannot place: the FailedScheduling message parsed into its reasons.

Fed by: a pod's PodScheduled=False condition (reason Unschedulable) and the scheduler's
FailedScheduling Events. Their message is `0/N nodes are available: <count> <reason>, ...`
(`preemption: ...` after it is dropped), or, from schedulers before 1.17, `No nodes are available
that match all of the following predicates:: <reason> (<count>), ...`. Feeds: Diagnoses of family
`scheduling`, the cause the reason that excludes most nodes, naming the resource, the selector
or the taint.

A pod that failed to schedule and was placed afterwards (a Scheduled Event, a node and a running
state) is a transient, not an incident.
"""

from __future__ import annotations

import re

import msgspec

from agents.diagnosis.model import Diagnosis, from_event, from_state, in_namespace
from agents.diagnosis.observed import KubeEvent, ObjectKey, Observed, Seen
from core.kube.status import condition, node_name, phase

FAMILY = "scheduling"
_AVAILABLE = re.compile(r"\d+/(\d+) nodes are available:?\s*(.*)", re.S)
_OLD = re.compile(r"No nodes are available that match all of the (?:following )?predicates::?\s*(.*)", re.S)
_COUNTED = re.compile(r"^(\d+) (.+)$")
_OLD_ITEM = re.compile(r"^(.+?) \((\d+)\)$")
_INSUFFICIENT = re.compile(r"Insufficient ([\w./-]+)")
_TAINT = re.compile(r"taints? \{?([^}:]+)(?::\s*([^}]*))?\}?")
_NOT_READY_TAINTS = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable",
                     "node.kubernetes.io/unschedulable", "node.kubernetes.io/network-unavailable",
                     "node.cloudprovider.kubernetes.io/uninitialized")
_EXPECTED_TAINTS = ("node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master")


class Reason(msgspec.Struct, frozen=True):
    count: int
    text: str


def parse_reasons(message: str) -> list[Reason]:
    """The per-node reasons of a FailedScheduling message, with how many nodes each excludes."""
    text = message.split(" preemption:", 1)[0].strip()
    found = _AVAILABLE.search(text)
    out: list[Reason] = []
    if found:
        body = found.group(2).strip().rstrip(".")
        for part in re.split(r",\s+(?=\d+ )", body):
            item = _COUNTED.match(part.strip().rstrip("."))
            if item:
                out.append(Reason(int(item.group(1)), item.group(2).strip()))
        return out
    old = _OLD.search(text)
    if old:
        for part in re.split(r",\s*", old.group(1).strip().rstrip(".")):
            item = _OLD_ITEM.match(part.strip())
            if item:
                out.append(Reason(int(item.group(2)), item.group(1).strip()))
            elif part.strip():
                out.append(Reason(1, part.strip()))
        return out
    for known in ("pod has unbound immediate PersistentVolumeClaims", "Too many pods"):
        if known.lower() in text.lower():
            out.append(Reason(1, known))
    return out


def cause_of(reason: str) -> tuple[str, dict[str, str], str]:
    """(cause code, specifics, a sentence) for one scheduler reason."""
    low = reason.lower()
    insufficient = _INSUFFICIENT.search(reason)
    if insufficient:
        resource = insufficient.group(1)
        return "insufficient-resource", {"resource": resource}, f"no node has enough free {resource} for its requests"
    if "unbound immediate persistentvolumeclaims" in low or "persistentvolumeclaim" in low and "not found" in low:
        return "unbound-pvc", {}, "its PersistentVolumeClaim is not bound"
    if "volume node affinity conflict" in low:
        return "volume-node-affinity", {}, "its volume can only be used in a zone or node where it cannot run"
    if "too many pods" in low:
        return "too-many-pods", {}, "the nodes are at their pod limit (Too many pods)"
    if "didn't match pod's node affinity" in low or "node selector" in low or "didn't match node selector" in low \
            or "matchnodeselector" in low:
        return "node-selector-mismatch", {}, "no node matches its nodeSelector / node affinity"
    if "anti-affinity" in low or "pod affinity" in low:
        return "pod-affinity", {}, "its pod (anti-)affinity rules exclude every node"
    if "topology spread" in low:
        return "topology-spread", {}, "its topology spread constraints exclude every node"
    if "free ports" in low:
        return "host-port-conflict", {}, "the host port it asks for is taken on every node"
    if "unschedulable" in low or "not ready" in low or "notready" in low:
        return "node-not-ready", {}, "the nodes are not ready or are cordoned"
    taint = _TAINT.search(reason)
    if taint or "taint" in low:
        key = taint.group(1).strip() if taint else ""
        if key.startswith(_NOT_READY_TAINTS):
            return "node-not-ready", {"taint": key}, f"the nodes are not ready (taint {key})"
        detail = {"taint": key} if key else {}
        what = f" {key}" if key else ""
        return "untolerated-taint", detail, f"the nodes have a taint{what} it does not tolerate"
    return "unschedulable", {}, reason


#: what to act on when nodes fail for different reasons: the nodes a pod's selector and
#: tolerations let through fail on capacity or volumes, so those come first
_ACTIONABLE = {"insufficient-resource": 9, "unbound-pvc": 9, "volume-node-affinity": 8, "too-many-pods": 8,
               "pod-affinity": 7, "topology-spread": 7, "host-port-conflict": 7, "node-not-ready": 6,
               "node-selector-mismatch": 5, "untolerated-taint": 4, "unschedulable": 1}


def _pick(reasons: list[Reason]) -> Reason | None:
    """The reason to act on. One reason excluding every node is it; otherwise the nodes the pod's
    selector and tolerations let through fail for the reason that matters (capacity, volumes...);
    an expected control-plane taint comes last."""
    if not reasons:
        return None
    def weight(r: Reason) -> tuple[int, int, int]:
        expected = any(t in r.text for t in _EXPECTED_TAINTS)
        return (0 if expected else 1, _ACTIONABLE.get(cause_of(r.text)[0], 0), r.count)
    return max(reasons, key=weight)


def _scheduled_later(events: list[KubeEvent], after: KubeEvent) -> bool:
    return any(e.reason == "Scheduled" and e.at >= after.at for e in events)


def diagnose_pod(observed: Observed, pod: ObjectKey, seen: Seen | None) -> list[Diagnosis]:
    events = observed.events_of(pod)
    failed = [e for e in events if e.reason == "FailedScheduling"]
    cond = condition(seen.obj, "PodScheduled") if seen else None
    pending = bool(cond and cond.get("status") == "False")
    message = str(cond.get("message") or "") if pending and cond else ""
    last = max(failed, key=lambda e: e.at) if failed else None
    if not message and last is not None:
        message = last.message
    if not message:
        return []
    placed = seen is not None and bool(node_name(seen.obj)) and phase(seen.obj) in ("Running", "Succeeded")
    if last is not None and not pending and (placed or _scheduled_later(events, last)):
        return []  # it waited, then it was placed: a start-up transient
    reasons = parse_reasons(message)
    chosen = _pick(reasons)
    cause, detail, sentence = cause_of(chosen.text if chosen else message)
    total = max((r.count for r in reasons), default=0)
    summary = message.split(" preemption:", 1)[0].strip()
    ongoing = pending or (last is not None and (observed.recent(last.at)))
    evidence = [from_event(last)] if last else []
    if seen is not None and pending:
        reason = cond.get("reason", "") if cond else ""
        evidence.insert(0, from_state(seen, f"PodScheduled=False ({reason}): {message}"))
    detail["reasons"] = "; ".join(f"{r.count} {r.text}" for r in reasons)
    if total:
        detail["nodes"] = str(total)
    caused_by = _claim(seen) if cause == "unbound-pvc" and seen else None
    if caused_by is not None:
        sentence += f" (claim {caused_by.name})"
        detail["claim"] = caused_by.name
    if cause == "node-selector-mismatch" and seen is not None:
        wanted = _node_selector(seen.obj)
        if wanted:
            sentence += f" ({wanted})"
            detail["selector"] = wanted
    text = f"Pod {pod.name}{in_namespace(pod)} cannot be scheduled: {sentence} ({summary})"
    return [Diagnosis(family=FAMILY, cause=cause, subject=pod, message=text,
                      confidence=0.85 if chosen else 0.6, remediation=_remedy(cause, detail),
                      at=min((e.at for e in failed), default=seen.at if seen else observed.end or last.at),  # type: ignore[union-attr]
                      ongoing=ongoing, evidence=evidence, detail=detail, caused_by=caused_by,
                      chain=[f"{pod}: Pending, {sentence}"])]


def _node_selector(pod: dict) -> str:
    """The pod's nodeSelector and required node-affinity terms, as `key=value` / `key In (a, b)`."""
    spec = pod.get("spec") or {}
    terms = [f"{k}={v}" for k, v in (spec.get("nodeSelector") or {}).items()]
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution") or {}
    for term in required.get("nodeSelectorTerms") or []:
        for expr in term.get("matchExpressions") or []:
            values = ", ".join(expr.get("values") or [])
            terms.append(f"{expr.get('key')} {expr.get('operator')} ({values})" if values
                         else f"{expr.get('key')} {expr.get('operator')}")
    return "; ".join(terms)


def _claim(seen: Seen) -> ObjectKey | None:
    for volume in (seen.obj.get("spec") or {}).get("volumes") or []:
        claim = (volume.get("persistentVolumeClaim") or {}).get("claimName") if isinstance(volume, dict) else None
        if claim:
            return ObjectKey("PersistentVolumeClaim", seen.key.namespace, str(claim))
    return None


def _remedy(cause: str, detail: dict[str, str]) -> str:
    resource = detail.get("resource", "the resource")
    return {
        "insufficient-resource": f"No node has {resource} free for the pod's requests: lower the requests, add "
                                 f"nodes that have {resource} (a node group with it, the cluster autoscaler's "
                                 "max size), or free capacity (`kubectl describe nodes`, Allocated resources).",
        "node-selector-mismatch": "Compare the pod's nodeSelector/affinity with the nodes' labels "
                                  "(`kubectl get nodes --show-labels`): fix the selector or label a node.",
        "untolerated-taint": f"Add a toleration for {detail.get('taint', 'the taint')} to the pod, or remove the "
                             "taint from a node it should run on (`kubectl taint nodes NODE KEY-`).",
        "unbound-pvc": "The pod waits for its PersistentVolumeClaim: see why the claim is Pending "
                       "(`kubectl describe pvc`): its StorageClass, a provisioner, or a matching PV.",
        "too-many-pods": "The nodes are at their max pods: add nodes or raise the kubelet's maxPods.",
        "node-not-ready": "The nodes are NotReady or cordoned: `kubectl describe node` for the kubelet's "
                          "condition (network plugin, runtime, PLEG), then uncordon.",
    }.get(cause, "Read the FailedScheduling message per node (`kubectl describe pod`) and change the pod's "
                 "constraints or the nodes to satisfy them.")
