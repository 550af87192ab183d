"""The public recording API: scopes, ``timed``, enable/disable, flush, reports.

Imported by ``import liteprof`` in every process, so nothing here imports ``typing``,
``functools`` or ``inspect`` at import time: the decorators import ``functools`` when they
first wrap a function.
"""

from __future__ import annotations

import os
import sys

from . import backend, session

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Generator
    from typing import Any, Callable, TypeVar, overload

    F = TypeVar("F", bound=Callable[..., Any])
else:

    def overload(func: object) -> object:
        return func


BACKEND: str = backend.current.BACKEND
"""``"c"`` when the compiled core records, ``"python"`` for the pure-Python twin."""

if TYPE_CHECKING:
    from types import TracebackType
    from typing import Protocol

    # The public types of both recorders are those of the C core's stub (``_core.pyi``):
    # ``Scope`` a class, the decorators returning what they decorate, as ``timed`` does.
    from ._core import Scope as Scope

    class ScopeUse(Protocol):
        """What ``scope(name)`` returns (``_ScopeCall`` or ``NOOP``): one protocol rather
        than their union, which mypy would take for an untyped decorator."""

        def __enter__(self) -> ScopeUse: ...
        def __exit__(
            self,
            et: type[BaseException] | None = ...,
            ev: BaseException | None = ...,
            tb: TracebackType | None = ...,
            /,
        ) -> None: ...
        def __call__(self, func: F, /) -> F: ...

    from ._core import scope as _core_scope

    scope: Callable[[str], ScopeUse] = _core_scope  # mypy checks that the stub's conforms
else:
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
            session.warn("liteprof: cannot enable recording: %s", exc)
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
        except Exception:  # never break the host program; the events are readable anyway
            pass


def log_path() -> str | None:
    """The log file this process writes, or ``None`` (not recording, or nothing yet)."""
    current = session.current
    if current is None or current.writer is None:
        return None
    return current.writer.path


# -- decorators ----------------------------------------------------------------------------

_CO_GENERATOR = 0x20
_CO_COROUTINE = 0x80
_CO_ITERABLE_COROUTINE = 0x100  # @types.coroutine: a generator that can be awaited
_CO_ASYNC_GENERATOR = 0x200


def _unwrap_callable(func: Any) -> Any:
    """What ``inspect`` looks through to find a callable's code: bound methods and
    ``functools.partial`` objects (not ``__wrapped__``: a wrapper's own kind counts)."""
    for _ in range(100):  # a chain of partials is short; a cycle must not hang us
        inner = getattr(func, "__func__", None)
        if inner is not None and inner is not func and type(func).__name__ == "method":
            func = inner
            continue
        partial = _partial_type()
        if partial is not None and isinstance(func, partial):
            func = func.func
            continue
        break
    return func


def _partial_type() -> Any:
    # No partial object can exist before functools (or its C half) is imported.
    mod = sys.modules.get("functools") or sys.modules.get("_functools")
    return getattr(mod, "partial", None)


def _code_flags(func: Any) -> int:
    code = getattr(_unwrap_callable(func), "__code__", None)
    flags = getattr(code, "co_flags", 0)
    return flags if isinstance(flags, int) else 0


def _is_coroutine_function(func: Any) -> bool:
    if _code_flags(func) & _CO_COROUTINE:
        return True
    # inspect.markcoroutinefunction (3.12): a sync function that returns an awaitable.
    inspect = sys.modules.get("inspect")
    mark = getattr(inspect, "_is_coroutine_mark", None)
    if mark is None:
        return False
    return getattr(_unwrap_callable(func), "_is_coroutine_marker", None) is mark


def _timed_coroutine(func: Callable[..., Any], name: str) -> Callable[..., Any]:
    import functools

    key = Scope(name)

    @functools.wraps(func)
    async def timed_coroutine(*args: Any, **kwargs: Any) -> Any:
        with key:
            return await func(*args, **kwargs)

    return timed_coroutine


