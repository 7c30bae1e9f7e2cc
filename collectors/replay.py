"""Replay collector, parsing layer: a recorded Kubernetes file -> RawEvents (type "kubeapi").

Fed by: files users hand Tapio (`kubectl get events|<kind> -o json|yaml`, watch streams from
`kubectl get -w -o json [--output-watch-events]`, bare arrays, multi-document YAML, one object),
split into documents by `collectors.kubefiles`. Feeds: the replay publisher, which sends every
RawEvent to NATS exactly as a live kubeapi collector would, and reports every ReplayError.

Pure: no clock, no network. The id of an event is a hash of its content, so replaying the same
file twice yields the same ids. Bad content never raises; it comes out as a ReplayError next to
the events that could be read.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import msgspec

from collectors.kubefiles import FRAGMENT_CHARS, SNAPSHOT, Item, ReplayError, split_recording
from core.events import RawEvent, content_id

__all__ = [
    "EVENT",
    "SNAPSHOT",
    "ReplayError",
    "ReplayFileError",
    "ReplayValueError",
    "parse_recording",
    "raw_event_from_object",
    "read_recording",
]

EVENT = "EVENT"
EVENT_API_VERSIONS = frozenset({"v1", "events.k8s.io/v1", "events.k8s.io/v1beta1"})
MESSAGE_CHARS = 1000

_RFC3339 = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?([Zz]|[+-]\d\d:\d\d)?"
)


class ReplayFileError(OSError):
    """The recording itself cannot be read (missing, a directory, no permission)."""


class ReplayValueError(ValueError):
    """An object that is not a usable Kubernetes object; `field` is the path inside it."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}" if field else problem)

    @property
    def reason(self) -> str:
        return str(self)


