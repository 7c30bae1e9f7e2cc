"""Record the DNS failure -> pod failure chain on the real cluster: `dns-failure-crash`'s scenarios.

    PYTHONPATH=.:tests/support /work/main/.venv/bin/python benchmarks/record_dns_crash.py   # as root

Starts the real single-node cluster (`tests/support/realcluster`: Kubernetes v1.20.2, containerd) and
the DNS collector (`collectors.dns`, AF_PACKET on every interface, port 53, pods named through the
kubelet's read-only `/pods`) in this process; starts `kubectl get -w -o json --output-watch-events` of
pods, Events, ReplicaSets and Deployments in two namespaces; starts a sleeping pod in a third
(`dns-gateway`, not recorded) and waits for its IP (the bridge's gateway exists from then on); starts
a real dnsmasq on the gateway (`good.test` resolves, any other `.test` name is NXDOMAIN); creates
`dns-lookup/lookup`, a busybox app that looks up `orders-db.test` every 2 s and exits 1 when a lookup
fails (NXDOMAIN: exit 1 at every start, CrashLoopBackOff), and its healthy twin `dns-resolved/resolved`,
the same app needing `good.test`. Once the app has restarted `--restarts` times and the twin is Ready,
it saves per namespace, into
`patterns/scenarios/dns-failure-crash/positive|negative/`:

- `dns.rawevents.jsonl`: the DNS collector's RawEvents about the namespace's pods, one JSON object a
  line, as the collector emitted them (`collectors.rawlines` reads them back);
- `<kind>-watch.json`: the API's watch events, one a line (what the kubeapi collector watches);
- `labels.yaml` and `README.md`.

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
import yaml
from collectorthread import Running
from dnschain import BAD_NAME, GOOD_NAME, app, collector, create, gateway, hold_gateway
from nodesources.dns import Dnsmasq
from oomchain import wait_until
from realcluster import build
from realcluster.node import RealCluster
from watchrecord import Watches, save_rawevents

from core.events import RawEvent

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "patterns" / "scenarios" / "dns-failure-crash"
WATCHED = ("pods", "events", "replicasets", "deployments")
CASES = {"positive": ("dns-lookup", "lookup", BAD_NAME), "negative": ("dns-resolved", "resolved", GOOD_NAME)}
log = logging.getLogger("record_dns_crash")


def first_crashloop(api: kubernetes.client.ApiClient, namespace: str) -> float:
    """Wall time (epoch seconds) the pod was first seen waiting in CrashLoopBackOff, polling every 0.2 s."""
    until = time.monotonic() + 180
    core = kubernetes.client.CoreV1Api(api)
    while time.monotonic() < until:
        for pod in core.list_namespaced_pod(namespace).items:
            for status in pod.status.container_statuses or []:
                waiting = status.state.waiting if status.state else None
                if waiting and waiting.reason == "CrashLoopBackOff":
                    return time.time()
        time.sleep(0.2)
    raise AssertionError(f"{namespace}: no CrashLoopBackOff in 180 s")


def readme(case: str, namespace: str, mine: list[RawEvent], restarts: int, captured: datetime) -> str:
    failures = [e for e in mine if e.metadata.get("intent") == "dns-failure"]
    what = (f"`lookup`: a one-replica Deployment whose busybox app runs `nslookup {BAD_NAME} <gateway>` every 2 s "
            f"and exits 1 when it fails; the dnsmasq answers NXDOMAIN, so it exits at every start, the kubelet "
            f"restarts it ({restarts} restarts when saved) and backs off (CrashLoopBackOff)") if case == "positive" else (
            f"`resolved`: the healthy twin, the same app needing `{GOOD_NAME}`, which the dnsmasq resolves: "
            "Ready, never restarted")
    return "\n".join([
        f"# dns-failure-crash / {case}", "",
        f"Recorded {captured:%Y-%m-%d %H:%M} UTC on the real single-node cluster (`tests/support/realcluster`:",
        "Kubernetes v1.20.2, containerd) with the DNS collector (`collectors.dns`, AF_PACKET on every interface,",
        "port 53, pods named through the kubelet's read-only `/pods`) running in the recording process and a",
        "real dnsmasq on the CNI bridge's gateway (`good.test` resolves, any other `.test` name is NXDOMAIN),",
        "by `benchmarks/record_dns_crash.py` (as root: `PYTHONPATH=.:tests/support python",
        "benchmarks/record_dns_crash.py`). Nothing was edited by hand.", "",
        f"Namespace `{namespace}`. {what}. The pods use `dnsPolicy: None` with the gateway as their only nameserver.",
        "", "Files: `dns.rawevents.jsonl` (the DNS collector's RawEvents about this namespace's pods, as emitted:",
        f"{len(mine)} events, {len(failures)} of intent `dns-failure`), `pods|events|replicasets|deployments-watch.json`",
        "(`kubectl get <kind> -n NS -w -o json --output-watch-events`, opened before the workload was created,",
        "one watch event a line: what the kubeapi collector watches), `labels.yaml`."]) + "\n"


def labels(case: str, namespace: str, mine: list[RawEvent], crashloop: float, restarts: int) -> dict[str, object]:
    """The ground truth: the app's NXDOMAIN answers caused its crash loop; the twin is silent."""
    if case == "negative":
        return {"scenario": "dns-failure-crash/negative", "incidents": [], "silent": ["dns-failure-crash"],
                "description": f"resolved: the app's healthy twin, its name {GOOD_NAME} resolves, Ready, never restarted"}
    failures = [e for e in mine if e.metadata.get("intent") == "dns-failure" and e.metadata.get("kind") == "Pod"]
    first = min(failures, key=lambda e: e.timestamp)
    pod = first.metadata["name"]
    failure = datetime.fromtimestamp(crashloop, UTC).isoformat()
    return {"scenario": "dns-failure-crash/positive",
            "description": f"lookup: an app that exits 1 when {BAD_NAME} does not resolve, NXDOMAIN from the "
                           f"dnsmasq, {restarts} restarts, CrashLoopBackOff; recorded with the DNS collector",
            "incidents": [{"pattern": "dns-failure-crash", "primary": True, "scope": f"object:Pod/{namespace}/{pod}",
                           "root_cause": {"kind": "Pod", "namespace": namespace, "name": pod,
                                          "reason": first.metadata["reason"], "at": first.timestamp.isoformat()},
                           "affected": [f"Pod/{namespace}/{pod}"], "failure_at": failure, "due_by": failure}],
            "silent": []}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--restarts", type=int, default=2, help="restarts of the app before saving")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    started = time.monotonic()
    with RealCluster(bin_dir=build.build()) as cluster:
        log.info("cluster ready in %.1f s", time.monotonic() - started)
        api = kubernetes.config.new_client_from_config(str(cluster.kubeconfig))
        server = gateway(cluster)
        dns = Running(collector(cluster)).start()
        watches = Watches(cluster.kubeconfig, Path(cluster.work_dir) / "dns-record",
                          {case: ns for case, (ns, _, _) in CASES.items()}, WATCHED)
        crashloop, restarts = 0.0, 0
        try:
            with watches:
                hold_gateway(api, "dns-gateway")  # the bridge's gateway exists before the dnsmasq listens on it
                with Dnsmasq(address=server, port=53):
                    for ns, name, wanted in CASES.values():
                        create(api, ns, name, app(wanted, server), server)
                    ns = CASES["positive"][0]
                    crashloop = first_crashloop(api, ns)
                    restarts = wait_until(api, ns, restarts=args.restarts, deadline=180)[2]
                    twin = wait_until(api, "dns-resolved", ready=True, deadline=60)
                    assert twin[2] == 0, f"the healthy twin restarted: {twin}"
                    time.sleep(3)  # the last status and Events reach the watches; the collector's next batch
                    log.info("lookup restarted %d times; twin %s ready, restarts %d", restarts, twin[0], twin[2])
        finally:
            dns.stop()
        captured = datetime.now(UTC)
        for case, (ns, _, _) in CASES.items():
            folder = args.out / case
            watches.save(case, folder)
            mine = [e for e in dns.events if e.metadata.get("namespace") == ns]
            save_rawevents(folder / "dns.rawevents.jsonl", mine)
            log.info("%s: %d DNS events saved with the watches", case, len(mine))
            (folder / "README.md").write_text(readme(case, ns, mine, restarts, captured))
            (folder / "labels.yaml").write_text(yaml.safe_dump(labels(case, ns, mine, crashloop, restarts),
                                                               sort_keys=False))
        api.close()
    log.info("done in %.1f s (cluster stopped)", time.monotonic() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
