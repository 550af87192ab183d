"""vLLM lite-profiler text logs: ``name|elapsed_ns`` lines (see ``docs/FORMAT.md``).

They have no start times, threads, processes or nesting: those columns are unknown, not
invented.

The lines are read as vLLM's own ``summarize_log`` reads them (vLLM
``vllm/utils/lite_profiler/lite_profiler_report.py``; ``bench/vllm_summarize.py`` is a
faithful copy of its logic): lines end at ``\\n``, ``\\r`` or ``\\r\\n``; a line is
stripped of whitespace at both ends, so spaces before the name are not part of it (those
between the name and the ``|`` are); blank lines are ignored; the value is an integer with
optional spaces around it. Where liteprof differs: it splits at the *last* ``|`` (a name
may hold one), and it skips and counts what vLLM would crash on or take as a time: a line
with a NUL byte (the zeros a crash leaves), a name that is not UTF-8, a negative value, or
one of 2**63 or more.

A chunk whose every line is blank or ``name|digits`` (1 to 18 ASCII digits), with no
``\r`` and no NUL in it (what vLLM writes), is read in one pass by the C loop in
``_ctext.c`` where it is built, one Python step per distinct name of the chunk. Any other
chunk (damage, whitespace around a value, Unicode digits), and every chunk where
``_ctext`` is not built, is read as follows.

Vectorised with numpy, 512 KiB at a time; no Python step per line, except one per distinct
name (per chunk) and for the rare lines the fast paths do not take (a value with ``+``,
``_``, non-ASCII digits or spaces around it beyond what fits in 24 bytes, a name longer
than 4 KiB), which Python's ``int`` and ``str`` decide. The fast paths read a line's
bytes as 64-bit words at any byte offset (an unaligned view of the buffer), so that a
value of up to 16 digits is two word reads and a few integer operations (eight digits
at a time, the arithmetic of simdjson's ``parse_eight_digits_unrolled``), and a name of
up to 8k bytes is k word reads, hashed and then compared word by word.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import LogError

if TYPE_CHECKING:
    from .reader import Builder

_ctext: Any
try:
    from . import _ctext
except ImportError:  # pragma: no cover - exercised by forcing _ctext = None in tests
    _ctext = None

_MAX_TEXT_LOG = 1 << 40  # 1 TiB: refuse anything larger outright
_CHUNK = 1 << 19  # bytes read at a time: small enough for the temporaries to stay in cache
_MAX_LINE = 1 << 20  # a longer line is damage: skipped without being held
_MAX_NAME = 4096  # longer names are grouped one by one in Python
_PAD = _MAX_NAME + 64  # zeros after the data: word reads past a line stay in the buffer
_HASH_ROUNDS = 4  # table rounds before the exact (sorting) fallback; tests lower it

_NL, _CR, _PIPE = 0x0A, 0x0D, 0x7C
# What Python's str.strip() removes that is ASCII (besides the line ends).
_WS = np.zeros(256, np.bool_)
_WS[[0x09, 0x0B, 0x0C, 0x1C, 0x1D, 0x1E, 0x1F, 0x20]] = True
# The bytes of the UTF-8 of every whitespace character str.strip() removes, ASCII
# included (not the line ends): a line of only these may be blank to vLLM.
_WS_UTF8 = _WS.copy()
for _c in range(0x80, 0x3001):
    if chr(_c).isspace():
        _WS_UTF8[list(chr(_c).encode("utf-8"))] = True
del _c
# Bytes no text log holds: control characters that are not whitespace (NUL apart).
_CONTROL = np.zeros(256, np.bool_)
_CONTROL[0x01:0x20] = True
_CONTROL[[0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x1B, 0x1C, 0x1D, 0x1E, 0x1F]] = False
_CONTROL[0x7F] = True
_DIGIT = np.zeros(256, np.bool_)
_DIGIT[0x30:0x3A] = True

_U64 = np.uint64
# The low k bytes of a word, its high k bytes (k = 0..8), and "0" digits in the low k bytes.
_LOW = np.array([(1 << (8 * k)) - 1 for k in range(8)] + [(1 << 64) - 1], dtype=_U64)
_HIGH = np.array(
    [((1 << 64) - 1) ^ ((1 << (8 * (8 - k))) - 1) for k in range(8)] + [(1 << 64) - 1], dtype=_U64
)
_ZEROS = np.array([int.from_bytes(b"0" * k, "little") for k in range(9)], dtype=_U64)
_POW10_8 = _U64(100_000_000)


class _Parsed:
    """One text log's counts so far."""

    def __init__(self) -> None:
        self.skipped = 0
        self.records = 0
        self.good_bytes = 0
        self.clean_bad_lines = 0  # skipped lines without a NUL
        self.control_bytes = 0  # in chunks with skipped lines
        # Whether the first line that is neither blank nor NUL damage is an event (None:
        # no such line yet): a file that opens with one is a text log, damage after it
        # or not.
        self.opened_well: bool | None = None
        self.known = _Known()
        self.first_row = 0
        # For the C loop (``_ctext``): each name's bytes -> its index in ``b.names``.
        self.known_bytes: dict[bytes, int] = {}
        self.ids = np.zeros(0, np.int32)  # its output, reused from chunk to chunk
        self.values = np.zeros(0, np.int64)


