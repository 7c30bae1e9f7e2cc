"""PatternMatches and Predictions -> graph write rows. Pure: no I/O, deterministic (sorted) output.

Fed by: the graph backends' `write_insights` (the matches and predictions of one sink batch).
Feeds: `topology.insight_queries.write_insights`, as `$groups` (a list of InsightGroupRow); the
matches' evidence events go through the backends' `write_events` path first, unchanged.

One row per match group: a match and the predictions made from it (`Prediction.match_id`),
or predictions alone when their match is not in the batch. Like `topology.rows`, rows are
`array_like` Structs (positional lists on the wire) whose field order the queries index into,
property values are scalars or lists of scalars, and "" becomes None (not stored).

Datetimes are stored as the events' timestamps are: epoch milliseconds (ints).
A Prediction's `namespace` comes from its scope key (`core.kube.scopes.scope_namespace`:
`namespace:shop`, `owner:Deployment/shop/web`, `service:shop/web`, ...), else from its first
impacted object that has one; `node:...` and `cluster` scopes carry none.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import msgspec

from core.events import ObjectRef, UnifiedEvent, epoch_ms
from core.kube.scopes import scope_namespace
from core.ports import InvalidInsight
from core.records import MatchGroup, PatternMatch, Prediction, by_match
from topology.model import label_for
from topology.rows import kind_of, resource_key


class ImpactRow(msgspec.Struct, array_like=True, frozen=True, kw_only=True):
    """`(Prediction)-[:IMPACTS]->(resource)`: the resource's label, key and placeholder props."""

    label: str
    uid: str
    kind: str
    name: str | None = None
    namespace: str | None = None


class PredictionRow(msgspec.Struct, array_like=True, frozen=True, kw_only=True):
    """One Prediction node; every field but `impacts` is a property of the same name."""

    id: str
    match_id: str
    pattern: str
    version: str | None
    type: str | None
    confidence: float
    time_horizon_s: float
    message: str | None
    scope: str | None
    namespace: str | None
    at: int  # epoch ms
    due: int  # epoch ms
    score: float
    impact: list[str] | None
    remediation: str | None
    resolved_at: int | None  # epoch ms; None while it holds
    since: int | None  # epoch ms: the episode's first prediction, when this version updates it
    revision: int  # updates in place before this version (core.records.Prediction.revision)
    provisional: bool | None  # True while its match is provisional; None (not stored) once final
    impacts: list[ImpactRow]


class EventEdgeRow(msgspec.Struct, array_like=True, frozen=True, kw_only=True):
    """`effect` None: `(src)-[:MATCHES]->(Pattern)`; else `(src)-[:CAUSED|PRECEDED {delay_s}]->(effect)`."""

    src: str
    effect: str | None = None
    delay_s: float | None = None


class InsightGroupRow(msgspec.Struct, array_like=True, frozen=True, kw_only=True):
    """One match group: its Pattern node, its predictions, its event edges.

    The Pattern's version and priority follow the newest group (`seen_at`), so a replayed older
    match never moves them back. Match fields are None for predictions whose match is elsewhere.
    """

    pattern: str
    version: str | None
    priority: int | None
    seen_at: int  # epoch ms: the match's event time
    predictions: list[PredictionRow]
    edges: list[EventEdgeRow]
    match_id: str | None = None
    scope: str | None = None
    matched_at: int | None = None
    window_start: int | None = None
    count: int | None = None
    boost: float | None = None
    provisional: bool | None = None  # the MATCHES edges' flag while the match is provisional


class WithdrawnRow(msgspec.Struct, array_like=True, frozen=True, kw_only=True):
    """A provisional match the final evaluation withdrew: its MATCHES edges and predictions go."""

    match_id: str
    pattern: str


class InsightWrite(msgspec.Struct, frozen=True, kw_only=True):
    """Everything one `write_insights` call writes: evidence events first, then the groups."""

    evidence: list[UnifiedEvent]
    groups: list[InsightGroupRow]
    withdrawn: list[WithdrawnRow] = []  # dropped after the groups are written

    @property
    def count(self) -> int:
        """Matches plus predictions written, and matches withdrawn."""
        return sum((g.match_id is not None) + len(g.predictions) for g in self.groups) + len(self.withdrawn)


def prediction_namespace(prediction: Prediction) -> str | None:
    """From the scope, else the first impacted object with a namespace."""
    return scope_namespace(prediction.scope) or next(
        (ref.namespace for ref in prediction.impacted if ref.namespace), None)


def _finite(value: float, what: str) -> float:
    if not math.isfinite(value):
        raise InvalidInsight(f"{what} is {value}: a finite number is required")
    return value


_INT64 = range(-2**63, 2**63)


def _int64(value: int, what: str) -> int:
    # FalkorDB would silently clamp a larger integer, the Neo4j driver refuses it.
    if value not in _INT64:
        raise InvalidInsight(f"{what} is {value}: outside the graph's 64-bit integers")
    return value


def _impact_row(ref: ObjectRef, where: str) -> ImpactRow:
    if not ref.kind or not (ref.uid or ref.name):
        raise InvalidInsight(f"{where}: impacted object {ref!r} has neither a uid nor a kind and name")
    return ImpactRow(label=label_for(ref.kind), uid=resource_key(ref), kind=kind_of(ref),
                     name=ref.name or None, namespace=ref.namespace or None)


