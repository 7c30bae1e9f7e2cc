"""Stage 1, enrich: decode each RawEvent's payload into the Kubernetes object it concerns.

Fed by: topic `raw` (RawBatch, from the bridge). Feeds: topic `enriched` (EnrichedBatch).

For a Kubernetes Event (core/v1 or events.k8s.io/v1) the context is the involved object and
the node that reported it; for any other object it is the object itself, with its labels,
node and controlling owner. Payloads of other collectors (kernel, dns, ...) carry their
context in `metadata` (`kind`, `name`, `namespace`, `uid`, `node`).

A payload that does not decode is rejected with a reason (it goes to the dead-letter
subject); the rest of the batch goes on.
"""

from __future__ import annotations

import msgspec

from app.events import K8sContext, KubernetesData, ObjectRef, RawEvent, TraceContext
from app.records import EnrichedBatch, EnrichedEvent, RawBatch


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
    exit_code: int | None = None
    reason: str = ""


class _Waiting(msgspec.Struct, rename="camel", gc=False):
    reason: str = ""


class _State(msgspec.Struct, rename="camel", gc=False):
    waiting: _Waiting | None = None
    terminated: _Terminated | None = None


class _ContainerStatus(msgspec.Struct, rename="camel", gc=False):
    restart_count: int = 0
    state: _State | None = None
    last_state: _State | None = None


class _Status(msgspec.Struct, rename="camel", gc=False):
    phase: str = ""
    container_statuses: list[_ContainerStatus] | None = None
    init_container_statuses: list[_ContainerStatus] | None = None


class _Spec(msgspec.Struct, rename="camel", gc=False):
    node_name: str = ""


class _Source(msgspec.Struct, rename="camel", gc=False):
    component: str = ""
    host: str = ""


class _Series(msgspec.Struct, rename="camel", gc=False):
    count: int = 0


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
    count: int | None = None
    deprecated_count: int | None = None
    series: _Series | None = None
    source: _Source | None = None
    reporting_controller: str = ""
    reporting_component: str = ""
    reporting_instance: str = ""
    # other objects
    spec: _Spec | None = None
    status: _Status | None = None


_DECODER = msgspec.json.Decoder(_KubeObject)


def _container_summary(status: _Status | None) -> tuple[int, int | None, str]:
    """(restarts, last exit code, most telling container reason) over all containers."""
    if status is None:
        return 0, None, ""
    restarts, exit_code, reason = 0, None, ""
    for cs in (status.init_container_statuses or []) + (status.container_statuses or []):
        restarts += cs.restart_count
        for state in (cs.last_state, cs.state):
            if state and state.terminated:
                exit_code = state.terminated.exit_code
                reason = state.terminated.reason or reason
        if cs.state and cs.state.waiting and cs.state.waiting.reason:
            reason = cs.state.waiting.reason
    return restarts, exit_code, reason


def _owner(meta: _Meta) -> ObjectRef | None:
    refs = meta.owner_references or []
    ref = next((r for r in refs if r.controller), refs[0] if refs else None)
    if ref is None:
        return None
    return ObjectRef(kind=ref.kind, name=ref.name, namespace=meta.namespace, uid=ref.uid)


def _enrich_change(raw: RawEvent) -> EnrichedEvent:
    """A change event of the topology service: what changed is in its metadata (and its payload)."""
    md = raw.metadata
    if not md.get("kind") or not md.get("name"):
        raise EnrichError("change event without kind or name in its metadata")
    k8s = K8sContext(kind=md["kind"], name=md["name"], namespace=md.get("namespace", ""), uid=md.get("uid", ""))
    kube = KubernetesData(action="CHANGE", reason=md.get("reason", "Changed"), message=md.get("message", ""),
                          resource_version=md.get("resource_version", ""))
    return EnrichedEvent(raw=msgspec.structs.replace(raw, data=b""), k8s=k8s, kubernetes=kube, trace=_trace(raw))


def _enrich_kube(raw: RawEvent) -> EnrichedEvent:
    if raw.metadata.get("action") == "CHANGE":
        return _enrich_change(raw)
    try:
        obj = _DECODER.decode(raw.data)
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
                         uid=ref.uid, node=node)
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
        k8s = K8sContext(kind=kind, name=meta.name, namespace=meta.namespace, uid=meta.uid,
                         labels=meta.labels or {}, node=node, owner=_owner(meta))
        restarts, exit_code, reason = _container_summary(obj.status)
        kube = KubernetesData(
            action=md.get("action", "SNAPSHOT"), reason=reason, resource_version=meta.resource_version,
            phase=obj.status.phase if obj.status else "", restart_count=restarts, exit_code=exit_code,
            container_reason=reason)
    # the payload has been read: later stages do not need it, and it would ride four more topics
    return EnrichedEvent(raw=msgspec.structs.replace(raw, data=b""), k8s=k8s, kubernetes=kube, trace=_trace(raw))


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
    return out, rejected


def enrich_stage(batch: RawBatch) -> tuple[EnrichedBatch, list[tuple[RawEvent, str, str]]]:
    """The stage transform: one RawBatch in, one EnrichedBatch and the rejects out."""
    out, rejected = enrich_batch(batch.events)
    return EnrichedBatch(events=out), [(raw, raw.id, reason) for raw, reason in rejected]
