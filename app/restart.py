"""A worker that restarts itself: when Kafka lost the dataflow's data, its topics are recycled, or a
record it sent was lost.

Both leave the worker's Faust state pointing at records that are not there: consumer positions
and commits, changelog offsets, or a stage output that Faust dropped (it logs a failed send and
goes on, and the source offset is committed later: what the record carried would never reach
the graph). A fresh process starts again from the committed offsets on the topics as they are,
its RocksDB tables keeping their state (`recovery_consistency_check` is off where highwaters
are probed, app.faust_app). The process replaces itself (`os.execv`, same PID and arguments):
whatever supervises it sees no exit. The restarted worker waits for Kafka instead of failing
when it is not back yet (`topics_when_kafka_answers`).

A recycle of the embedded broker's topics (`app.recycle`) restarts every worker before the topics
are dropped; restarted, a worker waits for the recycle to end before it starts Faust
(`settle_recycle`), and may run it itself.

Fed by: the epoch check and the recycle key (`EpochWatch`), Faust's send errors (`SendFailures`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from typing import Any, NoReturn

import nats.errors
from aiokafka.admin import NewTopic
from aiokafka.errors import KafkaError
from aiokafka.protocol.group import LeaveGroupRequest
from faust.sensors import Sensor
from mode import Service

from app import recycle
from app.bridge import REFUSALS, Bridge
from app.checkpoint import progress_bucket
from app.jetstream import JetStreamError, connect
from app.kafka_epoch import broker_epoch
from app.topics import ensure_topics, recreate_topics
from core.settings import KafkaSettings, Settings

log = logging.getLogger(__name__)

#: set in the environment of a worker that restarted itself: why
RESTARTED = "TAPIO_WORKER_RESTARTED"
KAFKA_LOST = "Kafka lost its data"
KAFKA_RECYCLED = "the embedded broker's topics are recycled"


def restarted() -> bool:
    """This process is a worker that restarted itself."""
    return bool(os.environ.get(RESTARTED))


def restarted_for_kafka_loss() -> bool:
    """This process is a worker that restarted itself because Kafka lost its data: it recreates its
    own changelogs (after a recycle, the recycle did)."""
    return os.environ.get(RESTARTED, "").startswith(KAFKA_LOST)


def restarted_on_new_topics() -> bool:
    """This process is a worker that restarted itself because Kafka lost its data or its topics were
    recycled: the topics it reads and its changelogs are new."""
    return os.environ.get(RESTARTED, "").startswith((KAFKA_LOST, KAFKA_RECYCLED))


def restart_worker(reason: str) -> NoReturn:
    log.error("worker: %s: restarting this worker (same PID, same arguments); it takes up from the "
              "committed offsets and its tables keep their state", reason)
    logging.shutdown()
    os.environ[RESTARTED] = reason[:200]
    time.sleep(1.0)  # a cause that stays (Kafka refusing every record) restarts at most once a second
    os.execv(sys.executable, sys.orig_argv)


async def leave_group(app: Any, *, timeout_s: float = 2.0) -> None:
    """Tell Kafka this worker leaves its consumer group, before it replaces itself: otherwise the
    group keeps the old member until its session times out (`kafka.session_timeout_s`), and the
    restarted worker joins, then joins again when the old member is dropped (measured on Tansu: ~19 s
    from restart to partitions instead of ~6). Faust's consumer runs in its own thread and loop; this
    reaches into them (private attributes), so any failure only costs that wait."""
    try:
        thread = app.consumer._thread
        coordinator = thread._consumer._coordinator
        if not coordinator.member_id or coordinator.generation < 0 or coordinator._rejoin_needed_fut.done():
            return  # not a member yet, or joining: a LeaveGroup then leaves Tansu's group stuck (measured)

        async def leave() -> None:  # aiokafka's own leave skips generation 0, where Tansu's groups start
            await coordinator._send_req(LeaveGroupRequest(coordinator.group_id, coordinator.member_id))

        future = asyncio.run_coroutine_threadsafe(leave(), thread.thread_loop)
        await asyncio.wait_for(asyncio.wrap_future(future), timeout_s)
        log.info("worker: left consumer group %s before restarting", coordinator.group_id)
    except Exception as e:  # best effort: the old member then times out
        log.info("worker: could not leave the consumer group before restarting (%r)", e)


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
    log.warning("worker: on new topics (%s): this worker's changelogs recreated (%s)",
                os.environ.get(RESTARTED, "")[:60], ", ".join(t.name for t in topics))


async def settle_recycle(settings: Settings) -> bool:
    """Before Faust starts: while a recycle of the topics is asked for or runs (`app.recycle`), wait
    for it, or run it when this worker may claim it. True when there was one."""
    kafka = settings.kafka
    try:
        nc = await connect(settings.nats, name="tapio-worker-recycle")
    except JetStreamError as e:  # NATS away: the worker starts as it would without recycling (it retries NATS)
        log.warning("worker: cannot look for a recycle of the topics before starting (%s); starting", e)
        return False
    try:
        kv = await progress_bucket(nc.jetstream(), settings.nats)

        async def run() -> None:
            bridge = Bridge(settings)
            await bridge.start(pull=False)  # takes nothing from the durable consumer
            try:
                await bridge.run_recycle()
            finally:
                await bridge.close()

        return await recycle.settle(kv, recycle.part_name("worker"), run, grace_s=kafka.recycle_grace_s,
                                    timeout_s=kafka.recycle_timeout_s)
    finally:
        await nc.close()


class EpochWatch(Service):
    """Restarts the worker when Kafka lost the dataflow's data (`app.kafka_epoch`; the bridge then
    bridges again what the graph lacks, app.bridge) and when a recycle of the topics is asked for
    (`app.recycle`: no Faust consumer may read them while they are rebuilt)."""

    def __init__(self, settings: Settings, epoch: str, app: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.epoch = epoch
        self.app = app

    async def _restart(self, reason: str) -> NoReturn:
        if self.app is not None:
            await leave_group(self.app)
        restart_worker(reason)

    @Service.task
    async def _watch(self) -> None:
        while not self.should_stop:
            await self.sleep(self.settings.kafka.epoch_check_s)
            try:
                now = await broker_epoch(self.settings.kafka)
            except KafkaError:
                continue  # Kafka away: nothing lost yet, check again
            if now != self.epoch:
                await self._restart(f"{KAFKA_LOST} (epoch {self.epoch} is now {now or 'gone'}); "
                               f"the bridge bridges again what the graph lacks")

    @Service.task
    async def _watch_recycle(self) -> None:
        # always: a Kafka that lost its data is rebuilt as a recycle too, whatever recycle_after_mib says
        while not self.should_stop:
            try:
                nc = await connect(self.settings.nats, name="tapio-worker-recycle-watch")
            except JetStreamError as e:
                log.warning("worker: cannot watch for recycles of the topics (%s); trying again in 5 s", e)
                await self.sleep(5.0)
                continue
            try:
                kv = await progress_bucket(nc.jetstream(), self.settings.nats)
                while not self.should_stop:
                    found = await recycle.current(kv)
                    if found is not None:
                        # after a loss its changelogs may hold stray records the new broker took before
                        # anyone created them (Tansu then refuses every later write): it recreates them
                        kind = KAFKA_LOST if found[0].why == recycle.KAFKA_LOST else KAFKA_RECYCLED
                        await self._restart(f"{kind} (asked for by {found[0].by}: {found[0].why}): this "
                                       f"worker waits for the new topics")
                    await self.sleep(recycle.POLL_S)
            except nats.errors.Error as e:  # NATS away for longer than a reconnect: look again
                log.warning("worker: watching for recycles of the topics: %r; trying again", e)
                await self.sleep(1.0)
            finally:
                await nc.close()


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
