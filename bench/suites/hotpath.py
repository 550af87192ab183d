"""Hot path, one process: floors, liteprof (both backends, enabled and after
``disable()``), the seed's recorder and the peers, all interleaved in every repeat.

The asyncio rows are measured here too (in the same repeats as the sync rows they are
compared with); the ``asyncio`` suite draws them.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable

from ..context import Context
from ..kernels import Row, Timer, stat_med, stat_min
from ..markdown import fmt_ns, fmt_ratio
from ..peers import setup_peers
from ..results import Target
from ..rows import (
    ASYNC_EMPTY,
    ASYNC_NULL,
    ASYNC_SCOPE,
    DISABLED_ROWS,
    ENABLED_ROWS,
    FLOOR_ROWS,
    SCOPE_NAME,
    backend_prefix,
    floor_namespace,
    liteprof_namespace,
)

NAME = "hotpath"
TITLE = "Hot path (one process)"


def run(ctx: Context) -> dict[str, Any]:
    """Every repeat runs every phase once (their order rotated), each phase its rows."""
    import asyncio

    from ..seed_recorder import SeedRecorder

    lp = ctx.liteprof
    timer = Timer(ctx.quick)
    timer.loop = asyncio.new_event_loop()
    peers = setup_peers(ctx.tmpdir)
    for peer in peers:
        if peer.note:
            print(f"  peer {peer.key}: {peer.note}", flush=True)
    seed_dir = os.path.join(ctx.tmpdir, "seed")
    os.makedirs(seed_dir, exist_ok=True)

    t_start = time.perf_counter()
    for rep in range(ctx.repeats):
        phases: list[Callable[[], None]] = []

        def floors(rep: int = rep) -> None:
            timer.run_rotated([*FLOOR_ROWS, ASYNC_EMPTY, ASYNC_NULL], floor_namespace(), rep)

        phases.append(floors)

        for backend in ctx.backends:

            def backend_phase(backend: str = backend, rep: int = rep) -> None:
                prefix = backend_prefix(backend)
                ctx.testing.use_backend(backend)
                assert lp.BACKEND == backend, (lp.BACKEND, backend)
                d = ctx.enable()
                rows = [r.prefixed(prefix) for r in (*ENABLED_ROWS, ASYNC_SCOPE)]
                timer.run_rotated(rows, liteprof_namespace(lp), rep)
                assert lp.enabled()
                ctx.disable(d)
                rows = [r.prefixed(prefix + "off_") for r in DISABLED_ROWS]
                timer.run_rotated(rows, liteprof_namespace(lp), rep)

            phases.append(backend_phase)

        def seed_phase(rep: int = rep) -> None:
            path = os.path.join(seed_dir, f"seed-{rep}.log")
            rec = SeedRecorder(path)
            row = Row(
                "seed", "seed recorder", f'with rec.scope("{SCOPE_NAME}"):\n    pass', ("rec",)
            )
            timer.run_rotated([row], {"rec": rec}, rep)
            rec.close()
            os.unlink(path)

        phases.append(seed_phase)

        def peers_phase(rep: int = rep) -> None:
            for peer in peers:
                if peer.namespace is not None:
                    timer.run_rotated([peer.row], peer.namespace, rep)

        phases.append(peers_phase)

        k = rep % len(phases)
        for phase in phases[k:] + phases[:k]:
            phase()
        print(
            f"  repeat {rep + 1}/{ctx.repeats} done ({time.perf_counter() - t_start:.1f} s)",
            flush=True,
        )
    for peer in peers:
        if peer.cleanup is not None:
            peer.note = peer.cleanup()
    timer.loop.close()
    # Leave the process on the default backend.
    ctx.testing.use_backend(ctx.backends[0])
    return {
        "rows": _rows(timer, [(p.row.key, p.label) for p in peers]),
        "peers": [p.as_dict() for p in peers],
        "samples": timer.samples,
        "counts": timer.counts,
    }


def _rows(timer: Timer, peers: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """The table: each measured row's min, median, net and ratio to its reference."""
    s = timer.samples
    mins = {k: stat_min(v) for k, v in s.items()}
    meds = {k: stat_med(v) for k, v in s.items()}
    empty = mins["empty"]
    rows: list[dict[str, Any]] = []

    def add(key: str, label: str, group: str, ref: str | None = "nullcontext") -> None:
        if key not in mins:
            return
        net = mins[key] - empty
        rows.append(
            {
                "key": key,
                "label": label,
                "group": group,
                "min_ns": mins[key],
                "median_ns": meds[key],
                "net_ns": net,
                "n": timer.counts.get(key),
                "ref": ref,
                "ratio": net / (mins[ref] - empty) if ref else None,
            }
        )

    for row in FLOOR_ROWS:
        add(row.key, row.label, "floor", None if row.key == "empty" else "nullcontext")
    for backend, title in (("c", "liteprof C core"), ("python", "liteprof pure-Python twin")):
        p = backend_prefix(backend)
        for row in ENABLED_ROWS:
            ref = "wraps" if row.key == "timed" else "nullcontext"
            add(p + row.key, row.label + " (enabled)", title, ref)
        for row in DISABLED_ROWS:
            ref = "wraps" if row.key == "timed" else "nullcontext"
            add(p + "off_" + row.key, row.label + " after `disable()`", title, ref)
    add("seed", f'seed recorder `with rec.scope("{SCOPE_NAME}")`', "seed", "nullcontext")
    for key, label in peers:
        add(key, label, "peer", "nullcontext")
    return rows


