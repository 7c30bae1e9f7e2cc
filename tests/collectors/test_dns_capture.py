"""The DNS collector capturing real queries on `lo` (an AF_PACKET socket, root) to real dnsmasq and
unbound servers started on loopback high ports (`nodesources.dns`): NXDOMAIN, SERVFAIL, timeouts and
latency samples, reported per name with their counts and latencies; and on every interface, a
client in a network namespace behind a veth on a bridge (as a pod is), each packet seen twice.
Needs root (CAP_NET_RAW, and CAP_NET_ADMIN for the namespace); skips only where the packet socket
cannot be opened."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager

import pytest
from nodesources.dns import BIG_NAME, GOOD_NAME, Dnsmasq, Unbound, ask, free_udp_port

from collectors.dns import DnsCollector, DnsSettings, NoPods, open_capture
from collectors.node import SourceUnavailable
from core.events import RawEvent

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def capture_allowed() -> None:
    try:
        open_capture("lo", [53]).close()
    except SourceUnavailable as e:
        pytest.skip(f"no packet socket here: {e}")


@pytest.fixture(scope="module")
def dnsmasq(capture_allowed: None) -> Dnsmasq:
    with Dnsmasq() as server:
        yield server


@pytest.fixture(scope="module")
def unbound(capture_allowed: None) -> Unbound:
    with Unbound() as server:
        yield server


@asynccontextmanager
async def capturing(*ports: int, timeout: float = 2.0, interfaces: tuple[str, ...] = ("lo",)
                    ) -> AsyncIterator[tuple[DnsCollector, list[RawEvent]]]:
    """The collector on `interfaces` (all when empty) for `ports`, reporting every 0.3 s; stopped
    (and its last report taken) on exit."""
    collector = DnsCollector(node="node-test", pods=NoPods(),
                             settings=DnsSettings(ports=ports, interfaces=interfaces, interval=0.3, timeout=timeout,
                                                  tick=0.1))
    events: list[RawEvent] = []

    async def emit(batch: list[RawEvent]) -> None:
        events.extend(batch)

    stop = asyncio.Event()
    task = asyncio.create_task(collector.run(emit, stop))
    await asyncio.sleep(0.2)  # the socket is open and filtered once run() has started
    try:
        yield collector, events
    finally:
        stop.set()
        await task


async def until(condition: Callable[[], bool], what: str, *, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {within} s")
        await asyncio.sleep(0.1)


def total(events: list[RawEvent], reason: str, name: str, key: str) -> int:
    return sum(int(e.metadata[key]) for e in events if e.metadata["reason"] == reason and e.metadata["net.query"] == name)


async def timed_ask(name: str, port: int, **kwargs: object) -> tuple[int, float]:
    started = time.time()
    answer = await asyncio.to_thread(ask, name, port, **kwargs)
    return answer.header.rcode, (time.time() - started) * 1000


async def test_nxdomain_and_successful_queries_to_dnsmasq_give_counts_latencies_and_no_event_per_query(
        dnsmasq: Dnsmasq) -> None:
    async with capturing(dnsmasq.port) as (collector, events):
        answered = [await timed_ask(GOOD_NAME, dnsmasq.port) for _ in range(5)]
        answered.append(await timed_ask(GOOD_NAME, dnsmasq.port, tcp=True))
        answered.append(await timed_ask(GOOD_NAME, dnsmasq.port, host="::1"))
        missing = [await timed_ask("nope.test", dnsmasq.port) for _ in range(3)]
        assert {rcode for rcode, _ in answered} == {0} and {rcode for rcode, _ in missing} == {3}
        await until(lambda: total(events, "DNSNXDomain", "nope.test", "metric.dns.failures") == 3
                    and total(events, "DNSLatency", GOOD_NAME, "metric.dns.queries") == 7, "NXDOMAIN events")
    good = [e.metadata for e in events if e.metadata["net.query"] == GOOD_NAME]
    assert {m["reason"] for m in good} == {"DNSLatency"}  # successes: samples only
    assert {(m["net.protocol"], m["net.src"]) for m in good} == {("udp", "127.0.0.1"), ("tcp", "127.0.0.1"),
                                                                   ("udp", "::1")}
    assert all(m["metric.dns.failures"] == "0" and m["net.port"] == str(dnsmasq.port) for m in good)
    nx = [e.metadata for e in events if e.metadata["reason"] == "DNSNXDomain"]
    assert {(m["net.rcode"], m["net.src"], m["net.dst"], m["kind"], m["name"], m["intent"]) for m in nx} == {
        ("NXDOMAIN", "127.0.0.1", "127.0.0.1", "Node", "node-test", "dns-failure")}
    # the kernel stamps both packets between the client's send and its receive
    assert 0 < max(float(m["metric.dns.latency_max_ms"]) for m in nx) <= max(ms for _, ms in missing)
    assert collector.lost() == 0


async def test_a_query_nobody_answers_is_a_timeout_after_the_timeout(dnsmasq: Dnsmasq) -> None:
    async with capturing(dnsmasq.port, timeout=1.0) as (_collector, events):
        for name in ("a.slow.example", "a.slow.example", "b.slow.example"):
            with pytest.raises(TimeoutError):
                await asyncio.to_thread(ask, name, dnsmasq.port, timeout=0.2)
        await until(lambda: total(events, "DNSTimeout", "a.slow.example", "metric.dns.failures") == 2
                    and total(events, "DNSTimeout", "b.slow.example", "metric.dns.failures") == 1, "timeouts")
    timeouts = [e.metadata for e in events if e.metadata["reason"] == "DNSTimeout"]
    assert {(m["net.outcome"], m["severity"], m["net.dst"]) for m in timeouts} == {("TIMEOUT", "error", "127.0.0.1")}
    assert not any("net.rcode" in m or "metric.dns.latency_p50_ms" in m for m in timeouts)


async def test_unbound_with_a_dead_forwarder_gives_servfail_events_with_its_latency(unbound: Unbound) -> None:
    async with capturing(unbound.port) as (_collector, events):
        answers = [await timed_ask(f"n{i}.servfail.example", unbound.port) for i in range(2)]
        assert {rcode for rcode, _ in answers} == {2}
        await until(lambda: sum(total(events, "DNSServFail", f"n{i}.servfail.example", "metric.dns.failures")
                                for i in range(2)) == 2, "SERVFAIL events")
    failed = {e.metadata["net.query"]: e.metadata for e in events if e.metadata["reason"] == "DNSServFail"}
    for i, (_rcode, client_ms) in enumerate(answers):
        m = failed[f"n{i}.servfail.example"]
        assert (m["net.rcode"], m["severity"], m["net.port"]) == ("SERVFAIL", "error", str(unbound.port))
        assert 0 < float(m["metric.dns.latency_p50_ms"]) <= client_ms


async def test_the_kernel_filter_keeps_other_ports_out_of_the_collector(dnsmasq: Dnsmasq) -> None:
    async with capturing(dnsmasq.port) as (collector, events):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
            other.bind(("127.0.0.1", 0))
            for _ in range(50):
                other.sendto(b"not dns", other.getsockname())
        await timed_ask(GOOD_NAME, dnsmasq.port)
        await until(lambda: total(events, "DNSLatency", GOOD_NAME, "metric.dns.queries") == 1, "the sample")
    # the query and its answer, each once: the outgoing copies on lo and the other port never reached it
    assert (collector.counts["packets"], collector.counts["messages"]) == (2, 2)


@pytest.fixture()
def bridged_netns(capture_allowed: None) -> Iterator[tuple[str, str, str]]:
    """A network namespace behind a veth on a bridge, as a pod's is: (netns, its address, the bridge's
    address). Removed after."""
    tag = f"{os.getpid() % 100000}"
    netns, bridge, veth = f"tapio-dns-{tag}", f"tdnsbr{tag}", f"tdnsv{tag}"
    subnet = f"10.234.{os.getpid() % 250}"
    steps = [["ip", "netns", "add", netns],
             ["ip", "link", "add", bridge, "type", "bridge"],
             ["ip", "addr", "add", f"{subnet}.1/24", "dev", bridge],
             ["ip", "link", "set", bridge, "up"],
             ["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns],
             ["ip", "link", "set", veth, "master", bridge, "up"],
             # one MTU-sized segment per packet, as a NIC puts on the wire (no GSO super-packets)
             ["ip", "link", "set", veth, "gso_max_segs", "1"],
             ["ip", "link", "set", bridge, "gso_max_segs", "1"],
             ["ip", "-n", netns, "addr", "add", f"{subnet}.2/24", "dev", "eth0"],
             ["ip", "-n", netns, "link", "set", "eth0", "up"]]
    try:
        for step in steps:
            subprocess.run(step, check=True, capture_output=True, text=True)
        yield netns, f"{subnet}.2", f"{subnet}.1"
    finally:
        subprocess.run(["ip", "netns", "del", netns], capture_output=True, check=False)
        subprocess.run(["ip", "link", "del", bridge], capture_output=True, check=False)


async def test_on_every_interface_a_query_crossing_a_veth_and_a_bridge_counts_once_and_long_tcp_answers_pair(
        bridged_netns: tuple[str, str, str]) -> None:
    netns, client, gateway = bridged_netns
    with Dnsmasq(address=gateway, port=free_udp_port()) as dnsmasq:
        asks = ["nope.test:A:udp"] * 3 + [f"{GOOD_NAME}:A:udp"] * 2 + [f"{BIG_NAME}:TXT:tcp"]
        ask_all = ("import sys; from dnslib import DNSRecord\n"
                   "for spec in sys.argv[3:]:\n"
                   "    name, kind, over = spec.split(':')\n"
                   "    DNSRecord.question(name, kind).send(sys.argv[1], int(sys.argv[2]), tcp=over == 'tcp', timeout=5)")
        async with capturing(dnsmasq.port, interfaces=()) as (collector, events):
            done = await asyncio.to_thread(
                subprocess.run, ["ip", "netns", "exec", netns, sys.executable, "-c", ask_all, gateway,
                                 str(dnsmasq.port), *asks], capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, done.stderr
            await until(lambda: total(events, "DNSNXDomain", "nope.test", "metric.dns.failures") == 3
                        and total(events, "DNSLatency", GOOD_NAME, "metric.dns.queries") == 2
                        and total(events, "DNSLatency", BIG_NAME, "metric.dns.queries") == 1, "the events")
    mine = [e.metadata for e in events]
    assert {(m["net.src"], m["net.dst"]) for m in mine} == {(client, gateway)}
    assert total(events, "DNSLatency", "nope.test", "metric.dns.queries") == 3
    assert not [m for m in mine if m["reason"] == "DNSTimeout"]
    # the ~2 kB answer over TCP came in two segments: read from the first, not left to time out
    [big] = [m for m in mine if m["net.query"] == BIG_NAME]
    assert (big["net.protocol"], big["net.qtype"], big["metric.dns.failures"]) == ("tcp", "TXT", "0")
    # each query and each answer crossed the veth and the bridge: seen twice, paired once (the second
    # sighting of a TCP segment is not read again)
    assert (collector.counts["messages"], collector.counts["outcomes"], collector.pairing.unmatched) == (22, 6, 5)


def test_a_collector_that_cannot_capture_says_what_to_fix(capture_allowed: None) -> None:
    with pytest.raises(SourceUnavailable, match="fix the dns collector's ports"):
        DnsCollector(node="n", settings=DnsSettings(ports=(0,)), pods=NoPods()).check()
    with pytest.raises(SourceUnavailable, match="cannot capture on interface 'nosuch0'.*check the interface names"):
        DnsCollector(node="n", settings=DnsSettings(interfaces=("lo", "nosuch0")), pods=NoPods()).check()
    DnsCollector(node="n", settings=DnsSettings(interfaces=("lo",)), pods=NoPods()).check()
