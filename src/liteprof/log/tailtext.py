"""The live reader's side of vLLM lite-profiler text logs (``name|elapsed_ns`` lines).

``tail.Tail`` hands over every file it finds that is not a liteprof log, by the detection
the whole-file reader uses (its first bytes are not the magic, nor a header not written
yet): a PATH that is one such file, or such files among the logs of a directory. Each
poll reads only the bytes appended since the last one, up to the last complete line (a
line without its end waits for the next poll: the writer may be in the middle of it), and
parses them with ``text.py``'s parser, which keeps its names and counts from poll to poll,
so that damage is skipped and counted as a whole read of the file counts it.

Judging a file. A file becomes a process once it reads as a text log by the whole-file
reader's rule (``text.not_a_text_log``) over its complete lines: it opened with an event,
or it has events and not too many control bytes. A file that fails the rule is no log: an
error when it is the PATH, else counted once in ``skipped`` and passed over, as a binary
file that is not a log is. A file with no complete line yet is judged as it stands once
it holds more than 4 KiB (no first line of a text log is that long; a file of one long
line without an end is not one).

What its events carry: a name and a duration; no start, thread, nesting or error. Its
process is what the whole-file reader gives a text log: none known (no pid, name or
host), so it is never found ended; it stays ``live`` until its file goes.

A file replaced by another (vLLM deletes its log and writes a new one on each run) is
marked ``truncated`` and a file removed ``removed``, each after the last bytes of the old
file were read through the open descriptor (a last line without its end included: nothing
will finish it); a file cut in place is marked ``truncated`` when it is shorter than what
was read, or when the byte before the next line is no longer the one read there (cut and
written past that point again between two polls). The path is then looked at afresh from
the next poll, whose file is read from its start as a new process. Their events stay
counted.
"""

from __future__ import annotations

import io
import os
from typing import TYPE_CHECKING

import numpy as np

from . import format as F
from .errors import LogError
from .reader import Builder
from .text import _MAX_LINE, _parse, _Parsed, not_a_text_log

if TYPE_CHECKING:
    from .tail import Batch, Tail

_FINAL_READ = 1 << 25  # bytes read at a time of a file that went (32 MiB)
_JUDGE_BYTES = 4096  # a file this long without a line end is judged as it stands
_LIVE, _REMOVED, _TRUNCATED = "live", "removed", "truncated"  # tail.py's states


class _TextFile:
    """One followed text log between polls."""

    def __init__(self, path: str, fd: int, single: bool) -> None:
        from .tail import Process

        self.path = path
        self.fd = fd
        st = os.fstat(fd)
        self.identity = (st.st_dev, st.st_ino)
        self.single = single
        self.pos = 0  # the first byte not parsed yet
        self.last_byte = b""  # the byte before it, as read
        self.skipping = False  # inside a line too long to hold: dropped up to its end
        self.parsed = _Parsed()
        self.builder = Builder()  # rows of one poll at a time; its names only grow
        self.lut = np.zeros(0, np.int64)  # the builder's name index -> the tail's
        self.proc = Process(index=-1, path=path)  # appended once the file is judged
        self.counted_skipped = 0  # of parsed.skipped, what batches were told of
        self.last_read = 0  # bytes of lines the last poll read
        self.more = False  # the last poll stopped at its budget

    def close(self) -> None:
        if self.fd >= 0:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = -1

    def gone(self) -> tuple[str | None, bool]:
        """``removed`` or ``truncated`` when the file at the path is not this one any
        more, or was cut below what was read; ``None`` while it is. And whether its
        last bytes are still to read (not in a file cut in place: what it holds past
        what was read is another run's)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return _REMOVED, True
        except OSError:
            return None, False  # not readable for now: judged again at the next poll
        if (st.st_dev, st.st_ino) != self.identity:
            return _TRUNCATED, True
        if os.fstat(self.fd).st_size < self.pos:
            return _TRUNCATED, False
        if self.pos and os.pread(self.fd, 1, self.pos - 1) != self.last_byte:
            # Cut and written again past what was read before this poll: the byte before
            # the next line is not the one read there.
            return _TRUNCATED, False
        return None, False

    def _step(self, data: bytes, k: int) -> None:
        """Past the first ``k`` bytes of ``data`` (read at ``pos``)."""
        if k:
            self.pos += k
            self.last_byte = data[k - 1 : k]

    def read(self, budget: int, final: bool) -> tuple[bytes, bool]:
        """The whole lines appended since the last read (at most about ``budget`` bytes;
        ``final``: the last line without its end too), and whether more is there now."""
        size = os.fstat(self.fd).st_size
        avail = size - self.pos
        if avail <= 0:
            return b"", False
        want = min(avail, max(budget, _MAX_LINE + 1))
        data = os.pread(self.fd, want, self.pos)
        if self.skipping:
            ends = [i for i in (data.find(b"\n"), data.find(b"\r")) if i >= 0]
            if not ends:
                self._step(data, len(data))
                return b"", False
            self.skipping = False
            self._step(data, min(ends) + 1)
            data = data[min(ends) + 1 :]
        whole = final and self.pos + len(data) >= size
        cut = len(data) if whole else max(data.rfind(b"\n"), data.rfind(b"\r")) + 1
        if cut == 0 and len(data) > _MAX_LINE:
            # A line longer than any the whole-file reader holds: one damaged line, as it
            # counts it, dropped up to its end.
            self.parsed.skipped += 1
            if b"\0" not in data:
                self.parsed.clean_bad_lines += 1
                if self.parsed.opened_well is None:
                    self.parsed.opened_well = False
            self.skipping = True
            self._step(data, len(data))
            return b"", True
        self._step(data, cut)
        # More only where the budget stopped the read, not at a line still being written.
        return data[:cut], want < avail

    def parse(self, data: bytes) -> tuple[np.ndarray, np.ndarray]:
        """The events of whole lines ``data``: the builder's name ids and durations."""
        b = self.builder
        b.rollback(0)
        _parse(io.BytesIO(data), len(data), b, self.parsed)
        n = b.n
        if not n:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return b.column("name")[:n].astype(np.int64), b.column("dur")[:n].copy()

    def would_refuse(self) -> bool:
        """Whether the file as it stands, its last line without an end included, is no
        text log by the whole-file reader's rule (nothing of it is kept)."""
        data = os.pread(self.fd, _JUDGE_BYTES * 4, self.pos)
        scratch = _Parsed()
        _parse(io.BytesIO(data), len(data), Builder(), scratch)
        return not_a_text_log(scratch)


