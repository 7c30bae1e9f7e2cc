"""Two defects of the first real run, end to end on the real 1.20 cluster (issue 15, point 5).

`tapio collect kubeapi` (a child process, on the cluster's admin kubeconfig) lists and watches the real
single-node cluster of tests/support/realcluster into an isolated dataflow on the embedded stack, where
one worker (with its bridge) runs every stage. What the graph and the worker then hold must show that:

1. A pod deleted with a grace period is dated by the deletion request, not by its deadline
   (core/kube/objects.py, commit 2715ada). Dated by `metadata.deletionTimestamp` (the request plus the
   grace period), one delete put its observations in the future: the watermark jumped ahead by the grace
   period, the real failures that came next arrived late and were dropped from their windows, and the
   DELETED sorted before the MODIFIED that preceded it, so the pod stayed `deleted=false` in the graph.
   A pod that exits on SIGTERM is deleted with a grace period longer than the default (GRACE_S: the
   defect's effect then outlasts every look the test takes, however busy the machine), and a pod whose
   image is not on the node starts failing right after: its failure must be matched from its first
   Event on.
2. The kubelet's Events about its Node (Starting, NodeHasSufficientMemory, ..., which name the Node with
   `involvedObject.uid` = the node's name) hang off the one real Node, not a twin keyed by the name
   (agents/enrich.py, topology/rows.py, topology/queries.py; commit 29ef606): `tapio explain node/<name>`
   showed the Node's own observations while the kubelet's events hung off the twin.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import aiohttp
import kubernetes
import pytest
from kubernetes.client import CoreV1Api
from kubernetes.client.exceptions import ApiException
from realcluster.images import BUSYBOX_IMAGE
from realcluster.node import RealCluster
from realcluster.workloads import SERVE
from waiting import until

from app.explain import explain
from app.stack import EmbeddedStack, free_port
from app.workers import ChildProcess, start_worker, with_worker_port
from core.settings import Settings, isolated
from topology import insight_queries, queries
from topology.graph import GraphStore, open_graph
from topology.queries import Query

pytestmark = [pytest.mark.xdist_group("real-cluster"), pytest.mark.timeout(600)]

#: the deleted pod's grace period: longer than the default 30 s, so that a deadline taken for the time of
#: an observation stays ahead of the wall clock through every look the test takes
GRACE_S = 120
#: how far an event time may lie ahead of the wall clock that saw it (clocks of one machine; Kubernetes
#: times are whole seconds, truncated)
SKEW_MS = 5_000
DELETED = "graceful-0"
WITNESS = "witness-0"  # fails right after the deletion: its image is not on the node, its pull policy Never
ABSENT_IMAGE = "tapio.local/absent:1"
WITNESS_PATTERN = "image-not-present"  # patterns/image-not-present.yaml: two ErrImageNeverPull of one owner

#: every Node node that could stand for the node `name`: the real one (its uid), or one keyed by the name
NODES_NAMED = Query("nodes_named", """MATCH (r:Node) WHERE r.name = $name OR r.uid = $name
   OR r.uid = 'Node:/' + $name
RETURN r.uid AS uid, r.namespace AS namespace ORDER BY uid""")


@dataclass
class Flow:
    settings: Settings
    worker: ChildProcess
    collector: ChildProcess

    @property
    def procs(self) -> list[ChildProcess]:
        return [self.worker, self.collector]

    @property
    def web(self) -> str:
        return f"http://{self.settings.worker.web_host}:{self.settings.worker.web_port}"


@pytest.fixture(scope="module")
def flow(real_cluster: RealCluster, api: kubernetes.client.ApiClient, embedded: EmbeddedStack,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flow]:
    """An isolated dataflow on the embedded stack with one worker, fed by `tapio collect kubeapi`."""
    tmp = tmp_path_factory.mktemp("first-run-defects")
    settings = isolated(with_worker_port(embedded.settings(), free_port(), data_dir=str(tmp / "worker")),
                        "first-run-defects")
    worker = start_worker(settings, name="worker-first-run-defects", log_dir=tmp)
    try:
        collector = ChildProcess(settings, ["collect", "kubeapi", "--kubeconfig", str(real_cluster.kubeconfig)],
                                 name="collector", log_dir=tmp)
        try:
            yield Flow(settings=settings, worker=worker, collector=collector)
        finally:
            collector.stop()
    finally:
        worker.stop()


@pytest.fixture(scope="module")
async def graph(flow: Flow) -> AsyncIterator[GraphStore]:
    store = open_graph(flow.settings.graph)
    try:
        yield store
    finally:
        await store.close()


def _pod(name: str, image: str, *, grace: int) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"terminationGracePeriodSeconds": grace, "restartPolicy": "Always",
                     "containers": [{"name": "app", "image": image, "imagePullPolicy": "Never",
                                     "command": ["sh", "-c", SERVE]}]}}


async def _pod_events(graph: GraphStore, namespace: str, name: str) -> list[dict]:
    """The graph's events of one pod, oldest first (id, timestamp, reason, ...), with `ingested_at` and `action`."""
    rows = await graph.query(queries.events_for_resource("Pod"), kind="Pod", namespace=namespace, name=name)
    times = {r["id"]: r for r in await graph.query(queries.EVENT_TIMES, ids=[r["id"] for r in rows])}
    actions = {r["id"]: r["action"] for r in await graph.query(
        Query("event_actions", "UNWIND $ids AS id MATCH (e:Event {id: id}) RETURN e.id AS id, e.action AS action"),
        ids=[r["id"] for r in rows])}
    return [{**r, "ingested_at": times[r["id"]]["ingested_at"], "action": actions.get(r["id"])} for r in rows]


