"""Refused connections -> readiness probe failure -> pod out of its Service, end to end on the real cluster.

In each of two namespaces a `peer` (busybox httpd on 8080) and a `client` whose app checks it every
second (`nc` to the peer pod's IP: the cluster has no kube-proxy) and whose readiness probe fails while
the last check failed (`tcpchain`) run on the real single-node cluster. Once both clients are Ready,
one peer stops listening (its pod runs on: its kernel answers each SYN with a RST). The kernel collector
(eBPF, in this process, pods named through the kubelet's read-only `/pods`) publishes its RawEvents
into an isolated dataflow on the embedded stack, where `tapio collect kubeapi` (a child process)
publishes the API's view of the same pods and one worker runs every stage. The pattern
`tcp-refused-probe-failure` must match the client's pod, the graph must hold a CAUSED edge from the
kernel's refused connections of that pod to the kubelet's Unhealthy Event about it, and `explain` of
the pod must give the pattern's hypothesis, its story starting with the kernel's event. The client of
the peer that kept listening gets no such prediction.

Needs root and BPF (tracefs, BCC) besides the cluster; skips, saying why, only where they are absent.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import kubernetes
import msgspec
import pytest
from chainflow import isolated_flow, pump
from kernelrun import Running
from oomchain import delete
from realcluster.node import RealCluster
from tcpchain import create, pod_of, readiness_failures, stop_listening

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
PATTERN = "tcp-refused-probe-failure"
REFUSED_NS, CALM_NS = "tcpchain-refused", "tcpchain-calm"
DEADLINE_S = 180.0


class Seen(msgspec.Struct, kw_only=True):
    pod: str  # the refused client's pod
    peer: str  # its peer's pod IP
    refusals: set[str]  # ids of the kernel collector's TCPConnectFailed events about the pod
    caused: list[tuple[str, str]]  # CAUSED edges of the pattern's match (cause id, effect id)
    chain: list[str]  # the match's story, root cause first
    explained: list[str]  # the patterns of explain's hypotheses for the pod
    message: str  # the pattern's prediction message
    twin: list[str]  # predictions of the pattern in the twin's namespace
    effects: dict[str, str]  # evidence id -> "[intent] text", for the messages


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
    yield from isolated_flow(embedded, tmp_path_factory.mktemp("tcp-chain"), "tcp-chain")


async def _pump(kernel: Running, flow: Settings, stop: asyncio.Event) -> int:
    """Publish the kernel collector's events about the test's namespaces into the dataflow as they come."""
    return await pump([lambda: kernel.events], flow, stop, name="tcp-refused-chain", keep=lambda e: e.metadata.get("namespace") in (REFUSED_NS, CALM_NS))


def _refusals(kernel: Running, pod: str) -> set[str]:
    return {e.id for e in kernel.events if e.metadata.get("reason") == "TCPConnectFailed"
            and e.metadata.get("namespace") == REFUSED_NS and e.metadata.get("name") == pod}


async def _look(flow: Settings, kernel: Running, pod: str, peer: str) -> Seen | None:
    """What the graph holds of the pattern's match on the client's pod; None until it links the refusals."""
    refusals = _refusals(kernel, pod)
    graph = open_graph(flow.graph)
    try:
        found = [p for p in await list_predictions(graph, limit=100_000) if p.pattern == PATTERN]
        mine = [p for p in found if p.namespace == REFUSED_NS]
        if not mine or not refusals:
            return None
        told = await match_story(graph, mine[0].match_id)
        edges = await graph.query(insight_queries.CAUSED_AMONG, ids=[e.id for e in told.evidence])
        caused = [(r["cause"], r["effect"]) for r in edges]
        if not any(c in refusals for c, _ in caused):
            return None
        got = await explain(graph, kind="Pod", name=pod, namespace=REFUSED_NS)
        return Seen(pod=pod, peer=peer, refusals=refusals, caused=caused, chain=told.chain, message=mine[0].message,
                    explained=[h.prediction.pattern for h in got.hypotheses],
                    twin=[p.message for p in found if p.namespace == CALM_NS],
                    effects={e.id: f"[{e.intent}] {e.text}" for e in told.evidence})
    finally:
        await graph.close()


@pytest.fixture(scope="module")
async def seen(real_cluster: RealCluster, api: kubernetes.client.ApiClient, kernel: Running, flow: Settings,
               tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Seen]:
    tmp = tmp_path_factory.mktemp("tcp-chain-collector")
    control = Path(real_cluster.work_dir) / "tcpchain-control"
    collector = ChildProcess(flow, ["collect", "kubeapi", "--kubeconfig", str(real_cluster.kubeconfig)],
                             name="collector", log_dir=tmp)
    stop = asyncio.Event()
    pump = asyncio.create_task(_pump(kernel, flow, stop))
    try:
        pod, peer = await asyncio.to_thread(create, api, REFUSED_NS, control / REFUSED_NS)
        await asyncio.to_thread(create, api, CALM_NS, control / CALM_NS)
        stop_listening(control / REFUSED_NS)
        deadline = time.monotonic() + DEADLINE_S
        result = None
        while result is None and time.monotonic() < deadline:
            assert collector.alive(), collector.log_tail()
            assert not pump.done(), pump
            await asyncio.sleep(2)
            if await asyncio.to_thread(readiness_failures, api, REFUSED_NS, pod):
                result = await _look(flow, kernel, pod, peer)
        assert result is not None, (
            f"no {PATTERN} match with a CAUSED edge from the kernel's refusals in {DEADLINE_S:.0f}s; client "
            f"{await asyncio.to_thread(pod_of, api, REFUSED_NS, 'client')}, Unhealthy: "
            f"{await asyncio.to_thread(readiness_failures, api, REFUSED_NS, pod)}; kernel TCP events: "
            f"{[e.metadata.get('message') for e in kernel.events if e.metadata.get('reason', '').startswith('TCP')][-10:]}")
        log.info("%s: %s; chain %s", PATTERN, result.message, " -> ".join(result.chain))
        yield result
    finally:
        stop.set()
        await asyncio.wait_for(pump, 30)
        collector.stop()
        for ns in (REFUSED_NS, CALM_NS):
            await asyncio.to_thread(delete, api, ns)


def test_the_graph_holds_a_caused_edge_from_the_kernels_refused_connections_to_the_kubelets_probe_failure(
        seen: Seen) -> None:
    effects = [seen.effects[e] for c, e in seen.caused if c in seen.refusals]
    assert effects, seen.caused
    assert any(text.startswith("[probe-failure]") and f"Pod {REFUSED_NS}/{seen.pod}" in text
               and "Readiness probe failed" in text and "Connection refused" in text for text in effects), effects


def test_explain_of_the_pod_gives_the_pattern_and_its_story_starts_with_the_kernels_event(seen: Seen) -> None:
    assert PATTERN in seen.explained, seen.explained
    assert "TCPConnectFailed" in seen.chain[0] and f"Pod {REFUSED_NS}/{seen.pod}" in seen.chain[0], seen.chain
    assert f"{seen.peer}:8080" in seen.chain[0] and len(seen.chain) >= 2
    assert seen.message.startswith(f"Pod {seen.pod}'s connections to {seen.peer}:8080 were refused"), seen.message


def test_the_client_of_the_peer_that_kept_listening_gets_no_prediction(seen: Seen) -> None:
    assert seen.twin == []
