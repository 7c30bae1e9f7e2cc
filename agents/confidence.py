"""Confidence that learns from feedback: the rule, its smoothing and the disable decision (pure).

Fed by: the votes stored in the graph (`topology.feedback`: accurate / total per pattern version),
read by the worker's learning loop (`app.learning`). Feeds: the predict stage (`agents.predict`,
through `Adjustment`), `tapio patterns list` and `GET /api/v1/patterns`.

The rule (architecture): new confidence = base x (0.5 + 0.5 x accuracy rate), where base is the
confidence the pattern gives without feedback (confidence_base + boosts, capped at 0.99).

Smoothing: accuracy = (accurate + m) / (total + m), m = `prior_count` pseudo-votes assumed
accurate (default 5). With no votes the factor is exactly 1.0, so confidences are unchanged; one
inaccurate vote moves it to 0.917, not to 0.5.

Disabling: once a pattern version has at least `min_feedback` votes and its raw accuracy
(accurate / total, not smoothed: the prior would hide a pattern that is always wrong) is below
`disable_below`, the pattern makes no predictions. It is enabled again when further votes lift
its raw accuracy to `disable_below` or more, or when its `metadata.version` changes: votes count
per version, so an edited pattern starts afresh.

Ratings (-1, 0, 1) are stored with each vote but weigh nothing here: `accurate` alone decides.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from agents.patterns import BehaviorPattern


class LearningRule(msgspec.Struct, frozen=True, kw_only=True):
    prior_count: float = 5.0
    min_feedback: int = 10
    disable_below: float = 0.3


class Votes(msgspec.Struct, frozen=True, kw_only=True):
    """The feedback on one pattern version's predictions."""

    accurate: int = 0
    total: int = 0


class Adjustment(msgspec.Struct, frozen=True, kw_only=True):
    """What the predict stage applies to one pattern: confidence x factor, or nothing if disabled."""

    votes: Votes = Votes()
    factor: float = 1.0
    disabled: str | None = None  # why, when the pattern makes no predictions


NO_FEEDBACK = Adjustment()


def raw_accuracy(votes: Votes) -> float | None:
    return votes.accurate / votes.total if votes.total else None


def smoothed_accuracy(votes: Votes, rule: LearningRule) -> float:
    if votes.total + rule.prior_count <= 0:
        return 1.0
    return (votes.accurate + rule.prior_count) / (votes.total + rule.prior_count)


def factor(votes: Votes, rule: LearningRule) -> float:
    """0.5 + 0.5 x smoothed accuracy: 1.0 with no votes, 0.5 at the limit of all votes inaccurate."""
    return 0.5 + 0.5 * smoothed_accuracy(votes, rule)


def adjusted(confidence: float, by: float) -> float:
    """The confidence a prediction carries: its unlearned confidence (already capped) x factor."""
    return round(confidence * by, 4)


def disabled_reason(votes: Votes, rule: LearningRule) -> str | None:
    accuracy = raw_accuracy(votes)
    if votes.total < rule.min_feedback or accuracy is None or accuracy >= rule.disable_below:
        return None
    return (f"accuracy {accuracy:.0%} over {votes.total} feedback votes is below {rule.disable_below:.0%} "
            f"(feedback.disable_below, after feedback.min_feedback={rule.min_feedback})")


def adjustment(votes: Votes, rule: LearningRule) -> Adjustment:
    if votes.total == 0:
        return NO_FEEDBACK
    return Adjustment(votes=votes, factor=factor(votes, rule), disabled=disabled_reason(votes, rule))


def adjustments(votes: Mapping[tuple[str, str], Votes], versions: Mapping[str, str],
                rule: LearningRule) -> dict[str, Adjustment]:
    """Per pattern name, the adjustment of its current version (`versions`: name -> version)."""
    return {name: adjustment(votes.get((name, version), Votes()), rule) for name, version in versions.items()}


class PatternReport(msgspec.Struct, frozen=True, kw_only=True):
    """One pattern's statistics, as `tapio patterns list` and `GET /api/v1/patterns` show them."""

    name: str
    version: str
    enabled: bool
    disabled_reason: str | None = None
    base_confidence: list[float]  # one per spec.predictions entry, without feedback or boosts
    confidence: list[float]  # the same, adjusted by feedback
    factor: float
    predictions: int  # predictions of this version in the graph
    feedback: int  # votes on them
    accurate: int
    accuracy: float | None  # raw: accurate / feedback; None without feedback
    smoothed_accuracy: float


def pattern_report(pattern: BehaviorPattern, votes: Votes, predictions: int, rule: LearningRule) -> PatternReport:
    adj = adjustment(votes, rule)
    bases = [spec.confidence_base for spec in pattern.spec.predictions]
    return PatternReport(name=pattern.metadata.name, version=pattern.metadata.version, enabled=adj.disabled is None,
                         disabled_reason=adj.disabled, base_confidence=bases,
                         confidence=[adjusted(b, adj.factor) for b in bases], factor=round(adj.factor, 4),
                         predictions=predictions, feedback=votes.total, accurate=votes.accurate,
                         accuracy=None if votes.total == 0 else round(votes.accurate / votes.total, 4),
                         smoothed_accuracy=round(smoothed_accuracy(votes, rule), 4))


def pattern_reports(patterns: Mapping[str, BehaviorPattern], votes: Mapping[tuple[str, str], Votes],
                    predictions: Mapping[tuple[str, str], int], rule: LearningRule) -> list[PatternReport]:
    """Every pattern of the catalog, by name, with the votes and predictions of its current version."""
    out = []
    for name in sorted(patterns):
        key = (name, patterns[name].metadata.version)
        out.append(pattern_report(patterns[name], votes.get(key, Votes()), predictions.get(key, 0), rule))
    return out
