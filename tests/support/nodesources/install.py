"""`python -m nodesources.install [--if-possible]`: apt-get install every node source's PACKAGES that
is missing, then run each module's `prepare()`. With --if-possible, a machine without root or apt
gets one line saying so and exit 0 (the tests that need them skip, saying why)."""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import shutil
import subprocess
import sys
from types import ModuleType

import nodesources


def modules() -> list[ModuleType]:
    return [importlib.import_module(f"nodesources.{m.name}") for m in pkgutil.iter_modules(nodesources.__path__)
            if m.name != "install"]


def missing(packages: set[str]) -> list[str]:
    out = []
    for package in sorted(packages):
        status = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True,
                                check=False).stdout
        if "install ok installed" not in status:
            out.append(package)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nodesources.install")
    parser.add_argument("--if-possible", action="store_true", help="exit 0 with a note where root or apt is missing")
    args = parser.parse_args(argv)
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        print("nodesources: the node sources install as root with apt-get; the tests that need them will skip",
              file=sys.stderr)
        return 0 if args.if_possible else 1
    found = modules()
    needed = missing({p for m in found for p in getattr(m, "PACKAGES", ())})
    if needed:
        print(f"nodesources: apt-get install {' '.join(needed)}", file=sys.stderr)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "--no-install-recommends",
                                                       *needed]):
            done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                print(f"nodesources: {' '.join(command[:2])} failed (exit {done.returncode}): check that the Debian "
                      f"mirror is reachable and dpkg is not locked, then run again:\n{done.stderr[-2000:]}",
                      file=sys.stderr)
                return 0 if args.if_possible else 1
    for module in found:
        prepare = getattr(module, "prepare", None)
        if prepare is not None:
            prepare()
    return 0


if __name__ == "__main__":
    sys.exit(main())
