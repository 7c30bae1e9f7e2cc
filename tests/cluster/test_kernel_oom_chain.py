"""Kernel OOM -> container restart -> pod out of its Service, end to end on the real cluster.

A Deployment whose container serves 8 s and then outgrows its 32Mi limit, after every start (`tail /dev/zero`, behind a
Service) and its healthy twin run on the real single-node cluster (tests/support/realcluster). The
kernel collector (eBPF, in this process, pods named through the kubelet's read-only `/pods`)
publishes its RawEvents into an isolated dataflow on the embedded stack, where `tapio collect
kubeapi` (a child process) publishes the API's view of the same pods and one worker runs every stage.
The pattern `kernel-oom-restart` must match the hog's pod, the graph must hold a CAUSED edge from the
kernel's OOMKill event to the API's report of the same pod, and `explain` (the function behind
`tapio explain`) of the pod must give the pattern's hypothesis, its story starting with the kernel's
kill; `kernel-oom-service-degraded` must follow the same kill to the Service's Endpoints without a
ready address (the hog serves 8 s before each kill): kernel OOM -> container restart -> service
degraded. The twin gets no such prediction.

Needs root and BPF (tracefs, BCC) besides the cluster; skips, saying why, only where they are absent.
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
from kernelrun import Running
from oomchain import CALM, HOG, create, delete, pod_state
from realcluster.node import RealCluster

from app.explain import explain
from app.stack import EmbeddedStack
from app.workers import ChildProcess
from collectors.kernel import KernelCollector
from collectors.node import SourceUnavailable
from collectors.podresolve import PodResolver
from core.settings import Settings
from topology import insight_queries
from topology.graph import open_graph
from topology.predictions import list_predictions, match_story

pytestmark = [pytest.mark.xdist_group("real-cluster"), pytest.mark.timeout(600)]

log = logging.getLogger(__name__)
PATTERN = "kernel-oom-restart"
SERVICE = "kernel-oom-service-degraded"  # the same kill followed to the hog's Service
HOG_NS, CALM_NS = "oomchain-hog", "oomchain-calm"
DEADLINE_S = 180.0


class Seen(msgspec.Struct, kw_only=True):
    pod: str  # the hog's pod
    kills: set[str]  # ids of the kernel collector's OOMKill events about it
    caused: list[tuple[str, str]]  # CAUSED edges of the pattern's match (cause id, effect id)
    chain: list[str]  # the match's story, root cause first
    explained: list[str]  # the patterns of explain's hypotheses for the pod
    message: str  # the pattern's prediction message
    twin: list[str]  # predictions of the pattern in the twin's namespace
    effects: dict[str, str]  # effect id -> its text, for the messages
    service_chain: list[str] = []  # the Service-side match's story, root cause first
    service_effects: list[str] = []  # the texts its CAUSED edges from a kernel kill point to


@pytest.fixture(scope="module")
def kernel(real_cluster: RealCluster) -> Iterator[Running]:
    if os.geteuid() != 0:
        pytest.skip("loading eBPF programs needs root")
    collector = KernelCollector(real_cluster.node_name, interval=0.5,
                                resolver=PodResolver(f"{real_cluster.kubelet_read_only_url}/pods", min_refresh=0.5))
    try:
        collector.check()
    except SourceUnavailable as e:
        pytest.skip(f"the kernel collector cannot run here: {e}")
    running = Running(collector).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def flow(embedded: EmbeddedStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """An isolated dataflow on the embedded stack: its stream, topics, tables and graph; one worker."""
    yield from isolated_flow(embedded, tmp_path_factory.mktemp("oom-chain"), "oom-chain")


async def _pump(kernel: Running, flow: Settings, stop: asyncio.Event) -> int:
    """Publish the kernel collector's events about the test's namespaces into the dataflow as they come."""
    return await pump([lambda: kernel.events], flow, stop, name="kernel-oom-chain", keep=lambda e: e.metadata.get("namespace") in (HOG_NS, CALM_NS))


async def _look(flow: Settings, kernel: Running, pod: str) -> Seen | None:
    """What the graph holds of the pattern's match on the hog's pod; None until it is there."""
    kills = {e.id for e in kernel.events if e.metadata.get("reason") == "OOMKill"
             and e.metadata.get("namespace") == HOG_NS and e.metadata.get("name") == pod}
    graph = open_graph(flow.graph)
    try:
        every = await list_predictions(graph, limit=100_000)
        found = [p for p in every if p.pattern == PATTERN]
        mine = [p for p in found if p.namespace == HOG_NS]
        if not mine or not kills:
            return None
        told = await match_story(graph, mine[0].match_id)
        edges = await graph.query(insight_queries.CAUSED_AMONG, ids=[e.id for e in told.evidence])
        caused = [(r["cause"], r["effect"]) for r in edges]
        if not any(c in kills for c, _ in caused):
            return None
        degraded = [p for p in every if p.pattern == SERVICE and p.namespace == HOG_NS]
        if not degraded:
            return None
        service = await match_story(graph, degraded[0].match_id)
        texts = {e.id: f"[{e.intent}] {e.text}" for e in service.evidence}
        got = await explain(graph, kind="Pod", name=pod, namespace=HOG_NS)
        return Seen(pod=pod, kills=kills, caused=caused, chain=told.chain, message=mine[0].message,
                    explained=[h.prediction.pattern for h in got.hypotheses],
                    twin=[p.message for p in every if p.pattern in (PATTERN, SERVICE) and p.namespace == CALM_NS],
                    effects={e.id: f"[{e.intent}] {e.text}" for e in told.evidence},
                    service_chain=service.chain,
                    service_effects=[texts[e] for c, e in service.caused if c in kills and e in texts])
    finally:
        await graph.close()


@pytest.fixture(scope="module")
async def seen(real_cluster: RealCluster, api: kubernetes.client.ApiClient, kernel: Running, flow: Settings,
               tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Seen]:
    tmp = tmp_path_factory.mktemp("oom-chain-collector")
    collector = ChildProcess(flow, ["collect", "kubeapi", "--kubeconfig", str(real_cluster.kubeconfig)],
                             name="collector", log_dir=tmp)
    stop = asyncio.Event()
    pump = asyncio.create_task(_pump(kernel, flow, stop))
    try:
        await asyncio.to_thread(create, api, HOG_NS, "hog", HOG)
        await asyncio.to_thread(create, api, CALM_NS, "calm", CALM)
        deadline = time.monotonic() + DEADLINE_S
        result = None
        while result is None and time.monotonic() < deadline:
            assert collector.alive(), collector.log_tail()
            assert not pump.done(), pump
            await asyncio.sleep(2)
            pod, _, restarts, _ = await asyncio.to_thread(pod_state, api, HOG_NS)
            if pod and restarts >= 1:
                result = await _look(flow, kernel, pod)
        state = await asyncio.to_thread(pod_state, api, HOG_NS), await asyncio.to_thread(pod_state, api, CALM_NS)
        assert result is not None, f"no {PATTERN} match with a CAUSED edge from the kernel's kill in {DEADLINE_S:.0f}s; " \
                                   f"pods {state}; kernel OOMKills seen: " \
                                   f"{[e.metadata for e in kernel.events if e.metadata.get('reason') == 'OOMKill']}"
        log.info("%s: %s; chain %s", PATTERN, result.message, " -> ".join(result.chain))
        yield result
    finally:
        stop.set()
        await asyncio.wait_for(pump, 30)
        collector.stop()
        for ns in (HOG_NS, CALM_NS):
            await asyncio.to_thread(delete, api, ns)


def test_the_graph_holds_a_caused_edge_from_the_kernels_oom_kill_to_the_apis_report_of_the_pod(seen: Seen) -> None:
    from_kill = [(c, e) for c, e in seen.caused if c in seen.kills]
    assert from_kill, seen.caused
    effects = [seen.effects[e] for _, e in from_kill]
    assert all(e not in seen.kills for _, e in from_kill)
    assert any(text.startswith(("[oom-kill]", "[crash-loop]")) and f"Pod {HOG_NS}/{seen.pod}" in text
               for text in effects), effects


def test_explain_of_the_pod_gives_the_pattern_and_its_story_starts_with_the_kernels_kill(seen: Seen) -> None:
    assert PATTERN in seen.explained, seen.explained
    assert "OOMKill" in seen.chain[0] and f"Pod {HOG_NS}/{seen.pod}" in seen.chain[0], seen.chain
    assert len(seen.chain) >= 2
    assert "before the Kubernetes API reported it" in seen.message and seen.pod in seen.message


def test_the_services_endpoint_lost_at_the_kill_is_its_effect_and_explain_tells_the_seed_chain(seen: Seen) -> None:
    # the architecture's chain: kernel OOM -> container restart -> service degraded, as CAUSED edges
    assert any(f"Endpoints {HOG_NS}/hog" in text or f"EndpointSlice {HOG_NS}/hog-" in text
               for text in seen.service_effects), seen.service_effects
    assert SERVICE in seen.explained, seen.explained
    assert "OOMKill" in seen.service_chain[0] and any("Endpoint" in line for line in seen.service_chain[1:]), \
        seen.service_chain


def test_the_healthy_twin_gets_no_kernel_oom_prediction(seen: Seen) -> None:
    assert seen.twin == []
