"""Graph retention in a running worker (`graph.max_events`, `topology.retention`): the leader of
the sink's group keeps the graph under its cap while events flow, every event stays accounted
for (in the graph, or counted as pruned), and what a match cites stays."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from app.jetstream import publish_events
from app.stack import EmbeddedStack, free_port
from app.workers import start_worker, with_worker_port
from core.events import RawEvent, content_id
from core.settings import isolated
from topology import insight_queries, queries
from topology.graph import open_graph
from topology.retention import pruned_events

pytestmark = pytest.mark.xdist_group("graph-retention")

NS = "retention"
CAP = 60
PATTERN = """\
apiVersion: behavior.tapio.io/v1
kind: BehaviorPattern
metadata: {name: backoff-burst, version: 1.0.0}
spec:
  scope: object
  conditions:
    - type: count
      where: [{field: kubernetes.reason, operator: equals, value: BackOff}]
      at_least: 5
      window: 5m
  predictions:
    - {type: crash_loop, confidence_base: 0.5, time_horizon: 5m, message: "{count} back-offs of {name}"}
"""


def raw(i: int, at: datetime, reason: str, pod: str) -> RawEvent:
    when = at.isoformat().replace("+00:00", "Z")
    event = {"apiVersion": "v1", "kind": "Event",
             "metadata": {"name": f"{pod}.{i:06d}", "namespace": NS, "uid": f"ev-{i}"},
             "involvedObject": {"kind": "Pod", "name": pod, "namespace": NS, "uid": f"uid-{pod}"},
             "reason": reason, "message": f"{reason} {i}", "type": "Warning" if reason == "BackOff" else "Normal",
             "count": 1, "source": {"component": "kubelet", "host": "node-a"},
             "firstTimestamp": when, "lastTimestamp": when}
    return RawEvent(id=content_id(NS, str(i)), timestamp=at, type="kubeapi", data=json.dumps(event).encode(),
                    metadata={"namespace": NS, "kind": "Event", "action": "EVENT"})


async def test_a_worker_keeps_the_graph_under_its_cap_and_accounts_for_every_event(
        embedded: EmbeddedStack, tmp_path_factory: pytest.TempPathFactory) -> None:
    patterns = tmp_path_factory.mktemp("retention-patterns")
    (patterns / "backoff-burst.yaml").write_text(PATTERN)
    base = isolated(with_worker_port(embedded.settings(), free_port(),
                                     data_dir=str(tmp_path_factory.mktemp("retention-worker"))), "retention")
    settings = msgspec.structs.replace(
        base, match=msgspec.structs.replace(base.match, patterns_dir=str(patterns), idle_advance_s=1.0),
        graph=msgspec.structs.replace(base.graph, max_events=CAP, prune_interval_s=0.5))
    proc = start_worker(settings, log_dir=tmp_path_factory.mktemp("retention-logs"))
    graph = open_graph(settings.graph)
    try:
        start = datetime.now(UTC) - timedelta(minutes=2)
        # 5 BackOffs of web-0 (a match: its evidence is cited), then 200 Normal events of 20 pods
        # (nothing cites them). The match is in the graph first: an event deleted before a match
        # cites it is written again with the match (its evidence), and would count twice here.
        burst = [raw(i, start + timedelta(seconds=i), "BackOff", "web-0") for i in range(5)]
        quiet = [raw(5 + i, start + timedelta(seconds=10, milliseconds=100 * i), "Pulled", f"web-{i % 20}")
                 for i in range(200)]
        assert await publish_events(settings.nats, burst, name="retention-test") == 5

        async def cited() -> set[str]:
            return {r["event"] for r in await graph.query(insight_queries.ALL_MATCHES)}

        deadline = time.monotonic() + 120
        while not {e.id for e in burst} <= await cited() and time.monotonic() < deadline and proc.alive():  # noqa: ASYNC110 (polls the graph)
            await asyncio.sleep(0.5)
        assert {e.id for e in burst} <= await cited(), proc.log_tail()
        assert await publish_events(settings.nats, quiet, name="retention-test") == 200
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.alive():
            count = sum(r["n"] for r in await graph.query(queries.COUNT_ALL_EVENTS))
            pruned = await pruned_events(graph)
            if count + pruned == 205 and count <= CAP:
                break
            await asyncio.sleep(0.5)
        assert count <= CAP, f"{count} events over the cap of {CAP}\n{proc.log_tail()}"
        ids = {r["id"] for r in await graph.query(queries.ALL_EVENT_IDS)}
        assert count + pruned == 205, (count, pruned)  # every event accounted for
        assert ids <= {e.id for e in burst + quiet}
        assert {e.id for e in burst} <= await cited() <= ids  # what a match cites stays
        assert "graph retention:" in proc.log_path.read_text()
    finally:
        await graph.clear()
        await graph.close()
        proc.stop()
