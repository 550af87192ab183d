"""Scopes used the odd ways a program may use them, on both recorders: closed inside signal
handlers and ``sys.settrace`` hooks, re-entered, named by a hostile ``str`` subclass, left
without being entered, pickled, and closed by an early ``break`` out of a generator.

Each is a promise of docs/RELIABILITY.md: nothing lost, nothing written over, never an
exception in the program, the same behaviour on the C core and the pure-Python twin.
"""

from __future__ import annotations

import itertools
import logging
import pickle
import signal
import subprocess
import sys
from collections.abc import Generator, Iterator
from types import FrameType
from typing import Any

import pytest

import liteprof
from liteprof import testing
from liteprof.log import writer as log_writer

from .helpers import child_env, read, scopes_by_name

pytestmark = pytest.mark.usefixtures("backend")  # every test here records


class StepClock:
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


def counts(logdir: str) -> dict[str, int]:
    return {name: row["count"] for name, row in scopes_by_name(read(logdir)).items()}


def events(logdir: str) -> list[tuple[str, int, int, int, str | None]]:
    """(name, dur, self, depth, parent's name) per event, as the reader gives them."""
    from liteprof.log.reader import read_logs

    ev = read_logs([logdir])
    names = [ev.names[i] for i in ev.name.tolist()]
    return [
        (names[i], d, s, depth, names[p] if p >= 0 else None)
        for i, (d, s, depth, p) in enumerate(
            zip(ev.dur.tolist(), ev.self_ns.tolist(), ev.depth.tolist(), ev.parent.tolist())
        )
    ]


# -- scopes closed in the middle of another one -------------------------------------------


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs setitimer")
def test_scopes_closed_in_signal_handlers_are_never_lost_or_overwritten(logdir: str) -> None:
    """A timer signal every 100 µs: its handler records a scope wherever the main loop is,
    also in the middle of storing an event (the pure recorder used to store both at the
    same place, or drop the handler's)."""
    handled = 0

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal handled
        handled += 1
        with liteprof.scope("Sig:Handler"):
            pass

    old = signal.signal(signal.SIGALRM, handler)
    liteprof.enable(logdir)
    n = 0
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.0001, 0.0001)
        while handled < 2000 and n < 3_000_000:
            with liteprof.scope("Sig:Main"):
                n += 1
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0, 0)
        signal.signal(signal.SIGALRM, old)
        liteprof.disable()
    assert handled >= 100
    assert counts(logdir) == {"Sig:Main": n, "Sig:Handler": handled}
    assert read(logdir)["skipped"] == 0


def test_events_a_signal_handler_drained_first_are_not_stored_twice() -> None:
    """The pure recorder's drain checks ``pending``, then marks the block busy: a handler
    that runs in between stores every pending event itself and leaves nothing (the drain
    used to raise IndexError out of the program's ``with`` then)."""
    from liteprof.record import _pyrecorder

    class DrainedRightAfterTheCheck(list[tuple[int, int, int, int, int, Any, int]]):
        def __bool__(self) -> bool:
            had = len(self) > 0
            self.clear()  # what the handler's own drain does, between the check and busy
            return had

    st = _pyrecorder._ThreadState()
    st.pending = DrainedRightAfterTheCheck([(-1, 0, 0, 0, 0, "Sig:Late", 0)])
    _pyrecorder._drain(st)
    assert not st.busy and len(st.pending) == 0


