"""Turn ``Events`` into the report: per-scope statistics, groups, processes.

The result is the JSON object of ``SPEC.md`` (``liteprof report --format json``,
documented in ``docs/REPORT.md``); every report renderer formats this one dictionary.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .._version import __version__
from ..log.events import Events
from .stats import exact_sums, percentile_rank

BY_CHOICES = ("process", "thread")


def group_of(name: str) -> str | None:
    """The text before the first ``:``; ``None`` for a name without one."""
    head, sep, _ = name.partition(":")
    return head if sep else None


def _key_dtype(n: int) -> Any:
    # numpy's stable sort is a radix sort for 16-bit keys: O(n) for the usual few scopes.
    return np.uint16 if n <= 0xFFFF else np.int64


def grouped_stats(key: np.ndarray, n_keys: int, ev: Events) -> list[dict[str, Any]]:
    """Statistics of the events for each key value in ``[0, n_keys)`` that occurs."""
    if key.size == 0:
        return []
    occurring = None
    if n_keys > 4 * key.size + 65536:
        # Sparse keys (many names times many threads, say, in a forged log): number the
        # keys that occur rather than allocate a counter for every possible one.
        occurring, key = np.unique(key, return_inverse=True)
        n_keys = int(occurring.size)
    key = key.astype(_key_dtype(n_keys), copy=False)
    counts = np.bincount(key, minlength=n_keys)
    present = np.flatnonzero(counts)
    order = np.argsort(key, kind="stable")
    dur = ev.dur[order]
    bounds = np.concatenate(([0], np.cumsum(counts[present])))
    starts = bounds[:-1]
    totals = exact_sums(dur, starts)
    selfs = exact_sums(ev.self_ns[order], starts)
    errors = np.add.reduceat(ev.error[order].astype(np.int64), starts)
    del order
    rows: list[dict[str, Any]] = []
    for i, k in enumerate(present.tolist()):
        a, b = int(bounds[i]), int(bounds[i + 1])
        seg = dur[a:b]
        seg.sort()
        n = b - a
        rows.append(
            {
                "key": k if occurring is None else int(occurring[k]),
                "count": n,
                "errors": int(errors[i]),
                "total_ns": totals[i],
                "self_ns": selfs[i],
                "mean_ns": totals[i] / n,
                "min_ns": int(seg[0]),
                "p50_ns": int(seg[percentile_rank(n, 50)]),
                "p90_ns": int(seg[percentile_rank(n, 90)]),
                "p99_ns": int(seg[percentile_rank(n, 99)]),
                "max_ns": int(seg[-1]),
            }
        )
    return rows


def _scope_row(name: str, stats: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {"name": name, "group": group_of(name)}
    row.update((k, v) for k, v in stats.items() if k != "key")
    return row


def _order(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(
        rows, key=lambda r: (-r["total_ns"], r["name"], r.get("pid") or 0, r.get("tid") or 0)
    )


def _split_rows(
    ev: Events,
    part: np.ndarray,
    n_parts: int,
    describe: Callable[[Any], dict[str, Any]],
) -> list[dict[str, Any]]:
    """One row per (scope, part): ``part`` is each event's process or thread index (-1:
    unknown); ``describe(index or None)`` gives the row's identifying fields."""
    n = n_parts + 1  # the last slot: events whose process or thread is unknown
    key = ev.name.astype(np.int64) * n + np.where(part < 0, n - 1, part)
    rows = []
    for s in grouped_stats(key, len(ev.names) * n, ev):
        name_idx, p = divmod(s["key"], n)
        row = _scope_row(ev.names[name_idx], s)
        row.update(describe(p if p < n_parts else None))
        rows.append(row)
    return _order(rows)


