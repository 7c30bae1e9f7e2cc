"""The kernel collector's real source: BCC from Debian (`python3-bpfcc`), kernel headers it compiles
against, nftables and iproute2 for the TCP failures its tests force in a private network namespace.

Fed by: Debian's packages (apt). Feeds: `tests/collectors/test_kernel_*.py` and
`benchmarks/kernel_agent.py`, through `prepare()`:
- the headers: no package matches this VM's kernel (6.18, no /lib/modules), so the bookworm
  `linux-headers-6.12.*` amd64 + common + `linux-kbuild-6.12.*` packages are downloaded
  (`apt-get download`) and unpacked (`dpkg -x`) into `~/.cache/tapio/kernel-headers/<version>/`,
  merged as one tree (amd64 laid over common, `scripts`/`tools` copied from kbuild instead of the
  symlinks into /usr/lib); the collector finds it there, or where `BCC_KERNEL_SOURCE` points
  (`collectors.kernel.kernel_source()`);
- the Python module: Debian's `bcc` is pure Python over ctypes (libbcc.so), built for the system's
  3.11; a `tapio-bcc.pth` in this interpreter's site-packages puts a folder holding only a link to
  `/usr/lib/python3/dist-packages/bcc` on the path (not the whole dist-packages, whose older
  PyYAML, cryptography... would be importable beside the venv's).
Idempotent: a second run checks two paths and returns.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

PACKAGES = ("python3-bpfcc", "nftables", "iproute2")

CACHE = Path.home() / ".cache" / "tapio"
HEADERS = CACHE / "kernel-headers"
BCC_PATH = CACHE / "bcc-python"
DEBIAN_BCC = Path("/usr/lib/python3/dist-packages/bcc")
PTH = "tapio-bcc.pth"
_HEADERS_RE = re.compile(r"^linux-headers-(6\.12\.\d+\+deb12)-amd64\s")


class PrepareError(RuntimeError):
    """A step of the preparation failed; the message says which and what to do."""


def newest_headers_version() -> str:
    """The newest bookworm 6.12 headers version apt knows (e.g. `6.12.118+deb12`)."""
    found = subprocess.run(["apt-cache", "search", "--names-only", r"^linux-headers-6\.12\.[0-9]+\+deb12-amd64$"],
                           capture_output=True, text=True, check=False).stdout
    versions = [m.group(1) for line in found.splitlines() if (m := _HEADERS_RE.match(line))]
    if not versions:
        raise PrepareError("apt knows no linux-headers-6.12.*+deb12-amd64: run apt-get update with the bookworm "
                           "(or bookworm-security/updates) sources enabled")
    return max(versions, key=lambda v: tuple(int(x) for x in re.findall(r"\d+", v)))


def unpack_headers(version: str, into: Path) -> Path:
    """Download and merge the three packages of `version` into `into/<version>`; returns the tree."""
    tree = into / version
    if (tree / "include" / "generated" / "autoconf.h").exists():
        return tree
    into.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=into) as work:
        names = [f"linux-headers-{version}-amd64", f"linux-headers-{version}-common", f"linux-kbuild-{version}"]
        done = subprocess.run(["apt-get", "download", *names], cwd=work, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise PrepareError(f"apt-get download {' '.join(names)} failed: {done.stderr[-500:]}")
        root = Path(work) / "root"
        for deb in sorted(Path(work).glob("*.deb")):
            subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)
        merged = Path(work) / "merged"
        src = root / "usr" / "src"
        shutil.copytree(src / f"linux-headers-{version}-common", merged, symlinks=True)
        for link in ("scripts", "tools"):
            (merged / link).unlink()
            shutil.copytree(root / "usr" / "lib" / f"linux-kbuild-{version}" / link, merged / link, symlinks=True)
        amd64 = src / f"linux-headers-{version}-amd64"
        for entry in amd64.iterdir():
            if entry.name in ("scripts", "tools", "Makefile"):
                continue  # kbuild's copies above; common's Makefile (amd64's only includes it by path)
            if entry.is_dir():
                shutil.copytree(entry, merged / entry.name, symlinks=True, dirs_exist_ok=True)
            else:
                shutil.copy2(entry, merged / entry.name)
        merged.rename(tree)
    return tree


def link_bcc(folder: Path = BCC_PATH) -> Path:
    """A folder holding only `bcc` (a link to Debian's), named by a .pth in site-packages."""
    if not DEBIAN_BCC.is_dir():
        raise PrepareError(f"{DEBIAN_BCC} is missing: apt-get install python3-bpfcc")
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / "bcc"
    if not link.is_symlink():
        link.symlink_to(DEBIAN_BCC)
    pth = Path(sysconfig.get_paths()["purelib"]) / PTH
    if not pth.exists() or pth.read_text().strip() != str(folder):
        pth.write_text(f"{folder}\n")
    return pth


def prepare() -> None:
    if os.geteuid() != 0:
        print("nodesources.kernel: BPF needs root; the kernel tests will skip", file=sys.stderr)
        return
    link_bcc()
    if not any(HEADERS.glob("*/include/generated/autoconf.h")):
        unpack_headers(newest_headers_version(), HEADERS)
