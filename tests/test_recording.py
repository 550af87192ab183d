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
