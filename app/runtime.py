"""The worker's connections to the world outside Kafka: NATS (dead letters, the sink's progress) and the graph.

Fed by: `app.faust_app.create_app`, which starts it with the worker. Feeds: every agent, which
waits for `ready()` before its first record, sends rejects through `dead_letter`, and (the
sink) writes through `graph`.
"""

from __future__ import annotations

import asyncio
import logging

import mode

from app.checkpoint import StageProgress, progress_bucket
from app.jetstream import DeadLetterPublisher, connect, ensure_streams
from app.metrics import otlp_metrics
from app.tracing import tracer_for
from core.settings import Settings
from core.stats import StageStats
from topology.graph import GraphStore, open_graph

log = logging.getLogger(__name__)


class Runtime(mode.Service):
    def __init__(self, settings: Settings, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.stats = StageStats()
        self._ready = asyncio.Event()
        self.graph: GraphStore | None = None
        self.progress: StageProgress | None = None
        self.runs_bridge = False  # the JetStream -> Kafka bridge runs in this process (app.progress watches it)
        self.tracer, self._close_tracer = tracer_for(settings)  # a span per batch per stage (otel.endpoint)
        self._close_metrics = otlp_metrics(settings, self.stats)  # pushed by OTLP too (otel.metrics_endpoint)

    async def on_start(self) -> None:
        self.nc = await connect(self.settings.nats, name=f"{self.settings.worker.app_id}-worker")
        js = self.nc.jetstream()
        await ensure_streams(js, self.settings.nats)
        self.deadletters = DeadLetterPublisher(js, self.settings.nats)
        self.progress = StageProgress(await progress_bucket(js, self.settings.nats))
        self.graph = open_graph(self.settings.graph)
        await self.graph.setup_schema()
        self._ready.set()
        log.info("runtime ready: nats %s, graph %s", self.settings.nats.urls, self.settings.graph.uri)

    async def on_stop(self) -> None:
        if self.progress is not None:
            await self.progress.save(force=True)
        if self.graph is not None:
            await self.graph.close()
        await self.nc.drain()
        self._close_tracer()  # the spans still batched go out
        self._close_metrics()  # and the counters' last values

    async def ready(self) -> None:
        await self._ready.wait()

    async def dead_letter(self, *, stage: str, reason: str, where: str, payload: bytes, event_id: str = "") -> None:
        self.stats.add(stage, 0, rejected=1)
        await self.deadletters.send(stage=stage, reason=reason, where=where, payload=payload, event_id=event_id)
