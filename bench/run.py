#!/usr/bin/env python3
"""liteprof benchmark suite: one command, one process, ratios measured side by side.

    python bench/run.py [--quick] [--output docs/BENCHMARKS.md] [--json FILE] [--previous FILE]

Prints nanoseconds per scope for every row and the ratios the targets are stated in, and
writes a Markdown results file. Every hot-path row runs as a timeit-style loop compiled
into its own function (the loop's statement inlined, its objects in locals, the garbage
collector off while it runs); every repeat runs each row of the suite once (rows
interleaved, their order rotated from repeat to repeat), and the figures are the minimum
and median over the repeats. "net" is a row's time per iteration less the empty loop's;
ratios are of net times, taken from the minima. See bench/README.md.

Peers (codetiming, nvtx, opentelemetry-sdk, torch) are optional: a missing one is skipped
with a note. Only liteprof (and numpy, for its reader) is required.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import gc
import itertools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
MIB = 1024 * 1024

# Names used by every scope row (constants, as in real code).
SCOPE_NAME = "Bench:scope"


# -- timeit-style kernels ---------------------------------------------------------------

_SYNC_TEMPLATE = """
def _bench(_n, _pc=_perf_counter_ns, _repeat=_itertools_repeat):
{setup}
    _it = _repeat(None, _n)
    _t0 = _pc()
    for _ in _it:
{stmt}
    return _pc() - _t0
"""

_ASYNC_TEMPLATE = """
async def _bench(_n, _pc=_perf_counter_ns, _repeat=_itertools_repeat):
{setup}
    _it = _repeat(None, _n)
    _t0 = _pc()
    for _ in _it:
{stmt}
    return _pc() - _t0
"""


@dataclass
class Row:
    key: str
    label: str
    stmt: str  # the loop body; may span lines
    names: tuple[str, ...] = ()  # locals taken from the phase's namespace
    hot: bool = True  # hot-path rows get at least min_n iterations
    is_async: bool = False

    def compile(self, namespace: dict[str, Any]) -> Callable[..., Any]:
        setup = "".join(f"    {n} = _g_{n}\n" for n in self.names) or "    pass\n"
        stmt = "".join(f"        {line}\n" for line in self.stmt.splitlines())
        template = _ASYNC_TEMPLATE if self.is_async else _SYNC_TEMPLATE
        src = template.format(setup=setup.rstrip("\n"), stmt=stmt.rstrip("\n"))
        glb: dict[str, Any] = {
            "_perf_counter_ns": time.perf_counter_ns,
            "_itertools_repeat": itertools.repeat,
        }
        for n in self.names:
            glb[f"_g_{n}"] = namespace[n]
        exec(compile(src, f"<bench {self.key}>", "exec"), glb)
        return glb["_bench"]  # type: ignore[no-any-return]


class Timer:
    """Runs rows: calibrates each row's loop count once, then times one repeat per call."""

    def __init__(self, quick: bool) -> None:
        self.target_s = 0.03 if quick else 0.12
        self.min_n = 100_000 if quick else 200_000
        self.max_n = 300_000 if quick else 1_000_000
        self.cold_min_n = 2_000 if quick else 10_000
        self.counts: dict[str, int] = {}
        self.samples: dict[str, list[float]] = {}
        self.loop: Any = None  # asyncio event loop for async rows

    def _call(self, row: Row, func: Callable[..., Any], n: int) -> int:
        if row.is_async:
            return int(self.loop.run_until_complete(func(n)))
        return int(func(n))

    def measure(self, row: Row, namespace: dict[str, Any]) -> float:
        func = row.compile(namespace)
        gc.collect()
        enabled = gc.isenabled()
        gc.disable()
        try:
            n = self.counts.get(row.key)
            if n is None:
                probe = 2_000
                self._call(row, func, probe)  # warm up
                per = max(self._call(row, func, probe) / probe, 1.0)
                n = int(self.target_s * 1e9 / per)
                lo = self.min_n if row.hot else self.cold_min_n
                n = max(lo, min(self.max_n, n))
                self.counts[row.key] = n
            ns = self._call(row, func, n) / n
        finally:
            if enabled:
                gc.enable()
        self.samples.setdefault(row.key, []).append(ns)
        return ns


# -- helpers -------------------------------------------------------------------------------


def _trivial() -> None:
    return None


