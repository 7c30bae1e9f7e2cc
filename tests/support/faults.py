"""Kill one part of a running dataflow at a steady rate, and read back what the dataflow made of it
(not a test module; `tests/test_kill_one_part.py` uses it).

Importable from any test (`pythonpath = ["tests/support"]`): `from faults import ...`.

- `make_stream`: a deterministic stream of Kubernetes Events over a few namespaces, paced like a
  live cluster (event time runs with the publishing schedule), shaped so that three shipped
  patterns match once per workload (liveness-death-spiral, probe-failure, image-pull-failure),
  each workload starting to fail at its own moment of the stream, plus the Pods they are about.
  Every Event is a series of its own (a message of its own, count 1): a window counts it once,
  and a window holding it twice or not at all shows in its counts. `TALLY` is a pattern that
  never fires and counts every Event of its pod (a 30-minute window): the event counts per pod.
- `Dataflow`: one isolated dataflow (own stream, topics, tables, graph) on a given stack, run as
  a deployment runs it: a `tapio worker --no-bridge` and a `tapio bridge` process.
- `publish_steadily` / `post_steadily`: the stream at its pace, straight to JetStream (retried
  until JetStream acknowledges, as `tapio collect` does) or into a Kubernetes API emulator that a
  `tapio collect kubeapi` process watches.
- `kill_and_restore(part, ...)`: kill -9 of one part, and what an operator (or a supervisor)
  does next: `tapio up --state-dir` for a server (it restarts what died, on its ports), a new
  process for the bridge, the worker or the collector.
- `Dataflow.outcome`: once every event is in the graph and every window has been evaluated past
  the last event (`prediction_waits.flushed`), what the dataflow made: how often each Event id is
  in the graph, node and edge counts, the predictions, and every window's counts.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
from prediction_waits import fence, flushed
from waiting import until

from app.bridge import end_marker
from app.jetstream import EventPublisher, connect, ensure_streams, publish_events
from app.stack import _pid_alive, read_state
from app.workers import ChildProcess, start_bridge, start_worker, with_worker_port
from core.events import RawEvent
from core.kube.objects import raw_event_from_object
from core.settings import Settings, isolated
from topology.graph import open_graph
from topology.predictions import StoredPrediction, list_predictions
from topology.queries import Query

log = logging.getLogger(__name__)

#: the parts `kill_and_restore` knows: the three servers of the embedded stack, and the processes
SERVERS = ("nats", "tansu", "falkordb")
PROCESSES = ("bridge", "worker", "collector")

TALLY_NAME = "kill-tally"
TALLY = f"""\
apiVersion: behavior.tapio.io/v1
kind: BehaviorPattern
metadata: {{name: {TALLY_NAME}, version: "1.0.0"}}
spec:
  scope: object
  conditions:
    - type: count
      where: [{{field: kubernetes.action, operator: equals, value: EVENT}}]
      at_least: 1000000
      window: 30m
      long_window: true
  predictions:
    - {{type: test, confidence_base: 0.5, time_horizon: 5m, message: "never"}}
