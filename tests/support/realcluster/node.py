"""A real single-node Kubernetes 1.20 cluster on loopback, for the tests: start it, stop it.

Fed by `build` (the four server binaries in `bin_dir()`), Debian's etcd, containerd, runc, CNI
plugins and busybox; `pki` (keys, tokens, kubeconfigs), `configs` (containerd, CNI, kubelet),
`images` (busybox and pause images). Feeds the tests: `kubeconfig` (an admin user), `server`.

    with RealCluster() as cluster:
        api = kubernetes.config.new_client_from_config(str(cluster.kubeconfig))

Everything runs in a private work dir on free loopback ports, as root: etcd, kube-apiserver
(Node + RBAC, token users), kube-controller-manager (every controller, one service account
per controller), kube-scheduler, containerd (private root, state and socket, native
snapshotter), the kubelet (cgroupfs, CNI bridge with a private name and subnet). `stop()`
stops every process by its PID and takes away what they left on the host (see `cleanup`).
One cluster runs per machine at a time (`stale.MachineLock`); `start()` first sweeps the
cluster a killed test run left behind (`stale.sweep`).
"""

from __future__ import annotations

import functools
import logging
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from realcluster import build, cleanup, health, stale
from realcluster.configs import CNI_BIN_DIR, KubeletPorts, NodePaths, cni_conflist, containerd_config, kubelet_config
from realcluster.errors import MissingBinary
from realcluster.host import check_host
from realcluster.images import PAUSE_IMAGE, import_images, write_image_tar
from realcluster.pki import Pki, make_pki, write_kubeconfig
from realcluster.processes import Process, free_port

log = logging.getLogger("realcluster")

# The kubelet serves on 127.0.0.1 only. Given --node-ip=127.0.0.1 it starts but reports no
# address at all (a loopback address is dropped: logs and exec then fail with "no preferred
# addresses found"), and without it its InternalIP is the host's own. So the apiserver reaches
# it by the Hostname address, which is the node name: one that resolves to loopback everywhere.
NODE_NAME = "localhost"
SERVICE_RANGE = "10.96.0.0/24"
HOST_TOOLS = ("/usr/bin/etcd", "/usr/bin/containerd", "/usr/bin/containerd-shim-runc-v2", "/usr/sbin/runc")
START_TIMEOUT = 120.0


def check_machine(bin_dir: Path) -> None:
    """Raise the specific error when this machine cannot run the cluster; return when it can."""
    check_host()
    for tool in HOST_TOOLS:
        if not Path(tool).is_file():
            raise MissingBinary(
                f"{tool} is missing: run `python -m realcluster.build` (it installs the Debian packages)"
            )
    for plugin in ("bridge", "host-local", "loopback"):
        if not (CNI_BIN_DIR / plugin).is_file():
            raise MissingBinary(f"{CNI_BIN_DIR / plugin} is missing: apt-get install containernetworking-plugins")
    for name in build.COMPONENTS:
        if not (bin_dir / name).is_file():
            raise MissingBinary(f"{bin_dir / name} is missing: run `python -m realcluster.build` first")


