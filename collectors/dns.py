"""The DNS node collector: DNS queries and answers captured on the node's interfaces, reported per
pod (or client IP) and name as failures (NXDOMAIN, SERVFAIL, REFUSED, timeouts) and latency samples.

Fed by: raw `AF_PACKET` sockets (root or CAP_NET_RAW, host network) with a kernel filter that keeps
only the DNS ports (`collectors.dnswire`), and the kubelet's `/pods` (read-only port) to name the
pod behind a client IP (`KubeletPods`, any `PodLookup` will do). Feeds: the agent (`tapio agent`),
through `emit`, with the RawEvents `collectors.dnsoutcomes` makes once an interval.

The capture runs in the event loop (a reader callback drains the sockets); the kernel timestamps
each packet (SO_TIMESTAMPNS), so a busy loop does not inflate latencies. `lost()` counts packets the
kernel dropped because the socket was full, DNS-port payloads that are not DNS, and queries not
tracked because too many were open.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import socket
import struct
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Protocol

import msgspec

from collectors.dnsoutcomes import Pairing, PodRef, Tally
from collectors.dnswire import ETH_P_ALL, PACKET_OUTGOING, TcpStreams, WireError, parse_packet, socket_filter
from collectors.node import Emit, SourceUnavailable

log = logging.getLogger("tapio.collectors.dns")

# linux/socket.h, linux/if_packet.h: what Python's socket module does not name
SO_ATTACH_FILTER = 26
SO_TIMESTAMPNS = SCM_TIMESTAMPNS = 35
SO_RCVBUFFORCE = 33
_RECV_BUFFER = 8 << 20
SOL_PACKET, PACKET_STATISTICS = 263, 6
_RECV_SIZE = 65_536
_ANCILLARY = socket.CMSG_SPACE(16)
_TIMESPEC = struct.Struct("qq")
_DRAIN_AT_ONCE = 1024  # packets read per wake-up before the loop runs something else
_COALESCE = 0.01  # seconds a socket rests after a wake-up: a busy node wakes the loop <= 100 times a second


class DnsSettings(msgspec.Struct, frozen=True, kw_only=True):
    """What to capture and how to report it."""

    ports: tuple[int, ...] = (53,)  # server ports: 53, plus a node-local cache's or CoreDNS's own
    interfaces: tuple[str, ...] = ()  # empty: every interface of the (host) network namespace
    interval: float = 15.0  # seconds between reports
    timeout: float = 5.0  # seconds without an answer that make a query a timeout (glibc's default)
    tick: float = 0.5  # seconds between timeout sweeps
    max_pending: int = 100_000  # open queries tracked
    max_names: int = 5_000  # (client, server, name) groups per interval; then "(other names)"
    max_batch: int = 500  # RawEvents per emit


class PodLookup(Protocol):
    """Names the pod a client IP belongs to."""

    async def refresh(self, wanted: set[str]) -> None:
        """Bring the IP -> pod map up to date when it is old or lacks one of the `wanted` IPs (a
        new pod); never raises."""

    def pod_of(self, ip: str) -> PodRef | None:
        """The pod with that IP (not a hostNetwork pod), or None."""


class _Meta(msgspec.Struct):
    name: str = ""
    namespace: str = ""
    uid: str = ""


class _Spec(msgspec.Struct, rename="camel"):
    host_network: bool = False


class _PodIP(msgspec.Struct):
    ip: str = ""


class _Status(msgspec.Struct, rename="camel"):
    pod_ip: str = msgspec.field(default="", name="podIP")
    pod_ips: list[_PodIP] = msgspec.field(default_factory=list, name="podIPs")


class _Pod(msgspec.Struct):
    metadata: _Meta = msgspec.field(default_factory=_Meta)
    spec: _Spec = msgspec.field(default_factory=_Spec)
    status: _Status = msgspec.field(default_factory=_Status)


class _PodList(msgspec.Struct):
    items: list[_Pod] | None = None


def pods_by_ip(document: bytes) -> dict[str, PodRef]:
    """The pod behind each pod IP in a kubelet `/pods` answer (a PodList). hostNetwork pods share
    the node's IP and are left out: a query from the node's IP is about the node. Raises
    msgspec.DecodeError for a document that is not a PodList."""
    out: dict[str, PodRef] = {}
    for pod in msgspec.json.decode(document, type=_PodList).items or []:
        if pod.spec.host_network or not pod.metadata.name:
            continue
        ref = PodRef(namespace=pod.metadata.namespace, name=pod.metadata.name, uid=pod.metadata.uid)
        for ip in {pod.status.pod_ip, *(p.ip for p in pod.status.pod_ips)} - {""}:
            out[ip] = ref
    return out


class KubeletPods:
    """The pod IPs the kubelet's `/pods` lists, read again when older than `max_age` seconds."""

    def __init__(self, url: str = "http://127.0.0.1:10255/pods", *, max_age: float = 30.0, min_age: float = 5.0,
                 timeout: float = 3.0) -> None:
        self.url, self.max_age, self.min_age, self.timeout = url, max_age, min_age, timeout
        self._pods: dict[str, PodRef] = {}
        self._read_at = -max_age
        self._failing = False

    async def refresh(self, wanted: set[str]) -> None:
        age = time.monotonic() - self._read_at
        if age < self.min_age or (age < self.max_age and wanted <= self._pods.keys()):
            return
        self._read_at = time.monotonic()
        try:
            document = await asyncio.to_thread(self._fetch)
            self._pods = pods_by_ip(document)
        except (OSError, urllib.error.URLError, msgspec.DecodeError) as e:
            if not self._failing:
                log.warning("dns: cannot read pods from the kubelet at %s (%s): DNS events name the client IP "
                            "and are about the node; enable the kubelet's read-only port (readOnlyPort: 10255) or "
                            "give the collector another pod lookup", self.url, e)
            self._failing = True
            return
        if self._failing:
            log.info("dns: reading pods from the kubelet at %s again", self.url)
        self._failing = False

    def _fetch(self) -> bytes:
        with urllib.request.urlopen(self.url, timeout=self.timeout) as answer:
            document: bytes = answer.read()
        return document

    def pod_of(self, ip: str) -> PodRef | None:
        return self._pods.get(ip)


