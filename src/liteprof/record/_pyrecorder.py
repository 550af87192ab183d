"""The pure-Python recorder: reference twin of the C core ``_core``.

Both backends expose the same names (see ``_core.pyi``) and write the same log format.
Per thread there is a stack of open frames (``_Frame``) and one mapped block that only
that thread writes to, so the hot path takes no lock. Each frame remembers the asyncio
task it was entered in (``None`` outside asyncio), so that scopes of tasks interleaving on
one thread never nest into each other, and the epoch it was entered in, so that a frame
opened before a fork, ``disable()`` or a new ``enable()`` never writes.
"""

from __future__ import annotations

import _thread
import sys
import time

from ..log import format as F

TYPE_CHECKING = False
if TYPE_CHECKING:  # neither typing nor threading is imported by ``import liteprof``
    from typing import Any, Callable

BACKEND = "python"

_SLOT = F.SLOT_SIZE
_pack_event = F.EVENT_STRUCT.pack_into
_EVENT = F.KIND_EVENT
_ERROR = F.KIND_EVENT | F.FLAG_ERROR
_MAX_DEPTH = F.MAX_DEPTH
_DEPTH_SHIFT = F.DEPTH_SHIFT

_clock: Callable[[], int] = time.perf_counter_ns
_session: Any = None
_epoch = 0
_on = False
_names: dict[str, int] = {}


class _Local(_thread._local):  # what threading.local is
    # A class-level default: a thread without state reads None instead of raising
    # AttributeError, which costs ~0.5 µs when it is raised on every exit.
    s: _ThreadState | None = None


_tls = _Local()


class _ThreadState:
    """One thread's open frames, its block, and its index in the current file."""

    __slots__ = ("epoch", "mm", "pos", "end", "size", "tidx", "stack", "busy")

    def __init__(self) -> None:
        self.epoch = -1
        self.mm: Any = None
        self.pos = 0
        self.end = 0  # pos >= end: no usable block, take the slow path
        self.size = 0
        self.tidx = -1
        # True while this thread is inside a session callback (it takes the writer's
        # lock): a scope closed there by a finalizer or the GC is dropped, not re-entered.
        self.busy = False
        self.stack: list[_Frame] = []


def _thread_state() -> _ThreadState:
    st = _tls.s
    if st is None:
        st = _tls.s = _ThreadState()
    return st


def _no_loop() -> None:
    return None


# Bound on first use once asyncio is imported; importing asyncio (or _asyncio, which
# breaks asyncio.current_task when imported first) from liteprof would cost every user.
_running_loop: Callable[[], Any] = _no_loop
_current_task: Callable[[], Any] = _no_loop
_asyncio_bound = False


def _bind_asyncio() -> bool:
    global _running_loop, _current_task, _asyncio_bound
    mod = sys.modules.get("asyncio")
    try:
        _running_loop = mod.events._get_running_loop  # type: ignore[union-attr]
        _current_task = mod.current_task  # type: ignore[union-attr]
    except AttributeError:  # not imported, or still importing: no loop can be running
        return False
    _asyncio_bound = True
    return True


def _task() -> Any:
    """The running asyncio task, or ``None`` (also while asyncio was never imported)."""
    if not _asyncio_bound and ("asyncio" not in _modules or not _bind_asyncio()):
        return None
    if _running_loop() is None:
        return None
    return _current_task()


_modules = sys.modules


