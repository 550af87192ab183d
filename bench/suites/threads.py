"""Threads: 1, 2 and 4 threads each run scopes for a fixed time (recording on); total
scopes/s and the ratios to one thread. With the GIL, threads cannot add throughput: the
target (2 threads >= 0.9x one thread) means that no lock contention slows them down."""

from __future__ import annotations

import gc
import threading
import time
from typing import Any

from ..context import Context
from ..kernels import stat_med
from ..markdown import fmt_ratio
from ..results import Target

NAME = "threads"
TITLE = "Threads"
THREADS = (1, 2, 4)


def thread_throughput(lp: Any, nthreads: int, duration: float) -> float:
    """Total scopes/s of ``nthreads`` threads running scopes for ``duration`` s."""
    stop = False
    barrier = threading.Barrier(nthreads + 1)
    results: list[tuple[int, int, int]] = []
    lock = threading.Lock()

    def worker() -> None:
        scope = lp.scope
        chunk = range(1000)
        count = 0
        barrier.wait()
        t0 = time.perf_counter_ns()
        while not stop:
            for _ in chunk:
                with scope("Bench:threads"):
                    pass
            count += 1000
        t1 = time.perf_counter_ns()
        with lock:
            results.append((count, t0, t1))

    threads = [threading.Thread(target=worker, name=f"bench-{i}") for i in range(nthreads)]
    for t in threads:
        t.start()
    barrier.wait()
    time.sleep(duration)
    stop = True
    for t in threads:
        t.join()
    total = sum(c for c, _, _ in results)
    span = max(t1 for _, _, t1 in results) - min(t0 for _, t0, _ in results)
    return total / (span / 1e9)


def run(ctx: Context) -> dict[str, Any]:
    """Per backend, ``reps`` rounds of 1, 2, 4 threads (order reversed every other round);
    the median total scopes/s per thread count (keys are strings: JSON's)."""
    lp = ctx.liteprof
    duration = 0.3 if ctx.quick else 1.0
    reps = 2 if ctx.quick else 3
    rows = []
    gc_was = gc.isenabled()
    gc.disable()
    try:
        for backend in ctx.backends:
            ctx.testing.use_backend(backend)
            d = ctx.enable()
            samples: dict[int, list[float]] = {nt: [] for nt in THREADS}
            thread_throughput(lp, 1, 0.05)  # attach the main thread's recorder path
            for rep in range(reps):
                order = list(THREADS) if rep % 2 == 0 else list(reversed(THREADS))
                for nt in order:
                    samples[nt].append(thread_throughput(lp, nt, duration))
            ctx.disable(d)
            med = {nt: stat_med(v) for nt, v in samples.items()}
            print(
                f"  threads [{backend}]: "
                + ", ".join(f"{nt}T {m / 1e6:.2f} M/s" for nt, m in med.items()),
                flush=True,
            )
            rows.append(
                {
                    "backend": backend,
                    "scopes_per_s": {str(nt): m for nt, m in med.items()},
                    "samples": {str(nt): v for nt, v in samples.items()},
                    "ratio_2_1": med[2] / med[1],
                    "ratio_4_1": med[4] / med[1],
                }
            )
    finally:
        if gc_was:
            gc.enable()
        ctx.testing.use_backend(ctx.backends[0])
    return {"rows": rows, "duration_s": duration, "rounds": reps}


def targets(results: dict[str, Any]) -> list[Target]:
    """Two threads keep at least 0.9x one thread's throughput, per backend."""
    out = []
    for tr in results["rows"]:
        name = "C core" if tr["backend"] == "c" else "pure-Python twin"
        out.append(
            Target(
                f"threads_{tr['backend']}",
                f"{name}: 2 threads' scopes/s / 1 thread's",
                tr["ratio_2_1"],
                ">=",
                0.9,
            )
        )
    return out


def summary(results: dict[str, Any]) -> list[str]:
    """The console lines."""
    lines = ["threads (total scopes/s, median):"]
    for r in results["rows"]:
        per = r["scopes_per_s"]
        lines.append(
            f"  [{r['backend']}] "
            + "  ".join(f"{nt}T {per[str(nt)] / 1e6:.2f} M/s" for nt in THREADS)
            + f"  2T/1T {fmt_ratio(r['ratio_2_1'])}  4T/1T {fmt_ratio(r['ratio_4_1'])}"
        )
    return lines


def markdown(results: dict[str, Any]) -> list[str]:
    """The section's table."""
    lines = [f"## {TITLE}", ""]
    lines.append(
        "Each thread runs `with liteprof.scope(name)` for a fixed time (recording on); "
        "total scopes/s is the median over the repeats. With the GIL, threads cannot add "
        "throughput: the target (2 threads >= 0.9x one thread) means that no lock "
        "contention slows them down."
    )
    lines.append("")
    lines.append("| backend | 1 thread | 2 threads | 4 threads | 2T / 1T | 4T / 1T |")
    lines.append("| --- | ---: | ---: | ---: | ---: | ---: |")
    for r in results["rows"]:
        per = r["scopes_per_s"]
        lines.append(
            f"| {r['backend']} | {per['1'] / 1e6:.2f} M/s | {per['2'] / 1e6:.2f} M/s | "
            f"{per['4'] / 1e6:.2f} M/s | {fmt_ratio(r['ratio_2_1'])} | "
            f"{fmt_ratio(r['ratio_4_1'])} |"
        )
    lines.append("")
    return lines
