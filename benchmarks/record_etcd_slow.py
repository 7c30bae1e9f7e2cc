"""Record the slow etcd -> slow API chain on the real cluster: `etcd-slow-api-latency`'s scenarios.

    PYTHONPATH=.:tests/support /work/main/.venv/bin/python benchmarks/record_etcd_slow.py   # as root

Starts the real single-node cluster (`tests/support/realcluster`: Kubernetes v1.20.2 on Debian's etcd-server 3.4)
and, in this process, the etcd collector (`collectors.etcd`, etcd's /metrics) and the API server collector
(`collectors.apiserver`, kube-apiserver's /metrics with the admin's token), both every 5 s. Then, with the same
write load on the API throughout (`tests/support/etcdchain.py`: three threads creating and patching ConfigMaps
in namespace `etcd-load`, as controllers and deploy tools do), two phases:

- negative: `--calm` seconds of the load alone: etcd and the API answer in milliseconds;
- positive: `--calm` seconds of the load, then `--starved` seconds with etcd starved (its writes to its data dir's
  block device throttled to `--iops` a second by a cgroup v1 blkio group; its CPU where there is no block
  device), then etcd back to full speed (the group removed, whatever happens) and `--calm` seconds more.

It prints what each side measured (etcd's WAL fsync and backend commit p99, the API's write p99, per phase) and
saves per case, into `patterns/scenarios/etcd-slow-api-latency/positive|negative/`: `etcd.rawevents.jsonl` and
`apiserver.rawevents.jsonl` (the collectors' RawEvents of that phase, as emitted), `labels.yaml` and
`README.md`. The collectors' events are about the Node (no API object is watched: the chain is between the two
control-plane components). Nothing is edited by hand afterwards.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import kubernetes
import yaml
from collectorthread import Running
from etcdchain import (
    ETCD_SLOW,
    Writes,
    apiserver_collector,
    create_namespace,
    data_dir,
    etcd_collector,
    etcd_pid,
    starved,
)
from realcluster import build
from realcluster.node import RealCluster
from watchrecord import save_rawevents

from core.events import RawEvent

ROOT = Path(__file__).resolve().parents[1]
PATTERN = "etcd-slow-api-latency"
OUT = ROOT / "patterns" / "scenarios" / PATTERN
NAMESPACE = "etcd-load"
log = logging.getLogger("record_etcd_slow")


class Phase:
    """The slice of each collector's events a stretch of time holds, and its wall-clock bounds."""

    def __init__(self, etcd: Running, api: Running) -> None:
        self.etcd, self.api = etcd, api
        self.begin = (len(etcd.snapshot()), len(api.snapshot()))
        self.end = self.begin

    def close(self) -> Phase:
        self.end = (len(self.etcd.snapshot()), len(self.api.snapshot()))
        return self

    def events(self) -> tuple[list[RawEvent], list[RawEvent]]:
        return (self.etcd.events[self.begin[0]:self.end[0]], self.api.events[self.begin[1]:self.end[1]])


def median_sample(events: list[RawEvent], reason: str, name: str) -> float | None:
    """The median over the intervals of one sample (`metric.<name>`) of the metrics events."""
    values = [float(e.metadata[f"metric.{name}"]) for e in events
              if e.metadata.get("reason") == reason and f"metric.{name}" in e.metadata]
    return statistics.median(values) if values else None


def measured(etcd: list[RawEvent], api: list[RawEvent]) -> dict[str, float | None]:
    return {"etcd_wal_fsync_p99_s": median_sample(etcd, "EtcdMetrics", "etcd.wal_fsync_p99_seconds"),
            "etcd_backend_commit_p99_s": median_sample(etcd, "EtcdMetrics", "etcd.backend_commit_p99_seconds"),
            "api_mutating_p99_s": median_sample(api, "APIServerMetrics", "apiserver.mutating_p99_seconds"),
            "api_etcd_request_p99_s": median_sample(api, "APIServerMetrics", "apiserver.etcd_request_p99_seconds")}


