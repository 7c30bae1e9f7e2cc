"""Volumes and references that are not there: a missing ConfigMap, Secret, key, ServiceAccount,
StorageClass or claim; a volume that cannot be mounted or attached.

Fed by: containers waiting in CreateContainerConfigError (`configmap "x" not found`, `couldn't
find key K in Secret ns/x`), the kubelet's FailedMount Events (`MountVolume.SetUp failed for
volume "v" : secret "x" not found`), the attach/detach controller's FailedAttachVolume
(`Multi-Attach error for volume ...`), a controller's FailedCreate (`error looking up service
account ns/sa: serviceaccount "sa" not found`, `exceeded quota`), and claims Pending with
ProvisioningFailed (`storageclass.storage.k8s.io "x" not found`).
Feeds: Diagnoses of family `volumes`, with `caused_by` the missing object.
"""

from __future__ import annotations

import re

from agents.diagnosis.model import Diagnosis, from_event, from_state, in_namespace
from agents.diagnosis.observed import ObjectKey, Observed, Seen
from core.kube.status import condition, containers, phase

FAMILY = "volumes"
_MISSING = re.compile(r"(configmaps?|secrets?|persistentvolumeclaims?|serviceaccounts?|"
                      r"storageclass(?:\.storage\.k8s\.io)?|csidriver\S*)\s+\"([^\"]+)\" not found", re.I)
_KEY = re.compile(r"couldn't find key (\S+) in (ConfigMap|Secret) ([^/\s]+)/(\S+)")
_SA = re.compile(r"serviceaccount \"([^\"]+)\" not found|service account [^/\s]+/(\S+?):", re.I)
_VOLUME = re.compile(r"volume \"([^\"]+)\"")
#: the kubelet's summary when a mount times out: `Unable to attach or mount volumes: unmounted volumes=[a b]`
_UNMOUNTED = re.compile(r"unmounted volumes=\[([^\]]*)\]")
_STARTED = frozenset({"Pulling", "Pulled", "Created", "Started"})
_KINDS = {"configmap": "ConfigMap", "secret": "Secret", "persistentvolumeclaim": "PersistentVolumeClaim",
          "serviceaccount": "ServiceAccount", "storageclass": "StorageClass"}
_CAUSES = {"ConfigMap": "missing-configmap", "Secret": "missing-secret", "PersistentVolumeClaim": "missing-pvc",
           "ServiceAccount": "missing-serviceaccount", "StorageClass": "missing-storageclass"}
REMEDIES = {
    "missing-configmap": "Create ConfigMap {name} in namespace {namespace} (or fix the name the pod references); "
                         "mark the reference optional: true only if the app can run without it.",
    "missing-secret": "Create Secret {name} in namespace {namespace} (or fix the name the pod references; a "
                      "Secret is never read across namespaces).",
    "missing-key": "Add key {key} to {kind} {name}, or fix the key the pod's env/volume items reference.",
    "missing-serviceaccount": "Create ServiceAccount {name} in namespace {namespace}, or fix "
                              "serviceAccountName in the pod template; the controller retries by itself.",
    "missing-storageclass": "StorageClass {name} does not exist: create it, or set the claim's storageClassName "
                            "to one that exists (`kubectl get storageclass`); a claim's class cannot be "
                            "changed, so recreate the claim.",
    "missing-pvc": "Create PersistentVolumeClaim {name} in namespace {namespace}, or fix claimName.",
    "volume-attach": "The volume is attached to another node (ReadWriteOnce): wait for the old pod to go, "
                     "delete a stuck VolumeAttachment, or use ReadWriteMany storage.",
    "volume-mount": "Read the mount error (`kubectl describe pod`): the storage backend, its driver pods and "
                    "the node's access to it.",
    "quota-exceeded": "The namespace's ResourceQuota is used up: raise it or lower the pods' requests.",
    "create-forbidden": "The controller cannot create pods: read the FailedCreate message (admission, quota, "
                        "security policy) and fix the template or the policy.",
}


