"""Kafka loses its data mid-stream: the embedded Tansu is killed with SIGKILL while events flow and
started again empty (it keeps nothing on disk). The bridge notices it before it produces again and
asks for the topics to be rebuilt as a recycle (app.recycle): the worker restarts itself
(app.restart), then the topics are recreated (clear of what producers still flushed into the new
broker) and what the graph lacks is bridged again from JetStream (app.checkpoint,
app.kafka_epoch); the worker starts on them, its RocksDB tables keeping their state, and sends its
newest matches again (one still in Kafka was lost with it). The graph ends with every event, once,
and with the pattern predictions of a run without the fault (the same events matched in-process,
as `tapio analyze` and the backtests do).

Real servers (a stack of the test's own, so no other test loses its broker); kill -9.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest
from faults import kill_server

from agents.catalog import Catalog
from agents.diagnose import PATTERN_PREFIX
from agents.offline import match_events
from app.analyze import read
from app.diagnosis_backtest import find_cases, inputs_of
from app.stack import EmbeddedStack, read_state
from collectors.replay import shifted
from core.events import RawEvent, content_id, publish_order

ROOT = Path(__file__).resolve().parents[1]
BASE = datetime(2028, 5, 2, tzinfo=UTC)
SLOT = timedelta(hours=2)
FILLER_PER_CASE = 400  # ordinary Events around each case: a steady stream, not a trickle
RATE = 400  # events/s offered

pytestmark = pytest.mark.timeout(600)


def _filler(case: int, start: datetime, n: int) -> list[RawEvent]:
    """Routine Normal Events of a healthy namespace, spread over the case's slot."""
    out = []
    for i in range(n):
        at = start + SLOT * (i / n)
        stamp = at.isoformat().replace("+00:00", "Z")
        ns, pod = f"steady-{case % 3}", f"api-{i % 5}"
        data = msgspec.json.encode({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{pod}.{case}.{i}", "namespace": ns, "uid": f"filler-{case}-{i}"},
            "involvedObject": {"kind": "Pod", "name": pod, "namespace": ns, "uid": f"{ns}-{pod}"},
            "reason": "Pulled", "message": f'Container image "api:1.{i % 4}" already present on machine',
            "type": "Normal", "count": 1, "source": {"component": "kubelet", "host": "node-1"},
            "firstTimestamp": stamp, "lastTimestamp": stamp})
        out.append(RawEvent(id=content_id("kafka-loss-filler", str(case), str(i)), timestamp=at, type="kubeapi",
                            data=data, metadata={"namespace": ns, "kind": "Event", "action": "EVENT",
                                                 "reason": "Pulled"}))
    return out


def _stream(catalog: Catalog) -> list[RawEvent]:
    """Labelled incidents that match behavior patterns, each in a slot of its own, amid filler."""
    cases = find_cases([ROOT / "patterns" / "scenarios" / "diagnosis"])
    events: list[RawEvent] = []
    taken = 0
    for case in cases:
        own = read(inputs_of(case)).events
        start = BASE + taken * SLOT
        moved = shifted(own, start + SLOT / 2 - max(e.timestamp for e in own))
        if not match_events(moved, catalog).predictions:
            continue
        events += moved + _filler(taken, start, FILLER_PER_CASE)
        taken += 1
        if taken == 6:
            break
    assert taken == 6, "the labelled corpus should hold six incidents that match behavior patterns"
    return publish_order(events)


