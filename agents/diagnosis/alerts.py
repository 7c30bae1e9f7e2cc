"""Objects a Prometheus alert fires on, when their own state says no more.

Fed by: Events of reporting component `alertmanager` (`collectors.alerts`: one per alert, its
reason the alert's name, about the object its labels name; Warning while it fires). Feeds: a Diagnosis of the alert's
meaning for the names of kubernetes-mixin's rules (KubePodCrashLooping, KubeJobFailed,
KubeNodeNotReady...) and any alert about OOM kills; a diagnosis read off the object's state,
Events or logs is more specific and wins (`agents.diagnosis.causes`), the alert joining its chain.
"""

from __future__ import annotations

from agents.diagnosis.model import Diagnosis, from_event
from agents.diagnosis.observed import ObjectKey, Observed

FAMILY = "alerts"
#: alert name -> (cause, what it means)
MEANINGS = {
    "KubePodCrashLooping": ("crash-loop", "its container restarts again and again"),
    "KubePodNotReady": ("pod-not-ready", "it has not been ready for a long time"),
    "KubeContainerWaiting": ("container-waiting", "its container has been waiting to start for a long time"),
    "KubeDeploymentReplicasMismatch": ("unavailable-replicas", "it has fewer available replicas than it wants"),
    "KubeStatefulSetReplicasMismatch": ("unavailable-replicas", "it has fewer ready replicas than it wants"),
    "KubeDaemonSetRolloutStuck": ("progress-deadline", "its rollout does not progress"),
    "KubeDeploymentRolloutStuck": ("progress-deadline", "its rollout does not progress"),
    "KubeJobFailed": ("job-failed", "it failed"),
    "KubeJobNotCompleted": ("job-deadline", "it runs far longer than it should"),
    "KubeNodeNotReady": ("node-not-ready", "it is not ready"),
    "KubeNodeUnreachable": ("node-not-ready", "it is unreachable"),
    "KubeletTooManyPods": ("too-many-pods", "it runs close to its pod limit"),
    "KubePersistentVolumeFillingUp": ("volume-filling-up", "its volume is filling up"),
    "KubePersistentVolumeErrors": ("volume-errors", "its volume reports errors"),
    "CPUThrottlingHigh": ("cpu-throttling", "its containers are throttled on their CPU limit"),
}


def diagnose(observed: Observed, key: ObjectKey) -> list[Diagnosis]:
    alerts = [e for e in observed.events_of(key) if e.component == "alertmanager" and e.type == "Warning"]
    if not alerts:
        return []
    last = max(alerts, key=lambda e: e.at)
    cause, meaning = MEANINGS.get(last.reason, ("", ""))
    if not cause and "oomkill" in last.reason.lower():
        cause, meaning = "oom-killed", "its container was OOM-killed"
    if not cause:
        cause, meaning = "alert", f"the alert {last.reason} fires"
    where = f" (namespace {key.namespace})" if key.namespace else ""
    message = f"{key.kind} {key.name}{where}: {meaning} (alert {last.reason}: {last.message})"
    return [Diagnosis(family=FAMILY, cause=cause, subject=key, message=message, confidence=0.6,
                      remediation=f"See the alert's runbook and the {key.kind.lower()}'s own state: "
                                  f"`kubectl describe {key.kind.lower()} {key.name}`.",
                      at=min(e.at for e in alerts), ongoing=True,  # a firing alert (a resolved one is a Normal event)
                      evidence=[from_event(e) for e in alerts[-2:]], detail={"alert": last.reason},
                      chain=[f"{key}: alert {last.reason} fires"])]
