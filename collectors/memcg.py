"""Which memory cgroup an OOM kill happened in, from the kernel's per-cgroup OOM-kill counters.

Fed by: the memory cgroups' `memory.oom_control` (cgroup v1: `oom_kill N`) or `memory.events`
(v2: `oom_kill N`) under the memory hierarchy's mount. Feeds: `collectors/kernel.py`, for an
`oom:mark_victim` sample: `/proc/<victim>/cgroup` cannot say it, because the killed process is
already exiting when the sample is read, and a v1 hierarchy shows an exiting process at `/`
(`proc_cgroup_show`). The kernel counts the kill in the victim's memory cgroup, so the cgroup whose
counter rose since the last look is the victim's, whether the OOM was the cgroup's or the system's.
`memory_hierarchy` names the hierarchy whose moves the kernel program tracks. `grown` and
`memory_hierarchy` are pure; `OomCounters` reads the files.
"""

from __future__ import annotations

from pathlib import Path

V1_ROOT = Path("/sys/fs/cgroup/memory")
V2_ROOT = Path("/sys/fs/cgroup")


def oom_kills(text: str) -> int:
    """The `oom_kill` count in a memory.oom_control or memory.events text (0 when absent)."""
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == "oom_kill" and value.strip().isdigit():
            return int(value)
    return 0


def memory_hierarchy(cgroups: str) -> int:
    """The memory controller's hierarchy id in a /proc/cgroups text: a v1 hierarchy's number, 0 when
    it is on the v2 unified hierarchy (or absent)."""
    for line in cgroups.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "memory" and fields[1].isdigit():
            return int(fields[1])
    return 0


def grown(before: dict[str, int], after: dict[str, int]) -> list[str]:
    """The cgroup paths whose count rose (a path new since `before` counts from 0), without the
    ancestors of another such path (v2 counts a kill in the parents too), deepest first."""
    rose = [path for path, count in after.items() if count > before.get(path, 0)]
    leaves = [p for p in rose if not any(o != p and o.startswith(p.rstrip("/") + "/") for o in rose)]
    return sorted(leaves, key=lambda p: (-p.count("/"), p))


class OomCounters:
    """The OOM-kill counters of every memory cgroup under `root` (v1's memory hierarchy when
    mounted, else the v2 unified one), and which rose since the last look."""

    def __init__(self, root: Path | None = None) -> None:
        if root is None:
            root = V1_ROOT if (V1_ROOT / "memory.oom_control").exists() else V2_ROOT
        self.root = root
        self.file = "memory.oom_control" if (root / "memory.oom_control").exists() else "memory.events"
        self._last: dict[str, int] = {}

    def read(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for found in self.root.rglob(self.file):
            try:
                count = oom_kills(found.read_text())
            except OSError:
                continue  # removed while walking
            relative = found.parent.relative_to(self.root).as_posix()
            out["/" if relative == "." else f"/{relative}"] = count
        return out

    def start(self) -> None:
        self._last = self.read()

    def victims_since(self) -> list[str]:
        """The cgroups with new OOM kills since start() or the last call, deepest first."""
        now = self.read()
        rose, self._last = grown(self._last, now), now
        return rose
