"""The windows of one hits partition: which states need a look, and what must be written back.

Fed by: hits (`add`) and the partition's event-time watermark (`advance`; the rule that makes it
from the source partitions' watermarks is `event_time`, used by the windows agent and by the
worker's table views). Feeds: matches, and
`flush()`, the states to write to the RocksDB-backed table (None: delete the key).

Pure bookkeeping around `agents.windows`, shared by the windows agent (agents/match.py) and the
offline runner (agents/offline.py), so both evaluate the same states at the same times. A state
is only looked at when it has hits at or before the watermark that were not evaluated yet, or
when its last hit has aged out of every window (then it is deleted). A state is only written
back when its hits or its quiet period changed: a state whose evaluation moved only `done_to`
is not rewritten, so after a restart its last hits are evaluated again and yield the same
matches, with the same ids (the graph writes them once).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping

from agents.hits import CompiledPattern
from agents.windows import WindowState, add_hits, advance, early, withdrawal
from core.records import Hit, PatternMatch

NEVER = 2**62


def beyond_wall_clock(t_ms: int, wall_ms: int, max_ahead_ms: int) -> bool:
    """The event-time guard: an event time more than `max_ahead_ms` (`match.max_ahead_s`) ahead of
    the wall clock is a broken clock or a forged stamp, and must never move event time.

    Event time only moves forward: one event stamped 9999-12-31 would make every later hit late,
    and windows would never close again. Such an event is rejected, not clamped: clamped to the
    wall clock it would count in a window at a moment it did not happen (false evidence), and the
    stamp it carries says nothing about when it did. The bridge dead-letters it with the reason
    (`app.bridge.decode_messages`) before it is bridged; its `Watermark` and `event_time` below
    also ignore a time beyond the guard, so a stamp stored before the guard existed cannot hold
    event time either."""
    return t_ms > wall_ms + max_ahead_ms


def event_time(sources: Mapping[int, int], partitions: int, lateness_ms: int, *,
               wall_ms: int | None = None, max_ahead_ms: int = 0) -> int:
    """A hits partition's event time, the watermark its windows are evaluated up to: the lowest
    watermark over its source partitions minus the allowed lateness; 0 until every one of the
    `partitions` sources has reported (one that never did may still hold old events). With the
    wall clock (`wall_ms`), a source watermark beyond the guard (`beyond_wall_clock`) counts as
    not reported: event time waits for that source's next, sane, watermark."""
    if wall_ms is not None:
        sources = {s: t for s, t in sources.items() if not beyond_wall_clock(t, wall_ms, max_ahead_ms)}
    if len(sources) < partitions:
        return 0
    return min(sources.values()) - lateness_ms


def within_guard(state: WindowState, horizon_ms: int) -> WindowState | None:
    """A window state stored before the event-time guard existed, touched by a time beyond it
    (`horizon_ms`: the wall clock plus `match.max_ahead_s`), repaired; None when it is not touched.

    Such a time made every later hit of the state late (`done_to` in the year 9999), even after a
    restart. The hits beyond the horizon go (with their evidence and series), `done_to` falls back
    to the newest hit kept (the far time's evaluation covered every hit before it), and a quiet
    period reaching beyond the horizon ends.

    A quiet period alone never marks a state as touched: it runs a pattern's span (up to its
    longest window, 15 minutes and more) past a match, so it legitimately reaches beyond the
    horizon for a while after every match. Its match was at a time the state had evaluated, at
    or before `done_to`: only a `done_to` beyond the horizon makes it suspect. (Treating it as
    touched ended every such quiet period at each worker restart, and the pattern fired again.)"""
    if state.done_to <= horizon_ms and all(e.t <= horizon_ms for entries in state.entries.values() for e in entries):
        return None
    entries = {k: kept for k, v in state.entries.items() if (kept := [e for e in v if e.t <= horizon_ms])}
    ids = {i for v in entries.values() for e in v for i in (e.id, *e.more)}
    return WindowState(
        entries=entries, series={k: v for k, v in state.series.items() if v[1] <= horizon_ms},
        evidence={i: raw for i, raw in state.evidence.items() if i in ids},
        done_to=min(state.done_to, max((v[-1].t for v in entries.values()), default=0)),
        quiet_until=state.quiet_until if state.quiet_until <= horizon_ms else 0,
        episode=state.episode if state.last_hit <= horizon_ms else "",
        last_hit=state.last_hit if state.last_hit <= horizon_ms else 0,
        episode_at=state.episode_at if state.last_hit <= horizon_ms else 0,
        early=state.early if state.early_at <= horizon_ms else "",
        early_at=state.early_at if state.early_at <= horizon_ms else 0,
        early_to=min(state.early_to, horizon_ms))


def _pending(state: WindowState) -> int:
    """The earliest hit time not evaluated yet, or NEVER."""
    return min((e.t for entries in state.entries.values() for e in entries if e.t > state.done_to), default=NEVER)


def _last(state: WindowState) -> int:
    return max((entries[-1].t for entries in state.entries.values() if entries), default=0)


