"""The log file of one recording process: creation, blocks, metadata entries, summaries.

The hot path (storing one event into a mapped block) lives in the recorder backends; this
module does everything that happens once per file, per block, per thread or per name.
The layout is specified in ``docs/FORMAT.md``, what it promises in
``docs/RELIABILITY.md``.

- A thread's first blocks are small (``MIN_BLOCK`` doubling up to ``SMALL_MAX``) and
  carved from an *arena*: one reserved, mapped run of the file that many threads share,
  each sub-block owned by one thread. Registering a thread and giving it a block then
  costs no system call; a busy thread goes on to blocks of its own mapping.
- With ``LITEPROF_MAX_MB`` the file never grows past that bound: at its limit the writer
  *recycles* the oldest region nobody writes to any more, after folding its events into
  the file's summary (counts, totals, errors, duration histograms), in an order that a
  kill at any moment leaves readable with nothing counted twice.
- Every mapping is registered with the SIGBUS guard of the C core (``_native``), so that
  another process truncating the file cannot kill the program; the writer sees the
  fault, or the shrunk file, at its next block and stops recording with one warning.
"""

from __future__ import annotations

import _thread
import binascii
import errno
import math
import mmap
import os
import stat
import struct
import sys
import time
from _socket import gethostname  # not ``socket``: its enums cost every recording process
from _weakref import ref as weak_ref  # ``weakref.ref``, without importing weakref
from array import array
from collections import deque

from .._version import __version__
from . import _native
from . import format as F

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_OPEN_FLAGS = (
    os.O_RDWR
    | os.O_CREAT
    | os.O_EXCL
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)

_MAP_UNIT = max(mmap.ALLOCATIONGRANULARITY, mmap.PAGESIZE, F.SLOT_SIZE)
_pack_head = F.BLOCK_HEAD.pack_into
# The fields of a head after its first word: a metadata head's id, length, reserved word and
# extra; a block header's size and sequence number (its owner is stored on its own).
_META_REST = struct.Struct("<IIIQ8x")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


def store_meta_head(buf: Any, pos: int, kind: int, ident: int, length: int, extra: int) -> None:
    """Store a metadata entry's head at ``pos`` of the mapping ``buf`` (an empty slot),
    its kind word last.

    A reader copying the slot meanwhile (``read`` on the file) sees either an empty slot
    (kind 0: the end of the entries) or the whole head. ``struct.pack_into`` would not do:
    it zero-fills the slot and then stores the fields front to back, so a copy between
    the kind's store and the length's got a name of length 0, and the payload's bytes
    parsed as the next head (a damaged entry, or a name redefined as empty).
    """
    buf[pos + 4 : pos + F.SLOT_SIZE] = _META_REST.pack(ident, length, 0, extra)
    buf[pos : pos + 4] = _U32.pack(kind)


def store_block_head(buf: Any, pos: int, owner: int, size: int, seq: int) -> None:
    """Turn the padding header at ``pos`` of the mapping ``buf`` into the header of a
    block carved there: its size and sequence number first, its owner last.

    Every state a reader may copy meanwhile is a valid header: the old padding, padding
    of the new size (followed by the padding header of the rest, stored before), or the
    new block. ``struct.pack_into`` zero-fills the slot first: a copy then saw a header
    of size 0 (damage, and the end of the walk) or no header at all.
    """
    # One aligned store per field (padding's sequence number is ignored, so it goes first).
    buf[pos + 12 : pos + 20] = _U64.pack(seq)
    buf[pos + 8 : pos + 12] = _U32.pack(size)
    buf[pos + 4 : pos + 8] = _U32.pack(owner)


