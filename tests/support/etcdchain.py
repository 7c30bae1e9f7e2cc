"""The slow etcd -> slow API chain on the real cluster: etcd starved of disk (or CPU), a steady write load on the
API, and the two collectors that watch each side.

Fed by: a test or the recording script (`benchmarks/record_etcd_slow.py`) with a running `realcluster.RealCluster`.
Feeds: the cluster's etcd process (its PID, known to the cluster) moved into a cgroup v1 group that throttles it,
and moved back, the group removed, whatever happens (`starved`); the API (`Writes`: threads that create and
patch ConfigMaps in one namespace, as controllers and deploy tools do); the etcd collector (`collectors.etcd`,
on the cluster's etcd: its /metrics on the client URL) and the API server collector (`collectors.apiserver`, on
the cluster's kube-apiserver with the admin token, which may read /metrics).

Starving the disk: a blkio group limits etcd's writes to its data dir's block device to `iops` a second. Every
write request waits for etcd's WAL fsync before etcd answers, and the API server waits for etcd: etcd's fsync,
backend commit and applies take hundreds of ms, the API's writes (and the reads queued behind them) as long.
Where the data dir is on no block device (tmpfs, overlay), the CPU is starved instead (a cpu group with a CFS
quota of `cpu_percent` of one core).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import kubernetes
from cgroups import held
from realcluster.node import RealCluster

from collectors.apiserver import APIServerCollector
from collectors.etcd import EtcdCollector

log = logging.getLogger(__name__)

CGROUP = Path("/sys/fs/cgroup")
PREFIX = "tapio-etcdchain-"  # the groups this module makes: a killed run's are swept (`sweep`)
ETCD_SLOW = ("EtcdSlowFsync", "EtcdSlowCommit", "EtcdSlowApply")  # the etcd collector's slowness findings
INTERVAL = 5.0  # both collectors' interval (a production agent reads every 15 s); their thresholds are the defaults


def etcd_pid(cluster: RealCluster) -> int:
    return next(p.pid for p in cluster.processes if p.name == "etcd")


def data_dir(cluster: RealCluster) -> Path:
    return Path(cluster.work_dir) / "etcd"


def how_to_starve(folder: Path) -> str:
    """`disk` when the folder is on a block device and blkio throttling is there, else `cpu`; "" when neither
    can be done here (no root, no cgroup v1)."""
    if os.geteuid() != 0:
        return ""
    if (CGROUP / "blkio" / "blkio.throttle.write_iops_device").is_file() and os.major(os.stat(folder).st_dev) != 0:
        return "disk"
    if (CGROUP / "cpu" / "cpu.cfs_quota_us").is_file():
        return "cpu"
    return ""


def sweep() -> None:
    """Remove the empty groups a killed run left (a group holding a live process is left alone)."""
    for controller in ("blkio", "cpu"):
        for group in (CGROUP / controller).glob(f"{PREFIX}*"):
            with contextlib.suppress(OSError):
                if not (group / "cgroup.procs").read_text().strip():
                    group.rmdir()


@contextlib.contextmanager
def starved(pid: int, folder: Path, *, iops: int = 10, cpu_percent: int = 5) -> Iterator[str]:
    """The process `pid` (etcd) starved while inside: its writes to `folder`'s device throttled to `iops` a
    second (cgroup v1 blkio), or, without a block device, its CPU to `cpu_percent` of one core (cgroup v1 cpu).
    Yields which ("disk", "cpu"). Afterwards the process is back in the root group and the group removed,
    whatever happened inside. Raises RuntimeError naming what is missing."""
    how = how_to_starve(folder)
    if not how:
        raise RuntimeError("starving etcd needs root and cgroup v1 blkio or cpu under /sys/fs/cgroup")
    sweep()
    st = os.stat(folder)
    device = f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}"
    if how == "disk":
        limits = {"blkio.throttle.write_iops_device": f"{device} {iops}"}
        lifted = {"blkio.throttle.write_iops_device": f"{device} 0"}
    else:
        limits = {"cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": str(1000 * cpu_percent)}
        lifted = {"cpu.cfs_quota_us": "-1"}
    # the limit is lifted before etcd leaves the group: it is at full speed as soon as this returns (the
    # tests after this one share the cluster)
    with held(pid, CGROUP / ("blkio" if how == "disk" else "cpu") / f"{PREFIX}{pid}", limits, lifted):
        log.info("etcd (pid %d) starved: %s", pid, f"{iops} writes/s" if how == "disk" else f"{cpu_percent}% CPU")
        yield how
    log.info("etcd (pid %d) back to full speed", pid)


class Writes:
    """`threads` threads creating and patching ConfigMaps in `namespace` until stopped (`with`), each `pause`
    seconds after each answer: a steady write load on the API (at most 60 a second by default), as controllers
    and deploy tools make. `done` counts the requests answered, `failed` those that failed (timeouts while etcd
    is starved)."""

    def __init__(self, api: kubernetes.client.ApiClient, namespace: str, *, threads: int = 3,
                 pause: float = 0.05) -> None:
        self.core = kubernetes.client.CoreV1Api(api)
        self.namespace, self.threads, self.pause = namespace, threads, pause
        self.done = self.failed = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._running: list[threading.Thread] = []

    def _loop(self, n: int) -> None:
        i = 0
        while not self._stop.is_set():
            name = f"load-{n}-{i % 20}"
            try:
                if i < 20:
                    self.core.create_namespaced_config_map(self.namespace, {
                        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"n": str(i)}},
                        _request_timeout=30)
                else:
                    self.core.patch_namespaced_config_map(name, self.namespace, {"data": {"n": str(i)}},
                                                          _request_timeout=30)
                with self._lock:
                    self.done += 1
                self._stop.wait(self.pause)
            except Exception as e:  # noqa: BLE001 - a timed-out request is what a starved etcd does: counted
                with self._lock:
                    self.failed += 1
                log.debug("write %s failed: %s", name, e)
                time.sleep(0.2)
            i += 1

    def __enter__(self) -> Writes:
        self._running = [threading.Thread(target=self._loop, args=(n,), name=f"writes-{n}", daemon=True)
                         for n in range(self.threads)]
        for thread in self._running:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._running:
            thread.join(40)


def token_file(cluster: RealCluster, folder: Path) -> Path:
    """The admin's bearer token in a file (system:masters may read /metrics), as the agent's token is."""
    assert cluster.pki is not None, "the cluster is not started"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "apiserver-token"
    path.write_text(cluster.pki.admin.token)
    path.chmod(0o600)
    return path


def etcd_collector(cluster: RealCluster) -> EtcdCollector:
    """The etcd collector on the cluster's etcd (metrics on its client URL), no key watched, every INTERVAL."""
    return EtcdCollector(node=cluster.node_name, endpoint=cluster.etcd_url.removeprefix("http://"),
                         metrics_url=f"{cluster.etcd_url}/metrics", prefixes=(), interval=INTERVAL, every=0.5)


def apiserver_collector(cluster: RealCluster, folder: Path) -> APIServerCollector:
    """The API server collector on the cluster's kube-apiserver, every INTERVAL, with the admin's token."""
    assert cluster.pki is not None, "the cluster is not started"
    return APIServerCollector(node=cluster.node_name, url=f"{cluster.server}/metrics",
                              token_file=token_file(cluster, folder), ca_file=cluster.pki.ca_crt,
                              interval=INTERVAL)


def create_namespace(api: kubernetes.client.ApiClient, namespace: str) -> None:
    kubernetes.client.CoreV1Api(api).create_namespace({"apiVersion": "v1", "kind": "Namespace",
                                                       "metadata": {"name": namespace}})
