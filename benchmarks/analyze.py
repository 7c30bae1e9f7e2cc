"""How long `tapio analyze` takes on a recording of N events, embedded stack start-up included.

    .venv/bin/python benchmarks/analyze.py --events 10000

Writes an `EventList` of N Kubernetes Events (20 namespaces x 500 pods, reasons in the shares
of the real recordings, as `benchmarks/pipeline.py --mix real`) to a temporary folder, runs
`tapio analyze` on it as a user would (a fresh state directory, so it starts its own embedded
stack), and prints the wall time against the 60 s bar of the analyze issue.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pipeline import _REAL  # noqa: E402

BAR_S = 60.0


def event_list(n: int) -> dict:
    t0 = datetime(2026, 11, 20, 8, tzinfo=timezone.utc)
    items = []
    for i in range(n):
        ns, pod = f"ns-{i % 20}", f"web-{(i // 20) % 500}"
        reason, kind = _REAL[(i * 7919) % len(_REAL)]
        when = (t0 + timedelta(seconds=i * 0.36)).isoformat().replace("+00:00", "Z")
        items.append({"apiVersion": "v1", "kind": "Event",
                      "metadata": {"name": f"{pod}.{i}", "namespace": ns, "uid": f"u-{i}"},
                      "involvedObject": {"kind": "Pod", "name": pod, "namespace": ns, "uid": f"{ns}-{pod}"},
                      "reason": reason, "message": f"{reason}: container web in pod {pod}", "type": kind,
                      "count": 1, "source": {"component": "kubelet", "host": f"node-{i % 13}"},
                      "firstTimestamp": when, "lastTimestamp": when})
    return {"apiVersion": "v1", "kind": "EventList", "items": items}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="tapio-analyze-bench-"))
    recording = root / "events.json"
    recording.write_text(json.dumps(event_list(args.events)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAPIO_")} | {"TAPIO_STATE_DIR": str(root / "state")}
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "app.cli", "analyze", str(recording)], env=env,
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    wall = time.monotonic() - start
    print(done.stdout.splitlines()[0] if done.stdout else done.stderr[-2000:])
    print(f"tapio analyze on {args.events:,} events: {wall:.1f} s wall, embedded stack start-up included "
          f"(bar {BAR_S:.0f} s: ratio {wall / BAR_S:.2f})")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
