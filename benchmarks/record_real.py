"""Record the real cluster's failures as a user saves them: the labelled cases of `real-k8s-1.20/`.

    PYTHONPATH=.:tests/support .venv/bin/python benchmarks/record_real.py            # every workload
    PYTHONPATH=.:tests/support .venv/bin/python benchmarks/record_real.py oom-killed # and its twin

Starts the real single-node cluster (`tests/support/realcluster`: Kubernetes v1.20.2, containerd),
creates every workload of `realcluster.workloads` (each failure and its healthy twin, each in its
own namespace, all at once), waits until each failure shows (or the twin is healthy), and saves
per case, with kubectl (/usr/bin/kubectl, the client a user has), into
`patterns/scenarios/diagnosis/real-k8s-1.20/<case>/`:

- `events.json`: `kubectl get events -n NS -o json` (the case's namespace only: every case runs at
  once, and `-A` would hold the other cases' failures);
- `objects.json`: `kubectl get pods,deploy,rs,jobs,cm -n NS -o json`;
- `describe-pods.txt`: `kubectl describe pods -n NS`;
- `<pod>_<container>.log` and `<pod>_<container>_previous.log`: `kubectl logs [--previous]`, when
  kubectl gives a log that is not empty (a twin keeps only the kinds of files its incident has);
- `labels.yaml` and `README.md`.

A case is captured once it shows its state and at least `--min-age` (30 s) after the workloads were
created; the missing Secret waits until its failure is 3 minutes old (`after:190`): younger, the
analysis takes it for a Secret someone is about to create.

Then it stops the cluster. Nothing is edited by hand afterwards.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import kubernetes
import yaml
from realcluster import build
from realcluster.node import RealCluster
from realcluster.workloads import WORKLOADS, Runner, Workload, observe, symptom_object

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "patterns" / "scenarios" / "diagnosis" / "real-k8s-1.20"
FAMILY = "real-k8s-1.20"
KUBECTL = "/usr/bin/kubectl"
CONTAINERD = "1.6.20"
log = logging.getLogger("record_real")


def kubectl(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([KUBECTL, "--kubeconfig", str(kubeconfig), *args], capture_output=True, text=True,
                          timeout=60)


def capture(kubeconfig: Path, workload: Workload, folder: Path, *, logs: bool) -> tuple[list[str], list[str]]:
    """Save the case's files into `folder`; return (the files, what kubectl said on stderr)."""
    ns = workload.namespace
    folder.mkdir(parents=True)
    notes: list[str] = []
    files = {"events.json": ("get", "events", "-n", ns, "-o", "json"),
             "objects.json": ("get", "pods,deploy,rs,jobs,cm", "-n", ns, "-o", "json"),
             "describe-pods.txt": ("describe", "pods", "-n", ns)}
    for name, args in files.items():
        done = kubectl(kubeconfig, *args)
        if done.returncode != 0 or done.stderr.strip():
            notes.append(f"kubectl {' '.join(args)}: exit {done.returncode}: {done.stderr.strip()}")
        if done.stdout.strip():
            (folder / name).write_text(done.stdout)
    if logs:
        pods = json.loads(kubectl(kubeconfig, "get", "pods", "-n", ns, "-o", "json").stdout)["items"]
        for pod in pods:
            for c in pod["spec"]["containers"]:
                for previous in (False, True):
                    args = ("logs", pod["metadata"]["name"], "-c", c["name"], "-n", ns) + (
                        ("--previous",) if previous else ())
                    done = kubectl(kubeconfig, *args)
                    if done.returncode == 0 and done.stdout.strip():
                        suffix = "_previous" if previous else ""
                        (folder / f"{pod['metadata']['name']}_{c['name']}{suffix}.log").write_text(done.stdout)
    return sorted(p.name for p in folder.iterdir()), notes


def formats_of(files: list[str]) -> list[str]:
    out = []
    if any(f.endswith(".json") for f in files):
        out.append("json-list")
    if "describe-pods.txt" in files:
        out.append("describe-new")
    if any(f.endswith(".log") for f in files):
        out.append("log")
    return out


def labels(workload: Workload, *, formats: list[str], captured: datetime, symptom: str) -> dict:
    out: dict = {"case": f"{FAMILY}/{workload.case}", "family": FAMILY, "formats": formats,
                 "incident": workload.incident}
    if workload.incident:
        cause: dict = {"object": symptom, "cause": workload.cause, "mentions": list(workload.mentions)}
        if workload.caused_by:
            kind, name = workload.caused_by.split("/")
            cause["caused_by"] = f"{kind}/{workload.namespace}/{name}"
        out["root_cause"] = cause
    out["capture_time"] = captured.strftime("%Y-%m-%dT%H:%M:%SZ")
    return out


