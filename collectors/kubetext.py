"""kubectl's text output -> RawEvents (type "kubeapi"), as if the objects and Events had been read as JSON.

Fed by: files users hand Tapio that hold what kubectl printed on a terminal:
- `kubectl describe <kind> [<name>]`, one object or several (each block starts with `Name:`),
  of any kind; the object is rebuilt by `collectors.kubedescribe`;
- `kubectl get events [-A] [-o wide]` and `kubectl events [-A]` tables, read by
  `collectors.kubetables` (a file may hold several outputs one after the other);
- `kubectl get pods|nodes|deployments|replicasets|statefulsets|daemonsets|jobs [-A] [-o wide]`
  tables, each row an object rebuilt by `collectors.kubegets` with the fields the table shows.
Feeds: the replay publisher, like `collectors.replay.parse_recording`: each described object is a
SNAPSHOT RawEvent whose payload is the object as the API serves it, each Events row a core/v1
Event RawEvent, all built by `core.kube.objects.raw_event_from_object` (same ids, same metadata).
A `kubectl get` row is state at the moment kubectl ran: its SNAPSHOT is placed at `now` (its AGE
is the creation time, in the object), with metadata `time_source` "capture" and `table` naming
the command (`kubectl get pods`).

Relative ages and the reference time `now`. Text output shows Event times only as ages (`34s`,
`18s (x2 over 34s)`), relative to the moment kubectl ran. They are resolved against `now`:
1. the `now` the caller passes (`tapio replay --now`): the moment the output was captured;
2. else the newest absolute time the input shows (`Start Time:`, `Started:`, `Finished:`,
   `CreationTimestamp:`, a Node's heartbeat times, ... in describe output). kubectl ran at or after
   that time, so the resolved Event times may be early by the gap (none: a Node's heartbeat is
   seconds old; minutes: a pod's last container start), never late;
3. else, if anything needs a time (an Events row, an object that shows no time of its own), the
   call raises MissingNowError, asking for `now`.
Ages are truncated by kubectl to their shown unit (`3h5m` is 3h5m0s to 3h5m59s), so resolved
times are exact only to that unit. An object that shows no time of its own is placed at `now`.
A `kubectl get` table shows only ages: alone, it needs `now` like an events table.

Pure: no clock, no network. A block or row that cannot be read comes out as an UnusableInput naming
the file and line; the rest of the file still goes through.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime

import msgspec

from collectors.kubedescribe import Described, parse_describe_block
from collectors.kubegets import GetRow, get_object, is_get_header, parse_get_table
from collectors.kubetables import (
    EventRow,
    TextError,
    event_object,
    fragment,
    is_events_header,
    kind_of,
    parse_events_table,
    rfc3339,
)
from collectors.limits import json_loads
from collectors.unusable import UnusableInput
from core.events import RawEvent, content_id, utc
from core.kube.objects import EVENT, SNAPSHOT, UnusableObject, raw_event_from_object, state_id

__all__ = ["MissingNowError", "looks_like_kubectl_text", "parse_kubectl_text", "strip_harness"]

_NAME = re.compile(r"Name:[ \t]+\S")
_EVENTS = re.compile(r"Events:(?:\s|$)")
_QUIET = re.compile(r"(?:No resources found|No events found)\b")


class MissingNowError(ValueError):
    """kubectl text with relative ages only, and no `now` to resolve them against."""


def strip_harness(text: str) -> str:
    """The kubectl output inside a recorded tool call (holmesgpt's fixtures): without the leading
    JSON header lines, the `stdout:` line after them, and the trailing `stderr:` block."""
    lines = text.split("\n")
    start = 0
    while start < len(lines) and lines[start].lstrip().startswith("{"):
        try:
            if not isinstance(json_loads(lines[start]), dict):
                break
        except ValueError:
            break
        start += 1
    if start < len(lines) and lines[start].strip() == "stdout:":
        start += 1
    body = lines[start:]
    for index in range(len(body) - 1, -1, -1):
        if body[index].rstrip() == "stderr:":
            body = body[:index]
            break
    kept = "\n".join(body).strip("\n")
    return f"{kept}\n" if kept else ""


def looks_like_kubectl_text(data: bytes) -> bool:
    """True when `data` starts (after blank lines) like describe output or an events table."""
    text = data[:65536].removeprefix(b"\xef\xbb\xbf").decode("utf-8", errors="replace")
    for line in text.split("\n"):
        line = line.rstrip("\r")
        if line.strip() and not _QUIET.match(line):
            return bool(_NAME.match(line) or is_events_header(line) or is_get_header(line))
    return False


def parse_kubectl_text(data: bytes, file: str, *, now: datetime | None = None, kind: str = "",
                       namespace: str = "") -> Iterator[RawEvent | UnusableInput]:
    """One RawEvent per described object and per Events row, in file order; an UnusableInput per bad part.

    `now`: the moment the output was captured (see the module docstring for the rule without it).
    `kind`: the kind of every described object (`pod`, `deployment.apps`, `Node`...), when the
    fields do not tell it. `namespace`: the namespace of an events or `kubectl get` table without a
    NAMESPACE column.
    Raises MissingNowError at once (before iterating) when ages cannot be resolved; never for bad content.
    """
    try:
        text = data.removeprefix(b"\xef\xbb\xbf").decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = UnusableInput(file=file, position="file", reason=f"not a text file (invalid UTF-8 at byte {exc.start})",
                            fragment=repr(data[:60]))
        return iter([bad])
    # kubectl before 1.10 wrote describe with literal tabs; at the terminal's 8-column tab stops
    # its columns line up like tabwriter's spaces do in later versions
    lines = [(number, line.rstrip("\r").expandtabs(8)) for number, line in enumerate(text.split("\n"), start=1)]
    parts: list[Described | TextError | list[EventRow | TextError] | list[GetRow | TextError]] = []
    for what, chunk in _sections(lines):
        if what == "describe":
            parts.append(parse_describe_block(chunk, kind))
        elif what == "events":
            parts.append(parse_events_table(chunk, namespace))
        elif what == "get":
            parts.append(parse_get_table(chunk, namespace))
        else:
            parts.append(TextError(chunk[0][0], "neither kubectl describe output (a `Name:` line), an events "
                                                "table (a LAST SEEN TYPE REASON OBJECT MESSAGE header) nor a "
                                                "kubectl get table of pods, nodes, workloads or jobs",
                                   fragment(chunk[0][1])))
    if not parts:
        return iter([UnusableInput(file=file, position="file", reason="empty: no kubectl output")])
    anchor = utc(now) if now is not None else max(
        (t for p in parts if isinstance(p, Described) for t in p.times), default=None)
    if anchor is None and _needs_time(parts):
        raise MissingNowError(
            f"{file}: kubectl text shows Event and object times only as ages (like '34s' or '18s (x2 over 34s)') "
            f"and no absolute time to resolve them against: pass --now TIME (tapio analyze --now "
            f"2024-11-26T11:37:44Z), the moment the output was captured")
    return iter(list(_emit(parts, file, anchor)))


def _sections(lines: list[tuple[int, str]]) -> Iterator[tuple[str, list[tuple[int, str]]]]:
    """("describe" | "events" | "get" | "junk", the lines of one block), in order; blank lines between dropped."""
    i, n = 0, len(lines)
    while i < n:
        line = lines[i][1]
        j = i + 1
        if not line.strip() or _QUIET.match(line):
            i = j
            continue
        if _NAME.match(line):
            what, seen_events = "describe", False
            while j < n:
                here, blank_before = lines[j][1], not lines[j - 1][1].strip()
                seen_events = seen_events or bool(_EVENTS.match(lines[j - 1][1]))
                if (_NAME.match(here) and (blank_before or seen_events)) or \
                        (blank_before and (is_events_header(here) or is_get_header(here))):
                    break
                j += 1
        elif is_events_header(line) or is_get_header(line):
            what = "events" if is_events_header(line) else "get"
            while j < n and lines[j][1].strip():
                j += 1
        else:
            what = "junk"
            while j < n and lines[j][1].strip() and not _NAME.match(lines[j][1]) and not is_events_header(lines[j][1]) \
                    and not is_get_header(lines[j][1]):
                j += 1
        chunk = lines[i:j]
        while chunk and not chunk[-1][1].strip():
            chunk.pop()
        yield what, chunk
        i = j


def _needs_time(parts: list) -> bool:
    for part in parts:
        rows = part.events if isinstance(part, Described) else part if isinstance(part, list) else []
        if any(isinstance(row, EventRow | GetRow) for row in rows):
            return True
        if isinstance(part, Described) and part.obj is not None and not _carries_time(part.obj):
            return True
    return False


def _carries_time(obj: dict) -> bool:
    try:
        raw_event_from_object(obj, action=SNAPSHOT, source="")
    except UnusableObject as exc:
        return not str(exc).startswith("no timestamp")
    return True


def _emit(parts: list, file: str, now: datetime | None) -> Iterator[RawEvent | UnusableInput]:
    seen: dict[str, int] = {}
    for part in parts:
        if isinstance(part, TextError):
            yield _error(file, part)
        elif isinstance(part, Described):
            if part.error is not None:
                yield _error(file, part.error)
            elif part.obj is not None:
                yield _snapshot(part, file, now)
            for row in part.events:
                yield _event(row, file, now, seen, api_version=part.api_version, namespaced=part.namespaced,
                             node=part.node)
        else:
            for row in part:
                if isinstance(row, GetRow):
                    yield _table_object(row, file, now)
                    continue
                _, api_version, namespaced = kind_of(row.kind) if isinstance(row, EventRow) else ("", "", True)
                yield _event(row, file, now, seen, api_version=api_version, namespaced=namespaced)


def _error(file: str, error: TextError) -> UnusableInput:
    return UnusableInput(file=file, position=f"line {error.line}", reason=error.reason, fragment=error.fragment)


def _snapshot(part: Described, file: str, now: datetime | None) -> RawEvent | UnusableInput:
    source = f"{file}#line {part.line}"
    obj = part.obj
    try:
        if now is None or _carries_time(obj):
            return raw_event_from_object(obj, action=SNAPSHOT, source=source)
        # describe showed no time of this object: it was seen at `now` (the payload stays as shown)
        probe = {**obj, "metadata": {**obj["metadata"], "creationTimestamp": rfc3339(now)}}
        raw = raw_event_from_object(probe, action=SNAPSHOT, source=source)
        data = msgspec.json.encode(obj, order="sorted")
        return msgspec.structs.replace(raw, data=data, id=state_id(SNAPSHOT, data), timestamp=now)
    except UnusableObject as exc:
        return UnusableInput(file=file, position=f"line {part.line}", reason=f"{part.kind} {part.name}: {exc}")


def _event(row: EventRow | TextError, file: str, now: datetime | None, seen: dict[str, int], *,
           api_version: str, namespaced: bool, node: str = "") -> RawEvent | UnusableInput:
    if isinstance(row, TextError):
        return _error(file, row)
    try:
        obj = event_object(row, now, api_version=api_version, namespaced=namespaced, seen=seen, node=node)
        return raw_event_from_object(obj, action=EVENT, source=f"{file}#line {row.line}")
    except UnusableObject as exc:
        return UnusableInput(file=file, position=f"line {row.line}", reason=f"events row: {exc}")


def _table_object(row: GetRow, file: str, now: datetime) -> RawEvent | UnusableInput:
    """A `kubectl get` row's object, as state at the capture time `now`."""
    position = f"line {row.line}"
    try:
        obj = get_object(row, now)
        raw = raw_event_from_object(obj, action=SNAPSHOT, source=f"{file}#{position}", undated_at=now)
    except (ValueError, UnusableObject) as exc:
        return UnusableInput(file=file, position=position, reason=f"{row.kind} {row.name}: {exc}")
    metadata = {**raw.metadata, "time_source": "capture", "table": row.table}
    return msgspec.structs.replace(raw, timestamp=now, metadata=metadata,
                                   id=content_id("kubeapi", SNAPSHOT, raw.data, rfc3339(now)))
