"""Inputs laid out as bundles (support bundle, must-gather, cluster-info dump) and container logs.

Expected numbers for the real recordings were counted apart from the code under test: `json.load`
of each troubleshoot file (`len(items)`: 76 and 17 Events, one Pod in each pods file) and the
`- ` item lines of each must-gather events.yaml (395, 341, 77).
"""

from __future__ import annotations

import gzip
import io
import json
import re
import shutil
import tarfile
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from collectors import bundlefiles
from collectors.bundles import (
    CLUSTER_INFO,
    CLUSTER_INFO_STREAM,
    MUST_GATHER,
    RECORDINGS,
    SUPPORT_BUNDLE,
    InputKind,
    detect_input,
    read_inputs,
)
from collectors.podlogs import LogScanner, LogSource, line_time, log_events, pod_info
from collectors.unusable import UnusableInput
from core.events import RawEvent

REALDATA = Path(__file__).resolve().parents[3] / "shared" / "realdata"
TROUBLESHOOT = REALDATA / "troubleshoot" / "pkg" / "analyze" / "files"
MUST_GATHER_CLEAN = REALDATA / "must-gather-clean"
SCENARIO = Path(__file__).resolve().parents[2] / "patterns" / "scenarios" / "configmap-crashloop"

EVENT_FILES = {"message-container-creating-failed-mount": 76, "message-image-pull-fail": 17}
POD_FILES = ("message-container-creating-failed-mount", "message-oomkill-pod", "message-pending-pod-resources",
             "message-pod-init-crashloop-backoff")
MG_COUNTS = {"openshift-monitoring": 395, "openshift-kube-apiserver": 341, "openshift-network-diagnostics": 77}
TOP = "support-bundle-2023-07-11T04_45_00"


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def split(items) -> tuple[list[RawEvent], list[UnusableInput]]:
    items = list(items)
    return [i for i in items if isinstance(i, RawEvent)], [i for i in items if isinstance(i, UnusableInput)]


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def tar_of(folder: Path, target: Path, mode: str = "w:gz") -> Path:
    """The folder as an archive, members in sorted path order under the folder's name."""
    with tarfile.open(target, mode) as tf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                tf.add(path, arcname=f"{folder.name}/{path.relative_to(folder).as_posix()}")
    return target


def support_bundle(root: Path) -> Path:
    """The troubleshoot files, each under the namespace its objects are in (the file names say it)."""
    bundle = root / TOP
    for name in EVENT_FILES:
        assert {i["metadata"]["namespace"] for i in json.loads((TROUBLESHOOT / "events" / f"{name}.json").read_text())["items"]} == {name}
        write(bundle / "cluster-resources" / "events" / f"{name}.json", (TROUBLESHOOT / "events" / f"{name}.json").read_bytes())
    for name in POD_FILES:
        write(bundle / "cluster-resources" / "pods" / f"{name}.json", (TROUBLESHOOT / "pods" / f"{name}.json").read_bytes())
    return bundle


def per_file(events: list[RawEvent]) -> Counter:
    return Counter(re.sub(r".*cluster-resources/", "", e.metadata["source"].split("#")[0]) for e in events)


# -- support bundles -----------------------------------------------------------------------


def test_support_bundle_folder_and_tar_gz_give_the_same_events(tmp_path: Path) -> None:
    bundle = support_bundle(tmp_path / "extracted")
    folder_events, folder_errors = split(read_inputs([bundle]))
    assert folder_errors == []
    assert len(folder_events) == 76 + 17 + 4
    assert per_file(folder_events) == {
        "events/message-container-creating-failed-mount.json": 76, "events/message-image-pull-fail.json": 17,
        **{f"pods/{name}.json": 1 for name in POD_FILES}}
    assert Counter(e.metadata["kind"] for e in folder_events) == {"Event": 93, "Pod": 4}

    archive = tar_of(bundle, tmp_path / "bundle.tar.gz")
    tar_events, tar_errors = split(read_inputs([archive]))
    assert tar_errors == []
    assert [e.id for e in tar_events] == [e.id for e in folder_events]
    assert len({e.id for e in tar_events}) == 97
    assert tar_events[0].metadata["source"] == f"{archive}:{TOP}/cluster-resources/events/" \
                                               "message-container-creating-failed-mount.json#items[0]"
    # the parent of the extracted folder is the same bundle, one level down
    assert [e.id for e in split(read_inputs([tmp_path / "extracted"]))[0]] == [e.id for e in folder_events]


