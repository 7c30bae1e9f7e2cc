"""How one hits partition's window states are stored: a log of per-batch deltas in one table.

Fed by: the states a batch changed (`PartitionWindows.flush`). Feeds: the table writes and
deletes the windows agent applies (agents/match.py), and, at start or after a rebalance, the
latest state of every key (`load`).

Why a log: a Faust table write costs a changelog record, and one record per changed window per
batch made a burst of warnings (every event a hit on its own pod's window) cost ~330 us of
worker CPU per event. Here a batch writes ONE record, `d:<partition>:<seq>`, holding every state
it changed (b"" for a state deleted). A delta whose every state was written again later is
deleted. A delta still alive has its current states copied into the current one (and is then
deleted) in two cases: the oldest, once it has COMPACT_AFTER newer ones; and, while the live deltas
hold more than GARBAGE times the bytes of what is current in them (plus GARBAGE_SLACK), the one
whose bytes are the least current. So the table holds at most about COMPACT_AFTER deltas and
GARBAGE times the current bytes, and a state that stays unchanged is copied about once per
COMPACT_AFTER batches. Each copy is a changelog record, and Kafka keeps it as long as the topic
keeps records: Tansu, memory-only, keeps every one, so copying costs bytes for good. (Copying
the oldest after 64 deltas, as this log did first, copied a state living for a 5-minute window
every 3 s at 2,000 events/s: 61 % of the bytes the log wrote; benchmarks/window_bytes.py.)

The records are opaque here: agents.windows stores a state's evidence events as records of their
own beside the state (`stored_changes`), so they are written once, not with every change.

A deleted state is not remembered once its older copies are gone; if an older delta still holds
a copy when the worker restarts, that copy comes back. That is harmless by construction: a state
is only deleted when all its hits are older than every window, so the copy is pruned and
deleted again at its first evaluation.

Pure: the caller reads and writes the table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import msgspec

COMPACT_AFTER = 4096  # deltas: about 200 s of batches per partition at 2,000 events/s
GARBAGE = 2.0  # the table holds at most this many times the bytes of its current records...
GARBAGE_SLACK = 4 * 2**20  # ... plus this
_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(dict[str, bytes])


def delta_prefix(partition: int) -> str:
    return f"d:{partition}:"


def delta_key(partition: int, seq: int) -> str:
    return f"{delta_prefix(partition)}{seq:012d}"


def encode_delta(states: dict[str, bytes]) -> bytes:
    return _ENCODER.encode(states)


def decode_delta(data: bytes) -> dict[str, bytes]:
    return _DECODER.decode(data)


_SIZE_BITS = 32  # `WindowLog.where` packs a record's delta seq and its size in one int


class WindowLog:
    def __init__(self, partition: int) -> None:
        self.partition = partition
        self.next_seq = 0
        # state key -> (seq of the delta holding its latest version << _SIZE_BITS) | that version's bytes
        # (key and value). One int, not a set per delta and a dict per field: a hits partition holds
        # a record per evidence event of every state, 170,000 at 2,000 events/s
        self.where: dict[str, int] = {}
        self.live: dict[int, int] = {}  # seq -> how many keys it holds the latest version of
        self.current: dict[int, int] = {}  # seq -> the bytes of the latest versions it holds
        self.stored: dict[int, int] = {}  # seq of a live delta -> its bytes as written
        self.stored_bytes = 0  # sum of `stored`
        self.live_bytes = 0  # sum of `current`

    def holds(self, state_key: str) -> int | None:
        """The seq of the delta holding a key's latest version, or None."""
        at = self.where.get(state_key)
        return None if at is None else at >> _SIZE_BITS

    def load(self, deltas: Iterable[tuple[str, bytes]]) -> dict[str, bytes]:
        """Replay stored deltas (any order): the latest bytes of every state that exists."""
        latest: dict[str, bytes] = {}
        for key, data in sorted(deltas):
            seq = int(key.rsplit(":", 1)[1])
            self.next_seq = max(self.next_seq, seq + 1)
            states = decode_delta(data)
            self._stored(seq, _bytes(states))
            for state_key, state in states.items():
                gone = self._point(state_key, seq if state else None, len(state_key) + len(state))
                if gone is not None and gone != seq:
                    self._stored(gone, None)
                if state:
                    latest[state_key] = state
                else:
                    latest.pop(state_key, None)
            if seq not in self.live:
                self._stored(seq, None)
        return latest

    def _stored(self, seq: int, size: int | None) -> None:
        """Delta `seq` is written with `size` bytes, or (None) deleted."""
        self.stored_bytes += (size or 0) - self.stored.pop(seq, 0)
        if size is not None:
            self.stored[seq] = size

    def _point(self, state_key: str, seq: int | None, size: int = 0) -> int | None:
        """Make `seq` hold `state_key`'s latest version; returns a delta that became empty, if any."""
        at = self.where.pop(state_key, None)
        emptied = None
        if at is not None:
            old, was = at >> _SIZE_BITS, at & ((1 << _SIZE_BITS) - 1)
            self.live_bytes -= was
            self.current[old] -= was
            self.live[old] -= 1
            if not self.live[old]:
                del self.live[old]
                del self.current[old]
                emptied = old
        if seq is not None:
            self.where[state_key] = (seq << _SIZE_BITS) | size
            self.live[seq] = self.live.get(seq, 0) + 1
            self.live_bytes += size
            self.current[seq] = self.current.get(seq, 0) + size
        return emptied

    def _victims(self, seq: int) -> list[int]:
        """The live deltas to copy into delta `seq` (see the module doc): the oldest once it is
        COMPACT_AFTER deltas old; and, when the log holds too much that is not current, the delta
        with the smallest current share."""
        if not self.live:
            return []
        oldest = next(iter(self.live))  # deltas enter `live` in the order of their seq
        victims = [oldest] if seq - oldest > COMPACT_AFTER else []
        if self.stored_bytes > GARBAGE * self.live_bytes + GARBAGE_SLACK:
            current, stored = self.current, self.stored
            worst = min(self.live, key=lambda s: current[s] / max(stored[s], 1))
            if worst not in victims:
                victims.append(worst)
        return victims

    def record(self, changes: dict[str, bytes], read: Callable[[str], bytes | None]
               ) -> tuple[list[tuple[str, bytes]], list[str]]:
        """The writes (one delta) and deletes (emptied deltas) for one batch's changed states.

        `changes` maps a state key to its bytes, or b"" when the state was deleted; `read(key)`
        returns a stored delta (for compaction).
        """
        if not changes:
            return [], []
        seq = self.next_seq
        self.next_seq += 1
        delta = dict(changes)
        victims = self._victims(seq)
        for victim in victims:
            stored = read(delta_key(self.partition, victim))
            for state_key, state in (decode_delta(stored) if stored else {}).items():
                if state and state_key not in delta and self.holds(state_key) == victim:
                    delta[state_key] = state
        emptied: list[int] = []
        for state_key, state in delta.items():
            gone = self._point(state_key, seq if state else None, len(state_key) + len(state))
            if gone is not None and gone != seq:
                emptied.append(gone)
        for victim in victims:
            if victim in self.live:
                # a key the stored delta no longer had (it cannot happen unless the table lost it): let go
                for state_key in [k for k in self.where if self.holds(k) == victim]:
                    self._point(state_key, None)
                emptied.append(victim)
        for gone in emptied:
            self._stored(gone, None)
        deletes = [delta_key(self.partition, s) for s in sorted(set(emptied))]
        if seq not in self.live:
            return [], deletes
        self._stored(seq, _bytes(delta))
        return [(delta_key(self.partition, seq), encode_delta(delta))], deletes


def _bytes(delta: dict[str, bytes]) -> int:
    return sum(len(k) + len(v) for k, v in delta.items())
