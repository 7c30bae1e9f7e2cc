"""The API server collector: how long the node's kube-apiserver takes to answer, per verb, from its own metrics.

Fed by: the kube-apiserver's Prometheus `/metrics` on the control-plane node (default
`https://127.0.0.1:6443/metrics`, read every `interval`), with a bearer token allowed `get` on the non-resource
URL `/metrics` (the agent's ServiceAccount, `docker/agent-daemonset.yaml`) and the cluster's CA. kubeadm's
serving certificate names `kubernetes` and the node's address, not 127.0.0.1: the certificate is checked
against `server_name` (default `kubernetes`). Feeds the agent (`collectors.node`), each interval's events in
one batch:
- `APIServerMetrics` (debug) whose `metric.apiserver.*` samples the `metric` condition reads: per verb
  `<verb>_p99_seconds` and `<verb>_requests` (GET, LIST, POST, PUT, PATCH, DELETE...; WATCH and CONNECT are
  long-running and left out, as the API server's own SLOs leave them out), `mutating_p99_seconds` (the write
  verbs together), `requests`, `etcd_request_p99_seconds` (the API server's own view of its etcd requests,
  `etcd_request_duration_seconds`), `inflight_mutating`, `inflight_read_only`: the 99th percentile of the
  interval, from the histograms' bucket deltas (`collectors.histograms`);
- `APIServerSlow` (intent `api-latency`) when a verb's p99 crosses its threshold over at least `min_requests`
  requests of the interval: single-object reads and writes 1 s, LIST 5 s (the Kubernetes API call latency
  SLO: mutating and resource-scoped read calls under 1 s at the 99th percentile, namespace-scoped LISTs 5 s).

Pure: `parse_metrics`, `assess` (two readings -> samples and the finding). `APIServerCollector` is the thin
shell: it reads the page in a thread, about the node it runs on.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import logging
import ssl
import urllib.parse
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

import msgspec
from prometheus_client.parser import text_string_to_metric_families

from collectors.histograms import Histogram, Row, histogram, observed_between, p99_between
from collectors.node import Emit, SourceUnavailable, node_event
from core.events import RawEvent

log = logging.getLogger(__name__)

NAME = "apiserver"
REQUESTS = "apiserver_request_duration_seconds"
ETCD = "etcd_request_duration_seconds"
INFLIGHT = "apiserver_current_inflight_requests"
STARTED = "process_start_time_seconds"
LONG_RUNNING = frozenset({"WATCH", "WATCHLIST", "CONNECT"})
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE", "DELETECOLLECTION", "APPLY"})
SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class APIReading(msgspec.Struct, frozen=True, kw_only=True):
    """What one read of the API server's /metrics says: request durations per verb (every resource summed),
    its etcd requests' durations, what it is serving now."""

    verbs: dict[str, Histogram] = {}
    etcd: Histogram = Histogram()
    inflight: dict[str, float] = {}  # request_kind (mutating, readOnly) -> requests being served
    started_at: float = 0.0  # process_start_time_seconds: another value means it restarted (histograms reset)


class Thresholds(msgspec.Struct, frozen=True, kw_only=True):
    """When an interval's p99 becomes APIServerSlow (the API call latency SLO by default)."""

    p99_seconds: float = 1.0  # GET and the mutating verbs
    list_p99_seconds: float = 5.0  # LIST
    min_requests: int = 5  # fewer requests in the interval: their p99 is one request's time

    def of(self, verb: str) -> float:
        return self.list_p99_seconds if verb == "LIST" else self.p99_seconds


DEFAULTS = Thresholds()


class Finding(msgspec.Struct, frozen=True, kw_only=True):
    reason: str
    message: str
    intent: str
    category: str
    severity: str
    verbs: tuple[str, ...]  # the slow verbs, slowest first


class Assessment(msgspec.Struct, frozen=True, kw_only=True):
    samples: dict[str, float]
    findings: list[Finding]


_WANTED = (REQUESTS, ETCD, INFLIGHT, STARTED)


def _wanted(line: str) -> bool:
    if line.startswith("#"):
        parts = line.split(maxsplit=3)
        return len(parts) > 2 and parts[2] in _WANTED
    return line.startswith(_WANTED)