"""

WORKLOADS = {"api": "liveness", "web": "readiness", "img": "pull"}

FENCE_PREFIX = "tapio-fence-"  # prediction_waits.fence_namespaces
DIAGNOSIS = "diagnosis/"  # agents.diagnose.PATTERN_PREFIX
#: " (diagnoses)" after a label or type when the node or an end of the edge is the diagnose stage's:
#: a Pattern `diagnosis/<family>`, or a Prediction of one
_OF_DIAGNOSES = "CASE WHEN {} THEN ' (diagnoses)' ELSE '' END"
_IS_DIAGNOSIS = "coalesce({0}.pattern, {0}.name, '') STARTS WITH '" + DIAGNOSIS + "'"

#: every Event node (id, namespace) and every node and relation, by label and type
EVENT_NODES = Query("kill_event_nodes", "MATCH (e:Event) RETURN e.id AS id, e.namespace AS namespace")
NODE_LABELS = Query("kill_node_labels", f"""MATCH (n)
RETURN labels(n)[0] + {_OF_DIAGNOSES.format(_IS_DIAGNOSIS.format("n"))} AS label, count(n) AS n ORDER BY label""")
EDGE_TYPES = Query("kill_edge_types", f"""MATCH (a)-[r]->(b)
RETURN type(r) + {_OF_DIAGNOSES.format(_IS_DIAGNOSIS.format("a") + " OR " + _IS_DIAGNOSIS.format("b"))} AS type,
       count(r) AS n ORDER BY type""")


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


# --- the stream -------------------------------------------------------------------------------


@dataclass
class Stream:
    t0: datetime
    pods: list[dict]
    events: list[dict]  # Kubernetes Events, in event-time order
    offsets: list[float]  # seconds after the start at which each event happens (and is published)
    raw_pods: list[RawEvent] = field(init=False)
    raw_events: list[RawEvent] = field(init=False)

    def __post_init__(self) -> None:
        # as `tapio collect kubeapi` makes them (a listed Pod is a SNAPSHOT; an Event is an EVENT)
        self.raw_pods = [raw_event_from_object(p, action="SNAPSHOT", source="") for p in self.pods]
        self.raw_events = [raw_event_from_object(e, action="EVENT", source="") for e in self.events]

    @property
    def ids(self) -> list[str]:
        return [e.id for e in self.raw_pods + self.raw_events]

    @property
    def last(self) -> datetime:
        return max(e.timestamp for e in self.raw_events)

    def per_pod(self) -> dict[str, int]:
        """The tally window key of each pod and how many Events it has."""
        counts = Counter(f"{TALLY_NAME}|object:Pod/{e['involvedObject']['namespace']}/{e['involvedObject']['name']}"
                         for e in self.events)
        return dict(sorted(counts.items()))


def _pod(t0: datetime, ns: str, workload: str, p: int) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"{workload}-5d4f-{p}", "namespace": ns, "uid": f"{ns}-{workload}-{p}",
                         "resourceVersion": "100", "labels": {"app": workload},
                         "creationTimestamp": _iso(t0 - timedelta(hours=1)),
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                              "name": f"{workload}-5d4f", "uid": f"{ns}-{workload}-rs",
                                              "controller": True}]},
            "spec": {"nodeName": f"node-{p}",
                     "containers": [{"name": workload, "image": f"registry.example/{workload}:1"}]},
            "status": {"phase": "Running"}}


def _what(kind: str, workload: str, pod: str, p: int, k: int, failing: bool) -> tuple[str, str, str]:
    """(reason, type, message) of a pod's k-th Event: a message of its own, so each is a series."""
    if not failing:
        return "Pulled", "Normal", f'Container image "registry.example/{workload}:1" already present on machine ({k})'
    if kind == "liveness":
        return [("Unhealthy", "Warning", f'Liveness probe failed: Get "http://10.0.0.{p}:8080/healthz": '
                                         f"context deadline exceeded ({k})"),
                ("Killing", "Normal", f"Container {workload} failed liveness probe, will be restarted ({k})"),
                ("BackOff", "Warning", f"Back-off restarting failed container {workload} in pod {pod} ({k})")][k % 3]
    if kind == "readiness":
        return "Unhealthy", "Warning", f"Readiness probe failed: HTTP probe failed with statuscode: 503 ({k})"
    return [("Failed", "Warning", f"Error: ErrImagePull ({k})"),
            ("Failed", "Warning", f'Failed to pull image "registry.example/{workload}:2": not found ({k})')][k % 2]


def make_stream(t0: datetime, *, namespaces: int = 8, pods: int = 2, events: int = 3000,
                seconds: float = 24.0) -> Stream:
    """`events` Kubernetes Events over `seconds`, round robin over the pods of three workloads in
    each of `namespaces` namespaces (`pods` pods each). A workload's pods send normal `Pulled`
    Events until its turn comes (the turns are spread over the first 80 % of the stream), then
    their failure: liveness probes with kills and back-offs (api), readiness probes (web), image
    pulls (img)."""
    targets = [(f"kill-{n}", w, p) for n in range(namespaces) for w in WORKLOADS for p in range(pods)]
    workloads = len(targets) // pods
    out, offsets = [], []
    for i in range(events):
        ns, workload, p = targets[i % len(targets)]
        k = i // len(targets)
        pod = f"{workload}-5d4f-{p}"
        onset = (targets.index((ns, workload, 0)) // pods) / workloads * 0.8
        reason, kind, message = _what(WORKLOADS[workload], workload, pod, p, k, failing=i / events >= onset)
        offset = seconds * i / events
        at = _iso(t0 + timedelta(seconds=offset))
        out.append({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{pod}.{i:05d}", "namespace": ns, "uid": f"ev-{ns}-{i}",
                         "resourceVersion": str(1000 + i), "creationTimestamp": at},
            "involvedObject": {"kind": "Pod", "name": pod, "namespace": ns, "uid": f"{ns}-{workload}-{p}"},
            "reason": reason, "message": message, "type": kind, "count": 1,
            "source": {"component": "kubelet", "host": f"node-{p}"},
            "firstTimestamp": at, "lastTimestamp": at})
        offsets.append(offset)
    return Stream(t0=t0, pods=[_pod(t0, *x) for x in targets], events=out, offsets=offsets)


