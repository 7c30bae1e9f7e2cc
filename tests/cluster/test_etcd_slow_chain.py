"""etcd slowness -> API latency, end to end on the real cluster; and the API server collector against the real API.

A steady write load on the real API (`etcdchain.Writes`: threads creating and patching ConfigMaps) runs first with
etcd at full speed, then with etcd starved (its writes to its data dir's block device throttled by a cgroup v1
blkio group; its CPU where there is no block device), then with etcd back to full speed (the group removed
whatever happens). The etcd collector (etcd's /metrics) and the API server collector (kube-apiserver's /metrics,
the admin's token), both in this process every 5 s with their default thresholds, publish into an isolated
dataflow on the embedded stack where one worker runs every stage. With etcd at full speed neither side reports
anything and the pattern `etcd-slow-api-latency` does not match; starved, it must match on the node, the graph
must hold a CAUSED edge from the etcd collector's slowness event to the API server collector's APIServerSlow,
and `explain` of the Node (both events are about it) must give the pattern, its story starting with etcd.

The API server collector alone: its check passes with the admin's token and fails, saying why, with the
kubelet's (system:node may not read /metrics); its samples name the verbs the load uses.

Needs root (cgroups) besides the cluster; skips, saying why, only where cgroup v1 throttling is absent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import kubernetes
import msgspec
import pytest
from chainflow import isolated_flow, pump
from collectorthread import Running
from etcdchain import (
    ETCD_SLOW,
    Writes,
    apiserver_collector,
    create_namespace,
    data_dir,
    etcd_collector,
    etcd_pid,
    how_to_starve,
    starved,
)
from oomchain import delete
from realcluster.node import RealCluster
from waiting import until

from app.explain import explain
from app.stack import EmbeddedStack
from collectors.apiserver import APIServerCollector
from collectors.node import SourceUnavailable
from core.settings import Settings
from topology import insight_queries
from topology.graph import open_graph
from topology.predictions import list_predictions, match_story

pytestmark = [pytest.mark.xdist_group("real-cluster"), pytest.mark.timeout(600)]

log = logging.getLogger(__name__)
PATTERN = "etcd-slow-api-latency"
NAMESPACE = "etcdchain-load"
CALM_S, STARVED_MAX_S, DEADLINE_S = 30.0, 60.0, 180.0


class Collectors(msgspec.Struct, kw_only=True):
    etcd: Running
    api: Running

    def events(self) -> list:
        return self.etcd.snapshot() + self.api.snapshot()


class Seen(msgspec.Struct, kw_only=True):
    node: str
    how: str  # disk or cpu
    starved_at: float  # when etcd was starved (epoch seconds)
    calm: list[str]  # reasons of the collectors' findings while etcd ran at full speed
    causes: set[str]  # ids of the etcd collector's slowness events
    effects: set[str]  # ids of the API server collector's APIServerSlow events
    caused: list[tuple[str, str]]  # CAUSED edges of the pattern's match (cause id, effect id)
    chain: list[str]  # the match's story, root cause first
    explained: list[str]  # the patterns of explain's hypotheses for the Node
    message: str
    scope: str
    predicted_at: list[float]  # every prediction of the pattern, event time (epoch seconds)
    texts: dict[str, str]


@pytest.fixture(scope="module")
def collectors(real_cluster: RealCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collectors]:
    if not how_to_starve(data_dir(real_cluster)):
        pytest.skip("starving etcd needs root and cgroup v1 blkio or cpu under /sys/fs/cgroup")
    tmp = tmp_path_factory.mktemp("etcd-chain-token")
    etcd = Running(etcd_collector(real_cluster)).start()
    try:
        api = Running(apiserver_collector(real_cluster, tmp)).start()
    except BaseException:
        etcd.stop()
        raise
    try:
        yield Collectors(etcd=etcd, api=api)
    finally:
        api.stop()
        etcd.stop()


@pytest.fixture(scope="module")
def flow(embedded: EmbeddedStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """An isolated dataflow on the embedded stack: its stream, topics, tables and graph; one worker."""
    yield from isolated_flow(embedded, tmp_path_factory.mktemp("etcd-chain"), "etcd-chain")


async def _pump(collectors: Collectors, flow: Settings, stop: asyncio.Event) -> int:
    """Publish the etcd and apiserver collectors' events into the dataflow as they come."""
    return await pump([collectors.etcd.snapshot, collectors.api.snapshot], flow, stop, name="etcd-chain")