class _Frame:
    """One open scope on a thread's stack.

    ``scope(name)`` returns a fresh frame, which is found by identity (its ``key`` is
    ``None``); a shared ``Scope`` pushes a frame whose key is the ``Scope``. A frame refers
    to its thread's state, so it must never be part of a reference cycle: that would keep
    a finished thread's block (a mapping and a file descriptor) alive until the next GC.
    The hot path is written out inline: in pure Python every function call costs as much
    as the work itself.
    """

    __slots__ = ("key", "name", "start", "child", "task", "depth", "epoch", "st")

    key: Any
    name: str
    start: int
    child: int
    task: Any
    depth: int
    epoch: int
    st: _ThreadState

    def __enter__(self) -> _Frame:
        st = _tls.s
        if st is None:
            st = _thread_state()
        # The exit uses the entering thread's state without looking it up again. A frame
        # that a generator carries to another thread still leaves the right stack; its
        # event goes into the entering thread's block.
        self.st = st
        stack = st.stack
        if _asyncio_bound:
            task = _current_task() if _running_loop() is not None else None
        elif "asyncio" in _modules:
            task = _task()
        else:
            task = None
        if stack:
            top = stack[-1]
            self.depth = top.depth + 1 if top.task is task else _depth(stack, task)
        else:
            self.depth = 0
        self.task = task
        self.child = 0
        self.epoch = _epoch
        stack.append(self)
        self.start = _clock()
        return self

    def __exit__(self, et: object, ev: object, tb: object) -> None:
        end = _clock()
        try:
            st = self.st
        except AttributeError:
            return  # never entered
        stack = st.stack
        if stack and stack[-1] is self:
            del stack[-1]
            below = len(stack)
        else:
            # Out of order: an asyncio task or a suspended generator left its scope while
            # another one was open above it.
            try:
                below = stack.index(self)
            except ValueError:
                return
            del stack[below]
        if self.epoch != _epoch:
            return  # entered before a fork, disable() or a new enable(): not ours to write
        dur = end - self.start
        if below:
            parent = stack[below - 1]
            if parent.task is self.task:
                parent.child += dur
            else:
                _add_to_parent(stack, below - 1, self.task, dur)
        # Store the event into the closing thread's block (a generator may carry a scope
        # to another thread): the same as _write(), inline for speed.
        cur = _tls.s
        if cur is None or cur.busy:
            _write(self.start, dur, self.child, self.name, self.depth, et is not None)
            return
        st = cur
        pos = st.pos
        try:
            ident = _names.get(self.name)
        except TypeError:  # an unhashable name: _write reports the bad name, never raises
            ident = None
        if ident is None or pos >= st.end or st.epoch != _epoch:
            _write(self.start, dur, self.child, self.name, self.depth, et is not None)
            return
        depth = self.depth
        try:
            _pack_event(
                st.mm,
                pos,
                self.start,
                dur,
                self.child,
                ident,
                (_EVENT if et is None else _ERROR)
                | ((depth if depth < _MAX_DEPTH else _MAX_DEPTH) << _DEPTH_SHIFT),
            )
        except (ValueError, TypeError):
            return  # a concurrent disable() closed the block under us; the event is dropped
        st.pos = pos + _SLOT

    def __call__(self, func: Any) -> Any:
        return _decorate(func, self.name)

    def __repr__(self) -> str:
        return f"<liteprof.scope {self.name!r}>"


def _add_to_parent(stack: list[_Frame], top: int, task: Any, dur: int) -> None:
    """Charge ``dur`` to the nearest frame at or below index ``top`` in the same task."""
    for i in range(top, -1, -1):
        parent = stack[i]
        if parent.task is task:
            parent.child += dur
            return


def _depth(stack: list[_Frame], task: Any) -> int:
    for i in range(len(stack) - 1, -1, -1):
        if stack[i].task is task:
            return stack[i].depth + 1
    return 0


def _pop_shared(key: Any, et: object) -> None:
    """Exit of a shared ``Scope``: find its innermost frame in the current task."""
    st = _tls.s
    if st is None or not st.stack:
        return
    stack = st.stack
    task = _task()
    for i in range(len(stack) - 1, -1, -1):
        frame = stack[i]
        if frame.key is key and frame.task is task:
            frame.__exit__(et, None, None)
            return


def _write(start: int, dur: int, child: int, name: str, depth: int, error: bool) -> None:
    st = _thread_state()
    if st.busy:
        return
    st.busy = True
    try:
        if st.epoch != _epoch:
            if not _attach(st):
                return
        try:
            ident = _names.get(name)
        except TypeError:
            # Unhashable, so not a str: name_id() below reports the bad name as a
            # recording failure (one warning, recording stops) instead of dropping it here.
            ident = None
        if ident is None:
            session = _session  # read once: another thread's disable() may clear it
            names = _names
            if session is None:
                return
            ident = session.name_id(name)
            if ident < 0 or session is not _session:
                return  # a new enable() meanwhile: that id belongs to the old file
            names[name] = ident
        pos = st.pos
        if pos >= st.end:
            if not _next_block(st):
                return
            pos = st.pos
        flags = (_ERROR if error else _EVENT) | (
            (depth if depth < _MAX_DEPTH else _MAX_DEPTH) << _DEPTH_SHIFT
        )
        _pack_event(st.mm, pos, start, dur, child, ident, flags)
        st.pos = pos + _SLOT
    except (ValueError, TypeError, OSError):
        # A concurrent disable() closed the block under us; the event is dropped.
        return
    finally:
        st.busy = False


def _attach(st: _ThreadState) -> bool:
    """First event of this thread in this file: register the thread, get a block."""
    session = _session
    if session is None or not _on:
        return False
    import threading  # imported by enable() already (session._prepare)

    thread = threading.current_thread()
    tidx = session.thread(threading.get_native_id(), thread.name)
    if tidx < 0 or session is not _session:
        return False
    st.tidx = tidx
    st.size = F.MIN_BLOCK
    st.mm = None
    st.epoch = _epoch
    st.pos = st.end = 0
    return _next_block(st)


