"""End to end on the real embedded stack: file -> JetStream -> bridge -> Faust agents -> graph.

One worker (agents only) and one standalone bridge process run for the whole module, as a
deployment would run them; each test uses its own namespace, so tests do not see each other.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest
from scrape import Samples, get, scrape
from waiting import until

from app.demo import publish_recordings, wait_for_events
from app.jetstream import RAW_CODEC, EventPublisher, connect, ensure_streams, event_subject, read_deadletters
from app.stack import EmbeddedStack, free_port
from app.workers import ChildProcess, start_bridge, start_worker, with_worker_port
from collectors.replay import read_recording
from core.events import RawEvent, content_id
from core.settings import Settings
from topology import insight_queries, queries
from topology.graph import open_graph

# with pytest-xdist, every test of this module runs on one worker process: they share its module-scoped worker
pytestmark = pytest.mark.xdist_group("dataflow-flow")

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def flow_settings(embedded: EmbeddedStack, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = with_worker_port(embedded.settings(), free_port(),
                                data_dir=str(tmp_path_factory.mktemp("worker")))
    # a killed bridge's unacked fetch comes back after ack_wait: keep the test short; the bridge serves
    # /healthz and /metrics (test_the_worker_metrics_count_what_it_wrote_and_its_lag reads them)
    # match.early_firing on (the default; said here, as test_a_new_incident_is_predicted_before_... needs it)
    return msgspec.structs.replace(settings, nats=msgspec.structs.replace(settings.nats, bridge_ack_wait_s=4.0,
                                                                          bridge_web_port=free_port()),
                                   match=msgspec.structs.replace(settings.match, early_firing=True))


@pytest.fixture(scope="module")
def worker(flow_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> ChildProcess:
    proc = start_worker(flow_settings, with_bridge=False, log_dir=tmp_path_factory.mktemp("worker-log"))
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def bridge_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bridge-log")


@pytest.fixture(scope="module")
def bridge(flow_settings: Settings, worker: ChildProcess, bridge_logs: Path) -> dict[str, ChildProcess]:
    holder = {"proc": start_bridge(flow_settings, log_dir=bridge_logs)}
    yield holder
    holder["proc"].stop()


async def graph_rows(settings: Settings, q: queries.Query, **params: object) -> list[dict]:
    graph = open_graph(settings.graph)
    try:
        return await graph.query(q, **params)
    finally:
        await graph.close()


def k8s_event(i: int, *, namespace: str, pod: str, uid: str, reason: str = "BackOff", node: str = "node-a") -> dict:
    when = (T0 + timedelta(seconds=i)).isoformat().replace("+00:00", "Z")
    return {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": f"{pod}.{i:06d}", "namespace": namespace, "uid": f"ev-{namespace}-{i}"},
        "involvedObject": {"kind": "Pod", "name": pod, "namespace": namespace, "uid": uid},
        "reason": reason, "message": f"Back-off restarting failed container in pod {pod}",
        "type": "Warning", "count": 1, "source": {"component": "kubelet", "host": node},
        "firstTimestamp": when, "lastTimestamp": when,
    }


def pod(name: str, uid: str, *, namespace: str, node: str, cm: str) -> dict:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "uid": uid, "labels": {"app": "web"},
                     "creationTimestamp": "2026-11-20T09:00:00Z",
                     "ownerReferences": [{"kind": "ReplicaSet", "name": "web-5d4f", "uid": "rs-1",
                                          "controller": True}]},
        "spec": {"nodeName": node, "volumes": [{"name": "cfg", "configMap": {"name": cm}}]},
        "status": {"phase": "Running", "containerStatuses": [
            {"name": "web", "restartCount": 3,
             "state": {"waiting": {"reason": "CrashLoopBackOff"}},
             "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                                          "finishedAt": "2026-11-20T10:00:30Z"}}}]},
    }


async def test_replayed_files_become_exact_graph(bridge, flow_settings: Settings, tmp_path: Path) -> None:
    ns = "flow-exact"
    events_file = tmp_path / "events.json"
    events_file.write_text(json.dumps({"apiVersion": "v1", "kind": "EventList", "items": [
        k8s_event(i, namespace=ns, pod=f"web-{i % 2}", uid=f"uid-web-{i % 2}") for i in range(6)]}))
    pods_file = tmp_path / "pods.json"
    pods_file.write_text(json.dumps({"apiVersion": "v1", "kind": "PodList", "items": [
        pod("web-0", "uid-web-0", namespace=ns, node="node-a", cm="web-config"),
        pod("web-1", "uid-web-1", namespace=ns, node="node-b", cm="web-config")]}))

    expected = [e for p in (events_file, pods_file) for e in read_recording(p)]
    assert all(isinstance(e, RawEvent) for e in expected) and len(expected) == 8

    summary = await publish_recordings(flow_settings, [events_file, pods_file])
    assert summary.events == 8 and summary.errors == []
    found = await wait_for_events(flow_settings, summary.event_ids, timeout=90)
    assert found == 8, bridge["proc"].log_tail()

    ids = sorted(e.id for e in expected)
    rows = await graph_rows(flow_settings, queries.EVENT_IDS_IN_NAMESPACE, namespace=ns)
    assert [r["id"] for r in rows] == ids
    affected = await graph_rows(flow_settings, queries.ALL_AFFECTED)
    pairs = {(r["event"], r["uid"]) for r in affected if r["event"] in set(ids)}
    event_pod = {e.id: ("uid-web-0" if b"web-0" in e.data else "uid-web-1") for e in expected}
    assert pairs == {(eid, uid) for eid, uid in event_pod.items()}
    pods = {r["name"]: r for r in await graph_rows(flow_settings, queries.NAMESPACE_SUMMARY, namespace=ns)}
    assert set(pods) == {"web-0", "web-1"}
    assert pods["web-0"]["events"] == 4 and pods["web-1"]["events"] == 4
    assert pods["web-0"]["warnings"] == 4  # 3 BackOff Warnings + the CrashLoopBackOff snapshot
    props = (await graph_rows(flow_settings, queries.resource("Pod"), namespace=ns, name="web-1"))[0]["props"]
    assert props["node"] == "node-b" and "app=web" in props["labels"] and props["owner_kind"] == "ReplicaSet"

    # the same files again: JetStream's duplicate window drops them, the graph is unchanged
    again = await publish_recordings(flow_settings, [events_file, pods_file])
    assert again.duplicates == 8
    rows = await graph_rows(flow_settings, queries.EVENT_IDS_IN_NAMESPACE, namespace=ns)
    assert [r["id"] for r in rows] == ids


async def test_the_worker_metrics_count_what_it_wrote_and_its_lag(bridge, flow_settings: Settings) -> None:
    """GET /metrics of the worker after the replay above: every stage of the chain counted the same events
    (the graph's own count is compared in tests/app/test_api.py, on a graph of its own), each write's delay
    was observed, and the consumer lag is there per partition of each topic it reads (once it committed)."""
    def through(got: Samples) -> dict[str, float]:
        return {k[1][0][1]: v for k, v in got.items() if k[0] == "tapio_stage_events_total"}

    def lagged(got: Samples) -> set[tuple[str, str]]:
        return {(dict(labels)["topic"].rsplit(".", 1)[-1], dict(labels)["partition"]) for name, labels in got
                if name == "tapio_consumer_lag_records"}

    def settled() -> Samples | None:
        got = scrape(flow_settings.worker.web_port)
        counts = through(got)
        agree = len({counts.get(s) for s in ("enrich", "normalize", "sink")}) == 1 and counts.get("sink", 0) >= 8
        return got if agree and {"raw", "insights"} <= {topic for topic, _ in lagged(got)} else None
    got = await until(settled, timeout=60, what="the chain's counts to agree and its lag to be reported")
    assert {p for _, p in lagged(got)} == {str(p) for p in range(flow_settings.kafka.partitions)}
    assert got[("tapio_stage_batch_size_count", (("stage", "sink"),))] == got[
        ("tapio_stage_batches_total", (("stage", "sink"),))]
    assert got[("tapio_graph_event_delay_seconds_count", ())] == through(got)["sink"]
    # the bridge on its own (`tapio bridge`) serves its pages too: what it bridged, no dead letter yet
    bridged = await asyncio.to_thread(scrape, flow_settings.nats.bridge_web_port)
    assert bridged[("tapio_stage_events_total", (("stage", "bridge"),))] >= 8
    assert bridged[("tapio_stage_dead_letters_total", (("stage", "bridge"),))] == 0
    assert bridged[("process_resident_memory_bytes", ())] > 0
    for page in ("/healthz", "/readyz"):
        status, _, body = await asyncio.to_thread(get, flow_settings.nats.bridge_web_port, page, timeout=10)
        health = json.loads(body)
        assert status == 200 and health["status"] == "ok" and health["problems"] == [] and health["bridged"] >= 8, page


def synthetic(i: int, namespace: str) -> RawEvent:
    data = json.dumps(k8s_event(i, namespace=namespace, pod=f"p-{i % 50}", uid=f"{namespace}-p-{i % 50}")).encode()
    return RawEvent(id=content_id("kill-test", namespace, str(i)), timestamp=T0 + timedelta(milliseconds=i),
                    type="kubeapi", data=data,
                    metadata={"namespace": namespace, "kind": "Event", "action": "EVENT"})


async def test_bridge_killed_mid_stream_loses_and_duplicates_nothing(bridge, flow_settings: Settings,
                                                                      bridge_logs: Path) -> None:
    ns = "flow-kill"
    events = [synthetic(i, ns) for i in range(30_000)]
    nc = await connect(flow_settings.nats, name="test-kill")
    js = nc.jetstream()
    await ensure_streams(js, flow_settings.nats)
    publishing = asyncio.ensure_future(EventPublisher(js, flow_settings.nats).publish_many(events))
    ids = [e.id for e in events]
    # kill the bridge once events are flowing into the graph
    async def flowing() -> int:
        rows = await graph_rows(flow_settings, queries.COUNT_EVENTS, ids=ids[:5000])  # [] until the graph exists
        found = rows[0]["n"] if rows else 0
        return found if found > 500 else 0
    await until(flowing, timeout=60, what="more than 500 events in the graph", procs=[bridge["proc"]])
    bridge["proc"].kill()
    assert not bridge["proc"].alive()
    await publishing
    await nc.drain()
    before_restart = (await graph_rows(flow_settings, queries.COUNT_EVENTS, ids=ids))[0]["n"]
    assert before_restart < len(ids), "the bridge was killed after the stream ended: the test proves nothing"

    bridge["proc"] = start_bridge(flow_settings, name="bridge-restarted", log_dir=bridge_logs)
    found = await wait_for_events(flow_settings, ids, timeout=180)
    assert found == len(ids), bridge["proc"].log_tail()
    edges = (await graph_rows(flow_settings, queries.COUNT_AFFECTED, ids=ids))[0]["n"]
    assert edges == len(ids)
    rows = await graph_rows(flow_settings, queries.EVENT_IDS_IN_NAMESPACE, namespace=ns)
    assert len(rows) == len(ids)


async def test_malformed_input_is_dead_lettered_and_good_events_arrive(bridge, flow_settings: Settings,
                                                                        tmp_path: Path) -> None:
    ns = "flow-bad"
    good = [k8s_event(i, namespace=ns, pod="ok", uid="uid-ok") for i in range(3)]
    bad_type = k8s_event(9, namespace=ns, pod="ok", uid="uid-ok")
    bad_type["lastTimestamp"] = 42
    bad_type["firstTimestamp"] = 42
    text = json.dumps({"kind": "EventList", "items": [good[0], bad_type, good[1], good[2]]}, indent=1)
    mixed = tmp_path / "mixed.json"
    mixed.write_text(text)
    truncated = tmp_path / "truncated.json"
    truncated.write_text(text[: text.rindex('"reason"')])  # cut inside the last item
    garbage = tmp_path / "garbage.json"
    garbage.write_bytes(b"\x00\xff not json at all {{{")

    summary = await publish_recordings(flow_settings, [mixed, truncated, garbage])
    # mixed: 3 good; truncated: the 2 complete good items before the cut (the same ids again). They go
    # in another batch than the first time, which JetStream's duplicate window does not drop: the graph
    # holds each event once all the same (below: as many as there are distinct ids)
    assert summary.events == 3 + 2 and len(set(summary.event_ids)) == 3
    assert len(summary.errors) == 4, summary.errors
    assert any("mixed.json: items[1]" in e and "lastTimestamp" in e for e in summary.errors)
    assert any("truncated.json: items[1]" in e and "lastTimestamp" in e for e in summary.errors)
    assert any("truncated.json: line" in e and "truncated JSON" in e for e in summary.errors)
    assert any("garbage.json" in e for e in summary.errors)

    # on the subject: bytes that are not a RawEvent, and a RawEvent whose payload is not an object
    nc = await connect(flow_settings.nats, name="test-bad")
    js = nc.jetstream()
    await js.publish(f"{flow_settings.nats.subject_prefix}.kubeapi.{ns}", b'{"id": 5, "oops": true}')
    not_k8s = RawEvent(id="not-k8s-1", timestamp=T0, type="kubeapi", data=b"[1, 2",
                       metadata={"namespace": ns, "kind": "Event", "action": "EVENT"})
    await js.publish(event_subject(flow_settings.nats, not_k8s), RAW_CODEC.encode(not_k8s))
    after_bad = synthetic(1, ns)
    await EventPublisher(js, flow_settings.nats).publish_many([after_bad])

    good_ids = summary.event_ids + [after_bad.id]
    assert await wait_for_events(flow_settings, good_ids, timeout=90) == len(set(good_ids))
    rows = await graph_rows(flow_settings, queries.COUNT_EVENTS, ids=["not-k8s-1"])
    assert rows[0]["n"] == 0

    async def with_enrich_letter() -> list:
        letters = await read_deadletters(js, flow_settings.nats, limit=1000)
        return letters if any(x.stage == "enrich" and x.event_id == "not-k8s-1" for x in letters) else []
    letters = await until(with_enrich_letter, timeout=10, what="the enrich stage's dead letter for not-k8s-1")
    await nc.drain()
    by_stage = {(letter.stage, letter.where.split(":")[0]) for letter in letters}
    assert ("replay", str(mixed)) in by_stage and ("replay", str(garbage)) in by_stage
    bridge_letters = [letter for letter in letters if letter.stage == "bridge" and f".{ns} " in letter.where]
    assert bridge_letters and "not a RawEvent" in bridge_letters[0].reason
    assert bridge_letters[0].payload == b'{"id": 5, "oops": true}'
    enrich_letters = [letter for letter in letters if letter.stage == "enrich" and letter.event_id == "not-k8s-1"]
    assert enrich_letters and "not a Kubernetes object" in enrich_letters[0].reason


async def test_explain_names_the_configmap_edit_behind_the_crash_loop(bridge, flow_settings: Settings) -> None:
    from app.demo import DEFAULT_SCENARIO
    from app.explain import explain
    from topology.narrative import render_tree

    summary = await publish_recordings(flow_settings, [DEFAULT_SCENARIO])
    assert summary.errors == []
    assert await wait_for_events(flow_settings, summary.event_ids, timeout=90) == len(set(summary.event_ids))
    graph = open_graph(flow_settings.graph)
    try:
        async def changed() -> bool:  # the change event goes round the dataflow once more
            rows = await graph.query(queries.events_for_resource("ConfigMap"), namespace="shop", name="nginx-config")
            return any(r["intent"] == "config-change" and r["reason"] == "Changed" for r in rows)
        await until(changed, timeout=30, what="the ConfigMap's change event in the graph")
        items = json.loads((DEFAULT_SCENARIO / "objects.json").read_text())["items"]
        pods = {o["metadata"]["uid"] for o in items if o["kind"] == "Pod"}
        edges = await graph.query(queries.ALL_TOPOLOGY_EDGES)
        # 6 pods x (nginx-config, the projected kube-root-ca.crt)
        assert len([e for e in edges if e["type"] == "MOUNTS" and e["src"] in pods]) == 12
        found = await explain(graph, kind="Pod", name="nginx-7c9d8f6b5d-4xk2p", namespace="shop")
    finally:
        await graph.close()
    text = "\n".join(render_tree(found.context))
    assert "probable root cause:" in text and "ConfigMap shop/nginx-config: key nginx.conf modified" in text
    assert "6 pods on 3 nodes (node-a, node-b, node-c) share these dependencies; 6 of 6 restarted" in text
    for pod in ("nginx-7c9d8f6b5d-4xk2p", "nginx-7c9d8f6b5d-9qwzt", "nginx-7c9d8f6b5d-b7mfd",
                "nginx-7c9d8f6b5d-hx2lc", "nginx-7c9d8f6b5d-r5ntv", "nginx-7c9d8f6b5d-zk8sj"):
        assert pod in text
    assert "related Service: frontend" in text and "related Ingress: shop-ingress" in text
    assert "owned by ReplicaSet nginx-7c9d8f6b5d <- Deployment nginx" in text


def failed_scheduling(i: int, namespace: str, at: datetime) -> RawEvent:
    """The scheduler's i-th FailedScheduling for pod web-0 (one Event series, its count going up)."""
    stamp = lambda t: t.isoformat().replace("+00:00", "Z")  # noqa: E731
    data = {"apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "web-0.unschedulable", "namespace": namespace, "uid": f"ev-{namespace}-sched"},
            "involvedObject": {"kind": "Pod", "name": "web-0", "namespace": namespace, "uid": f"{namespace}-web-0"},
            "reason": "FailedScheduling", "message": "0/3 nodes are available: 3 Insufficient memory.",
            "type": "Warning", "count": i + 1, "source": {"component": "default-scheduler"},
            "firstTimestamp": stamp(at), "lastTimestamp": stamp(at + timedelta(seconds=i))}
    return RawEvent(id=content_id("early", namespace, str(i)), timestamp=at + timedelta(seconds=i), type="kubeapi",
                    data=json.dumps(data).encode(), metadata={"namespace": namespace, "kind": "Event", "action": "EVENT"})


async def test_a_new_incident_is_predicted_before_event_time_passes_it_then_confirmed(bridge,
                                                                                     flow_settings: Settings) -> None:
    """`match.early_firing` (on in this module's settings): the third scheduling failure makes unschedulable-pod hold,
    and its prediction is in the graph, provisional, while event time is still short of it by the
    allowed lateness (10 s); once the bridge's idle advance has moved event time past it, the final
    evaluation confirms it in place: the same prediction, no longer provisional. (Last in the module:
    its events are a day after the others', which later events of theirs would find late.)"""
    from topology.predictions import list_predictions

    ns = "flow-early"
    events = [failed_scheduling(i, ns, T0 + timedelta(days=1)) for i in range(3)]
    nc = await connect(flow_settings.nats, name="test-early")
    try:
        await EventPublisher(nc.jetstream(), flow_settings.nats).publish_many(events)
    finally:
        await nc.drain()
    graph = open_graph(flow_settings.graph)
    try:
        async def predicted() -> list:
            return await list_predictions(graph, namespace=ns)
        [first] = await until(predicted, timeout=60, what="a prediction for web-0", procs=[bridge["proc"]])
        assert first.pattern == "unschedulable-pod" and first.at == events[-1].timestamp
        assert first.provisional, "first seen final: it waited for event time to pass it"

        async def confirmed() -> list:
            return [p for p in await predicted() if not p.provisional]
        [final] = await until(confirmed, timeout=90, what="the prediction confirmed", procs=[bridge["proc"]])
        assert (final.id, final.match_id, final.at) == (first.id, first.match_id, first.at)
        edges = await graph.query(insight_queries.MATCH_EDGES, match_id=first.match_id)
        assert edges and not any(r["provisional"] for r in edges)
    finally:
        await graph.close()
