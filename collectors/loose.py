"""Files a user saved one by one: what they are, and how to place them.

Fed by: `collectors.bundles`, for each file of a folder of recordings (not a bundle's own layout)
that is not plainly Kubernetes data. Feeds: the same reader, with
- container logs (`kubectl logs POD > POD.log`, `previous.log` beside a describe, structured JSON
  lines) recognised by their content and tied to their pod by the file name, or by the only pod
  the input shows; their signal lines become log events (`collectors.podlogs`);
- `InputNote`s: a file that is not Kubernetes data (a tool's own JSON) is skipped once, with the
  reason, instead of one error per part; and how times were placed when the input did not say
  (relative ages resolved against what, undated objects placed where).

Pure but for nothing: the caller hands in the bytes it read.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from collectors.bundlefiles import text_lines
from collectors.limits import json_loads
from collectors.podlogs import LogScanner, LogSource, PodInfo, log_events
from collectors.unusable import UnusableInput, printable
from core.events import RawEvent

_LOG_KEYS = frozenset({"msg", "message", "level", "lvl", "severity", "ts", "time", "timestamp", "@timestamp",
                       "log", "logger", "caller", "error", "err"})
_DOC_START = re.compile(r"^\s*(?:---|apiVersion:|kind:|items:|metadata:|\[|\{\s*\"(?:apiVersion|kind|items)\")")
_PREVIOUS = re.compile(r"(?:^|[-_.])(?:previous|prev)(?:[-_.]|$)", re.I)
_LOG_SUFFIXES = frozenset({".log", ".txt", ".out", ""})
OWN_TIME = ("line", "previous-line", "next-line")  # log lines placed by stamps of their own log


class InputNote(msgspec.Struct, frozen=True, kw_only=True):
    """Something the reader decided about an input that is neither an event nor an error."""

    file: str
    note: str
    skipped: bool = False  # the file was not read: it is not Kubernetes data

    def __str__(self) -> str:
        return printable(f"{self.file}: {self.note}")


def _log_object(line: str) -> bool:
    try:
        value = json_loads(line)
    except ValueError:
        return False
    return isinstance(value, dict) and not ({"apiVersion", "kind"} <= value.keys()) and bool(value.keys() & _LOG_KEYS)


def looks_like_log(data: bytes, name: str) -> bool:
    """Does this file hold a container's log: JSON objects one per line (stack traces between them
    allowed), or plain lines in a file named like a log?"""
    text = data[:65536].decode("utf-8", "replace")
    lines = [line for line in text.splitlines() if line.strip()][:40]
    if not lines:
        return False
    first = lines[0].lstrip()
    if first.startswith(("{", "[")):
        try:
            json_loads(data)
            return False  # one JSON document: Kubernetes objects, or a tool's own output
        except ValueError:
            pass
        objects = [line for line in lines if line.lstrip().startswith("{")]
        if objects and _log_object(objects[0]):
            return True
    if _DOC_START.match(lines[0]) and not first.startswith("["):
        return False
    return Path(name).suffix.lower() in _LOG_SUFFIXES


def not_kubernetes(items: list[RawEvent | UnusableInput]) -> bool:
    """Nothing in the file is a Kubernetes object: every part lacks kind or metadata."""
    if not items or any(isinstance(i, RawEvent) for i in items):
        return False
    return all(isinstance(i, UnusableInput) and ("kind: missing" in i.reason or "metadata: missing" in i.reason
                                                 or "expected a mapping" in i.reason) for i in items)


def log_owner(path: Path, pods: list[PodInfo], text: str = "") -> tuple[PodInfo | None, str, str, bool]:
    """(the pod, its name, the container, previous?) a standalone log file belongs to.

    The pod is the one whose name the file (or its folder) names, the longest such name; else the
    only pod the input shows; else the only pod it shows crashing (a `kubectl get pods` table of a
    namespace with one pod in CrashLoopBackOff, beside the `kubectl logs --previous` of it), or of
    several crashing pods the only one the log's `text` names (an app that logs its host name).
    The container is the one the rest of the name names, else the pod's only container, else the
    first one that crashed. "previous" in the name marks `--previous`.
    """
    name = path.name
    stem = re.sub(r"\.(?:log|txt|out)$", "", name, flags=re.I)
    previous = bool(_PREVIOUS.search(stem))
    named = [p for p in pods if p.name in name or p.name == path.parent.name]
    crashing = [p for p in pods if p.crashing]
    if len(crashing) > 1 and text:
        crashing = [p for p in crashing if p.name in text]
    pod = max(named, key=lambda p: len(p.name)) if named else (pods[0] if len(pods) == 1 else
                                                               crashing[0] if len(crashing) == 1 else None)
    if pod is None:
        bare = _PREVIOUS.sub("", stem) or stem
        return None, bare, "", previous
    containers = sorted({run.split("/")[0] for run in pod.runs})
    rest = stem.replace(pod.name, "")
    in_name = [c for c in containers if c in rest]
    if in_name:
        container = max(in_name, key=len)
    elif len(containers) == 1:
        container = containers[0]
    else:
        crashed = [c for c in containers if pod.runs.get(f"{c}/previous") and pod.runs[f"{c}/previous"].finished]
        container = (crashed or containers or [""])[0]
    return pod, pod.name, container, previous


def standalone_log(path: Path, data: bytes, pods: list[PodInfo], now: datetime | None
                   ) -> Iterator[RawEvent | UnusableInput]:
    """The signal lines of one standalone log file, tied to its pod (see `log_owner`)."""
    pod, pod_name, container, previous = log_owner(path, pods, data[:65536].decode("utf-8", "replace"))
    source = LogSource(file=str(path), pod=pod_name, container=container,
                       namespace=pod.namespace if pod else "", previous=previous)
    scanner = LogScanner(source)
    for number, line in enumerate(text_lines(io.BytesIO(data)), start=1):
        scanner.feed(line, number)
    yield from log_events(scanner.finish(), pod, now=now)


def reference_time(now: datetime | None, events: list[RawEvent], files: list[Path]) -> tuple[datetime, str]:
    """What relative ages count back from, and where that time came from."""
    if now is not None:
        return now, "--now"
    if events:
        return max(e.timestamp for e in events), "the newest absolute time in the input"
    if files:
        newest = max(p.stat().st_mtime for p in files)
        return datetime.fromtimestamp(newest, UTC), "the files' modification time"
    return datetime.now(UTC), "the current time"
