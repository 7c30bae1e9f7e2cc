"""The kernel collector's cost at ~1,000 kernel events/s (issue 16 point 4: < 5 % of a core, < 100 MiB RSS).

Runs `KernelCollector` in a child process as the agent would (its asyncio loop, the perf-buffer
polling thread, the in-kernel filtering on, an `emit` that only counts), then drives the kernel from
this process: `--rate` short processes per second (`posix_spawn`; one in `--fail-every` exits 1 and is
forwarded, the others are only counted in the kernel) and `--connects` connects per second to a closed
loopback port (refused: counted per destination in the kernel). Each process is an exec and an exit
(two tracepoint hits, plus its signals and the shell's), each connect three (two state changes and
a reset). Prints the kernel's own counts over the window, the events the collector emitted, lost
samples, and the child's CPU (user + system over the window's wall time, % of one core), its RSS at
the end and its peak (the one compile at start, before `release_compiler_memory`).

    sudo PYTHONPATH=$PWD /work/main/.venv/bin/python benchmarks/kernel_agent.py [--seconds 20 --rate 500]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil


def collector_main() -> None:
    """The child: run the collector until stdin closes, then print what it emitted as JSON."""
    from collectors.kernel import KernelCollector
    from collectors.podresolve import PodResolver

    async def main() -> None:
        collector = KernelCollector("bench-node", resolver=PodResolver(None), interval=1.0, summary_every=5.0)
        collector.check()
        emitted: dict[str, int] = {}
        summaries: list[dict[str, str]] = []

        async def emit(batch: list) -> None:
            for event in batch:
                emitted[event.metadata["reason"]] = emitted.get(event.metadata["reason"], 0) + 1
                if event.metadata["reason"] == "ProcessActivity":
                    summaries.append(event.metadata)

        stop = asyncio.Event()
        task = asyncio.create_task(collector.run(emit, stop))
        await asyncio.to_thread(collector.loaded.wait)
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.read)
        programs = collector.program_stats()
        stop.set()
        await task
        print(json.dumps({"emitted": emitted, "lost": collector.lost(), "summaries": summaries,
                          "programs": programs}), flush=True)

    asyncio.run(main())


def closed_port() -> int:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


def drive(seconds: float, rate: int, connects: int, fail_every: int) -> dict[str, int]:
    """Spawn `rate` processes/s and `connects` refused connects/s for `seconds`, paced per 10 ms."""
    true, false = "/bin/true", "/bin/false"
    port = closed_port()
    spawned = failed = refused = 0
    children: list[int] = []
    start = time.monotonic()
    while (elapsed := time.monotonic() - start) < seconds:
        while spawned < rate * elapsed:
            spawned += 1
            path = false if fail_every and spawned % fail_every == 0 else true
            failed += path == false
            children.append(os.posix_spawn(path, [path], {}))
        while refused < connects * elapsed:
            refused += 1
            with socket.socket() as client:
                try:
                    client.connect(("127.0.0.1", port))
                except ConnectionRefusedError:
                    pass
        for pid in children:
            os.waitpid(pid, 0)
        children.clear()
        time.sleep(0.01)
    return {"spawned": spawned, "exits_nonzero": failed, "connects_refused": refused}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rate", type=int, default=400, help="short processes per second")
    parser.add_argument("--connects", type=int, default=100, help="refused connects per second")
    parser.add_argument("--fail-every", type=int, default=20, help="one process in N exits 1 (forwarded)")
    parser.add_argument("--collector", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.collector:
        collector_main()
        return 0
    if os.geteuid() != 0:
        print("kernel_agent: loading eBPF needs root", file=sys.stderr)
        return 1
    stats = Path("/proc/sys/kernel/bpf_stats_enabled")
    stats_were = stats.read_text().strip()
    stats.write_text("1")  # the programs' own run time (charged to the traced processes, not the collector)
    child = subprocess.Popen([sys.executable, __file__, "--collector"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, env=os.environ)
    assert child.stdout.readline().strip() == "ready", "the collector did not start"
    process = psutil.Process(child.pid)
    cpu_before, wall_before = process.cpu_times(), time.monotonic()
    driven = drive(args.seconds, args.rate, args.connects, args.fail_every)
    time.sleep(1.5)  # the last interval's drain
    cpu_after, wall = process.cpu_times(), time.monotonic() - wall_before
    rss_mib = process.memory_info().rss / 2**20
    peak_mib = next(int(line.split()[1]) for line in open(f"/proc/{child.pid}/status") if line.startswith("VmHWM")) / 1024
    out, _ = child.communicate("", timeout=60)
    stats.write_text(stats_were)
    result = json.loads(out.strip().splitlines()[-1])
    cpu = (cpu_after.user + cpu_after.system - cpu_before.user - cpu_before.system) / wall * 100
    counted = {k: sum(int(s[f"metric.{k}"]) for s in result["summaries"])
               for k in ("kernel.execs", "kernel.exits_clean", "kernel.exits_reported", "tcp.connects",
                         "tcp.connect_failures")}
    runs = sum(r for r, _ in result["programs"].values())
    program_ms = sum(ns for _, ns in result["programs"].values()) / 1e6
    hits = counted["kernel.execs"] + counted["kernel.exits_clean"] + counted["kernel.exits_reported"]
    tcp_hits = 3 * counted["tcp.connects"]  # SYN_SENT, CLOSE, and the reset sent
    print(json.dumps({"window_s": round(wall, 1), "driven": driven, "kernel_counts": counted,
                      "kernel_events_per_s (exec+exit+tcp)": round((hits + tcp_hits) / wall),
                      "emitted": result["emitted"], "lost": result["lost"],
                      "bpf_program_runs": runs, "bpf_program_cpu_pct_of_one_core": round(program_ms / 1000 / wall * 100, 2),
                      "bpf_ns_per_run": round(program_ms * 1e6 / runs) if runs else None,
                      "collector_cpu_pct_of_one_core": round(cpu, 2), "collector_rss_mib": round(rss_mib, 1),
                      "collector_peak_rss_mib (the compile, before its pages are released)": round(peak_mib, 1)},
                     indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
