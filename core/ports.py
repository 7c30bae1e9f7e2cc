"""The ports: what the stages and collectors need from the world outside, as small Protocols.

Fed by: the adapters in `app/` (`app.jetstream` publishes and dead-letters over NATS JetStream,
`topology.graph` writes FalkorDB or Neo4j, `app.runtime` bundles them for a worker). Feeds: the
Faust agents (`agents/`), which see only these shapes, and the replayer (`collectors.replayer`),
so a stage can be run against any implementation (a test's, another broker's) without knowing it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from opentelemetry.trace import Tracer

from core.events import RawEvent, UnifiedEvent
from core.records import PatternMatch, Prediction
from core.settings import Settings
from core.stats import StageStats


class GraphError(Exception):
    """Base of the graph port's errors."""


class GraphUnavailable(GraphError):
    """The graph server could not be reached (even after retries) or refused the credentials:
    start it, or fix graph.uri / graph.username / graph.password."""


class GraphQueryError(GraphError):
    """The server rejected a query: a bug in `topology.queries` or a schema/dialect mismatch."""


class InvalidInsight(ValueError):
    """A match or prediction the graph cannot hold as given (named in the message); the graph
    sink dead-letters its match group and writes the others."""


class DeadLetterSink(Protocol):
    """Where rejected input goes, with the reason and its position (`deadletter.<stage>`)."""

    async def send(self, *, stage: str, reason: str, where: str, payload: bytes, event_id: str = "") -> None: ...


class EventPublisher(Protocol):
    """Publishes RawEvents to the event stream; `duplicates` counts what the stream dropped as repeats."""

    duplicates: int

    async def publish_many(self, events: Sequence[RawEvent]) -> int: ...


class GraphWriter(Protocol):
    """Writes events and pattern matches with their predictions, idempotently (MERGE on ids).

    Raises GraphUnavailable (temporary: retry), GraphQueryError or InvalidInsight (permanent: dead-letter).
    """

    async def write_events(self, events: Sequence[UnifiedEvent]) -> int: ...

    async def write_insights(self, matches: Sequence[PatternMatch], predictions: Sequence[Prediction]) -> int: ...


class ProgressRecorder(Protocol):
    """Where the stages record how far they hold each raw partition, in JetStream stream sequences
    (app.checkpoint): the graph sink what the graph holds, the windows stage what its tables hold."""

    def written(self, partition: int, seq: int) -> None: ...

    def absorbed(self, hits_partition: int, partition: int, seq: int) -> None: ...

    async def save(self, *, force: bool = False) -> None: ...


class StageRuntime(Protocol):
    """What every agent of a worker shares: settings, counters, the graph and the dead-letter subject.

    An agent awaits `ready()` before its first record; `graph` is set once ready.
    """

    settings: Settings
    stats: StageStats
    graph: GraphWriter | None
    progress: ProgressRecorder | None
    tracer: Tracer  # a span per batch (core.trace_links.stage_span); a no-op one without otel.endpoint

    async def ready(self) -> None: ...

    async def dead_letter(self, *, stage: str, reason: str, where: str, payload: bytes,
                          event_id: str = "") -> None: ...
