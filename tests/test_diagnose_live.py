"""The diagnose stage: the live worker diagnoses what the stream shows, and the graph holds it.

Pure: the stage's transform gives the same diagnoses whether a recording arrives at once or event
by event (event time decides, second by second, not arrival). End to end: a labelled case through
an isolated dataflow on real servers; its diagnosis is in the graph as a prediction that
`tapio explain` (hypotheses_for), `tapio predictions` and the API read, with its evidence.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import msgspec

from agents.diagnose import PATTERN_PREFIX, LiveState, diagnose_batch
from app.analyze import read
from app.stack import EmbeddedStack
from core.events import epoch_ms
from core.records import RawBatch

ROOT = Path(__file__).resolve().parents[1]
CASE = ROOT / "patterns" / "scenarios" / "diagnosis" / "containers" / "missing-env-var"


def _run(batches: list[RawBatch]) -> list[tuple[str, str, str, str]]:
    """What the graph ends up holding: the last word of each prediction (they are updated in place)."""
    state, out = LiveState(), {}
    for batch in batches:
        found, rejected = diagnose_batch(state, batch)
        assert rejected == []
        if found is not None:
            out |= {p.id: (p.pattern, p.type, p.scope, p.message) for p in found.predictions}
    return sorted(out.values())


def test_the_same_diagnoses_at_once_or_event_by_event() -> None:
    events = read([str(CASE)]).events
    end = epoch_ms(max(e.timestamp for e in events)) + 3_600_000
    at_once = _run([RawBatch(events=events, watermark=end)])
    one_by_one = _run([RawBatch(events=[e], watermark=epoch_ms(e.timestamp)) for e in events]
                      + [RawBatch(events=[], watermark=end)])
    assert at_once == one_by_one and at_once
    assert [(pattern, cause) for pattern, cause, _, _ in at_once] == [("diagnosis/containers", "missing-env-var")]
    assert "LEDGER_DB_DSN" in at_once[0][3]


def test_nothing_is_diagnosed_before_event_time_has_passed_it() -> None:
    events = read([str(CASE)]).events
    newest = max(e.timestamp for e in events)
    assert _run([RawBatch(events=events, watermark=epoch_ms(newest - timedelta(minutes=5)))]) == []


async def test_a_diagnosis_of_the_live_stream_is_in_the_graph_for_explain(embedded: EmbeddedStack) -> None:
    from app.isolated import run_isolated
    from app.jetstream import EventPublisher, connect, ensure_streams
    from topology.graph import open_graph
    from topology.predictions import hypotheses_for, match_story

    events = read([str(CASE)]).events

    async def feed(target):  # type: ignore[no-untyped-def]
        nc = await connect(target.nats, name="diagnose-live")
        try:
            js = nc.jetstream()
            await ensure_streams(js, target.nats)
            await EventPublisher(js, target.nats).publish_many(events)
        finally:
            await nc.drain()
        return [e.id for e in events], max(e.timestamp for e in events)

    run = await run_isolated(embedded.settings(), "diagnose-live", feed)
    diagnosed = [p for p in run.predictions if p.pattern.startswith(PATTERN_PREFIX)]
    assert [(p.pattern, p.type, p.scope) for p in diagnosed] == [
        ("diagnosis/containers", "missing-env-var", "object:Pod/payments/ledger-api-6c9f7b8d54-qk7tw")]
    graph = open_graph(run.settings.graph)
    try:
        found = await hypotheses_for(graph, "Pod", "payments", "ledger-api-6c9f7b8d54-qk7tw")
        assert any(h.prediction.id == diagnosed[0].id for h in found), [h.prediction.pattern for h in found]
        told = await match_story(graph, diagnosed[0].match_id)
        assert told.evidence and all(e.source.startswith(str(CASE)) for e in told.evidence)
    finally:
        await graph.close()
    assert msgspec.to_builtins(diagnosed[0])["remediation"].startswith("Set LEDGER_DB_DSN")
