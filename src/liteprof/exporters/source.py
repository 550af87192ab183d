"""Where exporters get their events: whole logs in memory, or chunk by chunk.

``stream`` reads binary logs one chunk at a time (what the reader reads at once: one
block run of a file, at most 32 MiB of slots), hands each chunk to a callback as an
``Events`` and keeps nothing, so a streaming exporter's memory does not grow with the
number of events. It drives the reader's own per-file decoding (``reader._read_binary``
with a builder that forwards each batch instead of storing it), so the checks, lanes and
names are exactly those of ``read_logs``; only parent linking, which needs a whole
file, is left out.

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
from ..log.scan import read_header
from .base import Window

_INT64_MAX = np.iinfo(np.int64).max


class _Forward(R.Builder):
    """A reader builder that hands each decoded batch on instead of collecting it."""

    def __init__(self, sink: Callable[[Events], None]) -> None:
        super().__init__()
        self.sink = sink
        self.anchor = 0
        self.records = 0

    def reserve(self, extra: int) -> None:  # nothing is stored
        pass

    def add(self, **values: Any) -> None:
        dur = values["dur"]
        k = int(dur.shape[0])
        if k == 0:
            return
        cols: dict[str, np.ndarray] = {}
        for key, dtype in COLUMNS:
            value = values[key]
            if isinstance(value, np.ndarray):
                cols[key] = value.astype(dtype, copy=False)
            else:
                cols[key] = np.full(k, value, dtype=dtype)
        if self.anchor:
            start = cols["start"]
            if self.anchor > 0:
                start = np.minimum(start, _INT64_MAX - self.anchor)
            cols["start"] = start + self.anchor
        self.records += k
        self.sink(_events(self.sources, self.names, self.processes, self.threads, cols))


def binary_files(paths: list[str]) -> list[str]:
    """The log files ``paths`` name; a vLLM text log among them is an error here."""
    files = R.expand_paths(paths)
    for path in files:
        head = R._read_head(path)
        if head == F.MAGIC or (path.endswith(F.SUFFIX) and F.MAGIC.startswith(head)):
            continue  # a log, or one whose header was never written (skipped, as in reports)
        if path.endswith(F.SUFFIX):
            raise LogError(f"{path}: not a liteprof log")
        raise LogError(
            f"{path}: a vLLM text log has no start times or threads to put on a timeline "
            "(the folded and parquet formats take it)"
        )
    return files


def stream(paths: list[str], sink: Callable[[Events], None]) -> Events:
    """Read the binary logs ``paths`` chunk by chunk into ``sink``.

    Returns an ``Events`` without rows that holds what was learnt on the way: the name,
    process and thread tables, ``skipped``, ``first_ns`` and ``last_ns``.
    """
    builder = _Forward(sink)
    builder.sources = [os.fspath(p) for p in paths]
    for path in binary_files(builder.sources):
        if R._read_head(path) != F.MAGIC:
            builder.skipped += 1  # a log whose header was never written (see read_logs)
            continue
        try:
            with open(path, "rb") as fh:
                anchor = read_header(fh, path).wall_of(0)
        except OSError as exc:
            raise LogError(f"cannot read {path}: {exc.strerror}") from None
        builder.anchor = anchor or 0
        R._read_binary(path, builder)
    empty = {key: np.zeros(0, dtype) for key, dtype in COLUMNS}
    out = _events(builder.sources, builder.names, builder.processes, builder.threads, empty)
    out.skipped, out.first_ns, out.last_ns = builder.skipped, builder.first, builder.last
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
