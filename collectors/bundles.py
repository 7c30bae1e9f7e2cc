"""Inputs as users have them -> RawEvents: support bundles, must-gathers, cluster-info dumps, recordings.

Fed by: paths handed to `tapio replay` / `tapio analyze` (folders, tar archives read in place,
single files). Feeds: the replay publisher and the offline analysis, with the RawEvents and
UnusableInputs `collectors.replay` gives, plus container-log events (`collectors.podlogs`, type "logs").

The layout comes from the paths inside, never from a flag (`collectors.bundlefiles.detect_input`):
- support bundle (troubleshoot.sh): `cluster-resources/{events,pods,deployments,replicasets}/...`,
  `cluster-resources/nodes.json`. Read: every JSON/YAML file under `cluster-resources/` (but
  `auth-cani-list/`, `resources.json`, `groups.json`); a `*-errors.json` is an UnusableInput per
  entry (what the collector could not get); logs in `cluster-resources/pods/logs/<ns>/<pod>/
  <container>[-previous].log` and, from `logs` collectors, `<collector>/<pod>/<container>.log`
  (the namespace from the bundle's Pod of that name; dropped when there is none). The rest
  (analysis.json, version.yaml, host-collectors/) is not a recording.
- must-gather (OpenShift): `namespaces/<ns>/{core,apps,...}/*.yaml`, `cluster-scoped-resources/`.
  Read: every JSON/YAML file under those two; logs in
  `namespaces/<ns>/pods/<pod>/<container>/<container>/logs/{current,previous}[.insecure].log`.
- Sonobuoy results (`sonobuoy retrieve`): `resources/{ns/<ns>,cluster}/<Kinds>.json`,
  `podlogs/<ns>/<pod>/logs/<container>.txt`; its own files skipped in one note (`collectors.sonobuoy`).
- cluster-info dump (`kubectl cluster-info dump --output-directory`): `nodes.json` beside
  `<ns>/{events,pods,...}.json`, or `<ns>/<pod>/logs.txt` (container logs between
  `==== START/END logs for container <c> of pod <ns>/<pod> ====` lines). Read: every JSON/YAML.
  Its stdout form, one file of JSON lists with those sections in between, is recognised by content
  wherever a file is read (the sections are blanked out, so JSON errors keep their line numbers).
- anything else is recordings: the files `collectors.replayer.recording_files` would pick, plus
  `.txt` files that are kubectl text; each subfolder, archive or dump stream in it by its own layout.
A layout found one folder down (`must-gather.local.*/<image>/`, the folder a bundle was
extracted into) is read from there, and loose JSON/YAML files beside it as recordings.

Text that looks like kubectl output (a table header, `Name:   ...`) goes to
`collectors.kubetext.parse_kubectl_text` (a recorded tool call's harness lines stripped); its
MissingNowError (ages and no `now`) is raised to the caller. Nothing else raises
on content. Inside an archive a file is named `archive.tar.gz:member/path` in errors and sources.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path, PurePosixPath

import msgspec

from collectors import sonobuoy
from collectors.alerts import alert_events
from collectors.bundlefiles import (
    ARCHIVE_ERRORS,
    CLUSTER_INFO,
    CLUSTER_INFO_STREAM,
    DOC_SUFFIXES,
    DUMP_LOGS,
    MUST_GATHER,
    RECORDING_SUFFIXES,
    RECORDINGS,
    SONOBUOY,
    SUPPORT_BUNDLE,
    Archive,
    InputKind,
    Member,
    damaged,
    detect_input,
    file_member,
    has_stream_mark,
    is_archive,
    looks_like_kubectl_text,
    members,
    read_member,
    text_lines,
)
from collectors.folders import outside_link
from collectors.kubetext import MissingNowError
from collectors.limits import json_loads
from collectors.loose import OWN_TIME, InputNote, looks_like_log, not_kubernetes, reference_time, standalone_log
from collectors.podlogs import LogScanner, LogSource, PodInfo, ScannedLog, log_events, pod_info
from collectors.replay import ReplayFileError, parse_recording
from collectors.replayer import LABELS_FILE
from collectors.unusable import UnusableInput
from core.events import RawEvent
from core.kube.objects import NO_TIMESTAMP
from core.kube.objects import SNAPSHOT as SNAPSHOT_ACTION
from core.kube.rollouts import rollout_events

__all__ = ["CLUSTER_INFO", "CLUSTER_INFO_STREAM", "MUST_GATHER", "RECORDINGS", "SONOBUOY", "SUPPORT_BUNDLE",
           "InputKind", "detect_input", "looks_like_kubectl_text", "read_inputs"]

_STREAM_START = re.compile(r"==== START logs for container (\S+) of pod ([^/\s]+)/(\S+) ====\s*$")
_STREAM_END = re.compile(r"==== END logs for container \S+ of pod \S+ ====\s*$")
_STREAM_NOISE = re.compile(r"(?:Create log request|Request log) error: ")


# -- reading -----------------------------------------------------------------------------------


def read_inputs(paths: Iterable[str | Path], *, now: datetime | None = None
                ) -> Iterator[RawEvent | UnusableInput | InputNote]:
    """Every RawEvent and UnusableInput of the inputs, each read by its layout, then the rollouts
    their ReplicaSets imply (`core.kube.rollouts`), and an InputNote for each decision a person
    should know of (a file skipped as not Kubernetes data, how times were placed).

    `now` is when the inputs were captured: kubectl text resolves its relative ages against it, and
    a log line that nothing else places in time is put there. Without it, text that shows only ages
    is resolved against the newest absolute time of the other inputs, else the files' modification
    time, else the current time, and a note says which. Objects that carry no time of their own (a
    manifest) are state at the start of the recording. Raises ReplayFileError at once if an input
    does not exist; never for content.
    """
    inputs = [Path(p) for p in paths]
    for path in inputs:
        if not path.exists():
            raise ReplayFileError(2, "cannot read input: No such file or directory", str(path))
    return _read_inputs(inputs, now)


class _Loose(msgspec.Struct):
    """Files of a folder of recordings kept for after the rest: they need what the rest shows."""

    ages: list[tuple[Path, bytes]] = []  # kubectl text with relative ages only: needs a reference time
    undated: list[tuple[Path, bytes]] = []  # objects without times: placed at the recording's start
    logs: list[tuple[Path, bytes]] = []  # container logs: need their pod


def _read_inputs(inputs: list[Path], now: datetime | None) -> Iterator[RawEvent | UnusableInput | InputNote]:
    loose = _Loose(ages=[], undated=[], logs=[])
    read: list[RawEvent | UnusableInput | InputNote] = []
    for path in inputs:
        read.extend(_read_input(path, now, named=True, loose=loose))
    events = [item for item in read if isinstance(item, RawEvent)]
    if not events and loose.logs:  # only logs and undated manifests: the logs' own times place them
        events = [e for path, data in loose.logs for e in standalone_log(path, data, [], now)
                  if isinstance(e, RawEvent) and e.metadata.get("time_source") in OWN_TIME]
    reference, how = reference_time(now, events, [p for p, _ in loose.ages + loose.logs])
    timed = [e.timestamp for e in events if e.metadata.get("action") != SNAPSHOT_ACTION] or \
        [e.timestamp for e in events]
    start = min(timed) if timed else reference
    for path, data in loose.ages:
        read.append(InputNote(file=str(path), note=f"shows times only as ages: resolved against "
                                                   f"{reference:%Y-%m-%d %H:%M:%S}Z ({how}); pass --now to say "
                                                   "when it was captured"))
        read.extend(_document(data, str(path), reference))
    for path, data in loose.undated:
        read.append(InputNote(file=str(path), note=f"objects without a time of their own are state at the start of "
                                                   f"the recording ({start:%Y-%m-%d %H:%M:%S}Z)"))
        read.extend(parse_recording(data, str(path), undated_at=start))
    pods: dict[tuple[str, str], PodInfo] = {}
    for item in read:
        _note_pod(item, pods)
    for path, data in loose.logs:
        read.extend(standalone_log(path, data, list(pods.values()), now or reference))
    yield from read
    yield from rollout_events([item for item in read if isinstance(item, RawEvent)
                               and item.metadata.get("kind") == "ReplicaSet"])


def _read_input(path: Path, now: datetime | None, *, named: bool, loose: _Loose
                ) -> Iterator[RawEvent | UnusableInput | InputNote]:
    """One input by its layout; in a folder of inputs, each file and subfolder on its own."""
    if not path.is_dir():
        yield from _read_tree(path, detect_input(path), now) if is_archive(path) else \
            _read_file(path, now, named=named, loose=loose)
        return
    kind = detect_input(path)
    if kind.layout != RECORDINGS and not kind.nested:
        yield from _read_tree(path, kind, now)
        return
    # a folder of inputs, or the top folder around a layout (must-gather.local.*/<image>/): the
    # layout's folder is read by it, loose JSON/YAML files beside it as recordings
    for child in sorted(path.iterdir()):
        if (refused := outside_link(child, path)) is not None or child.is_symlink():
            yield from () if refused is None else (refused,)  # a link inside: its target is read as itself
        elif child.is_dir():
            yield from _read_input(child, now, named=False, loose=loose)
        elif kind.layout == RECORDINGS or child.suffix.lower() in DOC_SUFFIXES:
            yield from _read_input(child, now, named=False, loose=loose)


def _read_file(path: Path, now: datetime | None, *, named: bool, loose: _Loose
               ) -> Iterator[RawEvent | UnusableInput | InputNote]:
    """A plain file: named ones always, others when their name is a recording's (or kubectl text's).

    A container log, kubectl text with ages only, or objects without times wait in `loose` for
    what the other inputs show; a file with no Kubernetes object in it is skipped with a note.
    """
    what = "doc" if named else (_role(RECORDINGS, path.name) or ("", None))[0]
    if what not in ("doc", "text"):
        return
    member = file_member(path.name, path)
    data, error = read_member(member, None, sniff=False)
    if error:
        yield error
        return
    if not data:
        return
    if not has_stream_mark(data) and not looks_like_kubectl_text(data) and looks_like_log(data, path.name):
        loose.logs.append((path, data))
        return
    if data.lstrip()[:1] in (b"{", b"[") and (alerts := alert_events(data, str(path))) is not None:
        yield from alerts  # Alertmanager's alerts: an Event per alert about the object it names
        return
    try:
        items = list(_document(data, str(path), now))
    except MissingNowError:
        loose.ages.append((path, data))
        return
    if not_kubernetes(items):
        yield InputNote(file=str(path), note="skipped: not Kubernetes data (no object with kind and metadata)",
                        skipped=True)
        return
    if any(isinstance(i, UnusableInput) and NO_TIMESTAMP in i.reason for i in items):
        loose.undated.append((path, data))
        return
    yield from items


def _read_tree(path: Path, kind: InputKind, now: datetime | None) -> Iterator[RawEvent | UnusableInput | InputNote]:
    archive = Archive(path) if kind.archive else None
    pods: dict[tuple[str, str], PodInfo] = {}
    scanned: list[tuple[ScannedLog, bool]] = []  # (log, dropped when its pod is not in the input)
    skipped: list[str] = []  # the layout's own files, no Kubernetes objects: one note names them
    for member in members(path, archive):
        if isinstance(member, UnusableInput):
            yield member
            continue
        role = _role(kind.layout, member.rel)
        if role is None:
            continue
        what, source = role
        if what == "skip":
            skipped.append(member.rel)
        elif what == "log":
            yield from _scan(member, archive, [source], scanned)
        elif what == "sections":
            yield from _scan(member, archive, [], scanned)
        elif what == "errors":
            data, error = read_member(member, archive)
            yield from _collection_errors(data, member.file, error)
        else:
            data, error = read_member(member, archive, sniff=what == "text")
            if error:
                yield error
            parsed = sonobuoy.objects(data, member.file, member.rel) if what == "listed" else \
                _document(data, member.file, now)
            for item in parsed if data or (what in ("doc", "listed") and not error) else ():
                _note_pod(item, pods)
                yield item
    yield from _logs(scanned, pods, now)
    if skipped:
        yield sonobuoy.skipped_note(str(path), skipped)


_SB_LOG = re.compile(r"(?:^|/)cluster-resources/pods/logs/([^/]+)/([^/]+)/([^/]+)\.log$")
_SB_ERRORS = re.compile(r"(?:^|/)cluster-resources/.*-errors\.json$")
_SB_SKIP = re.compile(r"(?:^|/)cluster-resources/(?:auth-cani-list/|resources\.json$|groups\.json$)")
_SB_DOC = re.compile(r"(?:^|/)cluster-resources/.+\.(?:json|ya?ml)$")
_SB_COLLECTED_LOG = re.compile(r"(?:^|/)([^/]+)/([^/]+)\.log$")
_MG_LOG = re.compile(r"(?:^|/)namespaces/([^/]+)/pods/([^/]+)/([^/]+)/[^/]+/logs/"
                     r"(current|previous)(?:\.insecure)?\.log$")
_MG_DOC = re.compile(r"(?:^|/)(?:namespaces|cluster-scoped-resources)/.+\.(?:json|ya?ml)$")


def _role(layout: str, rel: str) -> tuple[str, LogSource | None] | None:
    """What a file of a layout is: "doc", "listed", "text", "log" (with its source), "sections", "errors",
    "skip" or None."""
    if layout == SONOBUOY:
        return sonobuoy.role(rel)
    if layout == SUPPORT_BUNDLE:
        if m := _SB_LOG.search(rel):
            container, previous = _previous(m.group(3))
            return "log", LogSource(file="", namespace=m.group(1), pod=m.group(2), container=container,
                                    previous=previous)
        if _SB_ERRORS.search(rel):
            return "errors", None
        if _SB_DOC.search(rel):
            return None if _SB_SKIP.search(rel) else ("doc", None)
        if m := _SB_COLLECTED_LOG.search(rel):  # a `logs` collector: <collector>/<pod>/<container>.log
            container, previous = _previous(m.group(2))
            return "log", LogSource(file="", pod=m.group(1), container=container, previous=previous)
        return None
    if layout == MUST_GATHER:
        if m := _MG_LOG.search(rel):
            return "log", LogSource(file="", namespace=m.group(1), pod=m.group(2), container=m.group(3),
                                    previous=m.group(4) == "previous")
        return ("doc", None) if _MG_DOC.search(rel) else None
    name = rel.rsplit("/", 1)[-1]
    if layout == CLUSTER_INFO and DUMP_LOGS.search(rel):
        return "sections", None
    suffix = PurePosixPath(name).suffix.lower()
    if name == LABELS_FILE:
        return None
    if suffix in DOC_SUFFIXES or (layout == RECORDINGS and (suffix in RECORDING_SUFFIXES or suffix == ".dump")):
        return "doc", None
    return ("text", None) if suffix in (".txt", ".log", "") else None


def _previous(stem: str) -> tuple[str, bool]:
    return (stem[: -len("-previous")], True) if stem.endswith("-previous") else (stem, False)


def _note_pod(item: RawEvent | UnusableInput | InputNote, pods: dict[tuple[str, str], PodInfo]) -> None:
    if isinstance(item, RawEvent) and item.type == "kubeapi" and item.metadata.get("kind") == "Pod":
        info = pod_info(msgspec.json.decode(item.data))
        if info is not None:
            pods[(info.namespace, info.name)] = info


def _document(data: bytes, file: str, now: datetime | None) -> Iterator[RawEvent | UnusableInput]:
    """One file's content: a cluster-info dump stream, kubectl text, or a recording."""
    if has_stream_mark(data):
        yield from _read_stream(data, file, now)
    elif looks_like_kubectl_text(data):
        yield from _kubectl_text(data, file, now)
    else:
        yield from parse_recording(data, file)


