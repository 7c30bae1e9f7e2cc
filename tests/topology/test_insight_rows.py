"""Pure tests of topology.insight_rows (matches and predictions -> write rows) and of the
write query's generation: keys, namespaces, grouping, validation, determinism."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from core.events import K8sContext, ObjectRef, SemanticContext, UnifiedEvent
from core.ports import InvalidInsight
from core.records import Link, PatternMatch, Prediction, by_match
from topology import insight_queries
from topology.insight_rows import EventEdgeRow, ImpactRow, chunks, insight_rows, labels_of, prediction_namespace
from topology.rows import event_rows

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
T0_MS = 1_772_366_400_000


def event(eid: str, second: int, k8s: K8sContext | None = None) -> UnifiedEvent:
    return UnifiedEvent(id=eid, timestamp=T0 + timedelta(seconds=second), type="kubeapi", source="test",
                        semantic=SemanticContext(intent="test", category="test", narrative=eid), k8s=k8s)


def match(mid: str = "m1", **changes: object) -> PatternMatch:
    base = PatternMatch(
        id=mid, pattern="config-drift", version="1.2.0", scope="configmap:ConfigMap/shop/cfg",
        matched_at=T0 + timedelta(seconds=30), window_start=T0, event_ids=["e-cfg", "e-pod"],
        evidence=[event("e-cfg", 1, K8sContext(kind="ConfigMap", name="cfg", namespace="shop", uid="u-cfg")),
                  event("e-pod", 20, K8sContext(kind="Pod", name="web-1", namespace="shop"))],
        links=[Link(cause="e-cfg", effect="e-pod", delay_s=19.0)], count=3, boost=0.1, priority=70)
    return msgspec.structs.replace(base, **changes)


def prediction(pid: str = "p1", mid: str = "m1", **changes: object) -> Prediction:
    base = Prediction(
        id=pid, match_id=mid, pattern="config-drift", version="1.2.0", type="crashloop", confidence=0.8,
        time_horizon_s=120.0, message="web-1 will crash-loop", scope="configmap:ConfigMap/shop/cfg",
        at=T0 + timedelta(seconds=30), due=T0 + timedelta(seconds=150), score=0.96, impact=["availability"],
        impacted=[ObjectRef(kind="pod", name="web-1", namespace="shop"),
                  ObjectRef(kind="Node", name="node-a", uid="u-node-a")],
        remediation="roll back the ConfigMap")
    return msgspec.structs.replace(base, **changes)


def test_prediction_namespace_falls_back_to_the_first_impacted_with_one() -> None:
    impacted = [ObjectRef(kind="Node", name="node-a"), ObjectRef(kind="Pod", name="db-0", namespace="data")]
    assert prediction_namespace(prediction(scope="node:node-a", impacted=impacted)) == "data"
    assert prediction_namespace(prediction(scope="namespace:shop", impacted=impacted)) == "shop"
    assert prediction_namespace(prediction(scope="cluster", impacted=impacted[:1])) is None


def test_a_match_and_its_prediction_become_one_group() -> None:
    write = insight_rows([match()], [prediction()])
    assert [e.id for e in write.evidence] == ["e-cfg", "e-pod"]
    (group,) = write.groups
    assert (group.pattern, group.version, group.priority, group.seen_at) == (
        "config-drift", "1.2.0", 70, T0_MS + 30_000)
    assert (group.match_id, group.scope, group.matched_at, group.window_start, group.count, group.boost) == (
        "m1", "configmap:ConfigMap/shop/cfg", T0_MS + 30_000, T0_MS, 3, 0.1)
    assert group.edges == [EventEdgeRow(src="e-cfg"), EventEdgeRow(src="e-cfg", effect="e-pod", delay_s=19.0),
                           EventEdgeRow(src="e-pod")]
    (row,) = group.predictions
    assert (row.at, row.due, row.namespace, row.impact, row.remediation) == (
        T0_MS + 30_000, T0_MS + 150_000, "shop", ["availability"], "roll back the ConfigMap")
    # impacted objects are keyed and labelled as write_events keys an event's object
    assert row.impacts == [ImpactRow(label="Node", uid="u-node-a", kind="Node", name="node-a"),
                           ImpactRow(label="Pod", uid="Pod:shop/web-1", kind="Pod", name="web-1", namespace="shop")]
    pod_event = write.evidence[1]
    assert [r.uid for r in event_rows([pod_event], ingested_at_ms=0).resources["Pod"]] == ["Pod:shop/web-1"]
    assert write.count == 2
    assert labels_of(write.groups) == ("Node", "Pod")


def test_empty_strings_are_not_stored() -> None:
    (group,) = insight_rows([], [prediction(remediation="", message="", impact=[])]).groups
    (row,) = group.predictions
    assert (row.remediation, row.message, row.impact) == (None, None, None)


def test_predictions_without_their_match_form_their_own_group() -> None:
    write = insight_rows([match("m1")], [prediction("p2", "m2", at=T0 + timedelta(seconds=90)),
                                         prediction("p1", "m2"), prediction("p3", "m1")])
    assert [(g.match_id, [p.id for p in g.predictions]) for g in write.groups] == [("m1", ["p3"]), (None, ["p1", "p2"])]
    orphan = write.groups[1]
    assert (orphan.pattern, orphan.priority, orphan.seen_at, orphan.edges) == ("config-drift", None, T0_MS + 90_000, [])
    assert write.count == 4


def test_rows_are_deterministic_and_replays_count_once() -> None:
    matches = [match(f"m{i}") for i in range(5)]
    predictions = [prediction(f"p{i}", f"m{i % 5}") for i in range(10)]
    once = insight_rows(matches, predictions)
    shuffled_m, shuffled_p = matches[:], predictions[:]
    random.Random(4).shuffle(shuffled_m)
    random.Random(5).shuffle(shuffled_p)
    assert insight_rows(shuffled_m + matches, shuffled_p + predictions) == once
    assert once.count == 15
    assert [g.match_id for g in once.groups] == [f"m{i}" for i in range(5)]


def test_by_match_keeps_each_prediction_with_its_match() -> None:
    groups = by_match([match("m2"), match("m1")], [prediction("p1", "m1"), prediction("p9", "gone")])
    assert [(g.match_id, g.match.id if g.match else None, [p.id for p in g.predictions]) for g in groups] == [
        ("gone", None, ["p9"]), ("m1", "m1", ["p1"]), ("m2", "m2", [])]


def test_by_match_keeps_the_newest_version_of_a_diagnosis_whatever_the_order() -> None:
    # A diagnosis is updated in place (same match and prediction ids); the sink's batch may hold two
    # versions from two partitions with the older one last: the kill tests' graph kept "49 failures"
    # while the diagnose stage's state said 50.
    old_m, new_m = match(matched_at=T0 + timedelta(seconds=30)), match(matched_at=T0 + timedelta(seconds=40))
    old_p = prediction(at=T0 + timedelta(seconds=30), message="49 failures")
    new_p = prediction(at=T0 + timedelta(seconds=40), message="50 failures")
    resolved = msgspec.structs.replace(new_p, resolved_at=new_p.at)
    for ms, ps, want in (([new_m, old_m], [new_p, old_p], "50 failures"), ([old_m, new_m], [old_p, new_p], "50 failures")):
        [group] = by_match(ms, ps)
        assert group.match is new_m and [p.message for p in group.predictions] == [want]
    [group] = by_match([new_m], [resolved, new_p])  # of the same moment, the resolution
    assert [p.resolved_at for p in group.predictions] == [new_p.at]
    # of the same moment (a probe's diagnosis keeps its `at` as its count grows), the higher revision
    rev1 = prediction(at=T0, message="47 failures", revision=1)
    rev2 = prediction(at=T0, message="50 failures", revision=2)
    for ps in ([rev2, rev1], [rev1, rev2]):
        [group] = by_match([], ps)
        assert [p.message for p in group.predictions] == ["50 failures"]


@pytest.mark.parametrize("bad, message", [
    (lambda: insight_rows([match(boost=float("nan"))], []), "boost is nan"),
    (lambda: insight_rows([match(count=2**63)], []), "outside the graph's 64-bit integers"),
    (lambda: insight_rows([match(links=[Link(cause="", effect="e-pod", delay_s=1)])], []), "lacks its cause"),
    (lambda: insight_rows([match(links=[Link(cause="a", effect="b", delay_s=float("inf"))])], []), "delay_s is inf"),
    (lambda: insight_rows([match()], [prediction(pattern="other")]), "names pattern 'other'"),
    (lambda: insight_rows([], [prediction("a", "m9"), prediction("b", "m9", pattern="other")]), "two patterns"),
    (lambda: insight_rows([], [prediction(score=float("-inf"))]), "score is -inf"),
    (lambda: insight_rows([], [prediction(impacted=[ObjectRef(kind="", name="x")])]), "neither a uid"),
    (lambda: insight_rows([], [prediction(match_id="")]), "must not be empty"),
    (lambda: insight_rows([match(pattern="")], []), "must not be empty"),
])
def test_values_the_graph_cannot_hold_are_refused(bad, message: str) -> None:
    with pytest.raises(InvalidInsight, match=message):
        bad()


def test_chunks() -> None:
    groups = insight_rows([match(f"m{i}") for i in range(5)], []).groups
    assert [[g.match_id for g in c] for c in chunks(groups, size=2)] == [["m0", "m1"], ["m2", "m3"], ["m4"]]
    with pytest.raises(ValueError, match="at least 1"):
        list(chunks(groups, size=0))


def test_the_write_query_has_a_branch_per_impacted_label_only() -> None:
    q = insight_queries.write_insights(("Node", "Pod"))
    assert q.name == "write_insights:Node,Pod"
    assert "MERGE (r:Pod {uid:" in q.text and "MERGE (r:Node {uid:" in q.text and "ConfigMap" not in q.text
    assert insight_queries.write_insights(()).name == "write_insights:-"
    assert "IMPACTS" not in insight_queries.write_insights(()).text
    assert insight_queries.write_insights(("Pod",)) is insight_queries.write_insights(("Pod",))
    with pytest.raises(ValueError, match="unknown labels"):
        insight_queries.write_insights(("Pod) DETACH DELETE (x",))