def test_support_bundle_logs_collection_errors_and_other_files(tmp_path: Path) -> None:
    bundle = support_bundle(tmp_path)
    logs = bundle / "cluster-resources" / "pods" / "logs"
    write(logs / "message-oomkill-pod" / "oom-kill-job3-gbb89" / "memory-eater.log",
          "allocating 100Mi\nallocating 200Mi\nKilled\n")
    write(logs / "message-pod-init-crashloop-backoff" / "init-demo2" / "install-previous.log",
          "Connecting to example.com\n/bin/sh: wge: not found\n")
    write(logs / "message-pod-init-crashloop-backoff" / "init-demo2" / "nginx.log", "all good\n")
    # a `logs` collector's output names no namespace: the pod's name finds it
    write(bundle / "app-logs" / "oom-kill-job3-gbb89" / "memory-eater.log",
          "2023-07-11T04:43:24.5Z Exception in thread \"main\" java.lang.OutOfMemoryError: Java heap space\n")
    write(bundle / "app-logs" / "not-a-pod" / "c.log", "dial tcp 10.0.0.1:80: connect: connection refused\n")
    write(bundle / "cluster-resources" / "pods-errors.json", '["pods is forbidden: cannot list pods in kube-system"]')
    write(bundle / "cluster-resources" / "auth-cani-list" / "default.json", '{"resourceRules": []}')
    write(bundle / "version.yaml", "apiVersion: troubleshoot.sh/v1beta2\nkind: SupportBundleVersion\n")
    write(bundle / "analysis.json", "[]")

    events, errors = split(read_inputs([bundle]))
    assert [(e.position, e.reason) for e in errors] == [
        ("[0]", "the bundle's collector reported: pods is forbidden: cannot list pods in kube-system")]
    assert errors[0].file.endswith("cluster-resources/pods-errors.json")
    kube = [e for e in events if e.type == "kubeapi"]
    assert len(kube) == 97
    logged = sorted((e.metadata["line"].split(f"{TOP}/")[1], e.metadata["namespace"], e.metadata["container"],
                     e.metadata["previous"], e.metadata["signal"], e.timestamp, e.metadata["time_source"])
                    for e in events if e.type == "logs")
    assert logged == [
        # a `logs` collector's file, its namespace found by the pod's name; its own time
        ("app-logs/oom-kill-job3-gbb89/memory-eater.log:1", "message-oomkill-pod", "memory-eater", "false", "oom",
         utc("2023-07-11T04:43:24.5Z"), "line"),
        # an untimed log of a terminated container: its finishedAt
        ("cluster-resources/pods/logs/message-oomkill-pod/oom-kill-job3-gbb89/memory-eater.log:3",
         "message-oomkill-pod", "memory-eater", "false", "oom", utc("2023-07-11T04:43:25Z"), "container-finish"),
        # the previous run of an init container: lastState.terminated.finishedAt
        ("cluster-resources/pods/logs/message-pod-init-crashloop-backoff/init-demo2/install-previous.log:2",
         "message-pod-init-crashloop-backoff", "install", "true", "command-not-found",
         utc("2023-07-11T04:01:16Z"), "container-finish"),
    ]
    log_events_ = [e for e in events if e.type == "logs"]
    assert len(log_events_) == 3
    oom = next(e for e in log_events_ if e.metadata["source"].endswith("cluster-resources/pods/logs/"
                                                                        "message-oomkill-pod/oom-kill-job3-gbb89/memory-eater.log:3"))
    assert oom.data == b"Killed"
    assert oom.metadata["uid"] == "c8d3f094-b80c-4ff8-aff7-f0e624f1bf3a" and oom.metadata["node"] == "minikube"
    assert oom.metadata["line"] == oom.metadata["source"]
    java = next(e for e in log_events_ if "app-logs" in e.metadata["line"])
    assert java.metadata["signals"] == "oom,panic" and java.metadata["namespace"] == "message-oomkill-pod"
    assert java.timestamp == utc("2023-07-11T04:43:24.5Z") and java.metadata["time_source"] == "line"


# -- archives: damage, traversal, size ------------------------------------------------------


