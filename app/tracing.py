"""The worker's tracer: OpenTelemetry spans of each batch each stage handles, exported by OTLP/HTTP.

Fed by: `otel.endpoint` (no endpoint: a no-op tracer, nothing is made or sent), `otel.service_name`,
`worker.app_id`. Feeds: the stages (`core.trace_links.stage_span`) and the bridge, through the runtime;
a collector (OpenTelemetry Collector, Jaeger, Tempo...) at the endpoint. Spans are batched by the SDK's
BatchSpanProcessor and flushed when the worker stops.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import NoOpTracer, Tracer

from core.settings import Settings

__all__ = ["resource_for", "tracer_for"]


def resource_for(settings: Settings, role: str) -> Resource:
    """Who sends the spans and metrics: the service, the worker group, this process."""
    return Resource.create({"service.name": settings.otel.service_name, "service.namespace": settings.worker.app_id,
                            "service.instance.id": f"{role}-{os.getpid()}"})


def tracer_for(settings: Settings, *, role: str = "worker") -> tuple[Tracer, Callable[[], None]]:
    """A tracer and how to flush and close it (a no-op pair without `otel.endpoint`)."""
    if not settings.otel.endpoint:
        return NoOpTracer(), lambda: None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    provider = TracerProvider(resource=resource_for(settings, role))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=settings.otel.endpoint)))
    return provider.get_tracer("tapio"), provider.shutdown
