"""Read liteprof logs (``docs/FORMAT.md``) and vLLM lite-profiler text logs into ``Events``.

Vectorised with numpy: the slots of a file are read in large chunks straight into one
structured array and the events selected with masks; Python loops only run per file, per
block, per name and per nesting level. The structure of a file (header, blocks,
metadata) comes from ``scan.py``, which a live reader shares.
"""

from __future__ import annotations

import os
import stat
from typing import Any, BinaryIO

import numpy as np

from . import format as F
from .errors import LogError
from .events import COLUMNS, Events
from .scan import Header, read_header, read_metadata, scan_blocks
from .text import read_text

SLOT_DTYPE = np.dtype(F.NUMPY_DTYPE_SPEC)
_INT64_MAX = np.iinfo(np.int64).max
# A parent's start and end may differ from its child's by the rounding of two clock
# conversions; anything beyond this is not nesting but damage (or a lost parent).
_NESTING_SLACK_NS = 1000


class Builder:
    """Collects events into preallocated columns (one copy of each event, no concatenation)."""

    def __init__(self) -> None:
        self.sources: list[str] = []
        self.names: list[str] = []
        self.name_index: dict[str, int] = {}
        self.cols: dict[str, np.ndarray] = {name: np.empty(0, dt) for name, dt in COLUMNS}
        self.n = 0
        self.processes: list[dict[str, Any]] = []
        self.threads: list[dict[str, Any]] = []
        self.skipped = 0
        self.first: int | None = None
        self.last: int | None = None
        self.text = False

    def intern(self, name: str) -> int:
        idx = self.name_index.get(name)
        if idx is None:
            idx = self.name_index[name] = len(self.names)
            self.names.append(name)
        return idx

    def span(self, first: int, last: int) -> None:
        self.first = first if self.first is None else min(self.first, first)
        self.last = last if self.last is None else max(self.last, last)

    def reserve(self, extra: int) -> None:
        """Make room for ``extra`` more events (amortised doubling)."""
        need = self.n + extra
        cap = self.cols["name"].shape[0]
        if need <= cap:
            return
        new_cap = max(need, 2 * cap)
        for key, col in self.cols.items():
            bigger = np.empty(new_cap, col.dtype)
            bigger[: self.n] = col[: self.n]
            self.cols[key] = bigger

    def add(self, **values: Any) -> None:
        """Append one batch; every column of ``COLUMNS`` is given (an array or a scalar)."""
        k = int(values["dur"].shape[0])
        self.reserve(k)
        for key, col in self.cols.items():
            col[self.n : self.n + k] = values[key]
        self.n += k

    def build(self) -> Events:
        n = self.n
        # Views, not copies: the unused tail of the reservation is the price of never
        # holding two copies of the events at once.
        cols = {key: col[:n] for key, col in self.cols.items()}
        return Events(
            sources=self.sources,
            names=self.names,
            processes=self.processes,
            threads=self.threads,
            skipped=self.skipped,
            first_ns=self.first,
            last_ns=self.last,
            has_text_logs=self.text,
            **cols,
        )


def expand_paths(paths: list[str]) -> list[str]:
    """The log files that ``paths`` name: directories give their ``*.lpf`` files."""
    files: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            try:
                entries = sorted(os.listdir(path))
            except OSError as exc:
                raise LogError(f"cannot read directory {path}: {exc.strerror}") from None
            found = [
                os.path.join(path, e)
                for e in entries
                if e.endswith(F.SUFFIX) and os.path.isfile(os.path.join(path, e))
            ]
            if not found:
                raise LogError(f"no liteprof logs (*{F.SUFFIX}) in directory {path}")
            files.extend(found)
        elif os.path.exists(path):
            files.append(path)
        else:
            raise LogError(f"no such file or directory: {path}")
    return files