def patterns_with_tally(target: Path, catalog: Path) -> Path:
    """A copy of the shipped catalog and the tally pattern, in `target`."""
    target.mkdir(parents=True, exist_ok=True)
    for file in catalog.glob("*.yaml"):
        shutil.copy(file, target / file.name)
    (target / f"{TALLY_NAME}.yaml").write_text(TALLY)
    return target


# --- publishing at the stream's pace ------------------------------------------------------------


@dataclass
class Pace:
    """How far a steady publisher has come: `done` events sent (and acknowledged, for JetStream)."""

    total: int
    done: int = 0
    halfway: asyncio.Event = field(default_factory=asyncio.Event)

    def advance(self, n: int) -> None:
        self.done += n
        if self.done * 2 >= self.total:
            self.halfway.set()


TICK_S = 0.05


async def _paced(offsets: Sequence[float], pace: Pace, send: Callable[[int, int], Any]) -> None:
    """Call `send(start, end)` for the events due since the last tick, every TICK_S: a steady rate;
    a send that takes long (a server away) is caught up at once afterwards, as a collector does."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    i = 0
    while i < len(offsets):
        elapsed = loop.time() - start
        j = i
        while j < len(offsets) and offsets[j] <= elapsed:
            j += 1
        if j > i:
            await send(i, j)
            pace.advance(j - i)
            i = j
        await asyncio.sleep(TICK_S)


async def publish_steadily(settings: Settings, events: Sequence[RawEvent], offsets: Sequence[float],
                           pace: Pace) -> None:
    """Publish `events` to JetStream at their offsets; a batch JetStream did not acknowledge (NATS
    away) is published again until it is, as `app.collect` does (same ids: JetStream drops what
    it already had)."""
    nc = await connect(settings.nats, name="kill-test-publisher")
    try:
        js = nc.jetstream()
        await ensure_streams(js, settings.nats)
        publisher = EventPublisher(js, settings.nats)

        async def send(i: int, j: int) -> None:
            while True:
                try:
                    await publisher.publish_many(events[i:j])
                    return
                except Exception as e:  # PublishFailed, a connection error while NATS restarts
                    log.warning("kill test publisher: %r; publishing %d events again", e, j - i)
                    await asyncio.sleep(0.2)
        await _paced(offsets, pace, send)
    finally:
        await nc.drain()


async def post_steadily(emulator: Any, events: Sequence[dict], offsets: Sequence[float], pace: Pace) -> None:
    """Create `events` through the Kubernetes API emulator's HTTP API at their offsets: what a
    cluster's API server shows a watching collector."""
    async def send(i: int, j: int) -> None:
        for event in events[i:j]:
            ns = event["metadata"]["namespace"]
            response = await emulator.post(f"/api/v1/namespaces/{ns}/events", json=event)
            assert response.status == 200, (response.status, await response.text())
            # kmock keeps every request and matches each new one against all of them: forget them,
            # or the 3,000th POST takes 0.3 s (the emulator's objects and watches do not need them)
            emulator._requests.clear()
    await _paced(offsets, pace, send)


# --- one dataflow -----------------------------------------------------------------------------


class Outcome(msgspec.Struct, kw_only=True):
    """What a dataflow made of a stream, in terms that do not depend on timing."""

    event_ids: dict[str, int]  # Event node id -> how many nodes carry it (fences left out)
    nodes: dict[str, int]  # label -> nodes
    edges: dict[str, int]  # relation type -> edges
    predictions: dict[str, list]  # "pattern|scope|type" -> [(at, confidence, message, id, match_id)] of the patterns
    diagnoses: dict[str, list]  # the same, with resolved_at, of the diagnose stage (pattern `diagnosis/<family>`)
    windows: dict[str, list]  # window key -> [(condition key, count, distinct, held, entries, first, last)], events
    quiet: dict[str, str | None]  # window key -> quiet until (after its match)
    tallies: dict[str, int]  # tally window key -> events held
    late_hits: int  # hits the match stage dropped as late (since the worker last started), for messages


def _by_subject(found: Iterable[StoredPrediction], *, resolved: bool = False) -> dict[str, list]:
    out: dict[str, list] = {}
    for p in found:
        out.setdefault(f"{p.pattern}|{p.scope}|{p.type}", []).append(
            [p.at.isoformat(), p.confidence, p.message, p.id, p.match_id]
            + ([p.resolved_at.isoformat() if p.resolved_at else None] if resolved else []))
    return {k: sorted(v) for k, v in sorted(out.items())}


