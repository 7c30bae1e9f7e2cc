"""Pure tests of topology.relations and topology.index: nodes, edges, keys, and the change each object
brings (`ObjectIndex.add` / `remove`, as the topology service calls them), on the scenario and real pods."""

from __future__ import annotations

import base64
import copy
import json
import random
from pathlib import Path

import msgspec
import pytest

from topology.index import ObjectIndex
from topology.relations import Edge, TopologyChange, object_node

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "patterns" / "scenarios" / "configmap-crashloop"
REALDATA = Path(__file__).resolve().parents[3] / "shared" / "realdata"
PODS = REALDATA / "troubleshoot" / "pkg" / "analyze" / "files" / "pods"

POD_NODES = {"4xk2p": "node-a", "hx2lc": "node-a", "9qwzt": "node-b", "r5ntv": "node-b",
             "b7mfd": "node-c", "zk8sj": "node-c"}


def scenario_items() -> list[dict]:
    return json.loads((SCENARIO / "objects.json").read_text())["items"]


def build(items: list[dict]) -> ObjectIndex:
    index = ObjectIndex()
    for obj in items:
        index.add(obj)
    return index


def readable(edges: list[Edge], items: list[dict]) -> set[tuple[str, str, str]]:
    """(type, src, dst) with uids shown as Kind/name (synthetic keys stay as they are)."""
    names = {o["metadata"]["uid"]: f"{o['kind']}/{o['metadata']['name']}" for o in items}
    return {(e.type, names.get(e.src_key, e.src_key), names.get(e.dst_key, e.dst_key)) for e in edges}


def expected_scenario_edges() -> set[tuple[str, str, str]]:
    expected = {("OWNS", "Deployment/nginx", "ReplicaSet/nginx-7c9d8f6b5d"),
                ("ROUTES_TO", "Ingress/shop-ingress", "Service/frontend")}
    for suffix, node in POD_NODES.items():
        pod = f"Pod/nginx-7c9d8f6b5d-{suffix}"
        expected |= {
            ("OWNS", "ReplicaSet/nginx-7c9d8f6b5d", pod),
            ("RUNS_ON", pod, f"Node/{node}"),
            ("MOUNTS", pod, "ConfigMap/nginx-config"),
            ("MOUNTS", pod, "ConfigMap:shop/kube-root-ca.crt"),  # projected service-account volume, not in the list
            ("SELECTS", "Service/frontend", pod),
        }
    return expected


def pod(name: str, *, ns: str = "shop", labels: dict | None = None, uid: str | None = None, **spec: object) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "uid": uid or f"uid-{name}", "labels": labels or {}},
            "spec": {"containers": [{"name": "main", "image": "busybox"}], **spec}}


def obj(kind: str, name: str, *, ns: str = "shop", uid: str | None = None, **body: object) -> dict:
    meta = {"name": name, "uid": uid or f"uid-{name}", **({"namespace": ns} if ns else {})}
    return {"kind": kind, "metadata": meta, **body}


def triples(edges: list[Edge]) -> set[tuple[str, str, str]]:
    return {(e.type, e.src_key, e.dst_key) for e in edges}


# -- the scenario -------------------------------------------------------------------------------


def test_scenario_edges_exactly() -> None:
    items = scenario_items()
    index = build(items)
    assert len(index) == 15
    assert readable(index.edges(), items) == expected_scenario_edges()
    assert len(index.edges()) == 32  # MOUNTS kube-root-ca.crt differ per pod (volume name), nothing doubled
    # the changes of the build, applied in order as the graph writer applies them, leave the same edge set
    graph: dict[str, Edge] = {}
    fresh = ObjectIndex()
    for o in items:
        change = fresh.add(o)
        for edge in change.remove_edges:
            del graph[edge.id]
        graph.update({edge.id: edge for edge in change.add_edges})
    assert sorted(graph) == [e.id for e in index.edges()]


def test_scenario_edge_props_and_keys() -> None:
    items = scenario_items()
    index = build(items)
    by_type = {}
    for edge in index.edges():
        by_type.setdefault(edge.type, []).append(edge)
    (route,) = by_type["ROUTES_TO"]
    assert route.props == {"host": "shop.example.com", "path": "/", "port": 80}
    assert route.dst_key == "43a5772b-66b2-4f84-b451-cf3d08ee9321"  # Service uid, resolved by name
    config = [e for e in by_type["MOUNTS"] if e.dst_key == "f3cf92ca-fd30-4536-b649-d092f11fab1f"]
    assert {msgspec.json.encode(e.props, order="sorted") for e in config} == {b'{"via":"volume","volume":"config"}'}
    assert {e.dst_kind for e in by_type["RUNS_ON"]} == {"Node"}


