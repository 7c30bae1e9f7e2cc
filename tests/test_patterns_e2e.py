"""The pattern catalog inside the real running dataflow: JetStream -> bridge -> Faust -> FalkorDB.

One isolated dataflow (its own stream, topics, tables and graph) runs the shipped catalog (a
copy, so a test can add its own pattern file). Each labelled scenario under patterns/scenarios
is replayed into its own slot of event time (`--shift-to`: slots are 6 h apart, so windows never
mix), and the predictions the graph holds for the slot are compared with the labels. Then:
a replay of the recorded JetStream stream into a second dataflow gives identical predictions; a
threshold edit applies to the next window; window state survives a worker restart.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest
import yaml
from prediction_waits import evaluated_through, settle, web_page
from waiting import until, until_sync

from app.demo import publish_recordings
from app.jetstream import RAW_CODEC, EventPublisher, connect, ensure_streams, events_in
from app.stack import EmbeddedStack, free_port
from app.workers import ChildProcess, start_worker, with_worker_port
from collectors.replay import newest_time, read_recording
from collectors.replayer import recording_files
from core.events import RawEvent
from core.settings import Settings, isolated
from topology.graph import open_graph
from topology.predictions import StoredPrediction

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = sorted(p.parent for p in (ROOT / "patterns" / "scenarios").glob("*/*/labels.yaml"))
BASE = datetime(2027, 1, 4, tzinfo=UTC)
# with pytest-xdist, the tests using `flow` run on one worker process, in order: they share its dataflow
FLOW = pytest.mark.xdist_group("patterns-flow")
SLOT = timedelta(hours=6)


def _settings(embedded: EmbeddedStack, name: str, patterns: Path, data: Path) -> Settings:
    settings = isolated(with_worker_port(embedded.settings(), free_port(), data_dir=str(data)), name)
    # the scenarios are replayed into slots of event time in 2027, ahead of the wall clock: the
    # event-time guard (match.max_ahead_s) is opened wide for them
    return msgspec.structs.replace(settings, match=msgspec.structs.replace(
        settings.match, patterns_dir=str(patterns), idle_advance_s=2.0, max_ahead_s=10 * 365 * 86400.0))


@pytest.fixture(scope="module")
def patterns_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("patterns")
    for file in (ROOT / "patterns").glob("*.yaml"):
        shutil.copy(file, target / file.name)
    return target


@pytest.fixture(scope="module")
def flow(embedded: EmbeddedStack, patterns_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    settings = _settings(embedded, "patterns-e2e", patterns_dir, tmp_path_factory.mktemp("pworker"))
    logs = tmp_path_factory.mktemp("pworker-log")
    holder = {"settings": settings, "logs": logs, "proc": start_worker(settings, log_dir=logs)}
    wait_for_web(settings, holder["proc"])
    yield holder
    holder["proc"].stop()


def wait_for_web(settings: Settings, proc: ChildProcess) -> None:
    """Until the worker's web server answers (its agents and tables are up by then)."""
    until_sync(lambda: page(settings, "/tapio/patterns/"), timeout=60, ignoring=(OSError,), procs=[proc],
               what=f"{proc.name}'s web server to answer")


async def web_up(settings: Settings, proc: ChildProcess) -> None:
    """wait_for_web, for the async tests."""
    await until(lambda: web_page(settings, "/tapio/patterns/"), timeout=60, ignoring=(OSError,), procs=[proc],
                what=f"{proc.name}'s web server to answer")


