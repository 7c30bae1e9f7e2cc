"""The replay parsing layer on real recordings, on every supported format, and on damaged input.

Expected numbers for the real recordings were computed with jq / a separate yaml.safe_load, not
with the parser under test.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest
import yaml

from collectors.replay import ReplayFileError, read_recording
from collectors.unusable import UnusableInput
from core.events import RawEvent, content_id
from core.kube.objects import UnusableObject, event_identity, raw_event_from_object

REALDATA = Path(__file__).resolve().parents[3] / "shared" / "realdata"
TROUBLESHOOT = REALDATA / "troubleshoot" / "pkg" / "analyze" / "files"
MUST_GATHER = REALDATA / "must-gather-clean"
SCENARIO = Path(__file__).resolve().parents[2] / "patterns" / "scenarios" / "configmap-crashloop"



def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def parse(path: Path | str) -> tuple[list[RawEvent], list[UnusableInput]]:
    out = list(read_recording(path))
    return [o for o in out if isinstance(o, RawEvent)], [o for o in out if isinstance(o, UnusableInput)]


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def event(name: str, *, reason: str = "BackOff", last: str | None = "2026-11-20T10:00:00Z", **extra) -> dict:
    obj = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": "shop", "uid": f"uid-{name}", "resourceVersion": "7"},
        "involvedObject": {"kind": "Pod", "name": f"pod-{name}", "namespace": "shop", "uid": f"pod-uid-{name}"},
        "reason": reason,
        "message": f"message of {name}",
        "type": "Warning",
        "count": 2,
        "source": {"component": "kubelet", "host": "node-a"},
        "firstTimestamp": "2026-11-20T09:00:00Z",
        "lastTimestamp": last,
    }
    obj.update(extra)
    return obj


def pod(name: str, uid: str, created: str = "2026-11-20T08:00:00Z", **status) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "shop", "uid": uid, "creationTimestamp": created},
        "spec": {"nodeName": "node-b"},
        "status": status,
    }


# -- real recordings -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "count"), [("message-container-creating-failed-mount.json", 76), ("message-image-pull-fail.json", 17)]
)
def test_troubleshoot_event_lists(name: str, count: int) -> None:
    events, errors = parse(TROUBLESHOOT / "events" / name)
    assert errors == []
    assert len(events) == count
    assert {e.metadata["action"] for e in events} == {"EVENT"}
    assert {e.type for e in events} == {"kubeapi"}
    assert len({e.id for e in events}) == count
    assert all(e.timestamp.tzinfo is not None for e in events)


def test_troubleshoot_event_fields() -> None:
    events, _ = parse(TROUBLESHOOT / "events" / "message-container-creating-failed-mount.json")
    # items[0]: a scheduler event with lastTimestamp null, only a sub-second eventTime
    scheduled = events[0]
    assert scheduled.metadata["reason"] == "Scheduled"
    assert scheduled.timestamp == datetime(2023, 7, 10, 5, 31, 39, 694297, tzinfo=UTC)
    assert scheduled.metadata["reporting_component"] == "default-scheduler"
    assert scheduled.metadata["node"] == ""  # reportingInstance "default-scheduler-minikube" is no node
    assert scheduled.metadata["involved_name"] == "crashpod-f9b59484-7828f"
    # items[31]: the init container BackOff seen 1464 times
    backoff = events[31]
    assert backoff.metadata["reason"] == "BackOff"
    assert backoff.metadata["event_type"] == "Warning"
    assert backoff.metadata["count"] == "1464"
    assert backoff.metadata["involved_kind"] == "Pod"
    assert backoff.metadata["involved_name"] == "init-demo2"
    assert backoff.metadata["involved_uid"] == "47e732ac-7a2f-4a01-afbd-943309bbc91f"
    assert backoff.metadata["uid"] == "94cd1ce0-8958-4b37-a5c4-bb284dc72cd0"
    assert backoff.metadata["namespace"] == "message-container-creating-failed-mount"
    assert backoff.metadata["node"] == "minikube"
    assert backoff.timestamp == utc("2023-07-10T05:15:47Z")
    assert backoff.metadata["source"].endswith("message-container-creating-failed-mount.json#items[31]")
    assert json.loads(backoff.data)["firstTimestamp"] == "2023-07-09T23:56:01Z"


def test_troubleshoot_image_pull_event() -> None:
    events, _ = parse(TROUBLESHOOT / "events" / "message-image-pull-fail.json")
    failed = events[2]
    assert failed.metadata["reason"] == "Failed"
    assert failed.metadata["message"].startswith('Failed to pull image "noimage.com/no-such-image"')
    assert failed.metadata["count"] == "4"
    assert failed.timestamp == utc("2023-07-11T05:36:12Z")


@pytest.mark.parametrize(
    ("name", "pod_name", "uid", "node", "newest"),
    [
        ("message-oomkill-pod.json", "oom-kill-job3-gbb89", "c8d3f094-b80c-4ff8-aff7-f0e624f1bf3a", "minikube",
         "2023-07-11T04:43:28Z"),  # managedFields write; container finishedAt is 04:43:25
        ("message-pod-init-crashloop-backoff.json", "init-demo2", "5a560e83-c634-4c91-b308-510ee692ed6a", "minikube",
         "2023-07-11T04:01:23Z"),
        ("message-pending-pod-resources.json", "pending-pod-resources-5fddcf7688-djjfc",
         "e4d4c4cc-2c41-4ab7-b41c-9c8b28ded451", "", "2023-07-11T04:20:29Z"),
        ("message-container-creating-failed-mount.json", "troubleshoot-copyfromhost-4m79m-psdjm",
         "55ca5d14-2541-42a9-9eb1-5eb53133e178", "minikube", "2023-07-09T23:53:09Z"),
    ],
)
def test_troubleshoot_pod_lists(name: str, pod_name: str, uid: str, node: str, newest: str) -> None:
    events, errors = parse(TROUBLESHOOT / "pods" / name)
    assert errors == []
    assert len(events) == 1
    (only,) = events
    assert (only.metadata["kind"], only.metadata["name"], only.metadata["uid"]) == ("Pod", pod_name, uid)
    assert only.metadata["action"] == "SNAPSHOT"
    assert only.metadata["node"] == node
    assert only.timestamp == utc(newest)


@pytest.mark.parametrize(
    ("where", "count"),
    [
        ("aws/namespaces/openshift-monitoring", 395),
        ("vsphere/namespaces/openshift-kube-apiserver", 341),
        ("vsphere/namespaces/openshift-network-diagnostics", 77),
    ],
)
def test_must_gather_event_yaml(where: str, count: int) -> None:
    events, errors = parse(MUST_GATHER / where / "core" / "events.yaml")
    assert errors == []
    assert len(events) == count
    assert len({e.id for e in events}) == count


def test_must_gather_fields() -> None:
    events, _ = parse(MUST_GATHER / "vsphere/namespaces/openshift-kube-apiserver/core/events.yaml")
    # items[105]: no lastTimestamp, eventTime, firstTimestamp nor count -> creationTimestamp, count 1
    term = events[105]
    assert term.metadata["reason"] == "TerminationStart"
    assert term.timestamp == utc("2021-09-14T09:49:27Z")
    assert term.metadata["count"] == "1"
    assert term.metadata["node"] == "ci-ln-i7gzws2-8c773-jn5dn-master-0"

    events, _ = parse(MUST_GATHER / "vsphere/namespaces/openshift-network-diagnostics/core/events.yaml")
    outages = [e for e in events if e.metadata["reason"] == "ConnectivityOutageDetected"]
    assert len(outages) == 7
    assert {e.metadata["involved_kind"] for e in outages} == {"Node"}

    events, _ = parse(MUST_GATHER / "aws/namespaces/openshift-monitoring/core/events.yaml")
    assert sum(e.metadata["event_type"] == "Warning" for e in events) == 59
    mount = events[247]
    assert (mount.metadata["reason"], mount.metadata["count"]) == ("FailedMount", "7")
    assert mount.metadata["involved_name"] == "prometheus-adapter-b8d88cf84-kd4lb"
    assert mount.metadata["node"] == "ip-10-0-254-204.ec2.internal"
    assert mount.timestamp == utc("2021-08-03T09:26:34Z")


def test_truncated_real_event_list_salvages_complete_items(tmp_path: Path) -> None:
    text = (TROUBLESHOOT / "events" / "message-container-creating-failed-mount.json").read_text()
    item_starts = [i for i in range(len(text)) if text.startswith('\n    {\n      "kind": "Event"', i)]
    assert len(item_starts) == 76
    cut = text[: item_starts[10] + 400]  # in the middle of items[10]
    events, errors = parse(write(tmp_path, "cut.json", cut))
    assert len(events) == 10
    assert [e.metadata["source"].rsplit("#", 1)[1] for e in events] == [f"items[{i}]" for i in range(10)]
    (error,) = errors
    assert error.reason.startswith("truncated JSON")
    last_line = cut.rstrip().count("\n") + 1
    column = len(cut.rstrip()) - cut.rstrip().rfind("\n")
    assert error.position == f"line {last_line}, column {column}"
    assert error.fragment and error.fragment in cut


# -- the bundled demo scenario -------------------------------------------------------------


def test_scenario_parses_without_errors() -> None:
    counts = {}
    everything: list[RawEvent] = []
    for path in sorted(SCENARIO.iterdir()):
        if path.suffix == ".md":
            continue
        events, errors = parse(path)
        assert errors == [], errors
        counts[path.name] = len(events)
        everything += events
    assert counts == {
        "configmap-watch.json": 2,
        "events-k8s-io.yaml": 13,
        "events.json": 39,
        "objects.json": 15,
        "pods-watch.json": 36,
    }
    assert len({e.id for e in everything}) == 105
    edit = [e for e in everything if e.metadata["kind"] == "ConfigMap" and e.metadata["action"] == "MODIFIED"]
    assert [e.timestamp for e in edit] == [utc("2026-11-20T10:00:00Z")]
    assert edit[0].metadata["resource_version"] == "61877"
    pods = {e.metadata["uid"]: e for e in everything if e.metadata["kind"] == "Pod" and e.metadata["action"] == "SNAPSHOT"}
    assert len(pods) == 6 and {p.metadata["node"] for p in pods.values()} == {"node-a", "node-b", "node-c"}
    kubelet = [e for e in everything if e.metadata["kind"] == "Event" and e.metadata["reporting_component"] == "kubelet"]
    assert {e.metadata["involved_uid"] for e in kubelet} == set(pods)
    backoffs = [e for e in kubelet if e.metadata["reason"] == "BackOff"]
    assert len(backoffs) == 6 and min(e.timestamp for e in backoffs) > utc("2026-11-20T10:00:40Z")
    restarts = [json.loads(e.data)["status"]["containerStatuses"][0] for e in everything
                if e.metadata["kind"] == "Pod" and e.metadata["action"] == "MODIFIED"]
    assert max(r["restartCount"] for r in restarts) == 6
    assert {(r["lastState"]["terminated"]["exitCode"], r["lastState"]["terminated"]["reason"]) for r in restarts} == {
        (1, "Error")
    }


# -- formats ---------------------------------------------------------------------------------


def test_events_k8s_io_list(tmp_path: Path) -> None:
    def new_event(name: str, **extra) -> dict:
        return {
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": "ev-ns", "uid": f"u-{name}"},
            "regarding": {"kind": "Pod", "name": "web-1", "namespace": "shop", "uid": "pod-1"},
            "note": "Back-off restarting failed container",
            "reason": "BackOff",
            "type": "Warning",
            "eventTime": "2026-11-20T10:00:00.123456Z",
            **extra,
        }

    items = [
        new_event("a", reportingController="kubelet", reportingInstance="node-a", deprecatedCount=3,
                  series={"count": 9, "lastObservedTime": "2026-11-20T10:05:00.5+00:00"}),
        new_event("b", reportingController="default-scheduler", reportingInstance="default-scheduler-cp"),
    ]
    path = write(tmp_path, "k8s-io", json.dumps({"apiVersion": "events.k8s.io/v1", "kind": "EventList", "items": items}))
    (a, b), errors = parse(path)
    assert errors == []
    assert a.metadata["action"] == b.metadata["action"] == "EVENT"
    assert a.metadata["count"] == "9"
    assert a.timestamp == datetime(2026, 11, 20, 10, 5, 0, 500000, tzinfo=UTC)
    assert a.metadata["message"] == "Back-off restarting failed container"
    assert (a.metadata["involved_kind"], a.metadata["involved_name"], a.metadata["involved_uid"]) == ("Pod", "web-1", "pod-1")
    assert a.metadata["namespace"] == "shop"  # the involved object's namespace wins
    assert a.metadata["reporting_component"] == "kubelet"
    assert a.metadata["node"] == "node-a"
    assert b.metadata["node"] == ""
    assert b.metadata["count"] == "1"
    assert b.timestamp == datetime(2026, 11, 20, 10, 0, 0, 123456, tzinfo=UTC)


def test_bare_json_array_of_events_and_objects(tmp_path: Path) -> None:
    path = write(tmp_path, "array.txt", json.dumps([event("e1"), pod("p1", "uid-p1")]))
    (e1, p1), errors = parse(path)
    assert errors == []
    assert (e1.metadata["action"], e1.metadata["kind"]) == ("EVENT", "Event")
    assert (p1.metadata["action"], p1.metadata["kind"], p1.metadata["node"]) == ("SNAPSHOT", "Pod", "node-b")
    assert p1.metadata["source"] == f"{path}#[1]"


def test_multi_document_yaml(tmp_path: Path) -> None:
    text = """# recorded by hand