def readme(workload: Workload, *, files: list[str], captured: datetime, took: float, server: str,
           notes: list[str]) -> str:
    what = "Incident" if workload.incident else "Healthy twin"
    lines = [f"# {FAMILY}/{workload.case}", "",
             f"{what}, recorded on a real single-node cluster (`tests/support/realcluster`): Kubernetes "
             f"{server}, containerd {CONTAINERD}, one node named `localhost`, on "
             f"{captured.strftime('%Y-%m-%d %H:%M:%S')} UTC by `benchmarks/record_real.py`.", "",
             f"What was done: {workload.summary}. Namespace `{workload.namespace}`, created with the others at once; "
             f"captured {took:.0f} s after the namespace was created, once the cluster showed "
             f"{', '.join(f'`{c}`' for c in workload.until)} (`realcluster.workloads`).", "",
             "The files, as kubectl 1.32 (a client newer than the server) printed them, none edited:", ""]
    described = {"events.json": "`kubectl get events -n NS -o json` (this namespace only)",
                 "objects.json": "`kubectl get pods,deploy,rs,jobs,cm -n NS -o json`",
                 "describe-pods.txt": "`kubectl describe pods -n NS`"}
    for f in files:
        if f in ("labels.yaml", "README.md"):
            continue
        how = described.get(f) or ("`kubectl logs --previous`" if f.endswith("_previous.log") else "`kubectl logs`")
        lines.append(f"- `{f}`: {how}")
    if notes:
        lines += ["", "kubectl said:", ""] + [f"- {n}" for n in notes]
    if workload.incident:
        lines += ["", f"The answer: `{workload.cause}`" + (f", behind it {workload.caused_by}" if workload.caused_by
                                                            else "") + "."]
    else:
        lines += ["", "The answer: no incident."]
    return "\n".join(lines) + "\n"


def record(kubeconfig: Path, api: kubernetes.client.ApiClient, w: Workload, *, out: Path, logs: bool, server: str,
           took: float) -> list[str]:
    """One case's folder: its files, labels.yaml and README.md; returns the files kubectl gave."""
    folder = out / w.case
    shutil.rmtree(folder, ignore_errors=True)
    captured = datetime.now(UTC)
    files, notes = capture(kubeconfig, w, folder, logs=logs)
    symptom = symptom_object(w, observe(api, w.namespace)) if w.incident else ""
    (folder / "labels.yaml").write_text(yaml.safe_dump(
        labels(w, formats=formats_of(files), captured=captured, symptom=symptom), sort_keys=False))
    (folder / "README.md").write_text(readme(w, files=files, captured=captured, took=took, server=server,
                                             notes=notes))
    log.info("%s after %.0f s: %s (%s)", w.case, took, ", ".join(files), "; ".join(notes) or "kubectl quiet")
    return files


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*", help="cases to record (each with its twin); default: all")
    parser.add_argument("--out", type=Path, default=CORPUS)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--min-age", type=float, default=30.0,
                        help="seconds after the workloads' creation before a case is captured (a user is not that quick)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    chosen = tuple(w for w in WORKLOADS if not args.cases or w.case.removesuffix("-healthy") in args.cases)
    started = time.monotonic()
    with RealCluster(bin_dir=build.build()) as cluster:
        log.info("cluster ready in %.1f s", time.monotonic() - started)
        version = kubectl(cluster.kubeconfig, "version", "-o", "json")
        server = json.loads(version.stdout)["serverVersion"]["gitVersion"]
        log.info("kubectl version: %s", version.stderr.strip() or "no warning")
        api = kubernetes.config.new_client_from_config(str(cluster.kubeconfig))
        runner = Runner(api, chosen)
        runner.start()
        incident_files: dict[str, list[str]] = {}
        cases = {w.case for w in chosen}
        deadline = time.monotonic() + args.timeout
        while len(incident_files) < len(chosen):
            waiting = runner.step()
            waited = time.monotonic() - runner.started
            # each case as soon as it shows its state; a twin after its incident (it takes the same kinds of files)
            for w in chosen:
                twin_of = w.case.removesuffix("-healthy")
                if w.case in incident_files or w.case not in runner.done or waited < args.min_age or (
                        not w.incident and twin_of in cases and twin_of not in incident_files):
                    continue
                logs = w.incident or any(f.endswith(".log") for f in incident_files.get(twin_of, [".log"]))
                incident_files[w.case] = record(cluster.kubeconfig, api, w, out=args.out, logs=logs, server=server,
                                                took=time.monotonic() - runner.started)
            if time.monotonic() > deadline:
                log.error("not reached after %.0f s: %s", args.timeout, waiting)
                return 1
            time.sleep(1)
        log.info("every case recorded in %.1f s", time.monotonic() - started)
        api.close()
    log.info("done in %.1f s (cluster stopped)", time.monotonic() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
