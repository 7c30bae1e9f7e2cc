"""Record the DNS failure -> pod failure chain on the real cluster: `dns-failure-crash`'s scenarios.

    PYTHONPATH=.:tests/support /work/main/.venv/bin/python benchmarks/record_dns_crash.py   # as root

Starts the real single-node cluster (`tests/support/realcluster`: Kubernetes v1.20.2, containerd) and
the DNS collector (`collectors.dns`, AF_PACKET on every interface, port 53, pods named through the
kubelet's read-only `/pods`) in this process; starts `kubectl get -w -o json --output-watch-events` of
pods, Events, Endpoints, ReplicaSets and Deployments in two namespaces; starts a sleeping pod in a third
(`dns-gateway`, not recorded) and waits for its IP (the bridge's gateway exists from then on); starts
a real dnsmasq on the gateway (`good.test` resolves, and `orders-db.test` while its record exists, any
other `.test` name is NXDOMAIN); creates `dns-lookup/lookup`, a busybox app behind a Service that looks
up `orders-db.test` every 2 s and exits 1 when a lookup fails, and its healthy twin
`dns-resolved/resolved`, the same app needing `good.test`. Once the app is Ready, it deletes the
record (the dnsmasq reloads without it): NXDOMAIN, the app exits, crash-loops and its Service has no
ready endpoint. Once the app has restarted `--restarts` times and the twin is Ready,
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
from dnschain import BAD_NAME, GOOD_NAME, RECORDS, app, collector, create, gateway, hold_gateway
from nodesources.dns import Dnsmasq
from oomchain import wait_until
from realcluster import build
from realcluster.node import RealCluster
from watchrecord import Watches, save_rawevents

from core.events import RawEvent

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "patterns" / "scenarios" / "dns-failure-crash"
WATCHED = ("pods", "events", "endpoints", "replicasets", "deployments")
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


def first_unready(api: kubernetes.client.ApiClient, namespace: str, service: str) -> float:
    """Poll the Service's Endpoints every 0.2 s until no address is ready: when that was first seen."""
    core = kubernetes.client.CoreV1Api(api)
    until = time.monotonic() + 120
    while time.monotonic() < until:
        subsets = core.read_namespaced_endpoints(service, namespace).subsets or []
        if not any(s.addresses for s in subsets):
            return time.time()
        time.sleep(0.2)
    raise AssertionError(f"{namespace}/{service}: its Endpoints kept a ready address for 120 s")


def readme(case: str, namespace: str, mine: list[RawEvent], restarts: int, captured: datetime) -> str:
    failures = [e for e in mine if e.metadata.get("intent") == "dns-failure"]
    what = (f"`lookup`: a one-replica Deployment behind a Service whose busybox app runs `nslookup {BAD_NAME} "
            f"<gateway>` every 2 s and exits 1 when it fails; it is Ready while the dnsmasq holds the name's record, "
            f"then the record is deleted (the dnsmasq reloads without it): NXDOMAIN, so it exits, the kubelet "
            f"restarts it ({restarts} restarts when saved) and backs off (CrashLoopBackOff), and the Service's "
            f"Endpoints have no ready address") if case == "positive" else (
            f"`resolved`: the healthy twin, the same app needing `{GOOD_NAME}`, which the dnsmasq resolves: "
            "Ready, never restarted")
    return "\n".join([
        f"# dns-failure-crash / {case}", "",
        f"Recorded {captured:%Y-%m-%d %H:%M} UTC on the real single-node cluster (`tests/support/realcluster`:",
        "Kubernetes v1.20.2, containerd) with the DNS collector (`collectors.dns`, AF_PACKET on every interface,",
        "port 53, pods named through the kubelet's read-only `/pods`) running in the recording process and a",
        "real dnsmasq on the CNI bridge's gateway (`good.test` resolves, and `orders-db.test` while its record",
        "exists, any other `.test` name is NXDOMAIN),",
        "by `benchmarks/record_dns_crash.py` (as root: `PYTHONPATH=.:tests/support python",
        "benchmarks/record_dns_crash.py`). Nothing was edited by hand.", "",
        f"Namespace `{namespace}`. {what}. The pods use `dnsPolicy: None` with the gateway as their only nameserver.",
        "", "Files: `dns.rawevents.jsonl` (the DNS collector's RawEvents about this namespace's pods, as emitted:",
        f"{len(mine)} events, {len(failures)} of intent `dns-failure`), `pods|events|endpoints|replicasets|deployments-watch.json`",
        "(`kubectl get <kind> -n NS -w -o json --output-watch-events`, opened before the workload was created,",
        "one watch event a line: what the kubeapi collector watches), `labels.yaml`."]) + "\n"


