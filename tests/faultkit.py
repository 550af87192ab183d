"""Shared tools of the fault, load and bad-input tests (``test_crash``, ``test_faults``,
``test_damaged``, ``test_load``, ``test_names``, ``test_security``).

- ``LogLayout``: an independent, deliberately simple parser of ``docs/FORMAT.md`` (struct
  only, no numpy, no liteprof reader code), used as the oracle for what a damaged log must
  still yield.
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
import struct
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from .helpers import child_env

HEADER = 4096
SLOT = 32
META_OWNER = 0xFFFFFFFF
PAD_OWNER = 0xFFFFFFFE

# The reader child's address-space limit: numpy needs a few hundred MiB of address space
# to import; everything else must stay a small multiple of the (small) logs these tests use.
READER_AS_LIMIT = 1 << 30
READER_TIMEOUT = 60


@dataclass
class Entry:
    offset: int  # of the head slot
    end: int  # first byte after the payload slots
    kind: int
    ident: int
    length: int


@dataclass
class Block:
    offset: int
    size: int
    owner: int


@dataclass
class LogLayout:
    """Where everything is in an intact log file."""

    size: int
    meta_len: int
    blocks: list[Block] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)
    events: list[tuple[int, int, int]] = field(default_factory=list)  # offset, name id, owner

    @classmethod
    def parse(cls, data: bytes) -> LogLayout:
        assert data[:8] == b"LITEPROF"
        (meta_len,) = struct.unpack_from("<I", data, 20)
        layout = cls(size=len(data), meta_len=meta_len)
        pos = HEADER
        while pos + SLOT <= len(data):
            magic, owner, size, _seq = struct.unpack_from("<4sIII", data, pos)
            if magic != b"LPBK":
                assert not any(data[pos : pos + SLOT]), f"bad block header at {pos}"
                break
            layout.blocks.append(Block(pos, size, owner))
            end = min(pos + size, len(data))
            if owner == META_OWNER:
                i = pos + SLOT
                while i + SLOT <= end:
                    kind, ident, length = struct.unpack_from("<III", data, i)
                    if kind == 0:
                        break
                    nps = -(-length // SLOT)
                    layout.entries.append(Entry(i, i + SLOT * (1 + nps), kind, ident, length))
                    i += SLOT * (1 + nps)
            elif owner != PAD_OWNER:
                for off in range(pos + SLOT, end, SLOT):
                    (name, flags) = struct.unpack_from("<II", data, off + 24)
                    if flags & 0xFF == 1:
                        layout.events.append((off, name, owner))
            pos += size
        return layout

    def readable_after_cut(self, cut: int) -> tuple[int, int]:
        """(events the reader must return, events present but unusable) for a file cut at
        ``cut`` bytes: an event needs its whole slot, its name's entry and its thread's entry
        before the cut (entries of a metadata block are read up to the first torn one)."""
        names: set[int] = set()
        threads: set[int] = set()
        for e in self.entries:
            if e.end <= cut:
                (names if e.kind == 1 else threads).add(e.ident)
        ok = unusable = 0
        for off, name, owner in self.events:
            if off + SLOT > cut:
                continue
            if name in names and owner in threads:
                ok += 1
            else:
                unusable += 1
        return ok, unusable

    def cut_points(self) -> list[int]:
        """Offsets of every kind: inside the header, at and inside each block header,
        metadata entry and payload, at block boundaries, mid-record."""
        points = {
            0,
            1,
            7,
            8,
            12,
            20,
            23,
            24,
            27,
            28,
            24 + self.meta_len // 2,
            24 + self.meta_len,
            HEADER - 1,
            HEADER,
            HEADER + 1,
            self.size - 1,
        }
        for b in self.blocks:
            for d in (-1, 0, 1, 4, 8, 12, 16, SLOT - 1, SLOT, SLOT + 1, SLOT + 16, b.size // 2):
                points.add(b.offset + d)
            points.add(b.offset + b.size)  # exactly at the next block boundary
        for e in self.entries:
            for d in (0, 1, 8, SLOT - 1, SLOT, SLOT + 1, SLOT + max(e.length // 2, 1)):
                points.add(e.offset + d)
            points.add(e.end - 1)
            points.add(e.end)
        for off, _name, _owner in self.events[:: max(1, len(self.events) // 200)]:
            for d in (0, 8, 16, 24, 28, 31):  # mid-record: every field torn
                points.add(off + d)
        return sorted(p for p in points if 0 <= p <= self.size)


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
