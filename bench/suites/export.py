"""Export: ``python -m liteprof export LOGDIR --format perfetto -o FILE``, end to end.

A child records N events with the C core (a step loop: ``Step:Model`` around two
``Model:Forward``, the first around ``Model:Inner``); the export is timed from a fresh
helper process (``reader``'s ``rusage`` child), which also reads its peak RSS. Two sizes,
so that the peak RSS of the larger over the smaller's shows that the streamed export's
memory does not grow with the number of events.
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import sys
import time
from typing import Any

from ..context import Context
from ..results import Target

NAME = "export"
TITLE = "Export to Perfetto"
MIB = 1024 * 1024


def _child_gen(argv: list[str]) -> dict[str, Any]:
    """Record ``--events`` events (nested, four per step) into ``--dir``."""
    ap = argparse.ArgumentParser(prog="bench.suites.export gen")
    ap.add_argument("--events", type=int, required=True)
    ap.add_argument("--dir", required=True)
    args = ap.parse_args(argv)
    import liteprof

    liteprof.enable(args.dir)
    step, fwd, inner = (liteprof.Scope(n) for n in ("Step:Model", "Model:Forward", "Model:Inner"))
    t0 = time.perf_counter()
    for _ in itertools.repeat(None, args.events // 4):
        with step:
            with fwd:
                with inner:
                    pass
            with fwd:
                pass
    for _ in range(args.events % 4):
        with step:
            pass
    liteprof.disable()
    return {"seconds": time.perf_counter() - t0, "backend": liteprof.BACKEND}


def child(argv: list[str]) -> dict[str, Any]:
    if argv[:1] == ["gen"]:
        return _child_gen(argv[1:])
    raise SystemExit(f"bench.suites.export: unknown child {argv[:1]}")


def run(ctx: Context) -> dict[str, Any]:
    """2M and 10M events (0.5M and 2M with --quick), best of three runs each."""
    sizes = [500_000, 2_000_000] if ctx.quick else [2_000_000, 10_000_000]
    out: dict[str, Any] = {"sizes": [], "notes": []}
    for events in sizes:
        need = events * (32 + 40) * 2 + 256 * MIB
        free = shutil.disk_usage(ctx.tmpdir).free
        if free < need:
            note = f"{events:,} events skipped: {free / MIB:,.0f} MiB free under {ctx.tmpdir}"
            out["notes"].append(note)
            print("  export: " + note, flush=True)
            continue
        d = os.path.join(ctx.tmpdir, f"export-{events}")
        trace = os.path.join(ctx.tmpdir, f"export-{events}.pftrace")
        gen = ctx.run_child(__name__, ["gen", "--events", str(events), "--dir", d])
        if hasattr(os, "sync"):
            os.sync()
        log_bytes = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
        cmd = [sys.executable, "-m", "liteprof", "export", d, "--format", "perfetto", "-o", trace]
        runs = []
        for _ in range(3):
            r = ctx.run_child("bench.suites.reader", ["rusage", "--", *cmd])
            if r["rc"] != 0:
                raise RuntimeError(f"liteprof export failed with status {r['rc']}")
            runs.append(r)
        size = os.path.getsize(trace)
        if size < 16 * events:  # every event is a begin and an end packet
            raise RuntimeError(f"a {size}-byte trace for {events} events")
        best = min(r["wall_s"] for r in runs)
        entry = {
            "events": events,
            "log_bytes": log_bytes,
            "trace_bytes": size,
            "bytes_per_event": size / events,
            "gen_backend": gen["backend"],
            "wall_s": [r["wall_s"] for r in runs],
            "best_wall_s": best,
            "events_per_s": events / best,
            "peak_rss_bytes": max(r["maxrss_kib"] for r in runs) * 1024,
        }
        out["sizes"].append(entry)
        print(
            f"  export {events:,} events: {best:.2f} s ({events / best / 1e6:.2f} M events/s), "
            f"{size / events:.1f} B/event, peak RSS {entry['peak_rss_bytes'] / MIB:.0f} MiB",
            flush=True,
        )
        shutil.rmtree(d, ignore_errors=True)
        os.unlink(trace)
    return out


def targets(results: dict[str, Any]) -> list[Target]:
    """Speed and size on the larger size; the peak RSS of the larger over the smaller."""
    sizes = results.get("sizes", [])
    big = sizes[-1] if sizes else None
    rss = sizes[-1]["peak_rss_bytes"] / sizes[0]["peak_rss_bytes"] if len(sizes) >= 2 else None
    label = f"{big['events']:,}" if big else "the larger"
    return [
        Target(
            "export_speed",
            f"export to perfetto: events/s end to end on {label} events (M events/s)",
            big["events_per_s"] / 1e6 if big else None,
            ">=",
            5.0,
        ),
        Target(
            "export_bytes",
            f"export to perfetto: trace bytes per event, {label} events",
            round(big["bytes_per_event"], 2) if big else None,
            "<=",
            40.0,
        ),
        Target(
            "export_rss",
            "export to perfetto: peak RSS, larger log / smaller log (flat: memory does not "
            "grow with the events)",
            rss,
            "<=",
            1.25,
            detail=", ".join(f"{e['peak_rss_bytes'] / MIB:.0f} MiB" for e in sizes),
        ),
    ]


def markdown(results: dict[str, Any]) -> list[str]:
    lines = [f"## {TITLE}", ""]
    lines.append(
        "Logs written by a child process with the C core (a step loop, three levels of "
        "nesting); then `python -m liteprof export LOGDIR --format perfetto -o FILE`, end "
        "to end (process start included), each run from a fresh helper process that reads "
        "its peak RSS with `getrusage(RUSAGE_CHILDREN)`. events/s from the best of three."
    )
    lines.append("")
    lines.append("| events | log | trace | bytes/event | runs (s) | events/s | peak RSS |")
    lines.append("| ---: | ---: | ---: | ---: | --- | ---: | ---: |")
    for e in results.get("sizes", []):
        lines.append(
            f"| {e['events']:,} | {e['log_bytes'] / MIB:,.0f} MiB | "
            f"{e['trace_bytes'] / MIB:,.0f} MiB | {e['bytes_per_event']:.2f} | "
            + ", ".join(f"{w:.2f}" for w in e["wall_s"])
            + f" | {e['events_per_s'] / 1e6:.2f} M/s | {e['peak_rss_bytes'] / MIB:,.0f} MiB |"
        )
    for n in results.get("notes", []):
        lines.append(f"\n- {n}")
    lines.append("")
    return lines


def summary(results: dict[str, Any]) -> list[str]:
    return [
        f"export {e['events']:,}: {e['events_per_s'] / 1e6:.2f} M events/s, "
        f"{e['bytes_per_event']:.1f} B/event, {e['peak_rss_bytes'] / MIB:.0f} MiB"
        for e in results.get("sizes", [])
    ]
