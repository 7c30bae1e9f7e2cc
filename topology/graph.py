"""The graph store interface: one protocol, two backends, picked by the URI scheme.

Fed by: `GraphSettings` (uri, name, credentials, batch_size) from `core.settings`.
Feeds: the graph sink (`write_events`, `write_insights`), the demo and tests (`query` with a named
`topology.queries.Query`). Backends: `topology.falkor` (FalkorDB, native client) and
`topology.neo4j_store` (Neo4j, or anything speaking Bolt, through the neo4j driver).

Every write is idempotent (MERGE on resources, create-if-absent on events), so retrying after
a dropped connection (when the server may already have applied the statement) and replaying
a recording are both safe.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol
from urllib.parse import urlsplit

from core.events import UnifiedEvent
from core.ports import GraphError
from core.records import PatternMatch, Prediction
from core.settings import GraphSettings
from topology.queries import Query

FALKOR_SCHEMES = ("falkordb", "redis", "rediss")
NEO4J_SCHEMES = ("bolt", "neo4j", "bolt+s", "neo4j+s", "bolt+ssc", "neo4j+ssc")


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

    async def execute(self, q: Query, **params: object) -> list[dict]:
        """Run one write query (topology edges, retention, ...) with its parameters; its rows, if
        it returns any."""

    async def clear(self) -> None:
        """Delete every node and edge of this graph (indexes/constraints stay)."""

    async def close(self) -> None:
        ...


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
