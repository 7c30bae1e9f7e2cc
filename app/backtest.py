"""Backtesting a pattern set: what it predicted against what the labels say happened.

Fed by: labelled corpora (a folder with `labels.yaml` and recordings, such as
`patterns/scenarios/<pattern>/{positive,negative}/`) and the predictions a pattern set made on
them (`agents.offline` for recordings; a replayed JetStream range gives the same records).
Feeds: `tapio backtest` (a table, JSON, and `--compare` of two pattern sets), through
`score_recordings` (corpora on disk) and `score_replays` (a labelled range of the live stream).

Scoring, per corpus: a labelled incident is found (true positive) when a prediction of its
pattern names its scope; found at or before `due_by` counts as on time. A (pattern, scope) that
fired and no incident of the corpus expects is one false positive, however often it fired. An
incident nothing found is a false negative. Lead time = `failure_at` - the first prediction of
the incident (positive: before the failure). Time to root cause = that prediction's time - the
root-cause event's time. Precision, recall and F1 per pattern and overall.

Pure: labels in, scores out; no servers (a stream range is replayed by the caller's function).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Protocol

import msgspec
import yaml

from app.diagnosis_backtest import is_case
from patterns import SCENARIOS

LABELS_FILE = "labels.yaml"
DEFAULT_CORPUS = SCENARIOS  # the labelled scenario suite shipped with the catalog


class LabelError(ValueError):
    """A labels file that cannot be used: the message names the file and the field."""


class RootCause(msgspec.Struct, frozen=True, kw_only=True):
    kind: str
    name: str
    at: datetime
    namespace: str = ""
    reason: str = ""


class Incident(msgspec.Struct, frozen=True, kw_only=True):
    pattern: str
    scope: str
    failure_at: datetime
    due_by: datetime
    root_cause: RootCause | None = None
    affected: list[str] = []
    primary: bool = True


class Labels(msgspec.Struct, frozen=True, kw_only=True):
    scenario: str = ""
    description: str = ""
    incidents: list[Incident] = []
    silent: list[str] = []


class Fired(msgspec.Struct, frozen=True, kw_only=True):
    """One prediction as the backtest sees it: which pattern, in which scope, at what event time."""

    pattern: str
    scope: str
    at: datetime


class Predicted(Protocol):
    """What a replayed range predicted (`topology.predictions` rows have these fields and more)."""

    pattern: str
    scope: str
    at: datetime
    since: datetime | None  # an episode's prediction updated in place: when it came first


class Corpus(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    folder: str
    labels: Labels


class PatternScore(msgspec.Struct, kw_only=True):
    pattern: str
    tp: int = 0
    fp: int = 0
    fn: int = 0
    late: int = 0  # true positives found after due_by
    lead_times_s: list[float] = []
    root_cause_s: list[float] = []

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    @property
    def f1(self) -> float | None:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p and r else (0.0 if p is not None and r is not None else None)

    @property
    def median_lead_s(self) -> float | None:
        return statistics.median(self.lead_times_s) if self.lead_times_s else None

    @property
    def median_root_cause_s(self) -> float | None:
        return statistics.median(self.root_cause_s) if self.root_cause_s else None


class Finding(msgspec.Struct, frozen=True, kw_only=True):
    """One line of the detail: what happened to an incident or a prediction in one corpus."""

    corpus: str
    pattern: str
    scope: str
    outcome: str  # "tp", "late", "fp", "fn"
    at: datetime | None = None


class Report(msgspec.Struct, kw_only=True):
    patterns: dict[str, PatternScore]
    findings: list[Finding]
    corpora: int

    def total(self) -> PatternScore:
        out = PatternScore(pattern="(all)")
        for score in self.patterns.values():
            out.tp += score.tp
            out.fp += score.fp
            out.fn += score.fn
            out.late += score.late
            out.lead_times_s += score.lead_times_s
            out.root_cause_s += score.root_cause_s
        return out

    def to_builtins(self) -> dict:
        def row(s: PatternScore) -> dict:
            return {"pattern": s.pattern, "tp": s.tp, "fp": s.fp, "fn": s.fn, "late": s.late,
                    "precision": s.precision, "recall": s.recall, "f1": s.f1,
                    "median_lead_time_s": s.median_lead_s, "median_time_to_root_cause_s": s.median_root_cause_s}
        return {"corpora": self.corpora, "overall": row(self.total()),
                "patterns": [row(s) for _, s in sorted(self.patterns.items())],
                "findings": msgspec.to_builtins(self.findings)}


def read_labels(path: str | Path) -> Labels:
    file = Path(path)
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise LabelError(f"{file}: cannot read labels: {e}") from None
    try:
        return msgspec.convert(data or {}, Labels, strict=False)
    except msgspec.ValidationError as e:
        raise LabelError(f"{file}: {e}") from None


def find_corpora(paths: Iterable[str | Path]) -> list[Corpus]:
    """Every folder under `paths` that holds a labels file, in a stable order."""
    found: list[Corpus] = []
    for path in map(Path, paths):
        files = [path] if path.name == LABELS_FILE else sorted(path.rglob(LABELS_FILE)) if path.is_dir() else []
        for file in files:
            if is_case(file):
                continue  # a diagnosis case (app.diagnosis_backtest), not a pattern scenario
            labels = read_labels(file)
            found.append(Corpus(name=labels.scenario or str(file.parent), folder=str(file.parent), labels=labels))
    return found


def score(results: Sequence[tuple[Corpus, Sequence[Fired]]], patterns: Iterable[str] = ()) -> Report:
    """Score each corpus's predictions against its labels; `patterns` lists every pattern of the set
    (so a pattern that never fired still has a row)."""
    scores: dict[str, PatternScore] = {name: PatternScore(pattern=name) for name in patterns}
    findings: list[Finding] = []
    for corpus, fired in results:
        first: dict[tuple[str, str], datetime] = {}
        for f in fired:
            key = (f.pattern, f.scope)
            first[key] = min(first.get(key, f.at), f.at)
        expected = {(i.pattern, i.scope): i for i in corpus.labels.incidents}
        for key, incident in expected.items():
            s = scores.setdefault(incident.pattern, PatternScore(pattern=incident.pattern))
            at = first.get(key)
            if at is None:
                s.fn += 1
                findings.append(Finding(corpus=corpus.name, pattern=key[0], scope=key[1], outcome="fn"))
                continue
            s.tp += 1
            on_time = at <= incident.due_by
            s.late += 0 if on_time else 1
            s.lead_times_s.append((incident.failure_at - at).total_seconds())
            if incident.root_cause is not None:
                s.root_cause_s.append((at - incident.root_cause.at).total_seconds())
            findings.append(Finding(corpus=corpus.name, pattern=key[0], scope=key[1],
                                    outcome="tp" if on_time else "late", at=at))
        for key, at in sorted(first.items()):
            if key not in expected:
                scores.setdefault(key[0], PatternScore(pattern=key[0])).fp += 1
                findings.append(Finding(corpus=corpus.name, pattern=key[0], scope=key[1], outcome="fp", at=at))
    return Report(patterns=scores, findings=findings, corpora=len(results))


def run_recordings(corpora: Sequence[Corpus], patterns_dir: str | Path) -> tuple[list[tuple[Corpus, list[Fired]]],
                                                                                list[str]]:
    """Each corpus's recordings through the matcher (agents.offline), with one catalog; and the errors."""
    from agents.catalog import Catalog
    from agents.offline import match_events
    from collectors.replayer import read_recordings

    catalog = Catalog(patterns_dir)
    errors = list(catalog.errors)
    out: list[tuple[Corpus, list[Fired]]] = []
    for corpus in corpora:
        events, unread = read_recordings([corpus.folder])
        errors += unread
        result = match_events(events, catalog)
        errors += result.errors
        out.append((corpus, [Fired(pattern=m.pattern, scope=m.scope, at=m.matched_at) for m in result.matches]))
    return out, errors


