"""Feedback in the graph and from the terminal, on the session's real FalkorDB: `tapio feedback`
stores a vote as (:Feedback)-[:VALIDATES]->(:Prediction), refuses an unknown id without writing,
and `tapio patterns list` shows what the votes made of each pattern."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest
from click.testing import CliRunner

from agents.confidence import LearningRule, Votes, adjusted, factor
from agents.pattern_files import load_pattern
from app.cli import cli
from core.records import PatternMatch, Prediction
from core.settings import Settings, to_yaml
from topology.feedback import UnknownPrediction, count_feedback, feedback_on, record_feedback, vote_counts
from topology.graph import open_graph
from topology.predictions import get_prediction, match_story

ROOT = Path(__file__).resolve().parents[2]
DRIFT = load_pattern(ROOT / "patterns" / "config-drift.yaml")
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _prediction(pid: str, version: str = DRIFT.metadata.version) -> tuple[PatternMatch, Prediction]:
    m = PatternMatch(id=f"m-{pid}", pattern="config-drift", version=version, scope="configmap:ConfigMap/shop/cfg",
                     matched_at=T0, window_start=T0 - timedelta(minutes=1), event_ids=[], count=3)
    p = Prediction(id=pid, match_id=m.id, pattern="config-drift", version=version, type="crashloop",
                   confidence=0.8, time_horizon_s=120.0, message="web will crash-loop", scope=m.scope, at=T0,
                   due=T0 + timedelta(minutes=2), score=0.96)
    return m, p


@pytest.fixture
def graph_settings(settings: Settings, tmp_path: Path) -> Settings:
    graph = msgspec.structs.replace(settings.graph, name=f"feedback_{uuid.uuid4().hex[:10]}")
    mine = msgspec.structs.replace(settings, graph=graph)

    async def seed() -> None:
        store = open_graph(graph)
        try:
            await store.setup_schema()
            for pid, version in (("p1", DRIFT.metadata.version), ("p2", DRIFT.metadata.version), ("old", "0.0.1")):
                await store.write_insights(*map(lambda x: [x], _prediction(pid, version)))
        finally:
            await store.close()
    asyncio.run(seed())
    (tmp_path / "config.yaml").write_text(to_yaml(mine))
    yield mine

    async def clear() -> None:
        store = open_graph(graph)
        try:
            await store.clear()
        finally:
            await store.close()
    asyncio.run(clear())


def _run(settings_file: Path, *args: str):
    return CliRunner().invoke(cli, ["--config", str(settings_file), *args], obj={}, catch_exceptions=False)


def _on(settings: Settings, work):
    async def main():
        store = open_graph(settings.graph)
        try:
            return await work(store)
        finally:
            await store.close()
    return asyncio.run(main())


def test_feedback_from_the_terminal_moves_the_pattern_statistics(graph_settings: Settings, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    done = _run(config, "feedback", "p1", "--inaccurate", "--rating", "-1", "--comment", "the ConfigMap was fine")
    assert done.exit_code == 0, done.output
    assert "inaccurate vote on p1 (config-drift" in done.output
    [vote] = _on(graph_settings, lambda g: feedback_on(g, "p1"))
    assert (vote.prediction_id, vote.pattern, vote.accurate, vote.rating, vote.comment, vote.source) == (
        "p1", "config-drift", False, -1, "the ConfigMap was fine", "cli")
    assert _run(config, "feedback", "p2", "--accurate").exit_code == 0
    assert _run(config, "feedback", "old", "--inaccurate").exit_code == 0  # another version: counted apart

    listed = _run(config, "patterns", "list", "-o", "json")
    assert listed.exit_code == 0, listed.output
    reports = {r["name"]: r for r in json.loads(listed.output)["patterns"]}
    drift = reports["config-drift"]
    f = factor(Votes(accurate=1, total=2), LearningRule())
    assert (drift["predictions"], drift["feedback"], drift["accurate"], drift["accuracy"], drift["enabled"]) == (
        2, 2, 1, 0.5, True)
    assert drift["confidence"] == [adjusted(b, f) for b in drift["base_confidence"]]
    assert reports["oom-kill-loop"]["feedback"] == 0 and reports["oom-kill-loop"]["factor"] == 1.0
    table = _run(config, "patterns", "list")
    assert table.exit_code == 0
    line = next(x for x in table.output.splitlines() if x.startswith("config-drift"))
    assert "enabled" in line and "->" in line and "50%" in line


def test_an_unknown_prediction_is_refused_and_nothing_is_written(graph_settings: Settings, tmp_path: Path) -> None:
    before = _on(graph_settings, count_feedback)
    refused = _run(tmp_path / "config.yaml", "feedback", "no-such-id", "--accurate")
    assert refused.exit_code == 1 and "no prediction with id 'no-such-id'" in refused.output
    assert _run(tmp_path / "config.yaml", "feedback", "p1").exit_code == 2  # --accurate or --inaccurate is required
    assert _on(graph_settings, count_feedback) == before

    async def direct(g):
        with pytest.raises(UnknownPrediction):
            await record_feedback(g, prediction_id="no-such-id", accurate=False, source="test")
        return await count_feedback(g)
    assert _on(graph_settings, direct) == before


def test_votes_are_counted_per_pattern_version(graph_settings: Settings) -> None:
    async def work(g):
        for pid, accurate in (("p1", False), ("p1", False), ("p2", True), ("old", True)):
            await record_feedback(g, prediction_id=pid, accurate=accurate, source="test")
        return await vote_counts(g), await get_prediction(g, "p1"), await get_prediction(g, "nope"), \
            await match_story(g, "m-p1")
    counts, found, missing, story = _on(graph_settings, work)
    assert sorted((c.pattern, c.version, c.accurate, c.total) for c in counts) == sorted([
        ("config-drift", DRIFT.metadata.version, 1, 3), ("config-drift", "0.0.1", 1, 1)])
    assert found is not None and found.id == "p1" and found.pattern == "config-drift" and missing is None
    assert story.evidence == [] and story.chain == []
