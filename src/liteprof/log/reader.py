"""Read liteprof logs (``docs/FORMAT.md``) and vLLM lite-profiler text logs into ``Events``.

Vectorised with numpy; Python loops run per file, per block, per name and per nesting
level, never per event. The structure of a file (header, blocks, metadata) comes from
``scan.py``, which the live reader shares; text logs are ``text.py``'s.

How a file is read, and why in this order:

1. Every path is opened once up front (only regular files; the same file named twice,
   through a directory and by name, or by a hard link, is read once), its header read and
   its blocks walked. The columns are then reserved for what the thread blocks can hold:
   never by the file's size, so a file with a huge sparse tail costs nothing.
2. The event slots are read block by block (a block is at most 1 MiB, so each one stays
   in the CPU's cache while its columns are cut from it) straight into the columns, with
   the file's name ids as they are; the last written slot of each piece is read again
   (a copy may overtake the writer inside a slot).
3. Then the metadata, walking again for metadata blocks added meanwhile: a log still
   being written defines a name before the first event that uses it, so every event
   read in step 2 has its name here (``scan.py``). The name ids are mapped to the
   report's names; an event whose name or thread is still undefined is damage.
4. Parents are linked per file (``link_parents``).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np

from . import bounded
from . import format as F
from .errors import LogError
from .events import COLUMNS, DroppedRow, Events, Names
from .scan import (
    BlockMap,
    Header,
    Metadata,
    header_never_written,
    read_header,
    read_metadata,
    rescan,
    scan_blocks,
    slot_count,
)

_cread: Any
try:  # the loops over every event in C; without a compiler, numpy does the same
    from . import _cread
except ImportError:  # pragma: no cover - exercised by forcing _cread = None in tests
    _cread = None

SLOT_DTYPE = np.dtype(F.NUMPY_DTYPE_SPEC)
_INT64_MAX = int(np.iinfo(np.int64).max)
_DTYPES = dict(COLUMNS)
# A parent's start and end may differ from its child's by the rounding of two clock
# conversions; anything beyond this is not nesting but damage (or a lost parent).
_NESTING_SLACK_NS = 1000


class Builder:
    """Collects events into preallocated columns: one copy of each event, no concatenation.

    A column that has held one value for every row so far (a single file's ``proc``,
    ``lane`` without asyncio, everything but names and durations for text logs) is not
    allocated at all until a row needs another value; ``build`` gives it as a zero-stride
    view. Rows are written by ``put`` for ``[lo, hi)``; every column of every row must be
    put once before ``build``.
    """

    def __init__(self) -> None:
        self.sources: list[str] = []
        self.names = Names()
        self._index: dict[str, int] | None = {}
        self.cap = 0
        self.n = 0
        self.cols: dict[str, np.ndarray | None] = {name: None for name, _ in COLUMNS}
        # For a column not allocated yet: the value of its rows so far and how many there are.
        self._const: dict[str, Any] = {name: None for name, _ in COLUMNS}
        self._upto: dict[str, int] = {name: 0 for name, _ in COLUMNS}
        self.processes: list[dict[str, Any]] = []
        self.threads: list[dict[str, Any]] = []
        # While only text logs were read, ``self_ns`` is ``dur`` itself (not a copy).
        self._self_is_dur = True
        self.skipped = 0
        self.first: int | None = None
        self.last: int | None = None
        self.text = False
        self.dropped: list[DroppedRow] = []

    @property
    def name_index(self) -> dict[str, int]:
        """name -> its index in ``names``; built when first needed (a first file of unique
        names takes its list as it is, and a million-entry dict is not made for nothing)."""
        if self._index is None:
            self._index = {name: i for i, name in enumerate(self.names)}
        return self._index

    def intern(self, name: str) -> int:
        index = self.name_index
        idx = index.get(name)
        if idx is None:
            idx = index[name] = len(self.names)
            self.names.append(name)
        return idx

    def intern_all(self, names: Sequence[str]) -> np.ndarray:
        """``intern`` of each name (as an int32 array), without a Python call per name."""
        if not self.names and _all_different(names):
            # The first names, all different: they are the list, in order.
            self.names.extend(names)
            self._index = None
            return np.arange(len(names), dtype=np.int32)
        index = self.name_index
        before = len(index)
        ids = [index.setdefault(name, len(index)) for name in names]
        if len(index) != before:
            self.names.extend(list(index)[before:])
        return np.array(ids, dtype=np.int32)

    def span(self, first: int, last: int) -> None:
        self.first = first if self.first is None else min(self.first, first)
        self.last = last if self.last is None else max(self.last, last)

    def reserve(self, extra: int) -> None:
        """Make room for ``extra`` more rows (amortised doubling past the first reservation)."""
        need = self.n + extra
        if need <= self.cap:
            return
        new_cap = max(need, 2 * self.cap) if self.cap else need
        for key, col in self.cols.items():
            if col is not None:
                bigger = np.empty(new_cap, col.dtype)
                bigger[: self.n] = col[: self.n]
                self.cols[key] = bigger
        self.cap = new_cap

    def column(self, key: str) -> np.ndarray:
        """The whole reserved column ``key``, allocated (and its rows so far filled) now."""
        col = self.cols[key]
        if col is None:
            col = np.empty(self.cap, _DTYPES[key])
            if key == "self_ns" and self._self_is_dur:
                self._self_is_dur = False
                if self.n:
                    col[: self.n] = self.column("dur")[: self.n]
            else:
                upto = self._upto[key]
                if upto:
                    col[:upto] = self._const[key]
            self.cols[key] = col
        return col

    def put_self_equal_dur(self, lo: int, hi: int) -> None:
        """Rows ``[lo, hi)`` have no nested scopes: ``self_ns`` equals ``dur`` (put first)."""
        if not self._self_is_dur:
            self.column("self_ns")[lo:hi] = self.column("dur")[lo:hi]

    def rollback(self, n: int) -> None:
        """Forget the rows from ``n`` on (a bounded log's block recycled while read)."""
        self.n = n
        for key, upto in self._upto.items():
            if self.cols[key] is None and upto > n:
                self._upto[key] = n

    def put(self, key: str, lo: int, hi: int, value: Any) -> None:
        """Rows ``[lo, hi)`` of column ``key`` take ``value`` (a scalar or an array)."""
        if self.cols[key] is None and np.ndim(value) == 0 and lo == self._upto[key]:
            if lo == 0 or self._const[key] == value:
                self._const[key] = value
                self._upto[key] = hi
                return
        self.column(key)[lo:hi] = value

    def add(self, **values: Any) -> None:
        """Append one batch; every column of ``COLUMNS`` is given (an array or a scalar)."""
        k = int(np.shape(values["dur"])[0])
        self.reserve(k)
        for key, _ in COLUMNS:
            self.put(key, self.n, self.n + k, values[key])
        self.n += k

    def build(self) -> Events:
        n = self.n
        cols: dict[str, np.ndarray] = {}
        for key, dtype in COLUMNS:
            col = self.cols[key]
            if key == "self_ns" and self._self_is_dur:
                cols[key] = cols["dur"]
            elif col is None:
                assert self._upto[key] == n or n == 0, key
                value = self._const[key] if n else 0
                cols[key] = np.broadcast_to(np.array(value, dtype), (n,))
            else:
                # A view, not a copy: the unused tail of the reservation (never touched, so
                # never resident) is the price of never holding two copies of the events.
                view = col[:n]
                view.flags.writeable = False
                cols[key] = view
        return Events(
            sources=self.sources,
            names=self.names,
            processes=self.processes,
            threads=self.threads,
            skipped=self.skipped,
            first_ns=self.first,
            last_ns=self.last,
            has_text_logs=self.text,
            dropped=self.dropped,
            **cols,
        )


def _all_different(texts: Sequence[str]) -> bool:
    """Whether no text repeats: by their hashes (8 bytes each, where a set would take 32),
    and by a set only if two hashes are equal."""
    hashes = texts.hashes() if isinstance(texts, Names) else None
    if hashes is None:
        hashes = np.fromiter(map(hash, texts), dtype=np.int64, count=len(texts))
    hashes.sort()
    if not bool(np.any(hashes[1:] == hashes[:-1])):
        return True
    return len(set(texts)) == len(texts)


def _listdir(path: str) -> list[str]:
    try:
        entries = sorted(os.listdir(path))
    except OSError as exc:
        raise LogError(f"cannot read directory {path}: {_reason(exc)}") from None
    found = []
    for entry in entries:
        if not entry.endswith(F.SUFFIX):
            continue
        full = os.path.join(path, entry)
        try:
            if stat.S_ISREG(os.stat(full).st_mode):
                found.append(full)
        except OSError:
            continue  # vanished since the listing (a log removed meanwhile), or unreadable
    if not found:
        raise LogError(f"no liteprof logs (*{F.SUFFIX}) in directory {path}")
    return found


def expand_paths(paths: list[str]) -> list[str]:
    """The log files that ``paths`` name: directories give their ``*.lpf`` files.

    A path that cannot be looked at says why (``permission denied``, not "no such file").
    """
    files: list[str] = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                raise LogError(f"no such file or directory: {path}") from None
            raise LogError(f"cannot read {path}: {_reason(exc)}") from None
        if stat.S_ISDIR(st.st_mode):
            files.extend(_listdir(path))
        else:
            files.append(path)
    return files


def _reason(exc: OSError) -> str:
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return exc.strerror or type(exc).__name__


@dataclass
class _Binary:
    """A binary log: its identity, header and blocks, as walked before reading."""

    path: str
    identity: tuple[int, int]
    size: int
    header: Header
    blocks: BlockMap


def read_logs(paths: list[str]) -> Events:
    """Read log directories, liteprof log files and vLLM text logs into one ``Events``.

    The same file named twice (a directory and a file in it, a hard link) is read once.
    """
    builder = Builder()
    builder.sources = [os.fspath(p) for p in paths]
    seen: set[tuple[int, int]] = set()
    plan: list[tuple[str, _Binary | None]] = []
    for path in expand_paths(builder.sources):
        kind, binary = _walk(path, seen)
        if kind == "unwritten":
            # A log whose header never got (fully) written: a writer that failed or was
            # killed at once. Nothing in it to read; it must not pass for a text log,
            # which would make the wall time of every other log unknown.
            builder.skipped += 1
        elif kind != "same":
            plan.append((path, binary))
    builder.reserve(sum(b.blocks.capacity for _, b in plan if b is not None))
    for path, binary in plan:
        if binary is None:
            from .text import read_text  # only now: most reports read no text log

            read_text(path, builder)
            continue
        try:
            with _open(path) as fh:
                if _identity(os.fstat(fh.fileno())) != binary.identity:
                    # Replaced since the walk (a log rotated away): walk what is there now.
                    binary = _walk_open(fh, path, _identity(os.fstat(fh.fileno())))
                _read_binary(fh, binary, builder)
        except OSError as exc:
            raise LogError(f"cannot read {path}: {_reason(exc)}") from None
    return builder.build()


def _identity(st: os.stat_result) -> tuple[int, int]:
    return (st.st_dev, st.st_ino)


def _open(path: str) -> BinaryIO:
    """``path`` opened for reading, if it is a regular file (else ``LogError``).

    A pipe or a device (``/dev/zero``, a FIFO named on the command line) would block the
    reader or never end, so anything but a regular file is refused; ``O_NONBLOCK`` keeps
    the open itself from waiting for a FIFO's writer.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        raise LogError(f"cannot read {path}: {_reason(exc)}") from None
    fh = os.fdopen(fd, "rb", buffering=0)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise LogError(f"{path}: not a regular file")
    except BaseException:
        fh.close()
        raise
    return fh


def _walk(path: str, seen: set[tuple[int, int]]) -> tuple[str, _Binary | None]:
    """What ``path`` is: ``"binary"`` (with its header read and blocks walked), ``"text"``,
    ``"unwritten"`` (a ``.lpf`` file without a header) or ``"same"`` (a file already
    planned under another name)."""
    with _open(path) as fh:
        try:
            identity = _identity(os.fstat(fh.fileno()))
            if identity in seen:
                return "same", None
            seen.add(identity)
            head = fh.read(len(F.MAGIC))
            if head != F.MAGIC:
                if path.endswith(F.SUFFIX) and header_never_written(head):
                    return "unwritten", None
                return "text", None
            return "binary", _walk_open(fh, path, identity)
        except OSError as exc:
            raise LogError(f"cannot read {path}: {_reason(exc)}") from None


def _walk_open(fh: BinaryIO, path: str, identity: tuple[int, int]) -> _Binary:
    size = os.fstat(fh.fileno()).st_size
    header = read_header(fh, path)
    blocks = scan_blocks(fh, slot_count(size)[0])
    return _Binary(path, identity, size, header, blocks)


# -- liteprof binary logs -----------------------------------------------------------------

# Slots cut from a file at a time: a whole block of the largest size (1 MiB), small
# enough that its columns are cut while it is in the CPU's cache.
_CHUNK_SLOTS = F.MAX_BLOCK // F.SLOT_SIZE
# Rows mapped from name ids to names at a time (bounds the temporary index array).
_MAP_ROWS = 1 << 20


@dataclass
class _FileRows:
    """What step 2 leaves for step 3: where each thread block's events went."""

    first_row: int
    pieces: list[tuple[int, int, int]]
    """(first row, end row, owner) of each block's events, in row order."""
    lo: int | None = None
    """The first start, on the monotonic clock."""
    hi: int | None = None
    """The last end, on the monotonic clock."""
    lanes: bool = False
    """Whether a lane slot was met: then the lane column holds each row's lane."""
    lane_now: int = 0
    """The lane in force at the end of the last chunk read (dense number)."""
    scratch: np.ndarray | None = None
    """Room for a chunk's raw lane ids (the C loop's)."""
    rest: dict[str, np.ndarray] = field(default_factory=dict)
    """A chunk's ``self_ns``, ``depth`` and ``error`` before they go to the columns: only
    where they vary (a flat profile has no nesting, no errors and self time equal to its
    durations: three columns that are then never allocated, written or faulted in)."""


def _read_binary(fh: BinaryIO, log: _Binary, b: Builder) -> None:
    header, blocks = log.header, log.blocks
    proc = len(b.processes)
    b.processes.append(header.process(log.path))
    b.skipped += blocks.skipped
    nslots, tail = slot_count(log.size)
    if tail:
        # A cut file: the torn last slot is a damaged record if anything was in it (the
        # writer only ever grows files by whole blocks, so a live log never has a tail).
        fh.seek(F.HEADER_SIZE + nslots * F.SLOT_SIZE)
        if any(fh.read(tail)):
            b.skipped += 1
    anchor = header.wall_of(0)
    summary = bounded.read_summary(fh, blocks)  # before the events: see bounded.py
    check = bounded.is_bounded(header.meta, blocks)
    rows = _read_events(fh, blocks, b, anchor or 0, summary, check)

    # Step 3: the metadata, read after the events (see the module's docstring). A
    # metadata block cut at the end of the file at the walk is read whole from the rescan.
    later = rescan(fh, blocks)
    meta = Metadata()
    complete = BlockMap(meta_blocks=[m for m in blocks.meta_blocks if m[0] - 1 < blocks.end])
    read_metadata(fh, complete, meta)
    read_metadata(fh, later, meta)
    b.skipped += meta.skipped
    thread_ids: dict[int, int] = {}
    for ident, (tid, tname) in meta.threads.items():
        thread_ids[ident] = len(b.threads)
        b.threads.append({"proc": proc, "tid": tid, "name": tname})

    r0, r1 = rows.first_row, b.n
    b.put("proc", r0, r1, proc)
    if not rows.lanes:
        b.put("lane", r0, r1, 0)
    for lo, hi, owner in rows.pieces:
        b.put("thread", lo, hi, thread_ids.get(owner, -1))
    if summary is not None:
        _add_dropped(b, proc, summary, meta, anchor)
    undefined = _map_names(b, r0, r1, meta)
    del meta  # a million names' texts are in b.names now; the rest can go
    if undefined or any(owner not in thread_ids for _, _, owner in rows.pieces):
        kept = _drop_undefined(b, r0, r1)
        b.skipped += (r1 - r0) - kept
        r1 = b.n = r0 + kept
        rows.lo, rows.hi = _span(b, r0, r1, anchor or 0)
    b.processes[proc]["records"] = r1 - r0
    if r1 == r0:
        return
    if anchor is not None:
        assert rows.lo is not None and rows.hi is not None
        b.span(rows.lo + anchor, rows.hi + anchor)
    link_parents(b, r0, r1)


def _add_dropped(
    b: Builder, proc: int, summary: bounded.Summary, meta: Metadata, anchor: int | None
) -> None:
    """What a bounded log dropped: ``Events.dropped`` rows, the process's ``dropped``
    count, and the wall time its events spanned."""
    names = {i: b.intern(meta.names[i]) for i in summary.records if i in meta.names}
    b.dropped.extend(bounded.dropped_rows(summary, proc, names))
    b.processes[proc]["dropped"] = summary.events
    if anchor is not None and summary.first_start is not None and summary.last_end is not None:
        b.span(summary.first_start + anchor, summary.last_end + anchor)


def _read_events(
    fh: BinaryIO,
    blocks: BlockMap,
    b: Builder,
    anchor: int,
    summary: bounded.Summary | None = None,
    check: bool = False,
) -> _FileRows:
    """Step 2: cut the events of every thread block into the columns.

    ``name`` holds the file's name ids (as ``uint32`` bits) until step 3 maps them;
    ``start`` is already wall-clock (``anchor`` added). Damage that does not depend on
    the metadata (a reserved slot kind, a negative time) is counted here.
    """
    b.reserve(blocks.capacity)  # done already, unless the file was replaced since the walk
    buf = np.empty(min(_CHUNK_SLOTS, max(blocks.capacity, 1)), SLOT_DTYPE)
    out = _FileRows(first_row=b.n, pieces=[])
    lane_index: dict[int, int] = {}
    cols = {key: b.column(key) for key in ("start", "dur", "name")}
    # A thread's events in the order they closed: its blocks in the order it filled them
    # (by sequence number), each read front to back. In a bounded log, blocks its summary
    # holds are skipped, and one recycled while it was read is dropped (bounded.py).
    seq_of = dict(zip((s[0] for s in blocks.segments), blocks.seqs)) if check or summary else {}
    for first, end, owner in blocks.in_thread_order():
        if summary is not None and bounded.folded(summary, first, seq_of[first]):
            continue
        piece_lo, skipped, piece_first = b.n, b.skipped, first
        out.lane_now = 0  # every block starts in lane 0
        while first < end:
            count = min(end - first, buf.shape[0])
            fh.seek(F.HEADER_SIZE + first * F.SLOT_SIZE)
            view = memoryview(buf[:count]).cast("B")  # type: ignore[arg-type]
            got = (fh.readinto(view) or 0) // F.SLOT_SIZE  # type: ignore[attr-defined]
            if got == 0:
                break  # the file was truncated meanwhile: what was read stands
            _settle_last_written(fh, view, got, first)
            b.n += _cut_chunk(buf[:got], b, cols, out, lane_index, anchor)
            first += got
        if check and not bounded.unchanged(fh, piece_first, owner, seq_of[piece_first]):
            b.rollback(piece_lo)
            b.skipped = skipped
            continue
        if b.n > piece_lo:
            out.pieces.append((piece_lo, b.n, owner))
    return out


def _settle_last_written(fh: BinaryIO, raw: memoryview, count: int, first: int) -> None:
    """Read the last written slot of a chunk (``raw``, the bytes of ``count`` slots from
    slot ``first``) again until two reads agree, as the live reader does (``tail.py``).

    A copy of a log being written may overtake the writer inside a slot: its flags, which
    the writer stores last, already set while an earlier field was copied before its
    store (seen: an event with start, duration and child time 0). A thread writes its
    block front to back, so that slot is the one before the first empty one, or the
    chunk's last. In a file that nothing writes, the second read changes nothing. The
    slots' kinds are looked at as bytes (a slot's kind is its byte 28): a few Python
    steps per chunk, which a file of thousands of small blocks pays for each.
    """
    slot, kind = F.SLOT_SIZE, 28
    at = count - 1
    if not raw[at * slot + kind]:
        lo, hi = 0, at  # slot ``hi`` is empty: find the first empty one
        while lo < hi:
            mid = (lo + hi) // 2
            if raw[mid * slot + kind]:
                lo = mid + 1
            else:
                hi = mid
        at = hi - 1
        if at < 0:
            return
    offset = at * slot
    before = seen = raw[offset : offset + slot].tobytes()
    for _ in range(3):
        fh.seek(F.HEADER_SIZE + (first + at) * slot)
        again = fh.read(slot)
        if again == seen:
            break
        seen = again
    if seen != before and len(seen) == slot:
        raw[offset : offset + slot] = seen


def _cut_chunk(
    v: np.ndarray,
    b: Builder,
    cols: dict[str, np.ndarray],
    out: _FileRows,
    lane_index: dict[int, int],
    anchor: int,
) -> int:
    """Cut the events among the slots ``v`` into the columns at row ``b.n``; their count.

    In C where it is built (one pass); else in numpy: the usual chunk is all events (a
    full block of one thread), its fields copied column by column; otherwise the events
    are picked out with ``np.take`` (a structured fancy index would be several times
    slower).
    """
    if _cread is not None:
        return _cut_chunk_c(v, b, cols, out, lane_index, anchor)
    flags = v["flags"]
    kind = flags & F.KIND_MASK
    is_event = kind == F.KIND_EVENT
    n_events = int(np.count_nonzero(is_event))
    sel: np.ndarray | None = None
    slot_lanes: np.ndarray | None = None
    if n_events != v.shape[0]:
        # Not only events: empty slots, lane slots, slots of kinds this reader does not
        # know (3-127 are reserved: counted as damage; 128-255 optional: ignored).
        b.skipped += int(np.count_nonzero((kind > F.KIND_LANE) & (kind < F.FIRST_OPTIONAL_KIND)))
        is_lane = kind == F.KIND_LANE
        if out.lanes or is_lane.any():
            slot_lanes = _lanes(v, is_lane, lane_index, b, out)
        if n_events == 0:
            return 0
        sel = np.flatnonzero(is_event)
    del kind, is_event
    lo, hi = b.n, b.n + n_events
    rest = _rest(out, v.shape[0])
    start, dur, self_ns = cols["start"][lo:hi], cols["dur"][lo:hi], rest["self_ns"][:n_events]
    if sel is None:
        start[...] = v["start"]
        dur[...] = v["dur"]
        np.minimum(v["child"], dur, out=self_ns)
        cols["name"][lo:hi].view(np.uint32)[...] = v["name"]
        fl = flags
    else:
        np.take(v["start"], sel, out=start)
        np.take(v["dur"], sel, out=dur)
        np.take(v["child"], sel, out=self_ns)
        np.minimum(self_ns, dur, out=self_ns)
        np.take(v["name"], sel, out=cols["name"][lo:hi].view(np.uint32))
        fl = np.take(flags, sel)
    lanes: Any = out.lane_now
    if slot_lanes is not None:
        lanes = slot_lanes[sel] if sel is not None else slot_lanes
        out.lane_now = int(slot_lanes[-1])
    # A monotonic clock never reads negative: a negative start, like a negative duration or
    # child time, is a damaged slot (and starts >= 0 keep start + dur from overflowing).
    # ``self_ns`` holds min(child, dur) here: negative exactly when one of them is.
    if int(start.min()) < 0 or int(dur.min()) < 0 or int(self_ns.min()) < 0:
        keep = (start >= 0) & (dur >= 0) & (self_ns >= 0)
        n_ok = int(np.count_nonzero(keep))
        b.skipped += n_events - n_ok
        if n_ok == 0:
            return 0
        for key in ("start", "dur", "name"):
            col = cols[key]
            col[lo : lo + n_ok] = col[lo:hi][keep]
        self_ns[:n_ok] = self_ns[keep]
        fl = fl[keep]
        if np.ndim(lanes):
            lanes = lanes[keep]
        n_events, hi = n_ok, lo + n_ok
        start, dur, self_ns = start[:n_ok], dur[:n_ok], self_ns[:n_ok]
    np.subtract(dur, self_ns, out=self_ns)
    np.right_shift(fl, F.DEPTH_SHIFT, out=rest["depth"][:n_events], casting="unsafe")
    np.not_equal(fl & F.FLAG_ERROR, 0, out=rest["error"][:n_events])
    _put_rest(b, lo, n_events, rest)
    if out.lanes:
        b.put("lane", lo, hi, lanes)
    # The latest end, without int64 overflow: forged durations near 2**63 must not wrap.
    s_min, s_max = int(start.min()), int(start.max())
    if s_max <= _INT64_MAX - int(dur.max()):
        e_max = int((start + dur).max())
    else:
        e_max = int((start + np.minimum(dur, _INT64_MAX - start)).max())
    out.lo = s_min if out.lo is None else min(out.lo, s_min)
    out.hi = e_max if out.hi is None else max(out.hi, e_max)
    if anchor:
        # Wall clock: monotonic + (wall - mono) from the header's anchors. A forged start
        # near 2**63 saturates rather than wraps.
        if anchor > 0 and s_max > _INT64_MAX - anchor:
            np.minimum(start, _INT64_MAX - anchor, out=start)
        start += anchor
    return n_events


def _cut_chunk_c(
    v: np.ndarray,
    b: Builder,
    cols: dict[str, np.ndarray],
    out: _FileRows,
    lane_index: dict[int, int],
    anchor: int,
) -> int:
    """``_cut_chunk`` by ``_cread.cut``: one pass over the slots."""
    assert _cread is not None
    lo, count = b.n, v.shape[0]
    if out.scratch is None or out.scratch.shape[0] < count:
        out.scratch = np.empty(max(count, 1024), np.uint64)
    hi = lo + count
    rest = _rest(out, count)
    raw_now = 0
    if out.lane_now:
        raw_now = next(raw for raw, dense in lane_index.items() if dense == out.lane_now)
    k, reserved, damaged, lanes_seen, raw_now, first, last = _cread.cut(
        v,
        cols["start"][lo:hi],
        cols["dur"][lo:hi],
        rest["self_ns"],
        cols["name"][lo:hi],
        rest["depth"],
        rest["error"],
        out.scratch,
        raw_now,
        anchor,
    )
    b.skipped += reserved + damaged
    _put_rest(b, lo, k, rest)
    if lanes_seen or out.lanes:
        if not out.lanes:
            # The first lane slot of this file: its rows so far were all in lane 0.
            b.put("lane", out.first_row, lo, 0)
            out.lanes = True
        raws = np.append(out.scratch[:k], np.uint64(raw_now))
        uniq, inverse = np.unique(raws, return_inverse=True)
        for raw in uniq.tolist():
            if raw not in lane_index:
                lane_index[raw] = 0 if raw == 0 else len(lane_index) + (0 not in lane_index)
        dense = np.array([lane_index[raw] for raw in uniq.tolist()], np.int32)[inverse.ravel()]
        b.put("lane", lo, lo + k, dense[:k])
        out.lane_now = int(dense[k])
    if k:
        out.lo = first if out.lo is None else min(out.lo, first)
        out.hi = last if out.hi is None else max(out.hi, last)
    return int(k)


def _rest(out: _FileRows, count: int) -> dict[str, np.ndarray]:
    """``out.rest``, with room for ``count`` rows (made once per file, then reused)."""
    if not out.rest or out.rest["depth"].shape[0] < count:
        out.rest = {
            key: np.empty(max(count, 1024), _DTYPES[key]) for key in ("self_ns", "depth", "error")
        }
    return out.rest


def _put_rest(b: Builder, lo: int, k: int, rest: dict[str, np.ndarray]) -> None:
    """Rows ``[lo, lo + k)`` of ``self_ns``, ``depth`` and ``error`` from a chunk's
    ``rest``: a value the rows share stays a constant (no column) while it can."""
    if k == 0:
        return
    hi = lo + k
    self_ns = rest["self_ns"][:k]
    if np.array_equal(self_ns, b.column("dur")[lo:hi]):
        b.put_self_equal_dur(lo, hi)
    else:
        b.column("self_ns")[lo:hi] = self_ns
    for key in ("depth", "error"):
        part = rest[key][:k]
        b.put(key, lo, hi, part if part.any() else part.dtype.type(0))


def _lanes(
    v: np.ndarray, is_lane: np.ndarray, index: dict[int, int], b: Builder, out: _FileRows
) -> np.ndarray:
    """Each slot's lane (dense number): that of the last lane slot before it in its block,
    else the lane in force when the chunk began (``out.lane_now``; 0 at a block's start).

    Lane ids in the file are opaque u64s; ``index`` numbers them densely for the whole
    file (0 stays 0, the lane of code outside any asyncio task or greenlet).
    """
    if not out.lanes:
        # The first lane slot of this file: its rows so far were all in lane 0.
        b.put("lane", out.first_row, b.n, 0)
        out.lanes = True
    lane = np.full(v.shape[0], out.lane_now, dtype=np.int32)
    marks = np.flatnonzero(is_lane)
    if marks.size == 0:
        return lane
    uniq, inverse = np.unique(v["start"][marks].view(np.uint64), return_inverse=True)
    for raw in uniq.tolist():
        if raw not in index:
            index[raw] = 0 if raw == 0 else len(index) + (0 not in index)
    dense = np.array([index[raw] for raw in uniq.tolist()], dtype=np.int32)[inverse.ravel()]
    # The lane slot in force at each slot: the last one at or before it.
    at = np.full(v.shape[0], -1, dtype=np.int64)
    at[marks] = np.arange(marks.size)
    np.maximum.accumulate(at, out=at)
    has = at >= 0
    lane[has] = dense[at[has]]
    return lane


def _map_names(b: Builder, r0: int, r1: int, names: Metadata | dict[int, str]) -> int:
    """Rows ``[r0, r1)``: the file's name ids -> indices into ``b.names`` (``-1`` for an id
    no metadata entry defines); returns how many are undefined.

    Ids are 32-bit and come from the file: a dense lookup table is only built when it is
    small (the writer numbers names 0, 1, 2, ...); a forged id like 2**32-1 would otherwise
    make it 32 GiB. Otherwise the ids are looked up in the sorted list of defined ones.
    Where an id is defined twice, its last entry counts.
    """
    col = b.column("name")
    if r1 == r0:
        return 0
    if isinstance(names, dict):
        id_parts: list[Any] = [list(names)]
        texts: Sequence[str] = list(names.values())
    else:
        id_parts, texts = names.name_table()
    if not texts:
        col[r0:r1] = -1
        return r1 - r0
    idents = np.concatenate([np.asarray(p, dtype=np.int64) for p in id_parts])
    gids = b.intern_all(texts)
    del texts
    top = int(idents.max())
    bad = 0
    if top < 4 * idents.size + 1024:
        lut = np.full(top + 2, -1, dtype=np.int32)
        lut[idents] = gids  # in file order: a repeated id keeps its last entry
        # The usual first file: ids 0, 1, 2, ... that are the names' indices already. Rows
        # whose ids are all defined keep them as they are (one pass to check the largest).
        same = bool(np.array_equal(lut[: top + 1], np.arange(top + 1, dtype=np.int32)))
        for lo in range(r0, r1, _MAP_ROWS):
            part = col[lo : min(lo + _MAP_ROWS, r1)]
            if same and int(part.view(np.uint32).max()) <= top:
                continue
            ids = part.view(np.uint32).astype(np.intp)
            np.take(lut, ids, out=part, mode="clip")  # ids past the table: its last, -1
            bad += int(np.count_nonzero(part < 0))
        return bad
    # The last entry of each id: a stable sort, then the last of each run.
    order = np.argsort(idents, kind="stable")
    keys, values = idents[order], gids[order]
    last = np.r_[keys[1:] != keys[:-1], True]
    keys, values = keys[last], values[last]
    for lo in range(r0, r1, _MAP_ROWS):
        part = col[lo : min(lo + _MAP_ROWS, r1)]
        raw = part.view(np.uint32).astype(np.int64)
        at = np.minimum(np.searchsorted(keys, raw), keys.size - 1)
        part[...] = np.where(keys[at] == raw, values[at], -1)
        bad += int(np.count_nonzero(part < 0))
    return bad


def _drop_undefined(b: Builder, r0: int, r1: int) -> int:
    """Remove the rows of ``[r0, r1)`` whose name or thread is undefined; rows kept."""
    keep = b.column("name")[r0:r1] >= 0
    thread = b.cols["thread"]
    if thread is not None:
        keep &= thread[r0:r1] >= 0
    elif b._const["thread"] == -1:
        keep[:] = False
    kept = int(np.count_nonzero(keep))
    for key, col in b.cols.items():
        if col is not None and key != "parent":
            col[r0 : r0 + kept] = col[r0:r1][keep]
    for key in b.cols:
        if b.cols[key] is None and b._upto[key] == r1:
            b._upto[key] = r0 + kept
    return kept


def _span(b: Builder, r0: int, r1: int, anchor: int) -> tuple[int | None, int | None]:
    """The first start and the last end of rows ``[r0, r1)``, on the monotonic clock
    (``start`` holds wall-clock times: ``anchor`` is taken off again)."""
    if r1 == r0:
        return None, None
    start = b.column("start")[r0:r1]
    dur = b.column("dur")[r0:r1]
    end = start + np.minimum(dur, _INT64_MAX - start)
    return int(start.min()) - anchor, int(end.max()) - anchor


# -- parents ------------------------------------------------------------------------------

# Up to this many nesting levels, each level costs one pass over the file's rows (in
# cache-sized slices); deeper logs (recursion) sort the rows by depth once instead.
_PASS_LEVELS = 12
_SLICE = 1 << 15


def link_parents(b: Builder, r0: int, r1: int) -> None:
    """Fill ``parent`` for the events of one file, rows ``[r0, r1)`` of the columns.

    Within one thread and one lane, events are in the order they closed, so a scope's
    direct children closed before it and after its previous sibling: the parent of an
    event at depth ``d`` is the first later event of the same thread and lane at depth
    ``d - 1``, provided it contains the child in time (a parent that never closed, or
    was lost, must not adopt its children's later cousins). Rows with no parent get -1.
    Vectorised per nesting level; no loop per event.
    """
    n = r1 - r0
    if b.cols["depth"] is None:  # one depth for every row so far: 0, nothing nests
        top = 0
    else:
        depth = b.column("depth")[r0:r1]
        top = int(depth.max()) if n else 0
    if top == 0:
        b.put("parent", r0, r1, -1)
        return
    parent = b.column("parent")[r0:r1]
    if _cread is None:
        parent[...] = -1  # the C loop writes every row itself
    start = b.column("start")[r0:r1]
    dur = b.column("dur")[r0:r1]
    # Which rows may be each other's parent: those of the same thread (rows of a thread
    # are contiguous) and lane. Unneeded for a file of one thread without lanes.
    stream: np.ndarray | None = None
    if b.cols["thread"] is not None:
        stream = b.cols["thread"][r0:r1]
    order: np.ndarray | None = None
    if b.cols["lane"] is not None:
        thread = b.column("thread")[r0:r1]
        stream = _stream_key(thread, b.cols["lane"][r0:r1])
        if n > 1 and bool(np.any(stream[1:] < stream[:-1])):
            # Lanes (asyncio tasks) interleave within a thread: group each lane's events
            # together, keeping their order, and search there.
            order = np.argsort(stream, kind="stable")
            depth, start, dur, stream = depth[order], start[order], dur[order], stream[order]
    if _cread is not None:
        _cread.link(depth, start, dur, stream, order, parent, r0)
    elif top <= _PASS_LEVELS:
        _link_by_passes(depth, start, dur, stream, top, parent, order, r0)
    else:
        _link_by_sorting(depth, start, dur, stream, top, parent, order, r0)


def _adopt(
    kids: np.ndarray,
    cand: np.ndarray,
    start: np.ndarray,
    dur: np.ndarray,
    stream: np.ndarray | None,
    parent: np.ndarray,
    order: np.ndarray | None,
    base: int,
) -> None:
    """Make ``cand`` (rows, or ``len(start)`` for none) the parents of ``kids`` where it is
    in the same stream and contains the kid in time."""
    n = start.shape[0]
    found = cand < n
    np.minimum(cand, n - 1, out=cand)
    if stream is not None:
        found &= stream[cand] == stream[kids]
    ks, cs = start[kids], start[cand]
    found &= cs <= ks + _NESTING_SLACK_NS
    # end(cand) + slack >= end(kid), in a form that cannot overflow for times >= 0 unless
    # durations are forged near 2**63 (then the answer is merely inexact).
    cs -= ks
    cs += dur[cand]
    cs += _NESTING_SLACK_NS
    found &= cs >= dur[kids]
    kids, cand = kids[found], cand[found]
    if order is not None:
        kids, cand = order[kids], order[cand]
    parent[kids] = cand + base


def _link_by_passes(
    depth: np.ndarray,
    start: np.ndarray,
    dur: np.ndarray,
    stream: np.ndarray | None,
    top: int,
    parent: np.ndarray,
    order: np.ndarray | None,
    base: int,
) -> None:
    """The first later row at depth ``d - 1`` of each row at depth ``d``: a running
    minimum of row numbers from the end, one per level, slice by slice from the last
    (small temporaries that stay in the cache and are reused, not page-faulted)."""
    n = depth.shape[0]
    nxt = np.full(top + 1, n, np.int64)  # per level: the first row at it after the slice
    rows = np.arange(min(n, _SLICE), dtype=np.int64)
    for a in range(((n - 1) // _SLICE) * _SLICE, -1, -_SLICE):
        dep = depth[a : a + _SLICE]
        here = rows[: dep.shape[0]] + a
        for d in range(1, top + 1):
            up = np.where(dep == d - 1, here, nxt[d - 1])
            np.minimum.accumulate(up[::-1], out=up[::-1])
            nxt[d - 1] = up[0]
            kids = np.flatnonzero(dep == d)
            if kids.size:
                cand = up[kids]
                kids += a
                _adopt(kids, cand, start, dur, stream, parent, order, base)


def _link_by_sorting(
    depth: np.ndarray,
    start: np.ndarray,
    dur: np.ndarray,
    stream: np.ndarray | None,
    top: int,
    parent: np.ndarray,
    order: np.ndarray | None,
    base: int,
) -> None:
    """As ``_link_by_passes``, for deep nesting: the rows sorted by depth once (a radix
    sort: depths are 16-bit), then one search per level."""
    by_depth = np.argsort(depth.astype(np.uint16), kind="stable")
    bounds = np.searchsorted(depth[by_depth], np.arange(top + 2)).tolist()
    for d in range(1, top + 1):
        above = by_depth[bounds[d - 1] : bounds[d]]
        level = by_depth[bounds[d] : bounds[d + 1]]
        if not (above.size and level.size):
            continue
        for i in range(0, level.size, _SLICE):
            kids = level[i : i + _SLICE]
            at = np.searchsorted(above, kids)
            cand = np.where(at < above.size, above[np.minimum(at, above.size - 1)], depth.size)
            _adopt(kids, cand, start, dur, stream, parent, order, base)


def _stream_key(thread: np.ndarray, lane: np.ndarray) -> np.ndarray:
    """A key per row that orders rows by their thread's place in the file, then lane."""
    # Rows of one thread are contiguous: number the threads in row order, so that the key
    # only decreases where lanes interleave.
    key = np.zeros(thread.shape[0], np.int64)
    key[1:] = thread[1:] != thread[:-1]
    np.cumsum(key, out=key)
    key <<= 32
    key += lane
    return key
