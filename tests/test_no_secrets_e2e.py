"""No secret value anywhere, on the real embedded stack: `tapio replay` -> JetStream -> worker -> graph.

A recording holds a Secret with data (and its last-applied-configuration annotation), a Deployment
and its Pod whose env values are credentials (API_TOKEN, DB_PASSWORD), the rotation of both, and a
Secret that cannot be used (dead-lettered). It is replayed with the `tapio replay` command into an
isolated dataflow (one worker with its bridge, debug logging); then every planted value, as text and
base64, is searched for in every node and relationship of the graph, every message of the EVENTS
stream, every dead letter and the worker's and the replay's logs: none is there. The rotations are
still seen: both change events are in the graph, naming the keys that changed.
"""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import msgspec
import pytest

from app.demo import wait_for_events
from app.jetstream import DEADLETTER_CODEC, RAW_CODEC, connect, ensure_streams, events_in
from app.stack import EmbeddedStack, free_port
from app.workers import ChildProcess, start_worker, with_worker_port
from collectors.replay import read_recording
from core.events import RawEvent, content_id
from core.kube.redact import LAST_APPLIED
from core.settings import Settings, isolated
from topology import queries
from topology.graph import open_graph

NS = "vault-e2e"
PASSWORD, ROTATED_PASSWORD = "Pl4in-DB-pa55word-k2q", "R0tated-DB-pa55word-x7v"
TOKEN, ROTATED_TOKEN = "tok-Pl4in-9f8e7d6c5b4a", "tok-R0tated-1a2b3c4d5e"
DB_USER, STRAY = "dbuser-Q8z-unique", "stray-S3cret-in-unusable"
PLANTED = [PASSWORD, ROTATED_PASSWORD, TOKEN, ROTATED_TOKEN, DB_USER, STRAY]


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def forms() -> list[str]:
    return [form for value in PLANTED for form in (value, b64(value))]


def secret(password: str, *, rv: str, at: str) -> dict:
    applied = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": NS},
               "data": {"password": b64(password), "user": b64(DB_USER)}}
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": "db", "namespace": NS, "uid": "sec-db", "resourceVersion": rv,
                         "creationTimestamp": "2026-11-20T09:00:00Z",
                         "managedFields": [{"manager": "kubectl", "operation": "Update", "time": at}],
                         "annotations": {LAST_APPLIED: json.dumps(applied)}},
            "data": {"password": b64(password), "user": b64(DB_USER)}}


def pod_spec(token: str, password: str) -> dict:
    return {"containers": [{"name": "api", "image": "api:1.0", "env": [
        {"name": "API_TOKEN", "value": token}, {"name": "DB_PASSWORD", "value": password},
        {"name": "LOG_LEVEL", "value": "info"},
        {"name": "DB_USER", "valueFrom": {"secretKeyRef": {"name": "db", "key": "user"}}}]}]}


def deployment(token: str, password: str, *, rv: str, at: str) -> dict:
    template = {"metadata": {"labels": {"app": "api"}}, "spec": pod_spec(token, password)}
    applied = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api", "namespace": NS},
               "spec": {"selector": {"matchLabels": {"app": "api"}}, "template": template}}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "api", "namespace": NS, "uid": "dep-api", "resourceVersion": rv,
                         "generation": int(rv), "creationTimestamp": "2026-11-20T09:00:00Z",
                         "managedFields": [{"manager": "kubectl", "operation": "Update", "time": at}],
                         "annotations": {LAST_APPLIED: json.dumps(applied)}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "api"}}, "template": template},
            "status": {"replicas": 1, "readyReplicas": 1}}


def pod() -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "api-7d4b-x1", "namespace": NS, "uid": "pod-api-1", "resourceVersion": "5",
                         "labels": {"app": "api"}, "creationTimestamp": "2026-11-20T09:00:05Z"},
            "spec": {"nodeName": "node-a", **pod_spec(TOKEN, PASSWORD)},
            "status": {"phase": "Running", "startTime": "2026-11-20T09:00:06Z"}}


def write_recording(folder: Path) -> Path:
    """A watch stream (`kubectl get -w -o json --output-watch-events`), one event per line."""
    lines = [
        {"type": "ADDED", "object": secret(PASSWORD, rv="1", at="2026-11-20T09:00:00Z")},
        {"type": "ADDED", "object": deployment(TOKEN, PASSWORD, rv="1", at="2026-11-20T09:00:00Z")},
        {"type": "ADDED", "object": pod()},
        {"type": "MODIFIED", "object": secret(ROTATED_PASSWORD, rv="2", at="2026-11-20T09:10:00Z")},
        {"type": "MODIFIED", "object": deployment(ROTATED_TOKEN, ROTATED_PASSWORD, rv="2",
                                                  at="2026-11-20T09:10:30Z")},
        # no name: unusable, so dead-lettered with a fragment of the object
        {"type": "ADDED", "object": {"apiVersion": "v1", "kind": "Secret",
                                     "metadata": {"namespace": NS, "uid": "sec-stray"},
                                     "data": {"key": b64(STRAY)}, "stringData": {"plain": STRAY}}},
    ]
    path = folder / "vault-watch.json"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return path


