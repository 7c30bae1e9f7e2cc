"""The Faust Kafka transport, tuned for the brokers we meet (Tansu embedded, any Kafka in production).

Fed by: `app.faust_app.TapioApp`, which builds its transport here. Feeds: every agent's consumer.

Faust hard-codes `fetch_max_wait_ms=1500` in its worker consumer. Tansu makes a consumer wait
that long even when data is there (shared/notes/stack.md: ~0.4-0.75 s per hop), so five hops
would cost seconds. Here the worker consumer uses `kafka.fetch_max_wait_ms` instead (50 ms by
default; harmless on a real Kafka, which answers as soon as data arrives).

Tansu's ListOffsets(LATEST) returns the last batch's base offset + 1 after batched produce, so
Faust's table recovery saw a persisted offset "above the highwater" and crashed (or, with the
check off, lost state). With `kafka.probe_highwaters` the highwaters come from a fetch response.

A stream partition nobody committed yet is sought to the beginning when Faust seeks back to the
committed offsets (`seek_to_committed`): without it, a worker taking over the partitions of one
killed before its first commit skipped the records fetched during the rebalance.

A rebalance no longer waits for ever for a message it cleared from one stream's queue while another
stream had taken it (`app.flow_control`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from app.restart import restarted_on_new_topics

log = logging.getLogger(__name__)


async def fetched_highwaters(bootstrap: list[str], partitions: list[TP], listed: Mapping[TP, int],
                             *, timeout_s: float = 10.0) -> dict[TP, int]:
    """Highwaters as a fetch response reports them (Tansu's ListOffsets is low after batched produce).

    For each partition with data, fetch from just before the listed end; the response carries the
    true high watermark. Partitions the broker lists as empty are taken as listed.
    """
    result = {tp: listed.get(tp, 0) for tp in partitions}
    pending = {tp for tp in partitions if result[tp] > 0}
    if not pending:
        return result
    probe = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=50,
                             group_id=None)
    await probe.start()
    try:
        probe.assign(list(pending))
        for tp in pending:
            probe.seek(tp, max(result[tp] - 1, 0))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while pending and loop.time() < deadline:
            await probe.getmany(timeout_ms=200)
            for tp in list(pending):
                high = probe.highwater(tp)
                if high is not None:
                    result[tp] = max(result[tp], high)
                    pending.discard(tp)
    finally:
        await probe.stop()
    if pending:
        log.warning("highwater probe: no fetch answer for %s; using ListOffsets", sorted(pending))
    return result


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # read by AIOKafkaConsumer.start() when it builds its Fetcher
        consumer._fetch_max_wait_ms = self.app.tapio_settings.kafka.fetch_max_wait_ms
        return consumer

    async def _highwaters(self, partitions: list[TP]) -> Mapping[TP, int]:
        """Table recovery reads these: from a fetch response when `kafka.probe_highwaters` (Tansu)."""
        listed = await super()._highwaters(partitions)
        kafka = self.app.tapio_settings.kafka
        if not kafka.probe_highwaters or not partitions:
            return listed
        return await fetched_highwaters(kafka.bootstrap_servers, list(partitions), listed)


    async def seek_to_committed(self) -> Mapping[TP, int]:
        """Faust seeks its stream partitions back to their committed offsets after a rebalance
        (and whenever it fetched while its flow was stopped, dropping what it fetched); aiokafka
        seeks only partitions with a committed offset above 0. A partition taken over from a
        worker that died before its first commit kept the position the fetcher had reached while
        the records were dropped, and those records were never processed. Here such partitions
        (stream topics only: Faust positions changelogs itself) go where `auto_offset_reset` says."""
        committed = await super().seek_to_committed()
        changelogs = self.app.tables.changelog_topics
        unset = [tp for tp, offset in committed.items() if not offset and tp.topic not in changelogs]
        if restarted_on_new_topics() and not getattr(self, "_reread", False):
            # restarted because Kafka lost its data (app.restart): the recreated topics hold only what came
            # since, and the commits the previous process made there skipped what Faust took for already
            # read (offsets below its old positions): read them from their start, once
            self._reread = True
            unset = [tp for tp in committed if tp.topic not in changelogs]
        reset = self.app.conf.consumer_auto_offset_reset
        if unset and reset in ("earliest", "latest"):
            consumer = self._ensure_consumer()
            seek = consumer.seek_to_beginning if reset == "earliest" else consumer.seek_to_end
            await self.call_thread(seek, *unset)
            if reset == "earliest":
                # Faust takes what this returns for the offsets already read, and silently drops every
                # record below them (`Consumer._drain_messages`): a stale commit on a recreated topic
                # would drop everything up to it, while the heartbeats above it moved the marks on
                # (the kafka-loss test's stall: every mark at the end, 479 events never written)
                committed = {tp: 0 if tp in unset else offset for tp, offset in committed.items()}
        return committed


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def _forget_dropped(self) -> None:
        """Stop waiting for the messages a rebalance cleared from a stream's queue (app.flow_control):
        they can never be acked, and are read again from the committed offsets."""
        take_dropped = getattr(self.app.flow_control, "take_dropped", None)
        if take_dropped is not None:
            dropped = [m for m in take_dropped() if not m.acked]
            if dropped:
                log.info("a rebalance dropped %d message(s) from the streams' queues; they are read "
                            "again from the committed offsets", len(dropped))
            self._unacked_messages.difference_update(dropped)

    async def wait_empty(self) -> None:
        self._forget_dropped()
        await super().wait_empty()

    def _clean_unacked_messages(self) -> None:
        super()._clean_unacked_messages()
        self._forget_dropped()


class TapioTransport(faust_aiokafka.Transport):
    Consumer = _Consumer