def _timed_generator(func: Callable[..., Any], name: str) -> Callable[..., Any]:
    """The wrapper of a generator function: one event from the first resume to the end
    of the iteration (exhaustion, ``close()``, or an exception), with ``yield from``
    delegation so ``send``/``throw``/``close`` reach the generator unchanged.

    The wrapper is itself a generator function (``inspect.isgeneratorfunction`` stays
    true, which pytest fixtures and ``contextlib`` rely on), so the wrapped function is
    called at the first resume: an argument error surfaces there, not at the call.
    """
    import functools

    @functools.wraps(func)
    def timed_generator(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        frame = backend.current.scope(name)  # NOOP unless recording at the first resume
        frame.__enter__()
        try:
            result = yield from func(*args, **kwargs)
        except GeneratorExit:
            frame.__exit__(None, None, None)  # closed early (a ``break``): not an error
            raise
        except BaseException as exc:
            frame.__exit__(type(exc), exc, exc.__traceback__)
            raise
        frame.__exit__(None, None, None)
        return result

    return timed_generator


def _timed_async_generator(func: Callable[..., Any], name: str) -> Callable[..., Any]:
    """The wrapper of an async generator function: one event from the first resume to
    the end of the iteration. Async generators have no ``yield from``; the delegation
    (``asend``, ``athrow``, ``aclose``) is written out."""
    import functools

    @functools.wraps(func)
    async def timed_async_generator(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
        agen = func(*args, **kwargs)
        frame = backend.current.scope(name)
        frame.__enter__()
        try:
            try:
                value = await agen.__anext__()
            except StopAsyncIteration:
                frame.__exit__(None, None, None)
                return
            while True:
                try:
                    sent = yield value
                except GeneratorExit:
                    await agen.aclose()
                    frame.__exit__(None, None, None)
                    raise
                except BaseException as thrown:
                    try:
                        value = await agen.athrow(thrown)
                    except StopAsyncIteration:
                        frame.__exit__(None, None, None)
                        return
                else:
                    try:
                        value = await (agen.__anext__() if sent is None else agen.asend(sent))
                    except StopAsyncIteration:
                        frame.__exit__(None, None, None)
                        return
        except BaseException as exc:
            # The generator raised (or was thrown something it did not handle).
            if not isinstance(exc, GeneratorExit):
                frame.__exit__(type(exc), exc, exc.__traceback__)
            raise

    return timed_async_generator


def _wrap(func: Callable[..., Any], name: str) -> Callable[..., Any]:
    flags = _code_flags(func)
    if flags & _CO_ASYNC_GENERATOR:
        return _timed_async_generator(func, name)
    if flags & _CO_GENERATOR:
        wrapper = _timed_generator(func, name)
        if flags & _CO_ITERABLE_COROUTINE:
            import types

            wrapper = types.coroutine(wrapper)
        return wrapper
    if _is_coroutine_function(func):
        return _timed_coroutine(func, name)
    return backend.current.timed_function(func, name)


def _decorate(func: Callable[..., Any], name: str) -> Callable[..., Any]:
    """What ``@Scope(...)`` and ``@scope(...)`` do: the same wrapping as ``timed``."""
    if not callable(func):
        raise TypeError(f"a scope decorates a callable, not {type(func).__name__}")
    return _wrap(func, name)


backend.current.set_decorator(_decorate)


def _qualified_name(func: Callable[..., Any]) -> str:
    """``module.qualname`` of a callable, for ``@timed`` without a name.

    A ``functools.partial`` (or a bound method) is named after the function it calls; a
    callable object without ``__qualname__`` (an instance with ``__call__``) after its
    class; anything else after its type, never after its ``repr`` (an address would give
    every run, and every process, a different name).
    """
    target = _unwrap_callable(func)
    qualname = getattr(target, "__qualname__", None)
    module = getattr(target, "__module__", None)
    if not isinstance(qualname, str):
        qualname = getattr(target, "__name__", None)
    if not isinstance(qualname, str):
        cls = type(target)
        qualname = cls.__qualname__
        module = cls.__module__
    if not isinstance(module, str) or not module:
        return qualname
    return f"{module}.{qualname}"


@overload
def timed(func_or_name: F) -> F: ...
@overload
def timed(func_or_name: str) -> Callable[[F], F]: ...  # noqa: F811
def timed(func_or_name: Any) -> Any:  # noqa: F811
    """Decorator: time every call of a function as one event.

    ``@liteprof.timed`` names the event ``module.qualname``; ``@liteprof.timed("name")``
    names it. On a coroutine function the whole ``await`` is one event; on a generator
    or async generator function, the whole iteration (first resume to exhaustion or
    ``close()``). The wrapper checks at call time whether recording is on, so functions
    decorated before ``enable()`` are timed once it is.
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

    disable()
    chosen = backend.switch(name)
    chosen.set_decorator(_decorate)
    BACKEND = chosen.BACKEND
    scope = chosen.scope
    # mypy sees the stub's class (the public type of both recorders' Scope), rebound here.
    Scope = chosen.Scope  # type: ignore[misc]
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
