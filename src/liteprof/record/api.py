"""The public recording API: scopes, ``timed``, enable/disable, flush, reports."""

from __future__ import annotations

import functools
import inspect
import os
from typing import Any, Callable, TypeVar, overload

from . import backend, session
from .session import logger

F = TypeVar("F", bound=Callable[..., Any])

BACKEND: str = backend.current.BACKEND
"""``"c"`` when the compiled core records, ``"python"`` for the pure-Python twin."""

scope = backend.current.scope
Scope = backend.current.Scope


def enable(path: str | os.PathLike[str] | None = None, *, processes: Any = None) -> None:
    """Turn recording on in this process.

    ``path`` is the log directory (default: ``LITEPROF_LOG``, else a new folder under the
    current directory); each recording process writes its own file there. ``processes``
    is a comma-separated string or a list of ``fnmatch`` patterns matched against
    ``multiprocessing.current_process().name`` when the first event is recorded (default:
    ``LITEPROF_PROCESSES``; unset, every process records). Calling it while recording
    starts a new log file. A failure to start is logged, never raised.
    """
    with session.state_lock:
        session.stop_locked()
        try:
            directory = os.fspath(path) if path is not None else session.default_directory()
            if processes is None:
                processes = os.environ.get("LITEPROF_PROCESSES")
            patterns = session.parse_patterns(processes)
        except Exception as exc:
            logger.warning("liteprof: cannot enable recording: %s", exc)
            return
        session.start(directory, patterns)


def disable() -> None:
    """Turn recording off in this process; what was recorded stays readable."""
    with session.state_lock:
        session.stop_locked()


def enabled() -> bool:
    """``True`` while this process records."""
    current = session.current
    if current is None or not backend.current.active():
        return False
    if current.writer is None and not current.selected():
        return False
    return True


def flush() -> None:
    """Make everything recorded so far readable by a reader in another process.

    Events are in the page cache from the moment they are recorded; this also asks the
    kernel to write the mapped pages to disk.
    """
    current = session.current
    if current is not None and current.writer is not None:
        try:
            current.writer.flush()
        except Exception as exc:  # never break the host program
            logger.debug("liteprof: flush failed: %s", exc)


def log_path() -> str | None:
    """The log file this process writes, or ``None`` (not recording, or nothing yet)."""
    current = session.current
    if current is None or current.writer is None:
        return None
    return current.writer.path


# -- decorators ----------------------------------------------------------------------------


def _wrap(func: Callable[..., Any], name: str) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(func):
        key = Scope(name)

        @functools.wraps(func)
        async def timed_coroutine(*args: Any, **kwargs: Any) -> Any:
            with key:
                return await func(*args, **kwargs)

        return timed_coroutine
    return backend.current.timed_function(func, name)


def _decorate(func: Callable[..., Any], name: str) -> Callable[..., Any]:
    """What ``@Scope(...)`` and ``@scope(...)`` do: the same wrapping as ``timed``."""
    if not callable(func):
        raise TypeError(f"a scope decorates a callable, not {type(func).__name__}")
    return _wrap(func, name)


backend.current.set_decorator(_decorate)


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


def use_backend(name: str) -> None:
    """Switch the recorder backend (recording is turned off first); see ``liteprof.testing``."""
    global BACKEND, scope, Scope
    import sys

    disable()
    chosen = backend.switch(name)
    chosen.set_decorator(_decorate)
    BACKEND = chosen.BACKEND
    scope = chosen.scope
    Scope = chosen.Scope
    for mod in (sys.modules.get("liteprof"), sys.modules.get("liteprof.compat.vllm")):
        if mod is None:
            continue
        for key, value in (("BACKEND", BACKEND), ("scope", scope), ("Scope", Scope)):
            if key in mod.__dict__:
                mod.__dict__[key] = value
        if "LiteScope" in mod.__dict__:
            mod.__dict__["LiteScope"] = mod.__dict__["LiteProfilerScope"] = scope


def enable_from_environment() -> None:
    """``LITEPROF_LOG`` set: record from ``import liteprof`` on."""
    directory = os.environ.get("LITEPROF_LOG")
    if directory:
        # Children inherit the variable but may run in another directory: pin it.
        directory = os.path.abspath(directory)
        os.environ["LITEPROF_LOG"] = directory
        enable(directory)
