"""The pure-Python recorder: reference twin of the C core ``_core``.

Both backends expose the same names (see ``_core.pyi``) and write the same log bytes for
the same program. Per thread there is one mapped block that only that thread's scopes are
written to, so the hot path takes no lock, and a set of *lanes*: lane 0 for code outside
any asyncio task or greenlet, and one per task or greenlet with scopes open. A lane holds
its stack of open frames (``_Frame``); scopes nest, and charge their time to their parent,
only within their own thread and lane, so that tasks interleaving on one thread never nest
into each other, and a scope costs the same however many other tasks hold scopes open.

The lane of running code (``_resolve``) is the current asyncio task (a loop runs in this
thread and a task is current), else the current greenlet (once ``greenlet`` is imported,
and not the thread's main greenlet), else lane 0; code run with ``contextvars.Context.run``
belongs to the lane that runs it. Lane ids count per thread in first-use order (1, 2, ...).
A lane is forgotten once it has no scope open and is not the current one (the lane of the
last scope entered or shared scope left), so that flat scopes in one task keep one id and
finished tasks are not kept alive. The C core follows exactly these rules.

Each frame remembers the epoch it was entered in, so that a frame opened before a fork,
``disable()`` or a new ``enable()`` never writes. A scope that closes while its thread is
writing (a signal handler, a ``sys.settrace`` hook or a finalizer run in the middle of it)
is queued and written right after, never lost or written over.
"""

from __future__ import annotations

import _thread
import _weakref
import sys
import time

from ..log import format as F

TYPE_CHECKING = False
if TYPE_CHECKING:  # neither typing nor threading is imported by ``import liteprof``
    from typing import Any, Callable

BACKEND = "python"

_SLOT = F.SLOT_SIZE
_pack_event = F.EVENT_STRUCT.pack_into
_pack_lane = F.LANE_STRUCT.pack_into
_EVENT = F.KIND_EVENT
_FLAG_ERROR = F.FLAG_ERROR
_LANE = F.KIND_LANE
# An event's flags word is worked out when its scope is entered: kind, plus its depth in
# bits 16-31, one more than its parent's, saturating at MAX_DEPTH.
_DEPTH_ONE = 1 << F.DEPTH_SHIFT
_DEPTH_TOP = F.KIND_EVENT | (F.MAX_DEPTH << F.DEPTH_SHIFT)
# Events that close while their thread's block is busy wait here; beyond this many (a
# handler that records thousands of scopes while one event is being written) they are
# dropped.
_MAX_PENDING = 4096

_clock: Callable[[], int] = time.perf_counter_ns
_session: Any = None
_epoch = 0
_on = False
_names: dict[str, int] = {}
_names_get = _names.get


class _Local(_thread._local):  # what threading.local is
    # Class-level defaults: a thread without state reads None instead of raising
    # AttributeError, which costs ~0.5 µs when it is raised on every exit.
    s: _ThreadState | None = None
    # True while this thread is inside a session callback, which holds the writer's lock:
    # a scope closed there (by a signal handler or a finalizer) must not call back again.
    cb = False


_tls = _Local()


class _Lane:
    """A lane of one thread: the scopes open in one asyncio task or greenlet (``key``), or,
    for lane 0 (``key`` None, ``id`` 0), outside any."""

    __slots__ = ("key", "id", "stack")

    def __init__(self, key: Any, ident: int) -> None:
        self.key = key
        self.id = ident
        self.stack: list[_Frame] = []


class _ThreadState:
    """One thread's lanes, its block, and its index in the current file."""

    __slots__ = (
        "epoch",
        "mm",
        "pos",
        "end",
        "size",
        "tidx",
        "blane",
        "busy",
        "pending",
        "lane0",
        "cur",
        "lanes",
        "nlanes",
        "thread",
        "native",
        "__weakref__",
    )

    def __init__(self) -> None:
        self.epoch = -1
        self.mm: Any = None
        self.pos = 0
        self.end = 0  # pos >= end: no usable block, take the slow path
        self.size = 0
        self.tidx = -1
        self.blane = 0  # the lane in force at ``pos`` in the current block
        # True while an event is being stored into this thread's block: an event that
        # closes meanwhile (a signal handler, a trace hook, a finalizer, another thread
        # closing a scope this thread opened) goes to ``pending`` and is stored right after.
        self.busy = False
        self.pending: list[tuple[int, int, int, int, int, Any, int]] = []
        self.lane0 = _Lane(None, 0)
        self.cur = self.lane0  # the current lane: see the module docstring
        self.lanes: dict[int, _Lane] = {}  # id(key) -> lane; the lane holds key alive
        self.nlanes = 0
        # The thread that owns the state: another thread that closes a scope it opened
        # may be the one to attach it.
        import threading  # imported by enable() already (session._prepare)

        self.thread = threading.current_thread()
        self.native = threading.get_native_id()


