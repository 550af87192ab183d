"""Read liteprof logs (``docs/FORMAT.md``) and vLLM lite-profiler text logs into arrays.

Vectorised with numpy: the slots of a file are mapped as one structured array and the
events selected with masks; Python loops only run per file, per block and per name.
Every length read from a file is checked against the file's size before anything is
allocated, and nothing read is ever evaluated.
"""

from __future__ import annotations

import array
import json
import math
import os
import stat
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _format as F
from ._errors import LogError

SLOT_DTYPE = np.dtype(F.NUMPY_DTYPE_SPEC)
_MAX_TEXT_LOG = 1 << 34  # 16 GiB: refuse anything larger rather than exhaust memory
_INT64_MAX = np.iinfo(np.int64).max


@dataclass
class Events:
    """Events of one or more logs as parallel arrays (one element per event)."""

    sources: list[str]
    names: list[str]  # scope names; ``name`` indexes this list
    name: np.ndarray  # int32
    dur: np.ndarray  # int64 ns
    self_ns: np.ndarray  # int64 ns
    error: np.ndarray  # bool
    proc: np.ndarray  # int32 index into ``processes``; -1 where unknown
    thread: np.ndarray  # int32 index into ``threads``; -1 where unknown
    processes: list[dict[str, Any]] = field(default_factory=list)
    threads: list[dict[str, Any]] = field(default_factory=list)  # proc, tid, name
    skipped: int = 0
    first_ns: int | None = None  # wall clock of the first start
    last_ns: int | None = None  # wall clock of the last end
    has_text_logs: bool = False

    @property
    def records(self) -> int:
        return int(self.dur.shape[0])

    @property
    def wall_ns(self) -> int | None:
        if self.first_ns is None or self.last_ns is None or self.has_text_logs:
            return None
        return self.last_ns - self.first_ns


_COLUMNS = (
    ("name", np.int32),
    ("dur", np.int64),
    ("self_ns", np.int64),
    ("error", np.bool_),
    ("proc", np.int32),
    ("thread", np.int32),
)


class _Builder:
    """Collects events into preallocated columns (one copy of each event, no concatenation)."""

    def __init__(self) -> None:
        self.sources: list[str] = []
        self.names: list[str] = []
        self.name_index: dict[str, int] = {}
        self.cols: list[np.ndarray] = [np.empty(0, dtype) for _, dtype in _COLUMNS]
        self.n = 0
        self.processes: list[dict[str, Any]] = []
        self.threads: list[dict[str, Any]] = []
        self.skipped = 0
        self.first: int | None = None
        self.last: int | None = None
        self.text = False

    def intern(self, name: str) -> int:
        idx = self.name_index.get(name)
        if idx is None:
            idx = self.name_index[name] = len(self.names)
            self.names.append(name)
        return idx

    def span(self, first: int, last: int) -> None:
        self.first = first if self.first is None else min(self.first, first)
        self.last = last if self.last is None else max(self.last, last)

    def reserve(self, extra: int) -> None:
        """Make room for ``extra`` more events (amortised doubling)."""
        need = self.n + extra
        cap = self.cols[0].shape[0]
        if need <= cap:
            return
        new_cap = max(need, 2 * cap)
        grown = []
        for col in self.cols:
            bigger = np.empty(new_cap, col.dtype)
            bigger[: self.n] = col[: self.n]
            grown.append(bigger)
        self.cols = grown

    def add(self, *values: np.ndarray) -> None:
        """Append one batch: name, dur, self_ns, error, proc, thread (equal lengths)."""
        k = int(values[1].shape[0])
        self.reserve(k)
        for col, v in zip(self.cols, values):
            col[self.n : self.n + k] = v
        self.n += k

    def build(self) -> Events:
        n = self.n
        # Views, not copies: the unused tail of the reservation is the price of never
        # holding two copies of the events at once.
        cols = [c[:n] for c in self.cols]
        return Events(
            sources=self.sources,
            names=self.names,
            name=cols[0],
            dur=cols[1],
            self_ns=cols[2],
            error=cols[3],
            proc=cols[4],
            thread=cols[5],
            processes=self.processes,
            threads=self.threads,
            skipped=self.skipped,
            first_ns=self.first,
            last_ns=self.last,
            has_text_logs=self.text,
        )


def _expand(paths: list[str]) -> list[str]:
    files: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            try:
                entries = sorted(os.listdir(path))
            except OSError as exc:
                raise LogError(f"cannot read directory {path}: {exc.strerror}") from None
            found = [
                os.path.join(path, e)
                for e in entries
                if e.endswith(F.SUFFIX) and os.path.isfile(os.path.join(path, e))
            ]
            if not found:
                raise LogError(f"no liteprof logs (*{F.SUFFIX}) in directory {path}")
            files.extend(found)
        elif os.path.exists(path):
            files.append(path)
        else:
            raise LogError(f"no such file or directory: {path}")
    return files


