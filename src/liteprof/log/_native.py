"""The log writer's C helpers, compiled into the C core, with pure-Python stand-ins.

- The SIGBUS guard (``record/_guard.c``): mappings registered with ``watch`` survive
  another process truncating the file under them; ``faults`` counts the faults repaired.
  Without the C core there is no guard: ``watch`` returns -1 and ``faults`` stays 0 (the
  writer then checks the file's size with ``fstat`` at each new block instead).
- ``fold`` (``record/_fold.c``): adds the events of a recycled block of a bounded log to
  per-name records of the summary (``docs/FORMAT.md``, "Bounded logs").

The C helpers are used whichever recorder records, wherever the C core is built.
"""

from __future__ import annotations

import bisect
import struct
from array import array

from . import format as F

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

    FoldResult = tuple[int, int, int | None, int | None]
    """(events folded, events skipped as damaged, first start, last end); the last two
    are monotonic ns, ``None`` when nothing was folded."""

_U64 = 1 << 64


def _load() -> Any:
    try:
        from ..record import _core
    except ImportError:
        return None
    return _core if hasattr(_core, "_guard_watch") else None


_core = _load()

GUARDED: bool = _core is not None and bool(_core._guard_available())
"""Whether a truncated mapping is survived (the C core is built, on a POSIX system)."""


def watch(buffer: Any) -> int:
    """Guard the mapping behind ``buffer``; a handle for ``unwatch``, or -1 (unguarded)."""
    if not GUARDED:
        return -1
    return int(_core._guard_watch(buffer))


def unwatch(handle: int) -> None:
    """The mapping of ``handle`` is unmapped (or about to be): stop guarding it."""
    if handle >= 0:
        _core._guard_unwatch(handle)


def _no_faults() -> int:
    return 0


faults: Callable[[], int] = _core._guard_faults if GUARDED else _no_faults
"""``faults()``: how many SIGBUS faults in guarded mappings the guard has repaired in this
process (checked at every block, so the C function itself where there is one)."""


def record_size(nbuckets: int) -> int:
    """Bytes of one name's record in a fold accumulator (the record head excluded)."""
    return 8 * (F.RECORD_WORDS + nbuckets)


_EVENTS = struct.Struct("<qqqII")


def _py_fold(acc: bytearray, slots: Any, bounds: array[int]) -> FoldResult:
    """The same as ``_fold.c``, for an install without the C core (about 1 µs per event)."""
    nb = len(bounds) + 1
    words = F.RECORD_WORDS + nb
    nnames = len(acc) // (8 * words)
    table = list(struct.unpack(f"<{len(acc) // 8}Q", acc)) if acc else []
    bound_list = bounds.tolist()
    folded = skipped = 0
    first: int | None = None
    last: int | None = None
    for start, dur, child, name, flags in _EVENTS.iter_unpack(slots):
        if flags & F.KIND_MASK != F.KIND_EVENT:
            continue
        if start < 0 or dur < 0 or child < 0 or name >= nnames:
            skipped += 1
            continue
        r = name * words
        if table[r] == 0 or dur < table[r + 6]:
            table[r + 6] = dur
        if table[r] == 0 or dur > table[r + 7]:
            table[r + 7] = dur
        table[r] += 1
        if flags & F.FLAG_ERROR:
            table[r + 1] += 1
        total = table[r + 2] + dur
        if total >= _U64:
            total -= _U64
            table[r + 3] += 1
        table[r + 2] = total
        selfish = table[r + 4] + dur - min(child, dur)
        if selfish >= _U64:
            selfish -= _U64
            table[r + 5] += 1
        table[r + 4] = selfish
        table[r + F.RECORD_WORDS + bisect.bisect_left(bound_list, dur)] += 1
        end = start + dur
        first = start if first is None or start < first else first
        last = end if last is None or end > last else last
        folded += 1
    if folded:
        acc[:] = struct.pack(f"<{len(table)}Q", *table)
    return folded, skipped, first, last


def fold(acc: bytearray, slots: Any, bounds: array[int]) -> FoldResult:
    """Add the event slots ``slots`` (bytes of one thread block after its header) to
    ``acc``, one record of ``record_size(len(bounds) + 1)`` bytes per name id; ``bounds``
    are the histogram's upper bounds, an ``array("Q")``."""
    if _core is None:
        return _py_fold(acc, slots, bounds)
    result: FoldResult = _core._fold(acc, slots, bounds)
    return result
