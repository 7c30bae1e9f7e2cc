"""Record node memory pressure -> the kubelet's eviction on a real cluster: `node-memory-pressure-eviction`'s scenarios.

    PYTHONPATH=.:tests/support /work/main/.venv/bin/python benchmarks/record_memory_pressure.py   # as root, on a quiet machine

Starts a real single-node cluster of its own (`tests/support/realcluster`: Kubernetes v1.20.2,
containerd) whose kubelet evicts on memory (`evictionHard: memory.available`, set 2 GiB below the node's
memory.available when the kubelet starts: `tests/support/memchain.py`), and the kubelet collector (`collectors.kubelet`,
the kubelet's `/stats/summary` every second, the same eviction line, a warning 1 GiB above it) in this
process; starts `kubectl get -w -o json --output-watch-events` of pods, Events, ReplicaSets and
Deployments in two namespaces. Then, in two phases:

- negative: `mem-warm/warm` (a one-replica Deployment, no requests or limits) writes 256 MiB into a
  memory-backed emptyDir and stops: the node never nears the line, nothing is evicted;
- positive: `mem-cache/cache`, the same Deployment writing 40 MiB a second without end: the collector
  warns, the node crosses the line, the kubelet evicts the pod.

It saves per case, into `patterns/scenarios/node-memory-pressure-eviction/positive|negative/`:
`kubelet.rawevents.jsonl` (the kubelet collector's RawEvents of the phase, as emitted), `<kind>-watch.json`,
`labels.yaml` and `README.md` (with the threshold and the measured lead). Then it stops everything.
Nothing is edited by hand afterwards. The machine must stay quiet meanwhile: the line is set from the
memory available when the kubelet starts.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import kubernetes
import yaml
from collectorthread import Running
from memchain import FILL, HEADROOM, MI, WARN, EvictionLine, collector, create, evictions, fill
from oomchain import pod_state
from realcluster import build
from realcluster.node import RealCluster
from watchrecord import Watches, save_rawevents

from core.events import RawEvent

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "patterns" / "scenarios" / "node-memory-pressure-eviction"
WATCHED = ("pods", "events", "replicasets", "deployments")
CASES = {"negative": "mem-warm", "positive": "mem-cache"}
PATTERN = "node-memory-pressure-eviction"
log = logging.getLogger("record_memory_pressure")


def first_eviction(api: kubernetes.client.ApiClient, namespace: str) -> tuple[datetime, str, str]:
    """When the kubelet first reported Evicted in the namespace (the Event's first time), for which pod, and why."""
    events = [e for e in kubernetes.client.CoreV1Api(api).list_namespaced_event(namespace).items
              if e.reason == "Evicted"]
    # the running pod the kubelet evicted ("The node was low on resource"), before the replacements it
    # refused in the same second ("The node had condition: [MemoryPressure]")
    first = min(events, key=lambda e: (e.first_timestamp or e.event_time, "low on resource" not in (e.message or "")))
    return first.first_timestamp or first.event_time, first.involved_object.name, first.message or ""


def pressure(events: list[RawEvent]) -> list[RawEvent]:
    return [e for e in events if e.metadata.get("reason") == "NodeMemoryPressure"]


def readme(case: str, namespace: str, mine: list[RawEvent], threshold: int, pod: str, evicted: str,
           lead: str, captured: datetime) -> str:
    what = (f"`cache`: a one-replica Deployment with no requests or limits whose pod `{pod}` writes {FILL} MiB a "
            f"second into a memory-backed emptyDir: the kubelet collector warned, the node crossed the line and "
            f"the kubelet evicted it (\"{evicted}\"); {lead}") if case == "positive" else (
            f"`warm`: the same Deployment writing 256 MiB and stopping (pod `{pod}`): the node stays "
            f"{HEADROOM // MI - 256} MiB above the line, nothing is evicted")
    found = pressure(mine)
    return "\n".join([
        f"# {PATTERN} / {case}", "",
        f"Recorded {captured:%Y-%m-%d %H:%M} UTC on a real single-node cluster of its own (`tests/support/realcluster`:",
        f"Kubernetes v1.20.2, containerd) whose kubelet evicts below `memory.available` {threshold // MI} Mi (set",
        f"{HEADROOM // MI} MiB below the node's memory.available when the kubelet started, `tests/support/memchain.py`), with the kubelet",
        "collector (`collectors.kubelet`, `/stats/summary` every second, the same line and a warning "
        f"{WARN // MI} MiB above it)",
        "running in the recording process, by `benchmarks/record_memory_pressure.py` (as root: `PYTHONPATH=.:tests/support",
        "python benchmarks/record_memory_pressure.py`). Nothing was edited by hand.", "",
        f"Namespace `{namespace}`. {what}.", "",
        f"Files: `kubelet.rawevents.jsonl` (the kubelet collector's RawEvents during this phase, as emitted: {len(mine)} "
        f"events, {len(found)} `NodeMemoryPressure`), `pods|events|replicasets|deployments-watch.json` (`kubectl get",
        "<kind> -n NS -w -o json --output-watch-events`, opened before the workload was created, one watch event",
        "a line: what the kubeapi collector watches), `labels.yaml`."]) + "\n"


def labels(case: str, namespace: str, node: str, mine: list[RawEvent], pod: str,
           failure: datetime | None, captured: datetime) -> dict[str, object]:
    silent = [PATTERN, "oom-cascade", "noisy-neighbor"]
    if case == "negative":
        return {"scenario": f"{PATTERN}/negative", "incidents": [], "silent": silent,
                "description": "warm: 256 MiB into a memory-backed volume, the node never near its eviction line"}
    assert failure is not None
    first = min(pressure(mine), key=lambda e: e.timestamp)
    return {"scenario": f"{PATTERN}/positive",
            "description": "cache: a pod filling a memory-backed emptyDir without a limit; the kubelet collector's "
                           "NodeMemoryPressure, then the kubelet evicts the pod",
            "incidents": [{"pattern": PATTERN, "primary": True, "scope": f"node:{node}",
                           "root_cause": {"kind": "Node", "name": node, "reason": "NodeMemoryPressure",
                                          "at": first.timestamp.isoformat()},
                           "affected": [f"Pod/{namespace}/{pod}"],
                           "failure_at": failure.isoformat(), "due_by": failure.isoformat()},
                          # the Deployment's replacements, refused one after another while the node is under
                          # pressure ("The node had condition: [MemoryPressure]"): an eviction loop of the
                          # workload, and more pods of the pressed node evicted
                          {"pattern": "scheduler-thrash", "primary": False, "scope": f"owner:Deployment/{namespace}/cache",
                           "failure_at": captured.isoformat(), "due_by": captured.isoformat()},
                          {"pattern": "noisy-neighbor", "primary": False, "scope": f"node:{node}",
                           "failure_at": failure.isoformat(), "due_by": failure.isoformat()}],
            "silent": ["oom-cascade"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    started = time.monotonic()
    line = EvictionLine()
    with RealCluster(bin_dir=build.build(), kubelet_settings=line.settings) as cluster:
        threshold = line.threshold
        log.info("cluster ready in %.1f s; eviction line memory.available<%d Mi", time.monotonic() - started,
                 threshold // MI)
        api = kubernetes.config.new_client_from_config(str(cluster.kubeconfig))
        kubelet = Running(collector(cluster.node_name, cluster.kubelet_read_only_url, threshold)).start()
        watches = Watches(cluster.kubeconfig, Path(cluster.work_dir) / "mem-record", CASES, WATCHED)
        phases: dict[str, tuple[int, int]] = {}
        pods: dict[str, str] = {}
        evicted, failure, lead = "", None, ""
        try:
            with watches:
                time.sleep(3)
                begin = len(kubelet.snapshot())
                create(api, CASES["negative"], "warm", fill(FILL, total_mib=256))
                time.sleep(25)  # 256 MiB written, then quiet
                pods["negative"] = pod_state(api, CASES["negative"])[0]
                assert not evictions(api, CASES["negative"]), "the warm pod was evicted"
                assert not pressure(kubelet.snapshot()[begin:]), "the collector saw pressure with the warm pod only"
                phases["negative"] = (begin, len(kubelet.snapshot()))
                begin = len(kubelet.snapshot())
                create(api, CASES["positive"], "cache", fill(FILL))
                until = time.monotonic() + 180
                while not evictions(api, CASES["positive"]) and time.monotonic() < until:
                    time.sleep(0.5)
                assert evictions(api, CASES["positive"]), "the kubelet evicted nothing in 180 s"
                failure, pods["positive"], evicted = first_eviction(api, CASES["positive"])
                time.sleep(5)
                phases["positive"] = (begin, len(kubelet.snapshot()))
        finally:
            kubelet.stop()
        warned = min(pressure(kubelet.events[phases["positive"][0]:]), key=lambda e: e.timestamp)
        lead = (f"the collector's first NodeMemoryPressure ({warned.metadata.get('severity')}) came "
                f"{(failure - warned.timestamp).total_seconds():.1f} s before the kubelet's Evicted Event "
                "(its time is whole seconds)")
        log.info("evicted %s: %s; %s", pods["positive"], evicted, lead)
        captured = datetime.now(UTC)
        for case, namespace in CASES.items():
            folder = args.out / case
            watches.save(case, folder)
            first, last = phases[case]
            mine = kubelet.events[first:last]
            save_rawevents(folder / "kubelet.rawevents.jsonl", mine)
            (folder / "README.md").write_text(readme(case, namespace, mine, threshold, pods[case], evicted, lead,
                                                     captured))
            (folder / "labels.yaml").write_text(yaml.safe_dump(
                labels(case, namespace, cluster.node_name, mine, pods[case], failure if case == "positive" else None,
                       captured),
                sort_keys=False))
        api.close()
    log.info("done in %.1f s (cluster stopped)", time.monotonic() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
