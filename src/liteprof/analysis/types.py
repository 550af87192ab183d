"""The typed results of the analysis: the report, the call tree, groups and the diff.

Each ``TypedDict`` here is one JSON object of ``docs/REPORT.md``, field for field. Large
tables (``scopes``, ``groups``, ``tree``, ``cross_process``) are ``Rows``: a read-only
sequence kept as numpy columns that builds each row's dict when it is read, so that a
report of a million scopes costs a few arrays, not a million dicts. ``list(rows)`` gives
plain dicts; ``renderers/json.py`` writes the JSON straight from the columns.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Callable, TypedDict, TypeVar, Union, overload

# -- the report ---------------------------------------------------------------------------


class _ScopeRowRequired(TypedDict):
    name: str
    group: str | None
    count: int
    errors: int
    total_ns: int
    self_ns: int
    mean_ns: float
    min_ns: int
    p50_ns: int
    p90_ns: int
    p99_ns: int
    max_ns: int


class ScopeRow(_ScopeRowRequired, total=False):
    """One scope (one name); with ``--by`` one scope in one process or thread."""

    pid: int | None
    tid: int | None
    thread: str | None


class GroupScope(TypedDict):
    """One scope of a group: its time counted once, its part of the group, its parent."""

    name: str
    total_ns: int
    share: float
    parent: str | None


class GroupRow(TypedDict):
    """One group (the text before the first ``:`` of its scopes' names)."""

    group: str
    total_ns: int
    scopes: Sequence[GroupScope]


class ProcessRow(TypedDict):
    pid: int
    name: str
    host: str
    rank: int | None
    records: int
    warnings: list[str]  # why others could replace the log (docs/FORMAT.md, header)
    dropped: int  # events a bounded log (LITEPROF_MAX_MB) folded into its summary


class Slowest(TypedDict):
    pid: int
    name: str
    rank: int | None


class CrossProcessRow(TypedDict):
    """How one scope's total spreads over the processes that ran it."""

    name: str
    processes: int
    min_total_ns: int
    median_total_ns: int
    max_total_ns: int
    slowest: Slowest
    spread: float | None


class TreeNode(TypedDict):
    """One distinct path of nested scopes."""

    path: list[str]
    name: str
    depth: int
    count: int
    errors: int
    total_ns: int
    self_ns: int
    p50_ns: int
    p99_ns: int


class Report(TypedDict):
    """The JSON report of ``liteprof report --format json``."""

    liteprof_version: str
    sources: list[str]
    records: int
    skipped: int
    wall_ns: int | None
    scopes: Sequence[ScopeRow]
    groups: Sequence[GroupRow]
    processes: list[ProcessRow]
    cross_process: Sequence[CrossProcessRow]
    tree: Sequence[TreeNode]


# -- the diff -----------------------------------------------------------------------------


class DiffSide(TypedDict):
    """One run's statistics of one scope."""

    count: int
    total_ns: int
    mean_ns: float
    p50_ns: int
    p99_ns: int


class DiffRow(TypedDict):
    name: str
    base: DiffSide | None
    new: DiffSide | None
    change: float | None
    verdict: str
    p_value: float | None
    change_ci: list[float] | None


class Diff(TypedDict):
    """The JSON diff of ``liteprof diff --format json``."""

    base: list[str]
    new: list[str]
    threshold: float
    alpha: float
    test: str
    scopes: list[DiffRow]


Result = Union[Report, Diff]
"""What a renderer draws."""

# -- rows kept as columns -----------------------------------------------------------------

INT, FLOAT, STR = "int", "float", "str"
"""Kinds of a field of ``Rows``, for writers: never ``None``."""
OPT_INT, OPT_FLOAT, OPT_STR = "int?", "float?", "str?"
"""The same, or ``None``."""
PATH = "path"
"""A list of ``str``."""
ROWS = "rows"
"""Nested ``Rows``."""
ANY = "json"
"""Anything JSON can hold (dicts, lists, ...)."""

R = TypeVar("R")

BLOCK = 4096
"""Rows built at a time when iterating."""


class Rows(Sequence[R]):
    """A table's rows as a read-only sequence of dicts, built from columns when read.

    ``fields`` are the keys of every row, ``kinds`` their kinds (``INT``, ``STR``, ...),
    which tell a writer how to write a value without looking at it. ``columns(start,
    stop)`` gives the values of rows ``[start, stop)``, one Python list per field: what
    both the dicts and the writers are made from. Rows compare equal to any sequence of
    equal dicts.
    """

    __slots__ = ("fields", "kinds", "_n", "_columns")

    def __init__(
        self,
        fields: Sequence[str],
        kinds: Sequence[str],
        n: int,
        columns: Callable[[int, int], list[list[Any]]],
    ) -> None:
        if len(fields) != len(kinds):
            raise ValueError("one kind per field")
        self.fields = tuple(fields)
        self.kinds = tuple(kinds)
        self._n = int(n)
        self._columns = columns

    @classmethod
    def empty(cls, fields: Sequence[str], kinds: Sequence[str]) -> Rows[Any]:
        return cls(fields, kinds, 0, lambda a, b: [[] for _ in fields])

    def columns(self, start: int = 0, stop: int | None = None) -> list[list[Any]]:
        """The values of rows ``[start, stop)``, one list per field."""
        stop = self._n if stop is None else min(stop, self._n)
        start = max(0, min(start, stop))
        if start == stop:
            return [[] for _ in self.fields]
        return self._columns(start, stop)

    def blocks(self, size: int = BLOCK) -> Iterator[list[list[Any]]]:
        """``columns()`` of consecutive runs of ``size`` rows, front to back."""
        for start in range(0, self._n, size):
            yield self.columns(start, start + size)

    def __len__(self) -> int:
        return self._n

    def _dicts(self, start: int, stop: int) -> list[R]:
        fields = self.fields
        return [dict(zip(fields, values)) for values in zip(*self.columns(start, stop))]  # type: ignore[misc]

    @overload
    def __getitem__(self, index: int) -> R: ...

    @overload
    def __getitem__(self, index: slice) -> list[R]: ...

    def __getitem__(self, index: int | slice) -> R | list[R]:
        if isinstance(index, slice):
            start, stop, step = index.indices(self._n)
            if step == 1:
                return self._dicts(start, max(start, stop))
            return [self[i] for i in range(start, stop, step)]
        i = index + self._n if index < 0 else index
        if not 0 <= i < self._n:
            raise IndexError("row index out of range")
        return self._dicts(i, i + 1)[0]

    def __iter__(self) -> Iterator[R]:
        for start in range(0, self._n, BLOCK):
            yield from self._dicts(start, start + BLOCK)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, (str, bytes)):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Rows({self._n} rows: {', '.join(self.fields)})"


def plain(value: Any) -> Any:
    """``value`` with every ``Rows`` inside turned into a list of dicts (for ``json``,
    ``pickle`` or comparisons with plain data)."""
    if isinstance(value, Rows):
        return [plain(row) for row in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value
