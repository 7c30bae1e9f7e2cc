"""The windows' matches predicted in the windows agent itself, where this worker runs predict.

Fed by: the windows agent (agents/match.py `register_windows`), each batch of matches it found or
sends again. Feeds: topic `insights` (InsightBatch: the matches and their predictions, for the graph
sink), as the predict stage does from topic `matched`.

As the front chain does for enrich -> normalize -> select (agents/front.py): between the windows and
predict a topic cost a Kafka hop (the producer's linger, the broker, the consumer's fetch: ~40 ms of
the publish -> prediction latency at 5,000 events/s, benchmarks/README.md) and bought nothing: the
key does not change (a match stays on its hits partition) and predict keeps no state. Predict stays
its own pure function (`agents.predict.predict_batch`) and its dead letters keep its name. Where
`worker.stages` puts predict in another worker, the windows send their matches to `matched` as before
(`to_topic`).

A prediction stage that raises on a batch (a bug) dead-letters the batch of matches under `predict`
with the hits partition it came from; the matches themselves are still in the windows' record of what
they sent (`SentMatches`), so a restart sends them again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import faust

from agents.stage import apply_transform
from core.codec import msgpack_encoder
from core.ports import StageRuntime
from core.records import InsightBatch, MatchedBatch, PatternMatch, batch_size

STAGE = "predict"

#: how the windows agent hands on a batch of matches found on a hits partition
SendMatches = Callable[[list[PatternMatch], int], Awaitable[None]]
Predict = Callable[[MatchedBatch], tuple[InsightBatch, list]]


def to_topic(matched: faust.TopicT) -> SendMatches:
    """Matches to topic `matched`, for a predict stage in another worker."""
    async def send(found: list[PatternMatch], partition: int) -> None:
        await matched.send(value=MatchedBatch(matches=found), partition=partition)
    return send


def predicting(insights: faust.TopicT, predict: Predict, runtime: StageRuntime,
               before: Callable[[], Awaitable[Any]] | None = None) -> SendMatches:
    """Matches predicted here and sent to `insights`; `before` is awaited once, before the first
    prediction (the first read of the feedback statistics, as the predict stage waits for it)."""
    waited = before is None

    async def send(found: list[PatternMatch], partition: int) -> None:
        nonlocal waited
        if not waited:
            await before()  # type: ignore[misc]
            waited = True
        batch = MatchedBatch(matches=found)
        done = await apply_transform(runtime, STAGE, f"windows partition {partition}",  # encoded only to dead-letter
                                     lambda: msgpack_encoder.encode(batch), predict, batch)
        if done is None:  # dead-lettered: a bug, the matches kept in the dead-letter stream
            return
        data, out = done
        await insights.send(value=data, partition=partition)
        runtime.stats.add(STAGE, batch_size(out) if out is not None else 0)
    return send