def build_report(ev: Events, by: str | None = None) -> dict[str, Any]:
    """The report object of SPEC.md; ``by`` splits scope rows per process or thread."""
    if by not in (None, *BY_CHOICES):
        raise ValueError(f"by must be one of {BY_CHOICES}, not {by!r}")
    n_names = len(ev.names)
    per_name = grouped_stats(ev.name, n_names, ev)
    name_rows = [_scope_row(ev.names[s["key"]], s) for s in per_name]

    if by is None:
        scopes = _order(name_rows)
    elif by == "process":

        def process(p: int | None) -> dict[str, Any]:
            return {"pid": ev.processes[p]["pid"] if p is not None else None}

        scopes = _split_rows(ev, ev.proc, len(ev.processes), process)
    else:

        def thread(t: int | None) -> dict[str, Any]:
            if t is None:
                return {"pid": None, "tid": None, "thread": None}
            info = ev.threads[t]
            pid = ev.processes[info["proc"]]["pid"]
            return {"pid": pid, "tid": info["tid"], "thread": info["name"]}

        scopes = _split_rows(ev, ev.thread, len(ev.threads), thread)

    return {
        "liteprof_version": __version__,
        "sources": list(ev.sources),
        "records": ev.records,
        "skipped": ev.skipped,
        "wall_ns": ev.wall_ns,
        "scopes": scopes,
        "groups": _groups(name_rows, ev),
        "processes": [
            {k: p[k] for k in ("pid", "name", "host", "rank", "records")} for p in ev.processes
        ],
        "cross_process": _cross_process(ev),
    }


def _groups(name_rows: list[dict[str, Any]], ev: Events) -> list[dict[str, Any]]:
    by_name = {r["name"]: r for r in name_rows}
    groups: dict[str, list[dict[str, Any]]] = {}
    for name in ev.names:  # names are numbered in order of first appearance
        row = by_name.get(name)
        if row is None or row["group"] is None:
            continue
        groups.setdefault(row["group"], []).append(row)
    out = []
    for group, rows in groups.items():
        total = sum(r["total_ns"] for r in rows)
        out.append(
            {
                "group": group,
                "total_ns": total,
                "scopes": [
                    {
                        "name": r["name"],
                        "total_ns": r["total_ns"],
                        "share": (r["total_ns"] / total) if total else 0.0,
                    }
                    for r in _order(rows)
                ],
            }
        )
    return out


def _cross_process(ev: Events) -> list[dict[str, Any]]:
    """Per scope, how its total spreads over processes, so that a straggler stands out."""
    n_proc = len(ev.processes)
    if n_proc < 2 or ev.dur.size == 0:
        return []
    known = ev.proc >= 0
    key = ev.name[known].astype(np.int64) * n_proc + ev.proc[known]
    if key.size == 0:  # only text logs had events: no process to compare
        return []
    weights = ev.dur[known].astype(np.float64)
    if len(ev.names) * n_proc <= 4 * key.size + 65536:
        counts = np.bincount(key, minlength=len(ev.names) * n_proc)
        pairs = np.flatnonzero(counts)
        pair_totals = np.bincount(key, weights=weights, minlength=counts.size)[pairs]
        del counts
    else:
        # Many names times many processes: only the (name, process) pairs that occur,
        # never a names x processes matrix.
        pairs, inverse = np.unique(key, return_inverse=True)
        pair_totals = np.bincount(inverse, weights=weights)
    pair_names = pairs // n_proc
    cuts = np.flatnonzero(np.diff(pair_names)) + 1
    out: list[dict[str, Any]] = []
    for first, end in zip([0, *cuts.tolist()], [*cuts.tolist(), int(pairs.size)]):
        name = ev.names[int(pair_names[first])]
        present = pairs[first:end] % n_proc
        vals = pair_totals[first:end]
        slow = int(present[int(np.argmax(vals))])
        proc = ev.processes[slow]
        out.append(
            {
                "name": name,
                "processes": int(present.size),
                "min_total_ns": int(vals.min()),
                "median_total_ns": int(np.median(vals)),
                "max_total_ns": int(vals.max()),
                "slowest": {"pid": proc["pid"], "name": proc["name"], "rank": proc["rank"]},
                "spread": float(vals.max() / vals.min()) if vals.min() > 0 else None,
            }
        )
    out.sort(key=lambda r: -int(r["max_total_ns"]))
    return out
