"""Stage 3, match: behavior patterns over event-time windows.

Fed by: topic `unified` (UnifiedBatch). Feeds: topic `matched` (MatchedBatch).

Pattern matching itself lands with the behavior-patterns work (YAML patterns, RocksDB-backed
windowed tables). Until then this stage forwards every event with no matches, so the topic,
its record type and the stage's place in the dataflow already exist and are exercised.
"""

from __future__ import annotations

from app.records import MatchedBatchView, UnifiedBatchView


def match_batch(batch: UnifiedBatchView) -> tuple[MatchedBatchView, list]:
    """Forward the events unread (see app.records, "views"): the record sent is a MatchedBatch."""
    return MatchedBatchView(events=batch.events, matches=[]), []