def _window(row: dict) -> list:
    conds = [(c["key"], c["count"], c.get("distinct", 0), c["held"], c["entries"], c.get("first"), c.get("last"))
             for c in row["conditions"]]
    return [conds, row.get("events", 0)]


class Dataflow:
    """One isolated dataflow on the stack whose endpoints `base` holds: a worker (its agents, no
    bridge) and a standalone bridge, as child processes, each restartable."""

    def __init__(self, base: Settings, name: str, patterns: Path, tmp: Path, web_port: int) -> None:
        settings = isolated(with_worker_port(base, web_port, data_dir=str(tmp / "worker")), name)
        self.settings = msgspec.structs.replace(
            settings, match=msgspec.structs.replace(settings.match, patterns_dir=str(patterns)))
        self.logs = tmp / "logs"
        self.starts: Counter[str] = Counter()
        self.worker = self._start("worker")
        self.bridge = self._start("bridge")
        self.others: list[ChildProcess] = []  # a collector

    def _start(self, what: str) -> ChildProcess:
        self.starts[what] += 1
        name = f"{what}-{self.starts[what]}"
        if what == "worker":
            return start_worker(self.settings, name=name, with_bridge=False, log_dir=self.logs)
        return start_bridge(self.settings, name=name, log_dir=self.logs)

    def restart(self, what: str) -> None:
        setattr(self, what, self._start(what))

    @property
    def procs(self) -> list[ChildProcess]:
        return [self.worker, self.bridge, *self.others]

    def stop(self) -> None:
        for proc in self.procs:
            proc.stop()

    def page(self, path: str) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.settings.worker.web_port}{path}", timeout=10) as r:
            return json.load(r)

    async def ready(self, stream: Stream) -> None:
        """The worker holds every partition of its tables and has learned every pod (its node and
        owner) from the pods' snapshots, published here first as a collector's list does."""
        partitions = list(range(self.settings.kafka.partitions))

        def holds_all() -> bool:
            tables = self.page("/tapio/tables/")["tables"]
            return all(t["partitions"] == partitions for t in tables)
        await until(holds_all, timeout=180, every=0.2, ignoring=(OSError,), procs=self.procs,
                    what="the worker to hold every partition")
        await publish_events(self.settings.nats, stream.raw_pods, name="kill-test-pods")
        want = {f"{p['metadata']['namespace']}/Pod/{p['metadata']['name']}" for p in stream.pods}

        def learned() -> bool:
            return want <= {r["key"] for r in self.page("/tapio/tables/tapio-members/")["rows"]}
        await until(learned, timeout=120, every=0.2, ignoring=(OSError,), procs=self.procs,
                    what="the match stage to learn every pod")

    async def in_graph(self, ids: Sequence[str]) -> int:
        graph = open_graph(self.settings.graph)
        try:
            rows = await graph.query(Query("kill_count_ids", "UNWIND $ids AS id MATCH (e:Event {id: id}) "
                                                              "RETURN count(DISTINCT e.id) AS n"), ids=list(ids))
            return rows[0]["n"] if rows else 0
        finally:
            await graph.close()

    async def outcome(self, stream: Stream) -> Outcome:
        """Once every event is in the graph: the end of the input (an end marker, as `tapio replay
        --into` sends, so the last windows close now rather than after the idle advance), every
        hits partition past the last event and a fence through (`prediction_waits.flushed`); then
        what the graph and the windows hold."""
        ids = stream.ids
        await until(lambda: self._all_in(ids), timeout=240, every=0.2, procs=self.procs,
                    what=lambda: f"every one of the {len(ids)} events in the graph")
        lateness = timedelta(seconds=self.settings.match.allowed_lateness_s)
        await publish_events(self.settings.nats, [end_marker(stream.last + lateness + timedelta(seconds=1))],
                             name="kill-test-end")
        await flushed(self.settings, stream.last, self.procs)
        # the diagnose stage reads the raw topic on its own: past the end marker too, then a second
        # fence behind what it sent (same insights partitions, read in order by the sink)
        last_ms = int(stream.last.timestamp() * 1000)
        await until(lambda: self.page("/tapio/diagnose/")["applied_until_ms"] >= last_ms, timeout=120, every=0.2,
                    ignoring=(OSError,), procs=self.procs, what="the diagnose stage to apply the last event")
        await fence(self.settings, stream.last, self.procs)
        graph = open_graph(self.settings.graph)
        try:
            nodes = await graph.query(EVENT_NODES)
            labels = {r["label"]: r["n"] for r in await graph.query(NODE_LABELS)}
            edges = {r["type"]: r["n"] for r in await graph.query(EDGE_TYPES)}
            found = await list_predictions(graph, limit=1000)
        finally:
            await graph.close()
        rows = self.page("/tapio/tables/tapio-windows/")["rows"]
        late = self.page("/tapio/stages/").get("late", {}).get("events", 0)
        return Outcome(
            event_ids=dict(Counter(r["id"] for r in nodes if not (r["namespace"] or "").startswith(FENCE_PREFIX))),
            nodes=labels, edges=edges,
            predictions=_by_subject(p for p in found if not p.pattern.startswith(DIAGNOSIS)),
            diagnoses=_by_subject((p for p in found if p.pattern.startswith(DIAGNOSIS)), resolved=True),
            windows={r["key"]: _window(r) for r in rows},
            quiet={r["key"]: r.get("quiet_until") for r in rows},
            tallies={r["key"]: sum(c["held"] for c in r["conditions"]) for r in rows
                     if r["pattern"] == TALLY_NAME},
            late_hits=late)

    async def _all_in(self, ids: Sequence[str]) -> bool:
        return await self.in_graph(ids) == len(set(ids))