def read_text(path: str, b: Builder) -> None:
    """Append the events of the vLLM text log ``path`` to ``b``.

    A file whose first line (blank lines and NUL damage aside) is an event is a text log:
    its damage anywhere after that (a crash's zero-filled tail, NUL runs, torn lines,
    garbage, lines that do not parse) is skipped and counted in ``skipped``, never a
    refusal. Any other file is a ``LogError`` if it has no event but lines that are not
    NUL damage (any text file that is not a log), or more control characters than bytes
    of good lines (a binary file, whatever lines it happens to hold).
    """
    try:
        size = os.path.getsize(path)
        if size > _MAX_TEXT_LOG:
            raise LogError(f"{path}: too large for a text log ({size} bytes)")
        with open(path, "rb", buffering=0) as fh:
            parsed = _parse(fh, size, b)
    except OSError as exc:
        raise LogError(f"cannot read {path}: {exc.strerror}") from None
    for key, const in _TEXT_CONSTANTS:
        b.put(key, parsed.first_row, b.n, const)
    if not_a_text_log(parsed):
        raise LogError(f"{path}: not a liteprof log or a vLLM lite-profiler text log")
    b.text = True
    b.skipped += parsed.skipped


def not_a_text_log(parsed: _Parsed) -> bool:
    """Whether what was parsed so far is no text log (see ``read_text``): it did not open
    with an event, and has more control characters than bytes of good lines, or no event
    but lines that are not NUL damage. The live reader judges a file by the same rule."""
    return not parsed.opened_well and (
        parsed.control_bytes > parsed.good_bytes
        or (parsed.records == 0 and parsed.clean_bad_lines > 0)
    )


def _parse(fh: Any, size: int, b: Builder, out: _Parsed | None = None) -> _Parsed:
    """The lines of ``fh`` (``size`` bytes expected) into ``b``, counted in ``out``: a new
    ``_Parsed``, or the one of earlier calls (the live reader's, which parses each poll's
    new lines with the names and counts met so far)."""
    if out is None:
        out = _Parsed()
    first_row = out.first_row = b.n
    raw = bytearray(_CHUNK + _MAX_LINE + _PAD)  # bytearray: its count() finds bytes fast
    buf = np.frombuffer(raw, np.uint8)
    # Every 8 bytes from every offset (an unaligned view): ``_word`` reads them as words.
    # As void items: numpy copies those twice as fast as unaligned integers.
    words = np.ndarray((buf.shape[0] - 7,), dtype="V8", buffer=raw, strides=(1,))
    carry = 0  # bytes of an unfinished line kept at the front of the buffer
    skipping = False  # inside a line longer than _MAX_LINE: drop everything up to its end
    total = 0
    while True:
        got = fh.readinto(memoryview(raw)[carry : carry + _CHUNK]) or 0
        total += got
        end = carry + got
        if skipping:
            stop = _first_line_end(raw, end)
            if stop < 0:
                carry = 0
                if got == 0:
                    break
                continue
            skipping = False
            raw[: end - stop - 1] = raw[stop + 1 : end]
            end -= stop + 1
        cut = end if got == 0 else max(raw.rfind(b"\n", 0, end), raw.rfind(b"\r", 0, end)) + 1
        if cut:
            # Word reads run up to _PAD bytes past a line's start: still inside the
            # buffer, and what lies past the line's end is masked off.
            _parse_lines(raw, buf, words, cut, out, b, first_row, size, total)
        if got == 0:
            break
        rest = end - cut
        if rest > _MAX_LINE:
            out.skipped += 1
            out.control_bytes += int(np.count_nonzero(_CONTROL[buf[cut:end]]))
            if raw.find(b"\0", cut, end) < 0:
                out.clean_bad_lines += 1
                if out.opened_well is None:
                    out.opened_well = False
            skipping, carry = True, 0
            continue
        raw[:rest] = raw[cut:end]  # the unfinished line moves to the front
        carry = rest
    return out


