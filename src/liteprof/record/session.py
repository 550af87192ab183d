"""One process's recording session: the log file, the process filter, the failure policy.

A session is what ``enable()`` starts. The recorder backend calls it back on its slow
paths (``SessionCallbacks`` in ``backend.py``); every callback returns ``-1``/``None``
instead of raising, because a recording failure must never reach the profiled program:
it stops recording with one warning through logger ``liteprof``, and the program runs on.

``import liteprof`` imports this module in every process, recording or not, so it imports
only what is already loaded at interpreter start (``os``, ``sys``) and a few builtin
modules. The writer (``mmap``, ``json``...) is imported when a session starts, ``logging``
when there is something to say, ``fnmatch`` when a process filter is matched.
"""

from __future__ import annotations

import _thread
import atexit
import os
import sys
import time

from . import backend

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any, Callable

    from ..log.writer import LogWriter

LOGGER_NAME = "liteprof"
UNDER_RUN_VAR = "LITEPROF_UNDER_RUN"
"""Set (to ``1``) by ``liteprof run`` for the command it runs: the run reports and removes
the logs itself, so ``maybe_emit_report`` and the vLLM compatibility report keep them."""

IMPORTED_NS = time.perf_counter_ns()
"""When liteprof was imported in this process (or in the parent it was forked from)."""


def warn(message: str, *args: object) -> None:
    """One warning through logger ``liteprof``; ``logging`` is imported only now."""
    import logging

    logging.getLogger(LOGGER_NAME).warning(message, *args)


def under_liteprof_run() -> bool:
    """True in the processes of a ``liteprof run`` command, which reports the logs itself."""
    return os.environ.get(UNDER_RUN_VAR, "") not in ("", "0")


def process_name() -> str:
    """``multiprocessing.current_process().name``, without importing multiprocessing."""
    mp = sys.modules.get("multiprocessing")
    if mp is None:
        return "MainProcess"
    try:
        return str(mp.current_process().name)
    except Exception:
        return "MainProcess"


def parse_patterns(processes: str | Iterable[str] | None) -> list[str]:
    """``LITEPROF_PROCESSES``-style patterns: a comma-separated string or an iterable."""
    if processes is None:
        return []
    if isinstance(processes, str):
        items = processes.split(",")
    else:
        items = list(processes)
    return [p.strip() for p in items if p and p.strip()]


default_selector: Callable[[str], bool] | None = None
"""Which processes record when no pattern is given (``None``: every process).
``liteprof.compat.vllm`` sets vLLM's rule (rank 0 only) in the processes that import it."""


class _NotSelected(Exception):
    pass


class Session:
    """One enable() in one process: what the backend calls back for files and blocks.

    The log file is created lazily, when the first event closes, because a forked
    multiprocessing child only gets its name after the fork; that is also when the process
    filter is matched. Every callback returns ``-1``/``None`` instead of raising: a
    failure stops recording with one warning and the program runs on.
    """

    def __init__(self, directory: str, patterns: list[str]) -> None:
        self.directory = directory
        self.patterns = patterns
        self.writer: LogWriter | None = None
        self.pid = os.getpid()
        self._lock = _thread.allocate_lock()
        self.dead = False

    def selected(self) -> bool:
        """Whether this process records: its name matched against the patterns, else
        against the default rule."""
        name = process_name()
        if self.patterns:
            from fnmatch import fnmatchcase

            return any(fnmatchcase(name, p) for p in self.patterns)
        rule = default_selector
        return rule is None or bool(rule(name))

    def _open(self) -> LogWriter:
        with self._lock:
            if self.writer is None:
                if not self.selected():
                    raise _NotSelected
                from ..log.writer import LogWriter

                self.writer = LogWriter(self.directory, backend=backend.current.BACKEND)
            return self.writer

    def thread(self, native_id: int, name: str) -> int:
        try:
            writer = self.writer or self._open()
            return writer.thread_index(native_id, name)
        except _NotSelected:
            fail(self, None)
        except Exception as exc:
            fail(self, exc)
        return -1

    def block(self, owner: int, size: int) -> Any:
        try:
            assert self.writer is not None
            return self.writer.new_block(owner, size)
        except Exception as exc:
            fail(self, exc)
        return None

    def release(self, mapped: Any) -> None:
        if self.writer is not None:
            self.writer.release(mapped)

    def name_id(self, name: str) -> int:
        try:
            assert self.writer is not None
            return self.writer.name_id(name)
        except Exception as exc:
            fail(self, exc)
        return -1


