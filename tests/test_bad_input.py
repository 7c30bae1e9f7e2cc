"""One bad event never costs a good one, through the real dataflow (issue 14, point 4).

An isolated dataflow (its own stream, topics, tables, graph and dead letters; one worker with its
bridge) is sent 300 good Kubernetes Events of 10 pods and, amid them, one event each with invalid
UTF-8 in its payload, a `count` of 10**30, invalid UTF-8 in its envelope, a payload nested 5,000
deep, and a stamp of 9999-12-31. Every good event reaches the graph; each bad one is in the dead
letters once, with a reason that names what was wrong; the bridge's consumer ends with nothing
pending or unacknowledged (nothing is retried forever); and matching goes on after the far-future
event: a pattern that needs hits from after it fires for every pod, and no hit was late.
The pure parts: tests/app/test_bad_input_units.py.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from prediction_waits import settle, stored_predictions, web_page
from waiting import until

from app.demo import wait_for_events
from app.jetstream import RAW_CODEC, EventPublisher, connect, ensure_streams, event_subject, read_deadletters
from app.stack import EmbeddedStack, free_port
from app.workers import ChildProcess, with_worker_port
from core.events import RawEvent, content_id
from core.settings import Settings, isolated
from topology import queries
from topology.graph import open_graph

pytestmark = pytest.mark.xdist_group("bad-input")

NS = "bad-input"
PODS = 10
GOOD = 300
PATTERN = """\
apiVersion: behavior.tapio.io/v1
kind: BehaviorPattern
metadata: {name: backoff-storm, version: 1.0.0}
spec:
  scope: object
  conditions:
    - type: count
      where: [{field: kubernetes.reason, operator: equals, value: BackOff}]
      at_least: 25
      window: 5m
  predictions:
    - {type: crash_loop, confidence_base: 0.5, time_horizon: 5m, message: "{count} back-offs of {name}"}
