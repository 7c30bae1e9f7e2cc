"""Behavior-pattern schema, loader and lint: the catalog in patterns/ and the errors a bad file gets."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
import yaml

from agents.pattern_files import lint, load_pattern, load_patterns
from agents.patterns import (
    BehaviorPattern,
    CountCondition,
    Duration,
    EventCondition,
    PatternError,
    SequenceCondition,
    Template,
    to_builtins,
)

CATALOG = Path(__file__).resolve().parents[2] / "patterns"
EXPECTED = {
    "oom-cascade", "config-drift", "noisy-neighbor", "scheduler-thrash", "dns-black-hole",
    "liveness-death-spiral", "pvc-deadlock", "network-partition", "bad-rollout", "image-pull-failure",
    "unschedulable-pod", "volume-mount-failure", "probe-failure", "init-container-failure", "job-backoff-limit",
    "oom-kill-loop", "pvc-provisioning-failure", "container-cannot-start", "job-oom-kill", "image-not-present",
    "kernel-oom-restart", "dns-failure-crash", "cni-ipam-exhausted", "dns-failure-service-outage",
    "tcp-refused-probe-failure", "node-memory-pressure-eviction", "etcd-slow-api-latency", "kernel-oom-service-degraded",
}

# Line numbers in the tests below refer to this text (line 1 is `apiVersion`).
SAMPLE = """\
apiVersion: behavior.tapio.io/v1
kind: BehaviorPattern
metadata:
  name: sample
  version: "1.0.0"
spec:
  priority: 10
  scope: node
  conditions:
    - type: count
      where:
        - field: semantic.intent
          operator: equals
          value: oom-kill
      at_least: 3
      window: 5m
      group_by: node
    - type: event
      field: kubernetes.reason
      operator: equals
      value: OOMKilling
  predictions:
    - type: cascading_failure
      confidence_base: 0.75
      time_horizon: 10m
      message: "{count} pods OOM-killed on {scope}"
      impact: [pod_evictions]
