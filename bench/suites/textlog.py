"""vLLM text logs (issue 9): a child writes a vLLM lite-profiler log of 5M lines (2M with
``--quick``; vLLM's scope names, one engine step = 8 lines), then vLLM's ``summarize_log``
(``bench/vllm_summarize.py``, run as ``python -m bench.vllm_summarize LOG``) and
``python -m liteprof report LOG > /dev/null`` are timed end to end, process start
included, each run from a fresh helper process that reads its peak RSS
(``getrusage(RUSAGE_CHILDREN)``), the two alternating. The first run of each is checked:
vLLM's tables and liteprof's per-scope totals equal the sums the writer made."""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from typing import Any

from ..context import Context
from ..results import Target

NAME = "textlog"
TITLE = "vLLM text logs"
MIB = 1024 * 1024

# One engine step, in the order vLLM's scopes close: the model's parts inside Step:Model.
STEP = (
    ("Step:Schedule", 80_000),
    ("Model:UpdateState", 30_000),
    ("Model:PrepareInput", 120_000),
    ("Model:Forward", 9_000_000),
    ("Model:Postprocess", 200_000),
    ("Model:Bookkeep", 40_000),
    ("Step:Model", 10_000_000),
    ("Step:Output", 150_000),
)


def _child_gen(argv: list[str]) -> dict[str, Any]:
    """Write ``--lines`` lines to ``--path``: durations in ns around each scope's typical
    time (log-normal-ish, a fixed seed); the exact sums and counts per name."""
    ap = argparse.ArgumentParser(prog="bench.suites.textlog gen")
    ap.add_argument("--lines", type=int, required=True)
    ap.add_argument("--path", required=True)
    args = ap.parse_args(argv)
    rng = random.Random(9)
    sums = {name: 0 for name, _ in STEP}
    counts = {name: 0 for name, _ in STEP}
    t0 = time.perf_counter()
    per_batch = 80_000  # a multiple of the step's 8 lines
    with open(args.path, "w", encoding="utf-8") as fh:
        for first in range(0, args.lines, per_batch):
            k = min(per_batch, args.lines - first)
            out = []
            for i in range(k):
                name, typical = STEP[i % 8]
                ns = int(typical * rng.lognormvariate(0.0, 0.3)) + 1
                sums[name] += ns
                counts[name] += 1
                out.append(f"{name}|{ns}\n")
            fh.write("".join(out))
    return {"seconds": time.perf_counter() - t0, "sums": sums, "counts": counts}


def child(argv: list[str]) -> dict[str, Any]:
    """``gen --lines N --path FILE``."""
    if argv[:1] == ["gen"]:
        return _child_gen(argv[1:])
    raise SystemExit(f"bench.suites.textlog: unknown child {argv[:1]}")


def _check_vllm(out_path: str, sums: dict[str, int]) -> None:
    from bench.vllm_summarize import MODEL_EVENTS, TOP_EVENTS, table_cells

    with open(out_path) as fh:
        text = fh.read().splitlines()
    want = [" | ".join(table_cells(sums, TOP_EVENTS)), " | ".join(table_cells(sums, MODEL_EVENTS))]
    if [text[2], text[5]] != want:
        raise RuntimeError(f"vLLM's tables {text!r} do not match the written sums")


def _check_liteprof(out_path: str, sums: dict[str, int], counts: dict[str, int]) -> None:
    with open(out_path) as fh:
        report = json.load(fh)
    got = {row["name"]: (row["count"], row["total_ns"]) for row in report["scopes"]}
    want = {name: (counts[name], sums[name]) for name in sums}
    if got != want or report.get("skipped"):
        raise RuntimeError(f"liteprof's totals {got} do not match the written ones {want}")


