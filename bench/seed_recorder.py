"""The seed's recorder, re-implemented from its description, as a baseline for the benchmarks.

What the project started from (vLLM's lite profiler as it was): ``time.perf_counter_ns``
around the block, then one text line ``f"{name}|{elapsed_ns}\\n"`` appended to a log file
opened with ``buffering=1`` (line buffered: one ``write`` system call per event), with a
``flush()`` and a ``tell()`` before each write. Nothing here is used by liteprof itself.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import TextIO

_perf_counter_ns = time.perf_counter_ns


class SeedRecorder:
    """One log file, written one line per event."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._file: TextIO | None = None

    def _log(self, name: str, elapsed_ns: int) -> None:
        f = self._file
        if f is None:
            f = self._file = open(self.path, "a", buffering=1)
        f.flush()
        f.tell()
        f.write(f"{name}|{elapsed_ns}\n")

    def scope(self, name: str) -> SeedScope:
        return SeedScope(self, name)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class SeedScope:
    """``with recorder.scope(name):`` times the block and appends one line."""

    __slots__ = ("_recorder", "_name", "_start")

    def __init__(self, recorder: SeedRecorder, name: str) -> None:
        self._recorder = recorder
        self._name = name
        self._start = 0

    def __enter__(self) -> SeedScope:
        self._start = _perf_counter_ns()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        elapsed_ns = _perf_counter_ns() - self._start
        self._recorder._log(self._name, elapsed_ns)
