"""A diagnosis: one hypothesis about why one object is not healthy, with its evidence.

Fed by: the family modules (`agents.diagnosis.containers`, `.scheduling`, ...), which each
build Diagnoses from what `agents.diagnosis.observed` shows. Feeds: `agents.diagnosis.causes`
(which joins a diagnosis to what explains it and ranks them), `tapio analyze` and the live
diagnose stage (which turn it into a match and a prediction for the graph).

A diagnosis is a hypothesis like a pattern match: a message naming the object, its namespace and
the specific cause; a confidence; evidence lines with `file#position`; a remediation.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from agents.diagnosis.observed import KubeEvent, LogLine, ObjectKey, Seen

#: a hypothesis shown to the user as an incident needs at least this confidence
INCIDENT_CONFIDENCE = 0.5


class Evidence(msgspec.Struct, kw_only=True, frozen=True):
    at: datetime | None
    source: str  # file#position (or file:line) of the input it was read from
    text: str
    about: str = ""  # the object the line is about ("Pod/shop/web-0"), for the report's timeline lanes
    severity: str = ""  # "info" for a Normal Event, else "warning"


class Diagnosis(msgspec.Struct, kw_only=True):
    family: str  # containers, scheduling, probes, images, volumes, jobs, nodes, workloads, network
    cause: str  # a short code: oom-killed, missing-env-var, insufficient-resource...
    subject: ObjectKey  # the object that is not healthy
    message: str  # names the object, its namespace and the specific cause
    confidence: float
    remediation: str
    at: datetime  # when the failure first shows
    ongoing: bool  # still failing at the end of the input
    evidence: list[Evidence] = []
    caused_by: ObjectKey | None = None  # the object behind the cause, when the input holds it
    chain: list[str] = []  # cause first, symptom last
    members: list[ObjectKey] = []  # further objects this diagnosis explains (a workload's pods...)
    detail: dict[str, str] = {}  # the specifics: {"variable": "DB_URL"}, {"resource": "nvidia.com/gpu"}

    @property
    def key(self) -> str:
        return f"{self.family}/{self.cause}"


def from_event(event: KubeEvent) -> Evidence:
    times = f" (x{event.count})" if event.count > 1 else ""
    return Evidence(at=event.at, source=event.source, about=str(event.about),
                    severity="info" if event.type == "Normal" else "warning",
                    text=f"{event.type} {event.reason}{times} on {event.about}: {event.message}")


def from_log(line: LogLine) -> Evidence:
    which = "previous " if line.previous else ""
    return Evidence(at=line.at, source=line.source, about=str(line.pod), severity="warning",
                    text=f"{which}log of {line.pod}/{line.container}: {line.text}")


def from_state(seen: Seen, text: str) -> Evidence:
    return Evidence(at=seen.at, source=seen.source, about=str(seen.key), severity="warning",
                    text=f"{seen.key}: {text}")


def in_namespace(key: ObjectKey) -> str:
    """` (namespace shop)`, or nothing when the input does not say (an events table of one namespace)."""
    return f" (namespace {key.namespace})" if key.namespace else ""


def excerpt(text: str, limit: int = 200) -> str:
    """One line of a message or log, cut at `limit` characters."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
