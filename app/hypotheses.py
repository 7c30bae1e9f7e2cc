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
from typing import NamedTuple

import msgspec

from agents.diagnosis import INCIDENT_CONFIDENCE, Diagnosis
from agents.diagnosis.causes import weight
from core.events import UnifiedEvent
from core.records import PatternMatch, Prediction
from topology.predictions import EvidenceEvent, Hypothesis, MatchStory, StoredPrediction, story
from topology.surroundings import resource_name

_SEVERE = frozenset({"warning", "error", "critical"})


class Evidence(msgspec.Struct, frozen=True, kw_only=True):
    at: datetime | None
    source: str  # file#position of the input the line came from
    text: str
    resource: str = ""  # the object the line is about: "Kind/namespace/name" ("Kind/name" cluster-scoped)
    severity: str = ""  # the vocabulary's severity (info, warning, error, critical); "" unknown


class CausalLink(msgspec.Struct, frozen=True, kw_only=True):
    """One object's change or failure leading to another's: CAUSED where a pattern linked their events
    (`delay_s` between them) or a diagnosis names the object behind the cause."""

    cause: str  # a resource, as Evidence.resource
    effect: str
    type: str = "CAUSED"
    delay_s: float | None = None


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
    root: str = ""  # the resource the chain starts at (the edited ConfigMap, the failing pod...)
    links: list[CausalLink] = []  # between resources, root first
    due: datetime | None = None  # when a pattern's predicted failure is due (None: a diagnosis, already failing)


class Told(NamedTuple):
    """A match's story for a root cause: its evidence lines, its chain in words, the links between
    the resources of its events, and the resource its chain starts at."""

    evidence: list[Evidence]
    chain: list[str]
    links: list[CausalLink]
    root: str


def _resource(e: EvidenceEvent) -> str:
    return resource_name(e.kind, e.namespace, e.name) if e.kind and e.name else ""


def told(match_story: MatchStory) -> Told:
    """The story the graph (or the in-process match) tells, with each event's resource: a CAUSED link
    between two events of different resources is a link between them (the shortest delay kept)."""
    where = {e.id: (_resource(e), e.at) for e in match_story.evidence}
    delays: dict[tuple[str, str], float | None] = {}
    for cause_id, effect_id in match_story.caused:
        (cause, cause_at), (effect, effect_at) = where.get(cause_id, ("", None)), where.get(effect_id, ("", None))
        if not cause or not effect or cause == effect:
            continue
        delay = (effect_at - cause_at).total_seconds() if cause_at and effect_at else None
        known = delays.get((cause, effect))
        delays[(cause, effect)] = delay if known is None or (delay is not None and delay < known) else known
    # the root: the earliest event that causes and is caused by none (`story`'s chain may start elsewhere)
    effects = {effect for _, effect in match_story.caused}
    starts = sorted((where[cause][1], where[cause][0]) for cause, _ in match_story.caused
                    if cause not in effects and cause in where and where[cause][1] is not None)
    root = starts[0][1] if starts else ""
    return Told(evidence=[Evidence(at=e.at, source=e.source, text=e.text, severity=e.severity,
                                   resource=_resource(e))
                          for e in match_story.evidence],
                chain=match_story.chain, root=root,
                links=[CausalLink(cause=c, effect=e, delay_s=d) for (c, e), d in delays.items()])


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


def from_prediction(p: Prediction | StoredPrediction, story_told: Told, *, ongoing: bool) -> RootCause:
    affected = [resource_name(r.kind, r.namespace, r.name) for r in p.impacted]
    scoped = p.scope.split(":", 1)[-1]  # configmap:ConfigMap/shop/web-config, owner:Deployment/shop/web
    root = story_told.root or (scoped if scoped.count("/") in (1, 2) else "") or next(iter(affected), "")
    return RootCause(rank=0, pattern=p.pattern, scope=p.scope, confidence=p.confidence, score=p.score,
                     message=p.message, remediation=p.remediation, at=p.at, ongoing=ongoing,
                     chain=story_told.chain, affected=affected, evidence=story_told.evidence, patterns=[p.pattern],
                     root=root, links=story_told.links, due=p.due)


def match_evidence(match: PatternMatch) -> Told:
    """A match's evidence lines and causal chain, told as the graph tells them (`topology.predictions.story`)."""
    events = sorted(match.evidence, key=lambda e: (e.timestamp, e.id))
    return told(story([EvidenceEvent(id=e.id, at=e.timestamp, source=e.source, severity=e.semantic.severity,
                                     text=" ".join((e.semantic.narrative or e.id).split()),
                                     kind=e.k8s.kind if e.k8s else "", namespace=e.k8s.namespace if e.k8s else "",
                                     name=e.k8s.name if e.k8s else "") for e in events],
                      [(link.cause, link.effect) for link in match.links]))


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
    links = [CausalLink(cause=str(d.caused_by), effect=str(o)) for o in [d.subject, *d.members]
             if d.caused_by is not None and o != d.caused_by]
    return RootCause(rank=0, pattern=d.cause, scope=str(d.subject), confidence=d.confidence, score=weight(d),
                     message=d.message, remediation=d.remediation, at=d.at, ongoing=d.ongoing, chain=list(d.chain),
                     affected=affected, family=d.family,
                     causes=[d.cause] + [d.detail[k] for k in _JOINED_CAUSES if d.detail.get(k)],
                     evidence=[Evidence(at=e.at, source=e.source, text=e.text, resource=e.about, severity=e.severity)
                               for e in d.evidence],
                     root=str(d.caused_by or d.subject), links=links)


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
                links=found.links + [link for link in diag.links if link not in found.links],
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