def passthrough(func: Callable[..., Any]) -> Callable[..., Any]:
    """The usual hand-written decorator: what ``@liteprof.timed`` is compared with."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    return wrapper


def stat_min(xs: list[float]) -> float:
    return min(xs) if xs else float("nan")


def stat_med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def fmt_ns(x: float | None) -> str:
    if x is None or x != x:
        return "n/a"
    if x >= 10_000:
        return f"{x:,.0f}"
    return f"{x:.1f}"


def fmt_ratio(x: float | None) -> str:
    if x is None or x != x:
        return "n/a"
    return f"{x:.2f}x"


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 0
    mem = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    mem = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "memory_bytes": mem,
        "os": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "python_executable": sys.executable,
        "load_avg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def child_env(pure: bool = False) -> dict[str, str]:
    env = dict(os.environ)
    for var in ("LITEPROF_LOG", "LITEPROF_PROCESSES", "LITEPROF_PURE"):
        env.pop(var, None)
    if pure:
        env["LITEPROF_PURE"] = "1"
    return env


def run_child(args: list[str], pure: bool = False, timeout: float = 600) -> dict[str, Any]:
    cmd = [sys.executable, os.path.join(BENCH_DIR, "run.py"), *args]
    proc = subprocess.run(
        cmd, env=child_env(pure), capture_output=True, text=True, timeout=timeout, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"child {args[:2]} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


# -- rows -----------------------------------------------------------------------------------

FLOOR_ROWS = [
    Row("empty", "empty loop", "pass"),
    Row(
        "nullcontext",
        "`with contextlib.nullcontext()`",
        "with contextlib.nullcontext():\n    pass",
        ("contextlib",),
    ),
    Row("call", "bare call of a trivial function", "f()", ("f",)),
    Row("wraps", "`functools.wraps` pass-through wrapper call", "w()", ("w",)),
]

ENABLED_ROWS = [
    Row(
        "scope",
        f'`with liteprof.scope("{SCOPE_NAME}")`',
        f'with liteprof.scope("{SCOPE_NAME}"):\n    pass',
        ("liteprof",),
    ),
    Row(
        "predeclared",
        "`with PREDECLARED` (a `liteprof.Scope` made once)",
        "with PRE:\n    pass",
        ("PRE",),
    ),
    Row("timed", "`@liteprof.timed` call", "t()", ("t",)),
]

DISABLED_ROWS = [
    Row(
        "scope",
        f'`with liteprof.scope("{SCOPE_NAME}")`',
        f'with liteprof.scope("{SCOPE_NAME}"):\n    pass',
        ("liteprof",),
    ),
    Row("predeclared", "`with PREDECLARED`", "with PRE:\n    pass", ("PRE",)),
    Row("timed", "`@liteprof.timed` call", "t()", ("t",)),
]

ASYNC_EMPTY = Row("async_empty", "empty loop in an asyncio task", "pass", is_async=True)
ASYNC_NULL = Row(
    "async_nullcontext",
    "`with contextlib.nullcontext()` in an asyncio task",
    "with contextlib.nullcontext():\n    pass",
    ("contextlib",),
    is_async=True,
)
ASYNC_SCOPE = Row(
    "async_scope",
    f'`with liteprof.scope("{SCOPE_NAME}")` in an asyncio task',
    f'with liteprof.scope("{SCOPE_NAME}"):\n    pass',
    ("liteprof",),
    is_async=True,
)


def floor_namespace() -> dict[str, Any]:
    return {"contextlib": contextlib, "f": _trivial, "w": passthrough(_trivial)}


# -- peers ---------------------------------------------------------------------------------


@dataclass
class Peer:
    key: str
    label: str
    package: str
    records: str  # what it records without an external tool
    row: Row
    namespace: dict[str, Any] | None = None
    version: str | None = None
    note: str = ""
    cleanup: Callable[[], str] | None = None


def _version(dist: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(dist)
    except Exception:
        return None


def setup_peers(tmpdir: str) -> list[Peer]:
    peers: list[Peer] = []

    p = Peer(
        "codetiming",
        "`with codetiming.Timer(name, logger=None)`",
        "codetiming",
        "yes: accumulates every elapsed time in memory (`Timer.timers`)",
        Row(
            "peer_codetiming",
            "codetiming",
            'with Timer("Bench:codetiming", logger=None):\n    pass',
            ("Timer",),
            hot=False,
        ),
    )
    try:
        from codetiming import Timer as CTimer

        p.namespace = {"Timer": CTimer}
        p.version = _version("codetiming")
    except ImportError:
        p.note = "skipped: codetiming is not installed"
    peers.append(p)

    p = Peer(
        "nvtx",
        "`with nvtx.annotate(name)`",
        "nvtx",
        "**nothing** unless an NVTX tool (Nsight Systems) is attached",
        Row(
            "peer_nvtx", "nvtx", 'with nvtx.annotate("Bench:nvtx"):\n    pass', ("nvtx",), hot=False
        ),
    )
    try:
        import nvtx

        p.namespace = {"nvtx": nvtx}
        p.version = _version("nvtx")
    except Exception as exc:  # ImportError, or a broken native library
        p.note = f"skipped: nvtx is not importable ({type(exc).__name__})"
    peers.append(p)

    p = Peer(
        "otel",
        "opentelemetry-sdk span, `BatchSpanProcessor` to an exporter that drops spans",
        "opentelemetry-sdk",
        "yes: spans go through the batch processor's queue to the exporter (which drops them here)",
        Row(
            "peer_otel",
            "opentelemetry",
            'with tracer.start_as_current_span("Bench:otel"):\n    pass',
            ("tracer",),
            hot=False,
        ),
    )
    try:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            SpanExporter,
            SpanExportResult,
        )

        class DropExporter(SpanExporter):  # type: ignore[misc]
            def __init__(self) -> None:
                self.exported = 0

            def export(self, spans: Any) -> Any:
                self.exported += len(spans)
                return SpanExportResult.SUCCESS

            def shutdown(self) -> None:
                return None

        exporter = DropExporter()
        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(exporter))
        tracer = provider.get_tracer("liteprof-bench")
        p.namespace = {"tracer": tracer}
        p.version = _version("opentelemetry-sdk")

        def otel_cleanup(provider: Any = provider, exporter: DropExporter = exporter) -> str:
            provider.shutdown()
            return f"the exporter received {exporter.exported:,} spans"

        p.cleanup = otel_cleanup
    except ImportError:
        p.note = "skipped: opentelemetry-sdk is not installed"
    peers.append(p)

    p = Peer(
        "torch",
        "`with torch.profiler.record_function(name)`",
        "torch",
        "**nothing** unless a torch profiler (`torch.profiler.profile`) is active",
        Row(
            "peer_torch",
            "torch",
            'with record_function("Bench:torch"):\n    pass',
            ("record_function",),
            hot=False,
        ),
    )
    try:
        import torch
        import torch.profiler

        p.namespace = {"record_function": torch.profiler.record_function}
        p.version = torch.__version__
    except Exception as exc:
        p.note = f"skipped: torch is not importable ({type(exc).__name__})"
    peers.append(p)
    return peers


# -- the main hot-path suite -----------------------------------------------------------------


class Suite:
    def __init__(self, args: argparse.Namespace, tmpdir: str) -> None:
        import asyncio

        import liteprof

        self.args = args
        self.tmpdir = tmpdir
        self.liteprof = liteprof
        from liteprof import testing

        self.api = testing
        self.backends = self.api.available_backends()
        self.timer = Timer(args.quick)
        self.timer.loop = asyncio.new_event_loop()
        self.repeats = args.repeats or (3 if args.quick else 9)
        self.notes: list[str] = []
        self.peers: list[Peer] = []
        self._log_seq = 0

    def _enable(self) -> str:
        self._log_seq += 1
        d = os.path.join(self.tmpdir, f"hot-{self._log_seq}")
        self.liteprof.enable(d)
        return d

    def _disable_and_clean(self, d: str) -> None:
        self.liteprof.disable()
        shutil.rmtree(d, ignore_errors=True)

    def _backend_namespace(self) -> dict[str, Any]:
        lp = self.liteprof
        return {
            "liteprof": lp,
            "PRE": lp.Scope("Bench:predeclared"),
            "t": lp.timed(_trivial),
            "contextlib": contextlib,
        }

    def _run_rows(self, prefix: str, rows: list[Row], ns: dict[str, Any], rep: int) -> None:
        k = rep % len(rows)
        for row in rows[k:] + rows[:k]:
            key_row = Row(prefix + row.key, row.label, row.stmt, row.names, row.hot, row.is_async)
            self.timer.measure(key_row, ns)

    def run(self) -> None:
        lp = self.liteprof
        self.peers = setup_peers(self.tmpdir)
        for peer in self.peers:
            if peer.note:
                print(f"  peer {peer.key}: {peer.note}", flush=True)
        seed_dir = os.path.join(self.tmpdir, "seed")
        os.makedirs(seed_dir, exist_ok=True)
        sys.path.insert(0, BENCH_DIR)
        from seed_recorder import SeedRecorder

        t_start = time.perf_counter()
        for rep in range(self.repeats):
            phases: list[Callable[[], None]] = []

            def floors(rep: int = rep) -> None:
                ns = floor_namespace()
                self._run_rows("", [*FLOOR_ROWS, ASYNC_EMPTY, ASYNC_NULL], ns, rep)

            phases.append(floors)

            for backend in self.backends:
                prefix = "c_" if backend == "c" else "py_"

                def backend_phase(
                    backend: str = backend, prefix: str = prefix, rep: int = rep
                ) -> None:
                    self.api.use_backend(backend)
                    assert lp.BACKEND == backend, (lp.BACKEND, backend)
                    d = self._enable()
                    ns = self._backend_namespace()
                    self._run_rows(prefix, [*ENABLED_ROWS, ASYNC_SCOPE], ns, rep)
                    assert lp.enabled()
                    self._disable_and_clean(d)
                    ns = self._backend_namespace()
                    self._run_rows(prefix + "off_", DISABLED_ROWS, ns, rep)

                phases.append(backend_phase)

            def seed_phase(rep: int = rep) -> None:
                path = os.path.join(seed_dir, f"seed-{rep}.log")
                rec = SeedRecorder(path)
                self._run_rows(
                    "",
                    [
                        Row(
                            "seed",
                            "seed recorder",
                            f'with rec.scope("{SCOPE_NAME}"):\n    pass',
                            ("rec",),
                        )
                    ],
                    {"rec": rec},
                    rep,
                )
                rec.close()
                os.unlink(path)

            phases.append(seed_phase)

            def peers_phase(rep: int = rep) -> None:
                for peer in self.peers:
                    if peer.namespace is not None:
                        self._run_rows("", [peer.row], peer.namespace, rep)

            phases.append(peers_phase)

            k = rep % len(phases)
            for phase in phases[k:] + phases[:k]:
                phase()
            print(
                f"  repeat {rep + 1}/{self.repeats} done ({time.perf_counter() - t_start:.1f} s)",
                flush=True,
            )
        for peer in self.peers:
            if peer.cleanup is not None:
                peer.note = peer.cleanup()
        self.timer.loop.close()
        # Leave the process on the default backend.
        self.api.use_backend(self.backends[0])


# -- never enabled: fresh subprocesses -------------------------------------------------------


def child_never(args: argparse.Namespace) -> None:
    import liteprof

    assert not liteprof.enabled()
    timer = Timer(args.quick)
    ns = floor_namespace()
    ns.update(
        {
            "liteprof": liteprof,
            "PRE": liteprof.Scope("Bench:predeclared"),
            "t": liteprof.timed(_trivial),
        }
    )
    rows = [*FLOOR_ROWS, *[Row("never_" + r.key, r.label, r.stmt, r.names) for r in DISABLED_ROWS]]
    for rep in range(args.repeats):
        k = rep % len(rows)
        for row in rows[k:] + rows[:k]:
            timer.measure(row, ns)
    assert not liteprof.enabled()
    print(
        json.dumps(
            {
                "backend": liteprof.BACKEND,
                "samples": timer.samples,
                "counts": timer.counts,
                "asyncio_imported": "asyncio" in sys.modules,
            }
        )
    )


# -- threads ---------------------------------------------------------------------------------


def thread_throughput(lp: Any, nthreads: int, duration: float) -> float:
    stop = False
    barrier = threading.Barrier(nthreads + 1)
    results: list[tuple[int, int, int]] = []
    lock = threading.Lock()

    def worker() -> None:
        scope = lp.scope
        chunk = range(1000)
        count = 0
        barrier.wait()
        t0 = time.perf_counter_ns()
        while not stop:
            for _ in chunk:
                with scope("Bench:threads"):
                    pass
            count += 1000
        t1 = time.perf_counter_ns()
        with lock:
            results.append((count, t0, t1))

    threads = [threading.Thread(target=worker, name=f"bench-{i}") for i in range(nthreads)]
    for t in threads:
        t.start()
    barrier.wait()
    time.sleep(duration)
    stop = True
    for t in threads:
        t.join()
    total = sum(c for c, _, _ in results)
    span = max(t1 for _, _, t1 in results) - min(t0 for _, t0, _ in results)
    return total / (span / 1e9)


def run_threads(suite: Suite, quick: bool) -> dict[str, dict[int, list[float]]]:
    lp = suite.liteprof
    duration = 0.3 if quick else 1.0
    reps = 2 if quick else 3
    out: dict[str, dict[int, list[float]]] = {}
    gc_was = gc.isenabled()
    gc.disable()
    try:
        for backend in suite.backends:
            suite.api.use_backend(backend)
            d = suite._enable()
            out[backend] = {1: [], 2: [], 4: []}
            thread_throughput(lp, 1, 0.05)  # attach the main thread's recorder path
            for rep in range(reps):
                order = [1, 2, 4] if rep % 2 == 0 else [4, 2, 1]
                for nt in order:
                    out[backend][nt].append(thread_throughput(lp, nt, duration))
            suite._disable_and_clean(d)
            print(
                f"  threads [{backend}]: "
                + ", ".join(f"{nt}T {stat_med(v) / 1e6:.2f} M/s" for nt, v in out[backend].items()),
                flush=True,
            )
    finally:
        if gc_was:
            gc.enable()
        suite.api.use_backend(suite.backends[0])
    return out


# -- the reader ------------------------------------------------------------------------------


def child_gen(args: argparse.Namespace) -> None:
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
    print(json.dumps({"path": path, "seconds": dt, "backend": liteprof.BACKEND}))


def child_rusage(args: argparse.Namespace) -> None:
    """Run the command once, from a fresh process: wall time and the child's peak RSS."""
    import resource

    out = open(args.stdout, "w") if args.stdout else subprocess.DEVNULL
    t0 = time.perf_counter()
    rc = subprocess.call(args.cmd, stdout=out)
    wall = time.perf_counter() - t0
    if args.stdout:
        out.close()  # type: ignore[union-attr]
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(
        json.dumps(
            {
                "rc": rc,
                "wall_s": wall,
                "maxrss_kib": ru.ru_maxrss,
                "user_s": ru.ru_utime,
                "sys_s": ru.ru_stime,
            }
        )
    )


