"""No link followed out of an input folder or archive (`tapio replay`, `tapio analyze`): each is named."""

from __future__ import annotations

import asyncio
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from app.analyze import read
from collectors.bundlefiles import Archive
from collectors.folders import folder_entries
from collectors.replayer import read_recordings, recording_files, recording_inputs, replay_files
from collectors.unusable import UnusableInput
from core.events import RawEvent

OUTSIDE_SECRET = "root:x:0:0:planted-outside-value:/root:/bin/bash"


def event(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Event", "metadata": {"name": name, "namespace": "shop", "uid": f"u-{name}"},
            "involvedObject": {"kind": "Pod", "name": "web-0", "namespace": "shop"}, "reason": "BackOff",
            "message": "Back-off restarting failed container", "type": "Warning", "count": 1,
            "lastTimestamp": "2026-11-20T10:00:00Z"}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """An input folder with one real recording and links planted to read what is outside it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "passwd.json").write_text(json.dumps({"kind": "Event", "note": OUTSIDE_SECRET}))
    (outside / "hard.json").write_text(json.dumps([event("from-outside")]) + f"\n# {OUTSIDE_SECRET}")
    root = tmp_path / "incident"
    (root / "sub").mkdir(parents=True)
    (root / "events.json").write_text(json.dumps({"kind": "EventList", "apiVersion": "v1", "items": [event("a")]}))
    (root / "passwd.json").symlink_to("/etc/passwd")
    (root / "sub" / "secret.json").symlink_to(outside / "passwd.json")
    (root / "etc").symlink_to("/etc", target_is_directory=True)
    (root / "alias.json").symlink_to(root / "events.json")  # inside the folder: read once, as itself
    os.link(outside / "hard.json", root / "sub" / "hard.json")
    return root


def refusals(items: list) -> dict[str, str]:
    return {Path(i.file).name: i.reason for i in items if isinstance(i, UnusableInput)}


def test_a_folder_walk_names_every_link_it_does_not_follow(folder: Path) -> None:
    entries = list(folder_entries(folder))
    assert [e for e in entries if not isinstance(e, UnusableInput)] == [("events.json", folder / "events.json")]
    refused = refusals(entries)
    assert refused == {
        "etc": "symbolic link to /etc (outside the input folder): not followed",
        "passwd.json": "symbolic link to /etc/passwd (outside the input folder): not followed",
        "secret.json": f"symbolic link to {folder.parent / 'outside' / 'passwd.json'} (outside the input folder): "
                       "not followed",
        "hard.json": "hard link (2 names; the others may be outside the input folder): not read; "
                     "copy the file into the folder to have it read",
    }
    assert all(i.position == "link" for i in entries if isinstance(i, UnusableInput))


def test_replay_refuses_links_out_of_a_folder_and_reads_the_rest(folder: Path) -> None:
    assert list(recording_files([folder])) == [folder / "events.json"]
    assert [i.file for i in recording_inputs([folder]) if isinstance(i, UnusableInput)] == [
        str(folder / "etc"), str(folder / "passwd.json"), str(folder / "sub" / "hard.json"),
        str(folder / "sub" / "secret.json")]
    events, errors = read_recordings([folder])
    assert [json.loads(e.data)["metadata"]["name"] for e in events] == ["a"]
    assert len(errors) == 4 and any("passwd.json: link: symbolic link to /etc/passwd" in e for e in errors)

    class Publisher:
        duplicates = 0
        sent: list[RawEvent] = []

        async def publish_many(self, batch: list[RawEvent]) -> int:
            self.sent.extend(batch)
            return len(batch)

    class DeadLetters:
        def __init__(self) -> None:
            self.letters: list[dict] = []

        async def send(self, **letter: object) -> None:
            self.letters.append(letter)

    publisher, deadletters = Publisher(), DeadLetters()
    summary = asyncio.run(replay_files([folder], publisher=publisher, deadletters=deadletters))  # type: ignore[arg-type]
    assert summary.events == 1 and summary.files == 1 and len(summary.errors) == 4
    assert {str(d["where"]) for d in deadletters.letters} == {
        f"{folder / 'etc'}: link", f"{folder / 'passwd.json'}: link", f"{folder / 'sub' / 'hard.json'}: link",
        f"{folder / 'sub' / 'secret.json'}: link"}
    shipped = repr(deadletters.letters) + repr([e.data for e in publisher.sent])
    assert OUTSIDE_SECRET not in shipped and "root:x:0:0" not in shipped


def test_a_named_link_is_the_users_choice(folder: Path) -> None:
    named = folder.parent / "named.json"
    named.symlink_to(folder / "events.json")
    assert list(recording_files([named])) == [named]


def test_analyze_refuses_links_out_of_a_folder(folder: Path) -> None:
    got = read([str(folder)])
    assert [json.loads(e.data)["metadata"]["name"] for e in got.events if e.metadata.get("kind") == "Event"] == ["a"]
    text = "\n".join(got.errors)
    assert "passwd.json: link: symbolic link to /etc/passwd (outside the input folder): not followed" in text
    assert "etc: link: symbolic link to /etc" in text and "hard.json: link: hard link" in text
    assert "secret.json: link: symbolic link to" in text
    assert OUTSIDE_SECRET not in repr(got)


def test_analyze_refuses_links_inside_a_layout_folder(tmp_path: Path) -> None:
    bundle = tmp_path / "support-bundle"  # a troubleshoot bundle's layout, read by its own reader
    (bundle / "cluster-resources" / "events").mkdir(parents=True)
    (bundle / "version.yaml").write_text("apiVersion: troubleshoot.sh/v1beta2\nkind: ClusterVersion\n")
    (bundle / "cluster-resources" / "events" / "shop.json").write_text(json.dumps([event("b")]))
    (bundle / "cluster-resources" / "events" / "default.json").symlink_to("/etc/passwd")
    got = read([str(bundle)])
    assert any("default.json: link: symbolic link to /etc/passwd" in e for e in got.errors), got.errors
    assert "root:x:0:0" not in repr(got)


def test_archive_link_members_are_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "bundle.tar.gz"
    with tarfile.open(target, "w:gz") as tf:
        data = json.dumps([event("c")]).encode()
        info = tarfile.TarInfo("bundle/events.json")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
        for name, kind, to in (("bundle/passwd.json", tarfile.SYMTYPE, "/etc/passwd"),
                               ("bundle/hard.json", tarfile.LNKTYPE, "etc/passwd")):
            link = tarfile.TarInfo(name)
            link.type, link.linkname = kind, to
            tf.addfile(link)
    members = list(Archive(target).members())
    assert [m.rel for m in members if not isinstance(m, UnusableInput)] == ["bundle/events.json"]
    assert [(i.file, i.reason) for i in members if isinstance(i, UnusableInput)] == [
        (f"{target}:bundle/passwd.json", "symbolic link to /etc/passwd: not followed"),
        (f"{target}:bundle/hard.json", "hard link to etc/passwd: not followed")]
