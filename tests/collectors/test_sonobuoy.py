"""Sonobuoy results (`sonobuoy retrieve`), as a folder and as the tarball read in place: object lists
land with their kind and namespace, container logs tie to their pod, and Sonobuoy's own files
(meta/, plugins/, hosts/, servergroups.json, serverversion.json) are one note, not errors.

The results are written here in the layout Sonobuoy documents, objects as the API serves them.
"""

from __future__ import annotations

import json
import tarfile
from collections import Counter
from pathlib import Path

import pytest

from agents.diagnosis import diagnose_events
from collectors import bundlefiles
from collectors.bundles import SONOBUOY, InputKind, detect_input, read_inputs
from collectors.loose import InputNote
from collectors.sonobuoy import file_kind, role
from collectors.unusable import UnusableInput
from core.events import RawEvent

TOP = "202612031015_sonobuoy_6d3c1f0e-4b2a-4e8f-9a51-2f7c8d0b1e34"
POD = "cart-api-5d8f7c9b6-q2wxz"


def _pod() -> dict:  # as a PodList item: no kind, no apiVersion, no namespace
    return {"metadata": {"name": POD, "uid": "0f4e2c1a-7b3d-4e5f-8a9b-1c2d3e4f5a6b",
                         "creationTimestamp": "2026-12-03T09:40:00Z",
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "cart-api-5d8f7c9b6",
                                              "uid": "9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d", "controller": True}]},
            "spec": {"nodeName": "worker-1", "containers": [{"name": "api", "image": "shop/cart-api:3.4.0"}]},
            "status": {"phase": "Running", "containerStatuses": [
                {"name": "api", "ready": False, "restartCount": 5, "image": "shop/cart-api:3.4.0",
                 "state": {"waiting": {"reason": "CrashLoopBackOff",
                                       "message": f"back-off 2m40s restarting failed container=api pod={POD}"}},
                 "lastState": {"terminated": {"reason": "Error", "exitCode": 1,
                                              "startedAt": "2026-12-03T10:02:11Z",
                                              "finishedAt": "2026-12-03T10:02:12Z"}}}]}}


def results(root: Path) -> Path:
    """A small Sonobuoy results folder: lists in each of their shapes, a log, and Sonobuoy's own files."""
    files: dict[str, object] = {
        # a `v1 List` whose items carry no kind: the file's name says Pod, the folder the namespace
        "resources/ns/shop/Pods.json": {"apiVersion": "v1", "kind": "List", "items": [_pod()]},
        # a bare array of kind-less items
        "resources/ns/shop/Deployments.json": [{"metadata": {"name": "cart-api", "generation": 7,
                                                             "creationTimestamp": "2026-11-20T08:00:00Z"},
                                                "spec": {"replicas": 1}}],
        # a typed list
        "resources/ns/shop/Events.json": {"apiVersion": "v1", "kind": "EventList", "items": [
            {"metadata": {"name": f"{POD}.187d3f2a9c1b0e44", "namespace": "shop"},
             "involvedObject": {"kind": "Pod", "name": POD, "namespace": "shop", "fieldPath": "spec.containers{api}"},
             "reason": "BackOff", "type": "Warning", "message": "Back-off restarting failed container api in pod "
             f"{POD}_shop(0f4e2c1a-7b3d-4e5f-8a9b-1c2d3e4f5a6b)", "count": 21,
             "firstTimestamp": "2026-12-03T09:41:05Z", "lastTimestamp": "2026-12-03T10:04:40Z"}]},
        # items that say what they are and where
        "resources/ns/shop/ConfigMaps.json": {"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cart-api", "namespace": "shop",
                                                                   "creationTimestamp": "2026-11-20T08:00:00Z"},
             "data": {"LOG_LEVEL": "info"}}]},
        "resources/ns/shop/Secrets.json": {"apiVersion": "v1", "kind": "List", "items": []},
        "resources/cluster/Nodes.json": {"apiVersion": "v1", "kind": "List", "items": [
            {"metadata": {"name": "worker-1", "uid": "5c4b3a29-1807-4f6e-9d8c-7b6a5f4e3d2c",
                          "creationTimestamp": "2026-10-01T00:00:00Z"},
             "status": {"conditions": [{"type": "Ready", "status": "True",
                                        "lastTransitionTime": "2026-10-01T00:02:00Z"}]}}]},
        "resources/cluster/Namespaces.json": {"apiVersion": "v1", "kind": "List", "items": [
            {"metadata": {"name": "shop", "creationTimestamp": "2026-10-01T00:05:00Z"}}]},
        "resources/cluster/StorageClasses.json": {"apiVersion": "v1", "kind": "List", "items": [
            {"metadata": {"name": "standard", "creationTimestamp": "2026-10-01T00:00:30Z"},
             "provisioner": "rancher.io/local-path"}]},
        # Sonobuoy's own
        "meta/query-time.json": {"queryobj": "Pods", "namespace": "shop", "elapsedtime": "12.1ms"},
        "meta/config.json": {"UUID": TOP.split("_")[-1], "Version": "v0.57.1", "Resources": ["Pods"]},
        "plugins/e2e/sonobuoy_results.yaml": "name: e2e\nstatus: passed\nitems: []\n",
        "plugins/e2e/results/global/junit_01.xml": "<testsuites><testsuite tests=\"0\"/></testsuites>\n",
        "hosts/worker-1/configz.json": {"kubeletconfig": {"maxPods": 110}},
        "servergroups.json": {"kind": "APIGroupList", "groups": []},
        "serverversion.json": {"major": "1", "minor": "30", "gitVersion": "v1.30.4"},
    }
    folder = root / TOP
    for rel, content in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content if isinstance(content, str) else json.dumps(content, indent=4))
    (folder / "meta" / "run.log").write_text('time="2026-12-03T10:15:02Z" level=info msg="Starting server"\n')
    log = folder / "podlogs" / "shop" / POD / "logs" / "api.txt"
    log.parent.mkdir(parents=True)
    log.write_text("2026-12-03T10:02:11.402Z INFO starting cart-api 3.4.0\n"
                   "2026-12-03T10:02:12.118Z FATAL environment variable CART_REDIS_URL is not set\n")
    return folder


