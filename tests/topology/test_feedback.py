"""Feedback votes through the neo4j-driver backend (over FalkorDB's experimental Bolt listener,
the only Bolt server installable here): the same named queries as on the native FalkorDB client
(tests/app/test_feedback_cli.py, tests/app/test_api.py)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.stack import _terminate, start_falkordb
from core.records import PatternMatch, Prediction
from core.settings import GraphSettings
from topology.feedback import UnknownPrediction, count_feedback, feedback_on, record_feedback, vote_counts
from topology.graph import open_graph

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


async def test_votes_over_the_neo4j_driver(tmp_path: Path) -> None:
    server = start_falkordb(tmp_path, bolt_port=0)
    try:
        graph = open_graph(GraphSettings(uri=f"bolt://127.0.0.1:{server.extra_ports['bolt']}", name="boltgraph"))
        try:
            match = PatternMatch(id="m1", pattern="config-drift", version="1.2.0", scope="namespace:shop",
                                 matched_at=T0, window_start=T0, event_ids=[])
            prediction = Prediction(id="p1", match_id="m1", pattern="config-drift", version="1.2.0", type="crashloop",
                                    confidence=0.5, time_horizon_s=60.0, message="crash", scope="namespace:shop",
                                    at=T0, due=T0 + timedelta(minutes=1), score=0.5)
            await asyncio.wait_for(graph.write_insights([match], [prediction]), 60)
            stored = await asyncio.wait_for(record_feedback(graph, prediction_id="p1", accurate=False, rating=-1,
                                                            comment="no crash", source="test"), 60)
            await asyncio.wait_for(record_feedback(graph, prediction_id="p1", accurate=True, source="test"), 60)
            with pytest.raises(UnknownPrediction):
                await asyncio.wait_for(record_feedback(graph, prediction_id="nope", accurate=True, source="test"), 60)
            assert (stored.pattern, stored.version, stored.accurate, stored.rating) == ("config-drift", "1.2.0",
                                                                                       False, -1)
            counts = await asyncio.wait_for(vote_counts(graph), 60)
            assert [(c.pattern, c.version, c.accurate, c.total) for c in counts] == [("config-drift", "1.2.0", 1, 2)]
            votes = await asyncio.wait_for(feedback_on(graph, "p1"), 60)
            assert sorted((v.accurate, v.comment, v.source) for v in votes) == [(False, "no crash", "test"),
                                                                                 (True, "", "test")]
            assert await asyncio.wait_for(count_feedback(graph), 60) == 2
        finally:
            await asyncio.wait_for(graph.close(), 30)
    finally:
        _terminate(server.pid)
