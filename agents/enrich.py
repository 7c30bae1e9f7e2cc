"""Stage 1, enrich: decode each RawEvent's payload into the Kubernetes object it concerns.

Fed by: topic `raw` (RawBatch, from the bridge). Feeds: topic `enriched` (EnrichedBatch).

For a Kubernetes Event (core/v1 or events.k8s.io/v1) the context is the involved object and
the node that reported it; for any other object it is the object itself, with its labels,
node and controlling owner. Payloads of other collectors (kernel, dns, ...) carry their
context in `metadata` (`kind`, `name`, `namespace`, `uid`, `node`).

A payload that does not decode is rejected with a reason (it goes to the dead-letter
subject); the rest of the batch goes on. So is one that is not UTF-8, nests deeper than the
decoder goes, or carries an integer beyond 64 bits (`core.codec.Int64`: `$.count` of 10**30
would otherwise fail only when the batch is encoded). Any other exception on one event rejects
that event alone, with its type and message.
"""

from __future__ import annotations

from typing import Any

import msgspec

from agents.membership import ENDPOINT_KINDS
from core.codec import Int64, utf8_problem
from core.events import K8sContext, KubernetesData, ObjectRef, RawEvent, TraceContext, content_id
from core.kube.owners import controller_of
from core.kube.refs import ENV, ENV_FROM, EPHEMERAL_CONTAINERS, PROJECTED, VOLUME, PodSpec, pod_refs
from core.records import EnrichedBatch, EnrichedEvent, RawBatch


class EnrichError(ValueError):
    """A payload is not the Kubernetes object its metadata announces."""


class _Ref(msgspec.Struct, rename="camel", gc=False):
    kind: str = ""
    name: str = ""
    namespace: str = ""
    uid: str = ""
    controller: bool = False


class _Meta(msgspec.Struct, rename="camel", gc=False):
    name: str = ""
    namespace: str = ""
    uid: str = ""
    labels: dict[str, str] | None = None
    owner_references: list[_Ref] | None = None
    resource_version: str = ""


class _Terminated(msgspec.Struct, rename="camel", gc=False):
    exit_code: Int64 | None = None
    reason: str = ""
    message: str = ""


class _Waiting(msgspec.Struct, rename="camel", gc=False):
    reason: str = ""
    message: str = ""


class _State(msgspec.Struct, rename="camel", gc=False):
    waiting: _Waiting | None = None
    terminated: _Terminated | None = None


class _ContainerStatus(msgspec.Struct, rename="camel", gc=False):
    restart_count: Int64 = 0
    state: _State | None = None
    last_state: _State | None = None


class _Condition(msgspec.Struct, rename="camel", gc=False):
    type: str = ""
    status: str = ""
    reason: str = ""
    message: str = ""


class _Status(msgspec.Struct, rename="camel", gc=False):
    phase: str = ""
    conditions: list[_Condition] | None = None
    container_statuses: list[_ContainerStatus] | None = None
    init_container_statuses: list[_ContainerStatus] | None = None


_NONE = msgspec.Raw(b"")  # an absent field read as raw JSON


class _Target(msgspec.Struct, rename="camel", gc=False):
    kind: str = ""
    name: str = ""


class _Address(msgspec.Struct, rename="camel", gc=False):
    target_ref: _Target | None = None


class _Subset(msgspec.Struct, rename="camel", gc=False):
    """One subset of a v1 Endpoints: the ready addresses and the not-ready ones."""

    addresses: list[_Address] | None = None
    not_ready_addresses: list[_Address] | None = None


class _EndpointConditions(msgspec.Struct, rename="camel", gc=False):
    ready: bool | None = None


class _Endpoint(msgspec.Struct, rename="camel", gc=False):
    """One endpoint of an EndpointSlice (discovery.k8s.io v1 or v1beta1)."""

    conditions: _EndpointConditions | None = None
    target_ref: _Target | None = None


class _Spec(PodSpec, rename="camel", gc=False):
    """A pod spec's references (`core.kube.refs`), or a Service's / workload's selector and template."""

    selector: msgspec.Raw = _NONE  # a Service's map, or a workload's LabelSelector
    template: msgspec.Raw = _NONE  # a workload's pod template