def _read(*paths: Path) -> tuple[list[RawEvent], list[UnusableInput], list[InputNote]]:
    items = list(read_inputs(paths))
    return ([i for i in items if isinstance(i, RawEvent)], [i for i in items if isinstance(i, UnusableInput)],
            [i for i in items if isinstance(i, InputNote)])


def _tar(folder: Path, target: Path, prefix: str) -> Path:
    with tarfile.open(target, "w:gz") as tf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                tf.add(path, arcname=prefix + path.relative_to(folder).as_posix())
    return target


def test_the_layout_is_known_by_its_paths(tmp_path: Path) -> None:
    folder = results(tmp_path)
    assert detect_input(folder) == InputKind(SONOBUOY)
    assert detect_input(tmp_path) == InputKind(SONOBUOY, nested=True)
    assert detect_input(_tar(folder, tmp_path / f"{TOP}.tar.gz", "")) == InputKind(SONOBUOY, archive=True)
    assert role("resources/ns/shop/Pods.json") == ("listed", None)
    assert role("podlogs/shop/web-0/logs/web.txt")[1].namespace == "shop"  # type: ignore[index]
    assert role("plugins/e2e/results/global/resources/ns/x/Pods.json") == ("skip", None)  # a plugin's, not a list
    assert role("podlogs/plugins/web-0/logs/web.txt")[0] == "log"  # type: ignore[index]  # a namespace "plugins"
    assert role("resources/cluster/ServerVersion.json") == ("skip", None)
    assert [file_kind(n) for n in ("Pods.json", "ReplicaSets.json", "StorageClasses.json", "Endpoints.json",
                                   "NetworkPolicies.json", "Events.json")] == [
        ("Pod", "v1"), ("ReplicaSet", "apps/v1"), ("StorageClass", "storage.k8s.io/v1"), ("Endpoints", "v1"),
        ("NetworkPolicy", "networking.k8s.io/v1"), ("Event", "")]


