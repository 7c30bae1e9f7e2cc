"""The whole matching path in one process, without servers: RawEvents in, matches and predictions out.

Fed by: RawEvents read from recordings (`collectors.replayer.read_recordings`) and a catalog.
Feeds: `tapio backtest` (app.backtest), and the tests that compare the running stack with it.

Same functions as the running dataflow (enrich, normalize, `Selector.hits`, `windows.add_hits` /
`advance`, `predictions_for`), in the same order (`core.events.publish_order`), with the
same watermark rule: the newest timed event minus the allowed lateness, and +infinity at the end
of the input. The end-to-end tests check that the running stack finds the same matches.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from agents.catalog import Catalog
from agents.enrich import EnrichError, enrich_event
from agents.hits import Selector
from agents.normalize import NormalizeError, normalize_event
from agents.partition_windows import PartitionWindows
from agents.predict import predictions_for
from core.events import RawEvent, UnifiedEvent, epoch_ms, publish_order
from core.records import PatternMatch, Prediction

END_OF_INPUT = 2**62


class OfflineResult(msgspec.Struct, kw_only=True):
    events: int
    matches: list[PatternMatch]
    predictions: list[Prediction]
    late: int = 0
    errors: list[str] = []


def newest_versions(predictions: Iterable[Prediction]) -> list[Prediction]:
    """What the graph keeps of predictions written in turn: per id, the newest (by `at`). The
    matches of one episode share an id (`agents.windows`): each updates the episode's predictions."""
    written = list(predictions)
    newest: dict[str, Prediction] = {}
    for p in written:
        if p.id not in newest or p.at >= newest[p.id].at:
            newest[p.id] = p
    return [p for p in written if newest[p.id] is p]


def unified_events(raw_events: Iterable[RawEvent]) -> list[UnifiedEvent]:
    """The RawEvents as the enrich and normalize stages make them, those they reject left out (the
    dataflow dead-letters them with the reason; `match_events` lists them as errors)."""
    out = []
    for raw in raw_events:
        try:
            out.append(normalize_event(enrich_event(raw)))
        except (ValueError, KeyError, msgspec.ValidationError):
            continue
    return out


def match_events(raw_events: Iterable, catalog: Catalog, *, lateness_ms: int = 10_000) -> OfflineResult:
    store: dict = {}
    windows = PartitionWindows(lambda key: None)
    selector: Selector = catalog.selector
    matches: list[PatternMatch] = []
    errors: list[str] = []
    late = count = 0
    newest = 0
    for raw in publish_order(list(raw_events)):
        count += 1
        try:
            event = normalize_event(enrich_event(raw))
        except (EnrichError, NormalizeError) as e:
            errors.append(f"event {raw.id}: {e}")
            continue
        late += windows.add(selector.hits(event, store), watermark=newest - lateness_ms)
        if raw.metadata.get("action") != "SNAPSHOT":
            newest = max(newest, epoch_ms(raw.timestamp))
        matches.extend(windows.advance(catalog.compiled, newest - lateness_ms))
    matches.extend(windows.advance(catalog.compiled, END_OF_INPUT))
    matches.sort(key=lambda m: (m.matched_at, m.pattern, m.scope))
    predictions = newest_versions(p for m in matches for p in predictions_for(m, catalog.patterns[m.pattern]))
    return OfflineResult(events=count, matches=matches, predictions=predictions, late=late, errors=errors)
