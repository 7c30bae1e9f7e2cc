"""The files inside an input (a folder or a tar archive read in place), and which layout they form.

Fed by: `collectors.bundles`, with the paths users hand Tapio. Feeds: `collectors.bundles`, which
reads each member by its layout's rules.

Layouts are recognised by paths only (`detect_input`), never by a flag; see `collectors.bundles`.
Archives (`.tar`, `.tar.gz`/`.tgz`, `.tar.xz`, `.tar.bz2`) are read member by member, never
extracted: a member whose name is absolute or climbs out with `..` is reported and skipped, links
and devices are skipped, a JSON/YAML member or file above MAX_MEMBER_BYTES is reported and not read
(nor is one that grows past it while read), and a log is streamed line by line (a line keeps its
first MAX_LINE_BYTES). An archive is walked until its members add up to MAX_ARCHIVE_BYTES
(uncompressed, read or passed over: passing over a member decompresses it): the member that goes
over it and the rest are reported, not read (a small .tar.gz can hold terabytes). A truncated or damaged
archive gives an UnusableInput naming the member and the byte (or line) where it broke; everything
read before it is kept.
"""

from __future__ import annotations

import lzma
import re
import tarfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import IO

import msgspec

from collectors import limits
from collectors.folders import folder_entries
from collectors.limits import MAX_FILE_BYTES, json_loads
from collectors.unusable import UnusableInput

SUPPORT_BUNDLE = "support-bundle"
MUST_GATHER = "must-gather"
CLUSTER_INFO = "cluster-info-dump"
CLUSTER_INFO_STREAM = "cluster-info-stream"
SONOBUOY = "sonobuoy"
RECORDINGS = "recordings"

MAX_MEMBER_BYTES = MAX_FILE_BYTES  # a member or file read whole (JSON/YAML, text): larger ones are reported, not read
MAX_ARCHIVE_BYTES = 2 << 30  # the members of one archive, uncompressed: the rest of a larger one is not read
MAX_LINE_BYTES = 1 << 20  # a longer log line keeps its first MiB
RECORDING_SUFFIXES = frozenset({".json", ".yaml", ".yml", ".jsonl", ".log", ""})  # as recording_files
DOC_SUFFIXES = (".json", ".yaml", ".yml")
ARCHIVE_ERRORS = (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError)


class InputKind(msgspec.Struct, frozen=True):
    layout: str  # SUPPORT_BUNDLE, MUST_GATHER, SONOBUOY, CLUSTER_INFO, CLUSTER_INFO_STREAM or RECORDINGS
    archive: bool = False
    nested: bool = False  # the layout starts below a top folder (must-gather.local.*/<image>/namespaces/...)


# -- detection ---------------------------------------------------------------------------------

_SUPPORT = re.compile(r"(?:^|/)cluster-resources/(?:events/|pods/|deployments/|replicasets/|nodes\.json$)")
_MUST_GATHER = re.compile(r"(?:^|/)(?:namespaces/[^/]+/(?:core|apps|pods)/|cluster-scoped-resources/)")
_SONOBUOY = re.compile(r"(?:^|/)(?:resources/(?:ns/[^/]+|cluster)/[^/]+\.json|podlogs/[^/]+/[^/]+/logs/[^/]+\.txt"
                       r"|meta/query-time\.json)$")
DUMP_LOGS = re.compile(r"(?:^|/)[^/]+/[^/]+/logs\.txt$")
_DUMP_NODES = re.compile(r"(?:^|/)nodes\.(?:json|yaml)$")
_DUMP_LIST = re.compile(r"(?:^|/)[^/]+/(?:events|pods|replicasets|deployments|services|daemonsets|"
                        r"replication-controllers)\.(?:json|yaml)$")


def _depth(rel: str, start: int) -> int:
    """How many folders lie above the point a marker matched at."""
    prefix = rel[:start].strip("/")
    return prefix.count("/") + 1 if prefix else 0


def layout_of(names: Iterable[str], max_depth: int) -> tuple[str, int]:
    """(layout, depth of its root): SUPPORT_BUNDLE, MUST_GATHER or SONOBUOY at their first marker,
    else CLUSTER_INFO, else RECORDINGS (depth 0)."""
    dump_logs: int | None = None
    dump_nodes: dict[str, int] = {}
    dump_lists: set[str] = set()
    for rel in names:
        for layout, marker in ((SUPPORT_BUNDLE, _SUPPORT), (MUST_GATHER, _MUST_GATHER), (SONOBUOY, _SONOBUOY)):
            m = marker.search(rel)
            if m and (depth := _depth(rel, m.start())) <= max_depth:
                return layout, depth
        if (m := DUMP_LOGS.search(rel)) and (depth := _depth(rel, m.start())) <= max_depth:
            dump_logs = depth if dump_logs is None else min(dump_logs, depth)
        for marker in (_DUMP_NODES, _DUMP_LIST):
            if (m := marker.search(rel)) and (depth := _depth(rel, m.start())) <= max_depth:
                root = rel[:m.start()].strip("/")
                dump_nodes.update({root: depth} if marker is _DUMP_NODES else {})
                dump_lists.update({root} if marker is _DUMP_LIST else set())
    roots = [dump_nodes[r] for r in dump_nodes.keys() & dump_lists]
    if dump_logs is not None or roots:
        return CLUSTER_INFO, min([*roots, *([dump_logs] if dump_logs is not None else [])])
    return RECORDINGS, 0


