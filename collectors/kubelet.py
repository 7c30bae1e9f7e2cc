"""The kubelet collector: polls the node's kubelet for memory and CPU against limits, eviction signals and
pressure, and emits them as metric samples and the findings that cross a line.

Fed by: the kubelet's HTTP endpoints, by default its read-only port (`http://127.0.0.1:10255`; the
authenticated port 10250 with `token_file` and `ca_file`): `/stats/summary` and `/pods` every `interval`,
`/metrics/cadvisor` (CFS throttling) and `/metrics` (PLEG relist age) when switched on; the node's
`/proc/pressure/*` (PSI, `proc_root` for a host mount). Feeds: the agent's `emit` (RawEvents of type
`kubelet`, `collectors.node` contract): per container a `MetricSample` event about its Pod (severity debug),
per node one about the Node, and the findings of `collectors.kubeletstats.Judge` (`MemoryNearLimit`,
`NodeMemoryPressure`, ...), each poll's events in one batch.

A poll that fails (kubelet restarting, a timeout) is counted in `lost()` and logged once per run of
failures; the next poll goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import msgspec

from collectors.kubeletstats import (
    CFSPeriods,
    Finding,
    Judge,
    Sample,
    Thresholds,
    cfs_periods,
    container_samples,
    decode_pods,
    decode_summary,
    limits_by_container,
    node_samples,
    pleg_seconds_since_relist,
    psi_avg10,
    throttled_percent,
)
from collectors.node import Emit, SourceUnavailable, node_event
from core.events import RawEvent

log = logging.getLogger(__name__)

NAME = "kubelet"
PSI_RESOURCES = ("cpu", "memory", "io")


class KubeletUnreachable(RuntimeError):
    """A kubelet endpoint did not answer with 200."""


class KubeletCollector:
    """Polls one kubelet (`url`) every `interval` seconds."""

    name = NAME

    def __init__(self, node: str, *, url: str = "http://127.0.0.1:10255", interval: float = 10.0,
                 token_file: Path | None = None, ca_file: Path | None = None, cadvisor: bool = True,
                 kubelet_metrics: bool = True, proc_root: Path = Path("/proc"), thresholds: Thresholds | None = None,
                 timeout: float = 10.0) -> None:
        self.node = node
        self.url = url.rstrip("/")
        self.interval = interval
        self.token_file = token_file
        self.ca_file = ca_file
        self.cadvisor = cadvisor
        self.kubelet_metrics = kubelet_metrics
        self.proc_root = proc_root
        self.judge = Judge(thresholds)
        self.timeout = timeout
        self.polls = 0
        self.failed_polls = 0
        self._cfs: dict[str, CFSPeriods] = {}

    # -- contract --------------------------------------------------------------------------------------
    def check(self) -> None:
        request = urllib.request.Request(f"{self.url}/healthz", headers=self._headers())
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=self._ssl()) as answer:
                answer.read()
        except (urllib.error.URLError, OSError, ssl.SSLError) as e:
            raise SourceUnavailable(
                f"the kubelet at {self.url} does not answer /healthz ({e}): enable its read-only port "
                "(readOnlyPort: 10255) or point the collector at https://<node>:10250 with a service account "
                "token allowed nodes/stats and nodes/proxy") from e

    def lost(self) -> int:
        return self.failed_polls

    async def run(self, emit: Emit, stop: asyncio.Event) -> None:
        failing = False
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with aiohttp.ClientSession(timeout=timeout, headers=self._headers(),
                                         connector=aiohttp.TCPConnector(ssl=self._ssl() or True)) as session:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    events = await self.poll(session)
                except (aiohttp.ClientError, TimeoutError, KubeletUnreachable, msgspec.DecodeError,
                        msgspec.ValidationError, ValueError) as e:
                    self.failed_polls += 1
                    if not failing:
                        log.warning("kubelet: polling %s failed (%s); retrying every %.0f s. If it goes on, check "
                                    "the kubelet runs and its port and token", self.url, e, self.interval)
                    failing = True
                else:
                    if failing:
                        log.info("kubelet: %s answers again", self.url)
                    failing = False
                    if events:
                        await emit(events)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), max(0.0, self.interval - (time.monotonic() - started)))

    # -- one poll --------------------------------------------------------------------------------------
    async def poll(self, session: aiohttp.ClientSession) -> list[RawEvent]:
        """One round: the samples and findings of the kubelet's current stats, as events."""
        summary = decode_summary(await self._get(session, "/stats/summary"))
        limits = limits_by_container(decode_pods(await self._get(session, "/pods")))
        throttled: dict[str, float] = {}
        if self.cadvisor:
            now = cfs_periods((await self._get(session, "/metrics/cadvisor")).decode())
            for cid, periods in now.items():
                if (percent := throttled_percent(self._cfs.get(cid), periods)) is not None:
                    throttled[cid] = percent
            self._cfs = now
        pleg = None
        if self.kubelet_metrics:
            pleg = pleg_seconds_since_relist((await self._get(session, "/metrics")).decode(), time.time())
        containers = container_samples(summary, limits, throttled)
        node = node_samples(summary, self._psi(), pleg)
        self.polls += 1
        at = datetime.now(UTC)
        events = [self._sample_event(s, at) for s in (*containers, node) if s.values]
        events += [self._finding_event(f, at) for f in self.judge.findings(containers, node)]
        return events

    async def _get(self, session: aiohttp.ClientSession, path: str) -> bytes:
        async with session.get(f"{self.url}{path}") as answer:
            if answer.status != 200:
                raise KubeletUnreachable(f"GET {path}: HTTP {answer.status}")
            return await answer.read()

    def _psi(self) -> dict[str, dict[str, float]]:
        out = {}
        for resource in PSI_RESOURCES:
            with contextlib.suppress(OSError, ValueError):
                out[resource] = psi_avg10((self.proc_root / "pressure" / resource).read_text())
        return out

    def _headers(self) -> dict[str, str]:
        if self.token_file is None:
            return {}
        return {"Authorization": f"Bearer {self.token_file.read_text().strip()}"}

    def _ssl(self) -> ssl.SSLContext | None:
        if not self.url.startswith("https:"):
            return None
        return ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)

    # -- events ----------------------------------------------------------------------------------------
    def _about(self, item: Sample | Finding) -> dict[str, str]:
        if item.pod is None:
            return {}
        return {"kind": "Pod", "namespace": item.pod.namespace, "name": item.pod.name, "uid": item.pod.uid}

    def _facts(self, item: Sample | Finding) -> dict[str, str]:
        facts = {f"metric.{name}": _number(value) for name, value in item.values.items()}
        if item.container:
            facts["container"] = item.container
        if item.container_id:
            facts["container_id"] = item.container_id
        return facts

    def _sample_event(self, sample: Sample, at: datetime) -> RawEvent:
        what = f"container {sample.container}" if sample.container else "node"
        shown = ", ".join(f"{k}={_number(v)}" for k, v in sample.values.items() if "percent" in k or "psi" in k)
        return node_event(NAME, node=self.node, at=at, reason="MetricSample", message=f"{what}: {shown}".rstrip(": "),
                          intent="metric-sample", category="resources", severity="debug",
                          about=self._about(sample), facts=self._facts(sample),
                          key=f"sample|{at.isoformat()}|{sample.pod and sample.pod.uid}|{sample.container}")

    def _finding_event(self, finding: Finding, at: datetime) -> RawEvent:
        return node_event(NAME, node=self.node, at=at, reason=finding.reason, message=finding.message,
                          intent=finding.intent, category=finding.category, severity=finding.severity,
                          about=self._about(finding), facts=self._facts(finding),
                          key="|".join((finding.reason, at.isoformat(), finding.pod.uid if finding.pod else "",
                                        finding.container)))


def _number(value: float) -> str:
    return f"{value:.0f}" if value == int(value) and abs(value) < 1e15 else f"{value:.4g}"
