"""Table inspection: what the dataflow's tables hold, decoded, on every worker's web server.

Fed by: the worker's Faust tables (`tapio-members`, `tapio-windows`, `tapio-watermarks`,
`tapio-sent-matches`, all bytes in RocksDB), the pattern catalog (condition types and windows) and the group assignment
(which worker holds which partition of each table). Feeds: the JSON pages

    /tapio/tables/                    every table: its partitions here and on the other workers, live rows
    /tapio/tables/{name}/             the decoded rows of the partitions this worker holds
    /tapio/tables/{name}/{key}/       one row, answered by the worker holding its partition

and Faust's own `/table/...` paths, which answer the same (Faust's views showed table names
only, and a key as the repr of its stored bytes).

Why decoding is needed: `tapio-windows` holds a log of per-batch delta records
(`agents.window_log`), not one value per window, and every value is MessagePack. A row here is
the live state of one window (pattern + scope key) replayed from that log, with its condition
counts, first/last hit, evidence and its partition's event time; a member is its `Member`
record; a watermark row is each source partition's event time; a sent-matches row is one batch's
matches that a hits partition keeps to send again when it is taken up (`agents.match.SentMatches`).

A key's partition is known from the key itself (the dataflow placed it there): a window
`pattern|scope` on `agents.match.hits_partition`, a member `namespace/Kind/name` on its
namespace's partition, a watermark row `p<N>` on N. A request for a key of a partition another
worker holds is forwarded to that worker (its canonical URL from the group assignment); the
answer says which worker served it.

The decoding functions are pure (no Faust, no I/O); `register_table_views` is the Faust shell.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec

from agents.hits import CompiledPattern
from agents.membership import Member, ServiceIndex
from agents.partition_windows import event_time
from agents.window_log import WindowLog, decode_delta, delta_prefix
from agents.windows import EVIDENCE_SEP, WindowState, decode_state, stored_states, with_evidence
from app.bridge import partition_for
from core.records import PatternMatch

log = logging.getLogger(__name__)

MEMBERS, WINDOWS, WATERMARKS, SENT = "tapio-members", "tapio-windows", "tapio-watermarks", "tapio-sent-matches"
TABLES = (MEMBERS, WINDOWS, WATERMARKS, SENT)
_SENT = msgspec.msgpack.Decoder(list[PatternMatch])
_MEMBER = msgspec.msgpack.Decoder(Member)
_SERVICES = msgspec.msgpack.Decoder(ServiceIndex)
_MARKS = msgspec.msgpack.Decoder(dict[int, int])


def _dt(ms: int) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, tz=UTC) if ms > 0 else None


def _text(key: bytes | str) -> str:
    return key.decode() if isinstance(key, bytes) else key


# --- rows -------------------------------------------------------------------------------


class ConditionView(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What one condition (and role, for a sequence) of a window holds.

    `count` is what the condition counts in its own window ending at the window's last hit:
    occurrences, or distinct values for a `distinct` count. `held` is every occurrence kept.
    """

    key: str  # "<condition fingerprint>:<role>"
    index: int = -1  # position in the pattern's conditions (-1: not in the loaded catalog)
    type: str = ""
    role: str = ""
    required: bool = True
    window_s: float = 0.0
    count: int
    distinct: int = 0
    held: int
    entries: int
    first: datetime | None = None
    last: datetime | None = None


