"""The Kafka topics of the dataflow, one per stage, each bound to one record type.

Fed by: `app.faust_app.create_app` (declares them), the bridge (`topic_name` for `raw`).
Feeds: every agent, which reads one topic and writes the next.
"""

from __future__ import annotations

import faust
import msgspec
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

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


async def ensure_topics(settings: KafkaSettings) -> None:
    """Create every dataflow topic with the configured partition count (an existing one is kept).

    Run before a worker or a bridge starts: a topic a consumer or producer touches first is
    auto-created with the broker's default partition count, and Faust then refuses the tables
    whose changelogs were created with ours (PartitionsMismatch).
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        wanted = [NewTopic(topic_name(settings, stage), settings.partitions, settings.replication)
                  for stage in TOPIC_TYPES]
        # one partition: one topology service sees every object, in order; compacted by object
        # key in a real Kafka (Tansu ignores the policy)
        wanted.append(NewTopic(topic_name(settings, "objects"), 1, settings.replication,
                               topic_configs={"cleanup.policy": "compact"}))
        for topic in wanted:
            try:
                await admin.create_topics([topic])
            except TopicAlreadyExistsError:
                pass
    finally:
        await admin.close()


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
