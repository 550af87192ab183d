"""Many names (issue 14): a child records 1M distinct scope names, one event each, with
the C core; then ``python -m liteprof report --format json LOGDIR
> /dev/null`` is timed end to end from a fresh helper process, which reads the report's
peak RSS. Every name is one scope row, one tree node and one group row: what the report
costs per name, not per event."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from typing import Any

from ..context import Context
from ..results import Target

NAME = "names"
TITLE = "Many names"
MIB = 1024 * 1024
GROUPS = 1000
"""Names are ``Mod<i % GROUPS>:function_<i>``: a thousand groups of a thousand scopes."""


def _child_gen(argv: list[str]) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog="bench.suites.names gen")
    ap.add_argument("--names", type=int, required=True)
    ap.add_argument("--dir", required=True)
    args = ap.parse_args(argv)
    import liteprof

    liteprof.enable(args.dir)
    t0 = time.perf_counter()
    for i in range(args.names):
        with liteprof.scope(f"Mod{i % GROUPS}:function_{i}"):
            pass
    path = liteprof.log_path()
    liteprof.disable()
    return {"path": path, "seconds": time.perf_counter() - t0, "backend": liteprof.BACKEND}


def child(argv: list[str]) -> dict[str, Any]:
    """``gen --names N --dir DIR``."""
    if argv[:1] == ["gen"]:
        return _child_gen(argv[1:])
    raise SystemExit(f"bench.suites.names: unknown child {argv[:1]}")


def run(ctx: Context) -> dict[str, Any]:
    # 1M names with --quick too (one run instead of three): on a smaller log the fixed
    # memory of an interpreter with numpy would dominate the RSS ratio.
    names = 1_000_000
    d = os.path.join(ctx.tmpdir, f"names-{names}")
    gen = ctx.run_child(__name__, ["gen", "--names", str(names), "--dir", d])
    if hasattr(os, "sync"):
        os.sync()  # write the new log back now, not while the report is timed
    size = os.path.getsize(gen["path"])
    json_out = os.path.join(ctx.tmpdir, "names-report.json")
    cmd = [sys.executable, "-m", "liteprof", "report", "--format", "json", d]
    runs = []
    for i in range(1 if ctx.quick else 3):
        extra = ["--stdout", json_out] if i == 0 else []
        # The reader suite's helper: one fresh process per run, its child's peak RSS.
        r = ctx.run_child("bench.suites.reader", ["rusage", *extra, "--", *cmd])
        if r["rc"] != 0:
            raise RuntimeError(f"liteprof report failed with status {r['rc']}")
        runs.append(r)
        if i == 0:
            with open(json_out) as fh:
                report = json.load(fh)
            os.unlink(json_out)
            if (len(report["scopes"]), len(report["tree"])) != (names, names):
                raise RuntimeError("the report does not have one row and one node per name")
    shutil.rmtree(d, ignore_errors=True)
    best = min(r["wall_s"] for r in runs)
    peak = max(r["maxrss_kib"] for r in runs) * 1024
    print(
        f"  names {names:,}: log {size / MIB:.0f} MiB, best {best:.2f} s, "
        f"peak RSS {peak / MIB:.0f} MiB ({peak / size:.2f}x the log)",
        flush=True,
    )
    return {
        "names": names,
        "log_bytes": size,
        "gen_seconds": gen["seconds"],
        "wall_s": [r["wall_s"] for r in runs],
        "user_s": [r["user_s"] for r in runs],
        "best_wall_s": best,
        "peak_rss_bytes": peak,
    }


def targets(results: dict[str, Any]) -> list[Target]:
    names = results["names"]
    per_million = results["best_wall_s"] * 1_000_000 / names
    return [
        Target(
            "names_report_s",
            f"many names: report seconds per 1M names, end to end ({names:,} names measured)",
            per_million,
            "<=",
            5.0,
        ),
        Target(
            "names_rss",
            "many names: peak RSS / log size",
            results["peak_rss_bytes"] / results["log_bytes"],
            "<=",
            3.0,
            detail=f"{results['peak_rss_bytes'] / MIB:.0f} MiB vs a "
            f"{results['log_bytes'] / MIB:.0f} MiB log",
        ),
    ]


def markdown(results: dict[str, Any]) -> list[str]:
    r = results
    return [
        f"## {TITLE}",
        "",
        f"A child records {r['names']:,} distinct names, one event each "
        f"(`Mod<i % {GROUPS}>:function_<i>`: {GROUPS} groups), with the C core; then "
        "`python -m liteprof report --format json LOGDIR > /dev/null`, end to end, each run "
        "from a fresh helper process that reads the report's peak RSS. Every name is a scope "
        "row, a tree node and a group row.",
        "",
        "| names | log size | runs (s) | best | peak RSS | RSS / log |",
        "| ---: | ---: | --- | ---: | ---: | ---: |",
        f"| {r['names']:,} | {r['log_bytes'] / MIB:,.0f} MiB | "
        + ", ".join(f"{w:.2f}" for w in r["wall_s"])
        + f" | {r['best_wall_s']:.2f} s | {r['peak_rss_bytes'] / MIB:,.0f} MiB | "
        f"{r['peak_rss_bytes'] / r['log_bytes']:.2f}x |",
        "",
    ]
