"""The cost of `tapio agent` itself: CPU and RSS of the agent process publishing a steady load to JetStream.

    .venv/bin/python benchmarks/agent.py --rate 1000 --seconds 30

Starts a nats-server of its own in a temporary folder and `tapio agent --only steady` as a child process,
whose one collector (`benchmarks/agent_load.py`) makes `--rate` kernel-like events a second in one batch a
second. After a warm-up it samples the agent's CPU time and RSS (psutil) for `--seconds` and prints
events/s published, CPU as a share of one core and peak RSS: the agent's part of the issue's cost target
(under 5 % of a core and 100 MiB at 1,000 kernel events/s), making the events included, reading a kernel
source not (that is the kernel collector's own).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import msgspec
import psutil

from app.stack import free_port, start_nats
from app.workers import ChildProcess
from core.settings import AgentSettings, NatsSettings, Settings


def health(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
        return {c["name"]: c for c in json.load(response)["collectors"]}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tapio-agent-bench-") as tmp:
        folder = Path(tmp)
        server = start_nats(folder)
        web = free_port()
        settings = Settings(state_dir=str(folder), nats=NatsSettings(urls=[f"nats://127.0.0.1:{server.port}"]),
                            agent=AgentSettings(web_port=web, extra={"steady": "agent_load:SteadyCollector"},
                                                options={"steady": {"rate": args.rate}}))
        os.environ["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])
        agent = ChildProcess(msgspec.structs.replace(settings), ["agent", "--only", "steady", "--node", "bench"],
                             name="agent", log_dir=folder / "logs")
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if health(web)["steady"]["sent"] > 0:
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline or not agent.alive():
                    print(agent.log_tail(), file=sys.stderr)
                    return 1
                time.sleep(0.2)
            time.sleep(args.warmup)
            proc = psutil.Process(agent.pid)
            sent0, cpu0, t0 = health(web)["steady"]["sent"], sum(proc.cpu_times()[:2]), time.monotonic()
            peak = 0
            while time.monotonic() - t0 < args.seconds:
                peak = max(peak, proc.memory_info().rss)
                time.sleep(0.5)
            status = health(web)["steady"]
            cpu, elapsed = sum(proc.cpu_times()[:2]) - cpu0, time.monotonic() - t0
            rate = (status["sent"] - sent0) / elapsed
            print(f"agent: {rate:,.0f} events/s published over {elapsed:.0f}s; CPU {100 * cpu / elapsed:.1f} % of "
                  f"one core ({1e6 * cpu / max(1, status['sent'] - sent0):.0f} us an event); peak RSS "
                  f"{peak / 2**20:.0f} MiB; unsent {status['unsent']}, restarts {status['restarts']}")
        finally:
            agent.stop()
            os.killpg(server.pid, signal.SIGTERM)
    return 0


if __name__ == "__main__":
    sys.exit(main())
