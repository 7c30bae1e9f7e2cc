"""Throughput with one worker and with a group of two: `pipeline.py` run twice, the same load.

    .venv/bin/python benchmarks/workers.py --events 50000

Each run starts its own embedded stack, `--workers 1` then `--workers 2` (two `tapio worker`
processes in one consumer group; the run starts once both hold partitions), one bridge, and
publishes the same number of events as fast as the publisher goes; every event must reach the
graph. Prints events/s end to end (first publish -> last event in the graph) for each and the
ratio two/one. Any other option is passed to pipeline.py (e.g. `--mix warnings`, `--partitions 4`).
On a 2-core host a second worker adds no CPU: the ratio says what the group costs or gains there.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

PIPELINE = Path(__file__).resolve().with_name("pipeline.py")
RATE = re.compile(r"end to end \(first publish -> last event in graph\): ([\d,]+) events/s over ([\d.]+)s")


def run(workers: int, events: int, extra: list[str]) -> tuple[float, float, str]:
    command = [sys.executable, str(PIPELINE), "--events", str(events), "--workers", str(workers), *extra]
    print(f"$ {' '.join(command[1:])}", flush=True)
    done = subprocess.run(command, capture_output=True, text=True)
    print(done.stdout, flush=True)
    if done.returncode != 0:
        print(done.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"pipeline.py --workers {workers} failed (exit {done.returncode})")
    found = RATE.search(done.stdout)
    if found is None:
        raise SystemExit("pipeline.py printed no end-to-end rate")
    return float(found.group(1).replace(",", "")), float(found.group(2)), done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=50_000)
    args, extra = parser.parse_known_args()
    one, one_s, _ = run(1, args.events, extra)
    two, two_s, _ = run(2, args.events, extra)
    print(f"one worker:  {one:,.0f} events/s ({args.events:,} events in {one_s:.1f}s)")
    print(f"two workers: {two:,.0f} events/s ({args.events:,} events in {two_s:.1f}s)")
    print(f"ratio two/one: {two / one:.2f}")


if __name__ == "__main__":
    main()