class RealCluster:
    """One single-node cluster; `start()` returns when the node is Ready and every part is healthy."""

    def __init__(
        self, *, bin_dir: Path | None = None, node_name: str = NODE_NAME, apiserver_flags: Sequence[str] = (),
        kubelet_settings: Mapping[str, Any] | Callable[[], Mapping[str, Any]] | None = None,
        service_accounts: bool = False,
    ) -> None:
        self.bin_dir = bin_dir or build.bin_dir()
        self.node_name = node_name
        self.apiserver_flags = tuple(apiserver_flags)  # added last: a test's own settings (`--watch-cache-sizes=...`)
        # a recording's own (eviction thresholds); a callable is asked when the kubelet's config is written
        self.kubelet_settings = kubelet_settings
        # the ServiceAccount admission plugin: pods get their account's token mounted, as in-cluster
        # clients (a chart's collector) read it. Off by default: a pod made right after its namespace
        # is then refused until the namespace's default account exists
        self.service_accounts = service_accounts
        suffix = secrets.token_hex(3)
        self.bridge = f"tapio{suffix}"  # at most 15 characters, the kernel's limit for a link name
        self.network = f"tapio-{suffix}"
        self.subnet = f"10.217.{int(suffix[:2], 16) % 250 + 1}.0/24"
        self.processes: list[Process] = []
        self.timings: dict[str, float] = {}
        self.work_dir = Path()
        self.server = ""
        self.etcd_url = ""
        self.kubeconfig = Path()
        self.pki: Pki | None = None
        self._before: cleanup.HostBefore | None = None
        self._stopped_pids: list[int] = []
        self.paths: NodePaths | None = None
        self._stopped = False
        self._lock = stale.MachineLock(build.cache_root() / "realcluster.lock")
        self._record: stale.Record | None = None
        self._cm_port = self._scheduler_port = 0
        self._kubelet_ports = KubeletPorts(port=0, read_only_port=0, healthz_port=0)

    # -- start ----------------------------------------------------------------------------

    def start(self) -> RealCluster:
        check_machine(self.bin_dir)
        started = time.monotonic()
        self._lock.acquire()
        try:
            stale.sweep()  # holding the lock, any other cluster's work dir is a dead run's
            self._before = cleanup.host_before()
            cleanup.share_netns_folder()  # before the CNI plugins mount namespaces in it
            self.work_dir = Path(tempfile.mkdtemp(prefix=stale.PREFIX))
            self.paths = self._node_paths()
            self._record = stale.Record.new(
                self._before,
                bridge=self.bridge,
                network=self.network,
                socket=self.paths.containerd_socket,
                state=self.paths.containerd_state,
            )
            self._record.write(self.work_dir)
            self._start_control_plane()
            self._start_node()
            self._wait_all()
        except BaseException as e:
            kept = build.cache_root() / "realcluster-failed-start-logs"
            shutil.rmtree(kept, ignore_errors=True)
            if self.work_dir != Path() and (self.work_dir / "logs").is_dir():
                shutil.copytree(self.work_dir / "logs", kept, dirs_exist_ok=True)
            e.add_note(f"the work dir is removed; every part's log is kept in {kept}")
            log.error("realcluster: start failed; stopping what started; every part's log is kept in %s", kept)
            self.stop()
            raise
        self.timings["start"] = time.monotonic() - started
        log.info(
            "realcluster: ready in %.1f s at %s (kubeconfig %s)", self.timings["start"], self.server, self.kubeconfig
        )
        return self

    @property
    def kubelet_read_only_url(self) -> str:
        """The kubelet's read-only port (`/stats/summary`, `/pods`, `/metrics`), unauthenticated."""
        return f"http://127.0.0.1:{self._kubelet_ports.read_only_port}"

    def _dir(self, name: str) -> Path:
        path = self.work_dir / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _run(self, name: str, argv: list[str]) -> Process:
        env = dict(os.environ, PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        process = Process(name, argv, log_dir=self._dir("logs"), env=env)
        self.processes.append(process)
        if self._record is not None:
            self._record.pids.append(process.pid)
            self._record.write(self.work_dir)
        return process

    def _start_control_plane(self) -> None:
        pki = self.pki = make_pki(self._dir("pki"), node_name=self.node_name)
        etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
        etcd_url = self.etcd_url = f"http://127.0.0.1:{etcd_port}"
        etcd = self._run(
            "etcd",
            [
                "/usr/bin/etcd", "--name", "tapio", "--data-dir", str(self._dir("etcd")),
                "--listen-client-urls", etcd_url, "--advertise-client-urls", etcd_url,
                "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
                "--initial-cluster", f"tapio=http://127.0.0.1:{peer_port}",
            ],
        )  # fmt: skip
        self.timings["etcd"] = health.wait_ready(
            etcd, lambda: health.etcd_healthy(etcd_url), timeout=30, what="healthy"
        )
        self.server = f"https://127.0.0.1:{api_port}"
        issuer = "https://kubernetes.default.svc"
        apiserver = self._run(
            "kube-apiserver",
            [
                str(self.bin_dir / "kube-apiserver"),
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
                f"--secure-port={api_port}", "--insecure-port=0",
                f"--cert-dir={self._dir('apiserver-certs')}",
                f"--tls-cert-file={pki.apiserver_crt}", f"--tls-private-key-file={pki.apiserver_key}",
                f"--client-ca-file={pki.ca_crt}",
                f"--service-account-issuer={issuer}", f"--api-audiences={issuer}",
                f"--service-account-key-file={pki.sa_pub}", f"--service-account-signing-key-file={pki.sa_key}",
                f"--service-cluster-ip-range={SERVICE_RANGE}",
                "--authorization-mode=Node,RBAC", f"--token-auth-file={pki.tokens_csv}",
                "--allow-privileged=true",
                "--kubelet-preferred-address-types=Hostname",  # see NODE_NAME
                *(
                    ["--enable-admission-plugins=NodeRestriction,ServiceAccount"]
                    if self.service_accounts
                    else ["--enable-admission-plugins=NodeRestriction", "--disable-admission-plugins=ServiceAccount"]
                ),
                "--profiling=false",
                *self.apiserver_flags,
            ],
        )  # fmt: skip
        self.timings["kube-apiserver"] = health.wait_ready(
            apiserver,
            lambda: health.http_ok(f"{self.server}/readyz", ca=pki.ca_crt, token=pki.admin.token),
            timeout=START_TIMEOUT,
            what="ready (/readyz)",
        )
        kubeconfigs = self._dir("kubeconfigs")
        self.kubeconfig = write_kubeconfig(
            kubeconfigs / "admin.kubeconfig", server=self.server, ca_crt=pki.ca_crt, who=pki.admin
        )
        self._cm_port, self._scheduler_port = free_port(), free_port()
        self._run(
            "kube-controller-manager",
            [
                str(self.bin_dir / "kube-controller-manager"),
                f"--kubeconfig={write_kubeconfig(kubeconfigs / 'cm.kubeconfig', server=self.server, ca_crt=pki.ca_crt, who=pki.controller_manager)}",
                f"--service-account-private-key-file={pki.sa_key}", f"--root-ca-file={pki.ca_crt}",
                "--use-service-account-credentials=true", "--controllers=*",
                f"--cluster-signing-cert-file={pki.ca_crt}", f"--cluster-signing-key-file={pki.ca_key}",
                "--leader-elect=false", "--bind-address=127.0.0.1", f"--secure-port={self._cm_port}", "--port=0",
                f"--cert-dir={self._dir('cm-certs')}", "--profiling=false",
                f"--flex-volume-plugin-dir={self._dir('cm-volume-plugins')}",
            ],
        )  # fmt: skip
        self._run(
            "kube-scheduler",
            [
                str(self.bin_dir / "kube-scheduler"),
                f"--kubeconfig={write_kubeconfig(kubeconfigs / 'scheduler.kubeconfig', server=self.server, ca_crt=pki.ca_crt, who=pki.scheduler)}",
                "--leader-elect=false", "--bind-address=127.0.0.1", f"--secure-port={self._scheduler_port}", "--port=0",
                f"--cert-dir={self._dir('scheduler-certs')}", "--profiling=false",
            ],
        )  # fmt: skip

    def _node_paths(self) -> NodePaths:
        return NodePaths(
            containerd_root=self._dir("containerd/root"),
            containerd_state=self._dir("containerd/state"),
            containerd_socket=self._dir("containerd") / "containerd.sock",
            containerd_opt=self._dir("containerd/opt"),
            cni_conf_dir=self._dir("cni/net.d"),
            cni_ipam_dir=self._dir("cni/ipam"),
            kubelet_root=self._dir("kubelet"),
        )

    def _start_node(self) -> None:
        assert self.pki is not None and self.paths is not None
        paths = self.paths
        (paths.cni_conf_dir / "10-tapio.conflist").write_text(
            cni_conflist(paths, network=self.network, bridge=self.bridge, subnet=self.subnet)
        )
        config = self._dir("containerd") / "config.toml"
        config.write_text(containerd_config(paths, sandbox_image=PAUSE_IMAGE))
        containerd = self._run("containerd", ["/usr/bin/containerd", "--config", str(config)])
        self.timings["containerd"] = health.wait_ready(
            containerd, lambda: health.containerd_serving(paths.containerd_socket), timeout=30, what="serving"
        )
        started = time.monotonic()
        import_images(paths.containerd_socket, write_image_tar(self.work_dir / "images.tar"))
        self.timings["images"] = time.monotonic() - started
        self._kubelet_ports = KubeletPorts(port=free_port(), read_only_port=free_port(), healthz_port=free_port())
        kubelet_yaml = self._dir("kubelet-config") / "kubelet.json"
        settings = self.kubelet_settings() if callable(self.kubelet_settings) else self.kubelet_settings
        kubelet_yaml.write_text(kubelet_config(paths, self._kubelet_ports, settings))
        kubeconfig = write_kubeconfig(
            self._dir("kubeconfigs") / "kubelet.kubeconfig",
            server=self.server,
            ca_crt=self.pki.ca_crt,
            who=self.pki.kubelet,
        )
        socket = f"unix://{paths.containerd_socket}"
        self._run(
            "kubelet",
            [
                str(self.bin_dir / "kubelet"),
                f"--config={kubelet_yaml}", f"--kubeconfig={kubeconfig}",
                "--container-runtime=remote", f"--container-runtime-endpoint={socket}", f"--image-service-endpoint={socket}",
                f"--root-dir={paths.kubelet_root}", f"--cert-dir={self._dir('kubelet-pki')}",
                f"--volume-plugin-dir={self._dir('kubelet-volume-plugins')}",
                f"--hostname-override={self.node_name}", "--oom-score-adj=0", "--v=2",
            ],
        )  # fmt: skip

    def _process(self, name: str) -> Process:
        return next(p for p in self.processes if p.name == name)

    def _wait_all(self) -> None:
        assert self.pki is not None
        pki = self.pki
        checks = (
            ("kube-controller-manager", f"https://127.0.0.1:{self._cm_port}/healthz", "healthy (/healthz)"),
            ("kube-scheduler", f"https://127.0.0.1:{self._scheduler_port}/healthz", "healthy (/healthz)"),
            ("kubelet", f"http://127.0.0.1:{self._kubelet_ports.healthz_port}/healthz", "healthy (/healthz)"),
        )
        for name, url, what in checks:
            self.timings[name] = health.wait_ready(
                self._process(name),
                functools.partial(health.http_ok, url, verify=False),
                timeout=START_TIMEOUT,
                what=what,
            )
        self.timings["node-ready"] = health.wait_ready(
            self._process("kubelet"),
            lambda: health.node_ready(self.server, ca=pki.ca_crt, token=pki.admin.token, node=self.node_name),
            timeout=START_TIMEOUT,
            what=f"reporting Node {self.node_name} Ready",
        )

    # -- stop -----------------------------------------------------------------------------

    def stop(self) -> list[str]:
        """Stop every process by PID, take away what they left; return what could not be removed."""
        if self._stopped:
            return self.leftovers()
        self._stopped = True
        started = time.monotonic()
        by_name = {p.name: p for p in self.processes}
        order = ("kubelet", "kube-scheduler", "kube-controller-manager", "containerd", "kube-apiserver", "etcd")
        for name in order:
            if name in by_name:
                by_name[name].stop()
        self._stopped_pids = [p.pid for p in self.processes]
        problems: list[str] = []
        try:
            if self.work_dir != Path() and self._before is not None and self.paths is not None:
                problems += cleanup.take_away(
                    self._before,
                    work_dir=self.work_dir,
                    bridge=self.bridge,
                    network=self.network,
                    containerd_socket=self.paths.containerd_socket,
                    containerd_state=self.paths.containerd_state,
                )
                problems += self.leftovers()
            elif self.work_dir != Path():
                shutil.rmtree(self.work_dir, ignore_errors=True)
        finally:
            # a take-away that raised must not keep the machine: the next cluster (of this process too)
            # would wait LOCK_WAIT for it, and its sweep takes away what is left (its record stays)
            self._lock.release()
        self.processes = []
        self.timings["stop"] = time.monotonic() - started
        if problems:
            log.warning("realcluster: after stop, still on the host (remove by hand): %s", "; ".join(problems))
        return problems

    def leftovers(self) -> list[str]:
        """What of this cluster is on the host: processes, mounts, netns, bridge, folders."""
        if self._before is None:
            return []
        pids = self._stopped_pids or [p.pid for p in self.processes]
        return cleanup.leftovers(self._before, work_dir=self.work_dir, bridge=self.bridge, pids=pids)

    def __enter__(self) -> RealCluster:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
