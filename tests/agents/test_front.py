"""The front chain (agents.front): enrich -> normalize -> select as function calls gives what the
three stages give with a topic between each, and each reject names the stage that made it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import msgspec

from agents.catalog import Catalog
from agents.enrich import enrich_stage
from agents.front import front_batch
from agents.match import RECORD_BYTES, hit_records, insight_records, select_events
from agents.normalize import normalize_stage
from collectors.replayer import read_recordings
from core.events import RawEvent, publish_order
from core.records import EnrichedBatch, Hit, HitBatch, Progress, RawBatch, UnifiedBatch, msgpack_array_len

ROOT = Path(__file__).resolve().parents[2]
PARTITIONS = 4


def _recorded() -> list[RawEvent]:
    events, unread = read_recordings([ROOT / "patterns" / "scenarios" / "oom-kill-loop" / "positive"])
    assert events and not unread
    return publish_order(events)


def test_the_chain_gives_what_the_stages_give_through_topics() -> None:
    catalog = Catalog(ROOT / "patterns")
    not_json = RawEvent(id="not-json", timestamp=datetime(2026, 12, 5, tzinfo=UTC), type="kubeapi", data=b"{oops",
                        metadata={"kind": "Pod", "namespace": "shop", "action": "MODIFIED"})
    batch = RawBatch(events=[*_recorded(), not_json], watermark=1234, progress=Progress(partition=2, seq=99))

    chained = front_batch(batch, selector=catalog.selector, store={}, partitions=PARTITIONS)

    # the same stages, each batch through the wire format of its topic, select on a store of its own
    enriched, enrich_rejects = enrich_stage(msgspec.msgpack.decode(msgspec.msgpack.encode(batch), type=RawBatch))
    unified, normalize_rejects = normalize_stage(
        msgspec.msgpack.decode(msgspec.msgpack.encode(enriched), type=EnrichedBatch))
    unified = msgspec.msgpack.decode(msgspec.msgpack.encode(unified), type=UnifiedBatch)
    encoded = [(e, msgspec.Raw(msgspec.msgpack.encode(e))) for e in unified.events]
    hits, select_rejects = select_events(encoded, catalog.selector, {}, PARTITIONS)

    assert chained.events == [bytes(raw) for _, raw in encoded]
    assert chained.hits == hits and sum(len(h) for h in hits.values()) > 0
    assert [(stage, event_id) for stage, (_, event_id, _) in chained.rejected] == [("enrich", "not-json")]
    assert [r[1] for r in enrich_rejects] == ["not-json"] and normalize_rejects == [] and select_rejects == []
    assert chained.passed == {"enrich": len(batch.events) - 1, "normalize": len(batch.events) - 1}
    assert (chained.watermark, chained.progress) == (1234, Progress(partition=2, seq=99))


def test_an_event_whose_test_raises_is_rejected_by_match_alone_and_still_goes_to_the_graph() -> None:
    catalog = Catalog(ROOT / "patterns")

    class Raising:
        """The catalog's selector, raising on one event (a pattern or an event nobody foresaw)."""

        def hits(self, event, store, raw):  # type: ignore[no-untyped-def]
            if event.id == victim:
                raise KeyError("no such field")
            return catalog.selector.hits(event, store, raw)

    events = _recorded()
    victim = events[0].id
    out = front_batch(RawBatch(events=events), selector=Raising(), store={}, partitions=PARTITIONS)  # type: ignore[arg-type]
    assert [(stage, event_id, reason) for stage, (_, event_id, reason) in out.rejected] == [
        ("match", victim, "KeyError: 'no such field'")]
    assert len(out.events) == len(events)  # the graph still gets it


def test_on_recordings_of_real_clusters_the_chain_gives_what_the_stages_give() -> None:
    # recordings nobody on this project wrote (shared/realdata: minikube and OpenShift CI clusters)
    realdata = ROOT.parent / "shared" / "realdata"
    events, unread = read_recordings([realdata / "troubleshoot" / "pkg" / "analyze" / "files",
                                      realdata / "must-gather-clean"])
    assert len(events) > 800 and not unread
    catalog = Catalog(ROOT / "patterns")
    batch = RawBatch(events=publish_order(events))
    chained = front_batch(batch, selector=catalog.selector, store={}, partitions=PARTITIONS)
    enriched, enrich_rejects = enrich_stage(batch)
    unified, normalize_rejects = normalize_stage(enriched)
    encoded = [(e, msgspec.Raw(msgspec.msgpack.encode(e))) for e in unified.events]
    hits, _ = select_events(encoded, catalog.selector, {}, PARTITIONS)
    assert chained.events == [bytes(raw) for _, raw in encoded] and chained.hits == hits
    assert sum(len(h) for h in hits.values()) > 0  # the real failures in them reach the catalog
    assert [r[1] for _, r in chained.rejected] == [r[1] for r in [*enrich_rejects, *normalize_rejects]]


#: what the worker's producer takes in one record at most (app.faust_app: producer_max_request_size)
PRODUCER_MAX_REQUEST = 16 * 1024 * 1024


def test_a_batch_too_big_for_one_record_is_split_and_event_time_and_the_checkpoint_ride_on_its_last() -> None:
    # a backlog makes raw records of up to 8 MiB, and each event's hits repeat it once per condition it
    # passes: 24 MiB of hits for one hits partition crashed the front agent at every restart
    event = msgspec.msgpack.encode("x" * 100_000)
    found = [Hit(pattern=f"p{i % 7}", key=f"k{i}", cond="c", t=1_000 + i, id=f"e{i}", event=msgspec.Raw(event))
             for i in range(240)]
    progress = Progress(partition=1, seq=77)
    records = hit_records(3, 5_000, found, 12.5, progress)
    assert len(records) > 1
    sizes = [len(msgspec.msgpack.encode(r)) for r in records]
    assert max(sizes) < PRODUCER_MAX_REQUEST and max(sizes) <= RECORD_BYTES + 64 * 1024, sizes
    decoded = [msgspec.msgpack.decode(msgspec.msgpack.encode(r), type=HitBatch) for r in records]
    assert [h.id for r in decoded for h in r.hits] == [h.id for h in found], "every hit once, in order"
    assert [(r.watermark, r.progress) for r in decoded] == [(0, None)] * (len(records) - 1) + [(5_000, progress)]
    assert {(r.source, r.selected_at) for r in decoded} == {(3, 12.5)}
    # nothing to split: one record still carries the watermark (every hits partition learns every source's)
    assert hit_records(3, 5_000, [], 12.5, progress) == [HitBatch(source=3, watermark=5_000, hits=[],
                                                                  selected_at=12.5, progress=progress)]

    events = [event] * 240
    views = insight_records(events, progress)
    assert len(views) > 1
    assert max(len(msgspec.msgpack.encode(v)) for v in views) <= RECORD_BYTES + 64 * 1024
    assert sum(msgpack_array_len(bytes(v.events)) for v in views) == len(events)
    assert [v.progress for v in views] == [None] * (len(views) - 1) + [progress], "the checkpoint moves last"
    alone = insight_records([], progress)  # progress alone still goes on
    assert len(alone) == 1 and msgpack_array_len(bytes(alone[0].events)) == 0 and alone[0].progress == progress
