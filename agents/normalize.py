"""Stage 2, normalize: give each enriched event its meaning and its final UnifiedEvent form.

Fed by: topic `enriched` (EnrichedBatch). Feeds: topic `unified` (UnifiedBatch).

The meaning (intent, category, severity) comes from `core/kube/vocabulary/semantics.yaml`, a table keyed by
Kubernetes reason and by object change, so new reasons are data, not code. The narrative is
one plain sentence an SRE can read in a list.
"""

from __future__ import annotations

import math

from core.events import KernelData, NetworkData, SemanticContext, Severity, UnifiedEvent
from core.kube.semantics import Meaning, SemanticTable, semantic_table
from core.records import EnrichedBatch, EnrichedEvent, UnifiedBatch

_RANK = {s: i for i, s in enumerate(("debug", "info", "warning", "error", "critical"))}


def _at_least(severity: Severity, floor: Severity) -> Severity:
    return severity if _RANK[severity] >= _RANK[floor] else floor


_SEVERITIES = frozenset(("debug", "info", "warning", "error", "critical"))


def meaning_of(event: EnrichedEvent, table: SemanticTable) -> Meaning:
    kube = event.kubernetes
    if kube is None:
        md = event.raw.metadata
        # a log line (core/kube/vocabulary/log_signals.yaml gave it meaning) or a node collector's
        # event (collectors.node: it says its intent, category and severity)
        if md.get("intent"):
            severity = md.get("severity", "warning")
            return Meaning(md["intent"], md.get("category", event.raw.type),
                           severity if severity in _SEVERITIES else "warning")  # type: ignore[arg-type]
        return table.default
    if kube.action == "EVENT":
        for hint, meaning in table.message_hints.items():
            if hint in kube.message:
                return meaning
        meaning = table.reasons.get(kube.reason, table.default)
        if kube.event_type == "Warning":
            meaning = Meaning(meaning.intent, meaning.category, _at_least(meaning.severity, "warning"))
        return meaning
    kind = event.k8s.kind if event.k8s else ""
    if kube.container_reason in table.container_reasons:
        return table.container_reasons[kube.container_reason]
    if kube.message:  # a container's own error ("exec: \"wge\": executable file not found in $PATH")
        for hint, meaning in table.message_hints.items():
            if hint in kube.message:
                return meaning
    if kube.reason and not kube.container_reason and kube.reason in table.reasons:  # a Pod's PodScheduled=False
        return table.reasons[kube.reason]
    return (table.changes.get(f"{kind}/{kube.action}") or table.changes.get(kube.action) or table.default)


def narrative(event: EnrichedEvent, meaning: Meaning) -> str:
    k8s, kube = event.k8s, event.kubernetes
    subject = f"{k8s.kind} {k8s.namespace + '/' if k8s.namespace else ''}{k8s.name}" if k8s else event.raw.type
    if kube is None:
        md = event.raw.metadata
        if event.raw.type == "logs" and md.get("signal"):
            container = md.get("container", "")
            previous = ", previous" if md.get("previous") == "true" else ""
            where = f" (container {container}{previous})" if container else ""
            return f"{subject}{where}: {md['signal']}: {md.get('message', '')}".rstrip(": ")
        if md.get("message"):  # a node collector's line (collectors.node)
            reason = f"{md['reason']}: " if md.get("reason") else ""
            return f"{subject}: {reason}{' '.join(md['message'].split())[:300]}"
        return f"{subject}: {meaning.intent}"
    if kube.action in ("CHANGE", "ROLLOUT"):  # the change summary already names the object
        return kube.message or f"{subject} changed"
    if kube.action == "EVENT":
        times = f" (x{kube.count})" if kube.count > 1 else ""
        return f"{subject}: {kube.reason}{times}: {kube.message}".rstrip(": ")
    verb = {"ADDED": "was created", "MODIFIED": "was modified", "DELETED": "was deleted"}.get(kube.action, "observed")
    reason = kube.container_reason or kube.reason
    detail = f" ({reason}, {kube.restart_count} restarts)" if reason else ""
    said = f": {' '.join(kube.message.split())[:300]}" if kube.message else ""
    return f"{subject} {verb}{detail}{said}"


