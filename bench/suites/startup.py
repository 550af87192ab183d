"""Startup: what ``import liteprof`` adds to a process that starts, against ``python -c
pass``, in one run.

Every process pays it, recording or not: an inference server's workers, a test suite's
subprocesses, a CLI. Each case is a fresh interpreter (``python -c CODE``); the cases are
interleaved, run after run, so that load on the machine hits all of them alike; each
case's figure is its minimum (and median) wall time over the runs.
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

NAME = "startup"
TITLE = "Startup: `import liteprof` against `python -c pass`"

LIMIT = 1.5

# (key, label, code, record): ``record`` sets LITEPROF_LOG for that case.
CASES = (
    ("pass", "`python -c pass`", "pass", False),
    ("import", "`import liteprof`", "import liteprof", False),
    ("compat", "`import liteprof.compat.vllm`", "import liteprof.compat.vllm", False),
    ("import_pure", "`import liteprof`, `LITEPROF_PURE=1`", "import liteprof", False),
    ("import_log", "`import liteprof`, `LITEPROF_LOG` set (recording on)", "import liteprof", True),
)


def _env(record_dir: str | None, pure: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LITEPROF_", "VLLM_"))}
    # What an installed program has: byte-code caches (the first run writes them).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if record_dir is not None:
        env["LITEPROF_LOG"] = record_dir
    if pure:
        env["LITEPROF_PURE"] = "1"
    return env


def run(ctx: Context) -> dict[str, Any]:
    runs = 10 if ctx.quick else 40
    log_dir = tempfile.mkdtemp(prefix="startup-", dir=ctx.tmpdir)
    envs = {
        key: _env(log_dir if record else None, key.endswith("_pure"))
        for key, _label, _code, record in CASES
    }
    codes = {key: code for key, _label, code, _record in CASES}
    samples: dict[str, list[float]] = {key: [] for key in codes}
    try:
        for i in range(runs + 1):  # the first round warms the caches and is dropped
            order = list(codes)
            order = order[i % len(order) :] + order[: i % len(order)]  # rotated
            for key in order:
                t0 = time.perf_counter()
                subprocess.run(
                    [sys.executable, "-c", codes[key]],
                    env=envs[key],
                    check=True,
                    stdin=subprocess.DEVNULL,
                )
                if i:
                    samples[key].append((time.perf_counter() - t0) * 1e3)
    finally:
        shutil.rmtree(log_dir, ignore_errors=True)
    base_min = min(samples["pass"])
    base_med = statistics.median(samples["pass"])
    rows = []
    for key, label, code, _record in CASES:
        lo, med = min(samples[key]), statistics.median(samples[key])
        rows.append(
            {
                "key": key,
                "label": label,
                "code": code,
                "min_ms": lo,
                "median_ms": med,
                "ratio_min": lo / base_min,
                "ratio_median": med / base_med,
                "added_ms": lo - base_min,
            }
        )
    return {"runs": runs, "python": sys.executable, "rows": rows, "samples": samples}


def _row(results: dict[str, Any], key: str) -> dict[str, Any] | None:
    return next((r for r in results["rows"] if r["key"] == key), None)


def targets(results: dict[str, Any]) -> list[Target]:
    out = []
    for key, label in (
        ("import", "startup: `import liteprof` / `python -c pass` (min of runs)"),
        ("compat", "startup: `import liteprof.compat.vllm` / `python -c pass` (min of runs)"),
    ):
        row = _row(results, key)
        out.append(Target(f"startup_{key}", label, row["ratio_min"] if row else None, "<=", LIMIT))
    return out


def summary(results: dict[str, Any]) -> list[str]:
    lines = [f"startup ({results['runs']} runs of each, interleaved):"]
    for r in results["rows"]:
        lines.append(
            f"  {r['key']:<12} min {r['min_ms']:6.2f} ms  median {r['median_ms']:6.2f} ms  "
            f"{fmt_ratio(r['ratio_min'])} (median {fmt_ratio(r['ratio_median'])})"
        )
    return lines


def markdown(results: dict[str, Any]) -> list[str]:
    lines = [f"## {TITLE}", ""]
    lines.append(
        f"Each case is a fresh `python -c CODE` ({results['runs']} runs of each, interleaved "
        "and rotated, after one warm-up round that writes the byte-code caches); wall time "
        "of the whole process, minimum and median over the runs. Ratios are against "
        "`python -c pass` in the same run."
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
    lines.append(
        "With `LITEPROF_LOG` set, `enable()` runs at import: it imports the writer and "
        "`threading` (so that the first event pays no import inside a scope) and starts "
        "the recorder's clock."
    )
    lines.append("")
    return lines
