"""How the diagnose stage's state is stored: per raw partition, a log of per-batch deltas of typed items.

Fed by: the items a batch changed in one raw partition's share of the state (`LiveState.take_changes`
in agents/diagnose.py: an object's newest state, one kept Event or log line, an event waiting for
event time, a diagnosis standing, a resolved episode, the newest resolutions). Feeds: the table
writes and deletes of the diagnose stage's shell (agents/diagnose_store.py), and, at start or after
a rebalance, the latest version of every item (`PartitionLog.load`).

Why a log: a Faust table write costs a changelog record and its Python overhead (agents/window_log.py
measured it), and a second of event time changes one item per Event it applies. Here one batch writes
ONE record per raw partition it changed, `d:<partition>:<seq>`: a `Delta`, every item it changed,
None for an item gone. Unlike the windows' log, a deletion is kept as long as it matters: an item
gone (a deleted pod, an Event pushed out, a diagnosis resolved) would otherwise come back at the next
load from an older delta still stored for its other items. So a delta is deleted once none of its
entries is needed: an entry is needed while it is its item's latest version, and for a deletion only
while an older delta still holds a version of the item.

Compaction by occupancy: a delta whose needed entries fell to half of what it holds has them copied
into the current delta and is deleted (at most COMPACT_PER_BATCH a batch; the others wait). So the
stored log holds every live item once, plus at most as much again in dead entries, and an item that
stays (an object that does not change) is not copied again and again; each item is written about
twice in all (log-structured storage with a 50 % cleaning threshold).

Two logs per partition: `d:` for what is kept, `w:` for the events waiting for event time, which
live seconds (apart, a delta of them dies whole and is never copied forward).

What a kill -9 can still bring back: Faust replays a changelog's records written after the last one
it knew Kafka had taken, over the local RocksDB; a delta deleted in that moment (under a second after
it was written) comes back. A delta that comes back holds versions later deltas supersede, or
deletions, or items no delta records the deletion of any more (a waiting event: applied again, it is
kept once; anything else only if it lived under a second).

Pure: the caller reads and writes the table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import msgspec

from agents.diagnosis import ObjectKey
from core.events import RawEvent
from core.records import PatternMatch, Prediction

#: a delta is copied forward and deleted once no more than this share of its entries is needed
COMPACT_AT = 0.5
#: at most this many sparse deltas copied forward per batch (a burst of deletions spreads its cost)
COMPACT_PER_BATCH = 2
_SEP = "\x1f"


class KeptObject(msgspec.Struct, tag="object", kw_only=True, gc=False):
    """An object's newest state."""

    key: ObjectKey
    raw: RawEvent


class KeptEvent(msgspec.Struct, tag="event", kw_only=True, gc=False):
    """An Event or log line kept about an object; `order` breaks ties of time as the state did."""

    key: ObjectKey
    order: int
    raw: RawEvent


class Waiting(msgspec.Struct, tag="waiting", kw_only=True, gc=False):
    """An event received, waiting for event time to pass its second."""

    at_ms: int
    arrived: int
    raw: RawEvent


class Standing(msgspec.Struct, tag="standing", kw_only=True):
    """A diagnosis the stage has sent and not retracted: what it said, as the graph holds it."""

    namespace: str
    prediction: Prediction
    match: PatternMatch


class Ended(msgspec.Struct, tag="ended", kw_only=True, gc=False):
    """The last resolved episode of a diagnosis (its match id): one that comes back is a new episode."""

    namespace: str
    match_id: str
    at_ms: int  # event time it was resolved: the oldest go first when too many are kept


class Gone(msgspec.Struct, tag="gone", kw_only=True, gc=False):
    """An object deleted, and when: what comes again about it from before is not a new object."""

    key: ObjectKey
    at_ms: int


class Resolved(msgspec.Struct, tag="resolved", kw_only=True, gc=False):
    """The newest resolutions sent from a partition, sent again when a worker takes it up."""

    predictions: list[Prediction]


Item = KeptObject | KeptEvent | Waiting | Standing | Ended | Gone | Resolved


class Delta(msgspec.Struct, kw_only=True, gc=False):
    """One stored record: the items a batch changed in one partition, None for an item gone."""

    items: dict[str, Item | None]


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(Delta)


def encode_delta(delta: Delta) -> bytes:
    return _ENCODER.encode(delta)


def decode_delta(data: bytes) -> Delta:
    return _DECODER.decode(data)


# --- item keys: what an item is about, unique within its partition ------------------------------------

RESOLVED_KEY = "r"


def object_key(key: ObjectKey) -> str:
    return _SEP.join(("o", *key))


def event_key(key: ObjectKey, raw: RawEvent) -> str:
    return _SEP.join(("e", *key, raw.timestamp.isoformat(), raw.id))


def gone_key(key: ObjectKey) -> str:
    return _SEP.join(("g", *key))


def waiting_key(at_ms: int, event_id: str) -> str:
    """An event waiting for event time: its time (epoch ms, as `Waiting.at_ms`) and id. (Before
    2026-12-05 the time was in ISO form: `LiveState.restore` moves such an item to this key.)"""
    return f"w{_SEP}{at_ms}{_SEP}{event_id}"


def standing_key(identity: str) -> str:
    return f"s{_SEP}{identity}"


def ended_key(identity: str) -> str:
    return f"x{_SEP}{identity}"


def identity_of(item_key: str) -> str:
    """The diagnosis identity (`family/subject`) of a standing or ended item's key."""
    return item_key.split(_SEP, 1)[1]


# --- delta keys: `<log>:<partition>:<seq>` ------------------------------------------------------------

