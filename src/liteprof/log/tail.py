"""Follow every log under a directory while it is written: the live reader.

``Tail(path).poll()`` returns the events added since the previous poll, from every log
file under ``path`` (a log directory, which may not exist yet, or one log file), new
processes included. It is what ``liteprof top`` and ``liteprof serve`` read.

What it costs. Each poll lists the directory and, per file still written, reads its new
block headers (``scan.scan_blocks`` from where the last walk stopped), then from each
thread's current block the slots after the last one it read, in one ``pread`` that grows
with what it finds, and the new metadata entries. Nothing already read is read again, so
a poll costs a few system calls per live file plus work proportional to what is new;
files of processes that ended are closed after their last read.

Consistency. A live read must never count as damage what the writer is still writing
(``docs/FORMAT.md``): the event slots of a poll are read first and the metadata after
them, because a name or thread is defined before any event uses it; a slot counts once
its kind (the last field the writer stores) is set, and the last slot a read returns is
read a second time, so that a read that overtook the writer in the middle of a slot
cannot pass off a torn copy. A file shorter than what was read (a writer's close trims
its last block; another process truncated it) is told apart by the block header.

Ends. A process on this host that is no longer running (``kill(pid, 0)``) gets one last
read, then its file is closed and the process marked ``ended``; a file removed from the
directory is read to its end through the open descriptor and marked ``removed``; a file
cut below what was read is marked ``truncated``. Their events stay counted.

Bounded logs (``LITEPROF_MAX_MB``) recycle their oldest blocks and keep a summary of the
events they drop (``docs/FORMAT.md``, "Bounded logs"); a block's header, sequence number
included, says which version of a recycled block was read. What the tail takes from a
summary is exact: it keeps, per block it has read from, the sums of what it took from it
(per name: count, errors, total and self time, the summary's duration buckets); when a
block's header changes, or a newer summary's fold history covers it, those sums are
dropped and the summary's taken instead, the difference coming out as ``Batch.folds``.
So the events it read plus the folds are every event of the log, each counted once,
however late the tail started or however slowly it polls; only the events themselves
(their order, their time) of what was folded before it was read are gone. A newer
summary is looked for once per poll, by reading the head of each summary block.
"""

from __future__ import annotations

import os
import socket
import stat
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import bounded
from . import format as F
from .errors import LogError
from .scan import (
    BlockMap,
    Header,
    Metadata,
    header_never_written,
    parse_metadata,
    read_header,
    scan_blocks,
)
from .tailtext import TextLogs

SLOT_DTYPE = np.dtype(F.NUMPY_DTYPE_SPEC)
_SLOT = F.SLOT_SIZE
_FIRST_CHUNK = 256  # slots of a thread's first read in a poll; doubles while it finds more
_MAX_CHUNK = 1 << 16  # 2 MiB
_KIND_OPTIONAL = 128  # slot kinds 128-255 are optional extensions, ignored

LIVE, ENDED, REMOVED, TRUNCATED = "live", "ended", "removed", "truncated"

BOUNDS_NS: tuple[int, ...] = F.HISTOGRAM_BOUNDS_NS
"""Upper bounds (ns) of the duration buckets of ``Folds.buckets``: a bounded log's summary
keeps these, and ``liteprof serve`` exports the same. Bucket ``i`` counts durations
``<= BOUNDS_NS[i]`` and above ``BOUNDS_NS[i - 1]``; the last has no upper bound."""
NBUCKETS = len(BOUNDS_NS) + 1
_BOUNDS = np.array(BOUNDS_NS, np.int64)
_SUM_COLS = 4 + NBUCKETS  # a block's sums per name: count, errors, total, self, buckets
_I64_MAX = (1 << 63) - 1
_EXACT_FLOAT = 1 << 53  # float64 sums of integers are exact below this
_MAX_CHUNKS = 8  # a block's sums are merged into one array past this many polls


@dataclass
class Process:
    """One followed log file (one recording process)."""

    index: int
    path: str
    pid: int | None = None
    name: str = "?"
    host: str = "?"
    rank: int | None = None
    state: str = LIVE
    """``live``, ``ended`` (the process is gone), ``removed`` (the file was deleted) or
    ``truncated`` (cut below what was read)."""
    records: int = 0
    """Events read from its blocks."""
    folded: int = 0
    """Events taken from its summary (``Batch.folds``): folded before they were read."""
    dropped: int = 0
    """Events its summary says the log dropped (the summary taken last)."""
    skipped: int = 0

    def labels(self) -> dict[str, Any]:
        return {"pid": self.pid, "name": self.name, "host": self.host, "rank": self.rank}


@dataclass
class Folds:
    """What a poll took from bounded logs' summaries, one row per process and name: the
    events the log folded that this reader had not read (``docs/FORMAT.md``, "Bounded
    logs"). Added to the events read, they make every event of the log counted once."""

    name: np.ndarray
    """int32: index into ``Tail.names``."""
    proc: np.ndarray
    """int32: index into ``Tail.processes``."""
    count: np.ndarray
    """int64: events."""
    errors: np.ndarray
    """int64: of them, left by an exception."""
    total_ns: np.ndarray
    """int64: the sum of their durations."""
    self_ns: np.ndarray
    """int64: the sum of their self times."""
    min_ns: np.ndarray
    """int64: the shortest duration among every event of the name the log folded (the
    summary's, not only of these)."""
    max_ns: np.ndarray
    """int64: the longest, likewise."""
    buckets: np.ndarray
    """int64, ``(rows, NBUCKETS)``: their durations by the buckets of ``BOUNDS_NS``."""

    def __len__(self) -> int:
        return int(self.count.shape[0])


