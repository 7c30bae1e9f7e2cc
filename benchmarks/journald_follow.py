"""How fast the journald collector follows a busy journal, and what it costs.

`python benchmarks/journald_follow.py --entries 20000` (root; tests/support on the path: run it with
`PYTHONPATH=$PWD:$PWD/tests/support`) starts a journald namespace (`nodesources.journald`), writes N
entries through the native protocol, 90 % routine kubelet lines and 10 % that matter (unit failures, OOM
kills, PLEG), and runs `collectors.journald` until every one is read. It prints entries/s read, the
events forwarded, and the CPU seconds of the collector (this process, less the writer's share measured
alone) and of its journalctl child.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import socket
import sys
import tempfile
import time
from pathlib import Path

from nodesources.journald import JournalNamespace, unavailable

from collectors.journald import JournaldCollector

LINES = (
    ("kubelet", "I1205 03:50:00.100000    1234 kubelet.go:1900] SyncLoop (PLEG): event for pod shop/web-{i}"),
    ("systemd", "app-{i}.service: Failed with result 'exit-code'."),
    ("kernel", "Out of memory: Killed process {i} (java) total-vm:1048576kB, anon-rss:524288kB"),
    ("kubelet", "E1205 03:50:00.000000    1234 kubelet.go:1870] skipping pod synchronization - PLEG is not healthy"),
)


def cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


async def main(entries: int) -> None:
    with JournalNamespace() as journal, tempfile.TemporaryDirectory() as tmp:
        collector = JournaldCollector("bench", cursor_file=Path(tmp) / "cursor", namespace=journal.name)
        forwarded = 0

        async def emit(batch: list) -> None:
            nonlocal forwarded
            forwarded += len(batch)

        stop = asyncio.Event()
        task = asyncio.create_task(collector.run(emit, stop))
        while sum(collector.routine.values()) == 0:  # journalctl follows
            journal.logger("kubelet", "I0000 00:00:00.000000 1 x.go:1] warm-up", "user.info")
            await asyncio.sleep(0.1)
        read_before = sum(collector.routine.values()) + collector.forwarded
        cpu_before = cpu(resource.RUSAGE_SELF)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        writing = time.monotonic()
        for i in range(entries):
            identifier, text = LINES[0] if i % 10 else LINES[1 + (i // 10) % 3]
            body = f"MESSAGE={text.format(i=i)}\nSYSLOG_IDENTIFIER={identifier}\n".encode()
            sock.sendto(body, str(journal.run_dir / "socket"))
            if i % 200 == 0:
                await asyncio.sleep(0)  # let the collector read while the journal fills
        writer_cpu = cpu(resource.RUSAGE_SELF) - cpu_before
        started = time.monotonic()
        while sum(collector.routine.values()) + collector.forwarded - read_before < entries:
            await asyncio.sleep(0.05)
            if time.monotonic() - started > 300:
                sys.exit(f"only {sum(collector.routine.values()) + collector.forwarded - read_before} of {entries}")
        elapsed = time.monotonic() - writing
        total_cpu = cpu(resource.RUSAGE_SELF) - cpu_before
        stop.set()
        await task
        print(f"{entries} entries read in {elapsed:.2f} s ({entries / elapsed:,.0f}/s), {forwarded} events forwarded, "
              f"{collector.lost()} lost")
        print(f"CPU: this process {total_cpu:.2f} s (of which the writer alone ~{writer_cpu:.2f} s), "
              f"journalctl {cpu(resource.RUSAGE_CHILDREN):.2f} s (the ended children: journalctl, not the running journald)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=20000)
    args = parser.parse_args()
    if why := unavailable():
        sys.exit(why)
    asyncio.run(main(args.entries))