def _thread_state() -> _ThreadState:
    st = _tls.s
    if st is None:
        st = _tls.s = _ThreadState()
        _states[id(st)] = _weakref.ref(st, _forget_state(id(st)))
    return st


def _forget_state(key: int) -> Callable[[Any], None]:
    def forget(_ref: Any) -> None:
        _states.pop(key, None)

    return forget


# Every thread's state, weakly, so that start(), stop() and a fork can take every thread's
# block out of use at once (end = 0 sends its next event down the slow path, which checks
# the epoch): the hot path then needs no epoch check of its own.
_states: dict[int, Any] = {}


def _retire_blocks() -> None:
    for ref in list(_states.values()):
        st = ref()
        if st is not None:
            st.end = 0


def _none(*_args: Any) -> None:
    return None


_modules = sys.modules
# Bound on first use once asyncio (greenlet) is imported: importing either from liteprof
# would cost every user (and importing _asyncio first breaks asyncio.current_task).
_running_loop: Callable[[], Any] = _none
_current_task: Callable[[Any], Any] = _none
_asyncio_bound = False
_getcurrent: Callable[[], Any] = _none
_greenlet_bound = False


def _bind_asyncio() -> bool:
    global _running_loop, _current_task, _asyncio_bound
    mod = _modules.get("asyncio")
    try:
        running_loop = mod.events._get_running_loop  # type: ignore[union-attr]
        current_task = mod.current_task  # type: ignore[union-attr]
    except AttributeError:  # not imported, or still importing: no loop can be running
        return False
    _running_loop, _current_task = running_loop, current_task
    _asyncio_bound = True
    return True


def _bind_greenlet() -> bool:
    global _getcurrent, _greenlet_bound
    try:
        _getcurrent = _modules["greenlet"].getcurrent
    except (KeyError, AttributeError):  # still importing
        return False
    _greenlet_bound = True
    return True


def _resolve(st: _ThreadState) -> _Lane:
    """The lane of the code running now on this thread; it becomes the current lane."""
    key = None
    try:
        if _asyncio_bound or ("asyncio" in _modules and _bind_asyncio()):
            loop = _running_loop()
            if loop is not None:
                key = _current_task(loop)
        if key is None and (_greenlet_bound or ("greenlet" in _modules and _bind_greenlet())):
            g = _getcurrent()
            if g.parent is not None:  # only a thread's main greenlet has no parent
                key = g
    except Exception:  # a broken or half-imported module: no lane, never an error
        key = None
    cur = st.cur
    if cur.key is key:
        return cur
    if key is None:
        lane = st.lane0
    else:
        found = st.lanes.get(id(key))  # by identity: a Task subclass may define __eq__
        if found is None:
            st.nlanes += 1
            found = st.lanes[id(key)] = _Lane(key, st.nlanes)
        lane = found
    st.cur = lane
    if not cur.stack and cur.id:
        _forget(st, cur)
    return lane


def _forget(st: _ThreadState, lane: _Lane) -> None:
    """Drop an idle lane (no scope open, not current), and with it its key."""
    if st.lanes.get(id(lane.key)) is lane:
        del st.lanes[id(lane.key)]


