"""Replay collector, parsing layer: a recorded Kubernetes file -> RawEvents (type "kubeapi").

Fed by: files users hand Tapio (`kubectl get events|<kind> -o json|yaml`, watch streams from
`kubectl get -w -o json [--output-watch-events]`, bare arrays, multi-document YAML, one object),
split into documents by `collectors.kubefiles`. Feeds: the replay publisher, which sends every
RawEvent to NATS exactly as a live kubeapi collector would, and reports every UnusableInput.

Each document becomes a RawEvent through `core.kube.objects.raw_event_from_object`, the transform
the live collector uses too. Pure: no clock, no network. The id of an event is a hash of its
content, so replaying the same file twice yields the same ids. Bad content never raises; it comes
out as an UnusableInput (file, position, reason, fragment) next to the events that could be read.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec

from collectors.kubefiles import Item, split_recording
from collectors.limits import read_capped
from collectors.rawlines import is_raw_lines, parse_raw_lines
from collectors.unusable import FRAGMENT_CHARS, UnusableInput
from core.events import RawEvent, content_id
from core.kube.objects import SNAPSHOT, UnusableObject, raw_event_from_object
from core.kube.redact import redact_object

__all__ = [
    "ReplayFileError",
    "newest_time",
    "parse_recording",
    "read_recording",
    "shifted",
]


class ReplayFileError(OSError):
    """The recording itself cannot be read (missing, a directory, no permission)."""


def read_recording(path: str | Path) -> Iterator[RawEvent | UnusableInput]:
    """One RawEvent per Event / object in the file, in file order, and an UnusableInput per bad part.

    Raises ReplayFileError at once (before iterating) if the file cannot be read; never for
    its content. A file larger than `collectors.limits.MAX_FILE_BYTES` is one UnusableInput, not read.
    """
    try:
        data, refused = read_capped(str(path))
    except OSError as exc:
        raise ReplayFileError(exc.errno, f"cannot read recording: {exc.strerror}", str(path)) from exc
    if refused:
        return iter([UnusableInput(file=str(path), position="file", reason=refused)])
    if is_raw_lines(str(path)):  # a node collector's RawEvents as it emitted them (collectors.rawlines)
        return parse_raw_lines(data, str(path))
    return parse_recording(data, str(path))


def parse_recording(data: bytes, file: str, *, undated_at: datetime | None = None, kind: str = "",
                    api_version: str = "", namespace: str = "") -> Iterator[RawEvent | UnusableInput]:
    """Same as read_recording, for content already in memory; `file` names it in errors.

    `undated_at`: where objects that carry no time of their own are placed (else they are unusable).
    `kind` (with `api_version`): what an item is when neither it nor its list says (the file's name
    says it, as a Sonobuoy `Pods.json`); `namespace`: that of an object that names none (the folder
    it was listed from says it).
    """
    for part in split_recording(data, file):
        if isinstance(part, UnusableInput):
            yield part
            continue
        try:
            obj = _in_namespace(_with_implied_kind(part, kind, api_version), namespace)
            yield raw_event_from_object(obj, action=part.action, source=f"{file}#{part.position}",
                                        undated_at=undated_at)
        except UnusableObject as exc:
            yield UnusableInput(
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
    times = [e.timestamp for e in events if e.metadata.get("action") != SNAPSHOT]
    return max(times) if times else None


def _with_implied_kind(part: Item, kind: str = "", api_version: str = "") -> Any:
    """A list item without `kind` takes it from the list (`PodList` -> `Pod`), else the given one."""
    obj = part.value
    if not isinstance(obj, dict) or obj.get("kind") is not None:
        return obj
    list_kind = part.list_kind
    if list_kind.endswith("List") and list_kind != "List":
        filled = {**obj, "kind": list_kind[: -len("List")]}
        api_version = part.list_api_version
    elif kind:
        filled = {**obj, "kind": kind}  # a `v1 List`'s apiVersion is not its items'
    else:
        implied = f" (the list kind {list_kind!r} does not imply one)" if list_kind else ""
        raise UnusableObject("kind", f"missing{implied}")
    if filled.get("apiVersion") is None and api_version:
        filled["apiVersion"] = api_version
    return filled


def _in_namespace(obj: Any, namespace: str) -> Any:
    """An object whose metadata names no namespace, placed in `namespace` (when one is given)."""
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    if not namespace or not isinstance(meta, dict) or meta.get("namespace"):
        return obj
    return {**obj, "metadata": {**meta, "namespace": namespace}}


def _reason(part: Item, exc: UnusableObject) -> str:
    if not exc.field:
        return exc.problem
    field = f"object.{exc.field}" if part.from_watch else exc.field
    path = part.position.rsplit(" ", 1)[-1]
    if path.endswith("]"):
        field = f"{path}.{field}"
    return f"{field}: {exc.problem}"


def _fragment(value: Any) -> str:
    value = redact_object(value)  # a dead letter quotes no Secret data nor env value either
    try:
        return msgspec.json.encode(value, order="sorted").decode()[:FRAGMENT_CHARS]
    except (msgspec.EncodeError, TypeError, ValueError):  # ValueError: OverflowError, a lone surrogate
        return repr(value)[:FRAGMENT_CHARS]