def first_link(etcd: list[RawEvent], api: list[RawEvent]) -> tuple[RawEvent, RawEvent] | None:
    """The first etcd slowness and the first APIServerSlow at or after it (what the pattern links first)."""
    slow = [e for e in etcd if e.metadata.get("reason") in ETCD_SLOW]
    if not slow:
        return None
    cause = min(slow, key=lambda e: e.timestamp)
    after = [e for e in api if e.metadata.get("reason") == "APIServerSlow" and e.timestamp >= cause.timestamp]
    return (cause, min(after, key=lambda e: e.timestamp)) if after else None


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f} ms"


def readme(case: str, args: argparse.Namespace, etcd: list[RawEvent], api: list[RawEvent], how: str,
           numbers: dict[str, dict[str, float | None]], captured: datetime) -> str:
    link = first_link(etcd, api)
    if case == "positive":
        starve = (f"its writes to its data dir's block device throttled to {args.iops} a second by a cgroup v1 blkio "
                  "group" if how == "disk" else "its CPU throttled to 5 % of one core by a cgroup v1 cpu group")
        what = (f"{args.calm:.0f} s of the write load, then {args.starved:.0f} s with etcd starved: {starve}; then "
                f"etcd back to full speed and {args.calm:.0f} s more")
    else:
        what = f"{args.calm:.0f} s of the same write load, etcd at full speed"
    rows = ["| | etcd WAL fsync p99 | etcd backend commit p99 | API write p99 | API's etcd requests p99 |",
            "|---|---|---|---|---|"]
    for name, n in numbers.items():
        rows.append(f"| {name} | {_ms(n['etcd_wal_fsync_p99_s'])} | {_ms(n['etcd_backend_commit_p99_s'])} | "
                    f"{_ms(n['api_mutating_p99_s'])} | {_ms(n['api_etcd_request_p99_s'])} |")
    lead = (f"First etcd slowness: {link[0].metadata['reason']} at {link[0].timestamp:%H:%M:%S.%f}"[:-3]
            + f" (\"{link[0].metadata['message']}\"); first APIServerSlow after it at "
            f"{link[1].timestamp:%H:%M:%S.%f}"[:-3] + f", {(link[1].timestamp - link[0].timestamp).total_seconds():.1f} s "
            f"later (\"{link[1].metadata['message']}\"). Both collectors read every 5 s, each on its own clock: "
            "the lead is the phase between their reads, the two sides turn slow together." if link else
            "No etcd slowness and no API latency: nothing for the pattern to link.")
    reasons = sorted({e.metadata.get("reason", "") for e in etcd + api})
    return "\n".join([
        f"# {PATTERN} / {case}", "",
        f"Recorded {captured:%Y-%m-%d %H:%M} UTC on the real single-node cluster (`tests/support/realcluster`:",
        "Kubernetes v1.20.2, Debian's etcd-server 3.4) with the etcd collector (`collectors.etcd`) and the API",
        "server collector (`collectors.apiserver`, the API latency SLO's thresholds: 1 s, LIST 5 s) running in",
        "the recording process, both every 5 s, by `benchmarks/record_etcd_slow.py` (as root:",
        "`PYTHONPATH=.:tests/support python benchmarks/record_etcd_slow.py`). The write load: three threads",
        f"creating and patching ConfigMaps in namespace `{NAMESPACE}`. Nothing was edited by hand.", "",
        f"{what}. Medians over the collectors' 5 s intervals:", "", *rows, "", lead, "",
        f"Files: `etcd.rawevents.jsonl`, `apiserver.rawevents.jsonl` (the collectors' RawEvents during this phase, "
        f"as emitted: {len(etcd)} and {len(api)} events, reasons {', '.join(reasons)}), `labels.yaml`."]) + "\n"