def _first_line_end(raw: bytearray, end: int) -> int:
    ends = [i for i in (raw.find(b"\n", 0, end), raw.find(b"\r", 0, end)) if i >= 0]
    return min(ends) if ends else -1


def _parse_lines(
    raw: bytearray,
    buf: np.ndarray,
    words: np.ndarray,
    n: int,
    out: _Parsed,
    b: Builder,
    first_row: int,
    size: int,
    total: int,
) -> None:
    """Parse the whole lines in ``buf[:n]`` (zeros after them) into ``b``."""
    data = buf[:n]
    has_cr = raw.find(b"\r", 0, n) >= 0  # find: memchr, much faster than count
    has_nul = raw.find(b"\0", 0, n) >= 0
    if _ctext is not None and not has_cr and not has_nul:
        if _parse_lines_c(raw, n, out, b, first_row, size, total):
            return
    marks = None
    if not has_cr and data[n - 1] == _NL:
        # The usual chunk: "|" and line ends alternate, one "|" per line. One pass finds
        # both; a check of the marks' bytes proves it.
        marks = np.flatnonzero((data == _NL) | (data == _PIPE))
        if not (
            marks.size % 2 == 0
            and bool(np.all(data[marks[0::2]] == _PIPE))
            and bool(np.all(data[marks[1::2]] == _NL))
        ):
            marks = None
    if marks is not None:
        pipe, ends = marks[0::2].copy(), marks[1::2].copy()
        starts = np.empty_like(ends)
        starts[0] = 0
        starts[1:] = ends[:-1] + 1
    else:
        ends = np.flatnonzero((data == _NL) | (data == _CR) if has_cr else data == _NL)
        if ends.size == 0 or ends[-1] != n - 1:
            ends = np.append(ends, n)  # the file's last line, without a line end
        starts = np.empty_like(ends)
        starts[0] = 0
        starts[1:] = ends[:-1] + 1
        empty = ends == starts  # blank: "\n\n", and "\r\n" leaves an empty line between
        if empty.any():
            starts, ends = starts[~empty], ends[~empty]
            if ends.size == 0:
                return
        # The last "|" of each line.
        pipes = np.flatnonzero(data == _PIPE)
        at = np.searchsorted(pipes, ends) - 1
        pipe = pipes[np.maximum(at, 0)] if pipes.size else np.zeros_like(ends)
        pipe = np.where((at >= 0) & (pipe >= starts), pipe, -1)
    # Lines with a NUL byte (a crash's zeros over part of the file) are damage.
    n_nul = 0
    nul_line = np.zeros(ends.shape[0], np.bool_)
    if has_nul:
        n_nul = raw.count(b"\0", 0, n)
        nul = data == 0
        runs = np.flatnonzero(nul[1:] & ~nul[:-1]) + 1
        if nul[0]:
            runs = np.append(0, runs)
        nul_line[np.searchsorted(ends, runs)] = True
    # Lines without "|": blank (only whitespace) ones are ignored, others are damage.
    no_pipe = np.flatnonzero(pipe < 0)
    if no_pipe.size:
        nonblank = np.cumsum(~_WS[data], dtype=np.int32)  # NUL is not whitespace
        lo, hi = starts[no_pipe], ends[no_pipe]
        before = np.where(lo > 0, nonblank[np.maximum(lo - 1, 0)], 0)
        is_blank = nonblank[hi - 1] == before
        del nonblank
        # Unicode whitespace ("\u3000", "\xa0") is whitespace to str.strip too: lines of
        # nothing but bytes that such characters are made of, decoded one by one.
        maybe = np.flatnonzero(~is_blank)
        if maybe.size:
            odd = np.cumsum(~_WS_UTF8[data], dtype=np.int32)
            odd_before = np.where(lo[maybe] > 0, odd[np.maximum(lo[maybe] - 1, 0)], 0)
            for i in maybe[odd[hi[maybe] - 1] == odd_before].tolist():
                try:
                    is_blank[i] = not raw[lo[i] : hi[i]].decode("utf-8").strip()
                except UnicodeDecodeError:
                    pass
        blank = no_pipe[is_blank]
        if blank.size:
            keep = np.ones(ends.shape[0], np.bool_)
            keep[blank] = False
            starts, ends, pipe, nul_line = starts[keep], ends[keep], pipe[keep], nul_line[keep]

    cand = np.flatnonzero((pipe >= 0) & ~nul_line) if (n_nul or no_pipe.size) else None
    if cand is None:  # the usual chunk: every line has a "|" and no NUL
        v_lo, v_hi, n_lo = pipe + 1, ends, starts
    else:
        v_lo, v_hi, n_lo = pipe[cand] + 1, ends[cand], starts[cand]
    value, ok = _values(buf, words, v_lo, v_hi)
    ids, ok_names = _name_ids(raw, words, n_lo, v_lo - 1, ok, b, out.known)
    ok &= ok_names
    taken = np.flatnonzero(ok)
    if cand is not None:
        taken = cand[taken]
        value, ids = value[ok], ids[ok]
    elif taken.size != ok.size:
        value, ids = value[ok], ids[ok]

    # Evidence that the file is not a text log at all (see ``read_text``): skipped lines
    # with no NUL in them (NULs are a crash's damage), and control characters, which no
    # text log holds and any binary file is full of.
    length = ends - starts
    n_taken = int(taken.size)
    out.good_bytes += int(length[taken].sum()) if n_taken != length.size else int(length.sum())
    out.skipped += int(length.size) - n_taken
    out.records += n_taken
    if n_taken != length.size:
        skipped = np.ones(length.size, np.bool_)
        skipped[taken] = False
        clean_bad = skipped & ~nul_line
        out.clean_bad_lines += int(np.count_nonzero(clean_bad))
        out.control_bytes += int(np.count_nonzero(_CONTROL[data]))
        if out.opened_well is None and (n_taken or clean_bad.any()):
            # Which comes first: an event or a line that is neither one nor NUL damage.
            first_bad = int(np.argmax(clean_bad)) if clean_bad.any() else length.size
            out.opened_well = bool(n_taken) and int(taken[0]) < first_bad
    elif n_taken and out.opened_well is None:
        out.opened_well = True

    _append(b, ids, value, first_row, size, total)


