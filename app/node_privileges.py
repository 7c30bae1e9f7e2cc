"""What each node collector needs from the host: paths, capabilities, the host's PID and network namespaces.

Fed by: what the collectors read (their module docstrings, `shared/notes/stack.md` "Kernel", "Node sources").
Feeds: `docker/agent-daemonset.yaml`, which grants exactly the union of these (tests/app/test_agent_daemonset.py
checks both ways: nothing the collectors need is missing, nothing is granted that none of them uses). Pure data.

Host paths are mounted at the same path inside the agent's container, read-only unless `writable`.
"""

from __future__ import annotations

import msgspec


class HostNeeds(msgspec.Struct, frozen=True, kw_only=True):
    why: str
    paths: tuple[str, ...] = ()
    writable: tuple[str, ...] = ()  # of `paths`, those the collector writes (tracefs: enabling tracepoints)
    capabilities: tuple[str, ...] = ()  # without the CAP_ prefix, as a pod's securityContext names them
    host_pid: bool = False
    host_network: bool = False


NEEDS: dict[str, HostNeeds] = {
    "procfs": HostNeeds(why="/proc/pressure/* and /proc/vmstat are system-wide: any /proc shows the node's"),
    "kernel": HostNeeds(
        why="eBPF tracepoint programs (BCC or CO-RE): loading them, attaching to tracepoints, reading the "
            "kernel headers BCC compiles against; a pid is mapped to its container through /proc/<pid>/cgroup",
        paths=("/sys/kernel/debug", "/sys/kernel/tracing", "/sys/fs/cgroup", "/lib/modules", "/usr/src"),
        writable=("/sys/kernel/debug", "/sys/kernel/tracing"),
        capabilities=("BPF", "PERFMON", "SYS_ADMIN", "SYS_RESOURCE"), host_pid=True),
    "dns": HostNeeds(why="AF_PACKET capture of DNS on the node's interfaces, every pod's traffic",
                     capabilities=("NET_RAW",), host_network=True, host_pid=True),
    # the folder, not the socket file: containerd makes a new socket when it restarts, which a mount of the
    # old file would not show; connecting to a socket needs no write access to the mount
    "cri": HostNeeds(why="containerd's gRPC events API on its socket", paths=("/run/containerd",)),
    "etcd": HostNeeds(why="etcd's metrics and watch API on the control-plane node's loopback (127.0.0.1:2379/2381)",
                      host_network=True),
    "apiserver": HostNeeds(why="the kube-apiserver's /metrics on the control-plane node's loopback (127.0.0.1:6443), "
                                "authorized through the ServiceAccount (get on the non-resource URL /metrics)",
                           host_network=True),
    # /var/log holds /var/log/journal: mounting that folder where it is absent would create it (journald
    # then turns persistent); the DaemonSet mounts /var/log read-only instead
    "journald": HostNeeds(why="the node's journal: persistent, volatile, and the machine id naming its folder",
                          paths=("/var/log", "/run/log/journal", "/etc/machine-id")),
    "kubelet": HostNeeds(why="the kubelet's /stats/summary and /metrics on the node's address (status.hostIP); "
                             "authorized through the ServiceAccount (nodes/stats, nodes/metrics, nodes/proxy)"),
    "cni": HostNeeds(why="netlink link/address/route events of the node's network namespace, and the CNI "
                         "plugins' state and results (IPAM allocations)",
                     paths=("/var/lib/cni",), capabilities=("NET_ADMIN",), host_network=True),
}


def grants(names: list[str] | None = None) -> HostNeeds:
    """The union of what `names` (default: every collector) need: what the DaemonSet must grant."""
    chosen = [NEEDS[n] for n in (names if names is not None else list(NEEDS))]
    return HostNeeds(why="the union of the collectors' needs",
                     paths=tuple(sorted({p for n in chosen for p in n.paths})),
                     writable=tuple(sorted({p for n in chosen for p in n.writable})),
                     capabilities=tuple(sorted({c for n in chosen for c in n.capabilities})),
                     host_pid=any(n.host_pid for n in chosen), host_network=any(n.host_network for n in chosen))
