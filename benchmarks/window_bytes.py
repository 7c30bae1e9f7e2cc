"""What the windows stage writes to its changelog, without servers: bytes per event of `tapio-windows`.

    .venv/bin/python benchmarks/window_bytes.py --events 40000

The events of `pipeline.py` (same mix, namespaces, pods), stamped RATE per second of event time,
go through enrich, normalize and the catalog's `Selector.hits`, in batches of BATCH events per
source partition, to the hits partitions (`hits_partition`); each hits partition runs
`agents.match.WindowPartition` over an in-memory table, as the windows agent does (watermark:
the newest event time of every source minus the allowed lateness). Prints the bytes of every
table write (what Tansu would keep of the changelog) and of the hits records, split by kind, and
the matches found (a change of the state's encoding must not change them).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
import zlib
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.catalog import Catalog  # noqa: E402
from agents.enrich import enrich_event  # noqa: E402
from agents.match import WindowPartition, _take, hits_partition  # noqa: E402
from agents.normalize import normalize_event  # noqa: E402
from benchmarks.pipeline import make_event  # noqa: E402
from core.codec import msgpack_encoder  # noqa: E402
from core.records import Hit, HitBatch  # noqa: E402


class CountingTable(dict):
    """A dict standing in for a Faust table: counts the bytes of every write and delete (a changelog record)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = self.bytes = self.deletes = 0

    def __setitem__(self, key: str, value: bytes) -> None:
        self.writes += 1
        self.bytes += len(key) + len(value)
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self.deletes += 1
        self.bytes += len(key)
        super().__delitem__(key)


def run(args: argparse.Namespace) -> None:
    catalog = Catalog(Path(__file__).resolve().parents[1] / "patterns")
    selector = catalog.selector
    table, marks = CountingTable(), CountingTable()
    parts = {p: WindowPartition(p, table, marks, args.partitions, max_ahead_ms=10**15) for p in range(args.partitions)}
    store: dict[str, Any] = {}
    start = datetime(2026, 1, 1, tzinfo=UTC)
    hits_bytes = hits = matches = 0
    found_ids: list[str] = []
    evidence_events = 0
    cpu = time.process_time()
    pending: dict[int, list] = defaultdict(list)  # source partition -> events of the batch being made

    def flush(source: int) -> None:
        nonlocal hits_bytes, hits, matches, evidence_events
        batch = pending.pop(source, [])
        by_part: dict[int, list[Hit]] = defaultdict(list)
        newest = 0
        for event in batch:
            raw = msgspec.Raw(msgpack_encoder.encode(event))
            for hit in selector.hits(event, store, raw):
                by_part[hits_partition(hit.pattern, hit.key, args.partitions)].append(hit)
            newest = max(newest, int(event.timestamp.timestamp() * 1000))
        for p, part in parts.items():
            value = HitBatch(source=source, watermark=newest, hits=by_part.get(p, []))
            hits_bytes += len(msgpack_encoder.encode(value))
            hits += len(value.hits)
            _, found = _take(part, value, marks, catalog, args.lateness_ms, 10**15)
            matches += len(found)
            found_ids.extend(f"{m.id}:{','.join(m.event_ids)}:{','.join(e.id for e in m.evidence)}" for m in found)
            evidence_events += sum(len(m.evidence) for m in found)

    for i in range(args.events):
        raw = make_event(i, "bytes", args.namespaces, args.pods, args.mix)
        raw = msgspec.structs.replace(raw, timestamp=start + timedelta(seconds=i / args.rate))
        event = normalize_event(enrich_event(raw))
        source = zlib.crc32(raw.metadata["namespace"].encode()) % args.partitions
        pending[source].append(event)
        if len(pending[source]) >= args.batch:
            flush(source)
    for source in list(pending):
        flush(source)
    cpu = time.process_time() - cpu
    n = args.events
    print(f"{n:,} events, {hits:,} hits, {matches:,} matches ({evidence_events:,} evidence events), "
          f"digest of their ids, event ids and evidence ids "
          f"{hashlib.sha256(chr(10).join(sorted(found_ids)).encode()).hexdigest()[:12]}")
    print(f"tapio-windows changelog: {table.writes:,} writes, {table.deletes:,} deletes, "
          f"{table.bytes / 2**20:,.2f} MiB ({table.bytes / n:,.0f} bytes per event); table now {len(table):,} keys "
          f"{sum(len(v) for v in table.values()) / 2**20:,.2f} MiB")
    states = [st for part in parts.values() for st in part.windows.states.values()]
    print(f"held at the end: {len(states):,} states loaded, {sum(len(v) for st in states for v in st.entries.values()):,} "
          f"entries, {sum(len(st.evidence) for st in states):,} evidence events; the logs' current records "
          f"{sum(part.log.live_bytes for part in parts.values()) / 2**20:,.2f} MiB "
          f"in {sum(len(part.log.live) for part in parts.values()):,} deltas")
    print(f"tapio.hits: {hits_bytes / 2**20:,.2f} MiB ({hits_bytes / n:,.0f} bytes per event)")
    print(f"CPU {cpu:.1f} s ({cpu / n * 1e6:,.0f} us per event, enrich and normalize included)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--rate", type=int, default=2000, help="events per second of event time")
    parser.add_argument("--batch", type=int, default=100, help="events per unified batch (per source partition)")
    parser.add_argument("--namespaces", type=int, default=20)
    parser.add_argument("--pods", type=int, default=500)
    parser.add_argument("--partitions", type=int, default=2)
    parser.add_argument("--lateness-ms", type=int, default=10_000)
    parser.add_argument("--mix", choices=["warnings", "real"], default="real")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
