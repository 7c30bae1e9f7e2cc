"""The Faust app: topics, the five agents, the worker's web pages, and how a worker starts.

Fed by: `tapio worker` (and `tapio demo`), with the resolved Settings.
Feeds: Kafka topics raw -> (enrich, normalize, select chained) -> hits and insights; hits ->
(windows, predict chained; through `matched` where predict runs elsewhere) -> insights; raw ->
diagnose -> insights; insights -> the graph.

The app is built by a function, not at import time, so tests and the CLI can build one per
configuration. Settings Faust needs for Tansu (shared/notes/stack.md) are applied here:
a short session timeout (a group join completes only after session_timeout / 2) and, through
`app.transport`, a short fetch wait.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import faust
import msgspec
from aiokafka.errors import KafkaError
from mode import Service
from mode.utils.objects import cached_property

from agents.catalog import Catalog
from agents.diagnose import VERSIONS as DIAGNOSIS_VERSIONS
from agents.diagnose import diagnose_batch
from agents.diagnose_store import TABLE as DIAGNOSE_TABLE
from agents.diagnose_store import DiagnoseStore, TableShelf
from agents.enrich import enrich_stage
from agents.front import register_front
from agents.match import TABLE_OPTIONS, members_store, register_select, register_windows
from agents.normalize import normalize_stage
from agents.predict import predict_batch
from agents.predict_chain import predicting, to_topic
from agents.sink import register_sink
from agents.stage import register_stage
from app import gc_tuning, memory_view
from app.api import Api, register_api
from app.bridge import Bridge, partition_for
from app.flow_control import ReleasingFlowControl
from app.learning import Learning, rule_of
from app.log_format import logging_config
from app.metrics import StatsCollector, metrics_registry, register_metrics
from app.progress import Sample, kafka_samples
from app.restart import (
    EpochWatch,
    SendFailures,
    recreate_own_topics,
    restarted,
    restarted_for_kafka_loss,
    settle_recycle,
    topics_when_kafka_answers,
)
from app.runtime import Runtime
from app.table_view import register_table_views
from app.task_view import register_task_view
from app.topics import Topics, ensure_topics
from app.topology_service import TopologyService
from app.transport import TapioTransport
from app.ui import register_ui
from core.events import CLUSTER_SCOPE
from core.kube.redact import use_safe_env_names
from core.ports import GraphError
from core.records import InsightBatch, MatchedBatch
from core.settings import Settings, with_absolute_dirs
from topology.graph import open_graph
from topology.retention import EventRetention

log = logging.getLogger(__name__)


class WorkerStartError(Exception):
    """A worker cannot start: the message says what to fix (an unreachable server, a missing folder)."""


class TapioApp(faust.App):
    tapio_settings: Settings
    tapio_catalog: Catalog | None = None
    tapio_learning: Learning | None = None

    def _new_transport(self) -> Any:
        return TapioTransport(self.conf.broker_consumer, self)

    @cached_property
    def flow_control(self) -> ReleasingFlowControl:
        return ReleasingFlowControl(loop=self.loop)


#: the stateless batch stages: (name, source topic, target topic, transform)
STAGES = (
    ("enrich", "raw", "enriched", enrich_stage),
    ("normalize", "enriched", "unified", normalize_stage),
)
#: the stages chained in one agent on `raw` when one worker runs them all (agents.front)
FRONT_CHAIN = ("enrich", "normalize", "match")
#: every stage in dataflow order; match (select + windows), predict and sink have their own wiring
STAGE_NAMES = ("enrich", "normalize", "match", "predict", "sink", "diagnose")
#: services a worker may also run, named in `worker.stages` like the agents
SERVICE_NAMES = ("topology",)


def group_id(app_id: str, stages: Sequence[str]) -> str:
    """Workers running every stage form group `app_id`; a worker running a subset of stages
    joins its own group (`app_id-sink`, ...), so each subset scales and rebalances alone."""
    agents = tuple(s for s in stages if s in STAGE_NAMES)
    return app_id if agents == STAGE_NAMES else f"{app_id}-{'-'.join(agents)}"


def create_app(settings: Settings) -> tuple[TapioApp, Runtime]:
    settings = with_absolute_dirs(settings)
    use_safe_env_names(settings.secrets.safe_env)  # the change records the topology service writes
    kafka, worker = settings.kafka, settings.worker
    unknown = set(worker.stages) - set(STAGE_NAMES) - set(SERVICE_NAMES)
    if unknown:
        raise ValueError(f"worker.stages names unknown stages {sorted(unknown)}; "
                         f"known: {', '.join(STAGE_NAMES + SERVICE_NAMES)}")
    stages = [name for name in STAGE_NAMES if name in worker.stages]
    Path(worker.data_dir).mkdir(parents=True, exist_ok=True)
    app = TapioApp(
        group_id(worker.app_id, stages),
        broker=[f"kafka://{server}" for server in kafka.bootstrap_servers],
        store="rocksdb://",
        datadir=worker.data_dir,
        web_host=worker.web_host,
        web_port=worker.web_port,
        web_bind=worker.web_host,
        topic_partitions=kafka.partitions,
        topic_replication_factor=kafka.replication,
        broker_session_timeout=kafka.session_timeout_s,
        broker_heartbeat_interval=min(3.0, kafka.session_timeout_s / 3),
        consumer_auto_offset_reset="earliest",
        producer_linger_ms=5,
        producer_compression_type=kafka.compression_type,
        producer_max_request_size=16 * 1024 * 1024,
        consumer_max_fetch_size=16 * 1024 * 1024,
        stream_buffer_maxsize=64,
        topic_allow_declare=True,
        web_transport="tcp://",
        # a changelog behind the local table (persisted offset above its highwater) means the broker
        # lost it (an embedded Tansu restarted empty: it keeps nothing on disk); the RocksDB state is
        # the truth then, and Faust's check would refuse to start. Highwaters are probed (app.transport),
        # so a low ListOffsets answer cannot look like a loss.
        recovery_consistency_check=not kafka.probe_highwaters,
    )
    app.tapio_settings = settings
    topics = Topics(app, kafka)
    runtime = Runtime(settings, loop=None)
    # enrich -> normalize -> select chained in one agent where this worker runs all three (agents.front);
    # split by worker.stages, each on its own topics
    chained = all(name in stages for name in FRONT_CHAIN)
    for name, source, target, transform in STAGES:
        if name in stages and not chained:
            register_stage(app, name=name, source=topics[source], target=topics[target],
                           transform=transform, runtime=runtime)
    if "match" in stages or "predict" in stages:
        catalog = Catalog(settings.match.patterns_dir)
        app.tapio_catalog = catalog

        @app.timer(settings.match.reload_interval_s)
        async def reload_patterns() -> None:
            catalog.poll()

        @app.page("/tapio/patterns/")
        async def pattern_status(web: Any, request: Any) -> Any:
            return web.json(msgspec.to_builtins(catalog.status()))

    if "match" in stages:
        members = members_store(app, runtime)
        if chained:
            register_front(app, source=topics["raw"], insights=topics["insights"], hits=topics["hits"],
                           catalog=catalog, runtime=runtime, store=members)
        else:
            register_select(app, source=topics["unified"], insights=topics["insights"], hits=topics["hits"],
                            catalog=catalog, runtime=runtime, store=members)
    learning = None
    if "predict" in stages or "diagnose" in stages:
        learning = Learning(rule_of(settings.feedback))
        app.tapio_learning = learning

        def versions() -> dict[str, str]:
            """What votes count against: the YAML patterns, and the diagnosis families (`diagnosis/<family>`)."""
            patterns = app.tapio_catalog.patterns if app.tapio_catalog is not None else {}
            return {**{name: p.metadata.version for name, p in patterns.items()}, **DIAGNOSIS_VERSIONS}

        async def refresh_votes() -> bool:
            try:
                await learning.refresh(runtime.graph, versions())  # type: ignore[arg-type]
                return True
            except GraphError as e:
                log.warning("feedback: cannot read the votes (%s); keeping the last ones", e)
            except Exception:  # a bug: keep the timer and the last votes
                log.exception("feedback: refreshing the votes failed; keeping the last ones")
            return False

        async def read_votes() -> None:
            # a read that failed is retried after the interval: a retry with a delay, not a flag to wait on
            while not await refresh_votes():  # noqa: ASYNC110
                await asyncio.sleep(settings.feedback.refresh_interval_s)

        first_read: list[asyncio.Future[None]] = []

        async def first_votes() -> None:
            """Predict's first batch (on `matched`, or in the windows agent) waits for one read of the
            votes, the same read for both."""
            if not first_read:
                first_read.append(asyncio.ensure_future(read_votes()))
            await asyncio.shield(first_read[0])

        @app.timer(settings.feedback.refresh_interval_s)
        async def refresh_feedback() -> None:
            """Every worker re-reads the votes, so all predict with the same adjusted confidence."""
            await runtime.ready()
            await refresh_votes()

    if "predict" in stages and learning is not None:
        def predict(batch: MatchedBatch) -> tuple[InsightBatch, list]:
            return predict_batch(batch, catalog.patterns, learning.adjustments)  # type: ignore[union-attr]

        # what `matched` holds (a worker of the group without match, or records from before the chain)
        register_stage(app, name="predict", source=topics["matched"], target=topics["insights"],
                       transform=predict, runtime=runtime, before=first_votes)
    if "match" in stages:  # the windows' matches predicted in the windows agent where this worker predicts
        send_matches = (predicting(topics["insights"], predict, runtime, before=first_votes)
                        if "predict" in stages and learning is not None else to_topic(topics["matched"]))
        register_windows(app, source=topics["hits"], send_matches=send_matches, catalog=catalog, runtime=runtime)
    if "sink" in stages:
        register_sink(app, source=topics["insights"], runtime=runtime)
        if settings.graph.retention_s or settings.graph.max_events:
            @app.timer(settings.graph.prune_interval_s, on_leader=True)
            async def prune_graph() -> None:
                """One worker of the sink's group (its leader) keeps the graph within its retention."""
                await runtime.ready()
                await asyncio.to_thread(prune_round, retention)

            retention = EventRetention(None, settings.graph)
    if "diagnose" in stages:
        raw_topic = topics["raw"].get_topic_name()
        # its state survives a restart and moves with its partitions (agents/diagnose_store.py)
        diagnosed = DiagnoseStore(TableShelf(app.Table(DIAGNOSE_TABLE, default=None, key_type=bytes, value_type=bytes,
                                                       partitions=kafka.partitions, options=TABLE_OPTIONS), raw_topic),
                                  home=lambda namespace: partition_for(namespace or CLUSTER_SCOPE, kafka.partitions))

        @app.on_partitions_assigned.connect
        async def diagnose_partitions(sender: Any, assigned: Any, **kwargs: Any) -> None:
            """The diagnose stage waits for event time on the raw partitions this worker reads now."""
            diagnosed.assign(tp.partition for tp in assigned if tp.topic == raw_topic)

        @app.page("/tapio/diagnose/")
        async def diagnose_progress(web: Any, request: Any) -> Any:
            """How far the diagnose stage has come in event time, and how many diagnoses stand."""
            live = diagnosed.state
            return web.json({"applied_until_ms": live.applied_until_ms if live else diagnosed.applied_until_ms,
                             "standing": len(live.standing) if live else 0,
                             "watermarks": {str(p): w for p, w in sorted(live.watermarks.items())} if live else {}})

        def diagnose(live: Any, batch: Any, partition: int) -> Any:
            return diagnose_batch(live, batch, partition=partition,
                                  lateness_ms=int(settings.match.allowed_lateness_s * 1000),
                                  adjustments=learning.adjustments if learning is not None else None)

        register_stage(app, name="diagnose", source=topics["raw"], target=topics["insights"],
                       transform=lambda batch, partition: diagnosed.take(batch, partition, diagnose),
                       runtime=runtime, with_partition=True, before=first_votes)

    async def progress() -> dict[str, Sample]:
        """What this worker's stages have committed and have left, and its bridge's (app.progress)."""
        samples = kafka_samples(app.monitor)
        if runtime.runs_bridge:
            info = await runtime.nc.jetstream().consumer_info(settings.nats.stream, settings.nats.bridge_durable)
            bridged = runtime.stats.snapshot().get("bridge")
            samples["bridge"] = Sample(position=bridged.events if bridged else 0,
                                       backlog=(info.num_pending or 0) + (info.num_ack_pending or 0))
        return samples

    api = Api(settings, graph=lambda: runtime.graph, nats=lambda: getattr(runtime, "nc", None),
              catalog=app.tapio_catalog, learning=learning, progress=progress)
    register_api(app.web.web_app.router, api)
    register_ui(app.web.web_app.router, api)
    register_metrics(app.web.web_app.router, metrics_registry(StatsCollector(
        runtime.stats, lag=lambda: kafka_samples(app.monitor), votes=lambda: learning.votes if learning else {})))

    @app.page("/tapio/health/")
    async def health(web: Any, request: Any) -> Any:
        """`ok`, or `degraded` with the reasons (a pattern file that does not validate, ...)."""
        catalog_now = getattr(app, "tapio_catalog", None)
        errors = catalog_now.errors if catalog_now is not None else []
        return web.json({"status": "degraded" if errors else "ok", "pattern_errors": errors})

    @app.page("/tapio/stages/")
    async def stages(web: Any, request: Any) -> Any:
        counters = {name: {**msgspec.to_builtins(c), "rate": c.rate} for name, c in runtime.stats.snapshot().items()}
        timings = {name: msgspec.to_builtins(r.percentiles()) for name, r in runtime.stats.timings.items()}
        return web.json(counters | ({"timings": timings} if timings else {}))

    register_table_views(app, catalog=getattr(app, "tapio_catalog", None), settings=settings)
    if settings.worker.trace_memory:
        memory_view.start()
    memory_view.register_memory_view(app)
    register_task_view(app)
    return app, runtime


