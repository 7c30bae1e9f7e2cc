"""What the DNS collector costs while it captures a steady stream of real queries (root).

    PYTHONPATH=$PWD .venv/bin/python benchmarks/dns_capture.py --rate 1000 --seconds 20

Starts dnsmasq on a loopback high port (`nodesources.dns`), runs `DnsCollector` on `lo` in this
process (reporting every 5 s) and, in a child process, a client that sends `--rate` queries a second
(90 % `good.test` NOERROR, 10 % `nope.test` NXDOMAIN, each from one of 64 client sockets) for
`--seconds`. Prints the collector process's CPU (user + system, % of one core) over the load, its
RSS, the messages and outcomes it saw against the client's count, the events it emitted and what it
lost. The CPU of an idle collector (the same time without load) is printed first.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import resource
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "support"))

from dnslib import DNSRecord  # noqa: E402
from nodesources.dns import GOOD_NAME, Dnsmasq  # noqa: E402

from collectors.dns import DnsCollector, DnsSettings, NoPods  # noqa: E402
from core.events import RawEvent  # noqa: E402


def client(port: int, rate: int, seconds: float, done: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """Sends `rate` queries a second for `seconds` from 64 sockets; puts (sent, answered)."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(64)]
    for s in socks:
        s.setblocking(False)
    queries = [DNSRecord.question(GOOD_NAME if i % 10 else "nope.test", "A").pack() for i in range(1000)]
    sent = answered = 0
    start = time.monotonic()
    while (elapsed := time.monotonic() - start) < seconds:
        due = int(elapsed * rate)
        while sent < due:
            packet = bytearray(queries[sent % 1000])
            packet[0:2] = random.getrandbits(16).to_bytes(2)
            socks[sent % 64].sendto(packet, ("127.0.0.1", port))
            sent += 1
        for s in socks:
            try:
                while s.recv(512):
                    answered += 1
            except BlockingIOError:
                pass
        time.sleep(0.002)
    time.sleep(0.5)
    for s in socks:
        try:
            while s.recv(512):
                answered += 1
        except BlockingIOError:
            pass
    done.put((sent, answered))


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measure(port: int, rate: int, seconds: float) -> None:
    collector = DnsCollector(node="bench", pods=NoPods(),
                             settings=DnsSettings(ports=(port,), interfaces=("lo",), interval=5.0, timeout=2.0))
    events: list[RawEvent] = []

    async def emit(batch: list[RawEvent]) -> None:
        events.extend(batch)

    stop = asyncio.Event()
    task = asyncio.create_task(collector.run(emit, stop))
    await asyncio.sleep(0.5)
    idle_start = cpu()
    await asyncio.sleep(5)
    idle = (cpu() - idle_start) / 5 * 100
    done: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    load = multiprocessing.Process(target=client, args=(port, rate, seconds, done))
    started, cpu_start = time.monotonic(), cpu()
    load.start()
    await asyncio.to_thread(load.join)
    wall, busy = time.monotonic() - started, cpu() - cpu_start
    sent, answered = done.get()
    stop.set()
    await task
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    reasons: dict[str, int] = {}
    for event in events:
        reasons[event.metadata["reason"]] = reasons.get(event.metadata["reason"], 0) + 1
    print(f"idle collector: {idle:.2f} % of one core")
    print(f"load: {sent} queries sent over {seconds:g} s ({sent / seconds:,.0f}/s), {answered} answered")
    print(f"collector under load: {busy / wall * 100:.1f} % of one core ({busy:.2f} s CPU over {wall:.1f} s), "
          f"peak RSS {rss:.0f} MiB")
    print(f"captured: {collector.counts['packets']} packets, {collector.counts['messages']} DNS messages, "
          f"{collector.counts['outcomes']} outcomes; lost {collector.lost()} "
          f"(kernel drops {collector.counts['kernel_drops']}, unreadable {collector.counts['unreadable']})")
    print(f"events emitted: {len(events)} ({', '.join(f'{k} {v}' for k, v in sorted(reasons.items()))})")


def main() -> int:
    parser = argparse.ArgumentParser(prog="dns_capture")
    parser.add_argument("--rate", type=int, default=1000, help="queries a second")
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("dns_capture: a packet socket needs root", file=sys.stderr)
        return 1
    with Dnsmasq() as dnsmasq:
        asyncio.run(measure(dnsmasq.port, args.rate, args.seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
