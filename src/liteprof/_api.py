"""The public recording API: backend choice, sessions, enable/disable, fork, reports."""

from __future__ import annotations

import atexit
import fnmatch
import functools
import inspect
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Iterable
from typing import Any, Callable, TypeVar, overload

from ._writer import LogWriter, current_process_name

logger = logging.getLogger("liteprof")

F = TypeVar("F", bound=Callable[..., Any])

_backend: Any
if os.environ.get("LITEPROF_PURE", "") not in ("", "0"):
    from . import _pyrecorder as _backend
else:
    try:
        from . import _core as _backend
    except ImportError:
        from . import _pyrecorder as _backend

BACKEND: str = _backend.BACKEND
"""``"c"`` when the compiled core records, ``"python"`` for the pure-Python twin."""


def _parse_patterns(processes: str | Iterable[str] | None) -> list[str]:
    if processes is None:
        return []
    if isinstance(processes, str):
        items = processes.split(",")
    else:
        items = list(processes)
    return [p.strip() for p in items if p and p.strip()]


class _NotSelected(Exception):
    pass


class _Session:
    """One enable() in one process: what the backend calls back for files and blocks.

    The log file is created lazily, when the first event closes, because a forked
    multiprocessing child only gets its name after the fork; that is also when
    ``LITEPROF_PROCESSES`` is matched. Every callback returns ``-1``/``None`` instead of
    raising: a failure stops recording with one warning and the program runs on.
    """

    def __init__(self, directory: str, patterns: list[str]) -> None:
        self.directory = directory
        self.patterns = patterns
        self.writer: LogWriter | None = None
        self.pid = os.getpid()
        self._lock = threading.Lock()
        self.dead = False

    def selected(self) -> bool:
        if not self.patterns:
            return True
        name = current_process_name()
        return any(fnmatch.fnmatchcase(name, p) for p in self.patterns)

    def _open(self) -> LogWriter:
        with self._lock:
            if self.writer is None:
                if not self.selected():
                    raise _NotSelected
                self.writer = LogWriter(self.directory, backend=BACKEND)
            return self.writer

    def thread(self, native_id: int, name: str) -> int:
        try:
            writer = self.writer or self._open()
            return writer.thread_index(native_id, name)
        except _NotSelected:
            _fail(self, None)
        except Exception as exc:
            _fail(self, exc)
        return -1

    def block(self, owner: int, size: int) -> Any:
        try:
            assert self.writer is not None
            return self.writer.new_block(owner, size)
        except Exception as exc:
            _fail(self, exc)
        return None

    def release(self, mapped: Any) -> None:
        if self.writer is not None:
            self.writer.release(mapped)

    def name_id(self, name: str) -> int:
        try:
            assert self.writer is not None
            return self.writer.name_id(name)
        except Exception as exc:
            _fail(self, exc)
        return -1


_state_lock = threading.RLock()
_session: _Session | None = None
# The session of a process that LITEPROF_PROCESSES left out: it records nothing, but a
# child forked from it (multiprocessing names children after the fork) may match.
_unselected: _Session | None = None


def _fail(session: _Session, exc: BaseException | None) -> None:
    """Stop recording after a failure (or a process filter that excludes this process)."""
    global _session, _unselected
    with _state_lock:
        if session.dead:
            return
        session.dead = True
        if _session is session:
            _session = None
            _backend.stop()
            if exc is None:
                _unselected = session
        if session.writer is not None:
            session.writer.close()
    if exc is not None:  # once per session: ``session.dead`` guards the way in
        logger.warning(
            "liteprof: recording stopped in process %d: %s: %s",
            os.getpid(),
            type(exc).__name__,
            exc,
        )


def _default_directory() -> str:
    env = os.environ.get("LITEPROF_LOG")
    if env:
        return env
    return tempfile.mkdtemp(prefix="liteprof-", dir=os.getcwd())


def enable(path: str | os.PathLike[str] | None = None, *, processes: Any = None) -> None:
    """Turn recording on in this process.

    ``path`` is the log directory (default: ``LITEPROF_LOG``, else a new folder under the
    current directory); each recording process writes its own file there. ``processes``
    is a comma-separated string or a list of ``fnmatch`` patterns matched against
    ``multiprocessing.current_process().name`` when the first event is recorded (default:
    ``LITEPROF_PROCESSES``; unset, every process records). Calling it while recording
    starts a new log file. A failure to start is logged, never raised.
    """
    global _session
    with _state_lock:
        _stop_locked()
        try:
            directory = os.fspath(path) if path is not None else _default_directory()
            if processes is None:
                processes = os.environ.get("LITEPROF_PROCESSES")
            session = _Session(os.path.abspath(directory), _parse_patterns(processes))
        except Exception as exc:
            logger.warning("liteprof: cannot enable recording: %s", exc)
            return
        _session = session
        _backend.start(session)


def _stop_locked() -> None:
    global _session, _unselected
    session, _session = _session, None
    _unselected = None
    _backend.stop()
    if session is not None:
        session.dead = True
        if session.writer is not None:
            session.writer.close()


def disable() -> None:
    """Turn recording off in this process; what was recorded stays readable."""
    with _state_lock:
        _stop_locked()


def enabled() -> bool:
    """``True`` while this process records."""
    session = _session
    if session is None or not _backend.active():
        return False
    if session.writer is None and not session.selected():
        return False
    return True


def flush() -> None:
    """Make everything recorded so far readable by a reader in another process.

    Events are in the page cache from the moment they are recorded; this also asks the
    kernel to write the mapped pages to disk.
    """
    session = _session
    if session is not None and session.writer is not None:
        try:
            session.writer.flush()
        except Exception as exc:  # never break the host program
            logger.debug("liteprof: flush failed: %s", exc)