class _Frame:
    """One open scope in a lane.

    ``scope(name)`` returns a fresh frame, which is found by identity; a shared ``Scope``
    pushes a ``_KeyedFrame`` whose key is the ``Scope``. ``flags`` is the event's flags word
    (kind and nesting depth) worked out at entry. A frame refers to its thread's state, so
    while it is open there is a cycle (state, lane, stack, frame); it leaves the stack when
    it closes, so a finished thread's block is not kept alive by one. The hot path is
    written out inline: in pure Python every function call costs as much as the work
    itself.
    """

    __slots__ = ("name", "start", "child", "flags", "epoch", "st", "lane")

    key: Any = None  # no Scope is None: a scope() frame never matches a Scope's exit
    name: str
    start: int
    child: int
    flags: int
    epoch: int
    st: _ThreadState | None
    lane: _Lane

    def __enter__(self) -> _Frame:
        st = _tls.s
        if st is None:
            st = _thread_state()
        if self.st is not None:
            return _reenter(self, st)
        self.st = st
        if _asyncio_bound:  # the common cases inline: no loop running, or the same task
            loop = _running_loop()
            lane = st.cur
            if loop is not None:
                task = _current_task(loop)
                if task is None or lane.key is not task:
                    lane = _resolve(st)
            elif lane.id or "greenlet" in _modules:
                lane = _resolve(st)
        elif "asyncio" in _modules or "greenlet" in _modules:
            lane = _resolve(st)
        else:
            lane = st.lane0
        self.lane = lane
        stack = lane.stack
        if stack:
            flags = stack[-1].flags
            self.flags = flags + _DEPTH_ONE if flags < _DEPTH_TOP else flags
        else:
            self.flags = 1  # _EVENT at depth 0, spelled out: a global lookup saved
        self.child = 0
        self.epoch = _epoch
        stack.append(self)
        self.start = _clock()
        return self

    def __exit__(self, et: Any = None, ev: object = None, tb: object = None) -> None:
        st = self.st
        if st is None:
            return  # never entered
        lane = self.lane
        stack = lane.stack
        if not stack or stack[-1] is not self:
            _exit_out_of_order(self, et)
            return
        end = _clock()
        del stack[-1]
        if self.epoch != _epoch:  # entered before a fork, disable() or a new enable()
            if not stack and lane is not st.cur and lane.id:
                _forget(st, lane)
            return
        start = self.start
        dur = end - start
        if stack:
            stack[-1].child += dur
        elif lane is not st.cur and lane.id:
            _forget(st, lane)
        # Stored into the block of the thread that entered the scope, whose lanes and depths
        # it belongs to (a generator may carry a scope to another thread and close it there).
        flags = self.flags if et is None or not _is_error(et) else self.flags | _FLAG_ERROR
        if st.busy:
            _queue(st, (self.epoch, lane.id, start, dur, self.child, self.name, flags))
            return
        st.busy = True
        try:
            try:
                ident = _names_get(self.name)
            except Exception:  # a str subclass whose __hash__ or __eq__ raises
                ident = None
            pos = st.pos
            if ident is None or pos >= st.end or lane.id != st.blane:  # see _retire_blocks
                event = (lane.id, start, dur, self.child, self.name, flags)
                if not _store(st, *event):
                    _queue(st, (self.epoch, *event))
            else:
                _pack_event(st.mm, pos, start, dur, self.child, ident, flags)
                st.pos = pos + _SLOT
        except (ValueError, TypeError):
            pass  # a concurrent disable() closed the block under us; the event is dropped
        finally:
            st.busy = False
        if st.pending:
            _drain(st)

    def __call__(self, func: Any) -> Any:
        if not isinstance(self.name, str):
            _bad_name(self.name)
            return func
        return _decorate(func, self.name)

    def __repr__(self) -> str:
        return f"<liteprof.scope {self.name!r}>"


class _KeyedFrame(_Frame):
    """The frame a shared ``Scope`` (``key``) pushes; its exit finds it by key and lane."""

    __slots__ = ("key",)


def _reenter(frame: _Frame, st: _ThreadState) -> _Frame:
    """``with s: with s:`` of one ``scope()`` object: each entry is a scope of its own.

    The frame of the entry still open is moved to a ``_KeyedFrame`` keyed by ``frame`` (it
    closes when ``frame`` is left once more), and ``frame`` is entered afresh.
    """
    old = frame.lane.stack
    for i in range(len(old) - 1, -1, -1):
        if old[i] is frame:
            outer = _KeyedFrame.__new__(_KeyedFrame)
            outer.key = frame
            for field in _Frame.__slots__:
                setattr(outer, field, getattr(frame, field))
            old[i] = outer
            break
    frame.st = None
    return frame.__enter__()


def _exit_out_of_order(frame: _Frame, et: Any) -> None:
    """Leave ``frame`` when it is not on top of its lane: an asyncio task or a suspended
    generator left its scope while another one was open above it (its time goes to the frame
    below it), or, for a re-entered ``scope()`` object, the entry still open is its outer
    one (see ``_reenter``); or it is not open at all."""
    stack = frame.lane.stack
    for i in range(len(stack) - 1, -1, -1):
        if stack[i] is frame:
            _close(frame, i, _clock(), et)
            return
    for i in range(len(stack) - 1, -1, -1):
        if stack[i].key is frame:
            _close(stack[i], i, _clock(), et)
            return


