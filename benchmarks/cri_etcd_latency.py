"""How soon the CRI and etcd collectors hand an event to the agent after their source made it.

    PYTHONPATH=tests/support .venv/bin/python benchmarks/cri_etcd_latency.py --containers 20 --puts 200

Starts a private containerd and a private etcd (`nodesources.cri`, `nodesources.etcd`, as the tests do: root
needed for containerd), runs the collectors with a 10 ms batch window, then
- CRI: `ctr run`s N containers that exit at once; for each ContainerStart and ContainerExit, the time from
  containerd's envelope timestamp (the exit: the kernel's exit time) to the emit;
- etcd: N puts under a watched prefix through etcd's JSON gateway; the time from the put's answer to the emit
  of its EtcdKeyCreated.
Prints p50/p99/max per kind and the collector's CPU time (this process: the collectors, the test clients).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "support"))

from collectors.cri import CriCollector  # noqa: E402
from collectors.etcd import EtcdCollector, WatchedPrefix  # noqa: E402
from core.events import RawEvent  # noqa: E402


def summary(name: str, values_ms: list[float]) -> str:
    if not values_ms:
        return f"{name}: none"
    ordered = sorted(values_ms)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (f"{name}: n={len(ordered)} p50={statistics.median(ordered):.1f} ms p99={p99:.1f} ms "
            f"max={ordered[-1]:.1f} ms")


async def cri(containers: int) -> list[str]:
    from nodesources.cri import PrivateContainerd, unavailable

    why = unavailable()
    if why:
        return [f"cri: skipped ({why})"]
    daemon = PrivateContainerd(Path(tempfile.mkdtemp(prefix="bcri", dir="/tmp")))
    latencies: dict[str, list[float]] = {"ContainerStart": [], "ContainerExit": []}
    all_seen = asyncio.Event()

    async def emit(batch: list[RawEvent]) -> None:
        now = datetime.now(UTC)
        for event in batch:
            if event.metadata["reason"] in latencies:
                latencies[event.metadata["reason"]].append((now - event.timestamp).total_seconds() * 1000)
        if len(latencies["ContainerExit"]) >= containers:
            all_seen.set()

    collector = CriCollector(node="bench", socket=str(daemon.socket), every=0.01)
    stop = asyncio.Event()
    task = asyncio.create_task(collector.run(emit, stop))
    try:
        await asyncio.wait_for(collector.connected.wait(), timeout=20)
        for n in range(containers):
            await asyncio.to_thread(daemon.run, f"b-{n}", "true")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_seen.wait(), timeout=30)
    finally:
        stop.set()
        await task
        problems = daemon.stop()
    return [summary(f"cri {reason}", values) for reason, values in latencies.items()] + (
        [f"cri cleanup: {problems}"] if problems else [])


async def etcd(puts: int) -> list[str]:
    from nodesources.etcd import PrivateEtcd, unavailable

    why = unavailable()
    if why:
        return [f"etcd: skipped ({why})"]
    server = PrivateEtcd(Path(tempfile.mkdtemp(prefix="tapio-etcd-")))
    answered: dict[str, float] = {}
    seen: dict[str, float] = {}
    all_seen = asyncio.Event()

    async def emit(batch: list[RawEvent]) -> None:
        now = time.monotonic()
        for event in batch:
            if event.metadata["reason"] == "EtcdKeyCreated":
                seen[event.metadata["etcd.revision"]] = now
        if len(seen) >= puts:
            all_seen.set()

    collector = EtcdCollector(node="bench", endpoint=server.endpoint, metrics_url=server.metrics_url, interval=60,
                              every=0.01, prefixes=(WatchedPrefix("/registry/configmaps/"),))
    stop = asyncio.Event()
    task = asyncio.create_task(collector.run(emit, stop))
    try:
        await asyncio.wait_for(collector.watching.wait(), timeout=20)
        for n in range(puts):
            revision = await asyncio.to_thread(server.put, f"/registry/configmaps/bench/c{n}", "x")
            answered[str(revision)] = time.monotonic()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_seen.wait(), timeout=30)
    finally:
        stop.set()
        await task
        server.stop()
    # negative when the watch event is emitted before the put's HTTP answer is read: reported as is
    return [summary("etcd put->event", [(seen[r] - t) * 1000 for r, t in answered.items() if r in seen])]


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--containers", type=int, default=20)
    parser.add_argument("--puts", type=int, default=200)
    args = parser.parse_args()
    cpu = os.times()
    lines = await cri(args.containers) + await etcd(args.puts)
    used = os.times()
    for line in lines:
        print(line)
    print(f"process CPU: {used.user - cpu.user + used.system - cpu.system:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
