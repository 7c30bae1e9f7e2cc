"""Event-time windows: the stateful half of matching, one `WindowState` per (pattern, scope key).

Fed by: `Hit`s (from `agents.hits`) and the event-time watermark. Feeds: `PatternMatch`es.

How a pattern holds (see agents/patterns.py for the schema): at an event time t, each condition
looks at its hits in (t - window, t]; a sequence at a `first` hit ta and its `then` hits in
(ta, ta + within] up to t. With `match: all` every required condition holds at the same t; with
`any`, one. The match is the FIRST t at which the pattern holds, found only once the watermark
has passed t, so the result depends on the hits, not on how fast or in which interleaving they
arrived: a replay at full speed finds what live processing found. After a match the pattern is
quiet in that scope for its longest window (one match per pattern and scope per window).

Episodes: a match after the quiet period, when no silence longer than the pattern's span (no hit
of the scope) came between it and the previous match, is the same incident going on: it keeps the
id of the episode's first match, so its predictions update the episode's (same ids, a newer `at`)
instead of adding one per window. After such a silence a match starts a new episode, with an id of
its own (pattern, scope, time).

Ahead of the watermark (`early`, `match.early_firing`): waiting for the watermark delays every
match by the allowed lateness (10 s by default), while most hits arrive in order. So, as Flink's
early-firing triggers and Kafka Streams' emit-on-update do, a state whose new hits make the pattern
hold starts a provisional match at once, from the hits in so far: the same id the final evaluation
gives a new episode at that time. The final evaluation stays the only truth: once event time passes
the provisional time it confirms the match (a final match of the same id) or withdraws it (a
`withdrawn` record: a late hit made the pattern hold earlier, or a non-monotone condition, a metric
or a rate below a bound, stopped holding). A state has at most one provisional match at a time, and
only a new episode is sent ahead (an open episode's update already has its predictions in the
graph). A replay ends with every provisional match confirmed or withdrawn: the same graph as live.

Counting: a `count`/`rate` condition counts occurrences. A repeated Kubernetes Event (a series:
same object, reason, message) adds the increase of its `count` since its last observation held
here, or its whole `count` when first seen. `distinct` counts distinct values instead. A hit
is counted once: one the state already holds (same condition, role, time, event id), such as a
hits batch read again after a rebalance, adds nothing.

State stays bounded: a state keeps the bytes of at most MAX_KEPT_EVIDENCE events (a match's
other event ids are linked to the events the graph already holds; in the windows table each
event's bytes are a record of their own, written once: `stored_changes`), hits older than the pattern's
span are pruned at every advance, hits of the same time, series and distinct value are merged into
one entry (keeping their ids, at most MAX_MERGED per entry), and a list never holds more
than MAX_ENTRIES (the oldest go first). A hit at or before the last evaluated time is late and
is dropped (counted by the caller); the allowed lateness is applied to the watermark upstream.

Pure: no Faust, no I/O. The match stage keeps states in a RocksDB-backed table.
"""

from __future__ import annotations

import bisect
from collections.abc import Collection, Iterable
from datetime import UTC, datetime

import msgspec

from agents.hits import CompiledCondition, CompiledPattern
from agents.patterns import CountCondition, EventCondition, MetricCondition, RateCondition, SequenceCondition
from core.events import K8sContext, UnifiedEvent, content_id
from core.records import Hit, Link, PatternMatch

MAX_ENTRIES = 2000
MAX_MERGED = 256  # hits one entry merges; the next one of the same time starts an entry of its own
MAX_EVIDENCE = 50  # events (and links) a match carries
MAX_KEPT_EVIDENCE = 64  # events a state keeps the bytes of: its changelog record stays small
_OPS = {"gt": float.__gt__, "gte": float.__ge__, "lt": float.__lt__, "lte": float.__le__}


class Entry(msgspec.Struct, array_like=True, gc=False):
    t: int
    w: int  # occurrences
    id: str
    d: str = ""  # distinct value
    v: float = 0.0  # metric sample
    # ids of the other hits merged into this entry (same time, distinct value, sample). Tuples here and
    # in `series`: the garbage collector stops tracking a tuple of strings or ints, and a busy worker
    # holds hundreds of thousands of them (a list each made its full collections take ~200 ms)
    more: tuple[str, ...] = ()


