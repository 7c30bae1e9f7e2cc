"""agents/predict_chain.py: the windows' matches predicted where they are found, or sent to `matched`."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import msgspec

from agents.predict_chain import predicting
from core.records import InsightBatch, MatchedBatch, PatternMatch
from core.settings import Settings
from core.stats import StageStats


class Topic:
    """What the agent's shell calls on a Faust topic: `send`, recorded."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, int]] = []

    async def send(self, *, value: bytes, partition: int) -> None:
        self.sent.append((value, partition))


class Runtime:
    def __init__(self) -> None:
        self.settings = Settings()
        self.stats = StageStats()
        self.graph = None
        self.progress = None
        self.dead: list[dict[str, Any]] = []

    async def ready(self) -> None:
        pass

    async def dead_letter(self, **kwargs: Any) -> None:
        self.dead.append(kwargs)


AT = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
MATCH = PatternMatch(id="m1", pattern="crash-loop", version="1", scope="object:Pod/shop/web-1", matched_at=AT,
                     window_start=AT, event_ids=["e1"], count=3)


def test_matches_are_predicted_and_sent_to_insights_on_their_partition_after_the_first_votes() -> None:
    insights, runtime, votes = Topic(), Runtime(), []

    def predict(batch: MatchedBatch) -> tuple[InsightBatch, list]:
        return InsightBatch(matches=batch.matches, predictions=[]), []

    async def first_votes() -> None:
        votes.append(1)

    send = predicting(insights, predict, runtime, before=first_votes)  # type: ignore[arg-type]
    asyncio.run(send([MATCH], 3))
    asyncio.run(send([MATCH], 1))
    assert votes == [1]  # waited for once
    assert [p for _, p in insights.sent] == [3, 1]
    assert msgspec.msgpack.decode(insights.sent[0][0], type=InsightBatch).matches == [MATCH]
    assert runtime.stats.stages["predict"].batches == 2 and runtime.dead == []


def test_a_prediction_that_raises_dead_letters_the_matches_under_predict_and_sends_nothing() -> None:
    insights, runtime = Topic(), Runtime()

    def predict(batch: MatchedBatch) -> tuple[InsightBatch, list]:
        raise KeyError("template field")

    asyncio.run(predicting(insights, predict, runtime)([MATCH], 2))  # type: ignore[arg-type]
    assert insights.sent == []
    [dead] = runtime.dead
    assert (dead["stage"], dead["where"]) == ("predict", "windows partition 2") and "KeyError" in dead["reason"]
    assert msgspec.msgpack.decode(dead["payload"], type=MatchedBatch).matches == [MATCH]
