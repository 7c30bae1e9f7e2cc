"""Stage 3, match: behavior patterns over event-time windows, in two agents.

    (front chain or unified) --select--> insights (the events, for the graph sink)
                                 \\------> hits (keyed by pattern and scope) --windows[--> predict]--> insights

`select` (per raw partition, i.e. per namespace group; chained after enrich and normalize in one
agent, `agents.front`, or on its own reading `unified`) learns pod/workload/Service membership
from the object observations going by (`agents.membership`, table `members`), tests each event
against the catalog (`agents.hits`) and sends every hit to the hits partition of its
(pattern, scope key), so a node's OOM kills from many namespaces meet in one place. With each
batch it sends every hits partition the source's event-time watermark (`app.bridge.Watermark`).

`windows` (per hits partition) keeps one `WindowState` per (pattern, scope key) in the RocksDB-
backed table `windows`, stored as one delta record per batch (`agents.window_log`; a state's
evidence events are records of their own beside it, written once: `agents.windows.stored_changes`), and each
source partition's watermark in `watermarks`. Its event time is
the lowest watermark over all sources minus `match.allowed_lateness_s`; when that moves, the
states with hits at or before it are evaluated (`agents.windows.advance`) and their matches are
predicted in the same agent and go to `insights` where this worker runs predict
(`agents.predict_chain`), else to topic `matched` for the predict stage of another worker. A batch
writes one changelog record for all the windows it changed: state volume follows the hits, not the
events, and is bounded by the windows (see agents/windows.py).
Both tables survive a restart and move with their partitions on a rebalance (Faust changelogs).
"""

from __future__ import annotations

import itertools
import logging
import time
import zlib
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator, MutableMapping, Sequence
from typing import Any

import faust
import msgspec

from agents.catalog import Catalog
from agents.hits import Selector
from agents.membership import Member, ServiceIndex
from agents.partition_windows import PartitionWindows, beyond_wall_clock, event_time, within_guard
from agents.predict_chain import SendMatches
from agents.stage import dead_letter_rejects
from agents.window_log import WindowLog, delta_prefix
from agents.windows import WindowState, decode_state, evidence_key, stored_changes, stored_states, with_evidence
from core.codec import Poison, msgpack_encoder, where_of
from core.events import UnifiedEvent
from core.log_context import bind as bind_log
from core.ports import StageRuntime
from core.records import (
    Hit,
    HitBatch,
    InsightBatchView,
    PatternMatch,
    Progress,
    UnifiedBatchView,
    byte_slices,
    msgpack_array,
)
from core.trace_links import stage_span, traced

log = logging.getLogger(__name__)

_RAW_EVENTS = msgspec.msgpack.Decoder(list[msgspec.Raw])
_EVENT = msgspec.msgpack.Decoder(UnifiedEvent)
_MEMBER = msgspec.msgpack.Decoder(Member)
_SERVICES = msgspec.msgpack.Decoder(ServiceIndex)
_MARKS = msgspec.msgpack.Decoder(dict[int, int])
_SENT = msgspec.msgpack.Decoder(list[PatternMatch])


#: how often a partition's source watermarks are written to the table. A restart resumes from an
#: older (lower) watermark, which only delays evaluation; it never evaluates a window early.
MARKS_EVERY_S = 5.0
#: the newest matches of a hits partition kept after they were sent (table `tapio-sent-matches`): a
#: worker that takes the partition up (a restart, a rebalance) sends them again, so that a match
#: lost with Kafka's data before the graph had it still arrives (the graph merges it by id)
RESEND_LAST = 128


def hits_partition(pattern: str, key: str, partitions: int) -> int:
    return zlib.crc32(f"{pattern}|{key}".encode()) % partitions