class WindowState(msgspec.Struct, kw_only=True, gc=False, omit_defaults=True):
    entries: dict[str, list[Entry]] = {}  # "<condition fp>:<role>" -> entries sorted by t
    series: dict[str, tuple[int, int]] = {}  # "<fp>:<series>" -> (max count, last t)
    evidence: dict[str, msgspec.Raw] = {}  # event id -> the UnifiedEvent's MessagePack bytes
    done_to: int = 0  # every t <= done_to has been evaluated
    quiet_until: int = 0
    episode: str = ""  # the id of the matches of the current episode (its first match's); "" when none is open
    last_hit: int = 0  # the newest hit time evaluated
    episode_at: int = 0  # the event time of the episode's first match
    early: str = ""  # the id of the provisional match sent ahead of the watermark, until event time passes it
    early_at: int = 0  # its event time
    early_to: int = 0  # hit times up to here were looked at ahead of the watermark

    def empty(self) -> bool:
        return not any(self.entries.values())


def add_hits(state: WindowState, hits: Iterable[Hit]) -> int:
    """Add hits to the state; returns how many were late (at or before `done_to`) and dropped.

    A hit the state already holds (same condition, role, time and event id) is not counted
    again: delivery is at least once, so after a rebalance or a restart a worker re-reads the
    hits batches since the last committed offset, while the table it recovered already holds
    what they added.
    """
    late = 0
    for hit in hits:
        if hit.t <= state.done_to:
            late += 1
            continue
        entries = state.entries.setdefault(f"{hit.cond}:{hit.role}", [])
        if _holds(entries, hit.t, hit.id):
            continue
        weight = 1
        if hit.series:
            skey = f"{hit.cond}:{hit.series}"
            seen = state.series.get(skey)
            weight = hit.count if seen is None else max(hit.count - seen[0], 0)
            state.series[skey] = (max(hit.count, seen[0] if seen else 0), max(hit.t, seen[1] if seen else 0))
            if weight == 0:
                continue  # the same observation again (a redelivery or an unchanged relist)
        _insert(entries, Entry(t=hit.t, w=weight, id=hit.id, d=hit.distinct, v=hit.value))
        if len(state.evidence) < MAX_KEPT_EVIDENCE and hit.id not in state.evidence:
            # a copy: the decoded Raw is a view that would keep the whole hits record alive with it
            state.evidence[hit.id] = hit.event.copy()
    return late


def _holds(entries: list[Entry], t: int, event_id: str) -> bool:
    """Whether an entry of time t already counts the event `event_id`."""
    for j in range(bisect.bisect_right(entries, t, key=lambda e: e.t) - 1, -1, -1):
        other = entries[j]
        if other.t != t:
            return False
        if other.id == event_id or event_id in other.more:
            return True
    return False


def _insert(entries: list[Entry], entry: Entry) -> None:
    i = bisect.bisect_right(entries, entry.t, key=lambda e: e.t)
    for j in range(i - 1, -1, -1):  # merge with an entry of the same time and distinct value
        other = entries[j]
        if other.t != entry.t:
            break
        if other.d == entry.d and other.v == entry.v and len(other.more) < MAX_MERGED:
            other.w += entry.w
            other.more = (*other.more, entry.id)
            return
    entries.insert(i, entry)
    if len(entries) > MAX_ENTRIES:
        del entries[0]


def _window(entries: list[Entry], start: int, end: int) -> list[Entry]:
    """Entries with start < t <= end."""
    lo = bisect.bisect_right(entries, start, key=lambda e: e.t)
    hi = bisect.bisect_right(entries, end, key=lambda e: e.t)
    return entries[lo:hi]


class Held(msgspec.Struct, gc=False):
    count: int
    entries: list[Entry]
    links: list[Link] = []