def _close(frame: _Frame, i: int, end: int, et: Any) -> None:
    """The slow path of ``_Frame.__exit__``: take frame ``i`` out of its lane and store it."""
    st = frame.st
    assert st is not None
    lane = frame.lane
    stack = lane.stack
    del stack[i]
    dur = end - frame.start
    if frame.epoch == _epoch and i:
        stack[i - 1].child += dur
    if not stack and lane is not st.cur and lane.id:
        _forget(st, lane)
    if frame.epoch != _epoch:
        return
    flags = frame.flags if et is None or not _is_error(et) else frame.flags | _FLAG_ERROR
    event = (lane.id, frame.start, dur, frame.child, frame.name, flags)
    if st.busy:
        _queue(st, (frame.epoch, *event))
        return
    st.busy = True
    try:
        if not _store(st, *event):
            _queue(st, (frame.epoch, *event))
    except (ValueError, TypeError):
        pass  # a concurrent disable() closed the block under us; the event is dropped
    finally:
        st.busy = False
    if st.pending:
        _drain(st)


def _is_error(et: Any) -> bool:
    """Whether leaving a scope with exception type ``et`` counts as an error.

    Every exception does (``KeyboardInterrupt`` and ``SystemExit`` too: the block did not
    run to its end) except ``GeneratorExit``, which is how a generator is closed when its
    consumer stops early, a normal end of its iteration.
    """
    try:
        return not issubclass(et, GeneratorExit)
    except TypeError:  # not a class: called by hand with an exception instance, say
        return not isinstance(et, GeneratorExit)


def _queue(st: _ThreadState, event: tuple[int, int, int, int, int, Any, int]) -> None:
    """(epoch, lane id, start, dur, child, name, flags) of an event to store later."""
    if len(st.pending) < _MAX_PENDING:
        st.pending.append(event)


def _drain(st: _ThreadState) -> None:
    """Store the events that closed while this thread's block was busy, oldest first."""
    while st.pending and not st.busy:
        st.busy = True
        try:
            if not st.pending:  # a signal handler drained them before ``busy`` was set
                break
            epoch, *event = st.pending[0]
            if epoch != _epoch or _store(st, *event):
                del st.pending[0]
            else:
                break  # needs a session callback, and this thread is inside one: later
        except (ValueError, TypeError, OSError):
            del st.pending[0]
        finally:
            st.busy = False


def _store(
    st: _ThreadState,
    lid: int,
    start: int,
    dur: int,
    child: int,
    name: Any,
    flags: int,
) -> bool:
    """The slow path of one event: attach the thread, define the name, take a new block,
    put a lane slot before it; the caller holds ``st.busy``. False: it needs a session
    callback while this thread is inside one (the caller queues it for later)."""
    if st.epoch != _epoch:
        if _tls.cb:
            return False
        if not _attach(st):
            return True
    if type(name) is not str:
        if not isinstance(name, str):
            _bad_name(name)
            return True
        name = str.__str__(name)  # a str subclass: its value, never its own __hash__/__eq__
    ident = _names.get(name)
    if ident is None:
        session = _session  # read once: another thread's disable() may clear it
        names = _names
        if session is None:
            return True
        if _tls.cb:
            return False
        _tls.cb = True
        try:
            ident = session.name_id(name)
        finally:
            _tls.cb = False
        if ident < 0 or session is not _session:
            return True  # a new enable() meanwhile: that id belongs to the old file
        names[name] = ident
        if st.epoch != _epoch:
            return True
    need = _SLOT if lid == st.blane else 2 * _SLOT
    if st.pos + need > st.end:
        if _tls.cb:
            return False
        if not _next_block(st):
            return True
        need = _SLOT if lid == st.blane else 2 * _SLOT
    pos = st.pos
    mm = st.mm
    if need != _SLOT:
        _pack_lane(mm, pos, lid, _LANE)
        st.blane = lid
        pos += _SLOT
    _pack_event(mm, pos, start, dur, child, ident, flags)
    st.pos = pos + _SLOT
    return True


_bad_name_warned = False


def _bad_name(name: object) -> None:
    """A scope name that is not a str costs that event only: one warning per process."""
    global _bad_name_warned
    if _bad_name_warned:
        return
    _bad_name_warned = True
    import logging

    logging.getLogger("liteprof").warning(
        "liteprof: scope name must be str, not %s: such events are not recorded "
        "(warned once per process)",
        type(name).__name__,
    )


