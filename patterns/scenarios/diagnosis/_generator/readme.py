"""Writes patterns/scenarios/diagnosis/README.md: the fixed text below plus the table of cases read from every labels.yaml."""
import os

import yaml

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

CAUSES = [
    ("missing-env-var", "the process exits at start-up because a required environment variable is unset"),
    ("tls-certificate", "a TLS certificate the container presents or checks is expired/invalid"),
    ("shell-syntax-error", "the container's `sh -c` script does not parse"),
    ("dependency-unreachable", "the container exits because a dependency (database, cache) refuses or times out at host:port"),
    ("dns-resolution", "the container exits because a host name it needs does not resolve"),
    ("permission-denied", "the process cannot open/write a file or directory (EACCES)"),
    ("app-panic", "the application crashes on an unhandled error (Go panic, Python traceback)"),
    ("unknown-command-or-flag", "the image's CLI rejects the command or a flag the pod spec passes (typically after an upgrade)"),
    ("command-exits", "the command finishes with exit 0 and `restartPolicy: Always` restarts it forever"),
    ("app-error-exit", "the process exits non-zero without logging why"),
    ("oom-killed", "the kernel OOM killer ends the container at its memory limit (OOMKilled, 137)"),
    ("segfault", "the process dies of SIGSEGV (exit 139)"),
    ("node-selector-mismatch", "no node matches the pod's nodeSelector / required node affinity"),
    ("untolerated-taint", "every candidate node has a taint the pod does not tolerate"),
    ("insufficient-resource", "no node has enough allocatable cpu / memory / extended resource (e.g. nvidia.com/gpu)"),
    ("unbound-pvc", "the pod waits for a PersistentVolumeClaim that does not bind"),
    ("too-many-pods", "the nodes are at their pod capacity"),
    ("node-not-ready", "a node is NotReady/Unknown (kubelet down, no CNI); pods cannot be placed or run there"),
    ("readiness-probe-failure", "the readiness probe fails; the pod runs but is not Ready"),
    ("liveness-probe-failure", "the liveness probe fails and the kubelet restarts the container"),
    ("startup-probe-failure", "the startup probe gives up before the application is up; the kubelet kills it"),
    ("probe-exec-failure", "an exec probe command exits non-zero"),
    ("image-auth", "the registry refuses the pull for lack of (valid) credentials"),
    ("image-not-found", "the image reference (tag/digest) does not exist in the registry"),
    ("image-never-pulled", "the image is not on the node and imagePullPolicy is Never (ErrImageNeverPull)"),
    ("registry-dns", "the registry host name does not resolve on the node"),
    ("registry-tls", "the registry's certificate is not trusted by the runtime (x509)"),
    ("registry-rate-limit", "the registry throttles pulls (HTTP 429 toomanyrequests)"),
    ("missing-configmap", "a ConfigMap the pod mounts or reads does not exist"),
    ("missing-secret", "a Secret the pod mounts or reads does not exist"),
    ("missing-serviceaccount", "the ServiceAccount named in the pod template does not exist; the ReplicaSet cannot create pods"),
    ("missing-storageclass", "a PVC names a StorageClass that does not exist"),
    ("volume-attach", "the volume cannot be attached (Multi-Attach, attach timeout)"),
    ("job-backoff-limit", "a Job's pods keep failing until BackoffLimitExceeded"),
    ("job-deadline", "a Job ran past activeDeadlineSeconds (DeadlineExceeded)"),
    ("node-disk-pressure", "the kubelet evicts pods because the node is low on ephemeral-storage / disk"),
    ("node-memory-pressure", "the kubelet evicts pods because the node is low on memory"),
    ("node-pid-pressure", "the kubelet evicts pods because the node is low on process IDs"),
    ("bad-rollout", "a new Deployment revision's pods fail while the previous ReplicaSet still serves"),
    ("runtime-handler-missing", "the pod's RuntimeClass names a handler the node's container runtime does not have (FailedCreatePodSandBox, ContainerCreating)"),
    ("pod-ip-exhausted", "the node's CNI address pool has no address left for a new pod (FailedCreatePodSandBox, ContainerCreating)"),
    ("progress-deadline", "a Deployment rollout exceeded progressDeadlineSeconds (ProgressDeadlineExceeded)"),
    ("unavailable-replicas", "a StatefulSet/Deployment runs with fewer ready replicas than desired"),
    ("networkpolicy-denies-egress", "a NetworkPolicy blocks the pod's egress (here: DNS)"),
    ("dependency-down", "pods are healthy but requests fail because an external dependency is down or unreachable"),
]

