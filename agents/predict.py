"""Stage 4, predict: turn pattern matches into predictions with a confidence.

Fed by: topic `matched` (MatchedBatch). Feeds: topic `insights` (InsightBatch).

With no pattern matches yet (see agents/match.py) there is nothing to predict: events and
matches pass through and the predictions list stays empty.
"""

from __future__ import annotations

from app.records import InsightBatchView, MatchedBatchView


def predict_batch(batch: MatchedBatchView) -> tuple[InsightBatchView, list]:
    """Forward the events unread (see app.records, "views"): the record sent is an InsightBatch."""
    return InsightBatchView(events=batch.events, matches=batch.matches, predictions=[]), []
