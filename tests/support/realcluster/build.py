"""Builds the Kubernetes 1.20.2 server binaries once, for the real test cluster.

Fed by Debian: the packages the cluster needs (etcd, containerd, runc, the CNI plugins,
busybox-static) and the `kubernetes` *source* package, fetched with a private apt config
(lists, parts and caches in a private folder: the system's apt config is never touched).
Feeds `realcluster.node`: the binaries in `bin_dir()`, under
`${TAPIO_CACHE:-~/.cache/tapio}/kubernetes-1.20.2/bin/`.

A stamp in the cache folder says the build is done: a later run costs a few `dpkg-query`
calls. The build tree (1.8-4 GB) is deleted once the binaries are copied out. Concurrent runs
(pytest workers, `make test`) serialize on a lock file; the second one finds the stamp.

    PYTHONPATH=tests/support python -m realcluster.build
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from realcluster.errors import AptError, CompileError, MachineUnfit, NotRootError, RealClusterError
from realcluster.host import check_host

VERSION = "1.20.2"
SOURCE_PACKAGE = "kubernetes"
COMPONENTS = ("kube-apiserver", "kubelet", "kube-controller-manager", "kube-scheduler")
GO_BIN = Path("/usr/lib/go-1.19/bin")
# Debian packages the build and the cluster need; installed only when missing.
PACKAGES = (
    "golang-1.19-go",
    "rsync",
    "etcd-server",
    "containerd",
    "runc",
    "containernetworking-plugins",
    "busybox-static",
    "iproute2",
)
SYSTEM_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
LOG_TAIL_LINES = 40

Progress = Callable[[str], None]


def cache_root() -> Path:
    return Path(os.environ.get("TAPIO_CACHE") or Path.home() / ".cache" / "tapio")


def version_dir() -> Path:
    return cache_root() / f"kubernetes-{VERSION}"


def bin_dir() -> Path:
    """Where the four server binaries are once `build()` has run."""
    return version_dir() / "bin"


def stamp_path() -> Path:
    return version_dir() / "built.json"


def is_built() -> bool:
    stamp = stamp_path()
    return stamp.is_file() and all(os.access(bin_dir() / name, os.X_OK) for name in COMPONENTS)


def _say(message: str) -> None:
    print(f"[realcluster.build] {message}", flush=True)


def missing_packages() -> list[str]:
    missing = []
    for package in PACKAGES:
        result = subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True, check=False
        )
        if result.returncode != 0 or "install ok installed" not in result.stdout:
            missing.append(package)
    return missing


def _run_apt(args: list[str], *, cwd: Path | None = None) -> None:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-LOG_TAIL_LINES:])
        raise AptError(
            f"`{' '.join(args)}` failed (exit {result.returncode}); check that the Debian mirror is "
            f"reachable and dpkg is not locked by another apt run, then run again:\n{tail}"
        )


def ensure_packages(progress: Progress = _say) -> None:
    """apt-get install whatever of PACKAGES is missing (apt-get update first, once)."""
    missing = missing_packages()
    if not missing:
        return
    progress(f"installing Debian packages: {' '.join(missing)}")
    _run_apt(["apt-get", "update", "-q"])
    _run_apt(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing])


def _private_apt_options(apt_dir: Path) -> list[str]:
    return [
        "-o", "Dir::Etc::SourceList=/dev/null",
        "-o", f"Dir::Etc::SourceParts={apt_dir / 'sources.list.d'}",
        "-o", f"Dir::State::Lists={apt_dir / 'lists'}",
        "-o", f"Dir::Cache={apt_dir / 'cache'}",
        "-o", "APT::Sandbox::User=root",
    ]  # fmt: skip


def fetch_source(work: Path, progress: Progress = _say) -> Path:
    """Download and unpack the `kubernetes` source package into `work`; return the tree."""
    apt_dir = work / "apt"
    for sub in ("sources.list.d", "lists/partial", "cache/archives/partial"):
        (apt_dir / sub).mkdir(parents=True, exist_ok=True)
    if not SYSTEM_SOURCES.is_file():
        raise AptError(f"{SYSTEM_SOURCES} is missing: the deb-src entries are made from it; restore it")
    text = SYSTEM_SOURCES.read_text().replace("Types: deb\n", "Types: deb-src\n")
    (apt_dir / "sources.list.d" / "debian-src.sources").write_text(text)
    options = _private_apt_options(apt_dir)
    progress("fetching the kubernetes source package (private apt lists)")
    _run_apt(["apt-get", *options, "update", "-q"])
    source = work / "source"
    source.mkdir(exist_ok=True)
    _run_apt(["apt-get", *options, "source", "--download-only", "-q", SOURCE_PACKAGE], cwd=source)
    dscs = sorted(source.glob(f"{SOURCE_PACKAGE}_*.dsc"))
    if not dscs:
        raise AptError(f"apt-get source left no {SOURCE_PACKAGE}_*.dsc in {source}")
    tree = work / "tree"
    _run_apt(["dpkg-source", "--no-check", "-x", str(dscs[-1]), str(tree)])
    shutil.rmtree(source)
    return tree


def compile_binaries(tree: Path, log_path: Path, progress: Progress = _say) -> Path:
    """`make WHAT=...` in the tree (the only way that works: plain `go build` does not)."""
    if not (GO_BIN / "go").exists():
        raise CompileError(f"{GO_BIN / 'go'} is missing: apt-get install golang-1.19-go")
    what = " ".join(f"cmd/{name}" for name in COMPONENTS)
    env = dict(
        os.environ,
        PATH=f"{GO_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        KUBE_GIT_VERSION=f"v{VERSION}",
        KUBE_GIT_TREE_STATE="clean",
        GOCACHE=str(tree.parent / "gocache"),
        GOPATH=str(tree.parent / "gopath"),
        GOFLAGS="-mod=vendor",
        GO111MODULE="on",
    )
    progress(f"compiling {what} (about 9 min on 2 cores; log: {log_path})")
    with log_path.open("w") as log:
        result = subprocess.run(
            ["make", f"WHAT={what}"], cwd=tree, env=env, stdout=log, stderr=subprocess.STDOUT, check=False
        )
    if result.returncode != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:])
        raise CompileError(f"make failed (exit {result.returncode}); full log in {log_path}; last lines:\n{tail}")
    out = tree / "_output" / "bin"
    missing = [name for name in COMPONENTS if not (out / name).is_file()]
    if missing:
        raise CompileError(f"make succeeded but {', '.join(missing)} is not in {out}; see {log_path}")
    return out


@contextmanager
def _locked() -> Iterator[None]:
    version_dir().mkdir(parents=True, exist_ok=True)
    with (version_dir() / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def build(progress: Progress = _say) -> Path:
    """Make sure the packages are there and the binaries are built; return `bin_dir()`."""
    if os.geteuid() != 0:
        raise NotRootError("the real cluster is built and run as root (apt-get, mounts, cgroups): run as root")
    ensure_packages(progress)
    if is_built():
        return bin_dir()
    with _locked():
        if is_built():  # another process built it while this one waited
            return bin_dir()
        started = time.monotonic()
        work = version_dir() / "work"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        tree = fetch_source(work, progress)
        out = compile_binaries(tree, version_dir() / "build.log", progress)
        staging = version_dir() / "bin.new"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        for name in COMPONENTS:
            shutil.copy2(out / name, staging / name)
        shutil.rmtree(bin_dir(), ignore_errors=True)
        staging.rename(bin_dir())
        shutil.rmtree(work)
        seconds = round(time.monotonic() - started)
        stamp = {"version": VERSION, "components": list(COMPONENTS), "seconds": seconds, "built_at": time.time()}
        stamp_path().write_text(json.dumps(stamp, indent=2) + "\n")
        progress(f"built {', '.join(COMPONENTS)} in {seconds} s into {bin_dir()} (build tree deleted)")
    return bin_dir()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m realcluster.build", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--if-possible",
        action="store_true",
        help="exit 0 without building on a machine that cannot run the cluster (not root, no cgroup v1 memory): "
        "its tests skip there (`make test` uses this)",
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        check_host()
    except MachineUnfit as e:
        if args.if_possible:
            _say(f"not built: {e}; the real-cluster tests will skip")
            return 0
        print(f"[realcluster.build] FAILED: {e}", file=sys.stderr, flush=True)
        return 1
    try:
        path = build()
    except RealClusterError as e:
        print(f"[realcluster.build] FAILED: {e}", file=sys.stderr, flush=True)
        return 1
    _say(f"binaries ready in {path} ({time.monotonic() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