def labels(case: str, node: str, etcd: list[RawEvent], api: list[RawEvent]) -> dict[str, object]:
    """The ground truth: the starved etcd slowed its API server; the same load on a healthy etcd is silent."""
    if case == "negative":
        return {"scenario": f"{PATTERN}/negative", "incidents": [], "silent": [PATTERN],
                "description": "the same write load on the API with etcd at full speed: milliseconds on both sides"}
    link = first_link(etcd, api)
    assert link is not None, "the starved phase has no etcd slowness followed by API latency"
    cause, effect = link
    return {"scenario": f"{PATTERN}/positive",
            "description": "etcd's disk starved under a steady write load on the API: its fsync, commits and applies "
                           "take hundreds of ms to seconds, the API server's writes as long; recorded with the etcd "
                           "and API server collectors",
            "incidents": [{"pattern": PATTERN, "primary": True, "scope": f"node:{node}",
                           "root_cause": {"kind": "Node", "name": node, "reason": cause.metadata["reason"],
                                          "at": cause.timestamp.isoformat()},
                           "affected": [f"Node/{node}"],
                           "failure_at": effect.timestamp.isoformat(), "due_by": effect.timestamp.isoformat()}],
            "silent": []}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--calm", type=float, default=30.0, help="seconds of load with etcd at full speed")
    parser.add_argument("--starved", type=float, default=40.0, help="seconds of load with etcd starved")
    parser.add_argument("--iops", type=int, default=10, help="etcd's writes a second while starved")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    started = time.monotonic()
    with RealCluster(bin_dir=build.build()) as cluster:
        log.info("cluster ready in %.1f s", time.monotonic() - started)
        api = kubernetes.config.new_client_from_config(str(cluster.kubeconfig))
        create_namespace(api, NAMESPACE)
        etcd = Running(etcd_collector(cluster)).start()
        apis = Running(apiserver_collector(cluster, Path(tempfile.mkdtemp(dir=cluster.work_dir)))).start()
        phases: dict[str, Phase] = {}
        numbers: dict[str, dict[str, dict[str, float | None]]] = {}
        how = ""
        try:
            with Writes(api, NAMESPACE) as writes:
                time.sleep(10)  # the load settles; the collectors' first readings (no interval yet) are behind
                phases["negative"] = Phase(etcd, apis)
                time.sleep(args.calm)
                phases["negative"].close()
                phases["positive"] = Phase(etcd, apis)
                calm = Phase(etcd, apis)
                time.sleep(args.calm)
                calm.close()
                with starved(etcd_pid(cluster), data_dir(cluster), iops=args.iops) as how:
                    during = Phase(etcd, apis)
                    time.sleep(args.starved)
                    during.close()
                time.sleep(args.calm)
                phases["positive"].close()
                log.info("writes answered %d, failed %d", writes.done, writes.failed)
        finally:
            etcd.stop()
            apis.stop()
        captured = datetime.now(UTC)
        numbers["negative"] = {"load alone": measured(*phases["negative"].events())}
        numbers["positive"] = {"load, etcd at full speed": measured(*calm.events()),
                               "load, etcd starved": measured(*during.events())}
        for case, phase in phases.items():
            for name, n in numbers[case].items():
                log.info("%s, %s: %s", case, name, ", ".join(f"{k} {_ms(v)}" for k, v in n.items()))
            folder = args.out / case
            folder.mkdir(parents=True, exist_ok=True)
            mine_etcd, mine_api = phase.events()
            save_rawevents(folder / "etcd.rawevents.jsonl", mine_etcd)
            save_rawevents(folder / "apiserver.rawevents.jsonl", mine_api)
            (folder / "README.md").write_text(readme(case, args, mine_etcd, mine_api, how, numbers[case], captured))
            (folder / "labels.yaml").write_text(yaml.safe_dump(labels(case, cluster.node_name, mine_etcd, mine_api),
                                                               sort_keys=False))
            link = first_link(mine_etcd, mine_api)
            log.info("%s: %d etcd and %d API server events saved; first link %s", case, len(mine_etcd),
                     len(mine_api), f"{(link[1].timestamp - link[0].timestamp).total_seconds():.1f} s" if link else "none")
        api.close()
    log.info("done in %.1f s (cluster stopped)", time.monotonic() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
