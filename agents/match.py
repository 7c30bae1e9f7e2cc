"""Stage 3, match: behavior patterns over event-time windows, in two agents.

    unified --select--> matched (the events, forwarded unread)
               \\------> hits (keyed by pattern and scope) --windows--> matched (PatternMatches)

`select` (per unified partition, i.e. per namespace group) learns pod/workload/Service membership
from the object observations going by (`agents.membership`, table `members`), tests each event
against the catalog (`agents.hits`) and sends every hit to the hits partition of its
(pattern, scope key), so a node's OOM kills from many namespaces meet in one place. With each
batch it sends every hits partition the source's event-time watermark (`app.bridge.Watermark`).

`windows` (per hits partition) keeps one `WindowState` per (pattern, scope key) in the RocksDB-
backed table `windows` and each source partition's watermark in `watermarks`. Its event time is
the lowest watermark over all sources minus `match.allowed_lateness_s`; when that moves, the
states with hits at or before it are evaluated (`agents.windows.advance`) and their matches go
to `matched`. A table write is one changelog record per touched key per batch: state volume
follows the hits, not the events, and is bounded by the windows (see agents/windows.py).
Both tables survive a restart and move with their partitions on a rebalance (Faust changelogs).
"""

from __future__ import annotations

import logging
import zlib
from collections import defaultdict
from collections.abc import Iterator, MutableMapping
from typing import Any

import faust
import msgspec

from agents.catalog import Catalog
from agents.membership import Member, ServiceIndex
from agents.windows import WindowState, add_hits, advance, decode_state, encode_state
from app.codec import Poison, msgpack_encoder, where_of
from app.events import UnifiedEvent
from app.records import Hit, HitBatch, MatchedBatch, MatchedBatchView, UnifiedBatchView
from app.runtime import Runtime

log = logging.getLogger(__name__)

_EVENTS = msgspec.msgpack.Decoder(list[UnifiedEvent])
_MEMBER = msgspec.msgpack.Decoder(Member)
_SERVICES = msgspec.msgpack.Decoder(ServiceIndex)
_MARKS = msgspec.msgpack.Decoder(dict[int, int])


def hits_partition(pattern: str, key: str, partitions: int) -> int:
    return zlib.crc32(f"{pattern}|{key}".encode()) % partitions


class TableStore(MutableMapping):
    """The membership records in a Faust table (bytes), decoded once and cached in memory."""

    def __init__(self, table: Any) -> None:
        self.table = table
        self.cache: dict[str, msgspec.Struct | None] = {}

    def __getitem__(self, key: str) -> msgspec.Struct:
        if key not in self.cache:
            data = self.table.get(key)
            self.cache[key] = None if data is None else \
                (_SERVICES if key.endswith("/Service/*") else _MEMBER).decode(data)
        value = self.cache[key]
        if value is None:
            raise KeyError(key)
        return value

    def __setitem__(self, key: str, value: msgspec.Struct) -> None:
        self.cache[key] = value
        self.table[key] = msgpack_encoder.encode(value)

    def __delitem__(self, key: str) -> None:
        self.cache[key] = None
        del self.table[key]

    def __iter__(self) -> Iterator[str]:
        return (k.decode() if isinstance(k, bytes) else k for k in self.table.keys())

    def __len__(self) -> int:
        return len(self.table)


def register_select(app: faust.App, *, source: faust.TopicT, matched: faust.TopicT, hits: faust.TopicT,
                    catalog: Catalog, runtime: Runtime) -> Any:
    members = app.Table("tapio-members", default=None, key_type=bytes, value_type=bytes,
                        partitions=runtime.settings.kafka.partitions)
    store = TableStore(members)
    partitions = runtime.settings.kafka.partitions

    async def select(stream: faust.StreamT) -> None:
        await runtime.ready()
        async for event in stream.events():
            message, value = event.message, event.value
            if isinstance(value, Poison):
                await runtime.dead_letter(stage="match", reason=value.reason, where=value.where, payload=value.payload)
                continue
            assert isinstance(value, UnifiedBatchView)
            try:
                events = _EVENTS.decode(value.events)
            except (msgspec.DecodeError, msgspec.ValidationError) as e:
                await runtime.dead_letter(stage="match", reason=f"events do not decode: {e}",
                                          where=where_of(message), payload=message.value or b"")
                continue
            by_partition: dict[int, list[Hit]] = defaultdict(list)
            selector = catalog.selector
            for unified in events:
                try:
                    found = selector.hits(unified, store)
                except Exception as e:  # a pattern or an event nobody foresaw: this event only
                    log.exception("match: testing event %s failed; it is dead-lettered", unified.id)
                    await runtime.dead_letter(stage="match", reason=f"{type(e).__name__}: {e}",
                                              where=f"{where_of(message)} event {unified.id}",
                                              payload=msgpack_encoder.encode(unified), event_id=unified.id)
                    continue
                for hit in found:
                    by_partition[hits_partition(hit.pattern, hit.key, partitions)].append(hit)
            if events:
                await matched.send(value=MatchedBatchView(events=value.events), partition=message.partition)
            if value.watermark or by_partition:
                for p in range(partitions):
                    await hits.send(value=HitBatch(source=message.partition, watermark=value.watermark,
                                                   hits=by_partition.get(p, [])), partition=p)
            runtime.stats.add("match", len(events))
            runtime.stats.add("hits", sum(len(h) for h in by_partition.values()))

    return app.agent(source, name="tapio.match")(select)


