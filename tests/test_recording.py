"""The recording API in one process, with a deterministic clock."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import liteprof
from liteprof import testing

from .helpers import log_files, read, scopes_by_name

pytestmark = pytest.mark.usefixtures("backend")  # every test here records


class StepClock:
    """Each reading advances by ``step`` ns: durations follow from the number of reads."""

    def __init__(self, step: int = 10) -> None:
        self._counter = itertools.count(1_000_000, step)

    def __call__(self) -> int:
        return next(self._counter)


@pytest.fixture
def clock() -> Iterator[StepClock]:
    c = StepClock()
    testing.set_clock(c)
    yield c
    testing.set_clock(None)


def test_disabled_scope_is_one_shared_noop() -> None:
    assert not liteprof.enabled()
    a = liteprof.scope("a")
    assert a is liteprof.scope("b")
    with a as entered:
        assert entered is a


def test_nested_scopes_give_counts_totals_and_self_time(logdir: str, clock: StepClock) -> None:
    liteprof.enable(logdir)
    assert liteprof.enabled()
    outer = liteprof.Scope("Step:Outer")
    for _ in range(3):
        with outer:  # clock read at enter (t0) ...
            with liteprof.scope("Step:Inner"):  # t0+10 ... t0+20
                pass
        # ... and at exit (t0+30): outer lasts 30, inner 10, outer self 20
    liteprof.disable()
    assert not liteprof.enabled()
    report = read(logdir)
    rows = scopes_by_name(report)
    assert report["records"] == 6 and report["skipped"] == 0
    assert rows["Step:Outer"]["count"] == 3
    assert rows["Step:Outer"]["total_ns"] == 90
    assert rows["Step:Outer"]["self_ns"] == 60
    assert rows["Step:Inner"]["total_ns"] == 30
    assert rows["Step:Inner"]["self_ns"] == 30
    assert rows["Step:Inner"]["group"] == "Step"
    assert [s["name"] for s in report["scopes"]] == ["Step:Outer", "Step:Inner"]


def test_exception_is_recorded_with_error_flag_and_propagates(logdir: str) -> None:
    liteprof.enable(logdir)
    err = ValueError("boom")
    with pytest.raises(ValueError) as info:
        with liteprof.scope("Fails"):
            raise err
    assert info.value is err
    with pytest.raises(KeyError):
        with liteprof.Scope("FailsToo"):
            raise KeyError("k")
    with liteprof.scope("Fine"):
        pass
    liteprof.disable()
    rows = scopes_by_name(read(logdir))
    assert rows["Fails"]["errors"] == 1 and rows["Fails"]["count"] == 1
    assert rows["FailsToo"]["errors"] == 1
    assert rows["Fine"]["errors"] == 0


def test_recursion_with_one_predeclared_scope(logdir: str, clock: StepClock) -> None:
    rec = liteprof.Scope("Rec")

    def depth(n: int) -> None:
        with rec:
            if n:
                depth(n - 1)

    liteprof.enable(logdir)
    depth(3)  # enters at t, t+10, t+20, t+30; exits at t+40, t+50, t+60, t+70
    liteprof.disable()
    row = scopes_by_name(read(logdir))["Rec"]
    assert row["count"] == 4
    assert row["total_ns"] == 10 + 30 + 50 + 70
    assert row["self_ns"] == 70  # the nested calls' time counts once, in the innermost
    assert row["max_ns"] == 70 and row["min_ns"] == 10


def test_timed_names_and_binding(logdir: str) -> None:
    class Engine:
        @liteprof.timed
        def step(self, x: int) -> int:
            """Doc."""
            return x * 2

    @liteprof.timed("Model:Forward")
    def forward(x: int, *, scale: int = 1) -> int:
        return x * scale

    @liteprof.timed
    async def fetch() -> str:
        await asyncio.sleep(0)
        return "ok"

    liteprof.enable(logdir)  # decorated before enable: still timed
    assert Engine().step(4) == 8
    assert forward(3, scale=2) == 6
    assert asyncio.run(fetch()) == "ok"
    liteprof.disable()
    assert Engine.step.__doc__ == "Doc."
    assert Engine.step.__name__ == "step"
    assert forward.__wrapped__(2) == 2  # type: ignore[attr-defined]
    rows = scopes_by_name(read(logdir))
    qual = f"{__name__}.test_timed_names_and_binding.<locals>.Engine.step"
    assert rows[qual]["count"] == 1
    assert rows["Model:Forward"]["count"] == 1
    assert rows[f"{__name__}.test_timed_names_and_binding.<locals>.fetch"]["count"] == 1


def test_timed_rejects_non_callables() -> None:
    with pytest.raises(TypeError):
        liteprof.timed(42)  # type: ignore[call-overload]


def test_scope_as_decorator_and_scope_object_as_decorator(logdir: str) -> None:
    liteprof.enable(logdir)

    @liteprof.scope("Deco:A")
    def a() -> int:
        return 1

    @liteprof.Scope("Deco:B")
    def b() -> int:
        raise RuntimeError("x")

    assert a() == 1
    with pytest.raises(RuntimeError):
        b()
    liteprof.disable()
    rows = scopes_by_name(read(logdir))
    assert rows["Deco:A"]["count"] == 1
    assert rows["Deco:B"]["errors"] == 1


def test_threads_nest_on_their_own(logdir: str, clock: StepClock) -> None:
    liteprof.enable(logdir)
    barrier = threading.Barrier(8)

    def work() -> None:
        barrier.wait()
        for _ in range(200):
            with liteprof.scope("T:Outer"):
                with liteprof.scope("T:Inner"):
                    pass

    threads = [threading.Thread(target=work, name=f"worker-{i}") for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    liteprof.disable()
    report = read(logdir, by="thread")
    outer = [r for r in report["scopes"] if r["name"] == "T:Outer"]
    assert len(outer) == 8
    assert {r["thread"] for r in outer} == {f"worker-{i}" for i in range(8)}
    assert all(r["count"] == 200 for r in outer)
    total = scopes_by_name(read(logdir))
    assert total["T:Outer"]["count"] == 1600 and total["T:Inner"]["count"] == 1600
    # Self time never goes negative and inner time is fully subtracted from outer.
    assert (
        total["T:Outer"]["self_ns"] == total["T:Outer"]["total_ns"] - total["T:Inner"]["total_ns"]
    )


def test_asyncio_tasks_do_not_nest_into_each_other(logdir: str) -> None:
    async def task(i: int) -> None:
        with liteprof.scope("Task:Outer"):
            await asyncio.sleep(0.001 * (i % 3))
            with liteprof.scope("Task:Inner"):
                await asyncio.sleep(0)
            await asyncio.sleep(0)

    async def main() -> None:
        await asyncio.gather(*(task(i) for i in range(50)))

    liteprof.enable(logdir)
    asyncio.run(main())
    liteprof.disable()
    rows = scopes_by_name(read(logdir))
    assert rows["Task:Outer"]["count"] == 50
    assert rows["Task:Inner"]["count"] == 50
    # Inner scopes belong to their own task's outer scope only: outer self time is
    # outer total minus the inner totals, never less (interleaving would subtract more).
    assert rows["Task:Outer"]["self_ns"] == (
        rows["Task:Outer"]["total_ns"] - rows["Task:Inner"]["total_ns"]
    )
    assert rows["Task:Inner"]["self_ns"] == rows["Task:Inner"]["total_ns"]


def nesting(logdir: str) -> list[tuple[str, str | None, int]]:
    """(name, parent's name, lane) of every event, as the reader links them."""
    from liteprof.log.reader import read_logs

    ev = read_logs([logdir])
    names = [ev.names[i] for i in ev.name.tolist()]
    return [
        (names[i], names[p] if p >= 0 else None, lane)
        for i, (p, lane) in enumerate(zip(ev.parent.tolist(), ev.lane.tolist()))
    ]


def lane_slots(logdir: str) -> int:
    """How many lane slots the logs under ``logdir`` hold (straight from the bytes)."""
    from liteprof.log import format as F

    count = 0
    for path in log_files(logdir):
        with open(path, "rb") as fh:
            data = fh.read()
        pos = F.HEADER_SIZE
        while pos + F.SLOT_SIZE <= len(data):
            magic, owner, size, _seq = F.BLOCK_STRUCT.unpack_from(data, pos)
            if magic != F.BLOCK_MAGIC or size <= 0:
                break
            if owner < F.PAD_OWNER:
                for off in range(pos + F.SLOT_SIZE, min(pos + size, len(data)), F.SLOT_SIZE):
                    count += data[off + 28] == F.KIND_LANE
            pos += size
    return count


def test_interleaved_tasks_each_nest_in_their_own_lane(logdir: str) -> None:
    async def task(i: int) -> None:
        with liteprof.scope(f"Task{i}:Outer"):
            for _ in range(3):
                await asyncio.sleep(0)
                with liteprof.scope(f"Task{i}:Inner"):
                    await asyncio.sleep(0)

    async def main() -> None:
        with liteprof.scope("Main"):
            await asyncio.gather(*(task(i) for i in range(5)))

    liteprof.enable(logdir)
    asyncio.run(main())
    liteprof.disable()
    events = nesting(logdir)
    for name, parent, _lane in events:
        if name.endswith(":Inner"):
            assert parent == name.replace(":Inner", ":Outer")
        else:
            assert parent is None, (name, parent)  # tasks do not nest into Main's task
    lanes = {name.split(":")[0]: lane for name, _p, lane in events}
    assert len(set(lanes.values())) == 6 and 0 not in lanes.values()


def test_greenlets_each_nest_in_their_own_lane(logdir: str) -> None:
    greenlet = pytest.importorskip("greenlet")
    main = greenlet.getcurrent()

    def body(i: int) -> None:
        with liteprof.scope(f"G{i}:Outer"):
            for _ in range(3):
                with liteprof.scope(f"G{i}:Inner"):
                    main.switch()

    liteprof.enable(logdir)
    with liteprof.scope("Main:Loop"):
        gs = [greenlet.greenlet(body) for _ in range(4)]
        while not all(g.dead for g in gs):
            for i, g in enumerate(gs):
                if not g.dead:
                    g.switch(i)
                    with liteprof.scope("Main:Step"):  # in the main greenlet: lane 0
                        pass
    liteprof.disable()
    events = nesting(logdir)
    assert len(events) == 4 * 4 + 4 * 4 + 1
    for name, parent, lane in events:
        if name.startswith("Main:"):
            assert lane == 0 and parent == (None if name == "Main:Loop" else "Main:Loop")
        elif name.endswith(":Inner"):
            assert lane != 0 and parent == name.replace(":Inner", ":Outer")
        else:
            assert lane != 0 and parent is None
    rows = scopes_by_name(read(logdir))
    # Self time: each outer loses exactly its own inners (nesting across greenlets would
    # take more).
    for i in range(4):
        outer, inner = rows[f"G{i}:Outer"], rows[f"G{i}:Inner"]
        assert outer["self_ns"] == outer["total_ns"] - inner["total_ns"]


def test_context_run_nests_in_the_lane_that_runs_it(logdir: str) -> None:
    import contextvars

    def work() -> None:
        with liteprof.scope("Run:Inner"):
            pass

    async def task() -> None:
        with liteprof.scope("Task:Outer"):
            contextvars.copy_context().run(work)
            await asyncio.sleep(0)
            contextvars.copy_context().run(work)

    liteprof.enable(logdir)
    ctx = contextvars.copy_context()
    with liteprof.scope("Sync:Outer"):
        ctx.run(work)
        ctx.run(work)  # the same context again
    asyncio.run(task())
    with liteprof.scope("Sync:Again"):
        ctx.run(work)  # run before in lane 0, now again in lane 0
    liteprof.disable()
    parents = [(n, p) for n, p, _lane in nesting(logdir) if n == "Run:Inner"]
    assert parents == [("Run:Inner", "Sync:Outer")] * 2 + [("Run:Inner", "Task:Outer")] * 2 + [
        ("Run:Inner", "Sync:Again")
    ]


def test_code_outside_tasks_and_greenlets_writes_no_lane_slot(logdir: str) -> None:
    pytest.importorskip("greenlet")  # imported: lanes are looked for, and none found
    liteprof.enable(logdir)
    for _ in range(2000):  # several blocks
        with liteprof.scope("Sync:Outer"):
            with liteprof.Scope("Sync:Inner"):
                pass
    liteprof.disable()
    assert lane_slots(logdir) == 0
    assert {lane for _n, _p, lane in nesting(logdir)} == {0}


def test_a_scope_costs_no_lane_slot_per_event_in_one_task(logdir: str) -> None:
    async def main() -> None:
        for _ in range(100):
            with liteprof.scope("Flat"):
                pass

    liteprof.enable(logdir)
    asyncio.run(main())
    liteprof.disable()
    from . import rawlog

    (path,) = log_files(logdir)
    blocks = [b for b in rawlog.read(path).blocks if b.is_thread]
    assert len(blocks) >= 2  # small first blocks: 100 events take several
    assert lane_slots(logdir) == len(blocks)  # the task's lane, set once in each block


def test_finished_tasks_leave_no_lane_behind(logdir: str) -> None:
    """10,000 tasks waiting inside scopes, then done: their lanes are forgotten, the tasks
    are not kept alive, and every event is there."""
    import gc
    import weakref

    from liteprof.record import backend

    refs: list[weakref.ref[Any]] = []

    async def waiter(gate: asyncio.Event) -> None:
        task = asyncio.current_task()
        assert task is not None
        refs.append(weakref.ref(task))
        with liteprof.scope("Wait"):
            await gate.wait()
            with liteprof.scope("Wait:Done"):
                pass

    async def main() -> None:
        gate = asyncio.Event()
        tasks = [asyncio.ensure_future(waiter(gate)) for _ in range(10_000)]
        await asyncio.sleep(0)
        for _ in range(100):
            with liteprof.scope("Hot"):
                pass
        gate.set()
        await asyncio.gather(*tasks)

    liteprof.enable(logdir)
    asyncio.run(main())
    with liteprof.scope("After"):  # in lane 0 again: the last task's lane goes too
        pass
    stats = backend.current._stats()  # type: ignore[attr-defined]
    liteprof.disable()
    gc.collect()
    assert stats["lanes"] == 0 and stats["frames"] == 0
    assert sum(r() is not None for r in refs) == 0
    rows = scopes_by_name(read(logdir))
    assert rows["Wait"]["count"] == rows["Wait:Done"]["count"] == 10_000
    assert rows["Wait"]["self_ns"] == rows["Wait"]["total_ns"] - rows["Wait:Done"]["total_ns"]


def test_generator_suspended_inside_a_scope(logdir: str) -> None:
    def gen() -> Iterator[int]:
        with liteprof.scope("Gen"):
            yield 1
            yield 2

    liteprof.enable(logdir)
    g = gen()
    with liteprof.scope("A"):
        next(g)
    with liteprof.scope("B"):
        next(g)
    with pytest.raises(StopIteration):
        next(g)
    liteprof.disable()
    rows = scopes_by_name(read(logdir))
    assert {n: r["count"] for n, r in rows.items()} == {"A": 1, "B": 1, "Gen": 1}
    assert all(r["self_ns"] >= 0 for r in rows.values())


def test_percentiles_match_numpy(logdir: str) -> None:
    rng = np.random.default_rng(7)
    durations = rng.integers(1, 1_000_000, size=2001)
    readings = iter(np.column_stack([np.zeros_like(durations), durations]).ravel().tolist())
    testing.set_clock(lambda: next(readings))
    liteprof.enable(logdir)
    sc = liteprof.Scope("P")
    for _ in range(durations.size):
        with sc:
            pass
    liteprof.disable()
    testing.set_clock(None)
    row = scopes_by_name(read(logdir))["P"]
    for p in (50, 90, 99):
        exact = np.percentile(durations, p, method="inverted_cdf")
        assert abs(row[f"p{p}_ns"] - exact) <= 0.01 * exact
    assert row["min_ns"] == durations.min() and row["max_ns"] == durations.max()
    assert row["total_ns"] == durations.sum()
    assert row["mean_ns"] == pytest.approx(durations.mean())


def test_disable_keeps_log_readable_and_enable_starts_new_file(logdir: str) -> None:
    liteprof.enable(logdir)
    with liteprof.scope("first"):
        pass
    first = liteprof.log_path()
    liteprof.disable()
    assert first is not None and os.path.exists(first)
    with liteprof.scope("not recorded"):
        pass
    liteprof.enable(logdir)
    with liteprof.scope("second"):
        pass
    liteprof.disable()
    assert len(log_files(logdir)) == 2
    rows = scopes_by_name(read(logdir))
    assert set(rows) == {"first", "second"}


def test_scope_left_open_across_disable_is_dropped(logdir: str) -> None:
    liteprof.enable(logdir)
    sc = liteprof.Scope("Open")
    with sc:
        liteprof.disable()
    liteprof.enable(logdir)
    with sc:
        pass
    liteprof.disable()
    assert scopes_by_name(read(logdir))["Open"]["count"] == 1


def test_any_str_name_round_trips(logdir: str) -> None:
    names = [
        "a|b",
        "line\nbreak",
        "tab\there",
        "ünïcødé ✓",
        "",
        "x" * 10_000,
        "<b>html</b>",
        "lone \udc80 surrogate",
        "Group:with:colons",
    ]
    liteprof.enable(logdir)
    for n in names:
        with liteprof.scope(n):
            pass
    liteprof.disable()
    report = read(logdir)
    assert sorted(r["name"] for r in report["scopes"]) == sorted(names)
    assert scopes_by_name(report)["Group:with:colons"]["group"] == "Group"


def test_unwritable_log_directory_warns_once_and_program_runs_on(
    tmp_path: os.PathLike[str], caplog: pytest.LogCaptureFixture
) -> None:
    blocker = os.path.join(os.fspath(tmp_path), "file")
    with open(blocker, "w") as fh:
        fh.write("not a directory")
    caplog.set_level(logging.WARNING, logger="liteprof")
    liteprof.enable(os.path.join(blocker, "sub"))
    for _ in range(100):
        with liteprof.scope("x"):
            pass
    assert not liteprof.enabled()
    warnings = [r for r in caplog.records if r.name == "liteprof"]
    assert len(warnings) == 1
    assert "recording stopped" in warnings[0].getMessage()


def test_maybe_emit_report_logs_tables_and_deletes_log(
    logdir: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="liteprof")
    liteprof.maybe_emit_report()  # not recording: nothing happens
    assert not caplog.records
    liteprof.enable(logdir)
    with liteprof.scope("Step:Model"):
        pass
    path = liteprof.log_path()
    assert path is not None
    liteprof.maybe_emit_report()
    assert not liteprof.enabled()
    assert not os.path.exists(path)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "Step:Model" in text and "Group Step" in text


def test_maybe_emit_report_keep_log(logdir: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="liteprof")
    liteprof.enable(logdir)
    with liteprof.scope("kept"):
        pass
    path = liteprof.log_path()
    liteprof.maybe_emit_report(keep_log=True)
    assert path is not None and os.path.exists(path)
    assert "kept" in "\n".join(r.getMessage() for r in caplog.records)


def test_process_filter_excludes_this_process(logdir: str) -> None:
    liteprof.enable(logdir, processes="EngineCore_*,VllmWorker-0")
    assert not liteprof.enabled()  # this process is MainProcess
    with liteprof.scope("x"):
        pass
    liteprof.disable()
    assert log_files(logdir) == []
    liteprof.enable(logdir, processes=["Main*"])
    with liteprof.scope("x"):
        pass
    assert liteprof.enabled()
    liteprof.disable()
    assert len(log_files(logdir)) == 1


def test_log_file_permissions_ignore_a_permissive_umask(logdir: str) -> None:
    old = os.umask(0)
    try:
        liteprof.enable(logdir)
        with liteprof.scope("x"):
            pass
        path = liteprof.log_path()
        liteprof.disable()
    finally:
        os.umask(old)
    assert path is not None
    assert os.stat(path).st_mode & 0o022 == 0
    assert os.stat(logdir).st_mode & 0o022 == 0


def test_backend_is_reported() -> None:
    assert liteprof.BACKEND in ("c", "python")
    assert sys.modules["liteprof"].BACKEND == liteprof.BACKEND


def test_event_times_follow_the_system_clocks(logdir: str) -> None:
    """Durations and start times land on the monotonic/wall timeline of the header
    anchors (the C core may count TSC ticks and convert them)."""
    from liteprof.log.reader import read_logs

    liteprof.enable(logdir)
    with liteprof.scope("Warm"):
        pass
    wall_before = time.time_ns()
    before = time.perf_counter_ns()
    with liteprof.scope("Sleep"):
        time.sleep(0.02)
    after = time.perf_counter_ns()
    wall_after = time.time_ns()
    liteprof.disable()
    rows = scopes_by_name(read(logdir))
    assert 20_000_000 <= rows["Sleep"]["total_ns"] <= after - before
    events = read_logs([logdir])
    assert events.last_ns is not None
    slack = 2_000_000  # the two clocks are read a few µs apart when the file is made
    assert wall_before - slack <= events.last_ns <= wall_after + slack


def test_scope_decorators_time_the_whole_await(logdir: str) -> None:
    fwd = liteprof.Scope("Async:Scope")

    @fwd
    async def a() -> int:
        await asyncio.sleep(0.01)
        return 1

    liteprof.enable(logdir)

    @liteprof.scope("Async:scope")
    async def b() -> int:
        await asyncio.sleep(0.01)
        return 2

    async def main() -> int:
        return await a() + await b()

    assert asyncio.run(main()) == 3
    liteprof.disable()
    rows = scopes_by_name(read(logdir))
    assert rows["Async:Scope"]["total_ns"] >= 10_000_000
    assert rows["Async:scope"]["total_ns"] >= 10_000_000
