"""Stage 4, predict: turn pattern matches into predictions with a confidence, a message and a remedy.

Fed by: topic `matched` (MatchedBatch: the matches the windows closed).
Feeds: topic `insights` (InsightBatch), written to the graph by the sink.

A match yields one Prediction per `spec.predictions` entry whose `when` tests pass on one of the
match's events and whose `unless` tests pass on none. Confidence = confidence_base + the boosts of
the optional conditions that held, capped at 0.99, then multiplied by the pattern's feedback
factor (`agents.confidence`: 1.0 without feedback); a pattern feedback disabled makes no
prediction. `score` ranks hypotheses that fit the same symptoms: confidence weighted by the
pattern's priority (priority 50 keeps the confidence as is). The events do not pass here: the
match stage sends them to `insights` itself.

Pure (`predictions_for`, `predict_batch`); the stage reads the live catalog (`agents.catalog`), so
an edited message or base confidence applies to the next match, and the adjustments the worker's
learning loop last read from the graph (`app.learning`), so every worker applies the same.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta

import msgspec

from agents.confidence import NO_FEEDBACK, Adjustment, adjusted
from agents.hits import compile_test
from agents.patterns import BehaviorPattern, Predicate
from core.events import ObjectRef, content_id
from core.kube.scopes import ScopeKey, scope_label
from core.records import InsightBatch, MatchedBatch, PatternMatch, Prediction

MAX_CONFIDENCE = 0.99


def _impacted(match: PatternMatch) -> list[ObjectRef]:
    seen: dict[tuple[str, str, str], ObjectRef] = {}
    for event in match.evidence:
        k8s = event.k8s
        if k8s is not None:
            seen.setdefault((k8s.kind, k8s.namespace, k8s.name),
                            ObjectRef(kind=k8s.kind, name=k8s.name, namespace=k8s.namespace, uid=k8s.uid))
    return list(seen.values())


def _newest(match: PatternMatch) -> tuple[str, str]:
    """The object a message names: an object scope's own (an Endpoints that followed a pod's failure is
    evidence, not the subject), else the newest event's object."""
    key = ScopeKey.parse(match.scope)
    if key is not None and key.scope == "object":
        return key.namespace, key.name
    events = [e for e in match.evidence if e.k8s is not None]
    if not events:
        return "", ""
    newest = max(events, key=lambda e: e.timestamp)
    return newest.k8s.namespace, newest.k8s.name  # type: ignore[union-attr]


def _any_passes(predicates: list[Predicate], match: PatternMatch) -> bool:
    """Whether one event of the match passes every test."""
    tests: list[Callable] = [compile_test(t.field, t.operator, t.value) for t in predicates]
    return any(all(test(e, e.semantic.intent) for test in tests) for e in match.evidence)


def _lead(match: PatternMatch) -> str:
    """How long the first cause of a sequence came before its effect, in event time ("" without one)."""
    return f"{match.links[0].delay_s:.1f} s" if match.links else ""


def _query(match: PatternMatch) -> str:
    """The DNS name the first linked cause asked for, else the first matched event's that has one ("" without)."""
    causes = {link.cause for link in match.links[:1]}
    ordered = [e for e in match.evidence if e.id in causes] + list(match.evidence)
    return next((e.network.query for e in ordered if e.network is not None and e.network.query), "")


def _peer(match: PatternMatch) -> str:
    """The address and port the first linked cause connected to ("10.0.0.7:8080", "[fd00::1]:443"),
    else the first matched event's that has one ("" without)."""
    causes = {link.cause for link in match.links[:1]}
    ordered = [e for e in match.evidence if e.id in causes] + list(match.evidence)
    for event in ordered:
        net = event.network
        if net is not None and net.dst:
            host = f"[{net.dst}]" if ":" in net.dst else net.dst
            return f"{host}:{net.port}" if net.port else net.dst
    return ""


def predictions_for(match: PatternMatch, pattern: BehaviorPattern,
                    adjustment: Adjustment = NO_FEEDBACK) -> list[Prediction]:
    out: list[Prediction] = []
    namespace, name = _newest(match)
    values = {"scope": scope_label(match.scope), "count": match.count, "pods": match.pods or match.count,
              "namespace": namespace, "name": name, "lead": _lead(match),
              "query": _query(match), "peer": _peer(match)}
    impacted = _impacted(match)
    for i, spec in enumerate(pattern.spec.predictions):
        if spec.when and not _any_passes(spec.when, match):
            continue
        if spec.unless and _any_passes(spec.unless, match):
            continue
        confidence = adjusted(round(min(spec.confidence_base + match.boost, MAX_CONFIDENCE), 4), adjustment.factor)
        out.append(Prediction(
            id=content_id("prediction", match.id, str(i)), match_id=match.id, pattern=match.pattern,
            version=match.version, type=spec.type, confidence=confidence,
            time_horizon_s=spec.time_horizon.seconds, message=spec.message.render(**values),
            scope=match.scope, at=match.matched_at, due=match.matched_at + timedelta(seconds=spec.time_horizon.seconds),
            score=round(confidence * (0.5 + match.priority / 100), 4), impact=list(spec.impact), impacted=impacted,
            remediation=spec.remediation.render(**values), since=match.since, provisional=match.provisional))
    return out


def predict_batch(batch: MatchedBatch, patterns: dict[str, BehaviorPattern],
                  adjustments: Mapping[str, Adjustment] | None = None) -> tuple[InsightBatch, list]:
    """Predictions for the batch's matches; a match whose pattern was deleted since, or whose
    pattern feedback disabled (`adjustments`), keeps no prediction (the match itself is kept). A
    withdrawn match makes none: it passes on for the graph to drop its provisional predictions."""
    predictions: list[Prediction] = []
    adjustments = adjustments or {}
    for match in batch.matches:
        if match.withdrawn:
            continue
        pattern = patterns.get(match.pattern)
        adjustment = adjustments.get(match.pattern, NO_FEEDBACK)
        if pattern is not None and adjustment.disabled is None:
            predictions.extend(predictions_for(match, pattern, adjustment))
    # a provisional match goes on without its evidence events: its predictions were made from them, the
    # graph links it to those it already holds (they travel to it beside the hits), and its final version
    # brings them all; carried twice, they were most of what early firing cost the worker and the graph
    matches = [msgspec.structs.replace(m, evidence=[]) if m.provisional else m for m in batch.matches]
    return InsightBatch(matches=matches, predictions=predictions), []
