"""The procfs collector: the node's pressure stall information and kernel OOM kills, sampled from /proc.

Fed by: `/proc/pressure/{cpu,memory,io}` (PSI: the share of time tasks waited on a resource; the kernel
keeps it whatever the cgroup version) and the `oom_kill` counter of `/proc/vmstat` (every kill the OOM
killer made since boot, memcg or global). Both are system-wide, read the same from a container with the
host's PID namespace or without. Feeds: `tapio agent` (`app.agent`), which publishes its batches.

Every `interval_s` it emits one `NodePressure` sample about the Node: `metric.psi.<resource>.<some|full>_avg10`
and `_avg60` as the kernel gives them, and `metric.psi.<resource>.<some|full>_percent`, the share of the
interval itself measured from the kernel's stall counters (exact, where avg10 is a decaying average);
`metric.node.oom_kills` (kills during the interval) and `metric.node.oom_kills_total`. When `oom_kill`
went up it also emits `OOMKillsOnNode` (intent oom-kill, warning): the kernel collector names the pod,
this one says that it happened, on a node where eBPF is not there. The first reading is the baseline:
kills before the agent started are not reported. Pure parsing and arithmetic in functions; `run` is the
I/O shell.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from collectors.node import Emit, SourceUnavailable, node_event
from core.events import RawEvent

log = logging.getLogger(__name__)

RESOURCES = ("cpu", "memory", "io")
SOURCE = "procfs"


class PsiLine(msgspec.Struct, frozen=True, kw_only=True):
    """One line of a /proc/pressure file: `some` or `full`, averages in percent, total stall in microseconds."""

    kind: str
    avg10: float
    avg60: float
    avg300: float
    total_us: int


class Reading(msgspec.Struct, frozen=True, kw_only=True):
    """What one look at /proc saw: PSI per resource (those the kernel has), the oom_kill counter, when."""

    psi: dict[str, list[PsiLine]]
    oom_kills: int | None
    monotonic_s: float


class ProcfsFormatError(ValueError):
    """A /proc file did not read as the kernel documents it (Documentation/accounting/psi.rst, vmstat)."""


def parse_psi(text: str) -> list[PsiLine]:
    """`some avg10=4.63 avg60=10.53 avg300=14.19 total=14465173272` lines, as the kernel writes them."""
    lines = []
    for raw in text.splitlines():
        if not raw.strip():
            continue
        kind, _, rest = raw.partition(" ")
        try:
            fields = dict(part.split("=", 1) for part in rest.split())
            lines.append(PsiLine(kind=kind, avg10=float(fields["avg10"]), avg60=float(fields["avg60"]),
                                 avg300=float(fields["avg300"]), total_us=int(fields["total"])))
        except (KeyError, ValueError) as e:
            raise ProcfsFormatError(f"not a PSI line: {raw!r} ({e!r})") from e
    return lines


def parse_vmstat(text: str) -> dict[str, int]:
    """`/proc/vmstat`: one `name value` counter a line."""
    counters = {}
    for raw in text.splitlines():
        name, _, value = raw.partition(" ")
        if value.strip().isdigit():
            counters[name] = int(value)
    return counters


def stalled_percent(before_us: int, after_us: int, elapsed_s: float) -> float:
    """The share of `elapsed_s` the stall counter grew by, in percent (0 when no time passed or the counter
    went back, as after a wrap), at most 100."""
    if elapsed_s <= 0 or after_us < before_us:
        return 0.0
    return min(100.0, (after_us - before_us) / (elapsed_s * 1e6) * 100.0)


def samples(previous: Reading | None, current: Reading) -> dict[str, str]:
    """The `metric.*` facts of a NodePressure event: PSI averages, the interval's own stall share and OOM
    kills (both from the previous reading; without one, only what a single reading says)."""
    facts: dict[str, str] = {}
    elapsed = current.monotonic_s - previous.monotonic_s if previous else 0.0
    for resource, lines in sorted(current.psi.items()):
        before = {line.kind: line for line in previous.psi.get(resource, [])} if previous else {}
        for line in lines:
            prefix = f"metric.psi.{resource}.{line.kind}"
            facts[f"{prefix}_avg10"] = f"{line.avg10:g}"
            facts[f"{prefix}_avg60"] = f"{line.avg60:g}"
            if line.kind in before:
                share = stalled_percent(before[line.kind].total_us, line.total_us, elapsed)
                facts[f"{prefix}_percent"] = f"{share:.3f}"
    if current.oom_kills is not None:
        facts["metric.node.oom_kills_total"] = str(current.oom_kills)
        if previous is not None and previous.oom_kills is not None:
            facts["metric.node.oom_kills"] = str(max(0, current.oom_kills - previous.oom_kills))
    return facts


def events_of(previous: Reading | None, current: Reading, *, node: str, at: datetime,
              interval_s: float) -> list[RawEvent]:
    """The NodePressure sample of `current`, and OOMKillsOnNode when the kernel's kill counter went up."""
    facts = samples(previous, current)
    if not facts:
        return []
    out = [node_event(SOURCE, node=node, at=at, reason="NodePressure",
                      message=_pressure_message(current), intent="resource-usage", category="resources",
                      severity="debug", facts=facts)]
    killed = int(facts.get("metric.node.oom_kills", "0"))
    if killed:
        out.append(node_event(
            SOURCE, node=node, at=at, reason="OOMKillsOnNode", intent="oom-kill", category="resources",
            severity="warning",
            message=f"the kernel OOM killer killed {killed} process{'es' if killed > 1 else ''} on {node} "
                    f"in the last {interval_s:g}s ({current.oom_kills} since boot)",
            facts={"metric.node.oom_kills": str(killed), "metric.node.oom_kills_total": str(current.oom_kills)},
            key=f"oom_kill|{current.oom_kills}"))  # the counter value: one event per rise, whoever reads it
    return out