def evaluate(cond: CompiledCondition, state: WindowState, t: int) -> Held | None:
    """Whether one condition holds at event time t, with what it counted and the entries it used."""
    spec = cond.spec
    if isinstance(spec, SequenceCondition):
        firsts = _window(state.entries.get(f"{cond.fp}:first", []), t - cond.window_ms, t)
        thens = state.entries.get(f"{cond.fp}:then", [])
        for first in firsts:
            after = _window(thens, first.t, min(first.t + cond.window_ms, t))
            occurrences = sum(e.w for e in after)
            if occurrences >= spec.at_least:
                links = [Link(cause=first.id, effect=e.id, delay_s=(e.t - first.t) / 1000) for e in after
                         if e.id != first.id][:MAX_EVIDENCE]
                return Held(count=occurrences, entries=[first, *after], links=links)
        return None
    inside = _window(state.entries.get(f"{cond.fp}:", []), t - cond.window_ms, t)
    if not inside:
        return None
    if isinstance(spec, EventCondition):
        return Held(count=sum(e.w for e in inside), entries=inside)
    if isinstance(spec, CountCondition):
        count = len({e.d for e in inside if e.d}) if spec.distinct else sum(e.w for e in inside)
        return Held(count=count, entries=inside) if count >= spec.at_least else None
    if isinstance(spec, RateCondition):
        count = sum(e.w for e in inside)
        rate = count / (cond.window_ms / 60000)
        return Held(count=count, entries=inside) if _OPS[spec.operator](float(rate), spec.per_minute) else None
    if isinstance(spec, MetricCondition):  # every sample passes, and the samples cover most of the window
        covers = t - inside[0].t >= 0.75 * cond.window_ms
        ok = covers and all(_OPS[spec.operator](float(e.v), float(spec.value)) for e in inside)
        return Held(count=len(inside), entries=inside) if ok else None
    raise TypeError(f"unknown condition type {type(spec).__name__}")


def holds(pattern: CompiledPattern, state: WindowState, t: int) -> tuple[list[Held], float] | None:
    """The required conditions that decide the match and the optional ones that boost it, or None."""
    required: list[Held] = []
    boost = 0.0
    optional: list[Held] = []
    any_required = False
    for cond in pattern.conditions:
        held = evaluate(cond, state, t)
        if cond.spec.required:
            if held is None and pattern.pattern.spec.match == "all":
                return None
            if held is not None:
                any_required = True
                required.append(held)
        elif held is not None:
            optional.append(held)
            boost += cond.spec.boost
    if not any_required:
        return None
    return required + optional, round(boost, 4)


def advance(pattern: CompiledPattern, key: str, state: WindowState, watermark: int) -> list[PatternMatch]:
    """Evaluate every hit time in (done_to, watermark], in order; prune what no window can use again.
    A provisional match whose time is now evaluated is confirmed (a match of its id is found) or
    withdrawn (a `withdrawn` record among the matches)."""
    matches: list[PatternMatch] = []
    if watermark <= state.done_to:
        return matches
    times = sorted({e.t for entries in state.entries.values() for e in entries if state.done_to < e.t <= watermark})
    for t in times:
        if t - state.last_hit > pattern.span_ms:
            state.episode = ""  # a silence longer than the pattern's span ended the episode
        state.last_hit = max(state.last_hit, t)
        if t < state.quiet_until:
            continue
        found = holds(pattern, state, t)
        if found is None:
            continue
        helds, boost = found
        if not state.episode:
            state.episode = content_id("match", pattern.name, key, str(t))  # a new episode
            state.episode_at = t
        matches.append(_match(pattern, key, state, t, helds, boost))
        if matches[-1].id == state.early:
            state.early = ""  # the provisional match confirmed: this one, final, replaces it in the graph
        state.quiet_until = t + pattern.span_ms
    state.done_to = watermark
    # withdrawn once evaluated and not confirmed, or as soon as a final match's quiet period covers it (a
    # late hit made the pattern hold sooner): it can no longer be confirmed, and it would stand beside the
    # final match until event time reaches it (two predictions of one incident)
    if state.early and (state.early_at <= watermark or state.early_at < state.quiet_until):
        matches.append(_withdrawn(pattern, key, state.early, state.early_at))
        state.early = ""
    _prune(state, watermark - pattern.span_ms)
    return matches


