"""Stage diagnose: why each object that is not healthy is so, on the live stream.

Fed by: topic `raw` (RawBatch: the objects, Events and container-log lines of this partition's
namespaces, as the bridge sends them). Feeds: topic `insights` (InsightBatch): a match and a
prediction per diagnosis (pattern `diagnosis/<family>`, prediction type the cause), which the graph
sink writes like a pattern's, so a diagnosis shows in `tapio explain`, `tapio predictions` and the
API, with the events it rests on.

The same functions as `tapio analyze` (`agents.diagnosis`), over what this worker has seen: the
newest state of each object and its last Events and log lines (`LiveState`, bounded per object;
Events and log lines are forgotten after EVENT_TTL_S of event time, as the API server forgets
Events; a deleted object is forgotten with them). Event time decides, not arrival: events wait in a
buffer until the watermark (the bridge's, less the allowed lateness) passes the end of their second
(`TICK_MS`); then that second's events are applied and the namespaces they touched are diagnosed
as of that moment.

What the stage says stands until it is no longer true. A diagnosis is one prediction per object
and family, updated in place when it says something new (a log line names the cause the exit code
did not); when a later diagnosis of its namespace no longer makes it (the object recovered, was
deleted, its cause is now read as another family, its Events joined the object in their namespace)
the prediction is sent again with `resolved_at`, the event time it stopped. A diagnosis that comes
back after that is a new episode: a new prediction. So a stream and its replay at any speed give
the same diagnoses, and what stands at any moment is what `tapio analyze` makes of the same input
(tests/test_cases_through_the_dataflow.py). The state is this worker's memory: after a restart it
fills again from the stream (the uncommitted part is re-read; older objects return with their next
update).
"""

from __future__ import annotations

import bisect
import heapq
from collections import deque
from collections.abc import Iterable, Mapping
from datetime import datetime

import msgspec

from agents.confidence import NO_FEEDBACK, Adjustment, adjusted
from agents.diagnosis import FAMILIES, INCIDENT_CONFIDENCE, Diagnosis, ObjectKey, diagnose, observe
from agents.diagnosis.observed import key_of
from agents.offline import unified_events
from core.events import CLUSTER_SCOPE, ObjectRef, RawEvent, UnifiedEvent, content_id, epoch_ms
from core.records import InsightBatch, PatternMatch, Prediction, RawBatch

#: per object, how many of its Events and log lines are kept (the newest)
KEEP_PER_OBJECT = 50
#: Events and log lines older than this (event time) are forgotten: the API server's default --event-ttl
EVENT_TTL_S = 3600
#: how many standing diagnoses are remembered, per worker (the oldest are forgotten)
KEEP_STANDING = 100_000
#: event time is diagnosed second by second: a namespace's events of one second are applied together
TICK_MS = 1_000
PATTERN_PREFIX = "diagnosis/"
VERSION = "1"
#: what feedback is counted against: pattern name -> version, as for the YAML patterns
VERSIONS = {PATTERN_PREFIX + family: VERSION for family in FAMILIES}
#: keys of objects that belong to no namespace (Nodes) or whose namespace the input did not say
_EVERY_COMPUTATION = frozenset({"", CLUSTER_SCOPE})


class Standing(msgspec.Struct, kw_only=True):
    """A diagnosis the stage has sent and not retracted: what it said, as the graph holds it."""

    namespace: str
    prediction: Prediction
    match: PatternMatch


