"""Constants of the liteprof log format (see ``docs/FORMAT.md``).

Shared by the writer and the reader; imports nothing outside the standard library.
"""

from __future__ import annotations

import struct

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

MAGIC = b"LITEPROF"
VERSION = 2  # what the writer writes
READ_VERSIONS = (1, 2)  # what the reader reads; version 1 has no lane slots
HEADER_SIZE = 4096
SLOT_SIZE = 32
SUFFIX = ".lpf"
STEM_PREFIX = "liteprof-"

# magic, version, header size, slot size, metadata length
HEADER_STRUCT = struct.Struct("<8sIIII")
MAX_METADATA = HEADER_SIZE - HEADER_STRUCT.size

BLOCK_MAGIC = b"LPBK"
# magic, owner, size, sequence, reserved(16)
BLOCK_STRUCT = struct.Struct("<4sIII16x")
# The same slot with the sequence number's high word at offset 16 (zero until a file has
# made 2**32 blocks, which a bounded log recycling for months may): the sequence number is
# ``seq | seq_hi << 32``.
BLOCK_HEAD = struct.Struct("<4sIIII12x")
META_OWNER = 0xFFFFFFFF
PAD_OWNER = 0xFFFFFFFE  # filler (alignment, an arena's rest, free space); readers skip it
# Owners 0xFFFFFF00-0xFFFFFFFD are reserved for new kinds of block: a reader skips such a
# block whole (its size is valid). Thread indices stay below FIRST_RESERVED_OWNER.
FIRST_RESERVED_OWNER = 0xFFFFFF00
SUMMARY_OWNER = 0xFFFFFF00  # a bounded log's summary of the events it dropped
# A thread's first block is small, carved from an arena shared by many threads, so that a
# short-lived thread costs a few hundred bytes of disk; busy threads double their blocks up
# to MAX_BLOCK.
MIN_BLOCK = 256
MAX_BLOCK = 1024 * 1024

# start, dur, child, name, flags
EVENT_STRUCT = struct.Struct("<qqqII")
KIND_EVENT = 1
# A lane slot in a thread block: the events after it (up to the next lane slot or the end
# of the block) ran in lane ``u64 at offset 0``; every block starts in lane 0. (Version 2.)
KIND_LANE = 2
LANE_STRUCT = struct.Struct("<Q20xI")  # lane id, reserved, flags (kind in bits 0-7)
KIND_MASK = 0xFF
# Slot kinds KIND_LANE < kind < FIRST_OPTIONAL_KIND are reserved (a reader counts such a
# slot as skipped); kinds from FIRST_OPTIONAL_KIND on are optional (ignored, not counted).
FIRST_OPTIONAL_KIND = 128
FLAG_ERROR = 1 << 8
DEPTH_SHIFT = 16
MAX_DEPTH = 0xFFFF

# kind, id, payload length, reserved, extra, reserved
META_STRUCT = struct.Struct("<IIIIQ8x")
META_NAME = 1
META_THREAD = 2
# Metadata kinds META_THREAD < kind < FIRST_OPTIONAL_META are reserved (skipped, and they
# end their block's entries); kinds from FIRST_OPTIONAL_META on are stepped over.
FIRST_OPTIONAL_META = 128

# -- bounded logs (LITEPROF_MAX_MB): the summary of the events that were dropped ---------
# A summary block (owner SUMMARY_OWNER): its block header, then SUMMARY_HEAD, SUMMARY_TOTALS,
# the histogram's bounds (u64 ns each), the fold history (FOLD_STRUCT each) and the records
# (RECORD_HEAD then RECORD_WORDS + buckets u64 words each). See docs/FORMAT.md.
SUMMARY_MAGIC = b"LPDS"
# magic, crc32 (of the summary from the generation on), generation, buckets, records,
# history entries, reserved
SUMMARY_HEAD = struct.Struct("<4sIQIIII")
# events folded, regions folded, first start (mono ns, -1: none), last end (mono ns)
SUMMARY_TOTALS = struct.Struct("<QQqq")
# offset, sequence limit, size, reserved: every block inside [offset, offset + size) whose
# sequence number is below the limit has been folded into this summary.
FOLD_STRUCT = struct.Struct("<QQII")
FOLD_HISTORY = 64  # fold entries a summary keeps (the newest)
# name id, reserved; then u64 words: count, errors, total (lo, hi), self (lo, hi), min, max
RECORD_HEAD = struct.Struct("<II")
RECORD_WORDS = 8
# Upper bounds (ns) of the duration histogram's buckets: exponential, four per decade, from
# 1 us to 100 s, plus a last bucket without bound. `liteprof serve` exports the same buckets.
HISTOGRAM_BOUNDS_NS = tuple(round(1000 * 10 ** (k / 4)) for k in range(33))

NUMPY_DTYPE_SPEC = [
    ("start", "<i8"),
    ("dur", "<i8"),
    ("child", "<i8"),
    ("name", "<u4"),
    ("flags", "<u4"),
]

assert BLOCK_STRUCT.size == SLOT_SIZE
assert EVENT_STRUCT.size == SLOT_SIZE
assert META_STRUCT.size == SLOT_SIZE
assert LANE_STRUCT.size == SLOT_SIZE
assert BLOCK_HEAD.size == SLOT_SIZE
assert SUMMARY_HEAD.size == SLOT_SIZE and SUMMARY_TOTALS.size == SLOT_SIZE


def encode_text(text: str) -> bytes:
    """Encode a scope or thread name; lone surrogates survive (any ``str`` round-trips)."""
    return text.encode("utf-8", "surrogatepass")


def decode_text(data: bytes) -> str:
    return data.decode("utf-8", "surrogatepass")


class _NotPlain(Exception):
    pass


def encode_json(obj: Any) -> bytes:
    """``json.dumps(obj, ensure_ascii=True).encode()``, byte for byte, for the header's
    metadata (``None``, bools, ints, strings, lists and dicts of them) without importing
    ``json``, whose ``re`` would cost every recording process milliseconds at start;
    other values go through ``json`` itself."""
    quote: Callable[[str], str] | None
    try:
        from _json import encode_basestring_ascii as quote
    except ImportError:  # an interpreter without the C accelerator
        quote = None

    def enc(value: Any) -> str:
        if value is None:
            return "null"
        if value is True:
            return "true"
        if value is False:
            return "false"
        kind = type(value)
        if kind is int:
            return int.__repr__(value)
        if kind is str and quote is not None:
            return str(quote(value))
        if kind is list or kind is tuple:
            return "[" + ", ".join(map(enc, value)) + "]"
        if kind is dict and quote is not None and all(type(k) is str for k in value):
            return "{" + ", ".join(f"{quote(k)}: {enc(v)}" for k, v in value.items()) + "}"
        raise _NotPlain

    try:
        return enc(obj).encode("ascii")
    except _NotPlain:
        import json

        return json.dumps(obj, ensure_ascii=True).encode()