def _findings(events: list, since: float = 0.0) -> list:
    return [e for e in events if e.metadata.get("severity") != "debug" and e.timestamp.timestamp() >= since]


def _linked(collectors: Collectors, since: float) -> bool:
    """An etcd slowness and an APIServerSlow after it, both since `since`."""
    found = _findings(collectors.events(), since)
    slow = [e.timestamp for e in found if e.metadata["reason"] in ETCD_SLOW]
    return bool(slow) and any(e.metadata["reason"] == "APIServerSlow" and e.timestamp >= min(slow) for e in found)


async def _look(flow: Settings, collectors: Collectors, node: str) -> Seen | None:
    """What the graph holds of the pattern's match on the node; None until it links etcd to the API's latency."""
    events = collectors.events()
    causes = {e.id for e in events if e.metadata.get("reason") in ETCD_SLOW}
    effects = {e.id for e in events if e.metadata.get("reason") == "APIServerSlow"}
    graph = open_graph(flow.graph)
    try:
        found = [p for p in await list_predictions(graph, limit=100_000) if p.pattern == PATTERN]
        if not found:
            return None
        told = await match_story(graph, found[0].match_id)
        edges = await graph.query(insight_queries.CAUSED_AMONG, ids=[e.id for e in told.evidence])
        caused = [(r["cause"], r["effect"]) for r in edges]
        if not any(c in causes and e in effects for c, e in caused):
            return None
        got = await explain(graph, kind="Node", name=node, namespace="")
        return Seen(node=node, how="", starved_at=0.0, calm=[], causes=causes, effects=effects, caused=caused,
                    chain=told.chain, explained=[h.prediction.pattern for h in got.hypotheses],
                    message=found[0].message, scope=found[0].scope,
                    predicted_at=[p.at.timestamp() for p in found],
                    texts={e.id: f"[{e.intent}] {e.text}" for e in told.evidence})
    finally:
        await graph.close()


@pytest.fixture(scope="module")
async def seen(real_cluster: RealCluster, api: kubernetes.client.ApiClient, collectors: Collectors,
               flow: Settings) -> AsyncIterator[Seen]:
    stop = asyncio.Event()
    pump = asyncio.create_task(_pump(collectors, flow, stop))
    await asyncio.to_thread(create_namespace, api, NAMESPACE)
    writes = Writes(api, NAMESPACE)
    try:
        with writes:
            began = time.time()
            await asyncio.sleep(CALM_S)
            calm = [e.metadata["reason"] for e in _findings(collectors.events(), began)]
            with starved(etcd_pid(real_cluster), data_dir(real_cluster)) as how:
                starved_at = time.time()
                with contextlib.suppress(AssertionError):  # said below, once etcd is back at full speed
                    await until(lambda: _linked(collectors, starved_at), timeout=STARVED_MAX_S,
                                what="an etcd slowness followed by APIServerSlow")
            log.info("etcd starved (%s) for %.0f s; writes answered %d, failed %d", how, time.time() - starved_at,
                     writes.done, writes.failed)
        assert _linked(collectors, starved_at), (
            f"no etcd slowness followed by APIServerSlow in {STARVED_MAX_S:.0f} s of starving etcd ({how}): "
            f"{[e.metadata['message'] for e in _findings(collectors.events(), starved_at)]}")
        deadline = time.monotonic() + DEADLINE_S
        result = None
        while result is None and time.monotonic() < deadline:
            assert not pump.done(), pump
            await asyncio.sleep(2)
            result = await _look(flow, collectors, real_cluster.node_name)
        assert result is not None, f"no {PATTERN} match with a CAUSED edge from etcd's slowness in {DEADLINE_S:.0f}s"
        result.how, result.starved_at, result.calm = how, starved_at, calm
        log.info("%s: %s; chain %s", PATTERN, result.message, " -> ".join(result.chain))
        yield result
    finally:
        stop.set()
        await asyncio.wait_for(pump, 30)
        await asyncio.to_thread(delete, api, NAMESPACE)


