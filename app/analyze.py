"""`tapio analyze`: what broke, why, and what else is affected, from recordings users already have.

Fed by: paths (support bundles, must-gathers, kubectl describe and events output, object lists,
container logs; `collectors.bundles` tells them apart). Feeds: an `Analysis`: ranked root-cause
hypotheses (`app.hypotheses`), each with its causal chain, the affected resources, the evidence
lines with their source file, a confidence and a remediation; what could not be read; notes on
files skipped and on how times were placed.

Two ways, one answer:
- in-process (the default, `analyze`): the input goes through the same stage functions as the
  live dataflow (enrich, normalize, pattern windows, predict: `agents.offline`, as `tapio backtest`
  does) and the diagnosis of every object (`agents.diagnosis`), with no server started;
- through the dataflow (`analyze_dataflow`, `tapio analyze --dataflow`): the input is published
  into an isolated dataflow on the running stack (`app.isolated`), and the pattern hypotheses are
  read back from its graph. A test checks that both give the same hypotheses.
No hypothesis means no incident, and failures that all recovered mean no ongoing incident: the
analysis says so rather than inventing one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path

import msgspec

from app.hypotheses import (
    Evidence,
    RootCause,
    combine,
    from_prediction,
    incidents,
    is_change,
    is_ongoing,
    last_failures,
    match_evidence,
    starts_with_a_change,
    told,
    verdict,
)
from core.events import RawEvent, content_id, is_object_event, publish_order
from core.settings import Settings
from topology.surroundings import TopologyLink, surroundings

__all__ = ["Analysis", "Evidence", "RootCause", "analyze", "analyze_dataflow", "read", "render"]


class Analysis(msgspec.Struct, kw_only=True):
    inputs: list[str]
    events: int
    errors: list[str]
    hypotheses: list[RootCause]
    verdict: str
    notes: list[str] = []  # files skipped as not Kubernetes data, how times were placed
    graph: str = ""
    topology: list[TopologyLink] = []  # among the input's objects, by name: what the report draws around a cause


class Read(msgspec.Struct, kw_only=True):
    """The inputs read: their events in publish order, what could not be read, the notes."""

    events: list[RawEvent]
    errors: list[str]
    notes: list[str]


def read(paths: Iterable[str], *, now: datetime | None = None) -> Read:
    from collectors.bundles import read_inputs
    from collectors.loose import InputNote

    raws: list[RawEvent] = []
    errors: list[str] = []
    notes: list[str] = []
    for item in read_inputs([Path(p) for p in paths], now=now):
        if isinstance(item, RawEvent):
            raws.append(item)
        elif isinstance(item, InputNote):
            notes.append(str(item))
        else:
            errors.append(str(item))
    return Read(events=publish_order(raws), errors=errors, notes=notes)


def analyze(paths: list[str], *, now: datetime | None = None, patterns_dir: str | None = None) -> Analysis:
    """The analysis in this process: readers, stage functions, pattern windows, diagnoses."""
    from agents.catalog import Catalog
    from agents.diagnosis import diagnose_events
    from agents.offline import match_events, unified_events
    from core.settings import MatchSettings

    got = read(paths, now=now)
    catalog = Catalog(patterns_dir or MatchSettings().patterns_dir)
    result = match_events(got.events, catalog)
    last, newest = last_failures(unified_events(got.events))
    matches = {m.id: m for m in result.matches}
    found: list[tuple[RootCause, bool]] = []
    for p in _best_per_match(result.predictions):
        match = matches[p.match_id]
        cause = from_prediction(p, match_evidence(match), ongoing=False)
        found.append((msgspec.structs.replace(cause, ongoing=is_ongoing(cause.affected, last, newest)),
                      starts_with_a_change(match)))
    return _analysis(paths, got, combine(diagnose_events(got.events), found))


def _analysis(paths: list[str], got: Read, ranked: list[RootCause], graph: str = "") -> Analysis:
    shown = [msgspec.structs.replace(c, rank=i) for i, c in enumerate(incidents(ranked), 1)]
    objects = (msgspec.json.decode(e.data) for e in got.events if is_object_event(e))
    return Analysis(inputs=list(paths), events=len(got.events), errors=got.errors, notes=got.notes,
                    hypotheses=shown, verdict=verdict(shown, len(got.events)), graph=graph,
                    topology=surroundings(o for o in objects if isinstance(o, dict)))


def _best_per_match(predictions: list) -> list:
    """A match with several predictions is one hypothesis: keep its best-scored prediction."""
    best: dict[str, object] = {}
    for p in predictions:
        if p.match_id not in best or p.score > best[p.match_id].score:  # type: ignore[attr-defined]
            best[p.match_id] = p
    return list(best.values())


def render(analysis: Analysis) -> list[str]:
    """The terminal report: the verdict, then each hypothesis with its chain and evidence."""
    lines = [analysis.verdict, f"({analysis.events} events from {len(analysis.inputs)} input(s); "
                               f"{len(analysis.errors)} part(s) could not be read)"]
    for cause in analysis.hypotheses:
        lines.append("")
        state = "ongoing" if cause.ongoing else "resolved"
        label = f"{cause.family}: {cause.pattern}" if cause.family else cause.pattern
        lines.append(f"{cause.rank}. [{label}] {cause.scope}  confidence {cause.confidence:.0%}, {state}")
        lines.append(f"   {cause.message}")
        if cause.chain:
            lines.append("   chain: " + " -> ".join(cause.chain))
        if cause.affected:
            lines.append("   affected: " + ", ".join(cause.affected))
        if cause.family and cause.patterns:
            lines.append("   patterns: " + ", ".join(cause.patterns))
        for ev in cause.evidence[:8]:
            when = f"{ev.at:%Y-%m-%d %H:%M:%S}Z " if ev.at else ""
            lines.append(f"   evidence {when}{ev.text}  ({ev.source})")
        if cause.remediation:
            lines.append(f"   do: {' '.join(cause.remediation.split())}")
    for note in analysis.notes[:20]:
        lines.append(f"note: {note}")
    for error in analysis.errors[:20]:
        lines.append(f"could not read: {error}")
    return lines


async def analyze_dataflow(live: Settings, paths: list[str], *, now: datetime | None = None, keep: bool = False,
                           progress: Callable[[str, int, int], None] | None = None) -> Analysis:
    """The same analysis, the patterns' part through an isolated dataflow on the running stack."""
    from agents.diagnose import PATTERN_PREFIX as DIAGNOSIS_PREFIX
    from agents.diagnosis import diagnose_events
    from agents.offline import unified_events
    from agents.pattern_files import catalog_digest
    from app.isolated import run_isolated
    from app.jetstream import EventPublisher, connect, ensure_streams
    from topology.graph import open_graph
    from topology.predictions import match_story

    got = read(paths, now=now)
    ordered = got.events
    # named after the input and the catalog: the same input analysed again reuses its dataflow (its events
    # are already in its stream and its graph: the same answer), a pattern edit gets a fresh one
    name = "analyze-" + content_id(*sorted({e.id for e in ordered}), catalog_digest(live.match.patterns_dir))[:12]

    async def feed(target: Settings) -> tuple[list[str], datetime | None]:
        nc = await connect(target.nats, name="tapio-analyze")
        try:
            js = nc.jetstream()
            await ensure_streams(js, target.nats)
            publisher = EventPublisher(js, target.nats)
            for start in range(0, len(ordered), 2000):
                await publisher.publish_many(ordered[start:start + 2000])
                if progress:
                    progress("published", min(start + 2000, len(ordered)), len(ordered))
        finally:
            await nc.drain()
        return [e.id for e in ordered], max((e.timestamp for e in ordered), default=None)

    run = await run_isolated(live, name, feed, progress=progress, keep=keep)
    unified = unified_events(ordered)
    last, newest = last_failures(unified)
    changes = {e.id for e in unified if is_change(e)}
    graph = open_graph(run.settings.graph)
    found: list[tuple[RootCause, bool]] = []
    try:
        # the worker's diagnose stage wrote its own diagnoses too: here they are made from the same input
        # in this process, where the join to patterns needs them whole (tests/test_analyze.py compares)
        for p in _best_per_match([p for p in run.predictions if not p.pattern.startswith(DIAGNOSIS_PREFIX)]):
            stored = await match_story(graph, p.match_id)
            cause = from_prediction(p, told(stored), ongoing=False)
            found.append((msgspec.structs.replace(cause, ongoing=is_ongoing(cause.affected, last, newest)),
                          any(c in changes for c, _ in stored.caused)))
    finally:
        await graph.close()
    return _analysis(paths, got, combine(diagnose_events(ordered), found), graph=run.settings.graph.name)
