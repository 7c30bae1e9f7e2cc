"""The kubeapi collector with the real `kubernetes` client against kmock's KubernetesEmulator.

kmock facts these tests rely on (kmock 0.8, checked in its source): the sync client sends
`watch=true`, which kmock matches; a list answers `resourceVersion: "..."`; every watch first
replays all current objects as ADDED, then streams what goes through the emulator's HTTP API
(POST / PATCH / DELETE); objects set through `emulator.objects` directly change state WITHOUT a
watch event, which is how these tests make "the gap" a 410 hides; resourceVersion and uid are
never stamped, so every object carries its own; resourceVersion / timeoutSeconds on a watch are
ignored. A 410 is injected as an ERROR event on the resource's bus (`emulator._buses`, private),
or as the HTTP status of a watch request through a one-shot reaction.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import http.server
import json
import logging
import ssl
import subprocess
import threading
import uuid
import warnings
from pathlib import Path

import kmock
import kmock._internal.parsing as kmock_parsing
import msgspec
import pytest
import urllib3.exceptions
import yaml
from kubernetes import client
from waiting import until

from agents.enrich import enrich_event
from agents.normalize import normalize_event
from app.collect import run_kubeapi_collector
from app.jetstream import RAW_CODEC, batch_id, connect, ensure_streams, events_in
from collectors.kubeapi import (
    KINDS,
    LAST_APPLIED,
    KubeConfigError,
    UnknownKindError,
    choose_versions,
    load_api_client,
    resolve_kinds,
    watch_cluster,
    with_stand_ins,
)
from collectors.resume import ResumeFile, ResumePoint, stub
from collectors.unusable import UnusableInput
from collectors.watching import WatchOptions, same_history
from core.events import RawEvent
from core.kube.objects import raw_event_from_object
from core.settings import Settings
from topology.index import ObjectIndex

T0 = "2026-11-20T10:00:00Z"
FAST = WatchOptions(backoff_initial_s=0.05, backoff_max_s=0.2)
PODS, NODES = kmock.resource("", "v1", "pods"), kmock.resource("", "v1", "nodes")
CMS, SECRETS = kmock.resource("", "v1", "configmaps"), kmock.resource("", "v1", "secrets")
_kmock_parse_path = kmock_parsing.parse_path
ParsedPath = kmock_parsing.ParsedPath
RBAC = Path(__file__).resolve().parents[2] / "docker" / "rbac.yaml"


def obj(kind: str, name: str, *, ns: str = "", rv: str = "1", api_version: str = "v1", **fields: object) -> dict:
    meta = {"name": name, "uid": f"uid-{name}", "resourceVersion": rv, "creationTimestamp": T0}
    if ns:
        meta["namespace"] = ns
    return {"apiVersion": api_version, "kind": kind, "metadata": meta, **fields}


def with_rv(o: dict, rv: str, **fields: object) -> dict:
    new = copy.deepcopy(o)
    new["metadata"]["resourceVersion"] = rv
    new.update(fields)
    return new


def seen(events: list[RawEvent]) -> list[tuple[str, str, str]]:
    return [(e.metadata["action"], e.metadata["name"], e.metadata["resource_version"]) for e in events]


def watches(emu: kmock.KubernetesEmulator, resource: kmock.resource, *, action=kmock.action.WATCH) -> list:
    return [r for r in emu if r.action == action and r.resource == resource]


def lists(emu: kmock.KubernetesEmulator, resource: kmock.resource) -> list:
    return watches(emu, resource, action=kmock.action.LIST)


async def watch_live(emu: kmock.KubernetesEmulator, resource: kmock.resource) -> None:
    """Until a watch on `resource` listens to the emulator's bus (its replay of current objects is sent)."""
    await until(lambda: emu._buses[resource].consumer_count >= 1, timeout=10, every=0.01,
                what=f"a watch on {resource}")


def _parse_path_listing_namespaces(path: str) -> ParsedPath:
    """kmock 0.8 fails (ValueError, HTTP 500) on `/api/v1/namespaces`: it reads "namespaces" as the
    start of `/namespaces/<ns>/...` and finds no namespace. The list of Namespaces is a plural."""
    if path.strip("/").split("/") == ["api", "v1", "namespaces"]:
        return ParsedPath(group="", version="v1", plural="namespaces")
    return _kmock_parse_path(path)