@pytest.mark.parametrize("seed", [None, 1, 2, 3])
def test_order_independence(seed: int | None) -> None:
    items = scenario_items()
    forward = build(items)
    shuffled = list(reversed(items)) if seed is None else random.Random(seed).sample(items, len(items))
    other = build(shuffled)
    assert [e.id for e in other.edges()] == [e.id for e in forward.edges()]


def test_late_configmap_rekeys_synthetic_edges_and_aliases() -> None:
    items = scenario_items()
    config = next(o for o in items if o["kind"] == "ConfigMap")
    index = build([o for o in items if o is not config])
    synthetic = "ConfigMap:shop/nginx-config"
    assert sum(e.dst_key == synthetic for e in index.edges()) == 6

    change = index.add(config)
    assert [n.uid for n in change.upsert] == [config["metadata"]["uid"]]
    assert {e.dst_key for e in change.remove_edges} == {synthetic} and len(change.remove_edges) == 6
    assert {e.dst_key for e in change.add_edges} == {config["metadata"]["uid"]} and len(change.add_edges) == 6
    (alias,) = change.aliases
    assert (alias.synthetic_key, alias.uid, alias.kind, alias.name) == (
        synthetic, config["metadata"]["uid"], "ConfigMap", "nginx-config")
    assert readable(index.edges(), items) == expected_scenario_edges()


def test_placeholders_for_unseen_endpoints() -> None:
    index = ObjectIndex()
    change = index.add(pod("web", nodeName="node-x", volumes=[{"name": "c", "configMap": {"name": "cfg"}}]))
    assert {(n.kind, n.uid, n.name, n.namespace) for n in change.placeholders} == {
        ("Node", "Node:/node-x", "node-x", ""), ("ConfigMap", "ConfigMap:shop/cfg", "cfg", "shop")}
    node_change = index.add(obj("Node", "node-x", ns="", uid="n-1"))
    assert triples(node_change.remove_edges) == {("RUNS_ON", "uid-web", "Node:/node-x")}
    assert triples(node_change.add_edges) == {("RUNS_ON", "uid-web", "n-1")}
    assert node_change.placeholders == []


def test_replaying_the_same_object_changes_nothing() -> None:
    items = scenario_items()
    index = build(items)
    for item in items:
        change = index.add(item)
        assert change.add_edges == [] and change.remove_edges == [] and change.aliases == []
        assert len(change.upsert) == 1


# -- updates move edges ---------------------------------------------------------------------------


def test_pod_label_change_moves_selects() -> None:
    items = scenario_items()
    index = build(items)
    first = copy.deepcopy(next(o for o in items if o["kind"] == "Pod"))
    first["metadata"]["labels"] = {"app": "debug"}
    change = index.add(first)
    frontend = "43a5772b-66b2-4f84-b451-cf3d08ee9321"
    assert triples(change.remove_edges) == {("SELECTS", frontend, first["metadata"]["uid"])}
    assert change.add_edges == []
    first["metadata"]["labels"] = {"app": "nginx"}
    assert triples(index.add(first).add_edges) == triples(change.remove_edges)


def test_pod_deletion_lists_all_its_edges() -> None:
    items = scenario_items()
    index = build(items)
    victim = next(o for o in items if o["kind"] == "Pod")
    uid = victim["metadata"]["uid"]
    change = index.remove(victim)
    assert [n.uid for n in change.deleted] == [uid] and change.upsert == [] and change.add_edges == []
    assert {e.type for e in change.remove_edges} == {"OWNS", "RUNS_ON", "MOUNTS", "SELECTS"}
    assert len(change.remove_edges) == 5
    assert all(uid in (e.src_key, e.dst_key) for e in change.remove_edges)
    assert not any(uid in (e.src_key, e.dst_key) for e in index.edges())
    assert len(index.edges()) == 27


def test_deleted_configmap_leaves_dangling_references_on_the_synthetic_key() -> None:
    items = scenario_items()
    index = build(items)
    config = next(o for o in items if o["kind"] == "ConfigMap")
    change = index.remove(config)
    assert {e.dst_key for e in change.remove_edges} == {config["metadata"]["uid"]}
    assert {e.dst_key for e in change.add_edges} == {"ConfigMap:shop/nginx-config"}
    assert {n.uid for n in change.placeholders} == {"ConfigMap:shop/nginx-config"}


