"""The oracle itself (``tests/rawlog.py``): format version 2 and its extension rule, on a
log built here byte by byte from docs/FORMAT.md, and agreement with the reader on real
recordings of both backends."""

from __future__ import annotations

import json
import struct
import threading
from collections import Counter

import pytest

import liteprof

from . import rawlog
from .helpers import log_files, read

NATIVE = 4321


def _block(owner: int, seq: int, slots: list[bytes], size: int = 4096) -> bytes:
    body = b"".join(slots)
    assert len(body) <= size - 32
    return struct.pack("<4sIII16x", b"LPBK", owner, size, seq) + body.ljust(size - 32, b"\0")


def _entry(kind: int, ident: int, payload: bytes, extra: int = 0) -> bytes:
    padded = payload.ljust(-(-len(payload) // 32) * 32, b"\0")
    return struct.pack("<IIIIQ8x", kind, ident, len(payload), 0, extra) + padded


def _event(start: int, dur: int, child: int, name: int, depth: int, error: bool = False) -> bytes:
    return struct.pack("<qqqII", start, dur, child, name, 1 | (error << 8) | (depth << 16))


def _slot(kind: int, lane: int = 0) -> bytes:
    return struct.pack("<Q20xI", lane, kind)


LONG = "Group:a name longer than one slot, not ASCII: é→"


def _v2_log() -> bytes:
    meta = json.dumps({"pid": 1, "backend": "c"}).encode()
    header = struct.pack("<8sIIII", b"LITEPROF", 2, 4096, 32, len(meta)) + meta
    metadata = [
        _entry(1, 1, b"A"),
        _entry(200, 9, b"an optional entry: stepped over"),
        _entry(1, 2, LONG.encode("utf-8")),
        _entry(2, 0, b"MainThread", NATIVE),
    ]
    thread = [
        _event(100, 10, 0, 1, 0),  # lane 0
        _slot(2, lane=7),
        _event(200, 5, 0, 2, 1),  # lane 7
        _slot(5),  # a reserved kind: counted
        _slot(130),  # an optional kind: ignored
        _event(190, 20, 5, 1, 0, error=True),  # still lane 7
        _slot(2, lane=0),
        _event(300, 1, 0, 2, 0),  # lane 0 again
    ]
    return b"".join(
        [
            header.ljust(4096, b"\0"),
            _block(0xFFFFFFFF, 0, metadata),
            _block(0, 1, thread),
            _block(0xFFFFFFFE, 2, [_event(1, 1, 0, 1, 0)]),  # padding: skipped whole
            _block(0xFFFFFF10, 3, [_event(1, 1, 0, 1, 0)]),  # a reserved kind of block
            _block(0, 4, [_event(400, 2, 0, 1, 0)]),  # a new block starts in lane 0
        ]
    )


def test_version_2_lanes_and_the_extension_rule() -> None:
    log = rawlog.parse(_v2_log())
    assert (log.magic, log.version, log.header_size, log.slot_size) == (b"LITEPROF", 2, 4096, 32)
    assert json.loads(log.metadata) == {"pid": 1, "backend": "c"}
    assert [(b.owner, b.seq, b.is_thread) for b in log.blocks] == [
        (0xFFFFFFFF, 0, False),
        (0, 1, True),
        (0xFFFFFFFE, 2, False),
        (0xFFFFFF10, 3, False),
        (0, 4, True),
    ]
    assert log.names == {1: "A", 2: LONG} and log.threads == {0: "MainThread"}
    assert [e.kind for e in log.entries] == [1, 200, 1, 2]
    assert log.entries[3].native_id == NATIVE
    assert [(e.start, e.lane, e.depth, e.error) for e in log.events] == [
        (100, 0, 0, False),
        (200, 7, 1, False),
        (190, 7, 0, True),
        (300, 0, 0, False),
        (400, 0, 0, False),
    ]
    assert [lane for _off, lane in log.lane_slots] == [7, 0]
    assert (log.reserved_slots, log.optional_slots) == (1, 1)
    assert log.by_thread() == {
        "MainThread": [
            ("A", 100, 10, 0, 1),
            (LONG, 200, 5, 0, 1 | 1 << 16),
            ("A", 190, 20, 5, 1 | 1 << 8),
            (LONG, 300, 1, 0, 1),
            ("A", 400, 2, 0, 1),
        ]
    }


def test_a_reserved_metadata_kind_ends_its_blocks_entries() -> None:
    data = bytearray(_v2_log())
    second = 4096 + 32 + 64  # the optional entry's head, after block header and "A"
    struct.pack_into("<I", data, second, 5)
    log = rawlog.parse(bytes(data))
    assert [e.kind for e in log.entries] == [1, 5]
    assert log.names == {1: "A"} and log.threads == {}
    assert log.readable_after_cut(len(data)) == (0, 5)


def test_what_a_cut_copy_must_still_yield() -> None:
    data = _v2_log()
    log = rawlog.parse(data)
    thread_entry = log.entries[3]
    first_event = log.events[0].offset
    assert log.readable_after_cut(len(data)) == (5, 0)
    assert log.readable_after_cut(thread_entry.end - 1) == (0, 0)  # no event is reached
    assert log.readable_after_cut(first_event + 31) == (0, 0)  # a torn slot is not read
    assert log.readable_after_cut(first_event + 32) == (1, 0)
    cut = rawlog.parse(data[: first_event + 40])
    assert cut.blocks[-1].cut and len(cut.events) == 1
    assert all(0 <= p <= len(data) for p in log.cut_points())


THREAD_BLOCK = 2 * 4096


@pytest.mark.parametrize(
    "offset, value, message",
    [
        (THREAD_BLOCK + 8, struct.pack("<I", 0), "size 0"),  # would loop for ever
        (THREAD_BLOCK + 8, struct.pack("<I", 33), "size 33"),
        (THREAD_BLOCK, b"X", "bad block header"),
    ],
)
def test_what_is_not_an_intact_log_is_an_error(offset: int, value: bytes, message: str) -> None:
    data = bytearray(_v2_log())
    data[offset : offset + len(value)] = value
    with pytest.raises(ValueError, match=message):
        rawlog.parse(bytes(data))


def test_bytes_after_the_last_block_or_a_wrong_magic_are_errors() -> None:
    with pytest.raises(ValueError, match="after the last block"):
        rawlog.parse(_v2_log() + b"\1")
    with pytest.raises(ValueError, match="not a liteprof log"):
        rawlog.parse(b"NOTPROF!" + bytes(4088))


def test_the_oracle_agrees_with_the_reader_on_a_real_recording(backend: str, logdir: str) -> None:
    liteprof.enable(logdir)
    outer = liteprof.Scope("Real:Outer")

    def work(n: int) -> None:
        for _ in range(n):
            with outer:
                with liteprof.scope("Real:Inner"):
                    pass

    t = threading.Thread(target=work, args=(700,), name="worker")
    t.start()
    work(300)
    t.join()
    liteprof.disable()
    (path,) = log_files(logdir)
    log = rawlog.read(path)
    assert log.version == 2 and not log.reserved_slots and not log.optional_slots
    by_thread = log.by_thread()
    assert {t: Counter(e[0] for e in evs) for t, evs in by_thread.items()} == {
        "MainThread": {"Real:Outer": 300, "Real:Inner": 300},
        "worker": {"Real:Outer": 700, "Real:Inner": 700},
    }
    report = read(logdir)
    assert report["records"] == len(log.events) == 2000 and report["skipped"] == 0
    totals: Counter[str] = Counter()
    for ev in log.events:
        totals[log.names[ev.name]] += ev.dur
    assert {r["name"]: r["total_ns"] for r in report["scopes"]} == dict(totals)
