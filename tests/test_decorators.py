"""``@timed``, ``@Scope(...)`` and ``@scope(...)`` on every kind of callable: plain and
coroutine functions, generators and async generators (the whole iteration is one event),
partials and callable objects (their names)."""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
import types
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator, Mapping
from typing import Any, Callable

import pytest

import liteprof
from liteprof import testing

from .helpers import read, scopes_by_name

pytestmark = pytest.mark.usefixtures("backend")


class Now:
    """A clock the test moves by hand: every duration is exactly what the test set."""

    def __init__(self) -> None:
        self.ns = 1_000_000

    def __call__(self) -> int:
        return self.ns

    def advance(self, ns: int) -> None:
        self.ns += ns


@pytest.fixture
def now() -> Iterator[Now]:
    clock = Now()
    testing.set_clock(clock)
    yield clock
    testing.set_clock(None)


def _rows(logdir: str) -> dict[str, Mapping[str, Any]]:
    liteprof.disable()
    return scopes_by_name(read(logdir))


def _decorators(name: str) -> list[Callable[[Any], Any]]:
    """The three ways to decorate, all recording under ``name``."""
    return [liteprof.timed(name), liteprof.Scope(name), lambda f: liteprof.scope(name)(f)]


@pytest.mark.parametrize("how", range(3), ids=["timed", "Scope", "scope"])
def test_generator_is_timed_from_first_resume_to_exhaustion(
    logdir: str, now: Now, how: int
) -> None:
    liteprof.enable(logdir)

    def numbers(n: int) -> Iterator[int]:
        for i in range(n):
            now.advance(1_000)  # inside the generator: counted
            yield i
        now.advance(500)

    timed_numbers = _decorators("Gen:numbers")[how](numbers)
    assert inspect.isgeneratorfunction(timed_numbers)
    gen = timed_numbers(3)
    now.advance(7_000_000)  # created, not started: not counted
    assert next(gen) == 0
    now.advance(20_000)  # the consumer's time between resumes is part of the iteration
    assert list(gen) == [1, 2]
    now.advance(9_000_000)  # after exhaustion: not counted
    row = _rows(logdir)["Gen:numbers"]
    assert row["count"] == 1 and row["errors"] == 0
    assert row["total_ns"] == 3 * 1_000 + 20_000 + 500


def test_generator_send_throw_close_pass_through_and_return_value(logdir: str, now: Now) -> None:
    liteprof.enable(logdir)
    seen: list[Any] = []

    @liteprof.timed("Gen:echo")
    def echo() -> Generator[Any, Any, str]:
        value = yield "ready"
        while True:
            try:
                seen.append(value)
                now.advance(100)
                value = yield value * 2
            except KeyError as exc:
                seen.append(("caught", exc.args[0]))
                value = yield "recovered"
            if value == "stop":
                return "done"

    gen = echo()
    assert next(gen) == "ready"
    assert gen.send(21) == 42
    assert gen.throw(KeyError("k")) == "recovered"
    assert gen.send(5) == 10
    with pytest.raises(StopIteration) as stop:
        gen.send("stop")
    assert stop.value.value == "done"  # ``return`` in the generator reaches the caller
    assert seen == [21, ("caught", "k"), 5]

    @liteprof.timed("Gen:forever")
    def forever() -> Generator[int, None, None]:
        try:
            while True:
                now.advance(10)
                yield 1
        finally:
            seen.append("closed")

    gen2 = forever()
    for _ in zip(range(4), gen2):
        pass
    gen2.close()  # an early end, like ``break``: the inner generator is closed too
    assert seen[-1] == "closed"
    rows = _rows(logdir)
    assert rows["Gen:echo"]["count"] == 1 and rows["Gen:echo"]["errors"] == 0
    assert rows["Gen:echo"]["total_ns"] == 200
    assert rows["Gen:forever"]["count"] == 1 and rows["Gen:forever"]["errors"] == 0
    assert rows["Gen:forever"]["total_ns"] == 40


def test_generator_that_raises_is_one_event_with_the_error_flag(logdir: str, now: Now) -> None:
    liteprof.enable(logdir)

    @liteprof.timed("Gen:fails")
    def fails() -> Iterator[int]:
        yield 1
        now.advance(300)
        raise ValueError("boom")

    gen = fails()
    assert next(gen) == 1
    with pytest.raises(ValueError, match="boom"):
        next(gen)
    row = _rows(logdir)["Gen:fails"]
    assert row["count"] == 1 and row["errors"] == 1 and row["total_ns"] == 300


def test_scopes_inside_a_timed_generator_nest_in_it(logdir: str, now: Now) -> None:
    liteprof.enable(logdir)

    @liteprof.timed("Gen:outer")
    def outer() -> Iterator[int]:
        for i in range(2):
            with liteprof.scope("Gen:inner"):
                now.advance(50)
            yield i

    for _ in outer():
        now.advance(5)
    report = read(logdir)
    liteprof.disable()
    rows = scopes_by_name(read(logdir))
    assert rows["Gen:outer"]["total_ns"] == 2 * 50 + 2 * 5
    assert rows["Gen:outer"]["self_ns"] == 2 * 5
    assert report["records"] == 3


