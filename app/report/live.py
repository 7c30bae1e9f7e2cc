"""The incident page of one resource of the live graph: what `tapio explain KIND/NAME --html` writes.

Fed by: an `Explanation` (`app.explain`: the resource's most telling event and every prediction that fits
it, ranked) and the graph it came from. Feeds: `app.report.page`, as an `Analysis` whose root causes are
those predictions, each told from its match's events and CAUSED edges (`topology.predictions.match_story`)
with the topology around its resources (`topology.insight_queries.TOPOLOGY_AROUND`), so the page shows
what `tapio analyze --html` shows for a recording.
"""

from __future__ import annotations

import msgspec

from app.analyze import Analysis
from app.explain import Explanation
from app.hypotheses import RootCause, from_prediction, told
from topology import insight_queries
from topology.graph import GraphStore
from topology.predictions import StoredPrediction, match_story
from topology.surroundings import TopologyLink, resource_name

__all__ = ["explanation_analysis", "prediction_analysis"]


async def _cause(graph: GraphStore, p: StoredPrediction) -> tuple[RootCause, set[TopologyLink]]:
    stored = await match_story(graph, p.match_id)
    cause = from_prediction(p, told(stored), ongoing=p.resolved_at is None)
    rows = await graph.query(insight_queries.TOPOLOGY_AROUND, ids=[e.id for e in stored.evidence], prediction=p.id)
    links = {TopologyLink(type=r["type"],
                          source=resource_name(r["source_kind"], r["source_namespace"] or "", r["source_name"]),
                          target=resource_name(r["target_kind"], r["target_namespace"] or "", r["target_name"]))
             for r in rows if r["source_kind"] and r["source_name"] and r["target_kind"] and r["target_name"]}
    return cause, links


async def prediction_analysis(graph: GraphStore, predictions: list[StoredPrediction], *, verdict: str,
                              events: int, where: str) -> Analysis:
    """Predictions of the graph as the root causes of one page, in the order given."""
    causes: list[RootCause] = []
    topology: set[TopologyLink] = set()
    for rank, p in enumerate(predictions, 1):
        cause, links = await _cause(graph, p)
        causes.append(msgspec.structs.replace(cause, rank=rank))
        topology |= links
    return Analysis(inputs=[where], events=events, errors=[], hypotheses=causes, verdict=verdict,
                    topology=sorted(topology, key=lambda link: (link.type, link.source, link.target)))


async def explanation_analysis(graph: GraphStore, found: Explanation, *, where: str) -> Analysis:
    resource = resource_name(found.kind, found.namespace, found.name)
    predictions = [h.prediction for h in found.hypotheses]
    if found.recovery:
        verdict = f"{resource} recovered: {found.recovery}"
    elif predictions:
        top = predictions[0]
        verdict = f"{resource}: most likely {top.pattern} ({top.confidence:.0%}): {top.message}"
    else:
        event = found.context.event
        verdict = f"{resource}: {event.narrative or event.reason or 'no prediction fits it'}"
    return await prediction_analysis(graph, predictions, verdict=verdict, events=found.events, where=where)