"""


def write(tmp_path: Path, text: str, name: str = "sample.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_catalog_is_complete_and_lint_clean() -> None:
    patterns, errors = load_patterns(CATALOG)
    assert errors == []
    assert lint(CATALOG) == []
    assert {p.metadata.name for p in patterns} == EXPECTED
    for file in CATALOG.glob("*.yaml"):  # one pattern per file, named after it
        assert load_pattern(file).metadata.name == file.stem


def test_catalog_uses_topology_joins_and_real_reasons() -> None:
    patterns = {p.metadata.name: p for p in load_patterns(CATALOG)[0]}
    drift = patterns["config-drift"].spec.conditions[0]
    assert isinstance(drift, SequenceCondition) and drift.join == "mounts" and drift.within.seconds == 300
    oom = patterns["oom-cascade"].spec.conditions[0]
    assert isinstance(oom, CountCondition) and (oom.group_by, oom.at_least, oom.distinct) == ("node", 3, "owner")
    partition = patterns["network-partition"].spec.conditions[0]
    assert isinstance(partition, EventCondition) and partition.value == "ConnectivityOutageDetected"
    unschedulable = patterns["unschedulable-pod"].spec.predictions
    assert {p.when[0].value for p in unschedulable} >= {"Insufficient", "didn't match"}
    for pattern in patterns.values():  # every pattern can fire: it has a required condition
        assert any(c.required for c in pattern.spec.conditions)
        assert all(p.remediation.text and 0 < p.confidence_base <= 1 for p in pattern.spec.predictions)


def test_sample_parses_with_durations_in_seconds(tmp_path: Path) -> None:
    pattern = load_pattern(write(tmp_path, SAMPLE))
    count, event = pattern.spec.conditions
    assert count.window.seconds == 300 and pattern.spec.predictions[0].time_horizon.seconds == 600
    assert event == EventCondition(field="kubernetes.reason", operator="equals", value="OOMKilling")
    assert pattern.spec.enabled and pattern.spec.match == "all"
    message = pattern.spec.predictions[0].message.render(count=4, scope="node-a")
    assert message == "4 pods OOM-killed on node-a"


def test_round_trip(tmp_path: Path) -> None:
    for file in sorted(CATALOG.glob("*.yaml")) + [write(tmp_path, SAMPLE)]:
        pattern = load_pattern(file)
        data = to_builtins(pattern)
        again = load_pattern(write(tmp_path, yaml.safe_dump(data, sort_keys=False), "again.yaml"))
        assert again == pattern, file.name
        assert to_builtins(again) == data
        assert msgspec.json.decode(msgspec.json.encode(data)) == data


def test_durations() -> None:
    assert [Duration(t).seconds for t in ("30s", "5m", "1h", "500ms", "1.5m")] == [30, 300, 3600, 0.5, 90]
    for bad in ("5", "5 m", "5min", "-1s", "0s", "", 5):
        with pytest.raises(ValueError):
            Duration(bad)


def test_templates() -> None:
    assert Template("{scope} {count} {namespace} {name} {{literal}}").render(scope="s") == "s    {literal}"
    for bad in ("{pod}", "{count:>3}", "{scope!r}", "{", "{0}"):
        with pytest.raises(ValueError):
            Template(bad)


MISTAKES = [
    # (replace this, with that, line, field, in the message)
    ("operator: equals\n          value: oom", "operator: bigger\n          value: oom", 13,
     "spec.conditions[0].where[0].operator", "expected one of equals, not_equals, in, not_in, contains, not_contains, gt, gte, lt, lte, exists, got 'bigger'"),
    ("window: 5m", "window: 5x", 16, "spec.conditions[0].window", "expected a duration like 30s, 5m or 1h, got '5x'"),
    ("time_horizon: 10m", "time_horizon: 10", 25, "spec.predictions[0].time_horizon", "got 10"),
    ("confidence_base: 0.75", "confidence_base: 1.5", 24, "spec.predictions[0].confidence_base", "<= 1.0"),
    ("- type: event", "- type: banana", 18, "spec.conditions[1].type", "expected one of event, count, rate, sequence, metric, got 'banana'"),
    ('"{count} pods OOM-killed on {scope}"', '"{count} pods on {node}"', 26, "spec.predictions[0].message", "unknown placeholder {node}"),
    ("  name: sample\n", "", 3, "metadata.name", "required field is missing"),
    ("at_least: 3", "atleast: 3", 15, "spec.conditions[0].atleast", "unknown field"),
    ("value: oom-kill", "value: oomkill", 14, "spec.conditions[0].where[0].value", "unknown intent 'oomkill'"),
    ("window: 5m", "window: 10m", 16, "spec.conditions[0].window", "set long_window: true"),
    ("field: kubernetes.reason", "field: kubernetes.reasons", 19, "spec.conditions[1].field", "not a UnifiedEvent field"),
    ("operator: equals\n      value: OOMKilling", "operator: in\n      value: OOMKilling", 21, "spec.conditions[1].value", "non-empty list"),
    ("field: kubernetes.reason\n      operator: equals", "field: kubernetes.reason\n      operator: gt", 20,
     "spec.conditions[1].operator", "kubernetes.reason is not numeric"),
    ("  scope: node\n", "  scope: rack\n", 8, "spec.scope", "got 'rack'"),
    ('version: "1.0.0"', "version: 1.0", 5, "metadata.version", "Expected `str`, got `float`"),
    ("  priority: 10\n", "  priority: 10\n  priority: 20\n", 8, "spec.priority", "duplicate key"),
    ("    - type: count\n", "    - type: count\n      required: false\n", 9, "spec.conditions", "at least one condition must be required"),
]


@pytest.mark.parametrize(("old", "new", "line", "field", "fragment"), MISTAKES, ids=[m[3] + ":" + m[1][:12] for m in MISTAKES])
def test_mistakes_name_file_line_and_field(tmp_path: Path, old: str, new: str, line: int, field: str, fragment: str) -> None:
    if field == "spec.conditions":  # both conditions optional
        text = SAMPLE.replace(old, new).replace("    - type: event\n", "    - type: event\n      required: false\n")
    else:
        assert SAMPLE.count(old) >= 1
        text = SAMPLE.replace(old, new, 1)
    path = write(tmp_path, text)
    with pytest.raises(PatternError) as caught:
        load_pattern(path)
    error = caught.value
    assert (error.file, error.line, error.field) == (str(path), line, field), str(error)
    assert fragment in error.message, str(error)
    assert str(error).startswith(f"{path}:{line}: {field}: ")


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, SAMPLE.replace("      at_least: 3\n", "      at_least: [3\n"))
    with pytest.raises(PatternError) as caught:
        load_pattern(path)
    assert caught.value.line in (15, 16) and caught.value.field == "" and "YAML" in caught.value.message
    assert str(caught.value).startswith(f"{path}:{caught.value.line}: YAML")


def test_not_one_pattern(tmp_path: Path) -> None:
    for text, fragment in (("", "empty file"), (SAMPLE + "---\n" + SAMPLE, "single document"), ("- 1\n", "Expected `object`")):
        with pytest.raises(PatternError, match=fragment):
            load_pattern(write(tmp_path, text))


def test_directory_keeps_going_and_rejects_duplicate_names(tmp_path: Path) -> None:
    write(tmp_path, SAMPLE, "a.yaml")
    write(tmp_path, SAMPLE.replace("operator: equals\n      value: OOM", "operator: bigger\n      value: OOM"), "b.yaml")
    write(tmp_path, SAMPLE, "c.yaml")
    write(tmp_path, SAMPLE.replace("name: sample", "name: other"), "d.yaml")
    (tmp_path / "notes.txt").write_text("not a pattern")
    patterns, errors = load_patterns(tmp_path)
    assert [p.metadata.name for p in patterns] == ["sample", "other"]
    assert [(Path(e.file).name, e.line, e.field) for e in errors] == [
        ("b.yaml", 20, "spec.conditions[1].operator"), ("c.yaml", 4, "metadata.name")]
    assert "duplicate name 'sample'" in errors[1].message and "a.yaml" in errors[1].message
    assert [str(e) for e in lint(tmp_path)] == [str(e) for e in errors]


def test_structs_are_typed_boundaries() -> None:
    pattern = load_pattern(CATALOG / "oom-cascade.yaml")
    assert isinstance(pattern, BehaviorPattern)
    with pytest.raises(AttributeError):
        pattern.spec.priority = 1  # frozen


# --- the catalog against real recordings ----------------------------------------------------
# A stand-in for the matcher's field test, enough to show the catalog's tests hit real events.

REALDATA = Path(__file__).resolve().parents[3] / "shared" / "realdata"
SCENARIO = Path(__file__).resolve().parents[2] / "patterns" / "scenarios" / "configmap-crashloop"


def _passes(test, event) -> bool:
    value = event
    for part in test.field.split("."):
        value = value.get(part) if isinstance(value, dict) else getattr(value, part, None)
    if value is None:
        return False
    return {"equals": lambda: value == test.value, "in": lambda: value in test.value,
            "contains": lambda: test.value in value, "gte": lambda: value >= test.value}[test.operator]()


def _events(*paths: Path) -> list:
    from agents.enrich import EnrichError, enrich_event
    from agents.normalize import normalize_event
    from collectors.replay import read_recording
    from core.events import RawEvent

    files = [f for p in paths for f in sorted(p.rglob("*")) if f.suffix in (".json", ".yaml")]
    events = []
    for raw in (r for f in files for r in read_recording(f)):
        if not isinstance(raw, RawEvent):  # an UnusableInput: that part of the file is not a recording
            continue
        try:
            events.append(normalize_event(enrich_event(raw)))
        except EnrichError:
            continue
    return events


def _hits(tests, events) -> int:
    return sum(all(_passes(t, e) for t in tests) for e in events)


def test_config_drift_sees_the_demo_incident() -> None:
    events = _events(SCENARIO)
    drift = {p.metadata.name: p for p in load_patterns(CATALOG)[0]}["config-drift"].spec.conditions[0]
    assert _hits(drift.first, events) >= 1 and _hits(drift.then, events) >= 3


def test_catalog_tests_hit_real_recordings() -> None:
    events = _events(REALDATA)
    patterns = {p.metadata.name: p for p in load_patterns(CATALOG)[0]}
    for name in ("unschedulable-pod", "image-pull-failure", "volume-mount-failure", "init-container-failure"):
        assert _hits(patterns[name].spec.conditions[0].where, events) >= 1, name
    predictions = patterns["unschedulable-pod"].spec.predictions
    assert all(_hits(p.when, events) >= 1 for p in predictions if p.type != "storage_deadlock")
