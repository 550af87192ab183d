"""Damaged input: no log, however cut, flipped or forged, crashes, hangs or floods the reader.

The contract (``docs/RELIABILITY.md``): ``liteprof report --format json`` exits 0 with the
intact events counted in ``records`` and the damaged ones in ``skipped``, or exits 2 with
one line on stderr; never a traceback, never a hang, never memory beyond a small multiple
of the file's size. The command-line checks run the reader under an address-space limit
and a timeout (``faultkit.run_reader``); the sweeps run in-process, where they are fast.
"""

from __future__ import annotations

import os
import random
import shutil
import struct
import subprocess
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from liteprof.analysis.report import build_report
from liteprof.analysis.types import Report
from liteprof.log.errors import LogError
from liteprof.log.reader import read_logs

from .faultkit import check_reader_outcome, run_reader
from .forge import reader_loops
from .helpers import log_files, run_python
from .rawlog import HEADER, SLOT, RawLog, read

# Three worker threads and the main thread, names of several lengths (one spans several
# payload slots, one is not ASCII), enough events per thread to fill more than one block
# with either backend, and names first used late so that metadata blocks interleave.
RECORD = """
import threading, liteprof
NAMES = ["Step:Model", "Model:Forward", "Step:Schedule", "Long:" + "x" * 300, "Uni:ü✓"]
def work(k, n):
    for i in range(n):
        with liteprof.scope(NAMES[(i + k) % 3]):
            pass
    for i in range(50):
        with liteprof.scope(NAMES[3 + (i + k) % 2]):
            pass
threads = [threading.Thread(target=work, args=(k, 2500), name=f"worker-{k}") for k in range(3)]
for t in threads: t.start()
for t in threads: t.join()
work(3, 600)
"""
EVENTS = 3 * 2550 + 650

_recorded: dict[str, str] = {}
assert reader_loops  # the fixture (the C loops and numpy's), imported for pytest to find


