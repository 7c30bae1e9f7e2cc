"""The etcd collector's real source: Debian `etcd-server` (3.4) as a one-member cluster on private loopback
ports with its data in a temp folder.

`PrivateEtcd(folder)` starts it and waits for /health; `restart()` stops and starts it on the same data and
ports (a one-member cluster elects itself again: its leader-changes counter starts over); `stop()` stops it
and removes the folder. `tls=True` serves the client API over TLS and asks for a client certificate, as
kubeadm's etcd does (`make_certs`: a CA, a serving and a client certificate); the metrics stay plain HTTP on
their own port, as kubeadm's `--listen-metrics-urls`. `slow_disk(iops)` throttles etcd's writes to its data
dir's block device (cgroup v1 blkio), so its WAL fsyncs take seconds.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cgroups import held

PACKAGES = ("etcd-server",)
BLKIO = Path("/sys/fs/cgroup/blkio")
ETCD = Path("/usr/bin/etcd")


class SlowDiskUnavailable(RuntimeError):
    """Writes cannot be throttled here (no root, no cgroup v1 blkio, no block device under the folder)."""


def slow_disk_unavailable(folder: Path) -> str:
    """Why `PrivateEtcd.slow_disk` cannot work for a data dir in `folder` ("" when it can)."""
    if os.geteuid() != 0:
        return "throttling a process's writes needs root"
    if not (BLKIO / "blkio.throttle.write_iops_device").is_file():
        return f"no cgroup v1 blkio throttling at {BLKIO}"
    if os.major(os.stat(folder).st_dev) == 0:
        return f"{folder} is not on a block device (tmpfs or overlay): nothing to throttle"
    return ""


def unavailable() -> str:
    """Why etcd cannot run here ("" when it can)."""
    if not ETCD.is_file():
        return f"{ETCD} missing: python -m nodesources.install (apt-get install etcd-server)"
    return ""


class PrivateEtcd:
    """`alone=True`: the first member of a two-member cluster whose second never starts: it has no quorum, so
    no leader (its metrics listener serves all the same; its client API does not answer)."""

    def __init__(self, folder: Path, *, alone: bool = False, tls: bool = False) -> None:
        from app.stack import free_port

        self.alone = alone
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.tls = make_certs(folder / "pki") if tls else None
        self.scheme = "https" if tls else "http"
        self.client_port, self.peer_port, self.metrics_port = free_port(), free_port(), free_port()
        self.endpoint = f"127.0.0.1:{self.client_port}"
        self.metrics_url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def argv(self) -> list[str]:
        peer = f"http://127.0.0.1:{self.peer_port}"
        client = f"{self.scheme}://{self.endpoint}"
        secure = ([f"--cert-file={self.tls.server_cert}", f"--key-file={self.tls.server_key}", "--client-cert-auth",
                   f"--trusted-ca-file={self.tls.ca}"] if self.tls else [])
        return [str(ETCD), "--name", "tapio", "--data-dir", str(self.folder / "data"), *secure,
                "--listen-client-urls", client, "--advertise-client-urls", client,
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
                with urllib.request.urlopen(f"{self.scheme}://{self.endpoint}/health", timeout=2,
                                            context=self.context()) as response:
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
        return self._gateway("/v3/kv/put", {"key": _b64(key), "value": _b64(value)})

    def delete(self, key: str) -> int:
        return self._gateway("/v3/kv/deleterange", {"key": _b64(key)})

    @contextlib.contextmanager
    def slow_disk(self, iops: int) -> Iterator[None]:
        """etcd's writes to its data dir's block device throttled to `iops` (a cgroup v1 blkio group holding
        its process: fsync waits on them); raises SlowDiskUnavailable naming what is missing."""
        why = slow_disk_unavailable(self.folder)
        if why:
            raise SlowDiskUnavailable(why)
        assert self.process is not None
        st = os.stat(self.folder)
        device = f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}"
        with held(self.process.pid, BLKIO / f"tapio-etcd-{self.process.pid}",
                  {"blkio.throttle.write_iops_device": f"{device} {iops}"},
                  {"blkio.throttle.write_iops_device": f"{device} 0"}):
            yield

    def compact(self, revision: int) -> int:
        """Compact the store's history up to `revision` (a watch from before it can no longer resume)."""
        return self._gateway("/v3/kv/compaction", {"revision": str(revision), "physical": True})

    def context(self) -> ssl.SSLContext | None:
        if self.tls is None:
            return None
        context = ssl.create_default_context(cafile=str(self.tls.ca))
        context.load_cert_chain(str(self.tls.client_cert), str(self.tls.client_key))
        return context

    def _gateway(self, path: str, body: dict[str, str | bool]) -> int:
        request = urllib.request.Request(f"{self.scheme}://{self.endpoint}{path}", data=json.dumps(body).encode(),
                                         method="POST", headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10, context=self.context()) as response:
            return int(json.loads(response.read())["header"]["revision"])

    def stop(self) -> None:
        try:
            self.stop_daemon()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@dataclass(frozen=True)
class Certs:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def make_certs(folder: Path) -> Certs:
    """A CA, etcd's serving certificate for 127.0.0.1 and a client certificate (openssl), as kubeadm lays them
    (the serving one for client auth too: etcd's JSON gateway dials the gRPC API with it)."""
    folder.mkdir(parents=True, exist_ok=True)

    def openssl(*args: str) -> None:
        done = subprocess.run(["openssl", *args], cwd=folder, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"openssl {' '.join(args)}: {done.stderr.strip()}")

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
            "-subj", "/CN=tapio-etcd-ca", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature")
    for name, usage, alt in (("server", "serverAuth,clientAuth", "subjectAltName=IP:127.0.0.1,DNS:localhost\n"),
                             ("client", "clientAuth", "")):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", f"/CN=tapio-etcd-{name}")
        (folder / f"{name}.ext").write_text(f"{alt}basicConstraints=CA:FALSE\n"
                                            f"keyUsage=critical,digitalSignature,keyEncipherment\n"
                                            f"extendedKeyUsage={usage}\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                "-days", "2", "-out", f"{name}.crt", "-extfile", f"{name}.ext")
    return Certs(ca=folder / "ca.crt", server_cert=folder / "server.crt", server_key=folder / "server.key",
                 client_cert=folder / "client.crt", client_key=folder / "client.key")
