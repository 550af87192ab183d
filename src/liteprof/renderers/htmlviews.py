"""What the HTML page draws from the events themselves, aggregated to a bounded size.

The report and diff objects carry per-scope figures; the page also shows what only the
events know: duration distributions, totals per process and scope (the straggler view),
and a timeline strip of one window.
Each function here reduces millions of events with a few vectorised numpy passes to at
most a few thousand numbers, so a page's size does not grow with the log: the limits
below are what keep a 10M-event page to a few hundred kB of data.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..log.events import Events

MAX_DIST_SCOPES = 40
"""Scopes (largest total first) whose duration distribution the page can show."""
PER_DECADE = 10
"""Histogram bins per factor of ten of duration (log-spaced: 26% wide each)."""
MAX_MATRIX_SCOPES = 30
MAX_MATRIX_PROCS = 256
N_COLOURS = 10
"""Scopes (largest total first) drawn in a colour of their own; the rest are grey."""
MAX_TIMELINE_EVENTS = 4000
"""Bars in the timeline strip; in a busier window the longest events are kept."""
MIN_WIDTH = 2000
"""An event shorter than the window over this draws as less than a pixel: left out."""
MAX_TIMELINE_ROWS = 48
"""Thread (and asyncio task) rows in the timeline strip; the busiest are kept."""
MAX_TIMELINE_DEPTH = 16
"""Nesting levels drawn per row; deeper events are drawn on the last level."""


def scope_index(ev: Events, names: Sequence[str]) -> np.ndarray:
    """Per event, the position of its name in ``names`` (-1: not among them).

    A name may appear more than once in ``ev.names`` (one entry per file that used it);
    every entry maps to the same position.
    """
    where = {n: i for i, n in enumerate(names)}
    lut = np.array([where.get(n, -1) for n in ev.names] or [-1], dtype=np.int64)
    if ev.records == 0:
        return np.zeros(0, dtype=np.int64)
    out: np.ndarray = lut[ev.name]
    return out


def log_edges(lo: int, hi: int) -> np.ndarray:
    """Log-spaced bin edges (ns) covering ``[lo, hi]``, ``PER_DECADE`` per decade."""
    a = math.floor(math.log10(max(1, lo)) * PER_DECADE)
    b = math.floor(math.log10(max(1, hi)) * PER_DECADE) + 1
    edges: np.ndarray = np.power(10.0, np.arange(a, b + 1) / PER_DECADE)
    return edges


def _bins(dur: np.ndarray, first: int, n_bins: int) -> np.ndarray:
    """Each duration's bin number among edges starting at 10**(first/PER_DECADE).

    float32 logarithms: twice as fast as float64 on millions of events, and a bin is 26%
    wide, so a rounding error of 1e-7 moves only a duration within 1e-7 of an edge.
    """
    pos = np.log10(np.maximum(dur, 1).astype(np.float32)) * np.float32(PER_DECADE)
    out: np.ndarray = np.clip(np.floor(pos).astype(np.int64) - first, 0, n_bins - 1)
    return out


def distributions(
    runs: Sequence[Events], names: Sequence[str], max_scopes: int = MAX_DIST_SCOPES
) -> dict[str, Any] | None:
    """Histograms of each scope's durations on shared log-spaced bins, one per run.

    ``names`` are the scopes to show, in order (the first ``max_scopes`` are kept). The
    result: ``edges`` (ns, ``n_bins + 1`` of them) and per scope ``counts`` (one list of
    ``n_bins`` counts per run), trimmed to the bins the scope uses: ``lo`` is the first.
    """
    names = list(names)[:max_scopes]
    if not names or all(ev.records == 0 for ev in runs):
        return None
    keys = [scope_index(ev, names) for ev in runs]
    lo, hi = None, None
    big = np.iinfo(np.int64).max
    for ev, key in zip(runs, keys):
        shown = key >= 0
        if shown.any():
            a, b = (
                int(ev.dur.min(where=shown, initial=big)),
                int(ev.dur.max(where=shown, initial=0)),
            )
            lo, hi = (a, b) if lo is None or hi is None else (min(lo, a), max(hi, b))
    if lo is None or hi is None:
        return None
    edges = log_edges(lo, hi)
    first = round(math.log10(edges[0]) * PER_DECADE)
    n_bins = int(edges.size - 1)
    per_run = []
    size = len(names) * n_bins
    for ev, key in zip(runs, keys):
        # Events of other scopes count in one extra slot, dropped: no masked copies.
        flat = np.where(key >= 0, key * n_bins + _bins(ev.dur, first, n_bins), size)
        counts = np.bincount(flat, minlength=size + 1)[:size]
        per_run.append(counts.reshape(-1, n_bins))
    scopes = []
    for i, name in enumerate(names):
        total = sum(counts[i] for counts in per_run)
        used = np.flatnonzero(total)
        if used.size == 0:
            continue
        a, b = int(used[0]), int(used[-1]) + 1
        scopes.append(
            {"name": name, "lo": a, "counts": [counts[i, a:b].tolist() for counts in per_run]}
        )
    return {"edges": [float(f"{e:.6g}") for e in edges.tolist()], "scopes": scopes}


def process_label(p: Mapping[str, Any], hosts: int = 1) -> str:
    """``rank 2 · pid 123 (VllmWorker-2)``; the host too where the run spans hosts."""
    parts = [] if p.get("rank") is None else [f"rank {p['rank']}"]
    parts.append(f"pid {p.get('pid')} ({p.get('name')})")
    if hosts > 1:
        parts.append(f"on {p.get('host')}")
    return " · ".join(parts)


def process_matrix(
    ev: Events, names: Sequence[str], max_scopes: int = MAX_MATRIX_SCOPES
) -> dict[str, Any] | None:
    """Each process's total of each scope: the straggler view (``None`` for < 2 processes).

    ``totals[p][s]`` is process ``p``'s total ns of scope ``s`` (``None`` where it never
    ran it); ``ratio`` the same over the scope's median across the processes that ran it.
    ``stragglers`` lists, per scope, the slowest process and how far it is from the median.
    Processes beyond ``MAX_MATRIX_PROCS`` are left out, least busy first.
    """
    n_proc = len(ev.processes)
    names = list(names)[:max_scopes]
    if n_proc < 2 or not names or ev.records == 0:
        return None
    key = scope_index(ev, names)
    keep = (key >= 0) & (ev.proc >= 0)
    if not keep.any():
        return None
    flat = ev.proc[keep].astype(np.int64) * len(names) + key[keep]
    size = n_proc * len(names)
    totals = np.bincount(flat, weights=ev.dur[keep].astype(np.float64), minlength=size)
    ran = np.bincount(flat, minlength=size) > 0
    totals, ran = totals.reshape(n_proc, -1), ran.reshape(n_proc, -1)
    procs = np.flatnonzero(ran.any(axis=1))
    if procs.size < 2:
        return None
    if procs.size > MAX_MATRIX_PROCS:
        busy = totals[procs].sum(axis=1)
        procs = np.sort(procs[np.argsort(-busy, kind="stable")[:MAX_MATRIX_PROCS]])
    totals, ran = totals[procs], ran[procs]
    masked = np.where(ran, totals, np.nan)
    with np.errstate(all="ignore"):
        median = np.nanmedian(masked, axis=0)
        ratio = masked / median
    hosts = len({ev.processes[int(p)].get("host") for p in procs})
    labels = [process_label(ev.processes[int(p)], hosts) for p in procs]
    stragglers: list[dict[str, Any]] = []
    for s, name in enumerate(names):
        col = np.flatnonzero(ran[:, s])
        if col.size < 2:
            continue
        slow = int(col[np.argmax(totals[col, s])])
        stragglers.append(
            {
                "name": name,
                "process": labels[slow],
                "rank": ev.processes[int(procs[slow])].get("rank"),
                "total_ns": int(totals[slow, s]),
                "median_ns": float(median[s]),
                "ratio": None if not median[s] > 0 else float(totals[slow, s] / median[s]),
                "processes": int(col.size),
            }
        )
    stragglers.sort(key=lambda r: -(r["ratio"] or 0.0))

    def cells(a: np.ndarray, digits: int) -> list[list[float | None]]:
        return [[None if math.isnan(v) else round(v, digits) for v in row] for row in a.tolist()]

    return {
        "processes": labels,
        "scopes": names,
        "totals": cells(masked, 0),
        "ratio": cells(ratio, 4),
        "stragglers": stragglers,
    }


def _focus(ev: Events, names: Sequence[str]) -> tuple[int, str] | None:
    """The row of the longest event of the heaviest repeated scope, and that scope."""
    key = scope_index(ev, names)
    counts = np.bincount(key[key >= 0], minlength=len(names))
    for s in np.flatnonzero(counts >= 2).tolist():
        return int(np.argmax(np.where(key == s, ev.dur, -1))), names[s]
    return None


def timeline(
    ev: Events,
    names: Sequence[str],
    max_events: int = MAX_TIMELINE_EVENTS,
    max_rows: int = MAX_TIMELINE_ROWS,
) -> dict[str, Any] | None:
    """The events of one window of the run, one row per thread (and asyncio task).

    The window: the longest event of the heaviest scope that ran more than once (a slow
    step, say), with a quarter of its length either side; the whole run where no scope
    repeats. Times are ms from the window's start. ``None`` without start times.
    """
    if ev.records == 0 or ev.first_ns is None or ev.last_ns is None or ev.has_text_logs:
        return None
    known = ev.thread >= 0
    if not known.any():
        return None
    focus = _focus(ev, names)
    if focus is None:
        w0, w1, about = ev.first_ns, ev.last_ns, None
    else:
        row, about = focus
        s, d = int(ev.start[row]), int(ev.dur[row])
        w0, w1 = max(ev.first_ns, s - d // 4), min(ev.last_ns, s + d + d // 4)
        if w1 <= w0:
            w0, w1 = s, s + max(1, d)
    inside = known & (ev.start < w1) & (ev.start + ev.dur > w0)
    rows = np.flatnonzero(inside)
    in_window = int(rows.size)
    if rows.size == 0:
        return None
    # One row of the strip per (thread, lane); the busiest rows when there are too many.
    lane_key = ev.thread[rows].astype(np.int64) * (int(ev.lane.max()) + 1) + ev.lane[rows]
    uniq, which, per = np.unique(lane_key, return_inverse=True, return_counts=True)
    which = which.reshape(-1)
    if uniq.size > max_rows:
        kept = np.sort(np.argsort(-per, kind="stable")[:max_rows])
        remap = np.full(uniq.size, -1, dtype=np.int64)
        remap[kept] = np.arange(kept.size)
        which = remap[which]
        rows, which = rows[which >= 0], which[which >= 0]
        uniq = uniq[kept]
    # Events shorter than a pixel or so draw nothing but cost the browser: keep the ones
    # that show (the longest ``max_events`` of them), or the longest where none would.
    visible = ev.dur[rows] >= (w1 - w0) / MIN_WIDTH
    if np.count_nonzero(visible) >= min(rows.size, 100):
        rows, which = rows[visible], which[visible]
    if rows.size > max_events:
        longest = np.argpartition(-ev.dur[rows], max_events - 1)[:max_events]
        longest.sort()
        rows, which = rows[longest], which[longest]
    depth = np.minimum(ev.depth[rows], MAX_TIMELINE_DEPTH - 1).astype(np.int64)
    levels = np.zeros(uniq.size, dtype=np.int64)
    np.maximum.at(levels, which, depth + 1)
    offset = np.concatenate(([0], np.cumsum(levels)[:-1]))
    n_lanes = int(ev.lane.max()) + 1
    labels = []
    for k in uniq.tolist():
        t, lane = divmod(k, n_lanes)
        info = ev.threads[t]
        proc = ev.processes[info["proc"]] if 0 <= info["proc"] < len(ev.processes) else {}
        rank = "" if proc.get("rank") is None else f"rank {proc['rank']} · "
        label = f"{rank}pid {proc.get('pid')} · {info.get('name') or info.get('tid')}"
        labels.append(label + (f" · task {lane}" if lane else ""))
    # The scopes with a colour of their own (the page's first ``N_COLOURS``), then "other".
    coloured = {n: k for k, n in enumerate(names[:N_COLOURS])}
    slot_of = np.array([coloured.get(n, N_COLOURS) for n in ev.names], dtype=np.int64)
    name_rows = ev.name[rows]
    start = np.maximum(ev.start[rows], w0)  # drawn within the window
    dur = np.minimum(ev.start[rows] + ev.dur[rows], w1) - start
    return {
        "window_ns": [int(w0), int(w1)],
        "offset_ms": round((w0 - ev.first_ns) / 1e6, 6),
        "about": about,
        "in_window": in_window,
        "shown": int(rows.size),
        "rows": labels,
        "row_offset": offset.tolist(),
        "bars": {
            "series": slot_of[name_rows].tolist(),
            "name": [ev.names[i] for i in name_rows.tolist()],
            "x0": [round(v, 6) for v in ((start - w0) / 1e6).tolist()],
            "dur": [round(v, 6) for v in (dur / 1e6).tolist()],
            "y": (offset[which] + depth).tolist(),
        },
    }