@pytest.fixture(scope="module")
def flow(embedded: EmbeddedStack, tmp_path_factory: pytest.TempPathFactory) -> dict:
    settings = isolated(with_worker_port(embedded.settings(), free_port(),
                                         data_dir=str(tmp_path_factory.mktemp("vworker"))), "no-secrets")
    settings = msgspec.structs.replace(settings, worker=msgspec.structs.replace(settings.worker, log_level="debug"))
    logs = tmp_path_factory.mktemp("vworker-log")
    proc = start_worker(settings, log_dir=logs)
    yield {"settings": settings, "logs": logs, "proc": proc}
    proc.stop()


async def graph_dump(settings: Settings) -> list[dict]:
    graph = open_graph(settings.graph)
    try:
        nodes = await graph.query(queries.Query("dump_nodes", "MATCH (n) RETURN labels(n) AS labels, "
                                                              "properties(n) AS props"))
        edges = await graph.query(queries.Query("dump_edges", "MATCH ()-[r]->() RETURN type(r) AS type, "
                                                              "properties(r) AS props"))
        return nodes + edges
    finally:
        await graph.close()


async def stream_contents(settings: Settings) -> tuple[list[RawEvent], list[bytes], list]:
    """Every message of the EVENTS stream (decoded and raw) and every dead letter."""
    nc = await connect(settings.nats, name="no-secrets-reader")
    try:
        js = nc.jetstream()
        await ensure_streams(js, settings.nats)
        events, raw, letters = [], [], []
        for stream, into in ((settings.nats.stream, events), (settings.nats.deadletter_stream, letters)):
            info = await js.stream_info(stream)
            for seq in range(info.state.first_seq, info.state.last_seq + 1):
                msg = await js.get_msg(stream, seq)
                raw.append(msg.data + json.dumps(msg.headers or {}).encode())
                if into is events:  # one event or a batch of them
                    events.extend(RAW_CODEC.decode(part) for part in events_in(msg.data))
                else:
                    letters.append(DEADLETTER_CODEC.decode(msg.data))
        return events, raw, letters
    finally:
        await nc.drain()


def leaks(text: str, where: str) -> list[str]:
    return [f"{where}: {value!r}" for value in forms() if value in text]


async def test_no_planted_secret_value_anywhere(flow: dict, tmp_path: Path) -> None:
    settings, proc = flow["settings"], flow["proc"]
    recording = write_recording(tmp_path)
    expected = [e for e in read_recording(recording) if isinstance(e, RawEvent)]
    assert len(expected) == 5
    replay = ChildProcess(settings, ["replay", str(recording)], name="replay", log_dir=flow["logs"])
    code = await asyncio.to_thread(replay.proc.wait, 120)
    assert code == 0, replay.log_tail()  # one part of the file could not be read, the rest went through
    changes = [content_id("change", "dep-api", "2"), content_id("change", "sec-db", "2")]
    ids = [e.id for e in expected] + changes
    found = await wait_for_events(settings, ids, timeout=120, alive=proc.alive)
    assert found == len(ids), proc.log_tail()

    # the rotations are seen: the change events name what changed, and quote no value
    graph = await graph_dump(settings)
    messages = {row["props"].get("id"): row["props"].get("message") for row in graph if "Event" in row.get("labels", [])}
    assert messages[changes[0]] == (f"Deployment {NS}/api: container[api].env.API_TOKEN modified, "
                                    "container[api].env.DB_PASSWORD modified")
    assert messages[changes[1]] == f"Secret {NS}/db: key password modified"

    events, raw, letters = await stream_contents(settings)
    assert {e.id for e in events} >= set(ids)
    stray = [d for d in letters if "sec-stray" in d.payload.decode(errors="replace")]
    assert len(stray) == 1 and "metadata.name" in stray[0].reason  # it is there, redacted

    found_leaks: list[str] = []
    for row in graph:
        found_leaks += leaks(json.dumps(row, default=str), f"graph {row.get('labels') or row.get('type')}")
    for event in events:
        found_leaks += leaks(event.data.decode(errors="replace") + json.dumps(event.metadata), f"stream {event.id}")
    for blob in raw:
        found_leaks += leaks(blob.decode(errors="replace"), "stream message bytes")
    for letter in letters:
        found_leaks += leaks(letter.payload.decode(errors="replace") + letter.reason + letter.where, "dead letter")
    # logs: what the worker (debug) and the replay command wrote while all of this went through
    for log in sorted(flow["logs"].glob("*.log")):
        found_leaks += leaks(log.read_text(errors="replace"), f"log {log.name}")
    assert found_leaks == []
    # the safe name stays readable, the references too
    deployment_event = next(e for e in events if e.id == expected[1].id)
    env = json.loads(deployment_event.data)["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "LOG_LEVEL", "value": "info"} in env
    assert {"name": "DB_USER", "valueFrom": {"secretKeyRef": {"name": "db", "key": "user"}}} in env
