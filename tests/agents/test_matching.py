"""The matcher's pure parts: scope keys, counting, sequences, event time, quiet periods, hot reload.

No servers: these run the same functions the match and windows agents run (agents/match.py is
only their Faust shell); tests/test_patterns_e2e.py runs them inside the real dataflow.
"""

from __future__ import annotations

import random
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from agents.catalog import Catalog
from agents.hits import Selector, compile_pattern
from agents.pattern_files import load_pattern
from agents.predict import predictions_for
from agents.windows import MAX_ENTRIES, WindowState, add_hits, advance, decode_state, encode_state
from core.events import K8sContext, KubernetesData, ObjectRef, SemanticContext, UnifiedEvent, content_id, epoch_ms

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
END = 2**62


def ev(sec: float, intent: str, *, kind: str = "Pod", name: str = "web-1", ns: str = "shop", node: str = "",
       action: str = "EVENT", reason: str = "", count: int = 1, message: str = "", refs: list[str] | None = None,
       owner: ObjectRef | None = None, labels: dict[str, str] | None = None, content_hash: str = "",
       selector: dict[str, str] | None = None, metrics: dict[str, float] | None = None) -> UnifiedEvent:
    when = T0 + timedelta(seconds=sec)
    return UnifiedEvent(
        id=content_id(str(sec), intent, kind, name, ns, action, reason, str(count), message, content_hash),
        timestamp=when, type="kubeapi", source="test",
        semantic=SemanticContext(intent=intent, category="test", narrative=f"{kind} {name} {intent}"),
        k8s=K8sContext(kind=kind, name=name, namespace=ns, node=node, refs=refs or [], owner=owner,
                       labels=labels or {}, selector=selector or {}),
        kubernetes=KubernetesData(action=action, reason=reason, count=count, message=message,
                                  content_hash=content_hash),
        metrics=metrics or {})


