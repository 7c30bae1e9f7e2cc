"""Where the worker's Python memory goes: `/tapio/memory/` (with `worker.trace_memory`).

Fed by: tracemalloc, started when the app is made (`TAPIO_WORKER_TRACE_MEMORY=true`; it slows
allocation about twice, so it is off by default). Feeds: an operator or a soak run looking for
growth: the allocation sites holding the most memory now, and the ones that grew most since the
first look (`?reset=1` takes a new baseline). RSS beyond what is listed is native memory (RocksDB,
aiokafka buffers, FalkorDB client), which tracemalloc does not see.
"""

from __future__ import annotations

import tracemalloc
from typing import Any

TOP = 25
FRAMES = 8


def start() -> None:
    if not tracemalloc.is_tracing():
        tracemalloc.start(FRAMES)


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


def register_memory_view(app: Any) -> None:
    baseline: list[tracemalloc.Snapshot] = []

    @app.page("/tapio/memory/")
    async def memory(web: Any, request: Any) -> Any:
        if not tracemalloc.is_tracing():
            return web.json({"error": "not tracing: start the worker with worker.trace_memory "
                                      "(TAPIO_WORKER_TRACE_MEMORY=true)"}, status=404)
        snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
        if not baseline or request.query.get("reset"):
            baseline[:] = [snapshot]
        return web.json(report(snapshot, baseline[0]))
