"""DNS on the wire: which packets a capture socket keeps (a classic BPF filter run in the kernel) and
what one captured packet says (a `DnsMessage`: query or answer, who asked whom, which name, which rcode).

Fed by: `collectors.dns`, which opens an `AF_PACKET`/`SOCK_DGRAM` socket (packets start at the IP
header, whatever the link), attaches `socket_filter(ports, loopback_index)` and hands each packet to
`parse_packet`. Feeds: `collectors.dnsoutcomes`, which pairs the queries with their answers.

The filter keeps IPv4 and IPv6 UDP and TCP packets from or to one of the DNS ports (first fragments
only) and drops the `PACKET_OUTGOING` copy of each packet on the loopback interface, where every
packet is seen twice (leaving and arriving). Only the DNS header and the question are parsed
(the 12-byte header with `struct`, the question with `dnslib`, once per distinct question: a
bounded cache keyed on the question's bytes); the answer records say nothing the collector reports. TCP messages are
read from the segment that starts them (`TcpStreams` follows each flow's sequence numbers): the
header and question are in the first segment of even a long answer, so nothing is reassembled.
Pure: no I/O.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterable

import msgspec
from dnslib import QTYPE, RCODE, DNSError, DNSHeader, DNSQuestion  # type: ignore[import-untyped]
from dnslib.dns import DNSBuffer  # type: ignore[import-untyped]

ETH_P_ALL = 0x0003
ETH_P_IP, ETH_P_IPV6 = 0x0800, 0x86DD
PACKET_OUTGOING = 4
SNAPLEN = 0x40000  # what an accepted packet keeps: all of it


class DnsMessage(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One DNS query or answer seen on the wire. `client` asked `server`; `at` is the kernel's
    capture time (seconds since the epoch)."""

    at: float
    response: bool
    txid: int
    protocol: str  # udp | tcp
    client: str
    client_port: int
    server: str
    server_port: int
    name: str  # lower case, no trailing dot; "." is the root
    qtype: str
    rcode: str = ""  # answers: NOERROR, NXDOMAIN, SERVFAIL, REFUSED...
    truncated: bool = False


class WireError(ValueError):
    """A packet on a DNS port whose DNS message cannot be read (malformed, or not DNS at all)."""


# classic BPF (linux/filter.h): instruction classes, sizes, modes, jumps
_LD, _LDX, _JMP, _RET = 0x00, 0x01, 0x05, 0x06
_W, _H, _B = 0x00, 0x08, 0x10
_ABS, _IND, _MSH = 0x20, 0x40, 0xA0
_JEQ, _JSET = 0x10, 0x40
_SKF_AD = 0xFFFFF000  # SKF_AD_OFF (-0x1000) as the unsigned k of a load
_AD_PROTOCOL, _AD_PKTTYPE, _AD_IFINDEX = 0, 4, 8
_MAX_PORTS = 40  # keeps every jump within the 8-bit offsets cBPF has


