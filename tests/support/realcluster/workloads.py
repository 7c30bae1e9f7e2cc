"""Failing workloads for the real cluster, each with a healthy twin, as data; and what applies them.

Fed by: nothing (the manifests are written here). Feeds: `benchmarks/record_real.py` (the recorded
corpus `patterns/scenarios/diagnosis/real-k8s-1.20/`) and `tests/cluster/test_real_failures.py`
(the collector and the dataflow on these failures).

Each `Workload` lives in a namespace of its own (`real-<case>`, its twin `real-<case>-healthy`), so
all of them run at once on the one node. `manifests` are applied first; `edit` (patches, as
`kubectl patch` sends them) once `ready_before_edit` holds; the workload is done when every
condition of `until` holds (`reached`). Every pod runs `tapio.local/busybox:1` with
`imagePullPolicy: Never` except the image case's, whose image is not on the node.

Conditions (`until`), judged on the namespace's pods, Deployments and Jobs:
`reason:<R>` a container is waiting/terminated (now or last time) with reason R; `restarts:<n>`
a container restarted at least n times; `event:<R>` an Event of reason R in the namespace;
`ready` every pod Running and ready; `after:<s>` s seconds since the workloads were created; `rolled-out` every Deployment's newest revision is available
and its old pods are gone; `job:<Complete|Failed>` a Job's condition; `unscheduled` a pod Pending
with PodScheduled False.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import kubernetes
import kubernetes.utils
from kubernetes.client import AppsV1Api, BatchV1Api, CoreV1Api

from realcluster.images import BUSYBOX_IMAGE

GRACE = 1  # seconds the kubelet waits after SIGTERM before it kills a container
#: what a long-running app does: wait, and exit 0 on SIGTERM (a plain `sleep` as PID 1 ignores it, and the
#: kubelet's kill after the grace period, exit 137, reads as a failure of every pod a rollout replaces)
SERVE = "trap 'exit 0' TERM; sleep 3600 & wait"


@dataclass(frozen=True)
class Workload:
    case: str  # the folder name; a twin's ends in -healthy
    cause: str  # the cause code of patterns/scenarios/diagnosis/README.md ("" for a twin)
    summary: str  # one sentence: what was done
    manifests: tuple[dict, ...]
    until: tuple[str, ...]
    symptom: str = ""  # "Pod" (the pod in the failing state), "Deployment/<name>", "Job/<name>"
    mentions: tuple[str, ...] = ()
    caused_by: str = ""  # Kind/name (namespace added) of the object behind the cause
    edit: tuple[tuple[str, str, dict], ...] = ()  # (kind, name, merge patch); kind RolloutRestart: a Deployment
    ready_before_edit: tuple[str, ...] = ("ready", "rolled-out")
    timeout: float = 150.0

    @property
    def namespace(self) -> str:
        return f"real-{self.case}"

    @property
    def incident(self) -> bool:
        return not self.case.endswith("-healthy")


def _container(name: str, script: str, **extra: Any) -> dict:
    return {"name": name, "image": BUSYBOX_IMAGE, "imagePullPolicy": "Never", "command": ["sh", "-c", script],
            **extra}


def _pod_spec(*containers: dict, restart: str = "Always", **extra: Any) -> dict:
    return {"containers": list(containers), "restartPolicy": restart, "terminationGracePeriodSeconds": GRACE,
            **extra}


def _deployment(name: str, spec: dict, *, replicas: int = 1, annotations: dict | None = None) -> dict:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": labels},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels}, "revisionHistoryLimit": 3,
                     "template": {"metadata": {"labels": labels, "annotations": annotations or {}}, "spec": spec}}}


def _config_map(name: str, data: dict[str, str]) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def _secret(name: str, data: dict[str, str]) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "type": "Opaque", "stringData": data}


def _job(name: str, script: str, *, backoff_limit: int) -> dict:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"backoffLimit": backoff_limit,
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": _pod_spec(_container(name, script), restart="Never")}}}


# -- the cases ------------------------------------------------------------------------------

# (1) the app reads LEDGER_MODE from a ConfigMap at start and refuses a value it does not know
_LEDGER = f"""\
echo "ledger-api starting, mode=$LEDGER_MODE"
case "$LEDGER_MODE" in
  primary|replica) echo "ledger-api ready"; {SERVE} ;;
  *) echo "fatal: LEDGER_MODE \\"$LEDGER_MODE\\" is not one of primary, replica" >&2; exit 2 ;;
