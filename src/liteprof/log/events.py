"""The event model: events of one or more logs as parallel numpy columns.

What every reader produces and every analysis, renderer and exporter consumes: one
element per event, and small tables (``names``, ``processes``, ``threads``) that the
columns index. Rows are grouped by file, then by thread; within a thread they are in
the order the scopes closed (so children come before their parent).

Layout, for speed and memory: every column is a read-only numpy array of the dtype in
``COLUMNS``. A column that holds one value for every event (``proc`` when one file was
read, ``lane`` without asyncio tasks or greenlets, ``parent`` and ``depth`` without
nesting, ``error`` without errors, everything but ``name``, ``dur`` and ``self_ns`` for
vLLM text logs) is a zero-stride view (``numpy.broadcast_to``) that costs no memory, and
``self_ns`` is ``dur`` itself where no event has a child (a flat profile, a text log);
the others are views of the reader's preallocated columns. Index, mask, compare and
reduce them freely; to modify one, copy it first (``np.array(ev.proc)``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any, overload

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


_BLOCK = 1 << 16
"""Names made into ``str`` objects at a time when iterating."""
_HASH_STEP = 1 << 14
"""Names hashed at a time: the temporaries stay a few MiB."""


def _places(size: np.ndarray) -> np.ndarray:
    """``0, 1, ..., size[0] - 1, 0, 1, ...``: each byte's place in its span."""
    places: np.ndarray = np.arange(int(size.sum()), dtype=np.int64)
    places -= np.repeat(np.cumsum(size) - size, size)
    return places