def page(settings: Settings, path: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{settings.worker.web_port}{path}", timeout=5) as response:
        return json.load(response)


async def pattern_loaded(settings: Settings, name: str, version: str, proc: ChildProcess) -> None:
    """Until the worker runs `version` of pattern `name` (the folder is looked at every 0.25 s)."""
    async def loaded() -> bool:
        return (await web_page(settings, "/tapio/patterns/"))["patterns"].get(name) == version
    await until(loaded, timeout=30, procs=[proc], what=f"the worker to load {name} {version}")


async def window_counts(settings: Settings, pattern: str, scopes: list[str], n: int, proc: ChildProcess) -> dict:
    """Until the window of `pattern` in each scope holds `n` hits (read from the worker's table pages)."""
    async def counts() -> dict | None:
        out = {}
        for scope in scopes:
            key = urllib.parse.quote(f"{pattern}|{scope}", safe="")
            try:
                body = await web_page(settings, f"/tapio/tables/tapio-windows/{key}/")
            except urllib.error.HTTPError as e:  # 404: not there yet
                out[scope] = e.code
                continue
            out[scope] = body["row"]["events"]
        return out if all(c == n for c in out.values()) else None
    return await until(counts, timeout=60, procs=[proc], what=f"{n} hits in the {pattern} windows of {scopes}")


async def holding(settings: Settings) -> list[int]:
    """The tapio-windows partitions the worker holds."""
    [windows] = [t for t in (await web_page(settings, "/tapio/tables/"))["tables"] if t["name"] == "tapio-windows"]
    return windows["partitions"]


def scenario_events(folder: Path) -> list[RawEvent]:
    return [e for f in recording_files([folder]) for e in read_recording(f) if isinstance(e, RawEvent)]


@FLOW
async def test_every_scenario_fires_what_its_labels_say(flow: dict) -> None:
    settings, proc = flow["settings"], flow["proc"]
    assert len(SCENARIOS) >= 42, "each of the 20 patterns has a positive and a negative scenario"
    slots = []
    for k, folder in enumerate(SCENARIOS):
        shift_to = BASE + k * SLOT
        delta = shift_to - newest_time(scenario_events(folder))
        summary = await publish_recordings(settings, [folder], shift_to=shift_to)
        assert summary.errors == [], folder
        slots.append((folder, shift_to, delta))
    labelled = sum(len(yaml.safe_load((f / "labels.yaml").read_text())["incidents"]) for f, _, _ in slots)
    found = await settle(settings, BASE - SLOT, BASE + len(SCENARIOS) * SLOT, proc, at_least=labelled,
                         through=max(shift_to for _, shift_to, _ in slots))
    problems = []
    for folder, shift_to, delta in slots:
        labels = yaml.safe_load((folder / "labels.yaml").read_text())
        name = folder.relative_to(ROOT / "patterns" / "scenarios")
        mine = [p for p in found if shift_to - SLOT + timedelta(hours=1) < p.at <= shift_to + timedelta(minutes=30)
                and not p.pattern.startswith("diagnosis/")]  # the diagnose stage's: tests/test_diagnose_live.py
        fired = {(p.pattern, p.scope): p for p in mine}
        for incident in labels["incidents"]:
            got = fired.get((incident["pattern"], incident["scope"]))
            due = datetime.fromisoformat(incident["due_by"].replace("Z", "+00:00")) + delta
            if got is None:
                problems.append(f"{name}: {incident['pattern']} did not fire in {incident['scope']}")
            elif (got.since or got.at) > due:  # an episode's prediction updated in place keeps when it came first
                problems.append(f"{name}: {incident['pattern']} fired at {(got.since or got.at) - delta}, after due_by")
        expected = {i["pattern"] for i in labels["incidents"]}
        for pattern, scope in fired:
            if pattern not in expected or pattern in labels.get("silent", []):
                problems.append(f"{name}: {pattern} fired in {scope} but the labels do not expect it")
    assert problems == [], "\n".join(problems)


async def _publish_paced(settings: Settings, events: list[RawEvent], *, pause_s: float) -> None:
    nc = await connect(settings.nats, name="paced")
    try:
        js = nc.jetstream()
        await ensure_streams(js, settings.nats)
        publisher = EventPublisher(js, settings.nats)
        for event in events:
            await publisher.publish_many([event])
            await asyncio.sleep(pause_s)
    finally:
        await nc.drain()


async def _stream_messages(settings: Settings) -> list[RawEvent]:
    nc = await connect(settings.nats, name="reader")
    try:
        js = nc.jetstream()
        info = await js.stream_info(settings.nats.stream)
        out = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            msg = await js.get_msg(settings.nats.stream, seq)
            out.extend(RAW_CODEC.decode(part) for part in events_in(msg.data))  # one event or a batch
        return out
    finally:
        await nc.drain()


async def test_replaying_the_recorded_stream_gives_the_predictions_live_gave(
        embedded: EmbeddedStack, patterns_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    from core.events import publish_order
    folder = ROOT / "patterns" / "scenarios" / "configmap-crashloop"
    events = publish_order(scenario_events(folder))
    live = _settings(embedded, "patterns-live", patterns_dir, tmp_path_factory.mktemp("live"))
    replay = _settings(embedded, "patterns-replay", patterns_dir, tmp_path_factory.mktemp("replay"))
    procs = [start_worker(s, log_dir=tmp_path_factory.mktemp("log")) for s in (live, replay)]
    try:
        await _publish_paced(live, events, pause_s=0.03)  # one event at a time, as a cluster sends them
        span = (events[0].timestamp - timedelta(days=1), events[-1].timestamp + timedelta(days=1))
        newest = max(e.timestamp for e in events)
        live_found = await settle(live, *span, procs[0], at_least=3, through=newest)
        # the JetStream stream as it was recorded live (without the fence settle published)
        recorded = [e for e in await _stream_messages(live) if e.metadata.get("source") != "test-fence"]
        assert len(recorded) >= len(events)
        publisher_events = [e for e in recorded if e.metadata.get("action") != "CHANGE"]
        nc = await connect(replay.nats, name="replay")
        try:
            js = nc.jetstream()
            await ensure_streams(js, replay.nats)
            await EventPublisher(js, replay.nats).publish_many(publisher_events)  # full speed, one go
        finally:
            await nc.drain()
        replay_found = await settle(replay, *span, procs[1], at_least=len(live_found), through=newest)
    finally:
        for proc in procs:
            proc.stop()

    def key(p: StoredPrediction) -> tuple:
        return (p.id, p.pattern, p.scope, p.at, p.confidence, p.message, sorted(r.key for r in p.impacted))
    assert sorted(map(key, replay_found)) == sorted(map(key, live_found))
    assert {p.pattern for p in live_found} >= {"config-drift"}


HOT = """\
apiVersion: behavior.tapio.io/v1
kind: BehaviorPattern
metadata: {{name: e2e-hot-reload, version: "1.0.{v}"}}
spec:
  scope: object
  conditions:
    - type: count
      where:
        - {{field: kubernetes.reason, operator: equals, value: E2eHotReload}}
      at_least: {n}
      window: 5m
  predictions:
    - {{type: test, confidence_base: 0.5, time_horizon: 5m, message: "{{count}} in {{scope}}"}}
"""


def hot_events(start: datetime, pod: str, n: int, *, every_s: int = 10, reason: str = "E2eHotReload") -> list[dict]:
    return [{"apiVersion": "v1", "kind": "Event",
             "metadata": {"name": f"{pod}.{i}", "namespace": "hot", "uid": f"hot-{pod}-{start.timestamp()}-{i}"},
             "involvedObject": {"kind": "Pod", "name": pod, "namespace": "hot", "uid": f"uid-{pod}"},
             "reason": reason, "message": f"occurrence {i}", "type": "Warning", "count": 1,
             "lastTimestamp": (start + timedelta(seconds=every_s * i)).isoformat().replace("+00:00", "Z")}
            for i in range(n)]


async def _wait_generation(settings: Settings, above: int, *, or_error: bool = False) -> dict:
    async def reloaded() -> dict | None:
        status = await web_page(settings, "/tapio/patterns/")
        return status if status["generation"] > above or (or_error and status["errors"]) else None
    return await until(reloaded, timeout=10, what=f"the worker to reload the pattern folder (generation > {above})")


@FLOW
async def test_a_threshold_edit_applies_to_the_next_window(flow: dict, tmp_path: Path) -> None:
    settings, proc, patterns = flow["settings"], flow["proc"], Path(flow["settings"].match.patterns_dir)
    generation = (await web_page(settings, "/tapio/patterns/"))["generation"]
    (patterns / "e2e-hot.yaml").write_text(HOT.format(v=0, n=5))
    assert "e2e-hot-reload" in (await _wait_generation(settings, generation))["patterns"]
    t1 = BASE + 200 * SLOT
    # three in the first window (threshold 5), and a later event that moves event time past it
    clock = hot_events(t1 + timedelta(minutes=15), "clock", 1, reason="E2eClock")
    (tmp_path / "first.json").write_text(json.dumps({"kind": "List", "items": hot_events(t1, "p1", 3) + clock}))
    await publish_recordings(settings, [tmp_path / "first.json"])
    await evaluated_through([settings], t1 + timedelta(seconds=20), [proc])  # the first window, under the old threshold
    # a broken edit: the last good version keeps running and the health page says why
    generation = (await web_page(settings, "/tapio/patterns/"))["generation"]
    (patterns / "e2e-hot.yaml").write_text(HOT.format(v=1, n="three"))
    status = await _wait_generation(settings, generation, or_error=True)
    assert status["generation"] == generation and "e2e-hot.yaml" in status["errors"][0]
    health = (await web_page(settings, "/tapio/health/"))
    assert health["status"] == "degraded" and "at_least" in health["pattern_errors"][0]
    (patterns / "e2e-hot.yaml").write_text(HOT.format(v=2, n=3))
    assert (await _wait_generation(settings, generation))["patterns"]["e2e-hot-reload"] == "1.0.2"
    assert (await web_page(settings, "/tapio/health/"))["status"] == "ok"
    t2 = t1 + timedelta(minutes=30)
    (tmp_path / "second.json").write_text(json.dumps({"kind": "List", "items": hot_events(t2, "p2", 3)}))
    await publish_recordings(settings, [tmp_path / "second.json"])
    found = await settle(settings, t1 - timedelta(minutes=1), t2 + timedelta(hours=1), proc, at_least=1,
                         through=t2 + timedelta(seconds=20))
    assert [(p.pattern, p.scope, p.message) for p in found] == [
        ("e2e-hot-reload", "object:Pod/hot/p2", "3 in Pod/hot/p2")]


@FLOW
async def test_window_state_survives_a_worker_restart(flow: dict, tmp_path: Path) -> None:
    settings, patterns = flow["settings"], Path(flow["settings"].match.patterns_dir)
    (patterns / "e2e-hot.yaml").write_text(HOT.format(v=3, n=4))
    t = BASE + 300 * SLOT
    events = hot_events(t, "p3", 4, every_s=60)
    (tmp_path / "before.json").write_text(json.dumps({"kind": "List", "items": events[:2]}))
    (tmp_path / "after.json").write_text(json.dumps({"kind": "List", "items": events[2:]}))
    await pattern_loaded(settings, "e2e-hot-reload", "1.0.3", flow["proc"])
    await publish_recordings(settings, [tmp_path / "before.json"])
    await window_counts(settings, "e2e-hot-reload", ["object:Pod/hot/p3"], 2, flow["proc"])
    assert flow["proc"].stop() == 0
    flow["proc"] = start_worker(settings, log_dir=flow["logs"], name="worker-restarted")
    await web_up(settings, flow["proc"])
    await publish_recordings(settings, [tmp_path / "after.json"])
    found = await settle(settings, t - timedelta(minutes=1), t + timedelta(hours=1), flow["proc"], at_least=1,
                         through=t + timedelta(seconds=180))
    assert [(p.pattern, p.message) for p in found] == [("e2e-hot-reload", "4 in Pod/hot/p3")]


@FLOW
async def test_window_state_moves_with_its_partitions_to_another_worker(flow: dict, tmp_path: Path) -> None:
    """Rebalance and takeover: a second worker joins the group, the first leaves; the windows it
    held are recovered from the changelog by the second, which completes the match."""
    settings, patterns = flow["settings"], Path(flow["settings"].match.patterns_dir)
    (patterns / "e2e-hot.yaml").write_text(HOT.format(v=4, n=4))
    t = BASE + 400 * SLOT
    events = [e for pod in ("q1", "q2", "q3", "q4") for e in hot_events(t, pod, 4, every_s=60)]
    (tmp_path / "before.json").write_text(json.dumps({"kind": "List", "items": [
        e for e in events if e["lastTimestamp"] < (t + timedelta(seconds=90)).isoformat().replace("+00:00", "Z")]}))
    (tmp_path / "after.json").write_text(json.dumps({"kind": "List", "items": [
        e for e in events if e["lastTimestamp"] >= (t + timedelta(seconds=90)).isoformat().replace("+00:00", "Z")]}))
    first = flow["proc"]
    await pattern_loaded(settings, "e2e-hot-reload", "1.0.4", first)
    await publish_recordings(settings, [tmp_path / "before.json"])  # 2 of 4 hits for each of 4 pods
    pods = [f"object:Pod/hot/{pod}" for pod in ("q1", "q2", "q3", "q4")]
    await window_counts(settings, "e2e-hot-reload", pods, 2, first)
    second = with_worker_port(settings, free_port(), data_dir=str(tmp_path / "second-worker"))
    joined = start_worker(second, log_dir=flow["logs"], name="worker-second")
    everything = list(range(settings.kafka.partitions))
    try:
        await web_up(second, joined)

        async def split() -> tuple | None:  # the group rebalances: the partitions are split between the two
            mine, theirs = await holding(settings), await holding(second)
            return (mine, theirs) if mine and theirs and sorted(mine + theirs) == everything else None
        await until(split, timeout=120, procs=[first, joined], ignoring=(OSError,),
                    what="the two workers to split the partitions")
        assert first.stop() == 0  # the first leaves: the second takes every partition over
        flow["proc"], flow["settings"] = joined, second

        async def all_taken() -> list[int] | None:
            held = await holding(second)
            return held if held == everything else None
        await until(all_taken, timeout=120, procs=[joined], what="the second worker to hold every partition")
        await publish_recordings(second, [tmp_path / "after.json"])
        found = await settle(second, t - timedelta(minutes=1), t + timedelta(hours=1), joined, at_least=4,
                             through=t + timedelta(seconds=180))
    except BaseException:
        joined.stop()
        raise
    assert sorted((p.pattern, p.message) for p in found) == [
        ("e2e-hot-reload", f"4 in Pod/hot/{pod}") for pod in ("q1", "q2", "q3", "q4")]
    assert "ConsistencyError" not in joined.log_tail(200_000)


async def _live_state(settings: Settings) -> dict:
    """What a replay must not touch: the live graph, the live tables' changelogs, the bridge consumer."""
    from aiokafka import AIOKafkaConsumer

    from app.transport import fetched_highwaters
    from topology import insight_queries, queries
    graph = open_graph(settings.graph)
    try:
        events = (await graph.query(queries.COUNT_ALL_EVENTS))[0]["n"]
        predictions = (await graph.query(insight_queries.COUNT_PREDICTIONS))[0]["n"]
    finally:
        await graph.close()
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka.bootstrap_servers)
    await consumer.start()
    try:
        from aiokafka import TopicPartition
        # (the watermarks table moves with the wall clock while the stream is quiet: not compared)
        tps = [TopicPartition(f"{settings.worker.app_id}-{table}-changelog", p)
               for table in ("tapio-windows", "tapio-members")
               for p in range(settings.kafka.partitions)]
        highwaters = await fetched_highwaters(settings.kafka.bootstrap_servers, tps, await consumer.end_offsets(tps))
    finally:
        await consumer.stop()
    nc = await connect(settings.nats, name="probe")
    try:
        info = await nc.jetstream().consumer_info(settings.nats.stream, settings.nats.bridge_durable)
    finally:
        await nc.drain()
    return {"events": events, "predictions": predictions, "changelogs": sorted(highwaters.items()),
            "bridge_delivered": info.delivered.stream_seq}


@FLOW
async def test_replaying_a_stream_range_into_an_isolated_dataflow_leaves_live_untouched(flow: dict) -> None:
    from app.stream_replay import replay_range
    settings, proc = flow["settings"], flow["proc"]
    folder = ROOT / "patterns" / "scenarios" / "config-drift" / "positive"
    shift_to = BASE + 500 * SLOT
    nc = await connect(settings.nats, name="seq")
    try:
        first = (await nc.jetstream().stream_info(settings.nats.stream)).state.last_seq + 1
    finally:
        await nc.drain()
    await publish_recordings(settings, [folder], shift_to=shift_to)
    live = await settle(settings, shift_to - timedelta(hours=2), shift_to + timedelta(hours=1), proc, at_least=1,
                        through=shift_to)
    before = await _live_state(settings)
    result = await replay_range(settings, "e2e-range", from_seq=first, patterns_dir=settings.match.patterns_dir)
    assert result.detail.copied >= 38 and result.in_graph == len(set(result.event_ids))
    assert await _live_state(settings) == before  # live graph, tables and bridge consumer untouched

    def key(p: StoredPrediction) -> tuple:
        return (p.id, p.pattern, p.scope, p.at, p.message)
    assert sorted(map(key, result.predictions)) == sorted(map(key, live))  # the diagnose stage's too
    assert [p.pattern for p in live if not p.pattern.startswith("diagnosis/")] == ["config-drift"]
    assert {p.pattern for p in live if p.pattern.startswith("diagnosis/")} == {"diagnosis/containers"}
