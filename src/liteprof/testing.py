"""Helpers for testing code that records, and for liteprof's own tests and benchmarks.

Not imported by ``import liteprof``::

    from liteprof import testing

    for name in testing.available_backends():
        testing.use_backend(name)
        with testing.fixed_clock(iter(range(0, 10**9, 1000)).__next__):
            ...
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Callable

from .record import api, backend

__all__ = ["available_backends", "current_backend", "fixed_clock", "set_clock", "use_backend"]


def available_backends() -> list[str]:
    """The recorder backends importable here: ``["c", "python"]``, or ``["python"]``."""
    return backend.available()


def current_backend() -> str:
    """``"c"`` or ``"python"``: the backend that records now."""
    return backend.current.BACKEND


def use_backend(name: str) -> None:
    """Record with backend ``name`` from now on (``"c"`` or ``"python"``).

    Recording is turned off first. ``liteprof.scope``, ``liteprof.Scope`` and
    ``liteprof.BACKEND`` are rebound; objects made before keep their old backend.
    """
    api.use_backend(name)


def set_clock(clock: Callable[[], int] | None) -> None:
    """Make the current backend read ``clock()`` (integer ns) instead of the monotonic
    clock; ``None`` goes back to the real clock."""
    backend.current.set_clock(clock)


@contextlib.contextmanager
def fixed_clock(clock: Callable[[], int]) -> Iterator[None]:
    """Within the block, the current backend reads time from ``clock()``; deterministic
    durations for tests (``itertools.count(0, 1000).__next__`` gives 1 µs per reading)."""
    backend.current.set_clock(clock)
    try:
        yield
    finally:
        backend.current.set_clock(None)
