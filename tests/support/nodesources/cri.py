"""The CRI collector's real source: a private containerd (Debian `containerd` + `runc`), and the Debian sources
its vendored API modules are generated from (`tests/support/containerd_protos.py`).

`PrivateContainerd(folder)` starts containerd with everything in `folder` (root, state, the gRPC socket),
the CRI plugin off (the tests run containers with `ctr`, labelled as the CRI plugin labels them), and the
busybox image of the test cluster (`realcluster.images`) imported into the `k8s.io` namespace. `stop()`
deletes its tasks and containers, stops containerd, kills the shims it left (they outlive it by design),
removes the containers' cgroups and the folder. `restart()` stops and starts containerd only, keeping the
containers, as a node's containerd restarts.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from realcluster.images import BUSYBOX_IMAGE

PACKAGES = ("containerd", "runc", "busybox-static", "golang-github-containerd-containerd-dev",
            "golang-github-gogo-protobuf-dev")
NAMESPACE = "k8s.io"
#: what containerd, its shims and ctr make under /run whatever the config says (shim sockets, ctr's fifos,
#: runc's state), deepest first: removed when they were not there before and are empty
RUN_PATHS = tuple(Path("/run/containerd", p) for p in (f"runc/{NAMESPACE}", "runc", "fifo", "s", ""))
BINARIES = ("/usr/bin/containerd", "/usr/bin/ctr", "/usr/bin/containerd-shim-runc-v2", "/usr/sbin/runc")


def unavailable() -> str:
    """Why a private containerd cannot run here ("" when it can)."""
    if os.geteuid() != 0:
        return "containerd runs containers as root: run the tests as root"
    missing = [b for b in BINARIES if not Path(b).is_file()]
    if missing:
        return f"{', '.join(missing)} missing: python -m nodesources.install (apt-get install containerd runc)"
    if not Path("/sys/fs/cgroup/memory").is_dir() and not Path("/sys/fs/cgroup/cgroup.controllers").is_file():
        return "no memory cgroup controller mounted at /sys/fs/cgroup"
    return ""


def config(folder: Path) -> str:
    return f"""version = 2
root = "{folder}/root"
state = "{folder}/state"
oom_score = 0
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
                    "io.containerd.snapshotter.v1.aufs"]

[grpc]
  address = "{folder}/c.sock"

[ttrpc]
  address = "{folder}/c.sock.ttrpc"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{folder}/opt"
"""


class PrivateContainerd:
    def __init__(self, folder: Path) -> None:
        from realcluster.cleanup import host_before

        self.folder = folder
        self.socket = folder / "c.sock"
        self.state = folder / "state"
        self.before = host_before()
        self.ids: set[str] = set()
        self.run_before = {p for p in RUN_PATHS if p.exists()}
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.toml").write_text(config(folder))
        self.process: subprocess.Popen[bytes] | None = None
        self.start()
        from realcluster.images import import_images, write_image_tar

        import_images(self.socket, write_image_tar(folder / "images.tar"))

    def ctr(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(["ctr", "-a", str(self.socket), "-n", NAMESPACE, *args], capture_output=True,
                              text=True, timeout=timeout, check=False)
        if check and done.returncode != 0:
            raise RuntimeError(f"ctr {' '.join(args)}: exit {done.returncode}: {done.stderr.strip()}")
        return done

    def start(self) -> None:
        with (self.folder / "containerd.log").open("ab") as log:
            self.process = subprocess.Popen(["containerd", "--config", str(self.folder / "config.toml")],
                                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"containerd exited with {self.process.returncode}: "
                                   f"{(self.folder / 'containerd.log').read_text()[-2000:]}")
            if self.socket.exists() and self.ctr("version", check=False, timeout=10).returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"containerd not serving on {self.socket} after 30 s")

    def stop_daemon(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def restart(self) -> None:
        self.stop_daemon()
        self.start()

    def run(self, container_id: str, *args: str, labels: dict[str, str] | None = None, detach: bool = False,
            memory_limit: int = 0) -> subprocess.CompletedProcess[str]:
        """`ctr run` the busybox image as `container_id` with `args`; remembered for `stop()`."""
        self.ids.add(container_id)
        options = [f"--label={k}={v}" for k, v in (labels or {}).items()]
        options += ["-d"] if detach else []
        options += [f"--memory-limit={memory_limit}"] if memory_limit else []
        return self.ctr("run", *options, BUSYBOX_IMAGE, container_id, *args, check=False)

    def stop(self) -> list[str]:
        """Take everything away; return what could not be (empty when all went)."""
        from realcluster.cleanup import kill_containers, mounts_under, remove_cgroups, unmount_all

        try:
            if self.process is not None and self.process.poll() is None:
                for cid in self.ctr("tasks", "ls", "-q", check=False).stdout.split():
                    self.ctr("tasks", "kill", "-s", "SIGKILL", cid, check=False)
                    self.ctr("tasks", "delete", "-f", cid, check=False)
                for cid in self.ctr("containers", "ls", "-q", check=False).stdout.split():
                    self.ctr("containers", "delete", cid, check=False)
        finally:
            self.stop_daemon()
            ids = kill_containers(self.socket, self.state) | self.ids
            problems = [f"still mounted: {p}" for p in unmount_all([self.folder])]
            problems += remove_cgroups(ids, self.before)
            for path in RUN_PATHS:
                if path not in self.run_before and path.is_dir() and not os.listdir(path):
                    path.rmdir()
            shutil.rmtree(self.folder, ignore_errors=True)
            problems += [f"mount {p}" for p in mounts_under([self.folder])]
            problems += [f"folder {self.folder}"] if self.folder.exists() else []
        return problems
