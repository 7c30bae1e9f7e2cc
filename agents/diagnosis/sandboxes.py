"""Pods stuck in ContainerCreating because the node cannot make their sandbox: the CNI plugin fails
(its address pool used up, or another plugin error) or the container runtime does (a RuntimeClass
handler it does not know, a shim that fails).

Fed by: the kubelet's FailedCreatePodSandBox Events about a pod (`Failed to create pod sandbox: rpc
error: ... failed to setup network for sandbox "...": plugin type="bridge" failed (add): failed to
allocate for range 0: no IP addresses available in range set: A-B`), the pod's state (Pending, its
containers waiting in ContainerCreating, its node). Feeds: Diagnoses of family `network` (the CNI's
causes, `caused_by` the node whose pool or plugin fails) or `containers` (the runtime's). Pure.

A sandbox that failed once and then came up (the pod Running, or a sandbox change after the last
failure) is not a failure any more: the kubelet retries on its own.
"""

from __future__ import annotations

import re

from agents.diagnosis.model import Diagnosis, excerpt, from_event, from_state, in_namespace
from agents.diagnosis.observed import KubeEvent, ObjectKey, Observed, Seen
from core.kube.status import containers, phase

NETWORK, RUNTIME = "network", "containers"
_EXHAUSTED = re.compile(r"no IP addresses available|failed to allocate for range|range is full", re.I)
_RANGE = re.compile(r"in range set:?\s*(?P<range>[0-9a-fA-F.:]+-[0-9a-fA-F.:]+)")
_CNI = re.compile(r"failed to (?:setup|set up) network for sandbox|networkPlugin cni failed|plugin type=", re.I)
_PLUGIN = re.compile(r'plugin type=\\?"(?P<plugin>[\w.-]+)\\?"')
_HANDLER = re.compile(r'no runtime for "(?P<handler>[^"]*)" is configured|'
                      r'RuntimeHandler "(?P<other>[^"]*)" not supported', re.I)
REMEDIES = {
    "pod-ip-exhausted": "Node {node} has no pod address left: `kubectl cordon {node}` so new pods go elsewhere; on the "
                        "node, compare host-local's reservations (`ls /var/lib/cni/networks/<network>/`, one file "
                        "per address naming its container) with the runtime's sandboxes (`crictl pods -q`) and "
                        "remove the ones whose container is gone (leaked by a runtime crash or an interrupted "
                        "teardown), then `kubectl uncordon {node}`. If every reservation is live, lower the "
                        "kubelet's maxPods or give the node a larger pod CIDR.",
    "cni-failure": "The CNI plugin {plugin} fails on node {node}: read the error in the Event and the CNI "
                   "daemon's pods and logs there (`kubectl -n kube-system get pods -o wide --field-selector "
                   "spec.nodeName={node}`), its config in /etc/cni/net.d, and its binaries in /opt/cni/bin.",
    "runtime-handler-missing": "The pod asks for RuntimeClass handler {handler}, which the runtime on node {node} "
                               "does not have: configure it in the runtime (containerd's "
                               "plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.{handler}), or fix the "
                               "RuntimeClass / runtimeClassName, or schedule the pod onto nodes that have it.",
    "sandbox-failure": "The runtime on node {node} cannot create the pod's sandbox: read the Event's error, the "
                       "runtime's log there (`journalctl -u containerd`) and the pause image.",
}


def _cause(message: str) -> tuple[str, str, dict[str, str]]:
    """(cause, family, detail) of one FailedCreatePodSandBox message."""
    if _EXHAUSTED.search(message):
        found = _RANGE.search(message)
        return "pod-ip-exhausted", NETWORK, {"range": found["range"] if found else ""}
    handler = _HANDLER.search(message)
    if handler:
        return "runtime-handler-missing", RUNTIME, {"handler": handler["handler"] or handler["other"] or ""}
    if _CNI.search(message):
        plugin = _PLUGIN.search(message)
        return "cni-failure", NETWORK, {"plugin": plugin["plugin"] if plugin else ""}
    return "sandbox-failure", RUNTIME, {}


