"""The live reader (``liteprof.log.tail``): follows every log under a directory while it is
written, reading only what is new, never counting what the writer is still writing as
damage, and keeping the counts of processes that ended or whose files went away."""

from __future__ import annotations

import collections
import os
import struct
import subprocess
import sys
import textwrap
import time

import pytest

import liteprof
from liteprof.log.reader import read_logs
from liteprof.log.tail import ENDED, REMOVED, TRUNCATED, Batch, Tail

from .helpers import child_env, log_files

pytestmark = pytest.mark.usefixtures("backend")


def _counts(tail: Tail, batches: list[Batch]) -> collections.Counter[str]:
    out: collections.Counter[str] = collections.Counter()
    for b in batches:
        for idx in b.name.tolist():
            out[tail.names[idx]] += 1
    return out


def _reader_counts(path: str) -> collections.Counter[str]:
    ev = read_logs([path])
    return collections.Counter(ev.names[i] for i in ev.name.tolist())


def _follow(
    tail: Tail, until: float = 60.0, procs: tuple[subprocess.Popen[bytes], ...] = ()
) -> list[Batch]:
    """Poll flat out (no pause: the reader races the writers) until every child ended
    and every file was read to its end."""
    batches: list[Batch] = []
    deadline = time.monotonic() + until
    while time.monotonic() < deadline:
        done = all(p.poll() is not None for p in procs)
        b = tail.poll()
        batches.append(b)
        if done and not b.more and all(p.state != "live" for p in tail.processes):
            return batches
    raise AssertionError("the tail reader never saw every process end")


# Threads close scopes flat out, with new names all along (so names are defined while the
# reader reads) and nested scopes; halfway, two more processes start (new files).
BUSY = textwrap.dedent(
    """
    import multiprocessing, sys, threading, liteprof
    def work(k, n):
        for i in range(n):
            with liteprof.scope("Busy:Outer" if i % 2 else f"Busy:T{k}"):
                if i % 500 == 0:
                    with liteprof.scope(f"Busy:new{i}:" + "x" * 200):
                        pass
    def child(k):
        work(100 + k, 20000)
    if __name__ == "__main__":
        ts = [threading.Thread(target=work, args=(k, 60000)) for k in range(3)]
        for t in ts: t.start()
        ctx = multiprocessing.get_context("spawn")
        ps = [ctx.Process(target=child, args=(k,)) for k in range(2)]
        for p in ps: p.start()
        for t in ts: t.join()
        for p in ps: p.join()
    """
)


def test_following_busy_writers_gets_every_event_and_no_damage(
    logdir: str, tmp_path: os.PathLike[str]
) -> None:
    script = os.path.join(os.fspath(tmp_path), "busy.py")
    with open(script, "w") as fh:
        fh.write(BUSY)
    tail = Tail(logdir)  # the directory does not exist yet: the program makes it
    assert len(tail.poll()) == 0 and tail.processes == []
    proc = subprocess.Popen([sys.executable, script], env=child_env(LITEPROF_LOG=logdir))
    try:
        batches = _follow(tail, procs=(proc,))
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=60)
    assert proc.returncode == 0
    assert sum(1 for b in batches if len(b)) >= 3  # read while written, not after
    assert tail.skipped == 0 and sum(b.skipped for b in batches) == 0
    assert len(tail.processes) == 3 and {p.state for p in tail.processes} == {ENDED}
    got = _counts(tail, batches)
    assert got == _reader_counts(logdir)
    assert sum(got.values()) == 3 * (60000 + 120) + 2 * (20000 + 40)
    assert sorted(p.records for p in tail.processes) == [20040, 20040, 3 * 60120]


def test_a_poll_reads_only_what_was_added(logdir: str) -> None:
    liteprof.enable(logdir)
    try:
        for _ in range(1000):
            with liteprof.scope("Cost:a"):
                pass
        tail = Tail(logdir)
        first = tail.poll()
        assert len(first) == 1000 and first.slots_read == 1000
        idle = tail.poll()
        assert len(idle) == 0 and idle.slots_read == 0
        for _ in range(37):
            with liteprof.scope("Cost:b"):
                pass
        again = tail.poll()
        assert again.slots_read == 37
        assert _counts(tail, [again]) == {"Cost:b": 37}
    finally:
        liteprof.disable()
    # disable() trims the last block's empty tail: a cut the reader tells from truncation.
    last = tail.poll()
    assert len(last) == 0 and tail.processes[0].state == "live" and tail.skipped == 0


