"""The diagnose stage: the live worker diagnoses what the stream shows, and the graph holds it.

Pure: the stage's transform gives the same diagnoses whether a recording arrives at once or event
by event (event time decides, second by second, not arrival). End to end: a labelled case through
an isolated dataflow on real servers; its diagnosis is in the graph as a prediction that
`tapio explain` (hypotheses_for), `tapio predictions` and the API read, with its evidence.
"""

from __future__ import annotations

from collections import deque
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
from diagnose_inputs import incident_and_pod_deletion

from agents.diagnose import PATTERN_PREFIX, LiveState, diagnose_batch, keep
from agents.diagnosis import INCIDENT_CONFIDENCE, diagnose_events
from app.analyze import read
from app.stack import EmbeddedStack
from collectors.replay import shifted
from core.events import RawEvent, epoch_ms
from core.records import Prediction, RawBatch

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
    from app.jetstream import publish_events
    from topology.graph import open_graph
    from topology.predictions import hypotheses_for, match_story

    events = read([str(CASE)]).events

    async def feed(target):  # type: ignore[no-untyped-def]
        await publish_events(target.nats, events, name="diagnose-live")
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


# --- what stands: retraction, episodes, the namespace join, event time across partitions ------------------

TWIN = CASE.parent / "missing-env-var-healthy"
ORDERED = ROOT / "patterns" / "scenarios" / "diagnosis" / "workloads" / "progress-deadline"


def _final(state: LiveState, batches: list[tuple[RawBatch, int | None]]) -> dict[str, Prediction]:
    """The last word on each prediction id, as the graph keeps it."""
    out: dict[str, Prediction] = {}
    for batch, partition in batches:
        found, rejected = diagnose_batch(state, batch, partition=partition)
        assert rejected == []
        if found is not None:
            out |= {p.id: p for p in found.predictions}
    return out


def _after(events: list[RawEvent], previous: list[RawEvent], gap: timedelta) -> list[RawEvent]:
    """`events` moved to begin `gap` after the newest of `previous`."""
    return shifted(events, max(e.timestamp for e in previous) + gap - min(e.timestamp for e in events))


def _at_once(events: list[RawEvent]) -> tuple[RawBatch, None]:
    return RawBatch(events=events, watermark=epoch_ms(max(e.timestamp for e in events)) + 60_000), None


def test_a_diagnosis_is_resolved_when_its_object_recovers_and_a_recurrence_is_a_new_one() -> None:
    incident = read([str(CASE)]).events
    healthy = _after(read([str(TWIN)]).events, incident, timedelta(minutes=10))
    again = _after(incident, healthy, timedelta(minutes=10))
    state = LiveState()
    first = _final(state, [_at_once(incident)])
    assert [p.type for p in first.values() if p.resolved_at is None] == ["missing-env-var"]
    recovered = _final(state, [_at_once(healthy)])
    (gone,) = recovered.values()
    assert gone.id in first and gone.resolved_at is not None
    assert min(e.timestamp for e in healthy) <= gone.resolved_at <= max(e.timestamp for e in healthy)
    assert state.standing == {}
    recurred = _final(state, [_at_once(again)])
    assert [p.type for p in recurred.values() if p.resolved_at is None] == ["missing-env-var"]
    assert not set(recurred) & set(first)  # a new episode, a new prediction: the first stays resolved


def test_a_deleted_object_takes_its_diagnosis_with_it() -> None:
    incident, deleted, at = incident_and_pod_deletion()
    state = LiveState()
    first = _final(state, [_at_once(incident)])
    after = _final(state, [_at_once([deleted])])
    assert list(after) == list(first) and all(p.resolved_at == at for p in after.values())
    assert state.events == {} or all(k.name != deleted.metadata["name"] for k in state.events)


def test_events_that_name_no_namespace_join_their_object_whichever_arrives_first() -> None:
    """An events table of one namespace names none: diagnosed before its pod arrives, under the pod's
    name alone; once the pod is seen in its namespace that diagnosis is resolved, and what stands is
    what tapio analyze says."""
    events = read([str(ORDERED)]).events
    loose = [e for e in events if e.metadata.get("action") == "EVENT" and not e.metadata.get("involved_namespace")
             and not e.metadata.get("namespace")]
    assert loose, "the case's events table names no namespace"
    rest = [e for e in events if e not in loose]
    expected = {(PATTERN_PREFIX + d.family, d.cause, f"object:{d.subject}") for d in diagnose_events(events)
                if d.ongoing and d.confidence >= INCIDENT_CONFIDENCE}
    end = epoch_ms(max(e.timestamp for e in events)) + 60_000
    for first, second in ((loose, rest), (rest, loose)):
        state = LiveState()
        # both halves reach the stage, then event time passes them: the order of arrival does not matter
        got = _final(state, [(RawBatch(events=first, watermark=0), None), (RawBatch(events=second, watermark=end), None)])
        standing = {(p.pattern, p.type, p.scope) for p in got.values() if p.resolved_at is None}
        assert standing == expected
        assert all("/" in p.scope.removeprefix("object:Pod/") for p in got.values() if p.resolved_at is None)


