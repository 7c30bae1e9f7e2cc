"""Traffic that fails: a NetworkPolicy that denies what a pod's logs fail on, and a dependency
(named in the logs) that is down or does not resolve while the pods themselves look healthy.

Fed by: pods (labels, readiness), their log lines with network signals (dns-failure,
connection-refused, connection-timeout), NetworkPolicies (podSelector, policyTypes, egress rules)
and ConfigMaps (whose values may name the dependency's host). Feeds: Diagnoses of family `network`,
`caused_by` the NetworkPolicy or the ConfigMap that names the dependency.
"""

from __future__ import annotations

from agents.diagnosis.logs import classify, endpoint
from agents.diagnosis.model import Diagnosis, from_log, from_state, in_namespace
from agents.diagnosis.observed import ObjectKey, Observed, Seen
from core.kube.selectors import LabelSelector
from core.kube.status import containers, labels, phase

FAMILY = "network"
NETWORK_CAUSES = frozenset({"dns-resolution", "dependency-unreachable"})


def selects(policy: dict, pod_labels: dict[str, str]) -> bool:
    """A NetworkPolicy's podSelector (`{}`: every pod of its namespace) selects these labels."""
    selector = (policy.get("spec") or {}).get("podSelector")
    return LabelSelector.of(selector, empty_selects_all=True).matches(pod_labels)


def denies_egress_port(policy: dict, port: int) -> bool:
    """Does this policy (once it selects a pod) leave egress to `port` denied?"""
    spec = policy.get("spec") or {}
    types = spec.get("policyTypes") or (["Ingress", "Egress"] if "egress" in spec else ["Ingress"])
    if "Egress" not in types:
        return False
    for rule in spec.get("egress") or []:
        ports = rule.get("ports") or []
        if not ports or any(p.get("port") in (port, str(port)) or p.get("port") is None for p in ports):
            return False
    return True


def _egress_policies(observed: Observed, pod: Seen, port: int) -> list[Seen]:
    pod_labels = labels(pod.obj)
    return [p for p in observed.of_kind("NetworkPolicy") if p.key.namespace == pod.key.namespace
            and selects(p.obj, pod_labels) and denies_egress_port(p.obj, port)]


def _allowing(observed: Observed, pod: Seen, port: int) -> bool:
    """Another policy selecting the pod allows the port (policies add up)."""
    pod_labels = labels(pod.obj)
    return any(p.key.namespace == pod.key.namespace and selects(p.obj, pod_labels)
               and not denies_egress_port(p.obj, port) and "Egress" in ((p.obj.get("spec") or {}).get("policyTypes")
                                                                        or [])
               for p in observed.of_kind("NetworkPolicy"))


def _config_naming(observed: Observed, namespace: str, host: str) -> ObjectKey | None:
    if not host:
        return None
    for cm in observed.of_kind("ConfigMap"):
        if cm.key.namespace == namespace and any(host in str(v) for v in (cm.obj.get("data") or {}).values()):
            return cm.key
    return None


def diagnose_pod(observed: Observed, seen: Seen) -> list[Diagnosis]:
    pod = seen.key
    found = classify([line for line in observed.logs_of(pod)])
    if found is None or found.cause not in NETWORK_CAUSES:
        return []
    port = 53 if found.cause == "dns-resolution" else int(found.detail.get("port", "0") or 0)
    policies = _egress_policies(observed, seen, port) if port else []
    target = endpoint(found.detail) or found.detail.get("host", "")
    recent = observed.recent(found.line.at)
    if policies and not _allowing(observed, seen, port):
        policy = policies[0]
        what = "DNS (port 53)" if port == 53 else f"port {port}"
        message = (f"Pod {pod.name}{in_namespace(pod)} cannot reach {what}: NetworkPolicy "
                   f"{policy.key.name} selects it and denies egress to {what}; its log: {found.line.text[:200]}")
        return [Diagnosis(
            family=FAMILY, cause="networkpolicy-denies-egress", subject=pod, message=message, confidence=0.85,
            remediation=f"Allow the egress the pod needs in NetworkPolicy {policy.key.name} (for DNS: UDP and TCP "
                        "53 to kube-system's kube-dns pods), or narrow its podSelector.",
            at=found.line.at, ongoing=recent, caused_by=policy.key,
            evidence=[from_state(policy, "policyTypes Egress, no rule allowing " + what), from_log(found.line)],
            detail={"policy": policy.key.name, "port": str(port)} | found.detail,
            chain=[f"{policy.key}: denies egress to {what}", f"{pod}: {found.meaning} ({target})"])]
    views = containers(seen.obj)
    healthy = phase(seen.obj) == "Running" and views and all(c.ready for c in views)
    if not healthy:
        return []  # a failing pod's network errors are the containers family's to report
    config = _config_naming(observed, pod.namespace, found.detail.get("host", ""))
    via = f" (named in ConfigMap {config.name})" if config else ""
    message = (f"Pod {pod.name}{in_namespace(pod)} runs but its requests fail: {found.meaning}: "
               f"{target or 'a dependency'}{via}")
    return [Diagnosis(
        family=FAMILY, cause="dependency-down", subject=pod, message=message, confidence=0.7,
        remediation=f"Check {target or 'the dependency'}: that it runs, its Service and endpoints, that the name "
                    "resolves from the pod (`kubectl exec ... -- nslookup`), and the value in the app's config.",
        at=found.line.at, ongoing=recent, caused_by=config, evidence=[from_log(found.line)],
        detail=found.detail | {"endpoint": target}, chain=[f"{target}: unreachable", f"{pod}: requests fail"])]
