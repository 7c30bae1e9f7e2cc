"""Prometheus metrics of a worker: `GET /metrics`, written by the official client library.

Fed by: the process's `core.stats.StageStats` (what every stage, the bridge and the sink count), the
Kafka consumer's committed and end offsets (`app.progress.kafka_samples`), the votes the worker last read
(`app.learning`), and the client library's own process and garbage-collector collectors. Feeds: a
Prometheus scrape, in the text format it asks for (0.0.4 by default, or OpenMetrics).

Read when scraped, nothing kept twice (names follow Prometheus' conventions: base units, `_total` for
counters):

    tapio_stage_events_total{stage}          events a stage handled (bridge, enrich, ..., sink)
    tapio_stage_batches_total{stage}         batches it handled
    tapio_stage_dead_letters_total{stage}    what it dead-lettered
    tapio_stage_batch_size{stage}            histogram of its batches' sizes (events)
    tapio_<timing>_seconds                   histograms of the timings: match_latency (select -> windows),
                                             graph_event_delay (an event's time -> its write in the graph:
                                             publish -> graph where collectors stamp events as they see them),
                                             gc_full (the worker's full garbage collections)
    tapio_predictions_total{pattern}         predictions written to the graph by this worker's sink
    tapio_window_states                      pattern-window states with hits in them, on this worker
    tapio_consumer_lag_records{topic,partition}   records not yet committed, per partition it reads (Faust's
                                             monitor: reported once the consumer has committed, and after a
                                             rebalance once records were fetched again)
    tapio_feedback_votes{pattern,version}    votes on a pattern version, as the worker last read them
    tapio_feedback_accurate_votes{pattern,version}
    process_resident_memory_bytes, process_cpu_seconds_total, python_gc_*   (the client library's)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

from aiohttp import web
from prometheus_client import CollectorRegistry, GCCollector, ProcessCollector
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from agents.confidence import Votes
from app.agent_health import CollectorStatus
from app.progress import Sample
from core.settings import Settings
from core.stats import StageStats

__all__ = ["AgentCollector", "StatsCollector", "metrics_registry", "otlp_metrics", "register_metrics"]

#: what a labelled count is called here: StageStats.count's name -> (metric, label, help)
LABELLED = {"predictions": ("tapio_predictions", "pattern", "Predictions written to the graph by this worker's sink.")}
GAUGES = {"window_states": ("tapio_window_states", "Pattern-window states with hits in them, on this worker.")}


class StatsCollector(Collector):
    """The worker's own metrics, read from its counters at each scrape."""

    def __init__(self, stats: StageStats, *, lag: Callable[[], Mapping[str, Sample]] | None = None,
                 votes: Callable[[], Mapping[tuple[str, str], Votes]] | None = None) -> None:
        self.stats, self.lag, self.votes = stats, lag, votes

    def collect(self) -> Iterator[Metric]:
        stages = self.stats.snapshot()
        events = CounterMetricFamily("tapio_stage_events", "Events a stage handled.", labels=["stage"])
        batches = CounterMetricFamily("tapio_stage_batches", "Batches a stage handled.", labels=["stage"])
        dead = CounterMetricFamily("tapio_stage_dead_letters", "Records a stage dead-lettered.", labels=["stage"])
        for name, counter in sorted(stages.items()):
            events.add_metric([name], counter.events)
            batches.add_metric([name], counter.batches)
            dead.add_metric([name], counter.rejected)
        yield from (events, batches, dead)
        sizes = HistogramMetricFamily("tapio_stage_batch_size", "Sizes of the batches a stage handled (events).",
                                      labels=["stage"])
        for name, histogram in sorted(self.stats.sizes.items()):
            sizes.add_metric([name], histogram.cumulative(), histogram.sum)
        yield sizes
        for name, histogram in sorted(self.stats.durations.items()):
            family = HistogramMetricFamily(f"tapio_{name}_seconds", f"The {name.replace('_', ' ')} (seconds).")
            family.add_metric([], histogram.cumulative(), histogram.sum)
            yield family
        for name, (metric, label, text) in LABELLED.items():
            family = CounterMetricFamily(metric, text, labels=[label])
            for value, n in sorted(self.stats.labelled.get(name, {}).items()):
                family.add_metric([value], n)
            yield family
        for name, (metric, text) in GAUGES.items():
            read = self.stats.gauges.get(name)
            if read is not None:
                yield GaugeMetricFamily(metric, text, value=read())
        if self.lag is not None:
            lag = GaugeMetricFamily("tapio_consumer_lag_records", "Records not yet committed, per partition read.",
                                    labels=["topic", "partition"])
            for name, sample in sorted(self.lag().items()):
                topic, _, partition = name.rstrip("]").partition("[")
                lag.add_metric([topic, partition], sample.backlog)
            yield lag
        if self.votes is not None:
            total = GaugeMetricFamily("tapio_feedback_votes", "Votes on a pattern version, as last read.",
                                      labels=["pattern", "version"])
            accurate = GaugeMetricFamily("tapio_feedback_accurate_votes", "Accurate votes on a pattern version.",
                                         labels=["pattern", "version"])
            for (pattern, version), v in sorted(self.votes().items()):
                total.add_metric([pattern, version], v.total)
                accurate.add_metric([pattern, version], v.accurate)
            yield from (total, accurate)


