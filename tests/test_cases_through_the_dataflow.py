"""Every labelled diagnosis case through the real dataflow: the same pattern matches as `tapio
analyze` finds in-process (tests/test_analyze.py runs whole analyses through the dataflow, one case
per family; this runs all of them at once), and what the live diagnose stage makes of them.

Each case is read as `tapio analyze` reads it, moved so that its newest moment is in the middle of
a six-hour slot of its own (windows are five minutes, so slots cannot meet) and published into one
isolated dataflow on real servers; per slot, the dataflow's predictions are compared with those the
same functions give for that case alone. Near the end of its slot each case's objects are deleted,
as a cluster that moved on deletes them: cases reuse names (a healthy twin has its incident's), and
the live stage, like a cluster, keeps an object until it is deleted.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from agents.catalog import Catalog
from agents.diagnose import PATTERN_PREFIX
from agents.diagnosis import INCIDENT_CONFIDENCE, diagnose_events
from agents.diagnosis.observed import key_of
from agents.offline import match_events
from app.analyze import read
from app.diagnosis_backtest import find_cases, inputs_of
from app.stack import EmbeddedStack
from collectors.replay import shifted
from core.events import RawEvent
from core.kube.objects import raw_event_from_object

pytestmark = pytest.mark.xdist_group("cases-through")

ROOT = Path(__file__).resolve().parents[1]
BASE = datetime(2028, 3, 6, tzinfo=UTC)
SLOT = timedelta(hours=6)


@pytest.fixture(scope="module")
async def through(embedded: EmbeddedStack) -> dict:
    from app.isolated import run_isolated
    from app.jetstream import publish_events

    cases = find_cases([ROOT / "patterns" / "scenarios" / "diagnosis"])
    catalog = Catalog(ROOT / "patterns")
    slots, published = [], []
    for k, case in enumerate(cases):
        events = read(inputs_of(case)).events
        start = BASE + k * SLOT
        # the case's newest moment at the middle of its slot; what falls before the slot (a snapshot of
        # an object created days earlier: state, it matches nothing by its time) is placed at its start,
        # or the live stage would hold it in another case's slot, where that case's objects of the same
        # name (a healthy twin's old ReplicaSet) replace it
        moved = [e if e.timestamp >= start else msgspec.structs.replace(e, timestamp=start)
                 for e in shifted(events, start + SLOT / 2 - max(e.timestamp for e in events))]
        expected = {(p.pattern, p.scope, p.at, p.message) for p in match_events(moved, catalog).predictions}
        diagnosed = {(PATTERN_PREFIX + d.family, d.cause, f"object:{d.subject}") for d in diagnose_events(moved)
                     if d.ongoing and d.confidence >= INCIDENT_CONFIDENCE}
        slots.append((case.labels.case, start, expected, diagnosed))
        published += moved + _deleted(moved, start + SLOT - timedelta(minutes=30))

    async def feed(target):  # type: ignore[no-untyped-def]
        await publish_events(target.nats, published, name="cases-through")
        return [e.id for e in published], max(e.timestamp for e in published)

    live = embedded.settings()  # BASE is in 2028, ahead of the wall clock: the event-time guard is opened wide
    live = msgspec.structs.replace(live, match=msgspec.structs.replace(live.match, max_ahead_s=10 * 365 * 86400.0))
    run = await run_isolated(live, "cases-through", feed)
    assert run.in_graph == len({e.id for e in published})
    return {"cases": cases, "slots": slots, "predictions": run.predictions}


def _deleted(events: list[RawEvent], at: datetime) -> list[RawEvent]:
    """Every object the case shows (as an object or as what its Events are about), deleted at `at`."""
    keys = {key_of(e) for e in events if e.type in ("kubeapi", "logs")}
    return [raw_event_from_object({"kind": k.kind, "metadata": {"name": k.name, "namespace": k.namespace}},
                                  action="DELETED", source="the test's deletion", undated_at=at)
            for k in sorted(keys) if k.kind and k.name]


def test_every_case_gives_the_same_pattern_matches_in_the_dataflow(through: dict) -> None:
    assert len(through["cases"]) >= 90
    got = [p for p in through["predictions"] if not p.pattern.startswith(PATTERN_PREFIX)]
    problems = []
    for name, start, expected, _ in through["slots"]:
        mine = {(p.pattern, p.scope, p.at, p.message) for p in got if start <= p.at < start + SLOT}
        if mine != expected:
            problems.append(f"{name}: dataflow {sorted(mine)} != in-process {sorted(expected)}")
    assert problems == [], "\n".join(problems)
    assert sum(len(e) for _, _, e, _ in through["slots"]) > 0  # some cases do match patterns


def test_the_live_diagnose_stage_ends_with_the_diagnoses_tapio_analyze_makes(through: dict) -> None:
    """What stands at each case's end (sent, and not resolved by then) is what tapio analyze makes of it."""
    live = [p for p in through["predictions"] if p.pattern.startswith(PATTERN_PREFIX)]
    problems = []
    for name, start, _, diagnosed in through["slots"]:
        end = start + SLOT / 2  # the case's newest moment
        theirs = {(p.pattern, p.type, p.scope) for p in live if start <= p.at <= end
                  and (p.resolved_at is None or p.resolved_at > end)}
        if theirs != diagnosed:
            problems.append(f"{name}: diagnose stage {sorted(theirs)} != in-process {sorted(diagnosed)}")
    assert problems == [], "\n".join(problems)
    # each case's deletion resolved what it left standing
    assert [p.scope for p in live if p.resolved_at is None] == []
