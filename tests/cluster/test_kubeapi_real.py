"""The kubeapi collector (`collectors.kubeapi`) against the real 1.20 API server of tests/support/realcluster.

Beside the kmock tests (tests/collectors/test_kubeapi.py), what only a real server shows: the
kinds and versions it serves, real resourceVersions, uids and 410s, RBAC, Events the kubelet and
scheduler write about a real pod. Each test runs `watch_cluster` in a thread of its own
(`Collector`) and drives the cluster through its REST API (`Rest`, the admin token):
- every kind of `collectors.kubeapi.KINDS`: one object created, modified, deleted; a pod's Events;
- 410 Gone: the collector cut off from the server (`CuttableProxy`) while objects change and etcd's
  history is compacted; it relists and emits the gap;
- RBAC: `docker/rbac.yaml` applied, the collector run as its ServiceAccount (the token controller's
  token); a copy without one rule: that kind is said once, the others go on;
- a restart with the resume file `tapio collect kubeapi` keeps: the changes made while it was down,
  each once, with etcd's history kept or compacted.

Kinds that 1.20 serves only in an older version than the newest KINDS names (EndpointSlice
discovery.k8s.io/v1beta1, CronJob batch/v1beta1, HorizontalPodAutoscaler autoscaling/v2beta2,
PodDisruptionBudget policy/v1beta1: `OLDER_VERSION_ONLY`) are created in that version, and the
collector must watch them in it (its discovery, collectors/discovery.py). Endpoints, watched only
where EndpointSlices are not served, is not watched on 1.20.

The module's cluster runs its apiserver without a watch cache for ConfigMaps (`APISERVER_FLAGS`),
so that a compacted etcd gives a real 410. One xdist worker runs the module, in order.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import json
import logging
import socket
import threading
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import urllib3
import yaml
from realcluster.images import BUSYBOX_IMAGE
from realcluster.node import RealCluster
from realcluster.pki import Identity, write_kubeconfig
from waiting import until_sync

from collectors.kubeapi import KINDS, KindSpec, load_api_client, watch_cluster
from collectors.resume import ResumeFile
from collectors.unusable import UnusableInput
from collectors.watching import ResourceWatcher, WatchOptions
from core.events import RawEvent

pytestmark = [pytest.mark.xdist_group("real-cluster"), pytest.mark.timeout(600)]

#: ConfigMaps without the watch cache: a watch from a compacted resourceVersion then reaches etcd
#: and gets a real 410 (with the cache on, compacting etcd gives none: stack.md)
APISERVER_FLAGS = ["--watch-cache-sizes=configmaps#0"]
FAST = WatchOptions(backoff_initial_s=0.2, backoff_max_s=2.0)

#: the version 1.20 serves of the kinds it serves only in an older version than the newest KINDS names
OLDER_VERSION_ONLY = {
    "endpointslices": "discovery.k8s.io/v1beta1",
    "cronjobs": "batch/v1beta1",
    "horizontalpodautoscalers": "autoscaling/v2beta2",
    "poddisruptionbudgets": "policy/v1beta1",
}


# -- the cluster's REST API, as the admin ------------------------------------------------------


class Rest:
    """Plain JSON requests to the API server (any group and version, including those the
    `kubernetes` client no longer has classes for: batch/v1beta1, autoscaling/v2beta2)."""

    def __init__(self, cluster: RealCluster, token: str | None = None) -> None:
        assert cluster.pki is not None
        self.server = cluster.server
        self.token = token or cluster.pki.admin.token
        self.http = urllib3.PoolManager(ca_certs=str(cluster.pki.ca_crt), cert_reqs="CERT_REQUIRED")

    def call(self, method: str, path: str, body: dict | None = None, *, ok: Sequence[int] = (200, 201, 202)) -> Any:
        content = "application/merge-patch+json" if method == "PATCH" else "application/json"
        resp = self.http.request(method, self.server + path, body=json.dumps(body) if body is not None else None,
                                 headers={"Authorization": f"Bearer {self.token}", "Content-Type": content,
                                          "Accept": "application/json"}, timeout=30)
        assert resp.status in ok, f"{method} {path}: HTTP {resp.status} {resp.data[:500]!r}"
        return json.loads(resp.data) if resp.data else None

    def status(self, method: str, path: str, body: dict | None = None) -> int:
        resp = self.http.request(method, self.server + path, body=json.dumps(body) if body is not None else None,
                                 headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
                                 timeout=30)
        return resp.status


def base_path(api_version: str) -> str:
    return f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}"


def namespaced(spec: KindSpec) -> bool:
    return spec.namespaced


def collection(spec: KindSpec, namespace: str, api_version: str | None = None) -> str:
    base = base_path(api_version or spec.api_version)
    return f"{base}/namespaces/{namespace}/{spec.plural}" if namespaced(spec) else f"{base}/{spec.plural}"


# -- the collector, running --------------------------------------------------------------------


class Collector:
    """`watch_cluster` in a thread with its own event loop; what it emits, in order, in `.items`."""

    def __init__(self, kubeconfig: str, *, kinds: Sequence[str] | None = None, options: WatchOptions = FAST,
                 resume: ResumeFile | None = None) -> None:
        self.kubeconfig, self.kinds, self.options, self.resume = kubeconfig, kinds, options, resume
        self.items: list[RawEvent | UnusableInput] = []
        self.watchers: list[ResourceWatcher] = []
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="kubeapi-collector", daemon=True)

    def __enter__(self) -> Collector:
        self._thread.start()
        assert self._ready.wait(30), "the collector did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as e:  # handed to the test by stop()
            self.error = e
            self._ready.set()

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        api_client = load_api_client(kubeconfig=self.kubeconfig)
        try:
            async with watch_cluster(api_client, kinds=self.kinds, stop=self._stop, options=self.options,
                                     resume=self.resume) as stream:
                await stream.discovered.wait()  # its watchers are made once discovery chose the versions
                self.watchers = stream.watchers
                self._ready.set()
                while batch := await stream.next_batch(1000):
                    with self._lock:
                        self.items.extend(batch)
                stream.save_resume_points()  # as `collect` does at its end
        finally:
            api_client.close()

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        assert not self._thread.is_alive(), "the collector did not stop within 30 s"
        if self.error is not None:
            raise self.error

    @property
    def events(self) -> list[RawEvent]:
        with self._lock:
            return [i for i in self.items if isinstance(i, RawEvent)]

    def of(self, uid: str) -> list[RawEvent]:
        return [e for e in self.events if e.metadata.get("uid") == uid]

    def watcher(self, name: str) -> ResourceWatcher:
        return next(w for w in self.watchers if w.resource.name == name)

    def wait_listed(self, names: Sequence[str], timeout: float = 30) -> None:
        until_sync(lambda: all(self.watcher(n).listed for n in names), timeout=timeout,
                   what=lambda: f"the first list of {[n for n in names if not self.watcher(n).listed]}")


def actions(events: Sequence[RawEvent]) -> list[tuple[str, str]]:
    return [(e.metadata["action"], e.metadata["resource_version"]) for e in events]


def make(rest: Rest, namespace: str, kind: str, name: str, **fields: Any) -> dict:
    plural = {"ConfigMap": "configmaps", "Secret": "secrets"}[kind]
    return rest.call("POST", f"/api/v1/namespaces/{namespace}/{plural}",
                     {"apiVersion": "v1", "kind": kind, "metadata": {"name": name}, **fields})


# -- one object of every kind ------------------------------------------------------------------


def pod_spec(command: Sequence[str] = ("sleep", "3600")) -> dict:
    return {"containers": [{"name": "main", "image": BUSYBOX_IMAGE, "imagePullPolicy": "Never",
                            "command": list(command)}],
            "terminationGracePeriodSeconds": 1}


def template(labels: dict[str, str]) -> dict:
    return {"metadata": {"labels": labels}, "spec": pod_spec()}


NO_NODE = {"tapio.test/none": "none"}  # a nodeSelector nothing matches: a DaemonSet that makes no pod


def body_of(spec: KindSpec, name: str) -> dict:
    """A small valid object of `spec`'s kind, as 1.20 accepts it (in the version it serves)."""
    labels = {"app": name}
    selector = {"matchLabels": labels}
    specs: dict[str, dict] = {
        "nodes": {"spec": {"unschedulable": True, "taints": [{"key": "tapio.test/fake", "effect": "NoSchedule"}]}},
        "namespaces": {},
        "pods": {"spec": pod_spec()},
        "services": {"spec": {"ports": [{"port": 80}], "selector": labels}},
        "endpointslices": {"addressType": "IPv4", "endpoints": [{"addresses": ["10.1.2.3"]}],
                           "ports": [{"port": 80}]},
        "configmaps": {"data": {"k": "v"}},
        "secrets": {"stringData": {"password": "not-this"}},
        "poddisruptionbudgets": {"spec": {"minAvailable": 1, "selector": selector}},
        "deployments": {"spec": {"replicas": 0, "selector": selector, "template": template(labels)}},
        "replicasets": {"spec": {"replicas": 0, "selector": selector, "template": template(labels)}},
        "statefulsets": {"spec": {"replicas": 0, "serviceName": name, "selector": selector,
                                  "template": template(labels)}},
        "daemonsets": {"spec": {"selector": selector, "template": {
            "metadata": {"labels": labels}, "spec": {**pod_spec(), "nodeSelector": NO_NODE}}}},
        "jobs": {"spec": {"parallelism": 0, "template": {"spec": {**pod_spec(("true",)), "restartPolicy": "Never"}}}},
        "cronjobs": {"spec": {"schedule": "0 0 1 1 *", "suspend": True, "jobTemplate": {"spec": {
            "template": {"spec": {**pod_spec(("true",)), "restartPolicy": "Never"}}}}}},
        "persistentvolumeclaims": {"spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "tapio-none",
                                            "resources": {"requests": {"storage": "1Mi"}}}},
        "persistentvolumes": {"spec": {"capacity": {"storage": "1Mi"}, "accessModes": ["ReadWriteOnce"],
                                       "storageClassName": "tapio-other", "hostPath": {"path": "/tmp/tapio-pv"}}},
        "storageclasses": {"provisioner": "kubernetes.io/no-provisioner"},
        "ingresses": {"spec": {"defaultBackend": {"service": {"name": name, "port": {"number": 80}}}}},
        "networkpolicies": {"spec": {"podSelector": selector, "policyTypes": ["Ingress"]}},
        "horizontalpodautoscalers": {"spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                                                 "name": name},
                                              "minReplicas": 1, "maxReplicas": 2}},
    }
    api_version = OLDER_VERSION_ONLY.get(spec.name, spec.api_version)
    return {"apiVersion": api_version, "kind": spec.kind, "metadata": {"name": name, "labels": labels},
            **specs[spec.name]}


