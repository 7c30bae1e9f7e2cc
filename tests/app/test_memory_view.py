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


def test_the_native_part_names_each_table_stores_memory_and_the_heaps() -> None:
    from types import SimpleNamespace

    from app.memory_view import process_usage, rocksdb_usage

    class Store:
        def property_int_value(self, name: str) -> int:
            return {"rocksdb.block-cache-usage": 3 * 2**20, "rocksdb.cur-size-all-mem-tables": 2**20}.get(name, 0)

    tables = {"tapio-windows": SimpleNamespace(data=SimpleNamespace(_dbs={0: Store(), 1: Store()})),
              "in-memory": SimpleNamespace(data=SimpleNamespace())}
    assert rocksdb_usage(tables) == {"tapio-windows": {"memtables": 2.0, "block_cache": 6.0, "table_readers": 0.0,
                                                       "sst_files": 0.0, "stores": 2}}
    usage = process_usage()
    assert usage["python_blocks"] > 0 and usage.get("rssanon", 1) > 0
