"""Reading bounded logs (``LITEPROF_MAX_MB``): the summary of the events a log dropped.

A bounded log recycles its oldest blocks; before it does, it folds their events into a
summary (``docs/FORMAT.md``, "Bounded logs"). A reader counts each event once, from its
block or from the summary, with three rules, each a function here:

1. ``read_summary`` before the events: the newest summary block whose checksum holds.
2. ``folded``: a thread block that the summary's fold history covers is skipped (its
   events are in the summary already; a writer killed between writing the summary and
   relabelling the block leaves it in place).
3. ``unchanged`` after reading a block's events: in a live log, a block recycled while it
   was read has another header by then, and what was read of it is dropped. Its events
   are in a newer summary than the one read, so they are missing from this read, never
   counted twice; the next read has them.

Standard library only; nothing read is evaluated, every count is bounded by the block.
"""

from __future__ import annotations

import binascii
import struct
from dataclasses import dataclass, field
from typing import BinaryIO, Callable

from . import format as F
from .events import DroppedRow
from .scan import BlockMap

MAX_COUNT = 1 << 62
"""The most events a record may claim (2**62 would take centuries): bounds forged ones."""
_MAX_NS = (1 << 63) - 1


@dataclass
class Summary:
    """One summary block's content (``docs/FORMAT.md``, "Bounded logs")."""

    generation: int
    events: int
    """Events folded so far."""
    regions: int
    """Regions recycled so far."""
    first_start: int | None
    """Monotonic ns: the earliest start among the folded events."""
    last_end: int | None
    """Monotonic ns: the latest end among the folded events."""
    bounds: tuple[int, ...]
    history: list[tuple[int, int, int]] = field(default_factory=list)
    """The newest folds: (byte offset, sequence limit, size) each."""
    records: dict[int, tuple[int, ...]] = field(default_factory=dict)
    """Name id -> (count, errors, total, self, min, max, *buckets)."""


def summary_size(head: bytes) -> int | None:
    """Bytes a summary takes after its block header, from its first 32 bytes (its head);
    ``None`` where they are not a summary's head (empty, or not one this reader knows).
    Not checked: only the whole summary's checksum says it is not torn."""
    if len(head) < F.SUMMARY_HEAD.size:
        return None
    magic, _crc, generation, nbuckets, nrecords, nhistory, _r = F.SUMMARY_HEAD.unpack_from(head)
    if magic != F.SUMMARY_MAGIC or generation == 0 or nbuckets < 1:
        return None
    rec_size = F.RECORD_HEAD.size + 8 * (F.RECORD_WORDS + int(nbuckets))
    return int(
        F.SUMMARY_HEAD.size
        + F.SUMMARY_TOTALS.size
        + 8 * (nbuckets - 1)
        + F.FOLD_STRUCT.size * nhistory
        + rec_size * nrecords
    )


def parse_summary(raw: bytes) -> Summary | None:
    """A summary from the bytes after its block header; ``None`` where it is empty, torn
    (its checksum fails: being written, or cut) or not one this reader knows."""
    end = summary_size(raw)
    if end is None or end > len(raw):
        return None
    head = F.SUMMARY_HEAD
    _magic, crc, generation, nbuckets, nrecords, nhistory, _r = head.unpack_from(raw)
    words = F.RECORD_WORDS + nbuckets
    rec_size = F.RECORD_HEAD.size + 8 * words
    if binascii.crc32(raw[8:end]) != crc:
        return None
    record_words = struct.Struct(f"<{words}Q")
    pos = head.size
    events, regions, first, last = F.SUMMARY_TOTALS.unpack_from(raw, pos)
    pos += F.SUMMARY_TOTALS.size
    bounds = tuple(
        int.from_bytes(raw[pos + 8 * i : pos + 8 * i + 8], "little") for i in range(nbuckets - 1)
    )
    pos += 8 * (nbuckets - 1)
    history = []
    for _ in range(nhistory):
        offset, limit, size, _r2 = F.FOLD_STRUCT.unpack_from(raw, pos)
        history.append((offset, limit, size))
        pos += F.FOLD_STRUCT.size
    records: dict[int, tuple[int, ...]] = {}
    for _ in range(nrecords):
        ident, _r3 = F.RECORD_HEAD.unpack_from(raw, pos)
        w = record_words.unpack_from(raw, pos + 8)
        count, errors, tot_lo, tot_hi, self_lo, self_hi, low, high = w[: F.RECORD_WORDS]
        if count:
            records[ident] = (
                count,
                errors,
                tot_lo | tot_hi << 64,
                self_lo | self_hi << 64,
                low,
                high,
                *w[F.RECORD_WORDS :],
            )
        pos += rec_size
    return Summary(
        generation,
        events,
        regions,
        first if first >= 0 else None,
        last if last >= 0 else None,
        bounds,
        history,
        records,
    )


