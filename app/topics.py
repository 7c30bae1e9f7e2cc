"""The Kafka topics of the dataflow, one per stage, each bound to one record type.

Fed by: `app.faust_app.create_app` (declares them), the bridge (`topic_name` for `raw`).
Feeds: every agent, which reads one topic and writes the next.
"""

from __future__ import annotations

import faust
import msgspec

from app.codec import StructSchema
from app.records import (EnrichedBatch, HitBatch, InsightBatch, MatchedBatch, MatchedBatchView, RawBatch, UnifiedBatch,
                         UnifiedBatchView)
from app.settings import KafkaSettings

#: stage topic -> its record type, in dataflow order
TOPIC_TYPES: dict[str, type[msgspec.Struct]] = {
    "raw": RawBatch,
    "enriched": EnrichedBatch,
    "unified": UnifiedBatch,
    "matched": MatchedBatch,
    "insights": InsightBatch,
    "hits": HitBatch,
}


#: stage topic -> the view its consuming stage decodes instead (see app.records, "views").
#: match decodes the events itself (and forwards them unread); predict never reads them.
TOPIC_VIEWS: dict[str, type[msgspec.Struct]] = {
    "unified": UnifiedBatchView,
    "matched": MatchedBatchView,
}


def topic_name(settings: KafkaSettings, stage: str) -> str:
    return f"{settings.topic_prefix}.{stage}"


class Topics:
    """The declared Faust topics; all have the same partition count, so a batch keeps its partition."""

    def __init__(self, app: faust.App, settings: KafkaSettings) -> None:
        self.by_stage: dict[str, faust.TopicT] = {
            stage: app.topic(topic_name(settings, stage), schema=StructSchema(TOPIC_VIEWS.get(stage, typ)),
                             partitions=settings.partitions, replicas=settings.replication)
            for stage, typ in TOPIC_TYPES.items()
        }

    def __getitem__(self, stage: str) -> faust.TopicT:
        return self.by_stage[stage]