#: what the collector watches on 1.20: not Endpoints, a stand-in where EndpointSlices are not served
WATCHED = [s for s in KINDS if not s.instead_of]
OBJECT_KINDS = [s for s in WATCHED if s.kind != "Event"]


def kind_param(spec: KindSpec) -> Any:
    return pytest.param(spec, id=spec.name)


@pytest.fixture(scope="module")
def rest(real_cluster: RealCluster, namespace: str) -> Rest:
    return Rest(real_cluster)


@pytest.fixture(scope="module")
def collector(real_cluster: RealCluster, namespace: str) -> Iterator[Collector]:
    """One collector of every kind for the module's list + watch tests."""
    with Collector(str(real_cluster.kubeconfig)) as running:
        yield running


@pytest.mark.parametrize("spec", [kind_param(s) for s in OBJECT_KINDS])
def test_every_kind_is_listed_and_watched(spec: KindSpec, collector: Collector, rest: Rest, namespace: str) -> None:
    collector.wait_listed([spec.name], timeout=20)
    name = f"kr-{spec.plural[:20]}-{uuid.uuid4().hex[:6]}"
    path = collection(spec, namespace, OLDER_VERSION_ONLY.get(spec.name))
    created = rest.call("POST", path, body_of(spec, name))
    uid, first_rv = created["metadata"]["uid"], created["metadata"]["resourceVersion"]
    until_sync(lambda: ("ADDED", first_rv) in actions(collector.of(uid)), timeout=20,
               what=lambda: f"ADDED {spec.kind} {name} at {first_rv}; have {actions(collector.of(uid))}")

    modified = rest.call("PATCH", f"{path}/{name}", {"metadata": {"labels": {"tapio.test/changed": "yes"}}})
    changed_rv = modified["metadata"]["resourceVersion"]
    until_sync(lambda: ("MODIFIED", changed_rv) in actions(collector.of(uid)), timeout=20,
               what=lambda: f"MODIFIED {spec.kind} {name} at {changed_rv}; have {actions(collector.of(uid))}")

    rest.call("DELETE", f"{path}/{name}", {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0,
                                           "propagationPolicy": "Background"})
    until_sync(lambda: "DELETED" in [a for a, _ in actions(collector.of(uid))], timeout=60,
               what=lambda: f"DELETED {spec.kind} {name}; have {actions(collector.of(uid))}")

    events = collector.of(uid)
    for event in events:
        meta = event.metadata
        served = OLDER_VERSION_ONLY.get(spec.name, spec.api_version)
        assert (meta["kind"], meta["name"], meta["api_version"]) == (spec.kind, name, served)
        assert meta["namespace"] == (namespace if namespaced(spec) else "")
        assert event.type == "kubeapi" and meta["source"].endswith(f"/{spec.name}")
    seen = actions(events)
    assert seen[0] == ("ADDED", first_rv) and seen[-1][0] == "DELETED", seen
    assert all(a == "MODIFIED" for a, _ in seen[1:-1]), seen
    versions = [int(rv) for _, rv in seen]
    assert versions == sorted(set(versions)), f"out of order or twice: {seen}"
    if spec.kind == "Secret":
        assert b"not-this" not in b"".join(e.data for e in events)


