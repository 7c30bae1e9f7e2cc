"""Prometheus alerts as Alertmanager hands them out -> Kubernetes Events about the alerted object.

Fed by: JSON a user saved from Alertmanager: a webhook payload (`{"alerts": [...], "status": ...}`),
`amtool alert query -o json` or the `/api/v2/alerts` answer (a list of alerts), each alert with
`labels` (alertname, severity, namespace, pod / container / deployment / node ...), `annotations`
(summary, description, message) and `startsAt` / `endsAt`. Feeds: the readers
(`collectors.bundles`), with one core/v1 Event per alert (reason: the alert's name, reporting
component `alertmanager`), involving the object its labels name, so an alert joins what the
objects' own state and Events say.

Pure. A document that holds no alert with a name and a start is not alerts (None).
"""

from __future__ import annotations

import json
from typing import Any

from collectors.limits import deeper_than, json_loads
from collectors.unusable import UnusableInput
from core.events import RawEvent
from core.kube.objects import UnusableObject, raw_event_from_object

#: label -> the kind it names, the most specific first (kube-state-metrics and kubernetes-mixin labels)
_OBJECT_LABELS = (("pod", "Pod"), ("job_name", "Job"), ("deployment", "Deployment"), ("statefulset", "StatefulSet"),
                  ("daemonset", "DaemonSet"), ("replicaset", "ReplicaSet"), ("persistentvolumeclaim",
                                                                                "PersistentVolumeClaim"),
                  ("node", "Node"), ("namespace", "Namespace"))
_SEVERE = frozenset({"warning", "critical", "error", "page", "high"})


def _alerts(document: Any) -> list[dict] | None:
    items = document.get("alerts") if isinstance(document, dict) else document
    if not isinstance(items, list) or not items:
        return None
    alerts = [a for a in items if isinstance(a, dict) and isinstance(a.get("labels"), dict)
              and a["labels"].get("alertname") and a.get("startsAt")]
    return alerts if len(alerts) == len(items) else None


def alert_events(data: bytes, file: str) -> list[RawEvent | UnusableInput] | None:
    """One Event RawEvent per alert of the document, or None when it is not Alertmanager alerts."""
    try:
        document = json_loads(data)
    except ValueError:
        return None
    alerts = _alerts(document) if not deeper_than(document) else None  # too deep: the recording reader says so
    if alerts is None:
        return None
    out: list[RawEvent | UnusableInput] = []
    for index, alert in enumerate(alerts):
        try:
            out.append(raw_event_from_object(_event(alert), action="EVENT", source=f"{file}#alerts[{index}]"))
        except UnusableObject as exc:
            out.append(UnusableInput(file=file, position=f"alerts[{index}]", reason=f"alert: {exc}",
                                     fragment=json.dumps(alert)[:200]))
    return out


def _event(alert: dict) -> dict:
    labels, notes = alert["labels"], alert.get("annotations") or {}
    kind, name = next(((k, str(labels[label])) for label, k in _OBJECT_LABELS if labels.get(label)), ("", ""))
    namespace = str(labels.get("namespace") or "")
    if kind == "Node" or kind == "Namespace":
        namespace_of_object = ""
    else:
        namespace_of_object = namespace
    message = str(notes.get("description") or notes.get("message") or notes.get("summary") or labels["alertname"])
    resolved = alert.get("status") == "resolved" or (isinstance(alert.get("status"), dict)
                                                      and alert["status"].get("state") == "resolved")
    last = alert.get("endsAt") if resolved else (alert.get("updatedAt") or alert.get("startsAt"))
    fingerprint = str(alert.get("fingerprint") or "")
    return {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": f"{labels['alertname']}.{fingerprint or name}", "namespace": namespace or "default",
                     **({"uid": f"alert-{fingerprint}-{alert['startsAt']}"} if fingerprint else {})},
        "involvedObject": {"kind": kind or "Namespace", "name": name or namespace or "cluster",
                           **({"namespace": namespace_of_object} if namespace_of_object else {})},
        "reason": str(labels["alertname"]), "message": message[:1000],
        # a firing alert of a severe rule warns; a resolved one (or an info rule) is only a record
        "type": "Warning" if not resolved and str(labels.get("severity", "warning")).lower() in _SEVERE else "Normal",
        "firstTimestamp": alert["startsAt"], "lastTimestamp": last or alert["startsAt"], "count": 1,
        "source": {"component": "alertmanager"},
    }