def prediction_row(p: Prediction) -> PredictionRow:
    where = f"prediction {p.id!r} of match {p.match_id!r}"
    if not p.id or not p.match_id or not p.pattern:
        raise InvalidInsight(f"{where}: id, match_id and pattern must not be empty")
    impacts = sorted({(row.label, row.uid): row for row in (_impact_row(r, where) for r in p.impacted)}.values(),
                     key=lambda row: (row.label, row.uid))
    return PredictionRow(
        id=p.id, match_id=p.match_id, pattern=p.pattern, version=p.version or None, type=p.type or None,
        confidence=_finite(p.confidence, f"{where}: confidence"),
        time_horizon_s=_finite(p.time_horizon_s, f"{where}: time_horizon_s"),
        message=p.message or None, scope=p.scope or None, namespace=prediction_namespace(p),
        at=epoch_ms(p.at), due=epoch_ms(p.due), score=_finite(p.score, f"{where}: score"),
        impact=list(p.impact) or None, remediation=p.remediation or None,
        resolved_at=epoch_ms(p.resolved_at) if p.resolved_at is not None else None,
        since=epoch_ms(p.since) if p.since is not None else None, revision=p.revision,
        provisional=p.provisional or None, impacts=impacts)


def _edges(m: PatternMatch) -> list[EventEdgeRow]:
    where = f"match {m.id!r} ({m.pattern})"
    edges = {(eid, None): EventEdgeRow(src=eid) for eid in m.event_ids if eid}
    for link in m.links:
        if not link.cause or not link.effect:
            raise InvalidInsight(f"{where}: link {link!r} lacks its cause or effect event id")
        edges[(link.cause, link.effect)] = EventEdgeRow(
            src=link.cause, effect=link.effect, delay_s=_finite(link.delay_s, f"{where}: link delay_s"))
    return [edges[k] for k in sorted(edges, key=lambda k: (k[0], k[1] or ""))]


def group_row(group: MatchGroup) -> InsightGroupRow:
    """One group's row; raises InvalidInsight naming what the graph could not hold."""
    m = group.match
    predictions = [prediction_row(p) for p in group.predictions]
    if m is None:
        first = group.predictions[0]
        for p in group.predictions:
            if p.pattern != first.pattern:
                raise InvalidInsight(f"predictions of match {group.match_id!r} name two patterns: "
                                     f"{first.pattern!r} and {p.pattern!r}")
        return InsightGroupRow(pattern=first.pattern, version=first.version or None, priority=None,
                               seen_at=max(row.at for row in predictions), predictions=predictions, edges=[])
    if not m.id or not m.pattern:
        raise InvalidInsight(f"match {m.id!r}: id and pattern must not be empty")
    for p in group.predictions:
        if p.pattern != m.pattern:
            raise InvalidInsight(f"prediction {p.id!r} names pattern {p.pattern!r}, its match {m.id!r} "
                                 f"pattern {m.pattern!r}")
    matched_at = epoch_ms(m.matched_at)
    return InsightGroupRow(
        pattern=m.pattern, version=m.version or None, priority=_int64(m.priority, f"match {m.id!r}: priority"),
        seen_at=matched_at, predictions=predictions, edges=_edges(m), match_id=m.id, scope=m.scope or None,
        matched_at=matched_at, window_start=epoch_ms(m.window_start), count=_int64(m.count, f"match {m.id!r}: count"),
        boost=_finite(m.boost, f"match {m.id!r}: boost"), provisional=m.provisional or None)


def insight_rows(matches: Sequence[PatternMatch], predictions: Sequence[Prediction]) -> InsightWrite:
    """The evidence to write (deduplicated by id, the last wins), one row per match group, and the
    withdrawn matches (a group whose newest version is a withdrawal: its predictions, provisional,
    go with it, whether in this batch or in the graph).

    Raises InvalidInsight for the first group the graph could not hold; nothing is written then.
    """
    evidence = {e.id: e for m in matches if not m.withdrawn for e in m.evidence}
    groups: list[InsightGroupRow] = []
    withdrawn: list[WithdrawnRow] = []
    for group in by_match(matches, predictions):
        if group.match is not None and group.match.withdrawn:
            withdrawn.append(WithdrawnRow(match_id=group.match.id, pattern=group.match.pattern))
        else:
            groups.append(group_row(group))
    return InsightWrite(evidence=[evidence[i] for i in sorted(evidence)], groups=groups, withdrawn=withdrawn)


def labels_of(groups: Sequence[InsightGroupRow]) -> tuple[str, ...]:
    """The resource labels the groups' IMPACTS edges point at, sorted (picks the write query)."""
    return tuple(sorted({i.label for g in groups for p in g.predictions for i in p.impacts}))


def chunks(groups: Sequence[InsightGroupRow], *, size: int) -> Iterator[list[InsightGroupRow]]:
    """Groups in statements of at most `size` groups (`graph.batch_size`)."""
    if size < 1:
        raise ValueError(f"graph.batch_size must be at least 1, got {size}")
    for start in range(0, len(groups), size):
        yield list(groups[start:start + size])
