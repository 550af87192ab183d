"""Nothing liteprof writes can be changed by other users, and nothing it reads is run.

- Log files and every directory liteprof creates have no group/other write permission,
  whatever the umask (and a stricter umask is kept, never widened).
- A log file is created exclusively (``O_CREAT|O_EXCL|O_NOFOLLOW``): a symlink, file, pipe
  or directory planted under the name liteprof would use is left untouched, and liteprof
  picks another name. ``os.urandom`` is patched in-process to force the planted name.
- The reader never evaluates or unpickles anything from a log (bounds on every length it
  reads are in ``test_damaged.py::test_forged_lengths_counts_and_ids``).
"""

from __future__ import annotations

import json
import logging
import os
import stat
import struct
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

import liteprof
from liteprof.log import format as F

from .helpers import log_files, read, run_python, scopes_by_name

pytestmark = pytest.mark.usefixtures("backend")  # every test here records


@pytest.fixture
def umask() -> Iterator[Any]:
    old = os.umask(0o022)
    os.umask(old)

    def set_umask(mask: int) -> None:
        os.umask(mask)

    yield set_umask
    os.umask(old)


def _record_one(path: str) -> str:
    liteprof.enable(path)
    with liteprof.scope("x"):
        pass
    log = liteprof.log_path()
    liteprof.disable()
    assert log is not None
    return log


def test_no_group_or_other_write_whatever_the_umask(tmp_path: Any, umask: Any) -> None:
    base = os.fspath(tmp_path)
    umask(0)
    log = _record_one(os.path.join(base, "a", "b", "c"))
    for sub in ("a", "a/b", "a/b/c"):  # the intermediate directories too
        mode = stat.S_IMODE(os.stat(os.path.join(base, sub)).st_mode)
        assert mode & 0o022 == 0, (sub, oct(mode))
    assert stat.S_IMODE(os.stat(log).st_mode) & 0o022 == 0
    assert os.stat(log).st_uid == os.getuid()


def test_a_stricter_umask_is_kept(tmp_path: Any, umask: Any) -> None:
    base = os.fspath(tmp_path)
    umask(0o077)
    log = _record_one(os.path.join(base, "p", "q"))
    for sub in ("p", "p/q"):
        assert stat.S_IMODE(os.stat(os.path.join(base, sub)).st_mode) & 0o077 == 0
    assert stat.S_IMODE(os.stat(log).st_mode) & 0o077 == 0


def test_permissions_in_child_processes_with_a_permissive_umask(tmp_path: Any) -> None:
    log = os.path.join(os.fspath(tmp_path), "x", "y")
    run_python(
        """
        import os
        os.umask(0)
        import multiprocessing as mp, liteprof
        def work():
            with liteprof.scope("child"):
                pass
        if __name__ == "__main__":
            with liteprof.scope("parent"):
                pass
            p = mp.get_context("fork").Process(target=work); p.start(); p.join()
            p = mp.get_context("spawn").Process(target=work); p.start(); p.join()
        """,
        LITEPROF_LOG=log,
    )
    files = log_files(log)
    assert len(files) == 3
    for path in [*files, log, os.path.dirname(log)]:
        assert stat.S_IMODE(os.stat(path).st_mode) & 0o022 == 0, path


class _Urandom:
    """``os.urandom`` that returns chosen bytes first, then real random bytes."""

    def __init__(self, *forced: bytes) -> None:
        self.forced = list(forced)
        self.real = os.urandom

    def __call__(self, n: int) -> bytes:
        if self.forced:
            return self.forced.pop(0)[:n]
        return self.real(n)


def _planted_name(directory: str, token: bytes) -> str:
    return os.path.join(directory, f"{F.STEM_PREFIX}{os.getpid()}-{token.hex()}{F.SUFFIX}")


