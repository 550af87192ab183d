"""Faults of the place liteprof writes to: the profiled program always finishes normally.

A full disk, a log directory deleted under a running program, a path under a regular
file, a read-only file system, no inodes left: each is a recording failure, reported once
through logger ``liteprof``, after which recording stops and the program runs on; what was
recorded before the failure stays readable. The file-system faults use small tmpfs mounts
(we run as root here and in CI); they skip only where mounting is not permitted.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest

from .faultkit import mount_tmpfs, tmpfs, unmount
from .helpers import child_env, log_files, report_json, scopes_by_name

pytestmark = pytest.mark.usefixtures("backend")  # every test here records

# The child logs with the logger's name in every line, so the test can tell liteprof's
# warning from anything else on stderr.
FILL = """
import logging, sys, threading
logging.basicConfig(format="%(name)s:%(levelname)s:%(message)s")
import liteprof
N, T = int(sys.argv[1]), int(sys.argv[2])
totals = [0] * T
def work(k):
    s = 0
    for i in range(N // T):
        with liteprof.scope("Fill:Step"):
            with liteprof.scope(f"Fill:Thread{k}"):
                s += i
    totals[k] = s
threads = [threading.Thread(target=work, args=(k,)) for k in range(T)]
for t in threads: t.start()
for t in threads: t.join()
print(sum(totals), liteprof.enabled())
"""


def _expected_sum(n: int, t: int) -> int:
    return t * sum(range(n // t))


def _run_child(
    code: str, *args: str, prelude: str = "", **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code), *args],
        env=child_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _one_warning(stderr: str, *words: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("liteprof:WARNING:liteprof: recording stopped"), stderr
    for word in words:
        assert word in lines[0], stderr
    return lines[0]


@pytest.fixture
def small_fs(tmp_path: Any) -> Iterator[str]:
    """A 512 KiB tmpfs, unmounted afterwards whatever happens."""
    with tmpfs(os.path.join(os.fspath(tmp_path), "fs"), "size=512k") as path:
        yield path


# Without preallocation, a full disk would be a SIGBUS on the first store into a mapped
# block: this prelude takes posix_fallocate away, as on file systems that lack it.
NO_FALLOCATE = """
import errno, os
def _unsupported(fd, offset, length):
    raise OSError(errno.EOPNOTSUPP, "not supported")
os.posix_fallocate = _unsupported
"""


@pytest.mark.parametrize("threads", [1, 4])
@pytest.mark.parametrize("fallocate", [True, False], ids=["fallocate", "no-fallocate"])
def test_disk_full_program_finishes_and_what_was_written_is_readable(
    small_fs: str, threads: int, fallocate: bool
) -> None:
    log = os.path.join(small_fs, "log")
    n = 1_000_000
    proc = _run_child(
        FILL, str(n), str(threads), LITEPROF_LOG=log, prelude="" if fallocate else NO_FALLOCATE
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(_expected_sum(n, threads)), "False"]
    _one_warning(proc.stderr, "No space left on device")
    report = report_json(log)
    assert report["records"] > 0 and report["skipped"] == 0
    rows = scopes_by_name(report)
    inner = sum(
        rows[f"Fill:Thread{k}"]["count"] for k in range(threads) if f"Fill:Thread{k}" in rows
    )
    assert 0 <= inner - rows["Fill:Step"]["count"] <= threads


def test_disk_already_full_when_recording_starts(small_fs: str) -> None:
    with open(os.path.join(small_fs, "filler"), "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\xff" * 4096)
        except OSError:
            pass
    proc = _run_child(FILL, "100000", "2", LITEPROF_LOG=os.path.join(small_fs, "log"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(_expected_sum(100_000, 2)), "False"]
    _one_warning(proc.stderr, "No space left on device")


def test_no_inodes_left(tmp_path: Any) -> None:
    with tmpfs(os.path.join(os.fspath(tmp_path), "fs"), "size=1m", "nr_inodes=2") as fs:
        proc = _run_child(FILL, "100000", "2", LITEPROF_LOG=os.path.join(fs, "a", "b"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(_expected_sum(100_000, 2)), "False"]
    _one_warning(proc.stderr, "No space left on device")


def test_log_directory_deleted_while_recording(tmp_path: Any) -> None:
    """Another thread deletes the log directory mid-run; the program keeps recording
    across new blocks, in new threads too, and ends normally. liteprof notices at the next
    block, warns once and stops, rather than fill an unreachable file."""
    log = os.path.join(os.fspath(tmp_path), "log")
    code = """
        import logging, os, shutil, threading
        logging.basicConfig(format="%(name)s:%(levelname)s:%(message)s")
        import liteprof
        log = os.environ["LITEPROF_LOG"]
        stop = threading.Event()
        counts = [0, 0, 0]
        def work(k):
            while not stop.is_set():
                with liteprof.scope("Bg:Step"):
                    counts[k] += 1
        workers = [threading.Thread(target=work, args=(k,)) for k in range(2)]
        for t in workers: t.start()
        total = 0
        for i in range(20_000):
            with liteprof.scope("Main:Before"):
                total += i
        deleter = threading.Thread(target=shutil.rmtree, args=(log,))
        deleter.start(); deleter.join()
        for i in range(400_000):
            with liteprof.scope("Main:After"):
                total += i
        late = threading.Thread(target=work, args=(2,))
        late.start()
        stop.set()
        for t in workers + [late]: t.join()
        print(total, os.path.exists(log), min(counts[:2]) > 0)
        """
    proc = _run_child(code, LITEPROF_LOG=log)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(sum(range(20_000)) + sum(range(400_000))), "False", "True"]
    _one_warning(proc.stderr, "deleted")


@pytest.mark.parametrize(
    "where",
    ["under a regular file", "is a regular file", "deep under a regular file", "name too long"],
)
def test_log_path_that_cannot_be_a_directory(tmp_path: Any, where: str) -> None:
    blocker = os.path.join(os.fspath(tmp_path), "plain-file")
    with open(blocker, "w") as fh:
        fh.write("x")
    log = {
        "under a regular file": os.path.join(blocker, "log"),
        "is a regular file": blocker,
        "deep under a regular file": os.path.join(blocker, "a", "b", "c"),
        "name too long": os.path.join(os.fspath(tmp_path), "n" * 300),
    }[where]
    proc = _run_child(FILL, "100000", "2", LITEPROF_LOG=log)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(_expected_sum(100_000, 2)), "False"]
    _one_warning(proc.stderr)
    with open(blocker) as fh:
        assert fh.read() == "x"


@pytest.mark.parametrize("how", ["read-only tmpfs", "read-only bind mount"])
@pytest.mark.parametrize("sub", ["", "log"])
def test_read_only_directory(tmp_path: Any, how: str, sub: str) -> None:
    """Root ignores 0o555, so the directory is made read-only by the mount itself."""
    ro = os.path.join(os.fspath(tmp_path), "ro")
    if how == "read-only tmpfs":
        mount_tmpfs(ro, "ro", "size=64k")
    else:
        src = os.path.join(os.fspath(tmp_path), "src")
        os.mkdir(src)
        os.mkdir(ro)
        mount_tmpfs(ro, "size=64k")  # skips where mounting is not permitted
        unmount(ro)
        subprocess.run(["mount", "--bind", src, ro], check=True)
        try:
            subprocess.run(["mount", "-o", "remount,bind,ro", ro], check=True)
        except BaseException:
            unmount(ro)
            raise
    try:
        assert not os.access(ro, os.W_OK) or _really_read_only(ro)
        log = os.path.join(ro, sub) if sub else ro
        proc = _run_child(FILL, "100000", "2", LITEPROF_LOG=log)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split() == [str(_expected_sum(100_000, 2)), "False"]
        _one_warning(proc.stderr, "Read-only file system")
        assert log_files(ro) == []
    finally:
        unmount(ro)
    assert not os.path.ismount(ro)


def _really_read_only(path: str) -> bool:
    try:
        with open(os.path.join(path, "probe"), "w"):
            return False
    except OSError:
        return True
