"""Taking away what a stopped cluster left on the host (`realcluster.cleanup`), and the machine lock.

A full test run on 2026-12-06 hung for 15 minutes: a network namespace mounted in `/run/netns` just
before the CNI plugins bind-mounted that folder on itself was hidden under the bind mount, unlinking
it failed with EBUSY, the cluster's stop raised before it let go of the machine lock, and the next
cluster of the same test process waited for the lock until its timeout. These tests make that host
state with real mounts (root is needed: they skip without it, or where the host has a `/run/netns`
of its own, which they must not touch). They run in the real-cluster group, holding the machine
lock, so no cluster is running beside them.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from realcluster import build, cleanup
from realcluster.node import RealCluster
from realcluster.stale import MachineLock

pytestmark = [pytest.mark.xdist_group("real-cluster")]

NETNS = Path("/run/netns")


@pytest.fixture
def machine() -> Iterator[MachineLock]:
    """The machine lock, held: no real cluster runs during the test."""
    if os.geteuid() != 0:
        pytest.skip("needs root: it mounts network namespaces and takes the real cluster's lock")
    lock = MachineLock(build.cache_root() / "realcluster.lock")
    lock.acquire()
    try:
        yield lock
    finally:
        lock.release()


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


def _namespace_file(path: Path) -> None:
    """`path` as `ip netns add` and the CNI plugins make it: a file with a network namespace bind-mounted on it."""
    path.touch()
    _mount("--bind", "/proc/self/ns/net", str(path))


@pytest.fixture
def netns_folder(machine: MachineLock) -> Iterator[cleanup.HostBefore]:
    """The host as a cluster found it (no /run/netns); whatever a test leaves is taken away after it."""
    if NETNS.exists():
        pytest.skip(f"this host has a {NETNS} of its own (a cluster running outside the tests?); not touching it")
    before = cleanup.host_before()
    try:
        yield before
    finally:
        cleanup.unmount_all([NETNS])
        if NETNS.exists():
            for entry in NETNS.iterdir():
                entry.unlink(missing_ok=True)
            NETNS.rmdir()


def test_a_namespace_hidden_under_the_bind_mounted_folder_is_taken_away(netns_folder: cleanup.HostBefore) -> None:
    NETNS.mkdir()
    hidden = NETNS / "cni-00000000-hidden"
    _namespace_file(hidden)
    _mount("--bind", str(NETNS), str(NETNS))  # what the CNI plugins do when they first make the folder
    _mount("--make-shared", str(NETNS))
    _namespace_file(NETNS / "cni-00000000-visible")
    # the state of the hang: no umount by its path reaches the hidden namespace, and it cannot be unlinked
    cleanup.unmount_all([hidden])
    with pytest.raises(OSError) as busy:
        hidden.unlink()
    assert busy.value.errno == errno.EBUSY

    cleanup.remove_netns(netns_folder)

    assert not NETNS.exists()
    assert cleanup.mounts_under([NETNS]) == []


def test_a_stop_whose_take_away_fails_still_lets_the_next_cluster_have_the_machine(
        machine: MachineLock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    machine.release()  # the cluster below takes it, as a started one holds it
    cluster = RealCluster(bin_dir=tmp_path)
    cluster._lock.acquire()
    cluster.work_dir = tmp_path / "work"
    cluster.work_dir.mkdir()
    cluster._before = cleanup.host_before()
    cluster.paths = cluster._node_paths()

    def fails(*args: object, **kwargs: object) -> list[str]:
        raise OSError(errno.EBUSY, "Device or resource busy", "/run/netns/cni-x")
    monkeypatch.setattr(cleanup, "take_away", fails)

    with pytest.raises(OSError):
        cluster.stop()
    other = MachineLock(build.cache_root() / "realcluster.lock")
    other.acquire(timeout=2.0)  # before the fix: StartError after waiting, the lock held by the stopped cluster
    other.release()
    machine.acquire()  # for the fixture's release
