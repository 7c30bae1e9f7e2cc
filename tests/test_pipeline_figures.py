"""benchmarks/pipeline.py's figures that are pure functions of what it measured."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.pipeline import leave_only_profiles, prediction_latency  # noqa: E402


def test_publish_to_prediction_counts_the_windows_the_load_closed_and_gives_the_figure_net_of_lateness() -> None:
    # (time, first seen): 10 s of lateness, then 0.1 .. 0.4 s of processing; the last one's window
    # closed only after the load ended (the bridge's idle advance): not timed
    seen = {"a": (1_000, 11_100), "b": (2_000, 12_200), "c": (3_000, 13_400), "late": (95_000, 120_000)}
    line = prediction_latency(seen, 10_000, made=5, until_ms=100_000)
    assert line.startswith("publish->prediction in the graph: p50 10,200 ms p99 10,400 ms; ")
    assert "less the allowed lateness (10,000 ms" in line and "p50 200 ms p99 400 ms (bar 500 ms: ratio 0.80)" in line
    assert "3 predictions timed of 5 made" in line
    assert prediction_latency({}, 10_000, made=0, until_ms=1).startswith("publish->prediction: no prediction timed")


def test_with_early_firing_publish_to_prediction_is_the_first_sight_of_each_prediction_as_measured() -> None:
    # provisional predictions come from the hits in so far: no lateness to take off, and a prediction
    # whose time is within the load counts even though its window closed only after it
    seen = {"a": (1_000, 1_100), "b": (2_000, 2_300), "late": (99_000, 99_450), "after": (101_000, 101_100)}
    line = prediction_latency(seen, 10_000, made=4, until_ms=100_000, early=True)
    assert "p50 300 ms p99 450 ms (bar 500 ms: ratio 0.90)" in line and "less the allowed lateness" not in line
    assert "3 predictions timed of 4 made" in line


def test_a_group_reports_the_worst_workers_percentiles_and_the_sum_of_its_counts() -> None:
    from benchmarks.pipeline import merged_stages

    one = {"match": {"events": 10, "batches": 2, "rate": 5.0},
           "timings": {"match_latency": {"samples": 10, "p50_ms": 30.0, "p99_ms": 80.0, "max_ms": 90.0}}}
    two = {"match": {"events": 30, "batches": 3, "rate": 7.0},
           "timings": {"match_latency": {"samples": 30, "p50_ms": 40.0, "p99_ms": 70.0, "max_ms": 120.0}}}
    merged = merged_stages([one, two])
    assert merged["match"] == {"events": 40, "batches": 5, "rate": 12.0}
    assert merged["timings"]["match_latency"] == {"samples": 40, "p50_ms": 40.0, "p99_ms": 80.0, "max_ms": 120.0}


def test_a_run_leaves_its_profiles_and_nothing_else(tmp_path: Path) -> None:
    run = tmp_path / "tapio-bench-x"
    (run / "falkordb" / "data").mkdir(parents=True)
    (run / "falkordb" / "data" / "dump.rdb").write_bytes(b"x" * 100)
    (run / "worker.log").write_text("log")
    (run / "profile-worker.txt").write_text("samples")
    leave_only_profiles(run)
    assert sorted(p.name for p in run.iterdir()) == ["profile-worker.txt"]
    (run / "profile-worker.txt").unlink()
    (run / "nats").mkdir()
    leave_only_profiles(run)
    assert not run.exists()
