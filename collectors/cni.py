"""The CNI collector: the node's pod network as netlink and the CNI plugins leave it.

Fed by:
- rtnetlink notifications (links, IPv4/IPv6 addresses, routes, neighbours) on the node's network namespace
  (or `netns`, a named one under /run/netns), read with pyroute2's `AsyncIPRoute` on the event loop's own
  thread (the socket is bound and read in that thread), judged per batch by `collectors.netlinkchanges`;
- libcni's result cache (`results_dir`, default `/var/lib/cni/results`), scanned every `scan_interval`:
  a pod attached to / detached from a network (`collectors.cniresults`), and which pod a host veth is;
- host-local's allocation files for every network of the CNI conf dir (`conf_dir`, default
  `/etc/cni/net.d`): pool usage and exhaustion (`collectors.cniipam`).
Feeds: the agent's `emit` (RawEvents of type `cni`, `collectors.node` contract).

What a CNI plugin answers on failure goes to its caller (containerd), not to the node: the node sees it
in the runtime's log, which the journald collector reads (`collectors.cnierrors` recognises IPAM
exhaustion there and in a plugin's error result), and in the kubelet's FailedCreatePodSandBox Event. This
collector sees the cause before the failure: the pool filling up (`metric.cni.ipam_used_percent`), and
`CNIIPAMExhausted` as soon as the last address is taken, before the next pod asks for one.

A pod's veth is made before libcni writes its result, so `LinkAdded` names the node and the `CNIAttached`
that follows names the pod with the same interface; `LinkRemoved` (DEL runs before the cache file goes)
names the pod.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pyroute2 import AsyncIPRoute
from pyroute2.netlink.exceptions import NetlinkDecodeError, NetlinkError
from pyroute2.netlink.rtnl import (
    RTMGRP_IPV4_IFADDR,
    RTMGRP_IPV4_ROUTE,
    RTMGRP_IPV6_IFADDR,
    RTMGRP_IPV6_ROUTE,
    RTMGRP_LINK,
    RTMGRP_NEIGH,
)

from collectors.cniipam import IpamPool, pools_of, usage
from collectors.cniresults import Attachment, attachment
from collectors.netlinkchanges import LinkTable, NetChange, NetFinding, judge_batch
from collectors.node import Emit, SourceUnavailable, node_event
from core.events import RawEvent

log = logging.getLogger(__name__)

NAME = "cni"
GROUPS = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE | RTMGRP_NEIGH
MAIN_TABLE = 254


def change_of(msg: Any) -> NetChange:
    """A pyroute2 rtnetlink message as a NetChange."""
    event = msg.get("event", "")
    if event in ("RTM_NEWLINK", "RTM_DELLINK"):
        info = msg.get_attr("IFLA_LINKINFO")
        return NetChange(event=event, index=msg.get("index", 0), name=msg.get_attr("IFLA_IFNAME") or "",
                         kind=(info.get_attr("IFLA_INFO_KIND") if info else None) or "",
                         operstate=msg.get_attr("IFLA_OPERSTATE") or "", master=msg.get_attr("IFLA_MASTER") or 0)
    if event in ("RTM_NEWADDR", "RTM_DELADDR"):
        return NetChange(event=event, index=msg.get("index", 0), prefixlen=msg.get("prefixlen", 0),
                         address=msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS") or "")
    if event in ("RTM_NEWROUTE", "RTM_DELROUTE"):
        table = msg.get_attr("RTA_TABLE") or msg.get("table", 0)
        if table != MAIN_TABLE:
            return NetChange(event="RTM_OTHERROUTE")
        return NetChange(event=event, index=msg.get_attr("RTA_OIF") or 0, prefixlen=msg.get("dst_len", 0),
                         address=msg.get_attr("RTA_DST") or "")
    if event in ("RTM_NEWNEIGH", "RTM_DELNEIGH"):
        return NetChange(event=event, index=msg.get("ifindex", 0), state=msg.get("state", 0),
                         address=msg.get_attr("NDA_DST") or "", lladdr=msg.get_attr("NDA_LLADDR") or "")
    return NetChange(event=event or "UNKNOWN")


class CniCollector:
    """Watches one node network namespace, its CNI result cache and its host-local pools."""

    name = NAME

    def __init__(self, node: str, *, netns: str = "", conf_dir: Path = Path("/etc/cni/net.d"),
                 results_dir: Path = Path("/var/lib/cni/results"), scan_interval: float = 2.0,
                 batch_seconds: float = 1.0, max_batch: int = 1000, queue_size: int = 100_000) -> None:
        self.node = node
        self.netns = netns
        self.conf_dir = conf_dir
        self.results_dir = results_dir
        self.scan_interval = scan_interval
        self.batch_seconds = batch_seconds
        self.max_batch = max_batch
        self.links = LinkTable()
        self.routine: Counter[str] = Counter()
        self.dropped = 0  # netlink notifications the queue had no room for
        self.unreadable = 0  # CNI conf files that are not JSON
        self.attachments: dict[str, Attachment] = {}  # cache file name -> attachment
        self.ipam: dict[str, tuple[int, bool]] = {}  # network -> (used, exhausted) last reported
        self._queue: asyncio.Queue[NetChange] = asyncio.Queue(queue_size)
        self._scanned = False

    # -- contract --------------------------------------------------------------------------------------
    def check(self) -> None:
        if self.netns and not Path("/run/netns", self.netns).exists():
            raise SourceUnavailable(f"network namespace {self.netns!r} is not in /run/netns: create it or leave "
                                    "netns empty for the node's own")
        if self.netns and os.geteuid() != 0:
            raise SourceUnavailable(f"entering network namespace {self.netns!r} needs root (CAP_SYS_ADMIN)")
        if not self.conf_dir.is_dir():
            log.warning("cni: %s does not exist: IPAM pools are not watched. Mount the host's CNI conf dir "
                        "(/etc/cni/net.d) into the agent", self.conf_dir)

    def lost(self) -> int:
        return self.dropped

    async def run(self, emit: Emit, stop: asyncio.Event) -> None:
        ipr = AsyncIPRoute(netns=self.netns) if self.netns else AsyncIPRoute()
        try:
            await ipr.bind(groups=GROUPS)
            async for msg in await ipr.link("dump"):  # the links there before: known, not "added"
                change = change_of(msg)
                judge_batch([change], self.links)
            reader = asyncio.create_task(self._read(ipr))
            try:
                await self._loop(emit, stop, reader)
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader
        finally:
            ipr.close()

    # -- netlink ---------------------------------------------------------------------------------------
    async def _read(self, ipr: AsyncIPRoute) -> None:
        while True:
            try:
                async for msg in ipr.get():
                    try:
                        self._queue.put_nowait(change_of(msg))
                    except asyncio.QueueFull:
                        self.dropped += 1
            except (OSError, NetlinkError, NetlinkDecodeError) as e:
                # ENOBUFS: the kernel dropped notifications the socket had no room for; the links table
                # may be stale until the next change of each link
                self.dropped += 1
                log.warning("cni: reading netlink failed (%s); reading on. If this repeats, the node changes its "
                            "network faster than the collector reads: raise its CPU limit", e)

    async def _loop(self, emit: Emit, stop: asyncio.Event, reader: asyncio.Task[None]) -> None:
        loop = asyncio.get_running_loop()
        next_scan = loop.time()
        while not stop.is_set():
            if reader.done():
                reader.result()  # raises what ended the netlink reader
            changes = await self._batch(stop, min(self.batch_seconds, max(0.0, next_scan - loop.time())))
            at = datetime.now(UTC)
            findings, routine = judge_batch(changes, self.links)
            self.routine["netlink"] += routine
            events = [self._netlink_event(f, at) for f in findings]
            if loop.time() >= next_scan:
                events += self._scan(at)
                next_scan = loop.time() + self.scan_interval
            if events:
                await emit(events)

    async def _batch(self, stop: asyncio.Event, seconds: float) -> list[NetChange]:
        changes: list[NetChange] = []
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                while len(changes) < self.max_batch and not stop.is_set():
                    changes.append(await self._queue.get())
        while len(changes) < self.max_batch and not self._queue.empty():
            changes.append(self._queue.get_nowait())
        return changes

    def _netlink_event(self, finding: NetFinding, at: datetime) -> RawEvent:
        interface = finding.facts.get("net.interface", "")
        owner = next((a for a in self.attachments.values() if a.host_interface and a.host_interface == interface),
                     None)
        facts = dict(finding.facts)
        if owner is not None:
            facts["container_id"] = owner.sandbox_id
        return node_event(NAME, node=self.node, at=at, reason=finding.reason, message=finding.message,
                          intent=finding.intent, category="network", severity=finding.severity,
                          about=owner.about if owner else None, facts=facts)

    # -- the result cache and the IPAM pools -----------------------------------------------------------
    def _scan(self, at: datetime) -> list[RawEvent]:
        events = self._scan_results(at, report=self._scanned)
        events += self._scan_pools(at)
        self._scanned = True
        return events

    def _scan_results(self, at: datetime, *, report: bool) -> list[RawEvent]:
        try:
            names = {entry.name for entry in os.scandir(self.results_dir) if entry.is_file()}
        except OSError:
            names = set()
        events = []
        for name in sorted(names - self.attachments.keys()):
            try:
                found = attachment((self.results_dir / name).read_bytes())
            except OSError:
                continue
            if found is None:
                continue
            self.attachments[name] = found
            if report:
                events.append(self._attachment_event("CNIAttached", found, at))
        for name in sorted(self.attachments.keys() - names):
            gone = self.attachments.pop(name)
            if report:
                events.append(self._attachment_event("CNIDetached", gone, at))
        return events

    def _attachment_event(self, reason: str, found: Attachment, at: datetime) -> RawEvent:
        attached = reason == "CNIAttached"
        addresses = ", ".join(found.addresses) or "no address"
        message = (f"{found.interface} ({addresses}) {'attached to' if attached else 'detached from'} network "
                   f"{found.network}" + (f" through {found.host_interface}" if found.host_interface else ""))
        facts = {"net.cni_network": found.network, "net.interface": found.host_interface,
                 "net.address": found.addresses[0] if found.addresses else "", "container_id": found.sandbox_id}
        return node_event(NAME, node=self.node, at=at, reason=reason, message=message, intent="network-change",
                          category="network", severity="info", about=found.about,
                          facts={k: v for k, v in facts.items() if v},
                          key=f"{reason}|{found.network}|{found.sandbox_id}|{found.interface}")

    def _pools(self) -> list[IpamPool]:
        pools = []
        try:
            files = sorted(p for p in self.conf_dir.iterdir() if p.suffix in (".conflist", ".conf", ".json"))
        except OSError:
            return []
        for path in files:
            try:
                config = json.loads(path.read_text())
            except (OSError, ValueError):
                self.unreadable += 1
                continue
            if isinstance(config, dict):
                pools += pools_of(config)
        return pools

    def _scan_pools(self, at: datetime) -> list[RawEvent]:
        events = []
        for pool in self._pools():
            try:
                names = os.listdir(pool.allocations_dir)
            except OSError:
                names = []
            now = usage(pool, names)
            before = self.ipam.get(pool.network)
            if before == (now.used, now.exhausted):
                continue
            self.ipam[pool.network] = (now.used, now.exhausted)
            facts = {"net.cni_network": pool.network, "net.ipam_range": pool.describe(),
                     "metric.cni.ipam_used": str(now.used), "metric.cni.ipam_capacity": str(pool.capacity),
                     "metric.cni.ipam_used_percent": f"{now.percent:.4g}"}
            if now.exhausted and not (before and before[1]):
                events.append(node_event(
                    NAME, node=self.node, at=at, reason="CNIIPAMExhausted", intent="ip-exhaustion",
                    category="network", severity="error", facts=facts,
                    message=f"every address of network {pool.network}'s pool ({pool.describe()}, {pool.capacity} "
                            "usable) is allocated: the next pod on this node fails in ContainerCreating "
                            "(host-local: no IP addresses available in range set)"))
            else:
                events.append(node_event(
                    NAME, node=self.node, at=at, reason="IPAMUsage", intent="metric-sample", category="network",
                    severity="debug", facts=facts,
                    message=f"network {pool.network}: {now.used} of {pool.capacity} addresses allocated"))
        return events