@pytest.mark.parametrize("how", range(3), ids=["timed", "Scope", "scope"])
def test_async_generator_is_timed_over_the_whole_iteration(logdir: str, now: Now, how: int) -> None:
    liteprof.enable(logdir)

    async def ticks(n: int) -> AsyncIterator[int]:
        for i in range(n):
            await asyncio.sleep(0)
            now.advance(1_000)
            yield i

    timed_ticks = _decorators("Agen:ticks")[how](ticks)
    assert inspect.isasyncgenfunction(timed_ticks)

    async def main() -> list[int]:
        out = []
        agen = timed_ticks(3)
        now.advance(5_000_000)  # created, not started
        async for i in agen:
            now.advance(10)
            out.append(i)
        now.advance(5_000_000)
        return out

    assert asyncio.run(main()) == [0, 1, 2]
    row = _rows(logdir)["Agen:ticks"]
    assert row["count"] == 1 and row["errors"] == 0
    assert row["total_ns"] == 3 * 1_000 + 3 * 10


def test_async_generator_asend_athrow_aclose_pass_through(logdir: str, now: Now) -> None:
    liteprof.enable(logdir)
    seen: list[Any] = []

    @liteprof.timed("Agen:echo")
    async def echo() -> AsyncGenerator[Any, Any]:
        value = yield "ready"
        try:
            while True:
                try:
                    now.advance(100)
                    seen.append(value)
                    value = yield value * 2
                except KeyError:
                    seen.append("caught")
                    value = yield "recovered"
        finally:
            seen.append("closed")

    @liteprof.timed("Agen:fails")
    async def fails() -> AsyncIterator[int]:
        yield 1
        now.advance(7)
        raise ValueError("boom")

    async def main() -> None:
        agen = echo()
        assert await agen.__anext__() == "ready"
        assert await agen.asend(4) == 8
        assert await agen.athrow(KeyError("k")) == "recovered"
        assert await agen.asend(1) == 2
        await agen.aclose()  # early end: not an error, and the inner generator is closed
        bad = fails()
        assert await bad.__anext__() == 1
        with pytest.raises(ValueError, match="boom"):
            await bad.__anext__()

    asyncio.run(main())
    assert seen == [4, "caught", 1, "closed"]
    rows = _rows(logdir)
    assert rows["Agen:echo"]["count"] == 1 and rows["Agen:echo"]["errors"] == 0
    assert rows["Agen:echo"]["total_ns"] == 200
    assert rows["Agen:fails"]["errors"] == 1 and rows["Agen:fails"]["total_ns"] == 7


def test_generator_wrapper_costs_nothing_while_not_recording() -> None:
    @liteprof.timed
    def gen() -> Iterator[int]:
        yield from range(3)

    assert list(gen()) == [0, 1, 2]
    assert not liteprof.enabled()


def test_types_coroutine_stays_awaitable(logdir: str, now: Now) -> None:
    liteprof.enable(logdir)

    @liteprof.timed("Co:legacy")
    @types.coroutine
    def legacy() -> Iterator[None]:
        now.advance(40)
        yield

    async def main() -> None:
        await legacy()

    asyncio.run(main())
    assert _rows(logdir)["Co:legacy"]["total_ns"] == 40


# -- names ----------------------------------------------------------------------------------


def plain(a: int, b: int = 0) -> int:
    return a + b


class Model:
    def __call__(self, x: int) -> int:
        return x

    def method(self, x: int) -> int:
        return x


def test_partial_is_named_after_the_function_it_wraps(logdir: str) -> None:
    liteprof.enable(logdir)
    twice = liteprof.timed(functools.partial(functools.partial(plain, 1), b=2))
    assert twice() == 3
    model = Model()
    liteprof.timed(model)(5)
    liteprof.timed(model.method)(5)
    rows = _rows(logdir)
    module = __name__
    assert set(rows) == {f"{module}.plain", f"{module}.Model", f"{module}.Model.method"}
    assert all("0x" not in name for name in rows)  # never an address from a repr


def test_partial_of_a_coroutine_function_is_awaited_whole(logdir: str, now: Now) -> None:
    liteprof.enable(logdir)

    async def work(ns: int) -> int:
        await asyncio.sleep(0)
        now.advance(ns)
        return ns

    wrapped = liteprof.timed(functools.partial(work, 250))
    assert inspect.iscoroutinefunction(wrapped)
    assert asyncio.run(wrapped()) == 250
    row = _rows(logdir)[f"{__name__}.{work.__qualname__}"]
    assert row["total_ns"] == 250


def test_a_process_that_records_nothing_leaves_no_file(logdir: str) -> None:
    liteprof.enable(logdir)

    @liteprof.timed
    def gen() -> Iterator[int]:
        yield 1

    gen()  # never started: no event, no file
    liteprof.disable()
    assert not os.path.exists(logdir) or not os.listdir(logdir)
