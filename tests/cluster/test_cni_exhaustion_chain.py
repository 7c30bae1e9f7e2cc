"""CNI address pool exhausted -> FailedCreatePodSandBox -> a pod stuck in ContainerCreating, end to end on the real cluster.

host-local reservations leaked by containers that are gone (`cnichain.leak`: what a runtime crash
leaves) fill the real node's pod network pool: first all but two addresses, and a Deployment `calm`
still starts; then the rest, and a Deployment `stuck` gets FailedCreatePodSandBox from the kubelet
(host-local: "no IP addresses available in range set") and stays in ContainerCreating. The CNI
collector (in this process, scanning the pool) publishes into an isolated dataflow on the embedded
stack, where `tapio collect kubeapi` (a child process) publishes the API's view and one worker runs
every stage. The pattern `cni-ipam-exhausted` must match on the node, the graph must hold a CAUSED edge
from the collector's CNIIPAMExhausted to the kubelet's Event about the stuck pod, and `explain` of the
pod must give the pattern with its story starting at the exhaustion. Nothing of `calm` (started while
one address was still free) is cited. The leaked reservations are removed whatever happens.

Needs root (the CNI collector's netlink socket, the cluster) besides the cluster; skips, saying why, only where absent.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Iterator

import kubernetes
import msgspec
import pytest
from chainflow import isolated_flow, pump
from cnichain import collector, create, leak, sandbox_failures, unleak, wait_for
from collectorthread import Running
from oomchain import delete, pod_state
from realcluster.node import RealCluster

from app.explain import explain
from app.stack import EmbeddedStack
from app.workers import ChildProcess
from collectors.node import SourceUnavailable
from core.settings import Settings
from topology import insight_queries
from topology.graph import open_graph
from topology.predictions import list_predictions, match_story

pytestmark = [pytest.mark.xdist_group("real-cluster"), pytest.mark.timeout(600)]

log = logging.getLogger(__name__)
PATTERN = "cni-ipam-exhausted"
STUCK_NS, CALM_NS = "cnichain-stuck", "cnichain-calm"
DEADLINE_S = 180.0


class Seen(msgspec.Struct, kw_only=True):
    pod: str  # the stuck pod
    exhausted: list[tuple[str, float]]  # the CNI collector's CNIIPAMExhausted events: (id, epoch seconds)
    caused: list[tuple[str, str]]  # CAUSED edges of the pattern's match (cause id, effect id)
    chain: list[str]  # the match's story, root cause first
    explained: list[str]  # the patterns of explain's hypotheses for the pod
    message: str  # the pattern's prediction message
    scope: str  # the prediction's scope
    matched_at: float  # when it matched, event time (epoch seconds)
    texts: dict[str, str]  # the match's evidence: id -> "[intent] text"


@pytest.fixture(scope="module")
def cni(real_cluster: RealCluster) -> Iterator[Running]:
    if os.geteuid() != 0:
        pytest.skip("the CNI collector's netlink socket and the pool's files need root")
    try:
        running = Running(collector(real_cluster)).start()
    except SourceUnavailable as e:
        pytest.skip(f"the CNI collector cannot run here: {e}")
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def flow(embedded: EmbeddedStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """An isolated dataflow on the embedded stack: its stream, topics, tables and graph; one worker."""
    yield from isolated_flow(embedded, tmp_path_factory.mktemp("cni-chain"), "cni-chain")


async def _pump(cni: Running, flow: Settings, stop: asyncio.Event) -> int:
    """Publish the CNI collector's events into the dataflow as they come."""
    return await pump([cni.snapshot], flow, stop, name="cni-chain")


def _exhausted(cni: Running) -> list[tuple[str, float]]:
    return [(e.id, e.timestamp.timestamp()) for e in cni.snapshot() if e.metadata.get("reason") == "CNIIPAMExhausted"]


