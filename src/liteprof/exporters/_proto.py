"""A minimal protobuf wire-format writer: scalars in Python, varint columns in numpy.

Enough for Perfetto traces and OTLP requests without the protobuf runtime: a message is
``bytes`` built from ``field_*`` pieces; columns of varints are packed eight bytes to a
``uint64`` (little-endian), which is how the Perfetto exporter writes millions of fixed
layout packets with a handful of numpy operations.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

_VARINT, _I64, _LEN = 0, 1, 2


def varint(value: int) -> bytes:
    """``value`` (a non-negative int below 2**64, or a negative int64) as a varint."""
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def tag(number: int, wire: int) -> bytes:
    return varint((number << 3) | wire)


def field_varint(number: int, value: int) -> bytes:
    return tag(number, _VARINT) + varint(int(value))


def field_bytes(number: int, payload: bytes) -> bytes:
    return tag(number, _LEN) + varint(len(payload)) + payload


def field_str(number: int, text: str) -> bytes:
    # Scope names may hold lone surrogates, which are not UTF-8: escape them visibly.
    return field_bytes(number, text.encode("utf-8", "backslashreplace"))


def field_fixed64(number: int, value: int) -> bytes:
    return tag(number, _I64) + struct.pack("<Q", value & 0xFFFFFFFFFFFFFFFF)


def field_double(number: int, value: float) -> bytes:
    return tag(number, _I64) + struct.pack("<d", value)


def varint_width(top: int) -> int:
    """Bytes of the varint of ``top`` (>= 0)."""
    return max(1, (int(top).bit_length() + 6) // 7)


def pack_varints(values: np.ndarray, width: int) -> np.ndarray:
    """Each value as a varint of exactly ``width`` bytes (1-8), packed little-endian
    into a ``uint32`` (up to four bytes) or a ``uint64``.

    A value shorter than ``width`` is written overlong (continuation bits on leading
    zero groups), which every protobuf parser reads as the same number; this keeps every
    record of a column the same length. Values must fit in ``7 * width`` bits.
    """
    import numpy as np

    # Four bytes or fewer: the arithmetic in 32 bits moves half the memory.
    dtype: Any = np.uint32 if width <= 4 else np.uint64
    v: Any = values.astype(dtype, copy=False)
    if width == 1:
        return v & dtype(0x7F)  # type: ignore[no-any-return]
    packed: Any = v & dtype(0x7F)
    for k in range(1, width):
        packed |= ((v >> dtype(7 * k)) & dtype(0x7F)) << dtype(8 * k)
    packed |= dtype(int.from_bytes(b"\x80" * (width - 1), "little"))
    return packed  # type: ignore[no-any-return]


def put(rows: np.ndarray, offset: int, width: int, packed: np.ndarray) -> None:
    """Write the low ``width`` bytes of each ``packed`` value into column ``offset`` of
    the byte matrix ``rows`` (one record per row)."""
    import numpy as np

    size = packed.dtype.itemsize
    as_bytes = packed.astype(f"<u{size}", copy=False).view(np.uint8).reshape(-1, size)
    if width == 1:
        rows[:, offset] = as_bytes[:, 0]
    else:
        rows[:, offset : offset + width] = as_bytes[:, :width]
