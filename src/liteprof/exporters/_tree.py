"""What the in-memory formats share: streams of one thread and lane, time order, stacks.

A stream is a thread's events in one lane (code outside asyncio tasks, or one task):
within it scopes nest strictly and rows are in the order they closed.
"""

from __future__ import annotations

import numpy as np

from ..log.events import Events

_INT64_MAX = np.iinfo(np.int64).max


def stream_keys(events: Events) -> np.ndarray:
    """int64 per row: one value per (thread, lane)."""
    return events.thread.astype(np.int64) * (1 << 32) + events.lane  # type: ignore[no-any-return]


def ends(events: Events) -> np.ndarray:
    """Each event's end (start + duration) without int64 overflow."""
    start = events.start
    return start + np.minimum(events.dur, _INT64_MAX - start)  # type: ignore[no-any-return]


def time_order(events: Events) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every event's begin and end in the order a stack-based viewer reads them.

    Returns ``(rows, is_begin, ts)``, sorted by stream, then time. For equal times the
    order is: ends before begins (a scope that closes at the moment the next opens),
    children's ends before their parents', parents' begins before their children's,
    and a zero-length event's begin right before its own end.
    """
    start, end, depth = events.start, ends(events), events.depth
    timed = events.dur > 0
    closing = np.arange(events.records, dtype=np.int64)
    end_rows = closing[timed]
    begin_rows = end_rows[np.argsort(depth[timed].astype(np.uint16), kind="stable")]
    zero = np.repeat(closing[~timed], 2)
    rows = np.concatenate([end_rows, begin_rows, zero])
    is_begin = np.ones(rows.size, np.bool_)
    is_begin[: end_rows.size] = False
    is_begin[end_rows.size + begin_rows.size + 1 :: 2] = False
    ts = np.where(is_begin, start[rows], end[rows])
    order = np.lexsort((ts, stream_keys(events)[rows]))
    return rows[order], is_begin[order], ts[order]


def stacks(events: Events) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Each event's call path as an id, and the table of paths.

    Returns ``(path, table)``: ``table[p] = (parent path or -1, name)``, so a path's
    names are found by following parents. Built one nesting level at a time, with one
    ``np.unique`` per level: no loop per event.
    """
    n = events.records
    parent = events.parent
    level = np.full(n, -1, np.int64)
    level[parent < 0] = 0
    todo = np.flatnonzero(parent >= 0)
    current = 0
    while todo.size:
        ready = level[parent[todo]] == current
        level[todo[ready]] = current + 1
        todo = todo[~ready]
        current += 1
        if current > n:  # a cycle can only come from damage; its rows become roots
            level[todo] = 0
            break
    path = np.full(n, -1, np.int64)
    table: list[tuple[int, int]] = []
    width = np.int64(len(events.names) + 1)
    for lv in range(int(level.max()) + 1 if n else 0):
        rows = np.flatnonzero(level == lv)
        if rows.size == 0:
            continue
        up = path[parent[rows]] if lv else np.full(rows.size, -1, np.int64)
        key = (up + 1) * width + events.name[rows]
        uniq, inv = np.unique(key, return_inverse=True)
        base = len(table)
        table.extend((int(k // width) - 1, int(k % width)) for k in uniq.tolist())
        path[rows] = base + inv.reshape(-1)
    return path, table


def path_names(table: list[tuple[int, int]], names: list[str]) -> list[list[str]]:
    """Each path of ``stacks``' table as its list of names, outermost first."""
    out: list[list[str]] = []
    for up, name in table:
        out.append((out[up] if up >= 0 else []) + [names[name]])
    return out


_MAX_LEVELS = 24  # beyond this many nesting levels, the time order is used instead


def dfs_order(seg_start: np.ndarray, depth: np.ndarray, has_begin: np.ndarray) -> np.ndarray | None:
    """Each event's begin and end in the order the scopes opened and closed.

    The rows are streams' events in the order they closed (post-order), each stream's
    rows contiguous; ``seg_start`` is each row's stream's first row, ``has_begin`` says
    which rows get a begin record (a scope that opened before these rows has none).
    Returns records ``2 * row + is_begin`` in that order, streams one after another, or
    ``None`` where the depths do not describe one forest (damage, or too deep).

    From the depths alone, so it does not depend on times that a clock's rounding may
    leave a few ns out of order: a scope's subtree is the run of deeper rows just
    before it, so its begin comes right before the end of the first row of that run
    (``first``), after the begins of the scopes around it that start there too.
    """
    m = int(depth.size)
    if m == 0:
        return np.zeros(0, np.int64)
    # int32 throughout: a chunk has far fewer than 2**31 rows, and half the bytes move.
    d = depth.astype(np.int32)
    per_level = np.bincount(d)
    levels = np.flatnonzero(per_level)
    if levels.size > _MAX_LEVELS:
        return None
    index = np.arange(m, dtype=np.int32)
    by_level = np.argsort(depth.astype(np.uint16), kind="stable")  # a radix sort
    bounds = np.r_[0, np.cumsum(per_level)]
    first = np.empty(m, np.int32)
    upto = np.empty(m, np.int32)
    for level in levels.tolist():
        rows = by_level[bounds[level] : bounds[level + 1]]
        # The last row at or above this level, up to each row: the one before a row's
        # subtree is the last such row before it.
        np.copyto(upto, index)
        upto[d > level] = -1
        np.maximum.accumulate(upto, out=upto)
        prev = upto[np.maximum(rows - 1, 0)]
        prev[rows == 0] = -1
        first[rows] = prev + 1
    np.maximum(first, seg_start.astype(np.int32, copy=False), out=first)
    every = bool(has_begin.all())
    begins = index if every else np.flatnonzero(has_begin).astype(np.int32)
    group = first if every else first[begins]
    counts = np.bincount(group, minlength=m).astype(np.int32)
    # The begins that share a first row are a chain of scopes around it, one per depth,
    # down to its own (when it has a begin): the outermost goes first. Where the chain
    # at row p starts: p ends and the begins of earlier rows come before it.
    start = np.cumsum(counts, dtype=np.int32)
    start -= counts
    start += index
    # A begin's rank in its chain is its depth less the chain's outermost depth.
    lowest = d - counts
    lowest += has_begin
    total = m + int(begins.size)
    rank = (d if every else d[begins]) - lowest[group]
    pos_begin = start[group]
    pos_begin += rank
    pos_end = start + counts  # a row ends right after the begins of its chain
    if begins.size and (int(rank.min()) < 0 or int((rank - counts[group]).max()) >= 0):
        return None
    out = np.full(total, -1, np.int64)
    out[pos_end] = index.astype(np.int64) * 2
    out[pos_begin] = begins.astype(np.int64) * 2 + 1
    if int(np.count_nonzero(out < 0)):  # two records on one place: not a forest
        return None
    return out