def _attach(st: _ThreadState) -> bool:
    """First event of this thread in this file: register the thread, get a block."""
    session = _session
    if session is None or not _on:
        return False
    _tls.cb = True
    try:
        tidx = session.thread(st.native, st.thread.name)
    finally:
        _tls.cb = False
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
    st.mm = None
    st.pos = st.end = 0
    _tls.cb = True
    try:
        mm = session.block(st.tidx, st.size)
        if old is not None:
            session.release(old)
    finally:
        _tls.cb = False
    if mm is None or session is not _session:
        st.epoch = -1
        return False
    st.mm = mm
    st.pos = _SLOT
    st.end = len(mm)  # the writer may round the size up
    st.blane = 0  # every block starts in lane 0
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


def scope(name: str) -> Any:
    if _on:
        frame = _Frame()  # no __init__: a C-level call, faster than object.__new__(_Frame)
        frame.name = name
        frame.st = None  # not entered
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
            frame = _KeyedFrame()
            frame.name = self.name
            frame.key = self
            frame.st = None
            frame.__enter__()
        return self

    def __exit__(self, et: Any = None, ev: object = None, tb: object = None) -> None:
        st = _tls.s
        if st is None or (not _on and not st.lane0.stack and not st.lanes):
            return  # nothing can be open (a Scope left after disable(), say)
        if _asyncio_bound:  # as in _Frame.__enter__
            loop = _running_loop()
            lane = st.cur
            if loop is not None:
                task = _current_task(loop)
                if task is None or lane.key is not task:
                    lane = _resolve(st)
            elif lane.id or "greenlet" in _modules:
                lane = _resolve(st)
        elif "asyncio" in _modules or "greenlet" in _modules:
            lane = _resolve(st)
        else:
            lane = st.lane0
        stack = lane.stack
        if stack:
            top = stack[-1]
            if top.key is self:
                top.__exit__(et, ev, tb)
                return
            for i in range(len(stack) - 2, -1, -1):
                frame = stack[i]
                if frame.key is self:
                    frame.__exit__(et, ev, tb)
                    return

    def __call__(self, func: Any) -> Any:
        return _decorate(func, self.name)

    def __repr__(self) -> str:
        return f"liteprof.Scope({self.name!r})"

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return _public_scope(), (self.name,)


# Pickled as liteprof.Scope, whichever backend made it: it unpickles with the recorder of
# the process that loads it.
Scope.__module__ = "liteprof"
Scope.__qualname__ = "Scope"


def _public_scope() -> Any:
    mod = _modules.get("liteprof")
    public = getattr(mod, "Scope", None)
    return public if public is not None else Scope


def timed_function(func: Callable[..., Any], name: str) -> Callable[..., Any]:
    """Wrap a plain (synchronous) callable so each call is one event named ``name``."""
    import functools

    if not isinstance(name, str):
        raise TypeError(f"scope name must be str, not {type(name).__name__}")

    @functools.wraps(func)
    def timed_call(*args: Any, **kwargs: Any) -> Any:
        if not _on:
            return func(*args, **kwargs)
        frame = _Frame()
        frame.name = name
        frame.st = None
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
    """Start recording into ``session`` (see ``session.Session``)."""
    global _session, _on, _epoch, _names, _names_get
    _epoch += 1
    _retire_blocks()
    _names = {}
    _names_get = _names.get
    _session = session
    _on = True


def stop() -> None:
    """Stop recording; open frames are dropped when they exit."""
    global _session, _on, _epoch
    _on = False
    _session = None
    _epoch += 1
    _retire_blocks()


def active() -> bool:
    return _on


def after_fork_child() -> None:
    """In a forked child: forget the parent's file and every frame opened before the fork."""
    global _session, _on, _epoch, _names, _names_get, _bad_name_warned
    _epoch += 1
    _names = {}
    _names_get = _names.get
    _session = None
    _on = False
    _bad_name_warned = False  # a new process: it warns once of its own
    _retire_blocks()
    st = getattr(_tls, "s", None)
    if st is not None:
        st.mm = None
        st.epoch = -1
        st.pos = st.end = 0
        st.busy = False
        st.pending = []
    _tls.cb = False


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


def _stats() -> dict[str, Any]:
    """Tests only: counters of this thread's state (as ``_core._stats``)."""
    st = _tls.s
    lanes = [] if st is None else [st.lane0, *st.lanes.values()]
    return {
        "frames": sum(len(lane.stack) for lane in lanes),
        "lanes": len(lanes) - 1 if lanes else 0,
        "pending": 0 if st is None else len(st.pending),
    }


def _forget_warnings() -> None:
    """Tests only: warn again of the next bad name, as a new process would."""
    global _bad_name_warned
    _bad_name_warned = False
