"""Record the refused connections -> readiness probe failure -> out of its Service chain on the real cluster: `tcp-refused-probe-failure`'s scenarios.

    PYTHONPATH=.:tests/support /work/main/.venv/bin/python benchmarks/record_tcp_refused.py   # as root

Starts the real single-node cluster (`tests/support/realcluster`: Kubernetes v1.20.2, containerd, no
kube-proxy) and the kernel collector (`collectors.kernel`, eBPF on tracepoints, pods named through
the kubelet's read-only `/pods`) in this process; starts `kubectl get -w -o json --output-watch-events`
of pods, Events, endpoints, ReplicaSets and Deployments in two namespaces. In each it creates
(`tests/support/tcpchain.py`) `peer` (busybox httpd on 8080, behind a Service) and, once it runs,
`client` (checks `nc -w 1 <peer's pod IP> 8080` every second; after two failed checks in a row its
exec readiness probe fails, as an app whose health endpoint checks its dependency), and waits until
the client is Ready. Then:

- positive (`tcp-refused`): the peer's server is killed, its pod runs on with nothing listening: its
  kernel answers the client's SYNs with a RST, the client's connections are refused, its readiness
  probe fails (the kubelet's Unhealthy Events) and its Service `client` has no ready address left;
- negative (`tcp-calm`): the same two, the peer listening throughout: the client stays Ready.

It saves per case, into `patterns/scenarios/tcp-refused-probe-failure/positive|negative/`:
`kernel.rawevents.jsonl` (the kernel collector's RawEvents about the namespace's pods, as emitted),
`<kind>-watch.json` (the watch events of the namespace, one a line), `labels.yaml` and `README.md`
with the kernel's lead measured: the first refused connection the collector attributed to the client's
pod, against when polling the API every 0.2 s first showed the kubelet's Unhealthy Event and the
Service without a ready address. Then it stops everything. Nothing is edited by hand afterwards.
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
from realcluster import build
from realcluster.node import RealCluster
from tcpchain import create, pod_of, readiness_failures, ready_endpoints, stop_listening, wait_for
from watchrecord import Watches, save_rawevents

from collectors.kernel import KernelCollector
from collectors.podresolve import PodResolver
from core.events import RawEvent

ROOT = Path(__file__).resolve().parents[1]
PATTERN = "tcp-refused-probe-failure"
OUT = ROOT / "patterns" / "scenarios" / PATTERN
WATCHED = ("pods", "events", "endpoints", "replicasets", "deployments")
CASES = {"positive": "tcp-refused", "negative": "tcp-calm"}
log = logging.getLogger("record_tcp_refused")


class Seen(msgspec.Struct, kw_only=True):
    """Wall times (epoch seconds) of what polling the API showed of the positive case's client."""

    stopped: float = 0.0  # the peer told to stop listening
    unhealthy: float = 0.0  # the first Unhealthy Event about the client listed
    unready: float = 0.0  # its Service first listed no ready address
    failures: list[str] = []  # the Unhealthy Events' messages when saved


def watch_failure(api: kubernetes.client.ApiClient, namespace: str, pod: str, seen: Seen, failures: int) -> None:
    """Poll every 0.2 s until the client's Service has no ready address and `failures` Unhealthy Events."""
    def check() -> bool:
        messages = readiness_failures(api, namespace, pod)
        if messages and not seen.unhealthy:
            seen.unhealthy = time.time()
        if not seen.unready and ready_endpoints(api, namespace, "client") == 0:
            seen.unready = time.time()
        seen.failures = messages
        return bool(seen.unready) and len(messages) >= failures
    wait_for(f"{namespace}: the client unready with {failures} Unhealthy Events", check, 120)


def refusals(mine: list[RawEvent], pod: str) -> list[RawEvent]:
    """The kernel collector's refused or failed connections about the client's pod, oldest first."""
    return sorted((e for e in mine if e.metadata.get("reason") == "TCPConnectFailed"
                   and e.metadata.get("name") == pod), key=lambda e: e.timestamp)


