"""How diagnoses and pattern matches become one ranked list (app.hypotheses), pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from agents.diagnosis import Diagnosis, ObjectKey
from app.hypotheses import RootCause, combine, diagnoses_lead, incidents
from topology.predictions import (
    EvidenceEvent,
    Hypothesis,
    ImpactedResource,
    StoredPrediction,
    reaches_back_to_a_change,
    story,
)

T0 = datetime(2026, 11, 30, 14, tzinfo=UTC)
POD = ObjectKey("Pod", "shop", "web-0")


def diagnosis(cause: str, *, confidence: float = 0.8, ongoing: bool = True, subject: ObjectKey = POD,
              minute: int = 0) -> Diagnosis:
    return Diagnosis(family="containers", cause=cause, subject=subject, message=f"{subject}: {cause}",
                     confidence=confidence, remediation="fix it", at=T0 + timedelta(minutes=minute), ongoing=ongoing,
                     chain=[f"{subject}: {cause}"])


def pattern(name: str, *, affected: list[str], confidence: float = 0.7, ongoing: bool = True) -> RootCause:
    return RootCause(rank=0, pattern=name, scope="owner:Deployment/shop/web", confidence=confidence,
                     score=confidence * 1.4, message=f"{name} matched", remediation="", at=T0, ongoing=ongoing,
                     chain=[f"{name} chain"], affected=affected, evidence=[], patterns=[name])


def test_a_pattern_about_the_same_pod_joins_its_diagnosis_instead_of_competing() -> None:
    [one] = combine([diagnosis("oom-killed")], [(pattern("oom-kill-loop", affected=["Pod/shop/web-0"]), False)])
    assert (one.pattern, one.family, one.patterns) == ("oom-killed", "containers", ["oom-kill-loop"])
    assert one.chain[-1].startswith("pattern oom-kill-loop matched")


def test_a_pattern_that_starts_with_a_change_leads_and_the_diagnosis_is_its_last_link() -> None:
    [one] = combine([diagnosis("app-error-exit", confidence=0.6)],
                    [(pattern("config-drift", affected=["ConfigMap/shop/cfg", "Pod/shop/web-0"]), True)])
    assert (one.pattern, one.scope, one.causes) == ("config-drift", "owner:Deployment/shop/web", ["app-error-exit"])
    assert one.chain == ["config-drift chain", "Pod/shop/web-0: app-error-exit"] and one.confidence == 0.7


def test_unrelated_hypotheses_rank_ongoing_first_then_by_strength() -> None:
    other = ObjectKey("Pod", "shop", "api-0")
    ranked = combine([diagnosis("image-not-found", confidence=0.9, ongoing=False, subject=other),
                      diagnosis("missing-env-var", confidence=0.85, minute=5)],
                     [(pattern("dns-black-hole", affected=["Pod/kube-system/coredns-0"], confidence=0.75), False)])
    assert [(h.rank, h.pattern) for h in ranked] == [(1, "missing-env-var"), (2, "dns-black-hole"),
                                                     (3, "image-not-found")]


def test_a_diagnosis_below_the_incident_line_is_not_shown_unless_a_pattern_agrees() -> None:
    shaky = diagnosis("crash-loop", confidence=0.45)
    assert incidents(combine([shaky], [])) == []
    [agreed] = incidents(combine([shaky], [(pattern("liveness-death-spiral", affected=["Pod/shop/web-0"]), False)]))
    assert agreed.patterns == ["liveness-death-spiral"]


def stored(pattern_name: str, *, score: float, pods: list[str], minute: int = 0,
           resolved: bool = False) -> Hypothesis:
    at = T0 + timedelta(minutes=minute)
    return Hypothesis(prediction=StoredPrediction(
        id=f"{pattern_name}@{minute}", match_id=f"m-{pattern_name}", pattern=pattern_name, score=score, at=at, due=at,
        resolved_at=at + timedelta(minutes=1) if resolved else None,
        impacted=[ImpactedResource(kind="Pod", namespace="shop", name=p, key=f"uid-{p}") for p in pods]),
        via=["impacts"])


def test_explain_puts_the_diagnosis_of_the_same_pod_before_a_pattern_that_counts_its_symptoms() -> None:
    # unschedulable-pod (priority 70) outscores the pod's node-selector-mismatch diagnosis: it says
    # "no node matches their selector or affinity", the diagnosis names the selector
    counting = stored("unschedulable-pod", score=1.02, pods=["web-0"])
    other = stored("dns-black-hole", score=1.2, pods=["api-0"])
    diag = stored("diagnosis/scheduling", score=0.85, pods=["web-0"])
    old = stored("diagnosis/containers", score=0.9, pods=["web-0"], resolved=True)
    ranked = diagnoses_lead([other, counting, old, diag], set(), diagnosis_prefix="diagnosis/")
    assert [h.prediction.pattern for h in ranked] == ["dns-black-hole", "diagnosis/scheduling", "unschedulable-pod",
                                                      "diagnosis/containers"]


def test_explain_keeps_a_pattern_that_reaches_back_to_a_change_ahead_of_the_diagnosis() -> None:
    rollout = stored("bad-rollout", score=1.1, pods=["web-0"])
    diag = stored("diagnosis/containers", score=0.85, pods=["web-0"])
    ranked = diagnoses_lead([rollout, diag], {rollout.prediction.id}, diagnosis_prefix="diagnosis/")
    assert [h.prediction.pattern for h in ranked] == ["bad-rollout", "diagnosis/containers"]


def test_a_match_reaches_back_to_a_change_when_a_change_causes_one_of_its_events() -> None:
    edit = EvidenceEvent(id="e1", at=T0, text="ConfigMap cfg edited", intent="config-change")
    crash = EvidenceEvent(id="e2", at=T0, text="web-0 BackOff", intent="crash")
    assert reaches_back_to_a_change(story([edit, crash], [("e1", "e2")]))
    assert not reaches_back_to_a_change(story([edit, crash], []))  # an edit beside the crashes, not linked
    assert not reaches_back_to_a_change(story([crash, edit], [("e2", "e1")]))


def test_the_story_starts_at_the_root_cause_whatever_the_ids() -> None:
    # ids are content hashes: the chain once started at the smallest cause id, here the pod's BackOff
    # in the middle of edit -> crash -> endpoints, and never named the edit
    edit = EvidenceEvent(id="f9", at=T0, text="ConfigMap cfg edited", intent="config-change")
    crash = EvidenceEvent(id="a1", at=T0 + timedelta(seconds=30), text="web-0 BackOff", intent="crash")
    crash2 = EvidenceEvent(id="c3", at=T0 + timedelta(seconds=20), text="web-1 BackOff", intent="crash")
    gone = EvidenceEvent(id="b2", at=T0 + timedelta(seconds=40), text="Endpoints web: 0 ready")
    told_chain = story([edit, crash2, crash, gone], [("a1", "b2"), ("f9", "a1"), ("f9", "c3")]).chain
    assert told_chain == ["ConfigMap cfg edited", "web-1 BackOff", "web-0 BackOff", "Endpoints web: 0 ready"]
    # where every cause is also caused (a loop), the oldest cause leads
    assert story([edit, crash], [("a1", "f9"), ("f9", "a1")]).chain == ["ConfigMap cfg edited", "web-0 BackOff"]
