"""The diagnose stage's state survives a restart (agents/diagnose_store.py): pure, no servers.

The labelled diagnosis cases, one after the other (each incident, then its healthy twin, so that
diagnoses are made, updated and resolved), go as the bridge sends them (every round a batch to each
of 4 raw partitions, a namespace on its partition) through the stage once without a fault, and once
with the worker restarted every few batches: a new process, with the same table and nothing in
memory, reading again the batches after its last commit. The diagnoses and the state at the end
are the same. Without the table, a restarted worker says other things (the kill test's failure).
"""

from __future__ import annotations

import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from diagnose_inputs import incident_and_pod_deletion

from agents.diagnose import LiveState, diagnose_batch
from agents.diagnose_store import DiagnoseStore
from agents.diagnosis.observed import key_of
from app.analyze import read
from app.diagnosis_backtest import find_cases, inputs_of
from collectors.replay import shifted
from core.events import CLUSTER_SCOPE, RawEvent, epoch_ms
from core.kube.objects import raw_event_from_object
from core.records import InsightBatch, Prediction, RawBatch

ROOT = Path(__file__).resolve().parents[1]
PARTITIONS = 4
CASES = [c for c in find_cases([ROOT / "patterns" / "scenarios" / "diagnosis"])]


def home(namespace: str) -> int:
    """The bridge's placement (app.bridge.partition_for)."""
    return zlib.crc32((namespace or CLUSTER_SCOPE).encode()) % PARTITIONS


def _stream() -> list[RawEvent]:
    """Every incident, all ending at one moment (their diagnoses stand together), and the healthy twin
    of every other one half an hour later (the incident recovered: its diagnoses are resolved)."""
    incidents = sorted((c for c in CASES if c.labels.incident), key=lambda c: c.labels.case)
    twins = {c.labels.case: c for c in CASES if not c.labels.incident}
    end = max(e.timestamp for c in incidents for e in read(inputs_of(c)).events)
    out: list[RawEvent] = []
    for i, case in enumerate(incidents):
        for which, at in [(case, end), *([(twins[f"{case.labels.case}-healthy"], end + timedelta(minutes=30))]
                                          if i % 2 and f"{case.labels.case}-healthy" in twins else [])]:
            events = read(inputs_of(which)).events
            if events:
                out.extend(shifted(events, at - max(e.timestamp for e in events)))
    return sorted(out, key=lambda e: e.timestamp)


def _rounds(events: list[RawEvent], size: int = 15) -> list[tuple[RawBatch, int]]:
    """As the bridge sends them: per round, one batch to every partition, with the watermark."""
    out: list[tuple[RawBatch, int]] = []
    for start in range(0, len(events), size):
        chunk = events[start:start + size]
        watermark = epoch_ms(chunk[-1].timestamp)
        for p in range(PARTITIONS):
            mine = [e for e in chunk if home(e.metadata.get("namespace", "")) == p]
            out.append((RawBatch(events=mine, watermark=watermark), p))
    end = epoch_ms(events[-1].timestamp) + 3_600_000
    # the bridge goes on sending rounds: a worker restarted at the end waits for every partition's
    out.extend((RawBatch(events=[], watermark=end), p) for _ in range(2) for p in range(PARTITIONS))
    return out


class DictShelf:
    """A table in a dict: one keyed store per partition, bytes as RocksDB holds them."""

    def __init__(self) -> None:
        self.data: dict[int, dict[str, bytes]] = {}

    def deltas(self):  # type: ignore[no-untyped-def]
        return [(k, v) for part in self.data.values() for k, v in part.items()]

    def get(self, partition: int, key: str) -> bytes | None:
        return self.data.get(partition, {}).get(key)

    def put(self, partition: int, key: str, value: bytes) -> None:
        assert key.split(":")[1] == str(partition)
        self.data.setdefault(partition, {})[key] = value

    def delete(self, partition: int, key: str) -> None:
        self.data.get(partition, {}).pop(key, None)


def _diagnose(state: LiveState, batch: RawBatch, partition: int) -> tuple[InsightBatch | None, list]:
    return diagnose_batch(state, batch, partition=partition)