class _Source(msgspec.Struct, rename="camel", gc=False):
    component: str = ""
    host: str = ""


class _Series(msgspec.Struct, rename="camel", gc=False):
    count: Int64 = 0


class _KubeObject(msgspec.Struct, rename="camel", gc=False):
    """The fields Tapio reads from any Kubernetes object or Event; everything else is ignored."""

    kind: str = ""
    metadata: _Meta = msgspec.field(default_factory=_Meta)
    # Events (core/v1 and events.k8s.io/v1)
    involved_object: _Ref | None = None
    regarding: _Ref | None = None
    reason: str = ""
    message: str = ""
    note: str = ""
    type: str = ""
    count: Int64 | None = None
    deprecated_count: Int64 | None = None
    series: _Series | None = None
    source: _Source | None = None
    reporting_controller: str = ""
    reporting_component: str = ""
    reporting_instance: str = ""
    # other objects
    spec: _Spec | None = None
    status: _Status | None = None
    data: msgspec.Raw = _NONE  # ConfigMap / Secret
    subsets: list[_Subset] | None = None  # Endpoints
    endpoints: list[_Endpoint] | None = None  # EndpointSlice
    binary_data: msgspec.Raw = _NONE


_DECODER = msgspec.json.Decoder(_KubeObject)


def _container_summary(status: _Status | None) -> tuple[int, int | None, str, str]:
    """(restarts, last exit code, most telling container reason, its message) over all containers.

    A waiting reason (CrashLoopBackOff, ImagePullBackOff) says more than the last termination,
    except an OOM kill: `waiting: CrashLoopBackOff` with `lastState: OOMKilled` is an OOM kill.
    The message is the runtime's own words for the failure ("exec: \"wge\": executable file not
    found in $PATH"), from the state that carries one.
    """
    if status is None:
        return 0, None, "", ""
    restarts, exit_code, reason, message, oom = 0, None, "", "", False
    for cs in (status.init_container_statuses or []) + (status.container_statuses or []):
        restarts += cs.restart_count
        for state in (cs.last_state, cs.state):
            if state and state.terminated:
                exit_code = state.terminated.exit_code
                reason = state.terminated.reason or reason
                message = state.terminated.message or message
                oom = oom or state.terminated.reason == "OOMKilled"
        if cs.state and cs.state.waiting and cs.state.waiting.reason:
            reason = cs.state.waiting.reason
            message = cs.state.waiting.message or message
    return restarts, exit_code, "OOMKilled" if oom else reason, message


def _endpoints(obj: _KubeObject) -> tuple[int, list[str]]:
    """(ready endpoints, "Pod/name" of every pod behind them, ready or not) of an Endpoints or an
    EndpointSlice. An EndpointSlice endpoint without `conditions.ready` counts as ready (the API's
    rule: nil means unknown, to be read as ready); an Endpoints' `notReadyAddresses` are not."""
    ready, pods = 0, set()
    for subset in obj.subsets or []:
        ready += len(subset.addresses or [])
        for address in (subset.addresses or []) + (subset.not_ready_addresses or []):
            if address.target_ref is not None and address.target_ref.kind == "Pod":
                pods.add(f"Pod/{address.target_ref.name}")
    for endpoint in obj.endpoints or []:
        ready += endpoint.conditions is None or endpoint.conditions.ready is not False
        if endpoint.target_ref is not None and endpoint.target_ref.kind == "Pod":
            pods.add(f"Pod/{endpoint.target_ref.name}")
    return ready, sorted(pods)


def _unscheduled(status: _Status | None) -> _Condition | None:
    """The pod's `PodScheduled=False` condition (reason Unschedulable, the scheduler's message), if any."""
    for cond in (status.conditions or []) if status else []:
        if cond.type == "PodScheduled" and cond.status == "False":
            return cond
    return None


#: the references the match stage learns a pod's ConfigMaps and Secrets from (`K8sContext.refs`): volumes,
#: projected sources, env and envFrom of init and regular containers. Left out, as they always were:
#: imagePullSecrets, ephemeral containers and the claims of ephemeral volumes (the topology draws them);
#: counting them would change `configmap` scope keys, and with them which matches are made.
_MATCH_REFS_VIA = frozenset({VOLUME, PROJECTED, ENV, ENV_FROM})


