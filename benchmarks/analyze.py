"""How long `tapio analyze` takes, wall time of the command as a user runs it (start-up included).

    .venv/bin/python benchmarks/analyze.py --format describe           # one kubectl describe file
    .venv/bin/python benchmarks/analyze.py --events 10000             # a support bundle .tar.gz
    .venv/bin/python benchmarks/analyze.py --events 10000 --format eventlist
    .venv/bin/python benchmarks/analyze.py --events 10000 --dataflow  # through the embedded stack

The default input is a troubleshoot support bundle, packed as `.tar.gz` as users receive it:
per namespace (20) its Events (`cluster-resources/events/<ns>.json`, reasons in the shares of the
real recordings, as `benchmarks/pipeline.py --mix real`), its pods (25 per namespace, owned by 5
Deployments), the Deployments' ReplicaSets (two revisions each, so every Deployment has a
rollout to read) and one previous-container log per pod with two lines that mean something.
Everything counts toward N. `--format eventlist` writes N Events as one `EventList` instead.
`--format describe` is one `kubectl describe pod` of a labelled case (an OOM-killed container).
It runs `tapio analyze` on it as a user would, in a fresh state directory (with `--dataflow` it
starts its own embedded stack), and prints the wall time against the bar: 2 s for one describe
file, 10 s for the 10,000-event bundle (60 s through the dataflow).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pipeline import _REAL  # noqa: E402

BARS_S = {"describe": 2.0, "bundle": 10.0, "eventlist": 10.0}
DATAFLOW_BAR_S = 60.0
DESCRIBE = Path(__file__).resolve().parents[1] / "patterns/scenarios/diagnosis/containers/oom-killed/describe-pod.txt"


def event_list(n: int) -> dict:
    t0 = datetime(2026, 11, 20, 8, tzinfo=UTC)
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


NAMESPACES, PODS, DEPLOYMENTS = 20, 25, 5


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def bundle(n: int, target: Path) -> Path:
    """A support bundle of `n` events in all (Events, pods, ReplicaSets, log lines) as .tar.gz."""
    t0 = datetime(2026, 11, 20, 8, tzinfo=UTC)
    files: dict[str, bytes] = {}
    objects = NAMESPACES * PODS + NAMESPACES * DEPLOYMENTS * 2 + NAMESPACES * PODS * 2  # pods, RSs, log lines
    per_ns_events = max(n - objects, 0) // NAMESPACES
    for k in range(NAMESPACES):
        ns = f"ns-{k}"
        rs, pods, events = [], [], []
        for d in range(DEPLOYMENTS):
            for rev in (1, 2):
                rs.append({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {
                    "name": f"api-{d}-r{rev}", "namespace": ns, "uid": f"{ns}-api-{d}-r{rev}",
                    "creationTimestamp": _iso(t0 + timedelta(minutes=10 * rev)),
                    "annotations": {"deployment.kubernetes.io/revision": str(rev)},
                    "ownerReferences": [{"kind": "Deployment", "name": f"api-{d}", "uid": f"{ns}-api-{d}", "controller": True}]},
                    "spec": {"replicas": PODS // DEPLOYMENTS, "template": {"spec": {"containers": [
                        {"name": "api", "image": f"shop/api:1.{rev}", "env": [{"name": "MODE", "value": f"v{rev}"}]}]}}}})
        for p in range(PODS):
            pod, owner = f"api-{p % DEPLOYMENTS}-r2-{p:03d}", f"api-{p % DEPLOYMENTS}-r2"
            pods.append({"apiVersion": "v1", "kind": "Pod", "metadata": {
                "name": pod, "namespace": ns, "uid": f"{ns}-{pod}", "creationTimestamp": _iso(t0 + timedelta(minutes=20)),
                "ownerReferences": [{"kind": "ReplicaSet", "name": owner, "uid": f"{ns}-{owner}", "controller": True}]},
                "spec": {"nodeName": f"node-{p % 13}", "containers": [{"name": "api"}]},
                "status": {"phase": "Running", "containerStatuses": [{"name": "api", "restartCount": 1,
                           "state": {"running": {"startedAt": _iso(t0 + timedelta(minutes=31))}},
                           "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                                                        "finishedAt": _iso(t0 + timedelta(minutes=30))}}}]}})
            files[f"cluster-resources/pods/logs/{ns}/{pod}/api-previous.log"] = (
                f"{_iso(t0 + timedelta(minutes=29, seconds=p))} dial tcp 10.0.{k}.{p}:5432: connect: connection refused\n"
                f"{_iso(t0 + timedelta(minutes=29, seconds=p + 1))} panic: lookup db.{ns}.svc: no such host\n").encode()
        for i in range(per_ns_events):
            j = k + i * NAMESPACES
            reason, kind = _REAL[(j * 7919) % len(_REAL)]
            pod = f"api-{j % DEPLOYMENTS}-r2-{(j // NAMESPACES) % PODS:03d}"
            when = _iso(t0 + timedelta(seconds=j * 0.36))
            events.append({"apiVersion": "v1", "kind": "Event",
                           "metadata": {"name": f"{pod}.{j}", "namespace": ns, "uid": f"u-{j}"},
                           "involvedObject": {"kind": "Pod", "name": pod, "namespace": ns, "uid": f"{ns}-{pod}"},
                           "reason": reason, "message": f"{reason}: container api in pod {pod}", "type": kind,
                           "count": 1, "source": {"component": "kubelet", "host": f"node-{j % 13}"},
                           "firstTimestamp": when, "lastTimestamp": when})
        files[f"cluster-resources/events/{ns}.json"] = json.dumps({"kind": "EventList", "items": events}).encode()
        files[f"cluster-resources/pods/{ns}.json"] = json.dumps({"kind": "PodList", "items": pods}).encode()
        files[f"cluster-resources/replicasets/{ns}.json"] = json.dumps({"kind": "ReplicaSetList", "items": rs}).encode()
    files["version.yaml"] = b"apiVersion: troubleshoot.sh/v1beta2\nkind: SupportBundleVersion\n"
    with tarfile.open(target, "w:gz") as tf:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(f"support-bundle-bench/{name}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--format", choices=["bundle", "eventlist", "describe"], default="bundle")
    parser.add_argument("--dataflow", action="store_true", help="analyze through an isolated dataflow")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="tapio-analyze-bench-"))
    if args.format == "describe":
        recording = DESCRIBE
    elif args.format == "bundle":
        recording = bundle(args.events, root / "support-bundle.tar.gz")
    else:
        recording = root / "events.json"
        recording.write_text(json.dumps(event_list(args.events)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAPIO_")} | {"TAPIO_STATE_DIR": str(root / "state")}
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "app.cli", "analyze", str(recording),
                           *(["--dataflow"] if args.dataflow else [])], env=env,
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    wall = time.monotonic() - start
    print(done.stdout.splitlines()[0] if done.stdout else done.stderr[-2000:])
    counted = next((line for line in done.stdout.splitlines() if line.startswith("(")), "")
    print(counted)
    bar = DATAFLOW_BAR_S if args.dataflow else BARS_S[args.format]
    how = "through the dataflow, embedded stack start-up included" if args.dataflow else "in-process, start-up included"
    size = "one describe file" if args.format == "describe" else f"{args.events:,} events ({args.format})"
    print(f"tapio analyze on {size}: {wall:.2f} s wall, {how} (bar {bar:.0f} s: ratio {wall / bar:.2f})")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
