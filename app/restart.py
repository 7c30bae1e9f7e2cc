"""A worker that restarts itself: when Kafka lost the dataflow's data, or a record it sent was lost.

Both leave the worker's Faust state pointing at records that are not there: consumer positions
and commits, changelog offsets, or a stage output that Faust dropped (it logs a failed send and
goes on, and the source offset is committed later: what the record carried would never reach
the graph). A fresh process starts again from the committed offsets on the topics as they are,
its RocksDB tables keeping their state (`recovery_consistency_check` is off where highwaters
are probed, app.faust_app). The process replaces itself (`os.execv`, same PID and arguments):
whatever supervises it sees no exit. The restarted worker waits for Kafka instead of failing
when it is not back yet (`topics_when_kafka_answers`).

Fed by: the epoch check (`EpochWatch`, app.kafka_epoch) and Faust's send errors (`SendFailures`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from typing import Any, NoReturn

from aiokafka.admin import NewTopic
from aiokafka.errors import KafkaError
from faust.sensors import Sensor
from mode import Service

from app.bridge import REFUSALS
from app.kafka_epoch import broker_epoch
from app.topics import ensure_topics, recreate_topics
from core.settings import KafkaSettings, Settings

log = logging.getLogger(__name__)

#: set in the environment of a worker that restarted itself: why
RESTARTED = "TAPIO_WORKER_RESTARTED"
KAFKA_LOST = "Kafka lost its data"


def restarted() -> bool:
    """This process is a worker that restarted itself."""
    return bool(os.environ.get(RESTARTED))


def restarted_for_kafka_loss() -> bool:
    """This process is a worker that restarted itself because Kafka lost its data."""
    return os.environ.get(RESTARTED, "").startswith(KAFKA_LOST)


def restart_worker(reason: str) -> NoReturn:
    log.error("worker: %s: restarting this worker (same PID, same arguments); it takes up from the "
              "committed offsets and its tables keep their state", reason)
    logging.shutdown()
    os.environ[RESTARTED] = reason[:200]
    time.sleep(1.0)  # a cause that stays (Kafka refusing every record) restarts at most once a second
    os.execv(sys.executable, sys.orig_argv)


async def topics_when_kafka_answers(settings: KafkaSettings) -> str:
    """`ensure_topics`, retried with backoff until Kafka answers: the Kafka epoch."""
    delay = 0.5
    while True:
        try:
            return await ensure_topics(settings)
        except KafkaError as e:
            log.warning("worker: waiting for Kafka at %s (%r); retrying in %.1fs",
                        ", ".join(settings.bootstrap_servers), e, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


async def recreate_own_topics(app: Any, settings: Settings) -> None:
    """After Kafka lost its data: this worker's changelogs and leader topic, created, deleted and
    created again before Faust starts (`app.topics.recreate_topics`: a changelog its previous run
    still wrote into the restarted broker would refuse every write). Its RocksDB tables keep the state."""
    kafka = settings.kafka
    topics = [NewTopic(table.changelog_topic.get_topic_name(), kafka.partitions, kafka.replication)
              for table in app.tables.values()]
    topics.append(NewTopic(f"{app.conf.id}-__assignor-__leader", 1, kafka.replication))
    await recreate_topics(kafka.bootstrap_servers, topics)
    log.warning("worker: Kafka lost its data: this worker's changelogs recreated (%s)",
                ", ".join(t.name for t in topics))


class EpochWatch(Service):
    """Restarts the worker when Kafka lost the dataflow's data (`app.kafka_epoch`); the bridge then
    bridges again what the graph lacks (app.bridge)."""

    def __init__(self, settings: Settings, epoch: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.epoch = epoch

    @Service.task
    async def _watch(self) -> None:
        while not self.should_stop:
            await self.sleep(self.settings.kafka.epoch_check_s)
            try:
                now = await broker_epoch(self.settings.kafka)
            except KafkaError:
                continue  # Kafka away: nothing lost yet, check again
            if now != self.epoch:
                restart_worker(f"{KAFKA_LOST} (epoch {self.epoch} is now {now or 'gone'}); "
                               f"the bridge bridges again what the graph lacks")


class SendFailures(Sensor):
    """A record Faust could not send is gone (Faust logs it and goes on): restart before the source
    offset that produced it is committed. A record Kafka refuses for what it is (REFUSALS: too
    large, invalid) would be refused again: it is logged, and the worker goes on."""

    def __init__(self, app: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.app = app

    def on_send_error(self, producer: Any, exc: BaseException, state: Any) -> None:
        if self.app.should_stop:  # stopping: what was not sent comes again from the committed offsets
            return
        if isinstance(exc, REFUSALS):
            log.error("worker: Kafka refused a record for what it is (%r); it is lost", exc)
            return
        restart_worker(f"a record was not sent ({exc!r})")
