"""Stage diagnose: why each object that is not healthy is so, on the live stream.

Fed by: topic `raw` (RawBatch: the objects, Events and container-log lines of this partition's
namespaces, as the bridge sends them). Feeds: topic `insights` (InsightBatch): a match and a
prediction per diagnosis (pattern `diagnosis/<family>`, prediction type the cause), which the graph
sink writes like a pattern's, so a diagnosis shows in `tapio explain`, `tapio predictions` and the
API, with the events it rests on.

The same functions as `tapio analyze` (`agents.diagnosis`), over what this worker has seen: the
newest state of each object and its last Events and log lines (`LiveState`). Event time decides,
not arrival: events wait in a buffer until the watermark (the bridge's, less the allowed lateness)
passes the end of their second (`TICK_MS`); then that second's events are applied and the
namespaces they touched are diagnosed as of that moment.

Bounds, per raw partition (the one a namespace's events come on): at most KEEP_OBJECTS objects
(an object counts with its Events and log lines; past it, the one whose newest state, Event or log
line is oldest in event time is forgotten, as if deleted); per object, its newest KEEP_PER_OBJECT
Events and log lines. Expiry, by event time: Events and log lines after EVENT_TTL_S, as the API
server forgets Events; an object is forgotten when deleted (then with its Events), not after a
time: one that does not change is still there, and a pod's diagnosis needs its owners, which
rarely change; a deletion is remembered for EVENT_TTL_S. Diagnoses: KEEP_STANDING standing and as
many resolved episodes per worker; the newest RESEND_RESOLVED resolutions per partition.

What the stage says stands until it is no longer true. A diagnosis is one prediction per object
and family, updated in place when it says something new (a log line names the cause the exit code
did not); when a later diagnosis of its namespace no longer makes it (the object recovered, was
deleted, its cause is now read as another family, its Events joined the object in their namespace)
the prediction is sent again with `resolved_at`, the event time it stopped. A diagnosis that comes
back after that is a new episode: a new prediction. So a stream and its replay at any speed give
the same diagnoses, and what stands at any moment is what `tapio analyze` makes of the same input
(tests/test_cases_through_the_dataflow.py).

Delivery is at least once: an event delivered again (a restarted worker re-reads what it had not
committed, the bridge bridges a range again after Kafka lost its data, a restarted nats-server
delivers again) changes nothing and is not diagnosed again: an Event or log line kept once
(`keep`), an object's state it holds or an older one, an event already waiting, one about an
object deleted after it, one that would have expired. The state is kept in a table, per raw
partition, and taken up again after a restart (agents/diagnose_store.py); with `track`, the state
notes each change as a typed item (agents/diagnose_log.py) for it. Pure: no Faust here.
"""

from __future__ import annotations

import bisect
import heapq
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime

import msgspec

from agents.confidence import NO_FEEDBACK, Adjustment, adjusted
from agents.diagnose_log import (
    RESOLVED_KEY,
    Ended,
    Gone,
    Item,
    KeptEvent,
    KeptObject,
    Resolved,
    Standing,
    Waiting,
    ended_key,
    event_key,
    gone_key,
    identity_of,
    object_key,
    standing_key,
    waiting_key,
)
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
#: how many objects (with their Events and log lines) a raw partition keeps: past it, the one with
#: the oldest newest event time is forgotten
KEEP_OBJECTS = 20_000
#: how many of its newest resolutions a partition sends again when a worker takes it up
RESEND_RESOLVED = 128
#: event time is diagnosed second by second: a namespace's events of one second are applied together
TICK_MS = 1_000
PATTERN_PREFIX = "diagnosis/"
VERSION = "1"
#: what feedback is counted against: pattern name -> version, as for the YAML patterns
VERSIONS = {PATTERN_PREFIX + family: VERSION for family in FAMILIES}
#: keys of objects that belong to no namespace (Nodes) or whose namespace the input did not say
_EVERY_COMPUTATION = frozenset({"", CLUSTER_SCOPE})


