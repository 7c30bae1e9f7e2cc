"""app/gc_tuning.py: the worker's collector frozen at start, its thresholds set, full collections timed."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from app import gc_tuning
from core.settings import ConfigError, load_settings


def test_tune_freezes_the_heap_sets_the_thresholds_and_times_each_full_collection() -> None:
    before = gc.get_threshold()
    pauses: list[float] = []
    callback = gc_tuning.tune([50_000, 20, 100], pauses.append)
    try:
        assert gc.get_threshold() == (50_000, 20, 100)
        assert gc.get_freeze_count() > 1000  # the heap as it was: modules, classes, functions
        gc.collect(1)
        assert pauses == []  # a middle collection is not timed
        gc.collect()
        assert len(pauses) == 1 and 0 < pauses[0] < 60
    finally:
        gc.callbacks.remove(callback)
        gc.unfreeze()
        gc.set_threshold(*before)


def test_the_thresholds_come_from_the_settings_and_a_bad_value_is_named(tmp_path: Path) -> None:
    env = {"TAPIO_STATE_DIR": str(tmp_path)}
    assert load_settings(environ=env).worker.gc_thresholds == [50_000, 20, 100]
    assert load_settings(environ=env | {"TAPIO_WORKER_GC_THRESHOLDS": "700,10,10"}).worker.gc_thresholds == [700, 10, 10]
    with pytest.raises(ConfigError, match=r"worker.gc_thresholds must be three numbers >= 1"):
        load_settings(environ=env | {"TAPIO_WORKER_GC_THRESHOLDS": "700,10"})