---
apiVersion: v1
kind: Pod
metadata:
  name: web-1
  namespace: shop
  uid: pod-1
  creationTimestamp: 2026-11-20T08:00:00Z
status:
  startTime: 2026-11-20T08:00:02Z
---
apiVersion: v1
kind: EventList
items:
- apiVersion: v1
  kind: Event
  metadata: {name: web-1.1, namespace: shop}
  involvedObject: {kind: Pod, name: web-1, namespace: shop}
  reason: Started
  lastTimestamp: "2026-11-20T08:00:03Z"
- apiVersion: v1
  kind: Event
  metadata: {name: web-1.2, namespace: shop}
  involvedObject: {kind: Pod, name: web-1, namespace: shop}
  reason: Killing
  lastTimestamp: "2026-11-20T08:00:04Z"
---
"""
    events, errors = parse(write(tmp_path, "multi.yaml", text))
    assert errors == []
    assert [(e.metadata["kind"], e.metadata["name"]) for e in events] == [
        ("Pod", "web-1"), ("Event", "web-1.1"), ("Event", "web-1.2")]
    assert events[0].timestamp == utc("2026-11-20T08:00:02Z")
    assert json.loads(events[0].data)["metadata"]["creationTimestamp"] == "2026-11-20T08:00:00Z"  # stays a string
    assert [e.metadata["source"].rsplit("#", 1)[1] for e in events] == [
        "document 1", "document 2 items[0]", "document 2 items[1]"]


def test_yaml_list_of_mixed_kinds_and_kind_inference(tmp_path: Path) -> None:
    listing = {"apiVersion": "v1", "kind": "List", "items": [pod("p1", "u1"), event("e1")]}
    events, errors = parse(write(tmp_path, "list.yaml", yaml.safe_dump(listing)))
    assert errors == [] and [e.metadata["kind"] for e in events] == ["Pod", "Event"]

    bare = {"name": "p2", "namespace": "shop", "uid": "u2", "creationTimestamp": "2026-11-20T08:00:00Z"}
    pod_list = {"apiVersion": "v1", "kind": "PodList", "items": [{"metadata": bare}]}
    (p2,), errors = parse(write(tmp_path, "pods.json", json.dumps(pod_list)))
    assert errors == []
    assert (p2.metadata["kind"], p2.metadata["api_version"]) == ("Pod", "v1")
    assert json.loads(p2.data)["kind"] == "Pod"

    no_kind = {"apiVersion": "v1", "kind": "List", "items": [{"metadata": bare}]}
    events, (error,) = parse(write(tmp_path, "nokind.json", json.dumps(no_kind)))
    assert events == [] and error.position == "items[0]" and error.reason.startswith("items[0].kind: missing")


def test_object_lists_of_other_kinds(tmp_path: Path) -> None:
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "nginx", "namespace": "shop", "uid": "d1", "creationTimestamp": "2026-11-20T08:00:00Z"},
        "status": {"conditions": [{"type": "Progressing", "lastUpdateTime": "2026-11-20T09:30:00Z",
                                   "lastTransitionTime": "2026-11-20T08:00:01Z"}]},
    }
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-a", "uid": "n1",
                                                             "creationTimestamp": "2026-11-20T06:00:00Z"}}
    text = json.dumps({"apiVersion": "apps/v1", "kind": "DeploymentList", "items": [deployment]})
    text += "\n" + json.dumps({"apiVersion": "v1", "kind": "NodeList", "items": [node]})
    (dep, nod), errors = parse(write(tmp_path, "two-lists.json", text))
    assert errors == []
    assert dep.timestamp == utc("2026-11-20T09:30:00Z")
    assert (nod.metadata["kind"], nod.metadata["namespace"]) == ("Node", "")
    assert nod.metadata["source"].endswith("#line 2 (object 2) items[0]")


def test_pod_timestamp_is_newest_container_time() -> None:
    obj = pod("p", "u", created="2026-11-20T08:00:00Z",
              startTime="2026-11-20T08:00:01Z",
              conditions=[{"type": "Ready", "lastTransitionTime": "2026-11-20T09:00:00Z"}],
              initContainerStatuses=[{"state": {"terminated": {"finishedAt": "2026-11-20T08:00:05Z"}}}],
              containerStatuses=[{"state": {"running": {"startedAt": "2026-11-20T10:01:00Z"}},
                                  "lastState": {"terminated": {"startedAt": "2026-11-20T10:30:00Z",
                                                               "finishedAt": "2026-11-20T10:00:59Z"}}}])
    raw = raw_event_from_object(obj, action="SNAPSHOT", source="x#0")
    assert raw.timestamp == utc("2026-11-20T10:01:00Z")  # lastState.startedAt is not a candidate


WATCH_PRETTY = """{
    "type": "ADDED",
    "object": %s
}
{
    "type": "BOOKMARK",
    "object": {"kind": "Pod", "apiVersion": "v1", "metadata": {"resourceVersion": "12"}}
}
{
    "type": "MODIFIED",
    "object": %s
}
{
    "type": "DELETED",
    "object": %s
}
"""


def test_watch_stream_pretty_with_watch_events(tmp_path: Path) -> None:
    first = pod("p1", "u1")
    second = pod("p1", "u1", conditions=[{"type": "Ready", "lastTransitionTime": "2026-11-20T10:00:00Z"}])
    # deleted at 10:05 with a 30 s grace period: the deadline is 10:05:30, the observation 10:05
    gone = {**second, "metadata": {**second["metadata"], "deletionTimestamp": "2026-11-20T10:05:30Z",
                                   "deletionGracePeriodSeconds": 30}}
    text = WATCH_PRETTY % (json.dumps(first, indent=4), json.dumps(second, indent=4), json.dumps(gone, indent=4))
    events, errors = parse(write(tmp_path, "watch.json", text))
    assert errors == []
    assert [e.metadata["action"] for e in events] == ["ADDED", "MODIFIED", "DELETED"]
    assert [e.timestamp for e in events] == [utc(t) for t in
                                             ("2026-11-20T08:00:00Z", "2026-11-20T10:00:00Z", "2026-11-20T10:05:00Z")]
    lines = text.splitlines()
    modified_line = lines.index('    "type": "MODIFIED",')  # 0-based index of line 2 of that object
    assert events[1].metadata["source"].endswith(f"#line {modified_line} (watch event 3)")


def test_watch_stream_one_object_per_line(tmp_path: Path) -> None:
    lines = [
        json.dumps(pod("p1", "u1")),
        json.dumps(pod("p2", "u2")),
        json.dumps(pod("p1", "u1", startTime="2026-11-20T09:00:00Z")),  # p1 again: a modification
        json.dumps({"type": "ADDED", "object": event("e1")}),
    ]
    events, errors = parse(write(tmp_path, "watch.jsonl", "\n".join(lines) + "\n"))
    assert errors == []
    assert [e.metadata["action"] for e in events] == ["SNAPSHOT", "SNAPSHOT", "MODIFIED", "EVENT"]
    assert [e.metadata["source"].rsplit("#", 1)[1] for e in events] == [
        "line 1 (object 1)", "line 2 (object 2)", "line 3 (object 3)", "line 4 (watch event 4)"]


def test_single_object_document(tmp_path: Path) -> None:
    (only,), errors = parse(write(tmp_path, "pod", json.dumps(pod("p1", "u1"), indent=2)))
    assert errors == []
    assert only.metadata["source"].endswith("#document")
    assert (only.metadata["name"], only.metadata["namespace"], only.metadata["uid"]) == ("p1", "shop", "u1")


# -- damaged input ---------------------------------------------------------------------------


def test_damaged_object_in_watch_stream_resyncs(tmp_path: Path) -> None:
    good1 = json.dumps({"type": "ADDED", "object": pod("p1", "u1")}, indent=4)
    bad = json.dumps({"type": "ADDED", "object": pod("p2", "u2")}, indent=4)[:150]
    good2 = json.dumps({"type": "ADDED", "object": pod("p3", "u3")}, indent=4)
    text = f"{good1}\n{bad}\n{good2}\n"
    events, errors = parse(write(tmp_path, "watch.json", text))
    assert [e.metadata["name"] for e in events] == ["p1", "p3"]
    (error,) = errors
    next_line = good1.count("\n") + bad.count("\n") + 3  # the line where p3's object starts
    assert error.position == f"line {next_line}, column 1"
    assert error.reason.startswith("invalid JSON")
    assert events[1].metadata["source"].endswith(f"#line {next_line} (watch event 3)")


def test_wrong_typed_items_are_reported_and_neighbours_kept(tmp_path: Path) -> None:
    items = [event("e0"), event("e1", last=42), "not an object", event("e3"),
             {**event("e4"), "metadata": {"namespace": "shop"}}, event("e5", last="yesterday")]
    path = write(tmp_path, "events.json", json.dumps({"apiVersion": "v1", "kind": "EventList", "items": items}))
    events, errors = parse(path)
    assert [e.metadata["name"] for e in events] == ["e0", "e3"]
    assert [(e.position, e.reason) for e in errors] == [
        ("items[1]", "items[1].lastTimestamp: expected RFC3339 time, got 42"),
        ("items[2]", "expected a mapping (a Kubernetes object), got str"),
        ("items[4]", "items[4].metadata.name: missing"),
        ("items[5]", "items[5].lastTimestamp: expected RFC3339 time, got 'yesterday'"),
    ]
    assert str(errors[0]) == f"{path}: items[1]: items[1].lastTimestamp: expected RFC3339 time, got 42"
    assert '"lastTimestamp":42' in errors[0].fragment


def test_object_without_any_time_is_an_error(tmp_path: Path) -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "shop"}, "data": {}}
    events, (error,) = parse(write(tmp_path, "cm.json", json.dumps([cm])))
    assert events == []
    assert error.position == "[0]" and error.reason.startswith("no timestamp")


def test_garbage_bytes_give_one_error(tmp_path: Path) -> None:
    blob = bytes(range(256)) * 4
    events, errors = parse(write(tmp_path, "events.json", blob))
    assert events == [] and len(errors) == 1
    assert errors[0].position == "file" and "binary" in errors[0].reason

    events, errors = parse(write(tmp_path, "table.txt", "NAMESPACE   LAST SEEN   TYPE\nshop   9m22s   Warning\n"))
    assert events == [] and len(errors) == 1 and errors[0].reason.startswith("not a Kubernetes object")

    events, errors = parse(write(tmp_path, "empty.json", "\n  \n"))
    assert events == [] and [e.reason for e in errors] == ["empty file: no Kubernetes objects"]


def test_bad_yaml_document_does_not_stop_the_others(tmp_path: Path) -> None:
    good = yaml.safe_dump(pod("p1", "u1"))
    text = f"{good}---\nkind: Pod\nmetadata: {{name: [unclosed\n---\n{good}"
    events, errors = parse(write(tmp_path, "objs.yaml", text))
    assert len(events) == 2
    (error,) = errors
    end_of_doc2 = good.count("\n") + 4  # the parser fails where document 2 ends: the next `---`
    assert error.position == f"document 2, line {end_of_doc2}, column 1"
    assert error.reason.startswith("invalid YAML")
    assert "[unclosed" in error.fragment


def test_api_status_and_non_string_yaml_keys(tmp_path: Path) -> None:
    status = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 403, "reason": "Forbidden",
              "message": 'events is forbidden: User "dev" cannot list resource "events"'}
    events, (error,) = parse(write(tmp_path, "status.json", json.dumps(status)))
    assert events == [] and error.position == "document"
    assert error.reason == f"API error Status: {status['message']} (code 403)"

    text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, creationTimestamp: 2026-11-20T08:00:00Z}\n"
    events, (error,) = parse(write(tmp_path, "cm.yaml", text + "data:\n  on: yes\n"))
    assert events == [] and "key is not a string" in error.reason
    (cm,), errors = parse(write(tmp_path, "cm2.yaml", text + "data:\n  'on': 'yes'\n"))
    assert errors == [] and json.loads(cm.data)["data"] == {"on": "yes"}


def test_watch_error_event_becomes_replay_error(tmp_path: Path) -> None:
    status = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 410, "reason": "Expired",
              "message": "too old resource version: 123 (456)"}
    lines = [json.dumps({"type": "ADDED", "object": pod("p1", "u1")}), json.dumps({"type": "ERROR", "object": status})]
    events, errors = parse(write(tmp_path, "w.json", "\n".join(lines)))
    assert len(events) == 1
    (error,) = errors
    assert error.position == "line 2 (watch event 2)"
    assert error.reason == "watch ERROR event: too old resource version: 123 (456) (code 410)"


def test_unreadable_path_raises_at_once(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(ReplayFileError, match="nope.json"):
        read_recording(missing)
    with pytest.raises(ReplayFileError):
        read_recording(tmp_path)
    assert issubclass(ReplayFileError, OSError)


# -- ids and the RawEvent itself -------------------------------------------------------------


def test_ids_are_content_ids_and_idempotent(tmp_path: Path) -> None:
    path = write(tmp_path, "ev.json", json.dumps({"kind": "EventList", "apiVersion": "v1",
                                                  "items": [event("e1"), event("e2"), event("e1", count=3)]}))
    first, _ = parse(path)
    again, _ = parse(path)
    assert [e.id for e in first] == [e.id for e in again]
    assert len({e.id for e in first}) == 3
    for raw in first:
        assert raw.data == msgspec.json.encode(json.loads(raw.data), order="sorted")
        assert raw.id == event_identity(raw.metadata, raw.timestamp)
    copy = write(tmp_path, "elsewhere.yaml", yaml.safe_dump({"kind": "EventList", "apiVersion": "v1",
                                                             "items": [event("e1")]}))
    (same,), _ = parse(copy)
    assert same.id == first[0].id  # same record, other file and format -> same id
    # objects: a content id of the state, however it was seen; a deletion is an observation of its own
    added, modified, listed, deleted = (raw_event_from_object(pod("p", "u"), action=a, source="s")
                                        for a in ("ADDED", "MODIFIED", "SNAPSHOT", "DELETED"))
    assert added.id == modified.id == listed.id == content_id("kubeapi", "SNAPSHOT", added.data)
    assert deleted.id == content_id("kubeapi", "DELETED", added.data)
    # the same Event served by events.k8s.io/v1 has the same id as its core/v1 shape
    v1 = raw_event_from_object(event("e9"), action="EVENT", source="s")
    new_api = {"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": event("e9")["metadata"],
               "regarding": event("e9")["involvedObject"], "reason": "BackOff", "note": "message of e9",
               "type": "Warning", "deprecatedCount": 2, "deprecatedLastTimestamp": "2026-11-20T10:00:00Z",
               "deprecatedFirstTimestamp": "2026-11-20T09:00:00Z", "reportingController": "kubelet"}
    assert raw_event_from_object(new_api, action="EVENT", source="s").id == v1.id


def test_raw_event_from_object_direct() -> None:
    long = event("e", message="x" * 5000, lastTimestamp=None, eventTime="2026-11-20T10:00:00.123456789+02:00")
    raw = raw_event_from_object(long, action="SNAPSHOT", source="f#items[0]")
    assert raw.metadata["action"] == "EVENT"
    assert len(raw.metadata["message"]) == 1000
    assert raw.timestamp == datetime(2026, 11, 20, 8, 0, 0, 123456, tzinfo=UTC)
    assert all(isinstance(v, str) for v in raw.metadata.values())
    assert raw.namespace == "shop"
    with pytest.raises(UnusableObject, match="expected a mapping"):
        raw_event_from_object(["x"], action="SNAPSHOT", source="s")  # type: ignore[arg-type]
    with pytest.raises(UnusableObject, match="^count: expected a count"):
        raw_event_from_object(event("e", count="many"), action="SNAPSHOT", source="s")
    with pytest.raises(UnusableObject, match=r"^involvedObject: expected a mapping"):
        raw_event_from_object(event("e", involvedObject="pod/x"), action="SNAPSHOT", source="s")
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n", "creationTimestamp": "2026-11-20T06:00:00Z"}}
    raw = raw_event_from_object(node, action="SNAPSHOT", source="s")
    assert raw.namespace == "_cluster" and raw.metadata["namespace"] == ""


def test_publish_order_puts_snapshots_first_then_event_time() -> None:
    from datetime import timedelta

    from collectors.replay import newest_time, shifted
    from core.events import publish_order
    t0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)

    def raw(name: str, sec: int, action: str) -> RawEvent:
        return RawEvent(id=name, timestamp=t0 + timedelta(seconds=sec), type="kubeapi", data=b"{}",
                        metadata={"action": action})
    events = [raw("ev-late", 50, "EVENT"), raw("snap-new", 900, "SNAPSHOT"), raw("watch", 10, "MODIFIED"),
              raw("ev-early", 5, "EVENT"), raw("snap-old", 1, "SNAPSHOT")]
    assert [e.id for e in publish_order(events)] == ["snap-new", "snap-old", "ev-early", "watch", "ev-late"]
    assert newest_time(events) == t0 + timedelta(seconds=50)  # snapshots carry no moment of their own
    moved = shifted(events, timedelta(hours=2))
    assert [e.timestamp - o.timestamp for e, o in zip(moved, events, strict=True)] == [timedelta(hours=2)] * 5
    assert {e.id for e in moved}.isdisjoint(e.id for e in events)  # a moved copy is a new event
    assert [e.data for e in moved] == [e.data for e in events]
    assert shifted(events, timedelta(0)) is events


def test_scenario_labels_are_not_recordings(tmp_path: Path) -> None:
    from collectors.replayer import recording_files
    (tmp_path / "events.json").write_text("[]")
    (tmp_path / "labels.yaml").write_text("incidents: []")
    (tmp_path / "README.md").write_text("story")
    assert [p.name for p in recording_files([tmp_path])] == ["events.json"]
