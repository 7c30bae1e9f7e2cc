"""The CNI collector on Debian's real CNI plugins (`nodesources.cni`): a private network namespace plays the
node, the bridge plugin with host-local IPAM on a /30 adds a pod (one usable address: the pool is then
full), a second pod's ADD fails with host-local's code 999. The collector must see the bridge and the veth
come, the gateway address, the pool exhausted (`CNIIPAMExhausted`) before the second pod asks, a veth going
down, and the pod's DEL giving the address back; the plugin's error result reads as `CNIIPAMExhausted`.
Needs root (network namespaces)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from nodesources.cni import CniNode, unavailable

from collectors.cni import CniCollector
from collectors.cnierrors import plugin_error
from collectors.node import SourceUnavailable
from core.events import RawEvent

SUBNET = "10.251.7.0/30"


@pytest.fixture
def cni_node() -> Iterator[CniNode]:
    with CniNode(SUBNET) as node:
        yield node


@pytest.mark.skipif(bool(unavailable()), reason=unavailable() or "-")
async def test_a_pod_added_by_the_real_plugins_its_links_and_the_pool_exhausted(cni_node: CniNode) -> None:
    collector = CniCollector("node-1", netns=cni_node.netns, conf_dir=cni_node.conf_dir,
                             results_dir=cni_node.results_dir, scan_interval=0.3, batch_seconds=0.2)
    collector.check()
    batches: list[list[RawEvent]] = []

    async def emit(batch: list[RawEvent]) -> None:
        batches.append(batch)

    def seen(reason: str, **metadata: str) -> list[RawEvent]:
        return [e for b in batches for e in b if e.metadata["reason"] == reason
                and all(e.metadata.get(k) == v for k, v in metadata.items())]

    async def until(reason: str, not_before: RawEvent | None = None, **metadata: str) -> RawEvent:
        """The newest event of `reason` with `metadata`, once there is one (other than `not_before`)."""
        deadline = time.monotonic() + 20
        while not [e for e in seen(reason, **metadata) if not_before is None or e.id != not_before.id]:
            assert not task.done(), "the collector stopped"
            assert time.monotonic() < deadline, f"no {reason} {metadata} in {[e.metadata for b in batches for e in b]}"
            await asyncio.sleep(0.05)
        return seen(reason, **metadata)[-1]

    stop = asyncio.Event()
    task = asyncio.create_task(collector.run(emit, stop))
    try:
        empty = await until("IPAMUsage", **{"net.cni_network": cni_node.network})  # the first scan: 0 of 1
        assert (empty.metadata["metric.cni.ipam_used"], empty.metadata["metric.cni.ipam_capacity"]) == ("0", "1")

        first = cni_node.plugin("ADD", cni_node.pod("a"), "c-pod-a")
        assert first.returncode == 0, first.stderr
        veth = next(i["name"] for i in first.result["interfaces"] if i["name"].startswith("veth"))
        await until("LinkAdded", **{"net.interface": cni_node.bridge, "net.link_kind": "bridge"})
        added = await until("LinkAdded", **{"net.interface": veth})
        assert (added.metadata["net.link_kind"], added.metadata["net.bridge"]) == ("veth", cni_node.bridge)
        gateway = await until("AddressAdded", **{"net.interface": cni_node.bridge})
        assert gateway.metadata["net.address"] == "10.251.7.1/30"
        full = await until("CNIIPAMExhausted")
        assert full.metadata["severity"] == "error" and full.metadata["metric.cni.ipam_used_percent"] == "100"
        assert full.metadata["net.ipam_range"] == "10.251.7.1-10.251.7.2" and full.metadata["kind"] == "Node"

        second = cni_node.plugin("ADD", cni_node.pod("b"), "c-pod-b")
        failure = plugin_error(second.stdout)
        assert second.returncode != 0 and failure is not None
        assert (failure.reason, failure.code, failure.range) == ("CNIIPAMExhausted", 999, "10.251.7.1-10.251.7.2")

        cni_node.ip("link", "set", veth, "down")
        down = await until("LinkDown", **{"net.interface": veth})
        assert down.metadata["severity"] == "warning"

        assert cni_node.plugin("DEL", "/run/netns/" + cni_node.pods[0].rsplit("/", 1)[-1], "c-pod-a").returncode == 0
        await until("LinkRemoved", **{"net.interface": veth})
        # the pool empty again: a new sample, not the first scan's (a slow DEL left only that one at first)
        freed = await until("IPAMUsage", not_before=empty, **{"metric.cni.ipam_used": "0"})
        assert freed.id != empty.id
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
    assert len(seen("CNIIPAMExhausted")) == 1 and not seen("LinkDown", **{"net.interface": cni_node.bridge})
    assert collector.lost() == 0 and collector.routine["netlink"] > 0


def test_a_missing_network_namespace_is_named() -> None:
    with pytest.raises(SourceUnavailable, match="network namespace 'tapio-absent' is not in /run/netns"):
        CniCollector("node-1", netns="tapio-absent").check()
