"""Tests specific to the C core ``liteprof.record._core``: references, memory, exceptions,
function metadata, re-entrant sessions, and byte-for-byte agreement with the pure-Python
twin under a deterministic clock.
"""

from __future__ import annotations

import asyncio
import bisect
import gc
import inspect
import itertools
import logging
import mmap
import os
import pickle
import sys
import threading
import traceback
import tracemalloc
import types
import weakref
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any, Callable

import pytest

import liteprof
from liteprof import testing
from liteprof.log import format as F

from . import rawlog
from .helpers import log_files, run_python

if TYPE_CHECKING:  # the stub, which these tests hold to the C module
    from liteprof.record import _core as core
else:
    core = pytest.importorskip("liteprof.record._core")


@pytest.fixture(autouse=True)
def backend(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Overrides the suite-wide fixture: these tests run once, on the C core."""
    testing.use_backend("c")
    monkeypatch.delenv("LITEPROF_PURE", raising=False)
    for var in ("LITEPROF_LOG", "LITEPROF_PROCESSES", "VLLM_LITE_PROFILER_LOG_PATH"):
        monkeypatch.delenv(var, raising=False)
    yield "c"
    left_on = liteprof.enabled()
    liteprof.disable()
    core.stop()
    core.set_clock(None)
    testing.set_clock(None)
    assert not left_on, "the test left recording switched on"


class StepClock:
    def __init__(self, step: int = 10) -> None:
        self._counter = itertools.count(1_000_000, step)

    def __call__(self) -> int:
        return next(self._counter)


# -- reading a log raw, without the reader under test ------------------------------------


def raw_log(path: str) -> dict[str, Any]:
    """Blocks, names, threads and event slots of one log file, straight from the bytes
    (``tests/rawlog.py``); events keyed by thread name, as (name, start, dur, child, flags);
    ``slots``: each thread's slots, every byte of its blocks; ``lanes``: each thread's lane
    slots and events in order, as ("lane", id) and (name, depth)."""
    log = rawlog.read(path)
    header = (log.magic, log.version, log.header_size, log.slot_size)
    assert header == (F.MAGIC, F.VERSION, 4096, 32)
    seqs: dict[int, int] = {}
    for b in log.blocks:  # an owner's blocks are numbered in the order it got them
        if b.owner != rawlog.PAD_OWNER:
            assert b.seq > seqs.get(b.owner, -1)
            seqs[b.owner] = b.seq
    assert not any(b.cut for b in log.blocks)
    with open(path, "rb") as fh:
        data = fh.read()
    slots: dict[str, bytes] = {}
    for b in log.blocks:
        if b.owner in log.threads:
            name = log.threads[b.owner]
            slots[name] = slots.get(name, b"") + data[b.offset + 32 : b.offset + b.size]
    # A thread's slots in file order are its slots in the order they were written.
    items: list[tuple[int, int, tuple[Any, ...]]] = [
        (e.owner, e.offset, (log.names[e.name], e.depth)) for e in log.events
    ]
    starts = [b.offset for b in log.blocks]
    for offset, lane in log.lane_slots:
        owner = log.blocks[bisect.bisect_right(starts, offset) - 1].owner
        items.append((owner, offset, ("lane", lane)))
    lanes: dict[str, list[tuple[Any, ...]]] = {}
    for owner, _offset, item in sorted(items, key=lambda x: (x[0], x[1])):
        lanes.setdefault(log.threads[owner], []).append(item)
    return {
        "names": log.names,
        "threads": log.threads,
        "events": log.by_thread(),  # asserts that thread names are unique
        "blocks": [(b.owner, b.size) for b in log.blocks],
        "slots": slots,
        "lanes": lanes,
    }


def only_log(directory: str) -> dict[str, Any]:
    files = log_files(directory)
    assert len(files) == 1, files
    return raw_log(files[0])


def flags(depth: int, error: bool = False) -> int:
    return F.KIND_EVENT | (F.FLAG_ERROR if error else 0) | (min(depth, 0xFFFF) << 16)


# -- the module surface ----------------------------------------------------------------


def test_module_surface() -> None:
    assert core.BACKEND == "c" and liteprof.BACKEND == "c"
    assert not core.active()
    assert core.scope("x") is core.NOOP
    assert core.scope(42) is core.NOOP  # type: ignore[arg-type]  # a bad name, on purpose
    with core.NOOP as entered:
        assert entered is core.NOOP
    # A true result would swallow the exception: the runtime value is what is checked.
    assert core.NOOP.__exit__(None, None, None) is None  # type: ignore[func-returns-value]

    def f() -> int:
        return 1

    assert core.NOOP(f) is f
    assert repr(core.NOOP) == "<liteprof.scope (not recording)>"
    sc = core.Scope("Group:x")
    assert repr(sc) == "liteprof.Scope('Group:x')" and sc.name == "Group:x"
    assert weakref.ref(sc)() is sc
    assert pickle.loads(pickle.dumps(sc)).name == "Group:x"
    with pytest.raises(TypeError):
        core.Scope(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        core.timed_function(f, 3)  # type: ignore[arg-type]  # a bad name, on purpose
    with pytest.raises(TypeError):
        sc.name = 5  # type: ignore[assignment]
    # Called through the class, as contextlib.ExitStack does.
    assert type(sc).__enter__(sc) is sc
    assert type(sc).__exit__(sc, None, None, None) is None
    with pytest.raises(TypeError):
        type(sc).__enter__(object())  # type: ignore[arg-type]  # the C type check is tested


def test_scope_objects_while_recording(logdir: str) -> None:
    liteprof.enable(logdir)
    a, b = core.scope("n"), core.scope("n")
    assert a is not b and a is not core.NOOP
    assert isinstance(a, core._ScopeCall)
    assert a.name == "n" and repr(a) == "<liteprof.scope 'n'>"
    with a as entered:
        assert entered is a
    liteprof.disable()
    assert core.scope("n") is core.NOOP


# -- references and memory ---------------------------------------------------------------


def test_refcounts_of_names_and_keys_are_stable(logdir: str) -> None:
    name = "".join(["Ref", ":", "Dyn"])  # built at run time: not interned, not immortal
    pre = core.Scope("".join(["Ref", ":", "Pre"]))
    pre_name = pre.name

    def g(x: int) -> int:
        return x

    timed = core.timed_function(g, "".join(["Ref", ":", "Timed"]))
    liteprof.enable(logdir)
    for _ in range(3):  # first uses define names; the recorder keeps one ref per name
        with core.scope(name):
            with pre:
                timed(1)
    counts = [sys.getrefcount(o) for o in (name, pre, pre_name, timed, g, core.NOOP)]
    for i in range(100_000):
        with core.scope(name):
            with pre:
                timed(i)
        try:
            with pre:
                raise KeyError(i)
        except KeyError:
            pass
    assert [sys.getrefcount(o) for o in (name, pre, pre_name, timed, g, core.NOOP)] == counts
    liteprof.disable()  # drops the recorder's and the writer's references to the names
    gc.collect()
    counts = [sys.getrefcount(o) for o in (name, pre, pre_name, timed, g, core.NOOP)]
    for _ in range(100_000):
        with core.scope(name):
            with pre:
                timed(1)
    assert [sys.getrefcount(o) for o in (name, pre, pre_name, timed, g, core.NOOP)] == counts
    assert core._stats()["frames"] == 0


def _rss_kib() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)


def test_memory_is_flat_over_a_million_scopes(logdir: str) -> None:
    pre = core.Scope("Mem:Pre")

    @liteprof.timed("Mem:Timed")
    def f() -> None:
        return None

    liteprof.enable(logdir)

    def run(n: int) -> None:
        for _ in range(n):
            with core.scope("Mem:Dyn"):
                pass
            with pre:
                f()

    run(100_000)  # warm up: freelists, stack, names, block sizes up to 1 MiB
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        rss_before = _rss_kib() if os.path.exists("/proc/self/statm") else 0
        run(350_000)  # 3 events each: over a million scopes
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    rss_grown = (_rss_kib() - rss_before) if rss_before else 0
    liteprof.disable()
    assert grown < 64 * 1024, grown
    # Full blocks are unmapped: at most the current 1 MiB block and allocator slack remain.
    assert rss_grown < 8 * 1024, rss_grown


# -- exceptions ----------------------------------------------------------------------------


class Custom(BaseException):
    pass


@pytest.mark.parametrize("recording", [False, True])
def test_exceptions_pass_through_untouched(logdir: str, recording: bool) -> None:
    if recording:
        liteprof.enable(logdir)
    pre = core.Scope("Exc:Pre")

    def raiser(exc: BaseException) -> None:
        raise exc

    timed = core.timed_function(raiser, "Exc:Timed")
    for make in (lambda: ValueError("v"), lambda: Custom("c"), lambda: StopIteration(3)):
        for kind in ("scope", "pre", "timed", "decorated"):
            exc = make()
            with pytest.raises(BaseException) as info:
                if kind == "scope":
                    with core.scope("Exc:Dyn"):
                        raise exc
                elif kind == "pre":
                    with pre:
                        raise exc
                elif kind == "timed":
                    timed(exc)
                else:
                    pre(raiser)(exc)
            assert info.value is exc
            assert exc.__context__ is None and exc.__cause__ is None
            frames = [f.name for f in traceback.extract_tb(exc.__traceback__)]
            assert frames[-1] in ("raiser", "test_exceptions_pass_through_untouched")
    if recording:
        liteprof.disable()
        events = only_log(logdir)["events"]["MainThread"]
        assert len(events) == 12
        assert all(f & F.FLAG_ERROR for _n, _s, _d, _c, f in events)


def test_exception_inside_handler_keeps_its_context(logdir: str) -> None:
    liteprof.enable(logdir)
    timed = core.timed_function(lambda: 1 / 0, "Exc:Div")
    try:
        raise KeyError("outer")
    except KeyError as outer:
        with pytest.raises(ZeroDivisionError) as info:
            timed()
        assert info.value.__context__ is outer
    liteprof.disable()


# -- timed functions -----------------------------------------------------------------------


def _timed(name: str) -> Callable[[Callable[..., Any]], core.TimedFunction]:
    return lambda func: core.timed_function(func, name)


@_timed("Mod:Level")
def module_level(x: int, *, scale: int = 1) -> int:
    """Module-level doc."""
    return x * scale


def test_timed_function_metadata_and_binding(logdir: str) -> None:
    t = module_level
    original = t.__wrapped__
    assert inspect.isfunction(original) and original.__name__ == "module_level"
    assert t.__name__ == "module_level"
    assert t.__qualname__ == "module_level"
    assert t.__module__ == __name__
    assert t.__doc__ == "Module-level doc."
    assert t.__annotations__ == original.__annotations__
    assert inspect.signature(t) == inspect.signature(original)

    def plain() -> None:
        pass

    plain.custom = "kept"  # type: ignore[attr-defined]
    copied: Any = core.timed_function(plain, "P")  # attributes the stub cannot know of
    assert copied.custom == "kept"
    assert weakref.ref(t)() is t
    assert pickle.loads(pickle.dumps(t)) is t
    assert t(3, scale=2) == 6
    t.extra = 1
    assert t.__dict__["extra"] == 1

    class Engine:
        calls: list[Any] = []

        @liteprof.timed
        def step(self, x: int) -> tuple[Any, int]:
            """Step doc."""
            return self, x

        @staticmethod
        @liteprof.timed("Engine:Static")
        def static(x: int) -> int:
            return x + 1

        @classmethod
        @liteprof.timed("Engine:Class")
        def klass(cls, x: int) -> tuple[Any, int]:
            return cls, x

    e = Engine()
    liteprof.enable(logdir)
    assert e.step(4) == (e, 4)
    assert Engine.step(e, 5) == (e, 5)
    assert Engine.static(1) == 2 and e.static(2) == 3
    assert Engine.klass(7) == (Engine, 7)
    bound = e.step
    assert isinstance(bound, types.MethodType)
    assert bound.__self__ is e and bound.__func__ is Engine.__dict__["step"]
    assert bound(x=6) == (e, 6)
    liteprof.disable()
    assert Engine.step.__doc__ == "Step doc." and Engine.step.__name__ == "step"
    assert isinstance(Engine.__dict__["step"], core.TimedFunction)
    events = only_log(logdir)["events"]["MainThread"]
    counts: dict[str, int] = {}
    for name, *_ in events:
        counts[name] = counts.get(name, 0) + 1
    qual = f"{__name__}.test_timed_function_metadata_and_binding.<locals>.Engine.step"
    assert counts == {qual: 3, "Engine:Static": 2, "Engine:Class": 1}


def test_timed_function_is_collected_with_its_cycles() -> None:
    def f() -> None:
        return None

    t = core.timed_function(f, "Cycle")
    f.me = t  # type: ignore[attr-defined]  # f -> t -> f, and t.__dict__ copies f's
    ref = weakref.ref(t)
    del f, t
    gc.collect()
    assert ref() is None


# -- stack discipline ----------------------------------------------------------------------


def test_out_of_order_exits(logdir: str) -> None:
    core.set_clock(StepClock())
    liteprof.enable(logdir)
    a, b = core.Scope("A"), core.scope("B")
    outer = core.Scope("Outer")
    outer.__enter__()  # t0
    a.__enter__()  # t0+10
    b.__enter__()  # t0+20
    a.__exit__(None, None, None)  # t0+30: A lasted 20, B stays open
    b.__exit__(None, None, None)  # t0+40: B lasted 20
    outer.__exit__(None, None, None)  # t0+50
    b.__exit__(None, None, None)  # not open any more: nothing
    liteprof.disable()
    events = only_log(logdir)["events"]["MainThread"]
    assert [(n, d, c, f >> 16) for n, _s, d, c, f in events] == [
        ("A", 20, 0, 1),
        ("B", 20, 0, 2),
        ("Outer", 50, 40, 0),
    ]
    assert core._stats()["frames"] == 0


def test_frames_from_before_disable_are_dropped(logdir: str) -> None:
    sc = core.Scope("Open")
    liteprof.enable(logdir)
    with sc:
        liteprof.disable()
        liteprof.enable(logdir)
        with core.scope("Inside"):
            pass
    liteprof.disable()
    # The first session recorded nothing (so made no file); the frame opened in it is
    # dropped when it closes in the second.
    events = only_log(logdir)["events"]
    assert [n for n, *_ in events["MainThread"]] == ["Inside"]
    assert core._stats()["frames"] == 0


def test_depth_saturates(logdir: str) -> None:
    liteprof.enable(logdir)
    scopes = [core.Scope("D") for _ in range(70_000)]
    for s in scopes:
        s.__enter__()
    for s in reversed(scopes):
        s.__exit__(None, None, None)
    liteprof.disable()
    events = only_log(logdir)["events"]["MainThread"]
    depths = [f >> 16 for *_, f in events]
    assert depths == [min(d, 0xFFFF) for d in range(69_999, -1, -1)]


def test_asyncio_tasks_nest_within_their_own_task(logdir: str) -> None:
    core.set_clock(StepClock(1))

    async def task(i: int) -> None:
        with core.scope("Task:Outer"):
            await asyncio.sleep(0)
            with core.scope("Task:Inner"):
                await asyncio.sleep(0)
                await asyncio.sleep(0)
            await asyncio.sleep(0)

    async def main() -> None:
        with core.scope("Main"):
            await asyncio.gather(*(task(i) for i in range(5)))

    liteprof.enable(logdir)
    asyncio.run(main())
    liteprof.disable()
    events = only_log(logdir)["events"]["MainThread"]
    outer = [e for e in events if e[0] == "Task:Outer"]
    inner = [e for e in events if e[0] == "Task:Inner"]
    main_ev = [e for e in events if e[0] == "Main"]
    assert len(outer) == 5 and len(inner) == 5 and len(main_ev) == 1
    # The tasks interleave, so an inner scope closes while other tasks' outer scopes are
    # open: each outer gets exactly its own inner's time, and no task nests into Main.
    assert sorted(c for _n, _s, _d, c, _f in outer) == sorted(d for _n, _s, d, _c, _f in inner)
    assert all(f >> 16 == 0 for *_, f in outer) and all(f >> 16 == 1 for *_, f in inner)
    assert main_ev[0][3] == 0
    assert core._stats()["frames"] == 0


# -- threads -------------------------------------------------------------------------------


def test_thread_states_are_freed_when_threads_end(logdir: str) -> None:
    liteprof.enable(logdir)
    with core.scope("main"):
        pass
    base = core._stats()["threads"]

    def work() -> None:
        for _ in range(10_000):
            with core.scope("T"):
                pass

    threads = [threading.Thread(target=work, name=f"w{i}") for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert core._stats()["threads"] == base
    liteprof.disable()
    log = only_log(logdir)
    assert sorted(log["events"]) == ["MainThread"] + [f"w{i}" for i in range(6)]
    assert all(len(log["events"][f"w{i}"]) == 10_000 for i in range(6))


def test_stop_releases_every_threads_block(logdir: str, monkeypatch: pytest.MonkeyPatch) -> None:
    maps: list[Any] = []
    from liteprof.log import writer as _writer

    orig = _writer.LogWriter.new_block

    def new_block(self: Any, owner: int, size: int) -> Any:
        m = orig(self, owner, size)
        maps.append(m)
        return m

    started = threading.Barrier(3)
    done = threading.Event()

    def work() -> None:
        with core.scope("Held"):
            pass
        started.wait()
        done.wait()

    monkeypatch.setattr(_writer.LogWriter, "new_block", new_block)
    try:
        liteprof.enable(logdir)
        threads = [threading.Thread(target=work) for _ in range(2)]
        for t in threads:
            t.start()
        started.wait()
        assert core._stats()["threads"] >= 2
        core.stop()  # the other threads are alive and hold blocks
        for m in maps:  # raises BufferError if an export were left
            m.release() if isinstance(m, memoryview) else m.close()
        done.set()
        for t in threads:
            t.join()
    finally:
        done.set()
        liteprof.disable()
    assert len(maps) >= 2


def test_fork_child_never_writes_parent_frames_or_mapping(tmp_path: Any) -> None:
    out = os.path.join(os.fspath(tmp_path), "prof")
    run_python(
        f"""
        import os, threading, warnings
        warnings.simplefilter("ignore", DeprecationWarning)
        import liteprof
        from liteprof.record import _core
        assert liteprof.BACKEND == "c"
        liteprof.enable({out!r})
        gate = threading.Event()
        def hold():
            with liteprof.scope("OtherThread"):
                gate.wait()
        t = threading.Thread(target=hold); t.start()
        with liteprof.scope("Before"):
            pass
        outer = liteprof.Scope("Outer")
        with outer:
            pid = os.fork()
            if pid == 0:
                assert _core._stats()["threads"] == 1, _core._stats()
                for _ in range(5):
                    with liteprof.scope("InChild"):
                        pass
            else:
                _, status = os.waitpid(pid, 0)
                assert status == 0, status
        if pid == 0:
            liteprof.disable()
            os._exit(0)
        gate.set(); t.join()
        liteprof.disable()
        """
    )
    logs = {}
    for path in log_files(out):
        log = raw_log(path)
        names = sorted({n for evs in log["events"].values() for n, *_ in evs})
        logs[tuple(names)] = log
    assert set(logs) == {("Before", "OtherThread", "Outer"), ("InChild",)}
    child = logs[("InChild",)]["events"]
    assert sum(len(v) for v in child.values()) == 5


def _generator_crossing_threads(finish_after_thread_ends: bool) -> None:
    def gen() -> Iterator[int]:
        with liteprof.scope("X:Gen"):
            yield 1
            yield 2

    g = gen()
    advanced, finished = threading.Event(), threading.Event()
    frames_left: list[int] = []

    def first() -> None:
        next(g)  # the scope opens on this thread's stack
        advanced.set()
        if not finish_after_thread_ends:
            finished.wait()
            if liteprof.BACKEND == "c":
                frames_left.append(core._stats()["frames"])

    t = threading.Thread(target=first, name="A")
    t.start()
    advanced.wait()
    if finish_after_thread_ends:
        t.join()
    with liteprof.scope("X:Main"):
        for _ in g:  # ... and closes on this one
            pass
    finished.set()
    t.join()
    assert frames_left in ([], [0])


def test_scope_closed_on_another_thread_leaves_the_entering_threads_stack(tmp_path: Any) -> None:
    """The frame leaves the stack it was pushed on (the entering thread's later scopes
    keep their depths), and the event belongs to that thread too, whose lanes and depths
    it was given (thread A never recorded anything itself: the main thread attaches it)."""
    py, c = _run_on_both(lambda: _generator_crossing_threads(False), tmp_path)
    assert c["events"] == py["events"]
    assert [n for n, *_ in c["events"]["MainThread"]] == ["X:Main"]
    assert [n for n, *_ in c["events"]["A"]] == ["X:Gen"]


def test_scope_closed_after_its_thread_ended(logdir: str) -> None:
    liteprof.enable(logdir)
    _generator_crossing_threads(True)
    liteprof.disable()
    events = only_log(logdir)["events"]
    # The entering thread's state went with the thread: the event is dropped, nothing
    # else is disturbed.
    assert [n for n, *_ in events["MainThread"]] == ["X:Main"]
    assert core._stats()["frames"] == 0


# -- re-entrant and failing sessions ---------------------------------------------------------


class FakeSession:
    """A session whose callbacks can misbehave the ways a real one may."""

    def __init__(self, fail: str | None = None) -> None:
        self.fail = fail
        self.maps: list[mmap.mmap] = []
        self.released: list[bytes] = []
        self.calls: list[str] = []

    def thread(self, native_id: int, name: str) -> int:
        self.calls.append("thread")
        if self.fail == "thread":
            core.stop()
            return -1
        return 0

    def block(self, owner: int, size: int) -> Any:
        self.calls.append(f"block {size}")
        if self.fail == "block":
            core.stop()
            return None
        m = mmap.mmap(-1, size)
        self.maps.append(m)
        return m

    def release(self, m: mmap.mmap) -> None:
        self.calls.append("release")
        self.released.append(bytes(m))
        m.close()  # BufferError here if the core still exported it

    def name_id(self, name: str) -> int:
        self.calls.append("name")
        if self.fail == "name":
            core.stop()
            return -1
        if self.fail == "interrupt":
            raise Custom("interrupted")
        return 7


@pytest.mark.parametrize("fail", ["thread", "block", "name"])
def test_callback_that_stops_recording_drops_the_event(fail: str) -> None:
    session = FakeSession(fail)
    core.start(session)
    with core.scope("x"):
        pass
    assert not core.active()
    with core.scope("y"):  # NOOP now
        pass
    core.start(FakeSession())
    with core.scope("z"):
        pass
    core.stop()
    assert core._stats()["frames"] == 0


def test_blocks_roll_over_release_before_close_and_grow() -> None:
    session = FakeSession()
    core.start(session)
    pre = core.Scope("roll")
    lo = F.MIN_BLOCK
    n = (lo // 32 - 1) + (2 * lo // 32 - 1) + 10
    for _ in range(n):
        with pre:
            pass
    core.stop()
    assert [c for c in session.calls if c.startswith("block")] == [
        f"block {lo}",
        f"block {2 * lo}",
        f"block {4 * lo}",
    ]
    assert len(session.released) == 2
    slots = [rawlog.EVENT_SLOT.unpack_from(session.released[0], 32 * i) for i in range(1, lo // 32)]
    assert all(s[3] == 7 and s[4] == flags(0) for s in slots)
    for m in session.maps[2:]:
        m.close()  # stop() released the last block's export


class ReentrantSession(FakeSession):
    """Holds a non-re-entrant lock in every callback, as the writer does, and closes a
    scope inside it, as a finalizer run by the GC, a signal handler or a logging handler
    might."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.reentered = 0
        self.inside = 0

    def _inside(self) -> None:
        if not self.lock.acquire(blocking=False):
            self.reentered += 1  # the real writer would deadlock here
            return
        try:
            self.inside += 1
            with core.scope("Cb:Nested"):  # needs a name at first: waits for the callback
                pass
            with core.scope("Cb:Known"):  # needs a block inside block(): waits too
                pass
        finally:
            self.lock.release()

    def thread(self, native_id: int, name: str) -> int:
        self._inside()
        return super().thread(native_id, name)

    def block(self, owner: int, size: int) -> Any:
        self._inside()
        return super().block(owner, size)

    def name_id(self, name: str) -> int:
        self._inside()
        return {"Cb:Known": 1, "Outer": 2, "Cb:Nested": 3}[name]


def test_scopes_closed_inside_a_callback_wait_and_never_re_enter_the_session() -> None:
    session = ReentrantSession()
    core.start(session)
    with core.scope("Cb:Known"):
        pass
    n = F.MIN_BLOCK // 32 * 3  # several blocks: callbacks at each
    for _ in range(n):
        with core.scope("Outer"):
            pass
    core.stop()
    assert session.reentered == 0 and session.inside >= 5
    blocks = session.released + [bytes(m) for m in session.maps if not m.closed]
    ids = [
        rawlog.EVENT_SLOT.unpack_from(b, off)[3]
        for b in blocks
        for off in range(32, len(b), 32)
        if rawlog.EVENT_SLOT.unpack_from(b, off)[4]
    ]
    # Every scope closed inside a callback was stored once the callback was done.
    assert ids.count(2) == n
    assert ids.count(3) == session.inside
    assert ids.count(1) == session.inside + 1
    assert core._stats()["pending"] == 0
    for m in session.maps:
        m.close()


def test_non_str_name_costs_its_event_only(caplog: pytest.LogCaptureFixture) -> None:
    """The session never sees a bad name; recording goes on (tests/test_names.py has the
    same through the public API)."""

    class Session(FakeSession):
        def __init__(self) -> None:
            super().__init__()
            self.asked: list[Any] = []

        def name_id(self, name: Any) -> int:
            self.asked.append(name)
            return 1

    def f() -> int:
        return 42

    core._forget_warnings()
    caplog.set_level(logging.WARNING, logger="liteprof")
    bad_names: tuple[Any, ...] = (["unhashable"], 123)  # not str, on purpose
    for bad in bad_names:
        session = Session()
        core.start(session)
        with core.scope(bad):
            pass
        assert core.scope(bad)(f) is f
        with core.scope("good"):
            pass
        assert core.active() and session.asked == ["good"]
        core.stop()
        for m in session.maps:
            m.close()
    assert [r.getMessage() for r in caplog.records if r.name == "liteprof"] == [
        "liteprof: scope name must be str, not list: such events are not recorded "
        "(warned once per process)"
    ]
    with pytest.raises(TypeError):
        core.timed_function(f, 123)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        core.Scope(123)  # type: ignore[arg-type]


def test_base_exception_from_a_callback_propagates() -> None:
    core.start(FakeSession("interrupt"))
    with pytest.raises(Custom):
        with core.scope("x"):
            pass
    original = ValueError("original")

    def raiser() -> None:
        raise original

    t = core.timed_function(raiser, "y")
    with pytest.raises(Custom) as info:
        t()
    assert info.value.__context__ is original
    core.stop()
    assert core._stats()["frames"] == 0


# -- the two backends write the same events ---------------------------------------------


def _deterministic_program() -> None:
    outer = liteprof.Scope("P:Outer")
    rec = liteprof.Scope("P:Rec")

    @liteprof.timed("P:Timed")
    def timed(x: int, *, y: int = 0) -> int:
        with liteprof.scope("P:InTimed"):
            return x + y

    class C:
        @liteprof.timed
        def method(self) -> int:
            return 1

    def recurse(n: int) -> None:
        with rec:
            if n:
                recurse(n - 1)

    def gen() -> Iterator[int]:
        with liteprof.scope("P:Gen"):
            yield 1
            yield 2

    for i in range(3):
        with outer:
            with liteprof.scope("P:Inner"):
                timed(i, y=1)
            C().method()
            recurse(3)
    try:
        with liteprof.scope("P:Err"):
            raise ValueError
    except ValueError:
        pass
    try:
        timed(None)  # type: ignore[arg-type]
    except TypeError:
        pass
    g = gen()
    next(g)
    with liteprof.scope("P:A"):  # nested in the generator's open scope
        next(g)
    for _ in g:
        pass

    async def task(i: int) -> None:
        with liteprof.scope("P:Task"):
            await asyncio.sleep(0)
            with liteprof.scope("P:TaskInner"):
                await asyncio.sleep(0)

    async def main() -> None:
        await asyncio.gather(*(task(i) for i in range(4)))

    asyncio.run(main())

    def recurse_thrice() -> None:
        for _ in range(3):
            recurse(2)

    for k in range(2):  # one after the other: thread indices are deterministic
        t = threading.Thread(target=recurse_thrice, name=f"T{k}")
        t.start()
        t.join()
    for _ in range(2100):  # past the first 64 KiB block
        with liteprof.scope("P:Many"):
            pass


def _out_of_order_program() -> None:
    def gen() -> Iterator[int]:
        with liteprof.scope("O:Gen"):
            yield 1
            yield 2

    g = gen()
    with liteprof.scope("O:A"):  # the generator's scope opens inside A, A closes first
        next(g)
    with liteprof.scope("O:B"):
        next(g)
    for _ in g:
        pass
    with liteprof.scope("O:Outer"):
        a, b = liteprof.Scope("O:X"), liteprof.scope("O:Y")
        a.__enter__()
        b.__enter__()
        a.__exit__(None, None, None)
        b.__exit__(None, None, None)


def _lanes_program() -> None:
    """Tasks and greenlets interleaving on one thread, with every kind of scope."""
    import contextvars

    greenlet = pytest.importorskip("greenlet")
    shared = liteprof.Scope("L:Shared")

    @liteprof.timed("L:Timed")
    def timed() -> None:
        with liteprof.scope("L:InTimed"):
            pass

    def gen() -> Iterator[int]:
        with liteprof.scope("L:Gen"):
            yield 1
            yield 2

    async def task(i: int, carried: Iterator[int]) -> None:
        with liteprof.scope("L:Task"):
            await asyncio.sleep(0)
            with shared:
                timed()
                await asyncio.sleep(0)
                with liteprof.scope("L:Inner"):
                    pass
            contextvars.copy_context().run(timed)  # belongs to this task's lane
            if i == 1:
                next(carried)  # the generator's scope opens in this task ...
            await asyncio.sleep(0)
        for _ in range(3):  # flat scopes in one task: one lane slot
            with liteprof.scope("L:Flat"):
                pass
        if i == 2:
            for _ in carried:  # ... and closes in another
                pass

    async def main() -> None:
        carried = gen()
        with liteprof.scope("L:Main"):
            await asyncio.gather(*(task(i, carried) for i in range(4)))

    with liteprof.scope("L:Sync"):  # lane 0 around a loop: no task nests into it
        asyncio.run(main())
    asyncio.run(main())  # a second loop, new tasks

    main_greenlet = greenlet.getcurrent()

    def body(k: int) -> None:
        with liteprof.scope("G:Outer"):
            for _ in range(3):
                with shared:
                    main_greenlet.switch()
                timed()

    greenlets = [greenlet.greenlet(body) for k in range(3)]
    with liteprof.scope("G:Main"):
        for _ in range(4):
            for g in greenlets:
                if not g.dead:
                    g.switch(0)
                with liteprof.scope("G:Between"):
                    pass
    ctx = contextvars.copy_context()
    with liteprof.scope("C:Outer"):
        ctx.run(timed)


def _run_on_both(program: Any, tmp_path: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Record ``program`` with each backend, under a step clock, in a fresh thread named
    MainThread (lane ids count per thread: a fresh one starts both backends at 1)."""
    logs = {}
    for name in ("python", "c"):
        testing.use_backend(name)
        testing.set_clock(StepClock())
        directory = os.path.join(os.fspath(tmp_path), name)
        liteprof.enable(directory)
        failed: list[BaseException] = []

        def run(failed: list[BaseException] = failed) -> None:
            try:
                program()
            except BaseException as exc:  # re-raised on the test's thread
                failed.append(exc)

        try:
            t = threading.Thread(target=run, name="MainThread")
            t.start()
            t.join()
        finally:
            liteprof.disable()
            testing.set_clock(None)
        if failed:
            raise failed[0]
        logs[name] = only_log(directory)
    testing.use_backend("c")
    return logs["python"], logs["c"]


def test_out_of_order_exit_charges_the_frame_below(tmp_path: Any) -> None:
    """An out-of-order exit adds its time to the nearest open frame *below* it (its
    enclosing scope), never to a frame opened after it."""
    _py, c = _run_on_both(_out_of_order_program, tmp_path)
    got = {n: (d, ch) for n, _s, d, ch, _f in c["events"]["MainThread"]}
    # clock reads (step 10): A in 0, Gen in 10, A out 20, B in 30, B out 40, Gen out 50,
    # Outer in 60, X in 70, Y in 80, X out 90, Y out 100, Outer out 110
    assert got == {
        "O:A": (20, 0),
        "O:B": (10, 0),
        "O:Gen": (40, 10),  # B only: A enclosed the generator's scope
        "O:X": (20, 0),
        "O:Y": (20, 0),
        "O:Outer": (50, 40),
    }


def test_both_backends_agree_on_out_of_order_exits(tmp_path: Any) -> None:
    py, c = _run_on_both(_out_of_order_program, tmp_path)
    assert c["events"] == py["events"]


def _reentry_program() -> None:
    s, t = liteprof.scope("R:S"), liteprof.scope("R:T")
    with s:
        with t:
            with s:
                with s:
                    pass
    with s:  # again, once closed
        pass
    s.__exit__(None, None, None)  # once more than entered

    def gen() -> Generator[int, None, None]:
        with liteprof.scope("R:Gen"):
            yield 1

    g = gen()
    next(g)
    g.close()  # GeneratorExit: not an error
    try:
        with liteprof.scope("R:Interrupted"):
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass


def test_both_backends_agree_on_reentered_scopes_and_errors(tmp_path: Any) -> None:
    py, c = _run_on_both(_reentry_program, tmp_path)
    assert c["slots"] == py["slots"]
    got = [(n, d, ch, f) for n, _s, d, ch, f in c["events"]["MainThread"]]
    assert got == [
        ("R:S", 10, 0, flags(3)),
        ("R:S", 30, 10, flags(2)),
        ("R:T", 50, 30, flags(1)),
        ("R:S", 70, 50, flags(0)),
        ("R:S", 10, 0, flags(0)),
        ("R:Gen", 10, 0, flags(0)),
        ("R:Interrupted", 10, 0, flags(0, error=True)),
    ]


def test_both_backends_write_the_same_lanes(tmp_path: Any) -> None:
    """Interleaving tasks and greenlets: the same lane slots and events, byte for byte."""
    py, c = _run_on_both(_lanes_program, tmp_path)
    assert c["names"] == py["names"]
    assert c["blocks"] == py["blocks"]
    assert c["slots"] == py["slots"]
    stream = c["lanes"]["MainThread"]
    assert stream.count(("lane", 0)) >= 1 and max(i[1] for i in stream if i[0] == "lane") >= 8
    # Three flat scopes of one task in a row share one lane slot.
    flat = [i for i, item in enumerate(stream) if item == ("L:Flat", 0)]
    assert any(flat[j + 2] == flat[j] + 2 for j in range(len(flat) - 2))


def test_both_backends_write_the_same_events(tmp_path: Any) -> None:
    py, c = _run_on_both(_deterministic_program, tmp_path)
    assert c["names"] == py["names"]
    assert c["threads"] == py["threads"]
    assert c["blocks"] == py["blocks"]
    assert sorted(c["events"]) == ["MainThread", "T0", "T1"]
    for thread in py["events"]:
        assert c["events"][thread] == py["events"][thread], thread
    main = c["events"]["MainThread"]
    assert any(f & F.FLAG_ERROR for *_, f in main)
    assert max(f >> 16 for *_, f in main) >= 4


# -- the clock ---------------------------------------------------------------------------


def _tsc_allowed() -> bool:
    if os.environ.get("LITEPROF_NO_TSC", "") not in ("", "0"):
        return False
    try:
        with open("/sys/devices/system/clocksource/clocksource0/current_clocksource") as fh:
            return fh.read().strip() == "tsc"
    except OSError:
        return False


def test_enable_does_not_wait_to_calibrate_the_clock(tmp_path: Any) -> None:
    """enable() takes a calibration anchor and returns: scopes are timed with
    CLOCK_MONOTONIC until a new block finds the baseline long enough, then with the TSC;
    a scope open across the switch is still timed right."""
    out = os.path.join(os.fspath(tmp_path), "prof")
    proc = run_python(
        f"""
        import time, liteprof
        from liteprof.record import _core
        liteprof.enable({out!r})
        first = _core._stats()["clock"]
        t0 = time.perf_counter_ns()
        with liteprof.scope("Across"):
            time.sleep(0.003)
            for _ in range(5000):  # several new blocks, 3 ms after the anchor
                with liteprof.scope("Fill"):
                    pass
        t1 = time.perf_counter_ns()
        later = _core._stats()["clock"]
        t2 = time.perf_counter_ns()
        with liteprof.scope("After"):
            time.sleep(0.002)
        t3 = time.perf_counter_ns()
        liteprof.disable()
        print(first, later, t1 - t0, t3 - t2)
        """
    )
    first, later, across, after = proc.stdout.split()
    if _tsc_allowed():
        assert (first, later) == ("calibrating", "tsc")
    else:
        assert (first, later) == ("monotonic", "monotonic")
    events = {n: d for n, _s, d, _c, _f in only_log(out)["events"]["MainThread"]}
    assert 3_000_000 <= events["Across"] <= int(across)
    assert 2_000_000 <= events["After"] <= int(after)