def test_events_of_a_real_pod_come_from_both_event_apis(collector: Collector, rest: Rest, namespace: str) -> None:
    collector.wait_listed(["events", "events.events.k8s.io"])
    name = f"kr-evented-{uuid.uuid4().hex[:6]}"
    pod = rest.call("POST", f"/api/v1/namespaces/{namespace}/pods",
                    {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": pod_spec()})
    pod_uid = pod["metadata"]["uid"]

    def about_the_pod() -> list[RawEvent]:
        return [e for e in collector.events if e.metadata.get("involved_uid") == pod_uid]

    wanted = {"Scheduled", "Pulled", "Created", "Started"}
    until_sync(lambda: {e.metadata["reason"] for e in about_the_pod()} >= wanted, timeout=90,
               what=lambda: f"events {sorted(wanted)} of pod {name}; have {[e.metadata['reason'] for e in about_the_pod()]}")
    for event in about_the_pod():
        meta = event.metadata
        assert meta["action"] == "EVENT" and meta["kind"] == "Event"
        assert meta["namespace"] == namespace and meta["involved_name"] == name and meta["involved_kind"] == "Pod"
        assert meta["uid"] and meta["resource_version"]
    scheduled = next(e for e in about_the_pod() if e.metadata["reason"] == "Scheduled")
    assert scheduled.metadata["reporting_component"] == "default-scheduler"
    started = next(e for e in about_the_pod() if e.metadata["reason"] == "Started")
    assert started.metadata["reporting_component"] == "kubelet" and started.metadata["node"] == "localhost"

    def by_api() -> dict[str, dict[str, str]]:
        ids: dict[str, dict[str, str]] = {"events": {}, "events.events.k8s.io": {}}
        for event in about_the_pod():
            ids[event.metadata["source"].rsplit("/", 1)[-1]][event.metadata["uid"]] = event.id
        return ids

    ids = until_sync(lambda: (lambda i: i if set(i["events.events.k8s.io"]) >= set(i["events"]) else None)(by_api()),
                     timeout=20, what=lambda: f"each Event through events.k8s.io/v1 too: {by_api()}")
    for uid, core_id in ids["events"].items():  # one Event, two APIs: one observation, one id
        assert ids["events.events.k8s.io"][uid] == core_id
    rest.call("DELETE", f"/api/v1/namespaces/{namespace}/pods/{name}", {"gracePeriodSeconds": 0})


# -- 410 Gone ----------------------------------------------------------------------------------


class CuttableProxy:
    """A TCP relay to the API server that a test can cut (every connection closed, new ones
    refused) and restore: a network partition between the collector and the server. TLS goes
    through unchanged (the server's certificate names 127.0.0.1)."""

    def __init__(self, upstream: str) -> None:
        host, port = upstream.removeprefix("https://").rsplit(":", 1)
        self.upstream = (host, int(port))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.open = True
        self.conns: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True, name="proxy-accept").start()

    def _accept(self) -> None:
        while True:
            try:
                down, _ = self.listener.accept()
            except OSError:
                return  # closed
            with self._lock:
                if not self.open:
                    down.close()
                    continue
                up = socket.create_connection(self.upstream)
                self.conns += [down, up]
            for a, b in ((down, up), (up, down)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True, name="proxy-pump").start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        with self._lock:
            self.open = False
            conns, self.conns = self.conns, []
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def restore(self) -> None:
        with self._lock:
            self.open = True

    def close(self) -> None:
        self.cut()
        self.listener.close()


def compact_etcd(cluster: RealCluster, revision: str) -> None:
    """Compact etcd's history up to `revision` (a resourceVersion is an etcd revision), through etcd's gateway."""
    http = urllib3.PoolManager()
    resp = http.request("POST", f"{cluster.etcd_url}/v3/kv/compaction",
                        body=json.dumps({"revision": revision, "physical": True}), timeout=10)
    assert resp.status == 200, f"etcd compaction: HTTP {resp.status} {resp.data[:300]!r}"


def test_410_gone_relists_and_loses_nothing(real_cluster: RealCluster, rest: Rest, namespace: str, tmp_path: Path,
                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="collectors.watching")
    assert real_cluster.pki is not None
    proxy = CuttableProxy(real_cluster.server)
    config = write_kubeconfig(tmp_path / "proxied.kubeconfig", server=f"https://127.0.0.1:{proxy.port}",
                              ca_crt=real_cluster.pki.ca_crt, who=real_cluster.pki.admin)
    tag = uuid.uuid4().hex[:6]
    try:
        with Collector(str(config), kinds=["configmaps"]) as running:
            running.wait_listed(["configmaps"])
            x, y = (make(rest, namespace, "ConfigMap", f"gone-{tag}-{n}", data={"k": "1"}) for n in "xy")
            until_sync(lambda: running.of(x["metadata"]["uid"]) and running.of(y["metadata"]["uid"]), timeout=20,
                       what="x and y ADDED")
            resume_at = running.watcher("configmaps").resource_version
            proxy.cut()  # the collector cannot reach the server; meanwhile x changes, y goes, z comes
            x2 = rest.call("PATCH", f"/api/v1/namespaces/{namespace}/configmaps/gone-{tag}-x", {"data": {"k": "2"}})
            rest.call("DELETE", f"/api/v1/namespaces/{namespace}/configmaps/gone-{tag}-y")
            z = make(rest, namespace, "ConfigMap", f"gone-{tag}-z", data={"k": "1"})
            compact_etcd(real_cluster, z["metadata"]["resourceVersion"])  # history up to z is gone
            assert int(resume_at) < int(z["metadata"]["resourceVersion"])
            proxy.restore()

            def caught_up() -> list[tuple[str, str]]:
                got = [(e.metadata["name"], e.metadata["action"]) for e in running.events
                       if e.metadata["name"].startswith(f"gone-{tag}-")]
                return got if len(got) >= 5 else []  # x, y ADDED; then the gap: x, y, z

            got = until_sync(caught_up, timeout=60, what=lambda: f"the gap's changes; have {caught_up()}")
            after = [e for e in running.events if e.metadata["name"].startswith(f"gone-{tag}-")][2:]
    finally:
        proxy.close()
    assert sorted(got[2:]) == [(f"gone-{tag}-x", "MODIFIED"), (f"gone-{tag}-y", "DELETED"),
                               (f"gone-{tag}-z", "ADDED")], got
    modified = next(e for e in after if e.metadata["action"] == "MODIFIED")
    assert modified.metadata["resource_version"] == x2["metadata"]["resourceVersion"]
    assert any("410" in r.getMessage() or "too old" in r.getMessage() for r in caplog.records), \
        [r.getMessage() for r in caplog.records]
    assert any("gone in the gap" in r.getMessage() for r in caplog.records)  # a relist, not a resumed watch


# -- RBAC: docker/rbac.yaml, applied -----------------------------------------------------------

RBAC = Path(__file__).resolve().parents[2] / "docker" / "rbac.yaml"
RBAC_PATHS = {"Namespace": "/api/v1/namespaces", "ServiceAccount": "/api/v1/namespaces/tapio/serviceaccounts",
              "ClusterRole": "/apis/rbac.authorization.k8s.io/v1/clusterroles",
              "ClusterRoleBinding": "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings"}
WRITE_VERBS = ("create", "update", "patch", "delete", "deletecollection")
#: what the collector does not read: none of these may be allowed (group, resource, subresource, verb)
NOT_ITS_BUSINESS = [("", "podtemplates", "", "list"), ("", "serviceaccounts", "", "list"), ("", "pods", "log", "get"),
                    ("", "pods", "exec", "create"), ("", "nodes", "proxy", "get"), ("", "secrets", "", "create"),
                    ("rbac.authorization.k8s.io", "clusterroles", "", "list"),
                    ("rbac.authorization.k8s.io", "rolebindings", "", "watch"),
                    ("coordination.k8s.io", "leases", "", "list"), ("policy", "podsecuritypolicies", "", "list"),
                    ("apiextensions.k8s.io", "customresourcedefinitions", "", "list"),
                    ("authentication.k8s.io", "tokenreviews", "", "create"), ("*", "*", "", "get")]


def apply_rbac(rest: Rest, docs: list[dict]) -> None:
    for doc in docs:
        status = rest.status("POST", RBAC_PATHS[doc["kind"]], doc)
        assert status in (201, 409), f"{doc['kind']} {doc['metadata']['name']}: HTTP {status}"  # 409: made before


def service_account_kubeconfig(cluster: RealCluster, rest: Rest, name: str, folder: Path) -> Path:
    """A kubeconfig with the token the token controller made for ServiceAccount tapio/<name>."""
    assert cluster.pki is not None

    def secret() -> str:
        return "".join(s["name"] for s in rest.call("GET", f"{RBAC_PATHS['ServiceAccount']}/{name}").get("secrets") or [])

    token_secret = until_sync(secret, timeout=30, what=f"the token controller's Secret for ServiceAccount tapio/{name}")
    data = rest.call("GET", f"/api/v1/namespaces/tapio/secrets/{token_secret}")["data"]
    who = Identity(user=f"system:serviceaccount:tapio:{name}", groups=(), token=base64.b64decode(data["token"]).decode())
    return write_kubeconfig(folder / f"{name}.kubeconfig", server=cluster.server, ca_crt=cluster.pki.ca_crt, who=who)


def can_i(rest: Rest, verb: str, group: str, resource: str, subresource: str = "") -> bool:
    review = rest.call("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", {
        "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {"verb": verb, "group": group, "resource": resource,
                                        "subresource": subresource}}})
    return bool(review["status"].get("allowed"))