#: the log of what is kept (objects, Events, diagnoses); and that of the events waiting for event
#: time, which live seconds: apart, a delta of waiting events dies whole and is never copied forward
KEPT, WAITING = "d", "w"


def log_of(item_key: str) -> str:
    return WAITING if item_key.startswith("w" + _SEP) else KEPT


def parse_delta_key(key: str) -> tuple[str, int, int] | None:
    """(log, partition, seq) of a stored delta's key, or None for another key."""
    parts = key.split(":")
    if len(parts) != 3 or parts[0] not in (KEPT, WAITING) or not parts[1].isdigit() or not parts[2].isdigit():
        return None
    return parts[0], int(parts[1]), int(parts[2])


class PartitionLog:
    """The stored deltas of one log of one raw partition, and which of their entries are still needed."""

    def __init__(self, partition: int, log: str = KEPT) -> None:
        self.partition = partition
        self.prefix = f"{log}:{partition}:"
        self.next_seq = 0
        # item key -> stored deltas holding a version, oldest first (a tuple: untracked by the garbage collector)
        self.holders: dict[str, tuple[int, ...]] = {}
        self.entries: dict[int, dict[str, bool]] = {}  # stored delta -> its items (True: a value, False: gone)
        self.needed: dict[int, int] = {}  # stored delta -> how many of its entries are needed
        self.unneeded: set[int] = set()  # deltas none of whose entries is needed: to delete
        self.sparse: set[int] = set()  # deltas at most COMPACT_AT needed: to copy forward

    def __len__(self) -> int:
        return len(self.entries)

    def key(self, seq: int) -> str:
        return f"{self.prefix}{seq:012d}"

    def load(self, deltas: Iterable[tuple[int, Delta]]) -> dict[str, Item]:
        """The stored deltas (any order): the latest version of every item that exists."""
        latest: dict[str, Item] = {}
        for seq, delta in sorted(deltas, key=lambda d: d[0]):
            self.next_seq = max(self.next_seq, seq + 1)
            self._hold(seq, delta.items)
            for key, item in delta.items.items():
                if item is None:
                    latest.pop(key, None)
                else:
                    latest[key] = item
        for seq in self.entries:
            self._check(seq)
        return latest

    def record(self, changes: dict[str, Item | None], read: Callable[[str], Delta | None]
               ) -> tuple[list[tuple[str, Delta]], list[str]]:
        """The write (one delta, or none) and the deletes (deltas no longer needed) for one batch's
        changes to this log's items; `read(delta key)` returns a stored delta, to copy forward."""
        # a deletion of an item no delta holds needs no record
        items = {key: item for key, item in changes.items() if item is not None or key in self.holders}
        lost: set[int] = set()
        for old in sorted(self.sparse)[:COMPACT_PER_BATCH]:
            self.sparse.discard(old)
            if not self.needed.get(old):
                continue  # gone, or deleted below
            stored = read(self.key(old))
            for key, is_value in self.entries[old].items():
                if key in items or self._status(key) != old:
                    continue
                item = stored.items.get(key) if stored is not None else None
                if is_value and item is None:  # the table lost it: its items are gone, let go of them
                    lost.add(old)
                    break
                items[key] = item  # a value, or a deletion an older delta still needs
        if not items and not lost and not self.unneeded:
            return [], []
        seq = self.next_seq
        self.next_seq += 1
        self._hold(seq, items)
        self._check(seq)
        gone = self._drop(lost)
        writes = [(self.key(seq), Delta(items=items))] if seq not in gone else []
        return writes, [self.key(s) for s in sorted(gone) if s != seq]

    def _status(self, key: str) -> int | None:
        """The delta whose entry for `key` is needed, if one is: its latest version, when that is a
        value or a deletion an older delta still needs."""
        holders = self.holders.get(key)
        if not holders:
            return None
        latest = holders[-1]
        return latest if self.entries[latest][key] or len(holders) > 1 else None

    def _hold(self, seq: int, items: dict[str, Item | None]) -> None:
        self.entries[seq] = {}
        self.needed[seq] = 0
        for key, item in items.items():
            before = self._status(key)
            self.holders[key] = (*self.holders.get(key, ()), seq)
            self.entries[seq][key] = item is not None
            self._moved(before, self._status(key))

    def _moved(self, before: int | None, after: int | None) -> None:
        """An item's needed entry moved from one delta to another (or to none, or from none)."""
        if before == after:
            return
        if after is not None:
            self.needed[after] += 1
            self.unneeded.discard(after)
        if before is not None and before in self.needed:
            self.needed[before] -= 1
            self._check(before)

    def _check(self, seq: int) -> None:
        if not self.needed[seq]:
            self.unneeded.add(seq)
            self.sparse.discard(seq)
        elif self.needed[seq] <= len(self.entries[seq]) * COMPACT_AT:
            self.sparse.add(seq)

    def _drop(self, lost: set[int]) -> set[int]:
        """Forget the deltas not needed (and `lost`), and those needed no more once they are gone;
        returns every one forgotten."""
        gone: set[int] = set()
        todo = lost | self.unneeded
        while todo:
            seq = todo.pop()
            self.unneeded.discard(seq)
            if seq not in self.entries:
                continue
            gone.add(seq)
            entries = self.entries[seq]
            del self.needed[seq]  # its own entries count no more
            for key in entries:
                before = self._status(key)
                holders = tuple(h for h in self.holders[key] if h != seq)
                if holders:
                    self.holders[key] = holders
                else:
                    del self.holders[key]
                self._moved(None if before == seq else before, self._status(key))
            del self.entries[seq]
            todo |= self.unneeded
        self.sparse -= gone
        return gone
