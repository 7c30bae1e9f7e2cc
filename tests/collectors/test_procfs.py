"""The procfs collector (collectors.procfs): PSI and vmstat parsed as the kernel writes them, samples and
OOM-kill events from two readings (pure), and the collector on this machine's real /proc, including a
real memcg OOM kill it must report."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from waiting import until

from agents.enrich import enrich_event
from agents.normalize import normalize_event
from collectors.node import SourceUnavailable
from collectors.procfs import (
    ProcfsCollector,
    ProcfsFormatError,
    PsiLine,
    Reading,
    events_of,
    parse_psi,
    parse_vmstat,
    stalled_percent,
)
from core.events import RawEvent

AT = datetime(2026, 12, 5, 3, 0, tzinfo=UTC)
CPU = "some avg10=4.63 avg60=10.53 avg300=14.19 total=14465173272\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"


def test_psi_and_vmstat_read_as_the_kernel_writes_them() -> None:
    assert parse_psi(CPU) == [PsiLine(kind="some", avg10=4.63, avg60=10.53, avg300=14.19, total_us=14465173272),
                              PsiLine(kind="full", avg10=0.0, avg60=0.0, avg300=0.0, total_us=0)]
    with pytest.raises(ProcfsFormatError, match="not a PSI line: 'some avg10=x'"):
        parse_psi("some avg10=x")
    assert parse_vmstat("nr_free_pages 123\noom_kill 105\nweird\n") == {"nr_free_pages": 123, "oom_kill": 105}


def test_the_interval_share_comes_from_the_stall_counter() -> None:
    assert stalled_percent(1_000_000, 1_500_000, 2.0) == 25.0
    assert stalled_percent(5, 4, 1.0) == 0.0 and stalled_percent(0, 10, 0.0) == 0.0
    assert stalled_percent(0, 9_000_000, 1.0) == 100.0


def _reading(total_us: int, oom_kills: int, at_s: float) -> Reading:
    line = PsiLine(kind="some", avg10=12.5, avg60=3.0, avg300=1.0, total_us=total_us)
    return Reading(psi={"memory": [line]}, oom_kills=oom_kills, monotonic_s=at_s)


def test_a_rise_of_the_oom_counter_is_one_event_about_the_node_and_the_first_reading_is_the_baseline() -> None:
    first = _reading(1_000_000, 105, 100.0)
    [sample] = events_of(None, first, node="n1", at=AT, interval_s=10)
    assert "metric.node.oom_kills" not in sample.metadata and sample.metadata["metric.node.oom_kills_total"] == "105"
    second = _reading(3_000_000, 107, 110.0)
    sample, oom = events_of(first, second, node="n1", at=AT, interval_s=10)
    assert sample.metadata["metric.psi.memory.some_percent"] == "20.000"
    assert sample.metadata["metric.psi.memory.some_avg10"] == "12.5" and sample.metadata["reason"] == "NodePressure"
    assert {k: oom.metadata[k] for k in ("kind", "name", "reason", "intent", "severity", "metric.node.oom_kills")} == {
        "kind": "Node", "name": "n1", "reason": "OOMKillsOnNode", "intent": "oom-kill", "severity": "warning",
        "metric.node.oom_kills": "2"}
    assert oom.metadata["message"] == "the kernel OOM killer killed 2 processes on n1 in the last 10s (107 since boot)"
    assert oom.id == events_of(first, second, node="n1", at=datetime.now(UTC), interval_s=10)[1].id
    assert len(events_of(second, _reading(3_000_000, 107, 120.0), node="n1", at=AT, interval_s=10)) == 1


def test_a_proc_without_psi_or_vmstat_is_unavailable_with_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(SourceUnavailable, match="boot the kernel with psi=1"):
        ProcfsCollector(node="n1", proc=str(tmp_path)).check()


def _proc_has_psi() -> bool:
    try:
        ProcfsCollector(node="probe").check()
        return Path("/proc/pressure/memory").read_text() != ""
    except (SourceUnavailable, OSError):
        return False


needs_psi = pytest.mark.skipif(not _proc_has_psi(), reason="this kernel has no /proc/pressure (PSI off)")


async def _collect(collector: ProcfsCollector, until_seen, *, timeout: float) -> list[RawEvent]:
    stop, seen = asyncio.Event(), []

    async def emit(batch: list[RawEvent]) -> None:
        seen.extend(batch)

    task = asyncio.create_task(collector.run(emit, stop))
    try:
        await until(lambda: until_seen(seen), timeout=timeout, what="the procfs collector's events")
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    return seen


@needs_psi
async def test_on_this_machine_it_samples_the_node_pressure_every_interval() -> None:
    collector = ProcfsCollector(node="node-psi", interval_s=0.05)
    collector.check()
    seen = await _collect(collector, lambda s: len(s) >= 3, timeout=30)
    # the newest sample: an OOM kill elsewhere on the machine (the suite's own) adds an OOMKillsOnNode event
    latest = [e for e in seen if e.metadata["reason"] == "NodePressure"][-1].metadata
    for resource in ("cpu", "memory", "io"):
        assert float(latest[f"metric.psi.{resource}.some_avg10"]) >= 0
        assert 0 <= float(latest[f"metric.psi.{resource}.some_percent"]) <= 100
    assert int(latest["metric.node.oom_kills_total"]) >= 0 and latest["node"] == "node-psi"
    assert collector.lost() == 0


def _memcg_v1() -> Path | None:
    root = Path("/sys/fs/cgroup/memory")
    return root if os.geteuid() == 0 and (root / "cgroup.procs").exists() and os.access(root, os.W_OK) else None


@pytest.mark.skipif(_memcg_v1() is None, reason="a memcg OOM kill needs root and a writable cgroup-v1 memory hierarchy")
async def test_a_real_memcg_oom_kill_is_reported_as_oom_kills_on_node(tmp_path: Path) -> None:
    cgroup = _memcg_v1() / f"tapio-procfs-test-{uuid.uuid4().hex[:8]}"
    cgroup.mkdir()
    child = None
    try:
        (cgroup / "memory.limit_in_bytes").write_text(str(32 << 20))
        if (cgroup / "memory.memsw.limit_in_bytes").exists():  # no escape into swap
            (cgroup / "memory.memsw.limit_in_bytes").write_text(str(32 << 20))
        collector = ProcfsCollector(node="node-oom", interval_s=0.05)
        collector.check()
        stop, seen = asyncio.Event(), []

        async def emit(batch: list[RawEvent]) -> None:
            seen.extend(batch)

        task = asyncio.create_task(collector.run(emit, stop))
        try:
            await until(lambda: seen, timeout=30, what="the baseline reading")
            # a child that joins the cgroup and then touches 256 MiB: the kernel kills it at 32 MiB
            child = await asyncio.create_subprocess_exec(
                sys.executable, "-c", f"import os; open({str(cgroup / 'cgroup.procs')!r}, 'w')"
                                      f".write(str(os.getpid())); b = b'x' * (256 << 20)")
            assert await asyncio.wait_for(child.wait(), 60) == -9
            oom = await until(lambda: [e for e in seen if e.metadata["reason"] == "OOMKillsOnNode"], timeout=30,
                              what="an OOMKillsOnNode event after the memcg OOM kill")
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
        assert int(oom[0].metadata["metric.node.oom_kills"]) >= 1  # other processes on this host may add theirs
        assert oom[0].metadata["kind"] == "Node" and oom[0].metadata["name"] == "node-oom"
    finally:
        if child is not None and child.returncode is None:
            child.kill()
            await child.wait()
        cgroup.rmdir()  # empty: its only process was reaped above


def test_a_sample_reads_as_a_node_event_with_the_metrics_the_metric_condition_reads() -> None:
    first, second = _reading(1_000_000, 105, 100.0), _reading(3_000_000, 106, 110.0)
    sample, oom = (normalize_event(enrich_event(raw)) for raw in events_of(first, second, node="n1", at=AT,
                                                                              interval_s=10))
    assert (sample.k8s.kind, sample.k8s.name, sample.semantic.severity) == ("Node", "n1", "debug")
    assert sample.metrics["psi.memory.some_avg10"] == 12.5 and sample.metrics["psi.memory.some_percent"] == 20.0
    assert sample.metrics["node.oom_kills"] == 1.0
    assert (oom.semantic.intent, oom.k8s.kind, oom.k8s.node) == ("oom-kill", "Node", "n1")