def read_logs(paths: list[str]) -> Events:
    """Read log directories, liteprof log files and vLLM text logs into one ``Events``."""
    builder = _Builder()
    builder.sources = [os.fspath(p) for p in paths]
    files = _expand(builder.sources)
    heads = [_read_head(path) for path in files]
    # Every slot of a binary log could be an event: reserve for all of them at once.
    builder.reserve(
        sum(
            max(0, os.path.getsize(path) - F.HEADER_SIZE) // F.SLOT_SIZE
            for path, head in zip(files, heads)
            if head == F.MAGIC
        )
    )
    for path, head in zip(files, heads):
        if head == F.MAGIC:
            _read_binary(path, builder)
        elif path.endswith(F.SUFFIX) and F.MAGIC.startswith(head):
            # A log whose header never got (fully) written: a writer that failed or was
            # killed at once. Nothing in it to read; it must not pass for a text log,
            # which would make the wall time of every other log unknown.
            builder.skipped += 1
        else:
            _read_text(path, builder)
    return builder.build()


def _read_head(path: str) -> bytes:
    """The first bytes of ``path``, which must be a regular file.

    A pipe or a device (``/dev/zero``, a FIFO named on the command line) would block the
    reader or never end, so anything but a regular file is refused; ``O_NONBLOCK`` keeps
    the open itself from waiting for a FIFO's writer.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags | getattr(os, "O_BINARY", 0))
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise LogError(f"{path}: not a regular file")
            return os.pread(fd, len(F.MAGIC), 0)
        finally:
            os.close(fd)
    except OSError as exc:
        raise LogError(f"cannot read {path}: {exc.strerror}") from None


# -- liteprof binary logs -----------------------------------------------------------------


def _read_binary(path: str, b: _Builder) -> None:
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            header = fh.read(F.HEADER_SIZE)
    except OSError as exc:
        raise LogError(f"cannot read {path}: {exc.strerror}") from None
    if len(header) < F.HEADER_STRUCT.size:
        raise LogError(f"{path}: truncated liteprof header")
    magic, version, header_size, slot_size, meta_len = F.HEADER_STRUCT.unpack_from(header)
    if version != F.VERSION:
        raise LogError(f"{path}: unsupported liteprof log version {version}")
    if header_size != F.HEADER_SIZE or slot_size != F.SLOT_SIZE:
        raise LogError(f"{path}: damaged liteprof header (sizes {header_size}/{slot_size})")
    meta: dict[str, Any] = {}
    if meta_len <= F.MAX_METADATA:
        raw = header[F.HEADER_STRUCT.size : F.HEADER_STRUCT.size + meta_len]
        try:
            loaded = json.loads(raw.decode("utf-8"))
            if isinstance(loaded, dict):
                meta = loaded
        except (ValueError, RecursionError):  # RecursionError: "[[[[..." nested too deep
            meta = {}

    proc = len(b.processes)
    rank = meta.get("rank")
    process = {
        "pid": meta.get("pid") if isinstance(meta.get("pid"), int) else None,
        "name": str(meta.get("process_name", "?")),
        "host": str(meta.get("host", "?")),
        "rank": rank if isinstance(rank, int) and not isinstance(rank, bool) else None,
        "records": 0,
        "path": path,
    }
    b.processes.append(process)

    nslots = (size - F.HEADER_SIZE) // F.SLOT_SIZE if size > F.HEADER_SIZE else 0
    tail = (size - F.HEADER_SIZE) % F.SLOT_SIZE if size > F.HEADER_SIZE else 0
    if tail:
        # A cut file: the torn last slot is a damaged record if anything was in it (the
        # writer only ever grows files by whole blocks, so a live log never has a tail).
        try:
            with open(path, "rb") as fh:
                fh.seek(size - tail)
                if any(fh.read(tail)):
                    b.skipped += 1
        except OSError as exc:
            raise LogError(f"cannot read {path}: {exc.strerror}") from None
    if nslots == 0:
        return
    try:
        with open(path, "rb", buffering=0) as fh:
            _read_blocks(fh, nslots, meta, proc, b)
    except OSError as exc:
        raise LogError(f"cannot read {path}: {exc.strerror}") from None


_CHUNK_SLOTS = 1 << 20  # 32 MiB of slots read at a time: memory stays flat per file


def _read_slots(fh: Any, first: int, count: int, out: np.ndarray | None = None) -> np.ndarray:
    """Slots ``[first, first + count)`` of the open log (fewer if the file is shorter)."""
    buf = np.empty(count, SLOT_DTYPE) if out is None else out[:count]
    fh.seek(F.HEADER_SIZE + first * F.SLOT_SIZE)
    got = fh.readinto(memoryview(buf).cast("B"))  # type: ignore[arg-type]
    return buf[: (got or 0) // F.SLOT_SIZE]


def _read_blocks(fh: Any, nslots: int, meta: dict[str, Any], proc: int, b: _Builder) -> None:
    slot_bytes = F.SLOT_SIZE
    segments: list[tuple[int, int, int]] = []  # event slots of thread blocks: first, end, owner
    meta_blocks: list[tuple[int, int]] = []
    pos = 0
    while pos < nslots:
        fh.seek(F.HEADER_SIZE + pos * slot_bytes)
        head = fh.read(slot_bytes)
        if len(head) < slot_bytes:
            break
        magic, owner, bsize, _seq = F.BLOCK_STRUCT.unpack(head)
        if magic != F.BLOCK_MAGIC or bsize < 2 * slot_bytes or bsize % slot_bytes:
            if any(head):
                b.skipped += 1  # damaged block header: the rest of the file is unreachable
            break
        end = min(pos + bsize // slot_bytes, nslots)
        if owner == F.META_OWNER:
            meta_blocks.append((pos + 1, end))
        elif owner != F.PAD_OWNER:
            segments.append((pos + 1, end, owner))
        pos += bsize // slot_bytes

    # Metadata: names and threads. Each entry's length is checked against its block
    # before anything is read, so a forged length cannot make the reader allocate.
    name_ids: dict[int, int] = {}
    thread_ids: dict[int, int] = {}
    for first, end in meta_blocks:
        raw = _read_slots(fh, first, end - first).tobytes()
        i, n = 0, len(raw) // slot_bytes
        while i < n:
            kind, ident, length, _r, extra = F.META_STRUCT.unpack_from(raw, i * slot_bytes)
            if kind == 0:
                break
            nps = (length + slot_bytes - 1) // slot_bytes
            if kind not in (F.META_NAME, F.META_THREAD) or i + 1 + nps > n:
                b.skipped += 1
                break
            payload = raw[(i + 1) * slot_bytes : (i + 1) * slot_bytes + length]
            try:
                text = F.decode_text(payload)
            except UnicodeDecodeError:
                text = payload.decode("utf-8", "replace")
            if kind == F.META_NAME:
                name_ids[ident] = b.intern(text)
            else:
                thread_ids[ident] = len(b.threads)
                b.threads.append({"proc": proc, "tid": int(extra), "name": text})
            i += 1 + nps

    # Events: contiguous runs of thread blocks, read a chunk at a time.
    buf = np.empty(min(_CHUNK_SLOTS, max(nslots, 1)), SLOT_DTYPE)
    lo_start: int | None = None
    hi_end: int | None = None
    records = 0
    k = 0
    while k < len(segments):
        c_first = segments[k][0]
        group: list[tuple[int, int, int]] = []
        while k < len(segments):
            first, end, owner = segments[k]
            if end - c_first > _CHUNK_SLOTS:
                if not group:  # one block larger than a chunk (forged): cut it
                    cut = c_first + _CHUNK_SLOTS
                    group.append((first, cut, owner))
                    segments[k] = (cut, end, owner)
                break
            group.append(segments[k])
            k += 1
        c_end = group[-1][1]
        view = _read_slots(fh, c_first, c_end - c_first, buf)
        owner_of = np.full(view.shape[0], -1, dtype=np.int32)
        for first, end, owner in group:
            owner_of[first - c_first : end - c_first] = thread_ids.get(owner, -2)
        in_thread = owner_of != -1
        kind = view["flags"] & 0xFF
        b.skipped += int(np.count_nonzero(in_thread & (kind != 0) & (kind != F.KIND_EVENT)))
        sel = np.flatnonzero(in_thread & (kind == F.KIND_EVENT))
        del in_thread, kind
        if sel.size == 0:
            continue
        ev = view[sel]
        thread_of = owner_of[sel]
        del sel, owner_of
        gname = _map_names(ev["name"], name_ids)
        dur = ev["dur"]
        child = ev["child"]
        start = ev["start"]
        # A monotonic clock never reads negative: a negative start, like a negative
        # duration, is a damaged slot (and starts >= 0 keep start + dur from overflowing).
        valid = (gname >= 0) & (dur >= 0) & (child >= 0) & (start >= 0) & (thread_of >= 0)
        nvalid = int(np.count_nonzero(valid))
        b.skipped += int(valid.size - nvalid)
        if nvalid == 0:
            continue
        if nvalid != valid.size:
            ev, gname, thread_of = ev[valid], gname[valid], thread_of[valid]
            dur, child, start = ev["dur"], ev["child"], ev["start"]
        lo = int(start.min())
        # start + dur without int64 overflow: forged durations near 2**63 must not wrap.
        hi = int((start + np.minimum(dur, _INT64_MAX - start)).max())
        lo_start = lo if lo_start is None else min(lo_start, lo)
        hi_end = hi if hi_end is None else max(hi_end, hi)
        b.add(
            gname,
            dur,
            dur - np.minimum(child, dur),
            (ev["flags"] & F.FLAG_ERROR) != 0,
            np.full(nvalid, proc, dtype=np.int32),
            thread_of,
        )
        records += nvalid
    b.processes[proc]["records"] = records
    mono = meta.get("mono_ns")
    wall = meta.get("wall_ns")
    if records and isinstance(mono, int) and isinstance(wall, int):
        assert lo_start is not None and hi_end is not None
        b.span(wall + (lo_start - mono), wall + (hi_end - mono))


def _map_names(name_raw: np.ndarray, name_ids: dict[int, int]) -> np.ndarray:
    """File name ids -> global name indices; ``-1`` for an id no metadata entry defines.

    Ids are 32-bit and come from the file: a dense lookup table is only built when it is
    small (the writer numbers names 0, 1, 2, ...); a forged id like 2**32-1 would otherwise
    make it 32 GiB. Otherwise the ids are looked up in the sorted list of defined ones.
    """
    if not name_ids:
        return np.full(name_raw.shape, -1, dtype=np.int64)
    top = max(name_ids)
    if top < 4 * len(name_ids) + 1024:
        lut = np.full(top + 2, -1, dtype=np.int64)
        for fid, gid in name_ids.items():
            lut[fid] = gid
        return lut[np.minimum(name_raw, top + 1).astype(np.int64)]  # type: ignore[no-any-return]
    keys = np.array(sorted(name_ids), dtype=np.int64)
    values = np.array([name_ids[k] for k in keys.tolist()], dtype=np.int64)
    raw = name_raw.astype(np.int64)
    at = np.minimum(np.searchsorted(keys, raw), keys.size - 1)
    return np.where(keys[at] == raw, values[at], -1)


# -- vLLM lite-profiler text logs ---------------------------------------------------------


def _read_text(path: str, b: _Builder) -> None:
    # Streamed line by line into compact arrays: holding the whole file plus one Python
    # object per line would cost over ten times the file's size.
    names = array.array("i")
    durs = array.array("q")
    skipped = 0
    try:
        size = os.path.getsize(path)
        if size > _MAX_TEXT_LOG:
            raise LogError(f"{path}: too large for a text log ({size} bytes)")
        with open(path, "rb") as fh:
            if b"\0" in fh.read(65536):
                raise LogError(f"{path}: not a liteprof log or a vLLM lite-profiler text log")
            fh.seek(0)
            for chunk in fh:
                for line in chunk.splitlines():  # also splits at a lone "\r", as before
                    name, sep, value = line.rpartition(b"|")
                    if not sep:
                        if line.strip():
                            skipped += 1
                        continue
                    value = value.strip()
                    if not value.isdigit() or len(value) > 18:
                        skipped += 1
                        continue
                    try:
                        text = name.decode("utf-8")
                    except UnicodeDecodeError:
                        skipped += 1
                        continue
                    names.append(b.intern(text))
                    durs.append(int(value))
    except OSError as exc:
        raise LogError(f"cannot read {path}: {exc.strerror}") from None
    if not names and skipped:
        raise LogError(f"{path}: not a liteprof log or a vLLM lite-profiler text log")
    b.text = True
    b.skipped += skipped
    n = len(names)
    dur = np.frombuffer(durs, dtype=np.int64) if n else np.zeros(0, np.int64)
    b.add(
        np.frombuffer(names, dtype=np.int32) if n else np.zeros(0, np.int32),
        dur,
        dur,
        np.zeros(n, dtype=bool),
        np.full(n, -1, dtype=np.int32),
        np.full(n, -1, dtype=np.int32),
    )


def percentile_rank(n: int, p: float) -> int:
    """Index of the nearest-rank ``p``-th percentile in a sorted array of ``n`` items."""
    return max(0, min(n - 1, math.ceil(p / 100.0 * n) - 1))
