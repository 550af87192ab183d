"""The structure of one binary log: its header, its blocks and its metadata entries.

Shared by the whole-file reader (``reader.py``) and a live reader that follows logs
while they are written: both walk the same block headers and parse the same metadata
entries; only what they do with the event slots differs. Standard library only. Every
length and id read from a file is bounded by the file's size before anything is
allocated, and nothing read is ever evaluated.
"""

from __future__ import annotations

import json
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
        return {
            "pid": meta.get("pid") if isinstance(meta.get("pid"), int) else None,
            "name": str(meta.get("process_name", "?")),
            "host": str(meta.get("host", "?")),
            "rank": rank if isinstance(rank, int) and not isinstance(rank, bool) else None,
            "records": 0,
            "path": path,
        }

    def wall_of(self, mono_ns: int) -> int | None:
        """The wall-clock time of monotonic time ``mono_ns``; ``None`` without anchors."""
        mono = self.meta.get("mono_ns")
        wall = self.meta.get("wall_ns")
        if isinstance(mono, int) and isinstance(wall, int):
            return wall + (mono_ns - mono)
        return None


def read_header(fh: BinaryIO, path: str) -> Header:
    """Parse and check the header page; a damaged metadata object is ignored, not an error."""
    fh.seek(0)
    header = fh.read(F.HEADER_SIZE)
    if len(header) < F.HEADER_STRUCT.size:
        raise LogError(f"{path}: truncated liteprof header")
    _magic, version, header_size, slot_size, meta_len = F.HEADER_STRUCT.unpack_from(header)
    if version not in F.READ_VERSIONS:
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
    return Header(version, meta)


@dataclass
class BlockMap:
    """Where a log's blocks are, as slot indices counted from the end of the header."""

    segments: list[tuple[int, int, int]] = field(default_factory=list)
    """Event slots of thread blocks: ``(first, end, owner)``, in file order."""
    meta_blocks: list[tuple[int, int]] = field(default_factory=list)
    """Entry slots of metadata blocks: ``(first, end)``."""
    end: int = 0
    """The slot index where the walk stopped (the end of the last block read)."""
    skipped: int = 0
    """Damaged block headers met (the walk stops at the first)."""


def scan_blocks(fh: BinaryIO, nslots: int, start: int = 0) -> BlockMap:
    """Walk the block headers from slot ``start`` up to ``nslots`` (the file's length).

    Stops at the first slot that is not a block header: an empty one is where the
    writer has not got to yet; a non-empty one is damage (one ``skipped``), beyond which
    the rest of the file is unreachable. A block that runs past ``nslots`` (a cut file,
    or a block still being reserved) is cut there.
    """
    slot_bytes = F.SLOT_SIZE
    out = BlockMap()
    pos = start
    while pos < nslots:
        fh.seek(F.HEADER_SIZE + pos * slot_bytes)
        head = fh.read(slot_bytes)
        if len(head) < slot_bytes:
            break
        magic, owner, bsize, _seq = F.BLOCK_STRUCT.unpack(head)
        if magic != F.BLOCK_MAGIC or bsize < 2 * slot_bytes or bsize % slot_bytes:
            if any(head):
                out.skipped += 1
            break
        end = min(pos + bsize // slot_bytes, nslots)
        if owner == F.META_OWNER:
            out.meta_blocks.append((pos + 1, end))
        elif owner != F.PAD_OWNER:
            out.segments.append((pos + 1, end, owner))
        pos += bsize // slot_bytes
    out.end = min(pos, nslots)
    return out


@dataclass
class Metadata:
    """A log's metadata entries: scope names and threads, by their ids in the file."""

    names: dict[int, str] = field(default_factory=dict)
    threads: dict[int, tuple[int, str]] = field(default_factory=dict)
    """thread index -> (native thread id, thread name)"""
    skipped: int = 0


def parse_metadata(raw: bytes, out: Metadata) -> None:
    """Parse the entry slots of one metadata block (``raw``) into ``out``.

    Entries run up to the first empty slot; an entry of an unknown kind, or whose
    payload runs past the block, counts as one ``skipped`` and ends the block's entries.
    Each length is checked against the block before anything is read.
    """
    slot_bytes = F.SLOT_SIZE
    i, n = 0, len(raw) // slot_bytes
    while i < n:
        kind, ident, length, _r, extra = F.META_STRUCT.unpack_from(raw, i * slot_bytes)
        if kind == 0:
            break
        nps = (length + slot_bytes - 1) // slot_bytes
        if kind not in (F.META_NAME, F.META_THREAD) or i + 1 + nps > n:
            out.skipped += 1
            break
        payload = raw[(i + 1) * slot_bytes : (i + 1) * slot_bytes + length]
        try:
            text = F.decode_text(payload)
        except UnicodeDecodeError:
            text = payload.decode("utf-8", "replace")
        if kind == F.META_NAME:
            out.names[ident] = text
        else:
            out.threads[ident] = (int(extra), text)
        i += 1 + nps


def read_metadata(fh: BinaryIO, blocks: BlockMap) -> Metadata:
    """Every metadata entry of the log, block by block."""
    out = Metadata()
    for first, end in blocks.meta_blocks:
        fh.seek(F.HEADER_SIZE + first * F.SLOT_SIZE)
        parse_metadata(fh.read((end - first) * F.SLOT_SIZE), out)
    return out