def _append(
    b: Builder, ids: np.ndarray, value: np.ndarray, first_row: int, size: int, total: int
) -> None:
    """Rows of names ``ids`` and durations ``value`` (self time: the duration) into ``b``."""
    n_taken = int(ids.shape[0])
    if n_taken:
        if b.n + n_taken > b.cap:
            # Reserve for the whole file at the rate seen so far (and room for this chunk).
            rate = (b.n - first_row + n_taken) / max(total, 1)
            b.reserve(int(rate * max(size - total, 0) * 1.1) + 2 * n_taken)
        lo_row, hi_row = b.n, b.n + n_taken
        b.put("name", lo_row, hi_row, ids)
        b.put("dur", lo_row, hi_row, value)
        b.put_self_equal_dur(lo_row, hi_row)
        b.n = hi_row


_C_MAX_NAMES = 4096
"""Distinct names per chunk the C loop takes (one Python step each); a chunk of more
(a log of ever new names) is numpy's, whose name matching is vectorised."""


def _parse_lines_c(
    raw: bytearray, n: int, out: _Parsed, b: Builder, first_row: int, size: int, total: int
) -> bool:
    """``_parse_lines`` by the C loop, for a chunk (no ``\r``, no NUL) whose every line is
    blank or ``name|digits``; whether it took the chunk (else nothing changed)."""
    assert _ctext is not None
    room = n // 2 + 2  # a line read holds at least "|0" and a line end (the last: none)
    if out.ids.shape[0] < room:
        out.ids = np.empty(room, np.int32)
        out.values = np.empty(room, np.int64)
    got = _ctext.lines(raw, n, out.ids, out.values, _C_MAX_NAMES)
    if got is None:
        return False
    count, line_bytes, names = got
    known = out.known_bytes
    gids = []
    for name in names:  # a step per distinct name of the chunk, not per line
        gid = known.get(name)
        if gid is None:
            gid = _intern(name, b)
            if gid < 0:
                return False  # a name that is not UTF-8: damage, which numpy counts
            known[name] = gid
        gids.append(gid)
    ids = np.array(gids, np.int32)[out.ids[:count]] if count else out.ids[:0]
    out.good_bytes += line_bytes
    out.records += count
    if count and out.opened_well is None:
        out.opened_well = True
    _append(b, ids, out.values[:count], first_row, size, total)
    return True