@pytest.fixture
async def emulator(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(kmock_parsing, "parse_path", _parse_path_listing_namespaces)
    async with kmock.KubernetesEmulator() as emu, kmock.Server(emu):
        for spec in KINDS:
            emu.resources[f"{spec.api_version}/{spec.plural}"] = kmock.ResourceInfo(kind=spec.kind,
                                                                                   namespaced=spec.namespaced)
        yield emu


def api_for(emu: kmock.KubernetesEmulator) -> client.ApiClient:
    configuration = client.Configuration(host=str(emu.url).rstrip("/"))
    configuration.connection_pool_maxsize = len(KINDS) + 4  # as load_api_client sizes it: one per watch
    return client.ApiClient(configuration)


MARK = "zz-mark-"  # the name prefix of the marker objects `Collector.wait` creates


def is_mark(item: object) -> bool:
    """A marker's event, or the error the collector reports for a marker it could not use."""
    if isinstance(item, RawEvent):
        return item.metadata.get("name", "").startswith(MARK)
    return MARK in getattr(item, "position", "")


def create_path(spec, ns: str) -> str:
    """Where a client POSTs a new object of the kind `spec` (in namespace `ns` when namespaced)."""
    base = f"/apis/{spec.group}/{spec.version}" if spec.group else f"/api/{spec.version}"
    return f"{base}/namespaces/{ns}/{spec.plural}" if spec.namespaced else f"{base}/{spec.plural}"


class Collector:
    """watch_cluster drained in the background into `.events`, stopped through its `stop` event."""

    def __init__(self, emulator: kmock.KubernetesEmulator, api: client.ApiClient, kinds: list[str] | None, *,
                 options: WatchOptions = FAST, resume: ResumeFile | None = None) -> None:
        self.stop = asyncio.Event()
        self.watch = watch_cluster(api, kinds=kinds, stop=self.stop, options=options, resume=resume)
        self.emulator = emulator
        self.all_items: list = []

    @property
    def items(self) -> list:
        """What the collector emitted, without the markers."""
        return [i for i in self.all_items if not is_mark(i)]

    @property
    def events(self) -> list[RawEvent]:
        return [i for i in self.items if isinstance(i, RawEvent)]

    async def __aenter__(self) -> Collector:
        await self.watch.__aenter__()
        self.task = asyncio.create_task(self._drain())
        return self

    async def _drain(self) -> None:
        async for item in self.watch:
            self.all_items.append(item)

    async def wait(self, n: int) -> list[RawEvent]:
        """The events once there are `n`, and once anything the API server sent before them has
        come out too: a marker object is created through the API for every watched kind after
        the n-th event, and the wait ends when the collector has emitted every marker. A late
        event (a duplicate, a relist that re-emits what was seen) comes before its kind's marker."""
        await until(lambda: len(self.events) >= n, timeout=10, every=0.01,
                    what=lambda: f"{n} events, have {seen(self.events)}")
        await self.mark()
        return self.events

    async def mark(self) -> None:
        marks = set()
        await asyncio.wait_for(self.watch.discovered.wait(), timeout=10)
        for spec in self.watch.served:  # the kinds watched, at the version the server serves
            name = f"{MARK}{spec.plural}-{uuid.uuid4().hex[:8]}"
            marker = obj(spec.kind, name, ns="mark" if spec.namespaced else "", api_version=spec.api_version)
            response = await self.emulator.post(create_path(spec, "mark"), json=marker)
            assert response.status == 200, (spec.name, response.status)
            marks.add(name)

        def marked() -> bool:
            out = {i.metadata["name"] for i in self.all_items if isinstance(i, RawEvent) and is_mark(i)}
            out |= {m for m in marks for i in self.all_items if m in getattr(i, "position", "")}
            return out >= marks
        await until(marked, timeout=10, every=0.01, what=lambda: f"the collector to emit the markers {sorted(marks)}")

    async def __aexit__(self, *exc: object) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, timeout=5)  # stop ends the iteration, watches still open
        await self.watch.aclose()


async def test_list_then_watch_emits_snapshots_then_changes(emulator: kmock.KubernetesEmulator) -> None:
    web1 = obj("Pod", "web-1", ns="shop", spec={"nodeName": "n1", "containers": [{"name": "c", "image": "nginx"}]},
               status={"containerStatuses": [{"name": "c", "restartCount": 2}]})
    node = obj("Node", "n1")
    emulator.objects[PODS, "shop", "web-1"] = web1
    emulator.objects[NODES, None, "n1"] = node
    web2 = obj("Pod", "web-2", ns="shop", rv="5")
    async with Collector(emulator, api_for(emulator), ["pods", "nodes"]) as run:
        await run.wait(2)
        await watch_live(emulator, PODS)
        assert (await emulator.post("/api/v1/namespaces/shop/pods", json=web2)).status == 200
        await until(lambda: len(run.events) >= 3, timeout=10, every=0.01,
                    what=lambda: f"web-2 ADDED, have {seen(run.events)}")
        patch = {"metadata": {"resourceVersion": "6"}, "status": {"phase": "Running"}}
        assert (await emulator.patch("/api/v1/namespaces/shop/pods/web-1", json=patch)).status == 200
        await until(lambda: len(run.events) >= 4, timeout=10, every=0.01,
                    what=lambda: f"web-1 MODIFIED, have {seen(run.events)}")
        assert (await emulator.delete("/api/v1/namespaces/shop/pods/web-2")).status == 200
        events = await run.wait(5)

    web1_v6 = with_rv(web1, "6", status={**web1["status"], "phase": "Running"})
    expected_pods = [("SNAPSHOT", web1), ("ADDED", web2), ("MODIFIED", web1_v6), ("DELETED", web2)]
    pods = [e for e in events if e.metadata["kind"] == "Pod"]
    assert seen(pods) == [("SNAPSHOT", "web-1", "1"), ("ADDED", "web-2", "5"), ("MODIFIED", "web-1", "6"),
                          ("DELETED", "web-2", "5")]
    for event, (action, o) in zip(pods, expected_pods, strict=True):
        assert event.id == raw_event_from_object(o, action=action, source="x").id
        assert {k: event.metadata[k] for k in ("kind", "name", "namespace", "uid", "action", "api_version")} == {
            "kind": "Pod", "name": o["metadata"]["name"], "namespace": "shop", "uid": o["metadata"]["uid"],
            "action": action, "api_version": "v1"}
        assert event.type == "kubeapi" and event.metadata["source"].endswith("/pods")
    assert pods[0].metadata["node"] == "n1" and b'"nodeName":"n1"' in pods[0].data  # camelCase, as sent
    assert b'"restartCount":2' in pods[0].data
    [node_event] = [e for e in events if e.metadata["kind"] == "Node"]
    assert (node_event.metadata["action"], node_event.namespace) == ("SNAPSHOT", "_cluster")
    assert node_event.id == raw_event_from_object(node, action="SNAPSHOT", source="x").id
    [watch] = watches(emulator, PODS)
    assert watch.params["allowWatchBookmarks"] == "true" and watch.params["resourceVersion"] == "..."
    assert int(watch.params["timeoutSeconds"]) >= FAST.timeout_seconds and len(lists(emulator, PODS)) == 1