class WindowPartition:
    """The windows of one hits partition: states cached in memory, written through to the table."""

    def __init__(self, partition: int, table: Any, marks: Any, partitions: int) -> None:
        self.partition = partition
        self.table, self.marks, self.partitions = table, marks, partitions
        self.states: dict[str, WindowState] = {}
        self.due: dict[str, int] = {}  # table key -> the event time at which it next needs a look
        data = marks.get(f"p{partition}")
        self.sources: dict[int, int] = _MARKS.decode(data) if data else {}
        for raw_key in list(table.keys()):  # states this partition already holds (restart, rebalance)
            key = raw_key.decode() if isinstance(raw_key, bytes) else raw_key
            pattern, _, scope = key.partition("|")
            if hits_partition(pattern, scope, partitions) == partition:
                self.due[key] = 0

    def state(self, key: str, *, watermark: int = 0) -> WindowState:
        """A key's state; a new one starts at the current watermark (older hits are late for it too)."""
        state = self.states.get(key)
        if state is None:
            data = self.table.get(key)
            state = self.states[key] = decode_state(data) if data else WindowState(done_to=max(watermark, 0))
        return state

    def watermark(self, lateness_ms: int) -> int:
        if len(self.sources) < self.partitions:
            return 0  # a source that never reported may still hold old events
        return min(self.sources.values()) - lateness_ms


def register_windows(app: faust.App, *, source: faust.TopicT, matched: faust.TopicT, catalog: Catalog,
                     runtime: Runtime) -> Any:
    settings = runtime.settings
    partitions = settings.kafka.partitions
    lateness_ms = int(settings.match.allowed_lateness_s * 1000)
    table = app.Table("tapio-windows", default=None, key_type=bytes, value_type=bytes,
                      partitions=partitions)
    marks = app.Table("tapio-watermarks", default=None, key_type=bytes, value_type=bytes,
                      partitions=partitions)
    held: dict[int, WindowPartition] = {}

    @app.on_partitions_revoked.connect
    async def _forget(app: faust.App, revoked: Any, **kwargs: Any) -> None:
        held.clear()  # reloaded from the tables on the next batch (the table moved with its partition)

    async def windows(stream: faust.StreamT) -> None:
        await runtime.ready()
        async for event in stream.events():
            message, value = event.message, event.value
            if isinstance(value, Poison):
                await runtime.dead_letter(stage="windows", reason=value.reason, where=value.where,
                                          payload=value.payload)
                continue
            assert isinstance(value, HitBatch)
            part = held.get(message.partition)
            if part is None:
                part = held[message.partition] = WindowPartition(message.partition, table, marks, partitions)
            dirty: set[str] = set()
            late = 0
            by_key: dict[str, list[Hit]] = defaultdict(list)
            for hit in value.hits:
                by_key[f"{hit.pattern}|{hit.key}"].append(hit)
            before = part.watermark(lateness_ms)
            for key, key_hits in by_key.items():
                state = part.state(key, watermark=before)
                late += add_hits(state, key_hits)
                part.due[key] = min(part.due.get(key, 2**62), min(h.t for h in key_hits))
                dirty.add(key)
            if value.watermark > part.sources.get(value.source, 0):
                part.sources[value.source] = value.watermark
                marks[f"p{part.partition}"] = msgpack_encoder.encode(part.sources)
            now = part.watermark(lateness_ms)
            found = []
            if now > before or dirty:
                found = _advance(part, catalog, now, dirty)
            for key in dirty:
                state = part.states.get(key)
                if state is None or (state.empty() and state.quiet_until <= now):
                    part.states.pop(key, None)
                    part.due.pop(key, None)
                    if table.get(key) is not None:
                        del table[key]
                else:
                    table[key] = encode_state(state)
            if found:
                await matched.send(value=MatchedBatch(matches=found), partition=message.partition)
            runtime.stats.add("windows", len(value.hits), rejected=0)
            if late:
                runtime.stats.add("late", late)
            if found:
                runtime.stats.add("matches", len(found))

    return app.agent(source, name="tapio.windows")(windows)


def _advance(part: WindowPartition, catalog: Catalog, watermark: int, dirty: set[str]) -> list:
    found = []
    for key, due in list(part.due.items()):
        if due > watermark:
            continue
        name, _, scope = key.partition("|")
        compiled = catalog.compiled.get(name)
        state = part.state(key)
        if compiled is None:  # the pattern was deleted: its state goes with it
            state.entries.clear()
            state.quiet_until = 0
            dirty.add(key)
            continue
        found.extend(advance(compiled, scope, state, watermark))
        dirty.add(key)
        pending = [e.t for entries in state.entries.values() for e in entries if e.t > state.done_to]
        part.due[key] = min(pending) if pending else \
            max((e.t for entries in state.entries.values() for e in entries), default=watermark) + compiled.span_ms
    return found
