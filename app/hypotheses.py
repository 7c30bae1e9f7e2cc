"""Root-cause hypotheses: diagnoses and pattern matches of one input as one ranked list.

Fed by: the diagnoses of the input's objects (`agents.diagnosis`: why each unhealthy object is so,
from its own state, Events and logs) and the predictions of the behavior patterns that matched
its events (`agents.offline`, or the dataflow's graph). Feeds: `tapio analyze` (`app.analyze`),
which prints them, and its JSON output.

A pattern match and a diagnosis about the same objects are one hypothesis, not rivals:
- a pattern that links a cause to its effects (a ConfigMap edit, a rollout, before the crashes)
  explains further back than the objects' own state: it leads, the diagnosis joins its chain;
- any other pattern (a count of symptoms) joins the diagnosis, which names the specific cause.
Then: still failing at the end of the input first, then by confidence, then the earlier failure.
Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

import msgspec

from agents.diagnosis import INCIDENT_CONFIDENCE, Diagnosis
from agents.diagnosis.causes import weight
from core.events import UnifiedEvent
from core.records import PatternMatch, Prediction
from topology.predictions import EvidenceEvent, Hypothesis, story

_SEVERE = frozenset({"warning", "error", "critical"})


class Evidence(msgspec.Struct, frozen=True, kw_only=True):
    at: datetime | None
    source: str  # file#position of the input the line came from
    text: str


class RootCause(msgspec.Struct, frozen=True, kw_only=True):
    rank: int
    pattern: str  # the diagnosis' cause (oom-killed, ...) or the pattern's name
    scope: str  # the object a diagnosis is about, or the pattern's scope key
    confidence: float
    score: float
    message: str
    remediation: str
    at: datetime
    ongoing: bool  # still failing at the end of the input
    chain: list[str]  # root cause first, symptom last
    affected: list[str]
    evidence: list[Evidence]
    family: str = ""  # the diagnosis family (containers, scheduling...); "" for a pattern alone
    patterns: list[str] = []  # every behavior pattern this hypothesis rests on
    causes: list[str] = []  # the diagnosed causes it joins (its own, its workload's...)


def last_failures(events: Iterable[UnifiedEvent]) -> tuple[dict[str, datetime], datetime | None]:
    """Per resource ("Kind/namespace/name"), the time of its last warning or worse; and the newest time."""
    last: dict[str, datetime] = {}
    newest: datetime | None = None
    for event in events:
        newest = event.timestamp if newest is None else max(newest, event.timestamp)
        if event.k8s is not None and event.semantic.severity in _SEVERE:
            key = f"{event.k8s.kind}/{event.k8s.namespace}/{event.k8s.name}"
            last[key] = max(last.get(key, event.timestamp), event.timestamp)
    return last, newest


def is_ongoing(affected: Iterable[str], last: dict[str, datetime], newest: datetime | None,
               *, quiet: timedelta = timedelta(minutes=5)) -> bool:
    """True when one of the resources still failed within `quiet` of the end of the recording."""
    if newest is None:
        return True
    times = [last[key] for key in affected if key in last]
    return not times or newest - max(times) <= quiet


def from_prediction(p: Prediction, evidence: list[Evidence], chain: list[str], *, ongoing: bool) -> RootCause:
    affected = [f"{r.kind}/{r.namespace}/{r.name}" if r.namespace else f"{r.kind}/{r.name}" for r in p.impacted]
    return RootCause(rank=0, pattern=p.pattern, scope=p.scope, confidence=p.confidence, score=p.score,
                     message=p.message, remediation=p.remediation, at=p.at, ongoing=ongoing, chain=chain,
                     affected=affected, evidence=evidence, patterns=[p.pattern])


def match_evidence(match: PatternMatch) -> tuple[list[Evidence], list[str]]:
    """A match's evidence lines and causal chain, told as the graph tells them (`topology.predictions.story`)."""
    events = sorted(match.evidence, key=lambda e: (e.timestamp, e.id))
    told = story([EvidenceEvent(id=e.id, at=e.timestamp, source=e.source,
                                text=" ".join((e.semantic.narrative or e.id).split())) for e in events],
                 [(link.cause, link.effect) for link in match.links])
    return [Evidence(at=e.at, source=e.source, text=e.text) for e in told.evidence], told.chain


_CHANGE_INTENTS = frozenset({"config-change", "rollout", "changed"})


def is_change(event: UnifiedEvent) -> bool:
    """An edit a person or a controller made: a ConfigMap/Secret/template edit, a rollout."""
    return event.semantic.intent in _CHANGE_INTENTS


def starts_with_a_change(match: PatternMatch) -> bool:
    """Does the match link a change (an edit, a rollout) to the failures after it? Then it explains
    further back than the failing objects' own state."""
    causes = {link.cause for link in match.links}
    return any(e.id in causes and is_change(e) for e in match.evidence)


#: the further causes a diagnosis names in its detail: its pod's (a bad rollout), its workload's, its Job's
_JOINED_CAUSES = ("pod_cause", "workload_cause", "job_reason")


