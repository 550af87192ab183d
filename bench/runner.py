"""The command line: choose the suites, run them in one process, print, write the files.

python -m bench [--quick] [--suite NAME]... [--skip NAME]... [--output docs/BENCHMARKS.md]
                [--json FILE] [--previous FILE] [--repeats N] [--tmpdir DIR]
"""

from __future__ import annotations

import argparse
import datetime
import os
import tempfile
import time
from typing import Any

from . import markdown, results
from .context import Context
from .suites import SUITES

DESCRIPTION = "liteprof benchmark suite: one command, one process, ratios measured side by side."


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The options (bench/README.md)."""
    ap = argparse.ArgumentParser(prog="python -m bench", description=DESCRIPTION)
    ap.add_argument("--quick", action="store_true", help="fewer repeats, smaller logs")
    ap.add_argument("--output", metavar="MD", help="write the Markdown results here")
    ap.add_argument("--json", metavar="FILE", help="also write the raw results as JSON")
    ap.add_argument(
        "--previous",
        metavar="FILE",
        help="JSON of an earlier run: adds a table of both runs' headline ratios",
    )
    ap.add_argument("--repeats", type=int, default=0, help="repeats per row (default 9; 3)")
    ap.add_argument(
        "--suite",
        action="append",
        default=[],
        choices=list(SUITES),
        metavar="NAME",
        help=f"run only this suite (repeatable; those it needs run too): {', '.join(SUITES)}",
    )
    ap.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=list(SUITES),
        metavar="NAME",
        help="skip this suite (repeatable)",
    )
    ap.add_argument("--no-reader", action="store_true", help="the same as --skip reader")
    ap.add_argument("--tmpdir", help="where the logs go (default: the system's temp dir)")
    args = ap.parse_args(argv)
    if args.no_reader and "reader" not in args.skip:
        args.skip.append("reader")
    if args.repeats < 0:
        ap.error("--repeats must be positive")
    return args


def select(wanted: list[str], skip: list[str]) -> tuple[list[str], list[str]]:
    """The suites to run, in registry order, and notes on what was left out and why."""
    chosen = set(wanted or SUITES) - set(skip)
    notes = [f"{name} skipped (--skip)" for name in SUITES if name in skip]
    changed = True
    while changed:  # pull in what the chosen ones need; drop those whose need is skipped
        changed = False
        for name in sorted(chosen):
            for need in getattr(SUITES[name], "NEEDS", ()):
                if need in skip:
                    chosen.discard(name)
                    notes.append(f"{name} skipped: it needs {need}, which is skipped")
                    changed = True
                    break
                if need not in chosen:
                    chosen.add(need)
                    changed = True
    return [name for name in SUITES if name in chosen], notes


def command_line(args: argparse.Namespace) -> str:
    """The command that reproduces this run's selection (for the page's first line)."""
    parts = ["python -m bench"]
    if args.quick:
        parts.append("--quick")
    parts += [f"--suite {s}" for s in args.suite]
    parts += [f"--skip {s}" for s in args.skip]
    return " ".join(parts)


def main(argv: list[str] | None = None) -> int:
    """Run the chosen suites; always 0 (a missed target is information)."""
    args = parse_args(argv)
    names, notes = select(args.suite, args.skip)
    for var in ("LITEPROF_LOG", "LITEPROF_PROCESSES"):
        os.environ.pop(var, None)
    started = time.perf_counter()
    info: dict[str, Any] = {
        "machine": results.machine_info(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "quick": args.quick,
        "suites": names,
    }
    m = info["machine"]
    print(
        f"machine: {m['cpu']}, {m['cores']} cores; {m['python']}; load {m['load_avg']}", flush=True
    )
    raw: dict[str, dict[str, Any]] = {}
    tmp_parent = args.tmpdir or tempfile.gettempdir()
    with tempfile.TemporaryDirectory(prefix="liteprof-bench-", dir=tmp_parent) as tmpdir:
        import liteprof
        from liteprof import testing

        backends = testing.available_backends()
        info.update(
            {
                "liteprof_version": liteprof.__version__,
                "backend": liteprof.BACKEND,
                "backends": backends,
                "liteprof_path": os.path.dirname(liteprof.__file__),
            }
        )
        print(
            f"liteprof {liteprof.__version__} from {info['liteprof_path']}; backends "
            f"{backends}; suites {', '.join(names)}",
            flush=True,
        )
        ctx = Context(
            quick=args.quick,
            repeats=args.repeats or (3 if args.quick else 9),
            tmpdir=tmpdir,
            liteprof=liteprof,
            testing=testing,
            backends=backends,
            results=raw,
            notes=notes,
        )
        info["repeats"] = ctx.repeats
        if "c" not in backends:
            ctx.notes.append("The C core is not built here: the C rows are absent.")
        for name in names:
            print(f"{SUITES[name].TITLE}...", flush=True)
            raw[name] = SUITES[name].run(ctx)

        info["elapsed_s"] = time.perf_counter() - started
        if hasattr(os, "getloadavg"):
            info["machine"]["load_avg_end"] = list(os.getloadavg())

    targets = [t.as_dict() for name in names for t in SUITES[name].targets(raw[name])]
    res = {"info": info, "targets": targets, "notes": ctx.notes, "suites": raw}
    for name in names:
        summary = getattr(SUITES[name], "summary", None)
        if summary is not None:
            print()
            print("\n".join(summary(raw[name])))
    print()
    print("targets:")
    for t in targets:
        print(results.target_line(t))
    print(flush=True)
    print(f"total {info['elapsed_s']:.0f} s")
    previous = results.load(args.previous) if args.previous else None
    if args.json:
        results.dump(res, args.json)
    if args.output:
        sections = [SUITES[name].markdown(raw[name]) for name in names]
        markdown.write(args.output, res, sections, previous, command_line(args))
        print(f"wrote {args.output}")
    return 0
