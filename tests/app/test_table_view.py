"""The table pages' decoding, without servers: the stored records of the three tables in, rows out.

The records are made the way the worker makes them (`PartitionWindows` + `WindowLog` for the
windows, `agents.membership.learn` through a bytes store for the members); test_worker_group.py
reads the same pages from real workers.
"""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec

from agents.hits import Selector, compile_pattern
from agents.match import hits_partition
from agents.membership import Member, ServiceIndex
from agents.partition_windows import PartitionWindows
from agents.pattern_files import load_pattern
from agents.window_log import WindowLog
from agents.windows import MAX_KEPT_EVIDENCE, stored_changes
from app.bridge import partition_for
from app.table_view import (
    MEMBERS,
    SENT,
    WATERMARKS,
    WINDOWS,
    delta_row,
    key_partition,
    member_rows,
    sent_rows,
    watermark_rows,
    window_rows,
)
from core.codec import msgpack_encoder
from core.events import K8sContext, KubernetesData, SemanticContext, UnifiedEvent, content_id, epoch_ms

T0 = datetime(2027, 2, 1, 12, 0, tzinfo=UTC)
PATTERN = """\
apiVersion: behavior.tapio.io/v1
kind: BehaviorPattern
metadata: {name: crashes, version: 1.0.0}
spec:
  scope: object
  conditions:
    - type: count
      where: [{field: semantic.intent, operator: equals, value: crash-loop}]
      at_least: 50
      window: 5m
    - type: count
      where: [{field: semantic.intent, operator: equals, value: oom-kill}]
      distinct: kubernetes.message
      at_least: 9
      window: 2m
      required: false
      boost: 0.1
  predictions:
    - {type: crash, confidence_base: 0.5, time_horizon: 5m, message: "{count}"}
"""


def ev(sec: float, intent: str, pod: str, message: str) -> UnifiedEvent:
    return UnifiedEvent(
        id=content_id(str(sec), intent, pod, message), timestamp=T0 + timedelta(seconds=sec), type="kubeapi",
        source="test", semantic=SemanticContext(intent=intent, category="test", narrative=""),
        k8s=K8sContext(kind="Pod", name=pod, namespace="shop"),
        kubernetes=KubernetesData(action="EVENT", reason=f"X{sec}", message=message))  # no series


def stored_windows(tmp_path: Path, batches: list[list[UnifiedEvent]], partitions: int = 4):
    """The `tapio-windows` table after the windows agent took these batches (one delta per batch)."""
    (tmp_path / "p.yaml").write_text(textwrap.dedent(PATTERN))
    pattern = compile_pattern(load_pattern(tmp_path / "p.yaml"))
    selector = Selector([pattern])
    table: dict[str, bytes] = {}
    parts = {p: (PartitionWindows(lambda key: None), WindowLog(p)) for p in range(partitions)}
    written: dict[str, tuple[str, ...]] = {}
    for batch in batches:
        hits = [h for e in batch for h in selector.hits(e, {})]
        for p, (windows, log) in parts.items():
            windows.add([h for h in hits if hits_partition(h.pattern, h.key, partitions) == p], watermark=0)
            changes = {}
            for k, s in windows.flush().items():
                records, written[k] = stored_changes(k, s, written.get(k, ()))
                changes.update(records)
            writes, deletes = log.record(changes, read=table.get)
            table.update(writes)
            for key in deletes:
                table.pop(key, None)
    return table, {pattern.name: pattern}


#: the log compacts after this many deltas here (agents.window_log.COMPACT_AFTER), so that it compacts
#: within the 5 minutes of the pattern's window
COMPACT_AFTER = 64


