"""The graph store interface: one protocol, two backends, picked by the URI scheme.

Fed by: `GraphSettings` (uri, name, credentials, batch_size) from `app.settings`.
Feeds: the graph sink (`write_events`, `write_insights`), the demo and tests (`query` with a named
`topology.queries.Query`). Backends: `topology.falkor` (FalkorDB, native client) and
`topology.neo4j_store` (Neo4j, or anything speaking Bolt, through the neo4j driver).

Every write is idempotent (MERGE on resources, create-if-absent on events), so retrying after
a dropped connection (when the server may already have applied the statement) and replaying
a recording are both safe.
"""

from __future__ import annotations

import time
from typing import Awaitable, Callable, Iterator, Protocol, Sequence, TypeVar
from urllib.parse import urlsplit

from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from app.events import UnifiedEvent
from app.records import PatternMatch, Prediction
from app.settings import GraphSettings
from topology.queries import Query
from topology.rows import WriteBatch, event_rows

T = TypeVar("T")

RETRY_ATTEMPTS = 5
RETRY_WAIT_MIN_S = 0.1
RETRY_WAIT_MAX_S = 2.0

FALKOR_SCHEMES = ("falkordb", "redis", "rediss")
NEO4J_SCHEMES = ("bolt", "neo4j", "bolt+s", "neo4j+s", "bolt+ssc", "neo4j+ssc")


class GraphError(Exception):
    """Base of the graph layer's errors."""


class GraphUnavailable(GraphError):
    """The graph server could not be reached (even after retries) or refused the credentials:
    start it, or fix graph.uri / graph.username / graph.password."""


class GraphQueryError(GraphError):
    """The server rejected a query: a bug in `topology.queries` or a schema/dialect mismatch."""


class UnsupportedGraphURI(GraphError, ValueError):
    """graph.uri has a scheme no backend serves."""


class GraphStore(Protocol):
    async def setup_schema(self) -> None:
        """Create the key indexes/constraints of every label; safe to run again."""

    async def write_events(self, events: Sequence[UnifiedEvent]) -> int:
        """Write events, their resources and AFFECTED edges, in batches of settings.batch_size.

        Returns how many events were written (an id repeated within a batch counts once); all
        are then in the graph, an id already there being left as it is. Raises
        GraphUnavailable, GraphQueryError.
        """

    async def write_insights(self, matches: Sequence[PatternMatch], predictions: Sequence[Prediction]) -> int:
        """Write pattern matches and predictions (see `topology.insight_queries` for the graph):
        first the matches' evidence events exactly as `write_events` writes them, then their
        Pattern nodes, MATCHES / CAUSED / PRECEDED edges, Prediction nodes, PREDICTED and IMPACTS
        edges. Idempotent (MERGE by id): a replay leaves one copy of each.

        Returns how many matches and predictions were written (ids repeated count once).
        Raises InvalidInsight (nothing written) for a value the graph cannot hold,
        GraphUnavailable, GraphQueryError.
        """

    async def query(self, q: Query, **params: object) -> list[dict]:
        """Run a read-only named query; one dict per row, keyed by the RETURN names."""

    async def execute(self, q: Query, **params: object) -> None:
        """Run one write query (topology edges, ...) with its parameters."""

    async def clear(self) -> None:
        """Delete every node and edge of this graph (indexes/constraints stay)."""

    async def close(self) -> None:
        ...


def batches(events: Sequence[UnifiedEvent], *, size: int) -> Iterator[WriteBatch]:
    """Split `events` into write batches of at most `size` events, stamped with the ingest time."""
    if size < 1:
        raise ValueError(f"graph.batch_size must be at least 1, got {size}")
    now_ms = int(time.time() * 1000)
    for start in range(0, len(events), size):
        yield event_rows(events[start:start + size], ingested_at_ms=now_ms)


async def with_retries(op: Callable[[], Awaitable[T]], *, is_transient: Callable[[BaseException], bool],
                       target: str) -> T:
    """Run `op`, retrying transient connection errors with exponential backoff.

    After RETRY_ATTEMPTS failures raises GraphUnavailable naming `target`; any other error
    propagates at once (backends raise GraphQueryError for rejected queries).
    """
    retrying = AsyncRetrying(
        stop=stop_after_attempt(RETRY_ATTEMPTS),
        wait=wait_exponential(multiplier=RETRY_WAIT_MIN_S, max=RETRY_WAIT_MAX_S),
        retry=retry_if_exception(is_transient),
        reraise=True,
    )
    try:
        async for attempt in retrying:
            with attempt:
                return await op()
    except Exception as e:
        if is_transient(e):
            raise GraphUnavailable(
                f"graph server {target} unreachable after {RETRY_ATTEMPTS} attempts "
                f"({type(e).__name__}: {e}); check that it runs (`tapio up` for the embedded one) "
                f"and that graph.uri / TAPIO_GRAPH_URI points at it") from e
        raise
    raise AssertionError("unreachable")  # AsyncRetrying either returns or raises


def open_graph(settings: GraphSettings) -> GraphStore:
    """The backend for `settings.uri`: falkordb:// or redis:// -> FalkorDB; bolt://, neo4j://
    (and their +s variants) -> Neo4j. No I/O happens until the first call."""
    scheme = urlsplit(settings.uri).scheme.lower()
    if scheme in FALKOR_SCHEMES:
        from topology.falkor import FalkorStore
        return FalkorStore(settings)
    if scheme in NEO4J_SCHEMES:
        from topology.neo4j_store import Neo4jStore
        return Neo4jStore(settings)
    raise UnsupportedGraphURI(
        f"graph.uri {settings.uri!r}: unknown scheme {scheme!r}; use falkordb://host:port "
        f"(or redis://) for FalkorDB, bolt:// or neo4j:// (+s for TLS) for Neo4j")
