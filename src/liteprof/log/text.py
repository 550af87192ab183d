"""vLLM lite-profiler text logs: ``name|elapsed_ns`` lines (see ``docs/FORMAT.md``).

They have no start times, threads, processes or nesting: those columns are unknown, not
invented.
"""

from __future__ import annotations

import array
import os
from typing import TYPE_CHECKING

import numpy as np

from .errors import LogError

if TYPE_CHECKING:
    from .reader import Builder

_MAX_TEXT_LOG = 1 << 34  # 16 GiB: refuse anything larger rather than exhaust memory


def read_text(path: str, b: Builder) -> None:
    """Append the events of the vLLM text log ``path`` to ``b``."""
    # Streamed line by line into compact arrays: holding the whole file plus one Python
    # object per line would cost over ten times the file's size.
    names = array.array("i")
    durs = array.array("q")
    skipped = 0
    try:
        size = os.path.getsize(path)
        if size > _MAX_TEXT_LOG:
            raise LogError(f"{path}: too large for a text log ({size} bytes)")
        with open(path, "rb") as fh:
            if b"\0" in fh.read(65536):
                raise LogError(f"{path}: not a liteprof log or a vLLM lite-profiler text log")
            fh.seek(0)
            for chunk in fh:
                for line in chunk.splitlines():  # also splits at a lone "\r", as before
                    name, sep, value = line.rpartition(b"|")
                    if not sep:
                        if line.strip():
                            skipped += 1
                        continue
                    value = value.strip()
                    if not value.isdigit() or len(value) > 18:
                        skipped += 1
                        continue
                    try:
                        text = name.decode("utf-8")
                    except UnicodeDecodeError:
                        skipped += 1
                        continue
                    names.append(b.intern(text))
                    durs.append(int(value))
    except OSError as exc:
        raise LogError(f"cannot read {path}: {exc.strerror}") from None
    if not names and skipped:
        raise LogError(f"{path}: not a liteprof log or a vLLM lite-profiler text log")
    b.text = True
    b.skipped += skipped
    n = len(names)
    dur = np.frombuffer(durs, dtype=np.int64) if n else np.zeros(0, np.int64)
    b.add(
        name=np.frombuffer(names, dtype=np.int32) if n else np.zeros(0, np.int32),
        start=0,
        dur=dur,
        self_ns=dur,
        depth=0,
        error=False,
        proc=-1,
        thread=-1,
        lane=0,
        parent=-1,
    )