def _next_block(st: _ThreadState) -> bool:
    session = _session
    if session is None:
        return False
    old = st.mm
    if old is not None:
        st.size = min(st.size * 2, F.MAX_BLOCK)
    mm = session.block(st.tidx, st.size)
    st.mm = None
    if old is not None:
        session.release(old)
    if mm is None:
        st.epoch = -1
        st.pos = st.end = 0
        return False
    st.mm = mm
    st.pos = _SLOT
    st.end = len(mm)  # the writer may round the size up
    return True


class _Noop:
    """What ``scope()`` returns while nothing records: one shared do-nothing object."""

    __slots__ = ()

    def __enter__(self) -> _Noop:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def __call__(self, func: Any) -> Any:
        return func

    def __repr__(self) -> str:
        return "<liteprof.scope (not recording)>"


NOOP = _Noop()


_new = object.__new__


def scope(name: str) -> Any:
    if _on:
        frame = _new(_Frame)  # no __init__: a Python-level call saved per scope
        frame.name = name
        frame.key = None  # its own key; a reference to itself would be a cycle
        return frame
    return NOOP


class Scope:
    """A named scope made once and entered many times; see ``liteprof.Scope``."""

    __slots__ = ("name", "__weakref__")

    def __init__(self, name: str) -> None:
        if not isinstance(name, str):
            raise TypeError(f"scope name must be str, not {type(name).__name__}")
        self.name = name

    def __enter__(self) -> Scope:
        if _on:
            frame = _new(_Frame)
            frame.name = self.name
            frame.key = self
            frame.__enter__()
        return self

    def __exit__(self, et: object, ev: object, tb: object) -> None:
        st = _tls.s
        if st is None:
            return
        stack = st.stack
        if stack:
            top = stack[-1]
            if top.key is self and top.task is (
                (_current_task() if _running_loop() is not None else None)
                if _asyncio_bound
                else None
            ):
                top.__exit__(et, ev, tb)
            else:
                _pop_shared(self, et)

    def __call__(self, func: Any) -> Any:
        return _decorate(func, self.name)

    def __repr__(self) -> str:
        return f"liteprof.Scope({self.name!r})"


def timed_function(func: Callable[..., Any], name: str) -> Callable[..., Any]:
    """Wrap a plain (synchronous) callable so each call is one event named ``name``."""
    import functools

    @functools.wraps(func)
    def timed_call(*args: Any, **kwargs: Any) -> Any:
        if not _on:
            return func(*args, **kwargs)
        frame = _new(_Frame)
        frame.name = name
        frame.key = None  # its own key; a reference to itself would be a cycle
        frame.__enter__()
        try:
            result = func(*args, **kwargs)
        except BaseException as exc:
            frame.__exit__(type(exc), exc, None)
            raise
        frame.__exit__(None, None, None)
        return result

    return timed_call


def start(session: Any) -> None:
    """Start recording into ``session`` (see ``_api._Session``)."""
    global _session, _on, _epoch, _names
    _epoch += 1
    _names = {}
    _session = session
    _on = True


def stop() -> None:
    """Stop recording; open frames are dropped when they exit."""
    global _session, _on, _epoch
    _on = False
    _session = None
    _epoch += 1


def active() -> bool:
    return _on


def after_fork_child() -> None:
    """In a forked child: forget the parent's file and every frame opened before the fork."""
    global _session, _on, _epoch, _names
    _epoch += 1
    _names = {}
    _session = None
    _on = False
    st = getattr(_tls, "s", None)
    if st is not None:
        st.mm = None
        st.epoch = -1
        st.pos = st.end = 0


def _default_decorate(func: Callable[..., Any], name: str) -> Callable[..., Any]:
    return timed_function(func, name)


_decorate: Callable[[Callable[..., Any], str], Callable[..., Any]] = _default_decorate


def set_decorator(fn: Callable[[Callable[..., Any], str], Callable[..., Any]] | None) -> None:
    """``fn(func, name)`` wraps what ``Scope``/``scope()`` decorate; ``None`` resets."""
    global _decorate
    _decorate = _default_decorate if fn is None else fn


def set_clock(clock: Callable[[], int] | None) -> None:
    """Use ``clock`` (integer nanoseconds) instead of the monotonic clock; ``None`` resets."""
    global _clock
    _clock = time.perf_counter_ns if clock is None else clock