def _empty_folds() -> Folds:
    none = np.empty(0, np.int64)
    return Folds(
        name=np.empty(0, np.int32),
        proc=np.empty(0, np.int32),
        count=none,
        errors=none,
        total_ns=none,
        self_ns=none,
        min_ns=none,
        max_ns=none,
        buckets=np.empty((0, NBUCKETS), np.int64),
    )


@dataclass
class Batch:
    """What one poll found: new events as parallel columns, and what changed."""

    name: np.ndarray
    """int32: index into ``Tail.names``."""
    dur: np.ndarray
    """int64: the event's duration in ns."""
    error: np.ndarray
    """bool: the scope was left by an exception."""
    proc: np.ndarray
    """int32: index into ``Tail.processes``."""
    self_ns: np.ndarray
    """int64: the event's self time in ns (its duration less its direct children's)."""
    folds: Folds = field(default_factory=_empty_folds)
    """What bounded logs folded into their summaries before this reader read it."""
    skipped: int = 0
    """Damaged records met in this poll."""
    new_processes: list[int] = field(default_factory=list)
    ended: list[int] = field(default_factory=list)
    """Processes that ended (or whose file was removed or cut) in this poll."""
    slots_read: int = 0
    """Slots read from event blocks in this poll (its cost)."""
    more: bool = False
    """The poll stopped at its budget: more is there to read now."""

    def __len__(self) -> int:
        return int(self.dur.shape[0])


def _empty_batch() -> Batch:
    return Batch(
        name=np.empty(0, np.int32),
        dur=np.empty(0, np.int64),
        error=np.empty(0, np.bool_),
        proc=np.empty(0, np.int32),
        self_ns=np.empty(0, np.int64),
    )


@dataclass
class _Block:
    """A thread block being read: slots ``[cursor, end)`` are still to read."""

    cursor: int
    end: int
    owner: int
    first: int = 0  # its first slot after the header
    chunk: int = _FIRST_CHUNK
    head: bytes = b""  # its header slot, in a bounded log (which reuses blocks)
    seq: int = 0  # its sequence number
    # In a bounded log: per poll that read it, (name indices, their sums: _SUM_COLS
    # columns), until a summary that holds its events is taken.
    sums: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    folded: bool = False  # its events are in the summary taken: never read again


@dataclass
class _MetaBlock:
    cursor: int
    end: int
    done: bool = False


class _File:
    """The state of one followed file between polls."""

    def __init__(self, path: str, fd: int, proc: Process) -> None:
        self.path = path
        self.fd = fd
        self.proc = proc
        self.header: Header | None = None
        self.walk_end = 0
        self.walk_stopped = False
        self.last_block: int | None = None  # slot of the last block header walked
        self.blocks: list[_Block] = []  # thread blocks with slots still to read
        self.known: dict[int, _Block] = {}  # every thread block walked, by first slot
        self.metas: list[_MetaBlock] = []
        self.known_meta: dict[int, _MetaBlock] = {}
        self.pads: dict[int, tuple[bytes, int]] = {}  # padding: its header, its end
        self.bounded = False
        self.summaries: list[tuple[int, int]] = []  # summary blocks, as BlockMap has them
        self.taken: bounded.Summary | None = None  # the summary whose records are counted
        self.taken_walk = 0  # the walk after which it was read
        self.base: dict[int, list[int]] = {}  # its sums per name index, as _SUM_COLS
        self.unmapped = False  # it has records of ids no entry read so far names
        self.walks = 0  # walks of a bounded log so far
        # Blocks with sums that were recycled, each with the walk that saw it: a summary
        # read after that walk holds its events (its fold wrote the summary first).
        self.retired: list[tuple[_Block, int]] = []
        self.threads: set[int] = set()
        self.name_map: dict[int, int] = {}
        self._lut = np.full(1, -1, np.int64)
        self._lut_keys: np.ndarray | None = None  # sparse ids: sorted keys ...
        self._lut_values: np.ndarray | None = None  # ... and their global indices
        self._lut_size = 0

    # -- reading ------------------------------------------------------------------------

    def pread(self, count: int, offset: int) -> bytes:
        return os.pread(self.fd, count, offset)

    def slots(self, first: int, count: int) -> bytes:
        """Slots ``[first, first + count)``, fewer where the file ends (whole slots only)."""
        data = self.pread(count * _SLOT, F.HEADER_SIZE + first * _SLOT)
        return data[: len(data) - len(data) % _SLOT]

    def close(self) -> None:
        if self.fd >= 0:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = -1

    # -- names --------------------------------------------------------------------------

    def map_names(self, ids: np.ndarray) -> np.ndarray:
        """File name ids -> global name indices; -1 for an id no entry defines."""
        if len(self.name_map) != self._lut_size:
            self._lut_size = len(self.name_map)
            top = max(self.name_map) if self.name_map else 0
            if top < 4 * len(self.name_map) + 1024:
                self._lut = np.full(top + 2, -1, np.int64)
                for fid, gid in self.name_map.items():
                    self._lut[fid] = gid
                self._lut_keys = self._lut_values = None
            else:  # forged or sparse ids: no table of 2**32 entries
                keys = np.array(sorted(self.name_map), dtype=np.int64)
                self._lut_keys = keys
                self._lut_values = np.array(
                    [self.name_map[k] for k in keys.tolist()], dtype=np.int64
                )
        if self._lut_keys is None:
            top = self._lut.shape[0] - 1
            return self._lut[np.minimum(ids, top).astype(np.int64)]  # type: ignore[no-any-return]
        keys, values = self._lut_keys, self._lut_values
        assert values is not None
        raw = ids.astype(np.int64)
        at = np.minimum(np.searchsorted(keys, raw), keys.size - 1)
        return np.where(keys[at] == raw, values[at], -1)


