"""Reader: a child records N events with the C core, then ``python -m liteprof report
--format json LOGDIR > /dev/null`` is timed end to end (process start included) from a
fresh helper process, which also reads the report's peak RSS
(``getrusage(RUSAGE_CHILDREN)``). The first run's JSON is checked for the record count.

Each report run is paired with a run of ``bench/numpy_baseline.py`` on the same log, timed
the same way (a fresh process, end to end): a plain numpy program that computes only
counts, sums and percentiles, the floor the reader must stay under (``reader_vs_numpy``).
The two alternate, so that a noisy moment of the machine falls on both."""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import subprocess
import sys
import time
from typing import Any

from ..context import Context
from ..results import Target

NAME = "reader"
TITLE = "Reader"
MIB = 1024 * 1024
NUMPY_BASELINE = os.path.join(os.path.dirname(os.path.dirname(__file__)), "numpy_baseline.py")


def _child_gen(argv: list[str]) -> dict[str, Any]:
    """Record ``--events`` events (four predeclared scopes in turn, flat) into ``--dir``."""
    ap = argparse.ArgumentParser(prog="bench.suites.reader gen")
    ap.add_argument("--events", type=int, required=True)
    ap.add_argument("--dir", required=True)
    args = ap.parse_args(argv)
    import liteprof

    liteprof.enable(args.dir)
    a, b, c, d = (liteprof.Scope(f"Reader:{x}") for x in ("A", "B", "C", "D"))
    t0 = time.perf_counter()
    for _ in itertools.repeat(None, args.events // 4):
        with a:
            pass
        with b:
            pass
        with c:
            pass
        with d:
            pass
    for _ in range(args.events % 4):
        with a:
            pass
    path = liteprof.log_path()
    liteprof.disable()
    dt = time.perf_counter() - t0
    return {"path": path, "seconds": dt, "backend": liteprof.BACKEND}


def _child_rusage(argv: list[str]) -> dict[str, Any]:
    """Run the command once, from a fresh process: wall time and the child's peak RSS."""
    import resource

    ap = argparse.ArgumentParser(prog="bench.suites.reader rusage")
    ap.add_argument("--stdout")
    ap.add_argument("cmd", nargs="+")
    args = ap.parse_args(argv)
    out: Any = open(args.stdout, "w") if args.stdout else subprocess.DEVNULL
    t0 = time.perf_counter()
    rc = subprocess.call(args.cmd, stdout=out)
    wall = time.perf_counter() - t0
    if args.stdout:
        out.close()
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "rc": rc,
        "wall_s": wall,
        "maxrss_kib": ru.ru_maxrss,
        "user_s": ru.ru_utime,
        "sys_s": ru.ru_stime,
    }


def child(argv: list[str]) -> dict[str, Any]:
    """``gen ...`` or ``rusage [--stdout FILE] -- CMD...``."""
    if argv[:1] == ["gen"]:
        return _child_gen(argv[1:])
    if argv[:1] == ["rusage"]:
        return _child_rusage(argv[1:])
    raise SystemExit(f"bench.suites.reader: unknown child {argv[:1]}")


def _compile_package(init: str) -> None:
    """Byte-compile liteprof where it was imported from, as ``pip install`` does: from a
    checkout (an editable install) with ``PYTHONDONTWRITEBYTECODE`` set, every timed run
    would otherwise compile every module again, which no installed copy does (numpy,
    which the baseline imports, is compiled at its install)."""
    import compileall

    try:
        compileall.compile_dir(os.path.dirname(init), quiet=2)
    except OSError:
        pass  # a read-only install: compiled at its install, or slower for everyone


