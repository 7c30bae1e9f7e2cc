"""`tapio analyze`: ranking rules (pure), the bundled incident in-process, and the same answer
through the real isolated dataflow."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from agents.pattern_files import catalog_files
from app.analyze import Analysis, analyze, analyze_dataflow, render
from app.hypotheses import Evidence, RootCause, is_ongoing, last_failures, rank, verdict
from app.stack import EmbeddedStack
from core.events import K8sContext, SemanticContext, UnifiedEvent

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 11, 20, 10, tzinfo=UTC)


def cause(pattern: str, score: float, *, ongoing: bool, minute: int = 0) -> RootCause:
    return RootCause(rank=0, pattern=pattern, scope="cluster", confidence=score, score=score, message=pattern,
                     remediation="", at=T0 + timedelta(minutes=minute), ongoing=ongoing, chain=[], affected=[],
                     evidence=[])


def test_an_early_failure_that_resolved_ranks_below_the_ongoing_one() -> None:
    ranked = rank([cause("red-herring", 0.9, ongoing=False), cause("real", 0.6, ongoing=True, minute=30),
                   cause("echo", 0.6, ongoing=True, minute=31)])
    assert [(c.rank, c.pattern) for c in ranked] == [(1, "real"), (2, "echo"), (3, "red-herring")]


def test_ongoing_means_a_resource_still_failed_near_the_end() -> None:
    def ev(minute: int, name: str, severity: str) -> UnifiedEvent:
        return UnifiedEvent(id=f"{name}{minute}", timestamp=T0 + timedelta(minutes=minute), type="kubeapi",
                            source="t", semantic=SemanticContext(intent="x", category="x", narrative="x",
                                                                 severity=severity),
                            k8s=K8sContext(kind="Pod", name=name, namespace="shop"))
    last, newest = last_failures([ev(0, "early", "warning"), ev(1, "early", "info"), ev(40, "late", "error"),
                                  ev(42, "late", "info")])
    assert newest == T0 + timedelta(minutes=42)
    assert not is_ongoing(["Pod/shop/early"], last, newest)  # failed at 0, fine for 42 minutes
    assert is_ongoing(["Pod/shop/late"], last, newest)
    assert is_ongoing(["Pod/shop/unknown"], last, newest)  # nothing says it recovered


def test_failures_that_all_recovered_are_no_ongoing_incident() -> None:
    text = verdict(rank([cause("volume-mount-failure", 0.9, ongoing=False)]), 813)
    assert text.startswith("no ongoing incident: 1 failure(s)") and "volume-mount-failure" in text


def test_no_prediction_means_no_incident() -> None:
    text = verdict([], 57)
    assert text.startswith("no incident found") and "57 events" in text
    lines = render(Analysis(inputs=["x"], events=57, errors=["x.json: items[3]: bad"], hypotheses=[], verdict=text))
    assert lines[0] == text and lines[-1] == "could not read: x.json: items[3]: bad"


def test_the_bundled_incident_names_the_configmap_edit_first() -> None:
    result = analyze([str(ROOT / "patterns" / "scenarios" / "configmap-crashloop")])
    assert result.events == 105 and result.errors == []
    top = result.hypotheses[0]
    assert (top.rank, top.pattern, top.scope, top.ongoing) == (
        1, "config-drift", "configmap:ConfigMap/shop/nginx-config", True)
    assert top.chain[0] == "ConfigMap shop/nginx-config was modified"
    first: Evidence = top.evidence[0]
    assert first.source.endswith("configmap-watch.json#line 35 (watch event 2)")
    # the probe and liveness patterns and the pods' own diagnosis are links of its chain, not rivals
    assert {"config-drift", "liveness-death-spiral", "probe-failure"} <= set(top.patterns)
    assert any(line.startswith("Pod/shop/nginx-") for line in top.chain)
    assert result.verdict.startswith("most likely: config-drift")


#: the bundled incident and one labelled diagnosis case per family, in the formats they come in
THROUGH_THE_DATAFLOW = ["configmap-crashloop"] + [f"diagnosis/{case}" for case in (
    "containers/oom-killed", "scheduling/insufficient-gpu", "probes/readiness-probe-failure", "images/image-not-found",
    "volumes/missing-configmap", "jobs/job-backoff-limit", "nodes/node-disk-pressure", "workloads/bad-rollout",
    "network/networkpolicy-denies-egress", "alerts/kube-pod-crashlooping")]


@pytest.mark.parametrize("case", THROUGH_THE_DATAFLOW)
async def test_the_dataflow_gives_the_answer_the_process_gives(embedded: EmbeddedStack, case: str) -> None:
    """The same input through an isolated dataflow on real servers: the same hypotheses, in the same order."""
    paths = [str(ROOT / "patterns" / "scenarios" / case)]
    here, there = analyze(paths), await analyze_dataflow(embedded.settings(), paths)
    assert there.graph and (there.events, there.errors) == (here.events, here.errors)
    assert [(h.pattern, h.scope, h.ongoing, h.patterns, h.confidence) for h in there.hypotheses] == \
        [(h.pattern, h.scope, h.ongoing, h.patterns, h.confidence) for h in here.hypotheses]
    assert [h.chain for h in there.hypotheses] == [h.chain for h in here.hypotheses]


@pytest.mark.timeout(240)
async def test_the_same_input_through_the_dataflow_twice_gives_the_same_answer(embedded: EmbeddedStack,
                                                                               tmp_path: Path) -> None:
    """A second run finds its events already in its stream (JetStream drops them as duplicates): it once
    waited for the end-of-input marker, dropped as a duplicate of the first run's, until its timeout.
    After a pattern edit the input goes through a dataflow of its own (the first one's windows have
    matched already: it would tell what the old catalog said)."""
    paths = [str(ROOT / "patterns" / "scenarios" / "diagnosis" / "containers" / "oom-killed")]
    first = await analyze_dataflow(embedded.settings(), paths)
    again = await analyze_dataflow(embedded.settings(), paths)
    assert again.graph == first.graph and again.events == first.events
    told = [(h.pattern, h.scope, h.confidence, h.chain) for h in first.hypotheses]
    assert [(h.pattern, h.scope, h.confidence, h.chain) for h in again.hypotheses] == told
    edited = tmp_path / "patterns"
    edited.mkdir()
    for file in catalog_files(ROOT / "patterns"):
        (edited / file.name).write_text(file.read_text() + ("# edited\n" if file.name == "oom-kill-loop.yaml" else ""))
    live = embedded.settings()
    after_edit = await analyze_dataflow(
        msgspec.structs.replace(live, match=msgspec.structs.replace(live.match, patterns_dir=str(edited))), paths)
    assert after_edit.graph != first.graph
    assert [(h.pattern, h.scope, h.confidence, h.chain) for h in after_edit.hypotheses] == told