def _last_word(out: dict[str, Prediction], found: InsightBatch | None) -> None:
    if found is not None:
        out |= {p.id: p for p in found.predictions}


def _state(state: LiveState) -> dict:
    return {"objects": state.objects, "events": {k: list(v) for k, v in state.events.items() if v},
            "standing": state.standing, "ended": {k: e.match_id for k, e in state.ended.items()},
            "waiting": sorted((at, raw.id) for at, _, raw in state.buffer),
            "by_namespace": {k: v for k, v in state.by_namespace.items() if v}}


@pytest.fixture(scope="module")
def rounds() -> list[tuple[RawBatch, int]]:
    return _rounds(_stream())


@pytest.fixture(scope="module")
def baseline(rounds: list[tuple[RawBatch, int]]) -> tuple[dict[str, Prediction], dict]:
    state = LiveState(home=home)
    state.assign(range(PARTITIONS))
    out: dict[str, Prediction] = {}
    for batch, p in rounds:
        found, rejected = _diagnose(state, batch, p)
        assert rejected == []
        _last_word(out, found)
    return out, _state(state)


def _restarted(rounds: list[tuple[RawBatch, int]], every: int, again: int, *, table: bool = True
               ) -> tuple[dict[str, Prediction], LiveState, int]:
    """The stream with the worker restarted every `every` batches, reading again the last `again`."""
    shelf = DictShelf()
    out: dict[str, Prediction] = {}
    store = DiagnoseStore(shelf, home)
    store.assign(range(PARTITIONS))
    i, restarts, taken = 0, 0, 0
    while i < len(rounds):
        batch, p = rounds[i]
        found, rejected = store.take(batch, p, _diagnose)
        assert rejected == []
        _last_word(out, found)
        i, taken = i + 1, taken + 1
        if taken % every == 0 and i < len(rounds):
            store = DiagnoseStore(shelf if table else DictShelf(), home)  # a new process: the table, no memory
            store.assign(range(PARTITIONS))
            i -= again  # what it had not committed
            restarts += 1
    assert store.state is not None
    return out, store.state, restarts


@pytest.mark.parametrize(("every", "again"), [(7, 0), (13, 5), (50, 23)])
def test_a_restarted_worker_says_what_one_that_ran_on_says(rounds, baseline, every: int, again: int) -> None:  # type: ignore[no-untyped-def]
    expected, state = baseline
    assert sum(p.resolved_at is None for p in expected.values()) >= 20
    assert sum(p.resolved_at is not None for p in expected.values()) >= 20
    got, restored, restarts = _restarted(rounds, every, again)
    assert restarts >= len(rounds) // every
    assert got == expected
    assert _state(restored) == state


def test_without_its_table_a_restarted_worker_says_other_things(rounds, baseline) -> None:  # type: ignore[no-untyped-def]
    """What the kill test saw before the state was stored: the restart forgets the objects seen before."""
    expected, _ = baseline
    got, _, _ = _restarted(rounds, 50, 0, table=False)
    assert got != expected


# --- bounded, and at least once: what comes again changes nothing ---------------------------------------

CASE = ROOT / "patterns" / "scenarios" / "diagnosis" / "containers" / "missing-env-var"


def _pod(name: str, second: int) -> RawEvent:
    at = datetime(2026, 11, 26, 7, 0, second, tzinfo=UTC)
    return raw_event_from_object({"kind": "Pod", "metadata": {"name": name, "namespace": "shop", "uid": name}},
                                 action="SNAPSHOT", source="test", undated_at=at)


