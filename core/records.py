r"""The typed record of every topic and subject in the dataflow.

Fed by: the bridge (RawBatch) and each agent (the batch type of its output topic).
Feeds: `app.topics`, which binds each record type to one Kafka topic.

Events travel in batches: a Faust message costs about a millisecond here (notes), so one
Kafka record carries every event one upstream fetch produced for one partition, and each
stage turns one batch into one batch. Within a batch, events keep their order.

    events.<type>.<ns>  --bridge-->  raw  --[enrich -> normalize -> select]-->  insights (the events)
                                                                        \-->  hits  --[windows -> predict]-->  insights
        insights  --graph sink-->  graph
        raw  --diagnose-->  insights

enrich, normalize and select run chained in one agent where one worker runs them all
(`agents.front`), and so do windows and predict (`agents.predict_chain`); `enriched`, `unified` and
`matched` carry their batches only where `worker.stages` splits them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import msgspec

from core.events import K8sContext, KubernetesData, ObjectRef, RawEvent, TraceContext, UnifiedEvent


class Progress(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """Where a batch's events came from: its `raw` partition and the highest JetStream stream
    sequence among them. Every stage passes it on with the events; the graph sink records, per
    partition, the newest one it has written (`app.checkpoint`), so that after Kafka lost data
    the bridge knows from which sequence to bridge again."""

    partition: int
    seq: int


class RawBatch(msgspec.Struct, frozen=True, kw_only=True, gc=False, omit_defaults=True):
    """Topic `raw`: RawEvents as collectors published them, bridged from JetStream."""

    events: list[RawEvent]
    watermark: int = 0
    progress: Progress | None = None


class EnrichedEvent(msgspec.Struct, frozen=True, kw_only=True, gc=False, omit_defaults=True):
    """A RawEvent with its payload decoded into the Kubernetes object it concerns.

    `raw.data` is emptied once decoded (the original payload stays in JetStream).
    """

    raw: RawEvent
    k8s: K8sContext | None = None
    kubernetes: KubernetesData | None = None
    trace: TraceContext | None = None


class EnrichedBatch(msgspec.Struct, frozen=True, kw_only=True, gc=False, omit_defaults=True):
    """Topic `enriched`."""

    events: list[EnrichedEvent]
    watermark: int = 0
    progress: Progress | None = None


class UnifiedBatch(msgspec.Struct, frozen=True, kw_only=True, gc=False, omit_defaults=True):
    """Topic `unified`: events in their final, layer-independent form."""

    events: list[UnifiedEvent]
    watermark: int = 0
    progress: Progress | None = None


class Hit(msgspec.Struct, frozen=True, kw_only=True, gc=False, omit_defaults=True):
    """Topic `hits`: one event that passed one condition's tests, keyed to one scope of one pattern.

    The event rides as bytes: the windows decode it only for a match's evidence.
    `cond` is the condition's fingerprint (its tests, not its thresholds, so a threshold edit
    keeps the window state). `role` is `first`/`then` for a sequence. `series` names a repeated
    Kubernetes Event (same object, reason, message): only the increase of its `count` counts.
    """

    pattern: str
    key: str
    cond: str
    t: int  # event time, epoch ms
    id: str  # the event's id
    event: msgspec.Raw  # the UnifiedEvent, MessagePack, kept undecoded: evidence if the hit ends in a match
    role: str = ""
    distinct: str = ""
    series: str = ""
    count: int = 1
    value: float = 0.0  # a metric sample


class HitBatch(msgspec.Struct, frozen=True, kw_only=True, gc=False, omit_defaults=True):
    """Topic `hits`: the hits of one unified batch for one hits partition, and the source's watermark.

    Sent to every hits partition for every unified batch, empty or not, so each window
    partition learns how far every source partition has come in event time.
    """

    source: int
    watermark: int
    hits: list[Hit] = []
    selected_at: float = 0.0  # wall clock (epoch s) when select took the batch: match latency, for stats
    progress: Progress | None = None  # the raw batch's: once the windows hold these hits (app.checkpoint)


class Link(msgspec.Struct, frozen=True, kw_only=True, gc=False, omit_defaults=True):
    """`(cause)-[:CAUSED]->(effect)` and `(cause)-[:PRECEDED {delay_s}]->(effect)` of a sequence match."""

    cause: str
    effect: str
    delay_s: float


class PatternMatch(msgspec.Struct, frozen=True, kw_only=True, gc=False, omit_defaults=True):
    """One behavior pattern that held in one scope at one event time.

    `id` is a content hash of (pattern, scope, matched_at): a replay finds the same id.
    `evidence` carries the events it rests on, so the graph can write the match whole even
    when those events travel on another partition. `count` is what the deciding condition
    counted; `boost` what optional conditions added to the confidence.
    """

    id: str
    pattern: str
    version: str
    scope: str
    matched_at: datetime
    window_start: datetime
    event_ids: list[str]
    evidence: list[UnifiedEvent] = []
    links: list[Link] = []
    count: int = 0
    boost: float = 0.0
    priority: int = 50
    pods: int = 0  # distinct pods among the events the deciding condition counted
    since: datetime | None = None  # the episode's first match, when this one updates it (same id)
    #: sent ahead of the watermark (`match.early_firing`): the pattern holds on the hits in so far; the
    #: final evaluation, once event time passes `matched_at`, confirms it (the same id, not provisional)
    #: or withdraws it
    provisional: bool = False
    #: a provisional match the final evaluation did not confirm: the graph drops it and its predictions
    #: (only `id`, `pattern`, `scope` and `matched_at` say anything)
    withdrawn: bool = False


class MatchedBatch(msgspec.Struct, frozen=True, kw_only=True, gc=False, omit_defaults=True):
    """Topic `matched`: the matches a window closed (from windows); the events go to `insights` directly."""

    matches: list[PatternMatch] = []


class Prediction(msgspec.Struct, frozen=True, kw_only=True, gc=False, omit_defaults=True):
    """What a match says comes next: `(Pattern)-[:PREDICTED]->(Prediction)` in the graph.

    `at` is the match's event time, `due` = at + time horizon. `score` ranks hypotheses that
    share symptoms (confidence weighted by the pattern's priority). `resolved_at`: the event time it
    stopped holding (the live diagnose stage retracts a diagnosis when its object recovers).
    """

    id: str
    match_id: str
    pattern: str
    version: str
    type: str
    confidence: float
    time_horizon_s: float
    message: str
    scope: str
    at: datetime
    due: datetime
    score: float = 0.0
    impact: list[str] = []
    impacted: list[ObjectRef] = []
    remediation: str = ""
    resolved_at: datetime | None = None
    since: datetime | None = None  # when the episode was first predicted, when this version updates it
    #: how many times a prediction of the same id was updated in place before this version (a
    #: diagnosis whose message changes): of two versions at the same moment, the higher one is newer.
    #: Versions travel on different partitions (a node's event re-diagnoses pods of every namespace),
    #: so the order they reach the graph in says nothing
    revision: int = 0
    provisional: bool = False  # made from a provisional match (PatternMatch.provisional)


class InsightBatch(msgspec.Struct, frozen=True, kw_only=True, gc=False, omit_defaults=True):
    """Topic `insights`: everything the graph sink writes."""

    events: list[UnifiedEvent] = []
    matches: list[PatternMatch] = []
    predictions: list[Prediction] = []
    watermark: int = 0
    progress: Progress | None = None


# --- views ------------------------------------------------------------------------------
# A stage that forwards a batch's events without reading them decodes its topic's record
# through a view: the same wire format, with `events` kept as undecoded MessagePack
# (`msgspec.Raw`) and re-sent byte for byte. A view is a typed partial read of the topic's
# declared record, not another record type: what it sends decodes as the declared type.

EMPTY_EVENTS = msgspec.Raw(b"\x90")  # a MessagePack empty array


class UnifiedBatchView(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    events: msgspec.Raw
    watermark: int = 0
    progress: Progress | None = None


class InsightBatchView(msgspec.Struct, frozen=True, kw_only=True, gc=False, omit_defaults=True):
    events: msgspec.Raw = EMPTY_EVENTS
    matches: list[PatternMatch] = []
    predictions: list[Prediction] = []
    watermark: int = 0
    progress: Progress | None = None


def batch_size(batch: msgspec.Struct) -> int:
    """How many events a batch or a view carries, without decoding raw events."""
    events = getattr(batch, "events", ())
    if isinstance(events, msgspec.Raw):
        if not len(events):
            return 0
        return msgpack_array_len(bytes(events))
    return len(events)


def byte_slices(sizes: Sequence[int], limit: int) -> list[tuple[int, int]]:
    """Pure: (start, end) slices of consecutive items whose sizes add up to at most `limit` (an item
    alone is one slice, whatever its size): how a batch is split over Kafka records that each stay
    under the producer's maximum request size."""
    out: list[tuple[int, int]] = []
    start, total = 0, 0
    for i, size in enumerate(sizes):
        if i > start and total + size > limit:
            out.append((start, i))
            start, total = i, 0
        total += size
    if start < len(sizes):
        out.append((start, len(sizes)))
    return out


def msgpack_array(items: Sequence[bytes | msgspec.Raw]) -> msgspec.Raw:
    """Pure: items each already MessagePack, as one MessagePack array (a view's `events`), without
    decoding or encoding them again."""
    n = len(items)
    if n < 16:
        head = bytes([0x90 | n])
    elif n < 2**16:
        head = b"\xdc" + n.to_bytes(2, "big")
    else:
        head = b"\xdd" + n.to_bytes(4, "big")
    return msgspec.Raw(head + b"".join(items))


def msgpack_array_len(data: bytes) -> int:
    """The length in a MessagePack array header (fixarray, array 16, array 32)."""
    head = data[0]
    if 0x90 <= head <= 0x9F:
        return head & 0x0F
    if head == 0xDC:
        return int.from_bytes(data[1:3], "big")
    if head == 0xDD:
        return int.from_bytes(data[1:5], "big")
    raise ValueError(f"not a MessagePack array (header byte {head:#x})")


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True, gc=False, omit_defaults=True):
    """Subject `deadletter.<stage>`: input a stage could not use, with the reason and where it came from."""

    stage: str
    reason: str
    where: str
    payload: bytes
    at: datetime
    event_id: str = ""