def test_the_graph_holds_a_caused_edge_from_etcds_slowness_to_the_api_servers_latency(seen: Seen) -> None:
    effects = [seen.texts[e] for c, e in seen.caused if c in seen.causes and e in seen.effects]
    assert effects and all("API server requests slow" in text for text in effects), effects
    causes = [seen.texts[c] for c, _ in seen.caused if c in seen.causes]
    assert causes and all(text.startswith(("[disk-latency]", "[slow-apply]")) for text in causes), causes


def test_explain_of_the_node_gives_the_pattern_and_its_story_starts_with_etcd(seen: Seen) -> None:
    assert PATTERN in seen.explained, seen.explained
    assert any(reason in seen.chain[0] for reason in ETCD_SLOW), seen.chain
    assert seen.scope == f"node:{seen.node}"
    assert seen.message.startswith(f"etcd on {seen.node} turned slow ") and "API" in seen.message, seen.message


def test_with_etcd_at_full_speed_neither_side_reported_anything_and_nothing_was_predicted(seen: Seen) -> None:
    assert seen.calm == [], seen.calm  # the same load: no slowness on either side
    assert min(seen.predicted_at) >= seen.starved_at - 1.0, (seen.predicted_at, seen.starved_at)


def test_the_api_server_collector_reads_the_real_api_servers_latency_per_verb(collectors: Collectors) -> None:
    samples = [e.metadata for e in collectors.api.snapshot() if e.metadata.get("reason") == "APIServerMetrics"]
    assert any("metric.apiserver.patch_p99_seconds" in m and "metric.apiserver.etcd_request_p99_seconds" in m
               for m in samples), samples[-1:]
    assert all("metric.apiserver.watch_p99_seconds" not in m for m in samples)  # WATCH: not a latency


def test_the_api_server_collector_says_why_when_its_token_may_not_read_the_metrics(real_cluster: RealCluster,
                                                                                  tmp_path: Path) -> None:
    assert real_cluster.pki is not None
    token = tmp_path / "kubelet-token"
    token.write_text(real_cluster.pki.kubelet.token)  # system:node:<name>: no get on /metrics
    collector = APIServerCollector(node=real_cluster.node_name, url=f"{real_cluster.server}/metrics",
                                   token_file=token, ca_file=real_cluster.pki.ca_crt)
    with pytest.raises(SourceUnavailable, match="HTTP 403"):
        collector.check()
    wrong_name = APIServerCollector(node=real_cluster.node_name, url=f"{real_cluster.server}/metrics",
                                    token_file=token, ca_file=real_cluster.pki.ca_crt, server_name="etcd.example")
    with pytest.raises(SourceUnavailable, match="certificate"):
        wrong_name.check()  # the serving certificate is checked against server_name


def test_the_starved_etcd_is_back_at_full_speed_and_its_group_removed(seen: Seen, real_cluster: RealCluster) -> None:
    pid = etcd_pid(real_cluster)
    groups = Path(f"/proc/{pid}/cgroup").read_text()
    assert "tapio-etcdchain" not in groups, groups
    assert not list(Path("/sys/fs/cgroup/blkio").glob("tapio-etcdchain-*"))
    assert not list(Path("/sys/fs/cgroup/cpu").glob("tapio-etcdchain-*"))
