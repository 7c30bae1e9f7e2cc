"""What one captured packet says (`collectors.dnswire.parse_packet`, with `TcpStreams` for TCP flows)
and the kernel filter's program, on IPv4/IPv6 UDP/TCP packets built around dnslib messages. Pure."""

from __future__ import annotations

import ipaddress
import struct

import pytest
from dnslib import RCODE, RR, DNSRecord

from collectors.dnswire import TcpStreams, WireError, parse_packet, socket_filter

PORTS = frozenset({53})


def ipv4(src: str, dst: str, proto: int, body: bytes, *, fragment: int = 0) -> bytes:
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), 1, fragment, 64, proto, 0,
                         ipaddress.ip_address(src).packed, ipaddress.ip_address(dst).packed)
    return header + body + b"\0\0"  # link padding past the IP length is ignored


def ipv6(src: str, dst: str, proto: int, body: bytes) -> bytes:
    return struct.pack("!IHBB16s16s", 6 << 28, len(body), proto, 64, ipaddress.ip_address(src).packed,
                       ipaddress.ip_address(dst).packed) + body


def udp(sport: int, dport: int, payload: bytes) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def tcp(sport: int, dport: int, payload: bytes, *, seq: int = 1) -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, seq, 1, 5 << 4, 0x18, 65535, 0, 0) + payload


def query(name: str = "api.shop.svc.cluster.local", qtype: str = "A") -> DNSRecord:
    return DNSRecord.question(name, qtype)


def answer(q: DNSRecord, rcode: str) -> bytes:
    reply = q.reply()
    reply.header.rcode = getattr(RCODE, rcode)
    return reply.pack()


def test_a_udp_query_and_its_nxdomain_answer_name_the_client_the_server_and_the_name() -> None:
    q = query("API.Shop.svc.cluster.local.")
    [sent] = parse_packet(ipv4("10.244.0.5", "10.96.0.10", 17, udp(40000, 53, q.pack())), at=1.5, ports=PORTS)
    [got] = parse_packet(ipv4("10.96.0.10", "10.244.0.5", 17, udp(53, 40000, answer(q, "NXDOMAIN"))), at=1.6,
                         ports=PORTS)
    assert (sent.response, sent.client, sent.client_port, sent.server, sent.server_port) == (
        False, "10.244.0.5", 40000, "10.96.0.10", 53)
    assert (sent.name, sent.qtype, sent.txid, sent.protocol, sent.rcode, sent.at) == (
        "api.shop.svc.cluster.local", "A", q.header.id, "udp", "", 1.5)
    assert (got.response, got.client, got.client_port, got.server, got.rcode, got.txid) == (
        True, "10.244.0.5", 40000, "10.96.0.10", "NXDOMAIN", q.header.id)


def test_ipv6_and_tcp_messages_are_read_and_a_handshake_is_not() -> None:
    q = query("db.test", "AAAA")
    [v6] = parse_packet(ipv6("fd00::5", "fd00::a", 17, udp(5353, 53, answer(q, "SERVFAIL"))), at=0, ports=PORTS)
    assert (v6.client, v6.server, v6.rcode, v6.qtype) == ("fd00::a", "fd00::5", "SERVFAIL", "AAAA")
    [whole] = parse_packet(ipv4("10.0.0.1", "10.0.0.2", 6, tcp(41000, 53, framed(q.pack()))), at=0, ports=PORTS)
    assert (whole.protocol, whole.name, whole.response) == ("tcp", "db.test", False)
    assert parse_packet(ipv4("10.0.0.1", "10.0.0.2", 6, tcp(41000, 53, b"")), at=0, ports=PORTS) == []


def framed(message: bytes) -> bytes:
    return len(message).to_bytes(2) + message


