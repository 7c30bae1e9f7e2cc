"""A group of `tapio worker` processes on the embedded stack: sharing, takeover, joining, table pages.

One isolated dataflow (its own stream, topics, tables, group and graph) with two patterns of its
own: `group-burst` (6 events of a pod within 5 minutes: one match per pod, with its count) and
`group-node` (3 distinct pods on a node: hits from every namespace meet on one partition), and
`group-tally`, a window that never fires and so counts every event of its pod. Events are
Kubernetes Events stamped when published, as a live cluster sends them, over 8 namespaces (so
over every partition).

Two workers share the group; the first part of the events goes through; the table pages of
either worker show every pod's window with its real count (a key of the other worker's
partition is forwarded to it). Then the rest is published at a steady pace, one worker is
stopped in the middle of it (SIGTERM, and SIGKILL in the second case), a third worker joins and
takes a share of the partitions. At the end: every event is in the graph once, the matches and
predictions are those the offline runner (`agents.offline`, same functions, one process)
finds for the same events, no prediction twice, and every pod's window counts each of its
events exactly once.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest
from prediction_waits import flushed
from waiting import until

from agents.catalog import Catalog
from agents.offline import match_events
from app.jetstream import EventPublisher, connect, ensure_streams
from app.stack import EmbeddedStack, free_port
from app.workers import ChildProcess, start_worker, with_worker_port
from core.events import RawEvent, content_id
from core.kube.objects import raw_event_from_object
from core.settings import Settings, isolated
from topology import queries
from topology.graph import open_graph
from topology.predictions import list_predictions

NAMESPACES, PODS, PER_POD = 8, 4, 12
FIRST = 4  # events per pod in the first part

PATTERNS = {
    "group-burst.yaml": """\
apiVersion: behavior.tapio.io/v1
kind: BehaviorPattern
metadata: {name: group-burst, version: "1.0.0"}
spec:
  scope: object
  conditions:
    - type: count
      where: [{field: kubernetes.reason, operator: equals, value: GroupBurst}]
      at_least: 6
      window: 5m
  predictions:
    - {type: test, confidence_base: 0.5, time_horizon: 5m, message: "{count} in {scope}"}
""",
    "group-node.yaml": """\
apiVersion: behavior.tapio.io/v1
kind: BehaviorPattern
metadata: {name: group-node, version: "1.0.0"}
spec:
  scope: node
  conditions:
    - type: count
      where: [{field: kubernetes.reason, operator: equals, value: GroupBurst}]
      distinct: k8s.name
      at_least: 3
      window: 5m
  predictions:
    - {type: test, confidence_base: 0.5, time_horizon: 5m, message: "{count} pods on {scope}"}
""",
    "group-tally.yaml": """\
apiVersion: behavior.tapio.io/v1
kind: BehaviorPattern
metadata: {name: group-tally, version: "1.0.0"}
spec:
  scope: object
  conditions:
    - type: count
      where: [{field: kubernetes.reason, operator: equals, value: GroupBurst}]
      at_least: 1000000
      window: 30m
      long_window: true
  predictions:
    - {type: test, confidence_base: 0.5, time_horizon: 5m, message: "never"}
""",
    # the same tally as a sequence: its `then` hits are not a Kubernetes Event series, so only the
    # windows' own de-duplication keeps a hits batch read twice from counting twice
    "group-chain.yaml": """\
apiVersion: behavior.tapio.io/v1
kind: BehaviorPattern
metadata: {name: group-chain, version: "1.0.0"}
spec:
  scope: object
  conditions:
    - type: sequence
      first:
        - {field: k8s.kind, operator: equals, value: Pod}
        - {field: kubernetes.action, operator: equals, value: ADDED}
      then:
        - {field: kubernetes.reason, operator: equals, value: GroupBurst}
      at_least: 1000000
      within: 30m
      long_window: true
  predictions:
    - {type: test, confidence_base: 0.5, time_horizon: 5m, message: "never"}
