"""Files: what the log file costs short-lived threads, and what a bounded log
(``LITEPROF_MAX_MB``) costs the hot path, each as ratios measured in one run.

- Short-lived threads: 1000 threads of 5 events each, bytes of log per event; and thread
  start plus join with recording on against off (rounds of 200 threads each, on and off
  interleaved, in one fresh process per backend; each figure the minimum over the rounds).
- Bounded disk: 3M scopes (1M with ``--quick``) in a fresh process with
  ``LITEPROF_MAX_MB=8`` and without, interleaved; per scope, the loop's CPU time (minimum
  over the runs), and the file's size with the bound.
"""

from __future__ import annotations

import glob
import os
import shutil
import sys
import tempfile
import threading
import time
from typing import Any

from ..context import Context
from ..markdown import fmt_ns, fmt_ratio
from ..results import Target

NAME = "files"
TITLE = "Files: short-lived threads and bounded logs"

MAX_MB = 8
BYTES_PER_EVENT = 128
START_RATIO = 1.2
BOUNDED_RATIO = 1.05


def _log_bytes(d: str) -> int:
    return sum(os.path.getsize(p) for p in glob.glob(os.path.join(d, "*.lpf")))


def _threads_child(rounds: int, per_round: int) -> dict[str, Any]:
    os.environ.pop("LITEPROF_MAX_MB", None)
    import liteprof

    def work() -> None:
        for _ in range(5):
            with liteprof.scope("Files:short"):
                pass

    def start_join(n: int) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            t = threading.Thread(target=work)
            t.start()
            t.join()
        return (time.perf_counter() - t0) / n * 1e6

    d = tempfile.mkdtemp(prefix="files-threads-")
    try:
        liteprof.enable(d)
        for _ in range(1000):
            start_join(1)
        liteprof.disable()
        size = _log_bytes(d)
        shutil.rmtree(d)
        off: list[float] = []
        on: list[float] = []
        for r in range(rounds):
            for state in ("off", "on") if r % 2 == 0 else ("on", "off"):
                if state == "on":
                    liteprof.enable(d)
                    on.append(start_join(per_round))
                    liteprof.disable()
                else:
                    off.append(start_join(per_round))
        return {
            "backend": liteprof.BACKEND,
            "bytes_per_event": size / 5000,
            "log_bytes": size,
            "off_us": min(off),
            "on_us": min(on),
            "off_samples": off,
            "on_samples": on,
            "ratio": min(on) / min(off),
        }
    finally:
        liteprof.disable()
        shutil.rmtree(d, ignore_errors=True)


def _hot_child(n: int, max_mb: str) -> dict[str, Any]:
    os.environ.pop("LITEPROF_MAX_MB", None)
    if max_mb:
        os.environ["LITEPROF_MAX_MB"] = max_mb
    import liteprof

    d = tempfile.mkdtemp(prefix="files-hot-")
    try:
        liteprof.enable(d)
        scope = liteprof.scope
        with scope("Files:warm"):
            pass
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(n):
            with scope("Files:hot"):
                pass
        c1, t1 = time.process_time(), time.perf_counter()
        on = liteprof.enabled()
        liteprof.disable()
        return {
            "backend": liteprof.BACKEND,
            "cpu_ns": (c1 - c0) / n * 1e9,
            "wall_ns": (t1 - t0) / n * 1e9,
            "log_bytes": _log_bytes(d),
            "still_recording": on,
        }
    finally:
        shutil.rmtree(d, ignore_errors=True)


def child(argv: list[str]) -> dict[str, Any]:
    """``threads ROUNDS PER_ROUND`` or ``hot N MAX_MB`` (``""``: unbounded)."""
    if argv[0] == "threads":
        return _threads_child(int(argv[1]), int(argv[2]))
    return _hot_child(int(argv[1]), argv[2] if len(argv) > 2 else "")


def run(ctx: Context) -> dict[str, Any]:
    rounds = 6 if ctx.quick else 15
    n = 1_000_000 if ctx.quick else 3_000_000
    runs = 2 if ctx.quick else 4
    out: dict[str, Any] = {"threads": [], "bounded": [], "scopes": n, "max_mb": MAX_MB}
    for backend in ctx.backends:
        pure = backend == "python"
        t = ctx.run_child(__name__, ["threads", str(rounds), "200"], pure=pure)
        print(
            f"  files [{backend}]: {t['bytes_per_event']:.0f} B/event, thread start+join "
            f"{t['off_us']:.1f} -> {t['on_us']:.1f} us ({fmt_ratio(t['ratio'])})",
            flush=True,
        )
        out["threads"].append(t)
        free: list[dict[str, Any]] = []
        bound: list[dict[str, Any]] = []
        for r in range(runs):
            for kind in ("free", "bound") if r % 2 == 0 else ("bound", "free"):
                args = ["hot", str(n), str(MAX_MB) if kind == "bound" else ""]
                (bound if kind == "bound" else free).append(
                    ctx.run_child(__name__, args, pure=pure)
                )
        row = {
            "backend": backend,
            "free_cpu_ns": min(x["cpu_ns"] for x in free),
            "bound_cpu_ns": min(x["cpu_ns"] for x in bound),
            "free_bytes": max(x["log_bytes"] for x in free),
            "bound_bytes": max(x["log_bytes"] for x in bound),
            "still_recording": all(x["still_recording"] for x in bound),
            "samples": {"free": free, "bound": bound},
        }
        row["ratio"] = row["bound_cpu_ns"] / row["free_cpu_ns"]
        print(
            f"  files [{backend}]: {n / 1e6:.0f}M scopes {row['free_cpu_ns']:.1f} ns/scope, "
            f"with LITEPROF_MAX_MB={MAX_MB} {row['bound_cpu_ns']:.1f} ns/scope "
            f"({fmt_ratio(row['ratio'])}), file {row['bound_bytes'] / 2**20:.2f} MiB "
            f"(unbounded {row['free_bytes'] / 2**20:.1f} MiB)",
            flush=True,
        )
        out["bounded"].append(row)
    return out