async def _watermarks(web: str) -> dict[str, int] | None:
    """Per raw partition, the newest watermark (epoch ms) the bridge stamped on its batches, as the worker's
    diagnose stage holds them (`/tapio/diagnose/`): the event time every stage of the worker goes by."""
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http, \
                http.get(f"{web}/tapio/diagnose/") as response:
            return (await response.json()).get("watermarks") if response.status == 200 else None
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return None


@dataclass
class Deletion:
    uid: str
    requested_ms: int  # wall clock when the delete was asked for
    events: list[dict]  # the deleted pod's events in the graph once its DELETED is there
    watermarks: dict[str, int]  # the bridge's watermarks the worker holds then, per raw partition
    read_ms: int  # wall clock right after reading them


@pytest.fixture(scope="module")
async def deletion(flow: Flow, api: kubernetes.client.ApiClient, namespace: str, graph: GraphStore) -> Deletion:
    """A running pod deleted (grace GRACE_S, it exits on SIGTERM), a failing pod created right after;
    what the graph and the worker hold once the deletion went through the dataflow."""
    core = CoreV1Api(api)
    created = core.create_namespaced_pod(namespace, _pod(DELETED, BUSYBOX_IMAGE, grace=GRACE_S))

    def running() -> bool:
        pod = core.read_namespaced_pod(DELETED, namespace)
        return pod.status.phase == "Running" and all(s.ready for s in pod.status.container_statuses or [])

    await until(lambda: asyncio.to_thread(running), timeout=120, what=f"pod {DELETED} running", procs=flow.procs)

    async def known() -> bool:  # the dataflow has seen it: its node is in the graph
        rows = await graph.query(queries.resource("Pod"), kind="Pod", namespace=namespace, name=DELETED)
        return any(r["uid"] == created.metadata.uid for r in rows)

    await until(known, timeout=120, what=f"pod {DELETED} in the graph", procs=flow.procs)
    requested_ms = int(time.time() * 1000)
    core.delete_namespaced_pod(DELETED, namespace)  # its own grace period: GRACE_S
    core.create_namespaced_pod(namespace, _pod(WITNESS, ABSENT_IMAGE, grace=1))

    def gone() -> bool:
        try:
            core.read_namespaced_pod(DELETED, namespace)
        except ApiException as e:
            return e.status == 404
        return False

    # it exits on SIGTERM: the kubelet deletes it at once, long before its deadline
    await until(lambda: asyncio.to_thread(gone), timeout=GRACE_S / 2, what=f"pod {DELETED} gone", procs=flow.procs)

    async def deleted_observed() -> list[dict] | None:
        events = await _pod_events(graph, namespace, DELETED)
        return events if any(e["action"] == "DELETED" for e in events) else None

    events = await until(deleted_observed, timeout=60, what=f"the DELETED of {DELETED} in the graph",
                         procs=flow.procs)
    deleted_ms = max(e["timestamp"] for e in events if e["action"] == "DELETED")

    async def watermarks_past_it() -> dict[str, int] | None:  # the sink may be ahead of the diagnose stage
        marks = await _watermarks(flow.web)
        return marks if marks and all(at >= deleted_ms for at in marks.values()) else None

    marks = await until(watermarks_past_it, timeout=60, what=f"every watermark of the worker past the DELETED "
                        f"of {DELETED}", procs=flow.procs)
    return Deletion(uid=created.metadata.uid, requested_ms=requested_ms, events=events, watermarks=marks,
                    read_ms=int(time.time() * 1000))


def _ahead(events: list[dict]) -> list[str]:
    return [f"{e['action']} {e['reason']}: at {e['timestamp']}, ingested at {e['ingested_at']} "
            f"({(e['timestamp'] - e['ingested_at']) / 1000:+.1f} s)"
            for e in events if e["timestamp"] > e["ingested_at"] + SKEW_MS]


