"""Retries at the graph's edge: transient connection errors are retried with backoff, then
reported as GraphUnavailable naming the server; anything else propagates at once.

Fed by: both graph backends (`topology.falkor`, `topology.neo4j_store`), around every call to
their server. Feeds: `core.ports.GraphUnavailable` to the sink, which waits for the graph.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from core.ports import GraphUnavailable

T = TypeVar("T")

RETRY_ATTEMPTS = 5
RETRY_WAIT_MIN_S = 0.1
RETRY_WAIT_MAX_S = 2.0


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
