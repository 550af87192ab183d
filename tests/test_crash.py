"""Crashes: every scope that closed is on disk, however the process ends, with no flush().

Events are stored into a shared file mapping, so they are in the page cache the moment the
scope closes; nothing is buffered in the process. (This file extends and replaces the
single SIGKILL test that was in ``test_processes.py``.)
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from .helpers import child_env, log_files, read, report_json, scopes_by_name

pytestmark = pytest.mark.usefixtures("backend")  # every test here records

# Four threads close scopes of two names each (nested, so self times and depths are
# exercised), enough to fill several blocks per thread; then a worker thread and the main
# thread each hold a scope open while the process dies.
QUIESCENT = """
import os, signal, sys, threading, time, liteprof
N = 2500
def work(k):
    for i in range(N):
        with liteprof.scope(f"Crash:Outer{k}"):
            with liteprof.scope("Crash:Inner"):
                pass
threads = [threading.Thread(target=work, args=(k,), name=f"w{k}") for k in range(4)]
for t in threads: t.start()
for t in threads: t.join()
opened = threading.Event()
def hold():
    with liteprof.scope("Crash:OpenInThread"):
        opened.set()
        time.sleep(60)
threading.Thread(target=hold, daemon=True).start()
opened.wait()
with liteprof.scope("Crash:Open"):
    how = sys.argv[1]
    if how == "os._exit":
        os._exit(3)
    if how == "SIGSEGV":
        os.kill(os.getpid(), signal.SIGSEGV)
    print("ready", flush=True)
    time.sleep(60)
"""


def _no_core_dump() -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _run_and_end(code: str, how: str, logdir: str) -> int:
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), how],
        env=child_env(LITEPROF_LOG=logdir),
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=_no_core_dump,
    )
    assert proc.stdout is not None
    with proc.stdout:
        if how in ("SIGKILL", "SIGTERM"):
            assert proc.stdout.readline().strip() == "ready"
            proc.send_signal(getattr(signal, how))
        return proc.wait(timeout=60)


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM", "os._exit", "SIGSEGV"])
def test_every_closed_scope_survives_the_process_ending(logdir: str, how: str) -> None:
    code = _run_and_end(QUIESCENT, how, logdir)
    expected_status = {"SIGKILL": -9, "SIGTERM": -15, "os._exit": 3, "SIGSEGV": -11}[how]
    assert code == expected_status
    (path,) = log_files(logdir)
    report = read(logdir)
    rows = scopes_by_name(report)
    assert report["skipped"] == 0
    assert report["records"] == 4 * 2500 * 2
    assert rows["Crash:Inner"]["count"] == 4 * 2500
    for k in range(4):
        assert rows[f"Crash:Outer{k}"]["count"] == 2500
        assert 0 <= rows[f"Crash:Outer{k}"]["self_ns"] <= rows[f"Crash:Outer{k}"]["total_ns"]
    assert "Crash:Open" not in rows and "Crash:OpenInThread" not in rows
    by_thread = read(logdir, by="thread")
    outer = {
        r["thread"]: r["count"] for r in by_thread["scopes"] if r["name"].startswith("Crash:Outer")
    }
    assert outer == {f"w{k}": 2500 for k in range(4)}
    # What the command line reports from the dead process's file is the same.
    cli = report_json(path)
    assert (cli["records"], cli["skipped"]) == (report["records"], 0)


# Threads record as fast as they can and count what has closed; the process dies while
# they are in the middle of it (killed from outside, or os._exit from one of the threads).
BUSY = """
import os, sys, threading, time, liteprof
done = [0] * 4
def work(k):
    i = 0
    while True:
        with liteprof.scope("Busy:Step"):
            with liteprof.scope(f"Busy:Thread{k}"):
                pass
        i += 1
        done[k] = i  # after the scope closed: a lower bound of what is on disk
threads = [threading.Thread(target=work, args=(k,), daemon=True) for k in range(4)]
for t in threads: t.start()
deadline = time.monotonic() + 60
while min(done) < 5000 and time.monotonic() < deadline:  # every thread is recording
    time.sleep(0.005)
if sys.argv[1] == "os._exit":
    print(sum(done), flush=True)
    os._exit(0)
while True:
    print(sum(done), flush=True)
    time.sleep(0.01)
"""


@pytest.mark.parametrize("how", ["SIGKILL", "os._exit"])
def test_killed_while_threads_are_recording(logdir: str, how: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(BUSY), how],
        env=child_env(LITEPROF_LOG=logdir),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    with proc.stdout:
        closed = int(proc.stdout.readline())
        if how == "SIGKILL":
            for _ in range(5):
                closed = int(proc.stdout.readline())
            proc.kill()
        proc.wait(timeout=60)
    report = read(logdir)
    rows = scopes_by_name(report)
    assert report["skipped"] == 0
    assert rows["Busy:Step"]["count"] >= closed >= 20000  # 4 x 5000
    # Inner scopes close first: each thread's inner count is its outer count or one more.
    inner = sum(rows[f"Busy:Thread{k}"]["count"] for k in range(4))
    assert 0 <= inner - rows["Busy:Step"]["count"] <= 4
    assert report["records"] == rows["Busy:Step"]["count"] + inner


def test_a_log_is_readable_while_its_writer_still_runs(logdir: str) -> None:
    """No flush, no exit: another process reads what has closed so far."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
            import sys, time, liteprof
            for i in range(3000):
                with liteprof.scope("Live:Step"):
                    pass
            print("ready", flush=True)
            sys.stdin.readline()
            """
            ),
        ],
        env=child_env(LITEPROF_LOG=logdir),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdin is not None
    try:
        assert proc.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 30
        while not log_files(logdir) and time.monotonic() < deadline:
            time.sleep(0.01)
        report = read(logdir)
        assert scopes_by_name(report)["Live:Step"]["count"] == 3000
        assert report["skipped"] == 0
    finally:
        proc.stdin.close()
        proc.stdout.close()
        proc.wait(timeout=60)
    assert os.path.getsize(log_files(logdir)[0]) > 0
