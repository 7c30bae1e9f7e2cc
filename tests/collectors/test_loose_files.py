"""Files a user saves one by one: a container log tied to its pod by its name, a file that is not
Kubernetes data skipped once, a manifest without times placed at the recording's start, and
Alertmanager's alerts read as Events about the objects they name."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from agents.diagnosis import diagnose_events
from collectors.alerts import alert_events
from collectors.bundles import read_inputs
from collectors.loose import InputNote, log_owner, looks_like_log
from collectors.podlogs import PodInfo, Run
from collectors.unusable import UnusableInput
from core.events import RawEvent

POD = {"apiVersion": "v1", "kind": "Pod",
       "metadata": {"name": "api-7d4b9c8f6-x2pqm", "namespace": "shop", "creationTimestamp": "2026-11-30T14:00:00Z"},
       "spec": {"containers": [{"name": "api", "image": "shop/api:2.1"}, {"name": "proxy", "image": "envoy:1.30"}]},
       "status": {"phase": "Running", "containerStatuses": [
           {"name": "api", "ready": False, "restartCount": 6,
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"reason": "Error", "exitCode": 1, "startedAt": "2026-11-30T14:20:00Z",
                                         "finishedAt": "2026-11-30T14:20:02Z"}}},
           {"name": "proxy", "ready": True, "restartCount": 0,
            "state": {"running": {"startedAt": "2026-11-30T14:00:05Z"}}}]}}


def _read(*paths: Path) -> tuple[list[RawEvent], list[UnusableInput], list[InputNote]]:
    items = list(read_inputs(paths))
    return ([i for i in items if isinstance(i, RawEvent)], [i for i in items if isinstance(i, UnusableInput)],
            [i for i in items if isinstance(i, InputNote)])


def test_a_saved_log_is_tied_to_its_pod_and_container_by_its_name(tmp_path: Path) -> None:
    (tmp_path / "pod.json").write_text(json.dumps(POD))
    log = tmp_path / "api-7d4b9c8f6-x2pqm_api_previous.log"
    log.write_text("starting api 2.1\nFATAL: environment variable DATABASE_URL is not set\n")
    events, errors, notes = _read(tmp_path)
    assert errors == [] and notes == []
    [line] = [e for e in events if e.type == "logs"]
    assert (line.metadata["namespace"], line.metadata["name"], line.metadata["container"],
            line.metadata["previous"]) == ("shop", "api-7d4b9c8f6-x2pqm", "api", "true")
    assert line.metadata["source"] == f"{log}:2"
    [top, *_] = diagnose_events(events)
    assert (top.cause, top.detail["variable"]) == ("missing-env-var", "DATABASE_URL")


def test_a_log_named_for_nothing_belongs_to_the_only_pod_beside_it_and_its_crashed_container() -> None:
    crashed = Run(started=datetime(2026, 11, 30, 14, 20, tzinfo=UTC), finished=datetime(2026, 11, 30, 14, 21, tzinfo=UTC))
    pod = PodInfo(namespace="shop", name="web-0", runs={"sidecar": Run(), "sidecar/previous": Run(),
                                                        "web": Run(), "web/previous": crashed})
    assert log_owner(Path("/x/previous.log"), [pod])[1:] == ("web-0", "web", True)  # the one that crashed
    assert log_owner(Path("/x/web-0_sidecar.log"), [pod])[1:] == ("web-0", "sidecar", False)  # the one it names
    assert log_owner(Path("/x/other.log"), [])[0] is None


def test_what_a_log_looks_like() -> None:
    assert looks_like_log(b'{"level":"error","ts":"2026-11-30T14:20:02Z","msg":"boom"}\n  at x.y(Z.java:1)\n', "a.json")
    assert looks_like_log(b"[2026-10-14 08:28:19,713] [1] [INFO] Starting gunicorn\n", "app.log")
    assert not looks_like_log(b'{"apiVersion": "v1", "kind": "PodList", "items": []}', "pods.json")
    assert not looks_like_log(b"apiVersion: v1\nkind: Pod\n", "pod.yaml")


def test_a_file_that_is_not_kubernetes_data_is_skipped_once_with_a_note(tmp_path: Path) -> None:
    tool = tmp_path / "query-range.json"
    tool.write_text(json.dumps({"status": "success", "data": {"resultType": "matrix", "result": [{"values": []}]}}))
    events, errors, notes = _read(tool)
    assert (events, errors) == ([], [])
    assert [(n.file, n.skipped) for n in notes] == [(str(tool), True)] and "not Kubernetes data" in notes[0].note


def test_a_manifest_without_times_is_state_at_the_start_of_the_recording(tmp_path: Path) -> None:
    (tmp_path / "manifest.yaml").write_text(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny-egress, namespace: shop}\n"
        "spec: {podSelector: {}, policyTypes: [Egress]}\n")
    (tmp_path / "events.json").write_text(json.dumps({"kind": "EventList", "apiVersion": "v1", "items": [
        {"metadata": {"name": "e1", "namespace": "shop"}, "involvedObject": {"kind": "Pod", "name": "web-0"},
         "reason": "BackOff", "type": "Warning", "message": "Back-off restarting failed container web",
         "lastTimestamp": "2026-11-30T14:30:00Z", "firstTimestamp": "2026-11-30T14:10:00Z", "count": 9}]}))
    events, errors, notes = _read(tmp_path)
    policy = next(e for e in events if e.metadata["kind"] == "NetworkPolicy")
    assert errors == [] and policy.metadata["time_source"] == "undated"
    assert policy.timestamp.isoformat() == "2026-11-30T14:30:00+00:00"  # the only timed event: the start
    assert any("state at the start of the recording" in n.note for n in notes)


def test_alertmanager_alerts_become_events_about_the_objects_they_name() -> None:
    payload = {"receiver": "team", "status": "firing", "alerts": [
        {"status": "firing", "startsAt": "2026-11-30T14:05:00Z", "endsAt": "0001-01-01T00:00:00Z",
         "fingerprint": "a1b2", "labels": {"alertname": "KubePodCrashLooping", "severity": "warning",
                                           "namespace": "shop", "pod": "web-0", "container": "web"},
         "annotations": {"description": "Pod shop/web-0 (web) is in waiting state (reason: CrashLoopBackOff)."}},
        {"status": "resolved", "startsAt": "2026-11-30T13:00:00Z", "endsAt": "2026-11-30T13:20:00Z",
         "fingerprint": "c3d4", "labels": {"alertname": "KubeNodeNotReady", "severity": "warning",
                                           "node": "worker-2"}, "annotations": {"summary": "Node is not ready."}}]}
    events = alert_events(json.dumps(payload).encode(), "webhook.json")
    assert events is not None and all(isinstance(e, RawEvent) for e in events)
    crash, node = events
    assert (crash.metadata["involved_kind"], crash.metadata["involved_namespace"], crash.metadata["involved_name"],
            crash.metadata["reason"], crash.metadata["event_type"]) == ("Pod", "shop", "web-0", "KubePodCrashLooping",
                                                                         "Warning")
    assert (node.metadata["involved_kind"], node.metadata["involved_name"], node.metadata["event_type"]) == \
        ("Node", "worker-2", "Normal")  # resolved: a record, not a warning
    [found] = diagnose_events(e for e in events if isinstance(e, RawEvent))
    assert (found.family, found.cause, str(found.subject), found.ongoing) == \
        ("alerts", "crash-loop", "Pod/shop/web-0", True)
    assert alert_events(b'{"status": "success", "data": {}}', "other.json") is None
