"""The command line, driven as a user would: ``python -m liteprof ...``."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from typing import Any

import pytest

from .helpers import child_env, cli, log_files, report_json, run_python, scopes_by_name

ENGINE = os.path.join(os.path.dirname(os.path.dirname(__file__)), "examples", "engine.py")

RECORD = """
import liteprof, threading
S = liteprof.Scope("Step:Model")
def step():
    with liteprof.scope("Step:Schedule"):
        pass
    with S:
        with liteprof.scope("Model:Forward"):
            pass
for _ in range(50):
    step()
try:
    with liteprof.scope("Step:Fails"):
        raise ValueError
except ValueError:
    pass
t = threading.Thread(target=step, name="helper")
t.start(); t.join()
"""


@pytest.fixture
def recorded(backend: str, logdir: str) -> str:
    run_python(RECORD, LITEPROF_LOG=logdir, RANK="2")
    return logdir


def test_report_json_has_every_spec_field(recorded: str) -> None:
    report = report_json(recorded)
    assert set(report) >= {
        "liteprof_version",
        "sources",
        "records",
        "skipped",
        "wall_ns",
        "scopes",
        "groups",
        "processes",
    }
    assert report["sources"] == [recorded]
    assert report["records"] == 50 * 3 + 1 + 3
    assert report["skipped"] == 0
    assert isinstance(report["wall_ns"], int) and report["wall_ns"] > 0
    for row in report["scopes"]:
        assert set(row) == {
            "name",
            "group",
            "count",
            "errors",
            "total_ns",
            "self_ns",
            "mean_ns",
            "min_ns",
            "p50_ns",
            "p90_ns",
            "p99_ns",
            "max_ns",
        }
        assert isinstance(row["mean_ns"], float)
        for key in (
            "count",
            "errors",
            "total_ns",
            "self_ns",
            "min_ns",
            "p50_ns",
            "p90_ns",
            "p99_ns",
            "max_ns",
        ):
            assert isinstance(row[key], int)
        assert row["min_ns"] <= row["p50_ns"] <= row["p90_ns"] <= row["p99_ns"] <= row["max_ns"]
        assert 0 <= row["self_ns"] <= row["total_ns"]
    totals = [r["total_ns"] for r in report["scopes"]]
    assert totals == sorted(totals, reverse=True)
    rows = scopes_by_name(report)
    assert rows["Step:Model"]["count"] == 51 and rows["Step:Model"]["group"] == "Step"
    assert rows["Step:Fails"]["errors"] == 1
    assert rows["Step:Model"]["self_ns"] == (
        rows["Step:Model"]["total_ns"] - rows["Model:Forward"]["total_ns"]
    )
    groups = {g["group"]: g for g in report["groups"]}
    assert [g["group"] for g in report["groups"]] == ["Step", "Model"]
    step = groups["Step"]
    assert step["total_ns"] == sum(s["total_ns"] for s in step["scopes"])
    assert sum(s["share"] for s in step["scopes"]) == pytest.approx(1.0)
    (proc,) = report["processes"]
    assert set(proc) >= {"pid", "name", "host", "rank", "records"}  # SPEC's keys, and more
    assert proc["warnings"] == []
    assert proc["rank"] == 2 and proc["name"] == "MainProcess" and proc["records"] == 154


def test_report_by_process_and_thread(recorded: str) -> None:
    by_proc = report_json(recorded, by="process")
    assert all("pid" in r for r in by_proc["scopes"])
    by_thread = report_json(recorded, by="thread")
    model = [r for r in by_thread["scopes"] if r["name"] == "Step:Model"]
    assert sorted(r["thread"] for r in model) == ["MainThread", "helper"]
    assert all(isinstance(r["tid"], int) and isinstance(r["pid"], int) for r in model)
    assert sorted(r["count"] for r in model) == [1, 50]


@pytest.mark.parametrize("fmt", ["table", "csv", "markdown"])
def test_text_formats(recorded: str, fmt: str) -> None:
    proc = cli("report", recorded, "--format", fmt)
    assert proc.returncode == 0, proc.stderr
    assert "Step:Model" in proc.stdout
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(proc.stdout)))
        assert {r["name"] for r in rows} == {
            "Step:Model",
            "Step:Schedule",
            "Model:Forward",
            "Step:Fails",
        }
    if fmt == "table":
        assert "Group Step" in proc.stdout and "TOTAL" in proc.stdout


@pytest.mark.usefixtures("backend")
def test_names_are_escaped_so_a_row_stays_one_row(logdir: str) -> None:
    run_python(
        """
        import liteprof
        for name in ["a|b", "new\\nline", "tab\\tx", "<b>bold</b>", "", "x" * 10000]:
            with liteprof.scope(name):
                pass
        """,
        LITEPROF_LOG=logdir,
    )
    report = report_json(logdir)
    assert len(report["scopes"]) == 6
    assert "new\nline" in scopes_by_name(report)
    csv_out = cli("report", logdir, "--format", "csv").stdout
    assert len(csv_out.splitlines()) == 1 + 6
    md = cli("report", logdir, "--format", "markdown").stdout
    table_rows = [
        line for line in md.splitlines() if line.startswith("| ") and not line.startswith("| ---")
    ]
    assert len(table_rows) == 1 + 6  # the header row and one per scope
    assert "<b>" not in md and "a\\|b" in md
    table = cli("report", logdir).stdout
    scope_lines = table.split("\n\n")[1].splitlines()
    assert len(scope_lines) == 3 + 6  # title, header, rule, one per scope


def test_vllm_text_log_with_malformed_lines(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(os.fspath(tmp_path), "vllm.log")
    with open(path, "w") as fh:
        fh.write("Step:Model|1000\nStep:Model|3000\n\nStep:Schedule|500\n")
        fh.write("garbage line\nStep:Model|notanumber\nname|with|pipes|700\n|-5\n")
    report = report_json(path)
    assert report["records"] == 4
    assert report["skipped"] == 3
    assert report["wall_ns"] is None and report["processes"] == []
    rows = scopes_by_name(report)
    assert rows["Step:Model"]["total_ns"] == 4000 and rows["Step:Model"]["count"] == 2
    assert rows["Step:Model"]["self_ns"] == 4000
    assert rows["name|with|pipes"]["total_ns"] == 700


@pytest.mark.usefixtures("backend")
def test_run_reports_and_returns_the_commands_status(tmp_path: os.PathLike[str]) -> None:
    script = os.path.join(os.fspath(tmp_path), "app.py")
    with open(script, "w") as fh:
        fh.write("import liteprof, sys\nwith liteprof.scope('App:Work'):\n    pass\nsys.exit(3)\n")
    proc = cli("run", "--format", "json", "--", sys.executable, script)
    assert proc.returncode == 3
    report = json.loads(proc.stdout)
    assert scopes_by_name(report)["App:Work"]["count"] == 1
    (source,) = report["sources"]
    assert not os.path.exists(source)  # the temporary log folder is gone


@pytest.mark.usefixtures("backend")
def test_run_with_log_keeps_it(tmp_path: os.PathLike[str]) -> None:
    log = os.path.join(os.fspath(tmp_path), "kept")
    proc = cli("run", "--log", log, "--", sys.executable, ENGINE, "--steps", "20")
    assert proc.returncode == 0, proc.stderr
    assert "Step:Model" in proc.stdout and "Model:Forward" in proc.stdout
    assert len(log_files(log)) == 1


def test_console_script_and_module_agree() -> None:
    proc = cli("--version")
    assert proc.returncode == 0 and "liteprof" in proc.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["report", "/nonexistent/path"],
        ["report", "--format", "xml", "."],
        ["report"],
        ["diff", "/nonexistent/a", "/nonexistent/b"],
        ["bogus"],
        ["run"],
        ["run", "--", "/nonexistent/program"],
    ],
)
def test_errors_are_one_line_and_exit_2(args: list[str]) -> None:
    proc = cli(*args)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_file_that_is_not_a_log(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(os.fspath(tmp_path), "image.png")
    with open(path, "wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 10)
    proc = cli("report", path)
    assert proc.returncode == 2
    assert "not a liteprof log" in proc.stderr and "Traceback" not in proc.stderr


def test_run_log_that_is_a_file_is_refused_before_the_command_runs(
    tmp_path: os.PathLike[str],
) -> None:
    log = os.path.join(os.fspath(tmp_path), "results.txt")
    with open(log, "w") as fh:
        fh.write("keep me\n")
    marker = os.path.join(os.fspath(tmp_path), "ran")
    code = f"open({marker!r}, 'w').close()"
    proc = cli("run", "--log", log, "--", sys.executable, "-c", code)
    assert proc.returncode == 2, proc.stderr
    assert "not a directory" in proc.stderr and log in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not os.path.exists(marker)  # a run that cannot record is not started
    with open(log) as fh:
        assert fh.read() == "keep me\n"


@pytest.mark.usefixtures("backend")
def test_vllm_compat_switch_by_one_import(tmp_path: os.PathLike[str]) -> None:
    log = os.path.join(os.fspath(tmp_path), "vllm_lite.log")
    proc = run_python(
        """
        import logging, os
        logging.basicConfig(level=logging.INFO)
        from liteprof.compat.vllm import LiteScope, LiteProfilerScope, \\
            maybe_emit_lite_profiler_report
        for _ in range(3):
            with LiteScope("Step:Model"):
                with LiteProfilerScope("Model:Forward"):
                    pass
        maybe_emit_lite_profiler_report()
        print(sorted(os.listdir(os.environ["VLLM_LITE_PROFILER_LOG_PATH"]))
              if os.path.isdir(os.environ["VLLM_LITE_PROFILER_LOG_PATH"]) else "removed")
        """,
        VLLM_LITE_PROFILER_LOG_PATH=log,
    )
    assert "Step:Model" in proc.stderr and "Group Model" in proc.stderr
    assert proc.stdout.strip() == "removed"


@pytest.mark.usefixtures("backend")
def test_empty_directory_is_an_error_and_run_of_a_silent_program_says_so(
    tmp_path: os.PathLike[str],
) -> None:
    empty = os.path.join(os.fspath(tmp_path), "empty")
    os.mkdir(empty)
    proc = cli("report", empty)
    assert proc.returncode == 2 and "no liteprof logs" in proc.stderr
    proc = cli("run", "--", sys.executable, "-c", "print('hi')")
    assert proc.returncode == 0
    assert proc.stdout.strip() == "hi"
    assert "nothing was recorded" in proc.stderr


@pytest.mark.usefixtures("backend")
def test_run_with_a_reused_log_directory_reports_this_run_only(
    tmp_path: os.PathLike[str],
) -> None:
    log = os.path.join(os.fspath(tmp_path), "reused")
    code = "import liteprof\nwith liteprof.scope('A:b'):\n    pass\n"
    for expected_files in (1, 2):
        proc = cli("run", "--log", log, "--format", "json", "--", sys.executable, "-c", code)
        assert proc.returncode == 0, proc.stderr
        report = json.loads(proc.stdout)
        assert report["records"] == 1 and len(report["processes"]) == 1
        assert len(log_files(log)) == expected_files


def test_headerless_log_and_header_only_logs_do_not_spoil_the_report(recorded: str) -> None:
    open(os.path.join(recorded, "liteprof-1-empty.lpf"), "wb").close()
    report = report_json(recorded)
    assert report["skipped"] == 1
    assert isinstance(report["wall_ns"], int)
    (real,) = [f for f in log_files(recorded) if os.path.getsize(f) > 0]
    with open(real, "rb") as fh:
        header = fh.read(4096)
    cut = [os.path.join(recorded, f"cut{i}.bin") for i in range(2)]
    for path in cut:
        with open(path, "wb") as fh:
            fh.write(header)
    text = os.path.join(recorded, "v.txt")
    with open(text, "w") as fh:
        fh.write("A:x|100\n")
    proc = cli("report", *cut, text, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["records"] == 1


def test_an_output_that_is_an_input_log_is_refused_and_the_log_kept(
    recorded: str, tmp_path: os.PathLike[str]
) -> None:
    (log,) = log_files(recorded)
    text_log = os.path.join(os.fspath(tmp_path), "vllm.log")
    with open(text_log, "w") as fh:
        fh.write("Step:Model|1000\n")
    kept = {}
    for path in (log, text_log):
        with open(path, "rb") as fh:
            kept[path] = fh.read()
    for args in (
        ["export", recorded, "--format", "chrome", "-o", log],
        ["export", log, "--format", "folded", "-o", log],
        ["report", text_log, "-o", text_log],
        ["report", recorded, "--format", "html", "-o", log],
        ["diff", text_log, recorded, "-o", text_log],
    ):
        proc = cli(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert "is one of the logs to read" in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        for path, data in kept.items():
            with open(path, "rb") as fh:
                assert fh.read() == data, (args, path)


def test_output_dash_is_stdout_as_for_export(recorded: str, tmp_path: os.PathLike[str]) -> None:
    cwd = os.fspath(tmp_path)
    for args, start in (
        (["report", recorded, "--format", "json", "-o", "-"], "{"),
        (["report", recorded, "--format", "html", "-o", "-"], "<!DOCTYPE html>"),
        (["diff", recorded, recorded, "--format", "json", "-o", "-"], "{"),
        (["export", recorded, "--format", "folded", "-o", "-"], "Step:"),
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "liteprof", *args],
            cwd=cwd,
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, (args, proc.stderr)
        assert proc.stdout.lstrip().startswith(start), (args, proc.stdout[:80])
        assert not os.path.exists(os.path.join(cwd, "-")), args  # no file named "-"
    data = json.loads(cli("report", recorded, "--format", "json", "-o", "-").stdout)
    assert data == report_json(recorded)


def test_json_rows_are_written_as_json_dumps_writes_each_row() -> None:
    # The JSON writer joins a block of rows from column texts and folds what every row
    # of a block shares (one value, paths of one name) into the literals: each row line
    # must still be exactly json.dumps of that row, whatever mix a block holds.
    from liteprof.analysis import types as T
    from liteprof.renderers.json import json_chunks

    n = 3 * T.BLOCK + 5  # several blocks, the last one short
    # Names to escape in the first and last blocks; in the second, only names written as
    # they are (a lone surrogate and U+2028 included: JSON escapes neither).
    names = [f'g{i % 3}:n"{i}' if i % 7 else f"n{i}\n" for i in range(n)]
    names[T.BLOCK : 2 * T.BLOCK] = [f"g:n{i}\udfff\u2028" for i in range(T.BLOCK)]
    constant = [5] * n
    # Floats equal to ints: positive, then a zero (-0.0 must stay -0.0), then beyond 2**53.
    total = [i + 1 for i in range(n)]
    total[T.BLOCK + 3] = 0
    total[2 * T.BLOCK + 1] = 10**17  # a float of it is written 1e+17

    def columns(a: int, b: int) -> list[list[Any]]:
        idx = range(a, b)
        lone = a >= T.BLOCK  # from the second block on, every path is one name
        return [
            [[names[i]] if lone or i % 2 else [names[i - 1], names[i]] for i in idx],
            names[a:b],
            constant[a:b],
            [0 if i < 2 * T.BLOCK else i for i in idx],
            [None if i < T.BLOCK else "x" if i % 2 else None for i in idx],
            [None] * (b - a),
            [-0.0 if i % 2 else 0.0 for i in idx],
            [1.5] * (b - a),
            [True] * (b - a),
            [{"pid": i, "rank": None} for i in idx],
            [i / 3 if i % 5 else None for i in idx],
            constant[a:b],
            total[a:b],
            [float(t) if t else -0.0 for t in total[a:b]],  # whole: the ints and ".0"
            [f"g{i % 3}" if i % 4 else None for i in idx],  # few texts: escaped once each
        ]

    fields = ["path", "name", "depth", "count", "parent", "gone", "zero", "half", "flag"]
    fields += ["slowest", "spread", "again", "total", "mean", "group"]
    kinds = [T.PATH, T.STR, T.INT, T.INT, T.OPT_STR, T.OPT_INT, T.FLOAT, T.FLOAT, T.INT]
    kinds += [T.ANY, T.OPT_FLOAT, T.INT, T.INT, T.FLOAT, T.OPT_STR]
    rows: T.Rows[Any] = T.Rows(fields, kinds, n, columns)
    same: T.Rows[Any] = T.Rows(
        ["name", "depth"], [T.STR, T.INT], 3, lambda a, b: [["a"] * (b - a), [0] * (b - a)]
    )
    text = "".join(json_chunks({"rows": rows, "same": same, "empty": T.Rows.empty(["a"], [T.INT])}))
    assert json.loads(text) == T.plain({"rows": rows, "same": same, "empty": []})
    lines = text.split("\n")  # not splitlines(): U+2028 is not a line break in JSON
    start = lines.index('  "rows": [') + 1
    written = [line.rstrip(",") for line in lines[start : start + n]]
    expected = ["    " + json.dumps(r, ensure_ascii=False) for r in T.plain(rows)]
    expected = [e.replace('"flag": true', '"flag": 1') for e in expected]  # an int field
    assert written == expected
    assert lines[start + n] == "  ],"


def test_reading_commands_import_numpy_with_one_blas_thread_and_leak_no_variable() -> None:
    code = """
        import json, os
        from liteprof.cli.common import require_numpy
        require_numpy()
        tasks = os.listdir("/proc/self/task") if os.path.isdir("/proc/self/task") else None
        print(json.dumps([os.environ.get("OPENBLAS_NUM_THREADS"), tasks and len(tasks)]))
    """
    variable, threads = json.loads(run_python(code, OPENBLAS_NUM_THREADS=None).stdout)
    assert variable is None  # put back: a program liteprof runs does not inherit it
    assert threads in (None, 1)  # no BLAS worker threads next to the reading
    # A value the user set is theirs: kept.
    assert json.loads(run_python(code, OPENBLAS_NUM_THREADS="2").stdout)[0] == "2"