def test_deleted_owner_drops_owns_even_when_owned_pods_change_later() -> None:
    items = scenario_items()
    index = build(items)
    replicaset = next(o for o in items if o["kind"] == "ReplicaSet")
    change = index.remove(replicaset)
    assert sorted(e.type for e in change.remove_edges) == ["OWNS"] * 7
    pod_update = copy.deepcopy(next(o for o in items if o["kind"] == "Pod"))
    pod_update["status"]["phase"] = "Failed"
    again = index.add(pod_update)
    assert again.add_edges == [] and again.remove_edges == []


def test_new_service_selects_existing_pods_and_new_pods_join() -> None:
    index = build([pod("a", labels={"app": "web"}), pod("b", labels={"app": "web", "tier": "x"}),
                   pod("c", labels={"app": "db"}), pod("d", ns="other", labels={"app": "web"})])
    change = index.add(obj("Service", "web", spec={"selector": {"app": "web"}}))
    assert triples(change.add_edges) == {("SELECTS", "uid-web", "uid-a"), ("SELECTS", "uid-web", "uid-b")}
    assert triples(index.add(pod("e", labels={"app": "web"})).add_edges) == {
        ("SELECTS", "uid-web", "uid-e")}
    # a Service without a selector selects nothing
    assert index.add(obj("Service", "manual", spec={})).add_edges == []


def test_recreated_object_under_same_name_rekeys_edges() -> None:
    index = build([pod("a", labels={"app": "web"}), obj("Service", "web", spec={"selector": {"app": "web"}})])
    change = index.add(pod("a", labels={"app": "web"}, uid="uid-a2"))
    assert [n.uid for n in change.deleted] == ["uid-a"]
    assert triples(change.remove_edges) == {("SELECTS", "uid-web", "uid-a")}
    assert triples(change.add_edges) == {("SELECTS", "uid-web", "uid-a2")}


# -- relation kinds -----------------------------------------------------------------------------------


def test_network_policy_selector_semantics() -> None:
    pods = [pod("a", labels={"app": "web", "env": "prod"}), pod("b", labels={"app": "web", "env": "dev"}),
            pod("c", labels={"app": "db"}), pod("d", labels={"app": "web", "canary": "1"}),
            pod("x", ns="other", labels={"app": "web"})]

    def selected(selector: dict | None) -> set[str]:
        policy = obj("NetworkPolicy", "np", spec={} if selector is None else {"podSelector": selector})
        return {e.dst_key.removeprefix("uid-") for e in build(pods + [policy]).edges() if e.type == "APPLIES_TO"}

    assert selected({}) == {"a", "b", "c", "d"}  # empty selector: every pod of the namespace
    assert selected(None) == {"a", "b", "c", "d"}
    assert selected({"matchLabels": {"app": "web"}}) == {"a", "b", "d"}
    def expr(key: str, op: str, *values: str) -> dict:
        return {"matchExpressions": [{"key": key, "operator": op, "values": list(values)}]}

    assert selected(expr("env", "In", "prod", "staging")) == {"a"}
    assert selected(expr("env", "NotIn", "prod")) == {"b", "c", "d"}  # NotIn matches pods without the label
    assert selected(expr("canary", "Exists")) == {"d"}
    assert selected(expr("env", "DoesNotExist")) == {"c", "d"}
    assert selected(expr("env", "Bogus", "x")) == set()
    both = {"matchLabels": {"app": "web"}, **expr("env", "Exists")}
    assert selected(both) == {"a", "b"}


