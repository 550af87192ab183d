"""Vectorised parsing of one large metadata block (numpy); ``scan.parse_metadata`` calls it.

The result is exactly that of the entry loop ``scan.parse_entries``, which stays the
reference: this only takes a shortcut where it can prove it gives the same answer, and
hands the block (or its rest) to the loop otherwise.

Entries are variable-length (a head slot, then the payload's slots), so where each entry
starts is a sequential walk. The shortcut guesses that the heads are exactly the slots
whose kind is a name or a thread and checks the guess with one comparison per entry:
each guessed head's successor must be the next guessed head. A payload slot that happens
to look like a head, an optional entry kind (128 and above) or damage breaks the check,
and the loop takes over. The names' payloads are then decoded with one ``decode`` call.
"""

from __future__ import annotations

import numpy as np

from . import format as F
from .events import Names
from .scan import Metadata, decode_payload, parse_entries

META_DTYPE = np.dtype(
    [
        ("kind", "<u4"),
        ("id", "<u4"),
        ("len", "<u4"),
        ("r0", "<u4"),
        ("extra", "<u8"),
        ("r1", "<u8"),
    ]
)
assert META_DTYPE.itemsize == F.SLOT_SIZE


def parse(raw: bytes, n: int, out: Metadata) -> None:
    """Parse the ``n`` entry slots of ``raw`` into ``out``, as ``parse_entries`` would."""
    slots = np.frombuffer(raw, META_DTYPE, count=n)
    kind = slots["kind"]
    heads = np.flatnonzero((kind == F.META_NAME) | (kind == F.META_THREAD))
    if heads.size == 0 or heads[0] != 0:
        parse_entries(raw, 0, n, out)
        return
    nps = (slots["len"][heads].astype(np.int64) + (F.SLOT_SIZE - 1)) // F.SLOT_SIZE
    succ = heads + 1 + nps
    if heads.size > 1 and not np.array_equal(succ[:-1], heads[1:]):
        parse_entries(raw, 0, n, out)
        return
    last_next = int(succ[-1])
    if last_next > n:
        # The last guessed entry's payload runs past the block: the loop stops there, with
        # one ``skipped``, after the entries before it.
        heads = heads[:-1]
    _store(raw, slots, heads, out)
    if last_next > n:
        out.skipped += 1
    elif last_next < n:
        # Whatever follows the last name or thread entry (nothing, a reserved kind, an
        # optional entry, damage): the loop says what it is.
        parse_entries(raw, last_next, n, out)


def _store(raw: bytes, slots: np.ndarray, heads: np.ndarray, out: Metadata) -> None:
    """Decode and store the entries at ``heads`` (each a name or a thread head)."""
    kinds = slots["kind"][heads]
    threads = heads[kinds == F.META_THREAD]
    names = heads[kinds == F.META_NAME]
    for h in threads.tolist():
        length = int(slots["len"][h])
        start = (h + 1) * F.SLOT_SIZE
        out.threads[int(slots["id"][h])] = (
            int(slots["extra"][h]),
            decode_payload(raw[start : start + length]),
        )
    if names.size:
        out.add_names(slots["id"][names].astype(np.int64), _decode_all(raw, slots, names))


def _decode_all(raw: bytes, slots: np.ndarray, heads: np.ndarray) -> Names | list[str]:
    """The payloads of ``heads`` as text, decoded together when that is provably the same
    as decoding each (else one by one); decoded together, they stay one packed text
    (``Names``), never a ``str`` per name."""
    lengths = slots["len"][heads].astype(np.int64)
    starts = (heads.astype(np.int64) + 1) * F.SLOT_SIZE
    data = np.frombuffer(raw, np.uint8)
    nonempty = lengths > 0
    # The payload bytes, back to back: mark where each payload starts and ends, and keep
    # the bytes in between (a payload never starts where another ends: heads lie between).
    edges = np.zeros(data.size + 1, np.int8)
    edges[starts[nonempty]] = 1
    edges[starts[nonempty] + lengths[nonempty]] = -1
    inside = np.cumsum(edges[:-1], dtype=np.int8).view(np.bool_)
    joined = data[inside]
    ends = np.cumsum(lengths)
    if joined.size == 0 or int(joined.max()) < 0x80:
        text = joined.tobytes().decode("ascii")
        bounds = np.concatenate(([0], ends))
    else:
        # UTF-8 decoded in one piece splits at the same places as piece by piece only if
        # no payload starts with a continuation byte (then a character cannot straddle two
        # payloads, and a payload cut inside a character is an error either way).
        one_by_one = [(s, s + k) for s, k in zip(starts.tolist(), lengths.tolist())]
        firsts = data[starts[nonempty]]
        if np.any((firsts & 0xC0) == 0x80):
            return [decode_payload(raw[a:b]) for a, b in one_by_one]
        try:
            text = F.decode_text(joined.tobytes())
        except UnicodeDecodeError:
            return [decode_payload(raw[a:b]) for a, b in one_by_one]
        # A character starts at every byte that is not a continuation byte (lone
        # surrogates, encoded in three bytes by surrogatepass, count as one too).
        chars = np.cumsum((joined & 0xC0) != 0x80)
        bounds = np.concatenate(([0], np.where(ends > 0, chars[np.maximum(ends, 1) - 1], 0)))
    return Names.packed(text, bounds)
