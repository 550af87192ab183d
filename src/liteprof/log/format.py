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
META_OWNER = 0xFFFFFFFF
PAD_OWNER = 0xFFFFFFFE  # filler that aligns the next block for mmap; readers skip it
# Owners 0xFFFFFF00-0xFFFFFFFD are reserved for new kinds of block: a reader skips such a
# block whole (its size is valid). Thread indices stay below FIRST_RESERVED_OWNER.
FIRST_RESERVED_OWNER = 0xFFFFFF00
# A thread's first block is one page, so that short-lived threads cost 4 KiB of disk;
# busy threads double their blocks up to MAX_BLOCK.
MIN_BLOCK = 4 * 1024
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