def _came_up(observed: Observed, pod: ObjectKey, seen: Seen | None, last: KubeEvent) -> bool:
    """The sandbox was made after the last failure: the pod runs, or its containers started since."""
    if seen is not None and phase(seen.obj) in ("Running", "Succeeded"):
        return True
    if seen is not None and any(c.running or c.terminated or c.last for c in containers(seen.obj)):
        return True
    return any(e.reason in ("Pulled", "Created", "Started") and e.at >= last.at for e in observed.events_of(pod))


def diagnose_pod(observed: Observed, pod: ObjectKey, seen: Seen | None) -> list[Diagnosis]:
    failed = [e for e in observed.events_of(pod) if e.reason == "FailedCreatePodSandBox"]
    if not failed:
        return []
    last = max(failed, key=lambda e: e.at)
    if _came_up(observed, pod, seen, last):
        return []
    cause, family, detail = _cause(last.message)
    node = ((seen.obj.get("spec") or {}).get("nodeName") if seen is not None else "") or last.node
    detail = {"node": node, **detail}
    runtime_class = str((seen.obj.get("spec") or {}).get("runtimeClassName") or "") if seen is not None else ""
    caused_by: ObjectKey | None = None
    if family == NETWORK and node:
        caused_by = ObjectKey("Node", "", node)
    elif cause == "runtime-handler-missing" and runtime_class:
        caused_by = ObjectKey("RuntimeClass", "", runtime_class)
    what = {"pod-ip-exhausted": f"node {node or '?'} has no pod IP address left"
                                + (f" (its CNI range {detail['range']} is used up)" if detail.get("range") else ""),
            "cni-failure": f"the CNI plugin{' ' + detail['plugin'] if detail.get('plugin') else ''} fails on node "
                           f"{node or '?'}",
            "runtime-handler-missing": f"the runtime on node {node or '?'} has no handler "
                                       f"{detail.get('handler') or '?'}"
                                       + (f" (RuntimeClass {runtime_class})" if runtime_class else ""),
            "sandbox-failure": f"the runtime on node {node or '?'} cannot create its sandbox"}[cause]
    times = sum(e.count for e in failed)
    message = (f"Pod {pod.name}{in_namespace(pod)} is stuck in ContainerCreating: {what} "
               f"(FailedCreatePodSandBox x{times}: {excerpt(last.message, 240)})")
    evidence = [from_event(e) for e in failed[-2:]]
    if seen is not None:
        waiting = [c for c in containers(seen.obj) if c.waiting_reason]
        state = f"phase {phase(seen.obj) or 'Pending'}" + (f", container {waiting[0].name} waiting in "
                                                             f"{waiting[0].waiting_reason}" if waiting else "")
        evidence.insert(0, from_state(seen, state))
    remedy = REMEDIES[cause].format(node=node or "<node>", plugin=detail.get("plugin") or "",
                                    handler=detail.get("handler") or "<handler>")
    root = {"pod-ip-exhausted": f"Node/{node}: no pod address left",
            "runtime-handler-missing": f"{caused_by or 'RuntimeClass'}: handler {detail.get('handler') or '?'} "
                                       f"not configured in the runtime on node {node or '?'}"}.get(
        cause, f"Node/{node}: {cause.replace('-', ' ')}")
    return [Diagnosis(family=family, cause=cause, subject=pod, message=message,
                      confidence=0.9 if cause in ("pod-ip-exhausted", "runtime-handler-missing") else 0.75,
                      remediation=remedy, at=min(e.at for e in failed), ongoing=observed.recent(last.at, 900),
                      evidence=evidence, caused_by=caused_by, detail=detail,
                      chain=[root, f"{pod}: FailedCreatePodSandBox, stuck in ContainerCreating"])]