class PartitionWindows:
    def __init__(self, load: Callable[[str], WindowState | None], keys: Iterable[str] = (), *,
                 ahead: bool = False) -> None:
        """`ahead`: keep the times of the hits added, for `early` (the live windows agent with
        `match.early_firing`; the offline runner evaluates final matches only)."""
        self._load = load
        self._ahead = ahead
        self.states: dict[str, WindowState] = {}
        self.due: dict[str, int] = {key: 0 for key in keys}  # key -> event time it next needs a look
        # (due, key) for every due time set; an entry whose time is no longer the key's due is
        # stale and skipped. `advance` pops only what is due instead of scanning every key.
        self._heap: list[tuple[int, str]] = [(0, key) for key in self.due]
        self._dirty: set[str] = set()
        self._added: dict[str, set[int]] = {}  # key -> the times of the hits added since the last `early`

    def _set_due(self, key: str, due: int) -> None:
        if self.due.get(key) != due:
            self.due[key] = due
            heapq.heappush(self._heap, (due, key))
            if len(self._heap) > 4 * len(self.due) + 1024:  # drop stale entries now and then
                self._heap = [(d, k) for k, d in self.due.items()]
                heapq.heapify(self._heap)

    def state(self, key: str, *, watermark: int = 0) -> WindowState:
        """A key's state; a new one starts at the watermark (older hits are late for it too)."""
        state = self.states.get(key)
        if state is None:
            state = self._load(key) or WindowState(done_to=max(watermark, 0))
            self.states[key] = state
        return state

    def add(self, hits: Iterable[Hit], *, watermark: int) -> int:
        """Add hits (any keys); returns how many were late and dropped."""
        late = 0
        by_key: dict[str, list[Hit]] = {}
        for hit in hits:
            by_key.setdefault(f"{hit.pattern}|{hit.key}", []).append(hit)
        for key, key_hits in by_key.items():
            state = self.state(key, watermark=watermark)
            dropped = add_hits(state, key_hits)
            late += dropped
            if dropped < len(key_hits):
                self._dirty.add(key)
                if self._ahead:
                    self._added.setdefault(key, set()).update(h.t for h in key_hits)
                due = self.due.get(key)
                if due is None:  # a state no look is set for: its earliest pending hit
                    self._set_due(key, _pending(state))
                else:  # a due time is never after the state's earliest pending hit: only the new hits can be earlier
                    self._set_due(key, min(due, min(h.t for h in key_hits if h.t > state.done_to)))
        return late

    def advance(self, compiled: dict[str, CompiledPattern], watermark: int) -> list[PatternMatch]:
        """Evaluate every state with hits at or before the watermark; matches in event-time order."""
        found: list[PatternMatch] = []
        heap = self._heap
        looked: list[tuple[int, str]] = []  # pushed back after the loop: each key is looked at once
        while heap and heap[0][0] <= watermark:
            due, key = heapq.heappop(heap)
            if self.due.get(key) != due:
                continue  # stale: the key's due time changed (or it is gone) since this was pushed
            name, _, scope = key.partition("|")
            state = self.state(key)
            pattern = compiled.get(name)
            if pattern is None:  # the pattern was deleted: its state goes with it, and its provisional match
                if state.early:
                    found.append(withdrawal(name, scope, state.early, state.early_at))
                self.states[key] = WindowState()
                self.due.pop(key)
                self._dirty.add(key)
                continue
            before = (state.quiet_until, state.early, sum(len(v) for v in state.entries.values()))
            found.extend(advance(pattern, scope, state, watermark))
            if (state.quiet_until, state.early, sum(len(v) for v in state.entries.values())) != before:
                self._dirty.add(key)
            pending = _pending(state)
            if state.empty():
                self.due.pop(key)
                self._dirty.add(key)
            else:
                next_due = pending if pending != NEVER else _last(state) + pattern.span_ms
                self.due[key] = next_due  # always pushed: this key's entry was just popped
                looked.append((next_due, key))
        for entry in looked:
            heapq.heappush(heap, entry)
        found.sort(key=lambda m: (m.matched_at, m.pattern, m.scope))
        return found

    def early(self, compiled: dict[str, CompiledPattern]) -> list[PatternMatch]:
        """Provisional matches ahead of the watermark (`agents.windows.early`), from the states that took
        hits since the last call; call it after `advance`, so a state's final evaluation comes first."""
        found: list[PatternMatch] = []
        added, self._added = self._added, {}
        for key, times in added.items():
            name, _, scope = key.partition("|")
            pattern, state = compiled.get(name), self.states.get(key)
            if pattern is None or state is None:
                continue
            match = early(pattern, scope, state, times)
            if match is not None:
                found.append(match)
                self._dirty.add(key)  # its provisional match is withdrawn after a restart too
        found.sort(key=lambda m: (m.matched_at, m.pattern, m.scope))
        return found

    def flush(self) -> dict[str, WindowState | None]:
        """The states changed since the last flush; None for a state to delete."""
        out: dict[str, WindowState | None] = {}
        for key in self._dirty:
            state = self.states.get(key)
            if state is None or state.empty():
                self.states.pop(key, None)
                out[key] = None
            else:
                out[key] = state
        self._dirty.clear()
        return out