def pattern_names(patterns_dir: str | Path) -> list[str]:
    from agents.catalog import Catalog
    return sorted(Catalog(patterns_dir).patterns)


def score_recordings(corpora: Sequence[Corpus], pattern_sets: Sequence[str | Path]) -> tuple[list[Report], list[str]]:
    """Each pattern set on the recordings of every corpus: one report per set, and the errors met on the way."""
    reports: list[Report] = []
    errors: list[str] = []
    for folder in pattern_sets:
        results, unread = run_recordings(corpora, folder)
        errors += unread
        reports.append(score(results, pattern_names(folder)))
    return reports, errors


def labelled_range(labels_file: str) -> Corpus:
    """The corpus of a range of the live stream: the incidents its labels file names (the recordings are the range)."""
    labels = read_labels(labels_file)
    return Corpus(name=labels.scenario or labels_file, folder=str(Path(labels_file).parent), labels=labels)


def score_replays(corpus: Corpus, pattern_sets: Sequence[str | Path], *, name: str,
                  replay: Callable[[str, str], Iterable[Predicted]]) -> list[Report]:
    """Each pattern set on one range of the live stream: `replay(dataflow, patterns_dir)` replays the range
    into the isolated dataflow `<name>-a` (the second set: `<name>-b`) and returns its predictions."""
    reports = []
    for i, folder in enumerate(pattern_sets):
        fired = [Fired(pattern=p.pattern, scope=p.scope, at=p.since or p.at)
                 for p in replay(f"{name}-{'ab'[i]}", str(Path(folder).resolve()))]
        reports.append(score([(corpus, fired)], pattern_names(folder)))
    return reports


# --- the terminal table ----------------------------------------------------------------------

def _fmt(value: float | int | None, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "ratio":
        return f"{value:.2f}"
    if kind == "seconds":
        return f"{value:+.0f}s"
    return str(value)


COLUMNS = (("TP", "tp", "int"), ("FP", "fp", "int"), ("FN", "fn", "int"), ("late", "late", "int"),
           ("precision", "precision", "ratio"), ("recall", "recall", "ratio"), ("F1", "f1", "ratio"),
           ("lead time", "median_lead_s", "seconds"), ("to root cause", "median_root_cause_s", "seconds"))


def table_rows(report: Report, other: Report | None = None) -> list[list[tuple[str, bool]]]:
    """Rows of (cell text, differs from the other set) for every pattern, then the total."""
    names = sorted(set(report.patterns) | set(other.patterns if other else ()))
    rows = []
    for name in [*names, "(all)"]:
        mine = report.total() if name == "(all)" else report.patterns.get(name, PatternScore(pattern=name))
        theirs = None if other is None else (
            other.total() if name == "(all)" else other.patterns.get(name, PatternScore(pattern=name)))
        row = [(name, False)]
        for _, attr, kind in COLUMNS:
            a = _fmt(getattr(mine, attr), kind)
            if theirs is None:
                row.append((a, False))
            else:
                b = _fmt(getattr(theirs, attr), kind)
                row.append((a if a == b else f"{a} -> {b}", a != b))
        rows.append(row)
    return rows
