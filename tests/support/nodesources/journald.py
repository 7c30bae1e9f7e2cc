"""The journald collector's real source: a journald namespace started by the test, without systemd as PID 1.

`/lib/systemd/systemd-journald NAME` (Debian `systemd` 252) serves the namespace NAME: its sockets in
`/run/systemd/journal.NAME/` (`socket` the native protocol, `dev-log` syslog), its files in
`/var/log/journal/<machine-id>.NAME` (or `/run/log/journal/...` without `/var/log/journal`);
`journalctl --namespace=NAME` reads it. `JournalNamespace` starts one, writes entries as their
writers would (`write`: the native protocol, any SYSLOG_IDENTIFIER and UNIT; `logger`: syslog through
`logger(1)`), and removes its process, sockets and files on exit. Root only (it writes under /run and
/var/log).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

PACKAGES = ("systemd", "bsdutils")  # systemd-journald and journalctl; logger(1)
JOURNALD = Path("/lib/systemd/systemd-journald")


def unavailable() -> str:
    """Why a journald namespace cannot run here, or "" when it can."""
    if os.geteuid() != 0:
        return "a journald namespace writes under /run/systemd and /var/log/journal: run the tests as root"
    if not JOURNALD.is_file() or shutil.which("journalctl") is None:
        return f"{JOURNALD} or journalctl is missing: apt-get install systemd (make node-sources)"
    return ""


class JournalNamespace:
    """One journald namespace for one test; a context manager."""

    def __init__(self, name: str = "") -> None:
        self.name = name or f"tapio{secrets.token_hex(3)}"
        self.run_dir = Path(f"/run/systemd/journal.{self.name}")
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> JournalNamespace:
        self.process = subprocess.Popen([str(JOURNALD), self.name], stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 15
            while not (self.run_dir / "socket").exists() or not self.files():
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"systemd-journald {self.name} did not come up "
                                       f"(exit {self.process.returncode})")
                time.sleep(0.05)
        except BaseException:
            self.__exit__()
            raise
        return self

    def files(self) -> list[Path]:
        machine = Path("/etc/machine-id").read_text().strip()
        return [p for root in ("/var/log/journal", "/run/log/journal")
                if (p := Path(root) / f"{machine}.{self.name}").is_dir()]

    def write(self, message: str, **fields: str) -> None:
        """One entry through the native protocol (`SYSLOG_IDENTIFIER`, `UNIT`, `PRIORITY` as given)."""
        body = "".join(f"{key}={value}\n" for key, value in {"MESSAGE": message, **fields}.items())
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(body.encode(), str(self.run_dir / "socket"))

    def logger(self, identifier: str, message: str, priority: str = "user.err") -> None:
        """One entry through syslog (`logger -u <namespace>/dev-log`), as a daemon logging to syslog does."""
        subprocess.run(["logger", "-u", str(self.run_dir / "dev-log"), "-t", identifier, "-p", priority, message],
                       check=True, timeout=10)

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for path in (*self.files(), self.run_dir):
            shutil.rmtree(path, ignore_errors=True)
