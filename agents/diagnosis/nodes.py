"""Nodes that fail their pods: NotReady, memory / disk / PID pressure, and the evictions they cause.

Fed by: Node objects (conditions Ready, MemoryPressure, DiskPressure, PIDPressure), the node
controller's and kubelet's Events (NodeNotReady, NodeHasDiskPressure, EvictionThresholdMet...),
and pods evicted by the kubelet (status.reason Evicted, message `The node was low on resource:
ephemeral-storage. ...`; Events `Evicted`). Feeds: Diagnoses of family `nodes`: one per node that
is unhealthy (its pods as members), and one per evicted pod naming the resource and the node
(`caused_by` the node).
"""

from __future__ import annotations

import re

from agents.diagnosis.model import Diagnosis, excerpt, from_event, from_state, in_namespace
from agents.diagnosis.observed import ObjectKey, Observed, Seen
from core.kube.status import condition, node_name

FAMILY = "nodes"
_LOW_ON = re.compile(r"low on resource: ([\w-]+(?:\.[\w-]+)*)", re.I)
_HAD_CONDITION = re.compile(r"had condition: \[(\w+)\]", re.I)
_PRESSURE = {"MemoryPressure": ("node-memory-pressure", "memory"),
             "DiskPressure": ("node-disk-pressure", "disk (ephemeral-storage)"),
             "PIDPressure": ("node-pid-pressure", "process ids")}
_RESOURCE_CAUSE = {"memory": "node-memory-pressure", "ephemeral-storage": "node-disk-pressure",
                   "nodefs": "node-disk-pressure", "imagefs": "node-disk-pressure", "pids": "node-pid-pressure",
                   "storage": "node-disk-pressure"}
REMEDIES = {
    "node-not-ready": "`kubectl describe node {node}`: the Ready condition's message says why the kubelet is not "
                      "ready (container runtime, network plugin, PLEG) or that it stopped posting status (the "
                      "machine is down or cut off); check the kubelet's journal on the node.",
    "node-memory-pressure": "Node {node} is short of memory: set requests and limits on its pods (BestEffort pods "
                            "go first), spread them, or add memory/nodes.",
    "node-disk-pressure": "Node {node} is short of disk ({resource}): clean images and logs, give pods "
                          "ephemeral-storage limits, or a larger disk; emptyDir and container logs count.",
    "node-pid-pressure": "Node {node} is short of process ids: find the pod that forks without limit and set "
                         "pod PID limits (podPidsLimit).",
}


def diagnose_node(observed: Observed, seen: Seen) -> list[Diagnosis]:
    node = seen.key
    ready = condition(seen.obj, "Ready")
    pods = sorted(k for k, s in observed.objects.items() if k.kind == "Pod" and node_name(s.obj) == node.name)
    out: list[Diagnosis] = []
    if ready is not None and ready.get("status") in ("False", "Unknown"):
        why = str(ready.get("message") or ready.get("reason")
                  or f"its Ready condition is {ready.get('status')} (no reason recorded)")
        # a `kubectl get nodes` row shows the condition's status only, no reason
        reason = f" ({ready['reason']})" if ready.get("reason") else ""
        events = [e for e in observed.events_of(node) if e.reason in ("NodeNotReady", "NodeNotSchedulable")]
        out.append(Diagnosis(
            family=FAMILY, cause="node-not-ready", subject=node,
            message=f"Node {node.name} is NotReady{reason}: {why}",
            confidence=0.85, remediation=REMEDIES["node-not-ready"].format(node=node.name),
            at=min([e.at for e in events], default=seen.at), ongoing=True,
            evidence=[from_state(seen, f"Ready={ready.get('status')}{reason}: {why}")]
            + [from_event(e) for e in events[-1:]],
            members=pods, detail={"node": node.name}, chain=[f"{node}: NotReady: {why}"]))
    for kind, (cause, what) in _PRESSURE.items():
        cond = condition(seen.obj, kind)
        if cond is None or cond.get("status") != "True":
            continue
        out.append(Diagnosis(
            family=FAMILY, cause=cause, subject=node,
            message=f"Node {node.name} is under {what} pressure: {cond.get('message', '')}",
            confidence=0.8, remediation=REMEDIES[cause].format(node=node.name, resource=what),
            at=seen.at, ongoing=True, evidence=[from_state(seen, f"{kind}=True: {cond.get('message', '')}")],
            members=pods, detail={"node": node.name, "resource": what}, chain=[f"{node}: {kind}"]))
    return out


def diagnose_eviction(observed: Observed, pod: ObjectKey, seen: Seen | None) -> list[Diagnosis]:
    status = (seen.obj.get("status") or {}) if seen else {}
    events = [e for e in observed.events_of(pod) if e.reason == "Evicted"]
    if status.get("reason") != "Evicted" and not events:
        return []
    text = str(status.get("message") or "") or (max(events, key=lambda e: e.at).message if events else "")
    low_on = _LOW_ON.search(text)
    had = _HAD_CONDITION.search(text)
    resource = low_on.group(1) if low_on else ""
    cause = _RESOURCE_CAUSE.get(resource, "") or (_PRESSURE.get(had.group(1), ("", ""))[0] if had else "")
    cause = cause or "evicted"
    node = (node_name(seen.obj) if seen else "") or next((e.node for e in events if e.node), "")
    node_key = ObjectKey("Node", "", node) if node else None
    on = f" on node {node}" if node else ""
    what = f"the node ran low on {resource}" if resource else (f"the node had {had.group(1)}" if had else
                                                                "the kubelet evicted it")
    shown = f" ({excerpt(text, 240)})" if text else ""  # a `kubectl get pods` row shows no message
    message = f"Pod {pod.name}{in_namespace(pod)} was evicted{on}: {what}{shown}"
    evidence = ([from_state(seen, f"phase {status.get('phase', '')}, reason Evicted: {text}")] if seen else [])
    evidence += [from_event(e) for e in events[-1:]]
    remedy = REMEDIES.get(cause, "See why the kubelet evicted it (`kubectl describe node`).")
    # the pod the kubelet chose to reclaim from ("low on memory ... was using 1766160Ki") leads the pods it
    # then refused to admit ("The node had condition: [MemoryPressure]"): it says what used the memory
    return [Diagnosis(family=FAMILY, cause=cause, subject=pod, message=message, confidence=0.85 if low_on else 0.8,
                      remediation=remedy.format(node=node or "the node", resource=resource or "disk"),
                      at=min([e.at for e in events], default=seen.at if seen else observed.end),  # type: ignore[arg-type]
                      ongoing=True, evidence=evidence, caused_by=node_key,
                      detail={"resource": resource, "node": node},
                      chain=[f"{node_key or 'node'}: low on {resource or 'resources'}", f"{pod}: Evicted"])]