def context_refs(spec: PodSpec | None) -> list[str]:
    """"Kind/name" of the ConfigMaps, Secrets and PVCs a pod spec uses, as the match stage learns them."""
    return sorted({f"{ref.kind}/{ref.name}" for ref in pod_refs(spec)
                   if ref.via in _MATCH_REFS_VIA and ref.containers != EPHEMERAL_CONTAINERS})


_SELECTOR = msgspec.json.Decoder(dict[str, Any])


def _selector(kind: str, spec: _Spec | None) -> dict[str, str]:
    """A Service's selector map, or a workload's `matchLabels` (expressions are not followed)."""
    if spec is None or not spec.selector:
        return {}
    try:
        value = _SELECTOR.decode(spec.selector)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return {}
    if kind != "Service":
        value = value.get("matchLabels") or {}
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def _content_hash(obj: _KubeObject) -> str:
    """A short hash of what an edit changes: ConfigMap/Secret data, or a workload's pod template."""
    parts = [p for p in (obj.data, obj.binary_data, obj.spec.template if obj.spec else _NONE) if p]
    return content_id(*(bytes(p) for p in parts))[:16] if parts else ""


def _owner(meta: _Meta) -> ObjectRef | None:
    ref = controller_of(meta.owner_references or [])
    if ref is None:
        return None
    return ObjectRef(kind=ref.kind, name=ref.name, namespace=meta.namespace, uid=ref.uid)


def _enrich_change(raw: RawEvent) -> EnrichedEvent:
    """A change event of the topology service (CHANGE), or a rollout read off a recording's
    ReplicaSets (ROLLOUT, `core.kube.rollouts`): what changed is in its metadata."""
    md = raw.metadata
    if not md.get("kind") or not md.get("name"):
        raise EnrichError("change event without kind or name in its metadata")
    k8s = K8sContext(kind=md["kind"], name=md["name"], namespace=md.get("namespace", ""), uid=md.get("uid", ""))
    kube = KubernetesData(action=md["action"], reason=md.get("reason", "Changed"), message=md.get("message", ""),
                          resource_version=md.get("resource_version", ""))
    return EnrichedEvent(raw=msgspec.structs.replace(raw, data=b""), k8s=k8s, kubernetes=kube, trace=_trace(raw))


def _enrich_kube(raw: RawEvent) -> EnrichedEvent:
    if raw.metadata.get("action") in ("CHANGE", "ROLLOUT"):  # a change read off two versions of the object
        return _enrich_change(raw)
    try:
        obj = _DECODER.decode(raw.data)
    except UnicodeDecodeError as e:
        raise EnrichError(f"payload is not a Kubernetes object: {utf8_problem(e)}") from e
    except RecursionError as e:
        raise EnrichError("payload is not a Kubernetes object: nested too deep") from e
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise EnrichError(f"payload is not a Kubernetes object: {e}") from e
    md = raw.metadata
    kind = obj.kind or md.get("kind", "")
    if kind == "Event" or md.get("action") == "EVENT":
        ref = obj.involved_object or obj.regarding
        if ref is None or not ref.kind:
            raise EnrichError("Event has neither involvedObject nor regarding with a kind")
        node = (obj.source.host if obj.source else "") or md.get("node", "")
        if ref.kind == "Node" and not node:
            node = ref.name
        k8s = K8sContext(kind=ref.kind, name=ref.name, namespace=ref.namespace or obj.metadata.namespace,
                         uid=_involved_uid(ref), node=node)
        count = obj.count or obj.deprecated_count or (obj.series.count if obj.series else 0) or 1
        kube = KubernetesData(
            action="EVENT", reason=obj.reason, message=obj.message or obj.note, event_type=obj.type,
            count=count, resource_version=obj.metadata.resource_version,
            reporting_component=(obj.source.component if obj.source else "") or obj.reporting_controller
            or obj.reporting_component)
    else:
        if not kind or not obj.metadata.name:
            raise EnrichError("object has no kind or no metadata.name")
        meta = obj.metadata
        node = (obj.spec.node_name if obj.spec else "") or (meta.name if kind == "Node" else "")
        spec = obj.spec
        pod_spec = spec if kind == "Pod" else _template_spec(spec) if spec and spec.template else None
        refs = context_refs(pod_spec)
        ready_endpoints = -1
        if kind in ENDPOINT_KINDS:  # the pods behind a Service: their workloads are its owner scope keys
            ready_endpoints, refs = _endpoints(obj)
        k8s = K8sContext(kind=kind, name=meta.name, namespace=meta.namespace, uid=meta.uid,
                         labels=meta.labels or {}, node=node, owner=_owner(meta), refs=refs,
                         selector=_selector(kind, spec))
        restarts, exit_code, reason, message = _container_summary(obj.status)
        unscheduled = _unscheduled(obj.status) if kind == "Pod" else None
        kube = KubernetesData(
            action=md.get("action", "SNAPSHOT"), reason=reason or (unscheduled.reason if unscheduled else ""),
            message=message or (unscheduled.message if unscheduled else ""), resource_version=meta.resource_version,
            phase=obj.status.phase if obj.status else "", restart_count=restarts, exit_code=exit_code,
            container_reason=reason, content_hash=_content_hash(obj), ready_endpoints=ready_endpoints)
    # the payload has been read: later stages do not need it, and it would ride four more topics
    return EnrichedEvent(raw=msgspec.structs.replace(raw, data=b""), k8s=k8s, kubernetes=kube, trace=_trace(raw))


