"""The CNI collector's pure parts: netlink batches judged (`collectors.netlinkchanges`), host-local pools
measured (`collectors.cniipam`), libcni's result cache read (`collectors.cniresults`) on a cache file the
real cluster's containerd 1.6 wrote (`data/cni-results/`, recorded from `tests/support/realcluster` with one
pod `rec/web-0`, with the cluster's conflist)."""

from __future__ import annotations

import json
from pathlib import Path

from collectors.cniipam import IpamRange, pools_of, usage
from collectors.cniresults import attachment
from collectors.netlinkchanges import LinkTable, NetChange, judge_batch

DATA = Path(__file__).parent / "data" / "cni-results"
SANDBOX = "3179e0c79e568269f688c097eda305ea0e05efd38d9ba4ac3722401b1dc6061a"


def link(event: str, index: int, name: str, operstate: str = "DOWN", kind: str = "veth", master: int = 0) -> NetChange:
    return NetChange(event=event, index=index, name=name, kind=kind, operstate=operstate, master=master)


def test_a_veth_made_then_enslaved_is_one_added_port_and_a_teardown_is_no_link_down() -> None:
    table = LinkTable()
    judge_batch([link("RTM_NEWLINK", 5, "cni0", "UP", kind="bridge")], table)  # known before
    findings, _ = judge_batch([link("RTM_NEWLINK", 7, "veth1"), link("RTM_NEWLINK", 7, "veth1", "UP", master=5),
                               NetChange(event="RTM_NEWADDR", index=5, address="fe80::1", prefixlen=64)], table)
    assert [(f.reason, f.facts) for f in findings] == [
        ("LinkAdded", {"net.interface": "veth1", "net.link_kind": "veth", "net.bridge": "cni0"})]
    findings, _ = judge_batch([link("RTM_NEWLINK", 7, "veth1", "LOWERLAYERDOWN", master=5),
                               link("RTM_DELLINK", 7, "veth1", master=5)], table)
    assert [f.reason for f in findings] == ["LinkRemoved"]
    findings, _ = judge_batch([link("RTM_NEWLINK", 5, "cni0", "DOWN", kind="bridge")], table)
    assert [(f.reason, f.severity, f.message) for f in findings] == [("LinkDown", "warning", "bridge cni0 went DOWN")]


def test_a_veth_enslaved_in_a_later_batch_says_it_joined_its_bridge() -> None:
    """On a loaded node the bridge port notification can come a batch after the veth's own: the port is
    still told (a real cluster's CNI test once got a LinkAdded without its bridge, and nothing after)."""
    table = LinkTable()
    judge_batch([link("RTM_NEWLINK", 5, "cni0", "UP", kind="bridge")], table)
    findings, _ = judge_batch([link("RTM_NEWLINK", 7, "veth1")], table)
    assert [(f.reason, f.facts) for f in findings] == [("LinkAdded", {"net.interface": "veth1", "net.link_kind": "veth"})]
    findings, _ = judge_batch([link("RTM_NEWLINK", 7, "veth1", "UP", master=5)], table)
    assert [(f.reason, f.facts, f.message) for f in findings] == [
        ("LinkJoinedBridge", {"net.interface": "veth1", "net.link_kind": "veth", "net.bridge": "cni0"},
         "veth veth1 (port of cni0) joined its bridge")]
    findings, _ = judge_batch([link("RTM_NEWLINK", 7, "veth1", "UP", master=5)], table)
    assert findings == []  # once


def test_addresses_the_default_route_and_failed_neighbours() -> None:
    table = LinkTable()
    judge_batch([link("RTM_NEWLINK", 2, "eth0", "UP", kind="")], table)
    findings, routine = judge_batch([
        NetChange(event="RTM_NEWADDR", index=2, address="10.0.0.5", prefixlen=24),
        NetChange(event="RTM_NEWROUTE", index=2, address="10.0.0.0", prefixlen=24),
        NetChange(event="RTM_DELROUTE", index=2, prefixlen=0),
        NetChange(event="RTM_NEWNEIGH", index=2, address="10.0.0.9", state=0x02),
        NetChange(event="RTM_NEWNEIGH", index=2, address="10.0.0.7", state=0x20)], table)
    assert [(f.reason, f.severity) for f in findings] == [
        ("AddressAdded", "info"), ("DefaultRouteRemoved", "error"), ("NeighbourFailed", "warning")]
    assert findings[0].facts == {"net.interface": "eth0", "net.address": "10.0.0.5/24"}
    assert findings[2].facts["net.dst"] == "10.0.0.7" and routine == 2


def test_host_local_pools_count_usable_addresses_and_allocations() -> None:
    conflist = json.loads((DATA / "10-tapio.conflist").read_text())
    (pool,) = pools_of(conflist)
    assert (pool.network, pool.capacity, pool.describe()) == ("tapio-20b27d", 253, "10.217.33.1-10.217.33.254")
    assert usage(pool, ["10.217.33.2", "last_reserved_ip.0", "lock", "10.9.9.9"]).used == 1
    legacy = {"name": "old", "type": "bridge", "ipam": {"type": "host-local", "subnet": "10.1.0.0/30"}}
    (small,) = pools_of(legacy)
    assert small.capacity == 1 and small.data_dir == "/var/lib/cni/networks"
    assert usage(small, ["10.1.0.2"]).exhausted
    assert IpamRange(first="10.2.0.10", last="10.2.0.19", gateway="10.2.0.1").capacity == 10
    assert pools_of({"name": "x", "plugins": [{"type": "calico", "ipam": {"type": "calico-ipam"}}]}) == []


def test_the_real_result_cache_names_the_pod_its_veth_and_address() -> None:
    found = attachment((DATA / f"tapio-20b27d-{SANDBOX}-eth0").read_bytes())
    assert found is not None
    assert (found.namespace, found.pod, found.uid) == ("rec", "web-0", "d20134a4-c971-424f-ada2-481a56c9c451")
    assert (found.network, found.sandbox_id, found.interface) == ("tapio-20b27d", SANDBOX, "eth0")
    assert (found.host_interface, found.addresses) == ("veth39cc22bf", ("10.217.33.2/24",))
    assert attachment((DATA / f"cni-loopback-{SANDBOX}-lo").read_bytes()) is None
    assert attachment(b'{"kind": "cniCacheV1", "containerId": "x"') is None  # half written
