"""The log file as the writer makes it: small first blocks for short-lived threads, a
file that another process truncates, a log directory that others could write to, a
process killed while it creates its file (``docs/RELIABILITY.md``, ``docs/FORMAT.md``)."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
from typing import Any

import pytest

import liteprof
from liteprof.log import format as F

from . import rawlog
from .helpers import child_env, cli, log_files, read, report_json, scopes_by_name

LOGGED = 'import logging\nlogging.basicConfig(format="%(name)s:%(levelname)s:%(message)s")\n'


def _one_warning(stderr: str, *words: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("liteprof:WARNING:liteprof:"), stderr
    for word in words:
        assert word in lines[0], stderr
    return lines[0]


# -- short-lived threads ------------------------------------------------------------------


def test_a_thousand_short_threads_cost_little_disk(logdir: str, backend: str) -> None:
    """1000 threads of 5 events each: at most 128 bytes of log per event (a 4 KiB block
    per thread made that 845), and every event reads back."""
    liteprof.enable(logdir)

    def work() -> None:
        for _ in range(5):
            with liteprof.scope("Short:Work"):
                pass

    for _ in range(1000):
        t = threading.Thread(target=work)
        t.start()
        t.join()
    liteprof.disable()
    (path,) = log_files(logdir)
    size = os.path.getsize(path)
    assert size <= 128 * 5000, size
    report = read(logdir)
    assert report["skipped"] == 0
    assert scopes_by_name(report)["Short:Work"]["count"] == 5000
    layout = rawlog.read(path)
    owners = [b.owner for b in layout.blocks if b.owner < F.FIRST_RESERVED_OWNER]
    assert len(set(owners)) == 1000  # one block each, carved from shared arenas
    assert all(b.size == F.MIN_BLOCK for b in layout.blocks if b.owner < F.FIRST_RESERVED_OWNER)


def test_blocks_grow_from_small_to_own_mappings_and_keep_order(logdir: str, backend: str) -> None:
    """A busy thread goes from arena blocks to blocks of its own; its events read back in
    the order they closed, nested ones linked to their parents."""
    liteprof.enable(logdir)
    n = 20_000
    for _ in range(n):
        with liteprof.scope("Grow:Outer"):
            with liteprof.scope("Grow:Inner"):
                pass
    liteprof.disable()
    (path,) = log_files(logdir)
    layout = rawlog.read(path)
    sizes = [b.size for b in layout.blocks if b.owner < F.FIRST_RESERVED_OWNER]
    assert sizes[:4] == [256, 512, 1024, 2048] and max(sizes) > 4096
    report = read(logdir)
    rows = scopes_by_name(report)
    assert rows["Grow:Outer"]["count"] == rows["Grow:Inner"]["count"] == n
    assert report["skipped"] == 0
    tree = {tuple(node["path"]): node["count"] for node in report.get("tree", [])}
    if tree:
        assert tree[("Grow:Outer", "Grow:Inner")] == n


# -- a log truncated by another process -------------------------------------------------

TRUNCATED = (
    LOGGED
    + """
import os, sys, threading
import liteprof
log = os.environ["LITEPROF_LOG"]
stop = threading.Event()
done = [0, 0]
def background(k):
    while not stop.is_set():
        with liteprof.scope("Bg:Step"):
            done[k] += 1
workers = [threading.Thread(target=background, args=(k,)) for k in range(2)]
for t in workers: t.start()
total = 0
for i in range(50_000):
    with liteprof.scope("Main:Before"):
        total += i
(path,) = [os.path.join(log, f) for f in os.listdir(log) if f.endswith(".lpf")]
print(path, flush=True)
sys.stdin.readline()  # the test truncates the file now, from another process
for i in range(300_000):
    with liteprof.scope("Main:After"):
        total += i
late = threading.Thread(target=background, args=(0,))
late.start(); stop.set()
for t in workers + [late]: t.join()
print(total, liteprof.enabled(), min(done) > 0)
"""
)


@pytest.mark.parametrize("how", ["to zero", "to its header", "copytruncate"])
def test_log_truncated_by_another_process(logdir: str, backend: str, how: str) -> None:
    """A cleanup script or ``logrotate copytruncate`` cuts the live log: the program runs
    to the end (before the fix it died of SIGBUS on both backends), with one warning, and
    what is left of the file still reads."""
    proc = subprocess.Popen(
        [sys.executable, "-c", TRUNCATED],
        env=child_env(LITEPROF_LOG=logdir),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdin is not None
    path = proc.stdout.readline().strip()
    assert path, proc.communicate(timeout=60)
    if how == "copytruncate":
        with open(path, "rb") as src, open(path + ".1", "wb") as dst:
            dst.write(src.read())
    os.truncate(path, 0 if how != "to its header" else F.HEADER_SIZE)
    out, err = proc.communicate("go\n", timeout=120)
    assert proc.returncode == 0, (proc.returncode, err)
    assert out.split() == [str(sum(range(50_000)) + sum(range(300_000))), "False", "True"]
    _one_warning(err, "recording stopped", "truncated by another process")
    if how != "to zero":
        report = report_json(path)
        assert report["records"] >= 0
    if how == "copytruncate":
        assert scopes_by_name(report_json(path + ".1"))["Main:Before"]["count"] == 50_000


WITHOUT_GUARD = (
    LOGGED
    + """
