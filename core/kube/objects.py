"""A Kubernetes object or Event -> the RawEvent Tapio carries (type "kubeapi"). Pure: no I/O, no clock.

Fed by: every reader of Kubernetes objects: the replay parser (`collectors.replay`, recorded
files), the live watchers (`collectors.watching`), the kubectl text importer (`collectors.kubetext`)
and, through them, the bundle importer (`collectors.bundles`). Feeds: their RawEvents, which the
enrich stage decodes and the topology service indexes; because all of them build events here, a
live object, a recorded one and an imported one get the same id and the same metadata.

No secret value goes into a RawEvent: Secret data, env values (unless declared safe) and the
last-applied-configuration annotation that repeats them are hashed here (`core.kube.redact`), the one
place every reader goes through.

No event outgrows the transport: an object whose JSON is over MAX_OBJECT_BYTES (a legal ConfigMap
holds up to 1 MiB, NATS carries 1 MiB per message, base64 makes bytes a third larger) has its largest
string values (a ConfigMap's `data`, an annotation) replaced by `sha256:<16 hex> (<n> bytes, not
carried)` until it fits, so a changed value still shows as changed (`reduce_object`); one that does not
fit even so raises UnusableObject, and the reader reports and dead-letters it with the reason.

The id of an event is a hash of its content (an object: of its state, whether listed, added or
modified, see `state_id`; an Event observation: of its identity, see `event_identity`), so reading
the same object twice, from a list, a watch or a file, yields the same id. An object that cannot be
used raises `UnusableObject`, naming the field; each reader reports it with its own position.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec

from core.events import RawEvent, content_id
from core.kube.redact import redact_object

SNAPSHOT = "SNAPSHOT"  # an object read from a list or a file: state, not a moment
EVENT = "EVENT"  # a core/v1 or events.k8s.io Event
EVENT_API_VERSIONS = frozenset({"v1", "events.k8s.io/v1", "events.k8s.io/v1beta1"})
MESSAGE_CHARS = 1000
#: the JSON of an object an event carries; base64 in the RawEvent's JSON (4/3) plus its metadata stays
#: under NATS' default max_payload (1 MiB) and the bridge's nats.bridge_max_event_bytes
MAX_OBJECT_BYTES = 512 * 1024
MIN_REDUCED_CHARS = 256  # a string shorter than this is never replaced: its hash would not save much

_RFC3339 = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?([Zz]|[+-]\d\d:\d\d)?"
)


class UnusableObject(ValueError):
    """An object that is not a usable Kubernetes object; `field` is the path inside it ("" for the whole)."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}" if field else problem)

    @property
    def reason(self) -> str:
        return str(self)


def event_identity(metadata: dict[str, str], timestamp: datetime) -> str:
    """One id per observation of a Kubernetes Event, whichever API served it.

    core/v1 and events.k8s.io/v1 serve the same Event objects in two shapes; keyed on what both
    share (uid, resourceVersion, the normalized count and time), the same observation read from
    either API, a watch or a file has one id, so JetStream and the graph keep it once.
    """
    return content_id("kubeapi-event", metadata["uid"], metadata["resource_version"],
                      metadata.get("count", "1"), timestamp.isoformat())


def state_id(action: str, data: bytes) -> str:
    """The id of an object observation: one per state of the object (`data`, its JSON), however it was
    seen. A list (SNAPSHOT), a watch's ADDED or MODIFIED and a recording of the same object state are
    one observation, so a collector restarted and listing again, or a file replayed next to the live
    stream, repeats ids instead of telling the same state twice; a DELETED is an observation of its own.
    """
    return content_id("kubeapi", action if action == "DELETED" else SNAPSHOT, data)


NO_TIMESTAMP = "no timestamp"


