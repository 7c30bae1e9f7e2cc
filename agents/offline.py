"""The whole matching path in one process, without servers: recordings in, matches and predictions out.

Fed by: recording files (any format `collectors.replay` reads) and a pattern folder.
Feeds: tests of the catalog against its scenarios, and pattern authors (`python -m agents.offline DIR`).

Same functions as the running dataflow (enrich, normalize, `Selector.hits`, `windows.add_hits` /
`advance`, `predictions_for`), in the same order (`collectors.replay.publish_order`), with the
same watermark rule: the newest timed event minus the allowed lateness, and +infinity at the end
of the input. The end-to-end tests check that the running stack finds the same matches.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

import msgspec

from agents.catalog import Catalog
from agents.enrich import EnrichError, enrich_event
from agents.hits import Selector
from agents.normalize import normalize_event
from agents.predict import predictions_for
from agents.partition_windows import PartitionWindows
from app.events import RawEvent, epoch_ms
from app.records import PatternMatch, Prediction
from collectors.replay import ReplayError, publish_order, read_recording
from collectors.replayer import recording_files

END_OF_INPUT = 2**62


class OfflineResult(msgspec.Struct, kw_only=True):
    events: int
    matches: list[PatternMatch]
    predictions: list[Prediction]
    late: int = 0
    errors: list[str] = []


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
        except EnrichError as e:
            errors.append(f"event {raw.id}: {e}")
            continue
        late += windows.add(selector.hits(event, store), watermark=newest - lateness_ms)
        if raw.metadata.get("action") != "SNAPSHOT":
            newest = max(newest, epoch_ms(raw.timestamp))
        matches.extend(windows.advance(catalog.compiled, newest - lateness_ms))
    matches.extend(windows.advance(catalog.compiled, END_OF_INPUT))
    matches.sort(key=lambda m: (m.matched_at, m.pattern, m.scope))
    predictions = [p for m in matches for p in predictions_for(m, catalog.patterns[m.pattern])]
    return OfflineResult(events=count, matches=matches, predictions=predictions, late=late, errors=errors)


def match_recordings(paths: Iterable[str | Path], patterns_dir: str | Path = "patterns") -> list[PatternMatch]:
    return run(paths, patterns_dir).matches


def read_recordings(paths: Iterable[str | Path]) -> tuple[list[RawEvent], list[str]]:
    """Every RawEvent of the recordings under `paths`, and every part that could not be read."""
    events: list[RawEvent] = []
    errors: list[str] = []
    for path in recording_files(paths):
        for item in read_recording(path):
            if isinstance(item, ReplayError):
                errors.append(str(item))
            else:
                events.append(item)
    return events, errors


def run(paths: Iterable[str | Path], patterns_dir: str | Path = "patterns") -> OfflineResult:
    catalog = Catalog(patterns_dir)
    raw_events, errors = read_recordings(paths)
    result = match_events(raw_events, catalog)
    result.errors = errors + result.errors + catalog.errors
    return result


def main(argv: list[str]) -> int:
    args = [a for a in argv if not a.startswith("--patterns=")]
    patterns = next((a.split("=", 1)[1] for a in argv if a.startswith("--patterns=")), "patterns")
    if not args:
        print("usage: python -m agents.offline [--patterns=DIR] RECORDING_OR_DIR...", file=sys.stderr)
        return 2
    result = run(args, patterns)
    for error in result.errors:
        print(f"error: {error}", file=sys.stderr)
    for m in result.matches:
        print(f"{m.matched_at.isoformat()}  {m.pattern:<24} {m.scope:<48} count={m.count} boost={m.boost} "
              f"events={len(m.event_ids)} links={len(m.links)}")
    print(f"{result.events} events, {len(result.matches)} matches, {len(result.predictions)} predictions, "
          f"{result.late} late hits")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