def socket_filter(ports: Iterable[int], loopback_index: int) -> bytes:
    """The classic BPF program (an array of `struct sock_filter`, ready for `SO_ATTACH_FILTER`) that
    keeps UDP/TCP packets from or to `ports` and drops the outgoing copy on the interface numbered
    `loopback_index`. For a `SOCK_DGRAM` packet socket: offset 0 is the IP header. Raises
    ValueError for no ports, a port outside 1-65535, or more than 40 ports."""
    wanted = sorted(set(ports))
    if not wanted or len(wanted) > _MAX_PORTS or not all(0 < p < 65536 for p in wanted):
        raise ValueError(f"DNS ports {wanted}: give 1 to {_MAX_PORTS} ports between 1 and 65535")
    program: list[tuple[int, str | int, str | int, int]] = []  # (code, true label, false label, k)

    def op(code: int, k: int = 0, jt: str | int = 0, jf: str | int = 0) -> None:
        program.append((code, jt, jf, k))

    def label(name: str) -> None:
        program.append((-1, name, name, 0))

    def port_checks(offset_code: int, offset: int) -> None:
        op(_LD | _H | offset_code, offset)
        for port in wanted:
            op(_JMP | _JEQ, port, "accept", 0)

    op(_LD | _W | _ABS, _SKF_AD + _AD_IFINDEX)
    op(_JMP | _JEQ, loopback_index, 0, "protocol")
    op(_LD | _W | _ABS, _SKF_AD + _AD_PKTTYPE)
    op(_JMP | _JEQ, PACKET_OUTGOING, "drop", 0)
    label("protocol")
    op(_LD | _H | _ABS, _SKF_AD + _AD_PROTOCOL)
    op(_JMP | _JEQ, ETH_P_IP, 0, "ipv6")
    op(_LD | _B | _ABS, 9)  # IPv4 protocol
    op(_JMP | _JEQ, 17, "ipv4 ports", 0)
    op(_JMP | _JEQ, 6, 0, "drop")
    label("ipv4 ports")
    op(_LD | _H | _ABS, 6)  # flags and fragment offset: a later fragment has no ports
    op(_JMP | _JSET, 0x1FFF, "drop", 0)
    op(_LDX | _B | _MSH, 0)  # X = IPv4 header length
    port_checks(_IND, 0)
    port_checks(_IND, 2)
    op(_RET, 0)
    label("ipv6")
    op(_JMP | _JEQ, ETH_P_IPV6, 0, "drop")
    op(_LD | _B | _ABS, 6)  # IPv6 next header (no extension headers)
    op(_JMP | _JEQ, 17, "ipv6 ports", 0)
    op(_JMP | _JEQ, 6, 0, "drop")
    label("ipv6 ports")
    port_checks(_ABS, 40)
    port_checks(_ABS, 42)
    label("drop")
    op(_RET, 0)
    label("accept")
    op(_RET, SNAPLEN)
    return _assemble(program)


def _assemble(program: list[tuple[int, str | int, str | int, int]]) -> bytes:
    """Resolve the labels of `program` into cBPF's relative jump offsets and pack it."""
    at: dict[str, int] = {}
    index = 0
    for code, jt, _jf, _k in program:
        if code == -1:
            at[str(jt)] = index
        else:
            index += 1
    out = bytearray()
    index = 0
    for code, jt, jf, k in program:
        if code == -1:
            continue
        jumps = [at[j] - index - 1 if isinstance(j, str) else j for j in (jt, jf)]
        if not all(0 <= j < 256 for j in jumps):
            raise ValueError(f"BPF jump out of range at instruction {index}: {jumps}")
        out += struct.pack("=HBBI", code, jumps[0], jumps[1], k)
        index += 1
    return bytes(out)


class TcpStreams:
    """Where the next DNS message starts in each TCP flow on a DNS port (its sequence number), so
    that only segments starting a message are read: a message's later segments, retransmissions and
    the second sighting of a segment on another interface are not. A flow first seen mid-message
    may be misread once. Holds at most `max_flows` flows (then forgets them all)."""

    def __init__(self, *, max_flows: int = 20_000) -> None:
        self.max_flows = max_flows
        self._next: dict[tuple[bytes, int, bytes, int], int] = {}

    def starts(self, flow: tuple[bytes, int, bytes, int], seq: int) -> bool:
        expected = self._next.get(flow)
        return expected is None or expected == seq

    def advance(self, flow: tuple[bytes, int, bytes, int], seq: int) -> None:
        if len(self._next) >= self.max_flows and flow not in self._next:
            self._next.clear()
        self._next[flow] = seq & 0xFFFFFFFF