def run(ctx: Context) -> dict[str, Any]:
    """10M and 50M events (1M and 5M with --quick); a size without the disk space for it is
    skipped with a note."""
    tmpdir = ctx.tmpdir
    _compile_package(ctx.liteprof.__file__)
    sizes = [1_000_000, 5_000_000] if ctx.quick else [10_000_000, 50_000_000]
    runs_for = {sizes[0]: 5, sizes[1]: 3}
    out: dict[str, Any] = {"sizes": [], "notes": []}
    for events in sizes:
        free = shutil.disk_usage(tmpdir).free
        # a 50M-event log is 1.6 GB: ask for 5 GB free; smaller logs need less
        need = 5 * 1024**3 if events * 32 >= 1024**3 else 3 * events * 32 + 512 * MIB
        if free < need:
            note = (
                f"{events:,} events skipped: {free / 1024**3:.1f} GB free under {tmpdir}"
                f" (< {need / 1024**3:.1f} GB)"
            )
            out["notes"].append(note)
            print("  reader: " + note, flush=True)
            continue
        d = os.path.join(tmpdir, f"reader-{events}")
        gen = ctx.run_child(__name__, ["gen", "--events", str(events), "--dir", d])
        path = gen["path"]
        if hasattr(os, "sync"):
            os.sync()  # write the new log back now, not while the reader is timed
        size = os.path.getsize(path)
        json_out = os.path.join(tmpdir, "report.json")
        np_out = os.path.join(tmpdir, "numpy-baseline.json")
        cmd = [sys.executable, "-m", "liteprof", "report", "--format", "json", d]
        np_cmd = [sys.executable, NUMPY_BASELINE, d]
        runs, np_runs = [], []
        for i in range(runs_for[events]):
            extra = ["--stdout", json_out] if i == 0 else []
            r = ctx.run_child(__name__, ["rusage", *extra, "--", *cmd])
            if r["rc"] != 0:
                raise RuntimeError(f"liteprof report failed with status {r['rc']}")
            runs.append(r)
            np_extra = ["--stdout", np_out] if i == 0 else []
            r = ctx.run_child(__name__, ["rusage", *np_extra, "--", *np_cmd])
            if r["rc"] != 0:
                raise RuntimeError(f"the numpy baseline failed with status {r['rc']}")
            np_runs.append(r)
            if i == 0:
                with open(json_out) as fh:
                    report = json.load(fh)
                if report.get("records") != events:
                    raise RuntimeError(
                        f"report read {report.get('records')} records, expected {events}"
                    )
                with open(np_out) as fh:
                    counted = sum(row["count"] for row in json.load(fh).values())
                if counted != events:
                    raise RuntimeError(f"the numpy baseline read {counted} events, not {events}")
        best = min(r["wall_s"] for r in runs)
        np_best = min(r["wall_s"] for r in np_runs)
        entry = {
            "events": events,
            "log_bytes": size,
            "bytes_per_event": size / events,
            "gen_seconds": gen["seconds"],
            "gen_backend": gen["backend"],
            "wall_s": [r["wall_s"] for r in runs],
            "best_wall_s": best,
            "events_per_s": events / best,
            "peak_rss_bytes": max(r["maxrss_kib"] for r in runs) * 1024,
            "user_s": [r["user_s"] for r in runs],
            "sys_s": [r["sys_s"] for r in runs],
            "numpy_wall_s": [r["wall_s"] for r in np_runs],
            "numpy_best_wall_s": np_best,
            "numpy_peak_rss_bytes": max(r["maxrss_kib"] for r in np_runs) * 1024,
            "vs_numpy": best / np_best,
        }
        out["sizes"].append(entry)
        print(
            f"  reader {events:,} events: log {size / MIB:.0f} MiB "
            f"({size / events:.1f} B/event), best {best:.2f} s "
            f"({events / best / 1e6:.2f} M events/s), peak RSS "
            f"{entry['peak_rss_bytes'] / MIB:.0f} MiB; numpy baseline best {np_best:.2f} s "
            f"(report / numpy {best / np_best:.2f})",
            flush=True,
        )
        shutil.rmtree(d, ignore_errors=True)
    return out


