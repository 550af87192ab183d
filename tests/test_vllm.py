"""``liteprof.compat.vllm`` in vLLM's own process layout, run for real.

A main process that only reports; an ``EngineCore_DP0`` child (and a duplicate
``EngineCore_DP1``) started with fork or spawn, which starts ``VllmWorker-0`` and
``VllmWorker-1``; vLLM's scope names and nesting; a ``vllm`` logger configured as vLLM
configures it. Every process reads its time from ``liteprof.testing.set_clock`` with
known durations, so the cells of vLLM's tables are computed here, independently, with
vLLM's formula: seconds ``:.3f`` and the share of the table's own total ``:.2f``, over
vLLM's fixed event lists, summed over the events vLLM would have written (rank 0 only,
no scope left by an exception).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from liteprof.record import session

from .helpers import cli, log_files, run_python

LAYOUT = """
import logging
import multiprocessing as mp
import os
import sys

METHOD = os.environ.get("START_METHOD", "fork")

if __name__ == "__main__" and os.environ.get("VLLM_LOGGING"):
    # What vllm/logger.py does: a handler on "vllm" (stdout, INFO), propagate off; the
    # root logger is left alone.
    vllm = logging.getLogger("vllm")
    vllm.setLevel(logging.DEBUG)
    handler = logging.StreamHandler(sys.stdout)
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("VLLM-HANDLER %(name)s| %(message)s"))
    vllm.addHandler(handler)
    vllm.propagate = False

from liteprof import testing
from liteprof.compat.vllm import LiteProfilerScope, LiteScope, maybe_emit_lite_profiler_report

STEPS = 5
# ns per step; rank 1 differs in every figure, so that counting it would show.
WORKER = [
    {"Model:UpdateState": 1_234_567, "Model:PrepareInput": 2_345_678,
     "Model:Forward": 31_415_926, "Model:Postprocess": 812_345, "Model:Bookkeep": 456_789},
    {"Model:UpdateState": 9_999_999, "Model:PrepareInput": 7, "Model:Forward": 1,
     "Model:Postprocess": 5_000_000, "Model:Bookkeep": 3},
]
ENGINE = [
    {"Step:Schedule": 3_210_987, "Step:Model": 38_264_305, "Step:Output": 1_111_111},
    {"Step:Schedule": 77_777_777, "Step:Model": 1, "Step:Output": 2},
]


class Clock:
    def __init__(self):
        self.ns = 10**9

    def __call__(self):
        return self.ns


def worker(rank):
    clock = Clock()
    testing.set_clock(clock)
    d = WORKER[rank]
    for _ in range(STEPS):
        with LiteScope("Model:Preprocess"):
            with LiteScope("Model:UpdateState"):
                clock.ns += d["Model:UpdateState"]
            with LiteScope("Model:PrepareInput"):
                clock.ns += d["Model:PrepareInput"]
        with LiteProfilerScope("Model:Forward"):
            clock.ns += d["Model:Forward"]
        with LiteScope("Model:Postprocess"):
            clock.ns += d["Model:Postprocess"]
        with LiteScope("Model:Bookkeep"):
            clock.ns += d["Model:Bookkeep"]
    try:  # vLLM's module writes nothing for a scope left by an exception
        with LiteScope("Model:Forward"):
            clock.ns += 10**9
            raise RuntimeError("out of memory")
    except RuntimeError:
        pass


def engine_core(dp_rank, start_workers=True):
    workers = []
    if dp_rank == 0 and start_workers:
        ctx = mp.get_context(METHOD)
        workers = [
            ctx.Process(target=worker, args=(r,), name=f"VllmWorker-{r}") for r in (0, 1)
        ]
        for w in workers:
            w.start()
    clock = Clock()
    testing.set_clock(clock)
    d = ENGINE[dp_rank]
    for _ in range(STEPS):
        with LiteScope("Step:Schedule"):
            clock.ns += d["Step:Schedule"]
        with LiteScope("Step:Model"):
            clock.ns += d["Step:Model"]
        with LiteScope("Step:Output"):
            clock.ns += d["Step:Output"]
    for w in workers:
        w.join()
        assert w.exitcode == 0, w.exitcode


if __name__ == "__main__":
    if os.environ.get("SET_AFTER_IMPORT"):
        os.environ["VLLM_LITE_PROFILER_LOG_PATH"] = os.environ["SET_AFTER_IMPORT"]
    if os.environ.get("IN_PROCESS"):
        # The engine inside the main process (VLLM_ENABLE_V1_MULTIPROCESSING=0).
        engine_core(0, start_workers=False)
        worker(0)
    else:
        ctx = mp.get_context(METHOD)
        engines = [
            ctx.Process(target=engine_core, args=(r,), name=f"EngineCore_DP{r}") for r in (0, 1)
        ]
        for e in engines:
            e.start()
        for e in engines:
            e.join()
            assert e.exitcode == 0, e.exitcode
    if not os.environ.get("SKIP_REPORT"):
        maybe_emit_lite_profiler_report()
    print("MAIN DONE")