def labels(case: str, namespace: str, mine: list[RawEvent], crashloop: float, restarts: int,
           unready: str = "") -> dict[str, object]:
    """The ground truth: the app's NXDOMAIN answers caused its crash loop; the twin is silent."""
    if case == "negative":
        return {"scenario": "dns-failure-crash/negative", "incidents": [],
                "silent": ["dns-failure-crash", "dns-failure-service-outage"],
                "description": f"resolved: the app's healthy twin, its name {GOOD_NAME} resolves, Ready, never restarted"}
    failures = [e for e in mine if e.metadata.get("intent") == "dns-failure" and e.metadata.get("kind") == "Pod"]
    first = min(failures, key=lambda e: e.timestamp)
    pod = first.metadata["name"]
    failure = datetime.fromtimestamp(crashloop, UTC).isoformat()
    return {"scenario": "dns-failure-crash/positive",
            "description": f"lookup: an app behind a Service that exits 1 when {BAD_NAME} does not resolve; "
                           f"Ready, then its record deleted: NXDOMAIN from the dnsmasq, {restarts} restarts, "
                           "CrashLoopBackOff, no ready endpoint; recorded with the DNS collector",
            "incidents": [{"pattern": "dns-failure-crash", "primary": True, "scope": f"object:Pod/{namespace}/{pod}",
                           "root_cause": {"kind": "Pod", "namespace": namespace, "name": pod,
                                          "reason": first.metadata["reason"], "at": first.timestamp.isoformat()},
                           "affected": [f"Pod/{namespace}/{pod}"], "failure_at": failure, "due_by": failure},
                          # the same failure seen from the Service: its Endpoints left without a ready address
                          {"pattern": "dns-failure-service-outage", "primary": False,
                           "scope": f"object:Pod/{namespace}/{pod}",
                           "root_cause": {"kind": "Pod", "namespace": namespace, "name": pod,
                                          "reason": first.metadata["reason"], "at": first.timestamp.isoformat()},
                           "affected": [f"Pod/{namespace}/{pod}", f"Endpoints/{namespace}/lookup"],
                           "failure_at": unready, "due_by": unready}],
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
        crashloop, restarts, unready = 0.0, 0, 0.0
        try:
            with watches:
                hold_gateway(api, "dns-gateway")  # the bridge's gateway exists before the dnsmasq listens on it
                with Dnsmasq(address=server, port=53, records=RECORDS) as dnsmasq:
                    for ns, name, wanted in CASES.values():
                        create(api, ns, name, app(wanted, server), server)
                    ns = CASES["positive"][0]
                    wait_until(api, ns, ready=True, deadline=120)  # it serves while the name resolves
                    time.sleep(5)
                    dnsmasq.remove_records()
                    unready = first_unready(api, ns, "lookup")
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
            (folder / "labels.yaml").write_text(yaml.safe_dump(labels(case, ns, mine, crashloop, restarts,
                                                                      datetime.fromtimestamp(unready, UTC).isoformat()),
                                                               sort_keys=False))
        api.close()
    log.info("done in %.1f s (cluster stopped)", time.monotonic() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