def _name(backend: str) -> str:
    return "C core" if backend == "c" else "pure-Python twin"


def targets(results: dict[str, Any]) -> list[Target]:
    out = []
    for t in results["threads"]:
        b = t["backend"]
        out.append(
            Target(
                f"files_thread_bytes_{b}",
                f"{_name(b)}: log bytes per event, 1000 threads x 5 events",
                t["bytes_per_event"],
                "<=",
                BYTES_PER_EVENT,
            )
        )
        out.append(
            Target(
                f"files_thread_start_{b}",
                f"{_name(b)}: thread start+join, recording on / off",
                t["ratio"],
                "<=",
                START_RATIO,
            )
        )
    for r in results["bounded"]:
        b = r["backend"]
        out.append(
            Target(
                f"files_bounded_hot_{b}",
                f"{_name(b)}: scope with LITEPROF_MAX_MB={results['max_mb']} / without (CPU)",
                r["ratio"],
                "<=",
                BOUNDED_RATIO,
            )
        )
        out.append(
            Target(
                f"files_bounded_size_{b}",
                f"{_name(b)}: log MiB after {results['scopes'] / 1e6:.0f}M scopes with "
                f"LITEPROF_MAX_MB={results['max_mb']}",
                r["bound_bytes"] / 2**20,
                "<=",
                float(results["max_mb"]),
            )
        )
    return out


def summary(results: dict[str, Any]) -> list[str]:
    lines = ["files:"]
    for t in results["threads"]:
        lines.append(
            f"  [{t['backend']}] 1000 threads x 5 events: {t['bytes_per_event']:.0f} B/event; "
            f"start+join {t['off_us']:.1f} / {t['on_us']:.1f} us ({fmt_ratio(t['ratio'])})"
        )
    for r in results["bounded"]:
        lines.append(
            f"  [{r['backend']}] hot path {r['free_cpu_ns']:.1f} / {r['bound_cpu_ns']:.1f} "
            f"ns ({fmt_ratio(r['ratio'])}), bounded file {r['bound_bytes'] / 2**20:.2f} MiB"
        )
    return lines


def markdown(results: dict[str, Any]) -> list[str]:
    lines = [f"## {TITLE}", ""]
    lines.append(
        "1000 threads that record 5 events each: bytes of log per event. Thread start plus "
        "join with recording on and off, rounds of 200 threads interleaved in one process, "
        "each the minimum over the rounds."
    )
    lines.append("")
    lines.append("| backend | bytes/event | start+join off | on | on / off |")
    lines.append("| --- | ---: | ---: | ---: | ---: |")
    for t in results["threads"]:
        lines.append(
            f"| {t['backend']} | {t['bytes_per_event']:.0f} | {t['off_us']:.1f} µs | "
            f"{t['on_us']:.1f} µs | {fmt_ratio(t['ratio'])} |"
        )
    lines.append("")
    lines.append(
        f"{results['scopes'] / 1e6:.0f}M scopes in a fresh process, with "
        f"`LITEPROF_MAX_MB={results['max_mb']}` and without, interleaved: the loop's CPU "
        "time per scope (minimum over the runs; the bound's folds included), and the log's "
        "size."
    )
    lines.append("")
    lines.append(
        "| backend | unbounded | bounded | bounded / unbounded | log, bounded | unbounded |"
    )
    lines.append("| --- | ---: | ---: | ---: | ---: | ---: |")
    for r in results["bounded"]:
        lines.append(
            f"| {r['backend']} | {fmt_ns(r['free_cpu_ns'])} ns | {fmt_ns(r['bound_cpu_ns'])} ns "
            f"| {fmt_ratio(r['ratio'])} | {r['bound_bytes'] / 2**20:.2f} MiB | "
            f"{r['free_bytes'] / 2**20:.1f} MiB |"
        )
    lines.append("")
    return lines


if __name__ == "__main__":  # pragma: no cover - a quick look without the runner
    print(child(sys.argv[1:]))
