"""The event model: events of one or more logs as parallel numpy columns.

What every reader produces and every analysis, renderer and exporter consumes: one
element per event, and small tables (``names``, ``processes``, ``threads``) that the
columns index. Rows are grouped by file, then by thread; within a thread they are in
the order the scopes closed (so children come before their parent).

Layout, for speed and memory: every column is a read-only numpy array of the dtype in
``COLUMNS``. A column that holds one value for every event (``proc`` when one file was
read, ``lane`` without asyncio tasks or greenlets, ``parent`` without nesting, everything
but ``name``, ``dur`` and ``self_ns`` for vLLM text logs) is a zero-stride view
(``numpy.broadcast_to``) that costs no memory; the others are views of the reader's
preallocated columns. Index, mask, compare and reduce them freely; to modify one, copy
it first (``np.array(ev.proc)``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

COLUMNS: tuple[tuple[str, Any], ...] = (
    ("name", np.int32),
    ("start", np.int64),
    ("dur", np.int64),
    ("self_ns", np.int64),
    ("depth", np.int32),
    ("error", np.bool_),
    ("proc", np.int32),
    ("thread", np.int32),
    ("lane", np.int32),
    ("parent", np.int64),
)
"""The columns of ``Events``, with their dtypes, in order."""


@dataclass(frozen=True)
class DroppedRow:
    """Events that a bounded log (``LITEPROF_MAX_MB``) dropped, summed for one (process,
    name): they are in no column of ``Events``, only here. Counts, errors, totals and the
    extremes are exact; the distribution is only known by histogram bucket."""

    proc: int
    """Index into ``processes``."""
    name: int
    """Index into ``names``."""
    count: int
    errors: int
    total_ns: int
    self_ns: int
    min_ns: int
    max_ns: int
    buckets: tuple[int, ...]
    """Events per duration bucket: ``buckets[i]`` counts durations ``<= bounds_ns[i]``
    (and above the bound before); the last bucket has no upper bound."""
    bounds_ns: tuple[int, ...]
    """The buckets' upper bounds in ns (``format.HISTOGRAM_BOUNDS_NS``: 1 µs to 100 s)."""


@dataclass
class Events:
    """Events of one or more logs as parallel arrays (one element per event).

    For events of vLLM text logs, which carry only a name and a duration, ``proc`` and
    ``thread`` are -1, ``start`` is 0 and ``parent`` is -1: unknown, not invented.
    """

    sources: list[str]
    names: list[str]
    """Scope names; ``name`` indexes this list (each name once)."""
    name: np.ndarray
    """int32: index into ``names``."""
    start: np.ndarray
    """int64: wall-clock ns when the scope was entered (monotonic clock plus the file's
    wall-clock anchor); 0 where unknown."""
    dur: np.ndarray
    """int64: elapsed ns."""
    self_ns: np.ndarray
    """int64: ``dur`` minus the time of scopes nested directly inside (same thread and
    lane)."""
    depth: np.ndarray
    """int32: nesting depth in its thread and lane, 0 for the outermost scopes."""
    error: np.ndarray
    """bool: the scope was left by an exception."""
    proc: np.ndarray
    """int32: index into ``processes``; -1 where unknown."""
    thread: np.ndarray
    """int32: index into ``threads``; -1 where unknown."""
    lane: np.ndarray
    """int32: the lane within its thread: 0 for code outside any asyncio task or
    greenlet, else a number per task (or greenlet) of the same file."""
    parent: np.ndarray
    """int64: row of the event that was open around this one in the same thread and
    lane; -1 for a root (or where the parent was not recorded)."""
    processes: list[dict[str, Any]] = field(default_factory=list)
    """pid, name, host, rank, records, path: one per binary log file."""
    threads: list[dict[str, Any]] = field(default_factory=list)
    """proc (index into ``processes``), tid (native id), name."""
    skipped: int = 0
    first_ns: int | None = None
    """Wall clock of the first start; ``None`` where unknown."""
    last_ns: int | None = None
    """Wall clock of the last end; ``None`` where unknown."""
    has_text_logs: bool = False
    dropped: list[DroppedRow] = field(default_factory=list)
    """What bounded logs dropped, per (process, name); empty for other logs. An analysis
    that reports counts, totals or errors adds these to the events' (``analysis/
    report.py`` does); percentiles stay those of the events kept."""

    @property
    def records(self) -> int:
        return int(self.dur.shape[0])

    @property
    def wall_ns(self) -> int | None:
        if self.first_ns is None or self.last_ns is None or self.has_text_logs:
            return None
        return self.last_ns - self.first_ns