def targets(results: dict[str, Any]) -> list[Target]:
    """Enabled and disabled liteprof against its floors; the seed against the C core."""
    net = {r["key"]: r["net_ns"] for r in results["rows"]}

    def ratio_of(key: str, ref: str) -> float | None:
        if key not in net or ref not in net:
            return None
        return float(net[key] / net[ref])

    return [
        Target(
            "c_scope",
            'C: enabled `scope("name")` / nullcontext',
            ratio_of("c_scope", "nullcontext"),
            "<=",
            1.05,
        ),
        Target(
            "c_predeclared",
            "C: enabled `with PREDECLARED` / nullcontext",
            ratio_of("c_predeclared", "nullcontext"),
            "<=",
            0.95,
        ),
        Target(
            "c_off_scope",
            'C: after `disable()` `scope("name")` / nullcontext',
            ratio_of("c_off_scope", "nullcontext"),
            "<=",
            0.9,
        ),
        Target(
            "c_timed",
            "C: enabled `@liteprof.timed` call / `functools.wraps` pass-through",
            ratio_of("c_timed", "wraps"),
            "<=",
            1.0,
        ),
        Target(
            "seed_over_c",
            'seed recorder / C `scope("name")`',
            ratio_of("seed", "c_scope"),
            ">=",
            10.0,
        ),
        Target(
            "py_scope",
            'pure-Python twin: enabled `scope("name")` / nullcontext',
            ratio_of("py_scope", "nullcontext"),
            "<=",
            3.5,
        ),
    ]


def summary(results: dict[str, Any]) -> list[str]:
    """The console table."""
    lines = [f"{'row':<72} {'min ns':>9} {'med ns':>9} {'net ns':>9} {'ratio':>8}  vs"]
    for r in results["rows"]:
        label = f"[{r['group']}] {r['label']}"
        lines.append(
            f"{label[:72]:<72} {fmt_ns(r['min_ns']):>9} {fmt_ns(r['median_ns']):>9} "
            f"{fmt_ns(r['net_ns']):>9} {fmt_ratio(r['ratio']):>8}  {r['ref'] or ''}"
        )
    return lines


def markdown(results: dict[str, Any]) -> list[str]:
    """The hot-path table and the peers' table."""
    lines = [f"## {TITLE}", ""]
    lines.append("| group | row | min ns | median ns | net ns | ratio | vs | loops/repeat |")
    lines.append("| --- | --- | ---: | ---: | ---: | ---: | --- | ---: |")
    for r in results["rows"]:
        lines.append(
            f"| {r['group']} | {r['label']} | {fmt_ns(r['min_ns'])} | "
            f"{fmt_ns(r['median_ns'])} | {fmt_ns(r['net_ns'])} | {fmt_ratio(r['ratio'])} | "
            f"{r['ref'] or ''} | {r['n'] or ''} |"
        )
    lines.append("")

    lines += ["## Peers", ""]
    lines.append(
        "| peer | version | records without an external tool? | net ns | x nullcontext | note |"
    )
    lines.append("| --- | --- | --- | ---: | ---: | --- |")
    by_key = {r["key"]: r for r in results["rows"]}
    for p in results["peers"]:
        r = by_key.get(f"peer_{p['key']}")
        lines.append(
            f"| {p['label']} | {p['version'] or 'not installed'} | {p['records']} | "
            f"{fmt_ns(r['net_ns']) if r else 'skipped'} | "
            f"{fmt_ratio(r['ratio']) if r else ''} | {p['note']} |"
        )
    lines.append("")
    lines.append(
        "nvtx and `torch.profiler.record_function` record nothing here: nvtx ranges only "
        "reach an attached NVTX tool (Nsight Systems), and `record_function` only records "
        "while a torch profiler is active. Their rows are the cost of the annotation "
        "alone. codetiming and OpenTelemetry do record (in memory, resp. through the "
        "batch processor to an exporter that drops spans); liteprof and the seed recorder "
        "write to a log file."
    )
    lines.append("")
    return lines
