"""The configuration files of the node side: containerd, the CNI bridge network, the kubelet.

Fed by `node` (private paths, ports, names); feeds containerd (`--config`) and the kubelet
(`--config`). The settings are the ones measured on these machines (stack.md, "A real cluster"):
containerd's CRI plugin must restrict the OOM score (the VM has no CAP_SYS_RESOURCE), the
native snapshotter works where overlay may not; the kubelet runs cgroupfs without QoS cgroups,
without node-allocatable enforcement and without hard eviction.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CNI_BIN_DIR = Path("/usr/lib/cni")  # Debian containernetworking-plugins


@dataclass(frozen=True)
class NodePaths:
    containerd_root: Path
    containerd_state: Path
    containerd_socket: Path
    containerd_opt: Path
    cni_conf_dir: Path
    cni_ipam_dir: Path
    kubelet_root: Path


def containerd_config(paths: NodePaths, *, sandbox_image: str) -> str:
    """containerd 1.6 config (version 2), everything private, CNI from Debian's plugin folder."""
    cri = '[plugins."io.containerd.grpc.v1.cri"]'
    return f"""version = 2
root = "{paths.containerd_root}"
state = "{paths.containerd_state}"
oom_score = 0
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]

[grpc]
  address = "{paths.containerd_socket}"

[ttrpc]
  address = "{paths.containerd_socket}.ttrpc"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{paths.containerd_opt}"

{cri}
  sandbox_image = "{sandbox_image}"
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_selinux = false
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  max_container_log_line_size = 16384

{cri[:-1]}.containerd]
  snapshotter = "native"
  default_runtime_name = "runc"

{cri[:-1]}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

{cri[:-1]}.containerd.runtimes.runc.options]
  SystemdCgroup = false
  Root = "{paths.containerd_state}/runc"

{cri[:-1]}.cni]
  bin_dir = "{CNI_BIN_DIR}"
  conf_dir = "{paths.cni_conf_dir}"
  max_conf_num = 1
"""


def cni_conflist(paths: NodePaths, *, network: str, bridge: str, subnet: str) -> str:
    """A bridge network with host-local addresses in a private subnet (no masquerade rules)."""
    return json.dumps(
        {
            "cniVersion": "0.4.0",
            "name": network,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": bridge,
                    "isGateway": True,
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": subnet}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(paths.cni_ipam_dir),
                    },
                }
            ],
        },
        indent=2,
    )


@dataclass(frozen=True)
class KubeletPorts:
    port: int
    read_only_port: int
    healthz_port: int


def kubelet_config(paths: NodePaths, ports: KubeletPorts, settings: Mapping[str, Any] | None = None) -> str:
    """KubeletConfiguration v1beta1 (JSON): the measured settings, private ports and folders; `settings`
    (a recording's own: eviction thresholds, say) replace the keys they name."""
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": "127.0.0.1",
        "port": ports.port,
        "readOnlyPort": ports.read_only_port,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": ports.healthz_port,
        "cgroupDriver": "cgroupfs",
        "cgroupsPerQOS": False,
        "enforceNodeAllocatable": [],
        "evictionHard": {},
        "failSwapOn": False,
        "authentication": {"anonymous": {"enabled": True}, "webhook": {"enabled": False}},
        "authorization": {"mode": "AlwaysAllow"},
        "syncFrequency": "10s",
        "fileCheckFrequency": "10s",
        "nodeStatusUpdateFrequency": "5s",
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "serializeImagePulls": False,
        "resolvConf": "/etc/resolv.conf",
    }
    config.update(settings or {})
    return json.dumps(config, indent=2)
