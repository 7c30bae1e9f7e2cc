"""Every labelled diagnosis case through the real dataflow: the same pattern matches as `tapio
analyze` finds in-process (tests/test_analyze.py runs whole analyses through the dataflow, one case
per family; this runs all of them at once), and what the live diagnose stage makes of them.

Each case is read as `tapio analyze` reads it, moved so that its newest moment is in the middle of
a six-hour slot of its own (windows are five minutes, so slots cannot meet) and published into one
isolated dataflow on real servers; per slot, the dataflow's predictions are compared with those the
same functions give for that case alone.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agents.catalog import Catalog
from agents.diagnose import PATTERN_PREFIX
from agents.diagnosis import INCIDENT_CONFIDENCE, diagnose_events
from agents.offline import match_events
from app.analyze import read
from app.diagnosis_backtest import find_cases, inputs_of
from app.stack import EmbeddedStack
from collectors.replay import shifted

pytestmark = pytest.mark.xdist_group("cases-through")

ROOT = Path(__file__).resolve().parents[1]
BASE = datetime(2028, 3, 6, tzinfo=UTC)
SLOT = timedelta(hours=6)


@pytest.fixture(scope="module")
async def through(embedded: EmbeddedStack) -> dict:
    from app.isolated import run_isolated
    from app.jetstream import EventPublisher, connect, ensure_streams

    cases = find_cases([ROOT / "patterns" / "scenarios" / "diagnosis"])
    catalog = Catalog(ROOT / "patterns")
    slots, published = [], []
    for k, case in enumerate(cases):
        events = read(inputs_of(case)).events
        start = BASE + k * SLOT
        # the case's newest moment at the middle of its slot (an object's old creation time may fall
        # before the slot: a snapshot is state, it matches nothing by its time)
        moved = shifted(events, start + SLOT / 2 - max(e.timestamp for e in events))
        expected = {(p.pattern, p.scope, p.at, p.message) for p in match_events(moved, catalog).predictions}
        diagnosed = {(PATTERN_PREFIX + d.family, d.cause, f"object:{d.subject}") for d in diagnose_events(moved)
                     if d.ongoing and d.confidence >= INCIDENT_CONFIDENCE}
        slots.append((case.labels.case, start, expected, diagnosed))
        published += moved

    async def feed(target):  # type: ignore[no-untyped-def]
        nc = await connect(target.nats, name="cases-through")
        try:
            js = nc.jetstream()
            await ensure_streams(js, target.nats)
            publisher = EventPublisher(js, target.nats)
            for at in range(0, len(published), 2000):
                await publisher.publish_many(published[at:at + 2000])
        finally:
            await nc.drain()
        return [e.id for e in published], max(e.timestamp for e in published)

    run = await run_isolated(embedded.settings(), "cases-through", feed)
    assert run.in_graph == len({e.id for e in published})
    return {"cases": cases, "slots": slots, "predictions": run.predictions}


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


@pytest.mark.xfail(strict=True, reason=(
    "open (issue 13): the live diagnose stage ends with other diagnoses than tapio analyze on about a fifth of "
    "the cases: Events without a namespace (an events table of one namespace) arrive before the object that "
    "places them and are diagnosed under a second key; a diagnosis made on an early state (a crash loop before "
    "its log line) stays when a later one names another family or object; nothing is retracted when an object "
    "recovers or a later case reuses its name; and a few final diagnoses are never sent"))
def test_the_live_diagnose_stage_ends_with_the_diagnoses_tapio_analyze_makes(through: dict) -> None:
    live = [p for p in through["predictions"] if p.pattern.startswith(PATTERN_PREFIX)]
    problems = []
    for name, start, _, diagnosed in through["slots"]:
        theirs = {(p.pattern, p.type, p.scope) for p in live if start - SLOT / 2 <= p.at < start + SLOT}
        if theirs != diagnosed:
            problems.append(f"{name}: diagnose stage {sorted(theirs)} != in-process {sorted(diagnosed)}")
    assert problems == [], "\n".join(problems)