"""

STEPS = 5
WORKER = [
    {
        "Model:UpdateState": 1_234_567,
        "Model:PrepareInput": 2_345_678,
        "Model:Forward": 31_415_926,
        "Model:Postprocess": 812_345,
        "Model:Bookkeep": 456_789,
    },
    {
        "Model:UpdateState": 9_999_999,
        "Model:PrepareInput": 7,
        "Model:Forward": 1,
        "Model:Postprocess": 5_000_000,
        "Model:Bookkeep": 3,
    },
]
ENGINE = [
    {"Step:Schedule": 3_210_987, "Step:Model": 38_264_305, "Step:Output": 1_111_111},
    {"Step:Schedule": 77_777_777, "Step:Model": 1, "Step:Output": 2},
]
TOP = ["Step:Schedule", "Step:Model", "Step:Output"]
MODEL = [
    "Model:UpdateState",
    "Model:PrepareInput",
    "Model:Forward",
    "Model:Postprocess",
    "Model:Bookkeep",
]
TOP_TITLE = "Top-level pipeline events"
MODEL_TITLE = "Model events breakdown (only includes the main key events)"


def vllm_cells(sums: dict[str, int], events: list[str]) -> list[str]:
    """vLLM's formula for one table row: each event's seconds (3 decimals) and percent
    of the table's total (2 decimals), then the total's seconds."""
    total = sum(sums.get(e, 0) for e in events)
    cells = []
    for e in events:
        value = sums.get(e, 0)
        seconds = value / 1e9 if value else 0.0
        percent = (value * 100.0 / total) if total else 0.0
        cells.append(f"{seconds:.3f}s ({percent:.2f}%)")
    cells.append(f"{(total / 1e9 if total else 0.0):.3f}s")
    return cells


def expected_sums(
    workers: tuple[int, ...] = (0,), engines: tuple[int, ...] = (0,)
) -> dict[str, int]:
    sums: dict[str, int] = {}
    for rank in workers:
        for name, ns in WORKER[rank].items():
            sums[name] = sums.get(name, 0) + STEPS * ns
    for rank in engines:
        for name, ns in ENGINE[rank].items():
            sums[name] = sums.get(name, 0) + STEPS * ns
    return sums


def table_cells(text: str, title: str, prefix: str = "") -> list[str]:
    """The data row of the table ``title`` in ``text``, split into cells."""
    lines = [line[len(prefix) :] if line.startswith(prefix) else line for line in text.splitlines()]
    at = lines.index(title)
    headers = [c.strip() for c in lines[at + 2].split(" | ")]
    assert lines[at + 3].replace("-", "").replace("|", "").strip() == ""
    cells = [c.strip() for c in lines[at + 4].split(" | ")]
    assert len(cells) == len(headers)
    return cells


def assert_vllm_tables(text: str, sums: dict[str, int], prefix: str = "") -> None:
    assert table_cells(text, TOP_TITLE, prefix) == vllm_cells(sums, TOP)
    assert table_cells(text, MODEL_TITLE, prefix) == vllm_cells(sums, MODEL)


def processes_line(text: str) -> str:
    (line,) = [x for x in text.splitlines() if "Lite profiler summary" in x]
    return line


def layout(**env: str | None) -> tuple[str, str]:
    proc = run_python(LAYOUT, timeout=120, check=True, **env)
    assert proc.stdout.rstrip().endswith("MAIN DONE"), proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.stdout, proc.stderr


@pytest.fixture
def vllm_path(tmp_path: Any) -> str:
    # vLLM's own habit: the path names a file; liteprof writes a directory beside it.
    return os.path.join(os.fspath(tmp_path), "lite", "vllm_lite.log")


@pytest.mark.usefixtures("backend")
@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_main_process_reports_every_rank0_process_through_vllms_logger(
    vllm_path: str, method: str
) -> None:
    out, err = layout(START_METHOD=method, VLLM_LOGGING="1", VLLM_LITE_PROFILER_LOG_PATH=vllm_path)
    # Through vLLM's handler (stdout, with its prefix), not on stderr; root untouched.
    assert "VLLM-HANDLER vllm.lite_profiler| Lite profiler summary" in out
    assert err == ""
    assert_vllm_tables(out, expected_sums())
    procs = processes_line(out)
    assert "EngineCore_DP0" in procs and "VllmWorker-0" in procs
    assert "EngineCore_DP1" not in procs and "VllmWorker-1" not in procs
    assert ": 2 processes:" in procs
    # liteprof's report follows, with what vLLM's tables leave out (the failed scope).
    report = out[out.index("liteprof ") :]
    forward = next(x for x in report.splitlines() if x.startswith("Model:Forward "))
    assert forward.split()[1:3] == [str(STEPS + 1), "1"]  # count, errors
    assert "Model:Preprocess" in report and "Group Model" in report
    # The logs are removed afterwards, and the directory liteprof made beside the path.
    assert not os.path.exists(vllm_path + ".liteprof")
    assert not os.path.exists(vllm_path)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_variable_set_after_import_reaches_forked_and_spawned_engines(
    vllm_path: str, method: str
) -> None:
    # No vllm logger configured: the summary goes to stderr, where the user looks.
    out, err = layout(START_METHOD=method, SET_AFTER_IMPORT=vllm_path)
    assert "Lite profiler summary" in err and "Lite profiler summary" not in out
    assert_vllm_tables(err, expected_sums())
    assert ": 2 processes:" in processes_line(err)
    assert not os.path.exists(vllm_path + ".liteprof")


def test_two_runs_in_a_row_on_the_same_path_do_not_mix(vllm_path: str) -> None:
    directory = vllm_path + ".liteprof"
    # A run that never reports (killed, or no call): its logs stay behind ...
    layout(VLLM_LITE_PROFILER_LOG_PATH=vllm_path, SKIP_REPORT="1")
    leftovers = log_files(directory)
    assert len(leftovers) == 2
    # ... and the next runs on the same path report their own events only.
    for _ in range(2):
        _, err = layout(VLLM_LITE_PROFILER_LOG_PATH=vllm_path)
        assert_vllm_tables(err, expected_sums())
        assert ": 2 processes:" in processes_line(err)
        assert "2 log file(s) of earlier runs under this path are left out" in err
        assert log_files(directory) == leftovers  # this run's removed, the old ones kept


def test_under_liteprof_run_the_logs_are_left_to_its_report(vllm_path: str, tmp_path: Any) -> None:
    logdir = os.path.join(os.fspath(tmp_path), "run-log")
    script = os.path.join(os.fspath(tmp_path), "layout.py")
    with open(script, "w") as fh:
        fh.write(LAYOUT)
    proc = cli(
        "run",
        "--log",
        logdir,
        "--",
        sys.executable,
        script,
        VLLM_LITE_PROFILER_LOG_PATH=vllm_path,
        START_METHOD="fork",
    )
    assert proc.returncode == 0, proc.stderr
    # The program's report (stderr) summarizes where the run records ...
    assert f"Lite profiler summary ({os.path.abspath(logdir)})" in proc.stderr
    assert_vllm_tables(proc.stderr, expected_sums())
    # ... keeps the logs for liteprof run, whose own report (stdout) has the same events.
    assert len(log_files(logdir)) == 2
    assert "MAIN DONE" in proc.stdout and "liteprof " in proc.stdout
    run_report = proc.stdout[proc.stdout.index("MAIN DONE") :]
    assert "EngineCore_DP0" in run_report and "VllmWorker-0" in run_report
    assert "VllmWorker-1" not in run_report
    assert not os.path.exists(vllm_path + ".liteprof")  # nothing went to the vLLM path


def test_an_engine_inside_the_main_process_records(vllm_path: str) -> None:
    out, err = layout(IN_PROCESS="1", VLLM_LITE_PROFILER_LOG_PATH=vllm_path, VLLM_LOGGING="1")
    assert_vllm_tables(out, expected_sums(), prefix="")
    assert ": 1 processes: MainProcess" in processes_line(out)
    assert not os.path.exists(vllm_path + ".liteprof")


@pytest.mark.parametrize(
    ("patterns", "workers", "engines", "count"),
    [("*", (0, 1), (0, 1), 4), ("VllmWorker-1,EngineCore_DP0", (1,), (0,), 2)],
)
def test_liteprof_processes_overrides_which_ranks_record(
    vllm_path: str, patterns: str, workers: tuple[int, ...], engines: tuple[int, ...], count: int
) -> None:
    _, err = layout(VLLM_LITE_PROFILER_LOG_PATH=vllm_path, LITEPROF_PROCESSES=patterns)
    assert_vllm_tables(err, expected_sums(workers, engines))
    assert f": {count} processes:" in processes_line(err)


@pytest.mark.parametrize("name", ["plain-dir", "dir.d" + os.sep], ids=["plain", "final-sep"])
def test_directory_path_and_nothing_recorded(tmp_path: Any, name: str) -> None:
    path = os.path.join(os.fspath(tmp_path), name)
    directory = path.rstrip(os.sep)  # a final separator says: this is the directory
    proc = run_python(
        """
        from liteprof.compat.vllm import LiteScope, maybe_emit_lite_profiler_report
        maybe_emit_lite_profiler_report()  # nothing recorded: says so, never raises
        with LiteScope("Step:Model"):
            pass
        maybe_emit_lite_profiler_report()
        """,
        VLLM_LITE_PROFILER_LOG_PATH=path,
    )
    first, _, second = proc.stderr.partition("Lite profiler summary")
    assert "no process of this run recorded" in first
    assert f"({directory}): 1 processes: MainProcess" in second
    assert not os.path.exists(directory)


def test_unreadable_logs_and_a_bad_path_never_raise(tmp_path: Any) -> None:
    base = os.fspath(tmp_path)
    blocker = os.path.join(base, "a-file")
    with open(blocker, "w") as fh:
        fh.write("not a directory")
    proc = run_python(
        """
        import os
        from liteprof.compat.vllm import LiteScope, maybe_emit_lite_profiler_report
        with LiteScope("Step:Model"):
            pass
        maybe_emit_lite_profiler_report()
        print("survived")
        """,
        VLLM_LITE_PROFILER_LOG_PATH=os.path.join(blocker, "sub"),
    )
    assert proc.stdout.strip() == "survived"
    assert "Traceback" not in proc.stderr
    # A header-less log of this run (a process killed as it created its file) is
    # skipped and counted; the report of the rest goes on.
    directory = os.path.join(base, "prof")
    proc = run_python(
        """
        import os
        from liteprof.compat.vllm import LiteScope, maybe_emit_lite_profiler_report
        with LiteScope("Step:Model"):
            pass
        d = os.environ["VLLM_LITE_PROFILER_LOG_PATH"]
        with open(os.path.join(d, "liteprof-1-dead.lpf"), "wb") as fh:
            fh.write(bytes(4096))
        maybe_emit_lite_profiler_report()
        print("survived")
        """,
        VLLM_LITE_PROFILER_LOG_PATH=directory,
    )
    assert proc.stdout.strip() == "survived"
    assert "1 log file(s) without a readable header are skipped" in proc.stderr
    assert "Top-level pipeline events" in proc.stderr
    assert not os.path.exists(directory)


# -- in this process: the rules -------------------------------------------------------------


@pytest.fixture
def compat() -> Iterator[Any]:
    saved = session.default_selector
    from liteprof.compat import vllm

    yield vllm
    session.default_selector = saved


def test_which_processes_record_by_default(compat: Any) -> None:
    rule = compat.records_by_default
    for name in ("MainProcess", "EngineCore_DP0", "VllmWorker-0", "VllmWorker-00", "Process-3"):
        assert rule(name), name
    for name in ("EngineCore_DP1", "EngineCore_DP12", "VllmWorker-1", "VllmWorker-7"):
        assert not rule(name), name
    assert rule("VllmWorker-x") and rule("EngineCore_DP") and rule("VllmWorker-\u0661")


def test_path_that_is_or_names_a_file_becomes_a_directory_beside_it(
    compat: Any, tmp_path: Any
) -> None:
    base = os.fspath(tmp_path)
    existing_dir = os.path.join(base, "profile.d")
    os.mkdir(existing_dir)
    existing_file = os.path.join(base, "old")
    open(existing_file, "w").close()
    assert compat.log_directory(existing_dir) == existing_dir
    assert compat.log_directory(existing_file) == existing_file + ".liteprof"
    named = os.path.join(base, "vllm_lite.log")
    assert compat.log_directory(named) == named + ".liteprof"
    plain = os.path.join(base, "prof")
    assert compat.log_directory(plain) == plain
    assert compat.log_directory(named + os.sep) == named + os.sep


def test_tables_follow_vllms_formula_for_any_sums(compat: Any) -> None:
    cases = [
        {},  # nothing recorded: zeros, not a division by zero
        {"Step:Model": 1},
        {"Step:Schedule": 999_999_999, "Step:Model": 1_000_000_001, "Step:Output": 5},
        {"Model:Forward": 10**15, "Model:Bookkeep": 123_456_789_012},
    ]
    for sums in cases:
        text = "\n".join(compat.breakdown_tables(sums))
        assert table_cells(text, TOP_TITLE) == vllm_cells(sums, TOP)
        assert table_cells(text, MODEL_TITLE) == vllm_cells(sums, MODEL)