class LiveState:
    """What this worker has seen, bounded: objects (newest state), and per object its Events and
    log lines (the newest KEEP_PER_OBJECT, none older than EVENT_TTL_S), indexed by namespace;
    and the diagnoses standing."""

    def __init__(self) -> None:
        self.objects: dict[ObjectKey, RawEvent] = {}
        self.events: dict[ObjectKey, deque[RawEvent]] = {}
        self.by_namespace: dict[str, set[ObjectKey]] = {}
        self.named: dict[tuple[str, str], set[ObjectKey]] = {}  # (kind, name) -> objects in a namespace
        self.expiry: list[tuple[int, ObjectKey]] = []  # (event time ms, key): a heap
        self.standing: dict[str, Standing] = {}  # "family/subject" -> what was sent
        self.ended: dict[str, str] = {}  # "family/subject" -> the match id of its last resolved episode
        self.buffer: list[tuple[int, int, RawEvent]] = []  # (event time ms, arrival, event): a heap
        self.arrived = 0
        self.watermarks: dict[int, int] = {}  # partition -> the newest watermark its batches carried
        self.applied_until_ms = 0  # every event before this event time is applied and diagnosed

    def until(self, partition: int | None, watermark: int) -> int:
        """How far event time has come on every partition this worker reads: a batch of one partition
        says nothing of another's events still on their way (objects in one namespace's partition, the
        namespace-less Events and the Nodes they wait for in another's)."""
        if partition is None:
            return watermark
        self.watermarks[partition] = max(watermark, self.watermarks.get(partition, 0))
        return min(self.watermarks.values())

    def assign(self, partitions: Iterable[int]) -> None:
        """The partitions this worker reads now (after a rebalance): each holds event time back until
        its first batch; one no longer read stops holding it."""
        mine = set(partitions)
        self.watermarks = {p: self.watermarks.get(p, 0) for p in mine}

    def add(self, raws: Iterable[RawEvent]) -> set[str]:
        """Fold a second's events in; returns the namespaces they touched."""
        touched: set[str] = set()
        for raw in raws:
            key = key_of(raw)
            if not key.kind or not key.name:
                continue
            if raw.type == "kubeapi" and raw.metadata.get("action") not in ("EVENT", "ROLLOUT"):
                if raw.metadata.get("action") == "DELETED":
                    self._forget(key)
                elif key not in self.objects or raw.timestamp >= self.objects[key].timestamp:
                    self._place(key, raw)
                    touched.add(self._index(key))
                touched.add(key.namespace)
                continue
            if not key.namespace:
                key, raw = self._joined(key, raw)
            if keep(self.events.setdefault(key, deque(maxlen=KEEP_PER_OBJECT)), raw):
                heapq.heappush(self.expiry, (epoch_ms(raw.timestamp), key))
                touched.add(self._index(key))
        return touched

    def expire(self, now_ms: int) -> set[str]:
        """Forget Events and log lines older than EVENT_TTL_S; returns the namespaces that lost some."""
        cutoff = now_ms - EVENT_TTL_S * 1000
        touched: set[str] = set()
        while self.expiry and self.expiry[0][0] < cutoff:
            _, key = heapq.heappop(self.expiry)
            kept = self.events.get(key)
            if not kept:
                continue
            while kept and epoch_ms(kept[0].timestamp) < cutoff:
                kept.popleft()
                touched.add(key.namespace)
            if not kept:
                del self.events[key]
                self._unindex(key)
        return touched

    def _place(self, key: ObjectKey, raw: RawEvent) -> None:
        self.objects[key] = raw
        if key.namespace:
            self.named.setdefault((key.kind, key.name), set()).add(key)
            loose = ObjectKey(key.kind, "", key.name)
            if loose in self.events and len(self.named[(key.kind, key.name)]) == 1:
                # Events that named no namespace (an events table of one namespace) join the object now
                # in one, as `observe` joins them: one object, not a namespace-less twin
                for event in self.events.pop(loose):
                    keep(self.events.setdefault(key, deque(maxlen=KEEP_PER_OBJECT)), self._in(key, event))
                self._unindex(loose)

    def _joined(self, key: ObjectKey, raw: RawEvent) -> tuple[ObjectKey, RawEvent]:
        """A namespace-less Event or log line about an object this state holds in exactly one namespace."""
        found = self.named.get((key.kind, key.name), set())
        if len(found) != 1:
            return key, raw
        (target,) = found
        return target, self._in(target, raw)

    @staticmethod
    def _in(target: ObjectKey, raw: RawEvent) -> RawEvent:
        field = "involved_namespace" if raw.metadata.get("action") == "EVENT" else "namespace"
        return msgspec.structs.replace(raw, metadata={**raw.metadata, field: target.namespace})

    def _forget(self, key: ObjectKey) -> None:
        """A deleted object goes with its Events and log lines: it is no longer failing."""
        self.objects.pop(key, None)
        self.events.pop(key, None)
        if key.namespace:
            self.named.get((key.kind, key.name), set()).discard(key)
        self._unindex(key)

    def _index(self, key: ObjectKey) -> str:
        self.by_namespace.setdefault(key.namespace, set()).add(key)
        return key.namespace

    def _unindex(self, key: ObjectKey) -> None:
        if key not in self.objects and key not in self.events:
            self.by_namespace.get(key.namespace, set()).discard(key)

    def raws_of(self, namespaces: set[str]) -> list[RawEvent]:
        """Everything kept about the objects of these namespaces, and the cluster-scoped ones."""
        out: list[RawEvent] = []
        for namespace in namespaces | _EVERY_COMPUTATION:
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


