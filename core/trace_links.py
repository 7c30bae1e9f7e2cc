"""The trace context collectors put on events (`RawEvent.trace_id`/`span_id`, `UnifiedEvent.trace`), as
OpenTelemetry span contexts and links: how a stage's span of a batch points at the events' own traces.

Fed by: the bridge (a traceparent header per record) and the stages' per-batch spans (`app.tracing`).
Pure: no I/O (the OpenTelemetry API only).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from opentelemetry.trace import INVALID_SPAN, Link, NoOpTracer, Span, SpanContext, SpanKind, TraceFlags, Tracer

__all__ = ["batch_events", "links", "span_context", "stage_span", "traced"]


def span_context(trace_id: str | None, span_id: str | None) -> SpanContext | None:
    """The remote span context of an event's ids (hex), or None when it has none or they are malformed."""
    if not trace_id:
        return None
    try:
        ctx = SpanContext(trace_id=int(trace_id, 16), span_id=int(span_id or "1", 16), is_remote=True,
                          trace_flags=TraceFlags(TraceFlags.SAMPLED))
    except ValueError:
        return None
    return ctx if ctx.is_valid else None


def links(ids: Iterable[tuple[str | None, str | None]], limit: int) -> list[Link]:
    """Links to the first `limit` distinct valid (trace id, span id) pairs."""
    out: list[Link] = []
    seen: set[tuple[int, int]] = set()
    for trace_id, span_id in ids:
        if len(out) >= limit:
            break
        ctx = span_context(trace_id, span_id)
        if ctx is not None and (ctx.trace_id, ctx.span_id) not in seen:
            seen.add((ctx.trace_id, ctx.span_id))
            out.append(Link(ctx))
    return out


def stage_span(tracer: Tracer, stage: str, ids: Iterable[tuple[str | None, str | None]] = (), *, limit: int = 32,
               partition: int | None = None, offset: int | None = None) -> AbstractContextManager[Span]:
    """The span of one batch a stage handles (`tapio.<stage>`, a consumer span), linked to its events'
    trace contexts, with the Kafka partition and offset it read when it read one."""
    if isinstance(tracer, NoOpTracer):  # no otel.endpoint: nothing to make, not even the links
        return nullcontext(INVALID_SPAN)
    attributes: dict[str, str | int] = {"tapio.stage": stage}
    if partition is not None:
        attributes["messaging.destination.partition.id"] = str(partition)
    if offset is not None:
        attributes["messaging.kafka.offset"] = offset
    return tracer.start_as_current_span(f"tapio.{stage}", kind=SpanKind.CONSUMER, links=links(ids, limit),
                                        attributes=attributes)


def traced(events: Iterable[Any]) -> Iterator[tuple[str | None, str | None]]:
    """The (trace id, span id) of each event that has them: a RawEvent carries its own, an enriched event
    its raw one's, a UnifiedEvent its `trace` (lazily: `links` reads only what it keeps)."""
    for event in events:
        raw = getattr(event, "raw", event)
        if trace_id := getattr(raw, "trace_id", None):
            yield trace_id, getattr(raw, "span_id", None)
        elif (trace := getattr(event, "trace", None)) is not None:
            yield trace.trace_id, trace.span_id


def batch_events(batch: object) -> Sequence[Any]:
    """A batch's decoded events; none for a batch read as a view (its events stay undecoded) or without any."""
    events = getattr(batch, "events", None)
    return events if isinstance(events, list | tuple) else ()
