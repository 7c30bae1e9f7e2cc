"""The diagnose stage's state kept in a RocksDB-backed Faust table, so a restarted worker goes on where it was.

Fed by: the raw partitions this worker reads (`assign`, after each rebalance), and each raw batch
with the stage's transform (`take`). Feeds: table `tapio-diagnose` (per raw partition, the log of
agents/diagnose_log.py), and the transform's output, with, at the first batch after the state was
taken up, what it sends again (`LiveState.sent_again`).

The stage's state (agents/diagnose.py `LiveState`) is in memory, as the worker's union of the raw
partitions it reads (event time waits for all of them; a Node in one partition changes a diagnosis
in another). What it keeps is stored per raw partition, as the bridge places events: an object, its
Events and log lines and its diagnoses on its namespace's partition, an event waiting for event time
on the partition it came on. Each batch writes, per partition it changed, one delta, in that
partition of the table, so its changelog partition moves with the raw partition on a rebalance.
A second of event time is applied while reading one partition's batch but changes the others' share
too: those writes are made as if reading a batch of their own partition (`TableShelf`: Faust takes
the partition of a table write from the event being read).

When the state is taken up (the first batch after the worker started or a rebalance), it is rebuilt
from the table, not from Kafka: after a Kafka reset or loss (every topic and changelog recreated
empty, app.restart) the local RocksDB still holds it. A batch read again (a restart re-reads what
was not committed; the bridge bridges a range again) finds its events kept already and changes
nothing (agents/diagnose.py `keep`, and `LiveState.wait` for events still waiting). What the previous
process computed but Kafka may not have taken before it died (its state written, its output not yet)
is sent again: every diagnosis standing and each partition's newest resolutions.

What is kept only in memory: an object whose namespace's partition this worker does not read (an
Event about an object of another namespace group) - another worker owns that share - and the
watermarks (each partition's next batch brings its own; event time only waits for it).

A batch whose transform fails (a bug) leaves the memory state unknown: it is rebuilt from the table
at the next batch, which holds what was written before.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple, Protocol

import msgspec
from faust import streams as faust_streams

from agents.diagnose import LiveState
from agents.diagnose_log import (
    KEPT,
    WAITING,
    Delta,
    Item,
    PartitionLog,
    decode_delta,
    encode_delta,
    log_of,
    parse_delta_key,
)
from core.records import InsightBatch, RawBatch

log = logging.getLogger(__name__)

TABLE = "tapio-diagnose"
#: what Faust reads the event being processed from (faust.streams.current_event); read here at import,
#: so that a Faust without it stops the worker at start, not every batch of the stage
_CURRENT_EVENT = faust_streams._current_event

Diagnose = Callable[[LiveState, RawBatch, int], tuple[InsightBatch | None, list[tuple[msgspec.Struct, str, str]]]]


class Shelf(Protocol):
    """Where the deltas are stored: one keyed store per raw partition."""

    def deltas(self) -> Iterable[tuple[str, bytes]]:
        """Every stored delta of the partitions this worker holds (key `d:<partition>:<seq>`)."""

    def get(self, partition: int, key: str) -> bytes | None: ...

    def put(self, partition: int, key: str, value: bytes) -> None: ...

    def delete(self, partition: int, key: str) -> None: ...


class DiagnoseStore:
    """The stage's LiveState, its partitions' logs and the shelf they are stored on."""

    def __init__(self, shelf: Shelf, home: Callable[[str], int]) -> None:
        self.shelf = shelf
        self.home = home
        self.partitions: set[int] = set()
        self.state: LiveState | None = None  # None: taken up (again) from the shelf at the next batch
        self.logs: dict[tuple[int, str], PartitionLog] = {}  # (partition, KEPT or WAITING) -> its log
        self.applied_until_ms = 0  # for a state not taken up yet: the last one's

    def assign(self, partitions: Iterable[int]) -> None:
        """The raw partitions this worker reads now: the state is taken up again at the next batch
        (a partition moved away is no longer ours; one moved here holds what its last worker wrote)."""
        self.partitions = set(partitions)
        self.drop()

    def drop(self) -> None:
        if self.state is not None:
            self.applied_until_ms = self.state.applied_until_ms
        self.state = None

    def take(self, batch: RawBatch, partition: int, diagnose: Diagnose
             ) -> tuple[InsightBatch | None, list[tuple[msgspec.Struct, str, str]]]:
        """One raw batch through the stage: the state taken up first if it must be, the batch
        diagnosed, what it changed written."""
        again: tuple[list, list] = ([], [])
        if self.state is None:
            self.state = self.load()
            again = self.state.sent_again()
        try:
            out, rejected = diagnose(self.state, batch, partition)
            self.write(self.state.take_changes())
        except Exception:
            self.drop()
            raise
        if again[0] or again[1]:
            log.info("diagnose: state of partitions %s taken up (%d objects, %d diagnoses standing); "
                     "the standing diagnoses and newest resolutions sent again (the graph merges them by id)",
                     sorted(self.partitions), len(self.state.objects), len(self.state.standing))
            out = InsightBatch(matches=again[0] + (out.matches if out else []),
                               predictions=again[1] + (out.predictions if out else []), watermark=batch.watermark)
        return out, rejected

    def load(self) -> LiveState:
        """The state of the partitions held, from the shelf."""
        self.logs = {(p, which): PartitionLog(p, which) for p in self.partitions for which in (KEPT, WAITING)}
        deltas: dict[tuple[int, str], list[tuple[int, Delta]]] = {where: [] for where in self.logs}
        for key, data in self.shelf.deltas():
            parsed = parse_delta_key(key)
            if parsed is not None and (parsed[1], parsed[0]) in deltas and data:
                deltas[(parsed[1], parsed[0])].append((parsed[2], decode_delta(data)))
        items: dict[int, dict[str, Item]] = {p: {} for p in self.partitions}
        for (partition, which), found in deltas.items():
            items[partition] |= self.logs[(partition, which)].load(found)
        state = LiveState(home=self.home, track=True)
        state.restore(items)
        state.assign(self.partitions)
        state.applied_until_ms = self.applied_until_ms
        return state

    def write(self, changes: dict[int, dict[str, Item | None]]) -> None:
        """Each partition's changes as one delta per log in that partition; deltas no longer needed deleted."""
        for partition, items in sorted(changes.items()):
            if partition not in self.partitions:
                continue  # a partition another worker reads: memory only (see the module docstring)
            split: dict[str, dict[str, Item | None]] = {KEPT: {}, WAITING: {}}
            for key, item in items.items():
                split[log_of(key)][key] = item
            for which, part in split.items():
                self._record(self.logs[(partition, which)], part)

    def _record(self, plog: PartitionLog, items: dict[str, Item | None]) -> None:
        def read(key: str) -> Delta | None:
            data = self.shelf.get(plog.partition, key)
            return decode_delta(data) if data else None
        writes, deletes = plog.record(items, read)
        for key, delta in writes:
            self.shelf.put(plog.partition, key, encode_delta(delta))
        for key in deletes:
            self.shelf.delete(plog.partition, key)