def token_of(kubeconfig: Path) -> str:
    return str(json.loads(kubeconfig.read_text())["users"][0]["user"]["token"])


@pytest.fixture(scope="module")
def rbac_docs() -> list[dict]:
    return list(yaml.safe_load_all(RBAC.read_text()))


def test_the_rbac_of_docker_rbac_yaml_lets_it_read_every_kind_and_nothing_more(
        real_cluster: RealCluster, rest: Rest, rbac_docs: list[dict], namespace: str, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    apply_rbac(rest, rbac_docs)
    config = service_account_kubeconfig(real_cluster, rest, "tapio", tmp_path)
    as_tapio = Rest(real_cluster, token=token_of(config))
    for spec in KINDS:
        for verb in ("get", "list", "watch"):
            assert can_i(as_tapio, verb, spec.group, spec.plural), f"cannot {verb} {spec.name}"
        for verb in WRITE_VERBS:
            assert not can_i(as_tapio, verb, spec.group, spec.plural), f"can {verb} {spec.name}"
    for group, resource, subresource, verb in NOT_ITS_BUSINESS:
        assert not can_i(as_tapio, verb, group, resource, subresource), f"can {verb} {group}/{resource}/{subresource}"

    caplog.set_level(logging.INFO, logger="collectors.watching")
    served = [s.name for s in WATCHED]
    with Collector(str(config)) as running:
        running.wait_listed(served)
        cm = make(rest, namespace, "ConfigMap", f"as-tapio-{uuid.uuid4().hex[:6]}", data={"k": "v"})
        until_sync(lambda: ("ADDED", cm["metadata"]["resourceVersion"]) in actions(running.of(cm["metadata"]["uid"])),
                   timeout=20, what="a new ConfigMap through the watch, as tapio/tapio")
    forbidden = [r.getMessage() for r in caplog.records if "403" in r.getMessage()]
    assert forbidden == []


def test_a_forbidden_kind_is_said_once_and_the_others_go_on(
        real_cluster: RealCluster, rest: Rest, rbac_docs: list[dict], namespace: str, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    docs = {d["kind"]: copy.deepcopy(d) for d in rbac_docs}
    role, binding, account = docs["ClusterRole"], docs["ClusterRoleBinding"], docs["ServiceAccount"]
    role["rules"] = [r for r in role["rules"] if r["apiGroups"] != ["storage.k8s.io"]]  # no storageclasses
    role["metadata"]["name"] = binding["metadata"]["name"] = binding["roleRef"]["name"] = "tapio-less"
    account["metadata"]["name"] = binding["subjects"][0]["name"] = "tapio-less"
    apply_rbac(rest, [docs["Namespace"], account, role, binding])
    config = service_account_kubeconfig(real_cluster, rest, "tapio-less", tmp_path)

    caplog.set_level(logging.DEBUG, logger="collectors.watching")
    served = [s.name for s in WATCHED if s.name != "storageclasses"]
    with Collector(str(config)) as running:
        running.wait_listed(served)
        cm = make(rest, namespace, "ConfigMap", f"still-{uuid.uuid4().hex[:6]}", data={"k": "v"})
        until_sync(lambda: running.of(cm["metadata"]["uid"]), timeout=20, what="a ConfigMap seen all the same")
        storage = running.watcher("storageclasses")
        until_sync(lambda: len([r for r in caplog.records if "kubeapi storageclasses" in r.getMessage()]) >= 4,
                   timeout=30, what="the list of storageclasses tried four times")
        assert not storage.listed
    said = [r for r in caplog.records if "storageclasses" in r.getMessage() and r.levelno >= logging.WARNING]
    assert len(said) == 1, [r.getMessage() for r in said]
    message = said[0].getMessage()
    for words in ("storageclasses", "storage.k8s.io", "list", "system:serviceaccount:tapio:tapio-less"):
        assert words in message, message


# -- a restart ---------------------------------------------------------------------------------


@pytest.mark.parametrize("compacted", [False, True], ids=["history-kept", "history-compacted"])
def test_a_restarted_collector_sees_what_changed_while_it_was_down_once(real_cluster: RealCluster, rest: Rest,
                                                                        namespace: str, tmp_path: Path,
                                                                        compacted: bool,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    """Stopped, then started again with the resume file of `tapio collect kubeapi`: it watches from
    where it stopped, and sees each change made meanwhile once. With etcd's history compacted the
    ConfigMaps (no watch cache) get a 410 and are listed and compared with the resume point."""
    caplog.set_level(logging.INFO, logger="collectors.watching")
    kinds = ["configmaps", "secrets"]  # configmaps come from etcd (no watch cache), secrets from the cache
    tag = uuid.uuid4().hex[:6]
    names = {f"{kind.lower()}-{tag}-{n}": kind for kind in ("ConfigMap", "Secret") for n in "abc"}
    resume = ResumeFile(tmp_path / "kubeapi-resume.json")  # what `tapio collect kubeapi` keeps in its state dir
    with Collector(str(real_cluster.kubeconfig), kinds=kinds, resume=resume) as first:
        first.wait_listed(kinds)
        objs = {name: make(rest, namespace, kind, name, data={"k": "djE="}) for name, kind in names.items()}
        uids = {name: o["metadata"]["uid"] for name, o in objs.items()}
        until_sync(lambda: all(first.of(uid) for uid in uids.values()), timeout=20, what="every object ADDED")
    before = first.events

    # while the collector is down: a changes, b goes, d comes; c stays as it was
    changed: dict[str, str] = {}
    for kind, plural in (("ConfigMap", "configmaps"), ("Secret", "secrets")):
        path = f"/api/v1/namespaces/{namespace}/{plural}"
        a = rest.call("PATCH", f"{path}/{kind.lower()}-{tag}-a", {"data": {"k": "djI="}})
        changed[a["metadata"]["uid"]] = a["metadata"]["resourceVersion"]
        rest.call("DELETE", f"{path}/{kind.lower()}-{tag}-b")
        d = make(rest, namespace, kind, f"{kind.lower()}-{tag}-d", data={"k": "djE="})
        changed[d["metadata"]["uid"]] = d["metadata"]["resourceVersion"]
    if compacted:
        compact_etcd(real_cluster, max(changed.values(), key=int))
    gone = {uids[f"{kind.lower()}-{tag}-b"] for kind in ("ConfigMap", "Secret")}
    same = {uids[f"{kind.lower()}-{tag}-c"] for kind in ("ConfigMap", "Secret")}

    with Collector(str(real_cluster.kubeconfig), kinds=kinds, resume=resume) as second:
        second.wait_listed(kinds)

        def caught_up() -> bool:
            return (all(rv in [v for _, v in actions(second.of(uid))] for uid, rv in changed.items())
                    and all("DELETED" in [a for a, _ in actions(second.of(uid))] for uid in gone))

        until_sync(caught_up, timeout=20, what=lambda: "the changes made while down: " + str(
            {uid: actions(second.of(uid)) for uid in [*changed, *gone]}))
        ours = set(uids.values()) | set(changed)
        after = [e for e in second.events if e.metadata["uid"] in ours]
    known = {e.id for e in before}
    news = sorted((e.metadata["name"], e.metadata["action"]) for e in after if e.id not in known)
    expected = sorted((f"{kind.lower()}-{tag}-{n}", action) for kind in ("ConfigMap", "Secret")
                      for n, action in (("a", "MODIFIED"), ("b", "DELETED"), ("d", "ADDED")))
    assert [name for name, _ in news] == [name for name, _ in expected], "only the changes are news, each once"
    assert not [e for e in after if e.metadata["uid"] in same and e.id not in known], "c did not change"
    relisted = [r.getMessage() for r in caplog.records if "gone in the gap" in r.getMessage()]
    if compacted:  # the ConfigMaps were listed and compared with the resume point; the Secrets resumed
        assert len(relisted) == 1 and "kubeapi configmaps" in relisted[0], relisted
    else:
        assert relisted == []
    assert not [r for r in caplog.records if "snapshot" in r.getMessage()][len(kinds):], "listed afresh on restart"