""",
}


def pods() -> list[tuple[str, str]]:
    return [(f"group-{n}", f"web-{p}") for n in range(NAMESPACES) for p in range(PODS)]


def make_event(run: str, ns: str, pod: str, i: int) -> RawEvent:
    """Event i of a pod, stamped now; two nodes, each running the pods of every other namespace,
    so a node's hits come from namespaces on several partitions."""
    now = datetime.now(UTC)
    stamp = now.isoformat().replace("+00:00", "Z")
    node = node_of(ns)
    data = msgspec.json.encode({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": f"{pod}.{run}.{i}", "namespace": ns, "uid": f"{run}-{ns}-{pod}-{i}"},
        "involvedObject": {"kind": "Pod", "name": pod, "namespace": ns, "uid": f"{run}-{ns}-{pod}"},
        "reason": "GroupBurst", "message": f"burst {i}", "type": "Warning", "count": 1,
        "source": {"component": "kubelet", "host": node}, "firstTimestamp": stamp, "lastTimestamp": stamp})
    return RawEvent(id=content_id(run, ns, pod, str(i)), timestamp=now, type="kubeapi", data=data,
                    metadata={"namespace": ns, "kind": "Event", "action": "EVENT", "reason": "GroupBurst"})


def make_pod(run: str, ns: str, pod: str) -> RawEvent:
    """The pod's object observation (ADDED): the match stage learns its node from it (`tapio-members`)."""
    stamp = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return raw_event_from_object({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": pod, "namespace": ns, "uid": f"{run}-{ns}-{pod}", "creationTimestamp": stamp,
                     "labels": {"app": "web"}},
        "spec": {"nodeName": node_of(ns), "containers": [{"name": "web", "image": "nginx"}]},
        "status": {"phase": "Running"}}, action="ADDED", source="test")


def node_of(ns: str) -> str:
    return f"node-{int(ns.rsplit('-', 1)[1]) % 2}"


