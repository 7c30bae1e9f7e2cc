"""The API server collector (`collectors.apiserver`), its pure part: the API server's /metrics read into request
durations per verb (every resource summed, WATCH and CONNECT left out), the p99 of an interval from the bucket
deltas (`collectors.histograms`), and APIServerSlow when a verb's p99 crosses its threshold over enough requests.
Against the real kube-apiserver: tests/cluster/test_etcd_slow_chain.py."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agents.enrich import enrich_event
from agents.normalize import normalize_event
from collectors.apiserver import APIReading, Thresholds, assess, finding_event, metrics_event, parse_metrics
from collectors.histograms import Histogram, histogram, observed_between
from core.kube.semantics import known_intents, semantic_table

AT = datetime(2026, 12, 5, 3, 0, tzinfo=UTC)
BOUNDS = (0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.5, 2.0, 5.0, 10.0, 30.0, 60.0)


def series(name: str, labels: str, counts: dict[float, int]) -> list[str]:
    """One histogram series with `counts` observations per bucket (cumulated here)."""
    lines, cumulative = [], 0
    for le in BOUNDS:
        cumulative += counts.get(le, 0)
        lines.append(f'{name}_bucket{{{labels},le="{le}"}} {cumulative}')
    total = sum(le * n for le, n in counts.items())
    return [*lines, f'{name}_bucket{{{labels},le="+Inf"}} {cumulative}', f"{name}_sum{{{labels}}} {total}",
            f"{name}_count{{{labels}}} {cumulative}"]


def page(*, patch: dict[float, int], get: dict[float, int], watch: dict[float, int] | None = None,
         etcd: dict[float, int] | None = None, started: float = 1.7e9) -> str:
    name = "apiserver_request_duration_seconds"
    lines = ["# HELP apiserver_request_duration_seconds [STABLE] Response latency distribution in seconds",
             f"# TYPE {name} histogram"]
    lines += series(name, 'component="apiserver",resource="configmaps",scope="resource",verb="PATCH"', patch)
    lines += series(name, 'component="apiserver",resource="leases",scope="resource",verb="PATCH"', patch)
    lines += series(name, 'component="apiserver",resource="pods",scope="resource",verb="GET"', get)
    lines += series(name, 'component="apiserver",resource="pods",scope="cluster",verb="WATCH"', watch or {60.0: 3})
    lines += ["# TYPE etcd_request_duration_seconds histogram",
              *series("etcd_request_duration_seconds", 'operation="update",type="*core.ConfigMap"', etcd or {})]
    lines += ["# TYPE apiserver_current_inflight_requests gauge",
              'apiserver_current_inflight_requests{request_kind="mutating"} 4',
              'apiserver_current_inflight_requests{request_kind="readOnly"} 1',
              "# TYPE apiserver_storage_objects gauge", 'apiserver_storage_objects{resource="pods"} 12',
              "# TYPE process_start_time_seconds gauge", f"process_start_time_seconds {started}"]
    return "\n".join(lines) + "\n"


def test_a_page_is_read_into_durations_per_verb_every_resource_summed_and_long_running_verbs_left_out() -> None:
    reading = parse_metrics(page(patch={0.05: 10, 0.1: 2}, get={0.05: 7}, etcd={0.05: 3}))
    assert sorted(reading.verbs) == ["GET", "PATCH"]  # WATCH lasts as long as the watch: not a latency
    assert reading.verbs["PATCH"].count == 24 and dict(reading.verbs["PATCH"].buckets)[0.1] == 24
    assert reading.verbs["GET"].count == 7 and reading.etcd.count == 3
    assert reading.inflight == {"mutating": 4.0, "readOnly": 1.0} and reading.started_at == 1.7e9
    assert parse_metrics("") == APIReading()


def test_an_interval_gives_p99_per_verb_and_slow_writes_become_api_server_slow() -> None:
    before = parse_metrics(page(patch={0.05: 100}, get={0.05: 50}, etcd={0.05: 100}))
    after = parse_metrics(page(patch={0.05: 100, 1.5: 20}, get={0.05: 60}, etcd={0.05: 100, 1.0: 30}))
    result = assess(before, after)
    s = result.samples
    assert s["patch_requests"] == 40 and s["get_requests"] == 10 and s["requests"] == 50
    assert s["patch_p99_seconds"] == pytest.approx(1.0 + 0.5 * (0.99 * 40) / 40)  # inside (1, 1.5]
    assert s["get_p99_seconds"] == pytest.approx(0.05 * 0.99)
    assert s["mutating_p99_seconds"] == s["patch_p99_seconds"]  # the only write verb
    assert s["etcd_request_p99_seconds"] == pytest.approx(0.8 + 0.2 * 0.99)
    assert s["inflight_mutating"] == 4 and s["inflight_read_only"] == 1
    [slow] = result.findings
    assert (slow.reason, slow.intent, slow.verbs) == ("APIServerSlow", "api-latency", ("PATCH",))
    assert slow.message.startswith("API server requests slow over the interval: PATCH p99 1.50 s (40 requests, "
                                   "over 1.00 s); its etcd requests p99 998 ms"), slow.message


def test_no_finding_under_the_threshold_for_too_few_requests_or_a_first_reading() -> None:
    before = parse_metrics(page(patch={0.05: 100}, get={0.05: 50}))
    assert assess(before, parse_metrics(page(patch={0.05: 100, 0.8: 20}, get={0.05: 60}))).findings == []
    few = assess(before, parse_metrics(page(patch={0.05: 100, 5.0: 2}, get={0.05: 50})))  # 4 requests
    assert few.findings == [] and few.samples["patch_p99_seconds"] > 2
    assert assess(before, parse_metrics(page(patch={0.05: 100, 5.0: 2}, get={0.05: 50})),
                  Thresholds(min_requests=1)).findings[0].verbs == ("PATCH",)
    first = assess(None, before)
    assert first.findings == [] and "requests" not in first.samples  # nothing to compare with yet
    # LIST has its own, higher mark
    assert Thresholds().of("LIST") == 5.0 and Thresholds().of("GET") == 1.0


def test_a_restarted_api_server_counts_its_new_histograms_from_zero() -> None:
    before = parse_metrics(page(patch={0.05: 1000}, get={0.05: 500}))
    after = parse_metrics(page(patch={0.05: 3}, get={0.05: 2}, started=1.8e9))
    assert assess(before, after).samples["patch_requests"] == 6


def test_histograms_are_summed_per_bound_over_the_series_a_test_keeps() -> None:
    rows = [("h_bucket", {"le": "0.1", "verb": "GET"}, 2.0), ("h_bucket", {"le": "+Inf", "verb": "GET"}, 3.0),
            ("h_bucket", {"le": "0.1", "verb": "PUT"}, 5.0), ("h_bucket", {"le": "+Inf", "verb": "PUT"}, 5.0),
            ("h_count", {"verb": "GET"}, 3.0), ("h_count", {"verb": "PUT"}, 5.0), ("h_sum", {"verb": "GET"}, 9.0)]
    assert histogram(rows, "h") == Histogram(((0.1, 7.0), (float("inf"), 8.0)), 8.0, 9.0)
    assert histogram(rows, "h", lambda labels: labels["verb"] == "PUT").count == 5.0
    assert histogram(rows, "other") == Histogram()
    assert observed_between(histogram(rows, "h"), Histogram(((0.1, 1.0), (float("inf"), 1.0)), 1.0)) == 1.0  # reset


def test_the_events_are_about_the_node_carry_the_samples_and_the_vocabulary_names_their_intent() -> None:
    before = parse_metrics(page(patch={0.05: 100}, get={0.05: 50}))
    result = assess(before, parse_metrics(page(patch={0.05: 100, 2.0: 20}, get={0.05: 60})))
    slow = finding_event(result.findings[0], result.samples, node="cp-1", url="https://127.0.0.1:6443/metrics",
                         at=AT)
    m = slow.metadata
    assert (m["kind"], m["name"], m["reason"], m["severity"]) == ("Node", "cp-1", "APIServerSlow", "warning")
    assert m["apiserver.verbs"] == "PATCH" and float(m["metric.apiserver.patch_p99_seconds"]) > 1.9
    meaning = semantic_table().node_reasons["APIServerSlow"]
    assert (meaning.intent, meaning.category, meaning.severity) == (m["intent"], m["category"], m["severity"])
    assert m["intent"] in known_intents()
    unified = normalize_event(enrich_event(slow))
    assert unified.semantic.intent == "api-latency" and unified.k8s is not None and unified.k8s.name == "cp-1"
    sample = metrics_event(result.samples, node="cp-1", url="u", at=AT).metadata
    assert sample["reason"] == "APIServerMetrics" and sample["severity"] == "debug"
    assert sample["metric.apiserver.requests"] == "50"  # 40 PATCH, 10 GET


def test_the_vocabulary_lists_what_each_etcd_finding_means_so_that_patterns_may_name_it() -> None:
    from collectors.etcd import EtcdReading
    from collectors.etcd import assess as etcd_assess

    table = semantic_table().node_reasons
    before = EtcdReading(has_leader=1, started_at=1.0)
    after = EtcdReading(has_leader=0, leader_changes_total=1, slow_apply_total=3, proposals_failed_total=1,
                        db_size_bytes=9e9, quota_bytes=1e10, started_at=1.0,
                        fsync=Histogram(((1.0, 5.0), (float("inf"), 5.0)), 5.0),
                        commit=Histogram(((1.0, 5.0), (float("inf"), 5.0)), 5.0))
    findings = etcd_assess(before, after).findings
    assert len({f.reason for f in findings}) == 7
    for f in findings:
        assert (table[f.reason].intent, table[f.reason].category, table[f.reason].severity) == (
            f.intent, f.category, f.severity), f
        assert f.intent in known_intents()