def run(ctx: Context) -> dict[str, Any]:
    lines = 2_000_000 if ctx.quick else 5_000_000
    repeats = 3
    path = os.path.join(ctx.tmpdir, f"vllm-{lines}.log")
    gen = ctx.run_child(__name__, ["gen", "--lines", str(lines), "--path", path])
    if hasattr(os, "sync"):
        os.sync()  # write the new log back now, not while it is read
    size = os.path.getsize(path)
    out_path = os.path.join(ctx.tmpdir, "textlog-out")
    warm = os.path.join(ctx.tmpdir, "textlog-warm.log")
    with open(warm, "w") as fh:
        fh.write("".join(f"{name}|{typical}\n" for name, typical in STEP))
    commands = {
        "vllm": [sys.executable, "-m", "bench.vllm_summarize", path],
        "liteprof": [sys.executable, "-m", "liteprof", "report", path],
    }
    check_liteprof = [sys.executable, "-m", "liteprof", "report", "--format", "json", path]
    runs: dict[str, list[dict[str, Any]]] = {"vllm": [], "liteprof": []}
    # What an installed program has: byte-code caches, written by an untimed first run
    # of each command (the children inherit this environment).
    saved = os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    try:
        for cmd in commands.values():
            ctx.run_child("bench.suites.reader", ["rusage", "--", *cmd[:-1], warm])
        for i in range(repeats):
            # Alternating, the order flipped each repeat: load on the machine hits both.
            for who in ("vllm", "liteprof") if i % 2 == 0 else ("liteprof", "vllm"):
                extra = ["--stdout", out_path] if i == 0 else []
                r = ctx.run_child("bench.suites.reader", ["rusage", *extra, "--", *commands[who]])
                if r["rc"] != 0:
                    raise RuntimeError(f"{who} failed with status {r['rc']}")
                runs[who].append(r)
                if i == 0 and who == "vllm":
                    _check_vllm(out_path, gen["sums"])
        r = ctx.run_child(
            "bench.suites.reader", ["rusage", "--stdout", out_path, "--", *check_liteprof]
        )
        if r["rc"] != 0:
            raise RuntimeError(f"liteprof report --format json failed with status {r['rc']}")
        _check_liteprof(out_path, gen["sums"], gen["counts"])
    finally:
        if saved is not None:
            os.environ["PYTHONDONTWRITEBYTECODE"] = saved
        for p in (path, out_path, warm):
            if os.path.exists(p):
                os.unlink(p)
    out: dict[str, Any] = {"lines": lines, "log_bytes": size, "gen_seconds": gen["seconds"]}
    for who, rs in runs.items():
        out[who] = {
            "wall_s": [r["wall_s"] for r in rs],
            "user_s": [r["user_s"] for r in rs],
            "best_wall_s": min(r["wall_s"] for r in rs),
            "peak_rss_bytes": max(r["maxrss_kib"] for r in rs) * 1024,
        }
    v, lp = out["vllm"], out["liteprof"]
    print(
        f"  textlog {lines:,} lines ({size / MIB:.0f} MiB): vLLM best {v['best_wall_s']:.2f} s, "
        f"{v['peak_rss_bytes'] / MIB:.0f} MiB; liteprof best {lp['best_wall_s']:.2f} s, "
        f"{lp['peak_rss_bytes'] / MIB:.0f} MiB ({v['best_wall_s'] / lp['best_wall_s']:.2f}x "
        "faster)",
        flush=True,
    )
    return out


def targets(results: dict[str, Any]) -> list[Target]:
    v, lp = results["vllm"], results["liteprof"]
    lines = results["lines"]
    return [
        Target(
            "textlog_speed",
            f"vLLM text log of {lines:,} lines: vLLM summarize_log time / liteprof report time",
            v["best_wall_s"] / lp["best_wall_s"],
            ">=",
            5.0,
            detail=f"{v['best_wall_s']:.2f} s vs {lp['best_wall_s']:.2f} s",
        ),
        Target(
            "textlog_rss",
            f"vLLM text log of {lines:,} lines: liteprof peak RSS / vLLM summarize_log's",
            lp["peak_rss_bytes"] / v["peak_rss_bytes"],
            "<=",
            1.0,
            detail=f"{lp['peak_rss_bytes'] / MIB:.0f} MiB vs {v['peak_rss_bytes'] / MIB:.0f} MiB",
        ),
    ]


def markdown(results: dict[str, Any]) -> list[str]:
    r = results
    lines = [
        f"## {TITLE}",
        "",
        f"A child writes a vLLM lite-profiler text log of {r['lines']:,} lines "
        f"({r['log_bytes'] / MIB:,.0f} MiB; vLLM's scope names, `Step:*` and `Model:*`, "
        "eight lines per engine step). Then vLLM's `summarize_log` (its logic re-implemented "
        "in `bench/vllm_summarize.py`, run as `python -m bench.vllm_summarize LOG`) and "
        "`python -m liteprof report LOG > /dev/null`, end to end (process start included), "
        "alternating, each run from a fresh helper process that reads its peak RSS with "
        "`getrusage(RUSAGE_CHILDREN)`, after an untimed run of each that writes the byte-code "
        "caches. Both outputs are checked against the sums the writer made.",
        "",
        "| reader | runs (s) | best | peak RSS |",
        "| --- | --- | ---: | ---: |",
    ]
    for who, label in (("vllm", "vLLM `summarize_log`"), ("liteprof", "`liteprof report`")):
        e = r[who]
        lines.append(
            f"| {label} | "
            + ", ".join(f"{w:.2f}" for w in e["wall_s"])
            + f" | {e['best_wall_s']:.2f} s | {e['peak_rss_bytes'] / MIB:,.0f} MiB |"
        )
    v, lp = r["vllm"], r["liteprof"]
    lines += [
        "",
        f"liteprof is {v['best_wall_s'] / lp['best_wall_s']:.2f}x faster, at "
        f"{lp['peak_rss_bytes'] / v['peak_rss_bytes']:.2f}x vLLM's peak RSS.",
        "",
    ]
    return lines
