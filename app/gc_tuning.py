"""The worker's garbage collector: the start-up heap frozen, young collections rarer, full ones timed.

A busy worker holds hundreds of thousands of long-lived objects (the windows' 5-minute states, the
diagnose stage's objects and events). CPython's cyclic collector walks every one of them at each
full collection, and with its default thresholds (700, 10, 10) a worker taking a steady 5,000
events/s ran ~25 full collections in 20 s, the later ones stopping its event loop for 120-190 ms:
the tail of the match latency, and ~7 % of the worker's CPU (benchmarks/README.md, issue 17). So:

- what exists once the app is built (modules, classes, functions, the catalog: ~200,000 objects) is
  frozen (`gc.freeze`): never walked again;
- `worker.gc_thresholds` (default 50,000, 20, 100): a young collection every 50,000 allocations net
  of deallocations instead of 700, so the objects of a batch die before one looks at them; a full
  collection after 100 middle ones instead of 10 (CPython also waits until a quarter of the old
  objects are new since the last);
- each full collection's pause is timed (`gc_full` on `/tapio/stages/`), so an operator sees it.

Cyclic garbage still goes, later: a young cycle at the next young collection, an old one at the
next full one. The soak (`make soak`) checks that memory stays flat with these settings.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Sequence
from typing import Any


def tune(thresholds: Sequence[int], record: Callable[[float], None]) -> Callable[[str, dict[str, Any]], None]:
    """Freeze the heap as it is, set the thresholds, and `record(seconds)` every full collection's pause;
    returns the callback it registered (`gc.callbacks`)."""
    gc.freeze()
    gc.set_threshold(*thresholds)
    started = 0.0

    def on_collection(phase: str, info: dict[str, Any]) -> None:
        nonlocal started
        if info["generation"] != 2:
            return
        if phase == "start":
            started = time.perf_counter()
        else:
            record(time.perf_counter() - started)

    gc.callbacks.append(on_collection)
    return on_collection
