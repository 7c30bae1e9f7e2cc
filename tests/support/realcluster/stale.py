"""One real cluster per machine at a time, and sweeping the ones whose owner died.

Fed by `node`: the cluster takes `MachineLock` before it starts and keeps it until `stop()`
(the lock dies with its process), and writes a `Record` in its work dir (the PIDs of its parts,
its bridge, network and containerd paths, what the host held before), updated as parts start.
Feeds `RealCluster.start()`: holding the lock, every other `/tmp/tapio-cluster-*` is stale (a
test run killed with SIGKILL leaves its cluster running), so `sweep()` stops what its record
names, by PID and only when the PID's command line still names that work dir, and takes away
what it left on the host (`cleanup.take_away`).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

from realcluster import cleanup
from realcluster.errors import StartError
from realcluster.processes import kill_pids

log = logging.getLogger("realcluster")

RECORD = "cluster.json"
PREFIX = "tapio-cluster-"
LOCK_WAIT = 900.0  # seconds a second cluster waits for the first one (another test run) to stop


class MachineLock:
    """An exclusive flock on a file in the cache folder, held while a cluster runs."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None

    def acquire(self, timeout: float = LOCK_WAIT) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")
        deadline = time.monotonic() + timeout
        said = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    handle.seek(0)
                    owner = handle.read().strip() or "unknown"
                    handle.close()
                    raise StartError(
                        f"waited {timeout:.0f} s for the real cluster of pid {owner} (lock {self.path}): one cluster "
                        "per machine at a time; stop that test run, or wait for it, and run again"
                    ) from None
                if not said:
                    log.info("realcluster: waiting for the cluster of another process to stop (lock %s)", self.path)
                    said = True
                time.sleep(1.0)
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


@dataclass
class Record:
    pids: list[int]
    bridge: str
    network: str
    containerd_socket: str
    containerd_state: str
    before_existing: list[str]
    before_entries: dict[str, list[str]]

    @classmethod
    def new(cls, before: cleanup.HostBefore, *, bridge: str, network: str, socket: Path, state: Path) -> Record:
        return cls(
            pids=[],
            bridge=bridge,
            network=network,
            containerd_socket=str(socket),
            containerd_state=str(state),
            before_existing=sorted(str(p) for p in before.existing),
            before_entries={str(k): sorted(v) for k, v in before.entries.items()},
        )

    def before(self) -> cleanup.HostBefore:
        return cleanup.HostBefore(
            existing=frozenset(Path(p) for p in self.before_existing),
            entries={Path(k): frozenset(v) for k, v in self.before_entries.items()},
        )

    def write(self, work_dir: Path) -> None:
        tmp = work_dir / f".{RECORD}.tmp"
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        tmp.rename(work_dir / RECORD)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def sweep(*, keep: Path | None = None) -> list[Path]:
    """Stop and take away every recorded cluster but `keep`; call it holding the MachineLock."""
    swept = []
    for record_path in sorted(Path(tempfile.gettempdir()).glob(f"{PREFIX}*/{RECORD}")):
        work_dir = record_path.parent
        if keep is not None and work_dir == keep:
            continue
        try:
            record = Record(**json.loads(record_path.read_text()))
        except (OSError, ValueError, TypeError) as e:
            log.warning("realcluster: %s is unreadable (%s): remove %s by hand", record_path, e, work_dir)
            continue
        kill_pids({pid for pid in record.pids if str(work_dir) in _cmdline(pid)})
        problems = cleanup.take_away(
            record.before(),
            work_dir=work_dir,
            bridge=record.bridge,
            network=record.network,
            containerd_socket=Path(record.containerd_socket),
            containerd_state=Path(record.containerd_state),
        )
        log.warning(
            "realcluster: swept the cluster a dead process left in %s%s",
            work_dir,
            f"; still there (remove by hand): {'; '.join(problems)}" if problems else "",
        )
        swept.append(work_dir)
    return swept
