"""/readyz's progress check: a part with work waiting that takes none of it is stalled.

Pure: `judge` over samples taken at chosen moments. Real: a worker whose Kafka broker was killed
while events keep arriving in JetStream: /readyz names the bridge as stalled, with its backlog.
"""

from __future__ import annotations

import json
import os
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest
from scrape import get

from app.progress import Mark, ProgressWatch, Sample, judge
from tests.support.waiting import until_sync


def test_idle_or_moving_is_not_stalled_and_waiting_work_untaken_is() -> None:
    marks: dict[str, Mark] = {}
    marks, stalled = judge({"raw[0]": Sample(position=10, backlog=5)}, marks, now=0.0, stall_s=30)
    assert stalled == []
    marks, stalled = judge({"raw[0]": Sample(position=15, backlog=5)}, marks, now=40.0, stall_s=30)
    assert stalled == []  # it moved
    marks, stalled = judge({"raw[0]": Sample(position=15, backlog=0)}, marks, now=100.0, stall_s=30)
    assert stalled == []  # nothing waits: idle
    marks, stalled = judge({"raw[0]": Sample(position=15, backlog=3)}, marks, now=110.0, stall_s=30)
    assert stalled == []  # work arrived since it was last seen idle (at 100)
    marks, stalled = judge({"raw[0]": Sample(position=15, backlog=3)}, marks, now=131.0, stall_s=30)
    assert stalled == ["raw[0]: 3 waiting, none taken for 31 s"]  # counted from the last look at it idle


def test_the_watch_names_what_is_stalled() -> None:
    clock = iter([0.0, 5.0])
    watch = ProgressWatch(2.0, clock=lambda: next(clock))
    assert "moving or idle" in watch.check({"bridge": Sample(position=0, backlog=7)})
    with pytest.raises(LookupError, match="stalled: bridge: 7 waiting, none taken for 5 s"):
        watch.check({"bridge": Sample(position=0, backlog=7)})


def _readyz(port: int) -> tuple[int, dict]:
    status, _, body = get(port, "/readyz", timeout=10)
    return status, json.loads(body)


def _events(at: datetime, n: int, tag: str) -> list:
    from core.kube.objects import raw_event_from_object

    return [raw_event_from_object({"kind": "Pod", "apiVersion": "v1", "metadata": {
        "name": f"{tag}-{i}", "namespace": "progress", "uid": f"{tag}-{i}",
        "creationTimestamp": (at + timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%SZ")}},
        action="ADDED", source="test") for i in range(n)]


async def test_readyz_names_the_bridge_stalled_when_kafka_hangs_and_events_wait(tmp_path: Path) -> None:
    """Kafka frozen (SIGSTOP: it accepts connections and answers nothing) while events keep
    arriving in JetStream: /readyz says not only that Kafka does not answer but that the bridge
    has work waiting and takes none, and how much. Then Kafka thaws and the worker is ready again."""
    from app.jetstream import publish_events
    from app.stack import EmbeddedStack, free_port, read_state
    from app.workers import start_worker, with_worker_port

    stack = EmbeddedStack(tmp_path / "stack", bolt_port=None)
    base = stack.start()
    worker = None
    frozen = False
    tansu = next(s for s in read_state(stack.state_dir).servers if s.name == "tansu")
    try:
        settings = with_worker_port(base, free_port(), data_dir=str(tmp_path / "worker"))
        settings = msgspec.structs.replace(settings, api=msgspec.structs.replace(settings.api, stall_after_s=3.0))
        worker = start_worker(settings, name="progress-worker", log_dir=tmp_path)
        port = settings.worker.web_port
        until_sync(lambda: _readyz(port)[0] == 200, timeout=90, what="the worker to be ready", ignoring=(OSError,),
                   procs=[worker])

        async def publish(events: list) -> None:
            await publish_events(settings.nats, events, name="progress-test")

        now = datetime.now(UTC)
        await publish(_events(now, 20, "before"))
        os.killpg(tansu.pid, signal.SIGSTOP)
        frozen = True
        await publish(_events(now + timedelta(minutes=1), 30, "after"))
        seen: list = []

        def stalled() -> bool:
            code, body = _readyz(port)
            seen[:] = [code, body]
            checks = {c["name"]: c for c in body["checks"]}
            return code == 503 and not checks["progress"]["ok"]

        until_sync(stalled, timeout=120, what=lambda: f"/readyz to say the bridge is stalled (last: {seen})",
                   ignoring=(OSError, KeyError), procs=[worker])
        body = seen[1]
        progress = next(c for c in body["checks"] if c["name"] == "progress")
        assert set(body["failed"]) == {"kafka", "progress"}, body
        assert "stalled: bridge: " in progress["detail"] and "waiting, none taken for" in progress["detail"]
        waiting = int(progress["detail"].split("bridge: ")[1].split(" waiting")[0])
        # at least the messages published after the freeze (JetStream counts messages: 30 events of one
        # subject went as one batch)
        assert waiting >= 1
        os.killpg(tansu.pid, signal.SIGCONT)
        frozen = False
        until_sync(lambda: _readyz(port)[0] == 200, timeout=120, what="the worker to be ready again",
                   ignoring=(OSError,), procs=[worker])
    finally:
        if frozen:
            os.killpg(tansu.pid, signal.SIGCONT)
        if worker is not None:
            worker.stop()
        stack.stop()
