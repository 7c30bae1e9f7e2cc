"""/tapio/memory/'s report: the sites that grew name the code that allocated, most recent frame first."""

from __future__ import annotations

import tracemalloc

from app.memory_view import report

KEPT: list[bytes] = []


def _allocate_a_lot() -> None:
    KEPT.extend(bytes(1024) + bytes([i % 256]) for i in range(20_000))


def test_the_growth_since_the_baseline_names_the_allocating_code() -> None:
    tracemalloc.start(8)
    try:
        baseline = tracemalloc.take_snapshot()
        _allocate_a_lot()
        got = report(tracemalloc.take_snapshot(), baseline)
    finally:
        tracemalloc.stop()
        KEPT.clear()
    top = got["grown_since_baseline"][0]
    assert top["site"].startswith("test_memory_view.py:") and top["mib"] >= 19
    assert got["traced_mib"] >= 19 and got["largest"][0]["mib"] >= 19