def test_a_graceful_deletion_is_dated_by_its_request_not_its_deadline(deletion: Deletion) -> None:
    # the watch's MODIFIED (deletionTimestamp set) and DELETED of a graceful deletion, and every other
    # observation of the pod: none is ahead of the wall clock that took it into the graph
    actions = [e["action"] for e in deletion.events]
    assert "DELETED" in actions and actions.count("MODIFIED") >= 2, actions
    assert _ahead(deletion.events) == []
    deletions = [e for e in deletion.events if e["timestamp"] >= deletion.requested_ms - 1_000]
    assert deletions and max(e["timestamp"] for e in deletions) < deletion.requested_ms + GRACE_S * 1000 / 2


def test_a_deletion_does_not_move_event_time_ahead_of_the_wall_clock(deletion: Deletion) -> None:
    # the bridge's watermark is the newest event time it bridged: a deadline taken for a time put it
    # GRACE_S ahead, and every failure of the next GRACE_S - allowed lateness seconds came late
    ahead = {p: f"{(at - deletion.read_ms) / 1000:+.1f} s" for p, at in deletion.watermarks.items()
             if at > deletion.read_ms + SKEW_MS}
    assert ahead == {}


async def test_a_pod_deleted_with_a_grace_period_ends_deleted_in_the_graph(
        deletion: Deletion, flow: Flow, graph: GraphStore, namespace: str) -> None:
    async def deleted() -> dict | None:
        rows = await graph.query(queries.resource("Pod"), kind="Pod", namespace=namespace, name=DELETED)
        [row] = [r for r in rows if r["uid"] == deletion.uid]
        return row if row["props"].get("deleted") is True else None

    await until(deleted, timeout=60, what=f"pod {DELETED} marked deleted=true in the graph", procs=flow.procs)


async def test_a_failure_right_after_a_deletion_is_counted_from_its_first_event(
        deletion: Deletion, flow: Flow, graph: GraphStore, namespace: str) -> None:
    # the witness pod failed right after the delete: the match of its failure must count it from its first
    # ErrImageNeverPull on (with the deadline taken for a time, the first ones came late and were dropped,
    # and no match came in this wait). The kubelet's Event is watched as core/v1 and as events.k8s.io: two
    # observations of each, either may be the one the match holds.
    seen: dict[str, object] = {}

    async def matched() -> list[str] | None:
        events = await _pod_events(graph, namespace, WITNESS)
        refusals = {e["id"]: e["timestamp"] for e in events if e["reason"] == "ErrImageNeverPull"}
        matches: dict[str, set[str]] = {}
        for r in await graph.query(insight_queries.ALL_MATCHES):
            if r["pattern"] == WITNESS_PATTERN:
                matches.setdefault(r["match_id"], set()).add(r["event"])
        seen.update(refusals=refusals, matches=matches)
        first = min(refusals.values(), default=None)
        return next((sorted(ids) for ids in matches.values() if any(refusals.get(i) == first for i in ids)), None)

    await until(matched, timeout=120, what=lambda: f"a match of {WITNESS_PATTERN} on pod {WITNESS} from its first "
                f"ErrImageNeverPull (seen: {seen})", procs=flow.procs)


async def test_the_kubelets_node_events_join_the_one_real_node(
        real_cluster: RealCluster, api: kubernetes.client.ApiClient, flow: Flow, graph: GraphStore) -> None:
    core = CoreV1Api(api)
    node = core.read_node(real_cluster.node_name)
    told = [e for e in core.list_namespaced_event("default").items
            if e.involved_object.kind == "Node" and e.involved_object.name == real_cluster.node_name
            and e.source.component == "kubelet"]
    # the premise: the kubelet names its Node with the node's name as uid
    assert told and {e.involved_object.uid for e in told} == {real_cluster.node_name}, told
    reasons = {e.reason for e in told}

    seen: dict[str, object] = {}

    async def joined() -> list[dict] | None:
        nodes = await graph.query(NODES_NAMED, name=real_cluster.node_name)
        rows = await graph.query(queries.events_for_resource("Node"), kind="Node", namespace="",
                                 name=real_cluster.node_name)
        seen.update(nodes=nodes, reasons=sorted({str(r["reason"]) for r in rows}))
        return rows if [n["uid"] for n in nodes] == [node.metadata.uid] and \
            reasons <= {r["reason"] for r in rows} else None

    rows = await until(joined, timeout=120, what=lambda: f"the kubelet's Node events {sorted(reasons)} on the real "
                       f"Node {node.metadata.uid}, and no other Node named {real_cluster.node_name} (seen: {seen})",
                       procs=flow.procs)
    # `tapio explain node/<name>` counts them with the Node's own observations
    answer = await explain(graph, kind="Node", name=real_cluster.node_name, namespace="")
    assert answer.events >= len(rows) > len(reasons) > 1
