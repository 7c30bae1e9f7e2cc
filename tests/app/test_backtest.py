"""Backtesting: scoring rules, the labelled scenario suite as the default corpus, and --compare."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from app.backtest import (
    Corpus,
    Fired,
    Incident,
    LabelError,
    Labels,
    RootCause,
    find_corpora,
    read_labels,
    run_recordings,
    score,
)
from app.cli import cli

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "patterns" / "scenarios"
T0 = datetime(2026, 11, 20, 10, tzinfo=UTC)


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_scoring_rules() -> None:
    labels = Labels(incidents=[
        Incident(pattern="a", scope="node:n1", failure_at=at(100), due_by=at(60),
                 root_cause=RootCause(kind="Pod", name="p", at=at(0))),
        Incident(pattern="b", scope="cluster", failure_at=at(100), due_by=at(60)),
        Incident(pattern="c", scope="cluster", failure_at=at(100), due_by=at(60)),
    ])
    corpus = Corpus(name="one", folder=".", labels=labels)
    fired = [Fired(pattern="a", scope="node:n1", at=at(50)), Fired(pattern="a", scope="node:n1", at=at(400)),
             Fired(pattern="b", scope="cluster", at=at(80)),  # found, but after due_by
             Fired(pattern="a", scope="node:n2", at=at(10)), Fired(pattern="a", scope="node:n2", at=at(20))]
    report = score([(corpus, fired)], patterns=["a", "b", "c", "d"])
    a, b, c, d = (report.patterns[n] for n in "abcd")
    assert (a.tp, a.fp, a.fn, a.lead_times_s, a.root_cause_s) == (1, 1, 0, [50.0], [50.0])  # refires count once
    assert (b.tp, b.late, b.fn) == (1, 1, 0) and c.fn == 1 and (d.tp, d.fp, d.fn) == (0, 0, 0)
    assert a.precision == 0.5 and a.recall == 1.0 and round(a.f1, 3) == 0.667 and d.precision is None
    total = report.total()
    assert (total.tp, total.fp, total.fn, total.late) == (2, 1, 1, 1)
    assert sorted(f.outcome for f in report.findings) == ["fn", "fp", "late", "tp"]


def test_a_bad_labels_file_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "labels.yaml").write_text("incidents:\n  - pattern: x\n    scope: cluster\n")
    with pytest.raises(LabelError, match=r"labels.yaml: .*failure_at"):
        read_labels(tmp_path / "labels.yaml")


def test_the_scenario_suite_scores_exactly_what_its_labels_say() -> None:
    corpora = find_corpora([SCENARIOS])
    assert len(corpora) == 54  # 28 patterns, a positive and a near miss each (dns-failure-service-outage and
    # kernel-oom-service-degraded share their story's); probe-failure's one-pod case too
    expected = Counter(i.pattern for c in corpora for i in c.labels.incidents)
    results, errors = run_recordings(corpora, ROOT / "patterns")
    assert errors == []
    report = score(results)
    assert {n: (s.tp, s.fp, s.fn, s.late) for n, s in report.patterns.items()} == {
        n: (count, 0, 0, 0) for n, count in expected.items()}
    assert report.total().tp == sum(expected.values()) == 38


def test_compare_shows_a_loosened_threshold_as_false_positives(tmp_path: Path) -> None:
    loose = tmp_path / "loose"
    shutil.copytree(ROOT / "patterns", loose, ignore=shutil.ignore_patterns("scenarios"))
    pattern = loose / "volume-mount-failure.yaml"
    doc = yaml.safe_load(pattern.read_text())
    doc["spec"]["conditions"][0]["at_least"] = 1  # one FailedMount is enough: the near miss fires
    pattern.write_text(yaml.safe_dump(doc))
    result = CliRunner().invoke(cli, ["backtest", "--patterns", str(ROOT / "patterns"), "--compare", str(loose),
                                      "-o", "json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    shipped = {row["pattern"]: row for row in out["report"]["patterns"]}
    loosened = {row["pattern"]: row for row in out["compare_report"]["patterns"]}
    assert shipped["volume-mount-failure"]["fp"] == 0 and loosened["volume-mount-failure"]["fp"] > 0
    assert out["compare_report"]["overall"]["precision"] < out["report"]["overall"]["precision"] == 1.0
    assert all(loosened[n]["tp"] == shipped[n]["tp"] for n in shipped)  # recall is unchanged
    table = CliRunner().invoke(cli, ["backtest", "--patterns", str(ROOT / "patterns"), "--compare", str(loose)])
    assert "0 -> " in table.output and "volume-mount-failure" in table.output