async def test_normal_end_resumes_from_the_last_bookmark_without_relisting(
        emulator: kmock.KubernetesEmulator) -> None:
    a, b = obj("ConfigMap", "a", ns="app"), obj("ConfigMap", "b", ns="app", rv="5")
    emulator.objects[CMS, "app", "a"] = a
    bookmark = {"type": "BOOKMARK", "object": {"kind": "ConfigMap", "apiVersion": "v1",
                                               "metadata": {"resourceVersion": "9"}}}
    # the first watch request gets a finite stream: one change, a bookmark, then the server ends it
    emulator[kmock.action.WATCH, CMS][:1] << ({"type": "ADDED", "object": b}, bookmark)
    async with Collector(emulator, api_for(emulator), ["configmaps"]) as run:
        events = await run.wait(2)
        await until(lambda: len(watches(emulator, CMS)) >= 2, timeout=10, every=0.01, what="the watch resumed")
    assert seen(events) == [("SNAPSHOT", "a", "1"), ("ADDED", "b", "5")]
    first, second = watches(emulator, CMS)[:2]
    assert first.params["resourceVersion"] == "..." and second.params["resourceVersion"] == "9"
    assert len(lists(emulator, CMS)) == 1


async def test_410_error_event_relists_and_emits_only_the_gap(emulator: kmock.KubernetesEmulator) -> None:
    a, b, c = (obj("ConfigMap", n, ns="app") for n in "abc")
    for o in (a, b, c):
        emulator.objects[CMS, "app", o["metadata"]["name"]] = o
    async with Collector(emulator, api_for(emulator), ["configmaps"]) as run:
        await run.wait(3)
        await watch_live(emulator, CMS)
        await emulator.patch("/api/v1/namespaces/app/configmaps/a", json={"metadata": {"resourceVersion": "2"}})
        await until(lambda: len(run.events) >= 4, timeout=10, every=0.01,
                    what=lambda: f"a MODIFIED, have {seen(run.events)}")
        # the gap: changes the watch never reports
        emulator.objects[CMS, "app", "b"].delete()
        emulator.objects[CMS, "app", "c"].patch({"metadata": {"resourceVersion": "2"}, "data": {"k": "v"}})
        emulator.objects[CMS, "app", "d"] = obj("ConfigMap", "d", ns="app")
        await emulator._buses[CMS].put({"type": "ERROR", "object": {
            "kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 410, "reason": "Expired",
            "message": "too old resource version: 1 (2)"}})
        await until(lambda: len(run.events) >= 7, timeout=10, every=0.01,
                    what=lambda: f"the relist's gap, have {seen(run.events)}")
        await emulator.post("/api/v1/namespaces/app/configmaps", json=obj("ConfigMap", "e", ns="app"))
        events = await run.wait(8)
    assert seen(events) == [
        ("SNAPSHOT", "a", "1"), ("SNAPSHOT", "b", "1"), ("SNAPSHOT", "c", "1"),
        ("MODIFIED", "a", "2"),
        ("DELETED", "b", "1"), ("MODIFIED", "c", "2"), ("ADDED", "d", "1"),  # the relist: the gap only
        ("ADDED", "e", "1"),
    ]
    assert len({e.id for e in events}) == 8
    assert len(lists(emulator, CMS)) == 2
    assert events[5].id == raw_event_from_object(with_rv(c, "2", data={"k": "v"}), action="MODIFIED", source="").id


async def test_a_restarted_collector_repeats_the_ids_of_what_did_not_change(
        emulator: kmock.KubernetesEmulator) -> None:
    for o in (obj("ConfigMap", n, ns="app") for n in "abc"):
        emulator.objects[CMS, "app", o["metadata"]["name"]] = o
    async with Collector(emulator, api_for(emulator), ["configmaps"]) as run:
        await run.wait(3)
        await watch_live(emulator, CMS)
        await emulator.patch("/api/v1/namespaces/app/configmaps/b", json={"metadata": {"resourceVersion": "2"},
                                                                          "data": {"k": "v"}})
        await emulator.post("/api/v1/namespaces/app/configmaps", json=obj("ConfigMap", "d", ns="app"))
        before = await run.wait(5)
    # while the collector is down, c changes; a, b (last seen MODIFIED) and d (ADDED) do not
    emulator.objects[CMS, "app", "c"].patch({"metadata": {"resourceVersion": "3"}, "data": {"k": "new"}})
    async with Collector(emulator, api_for(emulator), ["configmaps"]) as run:
        after = await run.wait(4)
    assert seen(before) == [("SNAPSHOT", "a", "1"), ("SNAPSHOT", "b", "1"), ("SNAPSHOT", "c", "1"),
                            ("MODIFIED", "b", "2"), ("ADDED", "d", "1")]
    assert sorted(seen(after)) == [("SNAPSHOT", "a", "1"), ("SNAPSHOT", "b", "2"), ("SNAPSHOT", "c", "3"),
                                   ("SNAPSHOT", "d", "1")]
    known = {e.id for e in before}
    assert [e.metadata["name"] for e in after if e.id not in known] == ["c"]  # only the change is news