def _missing(message: str, namespace: str) -> tuple[str, ObjectKey, dict[str, str]] | None:
    key = _KEY.search(message)
    if key:
        kind = key.group(2)
        return ("missing-key", ObjectKey(kind, key.group(3), key.group(4)),
                {"key": key.group(1), "kind": kind, "name": key.group(4), "namespace": key.group(3)})
    found = _MISSING.search(message)
    if found:
        word = found.group(1).lower().split(".")[0].rstrip("s") if not found.group(1).lower().startswith("storage") \
            else "storageclass"
        kind = _KINDS.get(word, "")
        if kind:
            ns = "" if kind == "StorageClass" else namespace
            return _CAUSES[kind], ObjectKey(kind, ns, found.group(2)), {"name": found.group(2), "namespace": namespace}
    sa = _SA.search(message)
    if sa:
        name = sa.group(1) or sa.group(2)
        return ("missing-serviceaccount", ObjectKey("ServiceAccount", namespace, name),
                {"name": name, "namespace": namespace})
    return None


def _fill(template: str, detail: dict[str, str]) -> str:
    return template.format(**{k: detail.get(k, "") for k in ("name", "namespace", "key", "kind")})


def diagnose_pod(observed: Observed, pod: ObjectKey, seen: Seen | None) -> list[Diagnosis]:
    events = [e for e in observed.events_of(pod) if e.type == "Warning" and e.reason in
              ("FailedMount", "FailedAttachVolume", "Failed", "FailedMapVolume")]
    views = [c for c in containers(seen.obj) if c.waiting_reason == "CreateContainerConfigError"] if seen else []
    texts = [(v.waiting_message, None) for v in views] + [(e.message, e) for e in events]
    running = seen is not None and phase(seen.obj) == "Running" and all(c.ready for c in containers(seen.obj))
    if seen is None and events:  # only Events: the containers starting after the last failure resolve it
        last_failure = max(e.at for e in events)
        running = any(e.reason in _STARTED and e.at >= last_failure for e in observed.events_of(pod))
    for text, event in texts:
        found = _missing(text, pod.namespace)
        if found is None:
            continue
        cause, missing, detail = found
        ongoing = not running and (bool(views) or event is None or observed.recent(event.at, 900))
        where = f"volume {_VOLUME.search(text).group(1)}" if _VOLUME.search(text) else "its environment"
        what = f"key {detail['key']} of {missing.kind} {missing.name}" if cause == "missing-key" \
            else f"{missing.kind} {missing.name}"
        message = (f"Pod {pod.name}{in_namespace(pod)} cannot start its containers: {what} does not "
                   f"exist (referenced by {where})")
        evidence = [from_event(e) for e in events[-2:]]
        if views and seen is not None:
            evidence.insert(0, from_state(seen, f"container {views[0].name}: CreateContainerConfigError: "
                                                f"{views[0].waiting_message}"))
        return [Diagnosis(family=FAMILY, cause=cause, subject=pod, message=message, confidence=0.9,
                          remediation=_fill(REMEDIES[cause], detail), at=min((e.at for e in events),
                                                                             default=seen.at if seen else event.at),  # type: ignore[union-attr]
                          ongoing=ongoing, evidence=evidence, caused_by=missing, detail=detail,
                          chain=[f"{missing} missing", f"{pod}: cannot start ({where})"])]
    attach = [e for e in events if e.reason == "FailedAttachVolume"]
    mount = [e for e in events if e.reason in ("FailedMount", "FailedMapVolume")]
    for group, cause in ((attach, "volume-attach"), (mount, "volume-mount")):
        if not group or running:
            continue
        last = max(group, key=lambda e: e.at)
        name = _volume_names(last.message)
        first_line = last.message.split("\n")[0][:300]
        message = (f"Pod {pod.name}{in_namespace(pod)} waits for volume {name or '?'}: {first_line}")
        waiting = seen is not None and phase(seen.obj) == "Pending"
        ongoing = waiting or observed.recent(last.at)
        return [Diagnosis(family=FAMILY, cause=cause, subject=pod, message=message, confidence=0.75,
                          remediation=REMEDIES[cause], at=min(e.at for e in group), ongoing=ongoing,
                          evidence=[from_event(e) for e in group[-2:]], detail={"volume": name},
                          chain=[f"{pod}: volume {name} not ready: {first_line}"])]
    return []


