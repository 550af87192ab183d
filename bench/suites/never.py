"""Never enabled: ``scope("name")`` in a fresh process per backend that never enables
recording (the pure-Python twin with ``LITEPROF_PURE=1``), against that process's own
floors."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..context import Context
from ..kernels import Row, Timer, stat_med, stat_min
from ..markdown import fmt_ns, fmt_ratio
from ..results import Target
from ..rows import DISABLED_ROWS, FLOOR_ROWS, floor_namespace, liteprof_namespace

NAME = "never"
TITLE = "Never enabled (a fresh process per backend)"

_KEYS = ("empty", "nullcontext", "call", "wraps", "never_scope", "never_predeclared", "never_timed")
_REFS = {"never_scope": "nullcontext", "never_predeclared": "nullcontext", "never_timed": "wraps"}


def child(argv: list[str]) -> dict[str, Any]:
    """In the fresh process: every row, ``repeats`` times, rotated; the raw samples."""
    ap = argparse.ArgumentParser(prog="bench.suites.never")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, required=True)
    args = ap.parse_args(argv)

    import liteprof

    assert not liteprof.enabled()
    timer = Timer(args.quick)
    ns = floor_namespace()
    ns.update(liteprof_namespace(liteprof))
    rows = [*FLOOR_ROWS, *[Row("never_" + r.key, r.label, r.stmt, r.names) for r in DISABLED_ROWS]]
    for rep in range(args.repeats):
        timer.run_rotated(rows, ns, rep)
    assert not liteprof.enabled()
    return {
        "backend": liteprof.BACKEND,
        "samples": timer.samples,
        "counts": timer.counts,
        "asyncio_imported": "asyncio" in sys.modules,
    }


def run(ctx: Context) -> dict[str, Any]:
    """One child per backend; each one's rows against its own floors."""
    runs: dict[str, Any] = {}
    for backend in ctx.backends:
        res = ctx.run_child(
            __name__,
            ["--repeats", str(ctx.repeats)] + (["--quick"] if ctx.quick else []),
            pure=backend == "python",
        )
        assert res["backend"] == backend, res["backend"]
        runs[backend] = res

    rows = []
    for backend, res in runs.items():
        sm = {k: stat_min(v) for k, v in res["samples"].items()}
        md = {k: stat_med(v) for k, v in res["samples"].items()}
        e = sm["empty"]
        for key in _KEYS:
            ref = _REFS.get(key)
            netv = sm[key] - e
            rows.append(
                {
                    "backend": backend,
                    "key": key,
                    "min_ns": sm[key],
                    "median_ns": md[key],
                    "net_ns": netv,
                    "ref": ref,
                    "ratio": netv / (sm[ref] - e) if ref else None,
                    "n": res["counts"].get(key),
                }
            )
    return {"rows": rows, "runs": runs}


def targets(results: dict[str, Any]) -> list[Target]:
    """The C core's never-enabled scope against nullcontext."""
    c = {r["key"]: r for r in results["rows"] if r["backend"] == "c"}
    return [
        Target(
            "c_never_scope",
            'C: never enabled `scope("name")` / nullcontext (own process)',
            c["never_scope"]["ratio"] if c else None,
            "<=",
            0.9,
        )
    ]


def summary(results: dict[str, Any]) -> list[str]:
    """The console lines."""
    lines = ["never enabled (fresh subprocess per backend, against its own floors):"]
    for r in results["rows"]:
        lines.append(
            f"  [{r['backend']}] {r['key']:<20} min {fmt_ns(r['min_ns']):>8} ns  net "
            f"{fmt_ns(r['net_ns']):>8} ns  {fmt_ratio(r['ratio']):>7} {r['ref'] or ''}"
        )
    return lines


def markdown(results: dict[str, Any]) -> list[str]:
    """The section's table."""
    lines = [f"## {TITLE}", ""]
    lines.append(
        "`with liteprof.scope(name)` in a process that never enabled recording: each "
        "backend in its own subprocess (the pure-Python twin with `LITEPROF_PURE=1`), "
        "which measures its own floors; ratios are against those floors."
    )
    lines.append("")
    lines.append("| backend | row | min ns | median ns | net ns | ratio | vs |")
    lines.append("| --- | --- | ---: | ---: | ---: | ---: | --- |")
    for r in results["rows"]:
        lines.append(
            f"| {r['backend']} | {r['key']} | {fmt_ns(r['min_ns'])} | "
            f"{fmt_ns(r['median_ns'])} | {fmt_ns(r['net_ns'])} | {fmt_ratio(r['ratio'])} | "
            f"{r['ref'] or ''} |"
        )
    lines.append("")
    return lines