class WindowView(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One live window state: a pattern in one scope, on one partition of `tapio.hits`."""

    key: str  # "<pattern>|<scope key>"
    pattern: str
    scope: str
    partition: int
    window_start: datetime | None = None  # window_end minus the pattern's span
    window_end: datetime | None = None  # the newest hit
    span_s: float = 0.0
    conditions: list[ConditionView] = []
    events: int = 0  # distinct events counted
    evidence: int = 0  # events whose bytes the state keeps for a match's evidence
    evaluated_to: datetime | None = None
    quiet_until: datetime | None = None
    event_time: datetime | None = None  # the partition's event time (watermark - allowed lateness)
    known: bool = True  # False: the pattern is not in the loaded catalog (the state goes at its next look)


class MemberView(msgspec.Struct, kw_only=True, omit_defaults=True):
    key: str
    partition: int
    member: Member | None = None
    services: ServiceIndex | None = None


class WatermarkView(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One hits partition's view of event time: how far each source partition has come."""

    key: str
    partition: int
    sources: dict[int, datetime | None] = {}
    event_time: datetime | None = None  # lowest source minus the allowed lateness, once all reported


class SentMatchView(msgspec.Struct, kw_only=True):
    id: str
    pattern: str
    scope: str
    matched_at: datetime
    count: int
    withdrawn: bool = False  # a provisional match withdrawn: the graph must not hold it


class SentView(msgspec.Struct, kw_only=True):
    """One batch's matches that a hits partition keeps after sending them (key `p<partition>:<seq>`):
    sent again when a worker takes the partition up, in case Kafka lost them before the graph had them."""

    key: str
    partition: int
    matches: list[SentMatchView]


class DeltaView(msgspec.Struct, kw_only=True):
    """One stored delta record of `tapio-windows` (a raw table key `d:<partition>:<seq>`)."""

    key: str
    partition: int
    states: dict[str, WindowView | None]  # None: the batch deleted that state


# --- pure decoding ----------------------------------------------------------------------


def watermark_rows(items: Iterable[tuple[bytes | str, bytes]], *, partitions: int,
                   lateness_ms: int) -> list[WatermarkView]:
    rows = []
    for key, value in items:
        key = _text(key)
        if not value or not key.startswith("p"):
            continue
        sources = _MARKS.decode(value)
        rows.append(WatermarkView(key=key, partition=int(key[1:]),
                                  sources={s: _dt(t) for s, t in sorted(sources.items())},
                                  event_time=_dt(event_time(sources, partitions, lateness_ms))))
    return sorted(rows, key=lambda r: r.partition)


def sent_row(key: str, value: bytes) -> SentView:
    return SentView(key=key, partition=int(key[1:].split(":", 1)[0]), matches=[
        SentMatchView(id=m.id, pattern=m.pattern, scope=m.scope, matched_at=m.matched_at, count=m.count,
                      withdrawn=m.withdrawn)
        for m in _SENT.decode(value)])


def sent_rows(items: Iterable[tuple[bytes | str, bytes]]) -> list[SentView]:
    """The batches of matches kept, oldest first per partition (the legacy single record `p<N>` too)."""
    rows = [sent_row(_text(k), v) for k, v in items if v and _text(k)[1:].split(":", 1)[0].isdigit()]
    return sorted(rows, key=lambda r: (r.partition, r.key))


def member_partition(key: str, partitions: int) -> int:
    return partition_for(key.split("/", 1)[0], partitions)


def member_row(key: str, value: bytes, *, partitions: int) -> MemberView:
    partition = member_partition(key, partitions)
    if key.endswith("/Service/*"):
        return MemberView(key=key, partition=partition, services=_SERVICES.decode(value))
    return MemberView(key=key, partition=partition, member=_MEMBER.decode(value))


def member_rows(items: Iterable[tuple[bytes | str, bytes]], *, partitions: int) -> list[MemberView]:
    return sorted((member_row(_text(k), v, partitions=partitions) for k, v in items if v), key=lambda r: r.key)


def window_states(items: Iterable[tuple[bytes | str, bytes]]) -> dict[int, dict[str, bytes]]:
    """Replay every partition's delta log (any order): partition -> state key -> latest state bytes."""
    by_partition: dict[int, list[tuple[str, bytes]]] = defaultdict(list)
    for key, value in items:
        key = _text(key)
        if value and key.startswith("d:"):
            by_partition[int(key.split(":")[1])].append((key, value))
    return {p: WindowLog(p).load(deltas) for p, deltas in sorted(by_partition.items())}


def window_row(key: str, state: WindowState, *, partition: int, compiled: Mapping[str, CompiledPattern],
               event_time_ms: int = 0) -> WindowView:
    name, _, scope = key.partition("|")
    pattern = compiled.get(name)
    conds = {c.fp: c for c in pattern.conditions} if pattern else {}
    last = max((entries[-1].t for entries in state.entries.values() if entries), default=0)
    span = pattern.span_ms if pattern else 0
    conditions = []
    for ckey, entries in sorted(state.entries.items()):
        fp, _, role = ckey.rpartition(":")
        cond = conds.get(fp)
        window_ms = cond.window_ms if cond else 0
        inside = [e for e in entries if e.t > last - window_ms] if cond else entries
        spec = cond.spec if cond else None
        distinct = len({e.d for e in inside if e.d})
        counts_distinct = bool(getattr(spec, "distinct", None))
        conditions.append(ConditionView(
            key=ckey, index=cond.index if cond else -1, role=role,
            type=str(type(spec).__struct_config__.tag) if spec else "",
            required=getattr(spec, "required", True), window_s=window_ms / 1000,
            count=distinct if counts_distinct else sum(e.w for e in inside), distinct=distinct,
            held=sum(e.w for e in entries), entries=len(entries),
            first=_dt(entries[0].t) if entries else None, last=_dt(entries[-1].t) if entries else None))
    conditions.sort(key=lambda c: (c.index, c.role))
    ids = {i for entries in state.entries.values() for e in entries for i in (e.id, *e.more)}
    return WindowView(key=key, pattern=name, scope=scope, partition=partition,
                      window_start=_dt(last - span) if span else None, window_end=_dt(last), span_s=span / 1000,
                      conditions=conditions, events=len(ids), evidence=len(state.evidence),
                      evaluated_to=_dt(state.done_to), quiet_until=_dt(state.quiet_until),
                      event_time=_dt(event_time_ms), known=pattern is not None)


def decoded_states(records: dict[str, bytes]) -> dict[str, WindowState]:
    """The window states among a log's current records (`window_states`), each with its evidence."""
    states, evidence = stored_states(records)
    return {key: with_evidence(decode_state(data), evidence.get(key, {})) for key, data in states.items()}


def window_rows(items: Iterable[tuple[bytes | str, bytes]], *, compiled: Mapping[str, CompiledPattern],
                event_times: Mapping[int, int] | None = None) -> list[WindowView]:
    """Every live window state the delta records hold, decoded."""
    times = event_times or {}
    return [window_row(key, state, partition=p, compiled=compiled, event_time_ms=times.get(p, 0))
            for p, records in window_states(items).items() for key, state in sorted(decoded_states(records).items())]


def delta_row(key: str, value: bytes, *, compiled: Mapping[str, CompiledPattern]) -> DeltaView:
    """What one delta record wrote: the states it holds (evidence records counted with their state), None
    for a state it deleted."""
    partition = int(key.split(":")[1])
    records = decode_delta(value)
    states, evidence = stored_states({k: v for k, v in records.items() if v})
    deleted = [k for k, v in records.items() if not v and EVIDENCE_SEP not in k]
    rows: dict[str, WindowView | None] = {k: None for k in deleted}
    rows.update({k: window_row(k, with_evidence(decode_state(v), evidence.get(k, {})), partition=partition,
                               compiled=compiled) for k, v in states.items()})
    return DeltaView(key=key, partition=partition, states=dict(sorted(rows.items())))


def key_partition(table: str, key: str, partitions: int) -> int | None:
    """The partition a table key lives on, from the key itself; None when the key cannot be placed."""
    from agents.match import hits_partition
    if table == WINDOWS:
        if key.startswith("d:") and key.count(":") == 2:
            return int(key.split(":")[1])
        name, sep, scope = key.partition("|")
        return hits_partition(name, scope, partitions) if sep else None
    if table == WATERMARKS:
        return int(key[1:]) if key.startswith("p") and key[1:].isdigit() else None
    if table == SENT:
        where = key[1:].split(":", 1)[0]
        return int(where) if key.startswith("p") and where.isdigit() else None
    if table == MEMBERS:
        return member_partition(key, partitions) if "/" in key else None
    return None


# --- the Faust shell --------------------------------------------------------------------


class TableSummary(msgspec.Struct, kw_only=True):
    name: str
    changelog_topic: str
    partitions: list[int]  # active on this worker
    standbys: list[int]
    rows: int  # live rows (window states, members, watermark partitions) on this worker
    records: int  # stored table keys on this worker (for tapio-windows: delta records)
    owners: dict[str, list[int]]  # worker URL -> partitions it holds (the whole group)
    url: str


def register_table_views(app: Any, *, catalog: Any, settings: Any) -> None:
    """Serve the decoded table pages on `app`'s web server, at /tapio/tables/ and at Faust's /table/.

    Call it once the agents are registered: it serves the tables among TABLES the app has
    (a worker running a subset of the stages has a subset of them). `catalog` is the pattern
    Catalog, or None when this worker does not match.
    """
    tables = {name: app.tables[name] for name in TABLES if name in app.tables}
    partitions = settings.kafka.partitions
    lateness_ms = int(settings.match.allowed_lateness_s * 1000)

    def compiled() -> Mapping[str, CompiledPattern]:
        return catalog.compiled if catalog is not None else {}

    def changelog(name: str) -> str:
        return tables[name].changelog_topic.get_topic_name()

    def me() -> str:
        return str(app.conf.canonical_url).rstrip("/")

    def owners(name: str) -> dict[str, list[int]]:
        topic = changelog(name)
        try:
            meta = app.assignor.table_metadata(topic)
        except Exception:  # no assignment yet
            return {}
        return {str(url).rstrip("/"): sorted(tps.get(topic, [])) for url, tps in meta.items() if tps.get(topic)}

    def held(name: str, standby: bool = False) -> list[int]:
        topic = changelog(name)
        tps = app.assignor.assigned_standbys() if standby else app.assignor.assigned_actives()
        return sorted(tp.partition for tp in tps if tp.topic == topic)

    def items(name: str) -> list[tuple[str, bytes]]:
        return [(_text(k), v) for k, v in list(tables[name].items()) if v]

    def event_times() -> dict[int, int]:
        if WATERMARKS not in tables:
            return {}
        return {r.partition: int(r.event_time.timestamp() * 1000) if r.event_time else 0
                for r in _marks()}

    def _marks() -> list[WatermarkView]:
        return watermark_rows(items(WATERMARKS), partitions=partitions, lateness_ms=lateness_ms)

    def rows(name: str) -> list[msgspec.Struct]:
        if name == WINDOWS:
            return window_rows(items(WINDOWS), compiled=compiled(), event_times=event_times())
        if name == MEMBERS:
            return member_rows(items(MEMBERS), partitions=partitions)
        if name == SENT:
            return sent_rows(items(SENT))
        return _marks()

    def one(name: str, key: str) -> msgspec.Struct | None:
        if name == WINDOWS:
            if key.startswith("d:"):
                value = tables[name].get(key)
                return delta_row(key, value, compiled=compiled()) if value else None
            p = key_partition(name, key, partitions)
            data = window_states((k, v) for k, v in items(WINDOWS) if k.startswith(delta_prefix(p))).get(p, {})
            if key not in data or EVIDENCE_SEP in key:
                return None
            state = decoded_states({k: v for k, v in data.items() if k == key or k.startswith(key + EVIDENCE_SEP)})[key]
            return window_row(key, state, partition=p, compiled=compiled(), event_time_ms=event_times().get(p, 0))
        value = tables[name].get(key)
        if not value:
            return None
        if name == MEMBERS:
            return member_row(key, value, partitions=partitions)
        if name == SENT:
            return sent_row(key, value)
        return watermark_rows([(key, value)], partitions=partitions, lateness_ms=lateness_ms)[0]

    def summary(name: str) -> TableSummary:
        return TableSummary(name=name, changelog_topic=changelog(name), partitions=held(name),
                            standbys=held(name, standby=True), rows=len(rows(name)), records=len(items(name)),
                            owners=owners(name), url=f"{me()}/tapio/tables/{name}/")

    def as_json(web: Any, data: Any, status: int = 200) -> Any:
        return web.json(msgspec.to_builtins(data), status=status)

    def unknown(web: Any, name: str) -> Any:
        return as_json(web, {"error": "unknown table", "table": name, "tables": sorted(tables)}, 404)

    async def list_tables(web: Any, request: Any) -> Any:
        return as_json(web, {"worker": me(), "tables": [summary(n) for n in tables]})

    async def table_rows(web: Any, request: Any, name: str) -> Any:
        if name not in tables:
            return unknown(web, name)
        return as_json(web, {"table": name, "worker": me(), "partitions": held(name), "owners": owners(name),
                             "rows": rows(name)})

    async def table_key(web: Any, request: Any, name: str, key: str) -> Any:
        if name not in tables:
            return unknown(web, name)
        p = key_partition(name, key, partitions)
        if p is None:
            return as_json(web, {"error": "this key cannot belong to the table", "table": name, "key": key}, 404)
        if p not in held(name):
            owner = next((url for url, ps in owners(name).items() if p in ps), None)
            if owner is None or owner == me() or request.query.get("forwarded"):
                return as_json(web, {"error": "no worker holds the key's partition now (the group is rebalancing?)",
                                     "table": name, "key": key, "partition": p, "owners": owners(name)}, 503)
            url = f"{owner}{request.path}"
            try:
                async with app.http_client.get(url, params={"forwarded": "1"}) as response:
                    return web.json(await response.json(), status=response.status)
            except Exception as e:  # the owner went away (a rebalance) or answered something else
                log.warning("table view: forwarding %s to %s failed: %r", key, owner, e)
                return as_json(web, {"error": f"the worker holding the key's partition did not answer: {e!r}",
                                     "table": name, "key": key, "partition": p, "owners": owners(name)}, 502)
        row = one(name, key)
        if row is None:
            return as_json(web, {"error": "key not found", "table": name, "key": key, "partition": p,
                                 "worker": me()}, 404)
        return as_json(web, {"table": name, "key": key, "partition": p, "worker": me(), "row": row})

    for prefix in ("/tapio/tables", "/table"):  # registered before Faust's own /table/ views: ours answer
        app.page(f"{prefix}/", name=f"tables-list{prefix}")(list_tables)
        app.page(f"{prefix}/{{name}}/", name=f"tables-rows{prefix}")(table_rows)
        app.page(f"{prefix}/{{name}}/{{key:.+}}/", name=f"tables-key{prefix}")(table_key)