def read_logs(paths: list[str]) -> Events:
    """Read log directories, liteprof log files and vLLM text logs into one ``Events``."""
    builder = Builder()
    builder.sources = [os.fspath(p) for p in paths]
    files = expand_paths(builder.sources)
    heads = [_read_head(path) for path in files]
    # Every slot of a binary log could be an event: reserve for all of them at once.
    builder.reserve(
        sum(
            max(0, os.path.getsize(path) - F.HEADER_SIZE) // F.SLOT_SIZE
            for path, head in zip(files, heads)
            if head == F.MAGIC
        )
    )
    for path, head in zip(files, heads):
        if head == F.MAGIC:
            _read_binary(path, builder)
        elif path.endswith(F.SUFFIX) and F.MAGIC.startswith(head):
            # A log whose header never got (fully) written: a writer that failed or was
            # killed at once. Nothing in it to read; it must not pass for a text log,
            # which would make the wall time of every other log unknown.
            builder.skipped += 1
        else:
            read_text(path, builder)
    return builder.build()


def _read_head(path: str) -> bytes:
    """The first bytes of ``path``, which must be a regular file.

    A pipe or a device (``/dev/zero``, a FIFO named on the command line) would block the
    reader or never end, so anything but a regular file is refused; ``O_NONBLOCK`` keeps
    the open itself from waiting for a FIFO's writer.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags | getattr(os, "O_BINARY", 0))
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise LogError(f"{path}: not a regular file")
            return os.pread(fd, len(F.MAGIC), 0)
        finally:
            os.close(fd)
    except OSError as exc:
        raise LogError(f"cannot read {path}: {exc.strerror}") from None


# -- liteprof binary logs -----------------------------------------------------------------


def _read_binary(path: str, b: Builder) -> None:
    try:
        size = os.path.getsize(path)
        with open(path, "rb", buffering=0) as fh:
            header = read_header(fh, path)
            proc = len(b.processes)
            b.processes.append(header.process(path))
            nslots = (size - F.HEADER_SIZE) // F.SLOT_SIZE if size > F.HEADER_SIZE else 0
            tail = (size - F.HEADER_SIZE) % F.SLOT_SIZE if size > F.HEADER_SIZE else 0
            if tail:
                # A cut file: the torn last slot is a damaged record if anything was in it
                # (the writer only ever grows files by whole blocks, so a live log never
                # has a tail).
                fh.seek(size - tail)
                if any(fh.read(tail)):
                    b.skipped += 1
            if nslots:
                _read_blocks(fh, nslots, header, proc, b)
    except OSError as exc:
        raise LogError(f"cannot read {path}: {exc.strerror}") from None


_CHUNK_SLOTS = 1 << 20  # 32 MiB of slots read at a time: memory stays flat per file


def _read_slots(fh: Any, first: int, count: int, out: np.ndarray) -> np.ndarray:
    """Slots ``[first, first + count)`` of the open log (fewer if the file is shorter)."""
    buf = out[:count]
    fh.seek(F.HEADER_SIZE + first * F.SLOT_SIZE)
    got = fh.readinto(memoryview(buf).cast("B"))  # type: ignore[arg-type]
    return buf[: (got or 0) // F.SLOT_SIZE]


def _chunks(segments: list[tuple[int, int, int]]) -> list[list[tuple[int, int, int]]]:
    """Group segments into reads: consecutive in the list and adjacent in the file, at
    most ``_CHUNK_SLOTS`` slots each (a larger, forged block is cut into pieces)."""
    out: list[list[tuple[int, int, int]]] = []
    group: list[tuple[int, int, int]] = []
    for first, end, owner in segments:
        while end - first > _CHUNK_SLOTS:
            if group:
                out.append(group)
                group = []
            out.append([(first, first + _CHUNK_SLOTS, owner)])
            first += _CHUNK_SLOTS
        if group and (group[-1][1] != first or end - group[0][0] > _CHUNK_SLOTS):
            out.append(group)
            group = []
        group.append((first, end, owner))
    if group:
        out.append(group)
    return out


def _read_blocks(fh: BinaryIO, nslots: int, header: Header, proc: int, b: Builder) -> None:
    blocks = scan_blocks(fh, nslots)
    b.skipped += blocks.skipped
    meta = read_metadata(fh, blocks)
    b.skipped += meta.skipped
    name_ids = {ident: b.intern(text) for ident, text in meta.names.items()}
    thread_ids: dict[int, int] = {}
    for ident, (tid, tname) in meta.threads.items():
        thread_ids[ident] = len(b.threads)
        b.threads.append({"proc": proc, "tid": tid, "name": tname})

    # A thread's events in the order they closed: its blocks in the order they were
    # allocated (their place in the file), each read front to back.
    segments = sorted(blocks.segments, key=lambda s: (s[2], s[0]))
    first_row = b.n
    buf = np.empty(min(_CHUNK_SLOTS, max(nslots, 1)), SLOT_DTYPE)
    lo_start: int | None = None
    hi_end: int | None = None
    records = 0
    lane_index: dict[int, int] = {}
    for group in _chunks(segments):
        c_first = group[0][0]
        view = _read_slots(fh, c_first, group[-1][1] - c_first, buf)
        owner_of = np.full(view.shape[0], -1, dtype=np.int32)
        block_of = np.zeros(view.shape[0], dtype=np.int32)
        for i, (first, end, owner) in enumerate(group):
            owner_of[first - c_first : end - c_first] = thread_ids.get(owner, -2)
            block_of[first - c_first : end - c_first] = i
        in_thread = owner_of != -1
        kind = view["flags"] & F.KIND_MASK
        lane_at = in_thread & (kind == F.KIND_LANE)
        b.skipped += int(
            np.count_nonzero(in_thread & (kind != 0) & (kind != F.KIND_EVENT) & ~lane_at)
        )
        is_event = in_thread & (kind == F.KIND_EVENT)
        lane = _lanes(view, lane_at, block_of, lane_index) if lane_at.any() else None
        sel = np.flatnonzero(is_event)
        del in_thread, kind, lane_at, is_event
        if sel.size == 0:
            continue
        ev = view[sel]
        thread_of = owner_of[sel]
        lane_of = lane[sel] if lane is not None else np.zeros(sel.size, np.int32)
        del owner_of, block_of
        gname = _map_names(ev["name"], name_ids)
        dur = ev["dur"]
        child = ev["child"]
        start = ev["start"]
        # A monotonic clock never reads negative: a negative start, like a negative
        # duration, is a damaged slot (and starts >= 0 keep start + dur from overflowing).
        valid = (gname >= 0) & (dur >= 0) & (child >= 0) & (start >= 0) & (thread_of >= 0)
        nvalid = int(np.count_nonzero(valid))
        b.skipped += int(valid.size - nvalid)
        if nvalid == 0:
            continue
        if nvalid != valid.size:
            ev, gname, thread_of, lane_of = (
                ev[valid],
                gname[valid],
                thread_of[valid],
                lane_of[valid],
            )
            dur, child, start = ev["dur"], ev["child"], ev["start"]
        lo = int(start.min())
        # start + dur without int64 overflow: forged durations near 2**63 must not wrap.
        hi = int((start + np.minimum(dur, _INT64_MAX - start)).max())
        lo_start = lo if lo_start is None else min(lo_start, lo)
        hi_end = hi if hi_end is None else max(hi_end, hi)
        flags = ev["flags"]
        b.add(
            name=gname,
            start=start,
            dur=dur,
            self_ns=dur - np.minimum(child, dur),
            depth=(flags >> F.DEPTH_SHIFT) & F.MAX_DEPTH,
            error=(flags & F.FLAG_ERROR) != 0,
            proc=proc,
            thread=thread_of,
            lane=lane_of,
            parent=-1,
        )
        records += nvalid
    b.processes[proc]["records"] = records
    if not records:
        return
    rows = slice(first_row, b.n)
    anchor = header.wall_of(0)
    if anchor is not None:
        # Wall clock: monotonic + (wall - mono) from the header's anchors. A forged start
        # near 2**63 saturates rather than wraps.
        start_col = b.cols["start"][rows]
        if anchor > 0:
            np.minimum(start_col, _INT64_MAX - anchor, out=start_col)
        start_col += anchor
        assert lo_start is not None and hi_end is not None
        b.span(anchor + lo_start, anchor + hi_end)
    link_parents(b, rows)


def _lanes(
    view: np.ndarray, lane_at: np.ndarray, block_of: np.ndarray, index: dict[int, int]
) -> np.ndarray:
    """Each slot's lane: the last lane slot before it in its own block, else lane 0.

    Lane ids in the file are opaque u64s; ``index`` numbers them densely for the whole
    file (0 stays 0, the lane of code outside any asyncio task or greenlet).
    """
    marks = np.flatnonzero(lane_at)
    uniq, inverse = np.unique(view["start"][marks].view(np.uint64), return_inverse=True)
    for raw in uniq.tolist():
        if raw not in index:
            index[raw] = 0 if raw == 0 else len(index) + (0 not in index)
    dense = np.array([index[raw] for raw in uniq.tolist()], dtype=np.int32)[inverse]
    # The slot index of the lane slot in force at each slot, if it is in the same block.
    at = np.full(view.shape[0], -1, dtype=np.int64)
    at[marks] = marks
    np.maximum.accumulate(at, out=at)
    starts = np.flatnonzero(np.r_[True, block_of[1:] != block_of[:-1]])
    block_first = np.repeat(starts, np.diff(np.r_[starts, block_of.size]))
    has = at >= block_first
    lane = np.zeros(view.shape[0], dtype=np.int32)
    lane[has] = dense[np.searchsorted(marks, at[has])]
    return lane


def link_parents(b: Builder, rows: slice) -> None:
    """Fill ``parent`` for the events of one file, ``rows`` of the builder's columns.

    Within one thread and one lane, events are in the order they closed, so a scope's
    direct children closed before it and after its previous sibling: the parent of an
    event at depth ``d`` is the first later event of the same thread and lane at depth
    ``d - 1``, provided it contains the child in time (a parent that never closed, or
    was lost, must not adopt its children's later cousins). One vectorised search per
    nesting level, no loop per event.
    """
    depth = b.cols["depth"][rows].astype(np.int64)
    n = int(depth.size)
    if n == 0 or int(depth.max()) == 0:
        return
    stream = b.cols["thread"][rows].astype(np.int64) * (1 << 31) + b.cols["lane"][rows]
    if n > 1 and bool(np.any(stream[1:] < stream[:-1])):
        # Lanes interleave within a thread: group each lane's events, keeping their order.
        order = np.argsort(stream, kind="stable")
    else:
        order = np.arange(n, dtype=np.int64)
    d_sorted = depth[order]
    s_sorted = stream[order]
    start = b.cols["start"][rows][order]
    end = start + b.cols["dur"][rows][order]
    by_depth = np.argsort(d_sorted, kind="stable")
    counts = np.bincount(d_sorted)
    offsets = np.r_[0, np.cumsum(counts)]
    parent = b.cols["parent"][rows]
    base = rows.start
    for d in np.flatnonzero(counts).tolist():
        if d == 0 or counts[d - 1] == 0:
            continue
        kids = by_depth[offsets[d] : offsets[d + 1]]
        above = by_depth[offsets[d - 1] : offsets[d]]
        at = np.searchsorted(above, kids)
        found = at < above.size
        cand = above[np.minimum(at, above.size - 1)]
        found &= s_sorted[cand] == s_sorted[kids]
        found &= start[cand] <= start[kids] + _NESTING_SLACK_NS
        found &= end[cand] + _NESTING_SLACK_NS >= end[kids]
        parent[order[kids[found]]] = order[cand[found]] + base


def _map_names(name_raw: np.ndarray, name_ids: dict[int, int]) -> np.ndarray:
    """File name ids -> global name indices; ``-1`` for an id no metadata entry defines.

    Ids are 32-bit and come from the file: a dense lookup table is only built when it is
    small (the writer numbers names 0, 1, 2, ...); a forged id like 2**32-1 would otherwise
    make it 32 GiB. Otherwise the ids are looked up in the sorted list of defined ones.
    """
    if not name_ids:
        return np.full(name_raw.shape, -1, dtype=np.int64)
    top = max(name_ids)
    if top < 4 * len(name_ids) + 1024:
        lut = np.full(top + 2, -1, dtype=np.int64)
        for fid, gid in name_ids.items():
            lut[fid] = gid
        return lut[np.minimum(name_raw, top + 1).astype(np.int64)]  # type: ignore[no-any-return]
    keys = np.array(sorted(name_ids), dtype=np.int64)
    values = np.array([name_ids[k] for k in keys.tolist()], dtype=np.int64)
    raw = name_raw.astype(np.int64)
    at = np.minimum(np.searchsorted(keys, raw), keys.size - 1)
    return np.where(keys[at] == raw, values[at], -1)