def _collection_errors(data: bytes, file: str, error: UnusableInput | None) -> Iterator[UnusableInput]:
    """A support bundle's `*-errors.json`: what its collector could not get (`pods is forbidden`)."""
    if error:
        yield error
    try:
        entries = json_loads(data)
    except ValueError:
        yield from parse_recording(data, file)
        return
    for index, entry in enumerate(entries if isinstance(entries, list) else [entries]):
        yield UnusableInput(file=file, position=f"[{index}]", reason=f"the bundle's collector reported: {entry}"[:500])


# -- logs --------------------------------------------------------------------------------------


def _scan(member: Member, archive: Archive | None, sources: list[LogSource],
          scanned: list[tuple[ScannedLog, bool]]) -> Iterator[UnusableInput]:
    """Stream one log file: a single container's log (`sources` = [it]) or a file of dump sections."""
    scanner = LogScanner(msgspec.structs.replace(sources[0], file=member.file)) if sources else None
    number = 0
    try:
        with member.open() as f:
            for number, line in enumerate(text_lines(f), start=1):
                if sources:
                    scanner.feed(line, number)
                    continue
                scanner = _section_line(line, number, member.file, scanner, scanned)
    except ARCHIVE_ERRORS as exc:
        yield damaged(member, archive, f"line {number + 1}", exc)
    if scanner is not None:
        scanned.append((scanner.finish(), bool(sources) and not sources[0].namespace))