class LiveState:
    """What this worker has seen, bounded: objects (newest state), and per object its Events and
    log lines (the newest KEEP_PER_OBJECT, none older than EVENT_TTL_S), indexed by namespace;
    and the diagnoses standing.

    `home(namespace)` is the raw partition a namespace's events come on (the bridge's rule; one
    partition when not given): each object, diagnosis and event waiting counts against, and is
    stored in, its partition's share. With `track`, every change to what is kept is noted per
    partition as a typed item (agents.diagnose_log), for `take_changes`."""

    def __init__(self, *, home: Callable[[str], int] | None = None, track: bool = False) -> None:
        self.objects: dict[ObjectKey, RawEvent] = {}
        self.events: dict[ObjectKey, deque[RawEvent]] = {}
        self.by_namespace: dict[str, set[ObjectKey]] = {}
        self.named: dict[tuple[str, str], set[ObjectKey]] = {}  # (kind, name) -> objects in a namespace
        self.expiry: list[tuple[int, ObjectKey]] = []  # (event time ms, key): a heap
        self.standing: dict[str, Standing] = {}  # "family/subject" -> what was sent
        self.ended: dict[str, Ended] = {}  # "family/subject" -> its last resolved episode
        self.buffer: list[tuple[int, int, RawEvent]] = []  # (event time ms, arrival, event): a heap
        self.arrived = 0
        self.watermarks: dict[int, int] = {}  # partition -> the newest watermark its batches carried
        self.applied_until_ms = 0  # every event before this event time is applied and diagnosed
        self.home: Callable[[str], int] = home or _one_partition
        self.track = track
        self.changes: dict[int, dict[str, Item | None]] = {}  # partition -> item key -> item (None: gone)
        self.waiting: dict[str, int] = {}  # the events in the buffer (item key) -> their partition
        self.kept_count = 0  # how many Events and log lines were kept: their order among equal times
        self.newest: dict[ObjectKey, int] = {}  # object -> event time (ms) of the newest thing kept about it
        self.recency: dict[int, list[tuple[int, ObjectKey]]] = {}  # partition -> (newest, object): a heap
        self.held: dict[int, int] = {}  # partition -> how many objects it keeps
        self.resolved: dict[int, list[Prediction]] = {}  # partition -> its newest resolutions
        self.gone: dict[ObjectKey, int] = {}  # object deleted -> when (ms), for EVENT_TTL_S; oldest first
        self.clock = 0  # the newest second applied (ms)

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

    def wait(self, raws: Iterable[RawEvent], partition: int | None) -> None:
        """Events received: they wait in the buffer until event time passes their second (once each)."""
        for raw in raws:
            at = epoch_ms(raw.timestamp)
            key = waiting_key(at, raw.id)
            if key in self.waiting:
                continue  # delivered again while it waits
            where = partition if partition is not None else 0
            self.waiting[key] = where
            heapq.heappush(self.buffer, (at, self.arrived, raw))
            self._note(where, key, Waiting(at_ms=at, arrived=self.arrived, raw=raw))
            self.arrived += 1

    def due(self, end_ms: int) -> list[RawEvent]:
        """The events waiting whose event time is before `end_ms`, oldest first, out of the buffer."""
        out = []
        while self.buffer and self.buffer[0][0] < end_ms:
            at, _, raw = heapq.heappop(self.buffer)
            key = waiting_key(at, raw.id)
            self._note(self.waiting.pop(key, 0), key, None)
            out.append(raw)
        return out

    def add(self, raws: Iterable[RawEvent]) -> set[str]:
        """Fold a second's events in; returns the namespaces they changed. An event delivered again
        (what the state holds already, or an object's older state) changes nothing and touches
        nothing; so does one about an object deleted after it, or an Event or log line older than
        EVENT_TTL_S before the newest second applied (it would have expired)."""
        touched: set[str] = set()
        for raw in raws:
            key = key_of(raw)
            if not key.kind or not key.name:
                continue
            at = epoch_ms(raw.timestamp)
            if raw.type == "kubeapi" and raw.metadata.get("action") not in ("EVENT", "ROLLOUT"):
                if raw.metadata.get("action") == "DELETED":
                    if self._forget(key):
                        touched.add(key.namespace)
                    self._gone(key, at)
                elif self._is_new(key, raw, at):
                    self._place(key, raw)
                    touched.add(self._index(key))
                continue
            if at < self.clock - EVENT_TTL_S * 1000:
                continue
            if not key.namespace:
                key, raw = self._joined(key, raw)
            if at < self.gone.get(key, -1):
                continue
            if self._keep(key, raw):
                touched.add(self._index(key))
        return touched | self._bound()

    def _is_new(self, key: ObjectKey, raw: RawEvent, at: int) -> bool:
        """An object's state newer than the one held (one of the same time replaces it, as it arrives later)."""
        held = self.objects.get(key)
        if held is None:
            return at >= self.gone.get(key, -1)
        return raw.timestamp >= held.timestamp and raw.id != held.id

    def _gone(self, key: ObjectKey, at: int) -> None:
        """Remember a deletion for EVENT_TTL_S: what comes again about the object from before it is not
        taken for a new object."""
        if at > self.gone.get(key, -1):
            self.gone.pop(key, None)
            self.gone[key] = at
            self._note(self.home(key.namespace), gone_key(key), Gone(key=key, at_ms=at))

    def expire(self, now_ms: int) -> set[str]:
        """Forget Events and log lines older than EVENT_TTL_S; returns the namespaces that lost some."""
        self.clock = max(self.clock, now_ms)
        cutoff = now_ms - EVENT_TTL_S * 1000
        while self.gone:
            key, at = next(iter(self.gone.items()))
            if at >= self.clock - EVENT_TTL_S * 1000:
                break
            del self.gone[key]
            self._note(self.home(key.namespace), gone_key(key), None)
        touched: set[str] = set()
        while self.expiry and self.expiry[0][0] < cutoff:
            _, key = heapq.heappop(self.expiry)
            kept = self.events.get(key)
            if not kept:
                continue
            while kept and epoch_ms(kept[0].timestamp) < cutoff:
                self._note(self.home(key.namespace), event_key(key, kept.popleft()), None)
                touched.add(key.namespace)
            if not kept:
                del self.events[key]
                self._unindex(key)
        return touched

    def _keep(self, key: ObjectKey, raw: RawEvent) -> bool:
        """`keep` for this state: the Event or log line kept, the one it pushed out noted gone."""
        kept = self.events.setdefault(key, deque(maxlen=KEEP_PER_OBJECT))
        oldest = kept[0] if len(kept) == kept.maxlen else None
        if not keep(kept, raw):
            return False
        at = epoch_ms(raw.timestamp)
        heapq.heappush(self.expiry, (at, key))
        self._seen(key, at)
        self.kept_count += 1
        home = self.home(key.namespace)
        self._note(home, event_key(key, raw), KeptEvent(key=key, order=self.kept_count, raw=raw))
        if oldest is not None and kept[0] is not oldest:
            self._note(home, event_key(key, oldest), None)
        return True

    def _place(self, key: ObjectKey, raw: RawEvent) -> None:
        self.objects[key] = raw
        self._seen(key, epoch_ms(raw.timestamp))
        self._note(self.home(key.namespace), object_key(key), KeptObject(key=key, raw=raw))
        if key.namespace:
            self.named.setdefault((key.kind, key.name), set()).add(key)
            loose = ObjectKey(key.kind, "", key.name)
            if loose in self.events and len(self.named[(key.kind, key.name)]) == 1:
                # Events that named no namespace (an events table of one namespace) join the object now
                # in one, as `observe` joins them: one object, not a namespace-less twin
                for event in self.events.pop(loose):
                    self._note(self.home(""), event_key(loose, event), None)
                    self._keep(key, self._in(key, event))
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

    def _forget(self, key: ObjectKey) -> bool:
        """A deleted object goes with its Events and log lines: it is no longer failing. False when
        nothing was kept about it."""
        home = self.home(key.namespace)
        known = key in self.by_namespace.get(key.namespace, ())
        if self.objects.pop(key, None) is not None:
            self._note(home, object_key(key), None)
        for event in self.events.pop(key, ()):
            self._note(home, event_key(key, event), None)
        if key.namespace:
            self.named.get((key.kind, key.name), set()).discard(key)
        self._unindex(key)
        return known

    def _index(self, key: ObjectKey) -> str:
        keys = self.by_namespace.setdefault(key.namespace, set())
        if key not in keys:
            keys.add(key)
            home = self.home(key.namespace)
            self.held[home] = self.held.get(home, 0) + 1
        return key.namespace

    def _unindex(self, key: ObjectKey) -> None:
        if key not in self.objects and key not in self.events:
            keys = self.by_namespace.get(key.namespace, set())
            if key in keys:
                keys.discard(key)
                self.held[self.home(key.namespace)] -= 1
                self.newest.pop(key, None)

    def _seen(self, key: ObjectKey, at: int) -> None:
        """The newest event time kept about an object: the least recent go first when a partition is full."""
        if at <= self.newest.get(key, -1):
            return
        self.newest[key] = at
        heap = self.recency.setdefault(self.home(key.namespace), [])
        heapq.heappush(heap, (at, key))
        if len(heap) > 4 * len(self.newest) + 1024:  # drop stale entries now and then
            for home, stale in self.recency.items():
                self.recency[home] = [(t, k) for t, k in stale if self.newest.get(k) == t]
                heapq.heapify(self.recency[home])

    def _bound(self) -> set[str]:
        """Forget the least recent objects of a partition keeping more than KEEP_OBJECTS; returns
        the namespaces that lost one."""
        touched: set[str] = set()
        for home, count in self.held.items():
            heap = self.recency.get(home, [])
            while count > KEEP_OBJECTS and heap:
                at, key = heapq.heappop(heap)
                if self.newest.get(key) != at:
                    continue  # stale: newer was kept about it since
                self._forget(key)
                touched.add(key.namespace)
                count = self.held[home]
        return touched

    def _note(self, partition: int, key: str, item: Item | None) -> None:
        if self.track:
            self.changes.setdefault(partition, {})[key] = item

    def stand(self, identity: str, standing: Standing) -> None:
        self.standing[identity] = standing
        self._note(self.home(standing.namespace), standing_key(identity), standing)
        while len(self.standing) > KEEP_STANDING:
            oldest = next(iter(self.standing))
            self._note(self.home(self.standing.pop(oldest).namespace), standing_key(oldest), None)

    def resolve(self, identity: str, now: datetime) -> Prediction:
        """A standing diagnosis no longer made: its prediction with `resolved_at`, to send."""
        gone = self.standing.pop(identity)
        home = self.home(gone.namespace)
        self._note(home, standing_key(identity), None)
        resolved = msgspec.structs.replace(gone.prediction, resolved_at=now)
        ended = Ended(namespace=gone.namespace, match_id=gone.match.id, at_ms=epoch_ms(now))
        self.ended[identity] = ended
        self._note(home, ended_key(identity), ended)
        while len(self.ended) > KEEP_STANDING:
            oldest = next(iter(self.ended))
            self._note(self.home(self.ended.pop(oldest).namespace), ended_key(oldest), None)
        recent = self.resolved.setdefault(home, [])
        recent.append(resolved)
        del recent[:-RESEND_RESOLVED]
        self._note(home, RESOLVED_KEY, Resolved(predictions=list(recent)))
        return resolved

    def take_changes(self) -> dict[int, dict[str, Item | None]]:
        """What changed since the last call, per partition: item key -> its item, None when gone."""
        changes, self.changes = self.changes, {}
        return changes

    def restore(self, items: Mapping[int, Mapping[str, Item]]) -> None:
        """Take up what partitions kept (each partition's latest items, agents.diagnose_log), into a
        state that holds nothing of them yet: the same state as the one that stored them, but for
        the watermarks (each partition's next batch brings its own)."""
        track, self.track = self.track, False
        events: list[KeptEvent] = []
        standing: list[tuple[str, Standing]] = []
        ended: list[tuple[str, Ended]] = []
        gone: list[Gone] = []
        rekeyed: list[tuple[int, str, str, Waiting]] = []
        for partition, kept in items.items():
            for key, item in kept.items():
                if isinstance(item, KeptObject):
                    self.objects[item.key] = item.raw
                    if item.key.namespace:
                        self.named.setdefault((item.key.kind, item.key.name), set()).add(item.key)
                    self._index(item.key)
                    self._seen(item.key, epoch_ms(item.raw.timestamp))
                elif isinstance(item, KeptEvent):
                    events.append(item)
                elif isinstance(item, Waiting):
                    new_key = waiting_key(item.at_ms, item.raw.id)
                    if new_key != key:  # stored under the key's older form: moved at the next write
                        rekeyed.append((partition, key, new_key, item))
                    self.waiting[new_key] = partition
                    heapq.heappush(self.buffer, (item.at_ms, item.arrived, item.raw))
                    self.arrived = max(self.arrived, item.arrived + 1)
                elif isinstance(item, Standing):
                    standing.append((identity_of(key), item))
                elif isinstance(item, Ended):
                    ended.append((identity_of(key), item))
                elif isinstance(item, Resolved):
                    self.resolved[partition] = list(item.predictions)
                elif isinstance(item, Gone):
                    gone.append(item)
        for event in sorted(events, key=lambda e: (e.raw.timestamp, e.order)):
            self._keep(event.key, event.raw)
            self._index(event.key)
        self.kept_count = max((e.order for e in events), default=0)
        for identity, s in sorted(standing, key=lambda i: (i[1].match.window_start, i[0])):
            self.standing[identity] = s
        for identity, e in sorted(ended, key=lambda i: (i[1].at_ms, i[0])):
            self.ended[identity] = e
        for g in sorted(gone, key=lambda g: g.at_ms):
            self.gone[g.key] = g.at_ms
        # the newest second applied, or as near as what is kept tells (a lower clock only keeps more)
        self.clock = max([epoch_ms(r.timestamp) for r in self.objects.values()]
                         + [epoch_ms(e.raw.timestamp) for e in events] + list(self.gone.values()), default=0)
        self.changes = {}
        self.track = track
        for partition, old_key, new_key, waiting in rekeyed:
            self._note(partition, old_key, None)
            self._note(partition, new_key, waiting)

    def sent_again(self) -> tuple[list[PatternMatch], list[Prediction]]:
        """What a worker taking up this state sends again, in case Kafka lost it before the graph had
        it (the graph merges by id): every diagnosis standing, with the evidence the state still
        holds, and the newest resolutions."""
        standing = list(self.standing.values())
        wanted = {i for s in standing for i in s.match.event_ids}
        held: dict[str, RawEvent] = {}
        for key in {ObjectKey(r.kind, r.namespace, r.name) for s in standing for r in s.prediction.impacted}:
            for raw in [*([self.objects[key]] if key in self.objects else []), *self.events.get(key, ())]:
                if raw.id in wanted:
                    held[raw.id] = raw
        matches = [msgspec.structs.replace(s.match, evidence=unified_events(
            held[i] for i in s.match.event_ids if i in held)) for s in standing]
        predictions = [s.prediction for s in standing]
        return matches, [p for recent in self.resolved.values() for p in recent] + predictions

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


