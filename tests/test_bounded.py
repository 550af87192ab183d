"""Bounded logs (``LITEPROF_MAX_MB``): the file stays under its bound, and the counts,
totals and errors of the events it dropped stay exact, through crashes and live reads
(``docs/FORMAT.md``, "Bounded logs")."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

import pytest

from liteprof.log import format as F

from . import rawlog
from .faultkit import check_reader_outcome, run_reader
from .helpers import child_env, cli, log_files, read, report_json, scopes_by_name

MIB = 1 << 20
# st_blocks also counts the file system's own blocks for a file (an ext4 extent block once
# the file's extents no longer fit its inode): not bytes liteprof writes.
FS_SLACK = 64 << 10

# N scopes in T threads, every 1000th inner one raising; the child prints the events it
# closed.
WORKLOAD = """
import logging, sys, threading
logging.basicConfig(format="%(name)s:%(levelname)s:%(message)s")
import liteprof
N, T = int(sys.argv[1]), int(sys.argv[2])
def work(k):
    for i in range(N // T):
        with liteprof.scope("Bound:Outer"):
            try:
                with liteprof.scope(f"Bound:Inner{k % 2}"):
                    if i % 1000 == 999:
                        raise ValueError(i)
            except ValueError:
                pass
threads = [threading.Thread(target=work, args=(k,)) for k in range(T)]
for t in threads: t.start()
for t in threads: t.join()
print(liteprof.enabled())
"""


def _run(code: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        env=child_env(**env),
        capture_output=True,
        text=True,
        timeout=300,
    )


def _footprint(directory: str) -> tuple[int, int]:
    """Bytes of every file under ``directory`` together: apparent, and allocated."""
    apparent = allocated = 0
    for path in log_files(directory):
        st = os.stat(path)
        apparent += st.st_size
        allocated += st.st_blocks * 512
    return apparent, allocated


@pytest.mark.parametrize("threads", [1, 4])
def test_three_million_scopes_in_eight_mib(logdir: str, backend: str, threads: int) -> None:
    """SPEC: a process's files never exceed N MiB together; counts, totals and errors of
    the dropped events are kept. 1.5M iterations of two nested scopes: 3M events."""
    n = 1_500_000
    proc = _run(WORKLOAD, str(n), str(threads), LITEPROF_LOG=logdir, LITEPROF_MAX_MB="8")
    assert proc.returncode == 0 and proc.stdout.split() == ["True"], proc.stderr
    assert proc.stderr == ""
    apparent, allocated = _footprint(logdir)
    assert apparent <= 8 * MIB and allocated <= 8 * MIB + FS_SLACK, (apparent, allocated)
    report = report_json(logdir)
    rows = scopes_by_name(report)
    assert rows["Bound:Outer"]["count"] == n
    inner = [rows[f"Bound:Inner{k}"] for k in range(min(threads, 2))]
    assert sum(r["count"] for r in inner) == n
    assert sum(r["errors"] for r in inner) == n // 1000
    assert rows["Bound:Outer"]["errors"] == 0
    assert report["skipped"] == 0
    (process,) = report["processes"]
    assert process["dropped"] > 2_000_000  # most of it was folded into the summary
    assert report["records"] + process["dropped"] == 2 * n
    outer = rows["Bound:Outer"]
    assert outer["min_ns"] <= outer["p50_ns"] <= outer["p99_ns"] <= outer["max_ns"]
    assert outer["self_ns"] <= outer["total_ns"]
    assert abs(outer["mean_ns"] - outer["total_ns"] / n) < 1e-6 * outer["mean_ns"] + 1e-9
    # The outer scope's time holds the inner one's: totals of all events, not of those kept.
    inner_total = sum(r["total_ns"] for r in inner)
    assert outer["total_ns"] - outer["self_ns"] == pytest.approx(inner_total, rel=0.01)
    by_process = report_json(logdir, by="process")
    assert sum(r["count"] for r in by_process["scopes"]) == 2 * n
    table = cli("report", logdir).stdout
    assert "dropped:" in table


def test_an_unbounded_log_of_the_same_run_is_larger(logdir: str) -> None:
    """The bound is what keeps the file small (the check above is not vacuous)."""
    proc = _run(WORKLOAD, "1500000", "1", LITEPROF_LOG=logdir)
    assert proc.returncode == 0, proc.stderr
    assert _footprint(logdir)[0] > 64 * MIB
    report = report_json(logdir)
    assert report["processes"][0]["dropped"] == 0 and report["records"] == 3_000_000


# A kill at every step of a fold: the child counts the events that closed and writes the
# count to fd 3 just before it dies at the chosen write (the event that asked for the new
# block is not written yet, so that count is exactly what the log must hold).
KILLED_IN_A_FOLD = """
import os, sys
from liteprof.log import writer
step, nth, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
closed = 0
folds = 0
real_write_all, real_zero, real_pwrite = writer._write_all, writer._zero, os.pwrite
def die():
    os.write(out, str(closed).encode())
    os.kill(os.getpid(), 9)
def write_all(fd, data, offset):
    if step == "torn summary" and folds == nth and data[:4] == b"LPDS":
        real_pwrite(fd, data[: len(data) // 2], offset)
        die()
    real_write_all(fd, data, offset)
    if step == "after summary" and folds == nth and data[:4] == b"LPDS":
        die()
def zero(fd, offset, length):
    if step == "after relabel" and folds == nth:
        die()
    real_zero(fd, offset, length)
    if step == "after zeroing" and folds == nth:
        die()
writer._write_all, writer._zero = write_all, zero
real_recycle = writer.LogWriter._recycle
def recycle(self, victim):
    global folds
    folds += 1
    real_recycle(self, victim)
writer.LogWriter._recycle = recycle
import liteprof
liteprof.enable(os.environ["LITEPROF_LOG"])
for i in range(2_000_000):
    with liteprof.scope("Kill:Step"):
        pass
    closed += 1
os.write(out, b"never")
"""


@pytest.mark.parametrize("nth", [1, 7])
@pytest.mark.parametrize(
    "step", ["torn summary", "after summary", "after relabel", "after zeroing"]
)
def test_killed_at_any_step_of_a_fold_counts_every_event_once(
    logdir: str, backend: str, step: str, nth: int
) -> None:
    read_end, write_end = os.pipe()
    try:
        proc = subprocess.run(
            [sys.executable, "-c", KILLED_IN_A_FOLD, step, str(nth), str(write_end)],
            env=child_env(LITEPROF_LOG=logdir, LITEPROF_MAX_MB="1"),
            capture_output=True,
            text=True,
            timeout=300,
            pass_fds=(write_end,),
        )
        os.close(write_end)
        write_end = -1
        closed = os.read(read_end, 64).decode()
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stderr)
    assert closed.isdigit(), closed
    report = report_json(logdir)
    assert report["skipped"] == 0
    count = scopes_by_name(report)["Kill:Step"]["count"]
    assert count == int(closed), (step, count, closed)
    # The first fold's summary torn: nothing was dropped yet, the block is still there.
    first_torn = step == "torn summary" and nth == 1
    assert (report["processes"][0]["dropped"] > 0) != first_torn


LIVE_WRITER = """
import os, sys
import liteprof
liteprof.enable(os.environ["LITEPROF_LOG"])
for i in range(int(sys.argv[1])):
    with liteprof.scope("Live:Step"):
        pass
"""


def test_a_live_read_of_a_bounded_log_never_counts_twice(logdir: str, backend: str) -> None:
    """A reader that reads while the writer recycles blocks as fast as it can: no read
    counts more events than were written, none counts damage, and the read after the
    writer ends is exact."""
    n = 3_000_000 if backend == "c" else 1_000_000  # ~30 recyclings of the 1 MiB either way
    writer = subprocess.Popen(
        [sys.executable, "-c", LIVE_WRITER, str(n)],
        env=child_env(LITEPROF_LOG=logdir, LITEPROF_MAX_MB="1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen = []
    try:
        deadline = time.monotonic() + 120
        while writer.poll() is None and time.monotonic() < deadline:
            if not log_files(logdir):
                time.sleep(0.01)
                continue
            report = read(logdir)
            assert report["skipped"] == 0, report["skipped"]
            rows = scopes_by_name(report)
            seen.append(rows["Live:Step"]["count"] if "Live:Step" in rows else 0)
            assert seen[-1] <= n
    finally:
        _, err = writer.communicate(timeout=120)
    assert writer.returncode == 0, err
    assert len(seen) >= 3, seen
    assert any(0 < s < n for s in seen), seen  # some reads did overlap the writing
    report = read(logdir)
    assert scopes_by_name(report)["Live:Step"]["count"] == n
    assert report["skipped"] == 0


# -- limits and bad settings ------------------------------------------------------------


@pytest.mark.parametrize("value", ["abc", "0", "0.5", "-3", "nan", "inf"])
def test_a_bad_bound_is_a_recording_failure_not_unbounded(logdir: str, value: str) -> None:
    proc = _run(WORKLOAD, "10000", "1", LITEPROF_LOG=logdir, LITEPROF_MAX_MB=value)
    assert proc.returncode == 0 and proc.stdout.split() == ["False"], proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "LITEPROF_MAX_MB" in lines[0], proc.stderr
    assert log_files(logdir) == []


IDLE_THREADS = """
import logging, sys, threading
logging.basicConfig(format="%(name)s:%(levelname)s:%(message)s")
import liteprof
go, stop = threading.Barrier(301), threading.Event()
def idle():
    for _ in range(2000):  # big enough blocks of its own, then it holds the last one
        with liteprof.scope("Idle:Warm"):
            pass
    go.wait()
    stop.wait()
threads = [threading.Thread(target=idle) for _ in range(300)]
for t in threads: t.start()
go.wait()
for i in range(2_000_000):
    with liteprof.scope("Idle:Main"):
        pass
stop.set()
for t in threads: t.join()
print(liteprof.enabled())
"""


def test_every_block_held_by_live_threads_stops_recording_within_the_bound(logdir: str) -> None:
    """300 idle threads each hold a block of 4 KiB or more of a 1 MiB log: when no region is free
    to recycle, recording stops with one warning; the file never passes its bound, and
    what it holds reads."""
    proc = _run(IDLE_THREADS, LITEPROF_LOG=logdir, LITEPROF_MAX_MB="1")
    assert proc.returncode == 0 and proc.stdout.split() == ["False"], proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "in use by a live thread" in lines[0], proc.stderr
    apparent, allocated = _footprint(logdir)
    assert apparent <= MIB and allocated <= MIB + FS_SLACK
    report = report_json(logdir)
    assert report["skipped"] == 0
    assert 0 < scopes_by_name(report)["Idle:Warm"]["count"] <= 300 * 2000


def test_many_names_stop_recording_before_the_bound(logdir: str) -> None:
    code = """
import logging
logging.basicConfig(format="%(name)s:%(levelname)s:%(message)s")
import liteprof
for i in range(200_000):
    with liteprof.scope(f"Name:{i}-" + "x" * 200):
        pass
print(liteprof.enabled())
"""
    proc = _run(code, LITEPROF_LOG=logdir, LITEPROF_MAX_MB="1")
    assert proc.returncode == 0 and proc.stdout.split() == ["False"], proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "recording stopped" in lines[0], proc.stderr
    assert _footprint(logdir)[0] <= MIB
    report = report_json(logdir)
    assert report["skipped"] == 0 and report["records"] > 0


def test_json_of_a_bounded_log_round_trips(logdir: str) -> None:
    proc = _run(WORKLOAD, "400000", "2", LITEPROF_LOG=logdir, LITEPROF_MAX_MB="1")
    assert proc.returncode == 0, proc.stderr
    out = cli("report", logdir, "--format", "json")
    assert out.returncode == 0, out.stderr
    report: dict[str, Any] = json.loads(out.stdout)
    assert scopes_by_name(report)["Bound:Outer"]["count"] == 400_000
    assert report["processes"][0]["dropped"] > 0


# -- a damaged or forged summary --------------------------------------------------------


def _forge(data: bytearray, at: int, fields: dict[int, tuple[str, int]]) -> None:
    """Set fields of the summary at byte ``at`` and give it a valid checksum again."""
    import binascii
    import struct

    for offset, (fmt, value) in fields.items():
        struct.pack_into(fmt, data, at + offset, value)
    head = F.SUMMARY_HEAD
    _m, _crc, _g, nb, nrec, nhist, _r = head.unpack_from(data, at)
    words = F.RECORD_WORDS + nb
    end = (
        at
        + head.size
        + F.SUMMARY_TOTALS.size
        + 8 * (nb - 1)
        + F.FOLD_STRUCT.size * nhist
        + (8 + 8 * words) * nrec
    )
    end = min(end, len(data))  # a forged count: the checksum of what is there
    struct.pack_into("<I", data, at + 4, binascii.crc32(bytes(data[at + 8 : end])))


@pytest.mark.parametrize(
    "case",
    [
        "flipped bytes",
        "records 2**32-1",
        "buckets 0",
        "buckets 2**32-1",
        "forged huge sums",
        "forged errors above count",
        "forged name id",
    ],
)
def test_a_damaged_or_forged_summary_never_breaks_the_reader(
    logdir: str, tmp_path: Any, case: str
) -> None:
    proc = _run(WORKLOAD, "300000", "1", LITEPROF_LOG=logdir, LITEPROF_MAX_MB="1")
    assert proc.returncode == 0, proc.stderr
    (path,) = log_files(logdir)
    log = rawlog.read(path)
    with open(path, "rb") as fh:
        data = bytearray(fh.read())
    summaries = [b for b in log.blocks if b.owner == F.SUMMARY_OWNER]
    assert len(summaries) == 2
    newest = max(
        summaries, key=lambda b: int.from_bytes(data[b.offset + 40 : b.offset + 48], "little")
    )
    at = newest.offset + F.SLOT_SIZE
    nhist = int.from_bytes(data[at + 24 : at + 28], "little")
    first_record = 64 + 8 * len(F.HISTOGRAM_BOUNDS_NS) + 24 * nhist  # from ``at``
    if case == "flipped bytes":
        for k in range(0, 400, 7):
            data[at + k] ^= 0x5A
    elif case == "records 2**32-1":
        _forge(data, at, {20: ("<I", 2**32 - 1)})
    elif case == "buckets 0":
        _forge(data, at, {16: ("<I", 0)})
    elif case == "buckets 2**32-1":
        _forge(data, at, {16: ("<I", 2**32 - 1)})
    elif case == "forged huge sums":
        _forge(
            data, at, {first_record + 8: ("<Q", 2**64 - 1), first_record + 32: ("<Q", 2**64 - 1)}
        )
    elif case == "forged errors above count":
        _forge(data, at, {first_record + 16: ("<Q", 2**63)})
    else:
        _forge(data, at, {first_record: ("<I", 2**32 - 1)})
    forged = os.path.join(os.fspath(tmp_path), "forged.lpf")
    with open(forged, "wb") as fh:
        fh.write(data)
    report = check_reader_outcome(run_reader(forged))
    assert report is not None
    for row in report["scopes"]:
        assert 0 <= row["errors"] <= row["count"]
        assert 0 <= row["self_ns"] <= row["total_ns"]
        assert row["min_ns"] <= row["max_ns"]
