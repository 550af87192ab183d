"""Many tasks: ``with liteprof.scope(name)`` in one asyncio task while 10 or 10,000 other
tasks wait inside scopes of their own (a server with 10k connections in ``@timed``
handlers), for both backends. Target: 10,000 waiting tasks cost a scope at most 1.5x what
10 do (issue 14; a lane per task keeps a scope O(1) however many tasks hold scopes open).

The two configurations alternate within one event loop, repeat after repeat: 9,990 of the
waiting tasks are added before each 10,000 measurement and released after it.
"""

from __future__ import annotations

import gc
import time
from typing import Any

from ..context import Context
from ..kernels import stat_min
from ..markdown import fmt_ns, fmt_ratio
from ..results import Target

NAME = "tasks"
TITLE = "Many asyncio tasks"
FEW, MANY = 10, 10_000


def _measure(lp: Any, quick: bool, reps: int) -> dict[int, list[float]]:
    """Per configuration, ns per scope of each repeat (the loop's own cost included: it is
    the same in both, and the ratio is what counts)."""
    import asyncio

    n = 50_000 if quick else 200_000
    samples: dict[int, list[float]] = {FEW: [], MANY: []}

    async def waiter(gate: asyncio.Event) -> None:
        with lp.scope("Bench:Wait"):
            await gate.wait()

    async def hot() -> float:
        scope = lp.scope
        t0 = time.perf_counter_ns()
        for _ in range(n):
            with scope("Bench:Hot"):
                pass
        return (time.perf_counter_ns() - t0) / n

    async def main() -> None:
        few_gate = asyncio.Event()
        few = [asyncio.ensure_future(waiter(few_gate)) for _ in range(FEW)]
        await asyncio.sleep(0)
        await hot()  # warm up
        for rep in range(reps):
            order = (FEW, MANY) if rep % 2 == 0 else (MANY, FEW)
            for count in order:
                gate = asyncio.Event()
                extra = [asyncio.ensure_future(waiter(gate)) for _ in range(count - FEW)]
                await asyncio.sleep(0)  # every waiter enters its scope
                samples[count].append(await hot())
                gate.set()
                await asyncio.gather(*extra)
        few_gate.set()
        await asyncio.gather(*few)

    asyncio.run(main())
    return samples


def run(ctx: Context) -> dict[str, Any]:
    """Per backend: the minimum ns per scope with 10 and with 10,000 waiting tasks."""
    reps = 3 if ctx.quick else 7
    rows = []
    gc_was = gc.isenabled()
    gc.disable()
    try:
        for backend in ctx.backends:
            ctx.testing.use_backend(backend)
            d = ctx.enable()
            samples = _measure(ctx.liteprof, ctx.quick, reps)
            ctx.disable(d)
            few, many = stat_min(samples[FEW]), stat_min(samples[MANY])
            print(
                f"  tasks [{backend}]: {FEW} waiting {few:.0f} ns, {MANY} waiting "
                f"{many:.0f} ns per scope, ratio {many / few:.2f}",
                flush=True,
            )
            rows.append(
                {
                    "backend": backend,
                    "few_ns": few,
                    "many_ns": many,
                    "ratio": many / few,
                    "samples": {str(k): v for k, v in samples.items()},
                }
            )
    finally:
        if gc_was:
            gc.enable()
        ctx.testing.use_backend(ctx.backends[0])
    return {"rows": rows, "few": FEW, "many": MANY, "repeats": reps}


def targets(results: dict[str, Any]) -> list[Target]:
    """10,000 waiting tasks cost a scope at most 1.5x what 10 do, per backend."""
    out = []
    for r in results["rows"]:
        name = "C core" if r["backend"] == "c" else "pure-Python twin"
        out.append(
            Target(
                f"tasks_{r['backend']}",
                f"{name}: scope with {MANY:,} waiting tasks / with {FEW}",
                r["ratio"],
                "<=",
                1.5,
            )
        )
    return out


def summary(results: dict[str, Any]) -> list[str]:
    """The console lines."""
    lines = ["tasks (ns per scope in one task, other tasks waiting inside scopes):"]
    for r in results["rows"]:
        lines.append(
            f"  [{r['backend']}] {FEW} waiting {fmt_ns(r['few_ns'])}  {MANY:,} waiting "
            f"{fmt_ns(r['many_ns'])}  ratio {fmt_ratio(r['ratio'])}"
        )
    return lines


def markdown(results: dict[str, Any]) -> list[str]:
    """The section's table."""
    lines = [f"## {TITLE}", ""]
    lines.append(
        f"One asyncio task runs a loop of `with liteprof.scope(name)` while {FEW} or "
        f"{MANY:,} other tasks wait inside scopes of their own; the two configurations "
        f"alternate in one event loop ({results['repeats']} repeats each, minimum shown, "
        "the loop's own cost included)."
    )
    lines.append("")
    lines.append(f"| backend | {FEW} waiting (ns/scope) | {MANY:,} waiting | ratio |")
    lines.append("| --- | ---: | ---: | ---: |")
    for r in results["rows"]:
        lines.append(
            f"| {r['backend']} | {fmt_ns(r['few_ns'])} | {fmt_ns(r['many_ns'])} | "
            f"{fmt_ratio(r['ratio'])} |"
        )
    lines.append("")
    return lines
