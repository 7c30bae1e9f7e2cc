"""Pure parts of the bridge and the records: partitioning, trace headers, poison splitting, views."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from app.bridge import batch_headers, decode_messages, partition_for, traceparent
from app.jetstream import RAW_CODEC
from core.events import RawEvent, SemanticContext, UnifiedEvent
from core.records import InsightBatch, InsightBatchView, UnifiedBatch, UnifiedBatchView, batch_size, msgpack_array

T = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def raw(i: int, ns: str = "shop", **kw: str) -> RawEvent:
    return RawEvent(id=f"e{i}", timestamp=T, type="kubeapi", data=b"{}", metadata={"namespace": ns}, **kw)


class FakeMsg:  # the two attributes decode_messages reads from a nats Msg
    def __init__(self, data: bytes) -> None:
        self.data = data


def test_partition_is_stable_and_in_range() -> None:
    assert partition_for("shop", 4) == partition_for("shop", 4)
    assert {partition_for(f"ns-{i}", 4) for i in range(100)} == {0, 1, 2, 3}


def test_traceparent_is_w3c_and_ignores_malformed_ids() -> None:
    event = raw(1, trace_id="4bf92f3577b34da6a3ce929d0e0e4736", span_id="00f067aa0ba902b7")
    assert traceparent(event) == "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    assert traceparent(raw(2)) is None
    assert traceparent(raw(3, trace_id="not-hex")) is None
    headers = dict(batch_headers([event, raw(4)]))
    assert headers["tapio-events"] == b"2" and headers["traceparent"].startswith(b"00-4bf9")


def test_decode_splits_poison_from_events_by_partition() -> None:
    msgs = [FakeMsg(RAW_CODEC.encode(raw(1, "a"))), FakeMsg(b"garbage"), FakeMsg(b'{"id": 1}'),
            FakeMsg(RAW_CODEC.encode(raw(2, "b")))]
    decoded = decode_messages(msgs, 4)
    assert sorted(e.id for group in decoded.events.values() for e in group) == ["e1", "e2"]
    assert [m.data for m, _ in decoded.poison] == [b"garbage", b'{"id": 1}']
    assert all(reason.startswith("not a RawEvent") for _, reason in decoded.poison)


def test_a_bad_event_of_a_batch_is_poison_alone_and_a_broken_batch_is_poison_whole() -> None:
    from app.bridge import Limits
    from app.jetstream import batch_messages, events_in

    far = RawEvent(id="far", timestamp=datetime(9999, 12, 31, tzinfo=UTC), type="kubeapi", data=b"{}",
                   metadata={"namespace": "shop"})
    [(subject, held, payload)] = list(batch_messages([raw(1), far, raw(2)], subject_of=lambda e: "events.kubeapi.shop",
                                                     max_events=500, max_bytes=256 * 1024, max_payload=2**20))
    assert [e.id for e in held] == ["e1", "far", "e2"] and len(events_in(payload)) == 3
    bad_envelope = b'{"id": "e3", "timestamp": "2026-11-20T10:00:00Z", "type": "kubeapi", "data": "", ' \
                   b'"metadata": {"namespace": "sh\xffop"}}'
    batch = FakeMsg(payload[:-1] + b"," + bad_envelope + b"]")
    broken = FakeMsg(b'[{"id": "e4"')
    decoded = decode_messages([batch, broken, FakeMsg(RAW_CODEC.encode(raw(5)))], 4,
                              Limits(wall_ms=int(T.timestamp() * 1000), max_ahead_ms=3_600_000))
    assert sorted(e.id for group in decoded.events.values() for e in group) == ["e1", "e2", "e5"]
    assert [(m.data, index) for m, index, _, _ in decoded.poison_items] == [(batch.data, 1), (batch.data, 3)]
    far_reason, utf8_reason = (reason for _, _, _, reason in decoded.poison_items)
    assert "ahead of the wall clock" in far_reason and "invalid UTF-8" in utf8_reason
    assert [m.data for m, _ in decoded.poison] == [broken.data]  # the array itself does not decode


def test_views_forward_events_byte_for_byte() -> None:
    events = [UnifiedEvent(id=f"u{i}", timestamp=T, type="kubeapi", source="s",
                           semantic=SemanticContext(intent="i", category="c", narrative="n")) for i in range(20)]
    wire = msgspec.msgpack.encode(UnifiedBatch(events=events))
    view = msgspec.msgpack.decode(wire, type=UnifiedBatchView)
    assert batch_size(view) == 20
    forwarded = msgspec.msgpack.encode(InsightBatchView(events=view.events))
    assert msgspec.msgpack.decode(forwarded, type=InsightBatch).events == events
    # events encoded one by one (the front chain: a hit carries its event's bytes) make the same array
    for n in (0, 3, 15, 16, 70_000):
        some = (events * (n // len(events) + 1))[:n]
        joined = msgpack_array([msgspec.msgpack.encode(e) for e in some])
        assert bytes(joined) == msgspec.msgpack.encode(some) and batch_size(InsightBatchView(events=joined)) == n


def _raw(ms: int, action: str = "EVENT") -> RawEvent:
    return RawEvent(id=str(ms), timestamp=datetime.fromtimestamp(ms / 1000, tz=UTC), type="kubeapi",
                    data=b"{}", metadata={"action": action})


def test_watermark_is_the_newest_timed_event_and_moves_on_when_idle() -> None:
    from app.bridge import Watermark
    mark = Watermark(idle_advance_s=5.0)
    assert mark.idle_stamp(100.0) is None  # nothing seen yet: nothing to advance from
    assert mark.observe([_raw(10_000), _raw(8_000), _raw(99_000_000, "SNAPSHOT")], now=100.0) == 10_000
    assert mark.observe([_raw(9_000)], now=101.0) == 10_000  # an older event never moves it back
    assert mark.idle_stamp(105.0) is None  # 4 s of silence: not yet
    assert mark.idle_stamp(106.5) == 10_000 + 5_500  # 5.5 s of silence: event time moves on with it
    assert mark.idle_stamp(107.0) is None  # at most once a second
    assert mark.idle_stamp(107.6) == 10_000 + 6_600


def test_event_time_does_not_move_on_while_jetstream_does_not_answer() -> None:
    # the kill test's [nats] run once counted 335 hits as late: rounds nobody answered while nats-server
    # restarted were taken for silence, and the events published meanwhile arrived behind event time
    from app.bridge import Watermark
    mark = Watermark(idle_advance_s=5.0)
    mark.observe([_raw(10_000)], now=100.0)
    assert mark.idle_stamp(106.0, answered=False) is None  # 6 s without an answer: a wait, not silence
    assert mark.idle_stamp(112.0, answered=False) is None
    assert mark.idle_stamp(115.0) is None  # answered again: silence counts from the last unanswered round
    assert mark.idle_stamp(117.5) == 10_000 + 5_500


def test_an_end_marker_moves_event_time_and_is_not_an_event() -> None:
    from types import SimpleNamespace

    from app.bridge import Watermark, end_marker
    at = datetime(2026, 11, 20, 10, 5, tzinfo=UTC)
    msgs = [SimpleNamespace(data=RAW_CODEC.encode(e)) for e in (_raw(1_000), end_marker(at))]
    decoded = decode_messages(msgs, 4)
    assert [e.id for events in decoded.events.values() for e in events] == ["1000"]
    assert [m.timestamp for m in decoded.marks] == [at] and decoded.poison == []
    mark = Watermark(idle_advance_s=5.0)
    assert mark.observe([*decoded.events.get(partition_for("_cluster", 4), []), *decoded.marks], now=1.0) == \
        int(at.timestamp() * 1000)


def test_the_bridge_is_alive_but_not_ready_while_nats_or_kafka_is_away() -> None:
    from app.bridge import Bridge, bridge_health
    from core.settings import Settings

    bridge = Bridge(Settings())  # not started: no NATS connection yet
    ready, body = bridge_health(bridge)
    assert not ready and body["status"] == "degraded" and body["problems"] == ["not connected to NATS"]

    class Connected:
        is_connected = True

    bridge.nc = Connected()  # type: ignore[assignment]
    assert bridge_health(bridge) == (True, {"status": "ok", "problems": [], "bridged": 0, "dead_lettered": 0})
    bridge._kafka_failed = True  # a Kafka error, and no epoch check has gone through since
    ready, body = bridge_health(bridge)
    assert not ready and body["problems"] == ["Kafka has not answered since its last error (or since the start)"]