def _pressure_message(reading: Reading) -> str:
    parts = []
    for resource in RESOURCES:
        lines = {line.kind: line for line in reading.psi.get(resource, [])}
        if "some" in lines:
            parts.append(f"{resource} some {lines['some'].avg10:g}%")
        if "full" in lines and resource != "cpu":
            parts.append(f"{resource} full {lines['full'].avg10:g}%")
    return "pressure (avg10): " + ", ".join(parts) if parts else "no pressure information (PSI off)"


class ProcfsCollector:
    """PSI and OOM-kill samples of the node, every `interval_s` (10 s: PSI's own shortest average)."""

    name = SOURCE

    def __init__(self, *, node: str, interval_s: float = 10.0, proc: str = "/proc") -> None:
        self.node = node
        self.interval_s = float(interval_s)
        self.proc = Path(proc)
        self._lost = 0
        self._resources: tuple[str, ...] = ()

    def _read_psi(self, resource: str) -> list[PsiLine]:
        return parse_psi((self.proc / "pressure" / resource).read_text())

    def check(self) -> None:
        available = []
        for resource in RESOURCES:
            try:
                self._read_psi(resource)
            except (OSError, ProcfsFormatError) as e:
                log.info("procfs: no PSI for %s here (%s); boot the kernel with psi=1 to have it", resource, e)
            else:
                available.append(resource)
        self._resources = tuple(available)
        try:
            has_oom = "oom_kill" in parse_vmstat((self.proc / "vmstat").read_text())
        except OSError:
            has_oom = False
        if not available and not has_oom:
            raise SourceUnavailable(f"neither {self.proc}/pressure/* (PSI: boot the kernel with psi=1, "
                                    f"CONFIG_PSI) nor oom_kill in {self.proc}/vmstat (Linux 4.13+) can be read")

    def read(self) -> Reading:
        psi = {}
        for resource in self._resources or RESOURCES:
            try:
                psi[resource] = self._read_psi(resource)
            except (OSError, ProcfsFormatError) as e:
                self._lost += 1
                log.debug("procfs: %s pressure unreadable: %s", resource, e)
        try:
            oom_kills = parse_vmstat((self.proc / "vmstat").read_text()).get("oom_kill")
        except OSError:
            self._lost += 1
            oom_kills = None
        return Reading(psi=psi, oom_kills=oom_kills, monotonic_s=time.monotonic())

    async def run(self, emit: Emit, stop: asyncio.Event) -> None:
        previous: Reading | None = None
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            started = loop.time()
            current = self.read()  # a few small /proc files: no blocking worth a thread
            batch = events_of(previous, current, node=self.node, at=datetime.now(UTC), interval_s=self.interval_s)
            if batch:
                await emit(batch)
            previous = current
            try:
                await asyncio.wait_for(stop.wait(), max(0.0, self.interval_s - (loop.time() - started)))
            except TimeoutError:
                pass

    def lost(self) -> int:
        return self._lost

