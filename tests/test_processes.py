"""Processes: fork, spawn, forkserver, pools, subprocesses, filters, ranks.

Crash survival (SIGKILL, SIGTERM, os._exit, SIGSEGV) is in ``test_crash.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from .helpers import child_env, log_files, read, run_python, scopes_by_name

pytestmark = pytest.mark.usefixtures("backend")  # every test here records


def test_env_var_records_every_python_subprocess(logdir: str) -> None:
    run_python(
        """
        import subprocess, sys, liteprof
        with liteprof.scope("Parent:Run"):
            subprocess.run([sys.executable, "-c",
                "import liteprof\\nwith liteprof.scope('Child:Run'): pass"], check=True)
        """,
        LITEPROF_LOG=logdir,
    )
    files = log_files(logdir)
    assert len(files) == 2
    report = read(logdir)
    assert set(scopes_by_name(report)) == {"Parent:Run", "Child:Run"}
    assert len({p["pid"] for p in report["processes"]}) == 2


def test_fork_child_writes_its_own_file_and_never_repeats_parent_events(logdir: str) -> None:
    run_python(
        """
        import os, liteprof
        for _ in range(10):
            with liteprof.scope("Before"):
                pass
        with liteprof.scope("OpenAtFork"):
            pid = os.fork()
            if pid == 0:
                for _ in range(5):
                    with liteprof.scope("InChild"):
                        pass
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        with liteprof.scope("After"):
            pass
        """,
        LITEPROF_LOG=logdir,
    )
    files = log_files(logdir)
    assert len(files) == 2
    per_file = [scopes_by_name(read(f)) for f in files]
    parent = next(r for r in per_file if "Before" in r)
    child = next(r for r in per_file if "InChild" in r)
    assert parent["Before"]["count"] == 10
    assert parent["OpenAtFork"]["count"] == 1
    assert parent["After"]["count"] == 1
    assert "InChild" not in parent
    # The child neither copies the parent's events nor records the scope opened before it.
    assert set(child) == {"InChild"}
    assert child["InChild"]["count"] == 5


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_multiprocessing_start_methods_all_record(logdir: str, method: str) -> None:
    run_python(
        f"""
        import multiprocessing as mp, liteprof

        def work(i):
            with liteprof.scope("Worker:Task"):
                return i * i

        if __name__ == "__main__":
            ctx = mp.get_context("{method}")
            with liteprof.scope("Main:Pool"):
                with ctx.Pool(2) as pool:
                    assert pool.map(work, range(20)) == [i * i for i in range(20)]
            p = ctx.Process(target=work, args=(1,), name="Single")
            p.start(); p.join()
            assert p.exitcode == 0
        """,
        LITEPROF_LOG=logdir,
    )
    report = read(logdir)
    rows = scopes_by_name(report)
    assert rows["Worker:Task"]["count"] == 21
    assert rows["Main:Pool"]["count"] == 1
    names = {p["name"] for p in report["processes"]}
    assert "MainProcess" in names and "Single" in names


def test_process_pool_executor_records(logdir: str) -> None:
    run_python(
        """
        from concurrent.futures import ProcessPoolExecutor
        import liteprof

        def work(i):
            with liteprof.scope("Exec:Task"):
                return i

        if __name__ == "__main__":
            with ProcessPoolExecutor(2) as ex:
                assert sum(ex.map(work, range(30))) == sum(range(30))
        """,
        LITEPROF_LOG=logdir,
    )
    assert scopes_by_name(read(logdir))["Exec:Task"]["count"] == 30


def test_process_filter_with_vllm_process_names(logdir: str) -> None:
    run_python(
        """
        import multiprocessing as mp, liteprof

        def work():
            for _ in range(3):
                with liteprof.scope("Engine:Step"):
                    pass

        if __name__ == "__main__":
            ctx = mp.get_context("fork")
            procs = [ctx.Process(target=work, name=n)
                     for n in ("EngineCore_DP0", "EngineCore_DP1", "VllmWorker-0",
                               "VllmWorker-1", "APIServer")]
            for p in procs: p.start()
            for p in procs: p.join()
            work()  # MainProcess: filtered out too
        """,
        LITEPROF_LOG=logdir,
        LITEPROF_PROCESSES="EngineCore_DP0,VllmWorker-0",
    )
    report = read(logdir)
    assert sorted(p["name"] for p in report["processes"]) == ["EngineCore_DP0", "VllmWorker-0"]
    assert scopes_by_name(report)["Engine:Step"]["count"] == 6


def test_rank_from_environment_and_header_fields(logdir: str) -> None:
    for rank_env in ({"RANK": "3", "LOCAL_RANK": "1"}, {"LOCAL_RANK": "1"}, {}):
        run_python(
            """
            import liteprof
            with liteprof.scope("R"):
                pass
            """,
            LITEPROF_LOG=logdir,
            RANK=rank_env.get("RANK"),
            LOCAL_RANK=rank_env.get("LOCAL_RANK"),
        )
    report = read(logdir)
    assert sorted((p["rank"] is None, p["rank"]) for p in report["processes"]) == [
        (False, 1),
        (False, 3),
        (True, None),
    ]
    for p in report["processes"]:
        assert p["host"] and isinstance(p["pid"], int) and p["records"] == 1
        assert p["name"] == "MainProcess"


# What ``import liteprof`` and recording may never pull in (numpy: the reader's only).
HEAVY: tuple[str, ...] = ("numpy", "rich", "asyncio", "pyarrow", "pandas", "plotly")
HEAVY += ("prometheus_client", "opentelemetry", "google", "torch")
# The rooms after the file on the route (docs/ARCHITECTURE.md): the recording side never
# imports them.
LATER_ROOMS = ("liteprof.analysis", "liteprof.renderers", "liteprof.exporters", "liteprof.cli")


@pytest.mark.parametrize("recording", [False, True], ids=["not recording", "LITEPROF_LOG set"])
def test_import_liteprof_imports_no_numpy_nor_anything_heavy(recording: bool, logdir: str) -> None:
    """Also while it records (``LITEPROF_LOG``), and up to the end of the process: the
    check at exit runs after liteprof's own exit handler has closed the log."""
    proc = run_python(
        """
        import atexit, json, sys

        def modules(before=set(sys.modules)):
            return sorted(set(sys.modules) - before)

        atexit.register(lambda: print(json.dumps(["at exit", modules()])))  # runs last
        import liteprof
        print(json.dumps(["imported", modules()]))
        with liteprof.scope("Import:Check"):
            pass
        print(json.dumps(["recorded", modules(), liteprof.enabled()]))
        """,
        LITEPROF_LOG=logdir if recording else None,
    )
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [line[0] for line in lines] == ["imported", "recorded", "at exit"], proc.stdout
    assert lines[1][2] is recording
    for when, new, *_ in lines:
        assert "liteprof" in new  # the check sees what the import brought
        assert not [m for m in new if m.split(".")[0] == "numpy"], (when, "numpy")
        heavy = [m for m in new if m.split(".")[0] in HEAVY]
        assert heavy == [], (when, heavy)
        later = [m for m in new if m.startswith(LATER_ROOMS)]
        assert later == [], (when, later)
    if recording:
        assert read(logdir)["records"] == 1
    else:
        assert log_files(logdir) == []