def test_pod_mounts_and_secrets_from_every_source() -> None:
    spec = {
        "volumes": [
            {"name": "cfg", "configMap": {"name": "app-config", "items": [{"key": "a.yaml", "path": "a"}]}},
            {"name": "tls", "secret": {"secretName": "tls-cert"}},
            {"name": "bundle", "projected": {"sources": [
                {"configMap": {"name": "ca-bundle"}},
                {"secret": {"name": "token", "items": [{"key": "t", "path": "t"}]}},
                {"serviceAccountToken": {"path": "token"}}]}},
            {"name": "data", "persistentVolumeClaim": {"claimName": "data-pvc"}},
            {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}},
        ],
        "initContainers": [{"name": "init", "envFrom": [{"configMapRef": {"name": "init-env"}}]}],
        "containers": [{"name": "main", "env": [
            {"name": "LEVEL", "valueFrom": {"configMapKeyRef": {"name": "app-config", "key": "level"}}},
            {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
            {"name": "PLAIN", "value": "x"}], "envFrom": [{"secretRef": {"name": "api-keys"}}]}],
        "ephemeralContainers": [{"name": "debug", "env": [
            {"name": "DBG", "valueFrom": {"configMapKeyRef": {"name": "debug-config", "key": "on"}}}]}],
        "imagePullSecrets": [{"name": "registry"}],
    }
    edges = ObjectIndex().add(pod("p", **spec)).add_edges
    got = {(e.type, e.dst_key, e.props.get("via"), e.props.get("key")) for e in edges}
    assert got == {
        ("MOUNTS", "ConfigMap:shop/app-config", "volume", "a.yaml"),
        ("MOUNTS", "ConfigMap:shop/app-config", "env", "level"),
        ("USES_SECRET", "Secret:shop/tls-cert", "volume", None),
        ("MOUNTS", "ConfigMap:shop/ca-bundle", "projected", None),
        ("USES_SECRET", "Secret:shop/token", "projected", "t"),
        ("CLAIMS", "PersistentVolumeClaim:shop/data-pvc", None, None),
        ("CLAIMS", "PersistentVolumeClaim:shop/p-scratch", "ephemeral", None),
        ("MOUNTS", "ConfigMap:shop/init-env", "envFrom", None),
        ("USES_SECRET", "Secret:shop/db", "env", "password"),
        ("USES_SECRET", "Secret:shop/api-keys", "envFrom", None),
        ("MOUNTS", "ConfigMap:shop/debug-config", "env", "on"),
        ("USES_SECRET", "Secret:shop/registry", "imagePullSecret", None),
    }
    assert all(e.src_key == "uid-p" and e.src_kind == "Pod" for e in edges)


def test_storage_chain_pvc_pv_storageclass() -> None:
    pvc = obj("PersistentVolumeClaim", "data", spec={"volumeName": "pv-1", "storageClassName": "fast",
                                                     "resources": {"requests": {"storage": "1Gi"}}})
    pv = obj("PersistentVolume", "pv-1", ns="", spec={
        "storageClassName": "fast", "capacity": {"storage": "1Gi"},
        "claimRef": {"kind": "PersistentVolumeClaim", "namespace": "shop", "name": "data", "uid": "uid-data"}})
    sc = obj("StorageClass", "fast", ns="", provisioner="ebs.csi.aws.com")
    user = pod("db", volumes=[{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}])
    expected = {("CLAIMS", "uid-db", "uid-data"), ("BOUND_TO", "uid-data", "uid-pv-1"),
                ("USES", "uid-data", "uid-fast"), ("USES", "uid-pv-1", "uid-fast")}
    for order in ([user, pvc, pv, sc], [sc, pv, pvc, user], [pv, user, sc, pvc]):
        assert triples(build(order).edges()) == expected
    # BOUND_TO is declared by both the PVC and the PV: it stays while either declares it
    index = build([user, pvc, pv, sc])
    released = copy.deepcopy(pv)
    del released["spec"]["claimRef"]
    change = index.add(released)
    assert change.add_edges == [] and change.remove_edges == []
    assert ("BOUND_TO", "uid-data", "uid-pv-1") in triples(index.edges())
    # a deleted PVC: all its edges go; the pod now claims a PVC that does not exist
    gone = index.remove(pvc)
    assert triples(gone.remove_edges) == {("CLAIMS", "uid-db", "uid-data"), ("BOUND_TO", "uid-data", "uid-pv-1"),
                                          ("USES", "uid-data", "uid-fast")}
    assert triples(gone.add_edges) == {("CLAIMS", "uid-db", "PersistentVolumeClaim:shop/data")}
    assert object_node(pvc).props["storage"] == "1Gi" and object_node(sc).props["provisioner"] == "ebs.csi.aws.com"


