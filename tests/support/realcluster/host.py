"""What the machine must offer before a cluster is built or started: root and cgroup v1 memory.

Fed by the running process and /sys/fs/cgroup; feeds `build.main` (nothing is built on a
machine that could not run it, with `--if-possible`), `node.check_machine` and the tests'
fixture, which skips on `MachineUnfit` with its message.
"""

from __future__ import annotations

import os
from pathlib import Path

from realcluster.errors import NoMemoryCgroup, NotRootError

MEMORY_CGROUP = Path("/sys/fs/cgroup/memory/memory.limit_in_bytes")


def check_host() -> None:
    """Raise `MachineUnfit` (with what to do) when this machine cannot run a cluster at all."""
    if os.geteuid() != 0:
        raise NotRootError(
            "the real cluster needs root (apt-get, mounts, network namespaces, cgroups): run the tests as root"
        )
    if not MEMORY_CGROUP.exists():
        raise NoMemoryCgroup(
            f"{MEMORY_CGROUP} is missing: the kubelet here runs with the cgroupfs driver on cgroup v1 and needs the "
            "memory controller mounted at /sys/fs/cgroup/memory (boot with cgroup v1 or a hybrid hierarchy)"
        )
