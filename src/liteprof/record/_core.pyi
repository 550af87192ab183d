"""Type stub of ``liteprof._core``, the compiled twin of ``liteprof._pyrecorder``."""

from array import array
from types import TracebackType
from typing import Any, Callable, Final, Literal, TypeVar, final

from typing_extensions import Buffer, disjoint_base

# What ``Scope``/``scope()`` decorate comes back with the same signature: a ``TimedFunction``,
# or the coroutine/generator wrapper of ``set_decorator``'s function (the function itself
# for a name that is not a str).
_F = TypeVar("_F", bound=Callable[..., Any])

BACKEND: Final[Literal["c"]]

@final
class _Noop:
    """What ``scope()`` returns while nothing records: one shared do-nothing object."""

    def __enter__(self) -> _Noop: ...
    def __exit__(
        self,
        et: type[BaseException] | None = ...,
        ev: BaseException | None = ...,
        tb: TracebackType | None = ...,
        /,
    ) -> None: ...
    def __call__(self, func: _F, /) -> _F: ...

NOOP: Final[_Noop]

@final
class _ScopeCall:
    """One use of ``scope(name)`` while recording."""

    @property
    def name(self) -> str: ...
    def __enter__(self) -> _ScopeCall:
        """Entered again while open, it opens a second scope; each exit closes the
        innermost one still open."""
    def __exit__(
        self,
        et: type[BaseException] | None = ...,
        ev: BaseException | None = ...,
        tb: TracebackType | None = ...,
        /,
    ) -> None: ...
    def __call__(self, func: _F, /) -> _F: ...

@disjoint_base
class Scope:
    """A named scope made once and entered many times; see ``liteprof.Scope``.

    Its type is named ``liteprof.Scope`` and it pickles as ``liteprof.Scope(name)``: it
    unpickles with the recorder of the process that loads it.
    """

    name: str
    def __new__(cls, name: str) -> Scope: ...
    def __enter__(self) -> Scope: ...
    def __exit__(
        self,
        et: type[BaseException] | None = ...,
        ev: BaseException | None = ...,
        tb: TracebackType | None = ...,
        /,
    ) -> None: ...
    def __call__(self, func: _F, /) -> _F: ...

@final
class TimedFunction:
    """A synchronous callable whose every call is one event; binds as a method.

    Carries ``functools.wraps`` metadata (``__wrapped__``, ``__name__``, ``__qualname__``,
    ``__doc__``, ``__module__``, ``__dict__``).
    """

    __wrapped__: Callable[..., Any]
    __name__: str
    __qualname__: str
    __dict__: dict[str, Any]
    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...
    def __get__(self, instance: object, owner: type | None = None, /) -> Any: ...

def scope(name: str, /) -> _ScopeCall | _Noop:
    """``NOOP`` while nothing records, else a fresh context manager and decorator."""

def timed_function(func: Callable[..., Any], name: str, /) -> TimedFunction:
    """Wrap a plain (synchronous) callable so each call is one event named ``name``."""

def start(session: Any, /) -> None:
    """Start recording into ``session`` (see ``_api._Session``)."""

def stop() -> None:
    """Stop recording and release every thread's block; open frames are dropped."""

def active() -> bool: ...
def after_fork_child() -> None:
    """In a forked child: forget the parent's file, other threads and earlier frames."""

def set_decorator(fn: Callable[[Callable[..., Any], str], Callable[..., Any]] | None, /) -> None:
    """``fn(func, name)`` wraps what ``Scope``/``scope()`` decorate; ``None`` resets."""

def set_clock(clock: Callable[[], int] | None, /) -> None:
    """Read ``clock()`` (integer nanoseconds) instead of ``CLOCK_MONOTONIC``; ``None`` resets."""

def _stats() -> dict[str, Any]:
    """Tests only: counters (threads; this thread's open frames, lanes other than lane 0 and
    waiting events; freelist, epoch, attached, clock: tsc/calibrating/monotonic/test)."""

def _forget_warnings() -> None:
    """Tests only: warn again of the next bad name, as a new process would."""

# The writer's helpers (``_guard.c``, ``_fold.c``), used through ``log/_native.py``.

def _guard_watch(buffer: Buffer, /) -> int:
    """Survive SIGBUS in the mapping behind ``buffer``; a handle, or -1 (unguarded)."""

def _guard_unwatch(handle: int, /) -> None:
    """The mapping of ``handle`` is (about to be) unmapped: stop guarding it."""

def _guard_faults() -> int:
    """Faults in guarded mappings repaired so far in this process."""

def _guard_available() -> bool:
    """Whether this build can guard mappings at all (POSIX)."""

def _fold(
    acc: Buffer, slots: Buffer, bounds: array[int], /
) -> tuple[int, int, int | None, int | None]:
    """Add the events of one block's ``slots`` to the per-name records of the writable
    ``acc``; ``bounds`` is an ``array("Q")``. (folded, skipped, first start, last end)."""
