"""Publish recordings to JetStream: the I/O shell around `collectors.replay`.

Fed by: `tapio replay FILE...` and `tapio demo`, with paths of recordings users already have.
Feeds: JetStream subjects `events.kubeapi.<namespace>` (good events, with their original
timestamps) and `deadletter.replay` (every part of a file that could not be parsed, with the
file and position). A bad part never stops the rest of the file.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path

import msgspec

from collectors.folders import folder_entries
from collectors.replay import newest_time, read_recording, shifted
from collectors.unusable import UnusableInput, printable
from core.events import RawEvent, publish_order
from core.ports import DeadLetterSink, EventPublisher

log = logging.getLogger(__name__)


LABELS_FILE = "labels.yaml"
"""A scenario's ground truth (see patterns/scenarios/): never a recording."""


class ReplaySummary(msgspec.Struct, kw_only=True):
    files: int = 0
    events: int = 0
    duplicates: int = 0
    event_ids: list[str] = []
    errors: list[str] = []


RECORDING_SUFFIXES = {".json", ".yaml", ".yml", ".jsonl", ".log", ""}


def recording_inputs(paths: Iterable[str | Path]) -> Iterator[Path | UnusableInput]:
    """Files named, and every file under folders named, in a stable order (README files skipped);
    an UnusableInput for every link inside a folder that is not followed (`collectors.folders`)."""
    for path in map(Path, paths):
        if path.is_dir():
            found: list[Path] = []
            for entry in folder_entries(path):
                if isinstance(entry, UnusableInput):
                    yield entry
                elif entry[1].suffix.lower() in RECORDING_SUFFIXES and entry[1].name != LABELS_FILE:
                    found.append(entry[1])
            yield from sorted(found)
        else:
            yield path


def recording_files(paths: Iterable[str | Path]) -> Iterator[Path]:
    """The files of `recording_inputs`, without the links refused."""
    return (p for p in recording_inputs(paths) if isinstance(p, Path))


async def replay_files(paths: Iterable[str | Path], *, publisher: EventPublisher,
                       deadletters: DeadLetterSink, chunk: int = 5000,
                       shift_to: datetime | None = None) -> ReplaySummary:
    """Publish every recording under `paths` as one stream, in `publish_order` (snapshots, then by time).

    With `shift_to`, the recording is moved so that its newest timed event is at that time.
    """
    summary = ReplaySummary()
    events: list[RawEvent] = []
    for path in recording_inputs(paths):
        if isinstance(path, UnusableInput):
            await _refuse(path, summary, deadletters)
            continue
        summary.files += 1
        for item in read_recording(path):
            if isinstance(item, UnusableInput):
                await _refuse(item, summary, deadletters)
                continue
            events.append(item)
    newest = newest_time(events)
    if shift_to is not None and newest is not None:
        events = shifted(events, shift_to - newest)
    ordered = publish_order(events)
    for start in range(0, len(ordered), chunk):
        await _flush(ordered[start:start + chunk], publisher, summary)
    return summary


async def _refuse(item: UnusableInput, summary: ReplaySummary, deadletters: DeadLetterSink) -> None:
    summary.errors.append(str(item))
    log.error("replay: %s (the rest still goes through)", item)
    await deadletters.send(stage="replay", reason=printable(item.reason),
                           where=printable(f"{item.file}: {item.position}"),
                           payload=item.fragment.encode("utf-8", "backslashreplace"))


async def _flush(batch: list[RawEvent], publisher: EventPublisher, summary: ReplaySummary) -> None:
    if not batch:
        return
    before = publisher.duplicates
    refused: dict[str, str] = getattr(publisher, "refused", {})  # too large for the transport (app.jetstream)
    summary.events += await publisher.publish_many(batch)
    summary.duplicates += publisher.duplicates - before
    summary.errors.extend(refused[e.id] for e in batch if e.id in refused)
    summary.event_ids.extend(e.id for e in batch if e.id not in refused)
    batch.clear()


def read_recordings(paths: Iterable[str | Path]) -> tuple[list[RawEvent], list[str]]:
    """Every RawEvent of the recordings under `paths`, and every part that could not be read."""
    events: list[RawEvent] = []
    errors: list[str] = []
    for path in recording_inputs(paths):
        for item in read_recording(path) if isinstance(path, Path) else [path]:
            if isinstance(item, UnusableInput):
                errors.append(str(item))
            else:
                events.append(item)
    return events, errors