def _members_tar(members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_truncated_tar_gz_keeps_what_came_before_and_names_the_member(tmp_path: Path) -> None:
    first = (TROUBLESHOOT / "events" / "message-image-pull-fail.json").read_bytes()
    second = (TROUBLESHOOT / "events" / "message-container-creating-failed-mount.json").read_bytes()
    names = [f"{TOP}/cluster-resources/events/message-image-pull-fail.json",
             f"{TOP}/cluster-resources/events/message-container-creating-failed-mount.json",
             f"{TOP}/cluster-resources/pods/message-oomkill-pod.json"]
    raw = _members_tar([(names[0], first), (names[1], second),
                        (names[2], (TROUBLESHOOT / "pods" / "message-oomkill-pod.json").read_bytes())])
    second_info = tarfile.open(fileobj=io.BytesIO(raw)).getmembers()[1]
    start, end = second_info.offset_data, second_info.offset_data + second_info.size
    # three gzip members (gzip reads them as one stream): the cut falls inside the second file's data
    head, middle, tail = (gzip.compress(raw[a:b], mtime=0) for a, b in ((0, start), (start, end), (end, len(raw))))
    archive = write(tmp_path / "bundle.tar.gz", (head + middle + tail)[: len(head) + len(middle) // 2])

    assert detect_input(archive) == InputKind(SUPPORT_BUNDLE, archive=True, nested=True)
    events, errors = split(read_inputs([archive]))
    assert len(errors) == 2
    damage, truncated_json = errors
    assert damage.file == f"{archive}:{names[1]}"
    got = int(re.fullmatch(r"byte (\d+) of 131349", damage.position).group(1))
    assert 0 < got < len(second)
    assert "archive truncated or damaged inside this member" in damage.reason
    assert truncated_json.file == f"{archive}:{names[1]}"
    assert re.fullmatch(r"line \d+, column \d+", truncated_json.position)
    assert truncated_json.reason.startswith("truncated JSON")
    # the whole first file, then the items of the second that were complete before the cut
    whole = split(read_inputs([TROUBLESHOOT / "events" / "message-image-pull-fail.json",
                               TROUBLESHOOT / "events" / "message-container-creating-failed-mount.json"]))[0]
    complete = second[:got].decode().count("\n    }")  # items close at indent 4
    assert len(events) == 17 + complete and complete > 0
    assert [e.id for e in events] == [e.id for e in whole[: 17 + complete]]


def test_malformed_member_unsafe_paths_and_huge_members(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    good = (TROUBLESHOOT / "events" / "message-image-pull-fail.json").read_bytes()
    bad = b'{"kind": "DeploymentList", "items": [\n  {"kind": "Deployment",, "metadata": {}}\n]}\n'
    raw = _members_tar([("sb/cluster-resources/deployments/shop.json", bad),
                        ("../escape/cluster-resources/events/x.json", good),
                        ("/etc/cluster-resources/events/y.json", good),
                        ("sb/cluster-resources/events/message-image-pull-fail.json", good),
                        ("sb/cluster-resources/replicasets/big.json", b"[" + b" " * 40000 + b"]")])
    archive = write(tmp_path / "b.tgz", gzip.compress(raw))
    monkeypatch.setattr(bundlefiles, "MAX_MEMBER_BYTES", 32768)  # the events file is 28968 bytes
    events, errors = split(read_inputs([archive]))
    assert len(events) == 17
    assert [(e.file, e.position) for e in errors] == [
        (f"{archive}:sb/cluster-resources/deployments/shop.json", "line 2, column 25"),
        (f"{archive}:../escape/cluster-resources/events/x.json", "member"),
        (f"{archive}:/etc/cluster-resources/events/y.json", "member"),
        (f"{archive}:sb/cluster-resources/replicasets/big.json", "member"),
    ]
    assert errors[0].reason.startswith("invalid JSON")
    assert "unsafe member path" in errors[1].reason and "unsafe member path" in errors[2].reason
    assert errors[3].reason == ("too large to read: 40002 bytes, over the 32768 bytes a file or archive member may "
                                "have (read whole): skipped")


# -- must-gather -------------------------------------------------------------------------------


def test_must_gather_clean_folders() -> None:
    assert detect_input(MUST_GATHER_CLEAN) == InputKind(MUST_GATHER, nested=True)  # aws/, vsphere/
    assert detect_input(MUST_GATHER_CLEAN / "vsphere") == InputKind(MUST_GATHER)
    events, errors = split(read_inputs([MUST_GATHER_CLEAN]))
    assert errors == []
    assert Counter(e.metadata["namespace"] for e in events) == MG_COUNTS
    assert len(events) == 813 == len({e.id for e in events})
    assert {e.metadata["kind"] for e in events} == {"Event"}
    vsphere = split(read_inputs([MUST_GATHER_CLEAN / "vsphere"]))[0]
    assert Counter(e.metadata["namespace"] for e in vsphere) == {
        k: v for k, v in MG_COUNTS.items() if k != "openshift-monitoring"}


POD_YAML = """\
apiVersion: v1
kind: PodList
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: alertmanager-main-0, namespace: openshift-monitoring, uid: am-uid, creationTimestamp: "2021-08-03T09:26:58Z"}
  spec: {nodeName: ip-10-0-151-183.ec2.internal}
  status:
    containerStatuses:
    - name: alertmanager
      restartCount: 1
      state: {running: {startedAt: "2021-08-03T09:30:00Z"}}
      lastState: {terminated: {exitCode: 1, reason: Error, startedAt: "2021-08-03T09:27:00Z", finishedAt: "2021-08-03T09:29:00Z"}}
"""


def test_must_gather_archive_with_image_folder_and_pod_logs(tmp_path: Path) -> None:
    image = tmp_path / "must-gather.local.5474" / "quay-io-openshift-release-dev-ocp-v4-0-art-dev-sha256-abc"
    shutil.copytree(MUST_GATHER_CLEAN / "aws", image)
    ns = image / "namespaces" / "openshift-monitoring"
    write(ns / "core" / "pods.yaml", POD_YAML)
    logs = ns / "pods" / "alertmanager-main-0" / "alertmanager" / "alertmanager" / "logs"
    write(logs / "current.log",
          '2021-08-03T09:30:01.000000000Z level=info ts=2021-08-03T09:30:01Z msg="Starting Alertmanager"\n'
          '2021-08-03T09:30:02.123456789Z level=error ts=2021-08-03T09:30:02Z msg="dial tcp: lookup '
          'alertmanager-main-1.alertmanager-operated on 172.30.0.10:53: no such host"\n')
    write(logs / "previous.log", 'level=error ts=2021-08-03T09:28:59.5Z msg="open /alertmanager/data: permission denied"\n')
    write(image / "timestamp", "2021-08-03 09:40:00 +0000 UTC\n")
    write(image / "host_service_logs" / "masters" / "kubelet_service.log", "no such host\n")

    assert detect_input(tmp_path / "must-gather.local.5474") == InputKind(MUST_GATHER, nested=True)
    archive = tar_of(tmp_path / "must-gather.local.5474", tmp_path / "must-gather.tar.gz")
    assert detect_input(archive) == InputKind(MUST_GATHER, archive=True, nested=True)
    events, errors = split(read_inputs([archive]))
    assert errors == []
    assert Counter(e.type for e in events) == {"kubeapi": 395 + 1, "logs": 2}
    logs_seen = sorted((e.metadata["previous"], e.metadata["signal"], e.timestamp, e.metadata["line"].rsplit("/", 1)[1])
                       for e in events if e.type == "logs")
    assert logs_seen == [("false", "dns-failure", utc("2021-08-03T09:30:02.123456Z"), "current.log:2"),
                         ("true", "permission-denied", utc("2021-08-03T09:28:59.5Z"), "previous.log:1")]
    folder = split(read_inputs([tmp_path / "must-gather.local.5474"]))[0]
    assert sorted(e.id for e in folder) == sorted(e.id for e in events)


# -- kubectl cluster-info dump -----------------------------------------------------------------


NODES = {"kind": "NodeList", "apiVersion": "v1", "items": [
    {"kind": "Node", "apiVersion": "v1", "metadata": {"name": "node-a", "uid": "node-uid",
                                                      "creationTimestamp": "2026-11-20T08:00:00Z"}}]}
SHOP_EVENTS = {"kind": "EventList", "apiVersion": "v1", "items": [
    {"kind": "Event", "apiVersion": "v1",
     "metadata": {"name": f"web-1.{n}", "namespace": "shop", "uid": f"ev-{n}", "resourceVersion": str(n)},
     "involvedObject": {"kind": "Pod", "name": "web-1", "namespace": "shop", "uid": "web-uid"},
     "reason": reason, "message": reason, "type": "Warning", "count": 1,
     "lastTimestamp": f"2026-11-20T10:0{n}:00Z"} for n, reason in ((1, "BackOff"), (2, "Unhealthy"))]}
SHOP_PODS = {"kind": "PodList", "apiVersion": "v1", "items": [
    {"kind": "Pod", "apiVersion": "v1",
     "metadata": {"name": "web-1", "namespace": "shop", "uid": "web-uid", "creationTimestamp": "2026-11-20T09:00:00Z"},
     "spec": {"nodeName": "node-a", "containers": [{"name": "app"}, {"name": "sidecar"}]},
     "status": {"containerStatuses": [
         {"name": "app", "restartCount": 3, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
          "lastState": {"terminated": {"exitCode": 1, "startedAt": "2026-11-20T10:00:30Z",
                                       "finishedAt": "2026-11-20T10:00:31Z"}}},
         {"name": "sidecar", "restartCount": 0, "state": {"running": {"startedAt": "2026-11-20T09:00:05Z"}}}]}}]}
WEB_LOGS = (
    "==== START logs for container app of pod shop/web-1 ====\n"
    "Traceback (most recent call last):\n"
    '  File "/app/main.py", line 3, in <module>\n'
    "    url = os.environ[\"DATABASE_URL\"]\n"
    "KeyError: 'DATABASE_URL'\n"
    "==== END logs for container app of pod shop/web-1 ====\n"
    "==== START logs for container sidecar of pod shop/web-1 ====\n"
    "2026/11/20 10:00:40 upstream: dial tcp 10.0.0.7:8080: connect: connection refused\n"
    "==== END logs for container sidecar of pod shop/web-1 ====\n")


def cluster_info_dump(root: Path) -> Path:
    write(root / "nodes.json", json.dumps(NODES, indent=4))
    write(root / "shop" / "events.json", json.dumps(SHOP_EVENTS, indent=4))
    write(root / "shop" / "pods.json", json.dumps(SHOP_PODS, indent=4))
    write(root / "shop" / "web-1" / "logs.txt", WEB_LOGS)
    return root


def test_cluster_info_dump_folder_and_single_stream(tmp_path: Path) -> None:
    folder = cluster_info_dump(tmp_path / "dump")
    assert detect_input(folder) == InputKind(CLUSTER_INFO)
    events, errors = split(read_inputs([folder]))
    assert errors == []
    assert Counter(e.type for e in events) == {"kubeapi": 4, "logs": 3}
    logs = [(e.metadata["container"], e.metadata["signal"], e.timestamp, e.metadata["time_source"],
             e.metadata["line"].rsplit("/", 1)[1]) for e in events if e.type == "logs"]
    assert logs == [
        # the current log of a waiting (CrashLoopBackOff) container is its last run's
        ("app", "traceback", utc("2026-11-20T10:00:31Z"), "container-finish", "logs.txt:2"),
        ("app", "missing-env", utc("2026-11-20T10:00:31Z"), "container-finish", "logs.txt:5"),
        ("sidecar", "connection-refused", utc("2026-11-20T10:00:40Z"), "line", "logs.txt:8"),
    ]

    stream = write(tmp_path / "cluster-info.dump", json.dumps(NODES, indent=4) + "\n" + json.dumps(SHOP_EVENTS, indent=4)
                   + "\n" + json.dumps(SHOP_PODS, indent=4) + "\n" + WEB_LOGS + "{\n    \"kind\": \"ServiceList\",,\n}\n")
    assert detect_input(stream) == InputKind(CLUSTER_INFO_STREAM)
    stream_events, stream_errors = split(read_inputs([stream]))
    assert sorted(e.id for e in stream_events) == sorted(e.id for e in events)
    lines = stream.read_text().splitlines()
    broken_at = lines.index('    "kind": "ServiceList",,') + 1
    assert [(e.file, e.position) for e in stream_errors] == [(str(stream), f"line {broken_at}, column 27")]  # 2nd comma
    start = lines.index("==== START logs for container app of pod shop/web-1 ====") + 1
    assert [e.metadata["line"] for e in stream_events if e.type == "logs"] == [
        f"{stream}:{start + 1}", f"{stream}:{start + 4}", f"{stream}:{start + 7}"]


# -- detection and plain recordings ------------------------------------------------------------


def test_detection_of_each_layout(tmp_path: Path) -> None:
    bundle = support_bundle(tmp_path / "sb")
    assert detect_input(bundle) == InputKind(SUPPORT_BUNDLE)
    assert detect_input(tmp_path / "sb") == InputKind(SUPPORT_BUNDLE, nested=True)
    # archives hold the folder under its name (troubleshoot's own: support-bundle-<time>/)
    assert detect_input(tar_of(bundle, tmp_path / "sb.tar.gz")) == InputKind(SUPPORT_BUNDLE, archive=True, nested=True)
    assert detect_input(tar_of(bundle, tmp_path / "sb.tar.xz", "w:xz")) == InputKind(SUPPORT_BUNDLE, archive=True,
                                                                                    nested=True)
    assert detect_input(MUST_GATHER_CLEAN / "aws") == InputKind(MUST_GATHER)
    assert detect_input(cluster_info_dump(tmp_path / "dump")) == InputKind(CLUSTER_INFO)
    assert detect_input(tar_of(tmp_path / "dump", tmp_path / "dump.tgz")) == InputKind(CLUSTER_INFO, archive=True,
                                                                                       nested=True)
    assert detect_input(SCENARIO) == InputKind(RECORDINGS)
    assert detect_input(SCENARIO / "events.json") == InputKind(RECORDINGS)
    assert detect_input(REALDATA) == InputKind(RECORDINGS)  # layouts two levels down are not the folder's own
    # a folder of namespaced recordings without nodes.json is not a dump
    write(tmp_path / "incident" / "shop" / "events.json", json.dumps(SHOP_EVENTS))
    assert detect_input(tmp_path / "incident") == InputKind(RECORDINGS)


def test_plain_recordings_read_as_recording_files_do(tmp_path: Path) -> None:
    from collectors.replay import read_recording
    from collectors.replayer import recording_files

    expected = [i for f in recording_files([SCENARIO]) for i in read_recording(f)]
    got = list(read_inputs([SCENARIO]))
    assert sorted(e.id for e in got if isinstance(e, RawEvent)) == sorted(e.id for e in expected if isinstance(e, RawEvent))
    assert len(got) == len(expected)
    archive = tar_of(SCENARIO, tmp_path / "scenario.tar.gz")  # an archive of recordings, read in place
    assert detect_input(archive) == InputKind(RECORDINGS, archive=True)
    assert sorted(e.id for e in read_inputs([archive])) == sorted(e.id for e in got)
    # a folder of inputs: its own files as recordings, each subfolder by its own layout
    write(tmp_path / "all" / "events.json", json.dumps(SHOP_EVENTS))
    shutil.copytree(MUST_GATHER_CLEAN / "vsphere", tmp_path / "all" / "cases" / "mg")
    assert detect_input(tmp_path / "all") == InputKind(RECORDINGS)
    events, errors = split(read_inputs([tmp_path / "all"]))
    assert errors == [] and len(events) == 2 + 341 + 77
    # archives and dump streams in it are read by their layouts too
    tar_of(support_bundle(tmp_path / "sb"), tmp_path / "all" / "bundle.tar.gz")
    write(tmp_path / "all" / "cluster-info.dump", "\n".join(json.dumps(x) for x in (NODES, SHOP_EVENTS, SHOP_PODS))
          + "\n" + WEB_LOGS)
    events, errors = split(read_inputs([tmp_path / "all"]))
    assert errors == []
    assert Counter(e.type for e in events) == {"kubeapi": 2 + 341 + 77 + 97 + 4, "logs": 3}
    # the top folder around a layout: the layout's folder by it, loose JSON/YAML files beside it as
    # recordings, anything else there (a must-gather's `timestamp`) left alone
    cases = tmp_path / "all" / "cases"
    assert detect_input(cases) == InputKind(MUST_GATHER, nested=True)
    write(cases / "timestamp", "2021-09-14 10:20:00.1 +0000 UTC m=+0.0\n")
    write(cases / "event-filter.html", "<html></html>\n")
    write(cases / "kubectl-events.json", json.dumps(SHOP_EVENTS))
    events, errors = split(read_inputs([cases]))
    assert errors == [] and len(events) == 341 + 77 + 2
    with pytest.raises(OSError):
        read_inputs([tmp_path / "missing"])


EVENTS_TABLE = "LAST SEEN   TYPE      REASON    OBJECT      MESSAGE\n5m          Warning   BackOff   pod/web-1   Back-off\n"


def test_kubectl_text_goes_to_kubetext(tmp_path: Path) -> None:
    from collectors.kubetext import parse_kubectl_text
    table = write(tmp_path / "in" / "events.txt", EVENTS_TABLE)
    write(tmp_path / "in" / "notes.txt", "remember to rotate the certificates\n")  # neither text nor recording
    now = utc("2026-11-20T10:00:00Z")
    events, errors = split(read_inputs([tmp_path / "in"], now=now))
    assert errors == [] and events
    assert events == list(parse_kubectl_text(EVENTS_TABLE.encode(), str(table), now=now))


# -- container logs ------------------------------------------------------------------------------


def scan(text: str, *, pod: dict | None = None, previous: bool = False, now: datetime | None = None,
         container: str = "app") -> list[RawEvent | UnusableInput]:
    scanner = LogScanner(LogSource(file="x.log", namespace="shop", pod="web-1", container=container, previous=previous))
    for number, line in enumerate(text.splitlines(keepends=True), start=1):
        scanner.feed(line, number)
    return list(log_events(scanner.finish(), pod_info(pod) if pod else None, now=now))


def signals(items) -> list[tuple]:
    return [(i.metadata["signal"], i.timestamp, i.metadata["time_source"], i.metadata["line"])
            if isinstance(i, RawEvent) else ("error", i.position) for i in items]


def running_pod(started: str = "2026-11-20T09:59:59Z", last: dict | None = None) -> dict:
    status = {"name": "app", "state": {"running": {"startedAt": started}}}
    if last:
        status["lastState"] = {"terminated": last}
    return {"kind": "Pod", "metadata": {"name": "web-1", "namespace": "shop", "uid": "u1"},
            "spec": {"nodeName": "node-a"}, "status": {"containerStatuses": [status]}}


def test_python_key_error_in_a_previous_log() -> None:
    log = ("Starting app\nTraceback (most recent call last):\n  File \"/app/main.py\", line 3, in <module>\n"
           "    url = os.environ[\"DATABASE_URL\"]\n  File \"/usr/lib/python3.11/os.py\", line 679, in __getitem__\n"
           "    raise KeyError(key) from None\nKeyError: 'DATABASE_URL'\n")
    pod = running_pod(last={"exitCode": 1, "startedAt": "2026-11-20T09:58:00Z", "finishedAt": "2026-11-20T09:58:02Z"})
    out = scan(log, pod=pod, previous=True)
    assert signals(out) == [("traceback", utc("2026-11-20T09:58:02Z"), "container-finish", "x.log:2"),
                            ("missing-env", utc("2026-11-20T09:58:02Z"), "container-finish", "x.log:7")]
    env = out[1]
    assert env.type == "logs" and env.data == b"KeyError: 'DATABASE_URL'"
    assert {k: env.metadata[k] for k in ("kind", "name", "namespace", "container", "previous", "uid", "node",
                                         "intent", "category", "severity")} == {
        "kind": "Pod", "name": "web-1", "namespace": "shop", "container": "app", "previous": "true", "uid": "u1",
        "node": "node-a", "intent": "config-error", "category": "configuration", "severity": "error"}
    assert [e.id for e in scan(log, pod=pod, previous=True)] == [e.id for e in out]  # content ids
    # a lowercase key is no environment variable: the line is an exception, not a missing variable
    assert [e.metadata["signal"] for e in scan("KeyError: 'name'\n", now=utc("2026-11-20T10:00:00Z"))] == ["traceback"]


def test_go_panic_with_kubectl_timestamps() -> None:
    log = ("2026-11-20T10:00:01.000000001Z starting server on :8080\n"
           "2026-11-20T10:00:02.5Z panic: runtime error: invalid memory address or nil pointer dereference\n"
           "2026-11-20T10:00:02.5Z [signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x4a2b3c]\n"
           "2026-11-20T10:00:02.5Z \n2026-11-20T10:00:02.5Z goroutine 1 [running]:\n")
    out = scan(log)
    assert signals(out) == [("panic", utc("2026-11-20T10:00:02.5Z"), "line", "x.log:2")]
    assert out[0].metadata["message"] == "panic: runtime error: invalid memory address or nil pointer dereference"
    assert out[0].data.startswith(b"2026-11-20T10:00:02.5Z panic:")


def test_dns_failure_command_not_found_and_untimed_lines() -> None:
    log = ("2026/11/20 10:00:03 failed to connect to database: dial tcp: lookup db on 10.96.0.10:53: no such host\n"
           "retrying: dial tcp: lookup db on 10.96.0.10:53: no such host\n")
    assert signals(scan(log)) == [("dns-failure", utc("2026-11-20T10:00:03Z"), "line", "x.log:1"),
                                  ("dns-failure", utc("2026-11-20T10:00:03Z"), "previous-line", "x.log:2")]
    # untimed lines before the first timed one: the container's start
    log = "/bin/sh: foo: not found\n2026-11-20T10:00:09Z panic: boom\n"
    assert signals(scan(log, pod=running_pod())) == [
        ("command-not-found", utc("2026-11-20T09:59:59Z"), "container-start", "x.log:1"),
        ("panic", utc("2026-11-20T10:00:09Z"), "line", "x.log:2")]
    assert signals(scan(log)) == [("command-not-found", utc("2026-11-20T10:00:09Z"), "next-line", "x.log:1"),
                                  ("panic", utc("2026-11-20T10:00:09Z"), "line", "x.log:2")]
    # no time anywhere: a running container's start, else `now`, else an error
    assert signals(scan("/bin/sh: 1: foo: not found\n", pod=running_pod())) == [
        ("command-not-found", utc("2026-11-20T09:59:59Z"), "container-start", "x.log:1")]
    assert signals(scan("sh: foo: not found\n", now=utc("2026-11-21T00:00:00Z"))) == [
        ("command-not-found", utc("2026-11-21T00:00:00Z"), "now", "x.log:1")]
    err = scan("exec /docker-entrypoint.sh: exec format error\n")
    assert signals(err) == [("error", "line 1")] and err[0].file == "x.log"


def test_klog_lines_take_their_year_from_the_container() -> None:
    log = ("I1120 10:00:00.000001       1 main.go:40] Starting controller\n"
           "E1120 10:00:05.123456       1 reflector.go:138] Failed to watch *v1.Pod: Get \"https://10.96.0.1:443/api/v1/pods\": "
           "dial tcp 10.96.0.1:443: connect: connection refused\n"
           "E1120 10:00:07.000000       1 leaderelection.go:330] error retrieving resource lock kube-system/x: "
           "x509: certificate signed by unknown authority\n")
    assert signals(scan(log, pod=running_pod())) == [
        ("connection-refused", utc("2026-11-20T10:00:05.123456Z"), "line", "x.log:2"),
        ("tls-failure", utc("2026-11-20T10:00:07Z"), "line", "x.log:3")]
    # across new year: the date nearest the container's start
    out = scan("E0101 00:00:01.000000       1 x.go:1] dial tcp: i/o timeout\n", pod=running_pod("2026-12-31T23:59:00Z"))
    assert signals(out) == [("connection-timeout", utc("2027-01-01T00:00:01Z"), "line", "x.log:1")]
    assert out[0].metadata["message"] == "dial tcp: i/o timeout"


def test_json_logs_and_line_times() -> None:
    log = ('{"level":"error","ts":1795168805.25,"caller":"db/conn.go:42","msg":"connect failed",'
           '"error":"dial tcp 10.0.0.5:5432: connect: connection refused"}\n'
           '{"time":"2026-11-20T10:00:01.5+01:00","level":"ERROR","msg":"missing required env DATABASE_URL"}\n'
           '{"@timestamp":"2026-11-20T10:00:06Z","message":"javax.net.ssl.SSLHandshakeException: PKIX path building failed"}\n')
    assert signals(scan(log)) == [("connection-refused", utc("2026-11-20T10:00:05.25Z"), "line", "x.log:1"),
                                  ("missing-env", utc("2026-11-20T09:00:01.5Z"), "line", "x.log:2"),
                                  ("tls-failure", utc("2026-11-20T10:00:06Z"), "line", "x.log:3")]
    assert line_time("2026-11-20 10:00:01,123 ERROR boom")[0] == utc("2026-11-20T10:00:01.123Z")
    assert line_time("[2026-11-20 10:00:01.5 +0200] x")[0] == utc("2026-11-20T08:00:01.5Z")
    assert line_time('time="2026-11-20T10:00:01Z" level=fatal msg="environment variable DB_HOST is not set"') == (
        utc("2026-11-20T10:00:01Z"), 'time="2026-11-20T10:00:01Z" level=fatal msg="environment variable DB_HOST is not set"')
    assert line_time("no time here") == (None, "no time here")


@pytest.mark.parametrize("line, expected", [
    ("Error: environment variable DATABASE_URL is not set", "missing-env"),
    ("/entrypoint.sh: line 4: DB_PASSWORD: parameter not set", "missing-env"),
    ("bash: line 1: psqlx: command not found", "command-not-found"),
    ('exec: "wge": executable file not found in $PATH', "command-not-found"),
    ("exec /app/server: no such file or directory", "command-not-found"),
    ("standard_init_linux.go:228: exec user process caused: exec format error", "exec-format-error"),
    ("curl: (6) Could not resolve host: api.example.com", "dns-failure"),
    ("socket.gaierror: [Errno -2] Name or service not known", "dns-failure"),
    ("psycopg2.OperationalError: could not translate host name \"db\" to address: Temporary failure in name resolution",
     "dns-failure"),
    ("Error: connect ECONNREFUSED 10.0.0.5:6379", "connection-refused"),
    ("dial tcp 10.0.0.5:443: i/o timeout", "connection-timeout"),
    ("fatal error: runtime: out of memory", "oom"),
    ("Killed", "oom"),
    ("java.lang.OutOfMemoryError: Java heap space", "oom"),
    ("mkdir: cannot create directory '/data': Permission denied", "permission-denied"),
    ("x509: certificate has expired or is not yet valid", "tls-failure"),
    ("Segmentation fault (core dumped)", "panic"),
])
def test_signal_table(line: str, expected: str) -> None:
    out = scan(line + "\n", now=utc("2026-11-20T10:00:00Z"))
    assert [e.metadata["signal"] for e in out] == [expected]


def test_repeated_signal_lines_are_capped_per_log() -> None:
    log = "".join(f"2026-11-20T10:{m:02d}:00Z dial tcp 10.0.0.5:5432: connect: connection refused\n" for m in range(60))
    out = scan(log)
    assert len(out) == 51
    assert out[-1].timestamp == utc("2026-11-20T10:59:00Z") and out[-1].metadata["occurrences"] == "60"
    assert "occurrences" not in out[49].metadata


def test_every_signal_has_needles_and_blocks_carry_times(monkeypatch: pytest.MonkeyPatch) -> None:
    from collectors import podlogs
    from core.kube.log_signals import signal_table

    assert all(s.needles for s in signal_table().signals) and signal_table().needles
    monkeypatch.setattr(podlogs, "BLOCK_LINES", 3)
    log = ("oops: connection refused\n"  # before any time, no pod: the first time the log shows
           "x\ny\n"
           "2026-11-20T10:00:00Z start\nz\nupstream: connection refused\n"
           "2026-11-20T10:00:05Z ok\nw\nv\n"
           "panic: boom\n")
    assert signals(scan(log)) == [
        ("connection-refused", utc("2026-11-20T10:00:00Z"), "next-line", "x.log:1"),
        ("connection-refused", utc("2026-11-20T10:00:00Z"), "previous-line", "x.log:6"),
        ("panic", utc("2026-11-20T10:00:05Z"), "previous-line", "x.log:10")]


def test_kubectl_text_inside_a_recorded_tool_call_is_read_with_its_own_line_numbers() -> None:
    holmes = Path(__file__).resolve().parents[3] / "shared" / "realdata" / "holmesgpt"
    for case, objects_and_events in (("test_investigate/01_oom_kill", 11), ("test_ask_holmes/10_image_pull_backoff", 7)):
        items = list(read_inputs([holmes / case / "kubectl_describe.txt"]))
        assert [i for i in items if isinstance(i, UnusableInput)] == []
        assert len(items) == objects_and_events
        assert all(i.metadata["source"].startswith(str(holmes / case / "kubectl_describe.txt")) for i in items)


# -- rollouts read off ReplicaSets ------------------------------------------------------------


def _replicaset(name: str, revision: int, created: str, image: str, replicas: int, *, env: str = "info") -> dict:
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": name, "namespace": "shop", "uid": f"uid-{name}", "creationTimestamp": created,
                         "annotations": {"deployment.kubernetes.io/revision": str(revision)},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                                              "uid": "uid-web", "controller": True}]},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [
                {"name": "web", "image": image, "env": [{"name": "LOG_LEVEL", "value": env}]}]}}},
            "status": {"replicas": replicas}}


