"""Feedback votes in the graph: store one, read them back, count them per pattern version.

Fed by: `POST /api/v1/feedback` (`app.api`) and `tapio feedback` (`app.cli`), both with a
validated `FeedbackRequest`-like set of fields; the worker's learning loop (`app.learning`).
Feeds: the graph (`(:Feedback)-[:VALIDATES]->(:Prediction)`, see `topology.feedback_queries`),
and vote counts for `agents.confidence`.

A vote on an unknown prediction raises UnknownPrediction and writes nothing. Each call stores
one vote (its id is a fresh uuid): voting twice on a prediction counts twice.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Literal

import msgspec

from core.events import epoch_ms
from topology import feedback_queries
from topology.graph import GraphStore

Rating = Literal[-1, 0, 1]


class UnknownPrediction(LookupError):
    """No prediction has this id: list them with `tapio predictions` or GET /api/v1/predictions."""


class StoredFeedback(msgspec.Struct, frozen=True, kw_only=True):
    """One vote as stored, with the pattern and version of the prediction it validates."""

    id: str
    prediction_id: str
    pattern: str
    version: str = ""
    accurate: bool
    rating: Rating = 0
    comment: str = ""
    at: datetime
    source: str = ""


class VoteCount(msgspec.Struct, frozen=True, kw_only=True):
    pattern: str
    version: str
    accurate: int
    total: int


def _stored(row: dict) -> StoredFeedback:
    props = {k: v for k, v in row.items() if v is not None}
    props["at"] = datetime.fromtimestamp(row["at"] / 1000, tz=UTC)
    return msgspec.convert(props, StoredFeedback)


async def record_feedback(graph: GraphStore, *, prediction_id: str, accurate: bool, rating: Rating = 0,
                          comment: str = "", source: str, at: datetime | None = None) -> StoredFeedback:
    """Store one vote on `prediction_id`; raises UnknownPrediction (nothing written) when it does not exist."""
    if not await graph.query(feedback_queries.PREDICTION_PATTERN, id=prediction_id):
        raise UnknownPrediction(f"no prediction with id {prediction_id!r}: list them with `tapio predictions` "
                                f"or GET /api/v1/predictions")
    vote_id = f"feedback-{uuid.uuid4().hex}"
    when = at or datetime.now(UTC)
    await graph.execute(feedback_queries.RECORD_FEEDBACK, id=vote_id, prediction_id=prediction_id, accurate=accurate,
                        rating=rating, comment=comment or None, at=epoch_ms(when), source=source)
    rows = await graph.query(feedback_queries.FEEDBACK_BY_ID, id=vote_id)
    if not rows:  # the prediction went away between the two statements (a graph cleared meanwhile)
        raise UnknownPrediction(f"prediction {prediction_id!r} disappeared while the vote was written")
    return _stored(rows[0])


async def feedback_on(graph: GraphStore, prediction_id: str) -> list[StoredFeedback]:
    """Every vote on one prediction, oldest first."""
    return [_stored(row) for row in await graph.query(feedback_queries.FEEDBACK_ON, prediction_id=prediction_id)]


async def vote_counts(graph: GraphStore) -> list[VoteCount]:
    """Accurate and total votes per (pattern, version) of the predictions voted on."""
    return [VoteCount(pattern=r["pattern"], version=r["version"] or "", accurate=int(r["accurate"] or 0),
                      total=int(r["total"])) for r in await graph.query(feedback_queries.VOTES)]


async def prediction_counts(graph: GraphStore) -> dict[tuple[str, str], int]:
    """How many predictions each (pattern, version) made."""
    return {(r["pattern"], r["version"] or ""): int(r["predictions"])
            for r in await graph.query(feedback_queries.PREDICTION_COUNTS)}


async def count_feedback(graph: GraphStore) -> int:
    rows = await graph.query(feedback_queries.COUNT_FEEDBACK)
    return rows[0]["n"] if rows else 0  # a graph nothing was written to yet has no rows
