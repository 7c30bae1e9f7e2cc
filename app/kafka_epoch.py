"""The Kafka epoch: which broker data the dataflow is using, so that a loss of it is noticed.

A topic `<prefix>.epoch` (one partition) holds one record, a random id, written by whoever
creates the dataflow's topics first (`ensure_epoch`, from `app.topics.ensure_topics`). While the
broker keeps its data, everybody reads the same id. When it loses it (the embedded Tansu keeps
nothing on disk; a topic deleted by hand), the topic is gone or holds another id:
- the bridge bridges again from JetStream what the graph lacks (`app.bridge.Bridge.recover`),
- a worker restarts itself (`app.faust_app`), so that its consumers and changelogs start again
  on the recreated topics while its RocksDB tables keep their state.

On a real Kafka the topic is kept forever (`retention.ms=-1`, compacted by its single key).
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from core.settings import KafkaSettings

log = logging.getLogger(__name__)
# every check assigns the epoch partition, which aiokafka logs at INFO each time
logging.getLogger("aiokafka.consumer.subscription_state").setLevel(logging.WARNING)

KEY = b"epoch"


def epoch_topic(settings: KafkaSettings) -> str:
    return f"{settings.topic_prefix}.epoch"


def epoch_new_topic(settings: KafkaSettings) -> NewTopic:
    return NewTopic(epoch_topic(settings), 1, settings.replication,
                    topic_configs={"retention.ms": "-1", "cleanup.policy": "compact"})


async def broker_epoch(settings: KafkaSettings, *, timeout_s: float = 5.0) -> str | None:
    """The epoch the broker holds now, or None when its topic is gone or empty.
    Raises KafkaError when the broker cannot be asked."""
    topic = epoch_topic(settings)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers, group_id=None,
                                enable_auto_commit=False, fetch_max_wait_ms=50,
                                request_timeout_ms=int(timeout_s * 1000))
    await consumer.start()
    try:
        if topic not in await consumer.topics():
            return None
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek(tp, 0)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline:
            got = await consumer.getmany(tp, timeout_ms=200, max_records=1)
            for record in got.get(tp, []):
                return (record.value or b"").decode() or None
            if consumer.highwater(tp) == 0:  # the topic is there and empty
                return None
        return None
    finally:
        await consumer.stop()


async def ensure_epoch(settings: KafkaSettings) -> str:
    """The broker's epoch, creating its topic and record when missing (the first record wins,
    so two processes that race here read the same id)."""
    current = await broker_epoch(settings)
    if current:
        return current
    topic = epoch_topic(settings)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        try:
            await admin.create_topics([epoch_new_topic(settings)])
        except TopicAlreadyExistsError:
            pass
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, enable_idempotence=False, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, uuid.uuid4().hex.encode(), key=KEY, partition=0)
    finally:
        await producer.stop()
    epoch = await broker_epoch(settings)
    if not epoch:
        raise KafkaError(f"the epoch record written to {topic} cannot be read back")
    log.info("kafka epoch %s (topic %s)", epoch, topic)
    return epoch
