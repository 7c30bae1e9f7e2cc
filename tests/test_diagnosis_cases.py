"""Every labelled diagnosis case: `tapio analyze` (in-process, without the capture time) names the
root cause first, and says nothing is wrong for its healthy twin.

The cases (`patterns/scenarios/diagnosis/<family>/<case>/`) are what users save from a failing
cluster: kubectl describe of new and old versions, events tables with ages only, object lists,
container logs, support bundles, Alertmanager payloads, and files that are not Kubernetes data.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from app.analyze import analyze
from app.diagnosis_backtest import find_cases, inputs_of, judge, per_family, run_cases

ROOT = Path(__file__).resolve().parents[1]
CASES = find_cases([ROOT / "patterns" / "scenarios" / "diagnosis"])
#: recorded on the real cluster (real-k8s-1.20/) and not named first today: the case and why
NOT_NAMED_YET: dict[str, str] = {}


def _params():  # type: ignore[no-untyped-def]
    return [pytest.param(c, id=c.labels.case, marks=pytest.mark.xfail(strict=True, reason=NOT_NAMED_YET[c.labels.case]))
            if c.labels.case in NOT_NAMED_YET else pytest.param(c, id=c.labels.case) for c in CASES]


def test_the_corpus_covers_every_family_with_healthy_twins() -> None:
    families = {c.labels.family for c in CASES}
    assert {"containers", "scheduling", "probes", "images", "volumes", "jobs", "nodes", "workloads",
            "network"} <= families
    incidents = {c.labels.case for c in CASES if c.labels.incident}
    assert len(incidents) >= 40
    assert {f"{case}-healthy" for case in incidents} <= {c.labels.case for c in CASES if not c.labels.incident}


@pytest.mark.parametrize("case", _params())
def test_the_root_cause_is_named_first_and_a_healthy_twin_is_quiet(case) -> None:  # type: ignore[no-untyped-def]
    result = analyze(inputs_of(case))
    passed, why = judge(case.labels, result.hypotheses)
    assert passed, why
    assert result.errors == [], result.errors  # every file is read (or skipped with a note)
    if case.labels.incident:
        top = result.hypotheses[0]
        assert top.evidence and top.remediation and top.chain
        assert all(ev.source.startswith(case.folder) for ev in top.evidence), [ev.source for ev in top.evidence]


def test_per_family_scores_count_what_was_named_and_what_stayed_quiet() -> None:
    chosen = [c for c in CASES if c.labels.family == "images"]
    scores = per_family(run_cases(chosen))
    images, total = scores[0], scores[-1]
    assert (images.family, total.family) == ("images", "(all)")
    assert images.incidents == images.named_first == sum(c.labels.incident for c in chosen)
    assert images.healthy == images.quiet == sum(not c.labels.incident for c in chosen)