async def test_410_status_on_opening_the_watch_relists(emulator: kmock.KubernetesEmulator) -> None:
    a, b = obj("ConfigMap", "a", ns="app"), obj("ConfigMap", "b", ns="app")
    emulator.objects[CMS, "app", "a"], emulator.objects[CMS, "app", "b"] = a, b

    def gap_then_gone() -> dict:
        emulator.objects[CMS, "app", "a"].patch({"metadata": {"resourceVersion": "3"}})
        emulator.objects[CMS, "app", "b"].delete()
        emulator.objects[CMS, "app", "c"] = obj("ConfigMap", "c", ns="app", rv="3")
        return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 410, "reason": "Gone",
                "message": "too old resource version"}

    emulator[kmock.action.WATCH, CMS][:1] << 410 << gap_then_gone
    async with Collector(emulator, api_for(emulator), ["configmaps"]) as run:
        events = await run.wait(5)
        await until(lambda: len(watches(emulator, CMS)) >= 2, timeout=10, every=0.01, what="the second watch")
    assert seen(events) == [("SNAPSHOT", "a", "1"), ("SNAPSHOT", "b", "1"),
                            ("DELETED", "b", "1"), ("MODIFIED", "a", "3"), ("ADDED", "c", "3")]
    assert len(lists(emulator, CMS)) == 2


async def test_secret_values_never_leave_the_collector(emulator: kmock.KubernetesEmulator) -> None:
    password, token = "hunter2-Sup3rS3cret", "tok-9f8e7d6c5b4a"
    encoded = base64.b64encode(password.encode()).decode()
    applied = yaml.safe_dump({"apiVersion": "v1", "kind": "Secret", "data": {"password": encoded}})
    secret = obj("Secret", "db", ns="shop", type="Opaque", data={"password": encoded, "a-user": "YWRtaW4="},
                 stringData={"token": token})
    secret["metadata"]["annotations"] = {LAST_APPLIED: applied, "team": "db"}
    emulator.objects[SECRETS, "shop", "db"] = secret
    rotated = "rotated-Pa55w0rd-xyz"
    async with Collector(emulator, api_for(emulator), ["secrets"]) as run:
        await run.wait(1)
        await watch_live(emulator, SECRETS)
        await emulator.patch("/api/v1/namespaces/shop/secrets/db", json={
            "metadata": {"resourceVersion": "2"}, "data": {"password": base64.b64encode(rotated.encode()).decode()}})
        events = await run.wait(2)
    assert seen(events) == [("SNAPSHOT", "db", "1"), ("MODIFIED", "db", "2")]
    for event in events:
        wire = RAW_CODEC.encode(event)  # everything that would be published
        for value in (password, encoded, token, rotated, base64.b64encode(rotated.encode()).decode(), "admin",
                      "YWRtaW4="):
            assert value.encode() not in wire and value.encode() not in event.data
    first, second = (msgspec.json.decode(e.data) for e in events)
    assert list(first["data"]) == ["a-user", "password"] and list(first["stringData"]) == ["token"]
    assert all(v.startswith("sha256:") and len(v) == 23 for v in first["data"].values())
    assert first["data"]["password"] != second["data"]["password"]  # a rotation still shows
    assert first["data"]["a-user"] == second["data"]["a-user"]
    annotations = first["metadata"]["annotations"]
    assert annotations["team"] == "db" and annotations[LAST_APPLIED].startswith("sha256:")


async def test_every_kind_is_listed_with_kind_and_api_version_filled_in(emulator: kmock.KubernetesEmulator) -> None:
    for spec in KINDS:  # stored like a real API server lists them: items without kind / apiVersion
        item = obj(spec.kind, f"x-{spec.name}", ns="ns" if spec.namespaced else "")
        del item["kind"], item["apiVersion"]
        emulator.objects[f"{spec.api_version}/{spec.plural}", "ns" if spec.namespaced else None,
                         f"x-{spec.name}"] = item
    watched = [spec for spec in KINDS if not spec.instead_of]  # Endpoints only where EndpointSlices are not served
    async with Collector(emulator, api_for(emulator), None) as run:
        events = await run.wait(len(watched))
    assert len(events) == len(watched)
    by_name = {e.metadata["name"]: e for e in events}
    for spec in watched:
        event = by_name[f"x-{spec.name}"]
        assert (event.metadata["kind"], event.metadata["api_version"]) == (spec.kind, spec.api_version)
        assert event.metadata["action"] == ("EVENT" if spec.kind == "Event" else "SNAPSHOT")


async def test_an_unusable_object_comes_out_as_an_error_and_the_rest_goes_on(
        emulator: kmock.KubernetesEmulator) -> None:
    timeless = obj("ConfigMap", "timeless", ns="app")
    del timeless["metadata"]["creationTimestamp"]
    emulator.objects[CMS, "app", "timeless"] = timeless
    emulator.objects[CMS, "app", "a"] = obj("ConfigMap", "a", ns="app")
    async with Collector(emulator, api_for(emulator), ["configmaps"]) as run:
        events = await run.wait(1)
    [error] = [i for i in run.items if isinstance(i, UnusableInput)]
    assert seen(events) == [("SNAPSHOT", "a", "1")]
    assert error.position == "SNAPSHOT app/timeless" and "no timestamp" in error.reason
    assert error.file.endswith("/configmaps") and '"timeless"' in error.fragment