HEAD = """# Recordings: a labelled corpus of failing (and healthy) clusters

Each folder `patterns/scenarios/diagnosis/<family>/<case>/` holds what a user would have saved from a cluster, as
they would have saved it, plus `labels.yaml` (the answer) and a short `README.md` (what happened,
the timeline, whether the input shows the capture time). Every incident `<case>` has a healthy twin
`<case>-healthy` in the same formats: the same application working, or a near miss (a probe that
failed once during start-up, a pod Pending for two seconds, a pull that hit a rate limit once and
then succeeded, a Job that succeeded on its retry, an alert that resolved). The correct answer for a
twin is "no incident".

`_generator/` is not a case: it holds the Python that produced every file (`run.py`), the checker
(`check.py`: JSON/YAML parse, the label schema, twins, mentions present in the inputs) and this
README's writer (`readme.py`). The outputs are deterministic (seeded); `python3 _generator/run.py`
rewrites the case folders, `python3 _generator/check.py` checks them.

## labels.yaml

```yaml
case: containers/missing-env-var          # <family>/<case folder>
family: containers
formats: [describe-new, log]               # the input formats present (list below)
incident: true                             # false for a healthy twin
root_cause:                                # omitted when incident is false
  object: Pod/payments/ledger-api-6c9f7b8d54-qk7tw   # Kind/namespace/name of the symptom object (Kind/name when cluster-scoped)
  cause: missing-env-var                   # a cause code (list below)
  mentions: [LEDGER_DB_DSN]                # 1-3 strings a correct top answer must name (case-insensitive)
  caused_by: ConfigMap/ns/name             # optional: the object behind the cause, when the input names it
capture_time: "2026-11-30T14:22:05Z"       # when kubectl ran; relative ages in the text are relative to it
```

`mentions` are strings of the inputs (a variable, a resource name, host:port, a label key, a
reason) except where noted in the case README (`DNS` in `networkpolicy-denies-egress` is a
concept). `caused_by` may name an object that is missing from the cluster (a Secret, a
ServiceAccount) when the input names it.

`capture_time` is the clock of the machine that ran kubectl. In `images/registry-rate-limit` that
clock was 95 s behind the API server, so recent events print `<invalid>`; its README says so.

## Formats

| format | what the file is |
|---|---|
| `describe-new` | `kubectl describe pod/job` as kubectl 1.28-1.32 print it (space-aligned tabwriter, `Events:` table `Type Reason Age From Message`, ages like `54s (x6 over 6m11s)`) |
| `describe-old` | older layouts: kubectl 1.18/1.19 (`From` is `kubelet, <node>`, the scheduler's events.k8s.io event has age `<unknown>`) and kubectl 1.6 (tab-aligned, `Controllers:`, events as `FirstSeen LastSeen Count From SubObjectPath Type Reason Message`) |
| `events-get` | `kubectl get events` (`LAST SEEN TYPE REASON OBJECT MESSAGE`, object as `kind/name`, `-A` adds `NAMESPACE`); an empty namespace prints `No resources found in <ns> namespace.` |
| `events-kubectl` | `kubectl events` (`LAST SEEN` with `(xN over T)`, object as `Kind/name`); empty prints `No events found in <ns> namespace.` |
| `json-list` | `kubectl get ... -o json`: a `v1 List`, keys sorted, 4-space indent, items with `apiVersion`/`kind` |
| `yaml-list` | `kubectl get ... -o yaml`: the same as YAML (go-yaml quoting: `status: "True"`, quoted timestamps) |
| `bundle` | a troubleshoot.sh-style support bundle: `cluster-resources/<resource>/<ns>.json` as typed lists (`PodList`, `EventList`, ...) whose items carry no `kind`/`apiVersion`, logs under `cluster-resources/pods/logs/<ns>/<pod>/<container>.log` and `<container>-previous.log` |
| `sonobuoy` | Sonobuoy results as `sonobuoy retrieve` gives them, extracted: `resources/ns/<ns>/<Kinds>.json` and `resources/cluster/<Kinds>.json` (JSON lists: `Pods.json`, `Events.json`, `Nodes.json`, ...), container logs under `podlogs/<ns>/<pod>/logs/<container>.txt` (current logs only), Sonobuoy's own `meta/` and `serverversion.json`; written by hand, not by this generator |
| `log` | container logs: `previous.log`, `<pod>_<container>_previous.log`, `<pod>.log`, `current.log`, `logs/<pod>.log` |
| `manifest` | a multi-document YAML the user applied (no status, no timestamps) |
| `alertmanager` | an Alertmanager webhook payload or `amtool alert query -o json` output |
| `get-table` | `kubectl get pods/nodes [-A] [-o wide]` tables (`NAME READY STATUS RESTARTS AGE ...`, `NAME STATUS ROLES AGE VERSION ...`), tabwriter-aligned, RESTARTS like `6 (2m1s ago)` |

Files that are not Kubernetes data and that a reader should skip (or treat as hints) appear in
four cases: `containers/oom-killed/prometheus-query-range.json` (a Prometheus API answer),
`nodes/node-not-ready*/kubectl-version.json` (`kubectl version -o json`), in the bundle of
`workloads/bad-rollout*`, `version.yaml` and `cluster-info/cluster_version.json`, and in the Sonobuoy
results of `containers/sonobuoy-crashloop-missing-file*`, `meta/` and `serverversion.json`.

The `get-table` cases (`containers/get-pods-crashloop-env*`, `nodes/get-nodes-notready*`) were
written by hand in kubectl's table format, not by `run.py`; `run.py` does not touch them.

`real-k8s-1.20/` is not written by `run.py` either: it holds real captures, made on the real
single-node cluster of the tests (Kubernetes v1.20.2, containerd 1.6.20) by
`benchmarks/record_real.py` from the workloads of `tests/support/realcluster/workloads.py` (each
case's README says what was done and when), and saved by kubectl 1.32 as a user saves them:
`kubectl get events -n NS -o json`, `kubectl get pods,deploy,rs,jobs,cm -n NS -o json`, `kubectl
describe pods -n NS`, `kubectl logs [--previous]`. Their family is the folder (`real-k8s-1.20`), so
`tapio backtest` scores them as one row; the cause codes are those below.

## Cause codes

| code | meaning |
|---|---|
"""

