"""The binary reader: the extension rule, parents, live reads and the files around logs.

Most logs here are forged byte by byte (``forge.py``) so that each case is exactly what
the test says; parents are checked against an oracle that applies ``docs/FORMAT.md``'s
definition event by event. Recorded logs check the same against both recorders.
"""

from __future__ import annotations

import json
import os
import random
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from liteprof.log import reader as reader_mod
from liteprof.log.errors import LogError
from liteprof.log.events import Events
from liteprof.log.reader import read_logs

from . import forge
from .faultkit import check_reader_outcome, run_reader
from .forge import Forge, event, lane, name_entry, reader_loops, slot_of_kind, thread_entry
from .helpers import cli, log_files

WALL = 1_700_000_000_000_000_000  # the forged logs' wall-clock anchor (mono_ns is 0)

# Every test here runs with the reader's C loops and with their numpy stand-ins.
pytestmark = pytest.mark.usefixtures("reader_loops")
assert reader_loops  # the fixture, imported for pytest to find


def _read(path: str) -> Events:
    return read_logs([path])


def _names(ev: Events) -> list[str]:
    return [ev.names[i] for i in ev.name.tolist()]


def _basic(f: Forge, n: int = 3) -> Forge:
    """Metadata for names 0-2 and thread 0, then a thread block of ``n`` flat events."""
    f.metadata(name_entry(0, "A"), name_entry(1, "B"), name_entry(2, "C"), thread_entry(0, 7, "T"))
    return f.thread(0, *(event(100 * i, 10, i % 3) for i in range(n)))


# -- the extension rule (docs/FORMAT.md, "Extensions") -------------------------------------


@pytest.mark.parametrize("version", [3, 4, 1000, 0xFFFFFFFF])
def test_a_newer_version_is_refused_with_a_message_that_names_it(
    tmp_path: Any, version: int
) -> None:
    path = _basic(Forge(version=version)).write(str(tmp_path / "new.lpf"))
    with pytest.raises(LogError, match=rf"version {version}\b.*reads versions 1 and 2"):
        _read(path)
    proc = run_reader(path)
    assert check_reader_outcome(proc) is None
    assert f"version {version}" in proc.stderr


def test_version_1_logs_read_with_every_event_in_lane_0(tmp_path: Any) -> None:
    ev = _read(_basic(Forge(version=1), 5).write(str(tmp_path / "v1.lpf")))
    assert ev.records == 5 and ev.skipped == 0
    assert ev.lane.tolist() == [0] * 5
    assert ev.start.tolist() == [WALL + 100 * i for i in range(5)]


@pytest.mark.parametrize("owner", [0xFFFFFF00, 0xFFFFFF01, 0xFFFFFF80, 0xFFFFFFFD, 0xFFFFFFFE])
def test_blocks_of_reserved_owners_are_skipped_whole_without_counting(
    tmp_path: Any, owner: int
) -> None:
    f = _basic(Forge(), 4)
    # What a newer writer might put in such a block: anything, also slots that look like
    # events of thread 0 and a block header; none of it is read.
    junk = event(5, 5, 0) * 10 + struct.pack("<4sIII16x", b"LPBK", 0, 4096, 9) + b"\xff" * 64
    f.block(owner, junk, size=8192)
    f.thread(0, event(10_000, 1, 1), event(10_100, 1, 2))
    ev = _read(f.write(str(tmp_path / "reserved.lpf")))
    assert (ev.records, ev.skipped) == (6, 0)
    assert _names(ev) == ["A", "B", "C", "A", "B", "C"]


def test_reserved_slot_kinds_count_as_skipped_optional_ones_are_ignored(tmp_path: Any) -> None:
    f = Forge().metadata(name_entry(0, "A"), thread_entry(0, 7, "T"))
    slots = [event(0, 1, 0)]
    for kind in (3, 4, 64, 127):
        slots += [slot_of_kind(kind), event(len(slots) * 10, 1, 0)]
    for kind in (128, 129, 200, 255):
        slots += [slot_of_kind(kind), event(len(slots) * 10, 1, 0)]
    f.thread(0, *slots)
    ev = _read(f.write(str(tmp_path / "kinds.lpf")))
    assert (ev.records, ev.skipped) == (9, 4)