async def test_api_errors_back_off_and_say_what_to_check(emulator: kmock.KubernetesEmulator,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    emulator.objects[CMS, "app", "a"] = obj("ConfigMap", "a", ns="app")
    forbidden = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 403, "reason": "Forbidden",
                 "message": 'configmaps is forbidden: User "x" cannot list resource "configmaps"'}
    emulator[kmock.action.LIST, CMS][:2] << 403 << forbidden
    with caplog.at_level(logging.WARNING, logger="collectors.watching"):
        async with Collector(emulator, api_for(emulator), ["configmaps"]) as run:
            events = await run.wait(1)
    assert seen(events) == [("SNAPSHOT", "a", "1")] and len(lists(emulator, CMS)) == 3
    warnings = [r.getMessage() for r in caplog.records if "configmaps" in r.getMessage()]
    assert len(warnings) == 1, warnings  # the same cause again is a debug line
    assert "HTTP 403" in warnings[0] and "RBAC" in warnings[0] and "retrying in" in warnings[0]
    assert 'User "x" cannot list resource "configmaps"' in warnings[0]  # the server's own words


async def test_a_watch_that_keeps_ending_at_once_does_not_busy_loop(emulator: kmock.KubernetesEmulator) -> None:
    emulator.objects[CMS, "app", "a"] = obj("ConfigMap", "a", ns="app")
    emulator[kmock.action.WATCH, CMS] << b""  # every watch: 200, empty body, over
    options = WatchOptions(backoff_initial_s=0.1, backoff_max_s=0.4)
    loop = asyncio.get_running_loop()
    async with Collector(emulator, api_for(emulator), ["configmaps"], options=options) as run:
        await until(lambda: watches(emulator, CMS), timeout=10, every=0.01, what="the first watch")
        first = loop.time()
        # it reconnects, with backoff (at least 0.1 + 0.2 + 0.4 s between the four): not hundreds at once
        await until(lambda: len(watches(emulator, CMS)) >= 4, timeout=10, every=0.01, what="three reconnections")
        reconnecting = loop.time() - first
    assert reconnecting >= 0.6, f"4 watches in {reconnecting:.3f}s: no backoff"
    # each session would have listed before its watch: the fourth watch came after any relist
    assert len(lists(emulator, CMS)) == 1 and len(run.events) == 1


async def test_stop_ends_open_watches_and_their_threads(emulator: kmock.KubernetesEmulator) -> None:
    emulator.objects[CMS, "app", "a"] = obj("ConfigMap", "a", ns="app")
    started = asyncio.get_running_loop().time()
    async with Collector(emulator, api_for(emulator), ["configmaps", "pods", "nodes"]) as run:
        await run.wait(1)
        await watch_live(emulator, CMS)
    assert asyncio.get_running_loop().time() - started < 5
    await until(lambda: not [t for t in threading.enumerate() if t.name.startswith("kubeapi")], timeout=5,
                what="the watch threads to end")


CORE_V1 = ("nodes", "namespaces", "pods", "services", "endpoints", "configmaps", "secrets", "persistentvolumeclaims",
           "persistentvolumes", "events")
#: what a Kubernetes 1.20 API server serves of the collector's kinds
SERVED_1_20 = {"v1": CORE_V1, "apps/v1": ("deployments", "replicasets", "statefulsets", "daemonsets"),
               "batch/v1": ("jobs",), "batch/v1beta1": ("cronjobs",),
               "discovery.k8s.io/v1beta1": ("endpointslices",), "storage.k8s.io/v1": ("storageclasses",),
               "networking.k8s.io/v1": ("ingresses", "networkpolicies"),
               "autoscaling/v1": ("horizontalpodautoscalers",), "autoscaling/v2beta2": ("horizontalpodautoscalers",),
               "policy/v1beta1": ("poddisruptionbudgets",), "events.k8s.io/v1": ("events",)}
#: an older one: no EndpointSlices, HorizontalPodAutoscalers in autoscaling/v1 only, no events.k8s.io
SERVED_OLDER = {**{gv: plurals for gv, plurals in SERVED_1_20.items()
                   if gv not in ("discovery.k8s.io/v1beta1", "autoscaling/v2beta2", "events.k8s.io/v1")}}