def from_diagnosis(d: Diagnosis) -> RootCause:
    affected = [str(d.subject)] + [str(m) for m in d.members]
    if d.caused_by is not None and str(d.caused_by) not in affected:
        affected.insert(0, str(d.caused_by))
    if d.detail.get("workload") and d.detail["workload"] not in affected:
        affected.append(d.detail["workload"])
    return RootCause(rank=0, pattern=d.cause, scope=str(d.subject), confidence=d.confidence, score=weight(d),
                     message=d.message, remediation=d.remediation, at=d.at, ongoing=d.ongoing, chain=list(d.chain),
                     affected=affected, family=d.family,
                     causes=[d.cause] + [d.detail[k] for k in _JOINED_CAUSES if d.detail.get(k)],
                     evidence=[Evidence(at=e.at, source=e.source, text=e.text) for e in d.evidence])


def _overlaps(cause: RootCause, other: RootCause) -> bool:
    return bool(set(cause.affected) & set(other.affected)) or cause.scope.split(":", 1)[-1] in other.affected


def combine(diagnoses: list[Diagnosis], patterns: list[tuple[RootCause, bool]]) -> list[RootCause]:
    """Diagnoses and pattern hypotheses (each with: does its match start with a change?) as one
    list, a pattern and a diagnosis about the same objects joined (see the module doc), ranked."""
    causes = [from_diagnosis(d) for d in diagnoses]
    out: list[RootCause] = []
    for found, linked in patterns:
        joined = next((i for i, c in enumerate(causes) if _overlaps(found, c)), None)
        if joined is None:
            out.append(found)
            continue
        diag = causes[joined]
        if linked:  # the pattern reaches back to a change: it leads, the diagnosis is its last link
            causes[joined] = msgspec.structs.replace(
                found, chain=found.chain + [line for line in diag.chain if line not in found.chain],
                affected=found.affected + [a for a in diag.affected if a not in found.affected],
                evidence=found.evidence + diag.evidence[:3], ongoing=found.ongoing or diag.ongoing,
                confidence=max(found.confidence, diag.confidence), causes=diag.causes,
                patterns=found.patterns + [p for p in diag.patterns if p not in found.patterns])
        else:
            causes[joined] = msgspec.structs.replace(
                diag, chain=diag.chain + [f"pattern {found.pattern} matched in {found.scope}: {found.message}"],
                patterns=diag.patterns + [p for p in found.patterns if p not in diag.patterns],
                confidence=max(diag.confidence, found.confidence))
    return rank(causes + out)


def rank(causes: list[RootCause]) -> list[RootCause]:
    """Ongoing before resolved, then by confidence (a diagnosis' weight, a pattern's score scaled to
    it), then earliest (the root comes before its echoes)."""
    def key(c: RootCause) -> tuple[bool, float, datetime, str, str]:
        strength = c.score if c.family else c.confidence
        return (not c.ongoing, -strength, c.at, c.pattern, c.scope)
    return [msgspec.structs.replace(c, rank=i) for i, c in enumerate(sorted(causes, key=key), 1)]


def diagnoses_lead(ranked: list[Hypothesis], linked: set[str], *, diagnosis_prefix: str) -> list[Hypothesis]:
    """The graph's hypotheses of one resource (`tapio explain`), best score first, ordered by the same
    rule as `combine`: an ongoing pattern that counts symptoms (its prediction id not in `linked`,
    the matches that reach back to a change) follows the ongoing diagnosis about the same objects,
    which names the specific cause (the selector no node has, the exit code...); a pattern that
    reaches back to a change keeps its place ahead of it. Pure: no I/O."""
    def diagnosis(h: Hypothesis) -> bool:
        return h.prediction.pattern.startswith(diagnosis_prefix) and h.prediction.resolved_at is None

    def objects(h: Hypothesis) -> set[str]:
        return {r.key for r in h.prediction.impacted} | {f"{r.kind}/{r.namespace}/{r.name}"
                                                         for r in h.prediction.impacted if r.name}
    pending, out = list(ranked), []
    while pending:
        found = pending.pop(0)
        counts = (not found.prediction.pattern.startswith(diagnosis_prefix) and found.prediction.id not in linked
                  and found.prediction.resolved_at is None)
        joined = next((h for h in pending if diagnosis(h) and objects(h) & objects(found)), None) if counts else None
        if joined is not None:
            pending.remove(joined)
            out.append(joined)
        out.append(found)
    return out


def incidents(causes: list[RootCause]) -> list[RootCause]:
    """What is shown as an incident: a pattern's prediction, or a diagnosis confident enough."""
    return [c for c in causes if not c.family or c.patterns or c.confidence >= INCIDENT_CONFIDENCE]


def verdict(causes: list[RootCause], events: int) -> str:
    if not causes:
        return (f"no incident found: nothing among the {events} events or the objects' states reads as a "
                f"failure (see the warnings with tapio explain)")
    top = causes[0]
    if not top.ongoing:  # ranked first, so nothing is ongoing
        return (f"no ongoing incident: {len(causes)} failure(s) in the recording resolved themselves before its "
                f"end (listed below); the first: {top.pattern} in {top.scope}")
    return f"most likely: {top.pattern} in {top.scope} ({top.confidence:.0%}, ongoing): {top.message}"
