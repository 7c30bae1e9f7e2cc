"""The event model: what collectors emit (RawEvent) and what the dataflow reasons about (UnifiedEvent).

Fed by: every collector (they build RawEvents), the enrich and normalize agents (they build
UnifiedEvents). Feeds: every topic record in `core.records`, the graph sink.

All types are msgspec Structs: they are the typed boundary of every subject and topic.
Timestamps are timezone-aware UTC datetimes; ids are plain strings (see `EventId`).
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from typing import Literal, NewType

import msgspec

EventId = NewType("EventId", str)

Severity = Literal["debug", "info", "warning", "error", "critical"]

CLUSTER_SCOPE = "_cluster"
"""Namespace token used in subjects for cluster-scoped objects (Nodes, PVs...)."""


class RawEvent(msgspec.Struct, frozen=True, kw_only=True, gc=False, omit_defaults=True):
    """One observation as a collector saw it, before any interpretation.

    `data` is the collector's payload untouched (a Kubernetes object as JSON, a kernel
    record...). `metadata` carries what the collector already parsed cheaply; the keys
    `namespace`, `kind`, `name` and `uid` are read by the publisher and the enricher.
    """

    id: str
    timestamp: datetime
    type: str  # the collector: kernel, kubeapi, cni, dns, cri, kubelet, etcd, systemd
    data: bytes
    metadata: dict[str, str] = {}
    trace_id: str = ""
    span_id: str = ""

    @property
    def namespace(self) -> str:
        return self.metadata.get("namespace") or CLUSTER_SCOPE


class TraceContext(msgspec.Struct, frozen=True, kw_only=True, gc=False, omit_defaults=True):
    trace_id: str
    span_id: str = ""


class SemanticContext(msgspec.Struct, frozen=True, kw_only=True, gc=False, omit_defaults=True):
    """What the event means: intent ("config-change", "oom-kill"), category, severity, prose."""

    intent: str
    category: str
    narrative: str
    severity: Severity = "info"


class ObjectRef(msgspec.Struct, frozen=True, kw_only=True, gc=False, omit_defaults=True):
    kind: str
    name: str
    namespace: str = ""
    uid: str = ""


class K8sContext(msgspec.Struct, frozen=True, kw_only=True, gc=False, omit_defaults=True):
    """The Kubernetes object an event is about: the key that joins it to the topology."""

    kind: str
    name: str
    namespace: str = ""
    uid: str = ""
    labels: dict[str, str] = {}
    node: str = ""
    owner: ObjectRef | None = None
    refs: list[str] = []  # a pod's or workload's ConfigMaps/Secrets/PVCs: "ConfigMap/name", "Secret/name"...;
    # the pods behind an Endpoints or EndpointSlice: "Pod/name"
    selector: dict[str, str] = {}  # a Service's (or workload's matchLabels) pod selector


class KernelData(msgspec.Struct, frozen=True, kw_only=True, gc=False, omit_defaults=True):
    pid: int = 0
    comm: str = ""
    syscall: str = ""
    cgroup: str = ""
    detail: dict[str, str] = {}


class NetworkData(msgspec.Struct, frozen=True, kw_only=True, gc=False, omit_defaults=True):
    protocol: str = ""
    src: str = ""
    dst: str = ""
    port: int = 0
    query: str = ""
    rcode: str = ""
    detail: dict[str, str] = {}


class KubernetesData(msgspec.Struct, frozen=True, kw_only=True, gc=False, omit_defaults=True):
    """The Kubernetes layer of an event.

    `action` says what was seen: a watch verb on an object (ADDED, MODIFIED, DELETED,
    SNAPSHOT for an object read from a list), or EVENT for a core/v1 or events.k8s.io Event.
    """

    action: str
    reason: str = ""
    message: str = ""
    event_type: str = ""  # Normal / Warning, for Events
    count: int = 1
    reporting_component: str = ""
    resource_version: str = ""
    phase: str = ""
    restart_count: int = 0
    exit_code: int | None = None
    container_reason: str = ""
    content_hash: str = ""  # ConfigMap/Secret data or a workload's pod template: tells an edit from a status update
    ready_endpoints: int = -1  # an Endpoints' or EndpointSlice's ready addresses (-1: not such an object)


class UnifiedEvent(msgspec.Struct, frozen=True, kw_only=True, gc=False, omit_defaults=True):
    """A RawEvent joined to its meaning and its place in the cluster."""

    id: str
    timestamp: datetime
    type: str
    source: str
    semantic: SemanticContext
    trace: TraceContext | None = None
    k8s: K8sContext | None = None
    kernel: KernelData | None = None
    network: NetworkData | None = None
    kubernetes: KubernetesData | None = None
    correlation_hints: list[str] = []
    metrics: dict[str, float] = {}  # samples a collector measured ("memory.usage_percent": 91.5)


OBJECT_ACTIONS = frozenset({"SNAPSHOT", "ADDED", "MODIFIED", "DELETED"})


def is_object_event(event: RawEvent) -> bool:
    """A Kubernetes object as observed (not an Event about one): what the topology is built from."""
    return event.type == "kubeapi" and event.metadata.get("action") in OBJECT_ACTIONS


_SUBJECT_TOKEN = re.compile(r"[^A-Za-z0-9_-]")


def subject_token(value: str) -> str:
    """Make `value` safe as one NATS subject token (no dots, spaces or wildcards)."""
    return _SUBJECT_TOKEN.sub("_", value) or "_"


def content_id(*parts: bytes | str) -> EventId:
    """A deterministic event id from the event's content.

    Replaying the same recording twice yields the same ids, so JetStream's duplicate
    window and the graph's MERGE both drop the repeat.
    """
    digest = hashlib.blake2b(digest_size=16)
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"\x1f")
    return EventId(digest.hexdigest())


def utc(value: datetime) -> datetime:
    """Normalize to an aware UTC datetime (naive values are taken as UTC)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def epoch_ms(value: datetime) -> int:
    return int(utc(value).timestamp() * 1000)


def publish_order(events: list[RawEvent]) -> list[RawEvent]:
    """The order a recording is published in: snapshots first, then everything else by event time.

    A SNAPSHOT (an object read from a list, not a watch) is state, not a moment: its timestamp is
    only the newest time it carries. Published first, it teaches the match stage which pods belong
    to which node, workload and ConfigMap before the Events about them, and it never moves the
    event-time watermark (see app.bridge). Everything else is stably sorted by its own time, which
    is the order live collection would have produced; so windows see a recording as they would
    have seen the cluster.
    """
    snapshots = [e for e in events if e.metadata.get("action") == "SNAPSHOT"]
    timed = sorted((e for e in events if e.metadata.get("action") != "SNAPSHOT"), key=lambda e: e.timestamp)
    return snapshots + timed
