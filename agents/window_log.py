"""How one hits partition's window states are stored: a log of per-batch deltas in one table.

Fed by: the states a batch changed (`PartitionWindows.flush`). Feeds: the table writes and
deletes the windows agent applies (agents/match.py), and, at start or after a rebalance, the
latest state of every key (`load`).

Why a log: a Faust table write costs a changelog record, and one record per changed window per
batch made a burst of warnings (every event a hit on its own pod's window) cost ~330 us of
worker CPU per event. Here a batch writes ONE record, `d:<partition>:<seq>`, holding every state
it changed (b"" for a state deleted). A delta whose every state was written again later is
deleted; the oldest delta still alive after COMPACT_AFTER newer ones has its live states copied
into the current one, so the log holds about COMPACT_AFTER deltas and every state once or twice.

A deleted state is not remembered once its older copies are gone; if an older delta still holds
a copy when the worker restarts, that copy comes back. That is harmless by construction: a state
is only deleted when all its hits are older than every window, so the copy is pruned and
deleted again at its first evaluation.

Pure: the caller reads and writes the table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import msgspec

COMPACT_AFTER = 64
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


class WindowLog:
    def __init__(self, partition: int) -> None:
        self.partition = partition
        self.next_seq = 0
        self.where: dict[str, int] = {}  # state key -> seq of the delta holding its latest version
        self.live: dict[int, set[str]] = {}  # seq -> keys whose latest version it holds

    def load(self, deltas: Iterable[tuple[str, bytes]]) -> dict[str, bytes]:
        """Replay stored deltas (any order): the latest bytes of every state that exists."""
        latest: dict[str, bytes] = {}
        for key, data in sorted(deltas):
            seq = int(key.rsplit(":", 1)[1])
            self.next_seq = max(self.next_seq, seq + 1)
            for state_key, state in decode_delta(data).items():
                self._point(state_key, seq if state else None)
                if state:
                    latest[state_key] = state
                else:
                    latest.pop(state_key, None)
        return latest

    def _point(self, state_key: str, seq: int | None) -> int | None:
        """Make `seq` hold `state_key`'s latest version; returns a delta that became empty, if any."""
        old = self.where.pop(state_key, None)
        emptied = None
        if old is not None:
            holders = self.live[old]
            holders.discard(state_key)
            if not holders:
                del self.live[old]
                emptied = old
        if seq is not None:
            self.where[state_key] = seq
            self.live.setdefault(seq, set()).add(state_key)
        return emptied

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
        oldest = min(self.live, default=None)
        if oldest is not None and seq - oldest > COMPACT_AFTER:
            stored = read(delta_key(self.partition, oldest))
            kept = decode_delta(stored) if stored else {}
            for state_key in self.live[oldest]:
                if state_key not in delta and kept.get(state_key):
                    delta[state_key] = kept[state_key]
        emptied: list[int] = []
        for state_key, state in delta.items():
            gone = self._point(state_key, seq if state else None)
            if gone is not None and gone != seq:
                emptied.append(gone)
        if oldest is not None and oldest in self.live and seq - oldest > COMPACT_AFTER:
            # a key the stored delta no longer had (it cannot happen unless the table lost it): let go
            for state_key in list(self.live[oldest]):
                self._point(state_key, None)
            emptied.append(oldest)
        deletes = [delta_key(self.partition, s) for s in sorted(set(emptied))]
        writes = [(delta_key(self.partition, seq), encode_delta(delta))] if seq in self.live else []
        return writes, deletes
