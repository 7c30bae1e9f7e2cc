"""A cluster part that exits says why: klog's fatal line comes before the goroutine dump that fills
the log's tail (CI of 434b531 showed 30 lines of a kubelet's stacks and not the bind error)."""

from __future__ import annotations

from pathlib import Path

from realcluster.processes import Process


def _process_with_log(tmp_path: Path, text: str) -> Process:
    binary = tmp_path / "part"
    binary.write_text("#!/bin/sh\nexit 255\n")
    binary.chmod(0o755)
    (tmp_path / "logs").mkdir()
    process = Process("kubelet", [str(binary)], log_dir=tmp_path / "logs")
    process.popen.wait(timeout=10)
    process.log_path.write_text(text)
    return process


def test_the_fatal_line_heads_a_tail_full_of_stacks(tmp_path: Path) -> None:
    fatal = "F1205 19:55:02.439769   23568 server.go:178] listen tcp 127.0.0.1:22579: bind: address already in use"
    stacks = [f"goroutine {i} [select]:\n\t/usr/lib/go-1.19/src/runtime/proc.go:{i} +0x45" for i in range(100)]
    process = _process_with_log(tmp_path, "\n".join(["I1205 starting", fatal, *stacks]) + "\n")
    tail = process.log_tail().splitlines()
    assert tail[0] == fatal
    assert tail[-1].endswith("proc.go:99 +0x45")


def test_a_short_log_is_given_as_it_is(tmp_path: Path) -> None:
    text = "I1205 starting\nF1205 10:00:00.000000 1 server.go:1] no such file\n"
    assert _process_with_log(tmp_path, text).log_tail() == text.rstrip("\n")
