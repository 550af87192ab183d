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
events they drop. A block's sequence number says which version of a recycled block was
read; summary blocks are of a reserved owner, which the walk steps over until this
reader knows their layout (see ``docs/FORMAT.md``).
"""

from __future__ import annotations

import os
import socket
import stat
from dataclasses import dataclass, field
from typing import Any

import numpy as np

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

SLOT_DTYPE = np.dtype(F.NUMPY_DTYPE_SPEC)
_SLOT = F.SLOT_SIZE
_FIRST_CHUNK = 256  # slots of a thread's first read in a poll; doubles while it finds more
_MAX_CHUNK = 1 << 16  # 2 MiB
_KIND_OPTIONAL = 128  # slot kinds 128-255 are optional extensions, ignored

LIVE, ENDED, REMOVED, TRUNCATED = "live", "ended", "removed", "truncated"


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
    skipped: int = 0

    def labels(self) -> dict[str, Any]:
        return {"pid": self.pid, "name": self.name, "host": self.host, "rank": self.rank}


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
        self._files: dict[str, _File] = {}  # files still followed, by path
        self._pending: set[str] = set()  # files whose header is not written yet
        self._done: set[str] = set()  # files no longer followed
        self._host = socket.gethostname()

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
            got, budget, stop = self._read(f, budget, batch)
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
        if parts:
            batch.name = np.concatenate([p[0] for p in parts]).astype(np.int32)
            batch.dur = np.concatenate([p[1] for p in parts])
            batch.error = np.concatenate([p[2] for p in parts])
            batch.proc = np.concatenate([p[3] for p in parts]).astype(np.int32)
        self.skipped += batch.skipped
        self.records += len(batch)
        return batch

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()

    def _start(self, f: _File, single: bool) -> bool:
        """Read ``f``'s header once it is written; whether it is."""
        head = f.pread(F.HEADER_SIZE, 0)
        if head[: len(F.MAGIC)] != F.MAGIC:
            if header_never_written(head):
                return False  # reserved, header not written yet (or never: a killed writer)
            if single:
                raise LogError(f"{f.path}: not a liteprof log")
            self._pending.discard(f.path)
            self._done.add(f.path)
            f.close()
            del self._files[f.path]
            self.skipped += 1
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
        self, f: _File, budget: int, batch: Batch
    ) -> tuple[tuple[np.ndarray, ...] | None, int, bool]:
        """New events of one file: ``(columns or None, budget left, file finished)``."""
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
        raws: list[tuple[np.ndarray, int]] = []
        for blk in f.blocks:
            if budget <= 0:
                break
            got = self._read_block(f, blk, budget)
            if got is not None:
                raws.append((got, blk.owner))
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
        if not raws:
            return None, budget, False
        return self._resolve(f, raws, batch), budget, False

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
        known: dict[int, _Block] = {}
        for first, end, owner in blocks.segments:
            head = f.slots(first - 1, 1)
            blk = f.known.get(first)
            if blk is None or blk.head != head:
                blk = _Block(cursor=first, end=end, owner=owner, first=first, head=head)
            blk.end = max(blk.end, end)
            known[first] = blk
        f.known = known
        f.blocks = [b for b in known.values() if b.cursor < b.end]
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
            # The newest entry's head may be a torn copy (the writer stores the head last,
            # but its kind is the head's first field): it is taken only when a second read
            # agrees, else at the next poll.
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
        self, f: _File, raws: list[tuple[np.ndarray, int]], batch: Batch
    ) -> tuple[np.ndarray, ...] | None:
        """Events of the slots read: names mapped, damage counted."""
        data = np.concatenate([r for r, _ in raws]) if len(raws) > 1 else raws[0][0]
        owner_ok = np.concatenate(
            [np.full(r.shape[0], owner in f.threads, np.bool_) for r, owner in raws]
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
        return (
            names[valid],
            data["dur"][valid].astype(np.int64),
            (flags[valid] & F.FLAG_ERROR) != 0,
            np.full(n, f.proc.index, np.int32),
        )
