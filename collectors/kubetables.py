"""kubectl's event tables, as text -> event rows, and a row -> a Kubernetes Event (core/v1) object.

Fed by: `collectors.kubetext` (`kubectl get events [-A] [-o wide]` and `kubectl events [-A]`
tables) and `collectors.kubedescribe` (the `Events:` table at the end of `kubectl describe`).
Feeds: `collectors.kubetext`, which resolves the rows' relative ages against a reference time and
turns them into RawEvents.

Column positions come from the header line: kubectl aligns every row of a table with it (Go's
tabwriter), so a cell is the text between two header starts, whatever spaces a message holds.
Ages are kubectl's `duration.HumanDuration` (`34s`, `9m22s`, `3h5m`, `2d4h`, `3y45d`), truncated
to their shown unit, so a resolved time is exact only to that unit. Pure: no clock.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import msgspec

from collectors.unusable import FRAGMENT_CHARS
from core.events import content_id

# Kind, apiVersion, namespaced, other names kubectl prints or accepts (plural, short, lowercase)
_KIND_TABLE = (
    ("Pod", "v1", True, "pods po"),
    ("Node", "v1", False, "nodes no"),
    ("Namespace", "v1", False, "namespaces ns"),
    ("Service", "v1", True, "services svc"),
    ("Endpoints", "v1", True, "ep"),
    ("ConfigMap", "v1", True, "configmaps cm"),
    ("Secret", "v1", True, "secrets"),
    ("ServiceAccount", "v1", True, "serviceaccounts sa"),
    ("PersistentVolumeClaim", "v1", True, "persistentvolumeclaims pvc"),
    ("PersistentVolume", "v1", False, "persistentvolumes pv"),
    ("ReplicationController", "v1", True, "replicationcontrollers rc"),
    ("ResourceQuota", "v1", True, "resourcequotas quota"),
    ("Deployment", "apps/v1", True, "deployments deploy"),
    ("ReplicaSet", "apps/v1", True, "replicasets rs"),
    ("StatefulSet", "apps/v1", True, "statefulsets sts"),
    ("DaemonSet", "apps/v1", True, "daemonsets ds"),
    ("Job", "batch/v1", True, "jobs"),
    ("CronJob", "batch/v1", True, "cronjobs cj"),
    ("HorizontalPodAutoscaler", "autoscaling/v2", True, "horizontalpodautoscalers hpa"),
    ("Ingress", "networking.k8s.io/v1", True, "ingresses ing"),
    ("NetworkPolicy", "networking.k8s.io/v1", True, "networkpolicies netpol"),
    ("PodDisruptionBudget", "policy/v1", True, "poddisruptionbudgets pdb"),
    ("StorageClass", "storage.k8s.io/v1", False, "storageclasses sc"),
    ("VolumeAttachment", "storage.k8s.io/v1", False, "volumeattachments"),
    ("Lease", "coordination.k8s.io/v1", True, "leases"),
)
_KINDS: dict[str, tuple[str, str, bool]] = {}
for _kind, _api, _namespaced, _names in _KIND_TABLE:
    for _name in (_kind, _kind.lower(), *_names.split()):
        _KINDS[_name] = (_kind, _api, _namespaced)


def kind_of(text: str) -> tuple[str, str, bool]:
    """(Kind, apiVersion, namespaced) of a kind as kubectl prints or accepts it.

    `pod`, `pods`, `po`, `Pod`, `deployment.apps`, `Deployment` all resolve; an unknown kind keeps
    its spelling with a capital first letter (a custom resource: apiVersion unknown, namespaced).
    """
    text = text.strip()
    found = _KINDS.get(text) or _KINDS.get(text.split(".", 1)[0]) or _KINDS.get(text.split(".", 1)[0].lower())
    if found:
        return found
    base = text.split(".", 1)[0]
    return (base[:1].upper() + base[1:], "", True)


class TextError(msgspec.Struct, frozen=True):
    """A part of kubectl text that could not be read: `line` is 1-based in the text."""

    line: int
    reason: str
    fragment: str = ""


class EventRow(msgspec.Struct, kw_only=True):
    """One row of an events table; ages are how long before the reference time (None: unknown)."""

    line: int
    last: timedelta | None
    first: timedelta | None = None
    count: int = 1
    type: str = ""
    reason: str = ""
    message: str = ""
    component: str = ""
    host: str = ""
    kind: str = ""  # the involved object (a describe table: filled by the describe parser)
    name: str = ""
    namespace: str = ""  # the Event's own namespace
    field_path: str = ""
    event_name: str = ""


# -- ages ----------------------------------------------------------------------------------

_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "y": 365 * 86400}
_AGE = r"(?:<unknown>|<invalid>|(?:\d+[smhdy])+)"
AGE_RE = rf"{_AGE}(?: \(x\d+ over {_AGE}\))?"
_AGE_PART = re.compile(r"(\d+)([smhdy])")
_INTERVAL = re.compile(rf"({_AGE})(?: \(x(\d+) over ({_AGE})\))?")


UNKNOWN_AGE = "<unknown>"


def parse_age(text: str) -> timedelta | None:
    """`9m22s` -> 562 s; ValueError if not an age. `<invalid>` is a time after kubectl's own clock
    (the cluster's clock runs ahead of the terminal's): age 0. `<unknown>` (a time the Event does
    not carry, or only as an eventTime older kubectl does not show) -> None (see `place_unknown`)."""
    text = text.strip()
    if text == "<invalid>":
        return timedelta(0)
    if text == UNKNOWN_AGE:
        return None
    parts = _AGE_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a kubectl age: {text!r}")
    return timedelta(seconds=sum(int(n) * _UNIT[u] for n, u in parts))


def parse_interval(text: str) -> tuple[timedelta | None, int | None, timedelta | None]:
    """`18s (x2 over 34s)` -> (18 s, 2, 34 s); `34s` -> (34 s, None, None). ValueError if neither."""
    match = _INTERVAL.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not a kubectl age: {text.strip()!r}")
    last, count, first = match.groups()
    return parse_age(last), int(count) if count else None, parse_age(first) if first else None


# -- column positions ----------------------------------------------------------------------


def header_columns(line: str) -> list[tuple[str, int]]:
    """(name, start) of every column of a header; names are separated by two spaces or more."""
    return [(m.group(0), m.start()) for m in re.finditer(r"\S+(?: \S+)*", line)]


def cells(line: str, columns: list[tuple[str, int]]) -> dict[str, str] | None:
    """The cells of a row under a header, or None when the row is not aligned with it."""
    out: dict[str, str] = {}
    for index, (name, start) in enumerate(columns):
        end = columns[index + 1][1] if index + 1 < len(columns) else len(line)
        if index and start < len(line) and not line[start - 1].isspace():
            return None  # the previous cell runs into this one: not this table's alignment
        out[name] = line[start:end].strip()
    if line[: columns[0][1]].strip():
        return None
    return out


def fragment(line: str) -> str:
    return line[:FRAGMENT_CHARS]


# -- kubectl get events / kubectl events ---------------------------------------------------

EVENT_COLUMNS = frozenset({"NAMESPACE", "LAST SEEN", "TYPE", "REASON", "OBJECT", "SUBOBJECT", "SOURCE",
                           "MESSAGE", "FIRST SEEN", "COUNT", "NAME"})


def is_events_header(line: str) -> bool:
    """The header of `kubectl get events` (any of its forms) or `kubectl events`."""
    if not line or line[0].isspace():
        return False
    names = {name for name, _ in header_columns(line)}
    return names <= EVENT_COLUMNS and {"REASON", "OBJECT", "MESSAGE"} <= names


def parse_events_table(lines: list[tuple[int, str]], namespace: str = "") -> list[EventRow | TextError]:
    """The rows of a `kubectl get events` / `kubectl events` table: `lines[0]` is its header.

    `namespace` is the namespace of a table without a NAMESPACE column (`kubectl get events -n x`).
    """
    columns = header_columns(lines[0][1])
    out: list[EventRow | TextError] = []
    for number, line in lines[1:]:
        if not line.strip():
            continue
        row = cells(line, columns)
        if row is None:
            out.append(TextError(number, "events row not aligned with the table header (garbled or cut)",
                                 fragment(line)))
            continue
        try:
            out.append(_table_row(number, row, namespace))
        except ValueError as exc:
            out.append(TextError(number, f"events row: {exc}", fragment(line)))
    return place_unknown(out)


def place_unknown(rows: list[EventRow | TextError]) -> list[EventRow | TextError]:
    """Rows whose age kubectl showed as `<unknown>` take the oldest age of the table: the earliest
    the input shows, so an event of unknown time never looks like the latest sign of a failure."""
    known = [r.first or r.last for r in rows if isinstance(r, EventRow) and (r.first or r.last) is not None]
    oldest = max(known, default=timedelta(0))  # type: ignore[type-var]
    for row in rows:
        if isinstance(row, EventRow) and row.last is None and row.first is None:
            row.last = row.first = oldest
    return rows


def _table_row(number: int, row: dict[str, str], namespace: str) -> EventRow:
    last, count, first = parse_interval(row["LAST SEEN"]) if "LAST SEEN" in row else (None, None, None)
    if "FIRST SEEN" in row:
        first = parse_age(row["FIRST SEEN"])
    if row.get("COUNT"):
        if not row["COUNT"].isdigit():
            raise ValueError(f"COUNT is not a number: {row['COUNT']!r}")
        count = int(row["COUNT"])
    if last is None and first is None and UNKNOWN_AGE not in (row.get("LAST SEEN", ""), row.get("FIRST SEEN", "")):
        raise ValueError("no age to place the event at (LAST SEEN / FIRST SEEN unknown)")
    for column in ("TYPE", "REASON", "NAMESPACE"):
        if " " in row.get(column, ""):
            raise ValueError(f"{column} {row[column]!r} is not one word")
    if not row["REASON"]:
        raise ValueError("no REASON")
    target = row["OBJECT"]
    if not re.fullmatch(r"[A-Za-z][\w.-]*(?:/\S+)?", target):
        raise ValueError(f"OBJECT {target!r} is not kind/name")
    kind, _, name = target.partition("/")
    component, _, host = row.get("SOURCE", "").partition(", ")
    return EventRow(line=number, last=last, first=first, count=count or 1, type=row.get("TYPE", ""),
                    reason=row["REASON"], message=row["MESSAGE"], component=component.strip(),
                    host=host.strip(), kind=kind_of(kind)[0], name=name,
                    namespace=row.get("NAMESPACE") or namespace, field_path=row.get("SUBOBJECT", ""),
                    event_name=row.get("NAME", ""))


# -- the Events: table of kubectl describe -------------------------------------------------

DESCRIBE_HEADER = re.compile(r"^\s+Type\s+Reason\s+Age\s+From\s+Message\s*$")
#: kubectl before 1.10: `FirstSeen LastSeen Count From SubObjectPath Type Reason Message` (Type from 1.5)
OLD_DESCRIBE_HEADER = re.compile(r"^\s+FirstSeen\s+LastSeen\s+Count\s+From\s+Sub[oO]bjectPath\s+(?:Type\s+)?"
                                 r"Reason\s+Message\s*$")
_DESCRIBE_ROW = re.compile(rf"^\s+(\S+)\s+(\S+)\s+({AGE_RE})\s+([^\s(]\S*(?:, \S+)?)\s+(.*?)\s*$")


def parse_describe_events(lines: list[tuple[int, str]]) -> list[EventRow | TextError]:
    """The rows under `Events:` in `kubectl describe` output: `lines[0]` is `Type Reason Age From Message`.

    A row is cut at the header's column positions. A line at column 0 continues the message of
    the row above (kubectl prints a message's own newlines as they are); the rows after it are
    aligned anew by tabwriter, so they are read word by word (Type Reason Age From Message).
    """
    columns = header_columns(lines[0][1])
    if OLD_DESCRIBE_HEADER.match(lines[0][1]):
        return _old_describe_events(lines, columns)
    out: list[EventRow | TextError] = []
    realigned = False  # a message's newline ends tabwriter's column block: later rows have their own widths
    for number, line in lines[1:]:
        if not line.strip() or re.fullmatch(r"\s+-+(?:\s+-+)*\s*", line):
            continue
        if not line[0].isspace() and out and isinstance(out[-1], EventRow):
            out[-1].message = f"{out[-1].message}\n{line.rstrip()}"
            realigned = True
            continue
        match = _DESCRIBE_ROW.match(line) if realigned else None
        named = dict(zip(("Type", "Reason", "Age", "From", "Message"), match.groups(), strict=False)) if match else None
        row = _describe_row(number, named) or _describe_row(number, cells(line, columns))
        if isinstance(row, str):
            row = TextError(number, f"events row: {row}", fragment(line))
        out.append(row or TextError(number, "events row does not read as Type Reason Age From Message "
                                            "(garbled or cut)", fragment(line)))
    return place_unknown(out)


def _old_describe_events(lines: list[tuple[int, str]], columns: list[tuple[str, int]]) -> list[EventRow | TextError]:
    """Rows of the old layout: ages in FirstSeen and LastSeen, a Count, the container in SubObjectPath."""
    out: list[EventRow | TextError] = []
    for number, line in lines[1:]:
        if not line.strip() or re.fullmatch(r"\s+-+(?:\s+-+)*\s*", line):
            continue
        row = cells(line, columns)
        last = parse_age(row.get("LastSeen", "")) if row else None
        first = parse_age(row.get("FirstSeen", "")) if row else None
        if row is None or last is None or not row.get("Reason") or " " in row["Reason"]:
            out.append(TextError(number, "events row does not read as FirstSeen LastSeen Count From SubObjectPath "
                                         "Type Reason Message (garbled or cut)", fragment(line)))
            continue
        count = int(row["Count"]) if row.get("Count", "").isdigit() else 1
        component, _, host = row.get("From", "").partition(", ")
        out.append(EventRow(line=number, last=last, first=first or last, count=count, type=row.get("Type") or "Normal",
                            reason=row["Reason"], message=row.get("Message", ""), component=component,
                            host=host.strip(), field_path=row.get("SubObjectPath") or row.get("SubobjectPath") or ""))
    return out


def _describe_row(number: int, row: dict[str, str] | None) -> EventRow | str | None:
    if row is None or not row.get("Reason") or " " in row["Reason"] or " " in row.get("Type", ""):
        return None
    try:
        last, count, first = parse_interval(row["Age"])
    except ValueError:
        return None
    if last is None and first is None and row["Age"].strip() != UNKNOWN_AGE:
        return f"no age to place the event at (Age {row['Age']!r})"
    component, _, host = row["From"].partition(", ")
    if " " in component:
        return None
    return EventRow(line=number, last=last, first=first, count=count or 1, type=row["Type"],
                    reason=row["Reason"], message=row["Message"], component=component, host=host.strip())


# -- a row -> a core/v1 Event --------------------------------------------------------------


def rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def event_object(row: EventRow, now: datetime, *, api_version: str, namespaced: bool, seen: dict[str, int],
                 node: str = "") -> dict:
    """The core/v1 Event a row shows, its times `now` minus the row's ages.

    Its name is `<object>.<hash>` of what identifies the event series (object, type, reason,
    source, message), so the same row read again names the same Event; `seen` numbers repeats
    of one series within one input. `node`: the node of a Pod, the host a kubelet event came from.
    """
    last = now - row.last if row.last is not None else None
    first = now - row.first if row.first is not None else last
    last = last or first
    involved = {"apiVersion": api_version, "kind": row.kind, "name": row.name}
    if namespaced and row.namespace:
        involved["namespace"] = row.namespace
    if row.field_path:
        involved["fieldPath"] = row.field_path
    name = row.event_name
    if not name:
        key = content_id("kubectl-text-event", row.kind, row.namespace, row.name, row.type, row.reason,
                         row.component, row.message)
        seen[key] = seen.get(key, 0) + 1
        suffix = key[:16] if seen[key] == 1 else content_id(key, str(seen[key]))[:16]
        name = f"{row.name or row.kind.lower()}.{suffix}"
    source = {"component": row.component} if row.component else {}
    host = row.host or (node if row.component == "kubelet" else "")
    if host:
        source["host"] = host
    event_ns = row.namespace or ("" if namespaced else "default")  # a Node's Events live in default
    obj = {"apiVersion": "v1", "kind": "Event",
           "metadata": {k: v for k, v in (("name", name), ("namespace", event_ns)) if v},
           "involvedObject": {k: v for k, v in involved.items() if v},
           "reason": row.reason, "message": row.message, "count": row.count,
           "firstTimestamp": rfc3339(first), "lastTimestamp": rfc3339(last)}
    if row.type:
        obj["type"] = row.type
    if source:
        obj["source"] = source
    return obj