def targets(results: dict[str, Any]) -> list[Target]:
    """Speed and the ratio to the numpy baseline on the first size, peak RSS on every
    size, bytes per event."""
    sizes = results.get("sizes", [])
    first = sizes[0] if sizes else None
    out = [
        Target(
            "reader_speed",
            f"reader: events/s end to end on {first['events'] if first else 0:,} events "
            "(M events/s)",
            first["events_per_s"] / 1e6 if first else None,
            ">=",
            10.0,
        ),
        Target(
            "reader_vs_numpy",
            f"reader: end-to-end time / the numpy baseline's, "
            f"{first['events'] if first else 0:,} events",
            first["vs_numpy"] if first and "vs_numpy" in first else None,
            "<=",
            0.6,
            detail=(
                f"{first['best_wall_s']:.2f} s vs {first['numpy_best_wall_s']:.2f} s"
                if first and "vs_numpy" in first
                else ""
            ),
        ),
    ]
    for entry in sizes:
        limit = 2 * entry["log_bytes"] + 200 * MIB
        out.append(
            Target(
                f"reader_rss_{entry['events']}",
                f"reader: peak RSS / (2x log size + 200 MiB), {entry['events']:,} events",
                entry["peak_rss_bytes"] / limit,
                "<=",
                1.0,
                detail=f"{entry['peak_rss_bytes'] / MIB:.0f} MiB vs {limit / MIB:.0f} MiB",
            )
        )
    if len(sizes) >= 2:
        small, large = sizes[0], sizes[-1]
        # What each event adds to the file, from two sizes of the same program: the fixed
        # part (the 4 KiB header, the metadata block, the unused rest of the first
        # threads' shared arena, ~60 KiB) cancels out. Judged at 0.01 B: one 32-byte
        # slot per event plus block headers (~0.002 B).
        marginal = (large["log_bytes"] - small["log_bytes"]) / (large["events"] - small["events"])
        fixed = small["log_bytes"] - 32 * small["events"]
        out.append(
            Target(
                "log_bytes",
                f"log bytes per added event, {small['events']:,} to {large['events']:,} "
                "events (to 0.01 B)",
                round(marginal, 2),
                "<=",
                32.0,
                detail=f"{marginal:.4f} B/event; fixed part {fixed / 1024:.0f} KiB "
                f"({small['bytes_per_event']:.3f} B/event at {small['events']:,})",
            )
        )
    else:
        out.append(Target("log_bytes", "log bytes per added event", None, "<=", 32.0))
    return out


def markdown(results: dict[str, Any]) -> list[str]:
    """The section's table and notes."""
    lines = [f"## {TITLE}", ""]
    lines.append(
        "Logs written by a child process with the C core (four predeclared scopes in a "
        "loop, flat); then `python -m liteprof report --format json LOGDIR > /dev/null`, "
        "end to end (process start included), each run from a fresh helper process that "
        "reads the report's peak RSS with `getrusage(RUSAGE_CHILDREN)`. The log is in the "
        "page cache (just written, then `os.sync()`), liteprof byte-compiled (as an install "
        "is). events/s from the best run. Each run "
        "is paired with one of `bench/numpy_baseline.py` on the same log, timed the same "
        "way: a plain numpy program that reads the files whole and computes per-name "
        "counts, sums and a sort for percentiles, and nothing else (no names, threads, "
        "parents, wall clock, call tree or damage checks); report / numpy compares the "
        "best runs."
    )
    lines.append("")
    lines.append(
        "| program | events | log size | bytes/event | runs (s) | events/s | report / numpy "
        "| peak RSS | RSS limit |"
    )
    lines.append("| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |")
    for e in results.get("sizes", []):
        limit = 2 * e["log_bytes"] + 200 * MIB
        ratio = f"{e['vs_numpy']:.2f}" if "vs_numpy" in e else "-"
        lines.append(
            f"| liteprof report | {e['events']:,} | {e['log_bytes'] / MIB:,.0f} MiB | "
            f"{e['bytes_per_event']:.2f} | "
            + ", ".join(f"{w:.2f}" for w in e["wall_s"])
            + f" | {e['events_per_s'] / 1e6:.2f} M/s | {ratio} "
            f"| {e['peak_rss_bytes'] / MIB:,.0f} MiB | {limit / MIB:,.0f} MiB |"
        )
        if "numpy_wall_s" in e:
            lines.append(
                f"| numpy baseline | {e['events']:,} | | | "
                + ", ".join(f"{w:.2f}" for w in e["numpy_wall_s"])
                + f" | {e['events'] / e['numpy_best_wall_s'] / 1e6:.2f} M/s | 1.00 "
                f"| {e['numpy_peak_rss_bytes'] / MIB:,.0f} MiB | |"
            )
    for n in results.get("notes", []):
        lines.append(f"\n- {n}")
    lines.append("")
    return lines