class _Message(NamedTuple):
    topic: str
    partition: int


class _Reading:
    """What Faust reads of the event being processed to place a table write: its message's topic and partition."""

    __slots__ = ("message", "__weakref__")

    def __init__(self, topic: str, partition: int) -> None:
        self.message = _Message(topic, partition)


class TableShelf:
    """The deltas in a Faust table (bytes keys and values, co-partitioned with `raw`).

    Faust puts a table write in the partition of the event being processed (its RocksDB store and
    its changelog record alike). A write to another partition is made as if reading that
    partition's event (`faust.streams._current_event`, set for the write only): the state of a
    namespace stays in its partition whichever batch moved event time."""

    def __init__(self, table: Any, topic: str) -> None:
        self.table = table
        self.topic = topic

    @contextmanager
    def _in(self, partition: int) -> Iterator[None]:
        reading = _Reading(self.topic, partition)
        token = _CURRENT_EVENT.set(weakref.ref(reading))
        try:
            yield
        finally:
            _CURRENT_EVENT.reset(token)

    def deltas(self) -> Iterable[tuple[str, bytes]]:
        for key, value in self.table.items():
            yield (key.decode() if isinstance(key, bytes) else key), value

    def get(self, partition: int, key: str) -> bytes | None:
        with self._in(partition):
            return self.table.get(key)  # type: ignore[no-any-return]

    def put(self, partition: int, key: str, value: bytes) -> None:
        with self._in(partition):
            self.table[key] = value

    def delete(self, partition: int, key: str) -> None:
        with self._in(partition):
            del self.table[key]