@pytest.fixture(scope="module")
async def lost(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from app.isolated import run_isolated
    from app.jetstream import publish_events
    from topology import queries
    from topology.graph import open_graph

    tmp_path = tmp_path_factory.mktemp("kafka-loss")
    catalog = Catalog(ROOT / "patterns")
    events = _stream(catalog)
    expected = {(p.pattern, p.scope, p.at, p.message) for p in match_events(events, catalog).predictions}
    assert expected

    stack = EmbeddedStack(tmp_path / "stack", bolt_port=None)
    live = stack.start()
    live = msgspec.structs.replace(live, match=msgspec.structs.replace(live.match, max_ahead_s=10 * 365 * 86400.0))
    killed_at: dict[str, int] = {}

    async def feed(target):  # type: ignore[no-untyped-def]
        graph = open_graph(target.graph)
        try:
            chunk = RATE // 4
            for i in range(0, len(events), chunk):
                await publish_events(target.nats, events[i:i + chunk], name="kafka-loss")
                if not killed_at and i >= len(events) // 3:
                    # events are on their way through Kafka: some in the graph, some not yet
                    in_graph = 0
                    while in_graph == 0:
                        rows = await graph.query(queries.COUNT_EVENTS, ids=[e.id for e in events[:i]])
                        in_graph = rows[0]["n"] if rows else 0
                        await asyncio.sleep(0.1)
                    kill_server(tmp_path / "stack", "tansu")
                    killed_at.update(published=i + chunk, in_graph=in_graph)
                    await asyncio.sleep(1.0)
                    restarted = EmbeddedStack(tmp_path / "stack", bolt_port=None)
                    restarted.start()
                    assert restarted.restarted == ["tansu"]
                await asyncio.sleep(0.25)
        finally:
            await graph.close()
        return [e.id for e in events], max(e.timestamp for e in events)

    try:
        run = await run_isolated(live, "kafka-loss", feed, timeout=120)
    finally:
        stack.servers = read_state(tmp_path / "stack").servers  # the Tansu started again, not the killed one
        stack.stop()
    logs = "".join(p.read_text(errors="replace") for p in (tmp_path / "stack" / "isolated" / "kafka-loss").glob("*.log"))
    return {"events": events, "expected": expected, "run": run, "killed_at": killed_at, "logs": logs,
            "folder": tmp_path / "stack" / "isolated" / "kafka-loss"}


@pytest.mark.xdist_group("kafka-loss")
def test_kafka_losing_its_data_mid_stream_loses_no_event_and_writes_none_twice(lost: dict) -> None:
    killed_at, logs = lost["killed_at"], lost["logs"]
    assert killed_at and killed_at["in_graph"] < killed_at["published"], "Tansu was killed once all was done"
    assert "Kafka lost its data" in logs and "bridging again JetStream sequences" in logs
    assert "Kafka lost its data" in logs and "restarting this worker" in logs
    # every event in the graph (MERGE on the event id: once)
    assert lost["run"].in_graph == len({e.id for e in lost["events"]})


@pytest.mark.xdist_group("kafka-loss")
def test_after_kafka_lost_its_data_the_predictions_are_those_of_a_run_without_the_fault(lost: dict) -> None:
    # the windows counted each event once: the predictions are those of the run without the fault.
    # (It failed in 4 of 7 full-suite runs while the match stage judged the pod statuses bridged again
    # against the newer ones it had learned: an OOM-killed status was no longer news, and oom-kill-loop
    # never matched. agents.membership now keeps each observation's verdict.)
    got = {(p.pattern, p.scope, p.at, p.message) for p in lost["run"].predictions
           if not p.pattern.startswith(PATTERN_PREFIX)}
    if got != lost["expected"]:  # kept beside the worker's log (it names each match the windows made)
        report = _differ_report(lost["expected"] - got, got - lost["expected"], lost["logs"], lost["killed_at"])
        (lost["folder"] / "predictions-differ.txt").write_text(report)
        raise AssertionError(report)


def _differ_report(missing: set, unexpected: set, logs: str, killed_at: dict) -> str:
    """What a failure needs to say where the match went: made (and resent after the restart?) or
    never made, and what the bridge bridged again."""
    scopes = {scope for _, scope, _, _ in missing | unexpected}
    telling = ("Kafka lost", "bridging again", "bridged again", "taken up", "restarting this worker",
               "rebalance dropped", "recovery")
    lines = [line[:400] for line in logs.splitlines()
             if any(s in line for s in scopes) or any(t in line for t in telling)]
    return ("the predictions after Kafka lost its data differ from a run without the fault\n"
            f"killed at: {killed_at}\nmissing:\n" + "\n".join(map(str, sorted(missing, key=str)))
            + "\nunexpected:\n" + "\n".join(map(str, sorted(unexpected, key=str)))
            + "\nthe worker's log lines about them, the kill and the recovery:\n" + "\n".join(lines[-80:]) + "\n")
