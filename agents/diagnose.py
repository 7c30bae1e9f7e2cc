"""Stage diagnose: why each object that is not healthy is so, on the live stream.

Fed by: topic `raw` (RawBatch: the objects, Events and container-log lines of this partition's
namespaces, as the bridge sends them). Feeds: topic `insights` (InsightBatch): a match and a
prediction per diagnosis (pattern `diagnosis/<family>`, prediction type the cause), which the graph
sink writes like a pattern's, so a diagnosis shows in `tapio explain`, `tapio predictions` and the
API, with the events it rests on.

The same functions as `tapio analyze` (`agents.diagnosis`), over what this worker's partitions
have seen: the newest state of each object and its last Events and log lines (`LiveState`, bounded
per object). Event time decides, not arrival: events wait in a buffer until the partition's
watermark (the bridge's, less the allowed lateness) passes the end of their second (`TICK_MS`); then
that second's events are applied and the namespaces they touched are diagnosed as of that moment.
So a stream and its replay at any speed give the same diagnoses, and the cost follows namespaces
and seconds, not events. A diagnosis is sent when it is new or says something new. The state is
this worker's memory: after a restart it fills again from the stream (the uncommitted part is
re-read; older objects return with their next update).
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable

import msgspec

from agents.diagnosis import INCIDENT_CONFIDENCE, Diagnosis, ObjectKey, diagnose, observe
from agents.diagnosis.observed import key_of
from agents.offline import unified_events
from core.events import CLUSTER_SCOPE, ObjectRef, RawEvent, UnifiedEvent, content_id, epoch_ms
from core.records import InsightBatch, PatternMatch, Prediction, RawBatch

#: per object, how many of its Events and log lines are kept (the newest)
KEEP_PER_OBJECT = 50
#: how many objects' diagnoses are remembered as sent, per partition (the oldest are forgotten)
KEEP_SENT = 100_000
#: event time is diagnosed second by second: a namespace's events of one second are applied together
TICK_MS = 1_000
PATTERN_PREFIX = "diagnosis/"
VERSION = "1"


class LiveState:
    """What one partition has seen, bounded: objects (newest state), and per object its Events and
    log lines (the newest KEEP_PER_OBJECT), indexed by namespace."""

    def __init__(self) -> None:
        self.objects: dict[ObjectKey, RawEvent] = {}
        self.events: dict[ObjectKey, deque[RawEvent]] = {}
        self.by_namespace: dict[str, set[ObjectKey]] = {}
        self.sent: dict[str, str] = {}  # diagnosis identity -> what its message said when sent
        self.buffer: list[tuple[int, int, RawEvent]] = []  # (event time ms, arrival, event): a heap
        self.arrived = 0

    def add(self, raws: Iterable[RawEvent]) -> set[str]:
        """Fold a batch in; returns the namespaces it touched."""
        touched: set[str] = set()
        for raw in raws:
            key = key_of(raw)
            if not key.kind or not key.name:
                continue
            if raw.type == "kubeapi" and raw.metadata.get("action") not in ("EVENT", "ROLLOUT"):
                if raw.metadata.get("action") == "DELETED":
                    self.objects.pop(key, None)
                elif key not in self.objects or raw.timestamp >= self.objects[key].timestamp:
                    self.objects[key] = raw
            else:
                self.events.setdefault(key, deque(maxlen=KEEP_PER_OBJECT)).append(raw)
            self.by_namespace.setdefault(key.namespace, set()).add(key)
            touched.add(key.namespace)
        return touched

    def raws_of(self, namespaces: set[str]) -> list[RawEvent]:
        """Everything kept about the objects of these namespaces, and the cluster-scoped ones."""
        out: list[RawEvent] = []
        for namespace in namespaces | {"", CLUSTER_SCOPE}:
            for key in sorted(self.by_namespace.get(namespace, ())):
                if key in self.objects:
                    out.append(self.objects[key])
                out.extend(self.events.get(key, ()))
        return out

    def uids(self, d: Diagnosis) -> dict[ObjectKey, str]:
        """The uids of the objects a diagnosis names, so the graph joins them to the objects it holds."""
        keys = (d.subject, *d.members, *([d.caused_by] if d.caused_by else []))
        out = {}
        for key in keys:
            if key in self.objects:
                out[key] = self.objects[key].metadata.get("uid", "")
            else:  # known only from Events: their involvedObject's uid is the object's
                out[key] = next((r.metadata.get("involved_uid", "") for r in reversed(self.events.get(key, ()))
                                 if r.metadata.get("involved_uid")), "")
        return out

    def evidence_of(self, d: Diagnosis) -> list[RawEvent]:
        """The events a diagnosis rests on: its object, and the warnings and log lines about it."""
        out = [self.objects[k] for k in (d.subject, *d.members[:3]) if k in self.objects]
        for key in (d.subject, *d.members[:3]):
            kept = [r for r in self.events.get(key, ()) if r.type == "logs"
                    or r.metadata.get("event_type") == "Warning" or r.metadata.get("action") == "ROLLOUT"]
            out.extend(kept[-5:])
        return out


def as_insight(d: Diagnosis, evidence: list[UnifiedEvent], uids: dict[ObjectKey, str] | None = None
               ) -> tuple[PatternMatch, Prediction]:
    """A diagnosis as the graph holds a pattern's finding: a match (on its object) and a prediction."""
    pattern = PATTERN_PREFIX + d.family
    scope = f"object:{d.subject}"
    # one id per object and family: when more of the stream shows a more specific cause (the log line
    # after the exit code), the graph's prediction is updated in place, not doubled
    match = PatternMatch(id=content_id("diagnosis", pattern, scope), pattern=pattern,
                         version=VERSION, scope=scope, matched_at=d.at, window_start=d.at,
                         event_ids=[e.id for e in evidence], evidence=evidence, count=1)
    uids = uids or {}
    impacted = [ObjectRef(kind=k.kind, name=k.name, namespace=k.namespace, uid=uids.get(k, ""))
                for k in (d.subject, *d.members, *([d.caused_by] if d.caused_by else []))]
    prediction = Prediction(id=content_id(match.id, "prediction"), match_id=match.id, pattern=pattern,
                            version=VERSION, type=d.cause, confidence=round(d.confidence, 4), time_horizon_s=0.0,
                            message=d.message, scope=scope, at=d.at, due=d.at, score=round(d.confidence, 4),
                            impacted=impacted, remediation=d.remediation)
    return match, prediction