def page(settings: Settings, path: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{settings.worker.web_port}{path}", timeout=10) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def window_path(pattern: str, ns: str, pod: str) -> str:
    return "/tapio/tables/tapio-windows/" + urllib.parse.quote(f"{pattern}|object:Pod/{ns}/{pod}", safe="") + "/"


def windows_partitions(settings: Settings) -> list[int]:
    status, body = page(settings, "/tapio/tables/")
    assert status == 200, body
    [windows] = [t for t in body["tables"] if t["name"] == "tapio-windows"]
    return windows["partitions"]


def owners(settings: Settings) -> dict[str, list[int]]:
    [windows] = [t for t in page(settings, "/tapio/tables/")[1]["tables"] if t["name"] == "tapio-windows"]
    return windows["owners"]


async def graph_count(settings: Settings, ids: list[str]) -> tuple[int, int]:
    """(events of `ids` in the graph, every event node in the dataflow's graph)."""
    graph = open_graph(settings.graph)
    try:
        mine = (await graph.query(queries.COUNT_EVENTS, ids=ids))[0]["n"]
        everything = (await graph.query(queries.COUNT_ALL_EVENTS))[0]["n"]
        return mine, everything
    finally:
        await graph.close()


def tally_counts(settings: Settings) -> dict[tuple[str, str, str], tuple[int, str]]:
    """Every pod's group-tally window count and group-chain `then` count, and which worker served
    each (forwarded if need be)."""
    out = {}
    for ns, pod in pods():
        status, body = page(settings, window_path("group-tally", ns, pod))
        assert status == 200, body
        [cond] = body["row"]["conditions"]
        out[("group-tally", ns, pod)] = (cond["count"], body["worker"])
        status, body = page(settings, window_path("group-chain", ns, pod))
        assert status == 200, body
        first, then = sorted(body["row"]["conditions"], key=lambda c: c["role"])
        assert (first["role"], first["count"], then["role"]) == ("first", 1, "then"), body
        out[("group-chain", ns, pod)] = (then["count"], body["worker"])
    return out


@pytest.mark.timeout(900)
@pytest.mark.parametrize("stop", ["sigterm", "sigkill"])
async def test_a_worker_group_shares_hands_over_and_takes_in_partitions_without_loss_or_double_counting(
        embedded: EmbeddedStack, tmp_path: Path, stop: str) -> None:
    patterns = tmp_path / "patterns"
    patterns.mkdir()
    for name, text in PATTERNS.items():
        (patterns / name).write_text(text)
    base = isolated(embedded.settings(), f"group-{stop}")
    base = msgspec.structs.replace(
        base, match=msgspec.structs.replace(base.match, patterns_dir=str(patterns), idle_advance_s=2.0),
        nats=msgspec.structs.replace(base.nats, bridge_ack_wait_s=3.0))  # a stopped bridge's fetch comes back soon

    def worker(name: str) -> tuple[Settings, ChildProcess]:
        settings = with_worker_port(base, free_port(), data_dir=str(tmp_path / name))
        return settings, start_worker(settings, name=name, log_dir=tmp_path / "logs")

    run = f"run-{stop}-{time.time_ns()}"
    published: list[RawEvent] = []
    nc = await connect(base.nats, name="group-test")
    js = nc.jetstream()
    await ensure_streams(js, base.nats)
    publisher = EventPublisher(js, base.nats)

    async def publish(indexes: range, *, pause_s: float = 0.0) -> None:
        for i in indexes:
            batch = [make_event(run, ns, pod, i) for ns, pod in pods()]
            published.extend(batch)
            await publisher.publish_many(batch)
            await asyncio.sleep(pause_s)

    (a_set, a), (b_set, b) = worker("worker-a"), worker("worker-b")
    procs = [a, b]
    try:
        # two workers split the partitions
        await until(lambda: windows_partitions(a_set) and windows_partitions(b_set),
                    timeout=180, what="both workers to hold partitions", ignoring=(OSError,), procs=procs)
        split = sorted(windows_partitions(a_set) + windows_partitions(b_set))
        assert split == list(range(base.kafka.partitions)), split
        assert len(owners(a_set)) == 2
        assert page(a_set, "/tapio/patterns/")[1]["errors"] == []

        # the first part: every pod's window shows its real count on either worker's page
        objects = [make_pod(run, ns, pod) for ns, pod in pods()]
        published.extend(objects)
        await publisher.publish_many(objects)
        await publish(range(FIRST))
        ids = lambda: [e.id for e in published]  # noqa: E731
        await until(lambda: _all_in(base, ids()),
                    timeout=180, what="the first part in the graph", ignoring=(OSError,), procs=procs)
        counts = await until(lambda: _tallies_at(a_set, FIRST),
                             timeout=180, what=_tallies_said("the windows to hold the first part"), ignoring=(OSError,), procs=procs,
                             every=0.2)
        assert all(n == FIRST for n, _ in counts.values()), counts
        assert {served for _, served in counts.values()} == {f"http://127.0.0.1:{s.worker.web_port}"
                                                              for s in (a_set, b_set)}  # forwarded to the owner
        status, body = page(b_set, "/tapio/tables/tapio-windows/")
        assert status == 200 and {r["partition"] for r in body["rows"]} <= set(windows_partitions(b_set))
        members = [r for s in (a_set, b_set) for r in page(s, "/table/tapio-members/")[1]["rows"]]  # Faust's path
        assert sorted((r["key"], r["member"]["node"]) for r in members) == sorted(
            (f"{ns}/Pod/{pod}", node_of(ns)) for ns, pod in pods())

        # the rest at a steady pace; one worker stops in the middle of it, a third one joins
        rest = asyncio.ensure_future(publish(range(FIRST, PER_POD), pause_s=0.4))
        await until(lambda: _in_graph_at_least(base, ids(), len(pods()) * (FIRST + 2)),
                    timeout=180, what="the second part to be flowing", ignoring=(OSError,), procs=procs)
        if stop == "sigterm":
            assert b.stop() == 0, b.log_tail()
        else:
            b.kill()
        procs = [a]
        c_set, c = worker("worker-c")
        procs = [a, c]
        await rest
        await until(lambda: windows_partitions(c_set),
                    timeout=180, what="the third worker to take a share", ignoring=(OSError,), procs=procs)
        try:
            await until(lambda: _all_in(base, ids()),
                        timeout=240, what="every event in the graph", ignoring=(OSError,), procs=procs)
        except AssertionError as e:
            raise AssertionError(f"{await _missing(base, published)}\nstages: " + json.dumps(
                {s.worker.web_port: page(s, "/tapio/stages/")[1] for s in (a_set, c_set)}) + f"\n{e}") from None
        mine, everything = await graph_count(base, ids())
        assert mine == everything == len(published) == len(pods()) * (PER_POD + 1)  # the events and the pods

        # every window counts each event of its pod once, whoever holds it now. The CI run of 2026-12-05
        # that timed out here at 180 s had a worker finishing a rebalance's recovery at that very moment:
        # on a loaded machine the group may rebalance again after the third worker joined
        # (2026-12-05, full suite: after the SIGKILL every pod of two namespaces stayed at 5 for 300 s; the
        # stages pages below say whether their hits came late, `late`, or never came)
        try:
            counts = await until(lambda: _tallies_at(c_set, PER_POD),
                                 timeout=300, what=_tallies_said("the windows to hold every event"), ignoring=(OSError,),
                                 procs=procs, every=0.2)
        except AssertionError as e:
            raise AssertionError(f"{e}\nstages: " + json.dumps(
                {s.worker.web_port: page(s, "/tapio/stages/")[1] for s in (a_set, c_set)})) from None
        assert set(windows_partitions(a_set)) | set(windows_partitions(c_set)) == set(range(base.kafka.partitions))
        assert all(n == PER_POD for n, _ in counts.values()), counts

        # matches and predictions: what the offline runner finds for the same events, each once
        offline = match_events(published, Catalog(patterns))
        expected = sorted((p.pattern, p.scope, p.at, p.message) for p in offline.predictions)
        assert len(expected) == len(pods()) + 2  # a burst per pod, a node match per node
        await until(lambda: _predictions_are(base, len(expected)),
                    timeout=120, what="the predictions", ignoring=(OSError,), procs=procs)
        # anything more (a window counting an event twice) would be in the graph before the fence
        await flushed(base, max(e.timestamp for e in published), procs, workers=[a_set, c_set])
        found = await _predictions_are(base, 0)
        assert sorted((p.pattern, p.scope, p.at, p.message) for p in found) == expected
        assert len({p.id for p in found}) == len(found)
        assert "ConsistencyError" not in a.log_tail(500_000) + c.log_tail(500_000)
    finally:
        await nc.drain()
        for proc in procs + [b]:
            proc.stop()


async def _missing(settings: Settings, events: list[RawEvent]) -> str:
    """Which events are not in the graph: how many per namespace and partition."""
    from app.bridge import partition_for
    graph = open_graph(settings.graph)
    try:
        missing: dict[str, int] = {}
        for event in events:
            if not (await graph.query(queries.COUNT_EVENTS, ids=[event.id]))[0]["n"]:
                where = f"{event.namespace} (partition {partition_for(event.namespace, settings.kafka.partitions)})"
                missing[where] = missing.get(where, 0) + 1
        return f"missing from the graph: {missing}"
    finally:
        await graph.close()


async def _all_in(settings: Settings, ids: list[str]) -> bool:
    return (await graph_count(settings, ids))[0] == len(set(ids))


async def _in_graph_at_least(settings: Settings, ids: list[str], n: int) -> bool:
    return (await graph_count(settings, ids))[0] >= n


#: what the last `_tallies_at` saw, for the message of a wait that times out
_LAST_TALLIES: dict[str, object] = {}


def _tallies_at(settings: Settings, n: int) -> dict | None:
    try:
        counts = tally_counts(settings)
    except AssertionError as e:  # a window not there yet, or its partition between owners
        _LAST_TALLIES["seen"] = f"not served: {str(e)[:600]}"
        return None
    _LAST_TALLIES["seen"] = {f"{k[0]} {k[1]}/{k[2]}": c for k, (c, _) in counts.items() if c < n} or "all there"
    return counts if all(c >= n for c, _ in counts.values()) else None  # the caller asserts == n


def _tallies_said(what: str) -> Callable[[], str]:
    return lambda: f"{what} (last seen below the count: {_LAST_TALLIES.get('seen')})"


async def _predictions_are(settings: Settings, n: int) -> list | None:
    graph = open_graph(settings.graph)
    try:
        found = await list_predictions(graph, limit=10_000)
    finally:
        await graph.close()
    return found if len(found) >= n else None
