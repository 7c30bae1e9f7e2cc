"""What became of each DNS query (answered with an rcode after some milliseconds, or never), and the few
RawEvents an interval of them makes.

Fed by: `collectors.dns`, which hands every `DnsMessage` (`collectors.dnswire`) to `Pairing.see`,
calls `Pairing.expire` as time passes, adds each `Outcome` to a `Tally` and, once an interval, asks
the tally for its events (`Tally.events`). Feeds: the agent's publisher, through the collector.

Pairing: a query is known by its client address and port, transaction id, protocol and name (not by
its server: a query to a Service's ClusterIP is answered by the pod the ClusterIP was translated to,
and a capture on every interface sees the same query before and after the translation). The first
sighting of a query starts its clock, the first answer stops it; later copies (other interfaces,
client retries with the same id) change nothing. A query unanswered after `timeout` seconds is a
timeout.

Aggregation at the source: no event per query. Each interval gives, per client (the pod, else the
client IP), server, protocol and name, one `DNSLatency` sample (`metric.dns.queries`, `.failures`,
`.latency_p50_ms`, `.latency_p99_ms`, `.latency_max_ms`), and one event per failed outcome seen:
`DNSNXDomain`, `DNSServFail`, `DNSRefused`, `DNSTimeout` (intent `dns-failure`), each with its count
and latencies.
Pure: no I/O.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

import msgspec

from collectors.dnswire import DnsMessage
from collectors.node import node_event
from core.events import RawEvent

TIMEOUT = "TIMEOUT"
OTHER_NAMES = "(other names)"

#: the outcomes reported as failures: (reason, severity, what a person reads)
FAILURES: dict[str, tuple[str, str, str]] = {
    "NXDOMAIN": ("DNSNXDomain", "warning", "the name does not exist (NXDOMAIN)"),
    "SERVFAIL": ("DNSServFail", "error", "the server failed to answer (SERVFAIL)"),
    "REFUSED": ("DNSRefused", "error", "the server refused the query (REFUSED)"),
    TIMEOUT: ("DNSTimeout", "error", "no answer (timeout)"),
}


class Outcome(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One query's fate: its answer's rcode (or TIMEOUT) and, when answered, the latency."""

    at: float  # when the query was first seen
    client: str
    server: str
    server_port: int
    protocol: str
    name: str
    qtype: str
    outcome: str  # NOERROR, NXDOMAIN, SERVFAIL, REFUSED, ..., TIMEOUT
    latency_ms: float | None = None