def test_a_signal_handler_run_while_a_block_is_allocated_loses_nothing(
    logdir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The handler runs inside the writer's block allocation (which holds its lock): its
    scope waits until the allocation is done (the C core used to drop it)."""
    handled = 0

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal handled
        handled += 1
        with liteprof.scope(f"Sig:InBlock{handled}"):  # a new name and no room: both wait
            pass

    original = log_writer.LogWriter.new_block

    def new_block(self: log_writer.LogWriter, owner: int, size: int) -> Any:
        signal.raise_signal(signal.SIGUSR1)  # the handler runs right here
        return original(self, owner, size)

    monkeypatch.setattr(log_writer.LogWriter, "new_block", new_block)
    old = signal.signal(signal.SIGUSR1, handler)
    liteprof.enable(logdir)
    try:
        for _ in range(3000):  # several blocks
            with liteprof.scope("Main"):
                pass
    finally:
        signal.signal(signal.SIGUSR1, old)
        liteprof.disable()
    assert handled >= 3
    got = counts(logdir)
    assert got.pop("Main") == 3000
    assert got == {f"Sig:InBlock{i}": 1 for i in range(1, handled + 1)}


def test_scopes_closed_in_a_trace_hook_are_never_lost_or_overwritten(logdir: str) -> None:
    """A ``sys.settrace`` hook that records a scope at every line it sees, including the
    lines of the pure recorder's own ``__exit__`` while it stores an event."""
    calls = 0

    def local(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal calls
        if event == "line":
            calls += 1
            with liteprof.scope("Trace:Line"):
                pass
        return local

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        return local  # every new frame: the loop below and the recorder's own

    def loop() -> None:
        for _ in range(2000):
            with liteprof.scope("Traced"):
                pass

    liteprof.enable(logdir)
    sys.settrace(tracer)
    try:
        loop()
    finally:
        sys.settrace(None)
        liteprof.disable()
    assert calls > 4000
    assert counts(logdir) == {"Traced": 2000, "Trace:Line": calls}
    assert read(logdir)["skipped"] == 0


# -- one scope() object entered twice ------------------------------------------------------


def test_reentering_one_scope_object_makes_two_scopes(logdir: str, clock: StepClock) -> None:
    """``with s: with s:``: each entry is a scope of its own, each exit closes the innermost
    one still open (before: the pure recorder wrote both events with the inner's start)."""
    liteprof.enable(logdir)
    s = liteprof.scope("Re")
    with s:  # 0
        with liteprof.scope("Between"):  # 10
            with s:  # 20
                pass  # 30
        # 40
    # 50
    with s:  # used again once closed: one more scope; 60 .. 70
        pass
    s.__exit__(None, None, None)  # left more often than entered: nothing happens
    liteprof.disable()
    assert sorted(events(logdir)) == [
        ("Between", 30, 20, 1, "Re"),
        ("Re", 10, 10, 0, None),
        ("Re", 10, 10, 2, "Between"),
        ("Re", 50, 20, 0, None),
    ]


# -- names, exits and pickles ---------------------------------------------------------------


class HostileName(str):
    """A str whose own hashing and comparing raise (a str subclass is a str)."""

    def __hash__(self) -> int:
        raise RuntimeError("no hash")

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("no eq")


def test_a_str_subclass_is_recorded_by_its_value_whatever_its_hash(
    logdir: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Its own ``__hash__``/``__eq__`` never run (before: their exception escaped from
    ``__exit__``); the event is recorded under the string's value."""
    caplog.set_level(logging.WARNING, logger="liteprof")
    pre = liteprof.Scope(HostileName("Hostile:Scope"))
    liteprof.enable(logdir)
    for _ in range(3):
        with liteprof.scope(HostileName("Hostile:scope")):
            pass
        with pre:
            pass
    liteprof.disable()
    assert counts(logdir) == {"Hostile:scope": 3, "Hostile:Scope": 3}
    assert not [r for r in caplog.records if r.name == "liteprof"]


def test_leaving_a_scope_never_entered_is_nothing(logdir: str) -> None:
    """The same on both recorders, with or without the exception arguments (before: the
    pure recorder required them)."""
    for recording in (False, True):
        if recording:
            liteprof.enable(logdir)
        shared = liteprof.Scope("Never")
        once = liteprof.scope("Never")
        # A true result would swallow an exception: the value returned is what is checked.
        assert shared.__exit__() is None  # type: ignore[func-returns-value]
        assert once.__exit__() is None  # type: ignore[func-returns-value]
        assert shared.__exit__(None, None, None) is None  # type: ignore[func-returns-value]
        with liteprof.scope("Open"):
            # another scope is open: still nothing
            assert shared.__exit__() is None  # type: ignore[func-returns-value]
    liteprof.disable()
    assert counts(logdir) == {"Open": 1}


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_a_scope_pickles_as_liteprof_scope_for_either_recorder(backend: str, protocol: int) -> None:
    data = pickle.dumps(liteprof.Scope("Pickled:Name"), protocol=protocol)
    assert b"liteprof" in data and b"_core" not in data and b"_pyrecorder" not in data
    for name in testing.available_backends():  # loaded by whichever records then
        testing.use_backend(name)
        loaded = pickle.loads(data)
        assert type(loaded) is liteprof.Scope and loaded.name == "Pickled:Name"
    testing.use_backend(backend)


def test_a_scope_pickled_by_one_recorder_records_in_a_process_of_the_other(
    backend: str, logdir: str
) -> None:
    data = pickle.dumps(liteprof.Scope("Pickled:Moved"))
    other = {"c": "1", "python": None}[backend]  # LITEPROF_PURE for the other recorder
    code = (
        "import pickle, sys, liteprof\n"
        "s = pickle.loads(sys.stdin.buffer.read())\n"
        "assert type(s) is liteprof.Scope, type(s)\n"
        "with s:\n    pass\n"
        "print(liteprof.BACKEND)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        input=data,
        capture_output=True,
        env=child_env(LITEPROF_PURE=other, LITEPROF_LOG=logdir),
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().strip() == ("python" if backend == "c" else "c")
    assert counts(logdir) == {"Pickled:Moved": 1}


# -- what counts as an error -------------------------------------------------------------------


def test_an_early_break_out_of_a_generator_is_not_an_error(logdir: str) -> None:
    """Closing a generator raises GeneratorExit inside it: a normal end of its iteration.
    Every other exception, KeyboardInterrupt and SystemExit included, marks the event."""

    def gen() -> Generator[int, None, None]:
        with liteprof.scope("Gen:Body"):
            yield 1
            yield 2

    shared = liteprof.Scope("Gen:Shared")

    def gen_shared() -> Generator[int, None, None]:
        with shared:
            yield 1
            yield 2

    liteprof.enable(logdir)
    for g in (gen(), gen_shared()):
        for _ in g:
            break
        g.close()
    for exc in (KeyboardInterrupt, SystemExit, ValueError):
        with pytest.raises(exc):
            with liteprof.scope(f"Raise:{exc.__name__}"):
                raise exc
    liteprof.disable()
    rows = scopes_by_name(read(logdir))
    assert rows["Gen:Body"]["count"] == 1 and rows["Gen:Body"]["errors"] == 0
    assert rows["Gen:Shared"]["count"] == 1 and rows["Gen:Shared"]["errors"] == 0
    for exc in (KeyboardInterrupt, SystemExit, ValueError):
        assert rows[f"Raise:{exc.__name__}"]["errors"] == 1