def keep(kept: deque[RawEvent], raw: RawEvent) -> bool:
    """Put an Event or log line among those kept of its object, in event-time order, once; False
    when it is not kept. Delivery is at least once: a batch read again after a restart, a message
    a restarted nats-server delivers again (its consumer state on disk was behind) brings an event
    the state already holds, which must not count twice (a probe's failures are summed). And arrival is not event
    time: one that comes late (a killed bridge's messages come back after `ack_wait`) takes its
    place by time, and one older than all of a full object is left out, as arriving in order would
    have pushed it out. So what is kept, and what is diagnosed from it, is what in-order delivery
    keeps."""
    at = raw.timestamp
    place = bisect.bisect_right(kept, at, key=_time)
    same = place
    while same > 0 and kept[same - 1].timestamp == at:
        if kept[same - 1].id == raw.id:
            return False
        same -= 1
    if place == len(kept):
        kept.append(raw)  # the usual case: the newest so far
        return True
    if len(kept) == kept.maxlen:
        if place == 0:
            return False
        kept.popleft()
        place -= 1
    kept.insert(place, raw)
    return True


def _time(raw: RawEvent) -> datetime:
    return raw.timestamp


def as_insight(d: Diagnosis, evidence: list[UnifiedEvent], uids: dict[ObjectKey, str] | None = None,
               episode: datetime | None = None) -> tuple[PatternMatch, Prediction]:
    """A diagnosis as the graph holds a pattern's finding: a match (on its object) and a prediction.
    One id per object, family and episode (`episode`, the match's window start: when it was first
    diagnosed): when more of the stream shows a more specific cause (the log line after the exit
    code), the prediction is updated in place."""
    pattern = PATTERN_PREFIX + d.family
    scope = f"object:{d.subject}"
    start = episode or d.at
    match = PatternMatch(id=content_id("diagnosis", pattern, scope, start.isoformat()), pattern=pattern,
                         version=VERSION, scope=scope, matched_at=d.at, window_start=start,
                         event_ids=[e.id for e in evidence], evidence=evidence, count=1)
    uids = uids or {}
    impacted = [ObjectRef(kind=k.kind, name=k.name, namespace=k.namespace, uid=uids.get(k, ""))
                for k in (d.subject, *d.members, *([d.caused_by] if d.caused_by else []))]
    prediction = Prediction(id=content_id(match.id, "prediction"), match_id=match.id, pattern=pattern,
                            version=VERSION, type=d.cause, confidence=round(d.confidence, 4), time_horizon_s=0.0,
                            message=d.message, scope=scope, at=d.at, due=d.at, score=round(d.confidence, 4),
                            impacted=impacted, remediation=d.remediation)
    return match, prediction