# Events of text logs: no start, process, thread or nesting (see ``events.Events``).
_TEXT_CONSTANTS = (
    ("start", 0),
    ("depth", 0),
    ("error", False),
    ("proc", -1),
    ("thread", -1),
    ("lane", 0),
    ("parent", -1),
)


def _word(words: np.ndarray, at: np.ndarray) -> np.ndarray:
    """The little-endian 64-bit words at byte offsets ``at`` of the buffer."""
    return words[at].view("<u8")  # type: ignore[no-any-return]


def _eight_digits(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Words of 8 ASCII characters (the first in the low byte): whether each is all digits,
    and the number they spell (simdjson's parse_eight_digits_unrolled)."""
    ok = (
        (w & _U64(0xF0F0F0F0F0F0F0F0))
        | (((w + _U64(0x0606060606060606)) & _U64(0xF0F0F0F0F0F0F0F0)) >> _U64(4))
    ) == _U64(0x3333333333333333)
    v = w - _U64(0x3030303030303030)
    v = v * _U64(10) + (v >> _U64(8))
    mask = _U64(0x000000FF000000FF)
    v = (
        (v & mask) * _U64(0x000F424000000064) + ((v >> _U64(16)) & mask) * _U64(0x0000271000000001)
    ) >> _U64(32)
    return ok, v


def _values(
    buf: np.ndarray, words: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The integer in each ``buf[lo:hi]``, and whether there is one (``int()``'s reading,
    kept to ``[0, 2**63)``). 1 to 16 digits and nothing else: the two words that end at
    the line's end, their bytes before the value made "0" digits; spaces around the
    digits: a byte-wise pass over those lines; anything else: Python."""
    length = hi - lo
    if length.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.bool_)
    low_n = np.minimum(length, 8)
    low = _word(words, np.maximum(hi - 8, 0))
    low = (low & _HIGH[low_n]) | _ZEROS[8 - low_n]
    ok, value = _eight_digits(low)
    if int(length.max()) > 8:
        high_n = np.clip(length - 8, 0, 8)  # 0: an all-"0" word, adding nothing
        high = _word(words, np.maximum(hi - 16, 0))
        high = (high & _HIGH[high_n]) | _ZEROS[8 - high_n]
        high_ok, high_value = _eight_digits(high)
        ok &= high_ok
        value += high_value * _POW10_8
    ok &= (length >= 1) & (length <= 16) & (hi >= 16)  # hi < 16: a word would start before 0
    value = value.view(np.int64)
    if not ok.all():
        rare = np.flatnonzero(~ok)
        value[rare], ok[rare] = _values_spaced(buf, lo[rare], hi[rare])
        if not ok.all():
            rare = np.flatnonzero(~ok)
            value[rare], ok[rare] = _values_slowly(buf, lo[rare], hi[rare])
    return value, ok


_SPACED_WIDTH = 24  # spaces around up to 18 digits


def _values_spaced(
    buf: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Values of up to 18 ASCII digits with ASCII whitespace around them."""
    n = lo.shape[0]
    width = _SPACED_WIDTH
    rows = buf[lo[:, None] + np.arange(width)]
    inside = np.arange(width) < (hi - lo)[:, None]
    digit = _DIGIT[rows] & inside
    ok = (digit | _WS[rows] | ~inside).all(axis=1) & ((hi - lo) <= width)
    count = digit.sum(axis=1)
    first = np.argmax(digit, axis=1)
    last = width - 1 - np.argmax(digit[:, ::-1], axis=1)
    ok &= (count > 0) & (count <= 18) & (last - first + 1 == count)
    value = np.zeros(n, np.int64)
    for j in range(width):  # Horner, column by column
        value = np.where(digit[:, j], value * 10 + (rows[:, j].astype(np.int64) - 0x30), value)
    return value, ok


def _values_slowly(
    buf: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """As vLLM reads a value (``int()`` of the text), for the fields no fast path takes."""
    value = np.zeros(lo.shape[0], np.int64)
    ok = np.zeros(lo.shape[0], np.bool_)
    for i, (a, z) in enumerate(zip(lo.tolist(), hi.tolist())):
        if z - a > 256:
            continue
        try:
            v = int(buf[a:z].tobytes().decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            continue
        if 0 <= v < 1 << 63:
            value[i], ok[i] = v, True
    return value, ok


_MAX_WORDS = 32  # names up to 256 bytes are matched word by word; longer ones one by one
_C0, _C1, _C2 = _U64(0x9E3779B97F4A7C15), _U64(0xBF58476D1CE4E5B9), _U64(0x94D049BB133111EB)


def _words_of(words: np.ndarray, lo: np.ndarray, length: np.ndarray, k: int) -> list[np.ndarray]:
    """Names ``[lo, lo + length)`` (each at most ``8 * k`` bytes) as ``k`` columns of words.

    Column j is the word at ``min(lo + 8 j, end - 8)``: the words overlap instead of
    running past the name, so two names of the same length are equal exactly when their
    columns are, and the columns past a name's last word repeat its last word. A name
    under 8 bytes is its first word with the bytes after it masked off (names hold no
    NUL), in every column.
    """
    last_at = lo + length - 8
    last = _word(words, np.maximum(last_at, 0))
    cols = [_word(words, lo)] if k > 1 else []
    for j in range(1, k - 1):
        # Most names need fewer words than the longest: read this one where it is needed.
        need = np.flatnonzero(length > 8 * (j + 1))
        col = last.copy()
        col[need] = _word(words, lo[need] + 8 * j)
        cols.append(col)
    cols.append(last)
    short = np.flatnonzero(length < 8)
    if short.size:
        first = _word(words, lo[short]) & _LOW[length[short]]
        for col in cols:
            col[short] = first
    return cols


def _hash(length: np.ndarray, first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """A name's hash: its length, first word and last word (equal names, equal hashes)."""
    return length.astype(_U64) * _C0 ^ first * _C1 ^ last * _C2


class _Known:
    """The distinct names of one text log so far, as words, in a hash table: most lines of
    a chunk are matched against these small arrays (no table to fill per chunk)."""

    def __init__(self) -> None:
        self.length = np.full(1, -1, np.int64)  # row 0 is a sentinel no line matches
        self.cols = [np.zeros(1, _U64) for _ in range(_MAX_WORDS)]
        self.gid = np.full(1, -1, np.int32)
        self.bits = 10
        self.table = np.zeros(1 << self.bits, np.intp)

    def add(self, length: np.ndarray, cols: list[np.ndarray], gid: np.ndarray) -> None:
        self.length = np.concatenate((self.length, length))
        full = cols + [cols[-1]] * (_MAX_WORDS - len(cols))  # past the last word: the last
        self.cols = [np.concatenate((mine, new)) for mine, new in zip(self.cols, full)]
        self.gid = np.concatenate((self.gid, gid))
        while (1 << self.bits) < 4 * self.length.size:
            self.bits += 2
        h = _hash(self.length[1:], self.cols[0][1:], self.cols[-1][1:])
        self.table = np.zeros(1 << self.bits, np.intp)
        self.table[(h >> _U64(64 - self.bits)).astype(np.intp)] = np.arange(1, self.length.size)

    def match(self, length: np.ndarray, cols: list[np.ndarray], h: np.ndarray) -> np.ndarray:
        """The row of each name among the known ones; 0 for none."""
        row = self.table[(h >> _U64(64 - self.bits)).astype(np.intp)]
        same = self.length[row] == length
        for j, col in enumerate(cols[:-1]):
            same &= self.cols[j][row] == col
        same &= self.cols[-1][row] == cols[-1]
        return np.where(same, row, 0)


def _name_ids(
    raw: bytearray,
    words: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    wanted: np.ndarray,
    b: Builder,
    known: _Known,
) -> tuple[np.ndarray, np.ndarray]:
    """Each name ``raw[lo:hi]`` (where ``wanted``) as an index into ``b.names``, and
    whether it is one (a name that is not UTF-8 is damage).

    Without a Python step per line: the names are laid out as columns of words, matched
    against the distinct names met so far, and the rest grouped by hashing (``_group``);
    then one Python step per new distinct name decodes it, strips the whitespace before
    it (``str.lstrip``, Unicode included, as vLLM's ``line.strip()`` does) and interns it.
    """
    n = lo.shape[0]
    ids = np.full(n, -1, np.int32)
    length = hi - lo
    todo = np.flatnonzero(wanted) if not wanted.all() else None
    sel_len = length if todo is None else length[todo]
    if sel_len.size == 0:
        return ids, ids >= 0
    longest = int(sel_len.max())
    if longest > 8 * _MAX_WORDS:  # names over 256 bytes: rare enough for a step each
        idx = np.arange(n) if todo is None else todo
        long = idx[sel_len > 8 * _MAX_WORDS]
        names: dict[bytes, int] = {}
        for i in long.tolist():
            key = bytes(raw[lo[i] : hi[i]])
            if key not in names:
                names[key] = _intern(key, b)
            ids[i] = names[key]
        todo = idx[sel_len <= 8 * _MAX_WORDS]
        sel_len = length[todo]
        if todo.size == 0:
            return ids, ids >= 0
        longest = int(sel_len.max())
    sel_lo = lo if todo is None else lo[todo]
    k = max(1, -(-longest // 8))
    cols = _words_of(words, sel_lo, sel_len, k)
    h = _hash(sel_len, cols[0], cols[-1])
    row = known.match(sel_len, cols, h)
    new = np.flatnonzero(row == 0)
    if new.size:
        sub = [c[new] for c in cols]
        rep, distinct = _group(sub, h[new])
        gid = np.array(
            [
                _intern(bytes(raw[s : s + m]), b)
                for s, m in zip(sel_lo[new][distinct].tolist(), sel_len[new][distinct].tolist())
            ],
            np.int32,
        )
        first_new = known.length.size
        known.add(sel_len[new][distinct], [c[distinct] for c in sub], gid)
        local = np.empty(new.size, np.intp)
        local[distinct] = np.arange(distinct.size)
        row[new] = first_new + local[rep]
    found = known.gid[row]
    if todo is None:
        ids[:] = found
    else:
        ids[todo] = found
    return ids, ids >= 0


def _group(cols: list[np.ndarray], h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group equal names (rows of word columns, hashes ``h``): for each row, the row that
    stands for its group, and the rows that stand for one (each group's first)."""
    n = h.shape[0]
    rep = np.full(n, -1, np.int64)
    todo = np.arange(n)
    for round_ in range(_HASH_ROUNDS):
        bits = max(10, int(2 * todo.size - 1).bit_length())
        shift = _U64(64 - bits - 5 * round_)
        hh = h[todo]
        slot = ((hh >> shift) & _U64((1 << bits) - 1)).astype(np.intp)
        table = np.empty(1 << bits, np.int64)
        table[slot] = todo  # one row wins each slot
        winner = table[slot]
        same = hh == h[winner]
        for col in cols:
            same &= col[todo] == col[winner]
        rep[todo[same]] = winner[same]
        todo = todo[~same]
        if todo.size == 0:
            break
    if todo.size:
        # Rows whose hashes keep colliding (forged): sort them, exactly.
        rows = np.ascontiguousarray(np.stack([c[todo] for c in cols], axis=1))
        view = rows.view(np.dtype((np.void, 8 * len(cols)))).ravel()
        _, first, inverse = np.unique(view, return_index=True, return_inverse=True)
        rep[todo] = todo[first][inverse.ravel()]
    # Make each group's representative its first row, so that names intern in file order.
    first_of = np.full(n, n, np.int64)
    np.minimum.at(first_of, rep, np.arange(n))
    rep = first_of[rep]
    return rep, np.flatnonzero(rep == np.arange(n))


def _intern(raw: bytes, b: Builder) -> int:
    """The index of name ``raw`` in ``b.names``; -1 for bytes that are not UTF-8."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return -1
    return b.intern(text.lstrip())
