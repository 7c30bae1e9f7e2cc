"""Traces and metrics of a real `tapio worker` (issue 19), exported by OTLP/HTTP to a receiver in this test
(aiohttp on loopback, decoding the protobuf requests with opentelemetry-proto): events published with a
collector's trace context are bridged, chained and written to the graph, and each stage's span of the
batch that held one of them links to that event's own span, with the Kafka partition and offset it read."""

from __future__ import annotations

import asyncio
import json
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from aiohttp import web
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from waiting import until, wait_worker_ready

from app.demo import wait_for_events
from app.jetstream import EventPublisher, connect, ensure_streams
from app.stack import EmbeddedStack, free_port
from app.workers import start_worker, with_worker_port
from core.events import RawEvent, content_id
from core.settings import isolated

pytestmark = pytest.mark.xdist_group("traces")
NS = "traced"


def _value(any_value: Any) -> object:
    return getattr(any_value, any_value.WhichOneof("value")) if any_value.WhichOneof("value") else None


class Receiver:
    """An OTLP/HTTP traces endpoint: every span it was sent, with its resource's attributes."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self.metrics: dict[tuple[str, tuple[tuple[str, object], ...]], object] = {}  # the last value of each

    async def metrics_in(self, request: web.Request) -> web.Response:
        body = ExportMetricsServiceRequest.FromString(await request.read())
        for resource_metrics in body.resource_metrics:
            for scope in resource_metrics.scope_metrics:
                for metric in scope.metrics:
                    kind = metric.WhichOneof("data")
                    for point in getattr(metric, kind).data_points:
                        labels = tuple(sorted((a.key, _value(a.value)) for a in point.attributes))
                        self.metrics[(metric.name, labels)] = getattr(point, point.WhichOneof("value"))
        return web.Response(body=b"", content_type="application/x-protobuf")

    async def traces(self, request: web.Request) -> web.Response:
        body = ExportTraceServiceRequest.FromString(await request.read())
        for resource_spans in body.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope in resource_spans.scope_spans:
                for span in scope.spans:
                    self.spans.append({
                        "name": span.name, "resource": resource,
                        "attributes": {a.key: _value(a.value) for a in span.attributes},
                        "links": {(link.trace_id.hex(), link.span_id.hex()) for link in span.links}})
        return web.Response(body=b"", content_type="application/x-protobuf")


@pytest.fixture(scope="module")
async def receiver() -> Any:
    found = Receiver()
    app = web.Application()
    app.router.add_post("/v1/traces", found.traces)
    app.router.add_post("/v1/metrics", found.metrics_in)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield found, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def _event(i: int, at: datetime) -> RawEvent:
    when = at.isoformat().replace("+00:00", "Z")
    data = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": f"web-0.{i}", "namespace": NS, "uid": f"tr-{i}"},
            "involvedObject": {"kind": "Pod", "name": "web-0", "namespace": NS, "uid": "uid-web-0"},
            "reason": "BackOff", "message": f"Back-off restarting failed container ({i})", "type": "Warning",
            "count": 1, "firstTimestamp": when, "lastTimestamp": when}
    # the collector's own span of this event (app.agent makes one per event it publishes)
    return RawEvent(id=content_id("traced", str(i)), timestamp=at, type="kubeapi", data=json.dumps(data).encode(),
                    metadata={"namespace": NS, "kind": "Event", "action": "EVENT"},
                    trace_id=secrets.token_hex(16), span_id=secrets.token_hex(8))


async def test_each_stage_spans_its_batch_linked_to_the_events_own_traces(
        embedded: EmbeddedStack, receiver: tuple[Receiver, str], tmp_path_factory: pytest.TempPathFactory) -> None:
    found, endpoint = receiver
    base = isolated(with_worker_port(embedded.settings(), free_port(), data_dir=str(tmp_path_factory.mktemp("w"))),
                    "traced")
    settings = msgspec.structs.replace(base, otel=msgspec.structs.replace(
        base.otel, endpoint=f"{endpoint}/v1/traces", metrics_endpoint=f"{endpoint}/v1/metrics", metrics_interval_s=1.0,
        service_name="tapio-test"))
    proc = start_worker(settings, log_dir=tmp_path_factory.mktemp("traced-logs"))
    try:
        wait_worker_ready(settings.worker.web_port, proc)
        t0 = datetime.now(UTC) - timedelta(minutes=5)
        events = [_event(i, t0 + timedelta(seconds=i)) for i in range(5)]
        nc = await connect(settings.nats, name="test-traces")
        try:
            js = nc.jetstream()
            await ensure_streams(js, settings.nats)
            assert await EventPublisher(js, settings.nats).publish_many(events) == len(events)
        finally:
            await nc.drain()
        assert await wait_for_events(settings, [e.id for e in events], timeout=120) == len(events), proc.log_tail()
    finally:
        # a clean stop flushes the spans and metrics still held (from a thread: this loop serves the receiver)
        assert await asyncio.to_thread(proc.stop) == 0, proc.log_tail()

    event = events[2]
    mine = (event.trace_id, event.span_id)

    def linked() -> dict[str, dict[str, Any]] | None:
        spans = {s["name"]: s for s in found.spans if mine in s["links"]}
        return spans if {"tapio.bridge", "tapio.front", "tapio.sink"} <= set(spans) else None
    spans = await until(linked, timeout=30, what=lambda: "a span linked to the event in each stage (got "
                        f"{sorted({s['name'] for s in found.spans})})")
    front = spans["tapio.front"]
    assert front["attributes"]["tapio.stage"] == "front"
    assert front["attributes"]["messaging.destination.partition.id"].isdigit()
    assert isinstance(front["attributes"]["messaging.kafka.offset"], int)
    assert all(s["resource"]["service.name"] == "tapio-test" for s in found.spans)
    assert {"tapio.windows"} <= {s["name"] for s in found.spans}  # the hits' windows, a span per batch too
    # the counters by OTLP too (the last push, at the stop): the sink wrote the 5 events
    assert found.metrics[("tapio.stage.events", (("stage", "sink"),))] == len(events)
    assert found.metrics[("tapio.stage.events", (("stage", "enrich"),))] == len(events)
    assert ("tapio.window_states", ()) in found.metrics