class Tail:
    """Follows the logs under ``path``; each ``poll()`` returns what is new.

    ``names`` (scope names, indexed by ``Batch.name``) and ``processes`` (indexed by
    ``Batch.proc``) only grow. ``max_slots`` bounds the slots one poll reads (a first poll
    of a large log is read in several, ``Batch.more`` saying so), and so its memory.
    """

    def __init__(self, path: str, *, max_slots: int = 1 << 20) -> None:
        self.path = os.fspath(path)
        self.max_slots = max_slots
        self.names: list[str] = []
        self._name_index: dict[str, int] = {}
        self.processes: list[Process] = []
        self.skipped = 0
        self.records = 0
        """Events read from the logs' blocks."""
        self.folded = 0
        """Events taken from bounded logs' summaries (``Batch.folds``)."""
        self._files: dict[str, _File] = {}  # files still followed, by path
        self._pending: set[str] = set()  # files whose header is not written yet
        self._done: set[str] = set()  # files no longer followed
        self._host = socket.gethostname()
        self._text = TextLogs()  # vLLM text logs found, followed in ``tailtext.py``

    # -- the directory ------------------------------------------------------------------

    def _listing(self) -> list[str] | None:
        """The log files under ``path`` now; ``None`` if it is one file."""
        try:
            mode = os.stat(self.path).st_mode
        except FileNotFoundError:
            return []  # not there yet: a directory a program will make
        except OSError as exc:
            raise LogError(f"cannot read {self.path}: {exc.strerror}") from None
        if not stat.S_ISDIR(mode):
            return None
        try:
            names = os.listdir(self.path)
        except FileNotFoundError:
            return []  # removed: its files' counts stay
        except OSError as exc:
            raise LogError(f"cannot read directory {self.path}: {exc.strerror}") from None
        return [os.path.join(self.path, n) for n in names if n.endswith(F.SUFFIX)]

    def _open(self, path: str, single: bool) -> _File | None:
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(path, flags)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise LogError(f"cannot read {path}: {exc.strerror}") from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                if single:
                    raise LogError(f"{path}: not a regular file")
                # A directory or FIFO named *.lpf in a log directory: no log, passed
                # over for good, as the whole-log reader's listing passes over it.
                os.close(fd)
                self._done.add(path)
                return None
        except BaseException:
            os.close(fd)
            raise
        return _File(path, fd, Process(index=-1, path=path))

    def _intern(self, name: str) -> int:
        idx = self._name_index.get(name)
        if idx is None:
            idx = self._name_index[name] = len(self.names)
            self.names.append(name)
        return idx

    # -- polling ------------------------------------------------------------------------

    def poll(self) -> Batch:
        """Every event added since the last poll (up to ``max_slots`` slots)."""
        listing = self._listing()
        single = listing is None
        paths = [self.path] if listing is None else listing
        present = set(paths)
        batch = _empty_batch()
        for path in paths:
            if path not in self._files and path not in self._done:
                self._pending.add(path)
        for path in sorted(self._pending):
            f = self._files.get(path) or self._open(path, single)
            if f is None:
                self._pending.discard(path)
                continue
            self._files[path] = f
            if self._start(f, single):
                self._pending.discard(path)
                f.proc.index = len(self.processes)
                self.processes.append(f.proc)
                batch.new_processes.append(f.proc.index)
        parts: list[tuple[np.ndarray, ...]] = []
        folds: list[Folds] = []
        budget = self.max_slots
        for path, f in list(self._files.items()):
            if f.header is None:
                if path not in present:  # removed before its header was written
                    f.close()
                    del self._files[path]
                    self._pending.discard(path)
                continue
            removed = path not in present
            alive = not removed and self._alive(f.proc)
            got, budget, stop = self._read(f, budget, batch, folds)
            if got is not None:
                parts.append(got)
            if budget <= 0 and f.proc.state == LIVE and not stop:
                batch.more = True
                continue  # read on at the next poll before deciding the file ended
            if f.proc.state == LIVE and (removed or not alive):
                f.proc.state = REMOVED if removed else ENDED
            if f.proc.state != LIVE:
                f.close()
                del self._files[path]
                self._done.add(path)
                batch.ended.append(f.proc.index)
        self._text.poll(self, batch, parts, budget)
        if parts:
            batch.name = np.concatenate([p[0] for p in parts]).astype(np.int32)
            batch.dur = np.concatenate([p[1] for p in parts])
            batch.error = np.concatenate([p[2] for p in parts])
            batch.proc = np.concatenate([p[3] for p in parts]).astype(np.int32)
            batch.self_ns = np.concatenate([p[4] for p in parts])
        if folds:
            batch.folds = Folds(
                **{
                    key: np.concatenate([getattr(part, key) for part in folds])
                    for key in Folds.__dataclass_fields__
                }
            )
            self.folded += int(batch.folds.count.sum())
        self.skipped += batch.skipped
        self.records += len(batch)
        return batch

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()
        self._text.close()

    def _start(self, f: _File, single: bool) -> bool:
        """Read ``f``'s header once it is written; whether it is."""
        head = f.pread(F.HEADER_SIZE, 0)
        if head[: len(F.MAGIC)] != F.MAGIC:
            if header_never_written(head):
                return False  # reserved, header not written yet (or never: a killed writer)
            # Not a liteprof log: a vLLM text log, as the whole-file reader takes it, or
            # no log (which the text side tells, as that reader does).
            self._pending.discard(f.path)
            del self._files[f.path]
            self._text.adopt(self, f.path, f.fd, single)
            f.fd = -1
            return False
        with os.fdopen(os.dup(f.fd), "rb", buffering=0) as fh:
            try:
                f.header = read_header(fh, f.path)
            except LogError:
                if single:
                    raise
                self._done.add(f.path)
                self._pending.discard(f.path)
                f.close()
                del self._files[f.path]
                self.skipped += 1
                return False
        bound = f.header.meta.get("max_bytes")
        f.bounded = isinstance(bound, int) and not isinstance(bound, bool)
        row = f.header.process(f.path)
        f.proc.pid, f.proc.name, f.proc.host, f.proc.rank = (
            row["pid"],
            row["name"],
            row["host"],
            row["rank"],
        )
        return True

    def _alive(self, proc: Process) -> bool:
        """Whether the process may still write: ``False`` only when it is known gone."""
        if proc.pid is None or proc.host != self._host:
            return True
        try:
            os.kill(proc.pid, 0)
        except ProcessLookupError:
            return False
        except OSError:  # another user's process: it exists
            return True
        return True

    # -- one file -----------------------------------------------------------------------

    def _read(
        self, f: _File, budget: int, batch: Batch, folds: list[Folds]
    ) -> tuple[tuple[np.ndarray, ...] | None, int, bool]:
        """New events of one file: ``(columns or None, budget left, file finished)``; what
        a bounded log's summary adds goes to ``folds``."""
        size = os.fstat(f.fd).st_size
        nslots = max(0, size - F.HEADER_SIZE) // _SLOT
        if nslots < f.walk_end and not self._trimmed(f, nslots):
            f.proc.state = TRUNCATED
            return None, budget, True
        if not f.walk_stopped:
            if not f.bounded:
                self._revisit_padding(f, batch)
            if nslots > f.walk_end or f.bounded:
                self._walk(f, nslots, batch)
        # A bounded log's newer summary, read after the walk (so that it holds every block
        # the walk saw recycled) and before the events: the blocks it holds are not read.
        summary, summary_walk, held = (
            self._newer_summary(f) if f.summaries else (None, f.walks, set())
        )
        raws: list[tuple[np.ndarray, _Block]] = []
        for blk in f.blocks:
            if budget <= 0:
                break
            if blk.first in held:
                continue
            got = self._read_block(f, blk, budget)
            if got is not None:
                raws.append((got, blk))
                budget -= got.shape[0]
                batch.slots_read += got.shape[0]
        f.blocks = [b for b in f.blocks if b.cursor < b.end]
        # The metadata after the events: every name and thread they use is defined by now,
        # in the blocks known before or in one added since (so walk once more: its thread
        # blocks are read at the next poll).
        if not f.walk_stopped:
            grown = max(0, os.fstat(f.fd).st_size - F.HEADER_SIZE) // _SLOT
            if not f.bounded:
                self._revisit_padding(f, batch)
            if grown > f.walk_end or f.bounded:
                self._walk(f, grown, batch)
        self._read_metadata(f, batch)
        columns = self._resolve(f, raws, batch) if raws else None
        # The summary last: its names are defined by the metadata read after it, and the
        # sums of the blocks it holds include what was read of them now.
        if summary is not None:
            self._take_summary(f, summary, summary_walk, folds)
        elif f.unmapped and f.taken is not None:
            self._take_summary(f, f.taken, f.taken_walk, folds)  # names defined since
        return columns, budget, False

    def _trimmed(self, f: _File, nslots: int) -> bool:
        """The file is shorter than the walk: a writer's close that cut the unused tail
        of its last block (whose header then says so), or else a truncation."""
        pos = f.last_block
        if pos is None or pos >= nslots:
            return False
        head = f.slots(pos, 1)
        if len(head) < _SLOT:
            return False
        magic, _owner, bsize, _seq = F.BLOCK_STRUCT.unpack(head)
        end = pos + bsize // _SLOT
        if magic != F.BLOCK_MAGIC or bsize < 2 * _SLOT or bsize % _SLOT or end > nslots:
            return False
        if any(blk.cursor > end for blk in f.blocks):
            return False  # cut below what was read: not the writer's trim
        for blk in f.blocks:
            blk.end = min(blk.end, end)
        for meta in f.metas:
            meta.end = min(meta.end, end)
        f.walk_end = end
        return True

    def _walk(self, f: _File, nslots: int, batch: Batch) -> None:
        """Walk the block headers added since the last walk (a bounded log: all of them,
        since it reuses its blocks in place)."""
        if f.bounded:
            self._walk_bounded(f, nslots, batch)
            return
        f.walk_end = self._walk_range(f, f.walk_end, nslots, batch)

    def _scan(self, f: _File, start: int, stop: int, batch: Batch) -> BlockMap:
        with os.fdopen(os.dup(f.fd), "rb", buffering=0) as fh:
            blocks = scan_blocks(fh, stop, start=start)
            if blocks.skipped:
                # A header being written while it was read can look damaged for an
                # instant: read it once more before counting it.
                again = scan_blocks(fh, stop, start=blocks.end)
                again.segments[:0] = blocks.segments
                again.meta_blocks[:0] = blocks.meta_blocks
                blocks = again
        if blocks.skipped:
            # A damaged block header: nothing after it can be reached (as in a whole
            # read). Counted once; the walk stops for good.
            f.walk_stopped = True
            batch.skipped += blocks.skipped
            f.proc.skipped += blocks.skipped
        return blocks

    def _walk_range(self, f: _File, start: int, stop: int, batch: Batch) -> int:
        """Walk ``[start, stop)``; note its blocks and the padding blocks between them
        (the uncarved rest of an arena, where thread blocks are carved later); the slot
        where the walk stopped."""
        blocks = self._scan(f, start, stop, batch)
        taken: list[tuple[int, int]] = []
        for first, end, owner in blocks.segments:
            taken.append((first - 1, end))
            known = f.known.get(first)
            if known is None:  # a block cut at the file's end is walked again, whole
                known = f.known[first] = _Block(cursor=first, end=end, owner=owner, first=first)
                f.blocks.append(known)
            elif end > known.end:
                if known.cursor >= known.end:
                    f.blocks.append(known)
                known.end = end
        for first, end in blocks.meta_blocks:
            taken.append((first - 1, end))
            self._meta_block(f, first, end)
        if taken:
            f.last_block = max(f.last_block or 0, max(t[0] for t in taken))
        # What the walk stepped over without a block of ours: padding (and reserved
        # kinds of block); remember each padding block, to look at it again.
        pos = start
        for lo, hi in sorted(taken) + [(blocks.end, blocks.end)]:
            if lo > pos:
                self._note_padding(f, pos, lo, batch)
            pos = max(pos, hi)
        return blocks.end

    def _meta_block(self, f: _File, first: int, end: int) -> None:
        meta = f.known_meta.get(first)
        if meta is None:
            meta = f.known_meta[first] = _MetaBlock(cursor=first, end=end)
            f.metas.append(meta)
        elif end > meta.end:
            meta.end, meta.done = end, False

    def _note_padding(self, f: _File, start: int, stop: int, batch: Batch) -> None:
        pos = start
        while pos < stop:
            head = f.slots(pos, 1)
            if len(head) < _SLOT:
                return
            magic, owner, bsize, _seq = F.BLOCK_STRUCT.unpack(head)
            if magic != F.BLOCK_MAGIC or bsize < 2 * _SLOT or bsize % _SLOT:
                return
            if owner == F.PAD_OWNER:
                f.pads[pos] = (head, min(pos + bsize // _SLOT, stop))
            elif owner == F.META_OWNER or owner < F.FIRST_RESERVED_OWNER:
                # Carved since the walk stepped over it as padding: walk it now.
                self._walk_range(f, pos, stop, batch)
                return
            pos += bsize // _SLOT

    def _revisit_padding(self, f: _File, batch: Batch) -> None:
        """A padding block whose header changed has had blocks carved into it: walk it."""
        for pos, (head, stop) in list(f.pads.items()):
            if f.walk_stopped:
                return
            if f.slots(pos, 1) != head:
                del f.pads[pos]
                self._walk_range(f, pos, stop, batch)

    def _walk_bounded(self, f: _File, nslots: int, batch: Batch) -> None:
        """A bounded log reuses regions in place (``LITEPROF_MAX_MB``): each walk reads
        every block header (a cost bounded by the log's bound), and a thread block is the
        one it was only while its header, sequence number included, is the same. The
        events of a block reused before they were read are in the log's summary."""
        blocks = self._scan(f, 0, nslots, batch)
        f.walks += 1
        known: dict[int, _Block] = {}
        for first, end, owner in blocks.segments:
            head = f.slots(first - 1, 1)
            blk = f.known.get(first)
            if len(head) < _SLOT:
                continue
            magic, now_owner, size, lo, hi = F.BLOCK_HEAD.unpack(head)
            if magic != F.BLOCK_MAGIC or now_owner != owner or first - 1 + size // _SLOT < end:
                # The walk read a header being written (a block carved from an arena over
                # its padding): read it again at the next walk. Its sequence number, which
                # says whether a fold holds it, is only ever taken from a header read whole.
                continue
            seq = lo | hi << 32
            if blk is None or blk.head != head:
                blk = _Block(cursor=first, end=end, owner=owner, first=first, head=head, seq=seq)
                # Left in place by a writer killed between a fold's summary and the
                # block's relabelling: its events are in the summary already.
                blk.folded = bounded.folded(f.taken, first, seq)
            blk.end = max(blk.end, end)
            known[first] = blk
        for first, blk in f.known.items():
            if known.get(first) is blk:
                continue
            if first not in known and f.slots(first - 1, 1) == blk.head:
                # Stepped over (in an arena relabelled as padding, before its zeroing):
                # the same block as long as its header stands.
                known[first] = blk
            elif blk.cursor > blk.first:
                # Recycled: its sums (some may be added yet, from a read in this poll
                # before this walk) await a summary.
                f.retired.append((blk, f.walks))
        f.known = known
        f.blocks = [b for b in known.values() if b.cursor < b.end and not b.folded]
        f.summaries = blocks.summaries
        for first, end in blocks.meta_blocks:
            self._meta_block(f, first, end)
        if blocks.segments or blocks.meta_blocks:
            f.last_block = max(
                [s[0] - 1 for s in blocks.segments] + [m[0] - 1 for m in blocks.meta_blocks]
            )
        f.walk_end = blocks.end

    def _read_block(self, f: _File, blk: _Block, budget: int) -> np.ndarray | None:
        """The slots of ``blk`` written since the last poll, up to the first empty one."""
        out: list[np.ndarray] = []
        pos, chunk = blk.cursor, blk.chunk
        while pos < blk.end and budget > 0:
            want = min(chunk, blk.end - pos, budget)
            arr = np.frombuffer(f.slots(pos, want), SLOT_DTYPE)
            empty = np.flatnonzero((arr["flags"] & F.KIND_MASK) == 0)
            k = int(empty[0]) if empty.size else arr.shape[0]
            if k:
                out.append(arr[:k])
                pos += k
                budget -= k
            if k < want:
                break  # the writer is there (or the file ends)
            chunk = min(2 * chunk, _MAX_CHUNK)
        if not out:
            return None
        if f.bounded and f.slots(blk.first - 1, 1) != blk.head:
            # Recycled while it was read (its header changes before any of its bytes do):
            # what was read may be another block's; its events are in the summary.
            blk.cursor = blk.end
            return None
        # What this poll found sizes the next poll's first read.
        blk.chunk = max(_FIRST_CHUNK, min(_MAX_CHUNK, pos - blk.cursor))
        data = np.concatenate(out) if len(out) > 1 else out[0].copy()
        # The last slot read may be a copy that overtook the writer inside the slot (its
        # kind, stored last, already set; an earlier field not yet): read it again until
        # two reads agree.
        last = data[-1:].tobytes()
        for _ in range(3):
            again = f.slots(pos - 1, 1)
            if again == last:
                break
            last = again
        data[-1:] = np.frombuffer(last, SLOT_DTYPE)
        blk.cursor = pos
        return data

    def _read_metadata(self, f: _File, batch: Batch) -> None:
        """New entries of the metadata blocks, from where the last poll stopped."""
        for meta in f.metas:
            if meta.done:
                continue
            probe = f.slots(meta.cursor, 1) if meta.cursor < meta.end else b""
            if len(probe) < _SLOT or not any(probe[:4]):
                continue  # no new entry
            raw = f.slots(meta.cursor, meta.end - meta.cursor)
            n = len(raw) // _SLOT
            complete, newest, past_end = 0, -1, False
            i = 0
            while i < n:
                kind, _ident, length, _r, _extra = F.META_STRUCT.unpack_from(raw, i * _SLOT)
                if kind == 0:
                    break
                newest = i
                i += 1 + (length + _SLOT - 1) // _SLOT
                if i > n:
                    past_end = True  # runs past its block: damage, counted below
                    break
                complete = i
            if newest < 0:
                continue
            # The newest entry's head may be a torn copy: this writer stores its kind last,
            # but older ones stored the kind first and the other fields after it. It is
            # taken only when a second read agrees, else at the next poll.
            if f.slots(meta.cursor + newest, 1) != raw[newest * _SLOT : (newest + 1) * _SLOT]:
                complete, past_end = newest, False
            upto = n if past_end else complete
            if upto == 0:
                continue
            found = Metadata()
            parse_metadata(raw[: upto * _SLOT], found)
            for ident, text in found.names.items():
                f.name_map[ident] = self._intern(text)
            f.threads.update(found.threads)
            meta.cursor += complete
            if found.skipped or past_end or meta.cursor >= meta.end:
                # Damage ends a block's entries, as in a whole read; counted once.
                meta.done = True
                batch.skipped += found.skipped
                f.proc.skipped += found.skipped

    def _resolve(
        self, f: _File, raws: list[tuple[np.ndarray, _Block]], batch: Batch
    ) -> tuple[np.ndarray, ...] | None:
        """Events of the slots read: names mapped, damage counted; in a bounded log, the
        sums of each block's events kept with the block."""
        data = np.concatenate([r for r, _ in raws]) if len(raws) > 1 else raws[0][0]
        owner_ok = np.concatenate(
            [np.full(r.shape[0], blk.owner in f.threads, np.bool_) for r, blk in raws]
        )
        flags = data["flags"]
        kind = flags & F.KIND_MASK
        is_event = kind == F.KIND_EVENT
        reserved = (kind != F.KIND_EVENT) & (kind != F.KIND_LANE) & (kind < _KIND_OPTIONAL)
        names = f.map_names(data["name"])
        valid = (
            is_event
            & owner_ok
            & (names >= 0)
            & (data["dur"] >= 0)
            & (data["child"] >= 0)
            & (data["start"] >= 0)
        )
        damaged = int(np.count_nonzero(reserved)) + int(np.count_nonzero(is_event & ~valid))
        batch.skipped += damaged
        f.proc.skipped += damaged
        n = int(np.count_nonzero(valid))
        if not n:
            return None
        f.proc.records += n
        dur = data["dur"][valid].astype(np.int64)
        # As a summary's fold reckons it: a child time above the duration is cut to it.
        selfish = dur - np.minimum(data["child"][valid], dur)
        error = (flags[valid] & F.FLAG_ERROR) != 0
        names = names[valid]
        if f.bounded:
            which = np.repeat(np.arange(len(raws)), [r.shape[0] for r, _ in raws])[valid]
            _add_sums([blk for _, blk in raws], which, names, dur, selfish, error)
        return names, dur, error, np.full(n, f.proc.index, np.int32), selfish

    # -- bounded logs: what the summary adds --------------------------------------------

    def _newer_summary(self, f: _File) -> tuple[bounded.Summary | None, int, set[int]]:
        """The log's summary if it is newer than the one taken, with the walk count it
        was read after and the first slots of the blocks its history holds; ``(None,
        ...)`` if there is none (or none can be told apart).

        Which blocks a summary holds is known from its fold history (the newest folds)
        and from the blocks seen recycled before it was read. A block read from that
        neither says holds could be one folded more folds ago than the history keeps, if
        the writer went through many folds between the walk and this read (a reader held
        up on a busy machine). So the header of each such block is read again now: one
        that still stands is not in the summary (a fold relabels its region before the
        next fold starts, and the fold of this one is not in the history); one that
        changed is noted recycled, and the summary read again, until none is in doubt.
        """
        newer_than = f.taken.generation if f.taken is not None else 0
        for _attempt in range(4):
            summary = bounded.newest_summary(
                lambda first, end: f.slots(first, end - first), f.summaries, newer_than
            )
            walk = f.walks
            if summary is None:
                return None, walk, set()
            held = {blk.first for blk in _held(summary, f.known)}
            doubtful = [
                blk
                for blk in f.known.values()
                if blk.sums and blk.first not in held and f.slots(blk.first - 1, 1) != blk.head
            ]
            if not doubtful:
                return summary, walk, held
            f.walks += 1  # a summary read from now on holds them
            for blk in doubtful:
                f.retired.append((blk, f.walks))
                del f.known[blk.first]  # the next walk finds what stands there now
            f.blocks = [b for b in f.blocks if b.first in f.known and f.known[b.first] is b]
        return None, f.walks, set()

    def _take_summary(
        self, f: _File, summary: bounded.Summary, walk: int, folds: list[Folds]
    ) -> None:
        """Take ``summary`` (read after walk ``walk``) in place of the sums of the blocks
        it holds: those its fold history covers, and those seen recycled by then. What
        it adds beyond them goes to ``folds``. A summary that holds less than those sums
        (one older than a recycling that a reader saw, read in a race with two folds; or
        a forged one) is not taken: it would make counts go back."""
        if summary.bounds != BOUNDS_NS:
            return  # buckets this reader cannot add to its own (no writer makes such)
        new: dict[int, list[int]] = {}
        lows: dict[int, list[int]] = {}
        unmapped = False
        for ident, rec in summary.records.items():
            name = f.name_map.get(ident)
            if name is None:
                unmapped = True  # its entry is not read yet: taken again once it is
                continue
            count, errors, total, selfish, low, high, *buckets = rec
            # Bounded as the whole-file reader bounds a record (bounded.dropped_rows),
            # so that a forged one cannot make errors exceed the count.
            count = min(count, bounded.MAX_COUNT)
            errors = min(errors, count)
            buckets = [min(b, bounded.MAX_COUNT) for b in buckets]
            vals = [count, errors, total, min(selfish, total), *buckets]
            have = new.get(name)
            if have is None:
                new[name], lows[name] = vals, [low, high]
            else:  # two ids of one name
                new[name] = [a + b for a, b in zip(have, vals)]
                lows[name] = [min(lows[name][0], low), max(lows[name][1], high)]
        covered = [blk for blk in _held(summary, f.known) if not blk.folded]
        # Recycled blocks: seen so before the summary was read, or (seen since) held by it.
        gone = [
            blk
            for blk, seen in f.retired
            if seen <= walk or bounded.folded(summary, blk.first, blk.seq)
        ]
        delta = {name: list(vals) for name, vals in new.items()}
        for name, vals in f.base.items():
            row = delta.setdefault(name, [0] * _SUM_COLS)
            for i, v in enumerate(vals):
                row[i] -= v
        chunks = [chunk for blk in covered + gone for chunk in blk.sums]
        if chunks:
            names, sums = _merge(chunks)
            for name, vals in zip(names.tolist(), sums.tolist()):
                row = delta.setdefault(name, [0] * _SUM_COLS)
                for i, v in enumerate(vals):
                    row[i] -= v
        if any(v < 0 for row in delta.values() for v in row):
            return
        f.taken, f.taken_walk, f.base, f.unmapped = summary, walk, new, unmapped
        for blk in covered:
            blk.folded, blk.cursor, blk.sums = True, blk.end, []
        for blk in gone:
            blk.sums = []
            blk.cursor = blk.end  # dropped: never again counted
        f.retired = [(blk, seen) for blk, seen in f.retired if blk.sums]
        f.proc.dropped = summary.events
        rows = sorted(name for name, vals in delta.items() if any(vals))
        if not rows:
            return
        table = np.array([[min(v, _I64_MAX) for v in delta[name]] for name in rows], np.int64)
        f.proc.folded += int(table[:, 0].sum())
        folds.append(
            Folds(
                name=np.array(rows, np.int32),
                proc=np.full(len(rows), f.proc.index, np.int32),
                count=table[:, 0],
                errors=table[:, 1],
                total_ns=table[:, 2],
                self_ns=table[:, 3],
                min_ns=np.array([min(lows[n][0], _I64_MAX) for n in rows], np.int64),
                max_ns=np.array([min(lows[n][1], _I64_MAX) for n in rows], np.int64),
                buckets=table[:, 4:],
            )
        )


def _held(summary: bounded.Summary, blocks: dict[int, _Block]) -> list[_Block]:
    """The blocks of ``blocks`` (by first slot) that ``summary``'s fold history covers:
    per fold, those in its region (a search in the sorted first slots, not a scan of
    every block per fold), then ``bounded.folded`` on each."""
    if not summary.history or not blocks:
        return []
    firsts = np.fromiter(blocks, np.int64, len(blocks))
    firsts.sort()
    # Folds of a real file lie within it (a forged offset of 2**64 would not fit int64).
    kept = [h for h in summary.history if max(h) < 1 << 62]
    history = np.array(kept, np.int64).reshape(-1, 3)
    # A block header at byte b has its first slot at (b - HEADER_SIZE) / 32 + 1; a fold
    # holds the blocks of its region made before it (``bounded.folded``).
    lo = -(-(history[:, 0] - F.HEADER_SIZE) // _SLOT) + 1
    hi = -(-(history[:, 0] + history[:, 2] - F.HEADER_SIZE) // _SLOT) + 1
    starts = np.searchsorted(firsts, lo).tolist()
    ends = np.searchsorted(firsts, hi).tolist()
    found: dict[int, _Block] = {}
    for a, b, limit in zip(starts, ends, history[:, 1].tolist()):
        for first in firsts[a:b].tolist():
            blk = blocks[first]
            if blk.seq < limit:
                found[first] = blk
    return list(found.values())


def _add_sums(
    blocks: list[_Block],
    which: np.ndarray,
    names: np.ndarray,
    dur: np.ndarray,
    selfish: np.ndarray,
    error: np.ndarray,
) -> None:
    """Add to each block's sums, per name, what was read of it now: ``which`` says the
    block (an index into ``blocks``) of each event. A few array passes per poll, whatever
    the number of blocks and names: a dense table where it is small, else the distinct
    (block, name) pairs."""
    n = int(dur.shape[0])
    if not n:
        return
    width = int(names.max()) + 1
    key = which.astype(np.int64) * width + names
    size = len(blocks) * width
    keys: np.ndarray | None = None
    if size * NBUCKETS <= 8 * n + 4096:
        ids = key
    else:
        keys, ids = np.unique(key, return_inverse=True)
        size = int(keys.shape[0])
    count = np.bincount(ids, minlength=size)
    errors = np.bincount(ids[error], minlength=size)  # few: cheaper than weights
    bucket = np.searchsorted(_BOUNDS, dur, side="left")
    buckets = np.bincount(ids * NBUCKETS + bucket, minlength=size * NBUCKETS)
    if int(dur.max()) * n < _EXACT_FLOAT:  # every partial sum is an exact float
        total = np.bincount(ids, weights=dur, minlength=size).astype(np.int64)
        selfsum = np.bincount(ids, weights=selfish, minlength=size).astype(np.int64)
    else:  # durations of weeks: integer sums
        total = np.zeros(size, np.int64)
        selfsum = np.zeros(size, np.int64)
        np.add.at(total, ids, dur)
        np.add.at(selfsum, ids, selfish)
    rows = np.flatnonzero(count)
    table = np.empty((rows.shape[0], _SUM_COLS), np.int64)
    table[:, 0] = count[rows]
    table[:, 1] = errors[rows]
    table[:, 2] = total[rows]
    table[:, 3] = selfsum[rows]
    table[:, 4:] = buckets.reshape(size, NBUCKETS)[rows]
    pair = rows if keys is None else keys[rows]
    block, name = pair // width, pair % width
    # Rows are in key order, so each block's rows are one run.
    cuts = np.flatnonzero(block[1:] != block[:-1]) + 1
    for lo, hi in zip(np.r_[0, cuts].tolist(), np.r_[cuts, block.shape[0]].tolist()):
        blk = blocks[int(block[lo])]
        blk.sums.append((name[lo:hi], table[lo:hi]))
        if len(blk.sums) > _MAX_CHUNKS:
            blk.sums = [_merge(blk.sums)]


def _merge(chunks: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """One block's sums of several polls as one: a row per name."""
    names = np.concatenate([c[0] for c in chunks])
    uniq, inv = np.unique(names, return_inverse=True)
    out = np.zeros((uniq.shape[0], _SUM_COLS), np.int64)
    np.add.at(out, inv, np.concatenate([c[1] for c in chunks]))
    return uniq, out