@pytest.fixture
def real_log(backend: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """One intact log per backend, recorded once; tests copy it before damaging it."""
    if backend not in _recorded:
        directory = os.fspath(tmp_path_factory.mktemp(f"real-{backend}"))
        run_python(RECORD, LITEPROF_LOG=directory)
        (path,) = log_files(directory)
        _recorded[backend] = path
    return _recorded[backend]


@pytest.fixture
def default_log(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The intact log of the default recorder, recorded once. For the tests that run the
    reader as a command, a process per case: they check the command's outcome (one line,
    exit status), which does not depend on the recorder that wrote the log; the
    in-process tests read both recorders' logs."""
    if "default" not in _recorded:
        directory = os.fspath(tmp_path_factory.mktemp("real-default"))
        run_python(RECORD, LITEPROF_LOG=directory)
        (path,) = log_files(directory)
        _recorded["default"] = path
    return _recorded["default"]


def _copy(src: str, dst_dir: Any, name: str = "damaged.lpf") -> str:
    dst = os.path.join(os.fspath(dst_dir), name)
    shutil.copyfile(src, dst)
    return dst


def _patch(path: str, offset: int, data: bytes) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(data)


def _read(path: str) -> Report:
    return build_report(read_logs([path]))


def _layout(path: str) -> RawLog:
    return read(path)


def _parallel(fn: Callable[[Any], Any], items: list[Any]) -> list[Any]:
    with ThreadPoolExecutor(max_workers=4) as pool:  # children mostly wait on imports
        return list(pool.map(fn, items))


def test_intact_log_is_what_the_oracle_sees(real_log: str) -> None:
    layout = _layout(real_log)
    assert len(layout.events) == EVENTS
    threads = {b.owner for b in layout.blocks if b.owner < 0xFFFFFFFE}
    assert len(threads) == 4
    assert max(sum(1 for b in layout.blocks if b.owner == t) for t in threads) >= 2
    report = _read(real_log)
    assert report["records"] == EVENTS and report["skipped"] == 0


@pytest.mark.usefixtures("reader_loops")
def test_cut_at_every_kind_of_offset_in_process(real_log: str, tmp_path: Any) -> None:
    """Truncation anywhere: the intact prefix is counted exactly, the torn rest skipped."""
    layout = _layout(real_log)
    points = layout.cut_points()
    rng = random.Random(1)
    points = sorted(set(points) | {rng.randrange(layout.size) for _ in range(200)}, reverse=True)
    assert len(points) > 300
    path = _copy(real_log, tmp_path)
    for cut in points:  # one copy, cut shorter and shorter
        os.truncate(path, cut)
        try:
            report = _read(path)
        except LogError:
            assert cut < 24, f"a log cut at {cut} was refused"
            continue
        ok, unusable = layout.readable_after_cut(cut)
        assert report["records"] == ok, cut
        assert unusable <= report["skipped"] <= unusable + 2, (cut, report["skipped"])


def test_cut_logs_through_the_command_line(default_log: str, tmp_path: Any) -> None:
    layout = _layout(default_log)
    meta = next(e for e in layout.entries if e.kind == 1 and e.length > SLOT)
    second = next(b for b in layout.blocks[1:] if b.owner < 0xFFFFFFFE)
    cuts = {
        "in the header's fixed fields": 17,
        "in the header's JSON": 24 + layout.meta_len // 2,
        "at the end of the header": HEADER,
        "in a block header": layout.blocks[0].offset + 9,
        "in a name's head": meta.offset + 5,
        "in a name's payload": meta.offset + SLOT + 40,
        "mid-record": second.offset + 5 * SLOT + 13,
        "at a block boundary": second.offset,
        "at the end of a block": second.offset + second.size,
        "one byte short": layout.size - 1,
    }

    def run(item: tuple[str, int]) -> tuple[str, int, subprocess.CompletedProcess[str]]:
        label, cut = item
        path = os.path.join(os.fspath(tmp_path), f"cut-{cut}.lpf")
        with open(default_log, "rb") as src, open(path, "wb") as dst:
            dst.write(src.read(cut))
        return label, cut, run_reader(path)

    for label, cut, proc in _parallel(run, list(cuts.items())):
        report = check_reader_outcome(proc)
        if report is None:
            assert cut < 24, (label, proc.stderr)
            continue
        ok, unusable = layout.readable_after_cut(cut)
        assert report["records"] == ok, label
        assert unusable <= report["skipped"] <= unusable + 2, label


def _check_sane(report: Report | dict[str, Any], size: int, binary: bool) -> None:
    """Counts and durations that hold for any report, however damaged its log was."""
    records, skipped = report["records"], report["skipped"]
    assert records >= 0 and skipped >= 0
    if binary:
        assert records + skipped <= max(0, size - HEADER) // SLOT + 2
    else:
        # A file cut inside the magic counts once in ``skipped`` (a log without header).
        assert records + skipped <= max(size, 1)
    assert sum(r["count"] for r in report["scopes"]) == records
    for row in report["scopes"]:
        assert row["count"] > 0
        assert 0 <= row["self_ns"] <= row["total_ns"], row
        assert 0 <= row["min_ns"] <= row["p50_ns"] <= row["p90_ns"] <= row["p99_ns"]
        assert row["p99_ns"] <= row["max_ns"] <= row["total_ns"], row
    if report["wall_ns"] is not None:
        assert report["wall_ns"] >= 0


@pytest.mark.usefixtures("reader_loops")
def test_random_byte_flips_in_process(real_log: str, tmp_path: Any) -> None:
    with open(real_log, "rb") as fh:
        original = fh.read()
    path = os.path.join(os.fspath(tmp_path), "flipped.lpf")
    rng = random.Random(2)
    for trial in range(200):
        data = bytearray(original)
        for _ in range(rng.choice((1, 4, 32, 512))):
            i = rng.randrange(len(data))
            data[i] = rng.randrange(256) if trial % 2 else data[i] ^ (1 << rng.randrange(8))
        with open(path, "wb") as fh:
            fh.write(data)
        try:
            report = _read(path)
        except LogError:
            continue
        _check_sane(report, len(data), data[:8] == b"LITEPROF")


def test_garbage_and_flipped_files_through_the_command_line(
    default_log: str, tmp_path: Any
) -> None:
    rng = random.Random(3)
    with open(default_log, "rb") as fh:
        original = fh.read()
    header_only = original[:HEADER]
    cases = {
        "random": rng.randbytes(200_000),
        "random after the magic": b"LITEPROF" + rng.randbytes(100_000),
        "random after a valid header": header_only + rng.randbytes(100_000),
        "zeros": bytes(100_000),
        "zeros after a valid header": header_only + bytes(100_000),
        "text without separators": b"hello world\n" * 5000,
        "printable noise": bytes(rng.choice(b"ab|:\n 0123456789-") for _ in range(100_000)),
        "empty": b"",
        "magic only": b"LITEPROF",
    }
    for k in range(4):
        data = bytearray(original)
        for _ in range(10**k):
            data[rng.randrange(len(data))] = rng.randrange(256)
        cases[f"{10**k} random bytes changed"] = bytes(data)

    def run(item: tuple[str, bytes]) -> tuple[str, bytes, subprocess.CompletedProcess[str]]:
        label, data = item
        path = os.path.join(os.fspath(tmp_path), label.replace(" ", "_") + ".lpf")
        with open(path, "wb") as fh:
            fh.write(data)
        return label, data, run_reader(path)

    for label, data, proc in _parallel(run, list(cases.items())):
        report = check_reader_outcome(proc)
        if report is not None:
            _check_sane(report, len(data), data[:8] == b"LITEPROF")
        if label == "random after a valid header":
            assert report is not None and report["records"] <= 100_000 // SLOT, label


# -- forged lengths, counts and ids -----------------------------------------------------


def _forge(layout: RawLog, case: str) -> tuple[list[tuple[int, bytes]], Callable[..., None]]:
    """The patches of one forged log and a check of the report (``None``: exit 2)."""
    thread_block = next(b for b in layout.blocks if b.owner < 0xFFFFFFFE)
    name_entries = [e for e in layout.entries if e.kind == 1]
    thread_entries = [e for e in layout.entries if e.kind == 2]
    total = len(layout.events)

    def block_of(entry: Any) -> Any:
        return next(b for b in layout.blocks if b.offset <= entry.offset < b.offset + b.size)

    def without(*lost: Any) -> tuple[int, int]:
        """(events still readable, events lost) when metadata entries are lost."""
        gone = {e.offset for e in lost}
        names = {e.ident for e in name_entries if e.offset not in gone}
        threads = {e.ident for e in thread_entries if e.offset not in gone}
        ok = sum(1 for ev in layout.events if ev.name in names and ev.owner in threads)
        return ok, total - ok

    def torn_from(entry: Any) -> tuple[int, int]:
        """An entry the reader cannot parse: it and the rest of its block are lost."""
        block = block_of(entry)
        ok, lost = without(
            *(e for e in layout.entries if e.offset >= entry.offset and block_of(e) is block)
        )
        return ok, lost + 1

    def exact(records: int, skipped: int) -> Callable[..., None]:
        def check(report: dict[str, Any] | None) -> None:
            assert report is not None
            assert (report["records"], report["skipped"]) == (records, skipped)

        return check

    def bounded(report: dict[str, Any] | None) -> None:
        assert report is not None
        assert report["records"] <= total
        assert report["records"] + report["skipped"] <= (layout.size - HEADER) // SLOT

    def refused(report: dict[str, Any] | None) -> None:
        assert report is None

    victims = layout.events[:: len(layout.events) // 7][:7]
    if case == "block size 0xFFFFFFF0":
        return [(thread_block.offset + 8, struct.pack("<I", 0xFFFFFFF0))], bounded
    if case == "block size 0xFFFFFFE0":
        return [(thread_block.offset + 8, struct.pack("<I", 0xFFFFFFE0))], bounded
    if case == "block size 0":
        return [(thread_block.offset + 8, struct.pack("<I", 0))], bounded
    if case == "metadata payload length 2**32-1":
        entry = name_entries[-1]
        return [(entry.offset + 8, struct.pack("<I", 0xFFFFFFFF))], exact(*torn_from(entry))
    if case == "header metadata length 2**32-1":
        return [(20, struct.pack("<I", 0xFFFFFFFF))], exact(total, 0)
    if case == "header metadata is deeply nested JSON":
        nested = b"[" * 2000 + b"]" * 2000
        return ([(20, struct.pack("<I", len(nested))), (24, nested)], exact(total, 0))
    if case == "header metadata is not an object":
        doc = b"\"__import__('os').system('false')\""
        return [(20, struct.pack("<I", len(doc))), (24, doc.ljust(HEADER - 24, b"\0"))], exact(
            total, 0
        )
    if case == "negative durations":
        return (
            [(ev.offset + 8, struct.pack("<q", -5)) for ev in victims],
            exact(total - len(victims), len(victims)),
        )
    if case == "negative child time":
        return (
            [(ev.offset + 16, struct.pack("<q", -1)) for ev in victims],
            exact(total - len(victims), len(victims)),
        )
    if case == "negative start":
        return (
            [(ev.offset, struct.pack("<q", -(1 << 62))) for ev in victims],
            exact(total - len(victims), len(victims)),
        )
    if case == "unknown name ids":
        ids = (0xFFFFFFFF, 0x7FFFFFFF, 1000, 5, 0xFFFF, 1 << 20, 77)
        return (
            [(ev.offset + 24, struct.pack("<I", i)) for ev, i in zip(victims, ids)],
            exact(total - len(victims), len(victims)),
        )
    if case == "name declared with id 2**32-1":
        entry = name_entries[0]
        return [(entry.offset + 4, struct.pack("<I", 0xFFFFFFFF))], exact(*without(entry))
    if case == "thread declared with id 2**32-2":
        entry = thread_entries[0]
        return [(entry.offset + 4, struct.pack("<I", 0xFFFFFFFE))], exact(*without(entry))
    if case == "unknown metadata kind":
        entry = name_entries[-1]
        return [(entry.offset, struct.pack("<I", 9))], exact(*torn_from(entry))
    if case == "unknown event kind":
        return (
            [(ev.offset + 28, struct.pack("<I", 7)) for ev in victims],
            exact(total - len(victims), len(victims)),
        )
    if case == "durations that overflow a 64-bit sum":
        return (
            [(ev.offset + 8, struct.pack("<q", (1 << 62) + 1)) for ev in victims],
            exact(total, 0),
        )
    if case == "unsupported version":
        return [(8, struct.pack("<I", 99))], refused
    if case == "wrong slot size":
        return [(16, struct.pack("<I", 0xFFFFFFFF))], refused
    raise AssertionError(case)


FORGED = [
    "block size 0xFFFFFFF0",
    "block size 0xFFFFFFE0",
    "block size 0",
    "metadata payload length 2**32-1",
    "header metadata length 2**32-1",
    "header metadata is deeply nested JSON",
    "header metadata is not an object",
    "negative durations",
    "negative child time",
    "negative start",
    "unknown name ids",
    "name declared with id 2**32-1",
    "thread declared with id 2**32-2",
    "unknown metadata kind",
    "unknown event kind",
    "durations that overflow a 64-bit sum",
    "unsupported version",
    "wrong slot size",
]


def test_forged_lengths_counts_and_ids(default_log: str, tmp_path: Any) -> None:
    layout = _layout(default_log)

    def run(case: str) -> tuple[str, Any, subprocess.CompletedProcess[str], Report | None]:
        path = _copy(default_log, tmp_path, case.replace(" ", "_").replace("*", "^") + ".lpf")
        patches, check = _forge(layout, case)
        for offset, data in patches:
            _patch(path, offset, data)
        try:
            in_process: Report | None = _read(path)
        except LogError:
            in_process = None
        return case, check, run_reader(path), in_process

    for case, check, proc, in_process in _parallel(run, FORGED):
        report = check_reader_outcome(proc)
        check(report)
        check(in_process)
        if report is not None:
            _check_sane(report, layout.size, True)
            assert in_process is not None
            assert report["records"] == in_process["records"], case
        if case == "durations that overflow a 64-bit sum":
            assert report is not None
            big = sum(r["total_ns"] for r in report["scopes"])
            assert big > 7 * (1 << 62)  # exact, not wrapped around
        if case.startswith("header metadata"):
            assert report is not None and report["processes"][0]["name"] == "?"


def test_inputs_that_are_not_regular_files_never_hang(default_log: str, tmp_path: Any) -> None:
    fifo = os.path.join(os.fspath(tmp_path), "pipe.log")
    os.mkfifo(fifo)
    for path in ("/dev/zero", "/dev/urandom", fifo):
        proc = run_reader(path, timeout=30)
        assert check_reader_outcome(proc) is None
        assert "not a regular file" in proc.stderr
    # In a log directory, a pipe or a device named like a log is not read either.
    directory = os.path.join(os.fspath(tmp_path), "dir")
    os.mkdir(directory)
    os.mkfifo(os.path.join(directory, "liteprof-1-0000000000000000.lpf"))
    os.symlink("/dev/zero", os.path.join(directory, "liteprof-2-0000000000000000.lpf"))
    _copy(default_log, directory, "liteprof-3-0000000000000000.lpf")
    report = check_reader_outcome(run_reader(directory, timeout=30))
    assert report is not None and report["records"] == EVENTS


def test_large_text_log_stays_within_the_memory_limit(tmp_path: Any) -> None:
    """A vLLM text log of 3M tiny lines (12 MB) is read within the 1 GiB address space."""
    path = os.path.join(os.fspath(tmp_path), "vllm.log")
    with open(path, "wb") as fh:
        fh.write(b"a|1\nb|2\nc|x\n" * 1_000_000)
    report = check_reader_outcome(run_reader(path))
    assert report is not None
    assert report["records"] == 2_000_000 and report["skipped"] == 1_000_000


# -- property-based fuzzing --------------------------------------------------------------

_mutation = st.one_of(
    st.tuples(st.just("set"), st.integers(0, 1 << 30), st.binary(min_size=1, max_size=40)),
    st.tuples(
        st.just("u32"),
        st.integers(0, 1 << 30),
        st.sampled_from([0, 1, 2, 31, 32, 64, 0x7FFFFFFF, 0xFFFFFFF0, 0xFFFFFFFF]),
    ),
    st.tuples(st.just("cut"), st.integers(0, 1 << 30), st.just(b"")),
    st.tuples(st.just("insert"), st.integers(0, 1 << 30), st.binary(min_size=1, max_size=64)),
    st.tuples(st.just("delete"), st.integers(0, 1 << 30), st.integers(1, 4096)),
    # a field the reader interprets (see _fields), overwritten with a nasty value
    st.tuples(
        st.just("field"),
        st.integers(0, 1 << 30),
        st.sampled_from([0, 1, 2, 7, 32, 64, 4096, 1 << 31, 0xFFFFFFE0, 0xFFFFFFFE, 0xFFFFFFFF]),
    ),
)

_field_cache: dict[str, list[int]] = {}


def _fields(path: str) -> list[int]:
    """Offsets of the 32-bit fields the reader interprets: the header's lengths, each block
    header's owner and size, each metadata entry's kind, id and length, and each of a
    sample of events' duration, child time, start, name and flags."""
    if path not in _field_cache:
        layout = _layout(path)
        out = [8, 12, 16, 20]
        for b in layout.blocks:
            out += [b.offset + 4, b.offset + 8]
        for e in layout.entries:
            out += [e.offset, e.offset + 4, e.offset + 8]
        for ev in layout.events[::50]:
            out += [ev.offset + 4, ev.offset + 12, ev.offset + 20, ev.offset + 24, ev.offset + 28]
        _field_cache[path] = out
    return _field_cache[path]


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(mutations=st.lists(_mutation, min_size=1, max_size=8))
def test_fuzz_reader_on_mutated_real_logs(
    real_log: str, tmp_path: Any, mutations: list[tuple[str, int, Any]]
) -> None:
    with open(real_log, "rb") as fh:
        data = bytearray(fh.read())
    fields = _fields(real_log)
    for op, where, arg in mutations:
        if not data:
            break
        i = where % len(data)
        if op == "field":
            i = fields[where % len(fields)]
            data[i : i + 4] = struct.pack("<I", arg)
        elif op == "set":
            data[i : i + len(arg)] = arg
        elif op == "u32":
            # aim at a field: block headers and entries are slot-aligned
            i -= i % 4
            data[i : i + 4] = struct.pack("<I", arg)
        elif op == "cut":
            del data[i:]
        elif op == "insert":
            data[i:i] = arg
        else:
            del data[i : i + arg]
    path = os.path.join(os.fspath(tmp_path), "fuzzed.lpf")
    with open(path, "wb") as fh:
        fh.write(data)
    try:
        report = build_report(read_logs([path]))
    except LogError:
        return
    _check_sane(report, len(data), bytes(data[:8]) == b"LITEPROF")