def test_reserved_flag_bits_are_ignored(tmp_path: Any) -> None:
    f = Forge().metadata(name_entry(0, "A"), name_entry(1, "B"), thread_entry(0, 7, "T"))
    f.thread(
        0,
        event(10, 5, 0, depth=1, error=True, extra_flags=0xFE00),
        event(0, 100, 1, child=5, extra_flags=0x0200),
    )
    ev = _read(f.write(str(tmp_path / "flags.lpf")))
    assert (ev.records, ev.skipped) == (2, 0)
    assert ev.depth.tolist() == [1, 0] and ev.error.tolist() == [True, False]
    assert ev.parent.tolist() == [1, -1] and ev.self_ns.tolist() == [5, 95]


def _many_names(count: int, first_id: int = 100) -> list[bytes]:
    return [name_entry(first_id + i, f"filler-{i}") for i in range(count)]


# "large": more than 4096 entry slots, the vectorised metadata parser's size.
@pytest.mark.parametrize("size", ["small", "large"])
@pytest.mark.parametrize("kind", [128, 129, 255, 0x1234, 0xFFFFFFFF])
def test_optional_metadata_kinds_are_stepped_over(tmp_path: Any, size: str, kind: int) -> None:
    filler = _many_names(2100) if size == "large" else []
    f = Forge().metadata(
        name_entry(0, "A"),
        *filler[: len(filler) // 2],
        # An optional entry whose payload looks like entries and block headers.
        forge.entry(kind, 77, name_entry(1, "forged") + b"LPBK" * 9),
        name_entry(1, "B"),
        *filler[len(filler) // 2 :],
        thread_entry(0, 7, "T"),
    )
    f.thread(0, event(0, 1, 0), event(10, 1, 1))
    ev = _read(f.write(str(tmp_path / "optional.lpf")))
    assert (ev.records, ev.skipped) == (2, 0)
    assert _names(ev) == ["A", "B"]
    assert ev.threads[0]["name"] == "T"


@pytest.mark.parametrize("size", ["small", "large"])
@pytest.mark.parametrize("kind", [3, 4, 100, 127])
def test_reserved_metadata_kinds_are_skipped_and_end_the_block(
    tmp_path: Any, size: str, kind: int
) -> None:
    filler = _many_names(2100) if size == "large" else []
    f = Forge().metadata(
        name_entry(0, "A"),
        thread_entry(0, 7, "T"),
        *filler,
        forge.entry(kind, 1, b"whatever"),
        name_entry(1, "B"),  # after the reserved entry: never read
    )
    f.metadata(name_entry(2, "C"))  # another block: read
    f.thread(0, event(0, 1, 0), event(10, 1, 1), event(20, 1, 2))
    ev = _read(f.write(str(tmp_path / "reserved-meta.lpf")))
    # The entry itself, and the event whose name it cut off.
    assert (ev.records, ev.skipped) == (2, 2)
    assert _names(ev) == ["A", "C"]


@pytest.mark.parametrize("size", ["small", "large"])
def test_a_payload_running_past_its_metadata_block_is_skipped(tmp_path: Any, size: str) -> None:
    filler = _many_names(2100) if size == "large" else []
    body = b"".join([name_entry(0, "A"), thread_entry(0, 7, "T"), *filler])
    block_size = -(-(len(body) + 64) // 4096) * 4096
    room = block_size - 32 - len(body) - 32  # payload bytes that still fit
    head = struct.pack("<IIIIQ8x", 1, 1, room + 1, 0, 0)  # one byte too many
    f = Forge().metadata(body + head + b"x" * room, size=block_size)
    f.thread(0, event(0, 1, 0), event(10, 1, 1))
    ev = _read(f.write(str(tmp_path / "overrun.lpf")))
    assert (ev.records, ev.skipped) == (1, 2)


@pytest.mark.parametrize(
    "names",
    [
        ["Step:Model", "", "x" * 33, "y" * 64, "z" * 65],  # ASCII, lengths around a slot
        ["ü✓", "a\udcff", "日本語" * 20, "", "\U0001f600", "plain"],  # non-ASCII, surrogates
        ["\x01\x00\x00\x00 looks like a head", "\x02\x00\x00\x00 too", "B"],  # defeats guessing
    ],
)
def test_large_metadata_blocks_parse_like_small_ones(tmp_path: Any, names: list[str]) -> None:
    def log(filler: int) -> Events:
        entries = [name_entry(i, text) for i, text in enumerate(names)]
        f = Forge().metadata(*entries, *_many_names(filler), thread_entry(0, 7, "T"))
        f.thread(0, *(event(10 * i, 1, i) for i in range(len(names))))
        return _read(f.write(str(tmp_path / f"names-{filler}.lpf")))

    small, large = log(0), log(3000)
    assert _names(small) == _names(large) == names
    assert small.skipped == large.skipped == 0


# -- parents --------------------------------------------------------------------------------


def _oracle(data: bytes) -> list[tuple[int, int, int, int]]:
    """Per event (start, dur, name, parent's index or -1), in the reader's row order,
    straight from the format: threads by index, each thread's blocks in file order, lanes
    reset at each block; a parent is the first later event of the same thread and lane
    one level up that contains the event in time (1 us of slack)."""
    pos = forge.HEADER
    # owner -> (start, dur, name, depth, lane) per event
    streams: dict[int, list[tuple[int, int, int, int, int]]] = {}
    while pos + forge.SLOT <= len(data):
        magic, owner, size, _ = struct.unpack_from("<4sIII", data, pos)
        if magic != b"LPBK":
            break
        if owner < 0xFFFFFF00:
            rows = streams.setdefault(owner, [])
            current = 0
            for off in range(pos + forge.SLOT, min(pos + size, len(data)), forge.SLOT):
                start, dur, _child, name, flags = struct.unpack_from("<qqqII", data, off)
                if flags & 0xFF == 2:
                    current = struct.unpack_from("<Q", data, off)[0]
                elif flags & 0xFF == 1:
                    rows.append((start, dur, name, flags >> 16, current))
        pos += size
    out: list[tuple[int, int, int, int]] = []
    for owner in sorted(streams):
        rows, base = streams[owner], len(out)
        parents = [-1] * len(rows)
        later: dict[tuple[int, int], int] = {}  # (lane, depth) -> the next row there
        for i in range(len(rows) - 1, -1, -1):
            start, dur, _name, depth, ln = rows[i]
            j = later.get((ln, depth - 1))
            if j is not None:
                p_start, p_dur = rows[j][0], rows[j][1]
                if p_start <= start + 1000 and p_start + p_dur + 1000 >= start + dur:
                    parents[i] = base + j
            later[(ln, depth)] = i
        out.extend((r[0], r[1], r[2], p) for r, p in zip(rows, parents))
    return out


def _check_parents(path: str) -> Events:
    with open(path, "rb") as fh:
        expected = _oracle(fh.read())
    ev = _read(path)
    got = list(zip((ev.start - WALL).tolist(), ev.dur.tolist(), ev.parent.tolist()))
    assert len(got) == len(expected)
    assert got == [(s, d, p) for s, d, _n, p in expected]
    return ev


def _random_thread(rng: random.Random, count: int, max_depth: int, t0: int = 0) -> list[bytes]:
    """Events of one thread as a recorder closes them: a random tree, post-order."""
    out: list[bytes] = []
    stack: list[list[int]] = []  # [start, name, child time]
    t = t0
    while len(out) < count or stack:
        t += rng.randrange(1, 2000)
        if stack and (
            len(stack) >= max_depth or len(out) + len(stack) >= count or rng.random() < 0.5
        ):
            start, name, child = stack.pop()
            dur = t - start
            out.append(event(start, dur, name, child=child, depth=len(stack)))
            if stack:
                stack[-1][2] += dur
        else:
            stack.append([t, rng.randrange(3), 0])
    return out


def _names_and_threads(*threads: int) -> list[bytes]:
    return [name_entry(0, "A"), name_entry(1, "B"), name_entry(2, "C")] + [
        thread_entry(t, 100 + t, f"T{t}") for t in threads
    ]


@pytest.mark.parametrize("max_depth", [1, 3, 12, 13, 40])  # both sides of the sorting threshold
def test_parents_of_random_trees_match_the_oracle(tmp_path: Any, max_depth: int) -> None:
    rng = random.Random(max_depth)
    f = Forge().metadata(*_names_and_threads(0, 1, 2))
    # Three threads whose blocks interleave in the file; one thread's blocks are full
    # 1 MiB blocks (whole chunks), the others' small ones.
    streams = {t: _random_thread(rng, n, max_depth) for t, n in ((0, 70_000), (1, 3000), (2, 500))}
    sizes = {0: 1 << 20, 1: 4096, 2: 8192}
    while any(streams.values()):
        for t, rows in streams.items():
            take = sizes[t] // 32 - 1
            if rows:
                f.thread(t, *rows[:take], size=sizes[t])
                del rows[:take]
    ev = _check_parents(f.write(str(tmp_path / "tree.lpf")))
    assert ev.records == 73_500 and ev.skipped == 0
    if max_depth > 1:
        assert int(np.count_nonzero(ev.parent >= 0)) > 10_000


def test_a_lost_parent_adopts_no_later_cousins(tmp_path: Any) -> None:
    # B and C ran inside an A that never reached the file; the next A must not adopt them.
    f = Forge().metadata(*_names_and_threads(0))
    f.thread(
        0,
        event(10_000, 5000, 1, depth=1),
        event(20_000, 5000, 2, depth=1),
        event(100_000, 50_000, 1, depth=1),
        event(90_000, 100_000, 0, child=50_000),
    )
    ev = _check_parents(f.write(str(tmp_path / "lost.lpf")))
    assert ev.parent.tolist() == [-1, -1, 3, -1]


def test_interleaved_lanes_find_their_own_parents(tmp_path: Any) -> None:
    # Two tasks on one thread, as asyncio interleaves them; each block starts in lane 0.
    f = Forge().metadata(*_names_and_threads(0))
    f.thread(
        0,
        lane(11),
        event(10, 5, 1, depth=1),  # task 11's child
        lane(22),
        event(12, 5, 2, depth=1),  # task 22's child
        lane(11),
        event(20, 5, 1, depth=1),
        lane(0),
        event(1, 3, 0),  # lane 0, outside any task
    )
    f.thread(
        0,
        lane(22),
        event(5, 40, 0, child=5),  # task 22's outer scope: parent of the B at 12
        lane(11),
        event(8, 40, 0, child=10),  # task 11's outer scope
    )
    ev = _check_parents(f.write(str(tmp_path / "lanes.lpf")))
    assert ev.parent.tolist() == [5, 4, 5, -1, -1, -1]
    assert len(set(ev.lane.tolist())) == 3


def test_a_block_larger_than_a_read_carries_its_lane_across(tmp_path: Any) -> None:
    # A forged 4 MiB block (the writer's are at most 1 MiB): read in pieces, the lane set
    # near the end of one piece holds in the next.
    per_read = (1 << 20) // 32
    f = Forge().metadata(*_names_and_threads(0))
    slots = [event(i, 1, 0) for i in range(per_read - 5)]
    slots += [lane(9)] + [event(10**6 + i, 1, 1) for i in range(10)] + [lane(0), event(10**7, 1, 2)]
    f.thread(0, *slots, size=4 << 20)
    ev = _read(f.write(str(tmp_path / "big.lpf")))
    lanes = ev.lane.tolist()
    assert ev.records == per_read - 5 + 11
    assert lanes[: per_read - 5] == [0] * (per_read - 5)
    assert len(set(lanes[per_read - 5 : -1])) == 1 and lanes[-2] != 0 and lanes[-1] == 0


def test_a_threads_blocks_are_read_in_sequence_order_not_file_order(tmp_path: Any) -> None:
    # A bounded log reuses blocks: a thread's later block may lie earlier in the file.
    # Its sequence number (64 bits: the high word at offset 16) says the order.
    f = Forge().metadata(*_names_and_threads(0))
    f.thread(0, event(300, 10, 2, depth=1), event(290, 30, 1, child=10))  # filled last
    f.thread(0, event(100, 10, 0, depth=1))  # filled first: its parent is in the next
    f.thread(0, event(200, 5, 1, depth=1), event(95, 150, 0, child=15))
    seqs = [(7, 1), (5, 0), (6, 0)]  # (low, high): 2**32 + 7, 5, 6
    data = bytearray(f.data())
    pos = forge.HEADER + len(f.blocks[0])  # after the metadata block
    for block, (low, high) in zip(f.blocks[1:], seqs):
        struct.pack_into("<II", data, pos + 12, low, high)
        pos += len(block)
    path = str(tmp_path / "seq.lpf")
    with open(path, "wb") as fh:
        fh.write(data)
    ev = _read(path)
    assert (ev.start - WALL).tolist() == [100, 200, 95, 300, 290]
    assert ev.parent.tolist() == [2, 2, -1, 4, -1]


@pytest.mark.parametrize("size", ["small", "large"])
def test_two_ids_with_one_name_are_one_scope(tmp_path: Any, size: str) -> None:
    filler = _many_names(2100) if size == "large" else []
    f = Forge().metadata(
        name_entry(0, "A"), *filler, name_entry(1, "B"), name_entry(2, "A"), thread_entry(0, 7, "T")
    )
    f.thread(0, event(0, 1, 0), event(10, 2, 1), event(20, 4, 2))
    ev = _read(f.write(str(tmp_path / "same-name.lpf")))
    assert _names(ev) == ["A", "B", "A"]
    assert ev.name.tolist()[0] == ev.name.tolist()[2]
    assert ev.names.count("A") == 1


@pytest.mark.parametrize("size", ["small", "large"])
def test_an_id_defined_twice_keeps_its_last_entry(tmp_path: Any, size: str) -> None:
    filler = _many_names(2100) if size == "large" else []
    f = Forge().metadata(name_entry(5, "first"), *filler, thread_entry(0, 7, "T"))
    f.metadata(name_entry(5, "second"))
    f.thread(0, event(0, 1, 5))
    ev = _read(f.write(str(tmp_path / "twice.lpf")))
    assert _names(ev) == ["second"]


def test_a_million_names_read_without_a_dict_of_them(tmp_path: Any) -> None:
    # The bulk path keeps (ids, texts) per metadata block; the Metadata.names dict that
    # other readers use is still there, built on first use, equal to the loop's.
    from liteprof.log.scan import Metadata, parse_entries, parse_metadata

    body = b"".join(name_entry(i, f"n{i}") for i in range(20_000))
    bulk, loop = Metadata(), Metadata()
    parse_metadata(body, bulk)
    parse_entries(body, 0, len(body) // 32, loop)
    assert bulk.names == loop.names and len(bulk.names) == 20_000
    ids, texts = bulk.name_table()
    assert texts == [f"n{i}" for i in range(20_000)] and len(ids) == 1


def test_names_read_in_bulk_stay_one_packed_text(tmp_path: Any) -> None:
    # A log of many names: they read as a list of str, but are kept as one text and the
    # offsets of each name (no str object per name until one is read).
    from liteprof.log.events import Names

    texts = [f"g{i % 7}:n{i}" for i in range(6000)] + ["caf\u00e9 \U0001f600", "\udfff"]
    f = Forge().metadata(*(name_entry(i, t) for i, t in enumerate(texts)))
    f.metadata(thread_entry(0, 7, "T"))
    f.thread(0, *(event(i, 1, i) for i in range(len(texts))))
    ev = _read(f.write(str(tmp_path / "many.lpf")))
    assert isinstance(ev.names, Names) and ev.names._more == []
    assert list(ev.names) == texts and ev.names == texts and len(ev.names) == len(texts)
    assert ev.names[-1] == "\udfff" and ev.names[-2] == texts[-2] and ev.names[5] == "g5:n5"
    assert ev.names[5990:] == texts[5990:] and ev.names[::1000] == texts[::1000]
    picked = ev.names.take(np.array([6001, 3, 3, 6000]))
    assert picked == [texts[6001], "g3:n3", "g3:n3", texts[6000]]
    with pytest.raises(IndexError):
        ev.names[len(texts)]


def test_names_mix_packed_and_appended_names() -> None:
    from liteprof.log.events import Names

    texts = [f"n{i}" for i in range(70_000)]  # more than one block of iteration
    names = Names.join([Names(texts[:5]), Names.join([texts[5:60_000]]), texts[60_000:]])
    assert names._more == [] and names == texts
    names.append("late")
    names.extend(["later", ""])
    assert names == [*texts, "late", "later", ""] and names != texts
    assert names[70_000:] == ["late", "later", ""] and names[-3] == "late"
    assert names[69_999:70_001] == ["n69999", "late"]
    assert names.take(np.array([70_001, 0, 69_999])) == ["later", "n0", "n69999"]
    assert names.take(np.array([1, 2])) == ["n1", "n2"] and names.take(np.array([], int)) == []
    assert names.count("n7") == 1 and names.index("late") == 70_000
    # Equal names hash equal on the packed text; repeats are found from those hashes.
    from liteprof.log.reader import _all_different

    packed = Names.join([["", "ab", "ba", "", "abc", "ab"]])
    h = packed.hashes()
    assert h is not None and h[1] == h[5] and h[0] == h[3] and len(set(h.tolist())) == 4
    assert not _all_different(packed) and _all_different(Names.join([["", "ab", "ba", "b"]]))
    assert Names.join([["caf\u00e9"]]).hashes() is None and names.hashes() is None
    # Heads (a name's group): as str.find and a dict numbering them in order would give.
    texts = ["a:b", "c", "a:c", ":x", "::", "b:a:c", "", "c:", "a", "b:z", "ab:"] * 3000

    def expected(names: list[str]) -> tuple[list[int], list[str]]:
        numbers: dict[str, int] = {}
        ids = [
            numbers.setdefault(t[: t.find(":")], len(numbers)) if ":" in t else -1 for t in names
        ]
        return ids, list(numbers)

    for case in (texts, ["x"], [], ["q:"] * 5):
        found = Names.join([case]).heads(":")
        assert found is not None and (found[0].tolist(), found[1]) == expected(case)
    assert Names.join([["\u00e9:x"]]).heads(":") is None and names.heads(":") is None
    adopted = Names()
    adopted.extend(Names.join([["a", "bc"]]))
    assert adopted == ["a", "bc"] and adopted._more == []


# -- live reads (issue 10, item 3) ---------------------------------------------------------

LIVE_WRITER = """
import liteprof, sys, time
liteprof.enable(sys.argv[1] if len(sys.argv) > 1 else None)
print("ready", flush=True)
deadline = time.monotonic() + float({seconds})
i = 0
while time.monotonic() < deadline:
    with liteprof.scope(f"name-{{i}}"):   # a new name for every event
        pass
    i += 1
print(i, flush=True)
"""


@pytest.mark.usefixtures("backend")
def test_a_live_read_never_counts_events_whose_names_came_later(tmp_path: Any) -> None:
    directory = str(tmp_path / "live")
    script = tmp_path / "writer.py"
    script.write_text(LIVE_WRITER.format(seconds=2))
    env = dict(os.environ, LITEPROF_LOG=directory)
    with subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env
    ) as proc:
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
            reads = []
            while proc.poll() is None:
                if log_files(directory):
                    ev = read_logs([directory])
                    reads.append((ev.records, ev.skipped))
            total = int(proc.stdout.read().split()[-1])
        finally:
            proc.kill()
    assert len(reads) >= 3 and max(r for r, _ in reads) > 0
    assert [s for _, s in reads] == [0] * len(reads), reads
    final = read_logs([directory])
    assert (final.records, final.skipped) == (total, 0)


class _TornCopy:
    """A log file whose reads of the slot at ``offset`` give ``torn`` the first time: a
    copy that overtook the writer inside the slot (its flags set, its times not yet)."""

    def __init__(self, fh: Any, offset: int, torn: bytes) -> None:
        self._fh, self._offset, self._torn = fh, offset, torn

    def readinto(self, view: Any) -> int:
        pos = self._fh.tell()
        got = int(self._fh.readinto(view))
        at = self._offset - pos
        if self._torn and 0 <= at and at + 32 <= got:
            memoryview(view).cast("B")[at : at + 32] = self._torn
            self._torn = b""
        return got

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fh, name)

    def __enter__(self) -> _TornCopy:
        return self

    def __exit__(self, *exc: object) -> None:
        self._fh.close()


@pytest.mark.parametrize("empty_after", [0, 3])
def test_a_live_read_reads_a_torn_last_slot_again(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, empty_after: int
) -> None:
    # Seen in a live read of the C core's log: an event (start 0, duration 0, child 0)
    # whose name and flags were copied after the writer stored them, its times before.
    # Counted as a real event at monotonic time 0; the whole-file reader now reads the
    # last written slot of each chunk again, as the tail reader does.
    f = _basic(Forge(), 4)
    if empty_after:
        f.thread(0, *(event(1000 + i, 5, 1) for i in range(2)), *([bytes(32)] * empty_after))
    path = f.write(str(tmp_path / "liteprof-1-00000000000000aa.lpf"))
    whole = read_logs([path])
    with open(path, "rb") as fh:
        data = fh.read()
    last = max(i for i in range(4096, len(data), 32) if data[i + 28] == 1)
    torn = bytes(24) + data[last + 24 : last + 32]
    real_open = reader_mod._open
    monkeypatch.setattr(reader_mod, "_open", lambda p: _TornCopy(real_open(p), last, torn))
    ev = read_logs([path])
    assert (ev.records, ev.skipped) == (whole.records, 0)
    assert sorted(ev.start.tolist()) == sorted(whole.start.tolist())
    assert sorted(ev.dur.tolist()) == sorted(whole.dur.tolist())


class _Stores:
    """A stand-in for a writer's mapping that keeps each store it is given, in order: a
    reader copying the file (``read``) may fall between any two of them, never inside
    one (each is one aligned store of at most 8 bytes, or a store a reader ignores)."""

    def __init__(self, data: bytes) -> None:
        self.data = bytes(data)
        self.stores: list[tuple[int, bytes]] = []

    def __setitem__(self, key: slice, value: bytes) -> None:
        assert isinstance(key, slice) and key.start is not None
        self.stores.append((key.start, bytes(value)))

    def states(self) -> list[bytes]:
        """What a reader may copy: the data before, after each store, and after all."""
        data, out = bytearray(self.data), [self.data]
        for pos, value in self.stores:
            data[pos : pos + len(value)] = value
            out.append(bytes(data))
        return out


def test_a_metadata_head_is_never_seen_half_stored() -> None:
    # Before the fix the writer stored heads with ``struct.pack_into``, which zero-fills
    # the slot and stores the fields front to back: a live read that copied the slot
    # between the kind and the length saw a name of length 0 and then parsed the payload
    # as the next head (one ``skipped``, about once in 600 reads of the live test above).
    from liteprof.log import scan
    from liteprof.log import writer as writer_mod

    first, payload = name_entry(0, "name-0"), b"name-123456"
    block = first + bytes(8 * 32)
    buf = _Stores(block)
    pos = len(first)
    buf[pos + 32 : pos + 32 + len(payload)] = payload  # as the writer does: payload first
    writer_mod.store_meta_head(buf, pos, 1, 1, len(payload), 0)
    seen = []
    for state in buf.states():
        meta = scan.Metadata()
        scan.parse_metadata(state, meta)
        assert meta.skipped == 0 and meta.threads == {}
        seen.append(meta.names)
    assert seen[0] == {0: "name-0"} and seen[-1] == {0: "name-0", 1: "name-123456"}
    assert all(names in (seen[0], seen[-1]) for names in seen), seen


def test_a_block_carved_from_padding_is_never_seen_half_stored() -> None:
    # An arena's next block is carved from its padding: the padding header of the rest is
    # stored first, then the block's header over the old padding header. Every state a
    # reader may copy walks as the old padding or the new block, never as damage (before
    # the fix: a header of size 0, which ended the walk with one ``skipped``).
    import io

    from liteprof.log import format as F
    from liteprof.log import scan
    from liteprof.log import writer as writer_mod

    arena = 4096
    before = bytearray(arena)
    before[:32] = F.BLOCK_HEAD.pack(F.BLOCK_MAGIC, F.PAD_OWNER, arena, 0, 0)
    buf = _Stores(bytes(before))
    buf[256:288] = F.BLOCK_HEAD.pack(F.BLOCK_MAGIC, F.PAD_OWNER, arena - 256, 0, 0)
    writer_mod.store_block_head(buf, 0, 3, 256, (1 << 32) + 5)
    walks = []
    for state in buf.states():
        blocks = scan.scan_blocks(io.BytesIO(bytes(F.HEADER_SIZE) + state), arena // 32)
        assert (blocks.skipped, blocks.stopped, blocks.end) == (0, False, arena // 32)
        walks.append((blocks.segments, blocks.seqs))
    assert walks[0] == ([], []) and walks[-1] == ([(1, 8, 3)], [(1 << 32) + 5])
    assert all(walk in (walks[0], walks[-1]) for walk in walks), walks


# -- the files around logs (issue 10, items 8 and 12) --------------------------------------


def _good_log(directory: str, count: int = 5) -> str:
    os.makedirs(directory, exist_ok=True)
    return _basic(Forge(), count).write(os.path.join(directory, "liteprof-1-00000000000000aa.lpf"))


@pytest.mark.parametrize(
    "content", [bytes(4096), b"", bytes(100), b"LITEPROF"[:5], b"LITE" + bytes(4092)]
)
def test_a_log_whose_header_was_never_written_counts_as_skipped(
    tmp_path: Any, content: bytes
) -> None:
    directory = str(tmp_path / "logs")
    _good_log(directory)
    with open(os.path.join(directory, "liteprof-2-00000000000000bb.lpf"), "wb") as fh:
        fh.write(content)
    ev = read_logs([directory])
    assert (ev.records, ev.skipped) == (5, 1)
    assert ev.wall_ns is not None  # not taken for a text log
    proc = cli("report", directory, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert (json.loads(proc.stdout)["records"], json.loads(proc.stdout)["skipped"]) == (5, 1)


def test_the_same_file_named_twice_is_read_once(tmp_path: Any) -> None:
    directory = str(tmp_path / "logs")
    path = _good_log(directory)
    os.link(path, str(tmp_path / "hardlink.lpf"))
    os.symlink(path, str(tmp_path / "symlink.lpf"))
    for paths in (
        [directory, path],
        [path, path],
        [directory, directory],
        [path, str(tmp_path / "hardlink.lpf"), str(tmp_path / "symlink.lpf")],
        [directory, os.path.join(directory, ".", os.path.basename(path))],
    ):
        ev = read_logs(paths)
        assert ev.records == 5 and len(ev.processes) == 1, paths
    proc = cli("report", directory, path, "--format", "json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["records"] == 5


def _as_another_user(fn: Callable[[], str]) -> str:
    """``fn()``'s result, run without the power to ignore file permissions: in a forked
    child that drops to ``nobody`` when this process is root (imports are done first)."""
    if os.geteuid() != 0:
        return fn()
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            result = fn()
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            result = f"child failed: {type(exc).__name__}: {exc}"
        os.write(wfd, result.encode())
        os._exit(0)
    os.close(wfd)
    chunks = []
    while chunk := os.read(rfd, 65536):
        chunks.append(chunk)
    os.close(rfd)
    os.waitpid(pid, 0)
    return b"".join(chunks).decode()


def test_a_file_in_an_unreadable_directory_says_permission_denied(tmp_path: Any) -> None:
    import tempfile

    # Under /tmp itself: the test's own directory is private to this user.
    outer = tempfile.mkdtemp(prefix="liteprof-perm-", dir="/tmp")
    try:
        os.chmod(outer, 0o755)
        locked = os.path.join(outer, "locked")
        path = _good_log(locked)
        os.chmod(locked, 0o600)  # no search permission: the file cannot even be looked at

        def attempt(p: str) -> Callable[[], str]:
            def run() -> str:
                try:
                    read_logs([p])
                except LogError as exc:
                    return str(exc)
                return "read"

            return run

        assert _as_another_user(attempt(path)) == f"cannot read {path}: permission denied"
        assert _as_another_user(attempt(locked)) == (
            f"cannot read directory {locked}: permission denied"
        )
        missing = os.path.join(outer, "nothing-here.lpf")
        assert _as_another_user(attempt(missing)) == f"no such file or directory: {missing}"
    finally:
        os.chmod(os.path.join(outer, "locked"), 0o755)
        import shutil

        shutil.rmtree(outer)


def test_a_huge_sparse_zero_tail_costs_nothing(tmp_path: Any) -> None:
    path = _good_log(str(tmp_path / "logs"), 50)
    os.truncate(path, 64 << 30)  # 64 GiB, almost all of it a hole
    start = time.monotonic()
    proc = run_reader(path)  # under a 1 GiB address-space limit
    report = check_reader_outcome(proc)
    assert report is not None, proc.stderr
    assert (report["records"], report["skipped"]) == (50, 0)
    assert time.monotonic() - start < 60


def test_reader_reserves_by_what_blocks_hold_not_by_file_size(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _good_log(str(tmp_path / "logs"), 50)
    os.truncate(path, 1 << 40)  # 1 TiB apparent size
    reserved: list[int] = []
    original = reader_mod.Builder.reserve

    def spy(self: reader_mod.Builder, extra: int) -> None:
        reserved.append(extra)
        original(self, extra)

    monkeypatch.setattr(reader_mod.Builder, "reserve", spy)
    ev = read_logs([path])
    assert ev.records == 50
    assert max(reserved) < 4096  # the one thread block's slots
