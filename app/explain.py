"""`tapio explain <kind>/<name> -n <namespace>`: the story of one resource, from the live graph.

Fed by: the CLI. Feeds: the terminal (a tree) or JSON.

Picks the resource's most telling recent event (the newest of its worst severity, a failure the
vocabulary names before an unknown warning), reveals that event's context (`topology.context`) and
renders it (`topology.narrative`), followed by every prediction the patterns made that fits the
resource, ranked (`topology.predictions`; a pattern that counts symptoms follows the diagnosis of the
same objects, `app.hypotheses.diagnoses_lead`). It says the resource recovered, and when, once a change
nearby was reverted and no failure followed (the predictions made while it failed are still listed,
as what was said then). Arguments follow kubectl: `pod/web-0`, `pod web-0`, `po web-0`, `deploy/web`, `cm/nginx-config`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import msgspec

from agents.diagnose import PATTERN_PREFIX as DIAGNOSIS_PREFIX
from app.hypotheses import diagnoses_lead
from core.kube.changes import REVERTED
from core.kube.owners import WORKLOAD_KINDS
from core.kube.scopes import ScopeKey
from core.kube.semantics import failure_intents
from topology import queries
from topology.context import Context, EventSummary, reveal_context
from topology.graph import GraphStore
from topology.model import CLUSTER_SCOPED
from topology.narrative import reverts
from topology.predictions import (
    Hypothesis,
    hypotheses_for,
    match_story,
    merge_hypotheses,
    predictions_in_scopes,
    reaches_back_to_a_change,
)

KIND_ALIASES = {
    "po": "Pod", "pod": "Pod", "pods": "Pod", "no": "Node", "node": "Node", "nodes": "Node",
    "svc": "Service", "service": "Service", "services": "Service",
    "cm": "ConfigMap", "configmap": "ConfigMap", "configmaps": "ConfigMap",
    "secret": "Secret", "secrets": "Secret",
    "deploy": "Deployment", "deployment": "Deployment", "deployments": "Deployment",
    "rs": "ReplicaSet", "replicaset": "ReplicaSet", "replicasets": "ReplicaSet",
    "sts": "StatefulSet", "statefulset": "StatefulSet", "statefulsets": "StatefulSet",
    "ds": "DaemonSet", "daemonset": "DaemonSet", "daemonsets": "DaemonSet",
    "job": "Job", "jobs": "Job", "cj": "CronJob", "cronjob": "CronJob", "cronjobs": "CronJob",
    "pvc": "PersistentVolumeClaim", "persistentvolumeclaim": "PersistentVolumeClaim",
    "pv": "PersistentVolume", "persistentvolume": "PersistentVolume",
    "sc": "StorageClass", "storageclass": "StorageClass",
    "ing": "Ingress", "ingress": "Ingress", "ingresses": "Ingress",
    "netpol": "NetworkPolicy", "networkpolicy": "NetworkPolicy",
    "hpa": "HorizontalPodAutoscaler", "horizontalpodautoscaler": "HorizontalPodAutoscaler",
    "ns": "Namespace", "namespace": "Namespace",
}
_RANK = {"critical": 4, "error": 3, "warning": 2, "info": 1, "debug": 0}


class ExplainError(LookupError):
    """What to explain is malformed or unknown to the graph; the message says which."""


class Explanation(msgspec.Struct, frozen=True, kw_only=True):
    kind: str
    name: str
    namespace: str
    events: int
    context: Context
    hypotheses: list[Hypothesis] = []  # every prediction that fits the resource, best first
    recovered_at: datetime | None = None  # the revert after which no failure was seen on it
    recovery: str = ""  # what says it recovered, for a human


def parse_target(args: tuple[str, ...]) -> tuple[str, str]:
    """kubectl style: ("pod/web-0",) or ("pod", "web-0") -> ("Pod", "web-0")."""
    if len(args) == 1 and "/" in args[0]:
        kind, _, name = args[0].partition("/")
    elif len(args) == 2:
        kind, name = args
    else:
        raise ExplainError(f"expected KIND/NAME or KIND NAME, got {' '.join(args) or 'nothing'}")
    resolved = KIND_ALIASES.get(kind.lower(), kind)
    if not name:
        raise ExplainError(f"no name in {args[0]!r}")
    return resolved, name


def pick_event(rows: list[dict]) -> dict:
    """The newest event of the worst severity, a failure the vocabulary names first: what an SRE asking
    'why' means. Among Warnings, an image that cannot be used, a crash loop, an OOM kill or a failing
    probe leads over a frequent warning the vocabulary does not know (a kubelet's MissingClusterDNS x27
    is newer at every sync; it is not why the pod fails)."""
    failures = failure_intents()
    return max(rows, key=lambda r: (_RANK.get(r.get("severity") or "info", 1), r.get("intent") in failures,
                                    r.get("timestamp") or 0, r["id"]))


def scope_keys_of(kind: str, name: str, namespace: str, ctx: Context) -> list[str]:
    """The pattern scope keys (`core.kube.scopes`) a resource belongs to, from its context: itself,
    every owner up its chain, its nodes, the ConfigMaps/Secrets and Services it depends on."""
    keys = [ScopeKey.of_object(kind, namespace, name), ScopeKey.cluster()]
    if namespace:
        keys.append(ScopeKey.of_namespace(namespace))
    keys += [ScopeKey.of_owner(o.label, namespace, o.name) for o in ctx.owners if o.name]
    if kind in _OWNER_KINDS:
        keys.append(ScopeKey.of_owner(kind, namespace, name))
    keys += [ScopeKey.of_node(r.node) for r in ctx.affected if r.node]
    if kind == "Node":
        keys.append(ScopeKey.of_node(name))
    for dep in ctx.dependencies:
        if dep.label in ("ConfigMap", "Secret") and dep.name:
            keys.append(ScopeKey.of_config(dep.label, dep.namespace or namespace, dep.name))
        elif dep.label == "Service" and dep.name:
            keys.append(ScopeKey.of_service(dep.namespace or namespace, dep.name))
    return sorted({str(key) for key in keys})


#: kinds a resource is its own `owner` key for (a CronJob's runs are keyed by their Jobs)
_OWNER_KINDS = WORKLOAD_KINDS - {"CronJob"}


def recovery(rows: list[dict], ctx: Context, undone: Sequence[EventSummary] = ()) -> tuple[datetime | None, str]:
    """When the resource recovered, and why that is said: a revert nearby (`topology.narrative.reverts`,
    or `undone`: a ConfigMap or Secret it reads put back, found on that object) after which the
    resource had no failure event (the vocabulary's failure intents) any more.
    (None, "") while a failure follows the newest revert, or when nothing was reverted."""
    found = sorted([r.event for r in reverts(ctx)] + list(undone), key=lambda e: e.timestamp or 0, reverse=True)
    if not found or found[0].timestamp is None:
        return None, ""
    revert = found[0]
    at = revert.timestamp or 0
    failures = [r.get("timestamp") or 0 for r in rows if r.get("intent") in failure_intents()]
    if any(t > at for t in failures):
        return None, ""
    when = datetime.fromtimestamp(at / 1000, tz=UTC)
    last = f"; its last failure {datetime.fromtimestamp(max(failures) / 1000, tz=UTC):%H:%M:%S}Z" if failures else ""
    what = revert.narrative or revert.reason or "a revert"
    return when, (f"recovered at {when:%Y-%m-%d %H:%M:%S}Z: {what} undid the edit behind the failure, and no "
                  f"failure was seen on it since{last}")


async def reverted_inputs(graph: GraphStore, kind: str, namespace: str, name: str) -> list[EventSummary]:
    """The reverts of the ConfigMaps and Secrets the resource's pods read, read on each: a
    Deployment's nearby changes do not reach its pods' ConfigMap (OWNS is not a dependency)."""
    out: list[EventSummary] = []
    inputs = await graph.query(queries.inputs_of_resource(kind), kind=kind, namespace=namespace, name=name)
    for dep in inputs:
        if dep["name"]:
            rows = await graph.query(queries.events_for_resource(dep["label"]), kind=dep["label"],
                                     namespace=dep["namespace"] or "", name=dep["name"])
            out += [EventSummary(id=r["id"], timestamp=r["timestamp"], reason=r["reason"], intent=r["intent"],
                                 severity=r["severity"], narrative=r["narrative"])
                    for r in rows if r.get("reason") == REVERTED]
    return out


async def explain(graph: GraphStore, *, kind: str, name: str, namespace: str) -> Explanation:
    ns = "" if kind in CLUSTER_SCOPED else namespace
    rows = await graph.query(queries.events_for_resource(kind), kind=kind, namespace=ns, name=name)
    if not rows:
        where = f" in namespace {ns}" if ns else ""
        raise ExplainError(f"the graph has no events about {kind} {name}{where}: check the name and -n, "
                           f"or replay/collect its events first")
    event = pick_event(rows)
    ctx = await reveal_context(graph, event["id"])
    ranked = merge_hypotheses(await hypotheses_for(graph, kind, ns, name, limit=10),
                              await predictions_in_scopes(graph, scope_keys_of(kind, name, ns, ctx), limit=10),
                              limit=10)
    linked = {h.prediction.id for h in ranked if not h.prediction.pattern.startswith(DIAGNOSIS_PREFIX)
              and reaches_back_to_a_change(await match_story(graph, h.prediction.match_id))}
    ranked = diagnoses_lead(ranked, linked, diagnosis_prefix=DIAGNOSIS_PREFIX)
    recovered_at, said = recovery(rows, ctx, await reverted_inputs(graph, kind, ns, name))
    return Explanation(kind=kind, name=name, namespace=ns, events=len(rows), context=ctx, hypotheses=ranked,
                       recovered_at=recovered_at, recovery=said)