class MatchGroup(msgspec.Struct, frozen=True, kw_only=True):
    """A match (absent when only its predictions are in the batch) and its predictions."""

    match_id: str
    match: PatternMatch | None
    predictions: list[Prediction]


def by_match(matches: Sequence[PatternMatch], predictions: Sequence[Prediction]) -> list[MatchGroup]:
    """Matches with their predictions, sorted by match id; of the versions of one id, the newest
    (a match by `matched_at`, a prediction by `resolved_at`, else `at`, then `revision`, a resolution
    over an update of the same moment; the later in the list among equals). A batch may hold versions of one
    diagnosis from several partitions, in any order: the list's last is not always the newest."""
    unique: dict[str, PatternMatch] = {}
    for m in matches:
        held = unique.get(m.id)
        if held is None or m.matched_at >= held.matched_at:
            unique[m.id] = m
    preds: dict[str, dict[str, Prediction]] = {}
    for p in predictions:
        same = preds.setdefault(p.match_id, {})
        held_p = same.get(p.id)
        if held_p is None or _version(p) >= _version(held_p):
            same[p.id] = p
    return [MatchGroup(match_id=mid, match=unique.get(mid),
                       predictions=sorted(preds.get(mid, {}).values(), key=lambda p: p.id))
            for mid in sorted(unique.keys() | preds.keys())]


def _version(p: Prediction) -> tuple[datetime, int, bool]:
    """How new a version of a prediction is (the graph's order, topology.insight_queries)."""
    return (p.resolved_at or p.at, p.revision, p.resolved_at is not None)