state_lock = _thread.RLock()
current: Session | None = None
# The session of a process that the process filter left out: it records nothing, but a
# child forked from it (multiprocessing names children after the fork) may match.
_unselected: Session | None = None


def session_of_this_process() -> Session | None:
    """The session that records here, or the one the process filter left idle."""
    return current or _unselected


def fail(session: Session, exc: BaseException | None) -> None:
    """Stop recording after a failure (or a process filter that excludes this process)."""
    global current, _unselected
    with state_lock:
        if session.dead:
            return
        session.dead = True
        if current is session:
            current = None
            backend.current.stop()
            if exc is None:
                _unselected = session
        if session.writer is not None:
            session.writer.close()
    if exc is not None:  # once per session: ``session.dead`` guards the way in
        warn(
            "liteprof: recording stopped in process %d: %s: %s",
            os.getpid(),
            type(exc).__name__,
            exc,
        )


def default_directory() -> str:
    env = os.environ.get("LITEPROF_LOG")
    if env:
        return env
    import tempfile

    return tempfile.mkdtemp(prefix="liteprof-", dir=os.getcwd())


def _prepare() -> None:
    """Import what the first event needs now, so that it is not paid inside a scope (it
    would be added to the enclosing scope's time): the writer, and ``threading``, which
    the recorders ask for the thread's name."""
    import threading  # noqa: F401

    from ..log import writer  # noqa: F401


def start(directory: str, patterns: list[str]) -> None:
    """Stop any session, then record into ``directory``; caller holds ``state_lock``."""
    global current
    stop_locked()
    _prepare()
    session = Session(os.path.abspath(directory), patterns)
    current = session
    backend.current.start(session)
    _say_if_pure_by_necessity()


_said_pure = False


def _say_if_pure_by_necessity() -> None:
    """pip shows a successful build's output only with ``-v``, so an install that could not
    compile the C core says so here, once per process, when recording starts."""
    global _said_pure
    if _said_pure or backend.core_missing is None or backend.current.BACKEND != "python":
        return
    _said_pure = True
    warn(
        "liteprof: the C core is not built in this install (%s); recording with the "
        "pure-Python recorder, a few times slower per scope. Reinstall liteprof where a C "
        "compiler and the Python headers are present for the C core, or set "
        "LITEPROF_PURE=1 to choose the pure-Python recorder and silence this.",
        backend.core_missing,
    )


def stop_locked() -> None:
    global current, _unselected
    session, current = current, None
    _unselected = None
    backend.current.stop()
    if session is not None:
        session.dead = True
        if session.writer is not None:
            session.writer.close()


def _after_fork_in_child() -> None:
    """The child records into a file of its own and never repeats the parent's events."""
    global current, state_lock, _unselected
    state_lock = _thread.RLock()  # the parent's lock may have been held by another thread
    parent = current or _unselected
    backend.current.after_fork_child()
    current = _unselected = None
    if parent is None:
        return
    if parent.writer is not None:
        parent.writer.abandon()
    parent.dead = True
    session = Session(parent.directory, parent.patterns)
    current = session
    backend.current.start(session)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _at_exit() -> None:
    # Closing the log trims the unused tail of its last block; everything recorded is on
    # disk already, so a process that never gets here (os._exit, a signal) loses nothing.
    if current is not None and current.pid == os.getpid():
        with state_lock:
            stop_locked()


atexit.register(_at_exit)