def early(pattern: CompiledPattern, key: str, state: WindowState, new_times: Iterable[int]) -> PatternMatch | None:
    """A provisional match ahead of the watermark, when the pattern holds at one of `new_times` (the
    times of the hits a batch just added) beyond what was evaluated and looked at, and a match there
    would start a new episode; None otherwise. At most one per state until the final evaluation
    passes it (see the module docstring)."""
    if state.early:
        return None
    looked = max(state.done_to, state.early_to)
    times = sorted({t for t in new_times if t > looked})
    if not times:
        return None
    state.early_to = times[-1]
    open_at = _episode_open_at(pattern, state, times)
    for t in times:
        if t < state.quiet_until or open_at[t]:
            continue
        found = holds(pattern, state, t)
        if found is None:
            continue
        helds, boost = found
        state.early, state.early_at = content_id("match", pattern.name, key, str(t)), t  # as `advance` names it
        return _match(pattern, key, state, t, helds, boost, provisional=True)
    return None


def _episode_open_at(pattern: CompiledPattern, state: WindowState, times: list[int]) -> dict[int, bool]:
    """For each of `times` (sorted), whether the final evaluation would find the state's episode still
    open there: no silence longer than the span between its last evaluated hit and t (the rule of
    `advance`). One pass over the hit times in between, however many `times`."""
    if not state.episode:
        return dict.fromkeys(times, False)
    # only each list's slice after the last evaluated hit (about a lateness of hits), not the whole window,
    # which a busy state (a scheduler's Scheduled events) holds thousands of
    between = sorted({e.t for entries in state.entries.values() for e in _window(entries, state.last_hit, times[-1])})
    out: dict[int, bool] = {}
    previous, still_open, i = state.last_hit, True, 0
    for t in times:
        while i < len(between) and between[i] < t:  # the hits before t, in time order
            still_open = still_open and between[i] - previous <= pattern.span_ms
            previous = between[i]
            i += 1
        out[t] = still_open and t - previous <= pattern.span_ms
    return out


def _withdrawn(pattern: CompiledPattern, key: str, match_id: str, t: int) -> PatternMatch:
    return withdrawal(pattern.name, key, match_id, t, version=pattern.version, span_ms=pattern.span_ms)


def withdrawal(name: str, key: str, match_id: str, t: int, *, version: str = "", span_ms: int = 0) -> PatternMatch:
    """The record that withdraws provisional match `match_id` of pattern `name` in scope `key` at t."""
    return PatternMatch(id=match_id, pattern=name, version=version, scope=key, matched_at=_dt(t),
                        window_start=_dt(t - span_ms), event_ids=[], withdrawn=True)


def _prune(state: WindowState, before: int) -> None:
    """Drop the entries at or before `before`, the series last seen then, and the evidence of events
    no entry holds any more. A state whose oldest entry is younger (most of them, at every batch) is
    left as it is: rebuilding its live ids and evidence each time cost a busy state's whole size per
    batch (issue 17)."""
    cut_any = False
    for name, entries in list(state.entries.items()):
        cut = bisect.bisect_right(entries, before, key=lambda e: e.t)
        if cut:
            del entries[:cut]
            cut_any = True
        if not entries:
            del state.entries[name]
            cut_any = True
    if any(v[1] <= before for v in state.series.values()):
        state.series = {k: v for k, v in state.series.items() if v[1] > before}
    if cut_any:
        live = {e.id for entries in state.entries.values() for e in entries}
        state.evidence = {i: ev for i, ev in state.evidence.items() if i in live}


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _match(pattern: CompiledPattern, key: str, state: WindowState, t: int, helds: list[Held],
           boost: float, *, provisional: bool = False) -> PatternMatch:
    """The match at t; `provisional`: one sent ahead of the watermark, named as a new episode at t."""
    ids: list[str] = []
    for held in helds:
        for entry in held.entries:
            if entry.id not in ids:
                ids.append(entry.id)
    ids = ids[:MAX_EVIDENCE]
    return PatternMatch(
        id=state.early if provisional else state.episode, pattern=pattern.name, version=pattern.version,
        scope=key, matched_at=_dt(t), window_start=_dt(t - pattern.span_ms), event_ids=ids,
        evidence=[_EVENT.decode(state.evidence[i]) for i in ids if i in state.evidence],
        links=[link for held in helds for link in held.links][:MAX_EVIDENCE],
        count=helds[0].count if helds else 0, boost=boost, priority=pattern.pattern.spec.priority,
        pods=_pods(state, helds[0]) if helds else 0,
        since=_dt(state.episode_at) if not provisional and state.episode_at and state.episode_at < t else None,
        provisional=provisional)


