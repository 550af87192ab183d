"""The tail reader (``liteprof top``, ``liteprof serve``) of bounded logs
(``LITEPROF_MAX_MB``): events folded into the log's summary before the tail read them are
taken from the summary, so what a tail adds up is the whole-file reader's count, errors,
totals and duration buckets per name, however late it started or however slowly it
polled (``docs/FORMAT.md``, "Bounded logs")."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest

from liteprof.cli.top import Window
from liteprof.log import format as F
from liteprof.log.reader import read_logs
from liteprof.log.tail import BOUNDS_NS, NBUCKETS, Batch, Tail

from . import rawlog
from .helpers import child_env, read, scopes_by_name
from .test_bounded import _forge as forge_summary

# Two threads, PHASE iterations each of two nested scopes per phase (every 1000th inner
# one raising); between the phases the program waits for the test (``sync``/go).
PHASE = 375_000
EVENTS = 2 * 2 * 2 * PHASE  # 3M
PHASES = f"""
import os, sys, threading, time
import liteprof
sync = sys.argv[1]
def work(k):
    for i in range({PHASE}):
        with liteprof.scope("Bound:Outer"):
            try:
                with liteprof.scope(f"Bound:Inner{{k}}"):
                    if i % 1000 == 999:
                        raise ValueError(i)
            except ValueError:
                pass
def phase():
    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in threads: t.start()
    for t in threads: t.join()
phase()
open(os.path.join(sync, "phase1"), "w").close()
while not os.path.exists(os.path.join(sync, "go")):
    time.sleep(0.01)