def test_window_rows_are_the_live_states_replayed_from_the_delta_log(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("agents.window_log.COMPACT_AFTER", COMPACT_AFTER)
    # web-1: 3 crash-loops per batch for COMPACT_AFTER + 10 batches (the log compacts on the way)
    batches = [[ev(b * 2 + i * 0.1, "crash-loop", "web-1", f"#{b}.{i}") for i in range(3)]
               for b in range(COMPACT_AFTER + 10)]
    batches[-1] += [ev(200 + i, "oom-kill", "web-1", m) for i, m in enumerate(["a", "b", "a"])]
    batches[0] += [ev(1, "crash-loop", "web-2", "only")]
    table, compiled = stored_windows(tmp_path, batches)
    assert len(table) < COMPACT_AFTER + 5  # a log of deltas, not one record per batch
    rows = {r.key: r for r in window_rows(table.items(), compiled=compiled, event_times={0: 5, 1: 5, 2: 5, 3: 5})}
    assert set(rows) == {"crashes|object:Pod/shop/web-1", "crashes|object:Pod/shop/web-2"}
    web1 = rows["crashes|object:Pod/shop/web-1"]
    crash, oom = web1.conditions
    assert (crash.index, crash.type, crash.count, crash.held, crash.window_s) == (0, "count", 3 * (COMPACT_AFTER + 10),
                                                                                   3 * (COMPACT_AFTER + 10), 300.0)
    assert (oom.index, oom.required, oom.count, oom.held, oom.distinct) == (1, False, 2, 3, 2)  # distinct messages
    assert web1.window_end == T0 + timedelta(seconds=202) and web1.window_start == web1.window_end - timedelta(minutes=5)
    assert web1.partition == hits_partition("crashes", "object:Pod/shop/web-1", 4)
    assert web1.events == 3 * (COMPACT_AFTER + 10) + 3 and web1.known
    assert web1.evidence == MAX_KEPT_EVIDENCE  # the evidence records stored beside the state
    assert rows["crashes|object:Pod/shop/web-2"].conditions[0].count == 1
    # as JSON, as the page serves it
    as_json = msgspec.json.decode(msgspec.json.encode(web1))
    assert as_json["conditions"][0]["count"] == 3 * (COMPACT_AFTER + 10) and as_json["pattern"] == "crashes"
    # an unknown pattern (deleted from the catalog) still shows its counts
    [unknown] = [r for r in window_rows(table.items(), compiled={}) if r.key.endswith("web-2")]
    assert not unknown.known and unknown.conditions[0].count == 1
    # a raw delta key shows what that batch wrote, decoded
    newest = max(table)
    delta = delta_row(newest, table[newest], compiled=compiled)
    assert delta.states["crashes|object:Pod/shop/web-1"].conditions[1].count == 2


def test_count_is_within_the_condition_window_ending_at_the_last_hit(tmp_path: Path) -> None:
    batches = [[ev(0, "oom-kill", "web-3", "early")], [ev(10, "crash-loop", "web-3", "x")],
               [ev(200, "oom-kill", "web-3", "late")]]  # "early" is 200 s before the last hit: outside 2 m
    table, compiled = stored_windows(tmp_path, batches)
    [row] = window_rows(table.items(), compiled=compiled)
    crash, oom = row.conditions
    assert (crash.count, oom.count, oom.held) == (1, 1, 2)
    assert oom.first == T0 and oom.last == T0 + timedelta(seconds=200)


def test_members_watermarks_and_where_a_key_lives() -> None:
    pod = Member(uid="u1", node="node-a", owner="ReplicaSet/web-7f", refs=["ConfigMap/cfg"], labels={"app": "web"})
    services = ServiceIndex(selectors={"front": {"app": "web"}})
    rows = member_rows([(b"shop/Pod/web-1", msgpack_encoder.encode(pod)),
                        (b"shop/Service/*", msgpack_encoder.encode(services)), (b"gone/Pod/x", b"")], partitions=4)
    assert [(r.key, r.member, r.services) for r in rows] == [("shop/Pod/web-1", pod, None),
                                                            ("shop/Service/*", None, services)]
    assert rows[0].partition == partition_for("shop", 4) == key_partition(MEMBERS, "shop/Pod/web-1", 4)
    t = epoch_ms(T0)
    marks = watermark_rows([(b"p2", msgpack_encoder.encode({0: t, 1: t + 5000, 2: t, 3: t + 1000}))],
                           partitions=4, lateness_ms=10_000)
    assert marks[0].partition == 2 and marks[0].sources[1] == T0 + timedelta(seconds=5)
    assert marks[0].event_time == T0 - timedelta(seconds=10)
    partial = watermark_rows([("p1", msgpack_encoder.encode({0: t}))], partitions=4, lateness_ms=10_000)
    assert partial[0].event_time is None  # a source that never reported may still hold old events
    assert key_partition(WATERMARKS, "p3", 4) == 3 and key_partition(WATERMARKS, "x", 4) is None
    assert key_partition(WINDOWS, "d:2:000000000007", 4) == 2
    assert key_partition(WINDOWS, "crashes|object:Pod/shop/web-1", 4) == hits_partition(
        "crashes", "object:Pod/shop/web-1", 4)
    assert key_partition(WINDOWS, "no-bar", 4) is None


def test_the_matches_a_partition_keeps_to_send_again_are_shown_by_batch() -> None:
    from agents.match import RESEND_LAST, SentMatches
    from core.records import PatternMatch

    def match(i: int) -> PatternMatch:
        return PatternMatch(id=f"m{i}", pattern="crashes", version="1.0.0", scope=f"object:Pod/shop/web-{i}",
                            matched_at=T0 + timedelta(seconds=i), window_start=T0, event_ids=[f"e{i}"], count=i)

    table: dict[str, bytes] = {}  # as the worker's table: written by the windows stage's own class
    kept = SentMatches(2, table)
    kept.add([match(1), match(2)])
    kept.add([match(3)])
    rows = sent_rows(table.items())
    assert [(r.key, r.partition, [m.id for m in r.matches]) for r in rows] == [
        ("p2:000000000000", 2, ["m1", "m2"]), ("p2:000000000001", 2, ["m3"])]
    assert rows[1].matches[0].matched_at == T0 + timedelta(seconds=3) and rows[1].matches[0].count == 3
    assert key_partition(SENT, "p2:000000000001", 4) == 2 and key_partition(SENT, "windows", 4) is None
    for i in range(4, RESEND_LAST + 4):  # the oldest batches go once the newer hold RESEND_LAST matches
        kept.add([match(i)])
    assert [m.id for r in sent_rows(table.items()) for m in r.matches][0] == "m4"
