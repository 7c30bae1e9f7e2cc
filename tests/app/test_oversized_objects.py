"""An object larger than the transport carries (NATS max_payload, 1 MiB by default) is reduced,
never a crash: a legal 800 KB ConfigMap through `tapio replay` into the embedded JetStream and
through `tapio analyze`; one that cannot be reduced is dead-lettered with its reason; the rest of
the input goes through."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from app.analyze import analyze
from app.demo import publish_recordings
from app.jetstream import DeadLetterPublisher, EventPublisher, connect, ensure_streams, events_in, read_deadletters
from core.events import RawEvent
from core.kube.objects import MAX_OBJECT_BYTES, UnusableObject, raw_event_from_object
from core.settings import Settings

T = "2026-11-20T10:00:00Z"
BIG = 800 * 1024


def configmap(name: str, value: str, *, applied: bool = True) -> dict:
    cm = {"apiVersion": "v1", "kind": "ConfigMap",
          "metadata": {"name": name, "namespace": "shop", "uid": f"u-{name}", "creationTimestamp": T},
          "data": {"nginx.conf": value, "small": "keep me"}}
    if applied:  # kubectl apply repeats the whole object in an annotation: 1.6 MB of JSON
        cm["metadata"]["annotations"] = {"kubectl.kubernetes.io/last-applied-configuration": json.dumps(cm)}
    return cm


def unreducible() -> dict:
    """600 KB of JSON in 60,000 short strings: no value is worth replacing by its hash."""
    return {"apiVersion": "example.com/v1", "kind": "Inventory",
            "metadata": {"name": "all", "namespace": "shop", "uid": "u-inv", "creationTimestamp": T},
            "spec": {"hosts": [f"host-{i:05d}" for i in range(60_000)]}}


def event(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Event", "metadata": {"name": name, "namespace": "shop", "uid": f"u-{name}"},
            "involvedObject": {"kind": "Pod", "name": "web-0", "namespace": "shop"}, "reason": "BackOff",
            "message": "Back-off restarting failed container", "type": "Warning", "count": 1,
            "lastTimestamp": "2026-11-20T10:00:05Z"}


def big_value(seed: str) -> str:
    return base64.b64encode((seed * (BIG // len(seed) + 1)).encode()).decode()[:BIG]


@pytest.fixture
def recording(tmp_path: Path) -> Path:
    path = tmp_path / "objects.json"
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        configmap("small", "server {}"), configmap("nginx", big_value("worker_processes 4;")), unreducible(),
        event("crash")]}))
    return path


def test_a_large_configmap_is_reduced_and_still_shows_a_change() -> None:
    before = raw_event_from_object(configmap("nginx", big_value("a")), action="SNAPSHOT", source="f")
    after = raw_event_from_object(configmap("nginx", big_value("b")), action="SNAPSHOT", source="f")
    for raw in (before, after):
        assert len(raw.data) <= MAX_OBJECT_BYTES
        assert raw.metadata["reduced"].startswith("2 values replaced by their hash (the object was ")
    old, new = json.loads(before.data), json.loads(after.data)
    assert old["data"]["small"] == "keep me" and old["metadata"]["name"] == "nginx"
    assert old["data"]["nginx.conf"].endswith(f" ({BIG} bytes, not carried)")
    assert old["data"]["nginx.conf"] != new["data"]["nginx.conf"] and before.id != after.id
    with pytest.raises(UnusableObject, match=r"too large: \d+ bytes of JSON, \d+ with its 0 largest values replaced "
                                             r"by their hash, over the 524288 bytes an event may carry"):
        raw_event_from_object(unreducible(), action="SNAPSHOT", source="f")


async def test_replay_publishes_a_reduced_800kb_configmap_into_jetstream(settings: Settings,
                                                                         recording: Path) -> None:
    nats = msgspec.structs.replace(settings.nats, stream="BIGOBJ", subject_prefix="bigobj",
                                   deadletter_stream="BIGOBJ_DL", deadletter_prefix="bigobj-dl")
    summary = await publish_recordings(msgspec.structs.replace(settings, nats=nats), [recording])
    assert summary.events == 3 and len(summary.event_ids) == 3
    assert len(summary.errors) == 1 and f"{recording}: items[2]: too large: " in summary.errors[0]
    nc = await connect(nats, name="test-bigobj")
    try:
        js = nc.jetstream()
        info = await js.stream_info("BIGOBJ")
        stored = [msgspec.json.decode(part, type=RawEvent)  # a message holds one event or a batch of them
                  for seq in range(info.state.first_seq, info.state.last_seq + 1)
                  for part in events_in((await js.get_msg("BIGOBJ", seq)).data)]
        assert len(stored) == 3
        by_name = {e.metadata["name"]: e for e in stored}
        assert set(by_name) == {"small", "nginx", "crash"}
        assert "reduced" in by_name["nginx"].metadata and "reduced" not in by_name["small"].metadata
        assert json.loads(by_name["nginx"].data)["data"]["nginx.conf"].startswith("sha256:")
        letters = await read_deadletters(js, nats)
        assert [(d.stage, d.where) for d in letters] == [("replay", f"{recording}: items[2]")]
        assert "over the 524288 bytes an event may carry (Inventory all)" in letters[0].reason
    finally:
        await nc.drain()


async def test_an_event_over_max_payload_is_dead_lettered_by_the_publisher(settings: Settings) -> None:
    nats = msgspec.structs.replace(settings.nats, stream="BIGPUB", subject_prefix="bigpub",
                                   deadletter_stream="BIGPUB_DL", deadletter_prefix="bigpub-dl")
    nc = await connect(nats, name="test-bigpub")
    try:
        js = nc.jetstream()
        await ensure_streams(js, nats)
        at = datetime(2026, 11, 20, 10, tzinfo=UTC)
        batch = [RawEvent(id=f"e{i}", timestamp=at, type="kernel", data=b"x" * (2 << 20 if i == 1 else 10),
                          metadata={"namespace": "shop", "source": f"probe#{i}"}) for i in range(3)]
        publisher = EventPublisher(js, nats, deadletters=DeadLetterPublisher(js, nats))
        assert await publisher.publish_many(batch) == 2
        assert list(publisher.refused) == ["e1"] and publisher.refused["e1"].startswith(
            "probe#1: oversized: 2796") and f"max_payload ({nc.max_payload} bytes)" in publisher.refused["e1"]
        letters = await read_deadletters(js, nats)
        assert [(d.stage, d.where, d.event_id, len(d.payload)) for d in letters] == [("publish", "probe#1", "e1", 4096)]
        info = await js.stream_info("BIGPUB")
        stored = [part for seq in range(info.state.first_seq, info.state.last_seq + 1)
                  for part in events_in((await js.get_msg("BIGPUB", seq)).data)]
        assert sorted(msgspec.json.decode(part, type=RawEvent).id for part in stored) == ["e0", "e2"]
    finally:
        await nc.drain()


def test_analyze_reads_the_800kb_configmap_and_names_what_it_could_not(recording: Path) -> None:
    result = analyze([str(recording)])
    assert result.events == 3
    assert len(result.errors) == 1 and "items[2]: too large: " in result.errors[0]
