"""The log file of one recording process: creation, blocks and metadata entries.

The hot path (storing one event into a mapped block) lives in the recorder backends; this
module does everything that happens once per file, per block, per thread or per name.
The layout is specified in ``docs/FORMAT.md``.
"""

from __future__ import annotations

import _thread
import errno
import mmap
import os
import sys
import time
from _socket import gethostname  # not ``socket``: its enums cost every recording process
from _weakrefset import WeakSet  # what ``weakref.WeakSet`` is, without importing weakref

from .._version import __version__
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


_MAP_UNIT = max(mmap.ALLOCATIONGRANULARITY, mmap.PAGESIZE, F.SLOT_SIZE)


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


class LogWriter:
    """Owns one log file: creates it, hands out mapped blocks, writes metadata entries.

    Thread-safe: block allocation and metadata writes take ``self._lock``; the events
    themselves are written by the backend into blocks each owned by one thread.
    """

    def __init__(self, directory: str, *, backend: str) -> None:
        make_directory(directory)
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
        payload = self._metadata_bytes()
        self.fd, self.path = self._create(directory)
        self._lock = _thread.allocate_lock()
        self._end = F.HEADER_SIZE
        self._seq = 0
        # Weak: a thread's block lives as long as the thread's recorder state holds it. When
        # the thread ends, the block is unmapped at once (and the descriptor that mmap
        # dup()s is closed); held here, every short-lived thread would leak a mapping and a
        # file descriptor until the program runs out of them.
        self._maps: WeakSet[mmap.mmap] = WeakSet()
        self._meta_map: mmap.mmap | None = None
        self._last_block: tuple[int, int, int, int] | None = None
        self._meta_pos = 0
        self._meta_size = 0
        self._next_meta_size = F.MIN_BLOCK
        self._names: dict[str, int] = {}
        self._threads = 0
        self.closed = False
        try:
            header = F.HEADER_STRUCT.pack(
                F.MAGIC, F.VERSION, F.HEADER_SIZE, F.SLOT_SIZE, len(payload)
            )
            page = (header + payload).ljust(F.HEADER_SIZE, b"\0")
            _reserve(self.fd, 0, F.HEADER_SIZE)
            os.pwrite(self.fd, page, 0)
        except BaseException:
            os.close(self.fd)
            try:
                os.unlink(self.path)  # a log without its header is of no use to anyone
            except OSError:
                pass
            raise

    def _metadata_bytes(self) -> bytes:
        data = F.encode_json(self.metadata)
        while len(data) > F.MAX_METADATA and self.metadata["argv"]:
            self.metadata["argv"] = self.metadata["argv"][:-1]
            data = F.encode_json(self.metadata)
        if len(data) > F.MAX_METADATA:
            self.metadata["host"] = self.metadata["host"][:64]
            self.metadata["process_name"] = self.metadata["process_name"][:256]
            data = F.encode_json(self.metadata)
        return data

    def _create(self, directory: str) -> tuple[int, str]:
        for _ in range(100):
            stem = f"{F.STEM_PREFIX}{self.pid}-{os.urandom(8).hex()}"
            path = os.path.join(directory, stem + F.SUFFIX)
            try:
                return os.open(path, _OPEN_FLAGS, 0o644), path
            except FileExistsError:
                continue
        raise FileExistsError(f"could not create a unique log file in {directory}")

    # -- blocks -------------------------------------------------------------------------

    def _allocate(self, owner: int, size: int) -> mmap.mmap:
        """Reserve, label and map a new block; caller holds the lock.

        The block may be larger than asked: ``mmap`` needs offsets and lengths in whole
        allocation units (4 KiB on Linux x86, 16 or 64 KiB on some other systems), so the
        size is rounded up and, where the next offset is not aligned, a padding block is
        put in first. Callers use ``len()`` of the returned map as the block's size.
        """
        if self.closed:
            raise ValueError("log writer is closed")
        if os.fstat(self.fd).st_nlink == 0:
            # The file (or its directory) was deleted while recording: nobody can read
            # what would follow, and it would fill the disk unseen; stop with one warning.
            raise FileNotFoundError(errno.ENOENT, "the log file was deleted", self.path)
        unit = _MAP_UNIT
        offset = self._end
        if offset % unit:
            pad = unit - offset % unit
            _reserve(self.fd, offset, pad)
            os.pwrite(
                self.fd, F.BLOCK_STRUCT.pack(F.BLOCK_MAGIC, F.PAD_OWNER, pad, self._seq), offset
            )
            self._seq += 1
            offset += pad
            self._end = offset
        size = -(-max(size, 2 * F.SLOT_SIZE) // unit) * unit
        _reserve(self.fd, offset, size)
        os.pwrite(self.fd, F.BLOCK_STRUCT.pack(F.BLOCK_MAGIC, owner, size, self._seq), offset)
        mapped = mmap.mmap(self.fd, size, mmap.MAP_SHARED, offset=offset)
        self._end = offset + size
        self._last_block = (offset, size, owner, self._seq)
        self._seq += 1
        self._maps.add(mapped)
        return mapped

    def new_block(self, owner: int, size: int) -> mmap.mmap:
        """A fresh mapped block for thread ``owner``; events go from offset 32 on."""
        with self._lock:
            return self._allocate(owner, size)

    def release(self, mapped: mmap.mmap) -> None:
        """Unmap a block its thread has filled, so memory stays flat."""
        with self._lock:
            self._maps.discard(mapped)
        try:
            mapped.close()
        except (BufferError, ValueError):
            pass

    # -- metadata -----------------------------------------------------------------------

    def _write_meta(self, kind: int, ident: int, extra: int, payload: bytes) -> None:
        """Append one metadata entry; caller holds the lock."""
        nslots = 1 + (len(payload) + F.SLOT_SIZE - 1) // F.SLOT_SIZE
        need = nslots * F.SLOT_SIZE
        if self._meta_map is None or self._meta_pos + need > self._meta_size:
            if self._meta_map is not None:
                self._maps.discard(self._meta_map)
                self._meta_map.close()
                self._meta_map = None
            size = self._next_meta_size
            while size < need + F.SLOT_SIZE:
                size *= 2
            self._next_meta_size = min(max(size, self._next_meta_size * 2), F.MAX_BLOCK)
            self._meta_map = self._allocate(F.META_OWNER, size)
            self._meta_pos = F.SLOT_SIZE
            self._meta_size = len(self._meta_map)
        m = self._meta_map
        pos = self._meta_pos
        # Payload first, head last: a reader that sees the head sees the whole entry.
        m[pos + F.SLOT_SIZE : pos + F.SLOT_SIZE + len(payload)] = payload
        F.META_STRUCT.pack_into(m, pos, kind, ident, len(payload), 0, extra)
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
                ident = len(self._names)
                self._write_meta(F.META_NAME, ident, 0, payload)
                self._names[name] = ident
        return ident

    def thread_index(self, native_id: int, name: str) -> int:
        """Register a thread (once per thread and file) and return its index."""
        with self._lock:
            ident = self._threads
            self._threads += 1
            self._write_meta(
                F.META_THREAD, ident, native_id & 0xFFFFFFFFFFFFFFFF, F.encode_text(name)
            )
        return ident

    # -- life cycle ---------------------------------------------------------------------

    def flush(self) -> None:
        """Push mapped pages towards the disk; readers in other processes see them already."""
        with self._lock:
            for mapped in list(self._maps):
                try:
                    mapped.flush()
                except (ValueError, OSError):
                    pass

    def close(self) -> None:
        with self._lock:
            if self.closed:
                return
            self.closed = True
            maps, self._maps = list(self._maps), WeakSet()
            self._meta_map = None
        all_unmapped = True
        for mapped in maps:
            try:
                mapped.close()
            except (BufferError, ValueError):
                all_unmapped = False
        if all_unmapped:
            try:
                self._trim_last_block()
            except OSError:
                pass  # the file stays valid untrimmed
        try:
            os.close(self.fd)
        except OSError:
            pass

    def _trim_last_block(self) -> None:
        """Give back the unused tail of the file's last block.

        Blocks double up to 1 MiB, so without this a log ends with up to 1 MiB of empty
        slots. Only done once nothing maps the file any more (a store past the new end
        would be a SIGBUS). The header is rewritten before the file is cut: a crash in
        between leaves a block that claims less than the file holds, which reads the same.
        """
        if self._last_block is None:
            return
        offset, size, owner, seq = self._last_block
        if self._end != offset + size:
            return
        data = os.pread(self.fd, size, offset)
        used = len(data.rstrip(b"\0"))
        used = max(-(-used // F.SLOT_SIZE) * F.SLOT_SIZE, 2 * F.SLOT_SIZE)
        keep = -(-used // _MAP_UNIT) * _MAP_UNIT
        if keep >= size:
            return
        os.pwrite(self.fd, F.BLOCK_STRUCT.pack(F.BLOCK_MAGIC, owner, keep, seq), offset)
        os.ftruncate(self.fd, offset + keep)
        self._end = offset + keep

    def abandon(self) -> None:
        """After fork, in the child: forget the parent's file without touching it."""
        self.closed = True
        self._maps = WeakSet()
        self._meta_map = None
        try:
            os.close(self.fd)
        except OSError:
            pass