def diagnose_controller(observed: Observed, key: ObjectKey) -> list[Diagnosis]:
    """A controller (ReplicaSet, StatefulSet, Job, DaemonSet) whose pods cannot be created."""
    failed = [e for e in observed.events_of(key) if e.reason == "FailedCreate"]
    if not failed:
        return []
    last = max(failed, key=lambda e: e.at)
    found = _missing(last.message, key.namespace)
    if found is not None:
        cause, missing, detail = found
        what = f"{missing.kind} {missing.name} does not exist"
        caused_by: ObjectKey | None = missing
    elif "exceeded quota" in last.message:
        cause, detail, what, caused_by = "quota-exceeded", {}, "the namespace's ResourceQuota is exceeded", None
    else:
        cause, detail, what, caused_by = "create-forbidden", {}, last.message[:300], None
    seen = observed.objects.get(key)
    failing = seen is not None and (condition(seen.obj, "ReplicaFailure") or {}).get("status") == "True"
    ongoing = failing or observed.recent(last.at)
    message = f"{key.kind} {key.name}{in_namespace(key)} cannot create its pods: {what}"
    return [Diagnosis(family=FAMILY, cause=cause, subject=key, message=message, confidence=0.9,
                      remediation=_fill(REMEDIES[cause], detail) if cause in REMEDIES else REMEDIES["create-forbidden"],
                      at=min(e.at for e in failed), ongoing=ongoing, evidence=[from_event(last)],
                      caused_by=caused_by, detail=detail, chain=[f"{key}: FailedCreate: {what}"])]


def diagnose_claim(observed: Observed, seen: Seen) -> list[Diagnosis]:
    """A PersistentVolumeClaim that stays Pending: its StorageClass or provisioner fails."""
    key = seen.key
    events = [e for e in observed.events_of(key) if e.reason in ("ProvisioningFailed", "FailedBinding")]
    if phase(seen.obj) == "Bound" or not events and phase(seen.obj) != "Pending":
        return []
    klass = str((seen.obj.get("spec") or {}).get("storageClassName") or "")
    last = max(events, key=lambda e: e.at) if events else None
    found = _missing(last.message, key.namespace) if last else None
    if found is None and klass and observed.get("StorageClass", "", klass) is None and \
            any(k.kind == "StorageClass" for k in observed.objects):
        found = ("missing-storageclass", ObjectKey("StorageClass", "", klass), {"name": klass})
    if found is None:
        if last is None:
            return []
        unbound = "no persistent volumes available" in last.message or "no storage class is set" in last.message
        cause, missing, detail = ("unbound-pvc" if unbound else "provisioning-failed"), None, {"name": key.name}
        what = last.message[:300]
    else:
        cause, missing, detail = found
        what = f"{missing.kind} {missing.name} does not exist"
    message = f"PersistentVolumeClaim {key.name}{in_namespace(key)} stays Pending: {what}"
    remedy = _fill(REMEDIES[cause], detail) if cause in REMEDIES else \
        "Read the provisioner's error (`kubectl describe pvc`) and check its StorageClass and CSI driver."
    evidence = [from_state(seen, f"phase {phase(seen.obj) or 'Pending'}, storageClassName {klass or '(default)'}")]
    evidence += [from_event(e) for e in events[-2:]]
    return [Diagnosis(family=FAMILY, cause=cause, subject=key, message=message, confidence=0.9 if found else 0.7,
                      remediation=remedy, at=min((e.at for e in events), default=seen.at), ongoing=True,
                      evidence=evidence, caused_by=missing, detail=detail,
                      chain=[f"{key}: Pending: {what}"])]


def _volume_names(message: str) -> str:
    """The volume a FailedMount/FailedAttachVolume message names: `volume "x"`, else the kubelet's list of
    the volumes still unmounted ("a, b"); "" when it names none."""
    if quoted := _VOLUME.search(message):
        return quoted.group(1)
    if listed := _UNMOUNTED.search(message):
        return ", ".join(listed.group(1).split())
    return ""