def test_a_small_budget_reads_in_several_polls(logdir: str) -> None:
    liteprof.enable(logdir)
    try:
        for i in range(5000):
            with liteprof.scope(f"Budget:{i % 7}"):
                pass
    finally:
        liteprof.disable()
    tail = Tail(logdir, max_slots=600)
    batches = [tail.poll()]
    while batches[-1].more:
        batches.append(tail.poll())
        assert len(batches) < 100
    assert len(batches) >= 9 and all(b.slots_read <= 600 for b in batches)
    assert _counts(tail, batches) == _reader_counts(logdir)


def test_removed_and_truncated_files_keep_their_counts(logdir: str) -> None:
    # Two writers that stay alive, so that only the file's fate ends them.
    code = (
        "import sys, liteprof\n"
        "for _ in range(300):\n"
        "    with liteprof.scope(sys.argv[1]): pass\n"
        "liteprof.flush(); print('ready', flush=True); sys.stdin.readline()\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, name],
            env=child_env(LITEPROF_LOG=logdir),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for name in ("Keep:removed", "Keep:cut")
    ]
    try:
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        tail = Tail(logdir)
        first = tail.poll()
        assert _counts(tail, [first]) == {"Keep:removed": 300, "Keep:cut": 300}
        by_name = {
            tail.names[int(first.name[first.proc == i][0])]: p for i, p in enumerate(tail.processes)
        }
        os.unlink(by_name["Keep:removed"].path)
        with open(by_name["Keep:cut"].path, "r+b") as fh:
            fh.truncate(4096 + 32)
        after = tail.poll()
        assert len(after) == 0 and after.skipped == 0
        assert by_name["Keep:removed"].state == REMOVED
        assert by_name["Keep:cut"].state == TRUNCATED
        assert sorted(after.ended) == [0, 1]
        assert [p.records for p in tail.processes] == [300, 300]
        assert len(tail.poll()) == 0  # neither is read again
    finally:
        for p in procs:
            p.communicate(timeout=60)  # closes stdin: the writer ends


def test_a_header_not_yet_written_is_waited_for_and_a_foreign_file_counted_once(
    logdir: str,
) -> None:
    os.makedirs(logdir)
    pending = os.path.join(logdir, "liteprof-1-0000000000000000.lpf")
    with open(pending, "wb") as fh:
        fh.write(b"\0" * 4096)  # reserved, header not written: a writer's first instant
    with open(os.path.join(logdir, "junk.lpf"), "wb") as fh:
        fh.write(b"not a log at all" * 300)
    tail = Tail(logdir)
    for _ in range(3):
        b = tail.poll()
        assert len(b) == 0 and tail.processes == []
    assert tail.skipped == 1  # the foreign file, once
    liteprof.enable(logdir)
    try:
        with liteprof.scope("Late:a"):
            pass
    finally:
        liteprof.disable()
    b = tail.poll()
    assert _counts(tail, [b]) == {"Late:a": 1} and len(tail.processes) == 1
    assert tail.skipped == 1


def test_entries_that_are_not_files_are_passed_over_as_the_report_does(logdir: str) -> None:
    # A directory or a FIFO named *.lpf beside the logs: `liteprof report DIR` reads the
    # logs, so `serve` and `top` must not refuse the whole directory (nor block on the FIFO).
    os.makedirs(os.path.join(logdir, "old.lpf"))
    os.mkfifo(os.path.join(logdir, "pipe.lpf"))
    liteprof.enable(logdir)
    try:
        with liteprof.scope("Here:a"):
            pass
    finally:
        liteprof.disable()
    tail = Tail(logdir)
    batches = [tail.poll(), tail.poll()]
    assert _counts(tail, batches) == {"Here:a": 1} and len(tail.processes) == 1
    assert tail.skipped == 0 and _reader_counts(logdir) == {"Here:a": 1}


def test_a_damaged_slot_is_counted_once(logdir: str) -> None:
    liteprof.enable(logdir)
    try:
        for _ in range(10):
            with liteprof.scope("Dmg:a"):
                pass
    finally:
        liteprof.disable()
    (path,) = log_files(logdir)
    ev = read_logs([logdir])
    assert ev.records == 10
    # Forge the 3rd event's kind into a reserved one (what a reader must count).
    with open(path, "r+b") as fh:
        data = bytearray(fh.read())
        offsets = [
            off
            for off in range(4096, len(data), 32)
            if struct.unpack_from("<I", data, off + 28)[0] & 0xFF == 1
        ]
        struct.pack_into("<I", data, offsets[2] + 28, 7)
        fh.seek(0)
        fh.write(data)
    tail = Tail(logdir)
    b = tail.poll()
    assert len(b) == 9 and b.skipped == 1
    assert tail.poll().skipped == 0 and tail.skipped == read_logs([logdir]).skipped == 1
