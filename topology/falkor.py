"""FalkorDB backend of `GraphStore`, through the native async client (`falkordb.asyncio`).

Fed by: `topology.graph.open_graph` for falkordb:// and redis:// URIs; UnifiedEvents from
the graph sink. Feeds: the FalkorDB graph whose key is `GraphSettings.name`.

Each write query is one GRAPH.QUERY, which FalkorDB applies atomically: the resources of
one label in a batch, their events and AFFECTED edges land together or not at all; so do the
patterns, predictions and edges of a chunk of match groups (`write_insights`, after the
matches' evidence events).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import msgspec
import redis.exceptions
from falkordb.asyncio import FalkorDB
from falkordb.asyncio.graph import AsyncGraph

from core.events import UnifiedEvent
from core.ports import GraphQueryError
from core.records import PatternMatch, Prediction
from core.settings import GraphSettings
from topology.insight_queries import WITHDRAW
from topology.insight_queries import write_insights as write_insights_query
from topology.insight_rows import chunks, insight_rows, labels_of
from topology.queries import (
    CLEAR,
    FALKOR_INDEXES,
    FALKOR_LIST_INDEXES,
    WRITE_EVENTS_WITHOUT_RESOURCE,
    WRITE_RESOURCE_EVENTS,
    WRITE_RESOURCE_EVENTS_BY_NAME,
    Query,
)
from topology.retrying import with_retries
from topology.rows import WriteBatch, batches

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5.0
QUERY_TIMEOUT_S = 60.0
_ALREADY_INDEXED = "already indexed"
_SEND_YIELDS = 3  # loop turns for a started write to hand its request to the socket
_EMPTY_KEY = "empty key"  # a read on a graph nothing was written to yet


# Parameters travel as a `CYPHER name=<literal> ...` header. The client builds it value by
# value in Python (it took more time than the server's work at 500 events per batch); JSON is
# nearly the same literal syntax and msgspec writes it in C. Two fixes make it FalkorDB's:
# map keys go in backticks, and \u00XX escapes of control characters (which FalkorDB keeps
# verbatim) become the raw characters (which it accepts). NUL stays escaped (a raw NUL ends
# the command), so a NUL in a value is stored as the six characters \u0000.
_JSON_KEY = re.compile(r'([{,])"([A-Za-z_][A-Za-z0-9_]*)":')
_JSON_CONTROL = re.compile(r'(?<!\\)((?:\\\\)*)\\u00(0[1-9a-fA-F]|1[0-9a-fA-F])')


def cypher_literal(value: object) -> str:
    """`value` (scalars, lists, maps with identifier keys) as a FalkorDB Cypher literal."""
    text = msgspec.json.encode(value).decode()
    if '":' in text:
        text = _JSON_KEY.sub(r"\1`\2`:", text)
    if "\\u00" in text:
        text = _JSON_CONTROL.sub(lambda m: m.group(1) + chr(int(m.group(2), 16)), text)
    return text


def _with_params(text: str, params: dict[str, Any] | None) -> str:
    if not params:
        return text
    header = " ".join(f"{name}={cypher_literal(value)}" for name, value in params.items())
    return f"CYPHER {header} {text}"


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
        self._schema = False  # setup_schema ran here: after a reconnect, it runs again

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
        lost = False

        async def op() -> list[dict]:
            nonlocal lost
            graph = self._graph or await self._connect()
            try:
                text = _with_params(q.text, params)
                result = await (graph.ro_query(text) if read_only else graph.query(text))
            except Exception as e:
                lost = lost or _is_transient(e)
                if not isinstance(e, redis.exceptions.ResponseError):
                    raise
                if read_only and _EMPTY_KEY in str(e):
                    return []
                raise GraphQueryError(
                    f"FalkorDB at {self._target} rejected query {q.name!r}: {e}. "
                    f"Read-only queries cannot write; otherwise fix the text in topology/queries.py") from e
            names = [column[1] for column in result.header]
            return [dict(zip(names, (_plain(v) for v in record), strict=True)) for record in result.result_set]

        rows = await with_retries(op, is_transient=_is_transient, target=self._target)
        if lost and self._schema:
            # the connection broke and came back: the server may have restarted without its files
            # (its indexes gone, and writes then crawl); setting them up again is cheap when they are there
            log.warning("FalkorDB at %s: reconnected; checking its indexes", self._target)
            await self.setup_schema()
        return rows

    async def setup_schema(self) -> None:
        self._schema = True
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
        # Pipelined: the rows of batch k+1 are built while the server runs batch k (they
        # cost about as much CPU as the server's work). Batches still land in order.
        written = 0
        in_flight: asyncio.Task[int] | None = None
        try:
            for batch in batches(events, size=self._settings.batch_size):
                if in_flight is not None:
                    written += await in_flight
                in_flight = asyncio.ensure_future(self._write_batch(batch))
                for _ in range(_SEND_YIELDS):  # let the request reach the socket first
                    await asyncio.sleep(0)
            if in_flight is not None:
                written += await in_flight
                in_flight = None
        finally:  # only on error: the caller retries the whole call, every write being a MERGE
            if in_flight is not None:
                if in_flight.done() and not in_flight.cancelled():
                    in_flight.exception()  # retrieved: the error raised here is the one reported
                else:
                    in_flight.cancel()
        return written

    async def _write_batch(self, batch: WriteBatch) -> int:
        for label, rows in batch.resources.items():
            await self._run(WRITE_RESOURCE_EVENTS[label], {"rows": rows}, read_only=False)
        for label, rows in batch.by_name.items():
            await self._run(WRITE_RESOURCE_EVENTS_BY_NAME[label], {"rows": rows}, read_only=False)
        if batch.orphans:
            await self._run(WRITE_EVENTS_WITHOUT_RESOURCE, {"events": batch.orphans}, read_only=False)
        return batch.event_count

    async def write_insights(self, matches: Sequence[PatternMatch], predictions: Sequence[Prediction]) -> int:
        planned = insight_rows(matches, predictions)  # InvalidInsight before anything is written
        if planned.evidence:
            await self.write_events(planned.evidence)
        for chunk in chunks(planned.groups, size=self._settings.batch_size):
            await self._run(write_insights_query(labels_of(chunk)), {"groups": chunk}, read_only=False)
        if planned.withdrawn:
            for statement in WITHDRAW:
                await self._run(statement, {"rows": planned.withdrawn}, read_only=False)
        return planned.count

    async def query(self, q: Query, **params: object) -> list[dict]:
        return await self._run(q, params or None, read_only=True)

    async def execute(self, q: Query, **params: object) -> list[dict]:
        return await self._run(q, params or None, read_only=False)

    async def clear(self) -> None:
        await self._run(CLEAR, None, read_only=False)

    async def close(self) -> None:
        if self._db is not None:
            await self._db.aclose()
        self._db = self._graph = None