class TableStore(MutableMapping):
    """The membership records in a Faust table (bytes), decoded once and cached in memory.

    The cache keeps at most CACHE_MAX keys (a key looked up and absent is cached too): past that,
    the half cached first goes, and is read from the table again when asked for. Without a bound it
    held every object a worker ever looked up, deleted ones included, for good."""

    CACHE_MAX = 100_000

    def __init__(self, table: Any) -> None:
        self.table = table
        self.cache: dict[str, msgspec.Struct | None] = {}

    def __getitem__(self, key: str) -> msgspec.Struct:
        if key not in self.cache:
            if len(self.cache) >= self.CACHE_MAX:
                for old in list(itertools.islice(self.cache, self.CACHE_MAX // 2)):
                    del self.cache[old]
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


#: RocksDB per table and partition (faust.stores.rocksdb.RocksDBOptions). Faust's defaults are sized
#: for one big table: 64 MiB memtables x3 and a 2 GiB block cache for each of the 16 stores a worker
#: opens (4 tables x 4 partitions), native memory the worker fills as it runs. These state tables are
#: small and read little: a window state is read from the table only when a partition is taken up
#: and when the log copies a delta forward (once each), a member is cached in front of the table
#: (TableStore). 4 MiB memtables x2 and a 4 MiB cache bound each store to 12 MiB. (With 8 MiB x2 and
#: 16 MiB, 2 partitions at 2,000 events/s: the windows stores' caches were full, 31 MiB, after 3 minutes.)
TABLE_OPTIONS = {"write_buffer_size": 4 * 2**20, "max_write_buffer_number": 2,
                 "block_cache_size": 4 * 2**20, "block_cache_compressed_size": 4 * 2**20}


def members_store(app: faust.App, runtime: StageRuntime) -> TableStore:
    """The membership records select keeps, in table `tapio-members` (one per worker app)."""
    members = app.Table("tapio-members", default=None, key_type=bytes, value_type=bytes,
                        partitions=runtime.settings.kafka.partitions, options=TABLE_OPTIONS)
    store = TableStore(members)

    @app.on_partitions_revoked.connect
    async def _forget_members(app: faust.App, revoked: Any, **kwargs: Any) -> None:
        store.cache.clear()  # another worker may update them while they are not ours

    return store


def select_events(events: Iterable[tuple[UnifiedEvent, msgspec.Raw]], selector: Selector, store: MutableMapping,
                  partitions: int) -> tuple[dict[int, list[Hit]], list[tuple[UnifiedEvent, str, str]]]:
    """Pure over `store` (the membership records, which it updates): each event (with its
    MessagePack, which a hit carries) tested against the catalog, its hits grouped by hits
    partition; an event whose test raised is rejected alone, with the reason (its matching, not
    the event: it still goes to the graph)."""
    by_partition: dict[int, list[Hit]] = defaultdict(list)
    rejected: list[tuple[UnifiedEvent, str, str]] = []
    for unified, raw in events:
        try:
            found = selector.hits(unified, store, raw)
        except Exception as e:  # a pattern or an event nobody foresaw: this event only
            rejected.append((unified, unified.id, f"{type(e).__name__}: {e}"))
            continue
        for hit in found:
            by_partition[hits_partition(hit.pattern, hit.key, partitions)].append(hit)
    return by_partition, rejected


#: a record the front sends (a batch's events for the graph sink, or one hits partition's hits) holds at
#: most this many bytes of them; more go in the next record of the same partition. One raw record may
#: hold 8 MiB of events (app.bridge.RECORD_BYTES) after a backlog, which enrichment makes larger and each
#: event's hits repeat once per condition it passes (a 24 MiB hits record was seen), while the producer
#: refuses a record over its maximum request size (16 MiB, app.faust_app): the front agent crashed on
#: it, again at every restart, and the dataflow stood still.
RECORD_BYTES = 4 * 1024 * 1024
#: a hit's bytes beside its event's (pattern, key, condition, id...), for splitting
HIT_BYTES = 256


def insight_records(events: Sequence[bytes | msgspec.Raw], progress: Progress | None) -> list[InsightBatchView]:
    """Pure: a batch's events (MessagePack each) as records of at most RECORD_BYTES of them; the
    checkpoint rides on the last, so it moves once the graph holds the whole batch. One record, maybe
    empty, when there is nothing to split (progress alone still goes on)."""
    slices = byte_slices([len(e) for e in events], RECORD_BYTES) or [(0, 0)]
    return [InsightBatchView(events=msgpack_array(events[start:end]),
                             progress=progress if end == len(events) else None) for start, end in slices]


def hit_records(source: int, watermark: int, found: list[Hit], selected_at: float,
                progress: Progress | None) -> list[HitBatch]:
    """Pure: one hits partition's hits of a batch as records of at most RECORD_BYTES of them. Event
    time (the watermark) and the checkpoint ride on the last only: the windows must not close a window
    on hits still to come in the next record. One record, maybe empty, when there is nothing to split:
    every hits partition learns every source's watermark."""
    slices = byte_slices([len(h.event) + HIT_BYTES for h in found], RECORD_BYTES) or [(0, 0)]
    return [HitBatch(source=source, watermark=watermark if end == len(found) else 0, hits=found[start:end],
                     selected_at=selected_at, progress=progress if end == len(found) else None)
            for start, end in slices]


async def send_selected(runtime: StageRuntime, *, partition: int, insights: faust.TopicT, hits: faust.TopicT,
                        events: Sequence[bytes | msgspec.Raw], by_partition: dict[int, list[Hit]], watermark: int,
                        progress: Progress | None, selected_at: float) -> None:
    """The events (MessagePack each) to the graph sink's partition, and to every hits partition its
    hits with the source's watermark; progress alone still goes on (app.checkpoint)."""
    if events or progress is not None:  # progress alone: the graph sink's checkpoint moves on
        for record in insight_records(events, progress):
            await insights.send(value=record, partition=partition)
    if watermark or by_partition:
        for p in range(runtime.settings.kafka.partitions):
            for batch in hit_records(partition, watermark, by_partition.get(p, []), selected_at, progress):
                await hits.send(value=batch, partition=p)
    runtime.stats.add("match", len(events))
    runtime.stats.add("hits", sum(len(h) for h in by_partition.values()))


async def dead_letter_selected(runtime: StageRuntime, rejected: list[tuple[UnifiedEvent, str, str]],
                               where: str) -> None:
    for _, event_id, reason in rejected:
        log.error("match: testing event %s failed (%s); it is dead-lettered", event_id, reason)
    await dead_letter_rejects(runtime, "match", where, rejected)  # type: ignore[arg-type]


def register_select(app: faust.App, *, source: faust.TopicT, insights: faust.TopicT, hits: faust.TopicT,
                    catalog: Catalog, runtime: StageRuntime, store: TableStore) -> Any:
    """select on its own, reading `unified` (where `worker.stages` runs enrich and normalize elsewhere)."""

    async def select(stream: faust.StreamT) -> None:
        await runtime.ready()
        async for event in stream.events():
            message, value = event.message, event.value
            bind_log(stage="match", partition=message.partition, offset=message.offset)
            if isinstance(value, Poison):
                await runtime.dead_letter(stage="match", reason=value.reason, where=value.where, payload=value.payload)
                continue
            assert isinstance(value, UnifiedBatchView)
            try:
                raws = _RAW_EVENTS.decode(value.events)
                events = [(_EVENT.decode(raw), raw) for raw in raws]
            except (msgspec.DecodeError, msgspec.ValidationError) as e:
                await runtime.dead_letter(stage="match", reason=f"events do not decode: {e}",
                                          where=where_of(message), payload=message.value or b"")
                continue
            with stage_span(runtime.tracer, "match", traced(e for e, _ in events),
                            limit=runtime.settings.otel.max_links, partition=message.partition, offset=message.offset):
                selected_at = time.time()
                by_partition, rejected = select_events(events, catalog.selector, store,
                                                       runtime.settings.kafka.partitions)
                await dead_letter_selected(runtime, rejected, where_of(message))
                # an event whose test failed is still an event: the graph gets it (its matching is dead-lettered)
                await send_selected(runtime, partition=message.partition, insights=insights, hits=hits,
                                    events=[raw for _, raw in events], by_partition=by_partition,
                                    watermark=value.watermark, progress=value.progress, selected_at=selected_at)

    return app.agent(source, name="tapio.match")(select)


class WindowPartition:
    """One hits partition: its `PartitionWindows`, stored as a `WindowLog` of deltas in the table,
    and each source's watermark."""

    def __init__(self, partition: int, table: Any, marks: Any, partitions: int, max_ahead_ms: int, *,
                 ahead: bool = False) -> None:
        """`ahead`: provisional matches ahead of the watermark too (`match.early_firing`)."""
        self.partition, self.table, self.marks, self.partitions = partition, table, marks, partitions
        self.max_ahead_ms = max_ahead_ms
        data = marks.get(f"p{partition}")
        self.sources: dict[int, int] = _MARKS.decode(data) if data else {}
        prefix = delta_prefix(partition).encode()
        deltas = []
        for raw_key in list(table.keys()):  # what this partition already holds (restart, rebalance)
            key = raw_key if isinstance(raw_key, bytes) else raw_key.encode()
            if key.startswith(prefix):
                deltas.append((key.decode(), table.get(key.decode())))
        self.marks_saved = 0.0  # monotonic time the watermarks were last written to the table
        self.log = WindowLog(partition)
        self._stored, self._evidence = stored_states(self.log.load((k, v) for k, v in deltas if v))
        # state key -> the ids of its evidence records in the table (a tuple: 8 bytes an id)
        self.written: dict[str, tuple[str, ...]] = {key: tuple(ids) for key, ids in self._evidence.items()}
        # evidence records of a state that is gone (older copies back after a restart): deleted at the first write
        self._dropped = {evidence_key(key, i): b"" for key in list(self._evidence) if key not in self._stored
                         for i in self._evidence.pop(key)}
        for key in [k for k in self.written if k not in self._stored]:
            del self.written[key]
        self.windows = PartitionWindows(self._load, list(self._stored), ahead=ahead)

    def _load(self, key: str) -> WindowState | None:
        data = self._stored.pop(key, None)
        if not data:
            return None
        state = with_evidence(decode_state(data), self._evidence.pop(key, {}))
        repaired = within_guard(state, int(time.time() * 1000) + self.max_ahead_ms)
        if repaired is None:
            return state
        # stored as it was until the state next changes: the repair is made again at each load
        log.warning("windows: %s held event times beyond match.max_ahead_s (stored before the guard); "
                    "they are dropped", key)
        return repaired

    def watermark(self, lateness_ms: int, max_ahead_ms: int) -> int:
        return event_time(self.sources, self.partitions, lateness_ms,
                          wall_ms=int(time.time() * 1000), max_ahead_ms=max_ahead_ms)

    def write_back(self) -> None:
        changes, self._dropped = self._dropped, {}
        for key, state in self.windows.flush().items():
            records, ids = stored_changes(key, state, self.written.get(key, ()))
            changes.update(records)
            if ids:
                self.written[key] = ids
            else:
                self.written.pop(key, None)
        writes, deletes = self.log.record(changes, read=self.table.get)
        for key, value in writes:
            self.table[key] = value
        for key in deletes:
            if self.table.get(key) is not None:
                del self.table[key]


class SentMatches:
    """The newest matches one hits partition sent, in table `tapio-sent-matches`: one record per
    batch that found some (`p<partition>:<seq>`, written once), the oldest deleted once the newer
    ones hold RESEND_LAST matches. (One record rewritten with the newest RESEND_LAST matches and
    their evidence at every batch that found one was 8 to 9 % of what Kafka held after a run.)"""

    def __init__(self, partition: int, table: Any) -> None:
        self.table = table
        self.prefix = f"p{partition}:"
        self.legacy = f"p{partition}"  # the one record of before
        keys = sorted(k for k in (_text(raw) for raw in list(table.keys())) if k.startswith(self.prefix))
        self.records: deque[tuple[str, int]] = deque()  # (key, matches it holds), oldest first
        for key in keys:
            data = table.get(key)
            if data:
                self.records.append((key, len(_SENT.decode(data))))
        self.held = sum(n for _, n in self.records)
        self.next_seq = int(keys[-1][len(self.prefix):]) + 1 if keys else 0

    def newest(self) -> list[PatternMatch]:
        """The newest RESEND_LAST matches, oldest first."""
        legacy = self.table.get(self.legacy)
        found = _SENT.decode(legacy) if legacy else []
        for key, _ in self.records:
            data = self.table.get(key)
            found += _SENT.decode(data) if data else []
        return found[-RESEND_LAST:]

    def add(self, found: list[PatternMatch]) -> None:
        key = f"{self.prefix}{self.next_seq:012d}"
        self.next_seq += 1
        self.table[key] = msgpack_encoder.encode(found)
        self.records.append((key, len(found)))
        self.held += len(found)
        while self.held - self.records[0][1] >= RESEND_LAST:
            old, n = self.records.popleft()
            self.held -= n
            del self.table[old]
        if self.table.get(self.legacy) is not None:
            del self.table[self.legacy]


def _text(key: bytes | str) -> str:
    return key.decode() if isinstance(key, bytes) else key


def register_windows(app: faust.App, *, source: faust.TopicT, send_matches: SendMatches, catalog: Catalog,
                     runtime: StageRuntime) -> Any:
    """`send_matches`: where the matches go (agents.predict_chain: predicted here, or to topic `matched`)."""
    settings = runtime.settings
    partitions = settings.kafka.partitions
    lateness_ms = int(settings.match.allowed_lateness_s * 1000)
    max_ahead_ms = int(settings.match.max_ahead_s * 1000)
    early_firing = settings.match.early_firing
    table = app.Table("tapio-windows", default=None, key_type=bytes, value_type=bytes,
                      partitions=partitions, options=TABLE_OPTIONS)
    marks = app.Table("tapio-watermarks", default=None, key_type=bytes, value_type=bytes,
                      partitions=partitions, options=TABLE_OPTIONS)
    sent = app.Table("tapio-sent-matches", default=None, key_type=bytes, value_type=bytes,
                     partitions=partitions, options=TABLE_OPTIONS)
    held: dict[int, WindowPartition] = {}
    sent_by: dict[int, SentMatches] = {}

    @app.on_partitions_revoked.connect
    async def _forget(app: faust.App, revoked: Any, **kwargs: Any) -> None:
        held.clear()  # reloaded from the tables on the next batch (the table moved with its partition)
        sent_by.clear()

    runtime.stats.gauge("window_states", lambda: sum(len(part.windows.due) for part in held.values()))

    async def windows(stream: faust.StreamT) -> None:
        await runtime.ready()
        async for event in stream.events():
            message, value = event.message, event.value
            bind_log(stage="windows", partition=message.partition, offset=message.offset)
            if isinstance(value, Poison):
                await runtime.dead_letter(stage="windows", reason=value.reason, where=value.where,
                                          payload=value.payload)
                continue
            assert isinstance(value, HitBatch)
            part = held.get(message.partition)
            if part is None:
                part = held[message.partition] = WindowPartition(message.partition, table, marks, partitions,
                                                                    max_ahead_ms, ahead=early_firing)
                sent_by[message.partition] = recent = SentMatches(message.partition, sent)
                again = recent.newest()
                if again:  # taken up: the newest matches again, in case Kafka lost them before the graph had them
                    await send_matches(again, message.partition)
                    log.info("windows: partition %d taken up; its %d newest matches sent again (the graph "
                             "merges them by id)", message.partition, len(again))
            with stage_span(runtime.tracer, "windows", partition=message.partition, offset=message.offset):
                try:  # the matches are kept to be sent again before the states saying they were made are written
                    late, found = _take(part, value, marks, catalog, lateness_ms, max_ahead_ms,
                                        record=sent_by[message.partition].add)
                except Exception as e:  # a bug nobody foresaw: keep the batch, keep going
                    log.exception("windows: batch %s failed; it is dead-lettered", where_of(message))
                    await runtime.dead_letter(stage="windows", reason=f"{type(e).__name__}: {e}",
                                              where=where_of(message), payload=message.value or b"")
                    held.pop(message.partition, None)  # reload this partition's states from the table
                    continue
                if found:  # (a send can wait for a broker that died: the worker may restart in it)
                    log.info("windows: partition %d: %d match(es): %s", message.partition, len(found),
                             ", ".join(_told(m) for m in found[:10])[:1000])
                    await send_matches(found, message.partition)
            if value.progress is not None and runtime.progress is not None:  # these hits are in the windows' table
                runtime.progress.absorbed(message.partition, value.progress.partition, value.progress.seq)
                runtime.progress.save_behind()
            runtime.stats.add("windows", len(value.hits), rejected=0)
            if value.hits and value.selected_at:  # select took the events -> their windows are evaluated
                runtime.stats.time("match_latency", time.time() - value.selected_at, len(value.hits))
            if late:
                runtime.stats.add("late", late)
            if found:  # the final matches (an isolated run waits for as many in the graph), the others apart
                final = sum(1 for m in found if not m.provisional and not m.withdrawn)
                runtime.stats.add("matches", final)
                if final < len(found):
                    runtime.stats.add("provisional_matches", sum(1 for m in found if m.provisional))
                    runtime.stats.add("withdrawn_matches", sum(1 for m in found if m.withdrawn))

    return app.agent(source, name="tapio.windows")(windows)


def _told(match: PatternMatch) -> str:
    state = " (provisional)" if match.provisional else " (withdrawn)" if match.withdrawn else ""
    return f"{match.pattern} {match.scope} x{match.count}{state}"


def _take(part: WindowPartition, value: HitBatch, marks: Any, catalog: Catalog, lateness_ms: int,
          max_ahead_ms: int, record: Callable[[list[PatternMatch]], None] | None = None) -> tuple[int, list]:
    """One hits batch: add its hits, move the source's watermark, evaluate, `record` the matches
    found (SentMatches), look ahead of the watermark (provisional matches, after the final ones of
    the same batch), then write the states back. In that order: a worker that stops between the
    two sends the match again after its restart, or finds it again in the hits it reads again. In
    the other order, a worker restarted while its send waited on a dead broker left a state saying
    "matched" and nothing that would send the match again."""
    late = part.windows.add(value.hits, watermark=part.watermark(lateness_ms, max_ahead_ms))
    stored = part.sources.get(value.source, 0)
    # a stored watermark beyond the event-time guard (written before the guard existed) is replaced
    if value.watermark > stored or beyond_wall_clock(stored, int(time.time() * 1000), max_ahead_ms):
        new_source = value.source not in part.sources
        part.sources[value.source] = value.watermark
        now_s = time.monotonic()
        if new_source or now_s - part.marks_saved >= MARKS_EVERY_S:
            marks[f"p{part.partition}"] = msgpack_encoder.encode(part.sources)
            part.marks_saved = now_s
    found = part.windows.advance(catalog.compiled, part.watermark(lateness_ms, max_ahead_ms))
    if found and record is not None:  # final matches and withdrawals: a provisional one is not sent again
        record(found)
    found += part.windows.early(catalog.compiled)  # nothing unless the partition is `ahead`
    part.write_back()
    return late, found