"""


@pytest.fixture(scope="module")
def flow(embedded: EmbeddedStack, tmp_path_factory: pytest.TempPathFactory) -> dict:
    patterns = tmp_path_factory.mktemp("bad-input-patterns")
    (patterns / "backoff-storm.yaml").write_text(PATTERN)
    base = isolated(with_worker_port(embedded.settings(), free_port(),
                                     data_dir=str(tmp_path_factory.mktemp("bad-input-worker"))), "bad-input")
    settings = msgspec.structs.replace(base, match=msgspec.structs.replace(
        base.match, patterns_dir=str(patterns), idle_advance_s=1.0))
    # in JSON lines (`tapio --log-format json worker`): test_the_worker_logs_json_lines_that_say_where reads them
    proc = ChildProcess(settings, ["--log-format", "json", "worker"], name="worker",
                        log_dir=tmp_path_factory.mktemp("bad-input-logs"))
    yield {"settings": settings, "proc": proc}
    proc.stop()


def k8s_event(i: int, at: datetime, **extra: object) -> dict:
    pod = f"web-{i % PODS}"
    when = at.isoformat().replace("+00:00", "Z")
    return {"apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{pod}.{i:06d}", "namespace": NS, "uid": f"ev-{i}"},
            "involvedObject": {"kind": "Pod", "name": pod, "namespace": NS, "uid": f"uid-{pod}"},
            # each Event its own series (its own message): every one counts once
            "reason": "BackOff", "message": f"Back-off restarting failed container (attempt {i})",
            "type": "Warning", "count": 1, "source": {"component": "kubelet", "host": "node-a"},
            "firstTimestamp": when, "lastTimestamp": when, **extra}


def raw(i: int, at: datetime, data: bytes) -> RawEvent:
    return RawEvent(id=content_id("bad-input", str(i)), timestamp=at, type="kubeapi", data=data,
                    metadata={"namespace": NS, "kind": "Event", "action": "EVENT"})


async def _at_least(find, n: int) -> list:
    found = await find()
    return found if len(found) >= n else []


async def graph_count(settings: Settings, ids: list[str]) -> int:
    graph = open_graph(settings.graph)
    try:
        rows = await graph.query(queries.COUNT_EVENTS, ids=ids)
    finally:
        await graph.close()
    return rows[0]["n"] if rows else 0


async def test_bad_events_are_dead_lettered_alone_and_matching_goes_on(flow: dict) -> None:
    settings: Settings = flow["settings"]
    proc: ChildProcess = flow["proc"]
    await until(lambda: web_page(settings, "/tapio/patterns/"), timeout=90, ignoring=(OSError,), procs=[proc],
                what="the worker's web server to answer")
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)  # behind the wall clock, as live events

    def at(i: int) -> datetime:
        return t0 + timedelta(milliseconds=200 * i)

    good = [raw(i, at(i), json.dumps(k8s_event(i, at(i))).encode()) for i in range(GOOD)]
    payload_utf8 = raw(1001, at(150), json.dumps(k8s_event(1001, at(150))).encode().replace(
        b"Back-off", b"Back\xff\xfe-off"))
    huge_count = raw(1002, at(150), json.dumps(k8s_event(1002, at(150), count=10**30)).encode())
    deep = raw(1003, at(150), json.dumps(k8s_event(1003, at(150))).encode()[:-1] +
               b', "extra": ' + b"[" * 5000 + b"]" * 5000 + b"}")
    far = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    future = raw(1004, far, json.dumps(k8s_event(1004, far)).encode())
    envelope = RAW_CODEC.encode(raw(1005, at(150), json.dumps(k8s_event(1005, at(150))).encode())).replace(
        f'"namespace":"{NS}"'.encode(), f'"namespace":"{NS}'.encode() + b'\xff"')
    assert b'-input\xff"' in envelope

    nc = await connect(settings.nats, name="test-bad-input")
    js = nc.jetstream()
    await ensure_streams(js, settings.nats)
    publisher = EventPublisher(js, settings.nats)
    assert await publisher.publish_many(good[:150] + [payload_utf8, huge_count, deep, future]) == 154
    await js.publish(event_subject(settings.nats, good[0]), envelope)
    assert await publisher.publish_many(good[150:]) == 150

    # every good event reaches the graph, no bad one does
    good_ids = [e.id for e in good]
    assert await wait_for_events(settings, good_ids, timeout=120) == GOOD, proc.log_tail()
    bad_ids = [e.id for e in (payload_utf8, huge_count, deep, future)] + [content_id("bad-input", "1005")]
    assert await graph_count(settings, bad_ids) == 0

    # nothing is retried forever: every message was acknowledged or terminated
    async def drained() -> object:
        info = await js.consumer_info(settings.nats.stream, settings.nats.bridge_durable)
        return info if info.num_pending == 0 and info.num_ack_pending == 0 else None
    info = await until(drained, timeout=60, what="the bridge's consumer with nothing pending", procs=[proc])
    # (events go in batches of one subject: a bad one of a batch is dead-lettered alone, below)
    assert info.delivered.stream_seq == (await js.stream_info(settings.nats.stream)).state.last_seq

    # each bad one is in the dead letters, once, with a reason naming what was wrong
    def letters_for(letters: list, letter_filter) -> list:
        return [x for x in letters if letter_filter(x)]
    wanted = {
        "payload utf-8": lambda x: x.stage == "enrich" and x.event_id == payload_utf8.id,
        "count 10**30": lambda x: x.stage == "enrich" and x.event_id == huge_count.id,
        "deep payload": lambda x: x.stage == "enrich" and x.event_id == deep.id,
        "envelope utf-8": lambda x: x.stage == "bridge" and x.payload == envelope,
        "9999-12-31": lambda x: x.stage == "bridge" and future.id.encode() in x.payload,
    }

    async def all_there() -> list:
        letters = await read_deadletters(js, settings.nats, limit=1000)
        return letters if all(letters_for(letters, f) for f in wanted.values()) else []
    letters = await until(all_there, timeout=60, what="a dead letter for each bad event", procs=[proc])
    found = {name: letters_for(letters, f) for name, f in wanted.items()}
    assert {name: len(x) for name, x in found.items()} == dict.fromkeys(wanted, 1), letters
    assert "invalid UTF-8 in the string b'Back\\xff\\xfe-off" in found["payload utf-8"][0].reason
    assert "$.count" in found["count 10**30"][0].reason and "9223372036854775807" in found["count 10**30"][0].reason
    assert "nested too deep" in found["deep payload"][0].reason
    assert "invalid UTF-8 in the string b'bad-input\\xff' (byte 9: invalid start byte) of the envelope" \
        in found["envelope utf-8"][0].reason
    assert "9999-12-31T23:59:59Z" in found["9999-12-31"][0].reason
    assert "ahead of the wall clock" in found["9999-12-31"][0].reason
    assert all("stream_seq=" in x[0].where for name, x in found.items() if x[0].stage == "bridge")
    assert all(f"event {x[0].event_id}" in x[0].where for x in found.values() if x[0].stage == "enrich")
    assert len(letters) == len(wanted), [(x.stage, x.reason) for x in letters]

    # matching goes on: each pod needs hits from after the far-future event to reach 25 back-offs
    # (the diagnose stage adds its own predictions about the same pods: only the pattern's are counted)
    async def fired() -> list:
        found = await stored_predictions(settings, t0 - timedelta(minutes=1), datetime.now(UTC))
        return [p for p in found if p.pattern == "backoff-storm"]
    await until(lambda: _at_least(fired, PODS), timeout=120, what=f"{PODS} backoff-storm predictions", procs=[proc])
    everything = await settle(settings, t0 - timedelta(minutes=1), datetime.now(UTC) + timedelta(minutes=1), proc,
                              through=at(GOOD - 1))
    predictions = [p for p in everything if p.pattern == "backoff-storm"]
    assert sorted(p.scope for p in predictions) == sorted(f"object:Pod/{NS}/web-{k}" for k in range(PODS))
    stages = await web_page(settings, "/tapio/stages/")
    assert stages.get("late", {}).get("events", 0) == 0, stages
    # what each task awaits (a stalled stage's evidence): the topology service, held in its read loop
    held = await web_page(settings, "/tapio/tasks/?match=topology_service.py")
    assert held["count"] >= 1 and any("topology_service.py" in link and "_run" in link
                                      for task in held["tasks"] for link in task["chain"]), held
    await nc.drain()



def test_the_worker_logs_json_lines_that_say_where(flow: dict) -> None:
    """The worker above runs with `--log-format json`: every line it wrote is one JSON object with time,
    level, logger and message; the dead letters of the test above say their stage and event id, and the
    lines of the stages say their partition and offset."""
    proc: ChildProcess = flow["proc"]
    lines = [line for line in proc.log_path.read_text().splitlines() if line.strip()]
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"not a JSON line: {line[:500]!r}") from None
    assert records and all({"time", "level", "logger", "message"} <= set(r) for r in records)
    dead = [r for r in records if r["message"].startswith("dead-lettered enrich input")]
    assert {r.get("event_id") for r in dead} == {content_id("bad-input", str(i)) for i in (1001, 1002, 1003)}
    assert all(r["stage"] == "enrich" and r["level"] == "WARNING" for r in dead)
    windows = [r for r in records if r["message"].startswith("windows: partition")]
    assert windows and all(r["stage"] == "windows" and r["message"].startswith(f"windows: partition {r['partition']}:")
                           and isinstance(r["offset"], int) for r in windows)
    bridge = [r for r in records if r["message"].startswith("dead-lettered bridge input")]
    assert len(bridge) == 2 and all(r["stage"] == "bridge" and "event_id" not in r for r in bridge)