def detect_input(path: str | Path) -> InputKind:
    """The layout of one input (a folder, an archive or a single file), from the names inside.

    A folder's layout must start at the folder or in a subfolder (`nested`); an archive's up to
    two folders down (a top folder, and a must-gather's image folder).
    """
    path = Path(path)
    if path.is_dir():
        layout, depth = layout_of((rel for rel, _ in folder_files(path)), max_depth=1)
        return InputKind(layout, nested=depth > 0)
    if is_archive(path):
        layout, depth = layout_of(_archive_names(path), max_depth=2)
        return InputKind(layout, archive=True, nested=depth > 0)
    return InputKind(CLUSTER_INFO_STREAM) if has_stream_mark(path) else InputKind(RECORDINGS)


def is_archive(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            head = f.read(512)
    except OSError:
        return False
    compressed = head.startswith((b"\x1f\x8b", b"\xfd7zXZ\x00", b"BZh"))
    if not compressed and head[257:262] != b"ustar":
        return False
    try:
        return tarfile.is_tarfile(path)
    except ARCHIVE_ERRORS:  # damaged from its first block on: still an archive, reported as one
        return path.name.lower().endswith((".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.bz2", ".tar"))


STREAM_MARK = b"==== START logs for container "


def has_stream_mark(source: Path | bytes) -> bool:
    """A file (or its bytes) holding `kubectl cluster-info dump` log sections (read in 1 MiB chunks,
    up to MAX_MEMBER_BYTES: a larger file is not read)."""
    if isinstance(source, bytes):
        return source.startswith(STREAM_MARK) or b"\n" + STREAM_MARK in source
    tail = b"\n"
    try:
        with source.open("rb") as f:
            while (chunk := f.read(1 << 20)) and f.tell() <= MAX_MEMBER_BYTES + (1 << 20):
                if (tail + chunk).find(b"\n" + STREAM_MARK) >= 0:
                    return True
                tail = chunk[-len(STREAM_MARK):]
    except OSError:
        return False
    return False


def _archive_names(path: Path) -> Iterator[str]:
    walked = 0
    try:
        with tarfile.open(path, "r:*") as tf:
            while (info := tf.next()) is not None:
                walked += info.size if info.isfile() else 0
                if walked > MAX_ARCHIVE_BYTES:
                    return  # passing over members decompresses them: the walk that reads says so
                if info.isfile() and (rel := _safe_name(info.name)):
                    yield rel
    except ARCHIVE_ERRORS:
        return


def _safe_name(name: str) -> str | None:
    """A member name as a relative path, or None when it is absolute or climbs out (`..`)."""
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if not parts or parts[0] == "/" or ".." in parts or re.match(r"[A-Za-z]:", parts[0]):
        return None
    return "/".join(p for p in parts if p != ".")


# -- the members of an input -------------------------------------------------------------------


class Member(msgspec.Struct, frozen=True):
    rel: str  # path inside the input, with /
    file: str  # the name errors and sources give
    size: int  # as the archive's header or the file system says (a file may still grow while read)
    open: Callable[[], IO[bytes]]


class Archive:
    """The members of a tar archive, read in place; after damage, `broken` stops the walk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.broken = False
        self.walked = 0  # bytes of the members walked over, read or not

    def members(self) -> Iterator[Member | UnusableInput]:
        try:
            tf = tarfile.open(self.path, "r:*")
        except ARCHIVE_ERRORS as exc:
            yield UnusableInput(file=str(self.path), position="file", reason=f"cannot read archive: {exc}")
            return
        with tf:
            last = ""
            while not self.broken:
                try:
                    info = tf.next()
                except ARCHIVE_ERRORS as exc:
                    where = f"after member {last}" if last else "first member"
                    yield UnusableInput(file=str(self.path), position=f"{where} (byte {tf.offset})",
                                        reason=f"archive truncated or damaged: {exc}")
                    return
                if info is None:
                    return
                last = info.name
                if info.issym() or info.islnk():  # never followed: it may lead out of the archive
                    kind = "symbolic" if info.issym() else "hard"
                    yield UnusableInput(file=f"{self.path}:{info.name}", position="member",
                                        reason=f"{kind} link to {info.linkname}: not followed")
                    continue
                if not info.isfile():
                    continue  # folders and devices carry no recordings
                self.walked += info.size
                if self.walked > MAX_ARCHIVE_BYTES:
                    yield UnusableInput(file=f"{self.path}:{info.name}", position="member",
                                        reason=over_archive_cap(info.size))
                    return
                rel = _safe_name(info.name)
                if rel is None:
                    yield UnusableInput(file=f"{self.path}:{info.name}", position="member",
                                        reason="unsafe member path (absolute or with ..): skipped")
                    continue
                yield Member(rel=rel, file=f"{self.path}:{rel}", size=info.size,
                              open=lambda info=info: tf.extractfile(info))


def over_archive_cap(size: int) -> str:
    return (f"the archive's members add up to more than {MAX_ARCHIVE_BYTES} bytes uncompressed (this one has "
            f"{size}): it and the members after it are not read")


def file_member(rel: str, file: Path) -> Member:
    """A file of a folder, or named by the user, as a Member (its size as the file system says)."""
    try:
        size = file.stat().st_size
    except OSError:
        size = 0  # reading it says why
    return Member(rel=rel, file=str(file), size=size, open=lambda: file.open("rb"))


def folder_files(root: Path) -> Iterator[tuple[str, Path]]:
    """The regular files of a folder (`collectors.folders`: no link followed out of it)."""
    return (entry for entry in folder_entries(root) if not isinstance(entry, UnusableInput))


def members(path: Path, archive: Archive | None) -> Iterator[Member | UnusableInput]:
    if archive is not None:
        yield from archive.members()
        return
    for entry in folder_entries(path):  # a link refused is named in what could not be read
        if isinstance(entry, UnusableInput):
            yield entry
            continue
        yield file_member(*entry)


def read_member(member: Member, archive: Archive | None, *, sniff: bool = False) -> tuple[bytes, UnusableInput | None]:
    """The member's bytes; after damage, what could be read and the error naming the byte.

    With `sniff`, only kubectl text is read whole (b"" for anything else). A member or file larger
    than MAX_MEMBER_BYTES is not read (b"" and the error naming its size).
    """
    if member.size > MAX_MEMBER_BYTES:
        return b"", too_large(member.file, member.size, archive)
    chunks: list[bytes] = []
    got = 0
    try:
        with member.open() as f:
            while chunk := f.read(1 << 13 if archive is not None else 1 << 20):  # a damaged archive loses less
                if sniff and not chunks and not looks_like_kubectl_text(chunk):
                    return b"", None
                chunks.append(chunk)
                got += len(chunk)
                if got > MAX_MEMBER_BYTES:  # it grew while read (or is no regular file)
                    return b"", too_large(member.file, MAX_MEMBER_BYTES, archive, growing=True)
    except ARCHIVE_ERRORS as exc:
        return b"".join(chunks), damaged(member, archive, f"byte {got} of {member.size}", exc)
    return b"".join(chunks), None


def too_large(file: str, size: int, archive: Archive | None, *, growing: bool = False) -> UnusableInput:
    return UnusableInput(file=file, position="file" if archive is None else "member",
                         reason=limits.too_large(size, growing=growing, limit=MAX_MEMBER_BYTES))


def damaged(member: Member, archive: Archive | None, position: str, exc: BaseException) -> UnusableInput:
    if archive is not None:
        archive.broken = True
        return UnusableInput(file=member.file, position=position, reason=f"archive truncated or damaged inside this "
                             f"member ({exc}): what came before is still read")
    return UnusableInput(file=member.file, position=position, reason=f"cannot read: {exc}")


def text_lines(f: IO[bytes]) -> Iterator[str]:
    while line := f.readline(MAX_LINE_BYTES):
        if not line.endswith(b"\n") and len(line) == MAX_LINE_BYTES:
            while (rest := f.readline(MAX_LINE_BYTES)) and not rest.endswith(b"\n"):
                pass
        yield line.decode("utf-8", "replace")


# -- kubectl text ------------------------------------------------------------------------------

_TABLE_HEADER = re.compile(r"[A-Z][A-Z0-9()/._-]*(?: [A-Z][A-Z0-9()/._-]*)*"
                           r"(?: {2,}[A-Z][A-Z0-9()/._-]*(?: [A-Z][A-Z0-9()/._-]*)*)+ *")
_DESCRIBE = re.compile(r"Name:\s{2,}\S")


def looks_like_kubectl_text(data: bytes) -> bool:
    """A kubectl table (`LAST SEEN   TYPE   REASON ...`) or `kubectl describe` output, not JSON/YAML."""
    lines = [ln for ln in data[:16384].decode("utf-8", "replace").lstrip("\ufeff").splitlines() if ln.strip()]
    if not lines:
        return False
    text_line = lambda ln: _TABLE_HEADER.fullmatch(ln.rstrip()) or _DESCRIBE.match(ln)  # noqa: E731
    if lines[0].lstrip()[:1] in ("{", "["):  # JSON, unless it only wraps text (a harness's header line)
        if not any(text_line(ln) for ln in lines[:60]):
            return False
        try:
            json_loads(data)
            return False
        except ValueError:
            return True
    return bool(text_line(lines[0]))
