"""The journald collector: follows the node's journal from a saved cursor and emits what matters in it.

Fed by: the systemd journal, read by `journalctl -o json --follow` (a child process) on the host's journal
directory (`directory`, `-D`) or a journal namespace (`namespace`, `--namespace`). Feeds: the agent's
`emit` (RawEvents of type `journald`, `collectors.node` contract), with the meaning from
`collectors.journallines`.

Why journalctl and not a library: it is systemd's own reader, so it follows file rotation, vacuuming,
namespaces, compressed and newer-format journal files exactly as the journald that wrote them; the
Python bindings (Debian `python3-systemd`, PyPI `cysystemd`) are C extensions bound to one libsystemd and
one Python ABI, and leave the follow loop (inotify, rotation) to the caller. One child per node costs
a few MiB. It matches on the writers the classifier reads (`SYSLOG_IDENTIFIER=kubelet + ...`), so the
rest of the journal never reaches Python.

Resume: the cursor of the last entry handled is written (atomically) to `cursor_file` after each batch is
emitted; a restart passes it as `--after-cursor`, so nothing is forwarded twice (the event id is the
cursor too). Without a saved cursor it starts at the end of the journal. A cursor journalctl cannot seek
to (the journal was vacuumed or is another machine's) is dropped, logged, and reading restarts at the end.
Routine entries are counted (`routine`), not forwarded; journald's own drops are `lost()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import msgspec

from collectors.journallines import IDENTIFIERS, Classifier, JournalEntry
from collectors.node import Emit, SourceUnavailable, node_event
from core.events import RawEvent

log = logging.getLogger(__name__)

NAME = "journald"
OUTPUT_FIELDS = ("MESSAGE", "SYSLOG_IDENTIFIER", "UNIT", "PRIORITY", "_PID")
CURSOR_FILE = Path("/var/lib/tapio/journald.cursor")  # a hostPath in the DaemonSet: survives the agent's restarts
LINE_LIMIT = 4 * 1024 * 1024  # a journal entry's JSON line (MESSAGE may be large)


class JournaldCollector:
    """Follows one journal (`namespace` or `directory`, else the host's default) from `cursor_file`."""

    name = NAME

    def __init__(self, node: str, *, cursor_file: Path = CURSOR_FILE, namespace: str = "",
                 directory: Path | None = None, identifiers: tuple[str, ...] = IDENTIFIERS,
                 journalctl: str = "journalctl", batch_seconds: float = 1.0, max_batch: int = 500,
                 retry_seconds: float = 2.0) -> None:
        self.node = node
        self.cursor_file = cursor_file
        self.namespace = namespace
        self.directory = directory
        self.identifiers = identifiers
        self.journalctl = journalctl
        self.batch_seconds = batch_seconds
        self.max_batch = max_batch
        self.retry_seconds = retry_seconds
        self.classifier = Classifier()
        self.routine: Counter[str] = Counter()  # entries read and not forwarded, per identifier
        self.forwarded = 0
        self.unreadable = 0  # lines journalctl printed that were not a journal entry

    # -- contract --------------------------------------------------------------------------------------
    def check(self) -> None:
        binary = shutil.which(self.journalctl)
        if binary is None:
            raise SourceUnavailable(f"{self.journalctl} is not on PATH: install systemd (journalctl) in the agent's "
                                    "image, or switch the journald collector off")
        if self.directory is not None and not self.directory.is_dir():
            raise SourceUnavailable(f"journal directory {self.directory} does not exist: mount the host's "
                                    "/var/log/journal (or /run/log/journal) into the agent")
        if self.namespace and not any(next(Path(root).glob(f"*.{self.namespace}"), None)
                                      for root in ("/var/log/journal", "/run/log/journal")):
            raise SourceUnavailable(f"journal namespace {self.namespace!r} has no files under /var/log/journal "
                                    "or /run/log/journal: start systemd-journald@" + self.namespace)
        done = subprocess.run([binary, *self._source(), "--header", "--no-pager"],
                              capture_output=True, text=True, timeout=30, check=False)
        if done.returncode != 0:
            raise SourceUnavailable(f"journalctl cannot read the journal (exit {done.returncode}): "
                                    f"{done.stderr.strip()[:300]}; give the agent read access to it")
        if "File path:" not in done.stdout:
            where = self.directory or (f"namespace {self.namespace}" if self.namespace else
                                       "/var/log/journal or /run/log/journal")
            raise SourceUnavailable(f"no journal files in {where}: this node keeps no journal (no systemd-journald),"
                                    " or its journal is not mounted into the agent (mount /var/log/journal and "
                                    "/run/log/journal, and /etc/machine-id)")

    def lost(self) -> int:
        return self.classifier.dropped + self.unreadable

    async def run(self, emit: Emit, stop: asyncio.Event) -> None:
        while not stop.is_set():
            cursor = self._load_cursor()
            process = await asyncio.create_subprocess_exec(
                self.journalctl, *self._arguments(cursor), stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL, limit=LINE_LIMIT)
            try:
                await self._follow(process, emit, stop)
            finally:
                await _end(process)
            if stop.is_set():
                return
            error = (await process.stderr.read()).decode(errors="replace").strip() if process.stderr else ""
            if cursor and "cursor" in error.lower():
                log.warning("journald: journalctl cannot seek to the saved cursor (%s); starting at the end of "
                            "the journal. Entries written in between are not read.", error[:200])
                self.cursor_file.unlink(missing_ok=True)
            else:
                log.warning("journald: journalctl exited (%s): %s; restarting in %.0f s. If this repeats, check "
                            "the journal's mount and permissions", process.returncode, error[:300],
                            self.retry_seconds)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.retry_seconds)

    # -- I/O -------------------------------------------------------------------------------------------
    def _source(self) -> list[str]:
        if self.directory is not None:
            return [f"--directory={self.directory}"]
        return [f"--namespace={self.namespace}"] if self.namespace else []

    def _arguments(self, cursor: str) -> list[str]:
        start = [f"--after-cursor={cursor}"] if cursor else ["--lines=0"]
        matches: list[str] = []
        for identifier in self.identifiers:
            matches += [*(["+"] if matches else []), f"SYSLOG_IDENTIFIER={identifier}"]
        return [*self._source(), "--output=json", "--follow", "--no-pager", "--quiet",
                f"--output-fields={','.join(OUTPUT_FIELDS)}", *start, *matches]

    async def _follow(self, process: asyncio.subprocess.Process, emit: Emit, stop: asyncio.Event) -> None:
        assert process.stdout is not None
        stopping = asyncio.ensure_future(stop.wait())
        try:
            eof = False
            while not eof and not stop.is_set():
                lines, eof = await _batch(process.stdout, stopping, self.batch_seconds, self.max_batch)
                if lines:
                    await self._handle(lines, emit)
        finally:
            stopping.cancel()

    async def _handle(self, lines: list[bytes], emit: Emit) -> None:
        events: list[RawEvent] = []
        cursor = ""
        for line in lines:
            try:
                entry = msgspec.json.decode(line, type=JournalEntry)
            except (msgspec.DecodeError, msgspec.ValidationError):
                self.unreadable += 1
                continue
            cursor = entry.cursor
            finding = self.classifier.classify(entry)
            if finding is None:
                self.routine[entry.identifier] += 1
                continue
            facts = {"journal.identifier": entry.identifier, **finding.facts}
            if entry.pid and "pid" not in facts and entry.identifier != "kernel":
                facts["journal.pid"] = entry.pid
            events.append(node_event(NAME, node=self.node, at=entry.at, reason=finding.reason,
                                     message=finding.message, intent=finding.intent, category=finding.category,
                                     severity=finding.severity, about=finding.about, facts=facts, key=entry.cursor))
        if events:
            await emit(events)
            self.forwarded += len(events)
        if cursor:
            self._save_cursor(cursor)

    def _load_cursor(self) -> str:
        try:
            return self.cursor_file.read_text().strip()
        except FileNotFoundError:
            return ""

    def _save_cursor(self, cursor: str) -> None:
        self.cursor_file.parent.mkdir(parents=True, exist_ok=True)
        partial = self.cursor_file.with_name(self.cursor_file.name + ".partial")
        partial.write_text(cursor)
        os.replace(partial, self.cursor_file)


async def _batch(stream: asyncio.StreamReader, stopping: asyncio.Future[object], seconds: float,
                 most: int) -> tuple[list[bytes], bool]:
    """Lines read within `seconds` of the first one (at most `most`), waiting for the first until
    `stopping` is done; and whether the stream ended."""
    lines: list[bytes] = []
    loop = asyncio.get_running_loop()
    deadline = None
    while len(lines) < most:
        reading = asyncio.ensure_future(stream.readline())
        timeout = None if deadline is None else max(0.0, deadline - loop.time())
        done, _ = await asyncio.wait({reading, stopping}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if reading not in done:
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reading
            return lines, False
        try:
            line = reading.result()
        except ValueError:  # longer than the stream's limit: dropped by the reader, counted by the caller
            lines.append(b"")
            continue
        if not line:
            return lines, True
        lines.append(line)
        if deadline is None:
            deadline = loop.time() + seconds
    return lines, False


async def _end(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 5)
        except TimeoutError:
            process.kill()
            await process.wait()