def log_path() -> str | None:
    """The log file this process writes, or ``None`` (not recording, or nothing yet)."""
    session = _session
    if session is None or session.writer is None:
        return None
    return session.writer.path


def maybe_emit_report(*, keep_log: bool = False) -> None:
    """If this process records: flush, log the summary through logger ``liteprof`` at
    INFO, then delete this process's log unless ``keep_log``. Otherwise do nothing.
    Recording stops in this process. Never raises.
    """
    try:
        with _state_lock:
            session = _session
            if session is None or not enabled():
                return
            path = session.writer.path if session.writer is not None else None
            _stop_locked()
        if path is None:
            logger.info("liteprof: no events were recorded in process %d", os.getpid())
            return
        from ._reader import read_logs
        from ._report import build_report
        from .renderers import render

        report = build_report(read_logs([path]))
        logger.info("%s", render(report, "plain"))
        if not keep_log:
            try:
                os.unlink(path)
            except OSError:
                pass
            try:
                os.rmdir(os.path.dirname(path))  # only succeeds when nothing else is left
            except OSError:
                pass
    except Exception as exc:
        logger.warning("liteprof: could not emit the report: %s", exc)


# -- scopes ------------------------------------------------------------------------------

scope = _backend.scope
Scope = _backend.Scope


def _wrap(func: Callable[..., Any], name: str) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(func):
        key = Scope(name)

        @functools.wraps(func)
        async def timed_coroutine(*args: Any, **kwargs: Any) -> Any:
            with key:
                return await func(*args, **kwargs)

        return timed_coroutine
    return _backend.timed_function(func, name)  # type: ignore[no-any-return]


def _decorate(func: Callable[..., Any], name: str) -> Callable[..., Any]:
    """What ``@Scope(...)`` and ``@scope(...)`` do: the same wrapping as ``timed``."""
    if not callable(func):
        raise TypeError(f"a scope decorates a callable, not {type(func).__name__}")
    return _wrap(func, name)


_backend.set_decorator(_decorate)


def _qualified_name(func: Callable[..., Any]) -> str:
    module = getattr(func, "__module__", None) or ""
    qualname = getattr(func, "__qualname__", None) or getattr(func, "__name__", None)
    if qualname is None:
        qualname = repr(func)
    return f"{module}.{qualname}" if module else str(qualname)


@overload
def timed(func_or_name: F) -> F: ...
@overload
def timed(func_or_name: str) -> Callable[[F], F]: ...


def timed(func_or_name: Any) -> Any:
    """Decorator: time every call of a function as one event.

    ``@liteprof.timed`` names the event ``module.qualname``; ``@liteprof.timed("name")``
    names it. Works on coroutine functions (the whole ``await`` is timed). The wrapper
    checks at call time whether recording is on, so functions decorated before
    ``enable()`` are timed once it is.
    """
    if isinstance(func_or_name, str):
        name = func_or_name

        def decorate(func: F) -> F:
            return _wrap(func, name)  # type: ignore[return-value]

        return decorate
    if callable(func_or_name):
        return _wrap(func_or_name, _qualified_name(func_or_name))
    raise TypeError(f"timed expects a function or a name (str), not {type(func_or_name).__name__}")


# -- processes ---------------------------------------------------------------------------


def _after_fork_in_child() -> None:
    """The child records into a file of its own and never repeats the parent's events."""
    global _session, _state_lock, _unselected
    _state_lock = threading.RLock()  # the parent's lock may have been held by another thread
    parent = _session or _unselected
    _backend.after_fork_child()
    _session = _unselected = None
    if parent is None:
        return
    if parent.writer is not None:
        parent.writer.abandon()
    parent.dead = True
    session = _Session(parent.directory, parent.patterns)
    _session = session
    _backend.start(session)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _at_exit() -> None:
    # Closing the log trims the unused tail of its last block; everything recorded is on
    # disk already, so a process that never gets here (os._exit, a signal) loses nothing.
    if _session is not None and _session.pid == os.getpid():
        disable()


atexit.register(_at_exit)


def _enable_from_environment() -> None:
    directory = os.environ.get("LITEPROF_LOG")
    if directory:
        # Children inherit the variable but may run in another directory: pin it.
        directory = os.path.abspath(directory)
        os.environ["LITEPROF_LOG"] = directory
        enable(directory)


def _available_backends() -> list[str]:
    """Backends importable here: ``"c"`` when the core is built, always ``"python"``."""
    names = ["python"]
    try:
        from . import _core  # noqa: F401
    except ImportError:
        return names
    return ["c", *names]


def _select_backend(name: str) -> None:
    """Tests only: switch the recorder backend (recording must be off)."""
    global _backend, BACKEND, scope, Scope
    import liteprof

    disable()
    if name == "c":
        from . import _core as chosen
    elif name == "python":
        from . import _pyrecorder as chosen  # type: ignore[no-redef]
    else:
        raise ValueError(f"unknown backend {name!r}")
    _backend = chosen
    _backend.set_decorator(_decorate)
    BACKEND = chosen.BACKEND
    scope = chosen.scope
    Scope = chosen.Scope
    for mod in (liteprof, sys.modules.get("liteprof.compat.vllm")):
        if mod is not None:
            mod.__dict__.update(
                {
                    k: v
                    for k, v in (("BACKEND", BACKEND), ("scope", scope), ("Scope", Scope))
                    if k in mod.__dict__
                }
            )
            if "LiteScope" in mod.__dict__:
                mod.__dict__["LiteScope"] = mod.__dict__["LiteProfilerScope"] = scope


def _set_clock(clock: Callable[[], int] | None) -> None:
    """Tests only: make the active backend read ``clock`` instead of the monotonic clock."""
    _backend.set_clock(clock)
