"""Where exporters get their events: whole logs in memory, or chunk by chunk.

``stream`` reads binary logs one file at a time and hands each file's events to a
callback as an ``Events`` (``read_logs`` of that file, so every check, lane and name is
the reader's), keeping none of them: a streaming exporter holds one file's events at a
time, not the whole run's.

``select`` applies a ``Window`` to events read whole, keeping the nesting readable: a
kept event's parent becomes its nearest kept ancestor.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..log import format as F
from ..log import reader as R
from ..log.errors import LogError
from ..log.events import COLUMNS, Events
from ..log.scan import BlockMap, Metadata, header_never_written, read_metadata, rescan, slot_count
from .base import Window

_INT64_MAX = np.iinfo(np.int64).max


def _kind(path: str) -> str:
    """``"binary"``, ``"unwritten"`` (a ``.lpf`` whose header never got written) or
    ``"text"``: what the reader takes ``path`` for."""
    with R._open(path) as fh:
        try:
            head = fh.read(len(F.MAGIC))
        except OSError as exc:
            raise LogError(f"cannot read {path}: {R._reason(exc)}") from None
    if head == F.MAGIC:
        return "binary"
    if path.endswith(F.SUFFIX) and header_never_written(head):
        return "unwritten"
    return "text"


def binary_files(paths: list[str]) -> list[str]:
    """The log files ``paths`` name; a vLLM text log among them is an error here."""
    files = R.expand_paths(paths)
    for path in files:
        if _kind(path) != "text":
            continue  # a log, or one whose header was never written (skipped, as in reports)
        if path.endswith(F.SUFFIX):
            raise LogError(f"{path}: not a liteprof log")
        # Only a file that reads as a text log is called one: the text reader refuses
        # anything else (random bytes, a file of other text) with its own message.
        R.read_logs([path])
        raise LogError(
            f"{path}: a vLLM text log has no start times or threads to put on a timeline "
            "(the folded and parquet formats take it)"
        )
    return files


CHUNK_SLOTS = 1 << 16
"""Slots of a file read into one chunk (8 MiB): what a streaming exporter holds at once."""


class _Tables:
    """The name, process and thread tables shared by every chunk of one export."""

    def __init__(self, sources: list[str]) -> None:
        self.sources = sources
        self.names: list[str] = []
        self.index: dict[str, int] = {}
        self.processes: list[dict[str, Any]] = []
        self.threads: list[dict[str, Any]] = []
        self.skipped = 0
        self.first: int | None = None
        self.last: int | None = None

    def lut(self, names: Sequence[str]) -> np.ndarray:
        """Indices into ``self.names`` of ``names`` (added where new)."""
        out = np.empty(len(names), np.int32)
        for i, name in enumerate(names):
            found = self.index.get(name)
            if found is None:
                found = self.index[name] = len(self.names)
                self.names.append(name)
            out[i] = found
        return out

    def span(self, first: int | None, last: int | None) -> None:
        if first is not None:
            self.first = first if self.first is None else min(self.first, first)
        if last is not None:
            self.last = last if self.last is None else max(self.last, last)

    def chunk(self, cols: dict[str, np.ndarray]) -> Events:
        return _events(self.sources, self.names, self.processes, self.threads, cols)


def keep_freed_memory() -> None:
    """Ask glibc's malloc to keep freed memory for reuse (Linux; elsewhere nothing).

    A streaming exporter makes the same few arrays of a chunk's size for every chunk;
    by default glibc maps each afresh and hands it back when freed, so every chunk pays
    its page faults again (a third of an export's time). Raising the mmap and trim
    thresholds keeps those pages in the process, which only holds a few chunks' worth.
    """
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    for option, value in ((-1, 256 << 20), (-3, 256 << 20)):  # M_TRIM_, M_MMAP_THRESHOLD
        try:
            mallopt(option, value)
        except Exception:  # noqa: BLE001 - a hint; never a failure
            return


def stream(paths: list[str], sink: Callable[[Events], None]) -> Events:
    """Read the binary logs ``paths`` into ``sink`` a chunk at a time, keeping none.

    A chunk is consecutive rows of one file (at most ``CHUNK_SLOTS`` slots' worth), so
    each thread's events arrive in the order they closed; its tables are those of all
    files so far (they only grow) and ``parent`` is -1 (linking needs a whole file).
    Returns an ``Events`` without rows holding the tables, ``skipped``, ``first_ns`` and
    ``last_ns``.
    """
    tables = _Tables([os.fspath(p) for p in paths])
    seen: set[tuple[int, int]] = set()

    def guarded(chunk: Events) -> None:
        # The sink writes the export: its OSError (a full disk, a closed pipe) must not
        # pass for a failure to read the log, which ``_stream_file`` reports as such.
        try:
            sink(chunk)
        except OSError as exc:
            raise _SinkError(exc) from exc

    try:
        for path in binary_files(tables.sources):
            _stream_file(path, tables, seen, guarded)
    except _SinkError as failed:
        raise failed.error from None
    out = tables.chunk({key: np.zeros(0, dtype) for key, dtype in COLUMNS})
    out.skipped, out.first_ns, out.last_ns = tables.skipped, tables.first, tables.last
    return out


class _SinkError(Exception):
    """An ``OSError`` of the sink, carried past the read errors' handler."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


def _stream_file(
    path: str, tables: _Tables, seen: set[tuple[int, int]], sink: Callable[[Events], None]
) -> None:
    """One binary log, chunk by chunk, decoded by the reader's own steps (its
    ``_cut_chunk``, ``_map_names``...), with the metadata read first: the events of a
    finished log are all defined by then."""
    with R._open(path) as fh:
        try:
            st = os.fstat(fh.fileno())
            identity = (st.st_dev, st.st_ino)
            if identity in seen:
                return  # named twice (a directory and a file in it): read once
            seen.add(identity)
            if fh.read(len(F.MAGIC)) != F.MAGIC:
                tables.skipped += 1  # a header that never got written
                return
            log = R._walk_open(fh, path, identity)
            _stream_open(fh, log, tables, sink)
        except OSError as exc:
            raise LogError(f"cannot read {path}: {R._reason(exc)}") from None


def _stream_open(fh: Any, log: Any, tables: _Tables, sink: Callable[[Events], None]) -> None:
    header, blocks = log.header, log.blocks
    proc = len(tables.processes)
    info = header.process(log.path)
    tables.processes.append(info)
    tables.skipped += blocks.skipped
    nslots, tail = slot_count(log.size)
    if tail:
        fh.seek(F.HEADER_SIZE + nslots * F.SLOT_SIZE)
        if any(fh.read(tail)):
            tables.skipped += 1
    meta = Metadata()
    complete = BlockMap(meta_blocks=[m for m in blocks.meta_blocks if m[0] - 1 < blocks.end])
    read_metadata(fh, complete, meta)
    read_metadata(fh, rescan(fh, blocks), meta)
    tables.skipped += meta.skipped
    thread_ids: dict[int, int] = {}
    for ident, (tid, tname) in meta.threads.items():
        thread_ids[ident] = len(tables.threads)
        tables.threads.append({"proc": proc, "tid": tid, "name": tname})
    anchor = header.wall_of(0) or 0
    lane_index: dict[int, int] = {}
    segments = sorted(blocks.segments, key=lambda s: (s[2], s[0]))
    buf = np.empty(min(R._CHUNK_SLOTS, max(blocks.capacity, 1)), R.SLOT_DTYPE)
    records = 0
    batch: list[tuple[int, int, int]] = []
    size = 0
    for i, seg in enumerate(segments):
        batch.append(seg)
        size += seg[1] - seg[0]
        if size < CHUNK_SLOTS and i + 1 < len(segments):
            continue
        b = R.Builder()
        b.reserve(size)
        rows = R._FileRows(first_row=0, pieces=[])
        cols = {key: b.column(key) for key in ("start", "dur", "self_ns", "name", "depth", "error")}
        for first, end, owner in batch:  # as reader._read_events, block by block
            piece_lo = b.n
            rows.lane_now = 0  # every block starts in lane 0
            while first < end:
                count = min(end - first, buf.shape[0])
                fh.seek(F.HEADER_SIZE + first * F.SLOT_SIZE)
                view = memoryview(buf[:count]).cast("B")  # type: ignore[arg-type]
                got = (fh.readinto(view) or 0) // F.SLOT_SIZE
                if got == 0:
                    break
                b.n += R._cut_chunk(buf[:got], b, cols, rows, lane_index, anchor)
                first += got
            if b.n > piece_lo:
                rows.pieces.append((piece_lo, b.n, owner))
        batch, size = [], 0
        n = b.n
        b.put("proc", 0, n, proc)
        if not rows.lanes:
            b.put("lane", 0, n, 0)
        for lo, hi, owner in rows.pieces:
            b.put("thread", lo, hi, thread_ids.get(owner, -1))
        b.put("parent", 0, n, -1)
        undefined = R._map_names(b, 0, n, meta.names)
        if undefined or any(owner not in thread_ids for _, _, owner in rows.pieces):
            kept = R._drop_undefined(b, 0, n)
            b.skipped += n - kept
            n = b.n = kept
            rows.lo, rows.hi = R._span(b, 0, n, anchor)
        tables.skipped += b.skipped
        records += n
        if n == 0:
            continue
        if header.wall_of(0) is not None and rows.lo is not None and rows.hi is not None:
            tables.span(rows.lo + anchor, rows.hi + anchor)
        one = b.build()
        lut = tables.lut(one.names)
        sink(
            tables.chunk(
                {
                    "name": lut[one.name],
                    "start": one.start,
                    "dur": one.dur,
                    "self_ns": one.self_ns,
                    "depth": one.depth,
                    "error": one.error,
                    "proc": np.full(n, proc, np.int32),
                    "thread": np.asarray(one.thread, np.int32),  # already global
                    "lane": np.asarray(one.lane),
                    "parent": np.full(n, -1, np.int64),
                }
            )
        )
    info["records"] = records


class Pids:
    """A pid per process that is unique within one export.

    Logs of several hosts (or of one host over time) can share a pid; viewers key
    processes by pid and would merge them, so a repeated one is replaced by a number of
    its own (``1 << 30`` plus the process's index).
    """

    def __init__(self) -> None:
        self.of: dict[int, int] = {}
        self.used: set[int] = set()

    def __call__(self, processes: list[dict[str, Any]], proc: int) -> int:
        pid = self.of.get(proc)
        if pid is None:
            raw = processes[proc].get("pid") if proc >= 0 else None
            pid = raw if isinstance(raw, int) and raw > 0 else 0
            if pid == 0 or pid in self.used:
                pid = (1 << 30) + max(proc, 0)
            self.of[proc] = pid
            self.used.add(pid)
        return pid

    def tid(self, processes: list[dict[str, Any]], proc: int, tid: int) -> int:
        """A thread id under the process's (maybe replaced) pid: the main thread's tid
        equals the pid and follows it."""
        pid = self(processes, proc)
        if proc >= 0 and tid == processes[proc].get("pid"):
            return pid
        return tid


def first_start(paths: list[str]) -> int | None:
    """The wall clock of the first event of the logs (a pass that keeps nothing)."""
    return stream(paths, lambda chunk: None).first_ns


def select(events: Events, window: Window) -> Events:
    """The events ``window`` keeps; each kept event's parent is its nearest kept
    ancestor (or -1), as a row of the result."""
    keep = window.mask(events, events.first_ns)
    if keep is None:
        return events
    parent = events.parent.copy()
    # Climb past dropped ancestors; one step per nesting level at most.
    while True:
        bad = parent >= 0
        bad[bad] = ~keep[parent[bad]]
        if not bad.any():
            break
        parent[bad] = events.parent[parent[bad]]
    rows = np.flatnonzero(keep)
    new_row = np.full(events.records, -1, dtype=np.int64)
    new_row[rows] = np.arange(rows.size, dtype=np.int64)
    cols: dict[str, np.ndarray] = {
        key: getattr(events, key)[rows] for key, _ in COLUMNS if key != "parent"
    }
    kept_parent = parent[rows]
    cols["parent"] = np.where(kept_parent >= 0, new_row[np.maximum(kept_parent, 0)], -1)
    out = _events(events.sources, events.names, events.processes, events.threads, cols)
    out.skipped, out.first_ns, out.last_ns = events.skipped, events.first_ns, events.last_ns
    out.has_text_logs = events.has_text_logs
    return out


def _events(
    sources: list[str],
    names: Sequence[str],
    processes: list[dict[str, Any]],
    threads: list[dict[str, Any]],
    cols: dict[str, np.ndarray],
) -> Events:
    return Events(
        sources=sources,
        names=names,
        processes=processes,
        threads=threads,
        name=cols["name"],
        start=cols["start"],
        dur=cols["dur"],
        self_ns=cols["self_ns"],
        depth=cols["depth"],
        error=cols["error"],
        proc=cols["proc"],
        thread=cols["thread"],
        lane=cols["lane"],
        parent=cols["parent"],
    )
