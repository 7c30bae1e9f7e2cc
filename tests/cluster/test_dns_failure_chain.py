"""DNS failure -> pod failure, end to end on the real cluster.

An app that needs a name (busybox `nslookup` every 2 s, exit 1 when it fails), behind a Service, runs
on the real single-node cluster (tests/support/realcluster) against a real dnsmasq on the bridge's
gateway. It is Ready while the name's record exists; then the record is deleted (the server reloads
without it) and the name gets NXDOMAIN: the app exits, crash-loops, and its Service has no ready
endpoint left; its healthy twin asks a name that resolves. The DNS
collector (AF_PACKET, in this process, pods named through the kubelet's read-only `/pods`) publishes
its RawEvents into an isolated dataflow on the embedded stack, where `tapio collect kubeapi` (a child
process) publishes the API's view of the same pods and one worker runs every stage. The pattern
`dns-failure-crash` must match the app's pod, the graph must hold a CAUSED edge from the DNS
collector's failure event to the API's report of the same pod and to the Service's Endpoints with no
ready address (DNS failure -> pod failure -> Service without endpoints), and `explain` (the function behind
`tapio explain`) of the pod must give the pattern's hypothesis, its story starting with the DNS
failure. The twin gets no such prediction.

Needs root (a packet socket) besides the cluster; skips, saying why, only where that is absent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator

import kubernetes
import msgspec
import pytest
from chainflow import isolated_flow, pump
from collectorthread import Running
from dnschain import BAD_NAME, GOOD_NAME, RECORDS, app, collector, create, gateway, hold_gateway
from nodesources.dns import Dnsmasq
from oomchain import delete, pod_state, wait_until
from realcluster.node import RealCluster

from app.explain import explain
from app.stack import EmbeddedStack
from app.workers import ChildProcess
from collectors.dns import open_capture
from collectors.node import SourceUnavailable
from core.settings import Settings
from topology import insight_queries
from topology.graph import open_graph
from topology.predictions import list_predictions, match_story

pytestmark = [pytest.mark.xdist_group("real-cluster"), pytest.mark.timeout(600)]

log = logging.getLogger(__name__)
PATTERN = "dns-failure-crash"
OUTAGE = "dns-failure-service-outage"  # the same failure seen from the app's Service
APP_NS, TWIN_NS, GATEWAY_NS = "dnschain-lookup", "dnschain-resolved", "dnschain-gateway"
DEADLINE_S = 180.0


class Seen(msgspec.Struct, kw_only=True):
    pod: str  # the app's pod
    failures: set[str]  # ids of the DNS collector's dns-failure events about it
    caused: list[tuple[str, str]]  # CAUSED edges of the pattern's match (cause id, effect id)
    chain: list[str]  # the match's story, root cause first
    explained: list[str]  # the patterns of explain's hypotheses for the pod
    message: str  # the pattern's prediction message
    twin: list[str]  # predictions of the pattern in the twin's namespace
    effects: dict[str, str]  # event id -> its text, for the messages
    outage: str = ""  # the Service-side pattern's prediction message
    outage_effects: list[str] = []  # the texts of what its CAUSED edges from a DNS failure point to


@pytest.fixture(scope="module")
def dns(real_cluster: RealCluster) -> Iterator[Running]:
    try:
        open_capture("", [53]).close()
    except SourceUnavailable as e:
        pytest.skip(f"no packet socket here: {e}")
    running = Running(collector(real_cluster)).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def flow(embedded: EmbeddedStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """An isolated dataflow on the embedded stack: its stream, topics, tables and graph; one worker."""
    yield from isolated_flow(embedded, tmp_path_factory.mktemp("dns-chain"), "dns-chain")


async def _pump(dns: Running, flow: Settings, stop: asyncio.Event) -> int:
    """Publish the DNS collector's events about the test's namespaces into the dataflow as they come."""
    return await pump([dns.snapshot], flow, stop, name="dns-failure-chain", keep=lambda e: e.metadata.get("namespace") in (APP_NS, TWIN_NS))


async def _look(flow: Settings, dns: Running, pod: str) -> Seen | None:
    """What the graph holds of the pattern's match on the app's pod; None until it is there."""
    failures = {e.id for e in dns.snapshot() if e.metadata.get("intent") == "dns-failure"
                and e.metadata.get("namespace") == APP_NS and e.metadata.get("name") == pod}
    graph = open_graph(flow.graph)
    try:
        every = await list_predictions(graph, limit=100_000)
        found = [p for p in every if p.pattern == PATTERN]
        mine = [p for p in found if p.namespace == APP_NS]
        if not mine or not failures:
            return None
        told = await match_story(graph, mine[0].match_id)
        edges = await graph.query(insight_queries.CAUSED_AMONG, ids=[e.id for e in told.evidence])
        caused = [(r["cause"], r["effect"]) for r in edges]
        if not any(c in failures for c, _ in caused):
            return None
        outages = [p for p in every if p.pattern == OUTAGE and p.namespace == APP_NS]
        if not outages:
            return None
        outage = await match_story(graph, outages[0].match_id)
        texts = {e.id: f"[{e.intent}] {e.text}" for e in outage.evidence}
        got = await explain(graph, kind="Pod", name=pod, namespace=APP_NS)
        return Seen(pod=pod, failures=failures, caused=caused, chain=told.chain, message=mine[0].message,
                    explained=[h.prediction.pattern for h in got.hypotheses],
                    twin=[p.message for p in every if p.pattern in (PATTERN, OUTAGE) and p.namespace == TWIN_NS],
                    effects={e.id: f"[{e.intent}] {e.text}" for e in told.evidence},
                    outage=outages[0].message,
                    outage_effects=[texts[e] for c, e in outage.caused if c in failures and e in texts])
    finally:
        await graph.close()


@pytest.fixture(scope="module")
async def seen(real_cluster: RealCluster, api: kubernetes.client.ApiClient, dns: Running, flow: Settings,
               tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Seen]:
    tmp = tmp_path_factory.mktemp("dns-chain-collector")
    collector_process = ChildProcess(flow, ["collect", "kubeapi", "--kubeconfig", str(real_cluster.kubeconfig)],
                                     name="collector", log_dir=tmp)
    stop = asyncio.Event()
    pump = asyncio.create_task(_pump(dns, flow, stop))
    server = gateway(real_cluster)
    try:
        await asyncio.to_thread(hold_gateway, api, GATEWAY_NS)  # the bridge's gateway exists from then on
        with Dnsmasq(address=server, port=53, records=RECORDS) as dnsmasq:
            await asyncio.to_thread(create, api, TWIN_NS, "resolved", app(GOOD_NAME, server), server)
            await asyncio.to_thread(create, api, APP_NS, "lookup", app(BAD_NAME, server), server)
            # the app serves while its dependency's name resolves; then the record is deleted
            await asyncio.to_thread(wait_until, api, APP_NS, ready=True, deadline=120)
            dnsmasq.remove_records()
            deadline = time.monotonic() + DEADLINE_S
            result = None
            while result is None and time.monotonic() < deadline:
                assert collector_process.alive(), collector_process.log_tail()
                assert not pump.done(), pump
                await asyncio.sleep(2)
                pod, _, restarts, _ = await asyncio.to_thread(pod_state, api, APP_NS)
                if pod and restarts >= 1:
                    result = await _look(flow, dns, pod)
            state = await asyncio.to_thread(pod_state, api, APP_NS), await asyncio.to_thread(pod_state, api, TWIN_NS)
        assert result is not None, f"no {PATTERN} match with a CAUSED edge from a DNS failure in {DEADLINE_S:.0f}s; " \
                                   f"pods {state}; DNS failures seen: " \
                                   f"{[e.metadata for e in dns.snapshot() if e.metadata.get('intent') == 'dns-failure']}"
        log.info("%s: %s; chain %s", PATTERN, result.message, " -> ".join(result.chain))
        yield result
    finally:
        stop.set()
        await asyncio.wait_for(pump, 30)
        collector_process.stop()
        for ns in (APP_NS, TWIN_NS, GATEWAY_NS):
            await asyncio.to_thread(delete, api, ns)


def test_the_graph_holds_a_caused_edge_from_the_dns_failure_to_the_apis_report_of_the_pod(seen: Seen) -> None:
    from_dns = [(c, e) for c, e in seen.caused if c in seen.failures]
    assert from_dns, seen.caused
    effects = [seen.effects[e] for _, e in from_dns]
    assert all(e not in seen.failures for _, e in from_dns)
    # the container's exit, its back-off, or (the pod was Ready) its readiness probe erroring as it went
    assert any(text.startswith(("[container-failure]", "[crash-loop]", "[probe-failure]"))
               and f"Pod {APP_NS}/{seen.pod}" in text
               for text in effects), effects


def test_the_services_endpoints_left_without_a_ready_address_are_an_effect_of_the_dns_failure(seen: Seen) -> None:
    # the Endpoints or the EndpointSlice of Service lookup, whichever the collector saw first
    assert any(f"Endpoints {APP_NS}/lookup" in text or f"EndpointSlice {APP_NS}/lookup-" in text
               for text in seen.outage_effects), seen.outage_effects
    assert f"Pod {seen.pod}'s DNS lookups of {BAD_NAME} failed" in seen.outage, seen.outage
    assert "its Service had no ready endpoint left" in seen.outage, seen.outage


def test_explain_of_the_pod_gives_the_pattern_and_its_story_starts_with_the_dns_failure(seen: Seen) -> None:
    assert PATTERN in seen.explained, seen.explained
    assert BAD_NAME in seen.chain[0] and "NXDOMAIN" in seen.chain[0] and seen.pod in seen.chain[0], seen.chain
    assert len(seen.chain) >= 2
    assert f"DNS lookups of {BAD_NAME} failed" in seen.message and seen.pod in seen.message, seen.message


def test_the_healthy_twin_gets_no_dns_failure_prediction(seen: Seen) -> None:
    assert seen.twin == []
