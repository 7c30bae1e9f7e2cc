"""Predictions read back from the graph, ranked: what is expected next, and every hypothesis
that fits one resource.

Fed by: the Prediction nodes and IMPACTS / MATCHES edges the graph sink writes
(`GraphStore.write_insights`), through the named queries of `topology.insight_queries`.
Feeds: the CLI, the demo and tests, as `StoredPrediction` / `Hypothesis` Structs.

Ranking: score (confidence weighted by the pattern's priority) first, then the newest `at`, then
id, so equal inputs list in the same order. When several hypotheses fit the same symptoms,
all are kept and ranked; none hides another.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

import msgspec

from core.events import epoch_ms
from topology import insight_queries
from topology.graph import GraphStore
from topology.model import label_for
from topology.narrative import CHANGE_INTENTS

Via = Literal["impacts", "evidence", "scope"]


class ImpactedResource(msgspec.Struct, frozen=True, kw_only=True):
    """A resource a prediction IMPACTS; `key` is its node key (the uid, or `Kind:namespace/name`)."""

    kind: str
    name: str = ""
    namespace: str = ""
    key: str


class StoredPrediction(msgspec.Struct, frozen=True, kw_only=True):
    """A Prediction node with the resources it IMPACTS (sorted by kind, namespace, name).

    `at` (the match's event time) and `due` are stored as epoch ms and read back as UTC datetimes.
    """

    id: str
    match_id: str
    pattern: str
    version: str = ""
    type: str = ""
    confidence: float = 0.0
    time_horizon_s: float = 0.0
    message: str = ""
    scope: str = ""
    namespace: str = ""
    at: datetime
    due: datetime
    score: float = 0.0
    impact: list[str] = []
    remediation: str = ""
    resolved_at: datetime | None = None  # when it stopped holding (a diagnosis whose object recovered)
    since: datetime | None = None  # the episode's first prediction, when this version updates it
    provisional: bool = False  # its match was sent ahead of the watermark and is not final yet
    impacted: list[ImpactedResource] = []


class Hypothesis(msgspec.Struct, frozen=True, kw_only=True):
    """A prediction that fits a resource, and how: it `impacts` the resource, its match rests on
    `evidence` (an event) affecting the resource, and/or it is about a `scope` the resource
    belongs to (its workload, node, a ConfigMap it mounts...)."""

    prediction: StoredPrediction
    via: list[Via]


def _datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _prediction(row: dict) -> StoredPrediction:
    props = {k: v for k, v in row.items() if v is not None and k not in ("impacted", "via")}
    props["at"], props["due"] = _datetime(row["at"]), _datetime(row["due"])
    for key in ("resolved_at", "since"):
        if row.get(key) is not None:
            props[key] = _datetime(row[key])
    props["impacted"] = [{"kind": kind or "", "name": name or "", "namespace": namespace or "", "key": key}
                         for kind, name, namespace, key in sorted(row["impacted"], key=_impacted_order)]
    return msgspec.convert(props, StoredPrediction)


def _impacted_order(ref: list) -> tuple[str, ...]:
    kind, name, namespace, key = ref
    return kind or "", namespace or "", name or "", key


async def list_predictions(graph: GraphStore, namespace: str | None = None, pattern: str | None = None,
                           since: datetime | None = None, until: datetime | None = None,
                           limit: int = 50) -> list[StoredPrediction]:
    """Predictions, best score first (then newest), optionally of one namespace, one pattern,
    and made at `since <= at < until`."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    rows = await graph.query(insight_queries.LIST_PREDICTIONS, namespace=namespace, pattern=pattern,
                             since=epoch_ms(since) if since is not None else None,
                             until=epoch_ms(until) if until is not None else None, limit=limit)
    return [_prediction(row) for row in rows]


