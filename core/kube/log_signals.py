"""The table of container-log signals (`core/kube/vocabulary/log_signals.yaml`), compiled for fast scanning.

Fed by: `core/kube/vocabulary/log_signals.yaml` (data, like core/kube/vocabulary/semantics.yaml: a line
becomes an event only when one of its signals matches). Feeds: `collectors.podlogs`, which scans logs with it.

Each signal's patterns are compiled into one regex, and from the parsed patterns come the
`needles`: literal words one of which every match must hold. A scanner searches a block of lines
for the needles at once and runs regexes only on the lines that hold one.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any

try:  # CPython's own pattern parser (3.11+): finds the literal words a pattern needs
    from re import _constants as _c  # type: ignore[attr-defined]
    from re import _parser  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - without it every line is searched with the regexes
    _parser = None

import msgspec
import yaml

from core.kube.vocabulary import vocabulary_file

SIGNALS_FILE = "log_signals.yaml"


class SignalSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    meaning: tuple[str, str, str]  # intent, category, severity
    patterns: list[str]


class SignalFile(msgspec.Struct, frozen=True):
    signals: list[SignalSpec]


class Signal(msgspec.Struct, frozen=True):
    name: str
    intent: str
    category: str
    severity: str
    regex: re.Pattern[str]
    needles: frozenset[str] | None  # lowercase words one of which every match holds (None: always search)


class SignalTable(msgspec.Struct, frozen=True):
    signals: tuple[Signal, ...]
    needles: frozenset[str] | None  # every signal's (None: some pattern has none, so every line is a candidate)

    def match(self, text: str) -> list[Signal]:
        low = text.lower()  # most lines hold no needle: a few substring tests, no regex
        return [s for s in self.signals
                if (s.needles is None or any(n in low for n in s.needles)) and s.regex.search(text)]


_FLAGS = re.IGNORECASE | re.MULTILINE


@lru_cache(maxsize=4)
def signal_table(path: str | Path | None = None) -> SignalTable:
    """The shipped signals (`core/kube/vocabulary/log_signals.yaml`), or those of the file `path`."""
    text = Path(path).read_text() if path is not None else vocabulary_file(SIGNALS_FILE).read_text()
    spec = msgspec.convert(yaml.safe_load(text), SignalFile)
    signals = []
    for s in spec.signals:
        needles = [_pattern_needles(p) for p in s.patterns]
        signals.append(Signal(name=s.name, intent=s.meaning[0], category=s.meaning[1], severity=s.meaning[2],
                              regex=re.compile("|".join(f"(?:{p})" for p in s.patterns), _FLAGS),
                              needles=_all_of(needles)))
    return SignalTable(signals=tuple(signals), needles=_all_of([sig.needles for sig in signals]))


def _all_of(parts: list[frozenset[str] | None]) -> frozenset[str] | None:
    """The union of every part's needles; None (search every line) when one part has none."""
    known = [part for part in parts if part is not None]
    return frozenset().union(*known) if len(known) == len(parts) else None


def _pattern_needles(pattern: str) -> frozenset[str] | None:
    try:
        return _needles(_parser.parse(pattern, _FLAGS)) if _parser is not None else None
    except Exception:  # noqa: BLE001 - a parser change costs speed, never a match
        return None


def _needles(items: Any) -> frozenset[str] | None:
    """Literal runs (3+ characters, lowercased) one of which any match of a parsed pattern holds."""
    best: frozenset[str] | None = None

    def consider(found: frozenset[str] | None) -> None:
        nonlocal best
        if found and min(map(len, found)) >= 3 and (best is None or min(map(len, found)) > min(map(len, best))):
            best = found

    run: list[str] = []
    for op, av in [*items, (None, None)]:
        if op is _c.LITERAL and chr(av) not in '"\\':  # quotes are escaped in JSON logs: no needle holds one
            run.append(chr(av))
            continue
        consider(frozenset({"".join(run).lower()}) if run else None)
        run = []
        if op is _c.SUBPATTERN:
            consider(_needles(av[-1]))
        elif op in (_c.MAX_REPEAT, _c.MIN_REPEAT) and av[0] >= 1:
            consider(_needles(av[2]))
        elif op is _c.BRANCH:
            branches = [_needles(b) for b in av[1]]
            if all(branches):
                consider(_all_of(branches))
    return best
