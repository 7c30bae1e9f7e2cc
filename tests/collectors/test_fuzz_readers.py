"""Property-based fuzz of the readers (`tapio replay`, `tapio analyze`, bundles): generated hostile
inputs (`tests/support/hostile_inputs.py`) never crash nor hang a reader; what cannot be read comes
out as an error naming file, place and reason. A few hundred examples here (CI stays quick);
`benchmarks/fuzz_readers.py --examples 100000` runs the long campaign and counts crashes, hangs
and peak RSS."""

from __future__ import annotations

import resource
import signal
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from hostile_inputs import cases, run_case
from hypothesis import HealthCheck, given, settings

HANG_S = 20  # no example may take this long (the deadline below is the usual bar)


class Hang(Exception):
    pass


def _alarm(signum: int, frame: object) -> None:
    raise Hang(f"a reader ran for more than {HANG_S} s")


@settings(max_examples=300, deadline=timedelta(seconds=10), database=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])
@given(cases())
def test_readers_never_crash_nor_hang_on_generated_inputs(case: tuple[str, list[tuple[str, bytes]], bool]) -> None:
    reader, inputs, cut = case
    previous = signal.signal(signal.SIGALRM, _alarm)
    outer, _ = signal.setitimer(signal.ITIMER_REAL, HANG_S)  # pytest-timeout's own alarm, if it set one
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory() as folder:
            run_case(Path(folder), reader, inputs, cut)
    finally:
        signal.signal(signal.SIGALRM, previous)
        signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - started), 0.001) if outer else 0)
    grown = _peak_mib() - BASELINE_MIB  # the process's peak: other tests of this process may have set it
    assert grown < GROWTH_MIB, f"the peak RSS grew by {grown:.0f} MiB"


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


BASELINE_MIB = _peak_mib()
GROWTH_MIB = 512  # the amplifiers (2 MB strings, 200,000 levels) stay far below it