def test_a_bundles_replicasets_give_the_rollout_and_its_template_diff(tmp_path: Path) -> None:
    """Revision 2 changed the image and an env value: one ROLLOUT event at revision 2's creation,
    saying what changed, and the bad rollout is matched like a live one (the rollout is the cause
    of the new pods' crashes). A rollback has no known time and is left out."""
    from agents.catalog import Catalog
    from agents.offline import match_events
    bundle = tmp_path / "bundle"
    rs_list = {"kind": "ReplicaSetList", "apiVersion": "apps/v1", "items": [
        _replicaset("web-6b8d", 1, "2026-11-20T08:00:00Z", "shop/web:1.4", 3),
        _replicaset("web-7c9f", 2, "2026-11-20T10:00:00Z", "shop/web:1.5", 1, env="debug"),
        _replicaset("other-1", 1, "2026-11-20T07:00:00Z", "shop/other:1", 1) | {"metadata": {
            "name": "other-1", "namespace": "shop", "creationTimestamp": "2026-11-20T07:00:00Z"}},  # no owner
    ]}
    write(bundle / "cluster-resources" / "replicasets" / "shop.json", json.dumps(rs_list))
    events = [{"apiVersion": "v1", "kind": "Event",
               "metadata": {"name": f"web-7c9f-{pod}.{reason}", "namespace": "shop"},
               "involvedObject": {"kind": kind, "name": name, "namespace": "shop"},
               "reason": reason, "message": message, "type": kind_type, "count": count,
               "firstTimestamp": at, "lastTimestamp": at}
              for pod, kind, name, reason, message, kind_type, count, at in [
                  ("a", "ReplicaSet", "web-7c9f", "SuccessfulCreate", "Created pod: web-7c9f-a", "Normal", 1, "2026-11-20T10:00:01Z"),
                  ("b", "ReplicaSet", "web-7c9f", "SuccessfulCreate", "Created pod: web-7c9f-b", "Normal", 1, "2026-11-20T10:00:02Z"),
                  ("a", "Pod", "web-7c9f-a", "BackOff", "Back-off restarting failed container web in pod web-7c9f-a",
                   "Warning", 3, "2026-11-20T10:01:30Z"),
                  ("b", "Pod", "web-7c9f-b", "BackOff", "Back-off restarting failed container web in pod web-7c9f-b",
                   "Warning", 2, "2026-11-20T10:02:00Z")]]
    write(bundle / "cluster-resources" / "events" / "shop.json", json.dumps({"kind": "EventList", "items": events}))
    # the new pod's previous run logged why it exited (kubectl logs --timestamps)
    write(bundle / "cluster-resources" / "pods" / "logs" / "shop" / "web-7c9f-a" / "web-previous.log",
          "2026-11-20T10:01:10.2Z starting web 1.5\n"
          "2026-11-20T10:01:10.4Z FATAL: environment variable DATABASE_URL is not set\n")
    raws, errors = split(read_inputs([bundle]))
    assert errors == []
    [rollout] = [r for r in raws if r.metadata.get("action") == "ROLLOUT"]
    assert rollout.timestamp == utc("2026-11-20T10:00:00Z")
    assert (rollout.metadata["kind"], rollout.metadata["namespace"], rollout.metadata["name"]) == ("Deployment", "shop", "web")
    assert rollout.metadata["message"] == (
        "Deployment shop/web: container[web].env.LOG_LEVEL modified (info -> debug), container[web].image modified "
        "(shop/web:1.4 -> shop/web:1.5) (revision 1 -> 2, ReplicaSet web-7c9f)")
    assert rollout.metadata["source"].endswith("replicasets/shop.json#items[1]")
    catalog = Catalog("patterns")
    [match] = [m for m in match_events(raws, catalog).matches if m.pattern == "bad-rollout"]
    assert match.scope == "owner:Deployment/shop/web"
    assert match.links and {link.cause for link in match.links} == {rollout.id}
    [logged] = [r for r in raws if r.type == "logs"]
    assert logged.id in match.event_ids and match.boost == 0.05  # the log line is evidence and its boost (no ScalingReplicaSet here)
    from agents.predict import predictions_for
    said = [p.message for p in predictions_for(match, catalog.patterns["bad-rollout"])]
    assert any("configuration they need is missing" in m for m in said), said

    # `kubectl rollout undo`: revision 1's ReplicaSet becomes revision 3 (and revision 1 is gone).
    # The undo's time is unknown (the ReplicaSet is older than revision 2), and revision 2 no
    # longer has the revision before it: nothing is invented.
    rs_list["items"][0] = _replicaset("web-6b8d", 3, "2026-11-20T08:00:00Z", "shop/web:1.4", 3)
    write(bundle / "cluster-resources" / "replicasets" / "shop.json", json.dumps(rs_list))
    assert [r for r in split(read_inputs([bundle]))[0] if r.metadata.get("action") == "ROLLOUT"] == []