def _one_partition(namespace: str) -> int:
    return 0


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
               episode: datetime | None = None, revision: int = 0) -> tuple[PatternMatch, Prediction]:
    """A diagnosis as the graph holds a pattern's finding: a match (on its object) and a prediction.
    One id per object, family and episode (`episode`, the match's window start: when it was first
    diagnosed): when more of the stream shows a more specific cause (the log line after the exit
    code), the prediction is updated in place: `revision` counts the updates before this one."""
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
                            impacted=impacted, remediation=d.remediation, revision=revision)
    return match, prediction


def diagnose_batch(state: LiveState, batch: RawBatch, *, partition: int | None = None, lateness_ms: int = 10_000,
                   adjustments: Mapping[str, Adjustment] | None = None
                   ) -> tuple[InsightBatch | None, list[tuple[msgspec.Struct, str, str]]]:
    """The stage's transform: buffer the batch's events, then apply and diagnose each second of event
    time the watermark of every partition read has passed (a snapshot at the newest time it shows:
    the logs and Events before it are applied with it or before). `adjustments`: the feedback on
    each `diagnosis/<family>` (`agents.confidence`): its confidence is adjusted as a pattern's, and
    a family feedback disabled diagnoses nothing (what it said stands resolved)."""
    state.wait(batch.events, partition)
    until = state.until(partition, batch.watermark) - lateness_ms
    matches: list[PatternMatch] = []
    predictions: list[Prediction] = []
    while state.buffer:
        first = state.buffer[0][0]
        end = (first // TICK_MS + 1) * TICK_MS
        if end > until:
            break
        second = state.due(end)
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
        revision = before.prediction.revision + 1 if before is not None else 0
        match, prediction = as_insight(d, unified_events(state.evidence_of(d)), state.uids(d), episode, revision)
        if before is None and (ended := state.ended.get(identity)) is not None and ended.match_id == match.id:
            # back after it was resolved, on the same evidence (a state whose times did not move): still a
            # new episode, not the resolved one reopened
            match, prediction = as_insight(d, unified_events(state.evidence_of(d)), state.uids(d), now)
        matches.append(match)
        predictions.append(prediction)
        # the match without its evidence (the events are in the state): the stored state stays small
        state.stand(identity, Standing(namespace=d.subject.namespace, prediction=prediction,
                                       match=msgspec.structs.replace(match, evidence=[])))
    # this computation saw everything about the touched namespaces and the namespace-less keys:
    # what it no longer makes there has stopped
    covered = touched | _EVERY_COMPUTATION
    for identity in [i for i, s in state.standing.items() if s.namespace in covered and i not in made]:
        predictions.append(state.resolve(identity, now))
