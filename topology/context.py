"""Context revelation: everything the graph knows around one event.

Fed by: a GraphStore and an event id (from `tapio explain`, the API, the narrative).
Feeds: `Context`, which the narrative renders as a tree or JSON.

The architecture's single context query joins six OPTIONAL MATCHes into one row and multiplies
their results; here each part is its own named query anchored on the event's indexed id
(FalkorDB plans these in well under a millisecond, the joined form in seconds), run in turn:
the affected resources, their ownership chain, dependencies within 3 hops, events within
+-5 minutes on the same or a neighbouring resource, configuration changes and rollouts within
2 hops in the hour before, the chains of causes and the consequences.
"""

from __future__ import annotations

import msgspec

from topology import queries
from topology.graph import GraphStore


class ContextError(LookupError):
    """The event id is not in the graph: check the id (`tapio explain` lists recent ones)."""


class EventSummary(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    timestamp: int | None = None  # epoch ms
    reason: str | None = None
    intent: str | None = None
    severity: str | None = None
    narrative: str | None = None
    action: str | None = None  # EVENT, CHANGE, ROLLOUT, or the watch verb of an object observation


class ResourceRef(msgspec.Struct, frozen=True, kw_only=True):
    label: str
    uid: str
    name: str | None = None
    namespace: str | None = None
    node: str | None = None
    restarts: int | None = None  # container restarts, for pods the topology has seen
    distance: int = 0  # ownership depth or dependency hops


class RelatedEvent(msgspec.Struct, frozen=True, kw_only=True):
    event: EventSummary
    on_label: str | None = None
    on_name: str | None = None


class Context(msgspec.Struct, frozen=True, kw_only=True):
    event: EventSummary
    affected: list[ResourceRef]
    owners: list[ResourceRef]
    dependencies: list[ResourceRef]
    correlated: list[RelatedEvent]
    changes: list[RelatedEvent]  # config edits and rollouts nearby in the lookback (and after it), newest first
    previous: RelatedEvent | None = None  # the same reason on it or a sibling, before the window
    causes: list[list[str]]  # chains of event ids, root first, ending at this event
    consequences: list[EventSummary]


def _summary(row: dict) -> EventSummary:
    return EventSummary(id=row["id"], timestamp=row.get("timestamp"), reason=row.get("reason"),
                        intent=row.get("intent"), severity=row.get("severity"), narrative=row.get("narrative"),
                        action=row.get("action"))


def _ref(row: dict, distance_key: str | None = None) -> ResourceRef:
    return ResourceRef(label=row["label"], uid=row["uid"], name=row.get("name"), namespace=row.get("namespace"),
                       node=row.get("node"), restarts=row.get("restarts"),
                       distance=row[distance_key] if distance_key else 0)


CHANGE_INTENTS = ["config-change", "rollout"]
#: object observations that are never a change by themselves: a status write (a Node's heartbeat, a
#: controller's replicas count) is MODIFIED like an edit; the edit is the topology service's CHANGE
ROUTINE_ACTIONS = ["MODIFIED", "SNAPSHOT"]


async def reveal_context(graph: GraphStore, event_id: str, *, window_ms: int = 300_000,
                         lookback_ms: int = 3_600_000, lookahead_ms: int = 3_600_000, limit: int = 200) -> Context:
    """The whole context of one event. Raises ContextError when the id is unknown."""
    rows = await graph.query(queries.CONTEXT_EVENT, id=event_id)
    if not rows:
        raise ContextError(f"no event {event_id!r} in the graph")
    affected = [_ref(r) for r in rows if r.get("uid") is not None]
    owners = await graph.query(queries.CONTEXT_OWNERS, id=event_id)
    dependencies = await graph.query(queries.CONTEXT_DEPENDENCIES, id=event_id, limit=limit)
    temporal = await graph.query(queries.CONTEXT_TEMPORAL, id=event_id, window_ms=window_ms, limit=limit)
    changes = await graph.query(queries.CONTEXT_RECENT_CHANGES, id=event_id, intents=CHANGE_INTENTS,
                                routine=ROUTINE_ACTIONS, lookback_ms=lookback_ms, lookahead_ms=lookahead_ms,
                                limit=20)
    previous = await graph.query(queries.CONTEXT_PREVIOUS, id=event_id, window_ms=window_ms)
    causes = await graph.query(queries.CONTEXT_CAUSES, id=event_id)
    consequences = await graph.query(queries.CONTEXT_CONSEQUENCES, id=event_id, limit=limit)
    return Context(
        event=_summary(rows[0]),
        affected=affected,
        owners=[_ref(r, "depth") for r in owners],
        dependencies=[_ref(r, "hops") for r in dependencies],
        correlated=[RelatedEvent(event=_summary(r), on_label=r.get("label"), on_name=r.get("name"))
                    for r in temporal],
        changes=[RelatedEvent(event=_summary(r), on_label=r.get("label"), on_name=r.get("name")) for r in changes],
        previous=RelatedEvent(event=_summary(previous[0]), on_label=previous[0].get("label"),
                              on_name=previous[0].get("name")) if previous else None,
        causes=[r["chain"] for r in causes],
        consequences=[_summary(r) for r in consequences],
    )