def _hash_spans(data: np.ndarray, start: np.ndarray, size: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each span ``data[start[i] : start[i] + size[i]]``, equal for equal
    bytes: the length, plus each byte times a fixed random word for its place."""
    longest = int(size.max()) if size.size else 0
    weights = np.random.default_rng(0x6C70).integers(
        1, 1 << 63, longest, dtype=np.uint64, endpoint=True
    )
    out = size.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    for a in range(0, size.size, _HASH_STEP):
        b = min(a + _HASH_STEP, size.size)
        length = size[a:b]
        place = _places(length)
        terms = data[np.repeat(start[a:b], length) + place].astype(np.uint64)
        terms *= weights[place]
        full = np.flatnonzero(length > 0)
        if full.size:
            offsets = (np.cumsum(length) - length)[full]
            out[a:b][full] += np.add.reduceat(terms, offsets)
    return out


class Names(Sequence[str]):
    """Scope names: a read-only list of ``str`` whose bulk is one packed text.

    A log of a million distinct names would otherwise hold a million ``str`` objects
    (about 80 bytes each for a 22-character name, beyond the text itself). Here the
    names a metadata block defines together are one ``str`` and the offsets where each
    name starts in it: a name is sliced out when it is read, and ``take`` slices many at
    C speed. Names added one at a time (``append``) are kept as they come, after the
    packed ones. It compares equal to any sequence of the same strings.
    """

    __slots__ = ("_text", "_bounds", "_packed", "_more")

    def __init__(self, names: Iterable[str] = ()) -> None:
        self._text = ""
        self._bounds: np.ndarray = np.zeros(1, np.int64)
        self._packed = 0
        self._more: list[str] = list(names)

    @classmethod
    def packed(cls, text: str, bounds: np.ndarray) -> Names:
        """Name ``i`` is ``text[bounds[i]:bounds[i + 1]]``; ``bounds`` ascending, from 0."""
        out = cls()
        out._text = text
        out._bounds = np.asarray(bounds, dtype=np.int64)
        out._packed = int(out._bounds.size) - 1
        return out

    @classmethod
    def join(cls, parts: Sequence[Sequence[str]]) -> Names:
        """The names of ``parts`` one after the other, packed into one text."""
        packed = [p if isinstance(p, Names) and not p._more else cls._pack(p) for p in parts]
        if len(packed) == 1:
            return packed[0]
        offsets = np.cumsum([0] + [len(p._text) for p in packed]).tolist()
        bounds = [np.zeros(1, np.int64)]
        bounds += [p._bounds[1:] + base for p, base in zip(packed, offsets)]
        return cls.packed("".join(p._text for p in packed), np.concatenate(bounds))

    @classmethod
    def _pack(cls, names: Iterable[str]) -> Names:
        names = list(names)
        lengths = np.fromiter(map(len, names), np.int64, len(names))
        return cls.packed("".join(names), np.concatenate(([0], np.cumsum(lengths))))

    def append(self, name: str) -> None:
        self._more.append(name)

    def extend(self, names: Iterable[str]) -> None:
        if isinstance(names, Names) and not len(self) and not names._more:
            self._text, self._bounds, self._packed = names._text, names._bounds, names._packed
            return
        self._more.extend(names)

    def __len__(self) -> int:
        return self._packed + len(self._more)

    def _slice(self, a: int, b: int) -> list[str]:
        """Names ``[a, b)`` (``0 <= a <= b <= len``)."""
        out: list[str] = []
        p = self._packed
        if a < p:
            bounds = self._bounds[a : min(b, p) + 1].tolist()
            out = list(map(self._text.__getitem__, map(slice, bounds, bounds[1:])))
        if b > p:
            out += self._more[max(a - p, 0) : b - p]
        return out

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> list[str]: ...

    def __getitem__(self, index: int | slice) -> str | list[str]:
        n = len(self)
        if isinstance(index, slice):
            start, stop, step = index.indices(n)
            if step == 1:
                return self._slice(start, max(start, stop))
            return [self[i] for i in range(start, stop, step)]
        i = index + n if index < 0 else index
        if not 0 <= i < n:
            raise IndexError("name index out of range")
        if i < self._packed:
            return self._text[int(self._bounds[i]) : int(self._bounds[i + 1])]
        return self._more[i - self._packed]

    def take(self, index: np.ndarray) -> list[str]:
        """``[self[i] for i in index]`` (every ``i`` in range), at C speed."""
        index = np.asarray(index)
        if index.size == 0:
            return []
        if self._more and int(index.max()) >= self._packed:
            more, p = self._more, self._packed
            return [self[i] if i < p else more[i - p] for i in index.tolist()]
        starts = self._bounds[index]
        ends = self._bounds[index + 1]
        return list(map(self._text.__getitem__, map(slice, starts.tolist(), ends.tolist())))

    def _ascii(self) -> np.ndarray | None:
        """The packed text as bytes, if every name is packed and ASCII (a byte a char)."""
        if self._more or not self._text.isascii():  # isascii: O(1) on a str
            return None
        return np.frombuffer(self._text.encode("ascii"), np.uint8)

    def hashes(self) -> np.ndarray | None:
        """A 64-bit hash of each name, equal for equal names, computed on the packed text
        without making a ``str`` per name; ``None`` unless every name is packed ASCII."""
        data = self._ascii()
        if data is None:
            return None
        return _hash_spans(data, self._bounds[:-1], np.diff(self._bounds))

    def heads(self, sep: str) -> tuple[np.ndarray, list[str]] | None:
        """Per name, the number of its text before the first ``sep`` (-1 where it has
        none), numbered in order of first appearance, and those texts; as ``str.find``
        and a ``dict`` would give them, on the packed text. ``None`` unless every name is
        packed ASCII and ``sep`` one ASCII character (or if two heads' hashes collide)."""
        data = self._ascii()
        if data is None or len(sep) != 1 or not sep.isascii():
            return None
        n, starts, ends = self._packed, self._bounds[:-1], self._bounds[1:]
        marks = np.flatnonzero(data == ord(sep))
        out = np.full(n, -1, np.int32 if n < 1 << 31 else np.int64)
        if marks.size == 0:
            return out, []
        at = marks[np.minimum(np.searchsorted(marks, starts), marks.size - 1)]
        rows = np.flatnonzero((at >= starts) & (at < ends))
        del marks
        head, length = starts[rows], at[rows] - starts[rows]
        del at
        key = _hash_spans(data, head, length)
        _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        del key
        inverse = inverse.reshape(-1)
        # Equal hashes must be equal heads: checked byte by byte, else ``None``.
        rep = first[inverse]
        if not np.array_equal(length, length[rep]):
            return None
        for a in range(0, rows.size, _HASH_STEP):
            b = min(a + _HASH_STEP, rows.size)
            size = length[a:b]
            place = _places(size)
            mine = np.repeat(head[a:b], size) + place
            theirs = np.repeat(head[rep[a:b]], size) + place
            if not np.array_equal(data[mine], data[theirs]):
                return None
        del rep
        order = np.argsort(first, kind="stable")  # classes in order of first appearance
        number = np.empty(order.size, np.int64)
        number[order] = np.arange(order.size)
        out[rows] = number[inverse]
        firsts = first[order]
        texts = [
            self._text[a : a + k] for a, k in zip(head[firsts].tolist(), length[firsts].tolist())
        ]
        return out, texts

    def __iter__(self) -> Iterator[str]:
        # Blocks of names chained in C: no generator step per name.
        p = self._packed
        blocks = (self._slice(a, min(a + _BLOCK, p)) for a in range(0, p, _BLOCK))
        return chain(chain.from_iterable(blocks), self._more)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, (str, bytes)):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Names({list(self)!r})" if len(self) <= 20 else f"Names({len(self)} names)"


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
    names: Sequence[str]
    """Scope names; ``name`` indexes this list (each name once). A ``Names`` when read
    from logs; ``Names.take`` picks many."""
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