def pattern_file(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def run(events: list[UnifiedEvent], patterns: list, *, store: dict | None = None,
        watermark_every: int = 0) -> list:
    """Hits -> states -> advance; with watermark_every, advance as the stream goes (newest - 10 s)."""
    store = {} if store is None else store
    compiled = {p.name: p for p in patterns}
    selector = Selector(patterns)
    states: dict[tuple[str, str], WindowState] = {}
    matches = []
    newest = 0
    for i, event in enumerate(events):
        for hit in selector.hits(event, store):
            add_hits(states.setdefault((hit.pattern, hit.key), WindowState()), [hit])
        newest = max(newest, epoch_ms(event.timestamp))
        if watermark_every and i % watermark_every == 0:
            for (name, key), state in states.items():
                matches += advance(compiled[name], key, state, newest - 10_000)
    for (name, key), state in states.items():
        matches += advance(compiled[name], key, state, END)
    return sorted(matches, key=lambda m: (m.matched_at, m.scope))


OOM = """\
    apiVersion: behavior.tapio.io/v1
    kind: BehaviorPattern
    metadata: {name: oom, version: 1.0.0}
    spec:
      scope: node
      conditions:
        - type: count
          where: [{field: semantic.intent, operator: equals, value: oom-kill}]
          distinct: k8s.name
          at_least: 3
          window: 5m
        - type: count
          where: [{field: semantic.intent, operator: equals, value: resource-pressure}]
          at_least: 1
          required: false
          boost: 0.1
      predictions:
        - type: cascading_failure
          confidence_base: 0.7
          time_horizon: 10m
          message: "{count} pods OOM-killed on {scope}"
          remediation: "look at {scope}"
"""


def test_distinct_count_per_node_across_namespaces(tmp_path: Path) -> None:
    oom = compile_pattern(load_pattern(pattern_file(tmp_path, OOM)))
    events = [ev(0, "oom-kill", name="a", ns="shop", node="n1"), ev(60, "oom-kill", name="b", ns="batch", node="n1"),
              ev(90, "oom-kill", name="a", ns="shop", node="n1", message="again"),  # same pod again: still 2 distinct
              ev(100, "oom-kill", name="x", ns="shop", node="n2"),
              ev(120, "oom-kill", name="c", ns="web", node="n1")]
    [match] = run(events, [oom])
    assert match.scope == "node:n1" and match.count == 3 and match.matched_at == T0 + timedelta(seconds=120)
    assert len(match.evidence) == 4 and match.boost == 0.0
    [prediction] = predictions_for(match, oom.pattern)
    assert prediction.message == "3 pods OOM-killed on n1" and prediction.remediation == "look at n1"
    assert prediction.confidence == 0.7 and prediction.due == match.matched_at + timedelta(minutes=10)
    assert {r.name for r in prediction.impacted} == {"a", "b", "c"}


def test_distinct_by_a_scope_counts_workloads_not_pods(tmp_path: Path) -> None:
    """`distinct: owner`: three retries of one Job killed on one node are one workload; pods of
    three workloads (a bare pod is its own) are three."""
    oom = compile_pattern(load_pattern(pattern_file(tmp_path, OOM.replace("distinct: k8s.name", "distinct: owner"))))
    job = ObjectRef(kind="Job", name="backfill", namespace="ml")
    observed = [ev(-10, "observed", name=f"backfill-{i}", ns="ml", node="n1", action="SNAPSHOT", owner=job)
                for i in range(3)]
    retries = [ev(10 * i, "oom-kill", name=f"backfill-{i}", ns="ml", node="n1") for i in range(3)]
    assert run(observed + retries, [oom]) == []
    others = [ev(40, "oom-kill", name="web-1", ns="shop", node="n1"),
              ev(50, "oom-kill", name="debug", ns="shop", node="n1")]  # never observed: its own workload
    [match] = run(observed + retries + others, [oom])
    assert match.scope == "node:n1" and match.count == 3 and match.matched_at == T0 + timedelta(seconds=50)


def test_below_threshold_or_outside_the_window_is_silent(tmp_path: Path) -> None:
    oom = compile_pattern(load_pattern(pattern_file(tmp_path, OOM)))
    spread = [ev(0, "oom-kill", name="a", node="n1"), ev(200, "oom-kill", name="b", node="n1"),
              ev(301, "oom-kill", name="c", node="n1")]  # a is 301 s before c: outside (t - 5m, t]
    assert run(spread, [oom]) == []
    assert run(spread[:2], [oom]) == []


def test_optional_condition_boosts_confidence(tmp_path: Path) -> None:
    oom = compile_pattern(load_pattern(pattern_file(tmp_path, OOM)))
    events = [ev(0, "resource-pressure", kind="Node", name="n1", ns=""),
              *(ev(10 + i, "oom-kill", name=f"p{i}", node="n1") for i in range(3))]
    [match] = run(events, [oom])
    assert match.boost == 0.1
    assert predictions_for(match, oom.pattern)[0].confidence == 0.8


def test_matches_do_not_depend_on_arrival_order_or_watermark_pace(tmp_path: Path) -> None:
    oom = compile_pattern(load_pattern(pattern_file(tmp_path, OOM)))
    events = [ev(i * 7, "oom-kill", name=f"p{i % 5}", node=f"n{i % 2}", message=f"#{i}") for i in range(200)]
    in_order = run(events, [oom])
    assert len(in_order) >= 4
    shuffled = events[:]
    random.Random(7).shuffle(shuffled)
    assert [m.id for m in run(shuffled, [oom])] == [m.id for m in in_order]
    paced = run(events, [oom], watermark_every=3)
    assert [(m.id, m.count, m.event_ids) for m in paced] == [(m.id, m.count, m.event_ids) for m in in_order]


def test_one_match_per_scope_per_window_then_again(tmp_path: Path) -> None:
    oom = compile_pattern(load_pattern(pattern_file(tmp_path, OOM)))
    burst = [ev(s, "oom-kill", name=f"p{i}", node="n1") for i, s in enumerate((0, 10, 20, 30, 40, 50))]
    later = [ev(400 + s, "oom-kill", name=f"q{i}", node="n1") for i, s in enumerate((0, 10, 20))]
    matches = run(burst + later, [oom])
    assert [m.matched_at - T0 for m in matches] == [timedelta(seconds=20), timedelta(seconds=420)]
    assert len({m.id for m in matches}) == 2


def test_an_incident_that_goes_on_updates_its_prediction_instead_of_a_new_one_each_window(tmp_path: Path) -> None:
    """One ongoing incident (a pod OOM-killed every 30 s for 16 minutes) holds again after each quiet
    period: its matches keep the episode's id, so its predictions are updated in place (the graph and
    the offline runner keep the newest); after a silence longer than a window, a new episode."""
    from agents.offline import newest_versions

    oom = compile_pattern(load_pattern(pattern_file(tmp_path, OOM)))
    ongoing = [ev(s, "oom-kill", name=f"p{i}", node="n1") for i, s in enumerate(range(0, 960, 30))]
    again = [ev(1400 + s, "oom-kill", name=f"q{i}", node="n1") for i, s in enumerate((0, 10, 20))]
    for watermark_every in (0, 4):  # however the watermark moves
        matches = run(ongoing + again, [oom], watermark_every=watermark_every)
        assert [int((m.matched_at - T0).total_seconds()) for m in matches] == [60, 360, 660, 1420]
        assert len({m.id for m in matches[:3]}) == 1 and matches[3].id != matches[0].id
        predictions = newest_versions(p for m in matches for p in predictions_for(m, oom.pattern))
        assert [(p.match_id, int((p.at - T0).total_seconds())) for p in predictions] == [
            (matches[0].id, 660), (matches[3].id, 1420)]


def test_late_hits_are_dropped_not_rematched(tmp_path: Path) -> None:
    oom = compile_pattern(load_pattern(pattern_file(tmp_path, OOM)))
    selector = Selector([oom])
    state = WindowState()
    for e in (ev(0, "oom-kill", name="a", node="n1"), ev(10, "oom-kill", name="b", node="n1")):
        add_hits(state, selector.hits(e, {}))
    assert advance(oom, "node:n1", state, epoch_ms(T0) + 60_000) == []
    assert add_hits(state, selector.hits(ev(30, "oom-kill", name="c", node="n1"), {})) == 1
    assert advance(oom, "node:n1", state, END) == []


REPEATS = """\
    apiVersion: behavior.tapio.io/v1
    kind: BehaviorPattern
    metadata: {name: backoff, version: 1.0.0}
    spec:
      scope: object
      conditions:
        - type: count
          where: [{field: semantic.intent, operator: equals, value: crash-loop}]
          at_least: 5
          window: 5m
      predictions:
        - {type: crash, confidence_base: 0.5, time_horizon: 5m, message: "{name} x{count}"}
"""


def test_repeated_events_count_occurrences_not_observations(tmp_path: Path) -> None:
    backoff = compile_pattern(load_pattern(pattern_file(tmp_path, REPEATS)))
    msg = "Back-off restarting failed container"
    watched = [ev(i * 20, "crash-loop", reason="BackOff", count=i + 1, message=msg) for i in range(6)]
    [match] = run(watched, [backoff])  # observations x1..x5: five occurrences at the fifth
    assert match.count == 5 and match.matched_at == T0 + timedelta(seconds=80)
    assert run([ev(0, "crash-loop", reason="BackOff", count=37, message=msg)], [backoff])[0].count == 37
    again = [ev(0, "crash-loop", reason="BackOff", count=3, message=msg)] * 4  # redelivered: still 3
    assert run(again, [backoff]) == []


DRIFT = """\
    apiVersion: behavior.tapio.io/v1
    kind: BehaviorPattern
    metadata: {name: drift, version: 1.0.0}
    spec:
      scope: configmap
      conditions:
        - type: sequence
          first: [{field: semantic.intent, operator: equals, value: config-change}]
          then: [{field: semantic.intent, operator: in, value: [crash-loop, probe-failure]}]
          within: 5m
          join: mounts
          at_least: 2
      predictions:
        - {type: outage, confidence_base: 0.8, time_horizon: 15m, message: "{scope} broke {count} times"}
"""


def _cluster(ns: str = "shop") -> list[UnifiedEvent]:
    rs = ObjectRef(kind="ReplicaSet", name="web-5d", namespace=ns)
    return [
        ev(-100, "observed", kind="ConfigMap", name="cfg", action="SNAPSHOT", content_hash="h1"),
        ev(-100, "observed", kind="ReplicaSet", name="web-5d", action="SNAPSHOT",
           owner=ObjectRef(kind="Deployment", name="web", namespace=ns)),
        ev(-100, "observed", name="web-1", action="SNAPSHOT", refs=["ConfigMap/cfg"], owner=rs, node="n1",
           labels={"app": "web"}),
        ev(-100, "observed", name="web-2", action="SNAPSHOT", refs=["ConfigMap/cfg", "Secret/tls"], owner=rs,
           node="n2", labels={"app": "web"}),
        ev(-100, "observed", name="other", action="SNAPSHOT", node="n1", labels={"app": "other"}),
        ev(-100, "observed", kind="Service", name="front", action="SNAPSHOT", selector={"app": "web"}),
    ]


def test_sequence_joins_through_the_configmap_the_pods_mount(tmp_path: Path) -> None:
    drift = compile_pattern(load_pattern(pattern_file(tmp_path, DRIFT)))
    events = _cluster() + [
        ev(0, "config-change", kind="ConfigMap", name="cfg", action="MODIFIED", content_hash="h2"),
        ev(30, "crash-loop", name="other", reason="BackOff"),  # does not mount cfg: not counted
        ev(40, "crash-loop", name="web-1", reason="BackOff"),
        ev(50, "probe-failure", name="web-2", reason="Unhealthy"),
    ]
    [match] = run(events, [drift])
    assert match.scope == "configmap:ConfigMap/shop/cfg" and match.count == 2
    assert match.matched_at == T0 + timedelta(seconds=50)
    cause = events[6].id
    assert [(link.cause, link.delay_s) for link in match.links] == [(cause, 40.0), (cause, 50.0)]
    assert match.event_ids[0] == cause


def test_an_edit_is_only_an_edit_when_content_changed(tmp_path: Path) -> None:
    drift = compile_pattern(load_pattern(pattern_file(tmp_path, DRIFT)))
    same = _cluster() + [
        ev(0, "config-change", kind="ConfigMap", name="cfg", action="MODIFIED", content_hash="h1"),  # labels only
        ev(40, "crash-loop", name="web-1", reason="BackOff"), ev(50, "crash-loop", name="web-2", reason="BackOff"),
    ]
    assert run(same, [drift]) == []
    change_event = _cluster() + [  # the topology service's CHANGE restates a MODIFIED; never counted
        ev(0, "config-change", kind="ConfigMap", name="cfg", action="CHANGE"),
        ev(40, "crash-loop", name="web-1", reason="BackOff"), ev(50, "crash-loop", name="web-2", reason="BackOff"),
    ]
    assert run(change_event, [drift]) == []


def test_scope_keys_follow_membership() -> None:
    from agents.hits import scope_keys
    store: dict = {}
    selector = Selector([])
    for event in _cluster():
        selector.hits(event, store)
    crash = ev(1, "crash-loop", name="web-2")
    assert scope_keys("owner", crash, store) == ["owner:Deployment/shop/web"]
    assert scope_keys("node", crash, store) == ["node:n2"]
    assert scope_keys("configmap", crash, store) == ["configmap:ConfigMap/shop/cfg", "configmap:Secret/shop/tls"]
    assert scope_keys("service", crash, store) == ["service:shop/front"]
    assert scope_keys("object", crash, store) == ["object:Pod/shop/web-2"]
    # a pod nothing told us the owner of is its own workload, so its failures still meet
    assert scope_keys("owner", ev(1, "crash-loop", name="unknown"), store) == ["owner:Pod/shop/unknown"]
    assert scope_keys("node", ev(1, "node-not-ready", kind="Node", name="n3", ns=""), store) == ["node:n3"]


def test_controller_events_teach_ownership_of_pods_never_seen_as_objects() -> None:
    """An events-only recording: the ReplicaSet's "Created pod" and the Deployment's "Scaled up"
    Events are the only statement of who owns the pod; an owner an observation gave wins."""
    from agents.hits import scope_keys
    store: dict = {}
    selector = Selector([])
    for event in [
        ev(0, "scaling", kind="Deployment", name="web", reason="ScalingReplicaSet",
           message="Scaled up replica set web-7c9f to 3"),
        ev(1, "lifecycle", kind="ReplicaSet", name="web-7c9f", reason="SuccessfulCreate",
           message="Created pod: web-7c9f-x2x1z"),
        ev(2, "lifecycle", kind="CronJob", name="nightly", reason="SuccessfulCreate", message="Created job nightly-2907"),
        ev(3, "lifecycle", kind="Job", name="nightly-2907", reason="SuccessfulCreate", message="Created pod: nightly-2907-abcde"),
        ev(4, "lifecycle", kind="ReplicaSet", name="other", reason="SuccessfulCreate", message="Created pod: web-1"),
    ] + _cluster():
        selector.hits(event, store)
    assert scope_keys("owner", ev(5, "image-pull-failure", name="web-7c9f-x2x1z"), store) == ["owner:Deployment/shop/web"]
    assert scope_keys("owner", ev(5, "oom-kill", name="nightly-2907-abcde"), store) == ["owner:Job/shop/nightly-2907"]
    assert scope_keys("owner", ev(5, "crash-loop", name="web-1"), store) == ["owner:Deployment/shop/web"]


RATE_AND_METRIC = """\
    apiVersion: behavior.tapio.io/v1
    kind: BehaviorPattern
    metadata: {name: hot, version: 1.0.0}
    spec:
      scope: node
      match: any
      conditions:
        - type: rate
          where: [{field: semantic.intent, operator: equals, value: dns-failure}]
          operator: gt
          per_minute: 2
          window: 2m
        - type: metric
          field: memory.usage_percent
          operator: gt
          value: 85
          window: 4m
      predictions:
        - {type: pressure, confidence_base: 0.6, time_horizon: 10m, message: "{scope}"}
"""


def test_rate_and_metric_conditions(tmp_path: Path) -> None:
    hot = compile_pattern(load_pattern(pattern_file(tmp_path, RATE_AND_METRIC)))
    sample = lambda s, v: ev(s, "observed", kind="Node", name="n1", ns="", metrics={"memory.usage_percent": v})  # noqa: E731
    assert run([sample(s, 90) for s in range(0, 180, 60)], [hot]) == []  # 2 min of samples: not 75 % of 4 min
    [match] = run([sample(s, 90) for s in range(0, 300, 60)], [hot])
    assert match.matched_at == T0 + timedelta(seconds=180)
    assert run([sample(s, 90 if s != 120 else 70) for s in range(0, 300, 60)], [hot]) == []
    dns = [ev(s, "dns-failure", name="api", node="n1", message=f"lookup {s}") for s in range(0, 120, 24)]  # 5 in 2m: 2.5/min
    assert len(run(dns, [hot])) == 1
    assert run(dns[:4], [hot]) == []  # 4 in 2m: 2.0/min is not > 2


def test_a_hit_delivered_again_is_not_counted_again(tmp_path: Path) -> None:
    """At-least-once: after a rebalance a worker re-reads hits batches whose effect the recovered
    window table already holds. Hits of the same second (merged into one entry) included."""
    oom = compile_pattern(load_pattern(pattern_file(tmp_path, OOM)))
    backoff = compile_pattern(load_pattern(pattern_file(tmp_path, REPEATS)))
    selector = Selector([oom, backoff])
    events = [ev(s, "crash-loop", message=f"#{i}") for i, s in enumerate((0, 0, 0, 10, 20))] + \
             [ev(s, "oom-kill", name=n, node="n1") for s, n in ((0, "a"), (0, "b"), (5, "c"))]
    hits = [h for e in events for h in selector.hits(e, {})]
    once: dict[str, WindowState] = {}
    twice: dict[str, WindowState] = {}
    for hit in hits:
        add_hits(once.setdefault(hit.key, WindowState()), [hit])
    for batch in (hits[:4], hits[:6], hits[2:], hits):  # overlapping redeliveries, in any order
        for hit in batch:
            add_hits(twice.setdefault(hit.key, WindowState()), [hit])
    assert twice == once
    crash = once["object:Pod/shop/web-1"]
    assert [(e.w, len(e.more)) for e in next(iter(crash.entries.values()))] == [(3, 2), (1, 0), (1, 0)]
    stored = decode_state(encode_state(crash))  # the merged ids survive the table
    assert add_hits(stored, [h for h in hits if h.key == "object:Pod/shop/web-1"]) == 0 and stored == crash
    assert [m.count for m in advance(backoff, "object:Pod/shop/web-1", stored, END)] == [5]


def test_merged_entries_stay_bounded_and_still_count_each_hit_once(tmp_path: Path) -> None:
    from agents.windows import MAX_MERGED
    backoff = compile_pattern(load_pattern(pattern_file(tmp_path, REPEATS)))
    selector = Selector([backoff])
    hits = [h for i in range(MAX_MERGED * 2 + 10) for h in selector.hits(ev(0, "crash-loop", message=str(i)), {})]
    state = WindowState()
    add_hits(state, hits)
    add_hits(state, hits)
    [entries] = state.entries.values()
    assert sum(e.w for e in entries) == len(hits) and max(len(e.more) for e in entries) <= MAX_MERGED


def test_state_is_bounded_and_round_trips(tmp_path: Path) -> None:
    backoff = compile_pattern(load_pattern(pattern_file(tmp_path, REPEATS)))
    selector = Selector([backoff])
    state = WindowState()
    for i in range(MAX_ENTRIES + 500):  # distinct seconds and messages: no merging
        add_hits(state, selector.hits(ev(i * 0.1, "crash-loop", message=str(i)), {}))
    assert sum(len(v) for v in state.entries.values()) <= MAX_ENTRIES
    same = decode_state(encode_state(state))
    assert same == state
    advance(backoff, "object:Pod/shop/web-1", state, epoch_ms(T0) + 3_600_000)
    assert state.empty() and not state.evidence and not state.series


def test_catalog_hot_reload_keeps_last_good_version(tmp_path: Path) -> None:
    path = pattern_file(tmp_path, OOM, "oom.yaml")
    catalog = Catalog(tmp_path)
    assert catalog.generation == 1 and catalog.compiled["oom"].conditions[0].spec.at_least == 3
    fp = catalog.compiled["oom"].conditions[0].fp
    path.write_text(path.read_text().replace("at_least: 3", "at_least: 2"))
    assert catalog.poll() and catalog.generation == 2
    assert catalog.compiled["oom"].conditions[0].spec.at_least == 2
    assert catalog.compiled["oom"].conditions[0].fp == fp  # threshold edits keep window state
    path.write_text(path.read_text().replace("at_least: 2", "at_least: many"))
    assert not catalog.poll()
    assert catalog.compiled["oom"].conditions[0].spec.at_least == 2
    [error] = catalog.errors
    assert "oom.yaml:" in error and "at_least" in error
    path.unlink()
    assert catalog.poll() and "oom" not in catalog.patterns and catalog.errors == []


def test_prediction_when_tests_filter(tmp_path: Path) -> None:
    text = OOM.replace("""          remediation: "look at {scope}"
""", """          remediation: "look at {scope}"
        - type: eviction
          confidence_base: 0.95
          time_horizon: 5m
          message: "evictions next on {scope}"
          when: [{field: k8s.namespace, operator: equals, value: kube-system}]
""")
    oom = compile_pattern(load_pattern(pattern_file(tmp_path, text)))
    [match] = run([ev(i, "oom-kill", name=f"p{i}", node="n1") for i in range(3)], [oom])
    assert [p.type for p in predictions_for(match, oom.pattern)] == ["cascading_failure"]
    [match] = run([ev(i, "oom-kill", name=f"p{i}", node="n1", ns="kube-system") for i in range(3)], [oom])
    assert [p.type for p in predictions_for(match, oom.pattern)] == ["cascading_failure", "eviction"]


def test_prediction_unless_tests_filter(tmp_path: Path) -> None:
    """`unless`: the prediction applies only when no event of the match passes its tests."""
    text = OOM.replace("""          remediation: "look at {scope}"
""", """          remediation: "look at {scope}"
          unless: [{field: k8s.namespace, operator: equals, value: kube-system}]
        - type: eviction
          confidence_base: 0.95
          time_horizon: 5m
          message: "evictions next on {scope}"
          when: [{field: k8s.namespace, operator: equals, value: kube-system}]
""")
    oom = compile_pattern(load_pattern(pattern_file(tmp_path, text)))
    [match] = run([ev(i, "oom-kill", name=f"p{i}", node="n1") for i in range(3)], [oom])
    assert [p.type for p in predictions_for(match, oom.pattern)] == ["cascading_failure"]
    [match] = run([ev(i, "oom-kill", name=f"p{i}", node="n1", ns="kube-system" if i == 2 else "shop")
                   for i in range(3)], [oom])
    assert [p.type for p in predictions_for(match, oom.pattern)] == ["eviction"]


@pytest.mark.parametrize("bad, field", [
    ("      scope: node\n", "group_by"),
    ("      scope: namespace\n", "join"),
])
def test_lint_requires_conditions_to_meet_in_the_scope(tmp_path: Path, bad: str, field: str) -> None:
    from agents.patterns import PatternError
    text = (OOM.replace("          window: 5m\n", "          window: 5m\n          group_by: namespace\n", 1)
            if field == "group_by" else DRIFT.replace("      scope: configmap\n", bad))
    with pytest.raises(PatternError, match=field):
        load_pattern(pattern_file(tmp_path, text))


def test_membership_forgets_deleted_objects_and_recreated_pods_start_fresh() -> None:
    from agents.membership import learn, member_key, node_of
    store: dict = {}
    old = ev(0, "observed", name="db-0", action="SNAPSHOT", node="n1")
    old = UnifiedEvent(**{**{f: getattr(old, f) for f in old.__struct_fields__},
                          "k8s": K8sContext(kind="Pod", name="db-0", namespace="shop", uid="u-old", node="n1")})
    learn(store, old)
    assert node_of(store, ev(1, "crash-loop", name="db-0")) == "n1"
    recreated = UnifiedEvent(**{**{f: getattr(old, f) for f in old.__struct_fields__},
                                "k8s": K8sContext(kind="Pod", name="db-0", namespace="shop", uid="u-new")})
    learn(store, recreated)  # same name, new uid, not scheduled yet: the old node is not inherited
    assert node_of(store, ev(2, "scheduling-failure", name="db-0")) == ""
    learn(store, ev(3, "observed", name="db-0", action="DELETED"))
    assert member_key("shop", "Pod", "db-0") not in store


def _pod_status(sec: int, restarts: int, reason: str, exit_code: int | None) -> UnifiedEvent:
    """A MODIFIED observation of pod shop/api with its containers' restarts and last termination."""
    e = ev(sec, "oom-kill", name="api", action="MODIFIED")
    return UnifiedEvent(**{**{f: getattr(e, f) for f in e.__struct_fields__},
                           "kubernetes": KubernetesData(action="MODIFIED", restart_count=restarts,
                                                        container_reason=reason, exit_code=exit_code)})


def test_a_pod_status_is_news_only_when_a_container_terminated_again() -> None:
    from agents.hits import effective_intent
    from agents.membership import learn
    store: dict = {}

    seen = [effective_intent(e, learn(store, e)) for e in (
        _pod_status(0, 1, "OOMKilled", 137),  # first sight: news
        _pod_status(30, 1, "OOMKilled", 137),  # the same lastState at the next status update
        _pod_status(60, 2, "OOMKilled", 137),  # killed again
        _pod_status(90, 2, "Error", 1))]  # a Job pod (restartPolicy Never) failing differently
    assert seen == ["oom-kill", "observed", "oom-kill", "oom-kill"]


def test_observations_delivered_again_keep_the_verdict_they_had() -> None:
    # After a worker restart or a Kafka loss the same observations come again (at least once), behind
    # the newest one the record holds. Judged again against it, a pod's OOM kill (restarts 3 < 5) and a
    # ConfigMap edit (h2 == h2) would stop being news, and the patterns that need them never match;
    # a status-only update (h1 != h2) would become an edit.
    from agents.hits import effective_intent
    from agents.membership import SEEN_KEEP, learn, member_key
    store: dict = {}

    stream = [_pod_status(0, 0, "", None), _pod_status(30, 3, "OOMKilled", 137), _pod_status(40, 3, "OOMKilled", 137),
              _pod_status(60, 5, "OOMKilled", 137),
              ev(-100, "observed", kind="ConfigMap", name="cfg", action="SNAPSHOT", content_hash="h1"),
              ev(0, "config-change", kind="ConfigMap", name="cfg", action="MODIFIED", content_hash="h2"),
              ev(5, "config-change", kind="ConfigMap", name="cfg", action="MODIFIED", content_hash="h1")]
    first = [effective_intent(e, learn(store, e)) for e in stream]
    # (h2 -> h1 goes back to the content before the edit: a revert, a remedy, not an edit)
    assert first == ["oom-kill", "oom-kill", "observed", "oom-kill", "observed", "config-change", "observed"]
    records = dict(store)
    assert [effective_intent(e, learn(store, e)) for e in stream] == first
    assert store == records  # the newest observation stays what each record says
    for i in range(SEEN_KEEP):  # the verdicts kept are the last SEEN_KEEP of the object
        learn(store, _pod_status(100 + i, 5, "OOMKilled", 137))
    assert len(store[member_key("shop", "Pod", "api")].seen) == SEEN_KEEP


def test_partition_windows_write_back_only_what_changed_and_drop_deleted_patterns(tmp_path: Path) -> None:
    from agents.partition_windows import PartitionWindows
    oom = compile_pattern(load_pattern(pattern_file(tmp_path, OOM)))
    selector = Selector([oom])
    windows = PartitionWindows(lambda key: None)
    hits = [h for i in range(3) for h in selector.hits(ev(i, "oom-kill", name=f"p{i}", node="n1"), {})]
    windows.add(hits, watermark=0)
    assert list(windows.flush()) == ["oom|node:n1"]
    [match] = windows.advance({"oom": oom}, epoch_ms(T0) + 5_000)
    assert match.count == 3 and list(windows.flush()) == ["oom|node:n1"]  # quiet period started
    assert windows.advance({"oom": oom}, epoch_ms(T0) + 6_000) == [] and windows.flush() == {}
    windows.advance({}, epoch_ms(T0) + 7_000 + 300_000)  # the pattern is gone: so is its state
    assert windows.flush() == {"oom|node:n1": None}


def test_offline_runner_finds_the_bundled_incident() -> None:
    from agents.catalog import Catalog
    from agents.offline import match_events
    from collectors.replayer import read_recordings
    root = Path(__file__).resolve().parents[2]
    events, unread = read_recordings([root / "patterns" / "scenarios" / "configmap-crashloop"])
    result = match_events(events, Catalog(root / "patterns"))
    assert unread == [] and result.errors == [] and result.events == 105 and result.late == 0
    found = {(m.pattern, m.scope) for m in result.matches}
    assert found == {("config-drift", "configmap:ConfigMap/shop/nginx-config"),
                     ("liveness-death-spiral", "owner:Deployment/shop/nginx"),
                     ("probe-failure", "owner:Deployment/shop/nginx")}
    drift = next(m for m in result.matches if m.pattern == "config-drift")
    cause = next(e for e in drift.evidence if e.id == drift.links[0].cause)
    assert cause.k8s.kind == "ConfigMap" and cause.kubernetes.action == "MODIFIED"
    assert all(link.delay_s > 0 for link in drift.links)


def test_window_log_writes_one_delta_per_batch_and_replays_to_the_latest_states() -> None:
    from agents.window_log import COMPACT_AFTER, WindowLog, decode_delta
    table: dict[str, bytes] = {}
    log = WindowLog(3)

    def batch(changes: dict[str, bytes]) -> None:
        writes, deletes = log.record(changes, read=table.get)
        assert len(writes) <= 1
        table.update(writes)
        for key in deletes:
            del table[key]
    batch({"a": b"a1", "b": b"b1"})
    batch({"a": b"a2"})
    assert sorted(table) == ["d:3:000000000000", "d:3:000000000001"]  # b1 keeps the first alive
    batch({"b": b""})  # b deleted: the first delta holds nothing current any more
    assert sorted(table) == ["d:3:000000000001"]
    assert WindowLog(3).load(table.items()) == {"a": b"a2"}
    for i in range(COMPACT_AFTER + 5):  # a long-lived state is copied forward, old deltas go
        batch({f"k{i}": b"x"})
    assert len(table) <= COMPACT_AFTER + 2
    fresh = WindowLog(3)
    assert fresh.load(table.items()) == {"a": b"a2", **{f"k{i}": b"x" for i in range(COMPACT_AFTER + 5)}}
    assert all(decode_delta(v) for v in table.values())
    assert fresh.next_seq == log.next_seq


def test_window_log_copies_what_is_current_out_of_deltas_that_hold_mostly_old_versions() -> None:
    from agents.window_log import GARBAGE, GARBAGE_SLACK, WindowLog, decode_delta
    table: dict[str, bytes] = {}
    log = WindowLog(0)
    big = b"x" * 100_000
    for i in range(400):  # a state rewritten at every batch, beside one written once per batch that stays
        writes, deletes = log.record({"hot": big, f"cold{i}": b"c"}, read=table.get)
        table.update(writes)
        for key in deletes:
            del table[key]
        stored = sum(len(k) + len(v) for d in table.values() for k, v in decode_delta(d).items())
        assert stored <= GARBAGE * log.live_bytes + GARBAGE_SLACK + 2 * len(big)
    assert len(table) < 400  # deltas whose only current record was a cold one were copied forward, and went
    assert WindowLog(0).load(table.items()) == {"hot": big, **{f"cold{i}": b"c" for i in range(400)}}


def _windows_table(tmp_path: Path):
    """A windows agent's partition over an in-memory table, as agents/match.py runs it."""
    from agents.match import WindowPartition, _take
    catalog = Catalog(pattern_file(tmp_path, REPEATS).parent)
    table: dict[str, bytes] = {}

    def part() -> WindowPartition:
        return WindowPartition(0, table, {}, partitions=1, max_ahead_ms=10**15)

    def take(p: WindowPartition, events: list[UnifiedEvent], watermark: int, record=None) -> list:  # noqa: ANN001
        from core.records import HitBatch
        hits = [h for e in events for h in catalog.selector.hits(e, {})]
        return _take(p, HitBatch(source=0, watermark=watermark, hits=hits), {}, catalog, 0, 10**15, record)[1]
    return table, part, take


def test_a_match_is_kept_to_be_sent_again_before_the_window_state_that_made_it_is_written(tmp_path: Path) -> None:
    # The windows agent keeps the matches it found (SentMatches) to send them again after a restart:
    # Kafka may lose them (a broker dies) before the graph has them. A worker stopped between keeping
    # and writing must find the match again in the hits it reads again; one stopped after both sends it
    # again. Written the other way round, a stop between the two (a send waiting on a dead broker)
    # left a state saying "matched" and nothing that would send the match.
    table, part, take = _windows_table(tmp_path)
    events = [ev(i, "crash-loop", message=f"#{i}") for i in range(5)]
    assert take(part(), events[:4], 0) == []
    before = dict(table)

    def stopped(found: list) -> None:
        assert dict(table) == before, "the window state was written before its match was kept"
        raise SystemExit("worker stopped")
    with pytest.raises(SystemExit):
        take(part(), events[4:], epoch_ms(T0) + 60_000, record=stopped)
    assert table == before
    kept: list = []
    [match] = take(part(), events[4:], epoch_ms(T0) + 60_000, record=kept.extend)  # read again after the restart
    assert kept == [match] and table != before
    assert take(part(), events[4:], epoch_ms(T0) + 60_000, record=kept.extend) == []  # the state says matched now


def test_a_window_state_stores_each_evidence_event_once_and_comes_back_whole(tmp_path: Path) -> None:
    from agents.window_log import decode_delta
    from agents.windows import EVIDENCE_SEP
    table, part, take = _windows_table(tmp_path)
    worker = part()
    events = [ev(i, "crash-loop", message=f"#{i}") for i in range(4)]
    for event in events:  # one batch each: the state changes at every batch
        assert take(worker, [event], 0) == []
    written = [k for d in table.values() for k in decode_delta(d)]
    evidence = [k for k in written if EVIDENCE_SEP in k]
    assert sorted(evidence) == sorted(f"backoff|object:Pod/shop/web-1{EVIDENCE_SEP}{e.id}" for e in events)
    state = worker.windows.states["backoff|object:Pod/shop/web-1"]
    restarted = part()  # a restart, or another worker taking the partition up
    again = restarted.windows.state("backoff|object:Pod/shop/web-1")
    assert again == state and set(again.evidence) == {e.id for e in events}
    [match] = take(restarted, [ev(4, "crash-loop", message="#4")], epoch_ms(T0) + 60_000)
    assert [e.id for e in match.evidence] == [e.id for e in events] + [ev(4, "crash-loop", message="#4").id]
    # once the state is gone, so are its evidence records
    assert take(restarted, [], epoch_ms(T0) + 3_600_000) == []
    assert part().windows.states == {} and not [k for d in table.values() for k in decode_delta(d)
                                                 if decode_delta(d)[k] and EVIDENCE_SEP in k]


def test_a_window_state_stored_with_its_evidence_inside_still_loads_it(tmp_path: Path) -> None:
    from agents.window_log import WindowLog
    from core.records import Hit
    table, part, take = _windows_table(tmp_path)
    state = WindowState()
    event = ev(0, "crash-loop")
    add_hits(state, [Hit(pattern="backoff", key="k", cond="c", t=1, id=event.id,
                         event=msgspec.Raw(msgspec.msgpack.encode(event)))])
    writes, _ = WindowLog(0).record({"backoff|k": encode_state(state)}, read=table.get)  # as stored before
    table.update(writes)
    assert part().windows.state("backoff|k") == state and list(state.evidence) == [event.id]


def test_the_newest_matches_sent_are_kept_once_each_for_a_takeover() -> None:
    from agents.match import _SENT, RESEND_LAST, SentMatches
    from core.codec import msgpack_encoder
    from core.records import PatternMatch
    table: dict = {}

    def match(i: int) -> PatternMatch:
        return PatternMatch(id=f"m{i}", pattern="p", version="1", scope="s", matched_at=T0, window_start=T0,
                            event_ids=[])
    table["p1"] = msgpack_encoder.encode([match(-2), match(-1)])  # the one record a worker wrote before
    sent = SentMatches(1, table)
    assert [m.id for m in sent.newest()] == ["m-2", "m-1"]
    for i in range(0, 3 * RESEND_LAST, 3):
        sent.add([match(i), match(i + 1), match(i + 2)])
    assert "p1" not in table and all(len(_SENT.decode(v)) == 3 for v in table.values())  # each match written once
    assert RESEND_LAST / 3 <= len(table) <= RESEND_LAST / 3 + 1
    newest = [f"m{i}" for i in range(2 * RESEND_LAST, 3 * RESEND_LAST)]
    assert [m.id for m in sent.newest()] == newest
    again = SentMatches(1, table)  # taken up after a restart or a rebalance
    assert [m.id for m in again.newest()] == newest and SentMatches(0, table).newest() == []
    again.add([match(10**6)])
    assert [m.id for m in SentMatches(1, table).newest()] == [*newest[1:], f"m{10**6}"]


def test_the_membership_cache_in_front_of_the_table_stays_bounded(monkeypatch) -> None:
    from agents.match import TableStore
    from agents.membership import Member
    monkeypatch.setattr(TableStore, "CACHE_MAX", 100)
    table: dict = {}
    store = TableStore(table)
    for i in range(250):
        store[f"ns/Pod/p{i}"] = Member(uid=f"u{i}", node="n1")
        assert f"ns/Pod/absent{i}" not in store  # an absent key is cached too
    assert len(store.cache) <= 100 and len(table) == 250
    assert store["ns/Pod/p0"] == Member(uid="u0", node="n1")  # read from the table again


def test_contains_and_not_contains_read_the_same_text() -> None:
    from agents.hits import compile_test
    unbound = ev(0, "scheduling-failure", message="0/3 nodes are available: pod has unbound immediate PersistentVolumeClaims")
    gpu = ev(0, "scheduling-failure", message="0/1 nodes are available: 1 Insufficient nvidia.com/gpu.")
    has = compile_test("kubernetes.message", "contains", "unbound immediate")
    lacks = compile_test("kubernetes.message", "not_contains", "unbound immediate")
    assert (has(unbound, ""), lacks(unbound, ""), has(gpu, ""), lacks(gpu, "")) == (True, False, False, True)


def test_a_revert_starts_no_sequence_a_failure_could_follow_from() -> None:
    """A ConfigMap edit, pods failing, the edit reverted, a pod still failing once after it: one
    config-drift match, from the edit; the revert (back to the content before the edit) is a remedy."""
    drift = compile_pattern(load_pattern(Path(__file__).resolve().parents[2] / "patterns" / "config-drift.yaml"))
    pod = ev(-200, "observed", name="web-1", action="SNAPSHOT", refs=["ConfigMap/cfg"])
    stream = [pod, ev(-100, "observed", kind="ConfigMap", name="cfg", action="SNAPSHOT", content_hash="good"),
              ev(0, "config-change", kind="ConfigMap", name="cfg", action="MODIFIED", content_hash="bad"),
              ev(20, "crash-loop", name="web-1", reason="BackOff", message="Back-off restarting failed container"),
              ev(400, "config-change", kind="ConfigMap", name="cfg", action="MODIFIED", content_hash="good"),
              ev(420, "crash-loop", name="web-1", reason="BackOff", message="Back-off restarting failed container",
                 count=2)]
    matches = run(stream, [drift])
    assert [(m.pattern, int((m.matched_at - T0).total_seconds())) for m in matches] == [("config-drift", 20)]