esac"""
_LEDGER_ENV = [{"name": "LEDGER_MODE", "valueFrom": {"configMapKeyRef": {"name": "ledger-config", "key": "mode"}}}]


def _ledger(mode_after: str) -> dict:
    return {"manifests": (_config_map("ledger-config", {"mode": "primary"}),
                          _deployment("ledger-api", _pod_spec(_container("ledger-api", _LEDGER, env=_LEDGER_ENV)),
                                      replicas=2)),
            # a ConfigMap edit, then `kubectl rollout restart` (what picks an env-var ConfigMap up)
            "edit": (("ConfigMap", "ledger-config", {"data": {"mode": mode_after}}),
                     ("RolloutRestart", "ledger-api", {}))}


# (2) a worker that exits 3 at start
_WORKER = 'echo "invoice-worker: connecting to queue"; echo "invoice-worker: giving up" >&2; exit 3'
# (3) `tail` keeps its last line in memory; /dev/zero has none
_HOG = 'echo "report-builder: loading the month into memory"; tail /dev/zero'
_HOG_OK = 'echo "report-builder: loading the month into memory"; head -c 8m /dev/zero | tail -c 1 >/dev/null; ' \
          'echo "report-builder: done, idle"; ' + SERVE
# (4), (5) busybox httpd serving /www; the probe path exists or not
_WEB = 'mkdir -p /www && echo ok > /www/index.html && {touch}echo "catalog-web listening on :8080" && ' \
       'exec httpd -f -v -p 8080 -h /www'


def _web(probe: str, healthz: bool) -> dict:
    touch = "echo ok > /www/healthz && " if healthz else ""
    check = {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 2, "failureThreshold": 2,
             "timeoutSeconds": 1}
    container = _container("catalog-web", _WEB.format(touch=touch), ports=[{"containerPort": 8080}],
                           **{probe: check})
    return _deployment("catalog-web", _pod_spec(container))


_SERVICE = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "catalog-web"},
            "spec": {"selector": {"app": "catalog-web"}, "ports": [{"port": 80, "targetPort": 8080}]}}
# (6) an image that is not on the node, and may not be pulled
_GATEWAY_IMAGE = "tapio.local/payment-gateway:3.2.0"
# (7) a nodeSelector nothing matches
# (8) a Secret the pod reads through an env var
_MAILER = 'echo "mailer using relay $SMTP_HOST"; ' + SERVE
_MAILER_ENV = [{"name": "SMTP_HOST", "value": "smtp.internal"},
               {"name": "SMTP_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "smtp-credentials", "key": "password"}}}]
# (9) a migration that fails on every try
_MIGRATE = 'echo "applying migration 0042_add_invoice_index"; ' \
           'echo "ERROR: relation \\"invoices_2026\\" does not exist" >&2; exit 1'
_MIGRATE_OK = 'echo "applying migration 0042_add_invoice_index"; echo "migration complete"'

# (10) a PDF renderer meant to run sandboxed: its RuntimeClass names gVisor's handler, which the node's
# containerd was never given (the twin's RuntimeClass names runc, which it has)
_RENDER = 'echo "pdf-render: waiting for jobs"; ' + SERVE


def _runtime_class(name: str, handler: str) -> dict:
    return {"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass", "metadata": {"name": name}, "handler": handler}


_CRASH_UNTIL = ("reason:CrashLoopBackOff", "restarts:2", "event:BackOff")


def _pairs() -> list[Workload]:
    sleep_pod = _pod_spec(_container("invoice-worker", 'echo "invoice-worker: connected"; ' + SERVE))
    gateway = {"name": "payment-gateway", "image": _GATEWAY_IMAGE, "imagePullPolicy": "Never",
               "command": ["sleep", "3600"]}
    gateway_ok = dict(gateway, image=BUSYBOX_IMAGE)
    return [
        Workload(case="configmap-rollout", cause="bad-rollout", **_ledger("archive"),  # type: ignore[arg-type]
                 summary="Deployment ledger-api (2 replicas) reads LEDGER_MODE from ConfigMap ledger-config at start; "
                         "once it ran, the ConfigMap was edited (mode: primary -> archive) and the Deployment "
                         "restarted (`kubectl rollout restart`): the new ReplicaSet's pod exits 2, the old pods serve",
                 until=_CRASH_UNTIL, symptom="Deployment/ledger-api", mentions=("ledger-config",),
                 caused_by="ConfigMap/ledger-config"),
        Workload(case="configmap-rollout-healthy", cause="", **_ledger("replica"),  # type: ignore[arg-type]
                 summary="the same Deployment; the ConfigMap edited to a value the app knows (mode: primary -> "
                         "replica) and the Deployment restarted: the rollout completes",
                 until=("ready", "rolled-out")),
        Workload(case="crashloop-exit-code", cause="app-error-exit",
                 manifests=(_deployment("invoice-worker", _pod_spec(_container("invoice-worker", _WORKER))),),
                 summary="Deployment invoice-worker whose command exits 3 at start: CrashLoopBackOff",
                 until=_CRASH_UNTIL, symptom="Pod", mentions=("exit code 3",)),
        Workload(case="crashloop-exit-code-healthy", cause="",
                 manifests=(_deployment("invoice-worker", sleep_pod),),
                 summary="the same Deployment, whose command keeps running", until=("ready",)),
        Workload(case="oom-killed", cause="oom-killed",
                 manifests=(_deployment("report-builder", _pod_spec(_container(
                     "report-builder", _HOG, resources={"limits": {"memory": "32Mi"}, "requests": {"memory": "32Mi"}}))),),
                 summary="Deployment report-builder with a 32Mi memory limit whose command (`tail /dev/zero`) grows "
                         "without bound: OOMKilled (137), then CrashLoopBackOff",
                 until=("reason:OOMKilled", "restarts:2"), symptom="Pod", mentions=("OOMKilled", "32Mi")),
        Workload(case="oom-killed-healthy", cause="",
                 manifests=(_deployment("report-builder", _pod_spec(_container(
                     "report-builder", _HOG_OK, resources={"limits": {"memory": "32Mi"},
                                                           "requests": {"memory": "32Mi"}}))),),
                 summary="the same Deployment and limit; the command reads 8 MiB and stays within it",
                 until=("ready",)),
        Workload(case="readiness-probe", cause="readiness-probe-failure",
                 manifests=(_web("readinessProbe", healthz=False), _SERVICE),
                 summary="Deployment catalog-web (busybox httpd) behind Service catalog-web, whose readiness probe "
                         "GETs /healthz, a file the server does not have (404): Running, never Ready",
                 until=("event:Unhealthy",), ready_before_edit=(), symptom="Pod", mentions=("404", "readiness")),
        Workload(case="readiness-probe-healthy", cause="", manifests=(_web("readinessProbe", healthz=True), _SERVICE),
                 summary="the same Deployment and Service; /healthz exists: Ready", until=("ready",)),
        Workload(case="liveness-probe", cause="liveness-probe-failure",
                 manifests=(_web("livenessProbe", healthz=False),),
                 summary="Deployment catalog-web (busybox httpd) whose liveness probe GETs /healthz, a file the server "
                         "does not have (404): the kubelet kills and restarts it",
                 until=("event:Killing", "restarts:2"), symptom="Pod", mentions=("404", "liveness")),
        Workload(case="liveness-probe-healthy", cause="", manifests=(_web("livenessProbe", healthz=True),),
                 summary="the same Deployment; /healthz exists: no restart", until=("ready",)),
        Workload(case="image-never-pull", cause="image-never-pulled",
                 manifests=(_deployment("payment-gateway", _pod_spec(gateway)),),
                 summary=f"Deployment payment-gateway on image {_GATEWAY_IMAGE}, which is not on the node, with "
                         "imagePullPolicy: Never: ErrImageNeverPull",
                 until=("reason:ErrImageNeverPull", "event:ErrImageNeverPull"), symptom="Pod",
                 mentions=(_GATEWAY_IMAGE,)),
        Workload(case="image-never-pull-healthy", cause="",
                 manifests=(_deployment("payment-gateway", _pod_spec(gateway_ok)),),
                 summary=f"the same Deployment on {BUSYBOX_IMAGE}, which is on the node", until=("ready",)),
        Workload(case="node-selector", cause="node-selector-mismatch",
                 manifests=(_deployment("gpu-trainer", _pod_spec(
                     _container("gpu-trainer", SERVE), nodeSelector={"accelerator": "nvidia-a100"})),),
                 summary="Deployment gpu-trainer with nodeSelector accelerator=nvidia-a100, a label no node has: "
                         "Pending, FailedScheduling",
                 until=("unscheduled", "event:FailedScheduling"), symptom="Pod", mentions=("accelerator",)),
        Workload(case="node-selector-healthy", cause="",
                 manifests=(_deployment("gpu-trainer", _pod_spec(
                     _container("gpu-trainer", SERVE), nodeSelector={"kubernetes.io/os": "linux"})),),
                 summary="the same Deployment with nodeSelector kubernetes.io/os=linux, which the node has",
                 until=("ready",)),
        Workload(case="missing-secret", cause="missing-secret",
                 manifests=(_deployment("mailer", _pod_spec(_container("mailer", _MAILER, env=_MAILER_ENV))),),
                 summary="Deployment mailer reads SMTP_PASSWORD from Secret smtp-credentials, which does not exist: "
                         "CreateContainerConfigError",
                 # captured once it has lasted 3 minutes: younger, it is a Secret someone may be about to create
                 until=("reason:CreateContainerConfigError", "event:Failed", "after:190"), symptom="Pod",
                 mentions=("smtp-credentials",), caused_by="Secret/smtp-credentials"),
        Workload(case="missing-secret-healthy", cause="",
                 manifests=(_secret("smtp-credentials", {"password": "not-a-real-password"}),
                            _deployment("mailer", _pod_spec(_container("mailer", _MAILER, env=_MAILER_ENV)))),
                 summary="the same Deployment with Secret smtp-credentials present", until=("ready",)),
        Workload(case="job-backoff-limit", cause="job-backoff-limit",
                 manifests=(_job("schema-migrate", _MIGRATE, backoff_limit=1),),
                 summary="Job schema-migrate (backoffLimit 1) whose command exits 1 on every try: two pods fail, "
                         "then BackoffLimitExceeded",
                 until=("job:Failed",), symptom="Job/schema-migrate", mentions=("BackoffLimitExceeded",)),
        Workload(case="job-backoff-limit-healthy", cause="",
                 manifests=(_job("schema-migrate", _MIGRATE_OK, backoff_limit=1),),
                 summary="the same Job whose command succeeds", until=("job:Complete",)),
        Workload(case="runtime-class", cause="runtime-handler-missing",
                 summary="a Deployment whose pods ask for RuntimeClass gvisor (handler runsc), which the node's "
                         "containerd does not have: FailedCreatePodSandBox, ContainerCreating",
                 manifests=(_runtime_class("gvisor", "runsc"),
                            _deployment("pdf-render", _pod_spec(_container("pdf-render", _RENDER),
                                                                runtimeClassName="gvisor"))),
                 until=("event:FailedCreatePodSandBox",), symptom="Pod", mentions=("runsc",),
                 caused_by="RuntimeClass/gvisor"),
        Workload(case="runtime-class-healthy", cause="",
                 summary="the same Deployment with RuntimeClass runc-default (handler runc, which containerd has)",
                 manifests=(_runtime_class("runc-default", "runc"),
                            _deployment("pdf-render", _pod_spec(_container("pdf-render", _RENDER),
                                                                runtimeClassName="runc-default"))),
                 until=("ready",)),
    ]


WORKLOADS: tuple[Workload, ...] = tuple(_pairs())


# -- applying them ---------------------------------------------------------------------------


@dataclass
class Observed:
    """What the namespace shows: pods, Deployments, ReplicaSets, Jobs and Event reasons (API objects)."""

    pods: list[Any] = field(default_factory=list)
    deployments: list[Any] = field(default_factory=list)
    replica_sets: list[Any] = field(default_factory=list)
    jobs: list[Any] = field(default_factory=list)
    reasons: set[str] = field(default_factory=set)


def observe(api: kubernetes.client.ApiClient, namespace: str) -> Observed:
    core, apps, batch = CoreV1Api(api), AppsV1Api(api), BatchV1Api(api)
    return Observed(pods=core.list_namespaced_pod(namespace).items,
                    deployments=apps.list_namespaced_deployment(namespace).items,
                    replica_sets=apps.list_namespaced_replica_set(namespace).items,
                    jobs=batch.list_namespaced_job(namespace).items,
                    reasons={e.reason for e in core.list_namespaced_event(namespace).items})


def _reasons(pod: Any) -> set[str]:
    out = set()
    for s in pod.status.container_statuses or []:
        for state in (s.state, s.last_state):
            if state and state.waiting and state.waiting.reason:
                out.add(state.waiting.reason)
            if state and state.terminated and state.terminated.reason:
                out.add(state.terminated.reason)
    return out


def _holds(condition: str, seen: Observed, age: float) -> bool:
    what, _, arg = condition.partition(":")
    if what == "after":
        return age >= float(arg)
    if what == "reason":
        return any(arg in _reasons(p) for p in seen.pods)
    if what == "restarts":
        return any(s.restart_count >= int(arg) for p in seen.pods for s in p.status.container_statuses or [])
    if what == "event":
        return arg in seen.reasons
    if what == "ready":
        return bool(seen.pods) and all(p.status.phase == "Running" and all(
            s.ready for s in p.status.container_statuses or [False]) for p in seen.pods)
    if what == "rolled-out":
        return all((d.status.observed_generation or 0) >= d.metadata.generation
                   and d.status.updated_replicas == d.spec.replicas == (d.status.available_replicas or 0)
                   == (d.status.replicas or 0) for d in seen.deployments) and \
            len(seen.pods) == sum(d.spec.replicas for d in seen.deployments)
    if what == "job":
        return any(c.type == arg and c.status == "True" for j in seen.jobs for c in j.status.conditions or [])
    if what == "unscheduled":
        return any(p.status.phase == "Pending" and any(c.type == "PodScheduled" and c.status == "False"
                                                       for c in p.status.conditions or []) for p in seen.pods)
    raise ValueError(f"unknown condition {condition!r}")


def reached(seen: Observed, conditions: tuple[str, ...], *, age: float = 0.0) -> list[str]:
    """The conditions that do not hold yet (empty: reached), `age` seconds after the workloads were created."""
    return [c for c in conditions if not _holds(c, seen, age)]


def create(api: kubernetes.client.ApiClient, workload: Workload) -> None:
    """The namespace and every manifest of `workload` (as `kubectl apply` of a fresh namespace)."""
    core = CoreV1Api(api)
    core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": workload.namespace}})
    for manifest in workload.manifests:
        kubernetes.utils.create_from_dict(api, manifest, namespace=workload.namespace)


def patch(api: kubernetes.client.ApiClient, workload: Workload) -> None:
    """The workload's edits (a ConfigMap's data, a Deployment's template), in order."""
    core, apps = CoreV1Api(api), AppsV1Api(api)
    calls: dict[str, Callable[..., Any]] = {"ConfigMap": core.patch_namespaced_config_map,
                                            "Deployment": apps.patch_namespaced_deployment}
    for kind, name, body in workload.edit:
        if kind == "RolloutRestart":  # what `kubectl rollout restart` patches: the time it ran
            kind, body = "Deployment", {"spec": {"template": {"metadata": {"annotations": {
                "kubectl.kubernetes.io/restartedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}}}}}
        calls[kind](name, workload.namespace, body)


class Runner:
    """Drives a set of workloads at once: create all, edit each once it is ready, until each is done."""

    def __init__(self, api: kubernetes.client.ApiClient, workloads: tuple[Workload, ...] = WORKLOADS) -> None:
        self.api = api
        self.workloads = workloads
        self.edited: set[str] = set()
        self.done: dict[str, float] = {}  # case -> seconds after start
        self.started = 0.0

    def start(self) -> None:
        self.started = time.monotonic()
        for w in self.workloads:
            create(self.api, w)

    def step(self) -> dict[str, list[str]]:
        """One look at every workload not done yet; returns what each still waits for."""
        waiting: dict[str, list[str]] = {}
        for w in self.workloads:
            if w.case in self.done:
                continue
            seen = observe(self.api, w.namespace)
            if w.edit and w.case not in self.edited:
                missing = reached(seen, w.ready_before_edit, age=time.monotonic() - self.started)
                if not missing:
                    patch(self.api, w)
                    self.edited.add(w.case)
                waiting[w.case] = ["edit after " + ", ".join(missing)] if missing else ["the edit to show"]
                continue
            missing = reached(seen, w.until, age=time.monotonic() - self.started)
            if missing:
                waiting[w.case] = missing
            else:
                self.done[w.case] = time.monotonic() - self.started
        return waiting

    def run(self, *, timeout: float = 240.0, every: float = 1.0) -> dict[str, list[str]]:
        """Until every workload is done or `timeout`; returns what the unfinished ones wait for."""
        deadline = time.monotonic() + timeout
        waiting = self.step()
        while waiting and time.monotonic() < deadline:
            time.sleep(every)
            waiting = self.step()
        return waiting


def symptom_object(workload: Workload, seen: Observed) -> str:
    """Kind/namespace/name of the object the label names: the failing pod, or the named object."""
    ns = workload.namespace
    if workload.symptom != "Pod":
        return f"{workload.symptom.split('/')[0]}/{ns}/{workload.symptom.split('/')[1]}"
    bad = [p for p in seen.pods if not (p.status.phase == "Running" and all(
        s.ready for s in p.status.container_statuses or [False]))]
    pod = sorted(bad or seen.pods, key=lambda p: p.metadata.name)[0]
    return f"Pod/{ns}/{pod.metadata.name}"
