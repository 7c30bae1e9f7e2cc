"""One bad event never costs a good one: the pure parts (issue 14, point 4).

Each message and each event is judged alone: the bridge's `check_message`, the codec's
`wire_problem`, the stage loop's `encode_output`, the enrich and normalize transforms; the
event-time guard keeps a far-future stamp from moving event time (bridge `Watermark`,
`agents.partition_windows.event_time`). The same through the real dataflow: tests/test_bad_input.py.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import msgspec
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, MessageSizeTooLargeError

from agents.enrich import enrich_stage
from agents.normalize import normalize_stage
from agents.partition_windows import beyond_wall_clock, event_time
from agents.stage import encode_output
from app.bridge import Limits, Watermark, check_message, chunks, decode_messages, give_up
from app.jetstream import RAW_CODEC
from core.codec import INT64_MAX, safe_payload, safe_text, wire_problem
from core.events import KubernetesData, RawEvent, SemanticContext, UnifiedEvent, epoch_ms
from core.records import EnrichedBatch, RawBatch, UnifiedBatch

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
WALL_MS = epoch_ms(NOW)
LIMITS = Limits(max_event_bytes=64 * 1024, wall_ms=WALL_MS, max_ahead_ms=300_000)


def k8s_event(i: int, **extra: object) -> dict:
    return {"kind": "Event", "metadata": {"name": f"web.{i}", "namespace": "shop", "uid": f"ev-{i}"},
            "involvedObject": {"kind": "Pod", "name": "web-0", "namespace": "shop", "uid": "uid-web-0"},
            "reason": "BackOff", "message": "Back-off restarting failed container", "type": "Warning",
            "count": 1, **extra}


def raw(i: int, data: bytes | None = None, *, at: datetime = NOW, **metadata: str) -> RawEvent:
    return RawEvent(id=f"e{i}", timestamp=at, type="kubeapi",
                    data=json.dumps(k8s_event(i)).encode() if data is None else data,
                    metadata={"namespace": "shop", "kind": "Event", "action": "EVENT", **metadata})


class FakeMsg:
    def __init__(self, data: bytes) -> None:
        self.data = data


def envelope(i: int) -> bytes:
    return RAW_CODEC.encode(raw(i))


# --- the bridge: one message, one decision ---------------------------------------------------------

def test_a_good_message_is_its_event_and_its_kafka_bytes() -> None:
    checked = check_message(envelope(1), LIMITS)
    assert not isinstance(checked, str)
    event, wire = checked
    assert event == raw(1) and msgspec.msgpack.decode(wire, type=RawEvent) == event


def test_invalid_utf8_in_the_envelope_is_named_with_its_byte() -> None:
    data = envelope(1).replace(b'"namespace":"shop"', b'"namespace":"sh\xffop"')
    reason = check_message(data, LIMITS)
    assert isinstance(reason, str) and reason == \
        "not a RawEvent: invalid UTF-8 in the string b'sh\\xffop' (byte 2: invalid start byte) of the envelope"
    # a lone surrogate written as a JSON escape is refused by the decoder too
    escaped = check_message(envelope(1).replace(b'"shop"', b'"\\udcff"', 1), LIMITS)
    assert isinstance(escaped, str) and "surrogate" in escaped


def test_deep_nesting_and_oversized_messages_are_poison_not_exceptions() -> None:
    deep = envelope(1)[:-1] + b',"extra":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert check_message(deep, Limits(max_event_bytes=10**6)) == "not a RawEvent: nested too deep"
    big = RAW_CODEC.encode(raw(2, b"x" * 100_000))
    reason = check_message(big, LIMITS)
    assert isinstance(reason, str) and reason.startswith("oversized: ") and "bridge_max_event_bytes" in reason


def test_an_event_stamped_far_ahead_of_the_wall_clock_is_poison_with_the_reason() -> None:
    far = RAW_CODEC.encode(raw(1, at=datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)))
    reason = check_message(far, LIMITS)
    assert isinstance(reason, str) and "9999-12-31T23:59:59Z" in reason and "ahead of the wall clock" in reason
    assert "match.max_ahead_s = 300 s" in reason
    # within the guard: taken (clock skew of a minute is normal)
    assert not isinstance(check_message(RAW_CODEC.encode(raw(2, at=NOW + timedelta(minutes=1))), LIMITS), str)
    # no wall clock given: no guard (a caller that only sorts messages)
    assert not isinstance(check_message(far, Limits()), str)


def test_a_fetch_with_bad_messages_keeps_every_good_one() -> None:
    bad = [
        envelope(900).replace(b'"shop"', b'"sh\xffop"', 1),
        RAW_CODEC.encode(raw(901, at=datetime(9999, 12, 31, tzinfo=UTC))),
        b'{"id": 5}',
        b"[" * 5000,
    ]
    msgs = [FakeMsg(envelope(i)) for i in range(150)] + [FakeMsg(b) for b in bad] + \
        [FakeMsg(envelope(i)) for i in range(150, 300)]
    decoded = decode_messages(msgs, 4, LIMITS)
    ids = [e.id for events in decoded.events.values() for e in events]
    assert sorted(ids) == sorted(f"e{i}" for i in range(300))
    assert [m.data for m, _ in decoded.poison] == bad
    for partition, events in decoded.events.items():  # each event with its own message and bytes
        assert [RAW_CODEC.decode(m.data) for m in decoded.msgs[partition]] == events
        assert [msgspec.msgpack.decode(w, type=RawEvent) for w in decoded.wire[partition]] == events


def test_records_are_cut_by_size_and_a_large_event_goes_alone() -> None:
    assert chunks([b"a" * 10] * 5, limit=25) == [(0, 2), (2, 4), (4, 5)]
    assert chunks([b"a" * 100, b"b", b"c"], limit=25) == [(0, 1), (1, 3)]
    assert chunks([]) == []


def test_redelivery_is_bounded_for_a_record_kafka_refuses_not_for_kafka_being_away() -> None:
    refused = MessageSizeTooLargeError()
    assert not give_up(refused, 1, 5) and give_up(refused, 5, 5)
    for away in (KafkaConnectionError(), KafkaTimeoutError()):  # Kafka down: wait, however long
        assert not give_up(away, 1000, 5)


# --- the event-time guard ----------------------------------------------------------------------------

def test_the_watermark_never_takes_a_time_beyond_the_guard() -> None:
    mark = Watermark(idle_advance_s=5.0)
    far = raw(1, at=datetime(9999, 12, 31, tzinfo=UTC))
    assert mark.observe([raw(2), far], now=1.0, wall_ms=WALL_MS, max_ahead_ms=300_000) == WALL_MS
    later = raw(3, at=NOW + timedelta(seconds=30))
    assert mark.observe([later], now=2.0, wall_ms=WALL_MS + 30_000, max_ahead_ms=300_000) == WALL_MS + 30_000
    assert beyond_wall_clock(WALL_MS + 300_001, WALL_MS, 300_000)
    assert not beyond_wall_clock(WALL_MS + 300_000, WALL_MS, 300_000)


def test_event_time_waits_for_a_source_whose_stored_watermark_is_beyond_the_guard() -> None:
    bogus = epoch_ms(datetime(9999, 12, 31, tzinfo=UTC))
    sources = {0: WALL_MS, 1: WALL_MS - 1000, 2: bogus, 3: WALL_MS}
    assert event_time(sources, 4, 10_000) == WALL_MS - 11_000  # without the wall clock: as before
    assert event_time(sources, 4, 10_000, wall_ms=WALL_MS, max_ahead_ms=300_000) == 0  # source 2 must report again
    sources[2] = WALL_MS - 2000
    assert event_time(sources, 4, 10_000, wall_ms=WALL_MS, max_ahead_ms=300_000) == WALL_MS - 12_000


# --- what may travel, and the stages ----------------------------------------------------------------

def unified(i: int, **kube: object) -> UnifiedEvent:
    return UnifiedEvent(id=f"u{i}", timestamp=NOW, type="kubeapi", source="test",
                        semantic=SemanticContext(intent="i", category="c", narrative="n"),
                        kubernetes=KubernetesData(action="EVENT", **kube))  # type: ignore[arg-type]


def test_wire_problem_names_the_place_and_what_is_wrong() -> None:
    assert wire_problem(unified(1)) is None
    assert wire_problem(unified(1, count=10**30)) == \
        "$.kubernetes.count: 1000000000000000000000000000000 is out of the 64-bit integer range"
    assert wire_problem(unified(1, count=INT64_MAX)) is None
    assert wire_problem(unified(1, message="bad \udcff")) == \
        "$.kubernetes.message: not valid UTF-8 (a lone surrogate at character 4)"
    assert wire_problem({"m": [float("nan")]}) == "$['m'][0]: nan is not a finite number"
    deep: list = []
    for _ in range(100):
        deep = [deep]
    assert (wire_problem(deep) or "").endswith("nested deeper than 64 levels")
    assert "integer of" in (wire_problem(10**10_000) or "")  # too long to print


def test_encode_output_drops_only_the_events_that_cannot_be_encoded() -> None:
    batch = UnifiedBatch(events=[unified(i) for i in range(5)] + [unified(5, count=10**30)] +
                         [unified(6, message="\udcff")] + [unified(i) for i in range(7, 10)], watermark=42)
    data, out, rejected = encode_output(batch)
    decoded = msgspec.msgpack.decode(data, type=UnifiedBatch)
    assert decoded == out and decoded.watermark == 42
    assert [e.id for e in decoded.events] == [f"u{i}" for i in (0, 1, 2, 3, 4, 7, 8, 9)]
    assert [(event_id, reason.split(":")[0]) for _, event_id, reason in rejected] == \
        [("u5", "cannot be encoded"), ("u6", "cannot be encoded")]
    assert "$.kubernetes.count" in rejected[0][2] and "$.kubernetes.message" in rejected[1][2]
    assert safe_payload(rejected[0][0]).startswith(b"UnifiedEvent(")  # the letter still carries it
    good = UnifiedBatch(events=[unified(1)])
    assert encode_output(good) == (msgspec.msgpack.encode(good), good, [])


def test_enrich_rejects_bad_payloads_one_by_one() -> None:
    good = [raw(i) for i in range(300)]
    bad = [
        raw(900, json.dumps(k8s_event(900)).encode().replace(b"Back-off", b"Back\xff-off")),
        raw(901, json.dumps(k8s_event(901, count=10**30)).encode()),
        raw(902, b'{"kind": "Event", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}"),
        raw(903, json.dumps(k8s_event(903, series={"count": -(10**20)})).encode()),
    ]
    out, rejected = enrich_stage(RawBatch(events=good[:150] + bad + good[150:], watermark=7))
    assert [e.raw.id for e in out.events] == [e.id for e in good] and out.watermark == 7
    reasons = {event_id: reason for _, event_id, reason in rejected}
    assert set(reasons) == {"e900", "e901", "e902", "e903"}
    assert reasons["e900"].startswith("payload is not a Kubernetes object: invalid UTF-8 in the string b'Back\\xff-off")
    assert "9223372036854775807" in reasons["e901"] and "$.count" in reasons["e901"]
    assert reasons["e902"] == "payload is not a Kubernetes object: nested too deep"
    assert "$.series.count" in reasons["e903"]
    encode_output(out)  # what enrich sends encodes


def test_normalize_rejects_a_metric_that_is_not_a_finite_number() -> None:
    def metric_event(i: int, value: str) -> RawEvent:
        return RawEvent(id=f"m{i}", timestamp=NOW, type="node", data=b"",
                        metadata={"kind": "Node", "name": "n1", "metric.memory.usage_percent": value})
    enriched, _ = enrich_stage(RawBatch(events=[metric_event(1, "91.5"), metric_event(2, "nan"),
                                                metric_event(3, "inf"), metric_event(4, "not a number")]))
    out, rejected = normalize_stage(EnrichedBatch(events=enriched.events))
    assert [(e.id, e.metrics) for e in out.events] == [("m1", {"memory.usage_percent": 91.5}), ("m4", {})]
    assert [(event_id, reason) for _, event_id, reason in rejected] == [
        ("m2", "cannot normalize: metadata['metric.memory.usage_percent'] is 'nan': not a finite number"),
        ("m3", "cannot normalize: metadata['metric.memory.usage_percent'] is 'inf': not a finite number")]


def test_a_dead_letter_always_encodes() -> None:
    assert safe_text("bad \udcff") == "bad \\udcff"
    assert safe_payload(unified(1)) == msgspec.msgpack.encode(unified(1))


BACKOFFS = """\
apiVersion: behavior.tapio.io/v1
kind: BehaviorPattern
metadata: {name: backoffs, version: 1.0.0}
spec:
  scope: object
  conditions:
    - type: count
      where: [{field: kubernetes.reason, operator: equals, value: BackOff}]
      at_least: 3
      window: 5m
  predictions:
    - {type: crash, confidence_base: 0.5, time_horizon: 5m, message: "{count}"}
