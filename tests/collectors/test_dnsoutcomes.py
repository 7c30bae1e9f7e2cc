"""Pairing queries with answers, timeouts, and the events an interval of outcomes makes
(`collectors.dnsoutcomes`), read back through the enrich and normalize stages; the kubelet `/pods`
reading (`collectors.dns.pods_by_ip`). Pure."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest

from agents.enrich import enrich_event
from agents.normalize import normalize_event
from collectors.dns import pods_by_ip
from collectors.dnsoutcomes import OTHER_NAMES, Outcome, Pairing, PodRef, Tally, percentile
from collectors.dnswire import DnsMessage

AT = datetime(2026, 12, 5, 4, 0, tzinfo=UTC)
WEB = PodRef(namespace="shop", name="web-0", uid="u-web-0")


def msg(at: float, *, response: bool = False, rcode: str = "", txid: int = 7, client: str = "10.244.0.5",
        port: int = 40000, server: str = "10.96.0.10", name: str = "api.shop.svc") -> DnsMessage:
    return DnsMessage(at=at, response=response, txid=txid, protocol="udp", client=client, client_port=port,
                      server=server, server_port=53, name=name, qtype="A", rcode=rcode)


def test_an_answer_closes_its_query_with_the_latency_from_the_first_sighting() -> None:
    pairing = Pairing(timeout=5)
    assert pairing.see(msg(10.0)) is None
    assert pairing.see(msg(10.001, server="10.244.0.7")) is None  # the same query after DNAT, another interface
    outcome = pairing.see(msg(10.0125, response=True, rcode="NOERROR", server="10.244.0.7"))
    assert outcome is not None and (outcome.outcome, outcome.server, outcome.client) == (
        "NOERROR", "10.96.0.10", "10.244.0.5")
    assert outcome.latency_ms == pytest.approx(12.5)
    assert pairing.see(msg(10.013, response=True, rcode="NOERROR")) is None  # a later copy of the answer
    assert (len(pairing), pairing.unmatched) == (0, 1)


def test_a_query_answered_by_nobody_within_the_timeout_is_a_timeout_and_is_forgotten() -> None:
    pairing = Pairing(timeout=5)
    pairing.see(msg(10.0, txid=1, name="slow.example"))
    pairing.see(msg(12.0, txid=2, name="later.example"))
    assert pairing.expire(14.9) == []
    [timeout] = pairing.expire(15.0)
    assert (timeout.outcome, timeout.name, timeout.latency_ms, timeout.at) == ("TIMEOUT", "slow.example", None, 10.0)
    assert len(pairing) == 1 and pairing.see(msg(15.1, txid=1, response=True, rcode="NOERROR",
                                                 name="slow.example")) is None
    assert [o.name for o in pairing.expire(100)] == ["later.example"] and len(pairing) == 0


def test_past_max_pending_new_queries_are_counted_not_tracked() -> None:
    pairing = Pairing(timeout=5, max_pending=2)
    for txid in range(4):
        pairing.see(msg(1.0, txid=txid))
    assert (len(pairing), pairing.overflow) == (2, 2)


def outcome(name: str, result: str, latency: float | None, *, client: str = "10.244.0.5") -> Outcome:
    return Outcome(at=1.0, client=client, server="10.96.0.10", server_port=53, protocol="udp", name=name, qtype="A",
                   outcome=result, latency_ms=latency)


def test_an_interval_makes_one_sample_per_name_and_one_event_per_failed_outcome_about_the_pod() -> None:
    tally = Tally()
    for ms in (1.0, 2.0, 3.0, 40.0):
        tally.add(outcome("api.shop.svc", "NOERROR", ms))
    for ms in (0.5, 0.7, 0.9):
        tally.add(outcome("nope.shop.svc", "NXDOMAIN", ms))
    tally.add(outcome("nope.shop.svc", "TIMEOUT", None))
    tally.add(outcome("db.shop.svc", "SERVFAIL", 750.0, client="10.244.0.9"))
    events = tally.events(node="node-1", at=AT, interval=15, pod_of={"10.244.0.5": WEB}.get)
    assert len(tally) == 0
    seen = {(e.metadata["reason"], e.metadata["net.query"]): e.metadata for e in events}
    assert sorted(seen) == [("DNSLatency", "api.shop.svc"), ("DNSLatency", "db.shop.svc"),
                            ("DNSLatency", "nope.shop.svc"), ("DNSNXDomain", "nope.shop.svc"),
                            ("DNSServFail", "db.shop.svc"), ("DNSTimeout", "nope.shop.svc")]
    ok = seen["DNSLatency", "api.shop.svc"]
    assert (ok["kind"], ok["namespace"], ok["name"], ok["severity"], ok["intent"]) == (
        "Pod", "shop", "web-0", "info", "dns-latency")
    assert (ok["metric.dns.queries"], ok["metric.dns.failures"], ok["metric.dns.latency_p50_ms"],
            ok["metric.dns.latency_p99_ms"], ok["metric.dns.latency_max_ms"]) == ("4", "0", "2.000", "40.000", "40.000")
    nx = seen["DNSNXDomain", "nope.shop.svc"]
    assert (nx["metric.dns.failures"], nx["metric.dns.queries"], nx["net.rcode"], nx["metric.dns.latency_p50_ms"],
            nx["intent"], nx["severity"]) == ("3", "4", "NXDOMAIN", "0.700", "dns-failure", "warning")
    assert nx["message"] == ("shop/web-0 (10.244.0.5) -> 10.96.0.10:53 nope.shop.svc: the name does not exist "
                             "(NXDOMAIN), 3 of 4 queries in 15 s (p50 0.7 ms, p99 0.9 ms)")
    timeout = seen["DNSTimeout", "nope.shop.svc"]
    assert ("net.rcode" not in timeout and "metric.dns.latency_p50_ms" not in timeout
            and timeout["net.outcome"] == "TIMEOUT" and timeout["metric.dns.failures"] == "1")
    servfail = seen["DNSServFail", "db.shop.svc"]
    assert (servfail["kind"], servfail["name"], servfail["net.src"], servfail["severity"]) == (
        "Node", "node-1", "10.244.0.9", "error")
    assert len({e.id for e in events}) == len(events)


def test_a_failure_reads_as_a_dns_failure_of_the_pod_with_its_network_layer_and_metrics() -> None:
    tally = Tally()
    tally.add(outcome("db.shop.svc", "SERVFAIL", 750.0))
    failure = next(e for e in tally.events(node="node-1", at=AT, interval=15, pod_of={"10.244.0.5": WEB}.get)
                   if e.metadata["reason"] == "DNSServFail")
    event = normalize_event(enrich_event(failure))
    assert (event.type, event.k8s.kind, event.k8s.namespace, event.k8s.name) == ("dns", "Pod", "shop", "web-0")
    assert (event.semantic.intent, event.semantic.severity) == ("dns-failure", "error")
    assert (event.network.query, event.network.rcode, event.network.src, event.network.dst, event.network.port,
            event.network.protocol) == ("db.shop.svc", "SERVFAIL", "10.244.0.5", "10.96.0.10", 53, "udp")
    assert event.metrics["dns.failures"] == 1 and event.metrics["dns.latency_p99_ms"] == 750.0


def test_a_failure_is_stamped_when_its_first_query_failed_not_at_the_end_of_the_interval() -> None:
    """What a failure causes (the app exiting, its pod's status) comes after the failure: stamped at the
    interval's end, the failure came after its own effects and no sequence could link them."""
    start = AT.timestamp()
    tally = Tally()
    for at, result, latency in ((start + 3.0, "NXDOMAIN", 0.5), (start + 1.0, "NXDOMAIN", 0.2),
                                (start + 2.0, "TIMEOUT", None), (start + 0.5, "NOERROR", 1.0)):
        tally.add(Outcome(at=at, client="10.244.0.5", server="10.96.0.10", server_port=53, protocol="udp",
                          name="db.shop.svc", qtype="A", outcome=result, latency_ms=latency))
    end = datetime.fromtimestamp(start + 15, tz=UTC)
    stamps = {e.metadata["reason"]: e.timestamp for e in tally.events(node="n", at=end, interval=15,
                                                                       pod_of={"10.244.0.5": WEB}.get)}
    assert stamps["DNSNXDomain"] == datetime.fromtimestamp(start + 1.0002, tz=UTC)  # the first answer
    assert stamps["DNSTimeout"] == datetime.fromtimestamp(start + 2.0, tz=UTC)  # the unanswered query
    assert stamps["DNSLatency"] == end  # a sample of the whole interval


def test_past_max_names_new_names_are_folded_per_client_and_server() -> None:
    tally = Tally(max_names=2)
    for i in range(5):
        tally.add(outcome(f"n{i}.example", "NOERROR", 1.0))
    samples = {e.metadata["net.query"]: e.metadata["metric.dns.queries"]
               for e in tally.events(node="n", at=AT, interval=15, pod_of=lambda ip: None)}
    assert samples == {"n0.example": "1", "n1.example": "1", OTHER_NAMES: "3"}


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 0.5), percentile(values, 0.99), percentile([3.0], 0.99)) == (50.0, 99.0, 3.0)


KUBELET_PODS = b"""{"kind":"PodList","apiVersion":"v1","metadata":{},"items":[
 {"metadata":{"name":"web-0","namespace":"shop","uid":"u-web-0"},"spec":{"containers":[{"name":"web"}]},
  "status":{"phase":"Running","podIP":"10.244.0.5","podIPs":[{"ip":"10.244.0.5"},{"ip":"fd00::5"}]}},
 {"metadata":{"name":"kube-proxy-x","namespace":"kube-system","uid":"u-kp"},"spec":{"hostNetwork":true},
  "status":{"podIP":"192.168.1.10","podIPs":[{"ip":"192.168.1.10"}]}},
 {"metadata":{"name":"pending-0","namespace":"shop","uid":"u-p"},"spec":{},"status":{"phase":"Pending"}}]}"""


def test_the_kubelet_pod_list_maps_each_pod_ip_but_not_host_network_pods() -> None:
    assert pods_by_ip(KUBELET_PODS) == {"10.244.0.5": WEB, "fd00::5": WEB}
    assert pods_by_ip(b'{"kind":"PodList","items":null}') == {}
    with pytest.raises(msgspec.DecodeError):
        pods_by_ip(b"<html>401</html>")
