"""Neo4j backend of `GraphStore`, through the official async driver (`neo4j.AsyncGraphDatabase`).

Fed by: `topology.graph.open_graph` for bolt://, neo4j:// (and +s) URIs; UnifiedEvents from
the graph sink. Feeds: the Neo4j database named `GraphSettings.name`.

All write queries of one `write_events` (or `write_insights`: evidence events, then the
match groups) call run in ONE managed transaction, so a failure leaves nothing half-written.
The driver's own retry loop is switched off (`max_transaction_retry_time=0`):
`topology.retrying.with_retries` owns the retry policy for both backends. (This module is not named
neo4j.py: that would shadow the driver.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import msgspec
from neo4j import AsyncGraphDatabase, AsyncManagedTransaction
from neo4j.exceptions import AuthError, DriverError, Neo4jError, ServiceUnavailable, SessionExpired

from core.events import UnifiedEvent
from core.ports import GraphError, GraphQueryError, GraphUnavailable
from core.records import PatternMatch, Prediction
from core.settings import GraphSettings
from topology.insight_queries import WITHDRAW
from topology.insight_queries import write_insights as write_insights_query
from topology.insight_rows import chunks, insight_rows, labels_of
from topology.queries import (
    CLEAR,
    NEO4J_SCHEMA,
    WRITE_EVENTS_WITHOUT_RESOURCE,
    WRITE_RESOURCE_EVENTS,
    WRITE_RESOURCE_EVENTS_BY_NAME,
    Query,
)
from topology.retrying import with_retries
from topology.rows import WriteBatch, batches

CONNECT_TIMEOUT_S = 5.0
#: Bounds opening a connection, Bolt handshake included (connection_timeout alone does not).
ACQUIRE_TIMEOUT_S = 10.0


#: Two writers created the same Event at once; the retry sees it and skips it.
_RACED = "Neo.ClientError.Schema.ConstraintValidationFailed"


def _is_transient(e: BaseException) -> bool:
    # IncompleteCommit (commit outcome unknown) is retried too: every write is idempotent.
    if isinstance(e, (ServiceUnavailable, SessionExpired, OSError, asyncio.TimeoutError)):
        return True
    if isinstance(e, Neo4jError) and e.code == _RACED:
        return True
    return isinstance(e, (Neo4jError, DriverError)) and e.is_retryable()


class Neo4jStore:
    """GraphStore on one Neo4j database; no auth when `settings.username` is empty."""

    def __init__(self, settings: GraphSettings) -> None:
        auth = (settings.username, settings.password) if settings.username else None
        self._settings = settings
        self._target = f"{settings.uri} (database {settings.name!r})"
        self._driver = AsyncGraphDatabase.driver(settings.uri, auth=auth, max_transaction_retry_time=0,
                                                 connection_timeout=CONNECT_TIMEOUT_S,
                                                 connection_acquisition_timeout=ACQUIRE_TIMEOUT_S)

    async def _transaction(self, work: Any, *, write: bool, what: str) -> Any:
        async def op() -> Any:
            try:
                async with self._driver.session(database=self._settings.name) as session:
                    run = session.execute_write if write else session.execute_read
                    return await run(work)
            except (Neo4jError, DriverError) as e:
                if _is_transient(e):
                    raise
                if isinstance(e, AuthError):  # not retried here; the sink keeps holding its events
                    raise GraphUnavailable(f"Neo4j at {self._target} refused the credentials: "
                                           f"set graph.username / graph.password ({e})") from e
                if isinstance(e, Neo4jError):
                    raise GraphQueryError(f"Neo4j at {self._target} rejected {what}: {e.code} {e.message}. "
                                          f"Fix the text in topology/queries.py or the database name "
                                          f"(graph.name)") from e
                raise GraphError(f"Neo4j driver error on {what} at {self._target}: {e}") from e

        return await with_retries(op, is_transient=_is_transient, target=self._target)

    async def setup_schema(self) -> None:
        for q in NEO4J_SCHEMA:  # schema changes cannot share a transaction with each other's writes
            await self._transaction(_consume(q, {}), write=True, what=f"query {q.name!r}")

    async def write_events(self, events: Sequence[UnifiedEvent]) -> int:
        planned: list[WriteBatch] = list(batches(events, size=self._settings.batch_size))

        async def work(tx: AsyncManagedTransaction) -> None:
            await _write_event_batches(tx, planned)

        if planned:
            await self._transaction(work, write=True, what=f"write_events ({len(events)} events)")
        return sum(b.event_count for b in planned)

    async def write_insights(self, matches: Sequence[PatternMatch], predictions: Sequence[Prediction]) -> int:
        planned = insight_rows(matches, predictions)  # InvalidInsight before anything is written
        events = list(batches(planned.evidence, size=self._settings.batch_size))
        groups = list(chunks(planned.groups, size=self._settings.batch_size))

        async def work(tx: AsyncManagedTransaction) -> None:
            await _write_event_batches(tx, events)
            for chunk in groups:
                await (await tx.run(write_insights_query(labels_of(chunk)).text,
                                    groups=msgspec.to_builtins(chunk))).consume()
            for statement in WITHDRAW if planned.withdrawn else ():
                await (await tx.run(statement.text, rows=msgspec.to_builtins(planned.withdrawn))).consume()

        if groups or events or planned.withdrawn:
            await self._transaction(work, write=True, what=f"write_insights ({len(planned.groups)} match groups)")
        return planned.count

    async def query(self, q: Query, **params: object) -> list[dict]:
        async def work(tx: AsyncManagedTransaction) -> list[dict]:
            return await (await tx.run(q.text, params)).data()

        return await self._transaction(work, write=False, what=f"query {q.name!r}")

    async def execute(self, q: Query, **params: object) -> list[dict]:
        async def work(tx: AsyncManagedTransaction) -> list[dict]:
            return await (await tx.run(q.text, params)).data()

        return await self._transaction(work, write=True, what=f"query {q.name!r}")

    async def clear(self) -> None:
        await self._transaction(_consume(CLEAR, {}), write=True, what=f"query {CLEAR.name!r}")

    async def close(self) -> None:
        await self._driver.close()


async def _write_event_batches(tx: AsyncManagedTransaction, planned: list[WriteBatch]) -> None:
    for batch in planned:
        for label, rows in batch.resources.items():
            await (await tx.run(WRITE_RESOURCE_EVENTS[label].text, rows=msgspec.to_builtins(rows))).consume()
        for label, rows in batch.by_name.items():
            await (await tx.run(WRITE_RESOURCE_EVENTS_BY_NAME[label].text, rows=msgspec.to_builtins(rows))).consume()
        if batch.orphans:
            await (await tx.run(WRITE_EVENTS_WITHOUT_RESOURCE.text,
                                events=msgspec.to_builtins(batch.orphans))).consume()


def _consume(q: Query, params: dict[str, object]) -> Any:
    async def work(tx: AsyncManagedTransaction) -> None:
        await (await tx.run(q.text, params)).consume()
    return work