def _of_verb(verb: str) -> Callable[[Mapping[str, str]], bool]:
    return lambda labels: labels.get("verb") == verb


def parse_metrics(text: str) -> APIReading:
    """The API server's /metrics (Prometheus text format) read into an APIReading; only the families it keeps
    are parsed (the page holds thousands of others). Raises ValueError for text that is not the format."""
    kept = "\n".join(line for line in text.splitlines() if _wanted(line))
    rows: list[Row] = []
    for family in text_string_to_metric_families(kept + "\n" if kept else ""):
        rows.extend((s.name, s.labels, s.value) for s in family.samples)
    verbs = sorted({labels.get("verb", "") for name, labels, _ in rows if name == f"{REQUESTS}_count"} - {""})
    return APIReading(
        verbs={verb: histogram(rows, REQUESTS, _of_verb(verb)) for verb in verbs if verb not in LONG_RUNNING},
        etcd=histogram(rows, ETCD),
        inflight={labels.get("request_kind", ""): value for name, labels, value in rows if name == INFLIGHT},
        started_at=next((value for name, _, value in rows if name == STARTED), 0.0))


def _merged(histograms: list[Histogram]) -> Histogram:
    """Histograms of the same bounds summed bucket by bucket (several verbs as one)."""
    buckets: dict[float, float] = {}
    for h in histograms:
        for le, count in h.buckets:
            buckets[le] = buckets.get(le, 0.0) + count
    return Histogram(tuple(sorted(buckets.items())), sum(h.count for h in histograms), sum(h.sum for h in histograms))


def _seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def assess(before: APIReading | None, after: APIReading, thresholds: Thresholds = DEFAULTS) -> Assessment:
    """The samples of an interval (the first reading alone: what is in flight only) and the finding when a
    verb's p99 crossed its threshold."""
    samples = {f"inflight_{'read_only' if kind == 'readOnly' else kind.lower()}": value
               for kind, value in after.inflight.items() if kind}
    if before is None:
        return Assessment(samples=samples, findings=[])
    if before.started_at != after.started_at:
        before = APIReading()  # restarted: every histogram starts over
    slow: list[tuple[float, str, float]] = []  # (p99, verb, requests)
    total = 0.0
    for verb, now in sorted(after.verbs.items()):
        then = before.verbs.get(verb, Histogram())
        requests = observed_between(then, now)
        p99 = p99_between(then, now)
        if p99 is None or requests <= 0:
            continue
        total += requests
        samples[f"{verb.lower()}_p99_seconds"] = round(p99, 6)
        samples[f"{verb.lower()}_requests"] = requests
        if p99 > thresholds.of(verb) and requests >= thresholds.min_requests:
            slow.append((p99, verb, requests))
    samples["requests"] = total
    writes = [v for v in after.verbs if v in MUTATING]
    mutating = p99_between(_merged([before.verbs.get(v, Histogram()) for v in writes]),
                           _merged([after.verbs[v] for v in writes])) if writes else None
    if mutating is not None:
        samples["mutating_p99_seconds"] = round(mutating, 6)
    etcd = p99_between(before.etcd, after.etcd)
    if etcd is not None:
        samples["etcd_request_p99_seconds"] = round(etcd, 6)
    findings = []
    if slow:
        slow.sort(reverse=True)
        said = ", ".join(f"{verb} p99 {_seconds(p99)} ({requests:g} requests, over {_seconds(thresholds.of(verb))})"
                         for p99, verb, requests in slow)
        behind = f"; its etcd requests p99 {_seconds(etcd)}" if etcd is not None else ""
        findings.append(Finding(reason="APIServerSlow", message=f"API server requests slow over the interval: "
                                f"{said}{behind}", intent="api-latency", category="infrastructure",
                                severity="warning", verbs=tuple(verb for _, verb, _ in slow)))
    return Assessment(samples=samples, findings=findings)


def _metric_facts(samples: Mapping[str, float]) -> dict[str, str]:
    return {f"metric.apiserver.{k}": f"{v:g}" if not float(v).is_integer() else str(int(v))
            for k, v in samples.items()}