def run_reader(tmpdir: str, quick: bool) -> dict[str, Any]:
    sizes = [1_000_000, 5_000_000] if quick else [10_000_000, 50_000_000]
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
        gen = run_child(["--child", "gen", "--events", str(events), "--dir", d])
        path = gen["path"]
        if hasattr(os, "sync"):
            os.sync()  # write the new log back now, not while the reader is timed
        size = os.path.getsize(path)
        json_out = os.path.join(tmpdir, "report.json")
        cmd = [sys.executable, "-m", "liteprof", "report", "--format", "json", d]
        runs = []
        for i in range(runs_for[events]):
            extra = ["--stdout", json_out] if i == 0 else []
            r = run_child(["--child", "rusage", *extra, "--", *cmd])
            if r["rc"] != 0:
                raise RuntimeError(f"liteprof report failed with status {r['rc']}")
            runs.append(r)
            if i == 0:
                with open(json_out) as fh:
                    report = json.load(fh)
                if report.get("records") != events:
                    raise RuntimeError(
                        f"report read {report.get('records')} records, expected {events}"
                    )
        best = min(r["wall_s"] for r in runs)
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
        }
        out["sizes"].append(entry)
        print(
            f"  reader {events:,} events: log {size / MIB:.0f} MiB "
            f"({size / events:.1f} B/event), best {best:.2f} s "
            f"({events / best / 1e6:.2f} M events/s), peak RSS "
            f"{entry['peak_rss_bytes'] / MIB:.0f} MiB",
            flush=True,
        )
        shutil.rmtree(d, ignore_errors=True)
    return out


