"""The Prometheus text a worker serves (app.metrics), from its counters (core.stats), parsed back with the
official client's parser. The live worker's endpoint is scraped in tests/app/test_api.py."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from agents.confidence import Votes
from app.metrics import StatsCollector, metrics_registry
from app.progress import Sample
from core.stats import Histogram, StageStats


def _samples(stats: StageStats, **sources: object) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(metrics_registry(StatsCollector(stats, **sources))).decode()  # type: ignore[arg-type]
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_stage_counters_batch_sizes_and_dead_letters() -> None:
    stats = StageStats()
    stats.add("sink", 40)
    stats.add("sink", 2)
    stats.add("enrich", 0, rejected=1)  # a dead letter: counted, not a batch size
    got = _samples(stats)
    assert got[("tapio_stage_events_total", (("stage", "sink"),))] == 42
    assert got[("tapio_stage_batches_total", (("stage", "sink"),))] == 2
    assert got[("tapio_stage_dead_letters_total", (("stage", "enrich"),))] == 1
    assert got[("tapio_stage_batch_size_bucket", (("le", "10.0"), ("stage", "sink")))] == 1
    assert got[("tapio_stage_batch_size_bucket", (("le", "50.0"), ("stage", "sink")))] == 2
    assert got[("tapio_stage_batch_size_sum", (("stage", "sink"),))] == 42
    assert ("tapio_stage_batch_size_count", (("stage", "enrich"),)) not in got
    assert got[("process_resident_memory_bytes", ())] > 0  # the client library's process collector


def test_timings_are_histograms_in_seconds_and_counts_gauges_lag_and_votes_are_labelled() -> None:
    stats = StageStats()
    stats.time("match_latency", 0.03, 10)
    stats.time("match_latency", 2.0)
    stats.count("predictions", "config-drift", 2)
    stats.count("predictions", "oom-kill-loop")
    stats.gauge("window_states", lambda: 7)
    got = _samples(stats, lag=lambda: {"tapio-hits[3]": Sample(position=10, backlog=5)},
                   votes=lambda: {("config-drift", "1.0.0"): Votes(accurate=3, total=4)})
    assert got[("tapio_match_latency_seconds_bucket", (("le", "0.05"),))] == 10
    assert got[("tapio_match_latency_seconds_bucket", (("le", "+Inf"),))] == 11
    assert got[("tapio_match_latency_seconds_count", ())] == 11
    assert abs(got[("tapio_match_latency_seconds_sum", ())] - 2.3) < 1e-9
    assert got[("tapio_predictions_total", (("pattern", "config-drift"),))] == 2
    assert got[("tapio_predictions_total", (("pattern", "oom-kill-loop"),))] == 1
    assert got[("tapio_window_states", ())] == 7
    assert got[("tapio_consumer_lag_records", (("partition", "3"), ("topic", "tapio-hits")))] == 5
    assert got[("tapio_feedback_votes", (("pattern", "config-drift"), ("version", "1.0.0")))] == 4
    assert got[("tapio_feedback_accurate_votes", (("pattern", "config-drift"), ("version", "1.0.0")))] == 3


def test_a_histogram_counts_each_value_under_the_first_bound_at_or_above_it() -> None:
    h = Histogram((1, 10))
    for value in (0.5, 1, 1.5, 10, 11):
        h.add(value)
    assert h.cumulative() == [("1.0", 2), ("10.0", 4), ("+Inf", 5)] and h.count == 5 and h.sum == 24.0
