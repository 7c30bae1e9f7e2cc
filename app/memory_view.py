"""Where the worker's Python memory goes: `/tapio/memory/` (with `worker.trace_memory`).

Fed by: tracemalloc, started when the app is made (`TAPIO_WORKER_TRACE_MEMORY=true`; it slows
allocation about twice, so it is off by default). Feeds: an operator or a soak run looking for
growth: the allocation sites holding the most memory now, and the ones that grew most since the
first look (`?reset=1` takes a new baseline). `?start=N` starts tracing (N frames a site, 1 to 8:
one costs least) in a worker started without it: what it lists as grown is then all that was
allocated since and is alive, so take the baseline again (`?reset=1`) once what was allocated
before has turned over (a window's span), and look a while later; the run goes at full speed until
tracing starts (benchmarks/pipeline.py --trace-memory-after/--trace-memory-reset). RSS beyond what
is listed is native memory (RocksDB, aiokafka buffers, FalkorDB client), which tracemalloc does not
see; the page always gives the RocksDB part (`rocksdb_mib` per table: memtables, block cache,
table readers), tracing or not.
"""

from __future__ import annotations

import ctypes
import sys
import tracemalloc
from typing import Any

TOP = 25
FRAMES = 8


def start(frames: int = FRAMES) -> None:
    if not tracemalloc.is_tracing():
        tracemalloc.start(frames)


def report(snapshot: tracemalloc.Snapshot, baseline: tracemalloc.Snapshot | None) -> dict[str, Any]:
    """Pure over two snapshots: totals, the biggest sites, and the biggest growth since `baseline`."""
    def site(stat: Any) -> str:
        # tracemalloc lists frames oldest first: the allocation is the last; the project's own frames
        # (not the libraries') say whose it is
        recent = list(reversed(stat.traceback))
        frames = [f for f in recent if "/site-packages/" not in f.filename and "/asyncio/" not in f.filename][:3] \
            or recent[:1]
        return " <- ".join(f"{f.filename.rsplit('/', 2)[-1] if '/' in f.filename else f.filename}:{f.lineno}"
                           for f in frames)

    largest = snapshot.statistics("traceback")[:TOP]
    out: dict[str, Any] = {
        "traced_mib": round(sum(s.size for s in snapshot.statistics("filename")) / 2**20, 1),
        "largest": [{"site": site(s), "mib": round(s.size / 2**20, 2), "blocks": s.count} for s in largest],
    }
    if baseline is not None:
        grown = [d for d in snapshot.compare_to(baseline, "traceback") if d.size_diff > 0][:TOP]
        out["grown_since_baseline"] = [{"site": site(d), "mib": round(d.size_diff / 2**20, 2),
                                        "blocks": d.count_diff} for d in grown]
    return out


#: RocksDB properties read per table store (bytes): what its native memory holds
ROCKSDB_PROPERTIES = {"memtables": "rocksdb.cur-size-all-mem-tables",
                      "block_cache": "rocksdb.block-cache-usage",
                      "table_readers": "rocksdb.estimate-table-readers-mem",
                      "sst_files": "rocksdb.total-sst-files-size"}


def rocksdb_usage(tables: Any) -> dict[str, dict[str, int]]:
    """table name -> property -> MiB summed over the partitions' stores this worker has open (a store
    whose engine cannot tell is left out). The native memory a worker's tables take: memtables, block
    cache and table readers (index and filter blocks); `sst_files` is on disk."""
    out: dict[str, dict[str, int]] = {}
    for name, table in sorted(tables.items()):
        dbs = getattr(getattr(table, "data", None), "_dbs", None) or {}
        sums = dict.fromkeys(ROCKSDB_PROPERTIES, 0)
        for db in list(dbs.values()):
            for key, prop in ROCKSDB_PROPERTIES.items():
                try:
                    sums[key] += int(db.property_int_value(prop) or 0)
                except Exception:  # noqa: BLE001, S112 - another engine, or a store being closed
                    continue
        if dbs:
            out[name] = {key: round(value / 2**20, 1) for key, value in sums.items()} | {"stores": len(dbs)}
    return out


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def process_usage() -> dict[str, float]:
    """MiB: the process's resident anonymous memory, what the C allocator (glibc malloc) holds in use
    and free in its heaps, and what Python's small-object allocator holds in use; {} where unknown."""
    out: dict[str, float] = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(("RssAnon:", "RssFile:")):
                    out[line.split(":")[0].lower()] = round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    try:
        info = ctypes.CDLL("libc.so.6").mallinfo2
        info.restype = _MallInfo2
        got = info()
        out |= {"malloc_in_use": round((got.uordblks + got.hblkhd) / 2**20, 1),
                "malloc_free": round(got.fordblks / 2**20, 1)}
    except (OSError, AttributeError):
        pass
    out["python_blocks"] = sys.getallocatedblocks()
    return out


def register_memory_view(app: Any) -> None:
    baseline: list[tracemalloc.Snapshot] = []

    @app.page("/tapio/memory/")
    async def memory(web: Any, request: Any) -> Any:
        native = {"rocksdb_mib": rocksdb_usage(app.tables), "process_mib": process_usage()}
        if not tracemalloc.is_tracing():
            if not request.query.get("start"):
                return web.json({"error": "not tracing: start the worker with worker.trace_memory "
                                          "(TAPIO_WORKER_TRACE_MEMORY=true), or ask with ?start=1", **native},
                                status=404)
            start(max(1, min(int(request.query.get("start", "1") or 1), FRAMES)))
            baseline.clear()
        snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
        if not baseline or request.query.get("reset"):
            baseline[:] = [snapshot]
        return web.json(report(snapshot, baseline[0]) | native)
