"""Prometheus histograms read off a `/metrics` page, and the quantile of what was observed between two reads.

Fed by: the collectors that scrape a component's Prometheus text (`collectors.etcd`: etcd's WAL fsync and
backend commit; `collectors.apiserver`: the API server's request durations per verb), already parsed by
`prometheus_client`'s parser into (sample name, labels, value) rows. Feeds: their interval samples
(`metric.<source>.*_p99_seconds`) and the threshold events made from them.

`histogram` reads one histogram (optionally only the series whose labels pass a test, summed bucket by bucket,
as Prometheus' `sum by (le)`); `quantile_between` / `p99_between` give the quantile of the observations made
between two readings, interpolated inside its bucket as `histogram_quantile` over the bucket deltas does. Pure.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping

import msgspec

#: a parsed sample: its name (`<histogram>_bucket`, `_count`, `_sum`), labels, value
Row = tuple[str, Mapping[str, str], float]


class Histogram(msgspec.Struct, frozen=True):
    """A Prometheus histogram's cumulative buckets (upper bound, count), ascending, +Inf last."""

    buckets: tuple[tuple[float, float], ...] = ()
    count: float = 0.0
    sum: float = 0.0


def histogram(rows: Iterable[Row], name: str, where: Callable[[Mapping[str, str]], bool] | None = None) -> Histogram:
    """Histogram `name` of the rows: the series whose labels pass `where` (every one without it), summed per
    bucket bound. Empty when no series is there."""
    buckets: dict[float, float] = {}
    count = total = 0.0
    for sample, labels, value in rows:
        if where is not None and not where(labels):
            continue
        if sample == f"{name}_bucket":
            le = float(labels["le"])
            buckets[le] = buckets.get(le, 0.0) + value
        elif sample == f"{name}_count":
            count += value
        elif sample == f"{name}_sum":
            total += value
    return Histogram(tuple(sorted(buckets.items())), count, total)


def quantile_between(before: Histogram, after: Histogram, q: float) -> float | None:
    """The q-quantile of the observations made between two readings of a histogram, interpolated linearly
    inside the bucket it falls in (Prometheus' histogram_quantile over the bucket deltas); None when nothing
    was observed. A histogram that went down was reset: `after` alone is the interval. The +Inf bucket
    answers the highest finite bound."""
    reset = after.count < before.count or len(after.buckets) != len(before.buckets)
    old = dict(before.buckets) if not reset else {}
    deltas = [(le, count - old.get(le, 0.0)) for le, count in after.buckets]
    if not deltas or deltas[-1][1] <= 0:
        return None
    rank = q * deltas[-1][1]
    lower, below = 0.0, 0.0
    for le, cumulative in deltas:
        if cumulative >= rank:
            if math.isinf(le):
                return lower
            inside = cumulative - below
            return lower + (le - lower) * ((rank - below) / inside if inside > 0 else 1.0)
        lower, below = le, cumulative
    return lower


def p99_between(before: Histogram, after: Histogram) -> float | None:
    return quantile_between(before, after, 0.99)


def observed_between(before: Histogram, after: Histogram) -> float:
    """How many observations were made between two readings (a reset histogram: `after`'s own)."""
    reset = after.count < before.count or len(after.buckets) != len(before.buckets)
    return after.count if reset else after.count - before.count