def test_event_time_waits_for_every_partition_the_worker_reads() -> None:
    """A batch of partition 0 far ahead does not apply events partition 1 has not yet caught up to:
    its own events would arrive late and be diagnosed out of order."""
    events = read([str(CASE)]).events
    newest = epoch_ms(max(e.timestamp for e in events))
    state = LiveState()
    state.assign([0, 1])
    assert _final(state, [(RawBatch(events=events, watermark=newest + 3_600_000), 0)]) == {}
    assert state.buffer  # held: partition 1 has said nothing yet
    got = _final(state, [(RawBatch(events=[], watermark=newest + 3_600_000), 1)])
    assert [p.type for p in got.values()] == ["missing-env-var"]
    state.assign([0])  # a rebalance took partition 1 away: it no longer holds event time back
    assert state.watermarks == {0: newest + 3_600_000}


def test_feedback_adjusts_a_diagnosis_family_as_it_does_a_pattern() -> None:
    """Votes on `diagnosis/<family>` predictions count like votes on a pattern (agents.confidence):
    the confidence is scaled; a family disabled by its votes diagnoses nothing, and what it said is
    resolved."""
    from agents.confidence import Adjustment, Votes

    events = read([str(CASE)]).events
    plain = _final(LiveState(), [_at_once(events)])
    state = LiveState()
    family = PATTERN_PREFIX + "containers"
    doubted = Adjustment(votes=Votes(accurate=1, total=4), factor=0.8)
    found, _ = diagnose_batch(state, _at_once(events)[0], adjustments={family: doubted})
    assert found is not None
    (before,) = (p for p in plain.values() if p.resolved_at is None)
    (after,) = (p for p in {p.id: p for p in found.predictions}.values() if p.resolved_at is None)
    assert after.id == before.id and after.confidence == round(before.confidence * 0.8, 4)
    off = Adjustment(votes=Votes(accurate=0, total=12), factor=0.7, disabled="accuracy 0% over 12 votes")
    later = _after(events, events, timedelta(minutes=1))
    found, _ = diagnose_batch(state, _at_once(later)[0], adjustments={family: off})
    assert found is not None and [p.resolved_at is not None for p in found.predictions] == [True]
    assert state.standing == {}


# --- at least once, and not in event-time order: what is kept is what in-order delivery keeps ------------

READINESS = ROOT / "patterns" / "scenarios" / "diagnosis" / "probes" / "readiness-probe-failure"


def test_an_event_delivered_again_or_late_is_diagnosed_as_in_order() -> None:
    """A batch delivered again once event time has moved on (a restarted nats-server delivers again
    what its consumer state had not written; a restarted worker re-reads its uncommitted batches)
    counted its Events twice: the probe's 211 failures became 422. An Event arriving last, after
    the ones that followed it, changes nothing either."""
    events = read([str(READINESS)]).events
    end = epoch_ms(max(e.timestamp for e in events)) + 3_600_000
    in_order = [RawBatch(events=[e], watermark=epoch_ms(e.timestamp)) for e in events]
    expected = _run(in_order + [RawBatch(events=[], watermark=end)])
    assert [(cause, "(211 failures)" in message) for _, cause, _, message in expected] == [
        ("readiness-probe-failure", True)]
    assert _run(in_order + [RawBatch(events=events, watermark=end)]) == expected
    assert _run(in_order + in_order + [RawBatch(events=[], watermark=end)]) == expected
    started = next(e for e in events if e.metadata.get("reason") == "Started")
    late = [RawBatch(events=[e], watermark=epoch_ms(e.timestamp)) for e in events if e is not started]
    assert _run(late + [RawBatch(events=[started], watermark=end)]) == expected


def _at(second: int, name: str) -> RawEvent:
    return RawEvent(id=name, timestamp=datetime(2026, 11, 26, 7, 0, second, tzinfo=UTC), type="kubeapi", data=b"",
                    metadata={"action": "EVENT", "kind": "Event"})


def test_an_object_keeps_its_newest_events_in_time_order_each_once() -> None:
    kept: deque[RawEvent] = deque(maxlen=3)
    assert [keep(kept, _at(s, n)) for s, n in ((1, "a"), (3, "c"), (2, "b"))] == [True, True, True]
    assert [e.id for e in kept] == ["a", "b", "c"]
    assert not keep(kept, _at(2, "b"))  # again: not kept twice
    assert not keep(kept, _at(0, "z"))  # older than all of a full object: in order, it would be gone
    assert keep(kept, _at(2, "b2")) and [e.id for e in kept] == ["b", "b2", "c"]  # in place, the oldest out
    assert keep(kept, _at(4, "d")) and [e.id for e in kept] == ["b2", "c", "d"]


def test_each_update_in_place_of_a_diagnosis_has_a_higher_revision() -> None:
    """A readiness probe's diagnosis keeps its id and its moment (`at`) while its count of failures
    grows; versions of it leave on the partitions of whatever re-diagnosed it, so the graph tells the
    newest by its revision (the kill tests' graph once kept "47 failures" of 50: two versions of the
    same moment, the older written last)."""
    events = read([str(READINESS)]).events
    state, versions = LiveState(), []
    for e in events:
        found, _ = diagnose_batch(state, RawBatch(events=[e], watermark=epoch_ms(e.timestamp)))
        versions += found.predictions if found is not None else []
    found, _ = diagnose_batch(state, RawBatch(events=[], watermark=epoch_ms(events[-1].timestamp) + 3_600_000))
    versions += found.predictions if found is not None else []
    updates = [p for p in versions if p.type == "readiness-probe-failure" and p.resolved_at is None]
    assert len(updates) >= 2 and len({(p.id, p.at) for p in updates}) == 1, [(p.at, p.message) for p in updates]
    assert [p.revision for p in updates] == list(range(len(updates)))
    assert "(211 failures)" in updates[-1].message
