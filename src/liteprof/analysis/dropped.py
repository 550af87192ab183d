"""The events bounded logs dropped (``Events.dropped``) in the report's scope rows.

A bounded log (``LITEPROF_MAX_MB``) keeps, for the events it dropped, their counts,
errors, totals, extremes and a duration histogram per name (``docs/FORMAT.md``, "Bounded
logs"). The report adds them to the scope rows: ``count``, ``errors``, ``total_ns``,
``self_ns``, ``mean_ns``, ``min_ns`` and ``max_ns`` are exact for all events; the
percentiles are those of the events kept, and only for a scope none of whose events was
kept are they estimated from the histogram (within a bucket: a factor of 1.78). The
call tree, the groups and ``cross_process`` cover the events kept.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from ..log.events import DroppedRow
from .stats import Grouped

_INT64_MAX = (1 << 63) - 1


class _Sum:
    """The dropped events of one key, summed over processes."""

    __slots__ = ("count", "errors", "total", "self_ns", "min", "max", "buckets", "bounds")

    def __init__(self, row: DroppedRow) -> None:
        self.count, self.errors = row.count, row.errors
        self.total, self.self_ns = row.total_ns, row.self_ns
        self.min, self.max = row.min_ns, row.max_ns
        self.buckets = list(row.buckets)
        self.bounds = row.bounds_ns

    def add(self, row: DroppedRow) -> None:
        self.count = min(self.count + row.count, _INT64_MAX)
        self.errors = min(self.errors + row.errors, self.count)
        self.total += row.total_ns
        self.self_ns += row.self_ns
        self.min = min(self.min, row.min_ns)
        self.max = max(self.max, row.max_ns)
        if row.bounds_ns == self.bounds and len(row.buckets) == len(self.buckets):
            self.buckets = [a + b for a, b in zip(self.buckets, row.buckets)]

    def percentile(self, p: float) -> int:
        """The nearest-rank ``p``-th percentile, estimated from the histogram: linear
        within its bucket, clamped to the exact extremes."""
        rank = max(1, math.ceil(p / 100.0 * self.count))
        seen = 0
        for i, n in enumerate(self.buckets):
            if n and seen + n >= rank:
                lo = self.bounds[i - 1] if 0 < i <= len(self.bounds) else self.min
                hi = self.bounds[i] if i < len(self.bounds) else self.max
                lo, hi = max(lo, self.min), min(hi, self.max)
                value = lo + (hi - lo) * (rank - seen) / n
                return int(min(max(value, self.min), self.max))
            seen += n
        return self.max


def sums(rows: list[DroppedRow], key: Callable[[DroppedRow], int]) -> dict[int, _Sum]:
    """The dropped rows summed per ``key(row)``."""
    out: dict[int, _Sum] = {}
    for row in rows:
        s = out.get(key(row))
        if s is None:
            out[key(row)] = _Sum(row)
        else:
            s.add(row)
    return out


def merge(table: Grouped, row_of: dict[int, int], dropped: dict[int, _Sum]) -> Grouped:
    """``table`` with the dropped events added: key ``k``'s sums go into row ``row_of[k]``
    where it has one; keys without a row get new rows at the end (``row_of`` is updated
    with them). A new table: ``table`` itself stays as it is (the call tree uses it)."""
    cols = {s: getattr(table, s).copy() for s in Grouped.STATS}
    keys = table.key.copy()
    extra: list[tuple[int, _Sum]] = []
    for k, s in dropped.items():
        r = row_of.get(k, -1)
        if r < 0:
            extra.append((k, s))
            continue
        # Saturating: only forged logs come near int64's limit.
        cols["count"][r] = min(int(cols["count"][r]) + s.count, _INT64_MAX)
        cols["errors"][r] = min(int(cols["errors"][r]) + s.errors, _INT64_MAX)
        for name, add in (("total", s.total), ("self_ns", s.self_ns)):
            value = int(cols[name][r]) + add
            if value >= 1 << 63 and cols[name].dtype != object:
                cols[name] = cols[name].astype(object)
            cols[name][r] = value
        cols["min"][r] = min(int(cols["min"][r]), s.min)
        cols["max"][r] = max(int(cols["max"][r]), s.max)
    if extra:
        n = table.size
        for i, (k, _s) in enumerate(extra):
            row_of[k] = n + i
        keys = np.concatenate([keys, np.array([k for k, _ in extra], dtype=keys.dtype)])
        new = {
            "count": [s.count for _, s in extra],
            "errors": [s.errors for _, s in extra],
            "total": [s.total for _, s in extra],
            "self_ns": [s.self_ns for _, s in extra],
            "min": [s.min for _, s in extra],
            "p50": [s.percentile(50) for _, s in extra],
            "p90": [s.percentile(90) for _, s in extra],
            "p99": [s.percentile(99) for _, s in extra],
            "max": [s.max for _, s in extra],
        }
        for name, values in new.items():
            col = cols[name]
            if col.dtype != object and max(values) >= 1 << 63:
                col = col.astype(object)
            tail = np.array(values, dtype=col.dtype if col.dtype != object else object)
            cols[name] = np.concatenate([col, tail])
    return Grouped(keys, *(cols[s] for s in Grouped.STATS))