def _section_line(line: str, number: int, file: str, scanner: LogScanner | None,
                  scanned: list[tuple[ScannedLog, bool]]) -> LogScanner | None:
    """One line of a cluster-info dump: opens, feeds or closes a container's section."""
    if m := _STREAM_START.match(line):
        if scanner is not None:
            scanned.append((scanner.finish(), False))
        return LogScanner(LogSource(file=file, container=m.group(1), namespace=m.group(2), pod=m.group(3)))
    if scanner is not None and _STREAM_END.match(line):
        scanned.append((scanner.finish(), False))
        return None
    if scanner is not None and not _STREAM_NOISE.match(line):
        scanner.feed(line, number)
    return scanner


def _logs(scanned: list[tuple[ScannedLog, bool]], pods: dict[tuple[str, str], PodInfo],
          now: datetime | None) -> Iterator[RawEvent | UnusableInput]:
    by_name: dict[str, list[PodInfo]] = {}
    for info in pods.values():
        by_name.setdefault(info.name, []).append(info)
    for log, needs_pod in scanned:
        src = log.source
        pod = pods.get((src.namespace, src.pod))
        if pod is None and not src.namespace and len(by_name.get(src.pod, [])) == 1:
            pod = by_name[src.pod][0]
        if pod is None and needs_pod:
            continue  # a .log file outside the cluster resources that names no pod of the bundle
        yield from log_events(log, pod, now=now)