def test_objects_land_with_their_kind_and_namespace_and_the_log_ties_to_its_pod(tmp_path: Path) -> None:
    events, errors, notes = _read(results(tmp_path))
    assert errors == []
    objects = [e for e in events if e.type == "kubeapi"]
    assert Counter((e.metadata["kind"], e.metadata["namespace"]) for e in objects) == {
        ("Pod", "shop"): 1, ("Deployment", "shop"): 1, ("Event", "shop"): 1, ("ConfigMap", "shop"): 1,
        ("Node", ""): 1, ("Namespace", ""): 1, ("StorageClass", ""): 1}
    pod = next(e for e in objects if e.metadata["kind"] == "Pod")
    assert (pod.metadata["api_version"], pod.metadata["node"]) == ("v1", "worker-1")
    assert json.loads(pod.data)["metadata"]["namespace"] == "shop"
    deployment = next(e for e in objects if e.metadata["kind"] == "Deployment")
    assert deployment.metadata["api_version"] == "apps/v1"
    assert deployment.metadata["source"].endswith("resources/ns/shop/Deployments.json#[0]")

    [line] = [e for e in events if e.type == "logs"]
    assert (line.metadata["namespace"], line.metadata["name"], line.metadata["container"], line.metadata["previous"],
            line.metadata["uid"], line.metadata["node"], line.metadata["signal"]) == \
        ("shop", POD, "api", "false", "0f4e2c1a-7b3d-4e5f-8a9b-1c2d3e4f5a6b", "worker-1", "missing-env")
    assert line.metadata["source"].endswith(f"podlogs/shop/{POD}/logs/api.txt:2")
    assert line.timestamp.isoformat() == "2026-12-03T10:02:12.118000+00:00"

    [note] = notes  # meta/, plugins/, hosts/ and the two server files: one note, not errors
    assert note.skipped and note.file == str(tmp_path / TOP)
    for area in ("meta/ (3 files)", "plugins/ (2 files)", "hosts/", "servergroups.json", "serverversion.json"):
        assert area in note.note

    [found, *_] = diagnose_events(events)  # the current log of a waiting container is its last run's
    assert (found.cause, str(found.subject), found.detail["variable"]) == \
        ("missing-env-var", f"Pod/shop/{POD}", "CART_REDIS_URL")


@pytest.mark.parametrize("prefix", ["", f"{TOP}/", "./"])
def test_the_tarball_read_in_place_gives_what_the_folder_gives(tmp_path: Path, prefix: str) -> None:
    folder = results(tmp_path / "extracted")
    archive = _tar(folder, tmp_path / f"{TOP}.tar.gz", prefix)
    from_folder, _, _ = _read(folder)
    events, errors, notes = _read(archive)
    assert errors == []
    assert sorted(e.id for e in events) == sorted(e.id for e in from_folder)
    assert len(notes) == 1 and notes[0].file == str(archive) and "meta/ (3 files)" in notes[0].note
    [line] = [e for e in events if e.type == "logs"]
    assert line.metadata["source"] == f"{archive}:{prefix.removeprefix('./')}podlogs/shop/{POD}/logs/api.txt:2"


def test_a_member_above_the_cap_is_reported_and_the_rest_is_read(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    folder = results(tmp_path / "extracted")
    archive = _tar(folder, tmp_path / "results.tar.gz", "")
    size = (folder / "resources" / "ns" / "shop" / "Pods.json").stat().st_size
    monkeypatch.setattr(bundlefiles, "MAX_MEMBER_BYTES", size - 1)  # the Pods list alone is larger
    events, errors, _ = _read(archive)
    assert [(e.file, e.position) for e in errors] == [(f"{archive}:resources/ns/shop/Pods.json", "member")]
    assert "too large" in errors[0].reason
    kinds = Counter(e.metadata["kind"] for e in events if e.type == "kubeapi")
    assert kinds["Pod"] == 0 and kinds["Deployment"] == kinds["Node"] == 1
    assert [e.metadata["namespace"] for e in events if e.type == "logs"] == ["shop"]  # the path names the pod


def test_an_item_keeps_its_own_namespace_and_a_bad_list_is_an_error_not_a_crash(tmp_path: Path) -> None:
    folder = tmp_path / "results"
    (folder / "resources" / "ns" / "shop").mkdir(parents=True)
    (folder / "resources" / "ns" / "shop" / "ReplicaSets.json").write_text(json.dumps({"kind": "List", "items": [
        {"metadata": {"name": "cart-api-5d8f7c9b6", "namespace": "elsewhere",
                      "creationTimestamp": "2026-12-03T09:39:58Z"}, "spec": {"replicas": 1}}]}))
    (folder / "resources" / "ns" / "shop" / "Services.json").write_text('{"kind": "List", "items": [')
    events, errors, notes = _read(folder)
    [rs] = [e for e in events if e.metadata.get("kind") == "ReplicaSet"]
    assert (rs.metadata["namespace"], rs.metadata["api_version"]) == ("elsewhere", "apps/v1")
    assert [e.file for e in errors] == [str(folder / "resources" / "ns" / "shop" / "Services.json")]
    assert notes == []