def _involved_uid(ref: _Ref) -> str:
    """The uid an Event names its object with, when it is one: the kubelet names its Node with the
    node's name as uid (it does not know the Node object's uid), which would key a second Node."""
    return "" if ref.kind == "Node" and ref.uid == ref.name else ref.uid


class _Template(msgspec.Struct, gc=False):
    spec: _Spec | None = None


_TEMPLATE = msgspec.json.Decoder(_Template)


def _template_spec(spec: _Spec | None) -> _Spec | None:
    if spec is None or not spec.template:
        return None
    try:
        return _TEMPLATE.decode(spec.template).spec
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def _trace(raw: RawEvent) -> TraceContext | None:
    return TraceContext(trace_id=raw.trace_id, span_id=raw.span_id) if raw.trace_id else None


def _enrich_from_metadata(raw: RawEvent) -> EnrichedEvent:
    md = raw.metadata
    k8s = None
    if md.get("kind") and md.get("name"):
        k8s = K8sContext(kind=md["kind"], name=md["name"], namespace=md.get("namespace", ""),
                         uid=md.get("uid", ""), node=md.get("node", ""))
    return EnrichedEvent(raw=raw, k8s=k8s, trace=_trace(raw))


def enrich_event(raw: RawEvent) -> EnrichedEvent:
    """Pure: the K8s context and Kubernetes layer data of one RawEvent. Raises EnrichError."""
    if raw.type == "kubeapi":
        return _enrich_kube(raw)
    return _enrich_from_metadata(raw)


def enrich_batch(events: list[RawEvent]) -> tuple[list[EnrichedEvent], list[tuple[RawEvent, str]]]:
    """Pure: enriched events, and the rejected ones with their reason."""
    out: list[EnrichedEvent] = []
    rejected: list[tuple[RawEvent, str]] = []
    for raw in events:
        try:
            out.append(enrich_event(raw))
        except EnrichError as e:
            rejected.append((raw, str(e)))
        except Exception as e:  # a payload nobody foresaw: this event only, never its batch
            rejected.append((raw, f"{type(e).__name__}: {e}"))
    return out, rejected


def enrich_stage(batch: RawBatch) -> tuple[EnrichedBatch, list[tuple[RawEvent, str, str]]]:
    """The stage transform: one RawBatch in, one EnrichedBatch and the rejects out."""
    out, rejected = enrich_batch(batch.events)
    return (EnrichedBatch(events=out, watermark=batch.watermark, progress=batch.progress),
            [(raw, raw.id, reason) for raw, reason in rejected])