class NoPods:
    """No pod lookup: every event is about the node."""

    async def refresh(self, wanted: set[str]) -> None:
        return None

    def pod_of(self, ip: str) -> PodRef | None:
        return None


def open_capture(interface: str, ports: Iterable[int]) -> socket.socket:
    """A non-blocking packet socket on `interface` ("" for all) that receives the DNS ports' IP
    packets (kernel-filtered) with kernel timestamps. Raises SourceUnavailable when it cannot."""
    try:
        loopback = socket.if_nametoindex("lo")
    except OSError:
        loopback = 0
    try:
        program = socket_filter(ports, loopback)
    except ValueError as e:
        raise SourceUnavailable(f"dns: {e}: fix the dns collector's ports") from e
    try:
        # on one interface: no protocol until bound, so nothing arrives before the filter is on; on
        # every interface (no bind) what arrives before it is checked again by parse_packet and _drain
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, 0 if interface else socket.htons(ETH_P_ALL))
    except PermissionError as e:
        raise SourceUnavailable(f"dns: a raw packet socket (AF_PACKET) needs root or CAP_NET_RAW ({e}): run the "
                                "agent privileged, in the host network, or switch the dns collector off") from e
    except OSError as e:
        raise SourceUnavailable(f"dns: this kernel gives no packet socket ({e}): switch the dns collector off") from e
    try:
        code = ctypes.create_string_buffer(program)
        fprog = struct.pack("HL", len(program) // 8, ctypes.addressof(code))
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        with contextlib.suppress(OSError):  # room for bursts; FORCE passes rmem_max as root
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, _RECV_BUFFER)
        if interface:
            sock.bind((interface, ETH_P_ALL))  # CPython converts the protocol to network order
        sock.setblocking(False)
    except OSError as e:
        sock.close()
        where = f"interface {interface!r}" if interface else "every interface"
        raise SourceUnavailable(f"dns: cannot capture on {where} ({e}): check the interface names in the dns "
                                "collector's settings") from e
    return sock


