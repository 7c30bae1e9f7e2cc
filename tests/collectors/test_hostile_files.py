"""Hostile files (`tapio replay`, `tapio analyze`): nesting, YAML aliases and sizes are bounded; each
refusal names the file, the place and the reason, and the rest of the input is still read."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
import yaml

from app.analyze import read
from collectors import bundlefiles, limits
from collectors.limits import MAX_DEPTH, SafeYamlLoader, deeper_than, skip_json_value
from collectors.replay import parse_recording
from collectors.replayer import read_recordings
from core.events import RawEvent
from core.kube.rollouts import rollout_events

DEEP = 200_000


def event(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Event", "metadata": {"name": name, "namespace": "shop", "uid": f"u-{name}"},
            "involvedObject": {"kind": "Pod", "name": "web-0", "namespace": "shop"}, "reason": "BackOff",
            "message": "Back-off restarting failed container", "type": "Warning", "count": 1,
            "lastTimestamp": "2026-11-20T10:00:00Z"}


def names(events: list) -> list[str]:
    return [json.loads(e.data)["metadata"]["name"] for e in events if e.metadata.get("kind") == "Event"]


def billion_laughs(levels: int = 9) -> str:
    lines = ["l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def test_depth_is_found_without_recursion() -> None:
    assert not deeper_than({"a": [{"b": 1}]}, 3) and deeper_than({"a": [{"b": {}}]}, 3)
    text = "[" * DEEP + "]" * DEEP
    assert skip_json_value(text, 0) == (len(text), MAX_DEPTH)  # the end, and where it went too deep
    assert skip_json_value('{"a": "[[[[", "b": [1]} tail', 0) == (len('{"a": "[[[[", "b": [1]}'), None)


@pytest.mark.parametrize("layout", ["array", "list", "stream"])
def test_a_json_item_nested_200000_deep_is_refused_and_its_neighbours_read(tmp_path: Path, layout: str) -> None:
    deep = "[" * DEEP + "]" * DEEP
    a, b = json.dumps(event("a")), json.dumps(event("b"))
    text = {"array": f"[{a},{deep},{b}]", "list": f'{{"kind": "EventList", "items": [{a},{deep},{b}]}}',
            "stream": f"{a}\n{deep}\n{b}\n"}[layout]
    path = tmp_path / "events.json"
    path.write_text(text)
    for events, errors in (read_recordings([path]), (lambda r: (r.events, r.errors))(read([str(path)]))):
        assert names(events) == ["a", "b"]
        assert len(errors) == 1 and f"{path}: " in errors[0], errors
        assert "nested deeper than 64 levels: refused" in errors[0]
        assert {"array": "[1], line 1", "list": "items[1], line 1", "stream": "line 2"}[layout] in errors[0]


def test_a_yaml_document_nested_200000_deep_is_refused_without_a_crash(tmp_path: Path) -> None:
    # libyaml's C composer overflows the C stack (the process dies) on this: it is never given it
    path = tmp_path / "events.yaml"
    path.write_text(yaml.safe_dump(event("a")) + "---\nitems: " + "[" * DEEP + "]" * DEEP + "\n---\n"
                    + yaml.safe_dump(event("b")))
    events, errors = read_recordings([path])
    assert names(events) == ["a", "b"]
    assert errors == [f"{path}: document 2, line 17, column 71: YAML: nested deeper than 64 levels: refused "
                      "(a Kubernetes object nests about 10)"]
    block = "a:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 100)) + "  " * 100 + "x: 1\n"
    with pytest.raises(yaml.YAMLError, match="nested deeper than 64"):
        yaml.load(block, Loader=SafeYamlLoader)


def test_a_yaml_alias_bomb_is_refused_and_the_next_document_read(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(billion_laughs() + "---\n" + yaml.safe_dump(event("after")))
    for events, errors in (read_recordings([path]), (lambda r: (r.events, r.errors))(read([str(path)]))):
        assert names(events) == ["after"]
        assert len(errors) == 1 and errors[0].startswith(f"{path}: document 1, line 6, column ")
        assert "YAML: aliases expand to more than 1048576 characters (an alias bomb?): refused" in errors[0]


def test_modest_yaml_aliases_are_still_read(tmp_path: Path) -> None:
    path = tmp_path / "anchors.yaml"
    path.write_text("apiVersion: v1\nkind: List\nitems:\n"
                    "- &ev {apiVersion: v1, kind: Event, metadata: {name: a, namespace: shop, uid: u-a},"
                    " reason: BackOff, lastTimestamp: '2026-11-20T10:00:00Z', involvedObject: &who {kind: Pod,"
                    " name: web-0}}\n"
                    "- {apiVersion: v1, kind: Event, metadata: {name: b, namespace: shop, uid: u-b}, reason: BackOff,"
                    " lastTimestamp: '2026-11-20T10:00:01Z', involvedObject: *who}\n")
    events, errors = read_recordings([path])
    assert names(events) == ["a", "b"] and errors == []


def archive(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def small_caps(monkeypatch: pytest.MonkeyPatch) -> None:
    """Caps of a few KiB, so that files and archives over them stay small in a test."""
    monkeypatch.setattr(limits, "MAX_FILE_BYTES", 4096)
    monkeypatch.setattr(bundlefiles, "MAX_MEMBER_BYTES", 4096)
    monkeypatch.setattr(bundlefiles, "MAX_ARCHIVE_BYTES", 10_000)


def padded(name: str, size: int) -> bytes:
    """A recording of one Event, `size` bytes long (spaces after it)."""
    data = json.dumps([event(name)]).encode()
    return data + b" " * (size - len(data))


def test_an_archive_member_over_the_cap_is_not_read_and_its_neighbours_are(tmp_path: Path, small_caps: None) -> None:
    bundle = archive(tmp_path / "b.tar.gz", {"b/a.json": padded("a", 1000), "b/big.json": padded("big", 5000),
                                             "b/c.json": padded("c", 1000)})
    got = read([str(bundle)])
    assert names(got.events) == ["a", "c"]
    assert got.errors == [f"{bundle}:b/big.json: member: too large to read: 5000 bytes, over the 4096 bytes a file or "
                          "archive member may have (read whole): skipped"]


def test_an_archive_is_read_up_to_its_total_cap(tmp_path: Path, small_caps: None) -> None:
    members = {f"b/e{i}.json": padded(f"e{i}", 3000) for i in range(6)}  # 18,000 bytes: over 10,000
    bundle = archive(tmp_path / "b.tar.gz", members)
    got = read([str(bundle)])
    assert names(got.events) == ["e0", "e1", "e2"]
    assert got.errors == [f"{bundle}:b/e3.json: member: the archive's members add up to more than 10000 bytes "
                          "uncompressed (this one has 3000): it and the members after it are not read"]


def test_a_loose_file_over_the_cap_is_refused_by_replay_and_analyze(tmp_path: Path, small_caps: None) -> None:
    (tmp_path / "a.json").write_bytes(padded("a", 1000))
    (tmp_path / "big.json").write_bytes(padded("big", 5000))
    reason = "too large to read: 5000 bytes, over the 4096 bytes a file or archive member may have (read whole)"
    events, errors = read_recordings([tmp_path])
    assert names(events) == ["a"] and errors == [f"{tmp_path / 'big.json'}: file: {reason}: skipped"]
    got = read([str(tmp_path)])
    assert names(got.events) == ["a"] and got.errors == [f"{tmp_path / 'big.json'}: file: {reason}: skipped"]


def test_an_endless_file_is_read_no_further_than_the_cap(small_caps: None) -> None:
    grows = "too large to read: more than 4096 bytes, over the 4096 bytes a file or archive member may have"
    events, errors = read_recordings(["/dev/zero"])
    assert events == [] and errors == [f"/dev/zero: file: {grows} (read whole): skipped"]
    assert read(["/dev/zero"]).errors == [f"/dev/zero: file: {grows} (read whole): skipped"]


def test_replicasets_with_odd_fields_imply_no_rollout_and_no_crash() -> None:
    """Found by the fuzz run: rollouts read annotations, owners and revisions of any shape."""
    def rs(rev: object, at: str, image: str, **meta: object) -> dict:
        return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": f"web-{rev}", "namespace": "shop", "creationTimestamp": at,
                             "annotations": {"deployment.kubernetes.io/revision": rev},
                             "ownerReferences": [{"kind": "Deployment", "name": "web", "uid": "u"}], **meta},
                "spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}}}
    objects = [rs("1", "2026-11-20T10:00:00", "a"), rs("2", "2026-11-20T10:05:00Z", "b"),  # a time without offset
               rs("\u00b2", "2026-11-20T10:06:00Z", "c"), rs("4", "2026-11-20T10:07:00Z", "d", annotations=["x"]),
               rs("5", "2026-11-20T10:08:00Z", "e", ownerReferences=["web", None])]
    events = [e for e in parse_recording(json.dumps(objects).encode(), "rs.json") if isinstance(e, RawEvent)]
    assert len(events) == 5
    assert [e.metadata["message"] for e in rollout_events(events)] == [
        "Deployment shop/web: container[c].image modified (a -> b) (revision 1 -> 2, ReplicaSet web-2)"]


def test_a_recursive_yaml_alias_is_refused(tmp_path: Path) -> None:
    """Found by the fuzz campaign: `&a [*a]` is a cycle, which every walk after the loader followed
    until RecursionError."""
    path = tmp_path / "cycle.yaml"
    path.write_text("kind: ConfigMap\nmetadata: &m {name: x, self: [*m]}\n---\n" + yaml.safe_dump(event("after")))
    events, errors = read_recordings([path])
    assert names(events) == ["after"]
    assert errors == [f"{path}: document 1, line 2, column 31: YAML: an alias inside what it names (a recursive "
                      "structure): refused"]
