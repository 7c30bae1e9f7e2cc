"""One cluster part as a child process: started with its log in a file, stopped by its PID.

Fed by `node` (the command line of etcd, kube-apiserver, containerd, ...); feeds the readiness
checks (`alive`, `log_tail` for the error when a part does not come up) and `stop`.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

from app.stack import free_port
from realcluster.errors import MissingBinary

__all__ = ["Process", "exists", "free_port", "kill_pids"]

_FATAL = re.compile(r"^(F\d{4} |panic: |fatal error: )")

STOP_GRACE = 10.0  # seconds between SIGTERM and SIGKILL


class Process:
    """A started cluster part. `stop()` sends SIGTERM to its PID, then SIGKILL after STOP_GRACE."""

    def __init__(self, name: str, argv: list[str], *, log_dir: Path, env: dict[str, str] | None = None) -> None:
        if not Path(argv[0]).is_file():
            raise MissingBinary(f"{name}: {argv[0]} does not exist; run `python -m realcluster.build` (as root)")
        self.name = name
        self.argv = argv
        self.log_path = log_dir / f"{name}.log"
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env if env is not None else dict(os.environ),
                start_new_session=True,  # a Ctrl-C in the test run does not reach the cluster first
            )
        self.pid = self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        all_lines = text.splitlines()
        # klog's fatal line (F1205 ...) and Go's panics come before a goroutine dump that fills any
        # tail: say them first, or the reason a part exited is cut off
        fatal = [line for line in all_lines if _FATAL.match(line)][:5]
        tail = all_lines[-lines:]
        if fatal and not set(fatal) <= set(tail):
            return "\n".join([*fatal, "...", *tail[-10:]])
        return "\n".join(tail)

    def stop(self, grace: float = STOP_GRACE) -> None:
        if not self.alive():
            return
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.popen.wait(timeout=10)

    def __repr__(self) -> str:
        return f"Process({self.name}, pid={self.pid}, alive={self.alive()})"


def kill_pids(pids: set[int], grace: float = 5.0) -> None:
    """SIGTERM these PIDs, then SIGKILL whichever is still there after `grace` seconds."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    remaining = set(pids)
    while remaining and time.monotonic() < deadline:
        remaining = {pid for pid in remaining if exists(pid)}
        time.sleep(0.1)
    for pid in remaining:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def exists(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return status.rsplit(")", 1)[-1].split()[0] != "Z"
