"""What a stopped cluster leaves on the host, and taking it away again.

Fed by `node`: a `HostBefore` taken before anything starts, the cluster's private paths, its
bridge name and its containers' ids. Feeds `RealCluster.stop()`, and the tests' check that
nothing is left.

The kubelet and containerd write outside their private folders whatever the flags say; seen
here: `/var/log/pods/<ns>_<pod>_<uid>`, `/var/lib/kubelet/device-plugins`, libcni's cache
`/var/lib/cni/results`, shim sockets `/run/containerd/s/<hash>`, network namespaces
`/run/netns/cni-*` (bind mounts), cgroups `/sys/fs/cgroup/<controller>/k8s.io/<container id>`
(every v1 hierarchy, name=systemd too); `/etc/cni/net.d/cni.lock` was seen before (stack.md).
They leave the kubelet root dir and the pods' rootfs and shm mounted; container shims outlive
containerd. Only what was not there before, or belongs to this cluster's containers, is removed.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from realcluster.processes import exists, kill_pids

CGROUP_ROOT = Path("/sys/fs/cgroup")
CONTAINERD_NAMESPACE = "k8s.io"
MNT_DETACH = 2
NETNS_DIR = Path("/run/netns")  # where `ip netns` and the CNI plugins mount network namespaces
HOST_PATHS = (
    Path("/var/log/pods"),
    Path("/var/lib/kubelet"),
    Path("/var/lib/cni"),
    Path("/etc/cni"),
    Path("/etc/cni/net.d"),
    NETNS_DIR,
    Path("/usr/libexec/kubernetes"),
    Path("/run/containerd"),  # shim sockets: /run/containerd/s/<hash>, whatever containerd's state dir is
    Path("/run/containerd/s"),
)


@dataclass(frozen=True)
class HostBefore:
    """Which host paths and entries existed before the cluster started."""

    existing: frozenset[Path]
    entries: dict[Path, frozenset[str]] = field(default_factory=dict)


def host_before() -> HostBefore:
    existing = frozenset(path for path in HOST_PATHS if path.exists())
    entries = {path: frozenset(os.listdir(path)) for path in existing if path.is_dir()}
    cgroup_parents = frozenset(p for p in CGROUP_ROOT.glob(f"*/{CONTAINERD_NAMESPACE}") if p.is_dir())
    return HostBefore(existing=existing | cgroup_parents, entries=entries)


def container_ids(containerd_state: Path) -> set[str]:
    """Ids of the tasks (pod sandboxes and containers) this containerd ran."""
    tasks = containerd_state / "io.containerd.runtime.v2.task" / CONTAINERD_NAMESPACE
    return {p.name for p in tasks.iterdir()} if tasks.is_dir() else set()


def shim_pids(containerd_socket: Path) -> set[int]:
    """containerd-shim processes started by this containerd (they outlive it by design)."""
    pids = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and b"containerd-shim" in argv[0] and str(containerd_socket).encode() in argv:
            pids.add(int(proc.name))
    return pids


def container_cgroups(ids: set[str]) -> list[Path]:
    return [d for cid in ids for d in CGROUP_ROOT.glob(f"*/{CONTAINERD_NAMESPACE}/{cid}") if d.is_dir()]


def cgroup_pids(cgroups: list[Path]) -> set[int]:
    pids: set[int] = set()
    for cgroup in cgroups:
        try:
            pids |= {int(line) for line in (cgroup / "cgroup.procs").read_text().split()}
        except OSError:
            continue
    return pids


def kill_containers(containerd_socket: Path, containerd_state: Path) -> set[str]:
    """SIGKILL every shim and container process of this containerd; return the container ids."""
    ids = container_ids(containerd_state)
    kill_pids(shim_pids(containerd_socket) | cgroup_pids(container_cgroups(ids)), grace=2.0)
    return ids


def remove_cgroups(ids: set[str], before: HostBefore) -> list[str]:
    """rmdir the containers' cgroups, and each `k8s.io` parent this cluster made; return failures."""
    failures: list[str] = []
    for cgroup in container_cgroups(ids):
        for child in sorted(cgroup.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if child.is_dir():
                _rmdir(child, failures)
        _rmdir(cgroup, failures)
    for parent in CGROUP_ROOT.glob(f"*/{CONTAINERD_NAMESPACE}"):
        if parent not in before.existing and parent.is_dir() and not any(p.is_dir() for p in parent.iterdir()):
            _rmdir(parent, failures)
    return failures


def _rmdir(path: Path, failures: list[str]) -> None:
    try:
        path.rmdir()
    except FileNotFoundError:
        pass
    except OSError as e:
        failures.append(f"{path}: {e.strerror}")


def mounts_under(prefixes: list[Path]) -> list[Path]:
    """Mount points at or below any of `prefixes`, deepest first."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = Path(_unescape(line.split()[4]))
        if any(point == prefix or prefix in point.parents for prefix in prefixes):
            found.append(point)
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def _unescape(field_: str) -> str:
    return field_.encode().decode("unicode_escape") if "\\" in field_ else field_


def unmount_all(prefixes: list[Path]) -> list[Path]:
    """Lazily unmount everything at or below `prefixes` (stacked mounts too); return what stays."""
    libc = ctypes.CDLL(None, use_errno=True)
    for _ in range(10):
        points = mounts_under(prefixes)
        if not points:
            return []
        for point in points:
            libc.umount2(str(point).encode(), MNT_DETACH)
    return mounts_under(prefixes)


def netns_made(before: HostBefore) -> list[Path]:
    if not NETNS_DIR.is_dir():
        return []
    old = before.entries.get(NETNS_DIR, frozenset())
    return [NETNS_DIR / name for name in os.listdir(NETNS_DIR) if name.startswith("cni-") and name not in old]


def share_netns_folder() -> None:
    """Make `/run/netns` a shared mount point of its own before the CNI plugins mount namespaces in it,
    as `ip netns add` does the first time. Otherwise the first `ip netns add` on the host while the
    cluster runs (tests/collectors/test_dns_capture.py does) bind-mounts the folder on itself over the
    cluster's namespaces: hidden, they can be neither unmounted by path nor unlinked (EBUSY), and the
    folder can never go (seen 2026-12-06). Idempotent; the folder is removed in `remove_netns` when
    the cluster made it and it is empty."""
    NETNS_DIR.mkdir(exist_ok=True)
    if NETNS_DIR not in mounts_under([NETNS_DIR]):
        subprocess.run(["mount", "--rbind", str(NETNS_DIR), str(NETNS_DIR)], check=True, capture_output=True)
    subprocess.run(["mount", "--make-rshared", str(NETNS_DIR)], check=True, capture_output=True)


def remove_netns(before: HostBefore) -> list[str]:
    """Unmount and unlink the cluster's network namespaces; the folder too when the cluster made it and
    nothing else is in it (a test beside the cluster may have namespaces of its own there). Returns
    what could not be removed."""
    problems = []
    for path in netns_made(before):
        unmount_all([path])
        try:
            path.unlink(missing_ok=True)
        except OSError as e:  # EBUSY: mounted under a later bind mount of the folder (see share_netns_folder)
            problems.append(f"network namespace {path}: {e.strerror} (hidden under a bind mount of {NETNS_DIR})")
    if NETNS_DIR not in before.existing and NETNS_DIR.is_dir() and not os.listdir(NETNS_DIR):
        unmount_all([NETNS_DIR])
        NETNS_DIR.rmdir()
    return problems


def link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def delete_link(name: str) -> None:
    if link_exists(name):
        subprocess.run(["ip", "link", "delete", name], capture_output=True, check=False)


def restore_host_paths(before: HostBefore, *, network: str) -> None:
    """Remove host paths that did not exist before; in those that did, only the new entries."""
    for path in HOST_PATHS:
        if path == NETNS_DIR or not path.exists():
            continue
        if path not in before.existing:
            unmount_all([path])
            shutil.rmtree(path, ignore_errors=True)
            continue
        old = before.entries.get(path, frozenset())
        for name in set(os.listdir(path)) - old:
            target = path / name
            unmount_all([target])
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target, ignore_errors=True)
            else:
                target.unlink(missing_ok=True)
    results = Path("/var/lib/cni/results")  # libcni's cache, when /var/lib/cni was there before
    if results.is_dir():
        for entry in results.glob(f"{network}-*"):
            entry.unlink(missing_ok=True)


def leftovers(before: HostBefore, *, work_dir: Path, bridge: str, pids: list[int]) -> list[str]:
    """What of this cluster is still on the host (empty when `stop()` did its job)."""
    found = [f"process {pid}" for pid in pids if exists(pid)]
    found += [f"mount {p}" for p in mounts_under([work_dir, Path("/var/lib/kubelet")])]
    found += [f"netns {p}" for p in netns_made(before)]
    if link_exists(bridge):
        found.append(f"link {bridge}")
    if work_dir.exists():
        found.append(f"folder {work_dir}")
    for path in HOST_PATHS:
        if path.exists() and path not in before.existing:
            found.append(f"host path {path}")
    return found


def take_away(
    before: HostBefore, *, work_dir: Path, bridge: str, network: str, containerd_socket: Path, containerd_state: Path
) -> list[str]:
    """Everything after the cluster's own processes are stopped: container processes, mounts,
    netns, cgroups, the bridge, new host paths, the work dir. Returns what could not be removed."""
    ids = kill_containers(containerd_socket, containerd_state)
    problems = [f"still mounted: {p}" for p in unmount_all([work_dir, Path("/var/lib/kubelet")])]
    problems += remove_netns(before)
    problems += remove_cgroups(ids, before)
    delete_link(bridge)
    restore_host_paths(before, network=network)
    shutil.rmtree(work_dir, ignore_errors=True)
    return problems
