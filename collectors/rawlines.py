"""Recorded RawEvents, one JSON object a line (`*.rawevents.jsonl`): what a node collector emitted, read back.

Fed by: recordings of collectors whose source is not a Kubernetes object (the kernel collector's
OOM kills, exits, TCP counts), saved as `msgspec.json.encode(RawEvent)` lines (`benchmarks/
record_kernel_oom.py` writes them). Feeds: `collectors.replay.read_recording`, so `tapio replay` and
`tapio backtest` read them next to the Kubernetes files of the same scenario.

Pure: bytes in, RawEvents out. A line that is not a RawEvent is an UnusableInput naming its line;
the others still come through. Ids are kept as recorded: replaying twice yields the same ids.
"""

from __future__ import annotations

from collections.abc import Iterator

import msgspec

from collectors.unusable import FRAGMENT_CHARS, UnusableInput
from core.events import RawEvent

__all__ = ["RAW_SUFFIX", "is_raw_lines", "parse_raw_lines"]

RAW_SUFFIX = ".rawevents.jsonl"
_DECODER = msgspec.json.Decoder(RawEvent)


def is_raw_lines(file: str) -> bool:
    """Whether a recording's name says it holds RawEvent lines."""
    return file.lower().endswith(RAW_SUFFIX)


def parse_raw_lines(data: bytes, file: str) -> Iterator[RawEvent | UnusableInput]:
    """One RawEvent per non-empty line, an UnusableInput for each line that is not one."""
    for number, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            event = _DECODER.decode(line)
        except msgspec.DecodeError as exc:
            yield UnusableInput(file=file, position=f"line {number}", reason=f"not a RawEvent: {exc}",
                                fragment=line[:FRAGMENT_CHARS].decode("utf-8", "backslashreplace"))
            continue
        if event.timestamp.tzinfo is None:
            yield UnusableInput(file=file, position=f"line {number}", reason="timestamp: no time zone",
                                fragment=line[:FRAGMENT_CHARS].decode("utf-8", "backslashreplace"))
            continue
        yield event
