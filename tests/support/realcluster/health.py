"""Readiness checks of the cluster parts: wait on a condition while the part's process lives.

Fed by `node` (URLs, the CA, the admin token, the started `Process`); a part that exits or
does not become ready in time raises `StartError` with its log tail and log path.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from realcluster.errors import StartError
from realcluster.processes import Process

EVERY = 0.2


def wait_ready(process: Process, check: Callable[[], bool], *, timeout: float, what: str) -> float:
    """Call `check` until it returns True; return the seconds it took."""
    started = time.monotonic()
    last_error = ""
    while time.monotonic() - started < timeout:
        if not process.alive():
            raise StartError(
                f"{process.name} exited (code {process.popen.returncode}) before {what}; "
                f"log {process.log_path}:\n{process.log_tail()}"
            )
        try:
            if check():
                return time.monotonic() - started
        except (OSError, ValueError, subprocess.SubprocessError) as e:
            last_error = f"{type(e).__name__}: {e}"
        time.sleep(EVERY)
    raise StartError(
        f"{process.name}: not {what} after {timeout:.0f} s (last error: {last_error or 'none'}); "
        f"log {process.log_path}:\n{process.log_tail()}"
    )


def http_ok(url: str, *, ca: Path | None = None, token: str | None = None, verify: bool = True) -> bool:
    """GET `url`; True on 200 with body `ok` (healthz/readyz) or any 200 for other bodies."""
    context: ssl.SSLContext | None = None
    if url.startswith("https"):
        context = ssl.create_default_context(cafile=str(ca) if ca else None)
        if not verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=3, context=context) as response:
            return bool(response.status == 200)
    except urllib.error.HTTPError:
        return False


def etcd_healthy(url: str) -> bool:
    with urllib.request.urlopen(f"{url}/health", timeout=3) as response:
        return bool(json.loads(response.read()).get("health") in ("true", True))


def containerd_serving(socket: Path) -> bool:
    if not socket.exists():
        return False
    result = subprocess.run(["ctr", "-a", str(socket), "version"], capture_output=True, timeout=10, check=False)
    return result.returncode == 0


def node_ready(server: str, *, ca: Path, token: str, node: str) -> bool:
    context = ssl.create_default_context(cafile=str(ca))
    request = urllib.request.Request(f"{server}/api/v1/nodes/{node}", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=3, context=context) as response:
            status = json.loads(response.read()).get("status", {})
    except urllib.error.HTTPError:
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions", []))