async def hypotheses_for(graph: GraphStore, kind: str, namespace: str, name: str, *,
                         limit: int = 50) -> list[Hypothesis]:
    """Every prediction that impacts the resource (`namespace` "" if cluster-scoped), or whose
    match contains an event affecting it, best score first (then newest)."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    rows = await graph.query(insight_queries.hypotheses_for(label_for(kind)), kind=kind, namespace=namespace,
                             name=name, limit=limit)
    return [Hypothesis(prediction=_prediction(row), via=sorted(row["via"], key=("impacts", "evidence").index))
            for row in rows]


async def predictions_in_scopes(graph: GraphStore, scopes: list[str], *, limit: int = 50) -> list[Hypothesis]:
    """Predictions made about any of `scopes` (pattern scope keys), best score first."""
    if not scopes:
        return []
    rows = await graph.query(insight_queries.PREDICTIONS_IN_SCOPES, scopes=scopes, limit=limit)
    return [Hypothesis(prediction=_prediction(row), via=["scope"]) for row in rows]


def merge_hypotheses(*groups: list[Hypothesis], limit: int = 50) -> list[Hypothesis]:
    """One Hypothesis per prediction (its `via` reasons merged), best score first, then newest."""
    merged: dict[str, Hypothesis] = {}
    order = ("impacts", "evidence", "scope")
    for group in groups:
        for found in group:
            seen = merged.get(found.prediction.id)
            via = sorted(set(found.via) | set(seen.via if seen else ()), key=order.index)
            merged[found.prediction.id] = Hypothesis(prediction=found.prediction, via=via)
    ranked = sorted(merged.values(), key=lambda h: (-h.prediction.score, -h.prediction.at.timestamp(),
                                                    h.prediction.id))
    return ranked[:limit]


async def get_prediction(graph: GraphStore, prediction_id: str) -> StoredPrediction | None:
    """One prediction by id, with the resources it impacts; None when the graph has none by that id."""
    rows = await graph.query(insight_queries.PREDICTION_BY_ID, id=prediction_id)
    return _prediction(rows[0]) if rows else None


class EvidenceEvent(msgspec.Struct, frozen=True, kw_only=True):
    """An event a match rests on (`(Event)-[:MATCHES {match_id}]->(Pattern)`)."""

    id: str
    at: datetime | None
    source: str = ""  # file#position of a recording, or the collector
    text: str  # its narrative on one line (its id when it has none)
    severity: str = ""
    kind: str = ""
    namespace: str = ""
    name: str = ""
    intent: str = ""  # the vocabulary's intent (config-change, rollout, crash...)


class MatchStory(msgspec.Struct, frozen=True, kw_only=True):
    """The events one match rests on, oldest first, the CAUSED edges among them, and the causal
    chain in words (root cause first, then up to three effects; else the first and last events)."""

    evidence: list[EvidenceEvent]
    caused: list[list[str]]  # [cause id, effect id]
    chain: list[str]


async def match_story(graph: GraphStore, match_id: str) -> MatchStory:
    rows = await graph.query(insight_queries.MATCH_EVENTS, match_id=match_id)
    evidence = [EvidenceEvent(id=r["id"], at=_datetime(r["timestamp"]) if r["timestamp"] is not None else None,
                              source=r["source"] or "", text=" ".join((r["narrative"] or r["id"]).split()),
                              severity=r["severity"] or "", kind=r["kind"] or "", namespace=r["namespace"] or "",
                              name=r["name"] or "", intent=r.get("intent") or "")
                for r in rows]
    ids = [r["id"] for r in rows]
    links = await graph.query(insight_queries.CAUSED_AMONG, ids=ids) if ids else []
    return story(evidence, [(link["cause"], link["effect"]) for link in links])


def story(evidence: list[EvidenceEvent], caused: list[tuple[str, str]]) -> MatchStory:
    """The story of a match from its events (oldest first) and the CAUSED edges among them. Pure:
    the graph's `match_story` and the in-process analysis (`app.hypotheses`) tell it alike."""
    text = {e.id: e.text for e in evidence}
    ids = [e.id for e in evidence]
    links = sorted((c, e) for c, e in caused if c in text and e in text)
    if links:
        chain = [text[i] for i in _chain(links, {event_id: i for i, event_id in enumerate(ids)})]
    else:
        chain = [text[i] for i in ids[:1] + ids[-1:]] if len(ids) > 1 else [text[i] for i in ids]
    return MatchStory(evidence=evidence, caused=[[c, e] for c, e in links], chain=chain)


#: events a story's chain names: its root and what followed from it
CHAIN_LENGTH = 4


def _chain(links: list[tuple[str, str]], order: dict[str, int]) -> list[str]:
    """The chain from the root cause: the oldest event that causes and is caused by none (the oldest
    cause where every cause is also caused), then what it caused, nearest links first and each
    level in time order (A -> B -> C reads A, B, C, whichever id sorts first)."""
    effects = {effect for _, effect in links}
    causes = [cause for cause, _ in links]
    root = min((c for c in causes if c not in effects), default=None, key=order.__getitem__) \
        or min(causes, key=order.__getitem__)
    caused_by: dict[str, list[str]] = {}
    for cause, effect in links:
        caused_by.setdefault(cause, []).append(effect)
    chain, level = [root], [root]
    while level and len(chain) < CHAIN_LENGTH:
        level = sorted({e for c in level for e in caused_by.get(c, ()) if e not in chain}, key=order.__getitem__)
        chain += level[:CHAIN_LENGTH - len(chain)]
    return chain


def reaches_back_to_a_change(told: MatchStory) -> bool:
    """Does the match link a change (an edit, a rollout) to the failures after it? Then it explains
    further back than the failing objects' own state (`app.hypotheses.starts_with_a_change`, from the graph)."""
    changes = {e.id for e in told.evidence if e.intent in CHANGE_INTENTS}
    return any(cause in changes for cause, _ in told.caused)