class AgentCollector(Collector):
    """The node agent's metrics (`tapio agent`, its `/metrics` beside `/healthz`), per node collector:

        tapio_agent_events_sent_total{collector}      events JetStream acknowledged
        tapio_agent_batches_total{collector}          batches published
        tapio_agent_events_lost_total{collector}      what its source dropped (lost())
        tapio_agent_events_unsent_total{collector}    what the agent gave up publishing (at shutdown)
        tapio_agent_events_waiting{collector}         the batch held back while JetStream is away
        tapio_agent_collector_restarts_total{collector}
        tapio_agent_collector_running{collector}      1 while it runs
    """

    def __init__(self, statuses: Callable[[], Sequence[CollectorStatus]]) -> None:
        self.statuses = statuses

    def collect(self) -> Iterator[Metric]:
        counters = {name: CounterMetricFamily(f"tapio_agent_{name}", text, labels=["collector"]) for name, text in (
            ("events_sent", "Events JetStream acknowledged."), ("batches", "Batches published."),
            ("events_lost", "Events the collector's source dropped."),
            ("events_unsent", "Events the agent gave up publishing."),
            ("collector_restarts", "Restarts of the collector after a failure."))}
        waiting = GaugeMetricFamily("tapio_agent_events_waiting", "Events held back while JetStream is away.",
                                    labels=["collector"])
        running = GaugeMetricFamily("tapio_agent_collector_running", "1 while the collector runs.",
                                    labels=["collector"])
        for s in self.statuses():
            if not s.enabled:
                continue
            for name, value in (("events_sent", s.sent), ("batches", s.batches), ("events_lost", s.lost),
                                ("events_unsent", s.unsent), ("collector_restarts", s.restarts)):
                counters[name].add_metric([s.name], value)
            waiting.add_metric([s.name], s.waiting)
            running.add_metric([s.name], 1 if s.state == "running" else 0)
        yield from (*counters.values(), waiting, running)


def metrics_registry(collector: Collector) -> CollectorRegistry:
    """A registry of its own (not the library's global one): this collector, the process and the GC."""
    registry = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=registry)
    GCCollector(registry=registry)
    registry.register(collector)
    return registry


def register_metrics(router: web.UrlDispatcher, registry: CollectorRegistry) -> None:
    """`GET /metrics` in the format the scraper asks for (its Accept header: Prometheus' text format
    0.0.4 by default, OpenMetrics when asked), as the client library's own server answers."""
    async def metrics(request: web.Request) -> web.Response:
        encode, content_type = choose_encoder(request.headers.get("Accept", ""))
        return web.Response(body=encode(registry), headers={"Content-Type": content_type})
    router.add_route("GET", "/metrics", metrics, name="metrics")


def otlp_metrics(settings: Settings, stats: StageStats, *, role: str = "worker") -> Callable[[], None]:
    """The same counters pushed by OTLP/HTTP to `otel.metrics_endpoint` every `otel.metrics_interval_s`
    (OpenTelemetry's names: `tapio.stage.events`, `tapio.stage.batches`, `tapio.stage.dead_letters`
    {stage}, `tapio.predictions` {pattern}, `tapio.window_states`); the histograms stay on /metrics.
    Returns how to flush and stop it (nothing to do without an endpoint)."""
    if not settings.otel.metrics_endpoint:
        return lambda: None
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.metrics import CallbackOptions, Observation
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    from app.tracing import resource_for

    def per_stage(field: str) -> Callable[[CallbackOptions], list[Observation]]:
        return lambda _: [Observation(getattr(c, field), {"stage": name}) for name, c in stats.snapshot().items()]

    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=settings.otel.metrics_endpoint),
                                           export_interval_millis=settings.otel.metrics_interval_s * 1000)
    provider = MeterProvider(resource=resource_for(settings, role), metric_readers=[reader])
    meter = provider.get_meter("tapio")
    meter.create_observable_counter("tapio.stage.events", [per_stage("events")], unit="{event}")
    meter.create_observable_counter("tapio.stage.batches", [per_stage("batches")], unit="{batch}")
    meter.create_observable_counter("tapio.stage.dead_letters", [per_stage("rejected")], unit="{record}")
    meter.create_observable_counter("tapio.predictions", [lambda _: [
        Observation(n, {"pattern": p}) for p, n in stats.labelled.get("predictions", {}).items()]], unit="{prediction}")
    meter.create_observable_gauge("tapio.window_states", [lambda _: [
        Observation(read()) for read in [stats.gauges.get("window_states")] if read is not None]])
    return provider.shutdown

