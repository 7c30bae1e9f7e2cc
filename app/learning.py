"""The learning loop's I/O shell: votes from the graph, the rule of `agents.confidence`, per pattern.

Fed by: the graph (`topology.feedback`), the live catalog's pattern versions, `FeedbackSettings`.
Feeds: the predict stage (`Learning.adjustments`, read by `agents.predict.predict_batch`), the
worker's log (a pattern disabled or enabled again), `GET /api/v1/patterns`, `/readyz` and
`tapio patterns list` (`pattern_statistics`).

Across workers: votes live in the graph only. Every worker running the predict stage re-reads
them every `feedback.refresh_interval_s` (one aggregate over the Feedback nodes), so predictions
made after a vote carry the adjusted confidence whichever worker makes them, at most one refresh
interval (plus the vote's own write) later. The predict stage waits for the first refresh
before its first batch, so a starting worker never predicts with stale (empty) statistics.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from agents.confidence import Adjustment, LearningRule, PatternReport, Votes, pattern_reports
from agents.confidence import adjustments as compute_adjustments
from agents.patterns import BehaviorPattern
from core.settings import FeedbackSettings
from topology.feedback import prediction_counts, vote_counts
from topology.graph import GraphStore

log = logging.getLogger(__name__)


def rule_of(settings: FeedbackSettings) -> LearningRule:
    return LearningRule(prior_count=settings.prior_count, min_feedback=settings.min_feedback,
                        disable_below=settings.disable_below)


async def read_votes(graph: GraphStore) -> dict[tuple[str, str], Votes]:
    return {(c.pattern, c.version): Votes(accurate=c.accurate, total=c.total) for c in await vote_counts(graph)}


class Learning:
    """The adjustments one worker applies, refreshed from the graph."""

    def __init__(self, rule: LearningRule) -> None:
        self.rule = rule
        self.votes: dict[tuple[str, str], Votes] = {}
        self.adjustments: dict[str, Adjustment] = {}
        self.loaded = asyncio.Event()
        self.refreshed = 0  # how many refreshes succeeded

    def apply(self, votes: dict[tuple[str, str], Votes], versions: Mapping[str, str]) -> list[str]:
        """Take new votes; returns one log line per pattern disabled or enabled again."""
        before = self.adjustments
        after = compute_adjustments(votes, versions, self.rule)
        lines = []
        for name, adj in sorted(after.items()):
            was = before.get(name)
            if adj.disabled and (was is None or not was.disabled):
                lines.append(f"pattern {name} {versions[name]} disabled: {adj.disabled}; it makes no predictions "
                             f"until accurate votes lift it or its metadata.version changes "
                             f"(see tapio patterns list)")
            elif not adj.disabled and was is not None and was.disabled:
                lines.append(f"pattern {name} {versions[name]} enabled again "
                             f"({adj.votes.accurate}/{adj.votes.total} votes accurate)")
        self.votes, self.adjustments = votes, after
        self.refreshed += 1
        self.loaded.set()
        return lines

    async def refresh(self, graph: GraphStore, versions: Mapping[str, str]) -> None:
        for line in self.apply(await read_votes(graph), versions):
            log.warning("feedback: %s", line)

    def disabled(self) -> dict[str, str]:
        return {name: adj.disabled for name, adj in self.adjustments.items() if adj.disabled}


async def pattern_statistics(graph: GraphStore, patterns: Mapping[str, BehaviorPattern], rule: LearningRule, *,
                             votes: dict[tuple[str, str], Votes] | None = None) -> list[PatternReport]:
    """Every pattern with its votes, accuracy, adjusted confidence and prediction count.
    `votes` as a worker last read them (what its predict stage applies), else read now."""
    if votes is None:
        votes = await read_votes(graph)
    return pattern_reports(patterns, votes, await prediction_counts(graph), rule)
