"""The tests' oracle for log files: an independent parser of ``docs/FORMAT.md`` (version 2).

It reads the bytes with ``struct`` only: no numpy, no liteprof code (its constants are
spelled out here from the document, not imported), so that a bug in the reader under test
cannot hide in the oracle too. It runs on Python 3.9+ with the standard library alone, so
``ci/pythons.sh`` loads it by path on every CPython it builds for.

    log = rawlog.read(path)           # or rawlog.parse(data)
    log.version, log.blocks, log.entries, log.names, log.threads, log.events
    log.by_thread()                   # {thread name: [(scope name, start, dur, child, flags)]}
    log.readable_after_cut(cut)       # what a reader must still return from a cut copy

It describes an intact log (or one cut short): a block header that is neither a block nor
an empty slot, a block size that is not a positive multiple of the slot, or bytes after the
last block are errors (``ValueError``), not damage to count. The extension rule is
followed: blocks of reserved owners are skipped whole, reserved slot kinds are counted in
``reserved_slots``, optional ones (128-255) in ``optional_slots``, metadata entries of
optional kinds are stepped over, and a reserved kind ends its block's entries.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

MAGIC = b"LITEPROF"
HEADER = 4096  # the header page; blocks start here
SLOT = 32
BLOCK_MAGIC = b"LPBK"
META_OWNER = 0xFFFFFFFF
PAD_OWNER = 0xFFFFFFFE
FIRST_RESERVED_OWNER = 0xFFFFFF00  # 0xFFFFFF00-0xFFFFFFFD: new kinds of block; thread ids below

KIND_EMPTY, KIND_EVENT, KIND_LANE = 0, 1, 2  # slot kinds (bits 0-7 of the flags at 28)
FIRST_OPTIONAL_KIND = 128  # slot kinds 3-127 are reserved, 128-255 optional
META_NAME, META_THREAD = 1, 2  # metadata entry kinds; 3-127 reserved, 128+ optional
FLAG_ERROR = 1 << 8
DEPTH_SHIFT = 16

HEADER_FIELDS = struct.Struct("<8sIIII")  # magic, version, header size, slot size, meta length
BLOCK_HEADER = struct.Struct("<4sIII16x")  # magic, owner, size, sequence
EVENT_SLOT = struct.Struct("<qqqII")  # start, dur, child, name id, flags
LANE_SLOT = struct.Struct("<Q20xI")  # lane id, flags
META_HEAD = struct.Struct("<IIIIQ8x")  # kind, id, payload length, reserved, native thread id


@dataclass(frozen=True)
class Block:
    offset: int
    size: int  # as its header says (the file may end sooner: see ``cut``)
    owner: int
    seq: int
    cut: bool  # the file ends inside this block

    @property
    def is_thread(self) -> bool:
        return self.owner < FIRST_RESERVED_OWNER


@dataclass(frozen=True)
class Entry:
    """A metadata entry: head slot at ``offset``, payload slots up to ``end``."""

    offset: int
    end: int  # first byte after the payload slots
    kind: int
    ident: int
    length: int
    native_id: int  # a thread's native id; 0 for a name
    text: str | None  # the payload, if it is whole in the file and valid UTF-8


@dataclass(frozen=True)
class Event:
    """An event slot, with the lane in force where it stands (version 2)."""

    offset: int
    owner: int  # the thread index of its block
    start: int
    dur: int
    child: int
    name: int  # the name id
    flags: int
    lane: int

    @property
    def depth(self) -> int:
        return self.flags >> DEPTH_SHIFT

    @property
    def error(self) -> bool:
        return bool(self.flags & FLAG_ERROR)


@dataclass
class RawLog:
    """Where everything is in one log file."""

    size: int
    magic: bytes
    version: int
    header_size: int
    slot_size: int
    meta_len: int
    metadata: bytes  # the header's JSON, unparsed
    blocks: list[Block] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    lane_slots: list[tuple[int, int]] = field(default_factory=list)  # (offset, lane id)
    reserved_slots: int = 0  # slot kinds 3-127 in thread blocks: a reader skips them
    optional_slots: int = 0  # slot kinds 128-255: a reader ignores them

    @property
    def names(self) -> dict[int, str]:
        """Name id -> scope name, from the entries whose payload is whole."""
        return {e.ident: e.text for e in self.entries if e.kind == META_NAME and e.text is not None}

    @property
    def threads(self) -> dict[int, str]:
        """Thread index -> thread name, from the entries whose payload is whole."""
        return {
            e.ident: e.text for e in self.entries if e.kind == META_THREAD and e.text is not None
        }

    def by_thread(self) -> dict[str, list[tuple[str, int, int, int, int]]]:
        """Thread name -> its events in file order, as (scope name, start, dur, child, flags).

        Thread names must be unique in the file (they key the result)."""
        names, threads = self.names, self.threads
        assert len(set(threads.values())) == len(threads), threads
        out: dict[str, list[tuple[str, int, int, int, int]]] = {}
        for ev in self.events:
            out.setdefault(threads[ev.owner], []).append(
                (names[ev.name], ev.start, ev.dur, ev.child, ev.flags)
            )
        return out

    def readable_after_cut(self, cut: int) -> tuple[int, int]:
        """(events the reader must return, events present but unusable) for a copy cut at
        ``cut`` bytes: an event needs its whole slot, its name's entry and its thread's
        entry before the cut (entries of a metadata block are read up to the first torn
        one)."""
        names: set[int] = set()
        threads: set[int] = set()
        for e in self.entries:
            if e.end <= cut:
                if e.kind == META_NAME:
                    names.add(e.ident)
                elif e.kind == META_THREAD:
                    threads.add(e.ident)
        ok = unusable = 0
        for ev in self.events:
            if ev.offset + SLOT > cut:
                continue
            if ev.name in names and ev.owner in threads:
                ok += 1
            else:
                unusable += 1
        return ok, unusable

    def cut_points(self) -> list[int]:
        """Offsets of every kind: inside the header, at and inside each block header,
        metadata entry and payload, at block boundaries, mid-record."""
        points = {0, 1, 7, 8, 12, 20, 23, 24, 27, 28, 24 + self.meta_len // 2, 24 + self.meta_len}
        points |= {HEADER - 1, HEADER, HEADER + 1, self.size - 1}
        for b in self.blocks:
            for d in (-1, 0, 1, 4, 8, 12, 16, SLOT - 1, SLOT, SLOT + 1, SLOT + 16, b.size // 2):
                points.add(b.offset + d)
            points.add(b.offset + b.size)  # exactly at the next block boundary
        for e in self.entries:
            for d in (0, 1, 8, SLOT - 1, SLOT, SLOT + 1, SLOT + max(e.length // 2, 1)):
                points.add(e.offset + d)
            points.add(e.end - 1)
            points.add(e.end)
        for ev in self.events[:: max(1, len(self.events) // 200)]:
            for d in (0, 8, 16, 24, 28, 31):  # mid-record: every field torn
                points.add(ev.offset + d)
        return sorted(p for p in points if 0 <= p <= self.size)


def _decode(payload: bytes) -> str | None:
    try:
        return payload.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return None


def _metadata_block(log: RawLog, data: bytes, start: int, end: int) -> None:
    i = start
    while i + SLOT <= end:
        kind, ident, length, _reserved, native = META_HEAD.unpack_from(data, i)
        if kind == 0:
            break  # the first empty slot: the writer has not got further
        entry_end = i + SLOT * (1 + -(-length // SLOT))
        whole = i + SLOT + length <= end
        text = _decode(data[i + SLOT : i + SLOT + length]) if whole else None
        log.entries.append(Entry(i, entry_end, kind, ident, length, native, text))
        if 3 <= kind < FIRST_OPTIONAL_KIND:
            break  # reserved: a reader cannot trust what follows in this block
        i = entry_end


def _thread_block(log: RawLog, data: bytes, owner: int, start: int, end: int) -> None:
    lane = 0  # every block starts in lane 0
    for off in range(start, end - SLOT + 1, SLOT):
        (flags,) = struct.unpack_from("<I", data, off + 28)
        kind = flags & 0xFF
        if kind == KIND_EVENT:
            s, d, c, name, _flags = EVENT_SLOT.unpack_from(data, off)
            log.events.append(Event(off, owner, s, d, c, name, flags, lane))
        elif kind == KIND_LANE:
            (lane, _flags) = LANE_SLOT.unpack_from(data, off)
            log.lane_slots.append((off, lane))
        elif kind >= FIRST_OPTIONAL_KIND:
            log.optional_slots += 1
        elif kind != KIND_EMPTY:
            log.reserved_slots += 1


def parse(data: bytes) -> RawLog:
    """The layout of one intact (or cut short) log file's bytes."""
    if len(data) < HEADER_FIELDS.size:
        raise ValueError(f"{len(data)} bytes: shorter than a header")
    magic, version, header_size, slot_size, meta_len = HEADER_FIELDS.unpack_from(data, 0)
    if magic != MAGIC:
        raise ValueError(f"not a liteprof log (magic {magic!r})")
    log = RawLog(
        size=len(data),
        magic=magic,
        version=version,
        header_size=header_size,
        slot_size=slot_size,
        meta_len=meta_len,
        metadata=data[HEADER_FIELDS.size : HEADER_FIELDS.size + min(meta_len, HEADER)],
    )
    pos = HEADER
    while pos + SLOT <= len(data):
        bmagic, owner, size, seq = BLOCK_HEADER.unpack_from(data, pos)
        if bmagic != BLOCK_MAGIC:
            if any(data[pos : pos + SLOT]):
                raise ValueError(f"bad block header at {pos}")
            break
        if size < SLOT or size % SLOT:
            raise ValueError(f"block at {pos}: size {size}")
        end = min(pos + size, len(data))
        log.blocks.append(Block(pos, size, owner, seq, pos + size > len(data)))
        if owner == META_OWNER:
            _metadata_block(log, data, pos + SLOT, end)
        elif owner < FIRST_RESERVED_OWNER:
            _thread_block(log, data, owner, pos + SLOT, end)
        # else: padding, or a reserved kind of block: skipped whole
        pos += size
    if pos < len(data) and any(data[pos:]):
        raise ValueError(f"{len(data) - pos} bytes after the last block, at {pos}")
    return log


def read(path: str) -> RawLog:
    """``parse()`` of the file at ``path``."""
    with open(path, "rb") as fh:
        return parse(fh.read())