def raw_event_from_object(obj: dict[str, Any], *, action: str, source: str,
                          undated_at: datetime | None = None, observed_at: datetime | None = None) -> RawEvent:
    """The RawEvent of one Kubernetes object or Event.

    `action` is SNAPSHOT, ADDED, MODIFIED or DELETED; an Event (core/v1 or events.k8s.io) always
    gets EVENT. An object that carries no time of its own (a manifest, `kubectl get -o yaml` of a
    ConfigMap) is placed at `undated_at` when given: state at the start of the recording (metadata
    `time_source` "undated"). `observed_at`, when a watch saw the change (its receipt time), is the
    latest the change can have happened: an object is placed there when its own times are older
    (a ConfigMap edit carries no time of its own: creation, and managedFields' time, which the API
    server moves only when a manager's set of fields changes; metadata `time_source` "observed").
    Raises UnusableObject naming the field when the object is not usable.
    """
    if not isinstance(obj, dict):
        raise UnusableObject("", f"expected a mapping (a Kubernetes object), got {_type(obj)}")
    kind = _text(obj, "kind", "kind", required=True)
    api_version = _text(obj, "apiVersion", "apiVersion")
    meta = _mapping(obj, "metadata", "metadata", required=True)
    name = _text(meta, "name", "metadata.name", required=True)
    is_event = kind == "Event" and (api_version in EVENT_API_VERSIONS or not api_version)
    final_action = EVENT if is_event else action
    metadata = {
        "kind": kind,
        "name": name,
        "namespace": _text(meta, "namespace", "metadata.namespace"),
        "uid": _text(meta, "uid", "metadata.uid"),
        "action": final_action,
        "api_version": api_version,
        "source": source,
        "resource_version": _text(meta, "resourceVersion", "metadata.resourceVersion"),
    }
    if is_event:
        metadata.update(_event_metadata(obj, meta))
        timestamp = _event_time(obj, meta)
    else:
        if kind == "Pod":
            spec = _mapping(obj, "spec", "spec")
            metadata["node"] = _text(spec, "nodeName", "spec.nodeName")
        timestamp = _object_time(obj, meta)
        if observed_at is not None and (timestamp is None or observed_at > timestamp):
            timestamp = observed_at
            metadata["time_source"] = "observed"
    if timestamp is None and undated_at is not None and not is_event:
        timestamp = undated_at
        metadata["time_source"] = "undated"
    if timestamp is None:
        raise UnusableObject("", f"{NO_TIMESTAMP}: {kind} {name} carries no time to place it at")
    obj = redact_object(obj)  # no Secret data, no env value (unless declared safe) goes further
    try:
        data = msgspec.json.encode(obj, order="sorted")
    except (msgspec.EncodeError, TypeError, OverflowError) as exc:
        hint = " (a mapping key is not a string: quote YAML keys like on/yes/1)" if "str keys" in str(exc) else ""
        raise UnusableObject("", f"cannot encode as JSON: {exc}{hint}") from exc
    except UnicodeEncodeError as exc:  # JSON's "\ud800" decodes to a lone surrogate, which UTF-8 cannot carry
        raise UnusableObject("", f"a string is not valid Unicode (a lone surrogate, {exc.reason})") from exc
    if len(data) > MAX_OBJECT_BYTES:
        data, note = reduce_object(data, MAX_OBJECT_BYTES, what=f"{kind} {name}")
        metadata["reduced"] = note
    return RawEvent(
        id=event_identity(metadata, timestamp) if is_event and metadata["uid"] else
        state_id(final_action, data),
        timestamp=timestamp,
        type="kubeapi",
        data=data,
        metadata=metadata,
    )


def reduce_object(data: bytes, limit: int, *, what: str) -> tuple[bytes, str]:
    """The object's JSON (`data`, over `limit` bytes) with its largest string values replaced by
    their hash and size, largest first, until it is `limit` bytes or less; and a note saying what was
    replaced. Raises UnusableObject when replacing every string of MIN_REDUCED_CHARS or more is not
    enough. Walks without recursion (keys are kept, only values are replaced)."""
    obj = msgspec.json.decode(data)  # a copy of its own: replaced in place
    found: list[tuple[int, Any, Any]] = []  # (length, container, key or index)
    stack: list[Any] = [obj]
    while stack:
        node = stack.pop()
        for key, value in (node.items() if isinstance(node, dict) else enumerate(node)):
            if isinstance(value, str):
                if len(value) >= MIN_REDUCED_CHARS:
                    found.append((len(value.encode()), node, key))
            elif isinstance(value, dict | list):
                stack.append(value)
    found.sort(key=lambda f: f[0], reverse=True)
    excess, replaced, freed = len(data) - limit, 0, 0
    for size, node, key in found:
        if freed >= excess:
            break
        value = node[key]
        node[key] = f"sha256:{hashlib.sha256(value.encode()).hexdigest()[:16]} ({size} bytes, not carried)"
        freed += size - len(node[key])
        replaced += 1
    reduced = msgspec.json.encode(obj, order="sorted")
    note = f"{replaced} values replaced by their hash (the object was {len(data)} bytes)"
    if len(reduced) > limit:
        raise UnusableObject("", f"too large: {len(data)} bytes of JSON, {len(reduced)} with its {replaced} largest "
                                 f"values replaced by their hash, over the {limit} bytes an event may carry ({what})")
    return reduced, note