@pytest.mark.parametrize(
    "plant",
    [
        "symlink to a file",
        "dangling symlink",
        "regular file",
        "hard link",
        "fifo",
        "directory",
        "symlink to a dir",
    ],
)
def test_planted_names_are_never_opened(
    tmp_path: Any, logdir: str, plant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = os.fspath(tmp_path)
    os.makedirs(logdir)
    victim = os.path.join(base, "victim")
    with open(victim, "wb") as fh:
        fh.write(b"precious")
    os.chmod(victim, 0o666)
    token = b"\x01" * 8
    name = _planted_name(logdir, token)
    target = os.path.join(base, "would-be-created")
    if plant == "symlink to a file":
        os.symlink(victim, name)
    elif plant == "dangling symlink":
        os.symlink(target, name)
    elif plant == "regular file":
        with open(name, "wb") as fh:
            fh.write(b"planted")
    elif plant == "hard link":
        os.link(victim, name)
    elif plant == "fifo":
        os.mkfifo(name)
    elif plant == "directory":
        os.mkdir(name)
    else:
        os.mkdir(target)
        os.symlink(target, name)
    before = os.lstat(name)
    monkeypatch.setattr(os, "urandom", _Urandom(token))
    log = _record_one(logdir)
    monkeypatch.undo()

    assert log != name and os.path.dirname(log) == logdir
    after = os.lstat(name)
    assert (after.st_ino, after.st_mode, after.st_size, after.st_mtime_ns) == (
        before.st_ino,
        before.st_mode,
        before.st_size,
        before.st_mtime_ns,
    )
    with open(victim, "rb") as fh:
        assert fh.read() == b"precious"
    if plant == "dangling symlink":
        assert not os.path.lexists(target)
    if plant == "symlink to a dir":
        assert os.listdir(target) == []
    if plant == "regular file":
        with open(name, "rb") as fh:
            assert fh.read() == b"planted"
    assert scopes_by_name(read(log))["x"]["count"] == 1


def test_every_name_taken_is_a_failure_not_an_overwrite(
    logdir: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    os.makedirs(logdir)
    token = b"\x02" * 8
    name = _planted_name(logdir, token)
    os.symlink("/nonexistent/liteprof-target", name)
    caplog.set_level(logging.WARNING, logger="liteprof")
    monkeypatch.setattr(os, "urandom", lambda n: token[:n])
    liteprof.enable(logdir)
    with liteprof.scope("x"):
        pass
    assert not liteprof.enabled()
    monkeypatch.undo()
    assert os.listdir(logdir) == [os.path.basename(name)]
    assert os.readlink(name) == "/nonexistent/liteprof-target"
    warnings = [r for r in caplog.records if r.name == "liteprof"]
    assert len(warnings) == 1 and "recording stopped" in warnings[0].getMessage()


# -- the reader runs nothing ---------------------------------------------------------------


def test_json_header_is_inert(logdir: str, tmp_path: Any) -> None:
    """Metadata is data: strings that look like code are shown as text, never run."""
    run_python("import liteprof\nwith liteprof.scope('x'):\n    pass\n", LITEPROF_LOG=logdir)
    (path,) = log_files(logdir)
    marker = os.path.join(os.fspath(tmp_path), "pwned")
    code = f"__import__('os').system('touch {marker}')"
    doc = json.dumps(
        {
            "pid": 1,
            "process_name": code,
            "host": f"$(touch {marker})",
            "__reduce__": code,
            "__class__": code,
            "argv": [code],
            "rank": code,
            "py/object": "os.system",
            "!!python/object": code,
        }
    ).encode()
    assert len(doc) <= F.MAX_METADATA
    with open(path, "r+b") as fh:
        fh.seek(20)
        fh.write(struct.pack("<I", len(doc)) + doc.ljust(F.MAX_METADATA, b"\0"))
    for fmt in ("json", "table", "csv", "markdown"):
        proc = subprocess.run(
            [sys.executable, "-m", "liteprof", "report", path, "--format", fmt],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
    report = read(path)
    assert report["processes"][0]["name"] == code
    assert report["processes"][0]["rank"] is None
    assert report["records"] == 1
    assert not os.path.exists(marker)


def test_reader_source_never_evaluates_or_unpickles() -> None:
    src_dir = os.path.dirname(liteprof.__file__)
    forbidden = (
        "pickle",
        "eval(",
        "exec(",
        "allow_pickle",
        "np.load(",
        "numpy.load(",
        "marshal",
        "shelve",
        "yaml",
        "__import__",
        "literal_eval",
        "compile(",
        "importlib",
    )
    for name in (
        "log/reader.py",
        "log/scan.py",
        "log/text.py",
        "log/events.py",
        "log/errors.py",
        "log/format.py",
        "analysis/report.py",
        "analysis/stats.py",
    ):
        with open(os.path.join(src_dir, name), encoding="utf-8") as fh:
            text = fh.read()
        for word in forbidden:
            assert word not in text, f"{name} uses {word}"
