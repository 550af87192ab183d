"""Timing kernels: a row's statement compiled into a timeit-style loop, and the Timer.

A row's loop is ``for _ in repeat(None, n):`` with the statement inlined and the objects
it uses bound to locals, so that the figure is the statement's cost plus one loop step
(the "empty" row measures that step alone). The garbage collector is off while a loop
runs. Nothing here imports liteprof.
"""

from __future__ import annotations

import gc
import itertools
import statistics
import time
from dataclasses import dataclass, replace
from typing import Any, Callable

_SYNC_TEMPLATE = """
def _bench(_n, _pc=_perf_counter_ns, _repeat=_itertools_repeat):
{setup}
    _it = _repeat(None, _n)
    _t0 = _pc()
    for _ in _it:
{stmt}
    return _pc() - _t0
"""

_ASYNC_TEMPLATE = """
async def _bench(_n, _pc=_perf_counter_ns, _repeat=_itertools_repeat):
{setup}
    _it = _repeat(None, _n)
    _t0 = _pc()
    for _ in _it:
{stmt}
    return _pc() - _t0
"""


@dataclass
class Row:
    """One measured statement: ``key`` names its samples, ``label`` is for people."""

    key: str
    label: str
    stmt: str  # the loop body; may span lines
    names: tuple[str, ...] = ()  # locals taken from the phase's namespace
    hot: bool = True  # hot-path rows get at least min_n iterations
    is_async: bool = False

    def prefixed(self, prefix: str) -> Row:
        """The same row under the key ``prefix + key`` (one row measured per backend)."""
        return replace(self, key=prefix + self.key)

    def compile(self, namespace: dict[str, Any]) -> Callable[..., Any]:
        """The loop as a function of ``n`` that returns the elapsed ns."""
        setup = "".join(f"    {n} = _g_{n}\n" for n in self.names) or "    pass\n"
        stmt = "".join(f"        {line}\n" for line in self.stmt.splitlines())
        template = _ASYNC_TEMPLATE if self.is_async else _SYNC_TEMPLATE
        src = template.format(setup=setup.rstrip("\n"), stmt=stmt.rstrip("\n"))
        glb: dict[str, Any] = {
            "_perf_counter_ns": time.perf_counter_ns,
            "_itertools_repeat": itertools.repeat,
        }
        for n in self.names:
            glb[f"_g_{n}"] = namespace[n]
        exec(compile(src, f"<bench {self.key}>", "exec"), glb)
        return glb["_bench"]  # type: ignore[no-any-return]


class Timer:
    """Runs rows: calibrates each row's loop count once, then times one repeat per call.

    ``samples[key]`` collects one ns-per-iteration figure per call; ``counts[key]`` is the
    loop count chosen for the row (the same in every repeat, so repeats compare).
    """

    def __init__(self, quick: bool) -> None:
        self.target_s = 0.03 if quick else 0.12
        self.min_n = 100_000 if quick else 200_000
        self.max_n = 300_000 if quick else 1_000_000
        self.cold_min_n = 2_000 if quick else 10_000
        self.counts: dict[str, int] = {}
        self.samples: dict[str, list[float]] = {}
        self.loop: Any = None  # asyncio event loop for async rows (asyncio imported lazily)

    def _call(self, row: Row, func: Callable[..., Any], n: int) -> int:
        if row.is_async:
            return int(self.loop.run_until_complete(func(n)))
        return int(func(n))

    def measure(self, row: Row, namespace: dict[str, Any]) -> float:
        """Time one repeat of ``row`` (objects from ``namespace``); ns per iteration."""
        func = row.compile(namespace)
        gc.collect()
        enabled = gc.isenabled()
        gc.disable()
        try:
            n = self.counts.get(row.key)
            if n is None:
                probe = 2_000
                self._call(row, func, probe)  # warm up
                per = max(self._call(row, func, probe) / probe, 1.0)
                n = int(self.target_s * 1e9 / per)
                lo = self.min_n if row.hot else self.cold_min_n
                n = max(lo, min(self.max_n, n))
                self.counts[row.key] = n
            ns = self._call(row, func, n) / n
        finally:
            if enabled:
                gc.enable()
        self.samples.setdefault(row.key, []).append(ns)
        return ns

    def run_rotated(self, rows: list[Row], namespace: dict[str, Any], rep: int) -> None:
        """One repeat of every row, the order rotated by ``rep`` (no row always first)."""
        k = rep % len(rows)
        for row in rows[k:] + rows[:k]:
            self.measure(row, namespace)


def stat_min(xs: list[float]) -> float:
    """The minimum, or NaN for no samples."""
    return min(xs) if xs else float("nan")


def stat_med(xs: list[float]) -> float:
    """The median, or NaN for no samples."""
    return statistics.median(xs) if xs else float("nan")