def diagnose_batch(state: LiveState, batch: RawBatch, *, partition: int | None = None, lateness_ms: int = 10_000,
                   adjustments: Mapping[str, Adjustment] | None = None
                   ) -> tuple[InsightBatch | None, list[tuple[msgspec.Struct, str, str]]]:
    """The stage's transform: buffer the batch's events, then apply and diagnose each second of event
    time the watermark of every partition read has passed (a snapshot at the newest time it shows:
    the logs and Events before it are applied with it or before). `adjustments`: the feedback on
    each `diagnosis/<family>` (`agents.confidence`): its confidence is adjusted as a pattern's, and
    a family feedback disabled diagnoses nothing (what it said stands resolved)."""
    for raw in batch.events:
        heapq.heappush(state.buffer, (epoch_ms(raw.timestamp), state.arrived, raw))
        state.arrived += 1
    until = state.until(partition, batch.watermark) - lateness_ms
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
        now = max(raw.timestamp for raw in second)
        touched = state.expire(epoch_ms(now)) | state.add(second)
        if touched:
            _diagnose(state, touched, now, matches, predictions, adjustments or {})
    ready = state.buffer[0][0] // TICK_MS * TICK_MS if state.buffer else until
    state.applied_until_ms = max(state.applied_until_ms, min(ready, until))
    if not matches and not predictions:
        return None, []
    return InsightBatch(matches=matches, predictions=predictions, watermark=batch.watermark), []


def _diagnose(state: LiveState, touched: set[str], now: datetime, matches: list[PatternMatch],
              predictions: list[Prediction], adjustments: Mapping[str, Adjustment]) -> None:
    if touched & _EVERY_COMPUTATION:
        # a Node (or an Event naming no namespace) changes what is said of pods in any namespace: a pod
        # waiting for nodes joins the node's diagnosis once the node is NotReady. Namespaces with a
        # diagnosis standing are diagnosed again (the others have nothing a node could join)
        touched = touched | {s.namespace for s in state.standing.values()}
    made: set[str] = set()
    for d in diagnose(observe(state.raws_of(touched))):
        if not d.ongoing or d.confidence < INCIDENT_CONFIDENCE:
            continue
        adjustment = adjustments.get(PATTERN_PREFIX + d.family, NO_FEEDBACK)
        if adjustment.disabled is not None:
            continue
        d.confidence = adjusted(d.confidence, adjustment.factor)
        identity = f"{d.family}/{d.subject}"
        made.add(identity)
        before = state.standing.get(identity)
        if before is not None and (before.prediction.message, before.prediction.confidence) \
                == (d.message, round(d.confidence, 4)):
            continue
        episode = before.match.window_start if before is not None else None
        match, prediction = as_insight(d, unified_events(state.evidence_of(d)), state.uids(d), episode)
        if before is None and state.ended.get(identity) == match.id:
            # back after it was resolved, on the same evidence (a state whose times did not move): still a
            # new episode, not the resolved one reopened
            match, prediction = as_insight(d, unified_events(state.evidence_of(d)), state.uids(d), now)
        matches.append(match)
        predictions.append(prediction)
        state.standing[identity] = Standing(namespace=d.subject.namespace, prediction=prediction, match=match)
        while len(state.standing) > KEEP_STANDING:
            state.standing.pop(next(iter(state.standing)))
    # this computation saw everything about the touched namespaces and the namespace-less keys:
    # what it no longer makes there has stopped
    covered = touched | _EVERY_COMPUTATION
    for identity in [i for i, s in state.standing.items() if s.namespace in covered and i not in made]:
        gone = state.standing.pop(identity)
        predictions.append(msgspec.structs.replace(gone.prediction, resolved_at=now))
        state.ended[identity] = gone.match.id
        while len(state.ended) > KEEP_STANDING:
            state.ended.pop(next(iter(state.ended)))