# -- Events -------------------------------------------------------------------------------


def _event_metadata(obj: dict[str, Any], meta: dict[str, Any]) -> dict[str, str]:
    involved_key = "involvedObject" if "involvedObject" in obj else "regarding"
    involved = _mapping(obj, involved_key, involved_key)
    source = _mapping(obj, "source", "source") or _mapping(obj, "deprecatedSource", "deprecatedSource")
    message = _text(obj, "message", "message") or _text(obj, "note", "note")
    reporting = (
        _text(obj, "reportingComponent", "reportingComponent")
        or _text(obj, "reportingController", "reportingController")
        or _text(source, "component", "source.component")
    )
    instance = _text(obj, "reportingInstance", "reportingInstance")
    # reportingInstance names a node only for the kubelet ("default-scheduler-minikube" is not one)
    node = _text(source, "host", "source.host") or (instance if reporting == "kubelet" else "")
    namespace = _text(involved, "namespace", f"{involved_key}.namespace") or _text(
        meta, "namespace", "metadata.namespace"
    )
    return {
        "namespace": namespace,
        "reason": _text(obj, "reason", "reason"),
        "event_type": _text(obj, "type", "type"),
        "count": str(_event_count(obj)),
        "involved_kind": _text(involved, "kind", f"{involved_key}.kind"),
        "involved_name": _text(involved, "name", f"{involved_key}.name"),
        "involved_namespace": _text(involved, "namespace", f"{involved_key}.namespace"),
        "involved_uid": _text(involved, "uid", f"{involved_key}.uid"),
        "reporting_component": reporting,
        "message": message[:MESSAGE_CHARS],
        "node": node,
    }


def _event_count(obj: dict[str, Any]) -> int:
    series = _mapping(obj, "series", "series")
    for mapping, key, path in (
        (series, "count", "series.count"),
        (obj, "count", "count"),
        (obj, "deprecatedCount", "deprecatedCount"),
    ):
        value = mapping.get(key)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise UnusableObject(path, f"expected a count (integer >= 0), got {_show(value)}")
        if value > 0:
            return value
    return 1


def _event_time(obj: dict[str, Any], meta: dict[str, Any]) -> datetime | None:
    """Latest time the Event was seen: lastTimestamp, series.lastObservedTime, eventTime, ..."""
    series = _mapping(obj, "series", "series")
    for mapping, key, path in (
        (obj, "lastTimestamp", "lastTimestamp"),
        (obj, "deprecatedLastTimestamp", "deprecatedLastTimestamp"),
        (series, "lastObservedTime", "series.lastObservedTime"),
        (obj, "eventTime", "eventTime"),
        (obj, "firstTimestamp", "firstTimestamp"),
        (obj, "deprecatedFirstTimestamp", "deprecatedFirstTimestamp"),
        (meta, "creationTimestamp", "metadata.creationTimestamp"),
    ):
        found = _time(mapping, key, path)
        if found is not None:
            return found
    return None


# -- other objects ------------------------------------------------------------------------


def _object_time(obj: dict[str, Any], meta: dict[str, Any]) -> datetime | None:
    """Newest time the object carries: creation, the deletion request, last writes, an Endpoints' change
    trigger, conditions, containers.

    Never `metadata.deletionTimestamp` itself: it is a deadline (the request plus the grace period,
    ~30 s ahead for a pod), and taken as the moment of the observation it put one deleted pod in the
    future, ahead of every real failure of the next 30 s. It stays in the payload as data.
    """
    found = [_time(meta, "creationTimestamp", "metadata.creationTimestamp"), _deletion_requested(meta),
             _change_triggered(meta)]
    for i, entry in enumerate(_sequence(meta, "managedFields", "metadata.managedFields")):
        found.append(_time(_entry(entry, f"metadata.managedFields[{i}]"), "time", f"metadata.managedFields[{i}].time"))
    status = _mapping(obj, "status", "status")
    found.append(_time(status, "startTime", "status.startTime"))
    for i, cond in enumerate(_sequence(status, "conditions", "status.conditions")):
        cond = _entry(cond, f"status.conditions[{i}]")
        for key in ("lastTransitionTime", "lastUpdateTime"):
            found.append(_time(cond, key, f"status.conditions[{i}].{key}"))
    for group in ("initContainerStatuses", "containerStatuses", "ephemeralContainerStatuses"):
        for i, cstatus in enumerate(_sequence(status, group, f"status.{group}")):
            path = f"status.{group}[{i}]"
            cstatus = _entry(cstatus, path)
            for which, keys in (("state", ("startedAt", "finishedAt")), ("lastState", ("finishedAt",))):
                state = _mapping(cstatus, which, f"{path}.{which}")
                for phase, detail in state.items():
                    detail = _entry(detail, f"{path}.{which}.{phase}")
                    for key in keys:
                        found.append(_time(detail, key, f"{path}.{which}.{phase}.{key}"))
    times = [t for t in found if t is not None]
    return max(times) if times else None


TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time"


def _change_triggered(meta: dict[str, Any]) -> datetime | None:
    """An Endpoints' or EndpointSlice's annotation: when the change of a pod or Service that made this
    version happened (a pod's readiness lost, say). The API server moves managedFields' time only when a
    manager's set of fields changes, so a pod moving from `addresses` to `notReadyAddresses` leaves it
    at the Endpoints' first write; this annotation says when. None when absent or not a time (an
    annotation is anyone's text)."""
    annotations = meta.get("annotations")
    value = annotations.get(TRIGGER_TIME) if isinstance(annotations, dict) else None
    return parse_time(value) if isinstance(value, str) else None


def _deletion_requested(meta: dict[str, Any]) -> datetime | None:
    """When the deletion was asked for: `deletionTimestamp - deletionGracePeriodSeconds`, which the API
    server keeps at the request's time (a later delete that shortens the period moves both). None
    without the grace period: the deadline alone says nothing of when the object was seen."""
    deadline = _time(meta, "deletionTimestamp", "metadata.deletionTimestamp")
    grace = meta.get("deletionGracePeriodSeconds")
    if deadline is None or grace is None:
        return None
    if not isinstance(grace, int) or isinstance(grace, bool) or grace < 0:
        raise UnusableObject("metadata.deletionGracePeriodSeconds",
                             f"expected seconds (integer >= 0), got {_show(grace)}")
    return deadline - timedelta(seconds=grace)


# -- typed access ---------------------------------------------------------------------------


def _text(mapping: dict[str, Any], key: str, path: str, *, required: bool = False) -> str:
    value = mapping.get(key)
    if value is None or (required and value == ""):
        if required:
            raise UnusableObject(path, "missing")
        return ""
    if not isinstance(value, str):
        raise UnusableObject(path, f"expected a string, got {_show(value)}")
    return value


def _mapping(mapping: dict[str, Any], key: str, path: str, *, required: bool = False) -> dict[str, Any]:
    value = mapping.get(key)
    if value is None:
        if required:
            raise UnusableObject(path, "missing")
        return {}
    return _entry(value, path)


def _entry(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise UnusableObject(path, f"expected a mapping, got {_show(value)}")
    return value


def _sequence(mapping: dict[str, Any], key: str, path: str) -> list[Any]:
    value = mapping.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise UnusableObject(path, f"expected a list, got {_show(value)}")
    return value


def _time(mapping: dict[str, Any], key: str, path: str) -> datetime | None:
    value = mapping.get(key)
    if value is None:
        return None
    parsed = parse_time(value) if isinstance(value, str) else None
    if parsed is None:
        raise UnusableObject(path, f"expected RFC3339 time, got {_show(value)}")
    return parsed


def parse_time(value: str) -> datetime | None:
    """An RFC3339 time (fractions up to nanoseconds, Z or an offset) as aware UTC; None if not one.

    A time without an offset is taken as UTC.
    """
    match = _RFC3339.fullmatch(value.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    micro = int((fraction or "").ljust(6, "0")[:6])
    tz = UTC
    if offset and offset not in "Zz":
        sign = 1 if offset[0] == "+" else -1
        tz = timezone(sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6])))
    try:
        moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tz)
    except ValueError:
        return None
    return moment.astimezone(UTC)


def _type(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _show(value: Any) -> str:
    if isinstance(value, str):
        shown = repr(value)
    else:
        try:
            shown = msgspec.json.encode(value).decode()
        except (msgspec.EncodeError, TypeError, ValueError):  # ValueError: OverflowError, a lone surrogate
            shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."