import sys
sys.modules["liteprof.record._core"] = None  # an install without the C core
import os
import liteprof
from liteprof.log import _native, writer
assert not _native.GUARDED
orig = writer.LogWriter.new_block
def new_block(self, owner, size):
    if size > writer.SMALL_MAX and not hasattr(self, "cut"):
        self.cut = True
        os.truncate(self.path, 0)  # another process, at the moment of a new block
    return orig(self, owner, size)
writer.LogWriter.new_block = new_block
liteprof.enable(os.environ["LITEPROF_LOG"])
total = 0
for i in range(100_000):
    with liteprof.scope("Main:Step"):
        total += i
print(total, liteprof.enabled())
"""
)


def test_without_the_c_core_a_truncation_is_seen_at_the_next_block(logdir: str) -> None:
    """Without the SIGBUS guard the writer still checks the file's size at every new
    region: a truncation that happens before the next block stops recording with one
    warning instead of letting the program store into pages that no longer exist."""
    proc = subprocess.run(
        [sys.executable, "-c", WITHOUT_GUARD],
        # LITEPROF_PURE: the twin chosen, so the one warning is the truncation's, not the
        # notice that the C core is missing
        env=child_env(LITEPROF_LOG=logdir, LITEPROF_PURE="1"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, (proc.returncode, proc.stderr)
    assert proc.stdout.split() == [str(sum(range(100_000))), "False"]
    _one_warning(proc.stderr, "truncated by another process")


# -- a log directory others can write to --------------------------------------------------


def _record_one(directory: str) -> None:
    liteprof.enable(directory)
    with liteprof.scope("x"):
        pass
    liteprof.disable()


@pytest.mark.parametrize("case", ["world-writable", "owned by another user", "sticky"])
def test_log_directory_that_others_can_write_to(
    tmp_path: Any, backend: str, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Another (non-root) user who owns the log directory, or any user where it is
    world-writable without the sticky bit, can replace the log and forge the report:
    liteprof warns once and every report of the file says so."""
    directory = os.path.join(os.fspath(tmp_path), "shared")
    os.mkdir(directory)
    if case == "owned by another user":
        if os.geteuid() != 0:
            pytest.skip("making a directory another user owns needs root")
        os.chown(directory, 54321, 54321)
    else:
        os.chmod(directory, 0o777 if case == "world-writable" else 0o1777)
    caplog.set_level(logging.WARNING, logger="liteprof")
    _record_one(directory)
    _record_one(directory)  # a second file in the same process: no second warning
    warnings = [r.getMessage() for r in caplog.records if r.name == "liteprof"]
    report = report_json(directory)
    texts = [w for p in report["processes"] for w in p["warnings"]]
    table = cli("report", directory).stdout
    if case == "sticky":
        assert warnings == [] and texts == [] and "warning:" not in table
        return
    word = "uid 54321" if case == "owned by another user" else "no sticky bit"
    assert len(warnings) == 1 and word in warnings[0], warnings
    assert len(report["processes"]) == 2 and all(
        word in p["warnings"][0] for p in report["processes"]
    )
    assert f"warning: process {os.getpid()}" in table and word in table


def test_a_private_log_directory_gives_no_warning(logdir: str) -> None:
    _record_one(logdir)
    report = report_json(logdir)
    assert [p["warnings"] for p in report["processes"]] == [[]]


# -- a process killed while it creates its file -------------------------------------------

KILLED_AT_HEADER = """
import os, sys
if sys.argv[1] == "no-tmpfile" and hasattr(os, "O_TMPFILE"):
    del os.O_TMPFILE  # a system or file system without O_TMPFILE
real = os.pwrite
def pwrite(fd, data, offset):
    if offset == 0:
        os.kill(os.getpid(), 9)  # killed between reserving the file and its header
    return real(fd, data, offset)
os.pwrite = pwrite
import liteprof
liteprof.enable(os.environ["LITEPROF_LOG"])
with liteprof.scope("never"):
    pass
"""


@pytest.mark.parametrize("how", ["tmpfile", "no-tmpfile"])
def test_killed_while_creating_its_file(logdir: str, backend: str, how: str) -> None:
    """Before the fix a kill there left a 4 KiB file of zeros, and every later report of
    the directory exited 2. Now the file only appears with its header (O_TMPFILE, then a
    link), or, where that is not available, is empty and counted as one skipped file."""
    _record_one(logdir)
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_AT_HEADER, how],
        env=child_env(LITEPROF_LOG=logdir),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    files = log_files(logdir)
    sizes = sorted(os.path.getsize(f) for f in files)
    with_tmpfile = how == "tmpfile" and hasattr(os, "O_TMPFILE")
    assert len(files) == (1 if with_tmpfile else 2), files
    assert all(s == 0 or s >= F.HEADER_SIZE for s in sizes), sizes
    for path in files:
        with open(path, "rb") as fh:
            head = fh.read(F.HEADER_SIZE)
        assert head == b"" or head.startswith(F.MAGIC), head[:16]
    proc = cli("report", logdir, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert scopes_by_name(report)["x"]["count"] == 1
    assert report["skipped"] == (0 if with_tmpfile else 1)


def test_the_log_file_is_private_to_its_writer(logdir: str) -> None:
    """Made nameless and linked, the file still gets mode 0644 less the umask."""
    _record_one(logdir)
    (path,) = log_files(logdir)
    assert os.stat(path).st_mode & 0o777 == 0o644 & ~_umask()


def _umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old