def correlation_hints(event: EnrichedEvent) -> list[str]:
    """`UnifiedEvent.correlation_hints`: tags naming what the event itself is about, for a pattern
    or a reader to correlate on: `<kind>:<uid>` (lowercase kind; `<namespace>/<name>` without a uid),
    `namespace:<ns>`, `node:<node>` (the node the event names) and `owner:<uid>` (the direct
    controller; `<Kind>/<name>` without a uid).

    Not scope keys (`core.kube.scopes`), though some read alike: a scope key is where a match holds,
    as membership resolves it (`owner:` is the rolled-up workload, `node:` the pod's learned node);
    a hint only repeats the event's own context. Their format is on the `unified` topic: it stays.
    """
    k8s = event.k8s
    if k8s is None:
        return []
    out = [f"{k8s.kind.lower()}:{k8s.uid or k8s.namespace + '/' + k8s.name}"]
    if k8s.namespace:
        out.append(f"namespace:{k8s.namespace}")
    if k8s.node:
        out.append(f"node:{k8s.node}")
    if k8s.owner:
        out.append(f"owner:{k8s.owner.uid or k8s.owner.kind + '/' + k8s.owner.name}")
    return out


METRIC_PREFIX = "metric."


class NormalizeError(ValueError):
    """An event whose content cannot be stored as it is (a metric that is not a finite number)."""


def metrics_of(metadata: dict[str, str]) -> dict[str, float]:
    """Samples a collector put in its metadata as `metric.<name>: <number>` (what is not a number is
    left out). A sample that reads as NaN or infinity raises NormalizeError: the graph and the
    windows compare numbers, and no comparison with NaN holds, so the event is rejected, naming it."""
    out: dict[str, float] = {}
    for key, value in metadata.items():
        if key.startswith(METRIC_PREFIX):
            try:
                number = float(value)
            except ValueError:
                continue
            if not math.isfinite(number):
                raise NormalizeError(f"metadata[{key!r}] is {value!r}: not a finite number")
            out[key[len(METRIC_PREFIX):]] = number
    return out


KERNEL_PREFIX, NET_PREFIX = "kernel.", "net."
_KERNEL_FIELDS = ("comm", "syscall", "cgroup")
_NET_FIELDS = ("protocol", "src", "dst", "query", "rcode")


def kernel_of(metadata: dict[str, str]) -> KernelData | None:
    """The kernel layer a node collector gave as `kernel.<field>` (`collectors.node`): pid, comm,
    syscall, cgroup; the other fields as detail. None when it gave none."""
    found = {k[len(KERNEL_PREFIX):]: v for k, v in metadata.items() if k.startswith(KERNEL_PREFIX)}
    if not found and "pid" not in metadata:
        return None
    pid = found.pop("pid", metadata.get("pid", "0"))
    return KernelData(pid=int(pid) if pid.isdigit() else 0, **{f: found.pop(f) for f in _KERNEL_FIELDS if f in found},
                      detail=found)


def network_of(metadata: dict[str, str]) -> NetworkData | None:
    """The network layer a node collector gave as `net.<field>` (`collectors.node`); None when none."""
    found = {k[len(NET_PREFIX):]: v for k, v in metadata.items() if k.startswith(NET_PREFIX)}
    if not found:
        return None
    port = found.pop("port", "0")
    return NetworkData(port=int(port) if port.isdigit() else 0, **{f: found.pop(f) for f in _NET_FIELDS if f in found},
                       detail=found)


def normalize_event(event: EnrichedEvent, table: SemanticTable | None = None) -> UnifiedEvent:
    """Pure: the UnifiedEvent for one enriched event."""
    table = table or semantic_table()
    meaning = meaning_of(event, table)
    raw = event.raw
    return UnifiedEvent(
        id=raw.id, timestamp=raw.timestamp, type=raw.type, source=raw.metadata.get("source", raw.type),
        semantic=SemanticContext(intent=meaning.intent, category=meaning.category,
                                 severity=meaning.severity, narrative=narrative(event, meaning)),
        trace=event.trace, k8s=event.k8s, kubernetes=event.kubernetes, correlation_hints=correlation_hints(event),
        metrics=metrics_of(raw.metadata) if raw.type != "kubeapi" else {},
        kernel=kernel_of(raw.metadata) if raw.type != "kubeapi" else None,
        network=network_of(raw.metadata) if raw.type != "kubeapi" else None)


def normalize_stage(batch: EnrichedBatch) -> tuple[UnifiedBatch, list[tuple[EnrichedEvent, str, str]]]:
    """The stage transform: one EnrichedBatch in, one UnifiedBatch and the rejects out."""
    table = semantic_table()
    out: list[UnifiedEvent] = []
    rejected: list[tuple[EnrichedEvent, str, str]] = []
    for event in batch.events:
        try:
            out.append(normalize_event(event, table))
        except NormalizeError as e:
            rejected.append((event, event.raw.id, f"cannot normalize: {e}"))
        except Exception as e:  # an event nobody foresaw: this event only, never its batch
            rejected.append((event, event.raw.id, f"cannot normalize: {e!r}"))
    return UnifiedBatch(events=out, watermark=batch.watermark, progress=batch.progress), rejected
