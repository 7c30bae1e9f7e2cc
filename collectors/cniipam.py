"""How full each host-local IPAM pool on the node is: the addresses its range set holds against the ones
allocated, read from the CNI configuration and host-local's own allocation files.

Fed by: `collectors.cni` (the network configurations in the CNI conf dir, `*.conflist` / `*.conf`, and the
names of the files in host-local's data dir, `<dataDir>/<network>/<ip>`, one per allocated address).
Feeds: the CNI collector, which samples `cni.ipam_used_percent` per network and reports `CNIIPAMExhausted`
when every address is taken: the next pod's sandbox will fail with host-local's
`{"code":999,"msg":"failed to allocate for range 0: no IP addresses available in range set: ..."}`.

host-local's rules (containernetworking/plugins `ipam/host-local`): a range is `subnet` with optional
`rangeStart` / `rangeEnd` (default: the subnet's first address + 1 to, for IPv4, the broadcast - 1) and
`gateway` (default: the subnet's first address + 1), which is never allocated; `ranges` is a list of range
sets (one per address family), the legacy form puts one range on `ipam` itself; `dataDir` defaults to
`/var/lib/cni/networks`. Pure.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec

DEFAULT_DATA_DIR = "/var/lib/cni/networks"

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class IpamRange(msgspec.Struct, frozen=True):
    first: str
    last: str
    gateway: str = ""

    @property
    def capacity(self) -> int:
        first, last = ipaddress.ip_address(self.first), ipaddress.ip_address(self.last)
        size = int(last) - int(first) + 1
        if self.gateway and first <= ipaddress.ip_address(self.gateway) <= last:
            size -= 1
        return max(0, size)

    def holds(self, address: Address) -> bool:
        return (address.version == ipaddress.ip_address(self.first).version
                and ipaddress.ip_address(self.first) <= address <= ipaddress.ip_address(self.last)
                and str(address) != self.gateway)


class IpamPool(msgspec.Struct, frozen=True):
    """One network's host-local pool: where its allocations live and its ranges."""

    network: str
    data_dir: str
    ranges: tuple[IpamRange, ...]

    @property
    def capacity(self) -> int:
        return sum(r.capacity for r in self.ranges)

    @property
    def allocations_dir(self) -> Path:
        return Path(self.data_dir) / self.network

    def describe(self) -> str:
        return ", ".join(f"{r.first}-{r.last}" for r in self.ranges)


class Usage(msgspec.Struct, frozen=True):
    pool: IpamPool
    used: int

    @property
    def percent(self) -> float:
        return 100.0 * self.used / self.pool.capacity if self.pool.capacity else 100.0

    @property
    def exhausted(self) -> bool:
        return self.used >= self.pool.capacity


def pools_of(config: dict[str, Any]) -> list[IpamPool]:
    """The host-local pools a network configuration (a `.conflist` or a single-plugin `.conf`) uses."""
    name = str(config.get("name", ""))
    plugins = config.get("plugins") if isinstance(config.get("plugins"), list) else [config]
    out = []
    for plugin in plugins:
        ipam = plugin.get("ipam") if isinstance(plugin, dict) else None
        if not isinstance(ipam, dict) or ipam.get("type") != "host-local" or not name:
            continue
        range_sets = ipam.get("ranges") or ([[ipam]] if ipam.get("subnet") else [])
        ranges = tuple(r for rs in range_sets if isinstance(rs, list) for spec in rs if isinstance(spec, dict)
                       if (r := _range(spec)) is not None)
        if ranges:
            out.append(IpamPool(network=name, data_dir=str(ipam.get("dataDir") or DEFAULT_DATA_DIR), ranges=ranges))
    return out


def _range(spec: dict[str, Any]) -> IpamRange | None:
    try:
        subnet = ipaddress.ip_network(str(spec["subnet"]), strict=False)
    except (KeyError, ValueError):
        return None
    network = subnet.network_address
    last_in_subnet = subnet.broadcast_address - 1 if subnet.version == 4 else subnet.broadcast_address
    try:
        first = ipaddress.ip_address(spec["rangeStart"]) if spec.get("rangeStart") else network + 1
        last = ipaddress.ip_address(spec["rangeEnd"]) if spec.get("rangeEnd") else last_in_subnet
        gateway = ipaddress.ip_address(spec["gateway"]) if spec.get("gateway") else network + 1
    except ValueError:
        return None
    return IpamRange(first=str(first), last=str(last), gateway=str(gateway))


def usage(pool: IpamPool, file_names: Iterable[str]) -> Usage:
    """How many addresses of `pool` are allocated, given the names of the files in its allocations dir."""
    used = 0
    for name in file_names:
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            continue  # lock, last_reserved_ip.0
        if any(r.holds(address) for r in pool.ranges):
            used += 1
    return Usage(pool=pool, used=used)