@pytest.fixture
async def old_cluster(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    """kmock serving only the group versions of `request.param` (group version -> plurals): the others 404."""
    monkeypatch.setattr(kmock_parsing, "parse_path", _parse_path_listing_namespaces)
    by_plural = {spec.plural: spec for spec in KINDS}
    async with kmock.KubernetesEmulator() as emu, kmock.Server(emu):
        for group_version, plurals in request.param.items():
            for plural in plurals:
                spec = by_plural[plural]
                emu.resources[f"{group_version}/{plural}"] = kmock.ResourceInfo(kind=spec.kind,
                                                                                namespaced=spec.namespaced)
        yield emu


def requested(emu: kmock.KubernetesEmulator, path: str) -> list:
    return [r for r in emu if r.url.path.startswith(path)]


@pytest.mark.parametrize("old_cluster", [SERVED_1_20], indirect=True)
async def test_a_1_20_cluster_is_watched_at_the_versions_it_serves(old_cluster: kmock.KubernetesEmulator,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    emu = old_cluster
    slice_ = obj("EndpointSlice", "web-abc", ns="shop", api_version="discovery.k8s.io/v1beta1", addressType="IPv4",
                 endpoints=[{"addresses": ["10.1.2.3"], "conditions": {"ready": True},
                             "topology": {"kubernetes.io/hostname": "n1"}}],  # v1: nodeName, zone
                 ports=[{"port": 80, "protocol": "TCP"}])
    cron = obj("CronJob", "backup", ns="shop", api_version="batch/v1beta1", spec={
        "schedule": "0 * * * *", "jobTemplate": {"spec": {"template": {"spec": {
            "containers": [{"name": "b", "image": "busybox", "envFrom": [{"configMapRef": {"name": "backup-cfg"}}]}],
            "restartPolicy": "OnFailure"}}}}})
    hpa = obj("HorizontalPodAutoscaler", "web", ns="shop", api_version="autoscaling/v2beta2", spec={
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "minReplicas": 2,
        "maxReplicas": 10, "metrics": [{"type": "Resource", "resource": {
            "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]},
        status={"currentReplicas": 2, "desiredReplicas": 3, "currentMetrics": None,
                "conditions": [{"type": "AbleToScale", "status": "True", "reason": "SucceededRescale",
                                "lastTransitionTime": T0}]})
    pdb = obj("PodDisruptionBudget", "web", ns="shop", api_version="policy/v1beta1",
              spec={"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}},
              status={"currentHealthy": 2, "desiredHealthy": 1, "disruptionsAllowed": 1, "expectedPods": 2})
    for o, resource in ((slice_, "discovery.k8s.io/v1beta1/endpointslices"), (cron, "batch/v1beta1/cronjobs"),
                        (hpa, "autoscaling/v2beta2/horizontalpodautoscalers"),
                        (pdb, "policy/v1beta1/poddisruptionbudgets")):
        emu.objects[resource, "shop", o["metadata"]["name"]] = o
    with caplog.at_level(logging.INFO, logger="collectors.kubeapi"):
        async with Collector(emu, api_for(emu), None) as run:
            events = await run.wait(4)
            served = {spec.name: spec.api_version for spec in run.watch.served}
    assert {(e.metadata["kind"], e.metadata["api_version"]) for e in events} == {
        ("EndpointSlice", "discovery.k8s.io/v1beta1"), ("CronJob", "batch/v1beta1"),
        ("HorizontalPodAutoscaler", "autoscaling/v2beta2"), ("PodDisruptionBudget", "policy/v1beta1")}
    assert served["endpointslices"] == "discovery.k8s.io/v1beta1" and "endpoints" not in served
    assert (served["cronjobs"], served["jobs"]) == ("batch/v1beta1", "batch/v1")
    assert served["horizontalpodautoscalers"] == "autoscaling/v2beta2"  # the newest served, not v1
    # no request ever went to a version the server does not serve, beyond discovery's one look
    for path in ("/apis/discovery.k8s.io/v1/", "/apis/batch/v1/cronjobs", "/apis/autoscaling/v2/",
                 "/apis/policy/v1/"):
        assert requested(emu, path) == [], path
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert said == [], said  # every kind is served in some version: nothing left out
    # what the older shapes become downstream: what the newest versions would
    for event in events:
        unified = normalize_event(enrich_event(event))
        assert unified.k8s is not None and unified.k8s.name == event.metadata["name"]
        newest = next(s for s in KINDS if s.kind == event.metadata["kind"]).versions[0]
        as_newest = raw_event_from_object({**msgspec.json.decode(event.data), "apiVersion": newest}, action="SNAPSHOT",
                                          source="")
        assert normalize_event(enrich_event(as_newest)).k8s == unified.k8s
    index = ObjectIndex()
    edges = {(e.type, e.dst_key) for o in (slice_, cron, hpa, pdb) for e in index.add(o).add_edges}
    assert ("SCALES", "Deployment:shop/web") in edges


@pytest.mark.parametrize("old_cluster", [SERVED_OLDER], indirect=True)
async def test_kinds_not_served_are_said_once_and_endpoints_stand_in_for_endpointslices(
        old_cluster: kmock.KubernetesEmulator, caplog: pytest.LogCaptureFixture) -> None:
    emu = old_cluster
    endpoints = obj("Endpoints", "web", ns="shop", subsets=[{"addresses": [{"ip": "10.1.2.3", "nodeName": "n1"}],
                                                             "ports": [{"port": 80, "protocol": "TCP"}]}])
    hpa = obj("HorizontalPodAutoscaler", "web", ns="shop", api_version="autoscaling/v1", spec={
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "maxReplicas": 10,
        "targetCPUUtilizationPercentage": 80}, status={"currentReplicas": 2, "desiredReplicas": 2,
                                                       "currentCPUUtilizationPercentage": 35})
    emu.objects["v1/endpoints", "shop", "web"] = endpoints
    emu.objects["autoscaling/v1/horizontalpodautoscalers", "shop", "web"] = hpa
    with caplog.at_level(logging.INFO, logger="collectors.kubeapi"):
        async with Collector(emu, api_for(emu), None) as run:
            events = await run.wait(2)
            served = {spec.name: spec.api_version for spec in run.watch.served}
            await asyncio.sleep(0.5)  # FAST backs off 0.05-0.2 s: a retried kind would ask again by now
    assert sorted(seen(events)) == [("SNAPSHOT", "web", "1")] * 2
    assert {e.metadata["kind"]: e.metadata["api_version"] for e in events} == {
        "Endpoints": "v1", "HorizontalPodAutoscaler": "autoscaling/v1"}
    assert "endpointslices" not in served and served["endpoints"] == "v1"
    assert "events.events.k8s.io" not in served and served["events"] == "v1"
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(said) == 3, said
    assert any("endpointslices (EndpointSlice) is served in none of discovery.k8s.io/v1, "
               "discovery.k8s.io/v1beta1: not watched" in m for m in said)
    assert any("events.events.k8s.io (Event) is served in none of" in m for m in said)
    assert any("endpoints (v1) watched in place of endpointslices" in m for m in said)
    # one look at discovery each, never a list or watch of what is not served
    assert [r.url.path for r in requested(emu, "/apis/events.k8s.io")] == ["/apis/events.k8s.io/v1",
                                                                          "/apis/events.k8s.io/v1beta1"]
    assert [r.url.path for r in requested(emu, "/apis/discovery.k8s.io")] == [
        "/apis/discovery.k8s.io/v1", "/apis/discovery.k8s.io/v1beta1"]
    hpa_event = next(e for e in events if e.metadata["kind"] == "HorizontalPodAutoscaler")
    assert normalize_event(enrich_event(hpa_event)).k8s is not None
    assert ("SCALES", "Deployment:shop/web") in {(e.type, e.dst_key) for e in ObjectIndex().add(hpa).add_edges}


def test_versions_are_chosen_from_discovery() -> None:
    specs = with_stand_ins(resolve_kinds(["endpointslices", "horizontalpodautoscalers", "cronjobs"]))
    newest = {"discovery.k8s.io/v1": frozenset({"endpointslices"}), "v1": frozenset({"endpoints"}),
              "autoscaling/v2": frozenset({"horizontalpodautoscalers"}),
              "autoscaling/v1": frozenset({"horizontalpodautoscalers"}), "batch/v1": frozenset({"jobs", "cronjobs"})}
    chosen, notes = choose_versions(specs, newest)
    assert [(s.name, s.api_version) for s in chosen] == [
        ("endpointslices", "discovery.k8s.io/v1"), ("cronjobs", "batch/v1"),
        ("horizontalpodautoscalers", "autoscaling/v2")] and notes == []
    old = {"v1": frozenset({"endpoints"}), "autoscaling/v1": frozenset({"horizontalpodautoscalers"}),
           "batch/v1": frozenset({"jobs"}), "discovery.k8s.io/v1": None}
    chosen, notes = choose_versions(specs, old)
    assert [(s.name, s.api_version) for s in chosen] == [("endpoints", "v1"),
                                                         ("horizontalpodautoscalers", "autoscaling/v1")]
    assert [n.split(" ")[0] for n in notes] == ["endpointslices", "cronjobs", "endpoints"]
    alone, _ = choose_versions(resolve_kinds(["endpoints"]), newest)  # asked for itself: watched
    assert [s.name for s in alone] == ["endpoints"]


def test_kind_names() -> None:
    assert [s.name for s in resolve_kinds(["Pod", "deployments.apps", "events", "events.events.k8s.io"])] == [
        "pods", "deployments", "events", "events.events.k8s.io"]
    assert resolve_kinds(["Event"])[0].api_version == "v1"
    assert len(resolve_kinds(None)) == len(KINDS) == 23
    with pytest.raises(UnknownKindError, match="unknown kind 'widgets'"):
        resolve_kinds(["widgets"])
    with pytest.raises(UnknownKindError, match="no kinds"):
        resolve_kinds([])


def test_rbac_grants_read_only_exactly_the_watched_kinds() -> None:
    docs = {d["kind"]: d for d in yaml.safe_load_all(RBAC.read_text())}
    granted = {(group, resource) for rule in docs["ClusterRole"]["rules"]
               for group in rule["apiGroups"] for resource in rule["resources"]}
    assert granted == {(s.group, s.plural) for s in KINDS}
    assert all(sorted(rule["verbs"]) == ["get", "list", "watch"] for rule in docs["ClusterRole"]["rules"])
    assert docs["ServiceAccount"]["metadata"] == {"name": "tapio", "namespace": "tapio"}
    binding = docs["ClusterRoleBinding"]
    assert binding["roleRef"]["name"] == docs["ClusterRole"]["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "tapio", "namespace": "tapio"}]


def kubeconfig(path: Path, emulator_url: str) -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "dead",
        "clusters": [{"name": "dead", "cluster": {"server": "http://127.0.0.1:9"}},
                     {"name": "emu", "cluster": {"server": emulator_url}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "dead", "context": {"cluster": "dead", "user": "u"}},
                     {"name": "emulator", "context": {"cluster": "emu", "user": "u"}}],
    }))
    return path


async def test_kubeconfig_and_context_pick_the_cluster(emulator: kmock.KubernetesEmulator, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    url = str(emulator.url).rstrip("/")
    path = kubeconfig(tmp_path / "config", url)
    assert load_api_client(kubeconfig=str(path)).configuration.host == "http://127.0.0.1:9"  # current-context
    api = load_api_client(kubeconfig=str(path), context="emulator")
    assert api.configuration.host == url
    emulator.objects[CMS, "app", "a"] = obj("ConfigMap", "a", ns="app")
    async with Collector(emulator, api, ["configmaps"]) as run:
        assert seen(await run.wait(1)) == [("SNAPSHOT", "a", "1")]
    monkeypatch.setenv("KUBECONFIG", str(path))  # found like kubectl finds it
    assert load_api_client(context="emulator").configuration.host == url
    with pytest.raises(KubeConfigError, match="context 'nope'"):
        load_api_client(kubeconfig=str(path), context="nope")
    with pytest.raises(KubeConfigError, match="does not exist"):
        load_api_client(kubeconfig=str(tmp_path / "missing"))
    monkeypatch.delenv("KUBECONFIG")
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.kube/config, not in a pod
    with pytest.raises(KubeConfigError, match="in-cluster service account"):
        load_api_client()


async def test_end_to_end_into_jetstream(emulator: kmock.KubernetesEmulator, settings: Settings,
                                         tmp_path: Path) -> None:
    ns = f"e2e-{uuid.uuid4().hex[:8]}"
    password = "e2e-secret-value-42"
    pod = obj("Pod", "api-0", ns=ns)
    secret = obj("Secret", "creds", ns=ns, data={"password": base64.b64encode(password.encode()).decode()})
    event = obj("Event", "api-0.17f", ns=ns, reason="BackOff", type="Warning", message="Back-off restarting",
                involvedObject={"kind": "Pod", "name": "api-0", "namespace": ns, "uid": "uid-api-0"},
                lastTimestamp="2026-11-20T10:05:00Z", count=3)
    emulator.objects[PODS, ns, "api-0"] = pod
    emulator.objects[SECRETS, ns, "creds"] = secret
    emulator.objects[kmock.resource("", "v1", "events"), ns, "api-0.17f"] = event
    path = kubeconfig(tmp_path / "config", str(emulator.url).rstrip("/"))

    nc = await connect(settings.nats, name="test-kubeapi-e2e")
    js = nc.jetstream()
    await ensure_streams(js, settings.nats)  # so the test can subscribe first; the collector does it too
    stop = asyncio.Event()
    collector = asyncio.create_task(run_kubeapi_collector(
        settings, kubeconfig=str(path), context="emulator", kinds=["pods", "secrets", "events"], stop=stop,
        options=FAST))
    try:
        sub = await js.subscribe(f"{settings.nats.subject_prefix}.kubeapi.{ns}", ordered_consumer=True)

        async def events(n: int) -> list:
            """Messages until they hold `n` more events (a message holds one event, or a batch of them)."""
            got: list = []
            while sum(len(events_in(m.data)) for m in got) < n:
                got.append(await sub.next_msg(timeout=15))
            return got

        msgs = await events(3)
        await watch_live(emulator, PODS)
        await emulator.post(f"/api/v1/namespaces/{ns}/pods", json=obj("Pod", "api-1", ns=ns, rv="2"))
        msgs += await events(1)
        stop.set()
        await asyncio.wait_for(collector, timeout=10)  # stop ends it cleanly
    finally:
        stop.set()
        await asyncio.wait({collector}, timeout=10)
        await nc.drain()
    got = {(e.metadata["action"], e.metadata["name"]): e
           for e in (RAW_CODEC.decode(part) for m in msgs for part in events_in(m.data))}
    assert set(got) == {("SNAPSHOT", "api-0"), ("SNAPSHOT", "creds"), ("EVENT", "api-0.17f"), ("ADDED", "api-1")}
    assert got["SNAPSHOT", "api-0"].id == raw_event_from_object(pod, action="SNAPSHOT", source="").id
    assert got["EVENT", "api-0.17f"].id == raw_event_from_object(event, action="EVENT", source="").id
    assert got["EVENT", "api-0.17f"].metadata["reason"] == "BackOff"
    for m in msgs:
        assert m.subject == f"events.kubeapi.{ns}" and m.metadata.stream == "EVENTS"
        assert m.headers["Nats-Msg-Id"] == batch_id([RAW_CODEC.decode(part).id for part in events_in(m.data)])
        assert password.encode() not in m.data and base64.b64encode(password.encode()) not in m.data


class _NamespaceList(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        body = json.dumps({"kind": "NamespaceList", "apiVersion": "v1", "metadata": {"resourceVersion": "1"},
                           "items": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def https_api_server(tmp_path: Path):
    """An API server answering over TLS with a self-signed certificate no client can verify."""
    key, cert = tmp_path / "tls.key", tmp_path / "tls.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NamespaceList)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_an_unverified_connection_is_said_once_not_at_every_request(
        https_api_server: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "lab",
        "clusters": [{"name": "lab", "cluster": {"server": https_api_server, "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "lab", "context": {"cluster": "lab", "user": "u"}}],
    }))
    with caplog.at_level(logging.WARNING, logger="collectors.kubeapi"), warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("default")  # as a process starts: urllib3's warning shows once per place, per call
        api = load_api_client(kubeconfig=str(path))
        for _ in range(3):
            assert client.CoreV1Api(api).list_namespace().items == []
        api.close()
    insecure = [w for w in seen if issubclass(w.category, urllib3.exceptions.InsecureRequestWarning)]
    assert insecure == []
    [said] = [r.getMessage() for r in caplog.records if r.name == "collectors.kubeapi"]
    assert said.startswith(f"kubeapi: the connection to {https_api_server} is not verified")
    assert "insecure-skip-tls-verify" in said and "certificate-authority" in said


async def test_a_resume_point_the_server_cannot_go_on_from_is_compared_with_a_list(
        emulator: kmock.KubernetesEmulator, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """kmock's resourceVersions are not numbers ('...'), as a recreated cluster's would be behind: the
    collector does not watch from the resume point but lists and compares with the objects it names."""
    a, b, c = (obj("ConfigMap", n, ns="app") for n in "abc")
    emulator.objects[CMS, "app", "a"], emulator.objects[CMS, "app", "c"] = a, c
    api = api_for(emulator)
    resume = ResumeFile(tmp_path / "kubeapi-resume.json")
    resume.save(str(api.configuration.host), {"configmaps": ResumePoint(
        resource_version="7", known={"uid-a": stub(a), "uid-b": stub(b)})})
    with caplog.at_level(logging.WARNING, logger="collectors.watching"):
        async with Collector(emulator, api, ["configmaps"], resume=resume) as run:
            events = await run.wait(2)
            run.watch.save_resume_points()  # as `collect` does
    assert seen(events) == [("DELETED", "b", "1"), ("ADDED", "c", "1")]  # a did not change: not told again
    assert "resume point's resourceVersion '7' is not behind the server's '...'" in caplog.text
    known = resume.load(str(api.configuration.host))["configmaps"].known
    assert {"uid-a", "uid-c"} <= set(known) and "uid-b" not in known


def test_same_history() -> None:
    assert same_history("7", "7") and same_history("7", "120")
    assert not same_history("120", "7")  # the cluster was made again at the same address
    assert not same_history("7", "...") and not same_history("", "7")