phase()
"""


def start_phases(root: str, **env: str) -> tuple[subprocess.Popen[str], str, str]:
    """The two-phase workload, recording into ``root/prof`` with an 8 MiB bound; returns
    the process, the log directory and the sync directory."""
    logdir, sync = os.path.join(root, "prof"), os.path.join(root, "sync")
    os.makedirs(sync)
    proc = subprocess.Popen(
        [sys.executable, "-c", PHASES, sync],
        env=child_env(LITEPROF_LOG=logdir, LITEPROF_MAX_MB="8", **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc, logdir, sync


def wait_for(path: str, proc: subprocess.Popen[str], deadline_s: float = 240) -> None:
    end = time.monotonic() + deadline_s
    while not os.path.exists(path):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < end, f"timed out waiting for {path}"
        time.sleep(0.02)


class Sums:
    """What a tail's batches add up to, per name: count, errors, total, self, min, max,
    duration buckets (of ``BOUNDS_NS``)."""

    def __init__(self, tail: Tail) -> None:
        self.tail = tail
        self.rows: dict[str, list[Any]] = {}
        self.bounds = np.array(BOUNDS_NS, np.int64)

    def _row(self, name: int) -> list[Any]:
        key = self.tail.names[name]
        if key not in self.rows:
            self.rows[key] = [0, 0, 0, 0, None, None, np.zeros(NBUCKETS, np.int64)]
        return self.rows[key]

    def add(self, batch: Batch) -> None:
        for name in np.unique(batch.name).tolist():
            sel = batch.name == name
            dur = batch.dur[sel]
            row = self._row(name)
            row[0] += int(sel.sum())
            row[1] += int(batch.error[sel].sum())
            row[2] += int(dur.sum())
            row[3] += int(batch.self_ns[sel].sum())
            low, high = int(dur.min()), int(dur.max())
            row[4] = low if row[4] is None else min(row[4], low)
            row[5] = high if row[5] is None else max(row[5], high)
            row[6] += np.bincount(
                np.searchsorted(self.bounds, dur, side="left"), minlength=NBUCKETS
            )
        folds = batch.folds
        # What comes from a summary never takes anything back: counters stay monotonic.
        assert (folds.count >= 0).all() and (folds.buckets >= 0).all()
        assert (folds.errors >= 0).all() and (folds.total_ns >= 0).all()
        assert (folds.buckets.sum(axis=1) == folds.count).all()
        for i, name in enumerate(folds.name.tolist()):
            row = self._row(name)
            row[0] += int(folds.count[i])
            row[1] += int(folds.errors[i])
            row[2] += int(folds.total_ns[i])
            row[3] += int(folds.self_ns[i])
            low, high = int(folds.min_ns[i]), int(folds.max_ns[i])
            row[4] = low if row[4] is None else min(row[4], low)
            row[5] = high if row[5] is None else max(row[5], high)
            row[6] += folds.buckets[i]


def expected(logdir: str) -> tuple[dict[str, Mapping[str, Any]], dict[str, np.ndarray]]:
    """The report's rows per name, and the whole-file reader's buckets per name (of the
    events it read plus the summary's)."""
    rows = scopes_by_name(read(logdir))
    ev = read_logs([logdir])
    bounds = np.array(BOUNDS_NS, np.int64)
    buckets = {}
    for i, name in enumerate(ev.names):
        dur = ev.dur[ev.name == i]
        b = np.bincount(np.searchsorted(bounds, dur, side="left"), minlength=NBUCKETS)
        for d in ev.dropped:
            if d.name == i:
                assert d.bounds_ns == BOUNDS_NS
                b = b + np.array(d.buckets, np.int64)
        buckets[name] = b
    assert ev.dropped, "nothing was folded: the test would prove nothing"
    return rows, buckets


def check(sums: Sums, rows: dict[str, Mapping[str, Any]], buckets: dict[str, np.ndarray]) -> None:
    assert sorted(sums.rows) == sorted(rows)
    for name, (count, errors, total, selfish, low, high, hist) in sums.rows.items():
        want = rows[name]
        got = (count, errors, total, selfish, low, high)
        assert got == (
            want["count"],
            want["errors"],
            want["total_ns"],
            want["self_ns"],
            want["min_ns"],
            want["max_ns"],
        ), name
        assert hist.tolist() == buckets[name].tolist(), name


def drain(tail: Tail, sums: Sums, window: Window | None = None) -> None:
    """Poll until every process is read to its end."""
    end = time.monotonic() + 60
    while True:
        batch = tail.poll()
        sums.add(batch)
        if window is not None:
            window.add(time.monotonic(), batch.name, batch.dur, batch.error, batch.proc)
            window.add_folds(batch.folds)
        if not batch.more and tail.processes and all(p.state != "live" for p in tail.processes):
            return
        assert time.monotonic() < end, "the tail never saw the process end"


def test_a_late_and_a_slow_tail_add_up_to_the_report(
    tmp_path: os.PathLike[str], backend: str
) -> None:
    """3M scopes in an 8 MiB log, with errors. One tail polled all along (its reads race
    the folds), one started after the first phase had folded most of it, then polled
    every 0.2 s (folds overtake it): both add up to exactly the report's counts, errors,
    totals and extremes and the whole-file reader's buckets; ``top``'s totals too."""
    proc, logdir, sync = start_phases(os.fspath(tmp_path))
    early = Tail(logdir)
    early_sums = Sums(early)
    try:
        while not os.path.exists(os.path.join(sync, "phase1")):
            assert proc.poll() is None, proc.communicate()
            early_sums.add(early.poll())
            time.sleep(0.002)
        late = Tail(logdir)
        late_sums = Sums(late)
        window = Window(10.0)
        first = late.poll()
        late_sums.add(first)
        window.add(time.monotonic(), first.name, first.dur, first.error, first.proc)
        window.add_folds(first.folds)
        # Started late: most of phase 1 is only in the summary (a poll reads at most its
        # budget, so this is what the log holds beyond its blocks).
        assert first.folds.count.sum() > 2 * PHASE, first.folds.count.sum()
        open(os.path.join(sync, "go"), "w").close()
        last_late = time.monotonic()
        while proc.poll() is None:
            early_sums.add(early.poll())
            if time.monotonic() - last_late > 0.2:
                batch = late.poll()
                late_sums.add(batch)
                window.add(time.monotonic(), batch.name, batch.dur, batch.error, batch.proc)
                window.add_folds(batch.folds)
                last_late = time.monotonic()
            time.sleep(0.002)
        _out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0 and err == "", err
        drain(early, early_sums)
        drain(late, late_sums, window)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    rows, buckets = expected(logdir)
    assert sum(r["count"] for r in rows.values()) == EVENTS
    assert rows["Bound:Inner0"]["errors"] == PHASE * 2 // 1000
    check(early_sums, rows, buckets)
    check(late_sums, rows, buckets)
    (p,) = late.processes
    assert p.folded > 0 and p.records + p.folded == EVENTS and late.folded == p.folded
    assert p.dropped == read_logs([logdir]).processes[0]["dropped"]
    assert early.processes[0].records + early.processes[0].folded >= EVENTS
    # top: the totals column is every event; the window holds only what was read.
    totals = {late.names[n]: c for (n, _p), c in window.totals.items()}
    assert totals == {name: r["count"] for name, r in rows.items()}


def test_a_tail_started_after_the_end_takes_the_summary_once(
    tmp_path: os.PathLike[str],
) -> None:
    """A tail that starts once the program is gone reads the blocks and the summary once:
    polls after that add nothing."""
    proc, logdir, sync = start_phases(os.fspath(tmp_path))
    try:
        wait_for(os.path.join(sync, "phase1"), proc)
        open(os.path.join(sync, "go"), "w").close()
        proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    tail = Tail(logdir, max_slots=50_000)  # a first read in several polls
    sums = Sums(tail)
    drain(tail, sums)
    for _ in range(3):
        again = tail.poll()
        assert len(again) == 0 and len(again.folds) == 0
    check(sums, *expected(logdir))


SMALL = """
import liteprof
for i in range(300_000):
    with liteprof.scope("Bound:Outer"):
        try:
            with liteprof.scope("Bound:Inner"):
                if i % 1000 == 999:
                    raise ValueError(i)
        except ValueError:
            pass
"""


@pytest.mark.parametrize("case", ["flipped bytes", "forged huge sums", "forged errors"])
def test_a_damaged_or_forged_summary_never_breaks_the_tail(
    tmp_path: os.PathLike[str], case: str
) -> None:
    """A summary whose checksum fails is not taken (the other, older one is, so counts
    stay below the truth); forged sums are bounded as the whole-file reader bounds them.
    Nothing raises, and nothing taken from a summary is negative."""
    root = os.fspath(tmp_path)
    logdir = os.path.join(root, "prof")
    proc = subprocess.run(
        [sys.executable, "-c", SMALL],
        env=child_env(LITEPROF_LOG=logdir, LITEPROF_MAX_MB="1"),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    truth = scopes_by_name(read(logdir))
    (name,) = os.listdir(logdir)
    path = os.path.join(logdir, name)
    with open(path, "rb") as fh:
        data = bytearray(fh.read())
    log = rawlog.read(path)
    summaries = [b for b in log.blocks if b.owner == F.SUMMARY_OWNER]
    newest = max(
        summaries, key=lambda b: int.from_bytes(data[b.offset + 40 : b.offset + 48], "little")
    )
    at = newest.offset + F.SLOT_SIZE
    nhist = int.from_bytes(data[at + 24 : at + 28], "little")
    first_record = 64 + 8 * len(F.HISTOGRAM_BOUNDS_NS) + 24 * nhist
    if case == "flipped bytes":
        for k in range(0, 400, 7):
            data[at + k] ^= 0x5A
    elif case == "forged huge sums":
        forge_summary(data, at, {first_record + 24: ("<Q", 2**64 - 1)})
    else:
        forge_summary(data, at, {first_record + 16: ("<Q", 2**63)})
    forged = os.path.join(root, "forged")
    os.makedirs(forged)
    with open(os.path.join(forged, name), "wb") as fh:
        fh.write(data)
    tail = Tail(forged)
    sums = Sums(tail)
    drain(tail, sums)
    assert sorted(sums.rows) == sorted(truth)
    for scope, (count, errors, total, selfish, low, high, _hist) in sums.rows.items():
        assert 0 <= errors <= count and 0 <= selfish <= total and low <= high
        if case == "flipped bytes":
            assert count <= truth[scope]["count"]
        else:
            assert count == truth[scope]["count"]


def test_a_tail_held_up_between_its_walk_and_the_summary_stays_exact(
    tmp_path: os.PathLike[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader held up (a busy machine) after each walk of the blocks, before it reads
    the summary: meanwhile the writer goes through over a hundred folds, more than the
    summary's history keeps, so what the history says of the blocks read from is not
    all; the headers, read again after the summary, tell the rest: the sums still add up
    exactly."""
    from liteprof.log import bounded

    real = bounded.newest_summary

    def held_up(*args: Any, **kwargs: Any) -> Any:
        time.sleep(0.6)
        return real(*args, **kwargs)

    monkeypatch.setattr(bounded, "newest_summary", held_up)
    proc, logdir, sync = start_phases(os.fspath(tmp_path))
    tail = Tail(logdir)
    sums = Sums(tail)
    try:
        while not os.path.exists(os.path.join(sync, "phase1")):
            assert proc.poll() is None, proc.communicate()
            sums.add(tail.poll())
        open(os.path.join(sync, "go"), "w").close()
        while proc.poll() is None:
            sums.add(tail.poll())
        assert proc.wait(timeout=60) == 0
        drain(tail, sums)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    check(sums, *expected(logdir))