def test_tcp_segments_that_start_no_message_are_skipped_per_flow() -> None:
    streams = TcpStreams()
    a, aaaa = query("db.test", "A"), query("db.test", "AAAA")
    pipelined = framed(a.pack()) + framed(aaaa.pack())
    sent = parse_packet(ipv4("10.0.0.1", "10.0.0.2", 6, tcp(41000, 53, pipelined, seq=1000)), at=0, ports=PORTS,
                        streams=streams)
    assert [(m.qtype, m.txid) for m in sent] == [("A", a.header.id), ("AAAA", aaaa.header.id)]
    # the same segment again (a retransmission, or its copy on the bridge after the veth): nothing new
    assert parse_packet(ipv4("10.0.0.1", "10.0.0.2", 6, tcp(41000, 53, pipelined, seq=1000)), at=0, ports=PORTS,
                        streams=streams) == []
    # a long answer: its first segment gives the header and question, the next segment is its middle
    big = a.reply()
    for i in range(200):
        big.add_answer(*RR.fromZone(f"db.test 30 A 10.0.{i // 250}.{i % 250}"))
    message = framed(big.pack())
    first, rest = message[:1400], message[1400:]
    [long] = parse_packet(ipv4("10.0.0.2", "10.0.0.1", 6, tcp(53, 41000, first, seq=5000)), at=0, ports=PORTS,
                          streams=streams)
    assert (long.response, long.txid, long.rcode, long.client) == (True, a.header.id, "NOERROR", "10.0.0.1")
    assert parse_packet(ipv4("10.0.0.2", "10.0.0.1", 6, tcp(53, 41000, rest, seq=6400)), at=0, ports=PORTS,
                        streams=streams) == []
    # the answer that follows it starts at the right sequence number and is read
    [after] = parse_packet(ipv4("10.0.0.2", "10.0.0.1", 6, tcp(53, 41000, framed(answer(aaaa, "NOERROR")),
                                                              seq=5000 + len(message))),
                           at=0, ports=PORTS, streams=streams)
    assert (after.qtype, after.txid) == ("AAAA", aaaa.header.id)


def test_other_ports_later_fragments_and_other_protocols_carry_no_dns_message() -> None:
    q = query().pack()
    assert parse_packet(ipv4("10.0.0.1", "10.0.0.2", 17, udp(40000, 8053, q)), at=0, ports=PORTS) == []
    assert parse_packet(ipv4("10.0.0.1", "10.0.0.2", 17, udp(40000, 8053, q)), at=0, ports=frozenset({8053}))
    assert parse_packet(ipv4("10.0.0.1", "10.0.0.2", 17, udp(40000, 53, q), fragment=185), at=0, ports=PORTS) == []
    assert parse_packet(ipv4("10.0.0.1", "10.0.0.2", 1, b"\x08\0" + bytes(30)), at=0, ports=PORTS) == []
    assert parse_packet(b"", at=0, ports=PORTS) == [] and parse_packet(b"\x45" + bytes(5), at=0, ports=PORTS) == []


def test_a_payload_on_a_dns_port_that_is_not_dns_is_a_wire_error_naming_the_flow() -> None:
    with pytest.raises(WireError, match=r"udp 10.0.0.1:40000 -> 10.0.0.2:53: not a DNS message"):
        parse_packet(ipv4("10.0.0.1", "10.0.0.2", 17, udp(40000, 53, b"\x01\x02\x03")), at=0, ports=PORTS)
    no_question = DNSRecord()
    no_question.header.q = 0
    with pytest.raises(WireError, match="without a question"):
        parse_packet(ipv4("10.0.0.1", "10.0.0.2", 17, udp(40000, 53, no_question.pack())), at=0, ports=PORTS)


def test_the_filter_program_is_whole_instructions_and_refuses_ports_it_cannot_hold() -> None:
    program = socket_filter([53, 5353, 53], loopback_index=1)
    assert len(program) % 8 == 0
    # the last two instructions: drop (return 0) and accept (return the whole packet)
    assert struct.unpack("=HBBI", program[-16:-8]) == (0x06, 0, 0, 0)
    assert struct.unpack("=HBBI", program[-8:])[0] == 0x06 and struct.unpack("=HBBI", program[-8:])[3] > 0
    for bad in ([], [0], [70000], range(1000, 1041)):
        with pytest.raises(ValueError, match="DNS ports"):
            socket_filter(bad, loopback_index=1)