_faults = _native.faults
SMALL_MAX = 2048
"""Blocks up to this size are carved from a shared arena; larger ones are mapped alone."""
_SMALL_UNIT = 64  # sub-block sizes are multiples of this, so an arena's rest is 0 or >= 64
ARENA_SIZE = -(-64 * 1024 // _MAP_UNIT) * _MAP_UNIT
MIN_MAX_MB = 1.0
"""The smallest ``LITEPROF_MAX_MB`` a bounded log works with."""


def process_rank() -> int | None:
    """The rank from ``RANK``, else ``LOCAL_RANK``, as an int; ``None`` where neither parses."""
    for var in ("RANK", "LOCAL_RANK"):
        value = os.environ.get(var)
        if value is not None:
            try:
                return int(value.strip())
            except ValueError:
                continue
    return None


def current_process_name() -> str:
    mp = sys.modules.get("multiprocessing")
    if mp is None:
        return "MainProcess"
    try:
        return str(mp.current_process().name)
    except Exception:
        return "MainProcess"


def max_bytes_from_env() -> int | None:
    """``LITEPROF_MAX_MB`` in bytes; ``None`` where unset. A value that is not a number of
    MiB of at least ``MIN_MAX_MB`` is an error: recording must not go unbounded silently."""
    raw = os.environ.get("LITEPROF_MAX_MB", "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= MIN_MAX_MB):
        raise ValueError(f"LITEPROF_MAX_MB={raw!r}: must be a number of MiB, at least 1")
    return int(value * (1 << 20))


def _reserve(fd: int, offset: int, length: int) -> None:
    """Give the bytes disk blocks now, so that a full disk fails here and not as SIGBUS."""
    fallocate = getattr(os, "posix_fallocate", None)
    if fallocate is not None:
        try:
            fallocate(fd, offset, length)
            return
        except OSError as exc:
            # EINVAL/EOPNOTSUPP: the file system cannot preallocate; anything else is real.
            if exc.errno not in (errno.EINVAL, errno.EOPNOTSUPP):
                raise
    # No preallocation on this file system: a sparse ftruncate would defer the disk-full
    # error to the first store into the mapping, which is a SIGBUS that kills the program.
    # Writing the zeros makes the file system allocate the blocks now, so a full disk is an
    # OSError (ENOSPC) here. (A file system that compresses zeros away can still defer it.)
    _zero(fd, offset, length)


def _write_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n


def _zero(fd: int, offset: int, length: int) -> None:
    zeros = bytes(min(length, 1 << 16))
    pos, end = offset, offset + length
    while pos < end:
        pos += os.pwrite(fd, zeros[: end - pos], pos)


def make_directory(path: str) -> None:
    """Create the log directory (and missing parents) without group/other write permission.

    Each component we create is made with mode ``0755``, which the umask can only narrow
    (``os.makedirs`` would give the parents the umask's default instead). No chmod after:
    it would widen a stricter umask (``077``) and follow a symlink swapped in meanwhile.
    """
    if os.path.isdir(path):
        return
    parent = os.path.dirname(os.path.abspath(path))
    if parent and parent != path and not os.path.isdir(parent):
        make_directory(parent)
    try:
        os.mkdir(path, 0o755)
    except FileExistsError:
        if not os.path.isdir(path):
            raise


def directory_warnings(path: str) -> list[str]:
    """Why others could replace a log written under ``path``: the directory or one of its
    parents owned by another user (other than root), or writable by every user without
    the sticky bit. Empty where neither holds (or on a system without owners)."""
    getuid = getattr(os, "getuid", None)
    if getuid is None:
        return []
    uid = getuid()
    out: list[str] = []
    cur = os.path.abspath(path)
    while True:
        try:
            st = os.stat(cur)
        except OSError:
            break
        if st.st_uid not in (uid, 0):
            out.append(f"log directory {cur} is owned by another user (uid {st.st_uid})")
        if st.st_mode & stat.S_IWOTH and not st.st_mode & stat.S_ISVTX:
            out.append(
                f"log directory {cur} is writable by every user and has no sticky bit "
                f"(mode {stat.S_IMODE(st.st_mode):04o})"
            )
        parent = os.path.dirname(cur)
        if parent == cur:
            break
        cur = parent
    return out


_warned_directories: set[str] = set()


def _warn_directory(directory: str, warnings: list[str]) -> None:
    """Once per directory and process (a forked child inherits what its parent said)."""
    if directory in _warned_directories:
        return
    _warned_directories.add(directory)
    import logging

    logging.getLogger("liteprof").warning(
        "liteprof: %s: another user can replace or forge this process's log (reports of it say so)",
        "; ".join(warnings),
    )


# -- regions ------------------------------------------------------------------------------

_ARENA, _BLOCK, _META, _SUMMARY, _FREE = "arena", "block", "meta", "summary", "free"


class _Region:
    """A run of the file that the writer maps as one: a thread's block, an arena of small
    blocks, a metadata block or a summary block; in a bounded log also a free region that
    was recycled and waits for its next use. Offsets and sizes are whole mmap units."""

    __slots__ = ("offset", "size", "kind", "mm", "base", "guard", "pos", "live", "views")

    def __init__(self, offset: int, size: int, kind: str) -> None:
        self.offset = offset
        self.size = size
        self.kind = kind
        self.mm: mmap.mmap | None = None  # held here for arenas and metadata blocks
        self.base: memoryview | None = None  # an arena's view that sub-blocks slice
        self.guard = -1
        self.pos = 0  # an arena's next free byte
        self.live = 0  # a thread's own block: 1 while its mapping exists
        # An arena's sub-blocks, weakly, to invalidate at close. No callbacks: an arena
        # learns that its sub-blocks are gone when its mmap closes (it cannot while any
        # exists), which keeps a thread's first block free of per-thread bookkeeping.
        self.views: list[weak_ref[memoryview]] = []

    def recyclable(self) -> bool:
        if self.kind == _BLOCK:
            return self.live == 0
        return self.kind == _ARENA and self.mm is None  # retired, and no sub-block is left


class _Summary:
    """A bounded log's record of the events it dropped: two summary blocks written in turn
    (the newer valid one counts), and the accumulator they are written from."""

    def __init__(self, slots: list[_Region]) -> None:
        self.slots = slots
        self.generation = 0
        self.bounds = array("Q", F.HISTOGRAM_BOUNDS_NS)
        self.nbuckets = len(self.bounds) + 1
        self.rec_size = _native.record_size(self.nbuckets)
        self.acc = bytearray()
        self.events = 0
        self.regions = 0
        self.first: int | None = None
        self.last: int | None = None
        self.history: deque[bytes] = deque(maxlen=F.FOLD_HISTORY)
        self._bounds_bytes = b"".join(b.to_bytes(8, "little") for b in F.HISTOGRAM_BOUNDS_NS)

    def capacity(self) -> int:
        """Bytes a summary may take in its block (after the block header)."""
        return self.slots[0].size - F.SLOT_SIZE

    def fold(self, data: bytes | memoryview, names: int) -> int:
        """Add the events of one thread block's slots; returns the events folded."""
        need = names * self.rec_size
        if len(self.acc) < need:
            self.acc.extend(bytes(need - len(self.acc)))
        folded, _skipped, first, last = _native.fold(self.acc, data, self.bounds)
        if folded:
            self.events += folded
            if first is not None:
                self.first = first if self.first is None else min(self.first, first)
            if last is not None:
                self.last = last if self.last is None else max(self.last, last)
        return folded

    def encode(self, generation: int) -> bytes:
        """The summary as stored after its block header (``docs/FORMAT.md``)."""
        size = self.rec_size
        acc = memoryview(self.acc)
        # Zero counts read the same in either byte order: the names with a record.
        counts = acc.cast("Q")[:: size // 8].tolist() if self.acc else []
        records = [
            F.RECORD_HEAD.pack(ident, 0) + acc[ident * size : (ident + 1) * size]
            for ident, count in enumerate(counts)
            if count
        ]
        totals = F.SUMMARY_TOTALS.pack(
            self.events,
            self.regions,
            -1 if self.first is None else self.first,
            -1 if self.last is None else self.last,
        )
        body = totals + self._bounds_bytes + b"".join(self.history) + b"".join(records)
        fields = F.SUMMARY_HEAD.pack(
            F.SUMMARY_MAGIC, 0, generation, self.nbuckets, len(records), len(self.history), 0
        )
        crc = binascii.crc32(fields[8:] + body)
        return (
            F.SUMMARY_HEAD.pack(
                F.SUMMARY_MAGIC, crc, generation, self.nbuckets, len(records), len(self.history), 0
            )
            + body
        )


class LogWriter:
    """Owns one log file: creates it, hands out mapped blocks, writes metadata entries.

    Thread-safe: block allocation and metadata writes take ``self._lock``; the events
    themselves are written by the backend into blocks each owned by one thread.
    ``max_bytes`` bounds the file (default: ``LITEPROF_MAX_MB``; 0: unbounded).
    """

    def __init__(self, directory: str, *, backend: str, max_bytes: int | None = None) -> None:
        cap = max_bytes_from_env() if max_bytes is None else (max_bytes or None)
        make_directory(directory)
        warnings = directory_warnings(directory)
        self.pid = os.getpid()
        mono = time.perf_counter_ns()
        wall = time.time_ns()
        self.metadata: dict[str, Any] = {
            "pid": self.pid,
            "ppid": os.getppid(),
            "host": gethostname(),
            "process_name": current_process_name(),
            "rank": process_rank(),
            "argv": [a[:200] for a in sys.argv[:8]],
            "backend": backend,
            "liteprof_version": __version__,
            "python": sys.version.split()[0],
            "mono_ns": mono,
            "wall_ns": wall,
        }
        if warnings:
            self.metadata["warnings"] = [w[:400] for w in warnings[:4]]
        if cap is not None:
            self.metadata["max_bytes"] = cap
        payload = self._metadata_bytes()
        header = F.HEADER_STRUCT.pack(F.MAGIC, F.VERSION, F.HEADER_SIZE, F.SLOT_SIZE, len(payload))
        self.fd, self.path = self._create(directory, (header + payload).ljust(F.HEADER_SIZE, b"\0"))
        if warnings:
            _warn_directory(os.path.abspath(directory), warnings)
        self._lock = _thread.allocate_lock()
        self._end = F.HEADER_SIZE
        self._seq = 0
        self._faults = _native.faults()
        # The blocks handed to threads (an mmap of its own, or a memoryview of an arena),
        # by the id of a weakref to each: (weakref, region, guard handle). The writer learns
        # that a block is gone from the weakref's callback, which only appends to _dead: it
        # may run anywhere, also in a thread that holds the writer's lock.
        self._leases: dict[int, tuple[weak_ref[Any], _Region, int]] = {}
        self._dead: list[int] = []
        self._arena: _Region | None = None
        self._arenas: list[_Region] = []  # retired arenas still mapped (sub-blocks live)
        self._meta: _Region | None = None
        self._meta_pos = 0
        self._next_meta_size = F.MIN_BLOCK * 16
        self._meta_bytes = 0
        self._last: _Region | None = None  # the region that ends the file
        self._names: dict[str, int] = {}
        self._threads = 0
        self.closed = False
        self.truncated = False
        # Bounded logs only: the data regions in the order they were (re)used, the free
        # ones, the summary and the room kept for it until the first fold makes it.
        self.max_bytes = cap
        self._regions: dict[int, _Region] = {}
        self._free: list[_Region] = []
        self._summary: _Summary | None = None
        if cap is None:
            self._max_block = F.MAX_BLOCK
            self._arena_size = ARENA_SIZE
            self._summary_size = 0
        else:
            unit = _MAP_UNIT
            self._max_block = max(8192, min(F.MAX_BLOCK, 1 << ((cap // 32).bit_length() - 1)))
            self._max_block = -(-self._max_block // unit) * unit
            self._arena_size = min(ARENA_SIZE, self._max_block)
            self._summary_size = -(-max(16 * 1024, min(cap // 32, 4 << 20)) // unit) * unit
        self._reserved = 2 * self._summary_size

    def _metadata_bytes(self) -> bytes:
        data = F.encode_json(self.metadata)
        while len(data) > F.MAX_METADATA and self.metadata["argv"]:
            self.metadata["argv"] = self.metadata["argv"][:-1]
            data = F.encode_json(self.metadata)
        if len(data) > F.MAX_METADATA:
            self.metadata["host"] = self.metadata["host"][:64]
            self.metadata["process_name"] = self.metadata["process_name"][:256]
            self.metadata.pop("warnings", None)
            data = F.encode_json(self.metadata)
        return data

    # -- creation -----------------------------------------------------------------------

    def _create(self, directory: str, page: bytes) -> tuple[int, str]:
        """Create the file with its header already in place, exclusively, never through a
        symlink. Where the system allows, the file is made nameless (``O_TMPFILE``), given
        its header and only then linked under its name: a process killed at any moment
        leaves either a whole header or no file at all, never an empty log."""
        made = self._create_unnamed(directory, page)
        if made is not None:
            return made
        for _ in range(100):
            path = os.path.join(directory, self._name())
            try:
                fd = os.open(path, _OPEN_FLAGS, 0o644)
            except FileExistsError:
                continue
            try:
                # The header is written whole (which allocates its disk blocks, so no
                # reservation is needed): a kill before leaves an empty file, which readers
                # count as one skipped file; never a page of zeros.
                _write_all(fd, page, 0)
            except BaseException:
                os.close(fd)
                try:
                    os.unlink(path)  # a log without its header is of no use to anyone
                except OSError:
                    pass
                raise
            return fd, path
        raise FileExistsError(f"could not create a unique log file in {directory}")

    def _name(self) -> str:
        return f"{F.STEM_PREFIX}{self.pid}-{os.urandom(8).hex()}{F.SUFFIX}"

    def _create_unnamed(self, directory: str, page: bytes) -> tuple[int, str] | None:
        """``O_TMPFILE`` + ``linkat``; ``None`` where the system or file system lacks them."""
        tmpfile = getattr(os, "O_TMPFILE", 0)
        if not tmpfile or not os.path.isdir("/proc/self/fd"):
            return None
        try:
            fd = os.open(directory, tmpfile | os.O_RDWR | getattr(os, "O_CLOEXEC", 0), 0o644)
        except OSError as exc:
            if exc.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT):
                return None  # no O_TMPFILE here: create it under its name instead
            raise
        dir_fd = proc_fd = -1
        try:
            _write_all(fd, page, 0)
            dir_fd = os.open(directory, _DIR_FLAGS)
            proc_fd = os.open("/proc/self/fd", _DIR_FLAGS)
            for _ in range(100):
                name = self._name()
                try:
                    # linkat(AT_SYMLINK_FOLLOW) through /proc gives the open file a name;
                    # like O_EXCL it fails on any existing name, a symlink included.
                    os.link(
                        str(fd), name, src_dir_fd=proc_fd, dst_dir_fd=dir_fd, follow_symlinks=True
                    )
                except FileExistsError:
                    continue
                return fd, os.path.join(directory, name)
            raise FileExistsError(f"could not create a unique log file in {directory}")
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EXDEV, errno.ENOENT, errno.EPERM, errno.EOPNOTSUPP):
                return None  # /proc cannot link here: create it under its name instead
            raise
        except BaseException:
            os.close(fd)
            raise
        finally:
            for d in (dir_fd, proc_fd):
                if d >= 0:
                    os.close(d)

    # -- checks -------------------------------------------------------------------------

    def _check(self) -> None:
        """Before a new region: is the file still ours to write? Caller holds the lock.

        Once per region, not per block: a system call releases the GIL, and in a thread
        that has just started that hands the GIL to the thread that started it (waking
        up in ``start()``), which costs the new thread several microseconds.
        """
        if self.closed:
            raise ValueError("log writer is closed")
        if _faults() != self._faults:
            self.truncated = True
            raise OSError(errno.EIO, "the log file was truncated by another process", self.path)
        st = os.fstat(self.fd)
        if st.st_nlink == 0:
            # The file (or its directory) was deleted while recording: nobody can read
            # what would follow, and it would fill the disk unseen; stop with one warning.
            raise FileNotFoundError(errno.ENOENT, "the log file was deleted", self.path)
        if st.st_size < self._end or _native.faults() != self._faults:
            # Another process cut the file (a cleanup script, logrotate copytruncate). The
            # SIGBUS guard kept the program alive; stop before writing into nothing.
            self.truncated = True
            raise OSError(errno.EIO, "the log file was truncated by another process", self.path)

    # -- regions ------------------------------------------------------------------------

    def _map(self, region: _Region) -> mmap.mmap:
        try:
            mapped = mmap.mmap(self.fd, region.size, mmap.MAP_SHARED, offset=region.offset)
        except (ValueError, OSError):
            self._check()  # cut under us since the last check: say so, not "length"
            raise
        region.guard = _native.watch(mapped)
        return mapped

    def _unmap(self, region: _Region) -> bool:
        """Unmap a region the writer holds (arena, metadata); False while still exported."""
        if region.base is not None:
            region.base.release()
            region.base = None
        if region.mm is not None:
            try:
                region.mm.close()
            except BufferError:
                return False
            region.mm = None
        _native.unwatch(region.guard)
        region.guard = -1
        return True

    def _region(self, kind: str, want: int, need: int) -> _Region:
        """A reserved region of ``want`` bytes (at least ``need``) labelled as one padding
        block; at the file's end, or in a bounded log at its limit a recycled one."""
        self._check()
        self._close_arenas()
        unit = _MAP_UNIT
        want = -(-max(want, need) // unit) * unit
        cap = self.max_bytes
        offset = self._end
        pad = -offset % unit
        if cap is None or offset + pad + want + self._reserved <= cap:
            if pad:
                _reserve(self.fd, offset, pad)
                os.pwrite(self.fd, self._head(F.PAD_OWNER, pad, 0), offset)
                self._seq += 1
                offset += pad
                self._end = offset
            # The label first, then the length: the file never ends in a run of zeros
            # that a reader would take for the end while a block header follows.
            _reserve(self.fd, offset, want)
            os.pwrite(self.fd, self._head(F.PAD_OWNER, want, 0), offset)
            region = _Region(offset, want, kind)
            self._end = offset + want
            self._last = region
        else:
            region = self._reclaim(need)
            region.kind = kind
            region.pos = region.live = 0
            region.views = []
        if cap is not None and kind in (_ARENA, _BLOCK):
            self._regions.pop(region.offset, None)
            self._regions[region.offset] = region  # newest last: the oldest go first
        return region

    def _head(self, owner: int, size: int, seq: int) -> bytes:
        return F.BLOCK_HEAD.pack(F.BLOCK_MAGIC, owner, size, seq & 0xFFFFFFFF, seq >> 32)

    def _next_seq(self) -> int:
        seq = self._seq
        self._seq = seq + 1
        return seq

    # -- blocks -------------------------------------------------------------------------

    def new_block(self, owner: int, size: int) -> Any:
        """A fresh block for thread ``owner``, as a writable buffer whose ``len()`` is its
        size (events go from offset 32 on): a memoryview of an arena for a small block,
        the block's own mmap for a larger one.

        A small block from the current arena costs no system call: a thread's first block
        is handed out on the thread's first event, and a system call there would release
        the GIL to the thread that is just returning from ``start()``.
        """
        with self._lock:
            if self.closed or _faults() != self._faults:
                self._check()
            if self._dead:
                self._reap()
            if size > SMALL_MAX:
                return self._large_block(owner, size)
            size = -(-max(size, 2 * F.SLOT_SIZE) // _SMALL_UNIT) * _SMALL_UNIT
            arena = self._arena
            if arena is None or arena.pos + size > arena.size:
                arena = self._new_arena(size)
            mm = arena.mm
            assert mm is not None and arena.base is not None
            pos = arena.pos
            rest = arena.size - pos - size
            # The rest of the arena is relabelled as padding before the block's header
            # replaces the padding header at ``pos``: a reader (or a crash) between the two
            # stores sees the old padding, which covers both; never an unlabelled gap.
            if rest:
                _pack_head(mm, pos + size, F.BLOCK_MAGIC, F.PAD_OWNER, rest, 0, 0)
            seq = self._seq
            self._seq = seq + 1
            store_block_head(mm, pos, owner, size, seq)
            arena.pos = pos + size
            view = arena.base[pos : pos + size]
            arena.views.append(weak_ref(view))
            if not rest:
                self._retire(arena)
            return view

    def _new_arena(self, size: int) -> _Region:
        if self._arena is not None:
            self._retire(self._arena)
        arena = self._region(_ARENA, self._arena_size, size)
        arena.mm = self._map(arena)
        arena.base = memoryview(arena.mm)
        self._arena = arena
        return arena

    def _large_block(self, owner: int, size: int) -> mmap.mmap:
        size = min(max(size, SMALL_MAX), self._max_block)
        region = self._region(_BLOCK, size, F.SLOT_SIZE * 2)
        os.pwrite(self.fd, self._head(owner, region.size, self._next_seq()), region.offset)
        mapped = self._map(region)
        ref = weak_ref(mapped, self._gone)
        self._leases[id(ref)] = (ref, region, region.guard)  # unwatched when it goes
        region.guard = -1
        region.live += 1
        return mapped

    def _gone(self, ref: weak_ref[Any]) -> None:
        """A block's weakref callback: the block was unmapped (and freed) by its thread."""
        lease = self._leases.get(id(ref))
        if lease is not None and lease[2] >= 0:
            _native.unwatch(lease[2])  # guarding an address range no longer ours is wrong
        self._dead.append(id(ref))

    def _retire(self, arena: _Region) -> None:
        """Nothing more is carved from ``arena``; it is unmapped once its blocks are gone."""
        if self._arena is arena:
            self._arena = None
        if arena.base is not None:
            arena.base.release()  # sub-blocks keep the mapping while any exists
            arena.base = None
        self._arenas.append(arena)

    def _close_arenas(self) -> None:
        """Unmap the retired arenas whose sub-blocks are all gone (at each new region, so
        memory and descriptors stay flat however many threads come and go)."""
        if not self._arenas:
            return
        kept = []
        for arena in self._arenas:
            if not self._unmap(arena):
                kept.append(arena)
            else:
                arena.views = []
        self._arenas = kept

    def _reap(self) -> None:
        """Account for the blocks whose threads have dropped them; caller holds the lock."""
        while self._dead:
            lease = self._leases.pop(self._dead.pop(), None)
            if lease is not None:
                lease[1].live -= 1

    def release(self, block: Any) -> None:
        """Unmap a block its thread has filled, so memory stays flat (the bookkeeping
        follows when the block object goes, through its lease's weakref)."""
        try:
            if isinstance(block, memoryview):
                block.release()
            else:
                block.close()
        except (BufferError, ValueError):
            pass

    # -- bounded logs -------------------------------------------------------------------

    def _reclaim(self, need: int) -> _Region:
        """A free region of at least ``need`` bytes in a bounded log at its limit: fold the
        oldest regions nobody writes to any more until one is free. Caller holds the lock."""
        if self._summary is None:
            self._start_summary()
        while True:
            for i, region in enumerate(self._free):
                if region.size >= need:
                    del self._free[i]
                    return region
            victim = next((r for r in self._regions.values() if r.recyclable()), None)
            if victim is None:
                raise OSError(
                    errno.ENOSPC,
                    f"the log is at its limit (LITEPROF_MAX_MB, {self.max_bytes} bytes) and "
                    "every block in it is in use by a live thread or holds names",
                    self.path,
                )
            self._recycle(victim)

    def _start_summary(self) -> None:
        """Make the two summary blocks in the room kept for them at the file's end."""
        self._reserved = 0
        slots = []
        for _ in range(2):
            region = self._region(_SUMMARY, self._summary_size, self._summary_size)
            os.pwrite(
                self.fd, self._head(F.SUMMARY_OWNER, region.size, self._next_seq()), region.offset
            )
            slots.append(region)
        self._summary = _Summary(slots)

    def _recycle(self, victim: _Region) -> None:
        """Fold a region's events into the summary, then free it. Crash-safe by order:

        1. the new summary (next generation, naming the region and the sequence number
           below which its blocks are folded) goes into the older summary slot;
        2. only then is the region relabelled as padding, and zeroed.

        A kill before 1 completes leaves the old summary valid (its checksum fails on a
        torn write) and the region's events in place; a kill after it leaves the new
        summary, whose history makes readers skip the region's old blocks wherever they
        still stand. Nothing is counted twice, nothing is lost.
        """
        summary = self._summary
        assert summary is not None
        data = os.pread(self.fd, victim.size, victim.offset)
        view = memoryview(data)
        pos = 0
        names = len(self._names)
        while pos + F.SLOT_SIZE <= len(data):
            magic, owner, bsize, _lo, _hi = F.BLOCK_HEAD.unpack_from(data, pos)
            if magic != F.BLOCK_MAGIC or bsize < 2 * F.SLOT_SIZE or bsize % F.SLOT_SIZE:
                break
            if owner < F.FIRST_RESERVED_OWNER:
                summary.fold(view[pos + F.SLOT_SIZE : pos + bsize], names)
            pos += bsize
        summary.regions += 1
        summary.history.append(F.FOLD_STRUCT.pack(victim.offset, self._seq, victim.size, 0))
        encoded = summary.encode(summary.generation + 1)
        if len(encoded) > summary.capacity():
            raise OSError(
                errno.ENOSPC,
                f"too many distinct scope names for the summary of a bounded log "
                f"(LITEPROF_MAX_MB, {self.max_bytes} bytes)",
                self.path,
            )
        summary.generation += 1
        slot = summary.slots[summary.generation % 2]
        _write_all(self.fd, encoded, slot.offset + F.SLOT_SIZE)
        os.pwrite(self.fd, self._head(F.PAD_OWNER, victim.size, 0), victim.offset)
        _zero(self.fd, victim.offset + F.SLOT_SIZE, victim.size - F.SLOT_SIZE)
        self._regions.pop(victim.offset, None)
        victim.kind = _FREE
        self._free.append(victim)

    # -- metadata -----------------------------------------------------------------------

    def _write_meta(self, kind: int, ident: int, extra: int, payload: bytes) -> None:
        """Append one metadata entry; caller holds the lock."""
        nslots = 1 + (len(payload) + F.SLOT_SIZE - 1) // F.SLOT_SIZE
        need = nslots * F.SLOT_SIZE
        meta = self._meta
        if meta is None or self._meta_pos + need > meta.size:
            self._reap()
            if meta is not None:
                self._unmap(meta)
                self._meta = None
            size = self._next_meta_size
            while size < need + F.SLOT_SIZE:
                size *= 2
            self._next_meta_size = min(max(size, self._next_meta_size * 2), self._max_block)
            if self.max_bytes is not None and self._meta_bytes + size > self.max_bytes // 4:
                raise OSError(
                    errno.ENOSPC,
                    f"names and threads fill a quarter of the bounded log "
                    f"(LITEPROF_MAX_MB, {self.max_bytes} bytes)",
                    self.path,
                )
            meta = self._region(_META, size, need + F.SLOT_SIZE)
            os.pwrite(self.fd, self._head(F.META_OWNER, meta.size, self._next_seq()), meta.offset)
            meta.mm = self._map(meta)
            self._meta_bytes += meta.size
            self._meta = meta
            self._meta_pos = F.SLOT_SIZE
        elif self._faults != _faults():
            self._check()
        m = meta.mm
        assert m is not None
        pos = self._meta_pos
        # Payload first, head last: a reader that sees the head sees the whole entry.
        m[pos + F.SLOT_SIZE : pos + F.SLOT_SIZE + len(payload)] = payload
        store_meta_head(m, pos, kind, ident, len(payload), extra)
        self._meta_pos = pos + need

    def name_id(self, name: str) -> int:
        """The id of ``name`` in this file, defining it on first use."""
        if not isinstance(name, str):  # checked first: an unhashable name fails the lookup
            raise TypeError(f"scope name must be str, not {type(name).__name__}")
        ident = self._names.get(name)
        if ident is not None:
            return ident
        payload = F.encode_text(name)
        with self._lock:
            ident = self._names.get(name)
            if ident is None:
                if self.closed:
                    raise ValueError("log writer is closed")
                ident = len(self._names)
                self._write_meta(F.META_NAME, ident, 0, payload)
                self._names[name] = ident
        return ident

    def thread_index(self, native_id: int, name: str) -> int:
        """Register a thread (once per thread and file) and return its index.

        Runs on a thread's first event, in a thread that has often just started (cold
        caches): the entry is stored inline while the metadata block has room.
        """
        payload = name.encode("utf-8", "surrogatepass")
        n = len(payload)
        need = F.SLOT_SIZE * (1 + (n + F.SLOT_SIZE - 1) // F.SLOT_SIZE)
        with self._lock:
            ident = self._threads
            meta = self._meta
            pos = self._meta_pos
            if (
                meta is None
                or pos + need > meta.size
                or self.closed
                or self._faults != _faults()
                or meta.mm is None
            ):
                if self.closed:
                    raise ValueError("log writer is closed")
                self._write_meta(F.META_THREAD, ident, native_id & 0xFFFFFFFFFFFFFFFF, payload)
            else:
                m = meta.mm
                # Payload first, head last, as in _write_meta.
                m[pos + F.SLOT_SIZE : pos + F.SLOT_SIZE + n] = payload
                store_meta_head(m, pos, F.META_THREAD, ident, n, native_id & 0xFFFFFFFFFFFFFFFF)
                self._meta_pos = pos + need
            self._threads = ident + 1
        return ident

    # -- life cycle ---------------------------------------------------------------------

    def _mappings(self) -> list[Any]:
        """Every mapping still open: arenas, the metadata block, threads' own blocks."""
        arenas = [*self._arenas, *([self._arena] if self._arena is not None else [])]
        out: list[Any] = [r.mm for r in arenas if r.mm is not None]
        if self._meta is not None and self._meta.mm is not None:
            out.append(self._meta.mm)
        for ref, _region, _guard in list(self._leases.values()):
            block = ref()
            if block is not None:
                out.append(block)
        return out

    def flush(self) -> None:
        """Push mapped pages towards the disk; readers in other processes see them already."""
        with self._lock:
            for mapped in self._mappings():
                if isinstance(mapped, memoryview):
                    continue  # a part of an arena, which is flushed whole
                try:
                    mapped.flush()
                except (ValueError, OSError):
                    pass

    def close(self) -> None:
        with self._lock:
            if self.closed:
                return
            self.closed = True
            self._reap()
            leased = [b for b in (v[0]() for v in self._leases.values()) if b is not None]
            arenas, self._arenas = self._arenas, []
            if self._arena is not None:
                arenas.append(self._arena)
                self._arena = None
            for arena in arenas:
                leased += [v for v in (r() for r in arena.views) if v is not None]
            meta, self._meta = self._meta, None
        all_unmapped = True
        for block in leased:
            try:
                if isinstance(block, memoryview):
                    block.release()
                else:
                    block.close()
            except (BufferError, ValueError):
                all_unmapped = False
        for region in [*arenas, *([meta] if meta is not None else [])]:
            if not self._unmap(region):
                all_unmapped = False
        if all_unmapped and not self.truncated:
            try:
                self._trim()
            except OSError:
                pass  # the file stays valid untrimmed
        try:
            os.close(self.fd)
        except OSError:
            pass

    def _trim(self) -> None:
        """Give back the unused tail of the file's last region.

        Blocks double up to 1 MiB, so without this a log ends with up to 1 MiB of empty
        slots. Only done once nothing maps the file any more (a store past the new end
        would be a SIGBUS), and never on a file another process has cut. For a block, its
        header is rewritten before the file is cut: a crash in between leaves a block that
        claims less than the file holds, which reads the same. An arena is cut at its
        first uncarved byte, which only its padding followed.
        """
        region = self._last
        if region is None or self._end != region.offset + region.size:
            return
        st = os.fstat(self.fd)
        if st.st_size != self._end or st.st_nlink == 0:
            return
        offset, size = region.offset, region.size
        if region.kind == _ARENA:
            keep = max(region.pos, F.SLOT_SIZE * 2) if region.pos else 0
        elif region.kind in (_BLOCK, _META):
            head = os.pread(self.fd, F.SLOT_SIZE, offset)
            magic, owner, _size, lo, hi = F.BLOCK_HEAD.unpack(head)
            if magic != F.BLOCK_MAGIC:
                return
            used = len(os.pread(self.fd, size, offset).rstrip(b"\0"))
            keep = max(-(-used // F.SLOT_SIZE) * F.SLOT_SIZE, 2 * F.SLOT_SIZE)
            if keep < size:
                os.pwrite(self.fd, F.BLOCK_HEAD.pack(F.BLOCK_MAGIC, owner, keep, lo, hi), offset)
        else:
            return
        if keep >= size:
            return
        os.ftruncate(self.fd, offset + keep)
        self._end = offset + keep

    def abandon(self) -> None:
        """After fork, in the child: forget the parent's file without touching it."""
        self.closed = True
        self._leases = {}
        self._arenas = []
        self._arena = None
        self._meta = None
        try:
            os.close(self.fd)
        except OSError:
            pass
