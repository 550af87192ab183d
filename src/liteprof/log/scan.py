"""The structure of one binary log: its header, its blocks and its metadata entries.

Shared by the whole-file reader (``reader.py``) and the live reader that follows logs
while they are written (``tail.py``): both walk the same block headers and parse the same
metadata entries with the functions here; only what they do with the event slots
differs. What each function guarantees is in its docstring; in short:

- nothing here raises on damage: damage is counted in a ``skipped`` field and the walk
  stops where the format says it must (``docs/FORMAT.md``, "Reading" and "Extensions");
  only ``read_header`` raises ``LogError``, for a file that is not a readable log at all;
- every length and id read from a file is bounded by the file's size (or the block's)
  before anything is allocated, and nothing read is ever evaluated;
- a *live* read is consistent when it reads the event slots of the blocks it found
  first and the metadata afterwards (``read_metadata`` after the events, with
  ``rescan`` for metadata blocks added meanwhile): the writer defines a name or a thread
  before any event uses it, so every event read then has its definitions.

Standard library only, except that ``parse_metadata`` hands a large metadata block (tens
of thousands of names) to numpy, imported there and then, when it is installed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from . import format as F
from .errors import LogError


@dataclass
class Header:
    """A log's header page: the format version and the process's metadata object."""

    version: int
    meta: dict[str, Any]

    def process(self, path: str) -> dict[str, Any]:
        """The process's row of the report's ``processes`` (plus its ``path``)."""
        meta = self.meta
        rank = meta.get("rank")
        pid = meta.get("pid")
        return {
            "pid": pid if isinstance(pid, int) and not isinstance(pid, bool) else None,
            "name": str(meta.get("process_name", "?")),
            "host": str(meta.get("host", "?")),
            "rank": rank if isinstance(rank, int) and not isinstance(rank, bool) else None,
            "records": 0,
            "path": path,
            "warnings": header_warnings(meta),
        }

    def wall_of(self, mono_ns: int) -> int | None:
        """The wall-clock time of monotonic time ``mono_ns``; ``None`` without anchors."""
        mono = self.meta.get("mono_ns")
        wall = self.meta.get("wall_ns")
        if (
            isinstance(mono, int)
            and isinstance(wall, int)
            and not isinstance(mono, bool)
            and not isinstance(wall, bool)
            and abs(mono) < 1 << 62
            and abs(wall) < 1 << 62
        ):
            return wall + (mono_ns - mono)
        return None


def header_never_written(head: bytes) -> bool:
    """Whether a ``.lpf`` file's first bytes are those of a log whose header was never
    (fully) written: nothing, zeros (the writer reserved the file and was killed before
    the header's ``pwrite``) or a cut-off magic. Such a file holds no event; a reader
    counts it as one ``skipped`` and goes on with the other logs."""
    written = head[: len(F.MAGIC)].rstrip(b"\0")
    return written != F.MAGIC and F.MAGIC.startswith(written)


def header_warnings(meta: dict[str, Any]) -> list[str]:
    """What the writer warned about its file (``"warnings"`` in the header metadata: a log
    directory that other users could write to); at most 8 texts of 400 characters."""
    raw = meta.get("warnings")
    if not isinstance(raw, list):
        return []
    return [w[:400] for w in raw[:8] if isinstance(w, str)]


def read_header(fh: BinaryIO, path: str) -> Header:
    """Parse and check the header page.

    Raises ``LogError`` (one line, naming ``path``) for a file whose fixed fields are cut
    or wrong, and for a version this reader does not know: a higher version is only made
    for a change that this reader would misread (``docs/FORMAT.md``, "Extensions").
    Damaged metadata JSON is ignored (an empty ``meta``), not an error.
    """
    fh.seek(0)
    header = fh.read(F.HEADER_SIZE)
    if len(header) < F.HEADER_STRUCT.size:
        raise LogError(f"{path}: truncated liteprof header")
    magic, version, header_size, slot_size, meta_len = F.HEADER_STRUCT.unpack_from(header)
    if magic != F.MAGIC:
        raise LogError(f"{path}: not a liteprof log")
    if version not in F.READ_VERSIONS:
        known = " and ".join(str(v) for v in F.READ_VERSIONS)
        newer = " (written by a newer liteprof)" if version > max(F.READ_VERSIONS) else ""
        raise LogError(
            f"{path}: unsupported liteprof log version {version}{newer}; "
            f"this reader reads versions {known}"
        )
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
    return Header(version, meta)


def slot_count(size: int) -> tuple[int, int]:
    """``(whole slots after the header, bytes of a torn last slot)`` of a file of ``size``
    bytes. The writer grows a file by whole blocks only, so a torn slot means a cut file."""
    body = max(0, size - F.HEADER_SIZE)
    return body // F.SLOT_SIZE, body % F.SLOT_SIZE


@dataclass
class BlockMap:
    """Where a log's blocks are, as slot indices counted from the end of the header."""

    segments: list[tuple[int, int, int]] = field(default_factory=list)
    """Slots of thread blocks after their header slot: ``(first, end, owner)``, in file
    order; ``end`` is cut at the end of the file."""
    seqs: list[int] = field(default_factory=list)
    """Each segment's block sequence number (``segments[i]``'s is ``seqs[i]``)."""
    meta_blocks: list[tuple[int, int]] = field(default_factory=list)
    """Entry slots of metadata blocks: ``(first, end)``, in file order."""
    end: int = 0
    """The slot where the walk stopped: the end of the last block read, or the damaged
    slot. ``rescan`` goes on from here."""
    nslots: int = 0
    """The file's length in slots when it was walked."""
    skipped: int = 0
    """Damaged block headers met (the walk stops at the first)."""
    stopped: bool = False
    """The walk met a damaged block header: nothing after it can be reached."""
    summaries: list[tuple[int, int]] = field(default_factory=list)
    """Slots of a bounded log's summary blocks after their header: ``(first, end)``."""

    def in_thread_order(self) -> list[tuple[int, int, int]]:
        """The segments by thread, each thread's in the order it filled them: by sequence
        number (a bounded log reuses blocks, so file order is not filling order), then by
        place in the file (sequence numbers that tie, in a forged file)."""
        order = sorted(
            range(len(self.segments)),
            key=lambda i: (self.segments[i][2], self.seqs[i], self.segments[i][0]),
        )
        return [self.segments[i] for i in order]

    @property
    def capacity(self) -> int:
        """The most events the thread blocks can hold (what a reader reserves for)."""
        return sum(end - first for first, end, _owner in self.segments)


def scan_blocks(fh: BinaryIO, nslots: int, start: int = 0, out: BlockMap | None = None) -> BlockMap:
    """Walk the block headers from slot ``start`` up to ``nslots`` (the file's length).

    Stops at the first slot that is not a block header: an empty one is where the
    writer has not got to yet; a non-empty one is damage (one ``skipped``, and
    ``stopped``), beyond which the rest of the file is unreachable. A block that runs past
    ``nslots`` (a cut file, or a block still being reserved) is cut there. Blocks of the
    padding owner and of the reserved owners ``0xFFFFFF00``-``0xFFFFFFFD`` (kinds of
    block a newer writer may add) are stepped over whole, without counting. With ``out``,
    the blocks found are appended to it (see ``rescan``). One ``read`` per block.
    """
    slot_bytes = F.SLOT_SIZE
    out = out if out is not None else BlockMap()
    out.nslots = max(out.nslots, nslots)
    pos = start
    while pos < nslots and not out.stopped:
        fh.seek(F.HEADER_SIZE + pos * slot_bytes)
        head = fh.read(slot_bytes)
        if len(head) < slot_bytes:
            break
        magic, owner, bsize, seq, seq_hi = F.BLOCK_HEAD.unpack(head)
        if magic != F.BLOCK_MAGIC or bsize < 2 * slot_bytes or bsize % slot_bytes:
            if any(head):
                out.skipped += 1
                out.stopped = True
            break
        size_slots = bsize // slot_bytes
        end = min(pos + size_slots, nslots)
        if owner == F.META_OWNER:
            out.meta_blocks.append((pos + 1, end))
        elif owner < F.FIRST_RESERVED_OWNER:
            out.segments.append((pos + 1, end, owner))
            out.seqs.append(seq | seq_hi << 32)
        elif owner == F.SUMMARY_OWNER:
            out.summaries.append((pos + 1, end))
        # else: padding, or a reserved kind of block: skipped whole.
        if pos + size_slots > nslots:
            # Cut at the end of the file: the rest of the block may still be written (a
            # live log's block being reserved); ``rescan`` walks it again later.
            break
        pos += size_slots
    out.end = min(pos, nslots)
    return out


def rescan(fh: BinaryIO, blocks: BlockMap) -> BlockMap:
    """The blocks added to the file since ``blocks`` was walked (a live log).

    Returns a new map of only what lies at or after ``blocks.end`` (a block that was cut
    at the old end of the file is found again, whole); ``blocks`` itself is left as it
    is, so that what was read from it stays consistent.
    """
    size = os.fstat(fh.fileno()).st_size
    nslots, _tail = slot_count(size)
    if blocks.stopped:
        return BlockMap(end=blocks.end, nslots=nslots, stopped=True)
    return scan_blocks(fh, nslots, start=blocks.end)


class Metadata:
    """A log's metadata entries: scope names and threads, by their ids in the file.

    ``names`` is the ``{id: text}`` dict; a reader of many names uses ``name_table``
    instead, which does not build it: names parsed in bulk are kept as they came, an
    array of ids and a list of texts per metadata block, which costs a fraction of a
    dict of a million Python ints. A later entry for an id replaces an earlier one.
    """

    def __init__(self) -> None:
        self.threads: dict[int, tuple[int, str]] = {}
        """thread index -> (native thread id, thread name)"""
        self.skipped = 0
        self._parts: list[tuple[Any, Sequence[str]]] = []  # (ids, texts) in file order
        self._dict: dict[int, str] | None = None

    def add_name(self, ident: int, text: str) -> None:
        last = self._parts[-1] if self._parts else None
        if last is not None and isinstance(last[0], list) and isinstance(last[1], list):
            last[0].append(ident)
            last[1].append(text)
        else:
            self._parts.append(([ident], [text]))
        self._dict = None

    def add_names(self, idents: Any, texts: Sequence[str]) -> None:
        """Names in bulk: ``idents`` a sequence (a numpy array) as long as ``texts``."""
        self._parts.append((idents, texts))
        self._dict = None

    @property
    def names(self) -> dict[int, str]:
        """id -> text (built on first use)."""
        if self._dict is None:
            built: dict[int, str] = {}
            for idents, texts in self._parts:
                built.update(zip(_as_list(idents), texts))
            self._dict = built
        return self._dict

    def name_table(self) -> tuple[list[Any], Sequence[str]]:
        """Every name entry in file order: the ids (lists or arrays, one per part, to be
        concatenated) and their texts; where an id repeats, its last entry counts."""
        parts = [part for _, part in self._parts]
        ids = [idents for idents, _ in self._parts]
        if not all(isinstance(part, list) for part in parts):
            # Blocks parsed in bulk (``_metavec``, with numpy) gave packed texts: the
            # table is one packed text too, not a ``str`` per name.
            from .events import Names

            return ids, Names.join(parts)
        texts: list[str] = []
        for part in parts:
            texts.extend(part)
        return ids, texts

    @property
    def name_count(self) -> int:
        return sum(len(texts) for _, texts in self._parts)


def _as_list(idents: Any) -> list[int]:
    return idents if isinstance(idents, list) else idents.tolist()


# Below this many slots, a metadata block is parsed entry by entry in Python; above, with
# numpy (a block of 1M names takes ~1 s in the loop, ~0.1 s vectorised).
_VECTOR_META_SLOTS = 4096


def parse_metadata(raw: bytes, out: Metadata) -> None:
    """Parse the entry slots of one metadata block (``raw``) into ``out``.

    Entries run up to the first empty slot. An entry of a reserved kind (3-127), or whose
    payload runs past the block, counts as one ``skipped`` and ends the block's entries
    (it may as well be damage); an entry of an optional kind (128 and above) is stepped
    over, its payload length being valid. Each length is checked against the block before
    anything is read. A later entry for the same id replaces an earlier one.
    """
    n = len(raw) // F.SLOT_SIZE
    if n >= _VECTOR_META_SLOTS:
        try:
            from . import _metavec
        except ImportError:  # numpy missing: the loop below gives the same result
            pass
        else:
            _metavec.parse(raw, n, out)
            return
    parse_entries(raw, 0, n, out)


def parse_entries(raw: bytes, i: int, n: int, out: Metadata) -> None:
    """The entry loop of ``parse_metadata`` from slot ``i`` of ``raw`` up to slot ``n``."""
    slot_bytes = F.SLOT_SIZE
    while i < n:
        kind, ident, length, _r, extra = F.META_STRUCT.unpack_from(raw, i * slot_bytes)
        if kind == 0:
            break
        nps = (length + slot_bytes - 1) // slot_bytes
        if F.META_THREAD < kind < F.FIRST_OPTIONAL_META or i + 1 + nps > n:
            out.skipped += 1
            break
        if kind == F.META_NAME or kind == F.META_THREAD:
            text = decode_payload(raw[(i + 1) * slot_bytes : (i + 1) * slot_bytes + length])
            if kind == F.META_NAME:
                out.add_name(ident, text)
            else:
                out.threads[ident] = (int(extra), text)
        i += 1 + nps


def decode_payload(payload: bytes) -> str:
    """A name's text: UTF-8 with lone surrogates; undecodable bytes become U+FFFD."""
    try:
        return F.decode_text(payload)
    except UnicodeDecodeError:
        return payload.decode("utf-8", "replace")


def read_metadata(fh: BinaryIO, blocks: BlockMap, out: Metadata | None = None) -> Metadata:
    """Every metadata entry of the blocks in ``blocks``, block by block, into ``out``.

    For a consistent read of a live log, call it after reading the events (and again with
    ``rescan``'s map, for metadata blocks added since the walk): see the module's
    docstring.
    """
    out = out if out is not None else Metadata()
    for first, end in blocks.meta_blocks:
        fh.seek(F.HEADER_SIZE + first * F.SLOT_SIZE)
        parse_metadata(fh.read((end - first) * F.SLOT_SIZE), out)
    return out