def metrics_event(samples: Mapping[str, float], *, node: str, url: str, at: datetime) -> RawEvent:
    shown = ", ".join(f"{k}={v:g}" for k, v in sorted(samples.items())
                      if k in ("requests", "mutating_p99_seconds", "get_p99_seconds", "list_p99_seconds",
                               "etcd_request_p99_seconds"))
    return node_event(NAME, node=node, at=at, reason="APIServerMetrics", message=f"API server {url}: {shown}",
                      intent="observed", category="state", severity="debug",
                      facts={**_metric_facts(samples), "apiserver.url": url})


def finding_event(finding: Finding, samples: Mapping[str, float], *, node: str, url: str, at: datetime) -> RawEvent:
    return node_event(NAME, node=node, at=at, reason=finding.reason, message=finding.message, intent=finding.intent,
                      category=finding.category, severity=finding.severity,
                      facts={**_metric_facts(samples), "apiserver.url": url,
                             "apiserver.verbs": ",".join(finding.verbs)})


class _NamedConnection(http.client.HTTPSConnection):
    """HTTPS to an address whose certificate is checked against another name (127.0.0.1, `kubernetes`)."""

    def __init__(self, host: str, port: int | None, *, server_name: str, tls: ssl.SSLContext, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=tls)
        self._server_name, self._tls = server_name, tls

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)
        self.sock = self._tls.wrap_socket(self.sock, server_hostname=self._server_name)


class APIServerCollector:
    """The kube-apiserver of this node: `url` its /metrics, `token_file` a bearer token allowed to read it,
    `ca_file` the CA of its serving certificate, checked against `server_name`."""

    name = NAME

    def __init__(self, *, node: str, url: str = "https://127.0.0.1:6443/metrics",
                 token_file: str | Path = SERVICE_ACCOUNT / "token", ca_file: str | Path = SERVICE_ACCOUNT / "ca.crt",
                 server_name: str = "kubernetes", interval: float = 15.0, thresholds: Thresholds = DEFAULTS,
                 timeout: float = 10.0) -> None:
        self.node, self.url, self.server_name = node, url, server_name
        self.token_file, self.ca_file = Path(token_file), Path(ca_file)
        self.interval, self.thresholds, self.timeout = interval, thresholds, timeout
        self.readings = 0  # /metrics reads that parsed
        self._failed = 0

    def check(self) -> None:
        try:
            self._read()
        except (OSError, ValueError, http.client.HTTPException) as e:
            raise SourceUnavailable(
                f"the API server's metrics at {self.url} cannot be read ({e}): run the agent on a control-plane "
                f"node, with a token ({self.token_file}) allowed `get` on the non-resource URL /metrics and the "
                f"CA ({self.ca_file}) of its serving certificate") from None

    def lost(self) -> int:
        return self._failed

    def _read(self) -> APIReading:
        parts = urllib.parse.urlsplit(self.url)
        headers = {"Authorization": f"Bearer {self.token_file.read_text().strip()}"}
        if parts.scheme == "https":
            tls = ssl.create_default_context(cafile=str(self.ca_file))
            connection: http.client.HTTPConnection = _NamedConnection(
                parts.hostname or "127.0.0.1", parts.port, server_name=self.server_name, tls=tls, timeout=self.timeout)
        else:
            connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=self.timeout)
        try:
            connection.request("GET", parts.path or "/metrics", headers=headers)
            answer = connection.getresponse()
            body = answer.read()
            if answer.status != 200:
                raise ValueError(f"HTTP {answer.status}: {body[:200].decode(errors='replace')}")
            return parse_metrics(body.decode())
        finally:
            connection.close()

    async def run(self, emit: Emit, stop: asyncio.Event) -> None:
        before: APIReading | None = None
        failing = False
        while not stop.is_set():
            try:
                reading: APIReading | None = await asyncio.to_thread(self._read)
            except (OSError, ValueError, http.client.HTTPException) as e:
                self._failed += 1
                if not failing:
                    log.warning("apiserver: %s cannot be read (%s); trying again every %.0f s: check that the API "
                                "server runs and the token may read /metrics", self.url, e, self.interval)
                failing, reading = True, None
            if reading is not None:
                failing = False
                self.readings += 1
                now = datetime.now(UTC)
                result = assess(before, reading, self.thresholds)
                await emit([metrics_event(result.samples, node=self.node, url=self.url, at=now),
                            *(finding_event(f, result.samples, node=self.node, url=self.url, at=now)
                              for f in result.findings)])
                before = reading
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.interval)