def _read_stream(data: bytes, file: str, now: datetime | None) -> Iterator[RawEvent | UnusableInput]:
    """`kubectl cluster-info dump` to stdout: JSON lists with log sections in between.

    The sections are blanked out line for line, so the JSON keeps its line numbers in errors.
    """
    scanned: list[tuple[ScannedLog, bool]] = []
    kept: list[str] = []
    scanner: LogScanner | None = None
    for number, line in enumerate(text_lines(io.BytesIO(data)), start=1):
        inside = scanner is not None or _STREAM_START.match(line)
        scanner = _section_line(line, number, file, scanner, scanned)
        kept.append("\n" if inside else line)
    if scanner is not None:
        scanned.append((scanner.finish(), False))
    pods: dict[tuple[str, str], PodInfo] = {}
    text = "".join(kept)
    for item in parse_recording(text.encode(), file) if text.strip() else ():
        _note_pod(item, pods)
        yield item
    yield from _logs(scanned, pods, now)


def _kubectl_text(data: bytes, file: str, now: datetime | None) -> Iterator[RawEvent | UnusableInput]:
    from collectors import kubetext
    # a recorded tool call (JSON header lines, `stdout:`, a trailing `stderr:` block) holds kubectl
    # text: parse the text, with the header lines blanked so line numbers stay the file's own
    text = data.decode("utf-8", "replace")
    body = kubetext.strip_harness(text)
    if body and body != text:
        skipped = text[:text.find(body.splitlines()[0])].count("\n") if body.strip() else 0
        data = ("\n" * skipped + body).encode()
    yield from kubetext.parse_kubectl_text(data, file, now=now)