def prune_round(retention: EventRetention) -> None:
    """One round of graph retention in a thread of its own, on its own event loop and graph
    connection: its statements' round trips never wait for the worker's busy loop (in the soak, a
    round on that loop deleted ~1,500 events/s, less than 2,000/s came in)."""
    async def run() -> None:
        graph = open_graph(retention.settings)
        retention.graph = graph
        try:
            await retention.prune()
        except GraphError as e:
            log.warning("graph retention: this round failed (%s); the next one retries", e)
        finally:
            retention.graph = None
            await graph.close()

    asyncio.run(run())


class BridgeService(Service):
    """Runs the JetStream -> Kafka bridge inside a worker process."""

    def __init__(self, bridge: Bridge, runtime: Runtime, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bridge = bridge
        self.runtime = runtime
        bridge.tracer, bridge.stats = runtime.tracer, runtime.stats

    async def on_start(self) -> None:
        await self.bridge.start()

    @Service.task
    async def _pump(self) -> None:
        while not self.should_stop:
            await self.bridge.step_logged()  # counted on the runtime's stats (bridge.stats)

    async def on_stop(self) -> None:
        await self.bridge.close()


def run_worker(settings: Settings, *, with_bridge: bool = True, loglevel: str | None = None,
               log_format: str = "text") -> None:
    """Block running one worker of the group until SIGINT/SIGTERM.

    Raises WorkerStartError (before Faust starts) when Kafka cannot be reached to create the
    topics or the pattern folder is missing.
    """
    # a recycle of the topics asked for or running (app.recycle): wait for it, or run it, before reading them
    asyncio.run(settle_recycle(settings))
    try:
        # a worker that restarted itself (app.restart) waits for Kafka; one an operator starts says what is wrong
        epoch = asyncio.run(topics_when_kafka_answers(settings.kafka) if restarted()
                            else ensure_topics(settings.kafka))
    except KafkaError as e:
        raise WorkerStartError(f"cannot reach Kafka at {', '.join(settings.kafka.bootstrap_servers)} ({e}): "
                               f"start it (`tapio up`) or set kafka.bootstrap_servers") from e
    settings = with_absolute_dirs(settings)
    try:
        app, runtime = create_app(settings)
    except FileNotFoundError as e:
        raise WorkerStartError(str(e)) from e
    if restarted_for_kafka_loss():
        asyncio.run(recreate_own_topics(app, settings))  # its changelogs, clear of stray records
    gc_tuning.tune(settings.worker.gc_thresholds, lambda seconds: runtime.stats.time("gc_full", seconds))
    services: list[Service] = [runtime, EpochWatch(settings, epoch, app)]
    app.sensors.add(SendFailures(app))
    if with_bridge:
        services.append(BridgeService(Bridge(settings), runtime))
        runtime.runs_bridge = True
    if "topology" in settings.worker.stages:
        services.append(TopologyService(settings, runtime))
    level = loglevel or settings.worker.log_level
    json_lines = log_format == "json"  # else Faust's own text format
    if json_lines:
        logging.captureWarnings(True)  # a Python warning is a JSON line too
    worker = faust.Worker(app, *services, loglevel=level, workdir=settings.worker.data_dir, redirect_stdouts=False,
                          logging_config=logging_config(log_format, level, stream="ext://sys.stdout")
                          if json_lines else None,
                          quiet=json_lines)  # (quiet: no start-up banner, which is not a log line)
    worker.execute_from_commandline()
