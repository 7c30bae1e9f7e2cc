"""The CNI collector's real source: Debian's CNI plugins (`containernetworking-plugins` 1.1.1, `/usr/lib/cni`)
run as a runtime runs them, in private network namespaces.

`CniNode` makes a network namespace that plays the node (the bridge and the host veths live there, so
nothing touches the machine's own network) and one per pod, writes a `.conflist` (bridge + host-local on a
given subnet) into its own conf dir, and runs the plugin chain's ADD / DEL for a pod as libcni does (the
plugin's config is the list's entry with the list's `name` and `cniVersion`, `CNI_*` in the environment,
the config on stdin). On exit it deletes every namespace it made (the bridge and veths go with the node's)
and its folder. Root only (`ip netns add`).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

PACKAGES = ("containernetworking-plugins", "iproute2")
CNI_BIN = Path("/usr/lib/cni")


def unavailable() -> str:
    """Why the plugins cannot run here, or "" when they can."""
    if os.geteuid() != 0:
        return "the CNI plugins need network namespaces (ip netns add): run the tests as root"
    missing = [p for p in ("bridge", "host-local") if not (CNI_BIN / p).is_file()]
    if missing or shutil.which("ip") is None:
        return f"{', '.join(str(CNI_BIN / p) for p in missing) or 'ip'} missing: apt-get install " \
               "containernetworking-plugins iproute2 (make node-sources)"
    return ""


class PluginRun:
    def __init__(self, done: subprocess.CompletedProcess[bytes]) -> None:
        self.returncode = done.returncode
        self.stdout = done.stdout
        self.stderr = done.stderr

    @property
    def result(self) -> dict:
        return json.loads(self.stdout)


class CniNode:
    """A node network namespace, its pods' namespaces, a bridge network on `subnet`; a context manager."""

    def __init__(self, subnet: str) -> None:
        tag = secrets.token_hex(3)
        self.tag = tag
        self.netns = f"tapio-cni-{tag}"
        self.bridge = f"tcni{tag}"
        self.network = f"tapio-cni-{tag}"
        self.subnet = subnet
        self.dir = Path()
        self.pods: list[str] = []

    @property
    def conf_dir(self) -> Path:
        return self.dir / "net.d"

    @property
    def ipam_dir(self) -> Path:
        return self.dir / "ipam"

    @property
    def results_dir(self) -> Path:
        return self.dir / "results"

    def __enter__(self) -> CniNode:
        self.dir = Path(tempfile.mkdtemp(prefix="tapio-cni-"))
        self.conf_dir.mkdir()
        self.results_dir.mkdir()
        try:
            subprocess.run(["ip", "netns", "add", self.netns], check=True, capture_output=True)
            subprocess.run(["ip", "-n", self.netns, "link", "set", "lo", "up"], check=True, capture_output=True)
            self.conflist = {"cniVersion": "0.4.0", "name": self.network, "plugins": [
                {"type": "bridge", "bridge": self.bridge, "isGateway": True, "ipMasq": False,
                 "ipam": {"type": "host-local", "ranges": [[{"subnet": self.subnet}]], "dataDir": str(self.ipam_dir)}}]}
            (self.conf_dir / "10-tapio-test.conflist").write_text(json.dumps(self.conflist, indent=2))
        except BaseException:
            self.__exit__()
            raise
        return self

    def pod(self, name: str) -> str:
        """A pod's network namespace (made now); its path for CNI_NETNS."""
        netns = f"tapio-cni-{self.tag}-{name}"
        subprocess.run(["ip", "netns", "add", netns], check=True, capture_output=True)
        self.pods.append(netns)
        return f"/run/netns/{netns}"

    def plugin(self, command: str, pod_netns: str, container_id: str, ifname: str = "eth0") -> PluginRun:
        """The list's (one) plugin run with CNI_COMMAND=`command`, inside the node's namespace."""
        entry = {"cniVersion": self.conflist["cniVersion"], "name": self.network, **self.conflist["plugins"][0]}
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CNI_COMMAND": command,
               "CNI_CONTAINERID": container_id, "CNI_NETNS": pod_netns, "CNI_IFNAME": ifname,
               "CNI_PATH": str(CNI_BIN)}
        done = subprocess.run(["ip", "netns", "exec", self.netns, str(CNI_BIN / entry["type"])],
                              input=json.dumps(entry).encode(), env=env, capture_output=True, timeout=60, check=False)
        return PluginRun(done)

    def ip(self, *args: str) -> None:
        subprocess.run(["ip", "-n", self.netns, *args], check=True, capture_output=True)

    def __exit__(self, *exc: object) -> None:
        for netns in (*self.pods, self.netns):
            subprocess.run(["ip", "netns", "del", netns], capture_output=True, check=False)
        if self.dir != Path():
            shutil.rmtree(self.dir, ignore_errors=True)