HOW = """
## How the recordings were made

Outside `real-k8s-1.20/`, nothing here is copied from another project's fixtures, from the Kubernetes website's example
outputs or from real captures; clusters, namespaces, applications, images, hosts and times are
invented and vary from case to case. The *vocabulary and layout* follow the Kubernetes sources:

- `staging/src/k8s.io/kubectl/pkg/describe/describe.go` (describePod, describeContainers,
  describeStatus, DescribeProbe, describeVolumes, printLabelsMultiline, printAnnotationsMultiline,
  printPodTolerationsMultiline, DescribeEvents with its `w.Flush()` before the events, describeJob,
  DescribePodTemplate, tabbedString: `tabwriter.Init(buf, 0, 8, 2, ' ', 0)`), and for the 1.6 layout
  `pkg/printers/internalversion/describe.go` (`Init(buf, 0, 8, 1, '\\t', 0)`, `Controllers:` from
  `kubernetes.io/created-by`, `formatEventSource`, the FirstSeen/LastSeen table). The generator
  re-implements Go's `text/tabwriter` column-block algorithm, so alignment (including the breaks at
  `Limits:`, `Args:`, `Volumes:` and the QoS/Tolerations block) is what kubectl produces.
- Ages: `apimachinery/pkg/util/duration.HumanDuration` (new) and `ShortHumanDuration` (old kubectl).
- `kubectl get events` (server-side table printer, lower-case `kind/name`) and `kubectl events`
  (`pkg/cmd/events/event_printer.go`: `Kind/name`, `(xN over T)`), both through
  `printers.GetNewTabWriter` (min width 6, padding 3).
- Scheduler: `FitError` (`0/%v nodes are available: ...` with sorted `count reason` pairs and the
  `preemption:` post-filter message; 1.6's `No nodes are available that match all of the following
  predicates:: Insufficient cpu (3).`), plugin reasons (`didn't match Pod's node affinity/selector`,
  `had untolerated taint {key: value}`, `Insufficient <resource>`, `Too many pods`,
  `pod has unbound immediate PersistentVolumeClaims`, `volume node affinity conflict`).
- Kubelet: image manager (`Pulling image`, `Successfully pulled image "x" in a (b including waiting).
  Image size: N bytes.`, `Failed to pull image`, `Error: ErrImagePull`, `Back-off pulling image`,
  `Error: ImagePullBackOff`), container events (`Created container[:] x`, `Started container x`,
  `Back-off restarting failed container x in pod p_ns(uid)`), probes (`Readiness probe failed: HTTP
  probe failed with statuscode: 503`, `Container x failed liveness probe, will be restarted`),
  volumes (`MountVolume.SetUp failed for volume ... not found`), eviction
  (`The node was low on resource: %v. Threshold quantity: %v, available: %v. Container %s was using
  %s, request is %s, has larger consumption of %v.`, `EvictionThresholdMet: Attempting to reclaim %s`);
  containerd/CRI-O pull error texts (`failed to resolve reference`, `manifest unknown`, `no such
  host`, `x509: certificate signed by unknown authority`, `429 Too Many Requests - Server message:
  toomanyrequests`).
- Controllers: node lifecycle (`NodeStatusUnknown`, `Kubelet stopped posting node status.`,
  `node.kubernetes.io/unreachable` taints, `TaintManagerEviction`), job controller
  (`BackoffLimitExceeded`, `DeadlineExceeded`, `FailureTarget`), deployment controller
  (`ProgressDeadlineExceeded`, `ReplicaSet "x" has timed out progressing.`), replicaset controller
  (`FailedCreate ... error looking up service account`), PV controller (`ProvisioningFailed`,
  `FailedBinding`), attach/detach controller (`Multi-Attach error`).
- Alerts: kube-prometheus `KubePodCrashLooping` rule text; `KubeContainerOOMKilled` is a custom
  rule (the name many teams use; it is not in kubernetes-mixin).

Object JSON follows the API's field names and, for support bundles, client-go's struct order; the
pod status fields (conditions with `PodReadyToStartContainers` from 1.29, `DisruptionTarget` on
evictions, `hostIPs`, container `lastState.terminated`, waiting messages) match the kubelet's.

Known approximations: BackOff event counts are estimated from the back-off schedule; container,
image and uid hashes are random; the 1.6 describe's annotations and events reflect 1.6 defaults
(no projected service-account token, `created-by` annotation).
"""


