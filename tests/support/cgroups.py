"""A process held in a cgroup v1 group with limits for a while (the etcd tests starve etcd's disk or CPU)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def held(pid: int, group: Path, limits: dict[str, str], lifted: dict[str, str]) -> Iterator[None]:
    """`pid` (its whole thread group) in the cgroup v1 `group` (made here) with `limits` written to the group's
    files. Afterwards, whatever happened inside: the `lifted` values written first (what the group queued goes
    at once, not at the limit), the process back in its controller's root group, the group removed."""
    group.mkdir()
    try:
        for name, value in limits.items():
            (group / name).write_text(value)
        (group / "cgroup.procs").write_text(str(pid))
        yield
    finally:
        with contextlib.suppress(OSError):
            for name, value in lifted.items():
                (group / name).write_text(value)
        with contextlib.suppress(ProcessLookupError, OSError):
            if Path(f"/proc/{pid}").exists():
                (group.parent / "cgroup.procs").write_text(str(pid))
        for _ in range(50):  # the kernel empties the group a moment after the move
            try:
                group.rmdir()
                break
            except OSError:
                time.sleep(0.1)
