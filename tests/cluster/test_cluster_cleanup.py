"""Taking away what a stopped cluster left on the host (`realcluster.cleanup`), and the machine lock.

A full test run on 2026-12-06 hung for 15 minutes: `ip netns add` in a test beside the cluster
(tests/collectors/test_dns_capture.py) bind-mounted `/run/netns` on itself over the cluster's network
namespaces; hidden, one could not be unlinked (EBUSY), the cluster's stop raised before it let go of
the machine lock, and the next cluster of the same test process waited for the lock until its timeout.
These tests use real mounts and the real `ip` (root is needed: they skip without it). They run in the
real-cluster group, holding the machine lock, so no cluster is running beside them.
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


def _ip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=False)


def test_a_namespace_another_tool_adds_later_does_not_hide_the_clusters(machine: MachineLock) -> None:
    before = cleanup.host_before()
    ours = cleanup.NETNS_DIR / f"cni-00000000-{os.getpid()}"
    theirs = f"tapio-cleanup-{os.getpid()}"
    try:
        cleanup.share_netns_folder()  # as the cluster does at start
        ours.touch()  # as the CNI plugins make a pod's namespace
        subprocess.run(["mount", "--bind", "/proc/self/ns/net", str(ours)], check=True, capture_output=True)
        added = _ip("netns", "add", theirs)  # a first `ip netns add` bind-mounts the folder unless it is a mount
        assert added.returncode == 0, added.stderr

        assert cleanup.remove_netns(before) == []

        assert not ours.exists() and cleanup.mounts_under([ours]) == []
        used = _ip("netns", "exec", theirs, "true")  # the other tool's namespace is left working
        assert used.returncode == 0, used.stderr
        assert _ip("netns", "del", theirs).returncode == 0
        assert cleanup.remove_netns(before) == []
        if cleanup.NETNS_DIR not in before.existing:
            assert not cleanup.NETNS_DIR.exists()
    finally:
        _ip("netns", "del", theirs)
        cleanup.unmount_all([ours])
        ours.unlink(missing_ok=True)
        cleanup.remove_netns(before)


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
