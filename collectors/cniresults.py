"""Which pod a CNI attachment belongs to, from libcni's result cache.

Fed by: `collectors.cni` (the files of libcni's cache, `/var/lib/cni/results/<network>-<sandbox id>-<ifname>`,
which containerd's and CRI-O's libcni write after a successful ADD and remove after DEL: `kind` cniCacheV1,
the sandbox id, the network, the runtime's `cniArgs` `K8S_POD_NAMESPACE` / `K8S_POD_NAME` / `K8S_POD_UID`, and
the plugin chain's result: interfaces and IPs). Feeds: the CNI collector, which reports a pod attached to or
detached from a network (`CNIAttached` / `CNIDetached`) and names the pod of a host veth's netlink events.

The host side of the pod's link is the last interface of the result without a `sandbox` (the bridge plugin
lists the bridge, then the host veth, then the pod's interface; ptp the host veth, then the pod's). The
loopback network (`cni-loopback`) is every pod's and says nothing. Pure.
"""

from __future__ import annotations

import msgspec

LOOPBACK_NETWORK = "cni-loopback"


class Interface(msgspec.Struct, frozen=True):
    name: str = ""
    mac: str = ""
    sandbox: str = ""


class IPConfig(msgspec.Struct, frozen=True):
    address: str = ""
    gateway: str = ""
    interface: int | None = None


class Result(msgspec.Struct, frozen=True):
    interfaces: list[Interface] = []
    ips: list[IPConfig] = []


class CacheEntry(msgspec.Struct, frozen=True, rename="camel"):
    kind: str = ""
    container_id: str = ""
    if_name: str = ""
    network_name: str = ""
    cni_args: list[list[str]] = []
    result: Result | None = None


class Attachment(msgspec.Struct, frozen=True, kw_only=True):
    """One pod interface on one network."""

    network: str
    sandbox_id: str
    interface: str  # inside the pod
    host_interface: str  # the host side (veth), "" when the plugin made none
    addresses: tuple[str, ...]  # CIDR notation
    namespace: str = ""
    pod: str = ""
    uid: str = ""

    @property
    def about(self) -> dict[str, str]:
        if not self.pod:
            return {}
        return {"kind": "Pod", "namespace": self.namespace, "name": self.pod, "uid": self.uid}


def attachment(body: bytes) -> Attachment | None:
    """The attachment one cache file records; None for the loopback network or a file that is not a
    libcni result cache (raises nothing: a half-written file is read again at the next scan)."""
    try:
        entry = msgspec.json.decode(body, type=CacheEntry)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    if entry.kind != "cniCacheV1" or entry.network_name == LOOPBACK_NETWORK or entry.result is None:
        return None
    args = {pair[0]: pair[1] for pair in entry.cni_args if len(pair) == 2}
    host = [i.name for i in entry.result.interfaces if not i.sandbox]
    return Attachment(network=entry.network_name, sandbox_id=entry.container_id, interface=entry.if_name,
                      host_interface=host[-1] if len(host) > 0 else "",
                      addresses=tuple(ip.address for ip in entry.result.ips if ip.address),
                      namespace=args.get("K8S_POD_NAMESPACE", ""), pod=args.get("K8S_POD_NAME", ""),
                      uid=args.get("K8S_POD_UID", ""))
