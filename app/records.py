"""The typed record of every topic and subject in the dataflow.

Fed by: the bridge (RawBatch) and each agent (the batch type of its output topic).
Feeds: `app.topics`, which binds each record type to one Kafka topic.

Events travel in batches: a Faust message costs about a millisecond here (notes), so one
Kafka record carries every event one upstream fetch produced for one partition, and each
stage turns one batch into one batch. Within a batch, events keep their order.

    events.<type>.<ns>  --bridge-->  raw  --enrich-->  enriched  --normalize-->  unified
        --match-->  matched  --predict-->  insights  --graph sink-->  graph
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from app.events import K8sContext, KubernetesData, RawEvent, TraceContext, UnifiedEvent


class RawBatch(msgspec.Struct, frozen=True, kw_only=True, gc=False, omit_defaults=True):
    """Topic `raw`: RawEvents as collectors published them, bridged from JetStream."""

    events: list[RawEvent]


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


class UnifiedBatch(msgspec.Struct, frozen=True, kw_only=True, gc=False, omit_defaults=True):
    """Topic `unified`: events in their final, layer-independent form."""

    events: list[UnifiedEvent]


class PatternMatch(msgspec.Struct, frozen=True, kw_only=True, gc=False, omit_defaults=True):
    """One behavior pattern matched over a window of events (filled by the patterns work)."""

    pattern: str
    version: str
    event_ids: list[str]
    window_start: datetime
    window_end: datetime
    scope: str = ""


class MatchedBatch(msgspec.Struct, frozen=True, kw_only=True, gc=False, omit_defaults=True):
    """Topic `matched`: the unified events and the pattern matches they completed."""

    events: list[UnifiedEvent]
    matches: list[PatternMatch] = []


class Prediction(msgspec.Struct, frozen=True, kw_only=True, gc=False, omit_defaults=True):
    """What a match says comes next (filled by the patterns work)."""

    id: str
    pattern: str
    confidence: float
    time_horizon_s: float
    message: str
    impacted: list[str] = []
    remediation: str = ""


class InsightBatch(msgspec.Struct, frozen=True, kw_only=True, gc=False, omit_defaults=True):
    """Topic `insights`: everything the graph sink writes."""

    events: list[UnifiedEvent]
    matches: list[PatternMatch] = []
    predictions: list[Prediction] = []


# --- views ------------------------------------------------------------------------------
# A stage that forwards a batch's events without reading them decodes its topic's record
# through a view: the same wire format, with `events` kept as undecoded MessagePack
# (`msgspec.Raw`) and re-sent byte for byte. A view is a typed partial read of the topic's
# declared record, not another record type: what it sends decodes as the declared type.


class UnifiedBatchView(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    events: msgspec.Raw


class MatchedBatchView(msgspec.Struct, frozen=True, kw_only=True, gc=False, omit_defaults=True):
    events: msgspec.Raw
    matches: list[PatternMatch] = []


class InsightBatchView(msgspec.Struct, frozen=True, kw_only=True, gc=False, omit_defaults=True):
    events: msgspec.Raw
    matches: list[PatternMatch] = []
    predictions: list[Prediction] = []


def batch_size(batch: msgspec.Struct) -> int:
    """How many events a batch or a view carries, without decoding raw events."""
    events = getattr(batch, "events", ())
    if isinstance(events, msgspec.Raw):
        return msgpack_array_len(bytes(events))
    return len(events)


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
