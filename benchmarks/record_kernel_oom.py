"""Record the kernel OOM -> container restart -> degraded chain on the real cluster: `kernel-oom-restart`'s scenarios.

    PYTHONPATH=.:tests/support /work/main/.venv/bin/python benchmarks/record_kernel_oom.py   # as root

Starts the real single-node cluster (`tests/support/realcluster`: Kubernetes v1.20.2, containerd) and
the kernel collector (`collectors.kernel`, eBPF on tracepoints, pods named through the kubelet's
read-only `/pods`) in this process; starts `kubectl get -w -o json --output-watch-events` of pods,
Events, endpoints, ReplicaSets and Deployments in two namespaces; creates `oom-hog/hog` (a Deployment
behind a Service whose container serves 8 s, then runs `tail /dev/zero` under a 32Mi limit: OOM-killed
after every start) and its healthy twin `oom-calm/calm` (same limit, `sleep`). Once the hog has restarted `--restarts`
times and the twin is Ready, it saves per namespace, into `patterns/scenarios/kernel-oom-restart/
positive|negative/`:

- `kernel.rawevents.jsonl`: the kernel collector's RawEvents about the namespace's pods, one JSON
  object a line, as the collector emitted them (`collectors.rawlines` reads them back);
- `<kind>-watch.json`: the API's watch events, one a line (what the kubeapi collector watches);
- `labels.yaml`, and `lead.json`: per kill, the kernel's OOMKill time, when the watch first showed
  the container terminated OOMKilled, and the difference (the kernel's lead).

Then it stops everything (the cluster's stop removes the namespaces). Nothing is edited by hand afterwards.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import kubernetes
import msgspec
import yaml
from kernelrun import Running
from oomchain import CALM, HOG, create, wait_until
from realcluster import build
from realcluster.node import RealCluster
from watchrecord import Watches, save_rawevents

from collectors.kernel import KernelCollector
from collectors.podresolve import PodResolver
from core.events import RawEvent

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "patterns" / "scenarios" / "kernel-oom-restart"
WATCHED = ("pods", "events", "endpoints", "replicasets", "deployments")
CASES = {"positive": ("oom-hog", "hog", HOG), "negative": ("oom-calm", "calm", CALM)}
log = logging.getLogger("record_kernel_oom")


class Polled(msgspec.Struct, kw_only=True):
    """What polling the API showed of the hog: wall times (epoch seconds) of first sightings."""

    oomkilled: dict[str, float] = {}  # container id -> first shown terminated OOMKilled
    crashloop: float = 0.0  # first shown waiting in CrashLoopBackOff
    pod: str = ""
    restarts: int = 0


def poll_ooms(api: kubernetes.client.ApiClient, namespace: str, restarts: int, deadline: float) -> Polled:
    """Poll the namespace's pods every 0.2 s until one restarted `restarts` times: when each container
    was first shown terminated OOMKilled, when the pod first showed CrashLoopBackOff."""
    core = kubernetes.client.CoreV1Api(api)
    polled = Polled()
    seen = polled.oomkilled
    most = 0
    until = time.monotonic() + deadline
    while time.monotonic() < until and most < restarts:
        for pod in core.list_namespaced_pod(namespace).items:
            polled.pod = pod.metadata.name
            for status in pod.status.container_statuses or []:
                most = max(most, status.restart_count)
                waiting = status.state.waiting if status.state else None
                if waiting and waiting.reason == "CrashLoopBackOff" and not polled.crashloop:
                    polled.crashloop = time.time()
                for state in (status.state, status.last_state):
                    done = state.terminated if state else None
                    if done and done.reason == "OOMKilled" and done.container_id:
                        seen.setdefault(done.container_id.split("://", 1)[-1], time.time())
        time.sleep(0.2)
    if most < restarts:
        raise AssertionError(f"{namespace}: {most} restarts after {deadline:.0f}s, wanted {restarts}")
    polled.restarts = most
    return polled


def lead_rows(kills: list[RawEvent], reported: dict[str, float]) -> list[str]:
    """Per kill, a table row: the kernel's time, when the API first showed its container OOMKilled, the lead."""
    rows = []
    for kill in sorted(kills, key=lambda e: e.timestamp):
        cid = kill.metadata.get("container_id", "")
        shown = reported.get(cid)
        api = datetime.fromtimestamp(shown, UTC).strftime("%H:%M:%S.%f")[:-3] if shown else "not yet (recording ended)"
        lead = f"{shown - kill.timestamp.timestamp():.2f} s" if shown else "-"
        rows.append(f"| `{cid[:12]}` | {kill.timestamp.strftime('%H:%M:%S.%f')[:-3]} | {api} | {lead} |")
    return rows