def test_a_partition_keeps_its_most_recent_objects(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("agents.diagnose.KEEP_OBJECTS", 3)
    state = LiveState(home=home, track=True)
    for second, name in enumerate(["a", "b", "c", "d", "e"]):
        state.add([_pod(name, second)])
    assert sorted(k.name for k in state.objects) == ["c", "d", "e"]
    changes = state.take_changes()[home("shop")]
    assert [k.split("\x1f")[-1] for k, item in changes.items() if k.startswith("o") and item is None] == ["a", "b"]
    state.add([_pod("a", 9)])  # the newest now: the least recent goes
    assert sorted(k.name for k in state.objects) == ["a", "d", "e"]


def test_what_comes_again_about_a_deleted_object_does_not_bring_it_back() -> None:
    incident, deleted, at = incident_and_pod_deletion()
    end = epoch_ms(at) + 60_000
    state = LiveState()
    for events in (incident, [deleted]):
        diagnose_batch(state, RawBatch(events=events, watermark=end))
    assert state.standing == {}
    again, _ = diagnose_batch(state, RawBatch(events=incident, watermark=end + 1))  # the bridge bridges them again
    assert again is None and state.standing == {} and not any(k.name == deleted.metadata["name"] for k in state.objects)


def test_an_event_that_would_have_expired_is_not_kept_when_it_comes_again() -> None:
    incident = read([str(CASE)]).events
    state = LiveState()
    end = epoch_ms(max(e.timestamp for e in incident)) + 60_000
    diagnose_batch(state, RawBatch(events=incident, watermark=end))
    later = shifted(incident, timedelta(hours=3))
    diagnose_batch(state, RawBatch(events=later, watermark=end + 3 * 3_600_000))
    kept = {e.id for v in state.events.values() for e in v}
    again, _ = diagnose_batch(state, RawBatch(events=incident, watermark=end + 3 * 3_600_000 + 1))
    assert again is None and {e.id for v in state.events.values() for e in v} == kept


def test_a_write_to_another_partition_is_placed_there_as_faust_places_it() -> None:
    """Faust puts a table write (its RocksDB store and its changelog record) in the partition of the
    event being read; the shelf writes a partition's delta as if reading that partition's event,
    whichever batch is being read, and leaves the event being read as it was."""
    from faust import streams

    from agents.diagnose_store import TableShelf

    class Table(dict):
        placed: list[tuple[str, str, int]] = []

        def __setitem__(self, key: str, value: bytes) -> None:
            event = streams.current_event()
            assert event is not None
            self.placed.append((key, event.message.topic, event.message.partition))
            super().__setitem__(key, value)

    shelf = TableShelf(Table(), "raw")
    assert streams.current_event() is None
    shelf.put(3, "d:3:000000000001", b"x")
    assert Table.placed == [("d:3:000000000001", "raw", 3)] and streams.current_event() is None


def test_an_event_stored_waiting_under_the_older_key_waits_once_and_leaves_no_stale_record() -> None:
    """Before 2026-12-05 a waiting event's key held its time in ISO form; a table written then is
    taken up: the event waits once, is applied once, and the next writes move it to the current key
    (the older key's record deleted), so no delta keeps it forever."""
    from agents.diagnose_log import WAITING, Delta, Waiting, encode_delta

    event = _pod("early", 5)
    at = epoch_ms(event.timestamp)
    old_key = "\x1f".join(("w", event.timestamp.isoformat(), event.id))
    shelf = DictShelf()
    p = home("shop")
    shelf.put(p, f"{WAITING}:{p}:000000000000", encode_delta(Delta(items={old_key: Waiting(at_ms=at, arrived=0,
                                                                                            raw=event)})))
    store = DiagnoseStore(shelf, home)
    store.assign(range(PARTITIONS))
    store.take(RawBatch(events=[event], watermark=at), p, _diagnose)  # delivered again while it waits
    assert store.state is not None and [raw.id for _, _, raw in store.state.buffer] == [event.id]
    stored = [k for part in shelf.data.values() for k in part if k.startswith(f"{WAITING}:")]
    assert len(stored) == 1, "the older record is replaced by one under the current key"
    restored = DiagnoseStore(shelf, home)  # a restart: the table alone
    restored.assign(range(PARTITIONS))
    restored.take(RawBatch(events=[], watermark=at), p, _diagnose)
    assert restored.state is not None and [raw.id for _, _, raw in restored.state.buffer] == [event.id]
    for q in range(PARTITIONS):  # event time passes it on every partition: applied, kept once
        restored.take(RawBatch(events=[], watermark=at + 60_000), q, _diagnose)
    assert restored.state.buffer == [] and list(restored.state.objects) == [key_of(event)]
    assert not [k for part in shelf.data.values() for k in part if k.startswith(f"{WAITING}:")]
