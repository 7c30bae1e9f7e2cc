"""Inputs the diagnose stage's tests share: a labelled incident and the deletion of its pod."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from app.analyze import read
from core.events import RawEvent
from core.kube.objects import raw_event_from_object

ROOT = Path(__file__).resolve().parents[2]
CASE = ROOT / "patterns" / "scenarios" / "diagnosis" / "containers" / "missing-env-var"


def incident_and_pod_deletion(after: timedelta = timedelta(minutes=2)) -> tuple[list[RawEvent], RawEvent, datetime]:
    """The missing-env-var incident, the DELETED observation of its pod `after` its last event, and that moment."""
    incident = read([str(CASE)]).events
    pod = next(e for e in incident if e.metadata.get("kind") == "Pod" and e.metadata.get("action") != "EVENT")
    at = max(e.timestamp for e in incident) + after
    deleted = raw_event_from_object({"kind": "Pod", "metadata": {"name": pod.metadata["name"],
                                                                "namespace": pod.metadata["namespace"]}},
                                    action="DELETED", source="test", undated_at=at)
    return incident, deleted, at
