"""`kubectl get` tables of pods, nodes, workloads and jobs -> the objects they show, at the capture time.

The tables are written here in kubectl's printed format (tabwriter columns: padding 3, minimum
width 6; ages as `duration.HumanDuration`), with invented names; each row is read into the object
as the API would serve it, with only the fields the table shows.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agents.diagnosis import diagnose_events
from collectors.bundles import read_inputs
from collectors.kubegets import table_kind
from collectors.kubetext import MissingNowError, looks_like_kubectl_text, parse_kubectl_text
from collectors.loose import InputNote, log_owner
from collectors.podlogs import PodInfo
from collectors.unusable import UnusableInput
from core.events import RawEvent

NOW = datetime(2026, 12, 1, 9, 30, 0, tzinfo=UTC)

PODS_WIDE = """\
NAME                            READY   STATUS                  RESTARTS        AGE    IP          NODE            NOMINATED NODE   READINESS GATES
batch-runner-77f4d9c6b8-9mkq2   0/1     Evicted                 0               2d     <none>      pool-a-3f9k     <none>           <none>
cart-7c9f8d6b5-4kq2x            0/1     CrashLoopBackOff        5 (2m13s ago)   11m    10.8.1.14   pool-a-3f9k     <none>           <none>
cart-7c9f8d6b5-p8wzn            2/2     Running                 0               3d4h   10.8.2.31   pool-a-7d2m     <none>           <none>
checkout-5d8b7f9c4-rt6vq        1/2     Running                 3 (41m ago)     2d     10.8.2.40   pool-a-7d2m     <none>           <none>
db-migrate-8kx2p                0/1     Completed               0               47m    10.8.1.9    pool-a-3f9k     <none>           <none>
gpu-train-5c6d7e8f9-b4vn8       0/1     OutOfnvidia.com/gpu     0               3m     <none>      pool-gpu-1x2c   <none>           <none>
img-resize-6f7d8c9b5-zz4lm      0/1     OOMKilled               2 (8s ago)      4m     10.8.1.22   pool-a-3f9k     <none>           <none>
ledger-0                        0/1     Init:1/3                0               40s    10.8.2.12   pool-a-7d2m     <none>           <none>
ledger-1                        0/1     Init:CrashLoopBackOff   4 (30s ago)     3m     10.8.1.40   pool-a-3f9k     <none>           <none>
nightly-report-28931-jq7xd      0/1     Error                   0               6h     10.8.2.7    pool-a-7d2m     <none>           <none>
search-6b5c4d8f7-w2kpt          0/1     ImagePullBackOff        0               5m     10.8.1.30   pool-a-3f9k     <none>           <none>
web-6f8d9c7b5-hh2nq             1/1     Terminating             0               9d     10.8.2.50   pool-a-7d2m     <none>           <none>
web-6f8d9c7b5-xq8lp             0/1     Pending                 0               2m     <none>      <none>          <none>           <none>
web-6f8d9c7b5-zr5tc             0/1     ContainerCreating       0               7s     <none>      pool-a-3f9k     <none>           <none>
worker-0                        0/1     ExitCode:137            0               12m    10.8.1.51   pool-a-3f9k     <none>           <none>
"""

PODS_ALL = """\
NAMESPACE     NAME                          READY   STATUS             RESTARTS      AGE
kube-system   coredns-76f75df574-9qk4m      1/1     Running            0             63d
payments      ledger-api-6c9f7b8d54-qk7tw   0/1     CrashLoopBackOff   7 (64s ago)   14m
payments      ledger-api-6c9f7b8d54-w8vn2   1/1     Running            0             14m
"""

NODES = """\
NAME       STATUS                     ROLES            AGE    VERSION
cp-1       Ready                      control-plane    120d   v1.29.4
worker-a   NotReady                   <none>           120d   v1.29.4
worker-b   Ready,SchedulingDisabled   worker           33d    v1.29.4
worker-c   Unknown                    ingress,worker   2d     v1.29.4
"""

NODES_WIDE = """\
NAME          STATUS     ROLES    AGE    VERSION   INTERNAL-IP   EXTERNAL-IP   OS-IMAGE             KERNEL-VERSION       CONTAINER-RUNTIME
metal-b-w03   NotReady   <none>   198d   v1.30.6   10.60.2.23    <none>        Ubuntu 22.04.4 LTS   5.15.0-119-generic   containerd://1.7.22
"""

DEPLOYMENTS_WIDE = """\
NAME     READY   UP-TO-DATE   AVAILABLE   AGE   CONTAINERS   IMAGES                                     SELECTOR
cart     2/3     1            2           40d   cart,envoy   shop/cart:4.2.0,envoyproxy/envoy:v1.30.1   app=cart
search   0/0     0            0           12d   search       shop/search:1.9.3                          app=search,tier=backend
"""

REPLICASETS = """\
NAME             DESIRED   CURRENT   READY   AGE
cart-7c9f8d6b5   3         3         2       2h
cart-5f4c3b2a1   0         0         0       40d
"""

STATEFULSETS = """\
NAME     READY   AGE
ledger   1/3     17d
"""

DAEMONSETS_ALL = """\
NAMESPACE     NAME         DESIRED   CURRENT   READY   UP-TO-DATE   AVAILABLE   NODE SELECTOR            AGE
kube-system   kube-proxy   4         4         3       4            3           kubernetes.io/os=linux   120d
"""

JOBS = """\
NAME                   STATUS     COMPLETIONS   DURATION   AGE
db-migrate             Complete   1/1           38s        47m
nightly-report-28931   Failed     0/1           6h         6h
reindex                Running    2/5           3m12s      3m12s
fanout                 Running    0/1 of 4      20s        20s
"""

JOBS_OLD = """\
NAME         COMPLETIONS   DURATION   AGE
db-migrate   1/1           38s        47m
"""


def read(text: str, **kw) -> tuple[dict[str, dict], list[RawEvent], list[UnusableInput]]:
    out = list(parse_kubectl_text(text.encode(), "get.txt", now=kw.pop("now", NOW), **kw))
    events = [o for o in out if isinstance(o, RawEvent)]
    objects = {e.metadata["name"]: json.loads(e.data) for e in events}
    return objects, events, [o for o in out if isinstance(o, UnusableInput)]


def ago(**kw: int) -> str:
    return (NOW - timedelta(**kw)).strftime("%Y-%m-%dT%H:%M:%SZ")


def state(pod: dict, index: int = 0, group: str = "containerStatuses") -> dict:
    return pod["status"][group][index]["state"]


# -- which tables -------------------------------------------------------------------------------


def test_headers_of_each_kind_and_nothing_else() -> None:
    first = lambda text: text.splitlines()[0]  # noqa: E731
    assert table_kind(first(PODS_WIDE)) == table_kind(first(PODS_ALL)) == "Pod"
    assert table_kind(first(NODES)) == table_kind(first(NODES_WIDE)) == "Node"
    assert table_kind(first(DEPLOYMENTS_WIDE)) == "Deployment"
    assert table_kind(first(REPLICASETS)) == "ReplicaSet"
    assert table_kind(first(STATEFULSETS)) == "StatefulSet"
    assert table_kind(first(DAEMONSETS_ALL)) == "DaemonSet"
    assert table_kind(first(JOBS)) == table_kind(first(JOBS_OLD)) == "Job"
    assert table_kind("NAME          DATA   AGE") == ""  # configmaps: not read
    assert table_kind("NAME    READY   STATUS    RESTARTS   AGE   APP") == ""  # a -L label column
    assert table_kind("LAST SEEN   TYPE      REASON    OBJECT      MESSAGE") == ""
    assert table_kind("   NAME    READY   STATUS    RESTARTS   AGE") == ""
    assert looks_like_kubectl_text(PODS_WIDE.encode()) and looks_like_kubectl_text(JOBS.encode())


def test_a_table_that_is_not_one_of_these_stays_unread() -> None:
    objects, _, errors = read("NAME          DATA   AGE\nweb-config    2      5m\n")
    assert objects == {} and len(errors) == 1 and errors[0].position == "line 1"


# -- pods ---------------------------------------------------------------------------------------


def test_pods_wide_each_status_as_the_api_would_hold_it() -> None:
    pods, events, errors = read(PODS_WIDE)
    assert errors == [] and len(pods) == 15
    assert all(e.timestamp == NOW and e.metadata["action"] == "SNAPSHOT" for e in events)
    assert {e.metadata["time_source"] for e in events} == {"capture"}
    assert {e.metadata["table"] for e in events} == {"kubectl get pods"}
    assert events[1].metadata["source"] == "get.txt#line 3"

    crash = pods["cart-7c9f8d6b5-4kq2x"]
    assert crash["apiVersion"] == "v1" and crash["kind"] == "Pod"
    assert crash["metadata"] == {"name": "cart-7c9f8d6b5-4kq2x", "creationTimestamp": ago(minutes=11)}
    assert crash["spec"] == {"nodeName": "pool-a-3f9k"}
    assert crash["status"] == {"phase": "Running", "podIP": "10.8.1.14", "containerStatuses": [
        {"ready": False, "restartCount": 5, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
         "lastState": {"terminated": {"finishedAt": ago(minutes=2, seconds=13)}}}]}

    running = pods["cart-7c9f8d6b5-p8wzn"]["status"]
    assert running["phase"] == "Running" and [c["ready"] for c in running["containerStatuses"]] == [True, True]
    half = pods["checkout-5d8b7f9c4-rt6vq"]["status"]["containerStatuses"]
    assert [(c["ready"], c["restartCount"]) for c in half] == [(True, 0), (False, 3)]  # the not-ready one restarted
    assert all("name" not in c for c in half)  # the table names no container

    assert pods["db-migrate-8kx2p"]["status"]["phase"] == "Succeeded"
    assert state(pods["db-migrate-8kx2p"]) == {"terminated": {"reason": "Completed", "exitCode": 0}}
    assert state(pods["img-resize-6f7d8c9b5-zz4lm"]) == {"terminated": {"reason": "OOMKilled"}}
    assert pods["img-resize-6f7d8c9b5-zz4lm"]["status"]["phase"] == "Running"  # restarting
    assert pods["nightly-report-28931-jq7xd"]["status"]["phase"] == "Failed"
    assert state(pods["nightly-report-28931-jq7xd"]) == {"terminated": {"reason": "Error"}}
    assert state(pods["worker-0"]) == {"terminated": {"exitCode": 137}}
    search = pods["search-6b5c4d8f7-w2kpt"]["status"]
    assert search["phase"] == "Pending" and state(pods["search-6b5c4d8f7-w2kpt"]) == {
        "waiting": {"reason": "ImagePullBackOff"}}
    assert state(pods["web-6f8d9c7b5-zr5tc"]) == {"waiting": {"reason": "ContainerCreating"}}

    init = pods["ledger-0"]["status"]
    assert init["phase"] == "Pending" and "containerStatuses" not in init
    assert [c["state"] for c in init["initContainerStatuses"]] == [
        {"terminated": {"reason": "Completed", "exitCode": 0}}, {}, {}]
    looping = pods["ledger-1"]["status"]["initContainerStatuses"]
    assert looping == [{"ready": False, "restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                        "lastState": {"terminated": {"finishedAt": ago(seconds=30)}}}]

    evicted = pods["batch-runner-77f4d9c6b8-9mkq2"]
    assert evicted["status"] == {"phase": "Failed", "reason": "Evicted"}
    assert pods["gpu-train-5c6d7e8f9-b4vn8"]["status"] == {"phase": "Failed", "reason": "OutOfnvidia.com/gpu"}
    pending = pods["web-6f8d9c7b5-xq8lp"]
    assert pending["status"] == {"phase": "Pending"} and "spec" not in pending  # NODE <none>: not bound
    leaving = pods["web-6f8d9c7b5-hh2nq"]
    assert leaving["metadata"]["deletionTimestamp"] == ago()
    assert leaving["status"]["containerStatuses"][0]["ready"] is True


def test_pods_of_all_namespaces_and_the_namespace_of_a_table_without_one() -> None:
    pods, _, errors = read(PODS_ALL)
    assert errors == []
    assert pods["ledger-api-6c9f7b8d54-qk7tw"]["metadata"]["namespace"] == "payments"
    assert pods["coredns-76f75df574-9qk4m"]["metadata"]["namespace"] == "kube-system"
    pods, _, _ = read(PODS_WIDE, namespace="shop")
    assert {p["metadata"]["namespace"] for p in pods.values()} == {"shop"}


def test_kubectl_get_all_names_rows_kind_slash_name() -> None:
    text = ("NAME                       READY   STATUS    RESTARTS   AGE\n"
            "pod/web-6f8d9c7b5-hh2nq    1/1     Running   0          9d\n"
            "\n"
            "NAME                  READY   UP-TO-DATE   AVAILABLE   AGE\n"
            "deployment.apps/web   1/1     1            1           9d\n")
    objects, events, errors = read(text)
    assert errors == [] and [e.metadata["kind"] for e in events] == ["Pod", "Deployment"]
    assert objects["web"]["apiVersion"] == "apps/v1"


def test_a_table_after_describe_output_is_its_own_section() -> None:
    text = ("Name:         web-6f8d9c7b5-hh2nq\n"
            "Namespace:    shop\n"
            "Node:         pool-a-7d2m/10.8.0.12\n"
            "Start Time:   Tue, 01 Dec 2026 09:00:00 +0000\n"
            "Status:       Running\n"
            "IP:           10.8.2.50\n"
            "\n"
            "NAME                  READY   STATUS            RESTARTS   AGE\n"
            "web-6f8d9c7b5-hh2nq   1/1     Running           0          30m\n"
            "web-6f8d9c7b5-q2m7x   0/1     SchedulingGated   0          4s\n")
    objects, events, errors = read(text, now=None, kind="pod")  # the Start Time is the newest time shown
    assert errors == [] and [e.metadata.get("table", "") for e in events] == ["", "kubectl get pods", "kubectl get pods"]
    assert events[1].timestamp == datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    assert objects["web-6f8d9c7b5-q2m7x"]["status"] == {"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}


def test_a_row_that_does_not_read_is_an_error_naming_its_line_and_the_rest_is_read() -> None:
    text = ("NAME      READY   STATUS    RESTARTS   AGE\n"
            "web-1     1/1     Running   0          5m\n"
            "web-2     one     Running   0          5m\n"
            "web-3     1/1     Running   0          soon\n"
            "web-4     0/1     Crash Loop 2         5m\n"
            "web-5     1/1     Running   0          5m\n")
    objects, _, errors = read(text)
    assert set(objects) == {"web-1", "web-5"}
    assert [e.position for e in errors] == ["line 3", "line 4", "line 5"]
    assert "READY 'one' is not n/m" in errors[0].reason


# -- nodes and workloads ------------------------------------------------------------------------


def test_nodes_ready_condition_and_cordon() -> None:
    nodes, events, errors = read(NODES)
    assert errors == [] and {e.metadata["namespace"] for e in events} == {""}
    ready = {name: n["status"]["conditions"] for name, n in nodes.items()}
    assert ready == {"cp-1": [{"type": "Ready", "status": "True"}], "worker-a": [{"type": "Ready", "status": "False"}],
                     "worker-b": [{"type": "Ready", "status": "True"}],
                     "worker-c": [{"type": "Ready", "status": "Unknown"}]}
    assert nodes["worker-b"]["spec"] == {"unschedulable": True} and "spec" not in nodes["cp-1"]
    assert nodes["cp-1"]["metadata"]["labels"] == {"node-role.kubernetes.io/control-plane": ""}
    assert set(nodes["worker-c"]["metadata"]["labels"]) == {"node-role.kubernetes.io/ingress",
                                                            "node-role.kubernetes.io/worker"}
    assert "labels" not in nodes["worker-a"]["metadata"]
    assert nodes["cp-1"]["metadata"]["creationTimestamp"] == ago(days=120)

    wide, _, errors = read(NODES_WIDE)
    status = wide["metal-b-w03"]["status"]
    assert errors == [] and status["addresses"] == [{"type": "InternalIP", "address": "10.60.2.23"}]
    assert status["nodeInfo"] == {"kubeletVersion": "v1.30.6", "osImage": "Ubuntu 22.04.4 LTS",
                                  "kernelVersion": "5.15.0-119-generic",
                                  "containerRuntimeVersion": "containerd://1.7.22"}


def test_deployments_replicasets_statefulsets_daemonsets() -> None:
    deployments, _, errors = read(DEPLOYMENTS_WIDE, namespace="shop")
    cart = deployments["cart"]
    assert errors == [] and cart["apiVersion"] == "apps/v1" and cart["metadata"]["namespace"] == "shop"
    assert cart["spec"] == {"replicas": 3, "selector": {"matchLabels": {"app": "cart"}}, "template": {"spec": {
        "containers": [{"name": "cart", "image": "shop/cart:4.2.0"},
                       {"name": "envoy", "image": "envoyproxy/envoy:v1.30.1"}]}}}
    assert cart["status"] == {"readyReplicas": 2, "updatedReplicas": 1, "availableReplicas": 2}
    assert deployments["search"]["spec"]["replicas"] == 0 and deployments["search"]["status"] == {}

    sets, _, errors = read(REPLICASETS)
    assert errors == [] and sets["cart-7c9f8d6b5"]["spec"] == {"replicas": 3}
    assert sets["cart-7c9f8d6b5"]["status"] == {"replicas": 3, "readyReplicas": 2}

    stateful, _, errors = read(STATEFULSETS)
    assert errors == [] and stateful["ledger"]["spec"] == {"replicas": 3}
    assert stateful["ledger"]["status"] == {"readyReplicas": 1}

    daemons, _, errors = read(DAEMONSETS_ALL)
    proxy = daemons["kube-proxy"]
    assert errors == [] and proxy["metadata"]["namespace"] == "kube-system"
    assert proxy["status"] == {"desiredNumberScheduled": 4, "currentNumberScheduled": 4, "numberReady": 3,
                               "updatedNumberScheduled": 4, "numberAvailable": 3}
    assert proxy["spec"] == {"template": {"spec": {"nodeSelector": {"kubernetes.io/os": "linux"}}}}


def test_jobs_old_and_new_columns() -> None:
    jobs, events, errors = read(JOBS)
    assert errors == [] and {e.metadata["table"] for e in events} == {"kubectl get jobs"}
    assert jobs["db-migrate"]["apiVersion"] == "batch/v1"
    assert jobs["db-migrate"]["status"] == {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}
    assert jobs["nightly-report-28931"]["status"] == {"conditions": [{"type": "Failed", "status": "True"}]}
    assert jobs["reindex"]["spec"] == {"completions": 5} and jobs["reindex"]["status"] == {"succeeded": 2}
    assert jobs["fanout"]["spec"] == {"parallelism": 4}
    old, _, errors = read(JOBS_OLD)
    assert errors == [] and old["db-migrate"]["status"] == {"succeeded": 1}


# -- times --------------------------------------------------------------------------------------


def test_a_table_alone_needs_the_capture_time() -> None:
    with pytest.raises(MissingNowError):
        parse_kubectl_text(PODS_ALL.encode(), "pods.txt")


def test_same_table_same_ids_another_capture_other_ids() -> None:
    _, first, _ = read(PODS_ALL)
    _, again, _ = read(PODS_ALL)
    _, later, _ = read(PODS_ALL, now=NOW + timedelta(minutes=1))
    assert [e.id for e in first] == [e.id for e in again]
    assert not {e.id for e in first} & {e.id for e in later}


def test_ages_resolve_against_a_log_beside_the_table_and_the_log_goes_to_the_crashing_pod(tmp_path: Path) -> None:
    (tmp_path / "pods.txt").write_text(PODS_ALL)
    (tmp_path / "previous.log").write_text(
        "2026-12-01T09:28:55.120Z starting ledger-api\n"
        "2026-12-01T09:28:55.301Z fatal: environment variable LEDGER_DB_DSN is not set\n")
    items = list(read_inputs([tmp_path]))
    assert [i for i in items if isinstance(i, UnusableInput)] == []
    pods = {i.metadata["name"]: i for i in items if isinstance(i, RawEvent) and i.type == "kubeapi"}
    logs = [i for i in items if isinstance(i, RawEvent) and i.type == "logs"]
    reference = datetime(2026, 12, 1, 9, 28, 55, 301000, tzinfo=UTC)
    assert {p.timestamp for p in pods.values()} == {reference}
    created = json.loads(pods["ledger-api-6c9f7b8d54-qk7tw"].data)["metadata"]["creationTimestamp"]
    assert created == (reference - timedelta(minutes=14)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert [(e.metadata["name"], e.metadata["namespace"]) for e in logs] == [("ledger-api-6c9f7b8d54-qk7tw",
                                                                              "payments")]
    assert any(isinstance(i, InputNote) and "newest absolute time" in i.note for i in items)
    found = diagnose_events([i for i in items if isinstance(i, RawEvent)])
    assert [(d.cause, d.subject.name) for d in found] == [("missing-env-var", "ledger-api-6c9f7b8d54-qk7tw")]
    assert "LEDGER_DB_DSN" in found[0].message and found[0].ongoing


def test_a_lone_log_of_two_crashing_pods_goes_to_the_one_it_names() -> None:
    crashing = [PodInfo(namespace="a", name="one", crashing=True), PodInfo(namespace="a", name="two", crashing=True),
                PodInfo(namespace="a", name="three")]
    assert log_owner(Path("previous.log"), crashing)[0] is None
    assert log_owner(Path("previous.log"), crashing[1:])[0] == crashing[1]
    assert log_owner(Path("three.log"), crashing)[0] == crashing[2]  # the name still decides first
    # of two crashing pods, the one the log names (its host name), not a healthy pod it mentions
    said = "starting on host two\nconnecting to three:6379\n"
    assert log_owner(Path("previous.log"), crashing, said)[0] == crashing[1]
    assert log_owner(Path("previous.log"), crashing, "one and two\n")[0] is None


# -- what the diagnosis makes of thin objects ---------------------------------------------------


def test_a_healthy_table_is_no_incident() -> None:
    text = ("NAMESPACE   NAME                     READY   STATUS      RESTARTS       AGE\n"
            "shop        cart-7c9f8d6b5-4kq2x     2/2     Running     0              11d\n"
            "shop        cart-7c9f8d6b5-p8wzn     2/2     Running     1 (6d2h ago)   11d\n"
            "shop        db-migrate-8kx2p         0/1     Completed   0              47m\n")
    _, events, errors = read(text)
    assert errors == [] and diagnose_events(events) == []
    _, events, errors = read(REPLICASETS + "\n" + JOBS_OLD)
    assert errors == [] and diagnose_events(events) == []


def test_thin_objects_read_by_each_family() -> None:
    _, events, errors = read(PODS_WIDE + "\n" + NODES + "\n" + STATEFULSETS)
    assert errors == []
    found = {(d.subject.name, d.cause) for d in diagnose_events(events)}
    assert ("cart-7c9f8d6b5-4kq2x", "crash-loop") in found  # no log: the reason is not recorded
    assert ("img-resize-6f7d8c9b5-zz4lm", "oom-killed") in found
    assert ("nightly-report-28931-jq7xd", "app-error-exit") in found
    assert ("worker-0", "killed") in found
    assert ("worker-a", "node-not-ready") in found and ("worker-c", "node-not-ready") in found
    assert ("ledger", "unavailable-replicas") in found
    assert not {name for name, _ in found} & {"cart-7c9f8d6b5-p8wzn", "db-migrate-8kx2p", "cp-1", "worker-b"}
