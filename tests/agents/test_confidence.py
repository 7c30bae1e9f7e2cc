"""The learning rule (agents.confidence) and how the predict stage applies it: pure, no servers."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agents.confidence import (
    NO_FEEDBACK,
    LearningRule,
    Votes,
    adjusted,
    adjustment,
    adjustments,
    factor,
    pattern_reports,
    smoothed_accuracy,
)
from agents.pattern_files import load_pattern
from agents.predict import predict_batch, predictions_for
from core.records import MatchedBatch, PatternMatch

RULE = LearningRule()  # prior 5, min_feedback 10, disable_below 0.3
T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)

PATTERN = """\
    apiVersion: behavior.tapio.io/v1
    kind: BehaviorPattern
    metadata: {name: learner, version: 1.0.0}
    spec:
      scope: node
      conditions:
        - type: count
          where: [{field: semantic.intent, operator: equals, value: oom-kill}]
          at_least: 1
          window: 5m
      predictions:
        - {type: cascading_failure, confidence_base: 0.7, time_horizon: 10m, message: "on {scope}"}
        - {type: eviction, confidence_base: 0.9, time_horizon: 10m, message: "on {scope}"}
"""


@pytest.fixture
def pattern(tmp_path: Path):
    path = tmp_path / "learner.yaml"
    path.write_text(textwrap.dedent(PATTERN))
    return load_pattern(path)


def match(boost: float = 0.0) -> PatternMatch:
    return PatternMatch(id="m1", pattern="learner", version="1.0.0", scope="node:n1", matched_at=T0,
                        window_start=T0, event_ids=[], boost=boost)


def test_no_feedback_leaves_the_factor_at_exactly_one() -> None:
    assert factor(Votes(), RULE) == 1.0
    assert adjustment(Votes(), RULE) == NO_FEEDBACK
    assert adjusted(0.7, 1.0) == 0.7


def test_one_vote_cannot_swing_it() -> None:
    # accuracy (0 + 5) / (1 + 5) = 0.8333; factor 0.5 + 0.5 x 0.8333 = 0.9167
    assert factor(Votes(accurate=0, total=1), RULE) == pytest.approx(0.916667, abs=1e-6)
    assert factor(Votes(accurate=1, total=1), RULE) == 1.0


def test_the_rule_is_base_times_half_plus_half_accuracy() -> None:
    votes = Votes(accurate=3, total=20)
    accuracy = (3 + 5) / (20 + 5)
    assert smoothed_accuracy(votes, RULE) == accuracy
    assert factor(votes, RULE) == 0.5 + 0.5 * accuracy
    assert adjusted(0.8, factor(votes, RULE)) == round(0.8 * (0.5 + 0.5 * accuracy), 4)
    # many inaccurate votes drive it towards half the base, never below
    assert factor(Votes(accurate=0, total=10_000), RULE) == pytest.approx(0.5, abs=1e-3)
    assert factor(Votes(accurate=0, total=10_000), RULE) > 0.5


def test_disabled_only_after_enough_feedback_and_low_raw_accuracy() -> None:
    assert adjustment(Votes(accurate=0, total=9), RULE).disabled is None  # not enough votes yet
    off = adjustment(Votes(accurate=2, total=10), RULE)  # raw 20% < 30%
    assert off.disabled is not None and "feedback.disable_below" in off.disabled
    assert adjustment(Votes(accurate=3, total=10), RULE).disabled is None  # 30% is not below 30%
    # re-enabled when later votes lift the accuracy
    assert adjustment(Votes(accurate=5, total=14), RULE).disabled is None
    strict = LearningRule(prior_count=5, min_feedback=3, disable_below=0.5)
    assert adjustment(Votes(accurate=1, total=3), strict).disabled is not None


def test_votes_count_per_version_so_an_edited_pattern_starts_afresh() -> None:
    votes = {("learner", "1.0.0"): Votes(accurate=0, total=12)}
    assert adjustments(votes, {"learner": "1.0.0"}, RULE)["learner"].disabled is not None
    assert adjustments(votes, {"learner": "1.0.1"}, RULE)["learner"] == NO_FEEDBACK


def test_predictions_carry_the_adjusted_confidence(pattern) -> None:
    plain = predictions_for(match(boost=0.05), pattern)
    assert [p.confidence for p in plain] == [0.75, 0.95]
    votes = Votes(accurate=1, total=4)
    learned = predictions_for(match(boost=0.05), pattern, adjustment(votes, RULE))
    f = factor(votes, RULE)
    assert [p.confidence for p in learned] == [adjusted(0.75, f), adjusted(0.95, f)]
    assert learned[0].score == round(learned[0].confidence * (0.5 + 50 / 100), 4)


def test_predict_batch_skips_disabled_patterns_and_keeps_their_matches(pattern) -> None:
    batch = MatchedBatch(matches=[match()])
    out, rejected = predict_batch(batch, {"learner": pattern})
    assert rejected == [] and len(out.predictions) == 2
    assert predict_batch(batch, {"learner": pattern}, {})[0] == out  # empty adjustments change nothing
    off = {"learner": adjustment(Votes(accurate=0, total=10), RULE)}
    out, _ = predict_batch(batch, {"learner": pattern}, off)
    assert out.predictions == [] and out.matches == [match()]


def test_pattern_reports(pattern) -> None:
    [report] = pattern_reports({"learner": pattern}, {("learner", "1.0.0"): Votes(accurate=1, total=3)},
                               {("learner", "1.0.0"): 7, ("learner", "0.9.0"): 40}, RULE)
    f = factor(Votes(accurate=1, total=3), RULE)
    assert report.enabled and report.predictions == 7 and report.feedback == 3 and report.accurate == 1
    assert report.accuracy == round(1 / 3, 4) and report.base_confidence == [0.7, 0.9]
    assert report.confidence == [adjusted(0.7, f), adjusted(0.9, f)]