def read_recording(path: str | Path) -> Iterator[RawEvent | ReplayError]:
    """One RawEvent per Event / object in the file, in file order, and a ReplayError per bad part.

    Raises ReplayFileError at once (before iterating) if the file cannot be read; never for
    its content.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ReplayFileError(exc.errno, f"cannot read recording: {exc.strerror}", str(path)) from exc
    return parse_recording(data, str(path))


def parse_recording(data: bytes, file: str) -> Iterator[RawEvent | ReplayError]:
    """Same as read_recording, for content already in memory; `file` names it in errors."""
    for part in split_recording(data, file):
        if isinstance(part, ReplayError):
            yield part
            continue
        try:
            obj = _with_implied_kind(part)
            yield raw_event_from_object(obj, action=part.action, source=f"{file}#{part.position}")
        except ReplayValueError as exc:
            yield ReplayError(
                file=file, position=part.position, reason=_reason(part, exc), fragment=_fragment(part.value)
            )


def shifted(events: list[RawEvent], delta: timedelta) -> list[RawEvent]:
    """The recording moved in time by `delta`: timestamps and ids change, payloads do not.

    Matching runs in event time, and a dataflow that has seen newer events takes last week's
    ones as late; `tapio replay --shift-to now` moves an old incident to the present. The id
    changes with the shift, so the moved copy is a new event, not a duplicate of the original.
    """
    if not delta:
        return events
    tag = str(int(delta.total_seconds() * 1000))
    return [msgspec.structs.replace(e, timestamp=e.timestamp + delta, id=content_id(e.id, "shift", tag))
            for e in events]


def newest_time(events: list[RawEvent]) -> datetime | None:
    """The newest event time of a recording, snapshots aside (they carry no moment of their own)."""
    times = [e.timestamp for e in events if e.metadata.get("action") != "SNAPSHOT"]
    return max(times) if times else None


def event_identity(metadata: dict[str, str], timestamp: datetime) -> str:
    """One id per observation of a Kubernetes Event, whichever API served it.

    core/v1 and events.k8s.io/v1 serve the same Event objects in two shapes; keyed on what both
    share (uid, resourceVersion, the normalized count and time), the same observation read from
    either API, a watch or a file has one id, so JetStream and the graph keep it once.
    """
    return content_id("kubeapi-event", metadata["uid"], metadata["resource_version"],
                      metadata.get("count", "1"), timestamp.isoformat())


def raw_event_from_object(obj: dict, *, action: str, source: str) -> RawEvent:
    """The RawEvent of one Kubernetes object or Event.

    `action` is SNAPSHOT, ADDED, MODIFIED or DELETED; an Event (core/v1 or events.k8s.io) always
    gets EVENT. Raises ReplayValueError naming the field when the object is not usable.
    """
    if not isinstance(obj, dict):
        raise ReplayValueError("", f"expected a mapping (a Kubernetes object), got {_type(obj)}")
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
    if timestamp is None:
        raise ReplayValueError("", f"no timestamp: {kind} {name} carries no time to place it at")
    try:
        data = msgspec.json.encode(obj, order="sorted")
    except (msgspec.EncodeError, TypeError, OverflowError) as exc:
        hint = " (a mapping key is not a string: quote YAML keys like on/yes/1)" if "str keys" in str(exc) else ""
        raise ReplayValueError("", f"cannot encode as JSON: {exc}{hint}") from exc
    return RawEvent(
        id=event_identity(metadata, timestamp) if is_event and metadata["uid"] else
        content_id("kubeapi", final_action, data),
        timestamp=timestamp,
        type="kubeapi",
        data=data,
        metadata=metadata,
    )


# -- Events -------------------------------------------------------------------------------


def _event_metadata(obj: dict, meta: dict) -> dict[str, str]:
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


def _event_count(obj: dict) -> int:
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
            raise ReplayValueError(path, f"expected a count (integer >= 0), got {_show(value)}")
        if value > 0:
            return value
    return 1


def _event_time(obj: dict, meta: dict) -> datetime | None:
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


def _object_time(obj: dict, meta: dict) -> datetime | None:
    """Newest time the object carries: creation, deletion, last writes, conditions, containers."""
    found = [_time(meta, "creationTimestamp", "metadata.creationTimestamp")]
    found.append(_time(meta, "deletionTimestamp", "metadata.deletionTimestamp"))
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


def _with_implied_kind(part: Item) -> Any:
    """A list item without `kind` takes it from the list (`PodList` -> `Pod`)."""
    obj = part.value
    if not isinstance(obj, dict) or obj.get("kind") is not None:
        return obj
    list_kind = part.list_kind
    if not list_kind.endswith("List") or list_kind == "List":
        implied = f" (the list kind {list_kind!r} does not imply one)" if list_kind else ""
        raise ReplayValueError("kind", f"missing{implied}")
    filled = {**obj, "kind": list_kind[: -len("List")]}
    if filled.get("apiVersion") is None and part.list_api_version:
        filled["apiVersion"] = part.list_api_version
    return filled


# -- typed access ---------------------------------------------------------------------------


def _text(mapping: dict, key: str, path: str, *, required: bool = False) -> str:
    value = mapping.get(key)
    if value is None or (required and value == ""):
        if required:
            raise ReplayValueError(path, "missing")
        return ""
    if not isinstance(value, str):
        raise ReplayValueError(path, f"expected a string, got {_show(value)}")
    return value


def _mapping(mapping: dict, key: str, path: str, *, required: bool = False) -> dict:
    value = mapping.get(key)
    if value is None:
        if required:
            raise ReplayValueError(path, "missing")
        return {}
    return _entry(value, path)


def _entry(value: Any, path: str) -> dict:
    if not isinstance(value, dict):
        raise ReplayValueError(path, f"expected a mapping, got {_show(value)}")
    return value


def _sequence(mapping: dict, key: str, path: str) -> list:
    value = mapping.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ReplayValueError(path, f"expected a list, got {_show(value)}")
    return value


def _time(mapping: dict, key: str, path: str) -> datetime | None:
    value = mapping.get(key)
    if value is None:
        return None
    parsed = parse_time(value) if isinstance(value, str) else None
    if parsed is None:
        raise ReplayValueError(path, f"expected RFC3339 time, got {_show(value)}")
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
    tz = timezone.utc
    if offset and offset not in "Zz":
        sign = 1 if offset[0] == "+" else -1
        tz = timezone(sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6])))
    try:
        moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tz)
    except ValueError:
        return None
    return moment.astimezone(timezone.utc)


def _type(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _show(value: Any) -> str:
    if isinstance(value, str):
        shown = repr(value)
    else:
        try:
            shown = msgspec.json.encode(value).decode()
        except (msgspec.EncodeError, TypeError, OverflowError):
            shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def _reason(part: Item, exc: ReplayValueError) -> str:
    if not exc.field:
        return exc.problem
    field = f"object.{exc.field}" if part.from_watch else exc.field
    path = part.position.rsplit(" ", 1)[-1]
    if path.endswith("]"):
        field = f"{path}.{field}"
    return f"{field}: {exc.problem}"


def _fragment(value: Any) -> str:
    try:
        return msgspec.json.encode(value, order="sorted").decode()[:FRAGMENT_CHARS]
    except (msgspec.EncodeError, TypeError, OverflowError):
        return repr(value)[:FRAGMENT_CHARS]

