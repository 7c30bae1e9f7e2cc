"""The etcd collector's real source: Debian `etcd-server` (3.4) as a one-member cluster on private loopback
ports with its data in a temp folder.

`PrivateEtcd(folder)` starts it and waits for /health; `restart()` stops and starts it on the same data and
ports (a one-member cluster elects itself again: its leader-changes counter starts over); `stop()` stops it
and removes the folder.
"""

from __future__ import annotations

import base64
import json
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

PACKAGES = ("etcd-server",)
ETCD = Path("/usr/bin/etcd")


def unavailable() -> str:
    """Why etcd cannot run here ("" when it can)."""
    if not ETCD.is_file():
        return f"{ETCD} missing: python -m nodesources.install (apt-get install etcd-server)"
    return ""


class PrivateEtcd:
    """`alone=True`: the first member of a two-member cluster whose second never starts: it has no quorum, so
    no leader (its metrics listener serves all the same; its client API does not answer)."""

    def __init__(self, folder: Path, *, alone: bool = False) -> None:
        from app.stack import free_port

        self.alone = alone
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.client_port, self.peer_port, self.metrics_port = free_port(), free_port(), free_port()
        self.endpoint = f"127.0.0.1:{self.client_port}"
        self.metrics_url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def argv(self) -> list[str]:
        peer = f"http://127.0.0.1:{self.peer_port}"
        return [str(ETCD), "--name", "tapio", "--data-dir", str(self.folder / "data"),
                "--listen-client-urls", f"http://{self.endpoint}", "--advertise-client-urls", f"http://{self.endpoint}",
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", f"tapio={peer}" + (f",absent=http://127.0.0.1:{self.peer_port + 1}" if self.alone else ""),
                "--listen-metrics-urls", f"http://127.0.0.1:{self.metrics_port}",
                "--logger", "zap", "--log-outputs", "stderr"]

    def start(self) -> None:
        with (self.folder / "etcd.log").open("ab") as log:
            self.process = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"etcd exited with {self.process.returncode}: "
                                   f"{(self.folder / 'etcd.log').read_text()[-2000:]}")
            try:
                if self.alone:
                    with urllib.request.urlopen(self.metrics_url, timeout=2) as response:
                        if b"etcd_server_has_leader" in response.read():
                            return
                with urllib.request.urlopen(f"http://{self.endpoint}/health", timeout=2) as response:
                    if json.loads(response.read()).get("health") in ("true", True):
                        return
            except (OSError, ValueError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"etcd not {'serving metrics' if self.alone else 'healthy'} on {self.endpoint} after 30 s")

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

    def put(self, key: str, value: str) -> int:
        """Write a key through etcd's JSON gateway (another client than the collector's); the new revision."""
        return _gateway(self.endpoint, "/v3/kv/put", {"key": _b64(key), "value": _b64(value)})

    def delete(self, key: str) -> int:
        return _gateway(self.endpoint, "/v3/kv/deleterange", {"key": _b64(key)})

    def stop(self) -> None:
        try:
            self.stop_daemon()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _gateway(endpoint: str, path: str, body: dict[str, str]) -> int:
    request = urllib.request.Request(f"http://{endpoint}{path}", data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(json.loads(response.read())["header"]["revision"])