def main():
    rows = []
    for fam in sorted(os.listdir(ROOT)):
        fp = os.path.join(ROOT, fam)
        if not os.path.isdir(fp) or fam.startswith(("_", ".")):
            continue
        for case in sorted(os.listdir(fp)):
            lp = os.path.join(fp, case, "labels.yaml")
            if os.path.exists(lp):
                lab = yaml.safe_load(open(lp))
                cause = lab["root_cause"]["cause"] if lab["incident"] else ""
                rows.append((fam, case, ", ".join(lab["formats"]), "yes" if lab["incident"] else "no", cause))
    out = HEAD
    for code, text in CAUSES:
        out += f"| `{code}` | {text} |\n"
    n_inc = sum(1 for r in rows if r[3] == "yes")
    out += f"\n## Cases\n\n{n_inc} incidents and {len(rows) - n_inc} healthy twins.\n\n"
    out += "| family | case | formats | incident | cause |\n|---|---|---|---|---|\n"
    for r in rows:
        out += f"| {r[0]} | [{r[1]}]({r[0]}/{r[1]}/README.md) | {r[2]} | {r[3]} | {r[4]} |\n"
    out += HOW
    with open(os.path.join(ROOT, "README.md"), "w") as f:
        f.write(out)


if __name__ == "__main__":
    main()
