"""The Kafka topics of the dataflow, one per stage, each bound to one record type.

Fed by: `app.faust_app.create_app` (declares them), the bridge (`topic_name` for `raw`).
Feeds: every agent, which reads one topic and writes the next.
"""

from __future__ import annotations

from typing import Any

import faust
import msgspec
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, UnknownTopicOrPartitionError
from faust.types import AppT, Message

from app.kafka_epoch import ensure_epoch, epoch_new_topic
from core.codec import Codec, Poison, where_of
from core.records import EnrichedBatch, HitBatch, InsightBatch, MatchedBatch, RawBatch, UnifiedBatch, UnifiedBatchView
from core.settings import KafkaSettings

#: stage topic -> its record type, in dataflow order
TOPIC_TYPES: dict[str, type[msgspec.Struct]] = {
    "raw": RawBatch,
    "enriched": EnrichedBatch,
    "unified": UnifiedBatch,
    "matched": MatchedBatch,
    "insights": InsightBatch,
    "hits": HitBatch,
}


#: stage topic -> the view its consuming stage decodes instead (see core.records, "views").
#: select (split from enrich and normalize) decodes the events one by one, and sends them on unread.
TOPIC_VIEWS: dict[str, type[msgspec.Struct]] = {
    "unified": UnifiedBatchView,
}


class StructSchema(faust.Schema):
    """A Faust schema whose values are one msgspec Struct type, encoded as MessagePack."""

    def __init__(self, typ: type[Any]) -> None:
        super().__init__(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
        self.codec = Codec(typ, "msgpack")

    def loads_value(self, app: AppT, message: Message, *, loads: Any = None, serializer: Any = None) -> Any:
        data = message.value or b""
        try:
            return self.codec.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            return Poison(reason=f"not a {self.codec.type.__name__}: {e}", where=where_of(message), payload=data)

    def loads_key(self, app: AppT, message: Message, *, loads: Any = None, serializer: Any = None) -> Any:
        return message.key

    def dumps_value(self, app: AppT, value: Any, *, serializer: Any = None, headers: Any) -> tuple[Any, Any]:
        if isinstance(value, bytes):
            return value, headers
        return self.codec.encode(value), headers

    def dumps_key(self, app: AppT, key: Any, *, serializer: Any = None, headers: Any) -> tuple[Any, Any]:
        if key is None or isinstance(key, bytes):
            return key, headers
        return str(key).encode(), headers


def dataflow_topics(settings: KafkaSettings) -> list[NewTopic]:
    """Every topic of the dataflow but Faust's own (changelogs): the stage topics and `objects`."""
    wanted = [NewTopic(topic_name(settings, stage), settings.partitions, settings.replication)
              for stage in TOPIC_TYPES]
    # one partition: one topology service sees every object, in order; compacted by object
    # key in a real Kafka (Tansu ignores the policy)
    wanted.append(NewTopic(topic_name(settings, "objects"), 1, settings.replication,
                           topic_configs={"cleanup.policy": "compact"}))
    return wanted


async def faust_topics(settings: KafkaSettings, app_id: str) -> list[NewTopic]:
    """The topics Faust made for the worker group `app_id` (its tables' changelogs, its leader
    topic: `<app_id>-...`), as they are on the broker, partition counts included."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        names = [n for n in await admin.list_topics() if n.startswith(f"{app_id}-")]
        described = await admin.describe_topics(names) if names else []
    finally:
        await admin.close()
    return [NewTopic(d["topic"], len(d["partitions"]), settings.replication)
            for d in described if d.get("partitions")]


async def create_topics(bootstrap: list[str], topics: list[NewTopic]) -> None:
    """Create each topic; one that exists is kept."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        for topic in topics:
            try:
                await admin.create_topics([topic])
            except TopicAlreadyExistsError:
                pass
    finally:
        await admin.close()


async def recreate_topics(bootstrap: list[str], topics: list[NewTopic]) -> None:
    """Create, delete and create again: after Kafka lost its data, topics empty and sound.

    Tansu keeps nothing across a restart, but a producer that still held batches writes them into
    the restarted broker before anyone created the topics: records of partitions the broker does
    not know. Creating the topic then starts it at offset 0, where those records already lie, and
    every later write there fails (UnknownError; Tansu logs ObjectStore AlreadyExists), for good.
    Deleting the created topic takes the stray records with it (shared/notes/stack.md)."""
    await create_topics(bootstrap, topics)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([t.name for t in topics])
    except UnknownTopicOrPartitionError:
        pass
    finally:
        await admin.close()
    await create_topics(bootstrap, topics)


async def ensure_topics(settings: KafkaSettings, *, fresh: bool = False) -> str:
    """Create every dataflow topic with the configured partition count (an existing one is kept),
    and the Kafka epoch (`app.kafka_epoch`) when the broker has none: returns the epoch.
    `fresh` (after Kafka lost its data): delete and create them again, and a new epoch with them,
    so that every worker restarts on them (`recreate_topics`).

    Run before a worker or a bridge starts: a topic a consumer or producer touches first is
    auto-created with the broker's default partition count, and Faust then refuses the tables
    whose changelogs were created with ours (PartitionsMismatch).
    """
    if fresh:
        await recreate_topics(settings.bootstrap_servers, [*dataflow_topics(settings), epoch_new_topic(settings)])
    else:
        await create_topics(settings.bootstrap_servers, dataflow_topics(settings))
    return await ensure_epoch(settings)


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
