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
from collections.abc import Callable
from typing import Any

import numpy as np

from ..log import format as F
from ..log import reader as R
from ..log.errors import LogError
from ..log.events import COLUMNS, Events
from ..log.scan import header_never_written
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
        raise LogError(
            f"{path}: a vLLM text log has no start times or threads to put on a timeline "
            "(the folded and parquet formats take it)"
        )
    return files


def stream(paths: list[str], sink: Callable[[Events], None]) -> Events:
    """Read the binary logs ``paths`` one file at a time into ``sink``.

    Each chunk is one file's events as ``read_logs`` gives them, renumbered into the
    name, process and thread tables of all files so far (which only grow). Returns an
    ``Events`` without rows holding those tables, ``skipped``, ``first_ns`` and
    ``last_ns``.
    """
    sources = [os.fspath(p) for p in paths]
    names: list[str] = []
    index: dict[str, int] = {}
    processes: list[dict[str, Any]] = []
    threads: list[dict[str, Any]] = []
    skipped = 0
    first: int | None = None
    last: int | None = None
    seen: set[tuple[int, int]] = set()
    for path in binary_files(sources):
        st = os.stat(path)
        if (st.st_dev, st.st_ino) in seen:
            continue  # named twice (a directory and a file in it): read once
        seen.add((st.st_dev, st.st_ino))
        one = R.read_logs([path])
        skipped += one.skipped
        if one.first_ns is not None:
            first = one.first_ns if first is None else min(first, one.first_ns)
        if one.last_ns is not None:
            last = one.last_ns if last is None else max(last, one.last_ns)
        lut = np.empty(len(one.names), np.int32)
        for i, name in enumerate(one.names):
            found = index.get(name)
            if found is None:
                found = index[name] = len(names)
                names.append(name)
            lut[i] = found
        proc_base, thread_base = len(processes), len(threads)
        processes.extend(one.processes)
        threads.extend(dict(t, proc=int(t["proc"]) + proc_base) for t in one.threads)
        if one.records == 0:
            continue
        cols = {
            "name": lut[one.name],
            "start": one.start,
            "dur": one.dur,
            "self_ns": one.self_ns,
            "depth": one.depth,
            "error": one.error,
            "proc": np.asarray(one.proc, np.int32) + proc_base,
            "thread": np.asarray(one.thread, np.int32) + thread_base,
            "lane": np.asarray(one.lane),
            "parent": one.parent,
        }
        sink(_events(sources, names, processes, threads, cols))
    empty = {key: np.zeros(0, dtype) for key, dtype in COLUMNS}
    out = _events(sources, names, processes, threads, empty)
    out.skipped, out.first_ns, out.last_ns = skipped, first, last
    return out


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
    names: list[str],
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