# --- killing a part and bringing it back ---------------------------------------------------------


def kill_process(pid: int, what: str = "the process") -> None:
    """kill -9 of a server's process group, reaped: `tapio up` (and `_pid_alive`) see it dead."""
    os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while _pid_alive(pid) and time.monotonic() < deadline:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.02)
    assert not _pid_alive(pid), f"{what} (pid {pid}) survived SIGKILL"


def kill_server(state_dir: Path, name: str) -> int:
    """kill -9 of one server of the embedded stack, reaped."""
    pid = next(s.pid for s in read_state(state_dir).servers if s.name == name)
    kill_process(pid, name)
    return pid


def tapio_up(state_dir: Path) -> str:
    """`tapio up --state-dir`: restarts what died, on its ports; returns what it printed."""
    from click.testing import CliRunner

    from app.cli import cli
    result = CliRunner().invoke(cli, ["up", "--state-dir", str(state_dir)])
    assert result.exit_code == 0, result.output
    return result.output


async def kill_holding_messages(bridge: ChildProcess, settings: Settings) -> int:
    """kill -9 of a bridge at a moment it holds messages JetStream delivered to it and it has not
    acknowledged (what a crash leaves for JetStream to deliver again): the bridge is frozen
    (SIGSTOP), the durable consumer asked how many it holds, and it is killed if any, let go on
    (SIGCONT) and tried again a moment later if none. Returns how many it held."""
    nc = await connect(settings.nats, name="kill-test-consumer-info")
    try:
        js = nc.jetstream()
        for _ in range(500):
            os.kill(bridge.pid, signal.SIGSTOP)
            info = await js.consumer_info(settings.nats.stream, settings.nats.bridge_durable)
            if info.num_ack_pending:
                bridge.kill()
                return info.num_ack_pending
            os.kill(bridge.pid, signal.SIGCONT)
            await asyncio.sleep(0.01)
        raise AssertionError(f"{bridge.name} never held an unacknowledged message")
    finally:
        await nc.close()


async def kill_and_restore(part: str, flow: Dataflow, *, state_dir: Path,
                           collector: Callable[[], ChildProcess] | None = None) -> str:
    """kill -9 of `part`, then what brings it back; returns what was done, for the test's messages."""
    if part in SERVERS:
        pid = kill_server(state_dir, part)
        said = await asyncio.to_thread(tapio_up, state_dir)
        assert f"restarted {part}" in said, said
        return f"killed {part} (pid {pid}); tapio up: {said.splitlines()[0]}"
    if part == "bridge":
        proc = flow.bridge
        held = await kill_holding_messages(proc, flow.settings)
        flow.restart(part)
        return f"killed {proc.name} (pid {proc.pid}) holding {held} unacknowledged messages; started {flow.bridge.name}"
    if part == "worker":
        proc = flow.worker
        proc.kill()
        flow.restart(part)
        return f"killed {proc.name} (pid {proc.pid}); started {flow.worker.name}"
    if part == "collector":
        assert collector is not None
        old = flow.others.pop()
        old.kill()
        flow.others.append(collector())
        return f"killed {old.name} (pid {old.pid}); started {flow.others[-1].name}"
    if part == "none":  # a control: the same run without a fault
        return "killed nothing"
    raise ValueError(f"unknown part {part!r}: one of {SERVERS + PROCESSES}")
