"""Build liteprof log files byte by byte, straight from ``docs/FORMAT.md``.

For reader tests that need what no recorder writes (a newer version, reserved or
optional kinds, lost parents, interleaved lanes at chosen places): struct only, no
liteprof code, so a misreading of the format by liteprof is not repeated here.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

HEADER = 4096
SLOT = 32
META_OWNER = 0xFFFFFFFF
PAD_OWNER = 0xFFFFFFFE


def event(
    start: int,
    dur: int,
    name: int,
    *,
    child: int = 0,
    depth: int = 0,
    error: bool = False,
    kind: int = 1,
    extra_flags: int = 0,
) -> bytes:
    """An event slot (``kind`` and ``extra_flags`` let a test forge what writers don't)."""
    flags = (kind & 0xFF) | (0x100 if error else 0) | (depth << 16) | extra_flags
    return struct.pack("<qqqII", start, dur, child, name, flags)


def lane(ident: int) -> bytes:
    """A lane slot: the events after it in its block ran in lane ``ident``."""
    return struct.pack("<Q20xI", ident, 2)


def slot_of_kind(kind: int, fill: int = 0x5A) -> bytes:
    """A slot of any kind, the rest of it filled with ``fill``."""
    return bytes([fill]) * 28 + struct.pack("<I", kind)


def entry(kind: int, ident: int, payload: bytes, extra: int = 0) -> bytes:
    """A metadata entry: head slot, then the payload padded to whole slots."""
    head = struct.pack("<IIIIQ8x", kind, ident, len(payload), 0, extra)
    pad = (-len(payload)) % SLOT
    return head + payload + bytes(pad)


def name_entry(ident: int, text: str) -> bytes:
    return entry(1, ident, text.encode("utf-8", "surrogatepass"))


def thread_entry(ident: int, tid: int, text: str) -> bytes:
    return entry(2, ident, text.encode("utf-8"), extra=tid)


@dataclass
class Forge:
    """A log file under construction: a header and blocks, in order."""

    version: int = 2
    meta: dict[str, Any] = field(
        default_factory=lambda: {
            "pid": 4242,
            "ppid": 1,
            "host": "forge",
            "process_name": "Forged",
            "rank": None,
            "mono_ns": 0,
            "wall_ns": 1_700_000_000_000_000_000,
        }
    )
    blocks: list[bytes] = field(default_factory=list)

    def block(self, owner: int, body: bytes, size: int | None = None) -> Forge:
        """A block of ``owner`` holding ``body`` (slots after the header slot), padded
        with empty slots to ``size`` bytes (default: the smallest multiple of 4096)."""
        used = SLOT + len(body)
        if size is None:
            size = -(-used // 4096) * 4096
        assert used <= size and size % SLOT == 0
        head = struct.pack("<4sIII16x", b"LPBK", owner, size, len(self.blocks))
        self.blocks.append(head + body + bytes(size - used))
        return self

    def metadata(self, *entries: bytes, size: int | None = None) -> Forge:
        return self.block(META_OWNER, b"".join(entries), size)

    def thread(self, owner: int, *slots: bytes, size: int | None = None) -> Forge:
        return self.block(owner, b"".join(slots), size)

    def header(self) -> bytes:
        doc = json.dumps(self.meta).encode()
        head = struct.pack("<8sIIII", b"LITEPROF", self.version, HEADER, SLOT, len(doc)) + doc
        return head + bytes(HEADER - len(head))

    def data(self) -> bytes:
        return self.header() + b"".join(self.blocks)

    def write(self, path: str) -> str:
        with open(path, "wb") as fh:
            fh.write(self.data())
        return path


def _reader_loops() -> list[str]:
    from liteprof.log import reader

    return ["c", "numpy"] if reader._cread is not None else ["numpy"]


@pytest.fixture(params=_reader_loops())
def reader_loops(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The reader's loops over every event: in C (``log/_cread.c``, where it is built) and
    in numpy (what an install without a compiler runs); a test using this runs with each.
    The analysis's grouped statistics (``analysis/stats.py``) switch with them."""
    from liteprof.analysis import stats
    from liteprof.log import reader

    if request.param == "numpy":
        monkeypatch.setattr(reader, "_cread", None)
        monkeypatch.setattr(stats, "_cread", None)
    yield request.param