def parse_packet(packet: bytes, *, at: float, ports: frozenset[int],
                 streams: TcpStreams | None = None) -> list[DnsMessage]:
    """The DNS messages in one IP packet (IPv4 or IPv6, UDP or TCP) from or to one of `ports`:
    none for another port, a later fragment, a TCP segment that starts no message (per `streams`;
    without it every TCP segment with data is taken to start one). A TCP message longer than its
    segment is read from its header and question. Raises WireError when a payload on a DNS port is
    not a readable DNS message."""
    if not packet:
        return []
    version = packet[0] >> 4
    if version == 4:
        if len(packet) < 20:
            return []
        header = (packet[0] & 0x0F) * 4
        total = int.from_bytes(packet[2:4])
        if int.from_bytes(packet[6:8]) & 0x1FFF:
            return []
        proto, src, dst = packet[9], packet[12:16], packet[16:20]
        body = packet[header:total]
    elif version == 6:
        if len(packet) < 40:
            return []
        proto, src, dst = packet[6], packet[8:24], packet[24:40]
        body = packet[40:40 + int.from_bytes(packet[4:6])]
    else:
        return []
    if proto == 17 and len(body) >= 8:
        sport, dport, length = struct.unpack_from("!HHH", body)
        if sport not in ports and dport not in ports:
            return []
        return [_message(body[8:length], at=at, protocol="udp", src=(_ip(src), sport), dst=(_ip(dst), dport))]
    if proto != 6 or len(body) < 20:
        return []
    sport, dport, seq = struct.unpack_from("!HHI", body)
    segment = body[(body[12] >> 4) * 4:]
    if (sport not in ports and dport not in ports) or not segment:
        return []  # another port, or a handshake or an ack
    flow = (src, sport, dst, dport)
    if streams is not None and not streams.starts(flow, seq):
        return []  # the rest of a message, a retransmission, a copy seen on another interface
    messages: list[DnsMessage] = []
    offset = 0
    while offset + 2 <= len(segment):  # pipelined messages: one after another in the segment
        size = int.from_bytes(segment[offset:offset + 2])
        messages.append(_message(segment[offset + 2:offset + 2 + size], at=at, protocol="tcp",
                                 src=(_ip(src), sport), dst=(_ip(dst), dport)))
        offset += 2 + size
    if streams is not None:
        streams.advance(flow, seq + offset)
    return messages


def _ip(raw: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, raw)


_HEADER = struct.Struct("!HHH")  # id, flags, question count
_QUESTIONS: dict[bytes, tuple[str, str]] = {}  # question section -> (name, qtype), read by dnslib once
_MAX_QUESTIONS = 20_000


def _message(payload: bytes, *, at: float, protocol: str, src: tuple[str, int], dst: tuple[str, int]) -> DnsMessage:
    if len(payload) < 12:
        raise WireError(f"{protocol} {src[0]}:{src[1]} -> {dst[0]}:{dst[1]}: not a DNS message "
                        f"({len(payload)} bytes, shorter than a header)")
    txid, flags, count = _HEADER.unpack_from(payload)
    if not count:
        raise WireError(f"{protocol} {src[0]}:{src[1]} -> {dst[0]}:{dst[1]}: a DNS message without a question")
    section = _question_bytes(payload)
    question = _QUESTIONS.get(section) if section else None
    if question is None:
        question = _question(payload, protocol=protocol, src=src, dst=dst)
        if section:
            if len(_QUESTIONS) >= _MAX_QUESTIONS:
                _QUESTIONS.clear()
            _QUESTIONS[section] = question
    response = bool(flags & 0x8000)
    client, server = (dst, src) if response else (src, dst)
    rcode = flags & 0x000F
    return DnsMessage(at=at, response=response, txid=txid, protocol=protocol, client=client[0],
                      client_port=client[1], server=server[0], server_port=server[1], name=question[0],
                      qtype=question[1], rcode=str(RCODE.get(rcode, rcode)) if response else "",
                      truncated=bool(flags & 0x0200))


def _question_bytes(payload: bytes) -> bytes:
    """The first question's bytes (name, type, class) when its name is plain labels, else b""."""
    at = 12
    while at < len(payload):
        size = payload[at]
        if size == 0:
            return payload[12:at + 5] if at + 5 <= len(payload) else b""
        if size & 0xC0:
            return b""  # a compressed name in a question: rare, read without the cache
        at += size + 1
    return b""


def _question(payload: bytes, *, protocol: str, src: tuple[str, int], dst: tuple[str, int]) -> tuple[str, str]:
    try:
        buffer = DNSBuffer(payload)
        DNSHeader.parse(buffer)
        question = DNSQuestion.parse(buffer)
    except DNSError as e:  # dnslib wraps every decoding failure in it
        raise WireError(f"{protocol} {src[0]}:{src[1]} -> {dst[0]}:{dst[1]}: not a DNS message ({e})") from e
    name = str(question.qname).rstrip(".").lower() or "."
    return name, str(QTYPE.get(question.qtype, question.qtype))