"""


def test_a_window_state_stored_beyond_the_guard_is_repaired_on_load(tmp_path) -> None:
    """A state stored before the guard, after an event of 9999-12-31 went through: every later
    hit was late. Loaded through `within_guard`, the far hit goes and the window counts again."""
    from agents.hits import Selector, compile_pattern
    from agents.partition_windows import PartitionWindows, within_guard
    from agents.pattern_files import load_pattern

    (tmp_path / "p.yaml").write_text(BACKOFFS)
    pattern = compile_pattern(load_pattern(tmp_path / "p.yaml"))
    selector = Selector([pattern])

    def hit_event(i: int, at: datetime) -> UnifiedEvent:
        from core.events import K8sContext
        return UnifiedEvent(id=f"h{i}", timestamp=at, type="kubeapi", source="test",
                            semantic=SemanticContext(intent="crash-loop", category="c", narrative="n"),
                            k8s=K8sContext(kind="Pod", name="web-0", namespace="shop"),
                            kubernetes=KubernetesData(action="EVENT", reason="BackOff", message=f"m{i}"))

    def hits(events: list[UnifiedEvent]) -> list:
        return [h for e in events for h in selector.hits(e, {})]

    far = epoch_ms(datetime(9999, 12, 31, tzinfo=UTC))
    old = PartitionWindows(lambda key: None)
    old.add(hits([hit_event(1, NOW - timedelta(seconds=30)), hit_event(2, datetime(9999, 12, 31, tzinfo=UTC))]),
            watermark=0)
    old.advance({"backoffs": pattern}, far)  # the year-9999 event time of before the guard
    (key, stored), = old.flush().items()
    assert stored is not None and stored.done_to == far
    assert old.add(hits([hit_event(3, NOW)]), watermark=far) == 1  # late: the bug

    horizon = WALL_MS + 300_000
    repaired = within_guard(stored, horizon)
    # evaluating at year 9999 had already aged h1 out: only the far hit was left, and it goes
    assert repaired is not None and repaired.empty() and repaired.done_to == 0 and not repaired.evidence
    assert within_guard(repaired, horizon) is None  # a state within the guard is left as it is

    fresh = PartitionWindows(lambda k: repaired if k == key else None, [key])
    assert fresh.add(hits([hit_event(i, NOW + timedelta(seconds=i)) for i in (4, 5, 6)]), watermark=0) == 0
    matches = fresh.advance({"backoffs": pattern}, WALL_MS + 60_000)
    assert [(m.pattern, m.count) for m in matches] == [("backoffs", 3)]


def test_within_guard_keeps_what_is_within_it() -> None:
    from agents.partition_windows import within_guard
    from agents.windows import Entry, WindowState

    far = epoch_ms(datetime(9999, 12, 31, tzinfo=UTC))
    state = WindowState(entries={"c:": [Entry(t=WALL_MS - 5000, w=1, id="a", more=("a2",)), Entry(t=far, w=1, id="z")]},
                        series={"c:s1": (1, WALL_MS - 5000), "c:s2": (1, far)},
                        evidence={"a": msgspec.Raw(b"\xc0"), "a2": msgspec.Raw(b"\xc0"), "z": msgspec.Raw(b"\xc0")},
                        done_to=far, quiet_until=far + 60_000)
    repaired = within_guard(state, WALL_MS + 300_000)
    assert repaired is not None
    assert [e.id for e in repaired.entries["c:"]] == ["a"] and set(repaired.evidence) == {"a", "a2"}
    assert list(repaired.series) == ["c:s1"]
    assert (repaired.done_to, repaired.quiet_until) == (WALL_MS - 5000, 0)


def test_within_guard_keeps_a_quiet_period_after_a_sane_match() -> None:
    """A pattern with a 15-minute window stays quiet 15 minutes after its match: beyond the
    5-minute guard, and legitimate. A worker restarting in that time must keep it, or the
    pattern fires again for the same window."""
    from agents.partition_windows import within_guard
    from agents.windows import Entry, WindowState

    state = WindowState(entries={"c:": [Entry(t=WALL_MS - 5000, w=1, id="a")]}, series={},
                        evidence={"a": msgspec.Raw(b"\xc0")}, done_to=WALL_MS - 5000,
                        quiet_until=WALL_MS - 5000 + 15 * 60_000)
    assert within_guard(state, WALL_MS + 300_000) is None
