"""Images that cannot be pulled: wrong credentials, a tag that does not exist, a registry that does
not resolve, a certificate it does not trust, a rate limit, an invalid name.

Fed by: containers waiting in ErrImagePull / ImagePullBackOff / InvalidImageName /
ErrImageNeverPull, and the kubelet's `Failed` Events ("Failed to pull image \"x\": ...").
Feeds: Diagnoses of family `images`, naming the image and why its pull fails.
"""

from __future__ import annotations

import re

from agents.diagnosis.model import Diagnosis, excerpt, from_event, from_state, in_namespace
from agents.diagnosis.observed import KubeEvent, ObjectKey, Observed, Seen
from core.kube.status import containers

FAMILY = "images"
PULL_WAITING = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"})
_IMAGE = re.compile(r"(?:Failed to pull image|Back-off pulling image|pulling image|image) \"([^\"]+)\"", re.I)

#: (cause, what it means, words of the pull error that say so), checked in order
PULL_CAUSES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("registry-rate-limit", "the registry refuses it for too many requests (rate limit)",
     ("toomanyrequests", "429 too many requests", "rate limit")),
    ("registry-tls", "the registry's TLS certificate is not trusted",
     ("x509:", "certificate signed by unknown authority", "tls: failed to verify")),
    ("registry-dns", "the registry's host name does not resolve", ("no such host", "server misbehaving",
                                                                   "temporary failure in name resolution")),
    ("image-auth", "the registry denies access: the repository does not exist, or it is private and no valid pull "
                   "secret is used",
     ("unauthorized", "authentication required", "pull access denied", "access denied", "403 forbidden",
      "401", "denied: ", "insufficient_scope", "requested access to the resource is denied", "forbidden")),
    ("image-not-found", "the image or tag does not exist in the registry",
     ("manifest unknown", "not found", "does not exist", "name unknown", "no matching manifest")),
    ("registry-unreachable", "the registry cannot be reached", ("i/o timeout", "connection refused",
                                                                "context deadline exceeded", "dial tcp")),
)
REMEDIES = {
    "registry-rate-limit": "Authenticate pulls (an imagePullSecret for the registry), use a mirror or a paid "
                           "plan, or pull from your own registry.",
    "registry-tls": "Install the registry's CA on the nodes (containerd: /etc/containerd/certs.d/<host>/ca.crt), "
                    "or use a registry with a publicly trusted certificate.",
    "registry-dns": "Check the registry host in the image name (a typo?) and the nodes' DNS.",
    "image-auth": "Create a docker-registry Secret with credentials that can read {image} and reference it in "
                  "imagePullSecrets (of the pod or its ServiceAccount); check the repository name.",
    "image-not-found": "The tag of {image} does not exist: fix the image reference (push the tag, or roll back "
                       "to the last good one: `kubectl rollout undo`).",
    "registry-unreachable": "The nodes cannot reach the registry: check egress, proxies and firewall rules.",
    "invalid-image-name": "Fix the image reference {image} (registry/repository:tag, lowercase).",
    "image-never-pulled": "imagePullPolicy is Never and {image} is not on the node, so the kubelet never pulls "
                          "it: load it into the node's container runtime (containerd: `ctr -n k8s.io images import`; "
                          "kind: `kind load docker-image`), or push it to a registry the nodes reach and set "
                          "imagePullPolicy to IfNotPresent.",
    "image-pull-failure": "Read the pull error (`kubectl describe pod`, Events) and check the image name, the "
                          "registry and the pull secret.",
}


def pull_cause(message: str) -> tuple[str, str]:
    low = message.lower()
    for cause, meaning, words in PULL_CAUSES:
        if any(w in low for w in words):
            return cause, meaning
    return "image-pull-failure", "the image cannot be pulled"


def diagnose_pod(observed: Observed, pod: ObjectKey, seen: Seen | None) -> list[Diagnosis]:
    events = [e for e in observed.events_of(pod) if e.reason in ("Failed", "BackOff", "ErrImageNeverPull",
                                                                 "InspectFailed")
              and ("image" in e.message.lower())]
    views = [c for c in containers(seen.obj) if c.waiting_reason in PULL_WAITING] if seen else []
    if not views and not any(e.type == "Warning" for e in events):
        return []
    pulled_later = any(e.reason == "Pulled" and events and e.at > max(x.at for x in events)
                       for e in observed.events_of(pod))
    failures = [e for e in events if e.reason == "Failed" and "pull" in e.message.lower()
                and not e.message.startswith("Error: ")] or events
    last: KubeEvent | None = max(failures, key=lambda e: e.at) if failures else None
    detail_text = " ".join(filter(None, [last.message if last else ""] + [v.waiting_message for v in views]))
    waiting = views[0].waiting_reason if views else ""
    if waiting == "InvalidImageName" or "InvalidImageName" in detail_text:
        cause, meaning = "invalid-image-name", "the image reference is not a valid name"
    elif waiting == "ErrImageNeverPull" or "pull policy of Never" in detail_text:
        cause, meaning = "image-never-pulled", "the image is not on the node and its pull policy is Never"
    else:
        cause, meaning = pull_cause(detail_text)
    image = (views[0].image if views else "") or _image_in(detail_text)
    container = views[0].name if views else (last.container if last else "")
    newest = max((e.at for e in events if e.type == "Warning"), default=None)
    ongoing = bool(views) or (not pulled_later and newest is not None and observed.recent(newest))
    if not ongoing and pulled_later:
        return []  # a pull that failed once and succeeded on retry
    evidence = [from_event(e) for e in failures[-2:]]
    if views and seen is not None:
        evidence.insert(0, from_state(seen, f"container {container}: {waiting}: {views[0].waiting_message[:300]}"))
    if cause == "image-never-pulled":  # nothing is pulled: the kubelet refuses before any pull
        message = (f"Pod {pod.name}{in_namespace(pod)} cannot start container {container or '?'}: its image "
                   f"{image or '?'} {meaning[len('the image '):]}")
    else:
        message = (f"Pod {pod.name}{in_namespace(pod)} cannot pull image {image or '?'} for container "
                   f"{container or '?'}: {meaning}")
    said = "" if cause == "image-never-pulled" else _registry_said(last.message if last else detail_text,
                                                                     _words(cause))
    if said:
        message += f" (the pull error: \"{said}\")"
    return [Diagnosis(family=FAMILY, cause=cause, subject=pod, message=message,
                      confidence=0.9 if cause != "image-pull-failure" else 0.7,
                      remediation=REMEDIES[cause].format(image=image or "the image"),
                      at=min((e.at for e in events), default=seen.at if seen else observed.end),  # type: ignore[arg-type]
                      ongoing=ongoing, evidence=evidence,
                      detail={"image": image, "container": container},
                      chain=[f"{pod}: {waiting or 'image pull failing'}: {meaning} ({image})"])]


def _registry_said(text: str, words: tuple[str, ...]) -> str:
    """The registry's own words in the pull error (`401 Unauthorized`, `manifest unknown`): from the
    part that says the cause, else its last parts."""
    parts = " ".join(text.split()).split(": ")
    found = next((i for i, part in enumerate(parts) if any(w.strip(": ") in part.lower() for w in words)), None)
    return excerpt(": ".join(parts[found:] if found is not None else parts[-3:]), 220)


def _words(cause: str) -> tuple[str, ...]:
    return next((words for name, _, words in PULL_CAUSES if name == cause), ())


def _image_in(text: str) -> str:
    found = _IMAGE.search(text)
    return found.group(1) if found else ""