def _pods(state: WindowState, held: Held) -> int:
    """How many distinct pods the events of one condition are about (a pod failing 37 times is one),
    among the events whose bytes the state keeps."""
    pods: set[tuple[str, str]] = set()
    for entry in held.entries:
        for event_id in (entry.id, *entry.more):
            raw = state.evidence.get(event_id)
            k8s = _SUBJECT.decode(raw).k8s if raw is not None else None
            if k8s is not None and k8s.kind == "Pod":
                pods.add((k8s.namespace, k8s.name))
    return len(pods)


def encode_state(state: WindowState) -> bytes:
    """The whole state, evidence included (`stored_changes` is what the windows table stores)."""
    return _ENCODER.encode(state)


def decode_state(data: bytes) -> WindowState:
    return _DECODER.decode(data)


#: the windows table stores a state's evidence beside it, one record per event: `<state key>\x1f<event id>`
EVIDENCE_SEP = "\x1f"


def evidence_key(key: str, event_id: str) -> str:
    return f"{key}{EVIDENCE_SEP}{event_id}"


def stored_changes(key: str, state: WindowState | None, written: Collection[str]
                   ) -> tuple[dict[str, bytes], tuple[str, ...]]:
    """What one changed state writes to the windows table's log (b"": delete the record), and the
    ids of its evidence records stored after that.

    The state's own record leaves its evidence out; each evidence event's bytes are a record of
    their own (`evidence_key`), written once when the state takes them and deleted when it lets
    them go, so a state that changes at every batch does not write the same events' bytes again
    each time. `written`: the ids of the evidence records stored for `key` until now.
    """
    if state is None:
        return {key: b""} | {evidence_key(key, i): b"" for i in written}, ()
    out = {key: _ENCODER.encode(msgspec.structs.replace(state, evidence={}) if state.evidence else state)}
    before = written if isinstance(written, (set, frozenset, dict)) else set(written)
    for event_id, raw in state.evidence.items():
        if event_id not in before:
            out[evidence_key(key, event_id)] = bytes(raw)
    for event_id in written:
        if event_id not in state.evidence:
            out[evidence_key(key, event_id)] = b""
    return out, tuple(state.evidence)


def stored_states(records: dict[str, bytes]) -> tuple[dict[str, bytes], dict[str, dict[str, bytes]]]:
    """The windows table's current records split into states (key -> record) and their evidence
    (key -> event id -> the event's bytes)."""
    states: dict[str, bytes] = {}
    evidence: dict[str, dict[str, bytes]] = {}
    for key, data in records.items():
        state_key, sep, event_id = key.partition(EVIDENCE_SEP)
        if sep:
            evidence.setdefault(state_key, {})[event_id] = data
        else:
            states[key] = data
    return states, evidence


def with_evidence(state: WindowState, evidence: dict[str, bytes]) -> WindowState:
    """A state decoded from its record, with the evidence records stored for it. A record whose
    event the state no longer holds (an older copy of a deleted record, back after a restart: see
    agents/window_log.py) is left out. A state stored before the evidence had records of its own
    keeps the evidence its record holds."""
    if evidence:
        held = {i for entries in state.entries.values() for e in entries for i in (e.id, *e.more)}
        for event_id, data in evidence.items():
            if event_id in held and len(state.evidence) < MAX_KEPT_EVIDENCE:
                state.evidence.setdefault(event_id, msgspec.Raw(data))
    return state


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(WindowState)
_EVENT = msgspec.msgpack.Decoder(UnifiedEvent)


class _Subject(msgspec.Struct):
    """The part of a stored UnifiedEvent `_pods` reads (the decoder skips the rest)."""

    k8s: K8sContext | None = None


_SUBJECT = msgspec.msgpack.Decoder(_Subject)