def readme(case: str, namespace: str, mine: list[RawEvent], kills: list[RawEvent], polled: Polled,
           captured: datetime) -> str:
    what = ("`hog`: a one-replica Deployment behind a Service whose container serves 8 s, then runs `tail /dev/zero` "
            "under a 32Mi memory limit: the memory cgroup's OOM killer kills it after every start (its Service loses "
            "its ready endpoint), the kubelet restarts it "
            f"({polled.restarts} restarts when saved) and backs off (CrashLoopBackOff)") if case == "positive" else (
            "`calm`: the healthy twin, same Deployment, Service and 32Mi limit, running `sleep 3600`: Ready, "
            "never killed")
    lines = [f"# kernel-oom-restart / {case}", "",
             f"Recorded {captured:%Y-%m-%d %H:%M} UTC on the real single-node cluster (`tests/support/realcluster`:",
             "Kubernetes v1.20.2, containerd, cgroup v1) with the kernel collector (`collectors.kernel`, eBPF on",
             "tracepoints, pods named through the kubelet's read-only `/pods`) running in the recording process, by",
             "`benchmarks/record_kernel_oom.py` (as root: `PYTHONPATH=.:tests/support python",
             "benchmarks/record_kernel_oom.py`). Nothing was edited by hand.", "",
             f"Namespace `{namespace}`. {what}.", "",
             "Files: `kernel.rawevents.jsonl` (the kernel collector's RawEvents about this namespace's pods, as",
             f"emitted: {len(mine)} events, {len(kills)} `OOMKill`), `pods|events|endpoints|replicasets|deployments-watch.json`",
             "(`kubectl get <kind> -n NS -w -o json --output-watch-events`, opened before the workload was",
             "created, one watch event a line: what the kubeapi collector watches), `labels.yaml`."]
    if kills:
        lines += ["", "The kernel's lead: when the kernel collector saw each kill, and when polling the API every 0.2 s",
                  "first showed that container terminated OOMKilled (the lead is at most 0.2 s longer):", "",
                  "| container | kernel OOMKill (UTC) | API shows OOMKilled | kernel's lead |", "|---|---|---|---|",
                  *lead_rows(kills, polled.oomkilled)]
    return "\n".join(lines) + "\n"


def labels(case: str, namespace: str, kills: list[RawEvent], polled: Polled, captured: datetime) -> dict[str, object]:
    """The ground truth: the hog's first kernel OOM kill caused its restarts; the twin is silent."""
    silent = ["kernel-oom-restart", "kernel-oom-service-degraded", "oom-cascade", "noisy-neighbor", "job-oom-kill"]
    if case == "negative":
        return {"scenario": "kernel-oom-restart/negative", "incidents": [], "silent": silent,
                "description": "calm: the hog's healthy twin (same 32Mi limit, sleeps), Ready, never killed"}
    first = min(kills, key=lambda e: e.timestamp)
    pod = first.metadata["name"]
    failure = datetime.fromtimestamp(polled.crashloop or max(polled.oomkilled.values()), UTC)
    return {"scenario": "kernel-oom-restart/positive",
            "description": f"hog: serves 8 s, then tail /dev/zero under a 32Mi limit, OOM-killed by the kernel after "
                           "every start, its Service without a ready endpoint, "
                           f"{polled.restarts} restarts, CrashLoopBackOff; recorded with the kernel collector",
            "incidents": [{"pattern": "kernel-oom-restart", "primary": True, "scope": f"object:Pod/{namespace}/{pod}",
                           "root_cause": {"kind": "Pod", "namespace": namespace, "name": pod, "reason": "OOMKill",
                                          "at": first.timestamp.isoformat()},
                           "affected": [f"Pod/{namespace}/{pod}"],
                           "failure_at": failure.isoformat(), "due_by": failure.isoformat()},
                          # the same kill seen from the Service: its Endpoints left without a ready address
                          {"pattern": "kernel-oom-service-degraded", "primary": False,
                           "scope": f"object:Pod/{namespace}/{pod}",
                           "root_cause": {"kind": "Pod", "namespace": namespace, "name": pod, "reason": "OOMKill",
                                          "at": first.timestamp.isoformat()},
                           "affected": [f"Pod/{namespace}/{pod}", f"Endpoints/{namespace}/hog"],
                           "failure_at": failure.isoformat(), "due_by": failure.isoformat()},
                          # the same pod killed at every start is also a crash loop of its Deployment
                          {"pattern": "oom-kill-loop", "primary": False, "scope": f"owner:Deployment/{namespace}/hog",
                           "failure_at": captured.isoformat(), "due_by": captured.isoformat()}],
            "silent": silent[2:]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--restarts", type=int, default=3, help="restarts of the hog before saving")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    started = time.monotonic()
    with RealCluster(bin_dir=build.build()) as cluster:
        log.info("cluster ready in %.1f s", time.monotonic() - started)
        api = kubernetes.config.new_client_from_config(str(cluster.kubeconfig))
        collector = KernelCollector(cluster.node_name, interval=0.5,
                                    resolver=PodResolver(f"{cluster.kubelet_read_only_url}/pods", min_refresh=0.5))
        collector.check()
        kernel = Running(collector).start()
        polled = Polled()
        watches = Watches(cluster.kubeconfig, Path(cluster.work_dir) / "oom-record",
                          {case: ns for case, (ns, _, _) in CASES.items()}, WATCHED)
        try:
            with watches:
                for ns, name, command in CASES.values():
                    create(api, ns, name, command)
                polled = poll_ooms(api, "oom-hog", args.restarts, deadline=300)
                calm = wait_until(api, "oom-calm", ready=True, deadline=120)
                time.sleep(3)  # the last status and Events reach the watches; the collector's next batch
                log.info("hog %s restarted %d times; calm %s ready", polled.pod, polled.restarts, calm[0])
        finally:
            kernel.stop()
        captured = datetime.now(UTC)
        for case, (ns, _, _) in CASES.items():
            folder = args.out / case
            watches.save(case, folder)
            mine: list[RawEvent] = [e for e in kernel.events if e.metadata.get("namespace") == ns]
            save_rawevents(folder / "kernel.rawevents.jsonl", mine)
            kills = [e for e in mine if e.metadata.get("reason") == "OOMKill"]
            log.info("%s: %d kernel events (%d OOMKill), watches saved", case, len(mine), len(kills))
            (folder / "README.md").write_text(readme(case, ns, mine, kills, polled, captured))
            (folder / "labels.yaml").write_text(yaml.safe_dump(labels(case, ns, kills, polled, captured),
                                                               sort_keys=False))
        api.close()
    log.info("done in %.1f s (cluster stopped)", time.monotonic() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