def read_summary(fh: BinaryIO, blocks: BlockMap) -> Summary | None:
    """The summary that counts: of the log's summary blocks, the valid one with the
    highest generation (the writer writes the two in turn); ``None`` for a log that has
    dropped nothing. Read it before the events (rule 1 of the module's docstring)."""

    def read(first: int, end: int) -> bytes:
        fh.seek(F.HEADER_SIZE + first * F.SLOT_SIZE)
        return fh.read((end - first) * F.SLOT_SIZE)

    return newest_summary(read, blocks.summaries)


_MAX_SUMMARY_READS = 16


def newest_summary(
    read: Callable[[int, int], bytes], places: list[tuple[int, int]], newer_than: int = 0
) -> Summary | None:
    """The valid summary of the highest generation among the summary blocks at
    ``places`` (``BlockMap.summaries``), read with ``read(first, end)`` (the bytes of
    slots ``[first, end)``); ``None`` where none is valid, or none is newer than
    generation ``newer_than`` (then only each block's head is read).

    The two blocks cannot be read at one instant, and a fold may write one while the
    other is read. The writer writes them in turn and starts a generation only once the
    one before is whole, so a torn block means the other one holds a newer whole
    generation: after a torn read the other block is read again, until a read is not
    torn. The summary found is then at least as new as the newest one whole when the
    reading began (short of more folds meanwhile than ``_MAX_SUMMARY_READS``), which is
    what a reader that saw a block recycled needs: its fold wrote its summary first.
    """
    if not places:
        return None
    best: Summary | None = None
    reads = 0
    torn = False
    while reads < len(places) or (torn and reads < _MAX_SUMMARY_READS):
        first, end = places[reads % len(places)]
        reads += 1
        head = read(first, min(first + 1, end))
        size = summary_size(head)
        generation = int.from_bytes(head[8:16], "little") if size is not None else 0
        if size is not None and generation <= max(newer_than, best.generation if best else 0):
            torn = False  # whole or not, nothing newer than what is known
            continue
        summary = None
        if size is not None:
            summary = parse_summary(read(first, min(end, first + -(-size // F.SLOT_SIZE))))
        torn = summary is None and any(head)  # an empty block was never written
        if summary is not None and (best is None or summary.generation > best.generation):
            best = summary
    return best


def folded(summary: Summary | None, first: int, seq: int) -> bool:
    """Whether the thread block whose segment starts at slot ``first``, with sequence
    number ``seq``, is in ``summary`` already: a fold of the history covers its place and
    its sequence number is below that fold's limit (rule 2)."""
    if summary is None or not summary.history:
        return False
    offset = F.HEADER_SIZE + (first - 1) * F.SLOT_SIZE
    return any(o <= offset < o + size and seq < limit for o, limit, size in summary.history)


def unchanged(fh: BinaryIO, first: int, owner: int, seq: int) -> bool:
    """Whether the header of the thread block at slot ``first`` still says what the walk
    read (``owner``, sequence number ``seq``), after its events were read (rule 3): the
    writer relabels a block before it overwrites it."""
    fh.seek(F.HEADER_SIZE + (first - 1) * F.SLOT_SIZE)
    head = fh.read(F.SLOT_SIZE)
    if len(head) < F.SLOT_SIZE:
        return True  # cut meanwhile: what was read stands (the reader's rule for cuts)
    magic, now_owner, _size, now_seq, seq_hi = F.BLOCK_HEAD.unpack(head)
    return bool(magic == F.BLOCK_MAGIC and now_owner == owner and now_seq | seq_hi << 32 == seq)


def dropped_rows(summary: Summary, proc: int, name_index: dict[int, int]) -> list[DroppedRow]:
    """The summary's records as ``Events.dropped`` rows of process ``proc``; ``name_index``
    maps the file's name ids to indices into ``Events.names`` (a record of an id without a
    name is left out: it cannot be reported)."""
    out = []
    for ident, rec in sorted(summary.records.items()):
        name = name_index.get(ident)
        if name is None:
            continue
        count, errors, total, selfish, low, high, *buckets = rec
        # Bounded as a real log's can be (2**62 events would take centuries), so that a
        # forged record cannot overflow the report's int64 columns.
        count = min(count, MAX_COUNT)
        low, high = min(low, _MAX_NS), min(high, _MAX_NS)
        out.append(
            DroppedRow(
                proc=proc,
                name=name,
                count=count,
                errors=min(errors, count),
                total_ns=total,
                self_ns=min(selfish, total),
                min_ns=min(low, high),
                max_ns=high,
                buckets=tuple(min(b, MAX_COUNT) for b in buckets),
                bounds_ns=summary.bounds,
            )
        )
    return out


def is_bounded(meta: dict[str, object], blocks: BlockMap) -> bool:
    """Whether a log may recycle blocks (its header says ``max_bytes``, or it has a
    summary): only then does a reader check each block again after reading it."""
    return bool(blocks.summaries) or isinstance(meta.get("max_bytes"), int)
