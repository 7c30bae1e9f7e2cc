"""Recorded RawEvent lines (`collectors.rawlines`) read back through the replay reader. Pure."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import msgspec

from collectors.node import node_event
from collectors.replay import read_recording
from collectors.unusable import UnusableInput

AT = datetime(2026, 12, 5, 4, 26, 41, 106327, tzinfo=UTC)


def test_a_kernel_collectors_events_come_back_as_emitted_and_a_bad_line_is_named(tmp_path: Path) -> None:
    kill = node_event("kernel", node="n1", at=AT, reason="OOMKill", message="tail (pid 9) killed", intent="oom-kill",
                      category="resources", severity="error",
                      about={"kind": "Pod", "namespace": "oom-hog", "name": "hog-1", "uid": "u1"},
                      facts={"pid": "9", "kernel.comm": "tail"})
    path = tmp_path / "kernel.rawevents.jsonl"
    path.write_bytes(msgspec.json.encode(kill) + b"\n\n" + b'{"kind": "Pod"}\n')
    got = list(read_recording(path))
    assert got[0] == kill
    assert isinstance(got[1], UnusableInput) and got[1].position == "line 3" and "not a RawEvent" in got[1].reason
