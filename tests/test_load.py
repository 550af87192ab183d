"""Load and soak: many processes and threads at once lose nothing; long runs stay flat.

Each test starts its own child processes with ``LITEPROF_LOG`` (the conftest sets
``LITEPROF_PURE`` to match the backend under test).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
from typing import Any

import pytest

from .helpers import child_env, log_files, read

pytestmark = pytest.mark.usefixtures("backend")  # every test here records

PROCS, THREADS, SCOPES = 16, 4, 5000

# Every child waits for the "go" file, so that all 16 processes and 64 threads record at
# the same time, into one directory.
WORKER = """
import os, sys, threading, time, liteprof
go = sys.argv[1]
while not os.path.exists(go):
    time.sleep(0.001)
barrier = threading.Barrier(4)
def work(k):
    barrier.wait()
    for i in range(5000):
        with liteprof.scope("Load:Outer"):
            if i % 10 == 0:
                with liteprof.scope(f"Load:Inner{k}"):
                    pass
threads = [threading.Thread(target=work, args=(k,), name=f"load-{k}") for k in range(4)]
for t in threads: t.start()
for t in threads: t.join()
"""


def test_sixteen_processes_of_four_threads_lose_nothing(logdir: str, tmp_path: Any) -> None:
    go = os.path.join(os.fspath(tmp_path), "go")
    env = child_env(LITEPROF_LOG=logdir)
    procs = [
        subprocess.Popen([sys.executable, "-c", textwrap.dedent(WORKER), go], env=env)
        for _ in range(PROCS)
    ]
    try:
        time.sleep(0.2)
        open(go, "w").close()
        for p in procs:
            assert p.wait(timeout=120) == 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert len(log_files(logdir)) == PROCS
    report = read(logdir)
    rows = {r["name"]: r for r in report["scopes"]}
    outer = PROCS * THREADS * SCOPES
    assert rows["Load:Outer"]["count"] == outer == 320_000
    assert sum(rows[f"Load:Inner{k}"]["count"] for k in range(THREADS)) == outer // 10
    assert report["records"] == outer + outer // 10
    assert report["skipped"] == 0
    assert (
        sorted(p["records"] for p in report["processes"]) == [THREADS * SCOPES * 11 // 10] * PROCS
    )
    by_thread = read(logdir, by="thread")
    counts = [r["count"] for r in by_thread["scopes"] if r["name"] == "Load:Outer"]
    assert counts == [SCOPES] * (PROCS * THREADS)


SOAK = """
import os, sys, liteprof
N = int(sys.argv[1])
def rss():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
step = liteprof.Scope("Soak:Step")
for _ in range(300_000):  # warm up: blocks at their largest size, caches filled
    with step:
        pass
before = rss()
for i in range(N):
    with liteprof.scope("Soak:Step"):
        if i % 1000 == 0:
            with step:
                pass
print(rss() - before, liteprof.enabled())
"""


def test_ten_million_scopes_keep_memory_flat(logdir: str, backend: str) -> None:
    """10M scopes (plus 10k nested) with the C core; the pure-Python recorder does 2M,
    which already fills 64 MiB of blocks, so that the test stays within seconds.
    The resident set may not grow by more than 64 MiB: full blocks are unmapped."""
    n = 10_000_000 if backend == "c" else 2_000_000
    try:
        proc = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(SOAK), str(n)],
            env=child_env(LITEPROF_LOG=logdir),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr
        assert not proc.stderr
        growth, on = proc.stdout.split()
        assert on == "True"
        assert int(growth) < 64 << 20, f"RSS grew by {int(growth) / 2**20:.1f} MiB"
        (path,) = log_files(logdir)
        assert os.path.getsize(path) >= (n + 300_000) * 32  # everything went to the file
    finally:
        shutil.rmtree(logdir, ignore_errors=True)  # up to 330 MB: do not keep it around


CHURN = """
import os, resource, threading, liteprof
# Few descriptors: a recorder that kept a mapping (mmap dup()s the descriptor) for every
# thread that ever recorded would run out here and stop recording.
resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
def rss():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
def work():
    for _ in range(3):
        with liteprof.scope("Churn:Task"):
            pass
for _ in range(50):
    t = threading.Thread(target=work); t.start(); t.join()
def maps():
    with open("/proc/self/maps") as fh:
        return len(fh.readlines())
fds, mapped, before = len(os.listdir("/proc/self/fd")), maps(), rss()
for i in range(2000):
    batch = [threading.Thread(target=work) for _ in range(4)]
    for t in batch: t.start()
    for t in batch: t.join()
print(len(os.listdir("/proc/self/fd")) - fds, maps() - mapped, rss() - before,
      liteprof.enabled())
"""


def test_short_lived_threads_leak_no_mapping_or_descriptor(logdir: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CHURN)],
        env=child_env(LITEPROF_LOG=logdir),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert not proc.stderr, proc.stderr
    fds, maps, growth, on = proc.stdout.split()
    assert on == "True"
    assert int(fds) <= 4 and int(maps) <= 16, proc.stdout
    assert int(growth) < 16 << 20, proc.stdout
    report = read(logdir)
    assert report["records"] == (50 + 8000) * 3 and report["skipped"] == 0