def diagnose_batch(state: LiveState, batch: RawBatch, *, lateness_ms: int = 10_000
                   ) -> tuple[InsightBatch | None, list[tuple[msgspec.Struct, str, str]]]:
    """The stage's transform: buffer the batch's events, then apply and diagnose each second of event
    time the watermark has passed (a snapshot at the newest time it shows: the logs and Events before
    it are applied with it or before)."""
    for raw in batch.events:
        heapq.heappush(state.buffer, (epoch_ms(raw.timestamp), state.arrived, raw))
        state.arrived += 1
    until = batch.watermark - lateness_ms
    matches: list[PatternMatch] = []
    predictions: list[Prediction] = []
    while state.buffer:
        first = state.buffer[0][0]
        end = (first // TICK_MS + 1) * TICK_MS
        if end > until:
            break
        second = []
        while state.buffer and state.buffer[0][0] < end:
            second.append(heapq.heappop(state.buffer)[2])
        touched = state.add(second)
        if touched:
            _diagnose(state, touched, matches, predictions)
    if not matches:
        return None, []
    return InsightBatch(matches=matches, predictions=predictions, watermark=batch.watermark), []


def _diagnose(state: LiveState, touched: set[str], matches: list[PatternMatch], predictions: list[Prediction]) -> None:
    for d in diagnose(observe(state.raws_of(touched))):
        if not d.ongoing or d.confidence < INCIDENT_CONFIDENCE:
            continue
        identity = f"{d.family}/{d.subject}"  # a better-read cause or a later onset updates it in place
        if state.sent.get(identity) == d.message:
            continue
        match, prediction = as_insight(d, unified_events(state.evidence_of(d)), state.uids(d))
        matches.append(match)
        predictions.append(prediction)
        state.sent[identity] = d.message
        while len(state.sent) > KEEP_SENT:
            state.sent.pop(next(iter(state.sent)))