def _hms(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%H:%M:%S.%f")[:-3]


def readme(case: str, namespace: str, mine: list[RawEvent], client: str, peer_ip: str, seen: Seen,
           captured: datetime) -> str:
    reasons = sorted({e.metadata.get("reason", "") for e in mine})
    what = (f"`peer` (pod IP {peer_ip}) served on 8080 until `{_hms(seen.stopped)}`, when its server was killed "
            f"(the pod runs on, nothing listens); `client` (pod `{client}`) checks it every second: its connections "
            f"are refused, after two failed checks its readiness probe fails ({len(seen.failures)} failures in its Unhealthy Events when saved, e.g. "
            f"\"{seen.failures[0].strip() if seen.failures else ''}\") and its Service has no ready address left"
            ) if case == "positive" else (
            f"`peer` (pod IP {peer_ip}) serves on 8080 throughout; `client` (pod `{client}`) checks it every second "
            "and stays Ready")
    lines = [f"# {PATTERN} / {case}", "",
             f"Recorded {captured:%Y-%m-%d %H:%M} UTC on the real single-node cluster (`tests/support/realcluster`:",
             "Kubernetes v1.20.2, containerd, no kube-proxy: the client is given the peer pod's IP) with the kernel",
             "collector (`collectors.kernel`, eBPF on tracepoints, pods named through the kubelet's read-only `/pods`)",
             "running in the recording process, by `benchmarks/record_tcp_refused.py` (as root: `PYTHONPATH=.:tests/support",
             "python benchmarks/record_tcp_refused.py`). Nothing was edited by hand.", "",
             f"Namespace `{namespace}`. {what}.", "",
             "Files: `kernel.rawevents.jsonl` (the kernel collector's RawEvents about this namespace's pods, as emitted:",
             f"{len(mine)} events, reasons {', '.join(reasons) or 'none'}), `pods|events|endpoints|replicasets|deployments-watch.json`",
             "(`kubectl get <kind> -n NS -w -o json --output-watch-events`, opened before the workload was created,",
             "one watch event a line: what the kubeapi collector watches), `labels.yaml`."]
    refused = refusals(mine, client)
    if case == "positive" and refused:
        first = refused[0].timestamp.timestamp()
        lines += ["", "The kernel's lead: the first refused connection the kernel collector attributed to the client's pod",
                  "(stamped with the kernel's time of the first refusal counted in its 0.5 s interval), and when polling",
                  "the API every 0.2 s first showed the kubelet's Unhealthy Event and the Service without a ready address",
                  "(each at most 0.2 s later than it happened):", "",
                  "| peer stops listening | kernel: connection refused | API: Unhealthy Event | API: no ready endpoint |",
                  "|---|---|---|---|",
                  f"| {_hms(seen.stopped)} | {_hms(first)} | {_hms(seen.unhealthy)} "
                  f"(+{seen.unhealthy - first:.2f} s) | {_hms(seen.unready)} (+{seen.unready - first:.2f} s) |"]
    return "\n".join(lines) + "\n"


def labels(case: str, namespace: str, mine: list[RawEvent], client: str, seen: Seen,
           captured: datetime) -> dict[str, object]:
    """The ground truth: the refused connections made the client fail its probe and leave its Service;
    its probe failing alone is `probe-failure` too (the last ready pod); the healthy twin is silent."""
    silent = [PATTERN, "probe-failure", "network-partition", "dns-failure-crash", "liveness-death-spiral"]
    if case == "negative":
        return {"scenario": f"{PATTERN}/negative", "incidents": [], "silent": silent,
                "description": "calm: the client's peer listens throughout; the client stays Ready"}
    first = refusals(mine, client)[0]
    failure = datetime.fromtimestamp(seen.unready, UTC).isoformat()
    return {"scenario": f"{PATTERN}/positive",
            "description": "refused: the client's peer stops listening (its pod runs on), the kernel refuses the "
                           "client's connections, its readiness probe fails, its Service has no ready address; "
                           "recorded with the kernel collector",
            "incidents": [{"pattern": PATTERN, "primary": True, "scope": f"object:Pod/{namespace}/{client}",
                           "root_cause": {"kind": "Pod", "namespace": namespace, "name": client,
                                          "reason": first.metadata["reason"], "at": first.timestamp.isoformat()},
                           "affected": [f"Pod/{namespace}/{client}"], "failure_at": failure, "due_by": failure},
                          # the only ready pod of the client failing readiness, its Service left with none
                          {"pattern": "probe-failure", "primary": False,
                           "scope": f"owner:Deployment/{namespace}/client",
                           "failure_at": captured.isoformat(), "due_by": captured.isoformat()}],
            "silent": silent[2:]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--failures", type=int, default=3, help="readiness failures of the client (counted in its Unhealthy Events) before saving")
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
        control = Path(cluster.work_dir) / "tcp-record-control"
        watches = Watches(cluster.kubeconfig, Path(cluster.work_dir) / "tcp-record", CASES, WATCHED)
        seen = Seen()
        made: dict[str, tuple[str, str]] = {}  # case -> (client pod, peer IP)
        try:
            with watches:
                for case, namespace in CASES.items():
                    made[case] = create(api, namespace, control / namespace)
                    log.info("%s: client %s Ready against peer %s", namespace, *made[case])
                positive = CASES["positive"]
                seen.stopped = stop_listening(control / positive)
                watch_failure(api, positive, made["positive"][0], seen, args.failures)
                calm = pod_of(api, CASES["negative"], "client")
                assert calm[2] and not readiness_failures(api, CASES["negative"], calm[0]), f"the twin failed: {calm}"
                time.sleep(3)  # the last status and Events reach the watches; the collector's next batch
                log.info("client %s unready %.1f s after the peer stopped; twin %s Ready", made["positive"][0],
                         seen.unready - seen.stopped, calm[0])
        finally:
            kernel.stop()
        captured = datetime.now(UTC)
        nodes = [e.metadata.get("message") for e in kernel.events if e.metadata.get("reason", "").startswith("TCP")
                 and not e.metadata.get("namespace")]
        log.info("TCP events about no pod: %d, e.g. %s", len(nodes), nodes[:5])
        for case, namespace in CASES.items():
            folder = args.out / case
            watches.save(case, folder)
            mine: list[RawEvent] = [e for e in kernel.events if e.metadata.get("namespace") == namespace]
            save_rawevents(folder / "kernel.rawevents.jsonl", mine)
            client, peer_ip = made[case]
            log.info("%s: %d kernel events (%d refusals of the client), watches saved", case, len(mine),
                     len(refusals(mine, client)))
            (folder / "README.md").write_text(readme(case, namespace, mine, client, peer_ip, seen, captured))
            (folder / "labels.yaml").write_text(yaml.safe_dump(labels(case, namespace, mine, client, seen, captured),
                                                               sort_keys=False))
        api.close()
    log.info("done in %.1f s (cluster stopped)", time.monotonic() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