# -- results -------------------------------------------------------------------------------


def collect(
    suite: Suite,
    never: dict[str, Any],
    threads: dict[str, Any],
    reader: dict[str, Any],
    info: dict[str, Any],
) -> dict[str, Any]:
    s = suite.timer.samples
    mins = {k: stat_min(v) for k, v in s.items()}
    meds = {k: stat_med(v) for k, v in s.items()}
    empty = mins["empty"]
    async_empty = mins.get("async_empty", float("nan"))

    def net(key: str) -> float:
        base = async_empty if key.startswith("async") or "_async" in key else empty
        return mins[key] - base

    rows: list[dict[str, Any]] = []

    def add(key: str, label: str, group: str, ref: str | None = "nullcontext") -> None:
        if key not in mins:
            return
        r = {
            "key": key,
            "label": label,
            "group": group,
            "min_ns": mins[key],
            "median_ns": meds[key],
            "net_ns": net(key),
            "n": suite.timer.counts.get(key),
            "ref": ref,
            "ratio": net(key) / net(ref) if ref else None,
        }
        rows.append(r)

    for row in FLOOR_ROWS:
        add(row.key, row.label, "floor", None if row.key == "empty" else "nullcontext")
    for backend, title in (("c", "liteprof C core"), ("python", "liteprof pure-Python twin")):
        p = "c_" if backend == "c" else "py_"
        for row in ENABLED_ROWS:
            ref = "wraps" if row.key == "timed" else "nullcontext"
            add(p + row.key, row.label + " (enabled)", title, ref)
        for row in DISABLED_ROWS:
            ref = "wraps" if row.key == "timed" else "nullcontext"
            add(p + "off_" + row.key, row.label + " after `disable()`", title, ref)
    add("seed", f'seed recorder `with rec.scope("{SCOPE_NAME}")`', "seed", "nullcontext")
    for peer in suite.peers:
        add(peer.row.key, peer.label, "peer", "nullcontext")

    # never enabled, per subprocess, each against its own floors
    never_rows = []
    for backend, res in never.items():
        sm = {k: stat_min(v) for k, v in res["samples"].items()}
        md = {k: stat_med(v) for k, v in res["samples"].items()}
        e = sm["empty"]
        for key in (
            "empty",
            "nullcontext",
            "call",
            "wraps",
            "never_scope",
            "never_predeclared",
            "never_timed",
        ):
            ref = {
                "never_scope": "nullcontext",
                "never_predeclared": "nullcontext",
                "never_timed": "wraps",
            }.get(key)
            netv = sm[key] - e
            never_rows.append(
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

    # asyncio
    asyncio_rows = []
    for backend in ("c", "python"):
        p = "c_" if backend == "c" else "py_"
        if p + "async_scope" not in mins:
            continue
        sync_net = net(p + "scope")
        async_net = mins[p + "async_scope"] - async_empty
        asyncio_rows.append(
            {
                "backend": backend,
                "sync_net_ns": sync_net,
                "async_net_ns": async_net,
                "ratio": async_net / sync_net,
                "async_null_net_ns": mins["async_nullcontext"] - async_empty,
                "sync_null_net_ns": net("nullcontext"),
                "sync_min_ns": mins[p + "scope"],
                "async_min_ns": mins[p + "async_scope"],
            }
        )

    # threads
    thread_rows = []
    for backend, per in threads.items():
        med = {nt: stat_med(v) for nt, v in per.items()}
        thread_rows.append(
            {
                "backend": backend,
                "scopes_per_s": med,
                "samples": per,
                "ratio_2_1": med[2] / med[1],
                "ratio_4_1": med[4] / med[1],
            }
        )

    # targets
    targets: list[dict[str, Any]] = []

    def target(
        key: str, text: str, value: float | None, limit: float, le: bool = True, detail: str = ""
    ) -> None:
        if value is None or value != value:
            targets.append(
                {
                    "key": key,
                    "text": text,
                    "value": None,
                    "limit": limit,
                    "op": "<=" if le else ">=",
                    "verdict": "SKIP",
                    "detail": detail or "not measured",
                }
            )
            return
        ok = value <= limit if le else value >= limit
        targets.append(
            {
                "key": key,
                "text": text,
                "value": value,
                "limit": limit,
                "op": "<=" if le else ">=",
                "verdict": "PASS" if ok else "FAIL",
                "detail": detail,
            }
        )

    def ratio_of(key: str, ref: str) -> float | None:
        if key not in mins or ref not in mins:
            return None
        return net(key) / net(ref)

    target(
        "c_scope",
        'C: enabled `scope("name")` / nullcontext',
        ratio_of("c_scope", "nullcontext"),
        1.05,
    )
    target(
        "c_predeclared",
        "C: enabled `with PREDECLARED` / nullcontext",
        ratio_of("c_predeclared", "nullcontext"),
        0.95,
    )
    never_c = {r["key"]: r for r in never_rows if r["backend"] == "c"}
    target(
        "c_never_scope",
        'C: never enabled `scope("name")` / nullcontext (own process)',
        never_c["never_scope"]["ratio"] if never_c else None,
        0.9,
    )
    target(
        "c_off_scope",
        'C: after `disable()` `scope("name")` / nullcontext',
        ratio_of("c_off_scope", "nullcontext"),
        0.9,
    )
    target(
        "c_timed",
        "C: enabled `@liteprof.timed` call / `functools.wraps` pass-through",
        ratio_of("c_timed", "wraps"),
        1.0,
    )
    seed_ratio = None
    if "seed" in mins and "c_scope" in mins:
        seed_ratio = net("seed") / net("c_scope")
    target("seed_over_c", 'seed recorder / C `scope("name")`', seed_ratio, 10.0, le=False)
    target(
        "py_scope",
        'pure-Python twin: enabled `scope("name")` / nullcontext',
        ratio_of("py_scope", "nullcontext"),
        3.5,
    )
    for tr in thread_rows:
        name = "C core" if tr["backend"] == "c" else "pure-Python twin"
        target(
            f"threads_{tr['backend']}",
            f"{name}: 2 threads' scopes/s / 1 thread's",
            tr["ratio_2_1"],
            0.9,
            le=False,
        )
    sizes = reader.get("sizes", [])
    first = sizes[0] if sizes else None
    target(
        "reader_speed",
        f"reader: events/s end to end on {first['events'] if first else 0:,} events (M events/s)",
        first["events_per_s"] / 1e6 if first else None,
        5.0,
        le=False,
    )
    for entry in sizes:
        limit = 2 * entry["log_bytes"] + 200 * MIB
        target(
            f"reader_rss_{entry['events']}",
            f"reader: peak RSS / (2x log size + 200 MiB), {entry['events']:,} events",
            entry["peak_rss_bytes"] / limit,
            1.0,
            detail=f"{entry['peak_rss_bytes'] / MIB:.0f} MiB vs {limit / MIB:.0f} MiB",
        )
    if first:
        excess = first["bytes_per_event"] - 32
        # Judged at the 0.01 B resolution the figure is printed with: each event is one
        # 32-byte slot, and the file's fixed header and per-block headers add ~0.002 B.
        target(
            "log_bytes",
            f"log size per event (bytes, to 0.01 B), {first['events']:,} events",
            round(first["bytes_per_event"], 2),
            32.0,
            detail=f"32-byte slots + {excess:.3f} B/event of file header, block headers "
            "and the unfilled tail of the last block",
        )
    else:
        target("log_bytes", "log size per event (bytes)", None, 32.0)

    return {
        "info": info,
        "rows": rows,
        "never": never_rows,
        "asyncio": asyncio_rows,
        "threads": thread_rows,
        "reader": reader,
        "targets": targets,
        "peers": [
            {
                "key": p.key,
                "label": p.label,
                "package": p.package,
                "version": p.version,
                "records": p.records,
                "note": p.note,
                "measured": p.namespace is not None,
            }
            for p in suite.peers
        ],
        "notes": suite.notes,
        "samples": suite.timer.samples,
        "counts": suite.timer.counts,
    }


def print_results(res: dict[str, Any]) -> None:
    print()
    print(f"{'row':<72} {'min ns':>9} {'med ns':>9} {'net ns':>9} {'ratio':>8}  vs")
    for r in res["rows"]:
        label = f"[{r['group']}] {r['label']}"
        print(
            f"{label[:72]:<72} {fmt_ns(r['min_ns']):>9} {fmt_ns(r['median_ns']):>9} "
            f"{fmt_ns(r['net_ns']):>9} {fmt_ratio(r['ratio']):>8}  {r['ref'] or ''}"
        )
    print()
    print("never enabled (fresh subprocess per backend, against its own floors):")
    for r in res["never"]:
        print(
            f"  [{r['backend']}] {r['key']:<20} min {fmt_ns(r['min_ns']):>8} ns  net "
            f"{fmt_ns(r['net_ns']):>8} ns  {fmt_ratio(r['ratio']):>7} {r['ref'] or ''}"
        )
    print()
    print("asyncio (net ns per scope):")
    for r in res["asyncio"]:
        print(
            f"  [{r['backend']}] sync {fmt_ns(r['sync_net_ns'])}  in a task "
            f"{fmt_ns(r['async_net_ns'])}  task/sync {fmt_ratio(r['ratio'])}  "
            f"(nullcontext: sync {fmt_ns(r['sync_null_net_ns'])}, in a task "
            f"{fmt_ns(r['async_null_net_ns'])})"
        )
    print()
    print("threads (total scopes/s, median):")
    for r in res["threads"]:
        per = r["scopes_per_s"]
        print(
            f"  [{r['backend']}] "
            + "  ".join(f"{nt}T {per[nt] / 1e6:.2f} M/s" for nt in sorted(per))
            + f"  2T/1T {fmt_ratio(r['ratio_2_1'])}  4T/1T {fmt_ratio(r['ratio_4_1'])}"
        )
    print()
    print("targets:")
    for t in res["targets"]:
        val = "n/a" if t["value"] is None else f"{t['value']:.2f}"
        print(
            f"  {t['verdict']:<4}  {t['text']}: {val} ({t['op']} {t['limit']:g})"
            + (f"  [{t['detail']}]" if t["detail"] else "")
        )
    print(flush=True)


def headline(res: dict[str, Any]) -> dict[str, tuple[float | None, str]]:
    return {t["key"]: (t["value"], t["verdict"]) for t in res["targets"]}


def write_markdown(
    res: dict[str, Any], path: str, previous: dict[str, Any] | None, command: str
) -> None:
    info = res["info"]
    m = info["machine"]
    L: list[str] = []
    add = L.append
    add("# liteprof benchmarks")
    add("")
    add(
        f"Generated by `{command}` on {info['date']} "
        f"({'quick' if info['quick'] else 'full'} run, {info['repeats']} repeats per row, "
        f"{info['elapsed_s']:.0f} s)."
    )
    add("")
    add("| | |")
    add("| --- | --- |")
    mem = m.get("memory_bytes")
    add(
        f"| machine | {m['cpu']}, {m['cores']} cores ({m['usable_cores']} usable)"
        + (f", {mem / 1024**3:.0f} GiB RAM" if mem else "")
        + f", {m['os']} |"
    )
    add(f"| Python | {m['python']} (`{m['python_executable']}`) |")
    add(
        f"| liteprof | {info['liteprof_version']}, default backend `{info['backend']}`, "
        f"backends measured: {', '.join(info['backends'])} (`{info['liteprof_path']}`) |"
    )
    if m.get("load_avg"):
        add(
            "| load average | "
            + " / ".join(f"{x:.2f}" for x in m["load_avg"])
            + " at the start"
            + (
                ", " + " / ".join(f"{x:.2f}" for x in m["load_avg_end"]) + " at the end"
                if m.get("load_avg_end")
                else ""
            )
            + " (other jobs share the cores: ratios measured in one run are what counts) |"
        )
    add("")
    add(
        "Method: each row is a timeit-style loop compiled into its own function (the "
        "objects it uses in locals, the garbage collector off while it runs). Every "
        "repeat runs each row once, rows interleaved and their order rotated; figures are "
        "the minimum (and the median) over the repeats. **net** = a row's ns per iteration "
        "less the empty loop's; **ratios are of net times** (from the minima), against the "
        "row named in *vs*. Enabled means `liteprof.enable(tmpdir)`; the backends are "
        "switched in-process with `liteprof.testing.use_backend()`."
    )
    add("")

    add("## Targets")
    add("")
    add("| target | measured | limit | verdict |")
    add("| --- | ---: | ---: | --- |")
    for t in res["targets"]:
        val = "n/a" if t["value"] is None else f"{t['value']:.2f}"
        det = f" ({t['detail']})" if t["detail"] else ""
        add(f"| {t['text']} | {val}{det} | {t['op']} {t['limit']:g} | **{t['verdict']}** |")
    add("")
    add("FAIL is information, not an error: `bench/run.py` exits 0 either way.")
    add("")

    if previous is not None:
        add("## Headline ratios of both runs")
        add("")
        prev = headline(previous)
        cur = headline(res)
        add("| target | limit | run 1 | run 2 |")
        add("| --- | ---: | ---: | ---: |")
        for t in res["targets"]:
            pv = prev.get(t["key"], (None, "n/a"))
            cv = cur[t["key"]]

            def cell(v: tuple[float | None, str]) -> str:
                return "n/a" if v[0] is None else f"{v[0]:.2f} {v[1]}"

            add(f"| {t['text']} | {t['op']} {t['limit']:g} | {cell(pv)} | {cell(cv)} |")
        add("")
        add(
            f"Run 1: {previous['info']['date']}; run 2: {info['date']} (the figures "
            "everywhere else on this page)."
        )
        add("")

    add("## Hot path (one process)")
    add("")
    add("| group | row | min ns | median ns | net ns | ratio | vs | loops/repeat |")
    add("| --- | --- | ---: | ---: | ---: | ---: | --- | ---: |")
    for r in res["rows"]:
        add(
            f"| {r['group']} | {r['label']} | {fmt_ns(r['min_ns'])} | "
            f"{fmt_ns(r['median_ns'])} | {fmt_ns(r['net_ns'])} | {fmt_ratio(r['ratio'])} | "
            f"{r['ref'] or ''} | {r['n'] or ''} |"
        )
    add("")

    add("## Never enabled (a fresh process per backend)")
    add("")
    add(
        "`with liteprof.scope(name)` in a process that never enabled recording: each "
        "backend in its own subprocess (the pure-Python twin with `LITEPROF_PURE=1`), "
        "which measures its own floors; ratios are against those floors."
    )
    add("")
    add("| backend | row | min ns | median ns | net ns | ratio | vs |")
    add("| --- | --- | ---: | ---: | ---: | ---: | --- |")
    for r in res["never"]:
        add(
            f"| {r['backend']} | {r['key']} | {fmt_ns(r['min_ns'])} | "
            f"{fmt_ns(r['median_ns'])} | {fmt_ns(r['net_ns'])} | {fmt_ratio(r['ratio'])} | "
            f"{r['ref'] or ''} |"
        )
    add("")

    add("## Peers")
    add("")
    add("| peer | version | records without an external tool? | net ns | x nullcontext | note |")
    add("| --- | --- | --- | ---: | ---: | --- |")
    by_key = {r["key"]: r for r in res["rows"]}
    for p in res["peers"]:
        r = by_key.get(f"peer_{p['key']}")
        add(
            f"| {p['label']} | {p['version'] or 'not installed'} | {p['records']} | "
            f"{fmt_ns(r['net_ns']) if r else 'skipped'} | "
            f"{fmt_ratio(r['ratio']) if r else ''} | {p['note']} |"
        )
    add("")
    add(
        "nvtx and `torch.profiler.record_function` record nothing here: nvtx ranges only "
        "reach an attached NVTX tool (Nsight Systems), and `record_function` only records "
        "while a torch profiler is active. Their rows are the cost of the annotation "
        "alone. codetiming and OpenTelemetry do record (in memory, resp. through the "
        "batch processor to an exporter that drops spans); liteprof and the seed recorder "
        "write to a log file."
    )
    add("")

    add("## asyncio")
    add("")
    add(
        "One asyncio task runs a loop of `with liteprof.scope(name)`; net ns are against an "
        "empty loop in a task, next to the same scope in plain sync code."
    )
    add("")
    add(
        "| backend | sync net ns | in a task net ns | task / sync | in a task / nullcontext "
        "in a task |"
    )
    add("| --- | ---: | ---: | ---: | ---: |")
    for r in res["asyncio"]:
        add(
            f"| {r['backend']} | {fmt_ns(r['sync_net_ns'])} | {fmt_ns(r['async_net_ns'])} | "
            f"{fmt_ratio(r['ratio'])} | "
            f"{fmt_ratio(r['async_net_ns'] / r['async_null_net_ns'])} |"
        )
    if res["asyncio"]:
        r0 = res["asyncio"][0]
        add("")
        add(
            f"For scale: `with contextlib.nullcontext()` costs {fmt_ns(r0['sync_null_net_ns'])}"
            f" ns net in sync code and {fmt_ns(r0['async_null_net_ns'])} ns in a task."
        )
    add("")

    add("## Threads")
    add("")
    add(
        "Each thread runs `with liteprof.scope(name)` for a fixed time (recording on); "
        "total scopes/s is the median over the repeats. With the GIL, threads cannot add "
        "throughput: the target (2 threads >= 0.9x one thread) means that no lock "
        "contention slows them down."
    )
    add("")
    add("| backend | 1 thread | 2 threads | 4 threads | 2T / 1T | 4T / 1T |")
    add("| --- | ---: | ---: | ---: | ---: | ---: |")
    for r in res["threads"]:
        per = r["scopes_per_s"]
        add(
            f"| {r['backend']} | {per[1] / 1e6:.2f} M/s | {per[2] / 1e6:.2f} M/s | "
            f"{per[4] / 1e6:.2f} M/s | {fmt_ratio(r['ratio_2_1'])} | "
            f"{fmt_ratio(r['ratio_4_1'])} |"
        )
    add("")

    add("## Reader")
    add("")
    add(
        "Logs written by a child process with the C core (four predeclared scopes in a "
        "loop, flat); then `python -m liteprof report --format json LOGDIR > /dev/null`, "
        "end to end (process start included), each run from a fresh helper process that "
        "reads the report's peak RSS with `getrusage(RUSAGE_CHILDREN)`. The log is in the "
        "page cache (just written, then `os.sync()`). events/s from the best run."
    )
    add("")
    add("| events | log size | bytes/event | runs (s) | events/s | peak RSS | RSS limit |")
    add("| ---: | ---: | ---: | --- | ---: | ---: | ---: |")
    for e in res["reader"].get("sizes", []):
        limit = 2 * e["log_bytes"] + 200 * MIB
        add(
            f"| {e['events']:,} | {e['log_bytes'] / MIB:,.0f} MiB | "
            f"{e['bytes_per_event']:.2f} | "
            + ", ".join(f"{w:.2f}" for w in e["wall_s"])
            + f" | {e['events_per_s'] / 1e6:.2f} M/s | {e['peak_rss_bytes'] / MIB:,.0f} MiB "
            f"| {limit / MIB:,.0f} MiB |"
        )
    for n in res["reader"].get("notes", []):
        add(f"\n- {n}")
    add("")
    if res.get("notes"):
        add("## Notes")
        add("")
        for n in res["notes"]:
            add(f"- {n}")
        add("")
    add("Reproduce: see `bench/README.md`.")
    add("")
    with open(path, "w") as fh:
        fh.write("\n".join(L))


# -- entry points -------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats, smaller logs")
    ap.add_argument("--output", metavar="MD", help="write the Markdown results here")
    ap.add_argument("--json", metavar="FILE", help="also write the raw results as JSON")
    ap.add_argument(
        "--previous",
        metavar="FILE",
        help="JSON of an earlier run: adds a table of both runs' headline ratios",
    )
    ap.add_argument("--repeats", type=int, default=0, help="repeats per row (default 9; 3)")
    ap.add_argument("--no-reader", action="store_true", help="skip the reader benchmark")
    ap.add_argument("--tmpdir", help="where the logs go (default: the system's temp dir)")
    ap.add_argument("--child", choices=("never", "gen", "rusage"), help=argparse.SUPPRESS)
    ap.add_argument("--events", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--dir", help=argparse.SUPPRESS)
    ap.add_argument("--stdout", help=argparse.SUPPRESS)
    ap.add_argument("cmd", nargs="*", help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child == "never":
        child_never(args)
        return 0
    if args.child == "gen":
        child_gen(args)
        return 0
    if args.child == "rusage":
        child_rusage(args)
        return 0

    for var in ("LITEPROF_LOG", "LITEPROF_PROCESSES"):
        os.environ.pop(var, None)
    started = time.perf_counter()
    info: dict[str, Any] = {
        "machine": machine_info(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "quick": args.quick,
    }
    m = info["machine"]
    print(
        f"machine: {m['cpu']}, {m['cores']} cores; {m['python']}; load {m['load_avg']}", flush=True
    )
    tmp_parent = args.tmpdir or tempfile.gettempdir()
    with tempfile.TemporaryDirectory(prefix="liteprof-bench-", dir=tmp_parent) as tmpdir:
        import liteprof

        info.update(
            {
                "liteprof_version": liteprof.__version__,
                "backend": liteprof.BACKEND,
                "backends": __import__("liteprof.testing").testing.available_backends(),
                "liteprof_path": os.path.dirname(liteprof.__file__),
            }
        )
        print(
            f"liteprof {liteprof.__version__} from {info['liteprof_path']}; backends "
            f"{info['backends']}",
            flush=True,
        )
        suite = Suite(args, tmpdir)
        info["repeats"] = suite.repeats
        if "c" not in suite.backends:
            suite.notes.append("The C core is not built here: the C rows are absent.")

        print("never enabled (subprocesses)...", flush=True)
        never: dict[str, Any] = {}
        for backend in suite.backends:
            res = run_child(
                ["--child", "never", "--repeats", str(suite.repeats)]
                + (["--quick"] if args.quick else []),
                pure=backend == "python",
            )
            assert res["backend"] == backend, res["backend"]
            never[backend] = res

        print("hot path (one process)...", flush=True)
        suite.run()

        print("threads...", flush=True)
        threads = run_threads(suite, args.quick)

        reader: dict[str, Any] = {"sizes": [], "notes": []}
        if args.no_reader:
            reader["notes"].append("reader skipped (--no-reader)")
        else:
            print("reader...", flush=True)
            reader = run_reader(tmpdir, args.quick)

        info["elapsed_s"] = time.perf_counter() - started
        if hasattr(os, "getloadavg"):
            info["machine"]["load_avg_end"] = list(os.getloadavg())
        res = collect(suite, never, threads, reader, info)
    print_results(res)
    print(f"total {info['elapsed_s']:.0f} s")
    previous = None
    if args.previous:
        with open(args.previous) as fh:
            previous = json.load(fh)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=1, default=str)
    if args.output:
        command = "python bench/run.py" + (" --quick" if args.quick else "")
        write_markdown(res, args.output, previous, command)
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
