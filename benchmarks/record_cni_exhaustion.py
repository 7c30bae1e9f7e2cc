"""Record the CNI pool exhaustion -> FailedCreatePodSandBox -> ContainerCreating chain on the real cluster: `cni-ipam-exhausted`'s scenarios.

    PYTHONPATH=.:tests/support /work/main/.venv/bin/python benchmarks/record_cni_exhaustion.py   # as root

Starts the real single-node cluster (`tests/support/realcluster`: Kubernetes v1.20.2, containerd, the
CNI bridge plugin with host-local addresses) and the CNI collector (`collectors.cni`: netlink, libcni's
results, host-local's pool scanned every 0.5 s) in this process; starts `kubectl get -w -o json
--output-watch-events` of pods, Events, ReplicaSets and Deployments in two namespaces. Then, in two
phases (`tests/support/cnichain.py`):

- negative: reservations leaked by containers that are gone (what a runtime crash leaves) take every
  address of the node's pool but two; `cni-calm/calm` (a one-replica Deployment that sleeps) starts and
  is Ready on one of them;
- positive: leaked reservations take the rest; once the collector reports the pool exhausted,
  `cni-stuck/stuck` is created: host-local has no address for its sandbox, the kubelet reports
  FailedCreatePodSandBox (`--failures` times before saving) and the pod stays in ContainerCreating.

It saves per case, into `patterns/scenarios/cni-ipam-exhausted/positive|negative/`: `cni.rawevents.jsonl`
(the CNI collector's RawEvents of that phase, as emitted), `<kind>-watch.json` (the watch events of the
case's namespace, one a line), `labels.yaml` and `README.md`. Then it frees the leaked reservations and
stops everything. Nothing is edited by hand afterwards.
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
from cnichain import collector, create, leak, sandbox_failures, unleak, wait_for
from collectorthread import Running
from oomchain import pod_state
from realcluster import build
from realcluster.node import RealCluster
from watchrecord import Watches, save_rawevents

from core.events import RawEvent

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "patterns" / "scenarios" / "cni-ipam-exhausted"
WATCHED = ("pods", "events", "replicasets", "deployments")
CASES = {"negative": "cni-calm", "positive": "cni-stuck"}
PATTERN = "cni-ipam-exhausted"
log = logging.getLogger("record_cni_exhaustion")


def first_failure(api: kubernetes.client.ApiClient, namespace: str) -> datetime:
    """When the kubelet first reported FailedCreatePodSandBox in the namespace (the Event's first time)."""
    events = kubernetes.client.CoreV1Api(api).list_namespaced_event(namespace).items
    return min(e.first_timestamp or e.event_time for e in events if e.reason == "FailedCreatePodSandBox")


def readme(case: str, namespace: str, mine: list[RawEvent], pod: str, failures: list[str], capacity: int,
           captured: datetime) -> str:
    what = (f"`stuck`: a one-replica Deployment that sleeps, created once leaked reservations held every one of "
            f"the pool's {capacity} addresses and the CNI collector had reported it: its pod `{pod}` stays in "
            f"ContainerCreating, the kubelet says FailedCreatePodSandBox ({len(failures)} Events when saved), e.g. "
            f"\"{failures[0] if failures else ''}\"") if case == "positive" else (
            f"`calm`: the same Deployment, created while leaked reservations held all but two of the pool's "
            f"{capacity} addresses: its pod `{pod}` gets one and is Ready; the pool is never exhausted")
    reasons = sorted({e.metadata.get("reason", "") for e in mine})
    return "\n".join([
        f"# {PATTERN} / {case}", "",
        f"Recorded {captured:%Y-%m-%d %H:%M} UTC on the real single-node cluster (`tests/support/realcluster`:",
        "Kubernetes v1.20.2, containerd, Debian's CNI bridge and host-local plugins) with the CNI collector",
        "(`collectors.cni`, host-local's pool scanned every 0.5 s) running in the recording process, by",
        "`benchmarks/record_cni_exhaustion.py` (as root: `PYTHONPATH=.:tests/support python",
        "benchmarks/record_cni_exhaustion.py`). The leaked reservations are files in host-local's data dir",
        "naming a container that does not exist, as a runtime crash leaves them. Nothing was edited by hand.", "",
        f"Namespace `{namespace}`. {what}.", "",
        f"Files: `cni.rawevents.jsonl` (the CNI collector's RawEvents during this phase, as emitted: {len(mine)} "
        f"events, reasons {', '.join(reasons)}), `pods|events|replicasets|deployments-watch.json` (`kubectl get",
        "<kind> -n NS -w -o json --output-watch-events`, opened before the workload was created, one watch event",
        "a line: what the kubeapi collector watches), `labels.yaml`."]) + "\n"


def labels(case: str, namespace: str, node: str, mine: list[RawEvent], pod: str,
           failure: datetime | None) -> dict[str, object]:
    """The ground truth: the exhausted pool stopped the stuck pod; the pod that got an address is silent."""
    silent = [PATTERN, "network-partition"]
    if case == "negative":
        return {"scenario": f"{PATTERN}/negative", "incidents": [], "silent": silent,
                "description": "calm: started and Ready with two addresses of the node's pool still free"}
    assert failure is not None
    [exhausted] = [e for e in mine if e.metadata.get("reason") == "CNIIPAMExhausted"][:1]
    return {"scenario": f"{PATTERN}/positive",
            "description": "stuck: created on a node whose pod address pool leaked reservations had exhausted; "
                           "FailedCreatePodSandBox, ContainerCreating; recorded with the CNI collector",
            "incidents": [{"pattern": PATTERN, "primary": True, "scope": f"node:{node}",
                           "root_cause": {"kind": "Node", "name": node, "reason": "CNIIPAMExhausted",
                                          "at": exhausted.timestamp.isoformat()},
                           "affected": [f"Pod/{namespace}/{pod}"],
                           "failure_at": failure.isoformat(), "due_by": failure.isoformat()}],
            "silent": silent[1:]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--failures", type=int, default=2, help="FailedCreatePodSandBox Events before saving")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    started = time.monotonic()
    with RealCluster(bin_dir=build.build()) as cluster:
        log.info("cluster ready in %.1f s", time.monotonic() - started)
        api = kubernetes.config.new_client_from_config(str(cluster.kubeconfig))
        cni = Running(collector(cluster)).start()
        watches = Watches(cluster.kubeconfig, Path(cluster.work_dir) / "cni-record", CASES, WATCHED)
        leaked: list[Path] = []
        phases: dict[str, tuple[int, int]] = {}  # case -> the slice of the collector's events it holds
        pods: dict[str, str] = {}
        failures: list[str] = []
        try:
            with watches:
                time.sleep(2)  # the collector's first scan of the untouched pool
                begin = len(cni.snapshot())
                leaked += leak(cluster, keep_free=2)
                create(api, CASES["negative"], "calm")
                pods["negative"] = wait_for("calm Ready", lambda: (s := pod_state(api, CASES["negative"]))[3] and s[0])
                time.sleep(3)  # its last status reaches the watch; the collector's next scan
                phases["negative"] = (begin, len(cni.snapshot()))
                begin = len(cni.snapshot())
                leaked += leak(cluster, keep_free=0)
                wait_for("the pool reported exhausted", lambda: [e for e in cni.snapshot()[begin:]
                                                                if e.metadata.get("reason") == "CNIIPAMExhausted"], 30)
                # the next pod comes some time after the last address went (here 5 s; in a cluster, whenever
                # one is scheduled): the Events' times are whole seconds, a pod created in the same second
                # as the report could not be told after it
                time.sleep(5)
                create(api, CASES["positive"], "stuck")
                failures = wait_for(f"{args.failures} FailedCreatePodSandBox", lambda: (
                    f if len(f := sandbox_failures(api, CASES["positive"])) >= args.failures else []), 180)
                pods["positive"] = pod_state(api, CASES["positive"])[0]
                time.sleep(3)
                phases["positive"] = (begin, len(cni.snapshot()))
                log.info("calm %s Ready; stuck %s: %s", pods["negative"], pods["positive"], failures[0])
        finally:
            unleak(leaked)
            cni.stop()
        captured = datetime.now(UTC)
        failure = first_failure(api, CASES["positive"])
        capacity = next(int(e.metadata["metric.cni.ipam_capacity"]) for e in cni.events
                        if "metric.cni.ipam_capacity" in e.metadata)
        for case, namespace in CASES.items():
            folder = args.out / case
            watches.save(case, folder)
            first, last = phases[case]
            mine = cni.events[first:last]
            save_rawevents(folder / "cni.rawevents.jsonl", mine)
            log.info("%s: %d CNI events saved with the watches", case, len(mine))
            (folder / "README.md").write_text(readme(case, namespace, mine, pods[case], failures, capacity, captured))
            (folder / "labels.yaml").write_text(yaml.safe_dump(
                labels(case, namespace, cluster.node_name, mine, pods[case],
                       failure if case == "positive" else None), sort_keys=False))
        api.close()
    log.info("done in %.1f s (cluster stopped)", time.monotonic() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
