"""Container logs -> RawEvents (type "logs"), one per line that means something.

Fed by: `collectors.bundles` (logs inside support bundles, must-gathers and cluster-info dumps),
one `LogScanner` per container log, fed line by line, so a log of any size is streamed.
Feeds: the replay publisher, next to the Kubernetes objects of the same bundle.

Which lines: those matching a signal of `core/kube/vocabulary/log_signals.yaml` (data, like
core/kube/vocabulary/semantics.yaml); every other line is dropped. An event carries the pod, the container,
whether the log is `--previous`, the signal with its meaning, and the line's place (`file:line`).

When: a line's own time, from a `kubectl logs --timestamps` prefix, else the app's own stamp at
the start of its message (`2026-11-20T10:00:01.123Z`, `2026-11-20 10:00:01,123`,
`2026/11/20 10:00:01`, klog `E1120 10:00:01.123456`, logfmt `time=...`, JSON `time`/`ts`/
`timestamp`/`@timestamp`, epoch numbers included). A stamp without a zone is UTC; a klog stamp
takes its year from the log's first full date, else from the container's start/finish, else `now`.
A line without a time takes the previous timed line's time. Lines before any timed line take the
container's start (`startedAt` of the run the log belongs to), else the next timed line's time.
In a log with no time at all, every line takes the end of its run (`finishedAt`: a crashed
container's last words come right before it died), else the start of a running container, else
`now`; with none of those the log's signals are reported as an UnusableInput. Metadata
`time_source` says which rule placed each event.

Pure: no clock, no I/O. Ids are content hashes (pod, container, line number, time, text), so
the same log read twice, or from two layouts of the same bundle, gives the same ids.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec

from collectors.unusable import FRAGMENT_CHARS, UnusableInput
from core.events import RawEvent, content_id
from core.kube.log_signals import Signal, SignalTable, signal_table

MESSAGE_CHARS = 1000
DATA_BYTES = 4096  # a line's payload is cut here (its id still covers the whole line)
KEEP_PER_SIGNAL = 50  # per log and signal: the first 50 occurrences, then only the last one
BLOCK_LINES = 1024  # lines searched for signals at once

# -- times -------------------------------------------------------------------------------------

Partial = tuple[int, int, int, int, int, int]  # klog: month, day, hour, minute, second, microsecond
Stamp = datetime | Partial

_KUBECTL = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:\d\d)) ")
_DATE = (r"(\d{4})[-/](\d\d)[-/](\d\d)[T ](\d\d):(\d\d):(\d\d)(?:[.,](\d{1,9}))?"
         r"(?: ?(Z|UTC|GMT|[+-]\d\d:?\d\d)(?![\w:]))?")
_APP = re.compile(r"\[?" + _DATE + r"(?![\d])")
_DATE_ONLY = re.compile(_DATE + r"\s*")
_KLOG = re.compile(r"[IWEF](\d\d)(\d\d) (\d\d):(\d\d):(\d\d)\.(\d{6})\s")
_LOGFMT = re.compile(r'(?:[\w.]+=(?:"[^"]*"|\S*)\s+)*?(?:time|ts|timestamp)="?([^"\s]+)')
_JSON_TIME_KEYS = ("time", "ts", "timestamp", "@timestamp")


def _from_groups(g: tuple) -> datetime | None:
    year, month, day, hour, minute, second, fraction, zone = g
    tz = UTC
    if zone and zone[0] in "+-":
        digits = zone[1:].replace(":", "")
        tz = timezone((1 if zone[0] == "+" else -1) * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
    try:
        return datetime(int(year), int(month), int(day), int(hour), int(minute), int(second),
                        int((fraction or "").ljust(6, "0")[:6]), tz).astimezone(UTC)
    except ValueError:
        return None


def _epoch(value: float) -> datetime | None:
    for scale in (1, 1e3, 1e6, 1e9):  # seconds, ms, µs, ns since 1970
        if value / scale < 4e9:
            try:
                return datetime.fromtimestamp(value / scale, UTC)
            except (OverflowError, OSError, ValueError):
                return None
    return None


def _time_value(value: Any) -> datetime | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return _epoch(float(value)) if value > 1e8 else None
    if isinstance(value, str):
        m = _DATE_ONLY.fullmatch(value.strip())
        if m:
            return _from_groups(m.groups())
        try:
            return _epoch(float(value)) if float(value) > 1e8 else None
        except ValueError:
            return None
    return None


def line_time(line: str) -> tuple[Stamp | None, str]:
    """(the line's own time, its message): a `kubectl --timestamps` prefix is cut off the message."""
    m = _KUBECTL.match(line)
    if m:
        return _from_groups(_DATE_ONLY.fullmatch(m.group(1)).groups()), _message(line[m.end():])[1]
    return _message(line)


def _message(text: str) -> tuple[Stamp | None, str]:
    """The app's own stamp at the start of `text`, and the text to look for signals in."""
    if text.startswith("{"):
        try:
            obj = msgspec.json.decode(text)
        except (msgspec.DecodeError, RecursionError):  # a line nested ~1,000 deep is text too
            obj = None
        if isinstance(obj, dict):
            found = next((t for k in _JSON_TIME_KEYS if (t := _time_value(obj.get(k))) is not None), None)
            strings = [str(v) for k, v in obj.items() if isinstance(v, str) and k not in _JSON_TIME_KEYS]
            return found, "\n".join(strings)
    m = _APP.match(text)
    if m:
        return _from_groups(m.groups()), text[m.end():].lstrip(" ]")
    m = _KLOG.match(text)
    if m:
        month, day, hour, minute, second, micro = map(int, m.groups())
        header_end = text.find("] ", m.end())
        return ((month, day, hour, minute, second, micro) if 1 <= month <= 12 else None), \
            text[header_end + 2:] if header_end >= 0 else text
    m = _LOGFMT.match(text)
    if m:
        return _time_value(m.group(1)), text
    return None, text


def _with_year(partial: Partial, anchor: datetime) -> datetime | None:
    month, day, hour, minute, second, micro = partial
    for year in (anchor.year, anchor.year - 1, anchor.year + 1):
        try:
            moment = datetime(year, month, day, hour, minute, second, micro, UTC)
        except ValueError:  # 29 February in another year
            continue
        if abs(moment - anchor) <= timedelta(days=183):
            return moment
    return None


# -- scanning ----------------------------------------------------------------------------------


class LogSource(msgspec.Struct, frozen=True, kw_only=True):
    """One container log: where it is and whose it is (namespace "" when the layout does not say)."""

    file: str
    pod: str
    container: str
    namespace: str = ""
    previous: bool = False


class Hit(msgspec.Struct, kw_only=True):
    number: int  # line of the log (1-based)
    file_line: int  # line of the file it is in
    line: str
    message: str
    signals: list[Signal]
    stamp: Stamp | None  # its own time, or the previous timed line's
    own: bool  # the stamp is the line's own
    total: int = 0  # set on a kept last occurrence beyond KEEP_PER_SIGNAL


class ScannedLog(msgspec.Struct, kw_only=True):
    source: LogSource
    hits: list[Hit]
    lines: int
    first: Stamp | None  # the first timed line's stamp
    anchor: datetime | None  # the first full date (gives klog stamps their year)


class LogScanner:
    """Feed lines in order, then `finish()`: the signal lines with the time each can be placed at.

    Lines are looked at in blocks: the signals' needles are searched in a block's text at once, and
    only candidate lines (and, for inherited times, the lines just before them) are parsed.
    """

    def __init__(self, source: LogSource, table: SignalTable | None = None) -> None:
        self.source = source
        self._table = table or signal_table()
        self._block: list[tuple[int, str]] = []  # (file line, line)
        self._hits: list[Hit] = []
        self._last: Stamp | None = None  # the latest timed line's stamp before the current block
        self._first: Stamp | None = None
        self._anchor: datetime | None = None
        self._number = 0
        self._seen: dict[str, int] = {}
        self._pending: dict[str, Hit] = {}  # the latest occurrence beyond KEEP_PER_SIGNAL, per signal

    def feed(self, line: str, file_line: int) -> None:
        self._block.append((file_line, line.rstrip("\r\n")))
        if len(self._block) >= BLOCK_LINES:
            self._flush()

    def finish(self) -> ScannedLog:
        self._flush()
        for name, hit in self._pending.items():
            hit.total = self._seen[name]
        hits = sorted([*self._hits, *self._pending.values()], key=lambda h: h.number)
        return ScannedLog(source=self.source, hits=hits, lines=self._number, first=self._first, anchor=self._anchor)

    def _flush(self) -> None:
        block, self._block = self._block, []
        base, self._number = self._number, self._number + len(block)
        for _, line in block if self._anchor is None else ():  # the first time, and the first full date
            stamp = line_time(line)[0]
            self._first = stamp if self._first is None else self._first
            if isinstance(stamp, datetime):
                self._anchor = stamp
                break
        done = 0  # self._last holds the latest stamp of block[:done]
        for k in self._candidates(block):
            stamp, message = line_time(block[k][1])
            signals = self._table.match(message) if message.strip() else []
            if not signals:
                continue
            self._latest(block, done, k)
            done = k
            if stamp is not None:
                self._last, done = stamp, k + 1
            self._keep(Hit(number=base + k + 1, file_line=block[k][0], line=block[k][1], message=message,
                           signals=signals, stamp=self._last, own=stamp is not None))
        self._latest(block, done, len(block))

    def _candidates(self, block: list[tuple[int, str]]) -> list[int]:
        """The lines of a block that hold a needle of some signal."""
        if self._table.needles is None:
            return list(range(len(block)))
        lows = [line.lower() for _, line in block]
        text = "\n".join(lows)
        starts = list(itertools.accumulate((len(low) + 1 for low in lows[:-1]), initial=0))
        found: set[int] = set()
        for needle in self._table.needles:
            at = text.find(needle)
            while at >= 0:
                k = bisect.bisect_right(starts, at) - 1
                found.add(k)
                at = text.find(needle, starts[k + 1]) if k + 1 < len(starts) else -1
        return sorted(found)

    def _latest(self, block: list[tuple[int, str]], start: int, end: int) -> None:
        """self._last := the newest stamp of block[start:end], if it holds one (read from the end)."""
        for k in range(end - 1, start - 1, -1):
            stamp = line_time(block[k][1])[0]
            if stamp is not None:
                self._last = stamp
                return

    def _keep(self, hit: Hit) -> None:
        name = hit.signals[0].name
        self._seen[name] = self._seen.get(name, 0) + 1
        if self._seen[name] <= KEEP_PER_SIGNAL:
            self._hits.append(hit)
        else:
            self._pending[name] = hit


# -- what a Pod object says about its containers' runs -----------------------------------------


class Run(msgspec.Struct, frozen=True):
    started: datetime | None = None
    finished: datetime | None = None


class PodInfo(msgspec.Struct, frozen=True, kw_only=True):
    namespace: str
    name: str
    uid: str = ""
    node: str = ""
    runs: dict[str, Run] = {}  # "<container>" (the run `kubectl logs` shows) and "<container>/previous"
    crashing: bool = False  # a container crash-loops or ended in an error (see `pod_info`)


_CRASH_WAITING = frozenset({"CrashLoopBackOff", "RunContainerError"})
_CRASH_TERMINATED = frozenset({"Error", "OOMKilled", "ContainerCannotRun", "StartError"})


def _crashing(cs: dict) -> bool:
    """A container status that shows a crash: waiting to restart after one, or terminated in error."""
    state = cs.get("state") if isinstance(cs.get("state"), dict) else {}
    waiting, term = state.get("waiting"), state.get("terminated")
    if isinstance(waiting, dict) and waiting.get("reason") in _CRASH_WAITING:
        return True
    if isinstance(term, dict):
        code = term.get("exitCode")
        return term.get("reason") in _CRASH_TERMINATED or (isinstance(code, int) and code != 0)
    return False


def pod_info(obj: dict) -> PodInfo | None:
    """The uid, node and container runs of a Pod object (None if it is not a usable Pod)."""
    meta, spec, status = (obj.get(k) if isinstance(obj.get(k), dict) else {} for k in ("metadata", "spec", "status"))
    if obj.get("kind") != "Pod" or not isinstance(meta.get("name"), str):
        return None
    runs: dict[str, Run] = {}
    crashing = False
    for group in ("initContainerStatuses", "containerStatuses", "ephemeralContainerStatuses"):
        for cs in status.get(group) or []:
            crashing = crashing or (isinstance(cs, dict) and _crashing(cs))
            if not isinstance(cs, dict) or not isinstance(cs.get("name"), str):
                continue
            state, last = (_run(cs.get(k)) for k in ("state", "lastState"))
            # a waiting container (CrashLoopBackOff) shows its last run's log as the current one
            runs[cs["name"]] = state if state.started or state.finished else last
            runs[f"{cs['name']}/previous"] = last
    return PodInfo(namespace=str(meta.get("namespace") or ""), name=meta["name"], uid=str(meta.get("uid") or ""),
                   node=str(spec.get("nodeName") or ""), runs=runs, crashing=crashing)


def _run(state: Any) -> Run:
    if not isinstance(state, dict):
        return Run()
    detail = state.get("running") or state.get("terminated") or {}
    if not isinstance(detail, dict):
        return Run()
    return Run(started=_time_value(detail.get("startedAt")), finished=_time_value(detail.get("finishedAt")))


# -- events ------------------------------------------------------------------------------------


def log_events(log: ScannedLog, pod: PodInfo | None, *,
               now: datetime | None = None) -> Iterator[RawEvent | UnusableInput]:
    """The RawEvents of a scanned log, each at the time the rules of this module give it."""
    if not log.hits:
        return
    src = log.source
    run = (pod.runs.get(f"{src.container}/previous" if src.previous else src.container) if pod else None) or Run()
    anchor = log.anchor or run.started or run.finished or now
    first = _resolve(log.first, anchor)
    for hit in log.hits:
        stamp = _resolve(hit.stamp, anchor)
        if stamp is not None:
            when, how = stamp, "line" if hit.own else "previous-line"
        elif log.first is not None:
            when, how = (run.started, "container-start") if run.started else (first, "next-line")
        elif run.finished:
            when, how = run.finished, "container-finish"
        elif run.started:
            when, how = run.started, "container-start"
        else:
            when, how = now, "now"
        if when is None:
            yield UnusableInput(file=src.file, position=f"line {hit.file_line}",
                                reason=f"log line has no time ({hit.signals[0].name}): neither the log nor the pod's "
                                     "container status places it; pass the capture time as now",
                              fragment=hit.line[:FRAGMENT_CHARS])
            continue
        yield _event(hit, src, pod, when, how)


def _resolve(stamp: Stamp | None, anchor: datetime | None) -> datetime | None:
    if stamp is None or isinstance(stamp, datetime):
        return stamp
    return _with_year(stamp, anchor) if anchor is not None else None


def _event(hit: Hit, src: LogSource, pod: PodInfo | None, when: datetime, how: str) -> RawEvent:
    first = hit.signals[0]
    namespace = src.namespace or (pod.namespace if pod else "")
    where = f"{src.file}:{hit.file_line}"
    metadata = {
        "kind": "Pod", "name": src.pod, "namespace": namespace, "container": src.container,
        "previous": "true" if src.previous else "false", "signal": first.name,
        "signals": ",".join(s.name for s in hit.signals), "intent": first.intent, "category": first.category,
        "severity": first.severity, "line": where, "source": where, "time_source": how,
        "message": hit.message.replace("\n", " | ")[:MESSAGE_CHARS],
    }
    if pod is not None:
        metadata.update({k: v for k, v in (("uid", pod.uid), ("node", pod.node)) if v})
    if hit.total:
        metadata["occurrences"] = str(hit.total)
    data = hit.line.encode("utf-8", "replace")
    return RawEvent(id=content_id("logs", namespace, src.pod, src.container, str(hit.number), when.isoformat(), data),
                    timestamp=when, type="logs", data=data[:DATA_BYTES], metadata=metadata)
