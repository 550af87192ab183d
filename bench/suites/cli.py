"""The command line's own cost: ``liteprof run -- python -c pass`` against ``python -c
pass``, in one run.

``liteprof run`` sits between a user and every command they profile, so what it adds
(its interpreter, its imports, starting the command, looking for logs, removing its
temporary folder) is paid per run, also when nothing records. Each case is a fresh
process; the cases are interleaved and rotated, run after run, so that load on the machine
hits all of them alike; each case's figure is its minimum (and median) wall time.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from ..context import Context
from ..markdown import fmt_ratio
from ..results import Target

NAME = "cli"
TITLE = "Command line: `liteprof run -- python -c pass` against `python -c pass`"

# The floor is two interpreters (liteprof's and the command's), 2.0x. Above it: the
# console script's own `import re` (with enum, about 0.5x, which argparse needs anyway),
# argparse and its locale, `import liteprof` and the command modules, the spawn, the folder.
LIMIT = 4.0


def _liteprof() -> list[str]:
    """The console script beside this interpreter (what a user runs), else ``-m``."""
    script = os.path.join(os.path.dirname(sys.executable), "liteprof")
    return [script] if os.access(script, os.X_OK) else [sys.executable, "-m", "liteprof"]


def _cases() -> list[tuple[str, str, list[str]]]:
    lp = _liteprof()
    bare = [sys.executable, "-c", "pass"]
    return [
        ("pass", "`python -c pass`", bare),
        ("version", "`liteprof --version`", [*lp, "--version"]),
        ("run", "`liteprof run -- python -c pass`", [*lp, "run", "--", *bare]),
    ]


def run(ctx: Context) -> dict[str, Any]:
    runs = 10 if ctx.quick else 40
    cases = _cases()
    temp = tempfile.mkdtemp(prefix="cli-", dir=ctx.tmpdir)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LITEPROF_", "VLLM_"))}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["TMPDIR"] = temp  # where liteprof run makes (and removes) its folder
    samples: dict[str, list[float]] = {key: [] for key, _label, _cmd in cases}
    try:
        for i in range(runs + 1):  # the first round warms the caches and is dropped
            order = cases[i % len(cases) :] + cases[: i % len(cases)]
            for key, _label, cmd in order:
                t0 = time.perf_counter()
                subprocess.run(
                    cmd,
                    env=env,
                    check=True,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                if i:
                    samples[key].append((time.perf_counter() - t0) * 1e3)
        left = os.listdir(temp)
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    base_min, base_med = min(samples["pass"]), statistics.median(samples["pass"])
    rows = []
    for key, label, cmd in cases:
        lo, med = min(samples[key]), statistics.median(samples[key])
        rows.append(
            {
                "key": key,
                "label": label,
                "cmd": cmd,
                "min_ms": lo,
                "median_ms": med,
                "ratio_min": lo / base_min,
                "ratio_median": med / base_med,
                "added_ms": lo - base_min,
            }
        )
    return {"runs": runs, "rows": rows, "samples": samples, "folders_left": len(left)}


def _row(results: dict[str, Any], key: str) -> dict[str, Any] | None:
    return next((r for r in results["rows"] if r["key"] == key), None)


def targets(results: dict[str, Any]) -> list[Target]:
    row = _row(results, "run")
    return [
        Target(
            "cli_run_pass",
            "cli: `liteprof run -- python -c pass` / `python -c pass` (min of runs)",
            row["ratio_min"] if row else None,
            "<=",
            LIMIT,
        )
    ]


def summary(results: dict[str, Any]) -> list[str]:
    lines = [f"cli ({results['runs']} runs of each, interleaved):"]
    for r in results["rows"]:
        lines.append(
            f"  {r['key']:<8} min {r['min_ms']:6.2f} ms  median {r['median_ms']:6.2f} ms  "
            f"{fmt_ratio(r['ratio_min'])} (median {fmt_ratio(r['ratio_median'])})  "
            f"added {r['added_ms']:+.2f} ms"
        )
    return lines


def markdown(results: dict[str, Any]) -> list[str]:
    lines = [f"## {TITLE}", ""]
    lines.append(
        f"Each case is a fresh process ({results['runs']} runs of each, interleaved and "
        "rotated, after one warm-up round); wall time of the whole process, minimum and "
        "median over the runs, against `python -c pass` in the same run. The command "
        "records nothing, so this is what `liteprof run` itself costs; its floor is two "
        "interpreters (2.00x)."
    )
    lines.append("")
    lines.append("| case | min ms | median ms | ratio (min) | ratio (median) | added (min) |")
    lines.append("| --- | ---: | ---: | ---: | ---: | ---: |")
    for r in results["rows"]:
        lines.append(
            f"| {r['label']} | {r['min_ms']:.2f} | {r['median_ms']:.2f} | "
            f"{fmt_ratio(r['ratio_min'])} | {fmt_ratio(r['ratio_median'])} | "
            f"{r['added_ms']:+.2f} ms |"
        )
    lines.append("")
    if results.get("folders_left"):
        lines.append(f"**{results['folders_left']} temporary folders were left behind.**")
        lines.append("")
    return lines
