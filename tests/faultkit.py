"""Shared tools of the fault, load and bad-input tests (``test_crash``, ``test_faults``,
``test_damaged``, ``test_load``, ``test_names``, ``test_security``).

- The oracle for what a damaged log must still yield is ``tests/rawlog.py``.
- ``run_reader``: ``python -m liteprof report`` in a child with an address-space limit and
  a timeout, so that a reader that hangs or allocates without bound fails the test
  instead of the machine.
- ``tmpfs``: a small tmpfs mounted for one test and always unmounted afterwards.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import resource
import shutil
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from .helpers import child_env

# The reader child's address-space limit: numpy needs a few hundred MiB of address space
# to import; everything else must stay a small multiple of the (small) logs these tests use.
READER_AS_LIMIT = 1 << 30
READER_TIMEOUT = 60


def _limit_address_space() -> None:  # runs in the child between fork and exec
    resource.setrlimit(resource.RLIMIT_AS, (READER_AS_LIMIT, READER_AS_LIMIT))


def run_reader(*args: str, timeout: float = READER_TIMEOUT) -> subprocess.CompletedProcess[str]:
    """``python -m liteprof report ARGS --format json`` under an address-space limit."""
    env = child_env(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, "-m", "liteprof", "report", *args, "--format", "json"],
        env=env,
        capture_output=True,
        text=True,
        errors="backslashreplace",
        timeout=timeout,
        preexec_fn=_limit_address_space,
    )


def check_reader_outcome(proc: subprocess.CompletedProcess[str]) -> dict[str, Any] | None:
    """The contract for any input: exit 0 with a JSON report, or exit 2 with one line."""
    assert "Traceback" not in proc.stderr, proc.stderr
    if proc.returncode == 0:
        report = json.loads(proc.stdout)
        assert report["records"] >= 0 and report["skipped"] >= 0
        return report  # type: ignore[no-any-return]
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("liteprof: error: "), proc.stderr
    assert "out of memory" not in lines[0], proc.stderr
    return None


def mount_tmpfs(path: str, *options: str) -> None:
    """Mount a tmpfs at ``path``; skip the test only where mounting is not permitted."""
    os.makedirs(path, exist_ok=True)
    opts = ",".join(options) if options else "size=1m"
    if shutil.which("mount") is None or shutil.which("umount") is None:
        pytest.skip("no mount command here")
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", path], capture_output=True, text=True
    )
    if proc.returncode != 0:
        text = proc.stderr.lower()
        if any(w in text for w in ("permission denied", "not permitted", "only root", "superuser")):
            pytest.skip(f"mounting is not permitted here: {proc.stderr.strip()}")
        raise OSError(errno.EIO, f"mount failed: {proc.stderr.strip()}")


def unmount(path: str) -> None:
    """Unmount ``path``; lazily if something still holds it (a child that did not exit)."""
    proc = subprocess.run(["umount", path], capture_output=True, text=True)
    if proc.returncode != 0 and os.path.ismount(path):
        subprocess.run(["umount", "-l", path], capture_output=True)
    assert not os.path.ismount(path), f"could not unmount {path}"


@contextlib.contextmanager
def tmpfs(path: str, *options: str) -> Iterator[str]:
    """A tmpfs at ``path`` for the duration; unmounted even when the test fails."""
    mount_tmpfs(path, *options)
    try:
        yield path
    finally:
        unmount(path)
