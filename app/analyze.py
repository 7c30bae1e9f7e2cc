"""`tapio analyze`: what broke, why, and what else is affected, from recordings users already have.

Fed by: paths (support bundles, must-gathers, kubectl output, recordings; `collectors.bundles`
tells them apart) and the running servers (`tapio up` or external ones).
Feeds: an `Analysis`: ranked root-cause hypotheses, each with its causal chain, the affected
resources, the evidence lines with their source file, a confidence and a remediation.

The recordings go through the same dataflow, patterns and graph as live processing: they are
published, snapshots first then in event time, into an isolated dataflow of their own
(`app.isolated`), and the hypotheses are that dataflow's predictions, read back from its graph.
Ranking: a hypothesis whose resources are still failing at the end of the recording comes
before one whose resources recovered (a red herring: an early failure that resolved itself),
then by score. No prediction means no incident, and failures that all recovered mean no ongoing
incident: the analysis says so rather than inventing one.

The ranking and the report are pure (`rank`, `render`); `analyze` is the I/O shell.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from pathlib import Path

import msgspec

from core.events import RawEvent, UnifiedEvent, content_id
from core.settings import Settings

_SEVERE = frozenset({"warning", "error", "critical"})


class Evidence(msgspec.Struct, frozen=True, kw_only=True):
    at: datetime | None
    source: str  # file#position of the recording the line came from
    text: str


class RootCause(msgspec.Struct, frozen=True, kw_only=True):
    rank: int
    pattern: str
    scope: str
    confidence: float
    score: float
    message: str
    remediation: str
    at: datetime
    ongoing: bool  # its resources still fail at the end of the recording
    chain: list[str]  # root cause first, symptom last
    affected: list[str]
    evidence: list[Evidence]


class Analysis(msgspec.Struct, kw_only=True):
    inputs: list[str]
    events: int
    errors: list[str]
    hypotheses: list[RootCause]
    verdict: str
    graph: str = ""


def last_failures(events: Iterable[UnifiedEvent]) -> tuple[dict[str, datetime], datetime | None]:
    """Per resource ("Kind/namespace/name"), the time of its last warning or worse; and the newest time."""
    last: dict[str, datetime] = {}
    newest: datetime | None = None
    for event in events:
        newest = event.timestamp if newest is None else max(newest, event.timestamp)
        if event.k8s is not None and event.semantic.severity in _SEVERE:
            key = f"{event.k8s.kind}/{event.k8s.namespace}/{event.k8s.name}"
            last[key] = max(last.get(key, event.timestamp), event.timestamp)
    return last, newest


def is_ongoing(affected: Iterable[str], last: dict[str, datetime], newest: datetime | None,
               *, quiet: timedelta = timedelta(minutes=5)) -> bool:
    """True when one of the resources still failed within `quiet` of the end of the recording."""
    if newest is None:
        return True
    times = [last[key] for key in affected if key in last]
    return not times or newest - max(times) <= quiet


def rank(causes: list[RootCause]) -> list[RootCause]:
    """Ongoing before resolved, then by score, then earliest (the root comes before its echoes)."""
    ordered = sorted(causes, key=lambda c: (not c.ongoing, -c.score, c.at, c.pattern, c.scope))
    return [msgspec.structs.replace(c, rank=i) for i, c in enumerate(ordered, 1)]


def verdict(causes: list[RootCause], events: int) -> str:
    if not causes:
        return (f"no incident found: none of the {events} events matches a behavior pattern "
                f"(nothing here looks like a known failure; see the warnings with tapio explain)")
    top = causes[0]
    if not top.ongoing:  # ranked first, so nothing is ongoing
        return (f"no ongoing incident: {len(causes)} failure(s) in the recording resolved themselves before its "
                f"end (listed below); the first: {top.pattern} in {top.scope}")
    state = "ongoing" if top.ongoing else "resolved by the end of the recording"
    return f"most likely: {top.pattern} in {top.scope} ({top.confidence:.0%}, {state}): {top.message}"


def render(analysis: Analysis) -> list[str]:
    """The terminal report: the verdict, then each hypothesis with its chain and evidence."""
    lines = [analysis.verdict, f"({analysis.events} events from {len(analysis.inputs)} input(s); "
                               f"{len(analysis.errors)} part(s) could not be read)"]
    for cause in analysis.hypotheses:
        lines.append("")
        state = "ongoing" if cause.ongoing else "resolved"
        lines.append(f"{cause.rank}. [{cause.pattern}] {cause.scope}  confidence {cause.confidence:.0%}, {state}")
        lines.append(f"   {cause.message}")
        if cause.chain:
            lines.append("   chain: " + " -> ".join(cause.chain))
        if cause.affected:
            lines.append("   affected: " + ", ".join(cause.affected))
        for ev in cause.evidence[:8]:
            when = f"{ev.at:%Y-%m-%d %H:%M:%S}Z " if ev.at else ""
            lines.append(f"   evidence {when}{ev.text}  ({ev.source})")
        if cause.remediation:
            lines.append(f"   do: {' '.join(cause.remediation.split())}")
    for error in analysis.errors[:20]:
        lines.append(f"could not read: {error}")
    return lines


async def _story(graph: object, prediction: object) -> tuple[list[Evidence], list[str]]:
    from topology.predictions import match_story
    story = await match_story(graph, prediction.match_id)  # type: ignore[arg-type, attr-defined]
    return [Evidence(at=e.at, source=e.source, text=e.text) for e in story.evidence], story.chain


async def analyze(live: Settings, paths: list[str], *, now: datetime | None = None, keep: bool = False,
                  progress: Callable[[str, int, int], None] | None = None) -> Analysis:
    from agents.enrich import EnrichError, enrich_event
    from agents.normalize import normalize_event
    from app.isolated import run_isolated
    from app.jetstream import EventPublisher, connect, ensure_streams
    from collectors.bundles import read_inputs
    from collectors.unusable import UnusableInput
    from core.events import publish_order
    from topology.graph import open_graph

    raws: list[RawEvent] = []
    errors: list[str] = []
    for item in read_inputs([Path(p) for p in paths], now=now):
        (errors.append(str(item)) if isinstance(item, UnusableInput) else raws.append(item))
    ordered = publish_order(raws)
    unified = []
    for raw in ordered:
        try:
            unified.append(normalize_event(enrich_event(raw)))
        except EnrichError:
            continue  # the dataflow dead-letters it with its reason
    name = "analyze-" + content_id(*sorted({e.id for e in ordered}))[:12]

    async def feed(target: Settings) -> list[str]:
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
    last, newest = last_failures(unified)
    graph = open_graph(run.settings.graph)
    causes: list[RootCause] = []
    try:
        for p in run.predictions:
            evidence, chain = await _story(graph, p)
            affected = [f"{r.kind}/{r.namespace}/{r.name}" if r.namespace else f"{r.kind}/{r.name}" for r in p.impacted]
            causes.append(RootCause(rank=0, pattern=p.pattern, scope=p.scope, confidence=p.confidence, score=p.score,
                                    message=p.message, remediation=p.remediation, at=p.at,
                                    ongoing=is_ongoing(affected, last, newest), chain=chain, affected=affected,
                                    evidence=evidence))
    finally:
        await graph.close()
    ranked = rank(_one_per_match(causes))
    return Analysis(inputs=[str(p) for p in paths], events=len(ordered), errors=errors, hypotheses=ranked,
                    verdict=verdict(ranked, len(ordered)), graph=run.settings.graph.name)


def _one_per_match(causes: list[RootCause]) -> list[RootCause]:
    """A match with several predictions is one hypothesis: keep its best-scored prediction."""
    best: dict[tuple[str, str, datetime], RootCause] = {}
    for cause in causes:
        key = (cause.pattern, cause.scope, cause.at)
        if key not in best or cause.score > best[key].score:
            best[key] = cause
    return list(best.values())
