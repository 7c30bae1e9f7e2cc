"""What a second of netlink notifications says about the node's pod network: links (veth, bridge, vxlan)
added, removed or gone down, pod addresses, the default route, neighbours that failed to resolve.

Fed by: `collectors.cni` (rtnetlink notifications of the groups link, IPv4/IPv6 address, route and neighbour,
read with pyroute2 and turned into `NetChange`s). Feeds: the CNI collector, which makes node events of the
`NetFinding`s and counts the rest as routine.

`judge_batch` reads one batch in order, knowing the links seen before (`LinkTable`): a link added reports
`LinkAdded` as last seen in its batch (a veth is made, then made a bridge port), and `LinkJoinedBridge` when it
becomes a port in a later batch; a link that goes down
and is removed within the same batch was torn down (a pod deleted: its veth loses its peer, then goes), so
only a link still there at the end of the batch reports `LinkDown`. IPv6 link-local addresses, routes other
than the default and neighbour states other than FAILED are routine. Pure.
"""

from __future__ import annotations

import msgspec

NUD_FAILED = 0x20
UP_STATES = frozenset({"UP", "UNKNOWN"})  # UNKNOWN: a link without carrier detection (loopback, tun)


class NetChange(msgspec.Struct, frozen=True, kw_only=True):
    """One rtnetlink notification, reduced to what the judge reads."""

    event: str  # RTM_NEWLINK, RTM_DELLINK, RTM_NEWADDR, RTM_DELADDR, RTM_NEWROUTE, RTM_DELROUTE, RTM_NEWNEIGH...
    index: int = 0  # the link's ifindex (links, addresses, neighbours; a route's output link)
    name: str = ""  # link name
    kind: str = ""  # link kind: veth, bridge, vxlan... ("" for a physical link)
    operstate: str = ""
    master: int = 0  # ifindex of the bridge the link is a port of
    address: str = ""  # an address's IP, a neighbour's IP, a route's destination
    prefixlen: int = 0
    state: int = 0  # a neighbour's NUD state
    lladdr: str = ""


class Link(msgspec.Struct, kw_only=True):
    name: str
    kind: str = ""
    operstate: str = ""
    master: int = 0


class NetFinding(msgspec.Struct, frozen=True, kw_only=True):
    reason: str
    message: str
    intent: str
    severity: str
    facts: dict[str, str] = {}


class LinkTable:
    """The links seen so far, by ifindex (names of bridges and interfaces for the messages)."""

    def __init__(self) -> None:
        self.links: dict[int, Link] = {}

    def name(self, index: int) -> str:
        link = self.links.get(index)
        return link.name if link else str(index)


def judge_batch(changes: list[NetChange], table: LinkTable) -> tuple[list[NetFinding], int]:
    """The findings of one batch of changes, in order, and how many changes were routine."""
    findings: list[tuple[int, NetFinding | None]] = []  # None: a link added, judged at the end of the batch
    downs: dict[int, tuple[int, NetFinding]] = {}
    last_seen: dict[int, Link] = {}  # links added in this batch, as last seen (a port is enslaved after it is made)
    routine = 0
    for change in changes:
        event = change.event
        if event == "RTM_NEWLINK":
            before = table.links.get(change.index)
            link = Link(name=change.name or (before.name if before else ""), kind=change.kind or
                        (before.kind if before else ""), operstate=change.operstate, master=change.master)
            table.links[change.index] = link
            if change.index in last_seen:
                last_seen[change.index] = link
                routine += 1
            elif before is None:
                last_seen[change.index] = link
                findings.append((change.index, None))
            elif not before.master and link.master:  # made in an earlier batch, made a port of a bridge now
                findings.append((change.index, _link("LinkJoinedBridge", "joined its bridge", link, table)))
            elif before.operstate in UP_STATES and link.operstate not in UP_STATES:
                downs[change.index] = (len(findings), _link("LinkDown", f"went {link.operstate}", link, table))
            elif before.operstate not in UP_STATES and link.operstate in UP_STATES and change.index in downs:
                del downs[change.index]  # down and up again within the batch: a flap too short to matter
            else:
                routine += 1
        elif event == "RTM_DELLINK":
            link = table.links.pop(change.index, None) or Link(name=change.name, kind=change.kind)
            downs.pop(change.index, None)
            findings.append((change.index, _link("LinkRemoved", "removed", link, table)))
        elif event in ("RTM_NEWADDR", "RTM_DELADDR"):
            if change.address.lower().startswith("fe80:"):
                routine += 1
                continue
            added = event == "RTM_NEWADDR"
            where = table.name(change.index)
            findings.append((change.index, NetFinding(
                reason="AddressAdded" if added else "AddressRemoved", intent="network-change", severity="info",
                message=f"{change.address}/{change.prefixlen} {'added to' if added else 'removed from'} {where}",
                facts={"net.interface": where, "net.address": f"{change.address}/{change.prefixlen}"})))
        elif event in ("RTM_NEWROUTE", "RTM_DELROUTE") and change.prefixlen == 0 and change.address in ("", "0.0.0.0",
                                                                                                          "::"):
            added = event == "RTM_NEWROUTE"
            where = table.name(change.index)
            findings.append((change.index, NetFinding(
                reason="DefaultRouteAdded" if added else "DefaultRouteRemoved", intent="network-change",
                severity="info" if added else "error",
                message=f"default route via {where} {'added' if added else 'removed'}",
                facts={"net.interface": where})))
        elif event == "RTM_NEWNEIGH" and change.state & NUD_FAILED:
            where = table.name(change.index)
            findings.append((change.index, NetFinding(
                reason="NeighbourFailed", intent="network-failure", severity="warning",
                message=f"{change.address} on {where} does not answer ARP/NDP (neighbour FAILED)",
                facts={"net.interface": where, "net.dst": change.address})))
        else:
            routine += 1
    for index, (position, finding) in sorted(downs.items(), key=lambda item: item[1][0], reverse=True):
        if index not in last_seen:  # a link made in this batch starts DOWN: not a link that went down
            findings.insert(position, (index, finding))
    out = [f if f is not None else _link("LinkAdded", "added", last_seen[i], table) for i, f in findings]
    return out, routine


def _link(reason: str, what: str, link: Link, table: LinkTable) -> NetFinding:
    kind = link.kind or "link"
    facts = {"net.interface": link.name, "net.link_kind": kind}
    where = ""
    if link.master:
        facts["net.bridge"] = table.name(link.master)
        where = f" (port of {facts['net.bridge']})"
    down = reason == "LinkDown"
    return NetFinding(reason=reason, message=f"{kind} {link.name}{where} {what}", facts=facts,
                      intent="network-failure" if down else "network-change", severity="warning" if down else "info")
