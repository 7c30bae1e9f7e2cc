"""FalkorDB backend of `GraphStore`, through the native async client (`falkordb.asyncio`).

Fed by: `topology.graph.open_graph` for falkordb:// and redis:// URIs; UnifiedEvents from
the graph sink. Feeds: the FalkorDB graph whose key is `GraphSettings.name`.

Each write query is one GRAPH.QUERY, which FalkorDB applies atomically: a batch's events,
their resource and their AFFECTED edges of one label land together or not at all.
"""

from __future__ import annotations

import asyncio
from typing import Any, Sequence
from urllib.parse import urlsplit

import redis.exceptions
from falkordb.asyncio import FalkorDB
from falkordb.asyncio.graph import AsyncGraph

from app.events import UnifiedEvent
from app.settings import GraphSettings
from topology.graph import GraphQueryError, batches, with_retries
from topology.queries import (CLEAR, FALKOR_INDEXES, FALKOR_LIST_INDEXES, WRITE_EVENTS_WITHOUT_RESOURCE,
                              WRITE_RESOURCE_EVENTS, Query)

CONNECT_TIMEOUT_S = 5.0
QUERY_TIMEOUT_S = 60.0
_ALREADY_INDEXED = "already indexed"
_EMPTY_KEY = "empty key"  # a read on a graph nothing was written to yet


def _is_transient(e: BaseException) -> bool:
    return isinstance(e, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
                          OSError, asyncio.TimeoutError))


def _plain(value: Any) -> Any:
    """The client's OrderedDicts -> dicts, recursively, so rows compare like the Neo4j backend's."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


class FalkorStore:
    """GraphStore on one FalkorDB graph. Connects on first use (the client probes the server
    synchronously when built, so that runs in a thread and is retried like any query)."""

    def __init__(self, settings: GraphSettings) -> None:
        parts = urlsplit(settings.uri)
        self._settings = settings
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 6379
        self._ssl = parts.scheme == "rediss"
        self._target = f"{settings.uri} (graph {settings.name!r})"
        self._db: FalkorDB | None = None
        self._graph: AsyncGraph | None = None
        self._lock = asyncio.Lock()

    async def _connect(self) -> AsyncGraph:
        async with self._lock:
            if self._graph is None:
                self._db = await asyncio.to_thread(
                    FalkorDB, host=self._host, port=self._port, ssl=self._ssl,
                    username=self._settings.username or None, password=self._settings.password or None,
                    socket_connect_timeout=CONNECT_TIMEOUT_S, socket_timeout=QUERY_TIMEOUT_S)
                self._graph = self._db.select_graph(self._settings.name)
            return self._graph

    async def _run(self, q: Query, params: dict[str, Any] | None, *, read_only: bool) -> list[dict]:
        async def op() -> list[dict]:
            graph = self._graph or await self._connect()
            try:
                if read_only:
                    result = await graph.ro_query(q.text, params)
                else:
                    result = await graph.query(q.text, params)
            except redis.exceptions.ResponseError as e:
                if read_only and _EMPTY_KEY in str(e):
                    return []
                raise GraphQueryError(
                    f"FalkorDB at {self._target} rejected query {q.name!r}: {e}. "
                    f"Read-only queries cannot write; otherwise fix the text in topology/queries.py") from e
            names = [column[1] for column in result.header]
            return [dict(zip(names, (_plain(v) for v in record))) for record in result.result_set]

        return await with_retries(op, is_transient=_is_transient, target=self._target)

    async def setup_schema(self) -> None:
        existing = {(row["label"], prop) for row in await self._run(FALKOR_LIST_INDEXES, None, read_only=True)
                    for prop in row["properties"]}
        for spec in FALKOR_INDEXES:
            if (spec.label, spec.property) in existing:
                continue
            try:
                await self._run(spec.query, None, read_only=False)
            except GraphQueryError as e:  # created meanwhile by another writer
                if _ALREADY_INDEXED not in str(e):
                    raise

    async def write_events(self, events: Sequence[UnifiedEvent]) -> int:
        written = 0
        for batch in batches(events, size=self._settings.batch_size):
            for label, rows in batch.resources.items():
                await self._run(WRITE_RESOURCE_EVENTS[label], {"rows": rows}, read_only=False)
            if batch.orphans:
                await self._run(WRITE_EVENTS_WITHOUT_RESOURCE, {"events": batch.orphans}, read_only=False)
            written += batch.event_count
        return written

    async def query(self, q: Query, **params: object) -> list[dict]:
        return await self._run(q, params or None, read_only=True)

    async def clear(self) -> None:
        await self._run(CLEAR, None, read_only=False)

    async def close(self) -> None:
        if self._db is not None:
            await self._db.aclose()
        self._db = self._graph = None