def test_recording_failure_never_breaks_the_program(tmp_path: os.PathLike[str]) -> None:
    blocker = os.path.join(os.fspath(tmp_path), "plain-file")
    with open(blocker, "w") as fh:
        fh.write("x")
    proc = run_python(
        """
        import liteprof
        total = 0
        for i in range(1000):
            with liteprof.scope("x"):
                total += i
        print(total, liteprof.enabled())
        """,
        LITEPROF_LOG=os.path.join(blocker, "logs"),
    )
    assert proc.stdout.split() == [str(sum(range(1000))), "False"]
    assert proc.stderr.count("recording stopped") == 1


def test_straggler_rank_stands_out_in_cross_process_summary(logdir: str) -> None:
    code = """
        import os, time, liteprof
        rank = int(os.environ["RANK"])
        for _ in range(5):
            with liteprof.scope("Step:Model"):
                time.sleep(0.002 if rank != 2 else 0.04)
        """
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(code)],
            env=child_env(LITEPROF_LOG=logdir, RANK=str(rank)),
        )
        for rank in range(4)
    ]
    for p in procs:
        assert p.wait(timeout=60) == 0
    report = read(logdir)
    ranks = [p["rank"] for p in report["processes"]]
    assert None not in ranks, ranks
    assert sorted(r for r in ranks if r is not None) == [0, 1, 2, 3]
    (entry,) = [c for c in report["cross_process"] if c["name"] == "Step:Model"]
    assert entry["processes"] == 4
    assert entry["slowest"]["rank"] == 2
    assert entry["max_total_ns"] > 2 * entry["median_total_ns"]
    assert entry["min_total_ns"] <= entry["median_total_ns"] <= entry["max_total_ns"]
    by_proc = read(logdir, by="process")
    rows = [r for r in by_proc["scopes"] if r["name"] == "Step:Model"]
    assert len(rows) == 4 and len({r["pid"] for r in rows}) == 4


def test_filter_lets_forked_children_record_after_the_parent_recorded(logdir: str) -> None:
    run_python(
        """
        import multiprocessing as mp, liteprof

        def work():
            with liteprof.scope("Worker:Step"):
                pass

        if __name__ == "__main__":
            with liteprof.scope("Main:Setup"):  # MainProcess is filtered out here
                pass
            ctx = mp.get_context("fork")
            ps = [ctx.Process(target=work, name=f"Worker-{i}") for i in range(2)]
            for p in ps: p.start()
            for p in ps: p.join()
        """,
        LITEPROF_LOG=logdir,
        LITEPROF_PROCESSES="Worker-*",
    )
    report = read(logdir)
    assert sorted(p["name"] for p in report["processes"]) == ["Worker-0", "Worker-1"]
    assert set(scopes_by_name(report)) == {"Worker:Step"}


def test_relative_log_directory_is_the_same_for_children_elsewhere(
    tmp_path: os.PathLike[str],
) -> None:
    base = os.fspath(tmp_path)
    other = os.path.join(base, "other")
    os.mkdir(other)
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import subprocess, sys, liteprof
                with liteprof.scope("P"):
                    pass
                subprocess.run([sys.executable, "-c",
                    "import liteprof\\nwith liteprof.scope('C'): pass"], cwd={other!r},
                    check=True)
                """
            ),
        ],
        env=child_env(LITEPROF_LOG="rel"),
        cwd=base,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert len(log_files(os.path.join(base, "rel"))) == 2
    assert not os.path.exists(os.path.join(other, "rel"))
