"""The Faust Kafka transport, tuned for the brokers we meet (Tansu embedded, any Kafka in production).

Fed by: `app.faust_app.TapioApp`, which builds its transport here. Feeds: every agent's consumer.

Faust hard-codes `fetch_max_wait_ms=1500` in its worker consumer. Tansu makes a consumer wait
that long even when data is there (shared/notes/stack.md: ~0.4-0.75 s per hop), so five hops
would cost seconds. Here the worker consumer uses `kafka.fetch_max_wait_ms` instead (50 ms by
default; harmless on a real Kafka, which answers as soon as data arrives).
"""

from __future__ import annotations

from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # read by AIOKafkaConsumer.start() when it builds its Fetcher
        consumer._fetch_max_wait_ms = self.app.tapio_settings.kafka.fetch_max_wait_ms
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class TapioTransport(faust_aiokafka.Transport):
    Consumer = _Consumer
