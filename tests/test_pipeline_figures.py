"""benchmarks/pipeline.py's figures that are pure functions of what it measured."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.pipeline import prediction_latency  # noqa: E402


def test_publish_to_prediction_counts_the_windows_the_load_closed_and_gives_the_figure_net_of_lateness() -> None:
    # (time, first seen): 10 s of lateness, then 0.1 .. 0.4 s of processing; the last one's window
    # closed only after the load ended (the bridge's idle advance): not timed
    seen = {"a": (1_000, 11_100), "b": (2_000, 12_200), "c": (3_000, 13_400), "late": (95_000, 120_000)}
    line = prediction_latency(seen, 10_000, made=5, until_ms=100_000)
    assert line.startswith("publish->prediction in the graph: p50 10,200 ms p99 10,400 ms; ")
    assert "less the allowed lateness (10,000 ms" in line and "p50 200 ms p99 400 ms (bar 500 ms: ratio 0.80)" in line
    assert "3 predictions timed of 5 made" in line
    assert prediction_latency({}, 10_000, made=0, until_ms=1).startswith("publish->prediction: no prediction timed")