class TextLogs:
    """The text logs a ``Tail`` follows, by path."""

    def __init__(self) -> None:
        self._files: dict[str, _TextFile] = {}

    def adopt(self, tail: Tail, path: str, fd: int, single: bool) -> None:
        """Follow the file open as ``fd`` at ``path`` from now on (``fd`` is ours)."""
        tail._done.add(path)  # the tail leaves the path to us until we give it back
        self._files[path] = _TextFile(path, fd, single)

    def poll(
        self, tail: Tail, batch: Batch, parts: list[tuple[np.ndarray, ...]], budget: int
    ) -> int:
        """Add the new events of every text log to ``parts`` (columns as ``tail._read``
        gives them) and what changed to ``batch``; the slot budget left (a byte of text
        costs ``1 / SLOT_SIZE`` slots)."""
        left = budget * F.SLOT_SIZE
        for path, f in list(self._files.items()):
            end, rest = f.gone()
            if end is None and left <= 0:
                batch.more = True
                continue
            if end is None or rest:
                ids, dur = self._read(f, left, end is not None)
            else:
                ids, dur = np.zeros(0, np.int64), np.zeros(0, np.int64)
                f.more = False
            left -= f.last_read
            if f.more and end is None:
                batch.more = True
            if f.proc.index < 0 and not self._judge(tail, f, batch, end is not None):
                if path not in self._files:
                    continue  # refused: no log
                if end is not None:  # went before it was judged a log
                    self._give_back(tail, f)
                continue
            names = self._names(tail, f)
            skipped = f.parsed.skipped - f.counted_skipped
            f.counted_skipped = f.parsed.skipped
            batch.skipped += skipped
            f.proc.skipped += skipped
            if ids.size:
                f.proc.records += int(ids.size)
                dur = dur.astype(np.int64)
                parts.append(
                    (
                        names[ids],
                        dur,
                        np.zeros(ids.size, np.bool_),
                        np.full(ids.size, f.proc.index, np.int32),
                        dur,  # self time: no nesting, the duration (as a whole read gives)
                    )
                )
            if end is not None:
                f.proc.state = end
                batch.ended.append(f.proc.index)
                self._give_back(tail, f)
        return budget - max(0, budget * F.SLOT_SIZE - left) // F.SLOT_SIZE

    def _read(self, f: _TextFile, budget: int, final: bool) -> tuple[np.ndarray, np.ndarray]:
        """The new events of ``f``: up to ``budget`` bytes of lines, or, ``final``, all
        that is left (in reads of ``_FINAL_READ`` bytes)."""
        got: list[tuple[np.ndarray, np.ndarray]] = []
        f.last_read = 0
        while True:
            data, more = f.read(_FINAL_READ if final else budget, final)
            f.last_read += len(data)
            if data:
                got.append(f.parse(data))
            if not (final and more):
                break
        f.more = more
        if not got:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        if len(got) == 1:
            return got[0]
        return np.concatenate([g[0] for g in got]), np.concatenate([g[1] for g in got])

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()

    def _judge(self, tail: Tail, f: _TextFile, batch: Batch, ending: bool) -> bool:
        """Whether ``f`` is a text log now (then it becomes a process); a file that is
        none is an error as the PATH, else counted once and passed over."""
        p = f.parsed
        if not_a_text_log(p) or (
            p.records == 0 and not p.opened_well and not ending and f.pos == 0 and self._long(f)
        ):
            if f.single:
                f.close()
                del self._files[f.path]
                raise LogError(f"{f.path}: not a liteprof log or a vLLM lite-profiler text log")
            f.close()
            del self._files[f.path]
            batch.skipped += 1
            return False
        if not (p.opened_well or p.records):
            return False  # only blank lines (or none) so far: judged later
        f.proc.index = len(tail.processes)
        tail.processes.append(f.proc)
        batch.new_processes.append(f.proc.index)
        return True

    def _long(self, f: _TextFile) -> bool:
        """A first line without an end past ``_JUDGE_BYTES``: judged as it stands."""
        try:
            size = os.fstat(f.fd).st_size
        except OSError:
            return False
        return size > _JUDGE_BYTES and f.would_refuse()

    def _names(self, tail: Tail, f: _TextFile) -> np.ndarray:
        """The tail's index of each of the builder's names (new names interned once)."""
        names = f.builder.names
        if len(names) > f.lut.size:
            new = [tail._intern(n) for n in names[f.lut.size : len(names)]]
            f.lut = np.concatenate((f.lut, np.array(new, np.int64)))
        return f.lut

    def _give_back(self, tail: Tail, f: _TextFile) -> None:
        """Stop following ``f``; the tail looks at its path afresh (a new file there)."""
        f.close()
        del self._files[f.path]
        tail._done.discard(f.path)