class PodRef(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The pod a client IP belongs to."""

    namespace: str
    name: str
    uid: str = ""


class _Pending(msgspec.Struct, gc=False):
    query: DnsMessage


_QueryKey = tuple[str, int, int, str, str]  # client, client port, id, protocol, name


class Pairing:
    """Pairs each answer with its query and ages out the queries nobody answered. Holds at most
    `max_pending` open queries: past that a new query is not tracked and counts in `overflow`."""

    def __init__(self, *, timeout: float, max_pending: int = 100_000) -> None:
        self.timeout = timeout
        self.max_pending = max_pending
        self._pending: dict[_QueryKey, _Pending] = {}
        self.overflow = 0  # queries not tracked: too many open
        self.unmatched = 0  # answers to no query we saw (copies, answers to queries before the start)

    def __len__(self) -> int:
        return len(self._pending)

    def see(self, message: DnsMessage) -> Outcome | None:
        """The outcome `message` completes (an answer to an open query), else None."""
        key = (message.client, message.client_port, message.txid, message.protocol, message.name)
        if not message.response:
            if key not in self._pending:
                if len(self._pending) >= self.max_pending:
                    self.overflow += 1
                else:
                    self._pending[key] = _Pending(message)
            return None
        pending = self._pending.pop(key, None)
        if pending is None:
            self.unmatched += 1
            return None
        query = pending.query
        return _outcome(query, message.rcode, latency_ms=max(0.0, (message.at - query.at) * 1000.0))

    def expire(self, now: float) -> list[Outcome]:
        """The queries first seen more than `timeout` seconds before `now` and still unanswered,
        as timeouts (oldest first); they are forgotten."""
        deadline = now - self.timeout
        expired: list[Outcome] = []
        for pending in self._pending.values():  # insertion order: oldest first
            if pending.query.at > deadline:
                break
            expired.append(_outcome(pending.query, TIMEOUT, latency_ms=None))
        for _ in expired:
            del self._pending[next(iter(self._pending))]
        return expired


def _outcome(query: DnsMessage, outcome: str, *, latency_ms: float | None) -> Outcome:
    return Outcome(at=query.at, client=query.client, server=query.server, server_port=query.server_port,
                   protocol=query.protocol, name=query.name, qtype=query.qtype, outcome=outcome,
                   latency_ms=latency_ms)


class _Bucket(msgspec.Struct, gc=False):
    outcomes: Counter[str]
    latencies: dict[str, list[float]]  # per outcome
    qtypes: set[str]
    first: dict[str, float] = {}  # per outcome: when its first query was answered (or asked, for a timeout)


_BucketKey = tuple[str, str, int, str, str]  # client, server, server port, protocol, name


class Tally:
    """One interval's outcomes, grouped per client, server, protocol and name. Past `max_names`
    distinct groups, new names are counted under OTHER_NAMES for their client and server."""

    def __init__(self, *, max_names: int = 5_000) -> None:
        self.max_names = max_names
        self._buckets: dict[_BucketKey, _Bucket] = {}

    def __len__(self) -> int:
        return len(self._buckets)

    def clients(self) -> set[str]:
        return {key[0] for key in self._buckets}

    def add(self, outcome: Outcome) -> None:
        key = (outcome.client, outcome.server, outcome.server_port, outcome.protocol, outcome.name)
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_names:
                key = (*key[:4], OTHER_NAMES)
                bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(Counter(), {}, set(), {})
        bucket.outcomes[outcome.outcome] += 1
        known = outcome.at + (outcome.latency_ms or 0.0) / 1000
        bucket.first[outcome.outcome] = min(bucket.first.get(outcome.outcome, known), known)
        bucket.qtypes.add(outcome.qtype)
        if outcome.latency_ms is not None:
            bucket.latencies.setdefault(outcome.outcome, []).append(outcome.latency_ms)

    def events(self, *, node: str, at: datetime, interval: float,
               pod_of: Callable[[str], PodRef | None]) -> list[RawEvent]:
        """The interval's RawEvents (a DNSLatency sample per group, stamped `at`, the interval's end;
        an event per failed outcome of a group, stamped when its first query failed: the answer, or
        the query for a timeout, so that what the failure caused comes after it), then the tally is
        empty. `pod_of` names the pod behind a client IP (None: the event is about the node)."""
        out: list[RawEvent] = []
        stamp = at.isoformat()
        for (client, server, port, protocol, name), bucket in sorted(self._buckets.items()):
            pod = pod_of(client)
            about = {"kind": "Pod", "namespace": pod.namespace, "name": pod.name, "uid": pod.uid} if pod else None
            who = f"{pod.namespace}/{pod.name} ({client})" if pod else client
            queries = sum(bucket.outcomes.values())
            failures = sum(n for o, n in bucket.outcomes.items() if o in FAILURES)
            base = {"net.protocol": protocol, "net.src": client, "net.dst": server, "net.port": str(port),
                    "net.query": name, "net.qtype": ",".join(sorted(bucket.qtypes)),
                    "metric.dns.queries": str(queries), "metric.dns.failures": str(failures)}
            answered = [ms for o, values in bucket.latencies.items() for ms in values]
            sample = {**base, **_latency_facts(answered)}
            out.append(node_event(
                "dns", node=node, at=at, reason="DNSLatency", intent="dns-latency", category="network",
                severity="info", about=about, facts=sample,
                message=f"{who} -> {server}:{port} {name}: {queries} quer{'y' if queries == 1 else 'ies'} in "
                        f"{interval:g} s, {failures} failed" + _latency_text(answered),
                key=f"{stamp}|DNSLatency|{client}|{server}|{port}|{protocol}|{name}"))
            for outcome, count in sorted(bucket.outcomes.items()):
                if outcome not in FAILURES:
                    continue
                reason, severity, what = FAILURES[outcome]
                latencies = bucket.latencies.get(outcome, [])
                facts = {**base, "net.outcome": outcome, "metric.dns.failures": str(count),
                         **_latency_facts(latencies)}
                if outcome != TIMEOUT:
                    facts["net.rcode"] = outcome
                failed_at = datetime.fromtimestamp(bucket.first[outcome], tz=UTC) if outcome in bucket.first else at
                out.append(node_event(
                    "dns", node=node, at=min(failed_at, at), reason=reason, intent="dns-failure", category="network",
                    severity=severity, about=about, facts=facts,
                    message=f"{who} -> {server}:{port} {name}: {what}, {count} of {queries} quer"
                            f"{'y' if queries == 1 else 'ies'} in {interval:g} s" + _latency_text(latencies),
                    key=f"{stamp}|{reason}|{client}|{server}|{port}|{protocol}|{name}"))
        self._buckets.clear()
        return out


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile of `values` (not empty): the smallest value with at least
    `fraction` of them at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def _latency_facts(latencies: list[float]) -> dict[str, str]:
    if not latencies:
        return {}
    return {"metric.dns.latency_p50_ms": f"{percentile(latencies, 0.50):.3f}",
            "metric.dns.latency_p99_ms": f"{percentile(latencies, 0.99):.3f}",
            "metric.dns.latency_max_ms": f"{max(latencies):.3f}"}


def _latency_text(latencies: list[float]) -> str:
    if not latencies:
        return ""
    return f" (p50 {percentile(latencies, 0.5):.1f} ms, p99 {percentile(latencies, 0.99):.1f} ms)"
