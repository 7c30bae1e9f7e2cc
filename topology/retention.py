"""How long Event nodes stay in the graph: by age, and under a cap on their number.

Every observation becomes an Event node, so the graph grows with the stream; FalkorDB, the
embedded graph, holds it in memory (about 1 KiB an event). Kubernetes itself keeps its Events an
hour (`--event-ttl`). Two settings (`graph.retention_s`, `graph.max_events`) bound it:

- **Age**: an event the sink wrote more than `retention_s` ago is deleted.
- **Cap**: above `max_events` Event nodes, the oldest (by the time the sink wrote them) are
  deleted down to 90 % of the cap, so a round deletes a chunk instead of a few events each time.
  The cap keeps changes (config edits, rollouts: the root causes of tomorrow's incidents).
- Both keep every event a match, a prediction's evidence or a cause cites (a MATCHES, CAUSED or
  PRECEDED edge): what `tapio explain` and the hypotheses read stays whole. Resources, patterns,
  predictions and votes are never deleted here.
- Each deletion adds its count to the `(:Retention {id: "events"})` node in the same statement,
  so events in the graph plus pruned ones account for every event written.

The oldest events are found through the index on `ingested_at` in steps of ingest time from a
floor (below which nothing deletable is left), never by sorting the whole graph: a step that
holds more than one statement's worth shrinks, one that holds less moves the floor and grows, so
a step covers about one statement's worth and the events go oldest first, to within a step.

Fed by: `core.settings.GraphSettings`, the graph (`topology.retention_queries`). Feeds: the
worker's timer on the leader of the sink's group (`app.faust_app`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from core.settings import GraphSettings
from topology.graph import GraphStore
from topology.narrative import CHANGE_INTENTS
from topology.queries import COUNT_ALL_EVENTS
from topology.retention_queries import OLDEST_EVENT, PRUNE_EVENTS, PRUNED_EVENTS

log = logging.getLogger(__name__)

#: share of `max_events` a cap round deletes down to
LOW_WATER = 0.9
#: ingest time the first step of a cap round covers, and the least and most a step becomes
FIRST_STEP_MS = 1_000
MIN_STEP_MS = 50
MAX_STEP_MS = 600_000
#: events one delete statement deletes at most, and statements one round runs at most
DELETE_BATCH = 5_000
MAX_STATEMENTS = 200


def over_cap(count: int, max_events: int) -> int:
    """Pure: how many Event nodes a cap round deletes (0 while the graph holds at most the cap)."""
    if not max_events or count <= max_events:
        return 0
    return count - int(max_events * LOW_WATER)


@dataclass
class Pruned:
    """One round: events deleted by age and by the cap, and the total pruned so far."""

    by_age: int = 0
    by_cap: int = 0
    total: int = 0


class EventRetention:
    """Runs rounds of retention against a graph (`graph`: set it before a round when it changes,
    as the worker does, opening one per round in a thread); holds the floors between rounds."""

    def __init__(self, graph: GraphStore | None, settings: GraphSettings, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.graph = graph
        self.settings = settings
        self.clock = clock
        self.floor: int | None = None  # ingest time (ms) below which the cap left nothing deletable
        self.age_floor = 0  # the same for age
        self.step_ms = FIRST_STEP_MS
        self.statements = 0

    @property
    def enabled(self) -> bool:
        return bool(self.settings.retention_s or self.settings.max_events)

    def _graph(self) -> GraphStore:
        if self.graph is None:
            raise RuntimeError("EventRetention has no graph: set .graph before a round")
        return self.graph

    async def _delete(self, after: int, before: int, limit: int, keep: list[str]) -> tuple[int, int]:
        self.statements += 1
        rows = await self._graph().execute(PRUNE_EVENTS, after=after, before=before, keep_intents=keep, limit=limit)
        row = rows[0] if rows else {}
        return int(row.get("n") or 0), int(row.get("pruned") or 0)

    async def prune(self) -> Pruned:
        """One round: by age, then by the cap. Raises the graph's errors (GraphUnavailable, ...)."""
        now_ms = int(self.clock() * 1000)
        done = Pruned()
        self.statements = 0
        batch = DELETE_BATCH
        if self.settings.retention_s:
            cutoff = now_ms - int(self.settings.retention_s * 1000)
            while self.statements < MAX_STATEMENTS:
                n, done.total = await self._delete(self.age_floor, cutoff, batch, [])
                done.by_age += n
                if n < batch:
                    self.age_floor = cutoff  # what stays below it is cited: not looked at again
                    break
            self.floor = max(self.floor or 0, self.age_floor)
        if self.settings.max_events:
            rows = await self._graph().query(COUNT_ALL_EVENTS)
            want = over_cap(int(rows[0]["n"]) if rows else 0, self.settings.max_events)
            if want:
                done.by_cap, total = await self._delete_oldest(want, now_ms)
                done.total = max(done.total, total)
        if done.by_age or done.by_cap:
            log.info("graph retention: %d events deleted by age (graph.retention_s %s), %d over the cap "
                     "(graph.max_events %d); %d pruned so far", done.by_age, self.settings.retention_s,
                     done.by_cap, self.settings.max_events, done.total)
        return done

    async def _oldest(self, after: int) -> int | None:
        rows = await self._graph().query(OLDEST_EVENT, after=after)
        t = rows[0]["t"] if rows else None
        return int(t) if t is not None else None

    async def _delete_oldest(self, want: int, now_ms: int) -> tuple[int, int]:
        """Delete `want` deletable events, oldest ingest time first, a step of ingest time at a time."""
        deleted = total = 0
        if self.floor is None:
            self.floor = await self._oldest(0)
            if self.floor is None:
                return 0, 0
        while want > deleted and self.statements < MAX_STATEMENTS and self.floor <= now_ms:
            before = self.floor + self.step_ms
            asked = min(want - deleted, DELETE_BATCH)
            n, total = await self._delete(self.floor, before, asked, list(CHANGE_INTENTS))
            deleted += n
            if n == asked:  # more may be left in this step: narrower steps keep to the oldest
                self.step_ms = max(MIN_STEP_MS, self.step_ms // 2)
                continue
            self.floor = before  # nothing deletable left below it
            if n == 0:  # jump over a gap of ingest time (or over events that must stay)
                nxt = await self._oldest(before)
                if nxt is None:
                    break
                self.floor = max(self.floor, nxt)
            self.step_ms = min(self.step_ms * 2, MAX_STEP_MS)
        if deleted < want:
            log.warning("graph retention: %d of %d events over graph.max_events %d deleted; the rest is "
                        "cited by matches or changes (kept) or waits for the next round", deleted, want,
                        self.settings.max_events)
        return deleted, total


async def pruned_events(graph: GraphStore) -> int:
    """Event nodes retention deleted so far (0 if none ever was)."""
    rows = await graph.query(PRUNED_EVENTS)
    return int(rows[0]["pruned"]) if rows else 0
