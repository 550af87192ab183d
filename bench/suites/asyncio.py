"""asyncio: ``with liteprof.scope(name)`` in a loop inside one asyncio task, next to the
same loop in plain sync code, for both backends.

Measures nothing itself: its rows run in the ``hotpath`` suite's repeats, interleaved with
the sync rows they are compared with (a ratio is only worth something within one run).
"""

from __future__ import annotations

from typing import Any

from ..context import Context
from ..kernels import stat_min
from ..markdown import fmt_ns, fmt_ratio
from ..results import Target
from ..rows import backend_prefix

NAME = "asyncio"
TITLE = "asyncio"
NEEDS = ("hotpath",)


def run(ctx: Context) -> dict[str, Any]:
    """Per backend: net ns of the scope in a task and in sync code (from hotpath's minima)."""
    mins = {k: stat_min(v) for k, v in ctx.results["hotpath"]["samples"].items()}
    empty = mins["empty"]
    async_empty = mins.get("async_empty", float("nan"))
    rows = []
    for backend in ("c", "python"):
        p = backend_prefix(backend)
        if p + "async_scope" not in mins:
            continue
        sync_net = mins[p + "scope"] - empty
        async_net = mins[p + "async_scope"] - async_empty
        rows.append(
            {
                "backend": backend,
                "sync_net_ns": sync_net,
                "async_net_ns": async_net,
                "ratio": async_net / sync_net,
                "async_null_net_ns": mins["async_nullcontext"] - async_empty,
                "sync_null_net_ns": mins["nullcontext"] - empty,
                "sync_min_ns": mins[p + "scope"],
                "async_min_ns": mins[p + "async_scope"],
            }
        )
    return {"rows": rows}


def targets(results: dict[str, Any]) -> list[Target]:
    """None: the figures are for information."""
    return []


def summary(results: dict[str, Any]) -> list[str]:
    """The console lines."""
    lines = ["asyncio (net ns per scope):"]
    for r in results["rows"]:
        lines.append(
            f"  [{r['backend']}] sync {fmt_ns(r['sync_net_ns'])}  in a task "
            f"{fmt_ns(r['async_net_ns'])}  task/sync {fmt_ratio(r['ratio'])}  "
            f"(nullcontext: sync {fmt_ns(r['sync_null_net_ns'])}, in a task "
            f"{fmt_ns(r['async_null_net_ns'])})"
        )
    return lines


def markdown(results: dict[str, Any]) -> list[str]:
    """The section's table."""
    lines = [f"## {TITLE}", ""]
    lines.append(
        "One asyncio task runs a loop of `with liteprof.scope(name)`; net ns are against an "
        "empty loop in a task, next to the same scope in plain sync code."
    )
    lines.append("")
    lines.append(
        "| backend | sync net ns | in a task net ns | task / sync | in a task / nullcontext "
        "in a task |"
    )
    lines.append("| --- | ---: | ---: | ---: | ---: |")
    for r in results["rows"]:
        lines.append(
            f"| {r['backend']} | {fmt_ns(r['sync_net_ns'])} | {fmt_ns(r['async_net_ns'])} | "
            f"{fmt_ratio(r['ratio'])} | "
            f"{fmt_ratio(r['async_net_ns'] / r['async_null_net_ns'])} |"
        )
    if results["rows"]:
        r0 = results["rows"][0]
        lines.append("")
        lines.append(
            f"For scale: `with contextlib.nullcontext()` costs {fmt_ns(r0['sync_null_net_ns'])}"
            f" ns net in sync code and {fmt_ns(r0['async_null_net_ns'])} ns in a task."
        )
    lines.append("")
    return lines
