"""``liteprof diff``: how one run differs from another, scope by scope, with a noise check.

The result is the ``Diff`` of ``types.py``, the JSON diff object of ``SPEC.md``
(``liteprof diff --format json``, fields in ``docs/REPORT.md``); the renderers draw it for
people. The statistical method, and why, is in
``docs/DIFF.md``: a scope is "same" unless a Mann-Whitney U test is significant, the
change of the mean exceeds the threshold, and a confidence interval of the ratio of the
means (or the medians) agrees. Everything is deterministic.

Extra keys beyond SPEC's: top level ``threshold`` (percent), ``alpha`` and ``test``; per
scope ``p_value`` and ``change_ci`` (``[low, high]`` of ``change``, ``null`` where not
computed). ``scopes`` lists the scopes present in both runs, largest ``|change|`` first
(an undefined change counts as infinite), then the added ones, then the removed ones;
ties by name.
"""

from __future__ import annotations

import math

import numpy as np

from ..log.events import Events
from .stats import (
    ALPHA,
    IntArray,
    change_interval,
    exact_sum,
    mann_whitney,
    percentile_rank,
    thin,
)
from .types import Diff, DiffRow, DiffSide

MIN_EVENTS = 2
TEST_NAME = "mann-whitney-u"
VERDICTS = ("slower", "faster", "same", "added", "removed")


def scope_durations(ev: Events) -> dict[str, IntArray]:
    """Each scope's event durations in ``ev``, sorted ascending (int64 ns)."""
    out: dict[str, IntArray] = {}
    if ev.dur.size == 0:
        return out
    key = ev.name.astype(np.int64)
    counts = np.bincount(key, minlength=len(ev.names))
    order = np.argsort(key, kind="stable")
    dur = ev.dur[order].astype(np.int64, copy=False)
    bounds = np.concatenate(([0], np.cumsum(counts)))
    for i in np.flatnonzero(counts).tolist():
        seg = dur[bounds[i] : bounds[i + 1]]
        name = ev.names[i]
        if name in out:  # the same name twice in ``names``: one scope all the same
            seg = np.concatenate((out[name], seg))
        seg.sort()
        out[name] = seg
    return out


def _stats(durations: IntArray) -> DiffSide:
    """SPEC's per-run statistics of one scope; ``durations`` sorted and not empty."""
    n = int(durations.size)
    total = exact_sum(durations)
    return {
        "count": n,
        "total_ns": total,
        "mean_ns": total / n,
        "p50_ns": int(durations[percentile_rank(n, 50)]),
        "p99_ns": int(durations[percentile_rank(n, 99)]),
    }


def _verdict(
    change: float | None,
    z: float,
    interval: tuple[float, float] | None,
    base_p50: int,
    new_p50: int,
    limit: float,
) -> str:
    """The verdict of a scope whose U test is significant (rules 3 and 4 above)."""
    if change is None:  # base mean 0, new mean not: an unbounded increase
        return "slower" if z > 0 else "same"
    if change > limit and z > 0:
        if interval is None or interval[0] > 0 or new_p50 > base_p50 * (1.0 + limit):
            return "slower"
    elif change < -limit and z < 0:
        if interval is None or interval[1] < 0 or new_p50 < base_p50 * (1.0 - limit):
            return "faster"
    return "same"


def _compare(name: str, base: IntArray, new: IntArray, threshold: float) -> DiffRow:
    """The diff entry of a scope present in both runs."""
    bstats, nstats = _stats(base), _stats(new)
    bmean, nmean = bstats["mean_ns"], nstats["mean_ns"]
    change: float | None
    if bmean > 0:
        change = nmean / bmean - 1.0
    else:
        change = 0.0 if nmean == 0 else None
    p_value: float | None = None
    interval: tuple[float, float] | None = None
    verdict = "same"
    if base.size >= MIN_EVENTS and new.size >= MIN_EVENTS:
        z, p_value = mann_whitney(thin(base), thin(new))
        interval = change_interval(base, new)
        if p_value < ALPHA:
            verdict = _verdict(
                change, z, interval, bstats["p50_ns"], nstats["p50_ns"], threshold / 100.0
            )
    return {
        "name": name,
        "base": bstats,
        "new": nstats,
        "change": change,
        "verdict": verdict,
        "p_value": p_value,
        "change_ci": None if interval is None else [interval[0], interval[1]],
    }


def _sort_key(row: DiffRow) -> tuple[int, float, str]:
    verdict = row["verdict"]
    if verdict == "added":
        return 1, 0.0, row["name"]
    if verdict == "removed":
        return 2, 0.0, row["name"]
    change = row["change"]
    return 0, (-math.inf if change is None else -abs(change)), row["name"]


def build_diff(base: Events, new: Events, *, threshold: float = 5.0) -> Diff:
    """The JSON diff object of SPEC.md: how ``new`` differs from ``base``, per scope.

    ``threshold`` is the smallest relative change of the mean, in percent, that can make
    a scope "slower" or "faster"; see the module docstring for the statistics.
    """
    if not (threshold >= 0.0) or math.isinf(threshold):
        raise ValueError(f"threshold must be a finite percentage >= 0, not {threshold!r}")
    before = scope_durations(base)
    after = scope_durations(new)
    rows: list[DiffRow] = []
    for name, durations in before.items():
        other = after.get(name)
        if other is None:
            rows.append(
                {
                    "name": name,
                    "base": _stats(durations),
                    "new": None,
                    "change": None,
                    "verdict": "removed",
                    "p_value": None,
                    "change_ci": None,
                }
            )
        else:
            rows.append(_compare(name, durations, other, threshold))
    for name, durations in after.items():
        if name not in before:
            rows.append(
                {
                    "name": name,
                    "base": None,
                    "new": _stats(durations),
                    "change": None,
                    "verdict": "added",
                    "p_value": None,
                    "change_ci": None,
                }
            )
    rows.sort(key=_sort_key)
    return {
        "base": list(base.sources),
        "new": list(new.sources),
        "threshold": float(threshold),
        "alpha": ALPHA,
        "test": TEST_NAME,
        "scopes": rows,
    }


def regressions(diff: Diff, fail_above_pct: float) -> list[str]:
    """Names of the scopes that are "slower" by more than ``fail_above_pct`` percent.

    A "slower" scope whose change is undefined (a base mean of 0) exceeds every limit.
    """
    limit = fail_above_pct / 100.0
    return [
        row["name"]
        for row in diff["scopes"]
        if row["verdict"] == "slower" and (row["change"] is None or row["change"] > limit)
    ]