def test_ingress_routes_hpa_scales_owner_kinds() -> None:
    ingress = obj("Ingress", "web", spec={
        "defaultBackend": {"service": {"name": "fallback", "port": {"name": "http"}}},
        "tls": [{"hosts": ["a.example"], "secretName": "a-tls"}],
        "rules": [{"host": "a.example", "http": {"paths": [
            {"path": "/api", "backend": {"service": {"name": "api", "port": {"number": 8080}}}},
            {"path": "/", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]})
    legacy = obj("Ingress", "old", spec={"backend": {"serviceName": "web", "servicePort": 80}})
    hpa = obj("HorizontalPodAutoscaler", "web", spec={
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "minReplicas": 2})
    job = obj("Job", "nightly-1", spec={}, uid="job-1")
    job["metadata"]["ownerReferences"] = [{"kind": "CronJob", "name": "nightly", "uid": "cron-1"}]
    index = build([obj("Deployment", "web", spec={}), obj("Service", "web", spec={})])
    ingress_edges = index.add(ingress).add_edges
    routes = {(e.dst_key, e.props.get("host"), e.props.get("path"), e.props.get("port"), e.props.get("via"))
              for e in ingress_edges if e.type == "ROUTES_TO"}
    assert routes == {("Service:shop/fallback", None, None, "http", "defaultBackend"),
                      ("Service:shop/api", "a.example", "/api", 8080, None),
                      ("uid-web", "a.example", "/", 80, None)}
    assert ("USES_SECRET", "uid-web", "Secret:shop/a-tls") in triples(ingress_edges)
    assert triples(index.add(legacy).add_edges) == {("ROUTES_TO", "uid-old", "uid-web")}
    (scales,) = index.add(hpa).add_edges
    assert (scales.type, scales.dst_kind, scales.dst_key) == ("SCALES", "Deployment", "uid-web")
    assert triples(index.add(job).add_edges) == {("OWNS", "cron-1", "job-1")}  # owner uid, though unseen


def test_node_props_are_flat_and_secrets_carry_key_names_only() -> None:
    secret_value = "hunter2-very-secret"
    secret = obj("Secret", "db", type="Opaque", data={"password": base64.b64encode(secret_value.encode()).decode()},
                 stringData={"token": secret_value})
    secret["metadata"]["annotations"] = {"kubectl.kubernetes.io/last-applied-configuration": secret_value}
    index = build(scenario_items())
    change = index.add(secret)
    assert change.upsert[0].props == {"type": "Opaque", "data_keys": ["password", "token"]}
    encoded = msgspec.json.encode(change).decode()
    assert secret_value not in encoded and base64.b64encode(secret_value.encode()).decode() not in encoded
    for item in scenario_items():
        node = object_node(item)
        for value in node.props.values():
            assert isinstance(value, (str, int, bool)) or (
                isinstance(value, list) and all(isinstance(v, str) for v in value)), (node.kind, value)
    nodes = {o["metadata"]["name"]: object_node(o) for o in scenario_items()}
    assert nodes["nginx"].props["revision"] == "1" and nodes["nginx"].props["replicas"] == 6
    assert nodes["nginx"].props["images"] == ["nginx:1.25.3"]
    assert nodes["nginx-config"].props["data_keys"] == ["nginx.conf"]
    assert nodes["frontend"].props["selector"] == ["app=nginx"] and nodes["frontend"].props["type"] == "ClusterIP"
    assert nodes["node-b"].props["conditions"][-1] == "Ready=True" and nodes["node-b"].props["cpu"] == "4"
    assert nodes["shop-ingress"].props["hosts"] == ["shop.example.com"]


def test_change_is_serializable() -> None:
    change = ObjectIndex().add(scenario_items()[7])
    assert msgspec.json.decode(msgspec.json.encode(change), type=TopologyChange) == change


# -- real pods (troubleshoot, minikube) ---------------------------------------------------------------


def real_pods(name: str) -> list[dict]:
    return json.loads((PODS / f"{name}.json").read_text())["items"]


def test_real_pods_edges() -> None:
    items = [p for f in sorted(PODS.glob("*.json")) for p in json.loads(f.read_text())["items"]]
    index = build(items)
    edges = triples(index.edges())
    oom = real_pods("message-oomkill-pod")[0]
    assert oom["metadata"]["name"] == "oom-kill-job3-gbb89"
    assert ("OWNS", "a85295e8-54e4-40a4-aeb0-b47c19f1a69f", oom["metadata"]["uid"]) in edges  # from its Job
    assert ("RUNS_ON", oom["metadata"]["uid"], "Node:/minikube") in edges
    owns = next(e for e in index.edges() if e.type == "OWNS" and e.dst_key == oom["metadata"]["uid"])
    assert owns.src_kind == "Job"
    failed_mount = real_pods("message-container-creating-failed-mount")[0]
    assert ("OWNS", "ed30f463-4614-41b3-b2b6-52f65e50b1d3", failed_mount["metadata"]["uid"]) in edges  # DaemonSet
    pending = real_pods("message-pending-pod-resources")[0]
    assert not any(e[0] == "RUNS_ON" and e[1] == pending["metadata"]["uid"] for e in edges)  # never scheduled
    assert ("OWNS", "f57de73f-8492-4118-b4da-b0f9d7408c9b", pending["metadata"]["uid"]) in edges  # ReplicaSet
    init = real_pods("message-pod-init-crashloop-backoff")[0]
    assert {e for e in edges if init["metadata"]["uid"] in e[1:]} == {
        ("RUNS_ON", init["metadata"]["uid"], "Node:/minikube"),
        ("MOUNTS", init["metadata"]["uid"], "ConfigMap:message-pod-init-crashloop-backoff/kube-root-ca.crt")}
    node = object_node(init)
    assert node.props["images"] == ["busybox:1.28", "nginx"] and node.props["qos"] == "BestEffort"
    assert object_node(oom).props["node"] == "minikube"
    # four pods on one unseen node: a single placeholder for it, whatever the order
    change = ObjectIndex().add(oom)
    assert {(n.kind, n.uid) for n in change.placeholders} == {
        ("Job", "a85295e8-54e4-40a4-aeb0-b47c19f1a69f"), ("Node", "Node:/minikube"),
        ("ConfigMap", "ConfigMap:message-oomkill-pod/kube-root-ca.crt")}


# -- property: the changes, applied by a writer, always equal a from-scratch build ---------------------


def extra_objects() -> list[dict]:
    return [
        obj("NetworkPolicy", "deny", spec={"podSelector": {"matchExpressions": [
            {"key": "app", "operator": "In", "values": ["nginx"]}]}}),
        obj("HorizontalPodAutoscaler", "nginx", spec={"scaleTargetRef": {"kind": "Deployment", "name": "nginx"}}),
        obj("ConfigMap", "kube-root-ca.crt", data={"ca.crt": "x"}),
        obj("PersistentVolumeClaim", "data", spec={"volumeName": "pv-1", "storageClassName": "fast"}),
        obj("PersistentVolume", "pv-1", ns="", spec={"claimRef": {"namespace": "shop", "name": "data",
                                                                  "uid": "uid-data"}}),
        pod("db", labels={"app": "nginx"}, volumes=[{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]),
        obj("Service", "all-nginx", spec={"selector": {"app": "nginx"}}),
    ]


@pytest.mark.parametrize("seed", range(8))
def test_random_changes_applied_by_a_writer_match_a_fresh_build(seed: int) -> None:
    rng = random.Random(seed)
    pool = scenario_items() + extra_objects()
    index, graph, live, dead = ObjectIndex(), {}, {}, {}
    for _ in range(150):
        item = copy.deepcopy(rng.choice(pool))
        uid = item["metadata"]["uid"]
        if uid in live and rng.random() < 0.3:
            change, deleted = index.remove(live.pop(uid)), True
            dead[uid] = item
        else:
            if item["kind"] == "Pod" and rng.random() < 0.4:
                item["metadata"]["labels"] = {"app": rng.choice(["nginx", "other"])}
            change, deleted = index.add(item), False
            live[uid] = item
            dead.pop(uid, None)
        for edge in change.remove_edges:
            assert edge.id in graph, "removed an edge the graph does not hold"
            del graph[edge.id]
        for edge in change.add_edges:
            assert edge.id not in graph, "added an edge the graph already holds"
            graph[edge.id] = edge
        if deleted:
            assert not any(uid in (e.src_key, e.dst_key) for e in graph.values())
    assert sorted(graph) == [e.id for e in index.edges()]
    fresh = ObjectIndex()
    for item in dead.values():
        fresh.remove(item)  # the same tombstones
    for item in rng.sample(list(live.values()), len(live)):
        fresh.add(item)
    assert [e.id for e in fresh.edges()] == [e.id for e in index.edges()]


def test_object_first_seen_without_uid_then_with_it() -> None:
    index = build([obj("Service", "web", spec={"selector": {"app": "web"}})])
    anonymous = pod("a", labels={"app": "web"})
    del anonymous["metadata"]["uid"]  # hand-written YAML
    index.add(anonymous)
    assert triples(index.edges()) == {("SELECTS", "uid-web", "Pod:shop/a")}
    change = index.add(pod("a", labels={"app": "web"}, uid="real-a"))
    assert change.deleted == []  # the same object, now with its uid: not a deletion
    assert [(a.synthetic_key, a.uid) for a in change.aliases] == [("Pod:shop/a", "real-a")]
    assert triples(change.remove_edges) == {("SELECTS", "uid-web", "Pod:shop/a")}
    assert triples(change.add_edges) == {("SELECTS", "uid-web", "real-a")}
