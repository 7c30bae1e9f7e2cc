"""The diagnosis corpus scored per family: is the root cause named first, and is a healthy twin quiet?

Fed by: labelled cases (`patterns/scenarios/diagnosis/<family>/<case>/labels.yaml` and the files
beside it: describe output, events tables, object lists, logs, bundles, as users save them).
Feeds: `tapio backtest` (a table per family after the patterns' table) and the tests.

A case is named first when the top hypothesis of `tapio analyze` (in-process, without the capture
time) is ongoing, is about the labelled object (or explains it: a member, the object behind it,
its workload), names the labelled cause (or the pattern of the same name) and says every labelled
mention. A healthy twin passes when nothing reaches the incident line.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import msgspec
import yaml

from app.hypotheses import RootCause

LABELS_FILE = "labels.yaml"


class RootCauseLabel(msgspec.Struct, frozen=True, kw_only=True):
    object: str  # Kind/namespace/name
    cause: str
    mentions: list[str] = []
    caused_by: str = ""


class CaseLabels(msgspec.Struct, frozen=True, kw_only=True):
    case: str
    family: str
    formats: list[str] = []
    incident: bool
    root_cause: RootCauseLabel | None = None
    capture_time: str = ""


class Case(msgspec.Struct, frozen=True, kw_only=True):
    folder: str
    labels: CaseLabels


class CaseResult(msgspec.Struct, frozen=True, kw_only=True):
    case: str
    family: str
    incident: bool
    passed: bool
    why: str = ""


class FamilyScore(msgspec.Struct, kw_only=True):
    family: str
    incidents: int = 0
    named_first: int = 0
    healthy: int = 0
    quiet: int = 0  # healthy twins with no incident reported


def is_case(labels_file: Path) -> bool:
    """A diagnosis case's labels (`family:`), not a pattern scenario's (`incidents:`)."""
    try:
        data = yaml.safe_load(labels_file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(data, dict) and "family" in data and "case" in data


def find_cases(paths: Iterable[str | Path]) -> list[Case]:
    found = []
    for path in map(Path, paths):
        files = [path] if path.name == LABELS_FILE else sorted(path.rglob(LABELS_FILE)) if path.is_dir() else []
        for file in files:
            if is_case(file):
                labels = msgspec.convert(yaml.safe_load(file.read_text(encoding="utf-8")), CaseLabels)
                found.append(Case(folder=str(file.parent), labels=labels))
    return found


def inputs_of(case: Case) -> list[str]:
    return [str(p) for p in sorted(Path(case.folder).iterdir()) if p.name not in (LABELS_FILE, "README.md")]


def _same(key: str, label: str) -> bool:
    """`Kind/ns/name` equals the label, or names the same kind and name where the input gave no namespace."""
    if key == label:
        return True
    kind, _, rest = label.partition("/")
    parts = key.split("/")
    return len(parts) == 2 and parts[0] == kind and parts[1] == rest.rsplit("/", 1)[-1]


def judge(labels: CaseLabels, hypotheses: list[RootCause]) -> tuple[bool, str]:
    """(passed, why) for one case's ranked hypotheses."""
    ongoing = [h for h in hypotheses if h.ongoing]
    if not labels.incident:
        return (not ongoing, "" if not ongoing else f"false incident: [{ongoing[0].pattern}] {ongoing[0].message}")
    if not ongoing or labels.root_cause is None:
        return False, "no incident found"
    top, label = ongoing[0], labels.root_cause
    about = _same(top.scope, label.object) or any(_same(a, label.object) for a in top.affected) \
        or (bool(label.caused_by) and any(_same(a, label.caused_by) for a in top.affected))
    cause = label.cause in (top.pattern, *top.patterns, *top.causes) \
        or label.cause.replace("-", " ") in top.message.lower() \
        or (label.cause == "bad-rollout" and "rollout" in top.message)
    text = " ".join([top.message, *top.chain]).lower()
    missing = [m for m in label.mentions if m.lower() not in text]
    passed = about and cause and not missing
    why = "" if passed else (f"top [{top.pattern}] {top.scope}: about the object {about}, cause {cause}, "
                             f"missing {missing}: {top.message}")
    return passed, why


def run_cases(cases: list[Case], *, patterns_dir: str | None = None) -> list[CaseResult]:
    from app.analyze import analyze

    out = []
    for case in cases:
        result = analyze(inputs_of(case), patterns_dir=patterns_dir)
        passed, why = judge(case.labels, result.hypotheses)
        out.append(CaseResult(case=case.labels.case, family=case.labels.family, incident=case.labels.incident,
                              passed=passed, why=why))
    return out


def per_family(results: list[CaseResult]) -> list[FamilyScore]:
    scores: dict[str, FamilyScore] = {}
    for r in results:
        s = scores.setdefault(r.family, FamilyScore(family=r.family))
        if r.incident:
            s.incidents += 1
            s.named_first += r.passed
        else:
            s.healthy += 1
            s.quiet += r.passed
    total = FamilyScore(family="(all)", incidents=sum(s.incidents for s in scores.values()),
                        named_first=sum(s.named_first for s in scores.values()),
                        healthy=sum(s.healthy for s in scores.values()), quiet=sum(s.quiet for s in scores.values()))
    return [scores[k] for k in sorted(scores)] + [total]