class DnsCollector:
    """The `NodeCollector` for DNS (see the module's docstring)."""

    name = "dns"

    def __init__(self, *, node: str, settings: DnsSettings | None = None, pods: PodLookup | None = None) -> None:
        self.node = node
        self.settings = settings or DnsSettings()
        self.pods: PodLookup = pods if pods is not None else KubeletPods()
        self.pairing = Pairing(timeout=self.settings.timeout, max_pending=self.settings.max_pending)
        self.tally = Tally(max_names=self.settings.max_names)
        self.counts: Counter[str] = Counter()  # packets, messages, unreadable, kernel_drops, outcomes, events
        self._ports = frozenset(self.settings.ports)
        self._streams = TcpStreams()
        self._reported_at = time.monotonic()

    def check(self) -> None:
        for sock in self._open():
            sock.close()

    def lost(self) -> int:
        return self.counts["kernel_drops"] + self.counts["unreadable"] + self.pairing.overflow

    def _open(self) -> list[socket.socket]:
        socks: list[socket.socket] = []
        try:
            for interface in self.settings.interfaces or ("",):
                socks.append(open_capture(interface, self.settings.ports))
        except SourceUnavailable:
            for sock in socks:
                sock.close()
            raise
        return socks

    async def run(self, emit: Emit, stop: asyncio.Event) -> None:
        socks = self._open()
        self._reported_at = time.monotonic()
        loop = asyncio.get_running_loop()
        for sock in socks:
            loop.add_reader(sock.fileno(), self._wake, loop, sock)
        log.info("dns: capturing DNS on %s, ports %s", ", ".join(self.settings.interfaces) or "every interface",
                 ", ".join(map(str, sorted(self._ports))))
        try:
            next_report = time.monotonic() + self.settings.interval
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.settings.tick)
                self._expire()
                if time.monotonic() >= next_report:
                    next_report = time.monotonic() + self.settings.interval
                    await self._report(emit, socks)
            for sock in socks:
                self._drain(sock)
            self._expire()
            await self._report(emit, socks)
        finally:
            for sock in socks:
                loop.remove_reader(sock.fileno())
                sock.close()  # a pending _rearm sees it closed

    def _expire(self) -> None:
        for outcome in self.pairing.expire(time.time()):
            self.counts["outcomes"] += 1
            self.tally.add(outcome)

    def _wake(self, loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
        """Drain the socket, then leave it unwatched for _COALESCE seconds so that packets arriving
        meanwhile are read together (their kernel timestamps keep the latencies exact)."""
        self._drain(sock)
        loop.remove_reader(sock.fileno())
        loop.call_later(_COALESCE, self._rearm, loop, sock)

    def _rearm(self, loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
        if sock.fileno() >= 0:  # not closed by run()'s end meanwhile
            loop.add_reader(sock.fileno(), self._wake, loop, sock)

    def _drain(self, sock: socket.socket) -> None:
        """Read what the socket holds (at most _DRAIN_AT_ONCE packets) into the pairing."""
        for _ in range(_DRAIN_AT_ONCE):
            try:
                packet, ancillary, _flags, address = sock.recvmsg(_RECV_SIZE, _ANCILLARY)
            except (BlockingIOError, InterruptedError):
                return
            self.counts["packets"] += 1
            if address[0] == "lo" and address[2] == PACKET_OUTGOING:
                continue  # read before the filter was attached
            at = 0.0
            for level, kind, data in ancillary:
                if level == socket.SOL_SOCKET and kind == SCM_TIMESTAMPNS and len(data) >= 16:
                    seconds, nanos = _TIMESPEC.unpack_from(data)
                    at = seconds + nanos / 1e9
            try:
                messages = parse_packet(packet, at=at or time.time(), ports=self._ports, streams=self._streams)
            except WireError as e:
                self.counts["unreadable"] += 1
                log.debug("dns: %s", e)
                continue
            for message in messages:
                self.counts["messages"] += 1
                outcome = self.pairing.see(message)
                if outcome is not None:
                    self.counts["outcomes"] += 1
                    self.tally.add(outcome)

    async def _report(self, emit: Emit, socks: list[socket.socket]) -> None:
        for sock in socks:
            with contextlib.suppress(OSError):
                _packets, drops = struct.unpack("II", sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
                self.counts["kernel_drops"] += drops
        if not len(self.tally):
            return
        await self.pods.refresh(self.tally.clients())
        now = time.monotonic()
        interval, self._reported_at = now - self._reported_at, now
        events = self.tally.events(node=self.node, at=datetime.now(UTC), interval=round(interval, 1),
                                   pod_of=self.pods.pod_of)
        self.counts["events"] += len(events)
        for start in range(0, len(events), self.settings.max_batch):
            await emit(events[start:start + self.settings.max_batch])
