"""The pure-Python recorder: reference twin of the C core ``_core``.

Both backends expose the same names (see ``_core.pyi``) and write the same log format.
Per thread there is a stack of open frames and one mapped block that only that thread
writes to, so the hot path takes no lock. A frame is ``[key, start, child_ns, task,
depth, epoch]``; ``task`` is the running asyncio task (``None`` outside asyncio), so that
scopes of tasks interleaving on one thread never nest into each other.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, Callable

from . import _format as F


BACKEND = "python"

_SLOT = F.SLOT_SIZE
_pack_event = F.EVENT_STRUCT.pack_into
_EVENT = F.KIND_EVENT
_ERROR = F.KIND_EVENT | F.FLAG_ERROR
_MAX_DEPTH = F.MAX_DEPTH

_clock: Callable[[], int] = time.perf_counter_ns
_session: Any = None
_epoch = 0
_on = False
_names: dict[str, int] = {}
_tls = threading.local()


class _ThreadState:
    __slots__ = ("epoch", "mm", "pos", "end", "size", "tidx", "stack")

    def __init__(self) -> None:
        self.epoch = -1
        self.mm: Any = None
        self.pos = 0
        self.end = 0
        self.size = 0
        self.tidx = -1
        self.stack: list[list[Any]] = []


def _thread_state() -> _ThreadState:
    try:
        return _tls.s  # type: ignore[no-any-return]
    except AttributeError:
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
    # One C call outside asyncio; the task is only looked up when a loop runs.
    if not _asyncio_bound and not _bind_asyncio():
        return None
    if _running_loop() is None:
        return None
    return _current_task()


def _push(key: Any) -> None:
    try:
        st = _tls.s
    except AttributeError:
        st = _thread_state()
    stack = st.stack
    task = _task()
    depth = 0
    for i in range(len(stack) - 1, -1, -1):
        below = stack[i]
        if below[3] is task:
            depth = below[4] + 1
            break
    stack.append([key, _clock(), 0, task, depth, _epoch])


def _pop(key: Any, name: str, error: bool) -> None:
    end = _clock()
    try:
        stack = _tls.s.stack
    except AttributeError:
        return
    if not stack:
        return
    task = _task()
    i = len(stack) - 1
    frame = stack[i]
    if frame[0] is not key or frame[3] is not task:
        # Out of order: an asyncio task or a suspended generator left its scope
        # while another one was open above it.
        i -= 1
        while i >= 0:
            frame = stack[i]
            if frame[0] is key and frame[3] is task:
                break
            i -= 1
        else:
            return
    del stack[i]
    if frame[5] != _epoch or not _on:
        return  # entered before a fork, disable() or a new enable(): not ours to write
    dur = end - frame[1]
    j = i - 1
    while j >= 0:
        parent = stack[j]
        if parent[3] is task:
            parent[2] += dur
            break
        j -= 1
    _write(frame[1], dur, frame[2], name, frame[4], error)


def _write(start: int, dur: int, child: int, name: str, depth: int, error: bool) -> None:
    st = _tls.s
    try:
        if st.epoch != _epoch:
            if not _attach(st):
                return
        ident = _names.get(name)
        if ident is None:
            ident = _session.name_id(name)
            if ident < 0:
                return
            _names[name] = ident
        pos = st.pos
        if pos >= st.end:
            if not _next_block(st):
                return
            pos = st.pos
        flags = (_ERROR if error else _EVENT) | (
            (depth if depth < _MAX_DEPTH else _MAX_DEPTH) << 16
        )
        _pack_event(st.mm, pos, start, dur, child, ident, flags)
        st.pos = pos + _SLOT
    except (ValueError, TypeError, OSError):
        # A concurrent disable() closed the block under us; the event is dropped.
        return


def _attach(st: _ThreadState) -> bool:
    """First event of this thread in this file: register the thread, get a block."""
    session = _session
    if session is None or not _on:
        return False
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
        return False
    st.mm = mm
    st.pos = _SLOT
    st.end = st.size
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


class _ScopeCall:
    """One use of ``scope(name)`` while recording."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> _ScopeCall:
        _push(self)
        return self

    def __exit__(self, et: object, ev: object, tb: object) -> None:
        _pop(self, self.name, et is not None)

    def __call__(self, func: Any) -> Any:
        return timed_function(func, self.name)

    def __repr__(self) -> str:
        return f"<liteprof.scope {self.name!r}>"


def scope(name: str) -> Any:
    if _on:
        return _ScopeCall(name)
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
            _push(self)
        return self

    def __exit__(self, et: object, ev: object, tb: object) -> None:
        try:
            stack = _tls.s.stack
        except AttributeError:
            return
        if stack:
            _pop(self, self.name, et is not None)

    def __call__(self, func: Any) -> Any:
        return timed_function(func, self.name)

    def __repr__(self) -> str:
        return f"liteprof.Scope({self.name!r})"


def timed_function(func: Callable[..., Any], name: str) -> Callable[..., Any]:
    """Wrap a plain (synchronous) callable so each call is one event named ``name``."""
    import functools

    key = Scope(name)

    @functools.wraps(func)
    def timed_call(*args: Any, **kwargs: Any) -> Any:
        if not _on:
            return func(*args, **kwargs)
        _push(key)
        try:
            result = func(*args, **kwargs)
        except BaseException:
            _pop(key, name, True)
            raise
        _pop(key, name, False)
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


def set_clock(clock: Callable[[], int] | None) -> None:
    """Use ``clock`` (integer nanoseconds) instead of the monotonic clock; ``None`` resets."""
    global _clock
    _clock = time.perf_counter_ns if clock is None else clock