async def _look(flow: Settings, cni: Running, pod: str) -> Seen | None:
    """What the graph holds of the pattern's match on the node; None until it links the exhaustion."""
    exhausted = _exhausted(cni)
    graph = open_graph(flow.graph)
    try:
        found = [p for p in await list_predictions(graph, limit=100_000) if p.pattern == PATTERN]
        if not found or not exhausted:
            return None
        told = await match_story(graph, found[0].match_id)
        edges = await graph.query(insight_queries.CAUSED_AMONG, ids=[e.id for e in told.evidence])
        caused = [(r["cause"], r["effect"]) for r in edges]
        texts = {e.id: f"[{e.intent}] {e.text}" for e in told.evidence}
        if not any(c in {i for i, _ in exhausted} and f"Pod {STUCK_NS}/{pod}" in texts.get(e, "")
                   for c, e in caused):
            return None
        got = await explain(graph, kind="Pod", name=pod, namespace=STUCK_NS)
        return Seen(pod=pod, exhausted=exhausted, caused=caused, chain=told.chain, message=found[0].message,
                    scope=found[0].scope, matched_at=found[0].at.timestamp(), texts=texts,
                    explained=[h.prediction.pattern for h in got.hypotheses])
    finally:
        await graph.close()


@pytest.fixture(scope="module")
async def seen(real_cluster: RealCluster, api: kubernetes.client.ApiClient, cni: Running, flow: Settings,
               tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Seen]:
    tmp = tmp_path_factory.mktemp("cni-chain-collector")
    collector_process = ChildProcess(flow, ["collect", "kubeapi", "--kubeconfig", str(real_cluster.kubeconfig)],
                                     name="collector", log_dir=tmp)
    stop = asyncio.Event()
    pump = asyncio.create_task(_pump(cni, flow, stop))
    leaked = []
    try:
        leaked += await asyncio.to_thread(leak, real_cluster, keep_free=2)
        await asyncio.to_thread(create, api, CALM_NS, "calm")
        await asyncio.to_thread(wait_for, "calm Ready with two addresses free",
                                lambda: pod_state(api, CALM_NS)[3])
        assert _exhausted(cni) == [], "the pool was reported exhausted with an address free"
        leaked += await asyncio.to_thread(leak, real_cluster, keep_free=0)
        await asyncio.to_thread(wait_for, "the CNI collector to report the pool exhausted", lambda: _exhausted(cni),
                                30.0)
        await asyncio.to_thread(create, api, STUCK_NS, "stuck")
        failures = await asyncio.to_thread(wait_for, "FailedCreatePodSandBox for the stuck pod",
                                           lambda: sandbox_failures(api, STUCK_NS))
        log.info("sandbox failure: %s", failures[0])
        deadline = time.monotonic() + DEADLINE_S
        result = None
        while result is None and time.monotonic() < deadline:
            assert collector_process.alive(), collector_process.log_tail()
            assert not pump.done(), pump
            await asyncio.sleep(2)
            pod = (await asyncio.to_thread(pod_state, api, STUCK_NS))[0]
            if pod:
                result = await _look(flow, cni, pod)
        assert result is not None, (f"no {PATTERN} match with a CAUSED edge from the exhaustion in {DEADLINE_S:.0f}s; "
                                    f"exhausted: {_exhausted(cni)}; sandbox failures: {failures[:2]}")
        log.info("%s: %s; chain %s", PATTERN, result.message, " -> ".join(result.chain))
        yield result
    finally:
        unleak(leaked)
        stop.set()
        await asyncio.wait_for(pump, 30)
        collector_process.stop()
        for ns in (STUCK_NS, CALM_NS):
            await asyncio.to_thread(delete, api, ns)


def test_the_graph_holds_a_caused_edge_from_the_exhausted_pool_to_the_kubelets_sandbox_failure(seen: Seen) -> None:
    exhausted = {i for i, _ in seen.exhausted}
    effects = [seen.texts[e] for c, e in seen.caused if c in exhausted]
    assert any("FailedCreatePodSandBox" in text and f"Pod {STUCK_NS}/{seen.pod}" in text
               and "no IP addresses available" in text for text in effects), effects


def test_explain_of_the_stuck_pod_gives_the_pattern_and_its_story_starts_with_the_exhaustion(
        seen: Seen, real_cluster: RealCluster) -> None:
    assert PATTERN in seen.explained, seen.explained
    assert "CNIIPAMExhausted" in seen.chain[0], seen.chain
    assert seen.scope == f"node:{real_cluster.node_name}"
    assert f"{STUCK_NS}/{seen.pod}" in seen.message and "ContainerCreating" in seen.message, seen.message


def test_nothing_of_the_pod_that_started_with_an_address_free_is_cited(seen: Seen) -> None:
    assert not [t for t in seen.texts.values() if CALM_NS in t], seen.texts
    assert seen.matched_at >= min(t for _, t in seen.exhausted)
