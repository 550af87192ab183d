"""``liteprof export`` to chrome, speedscope, folded and parquet, each read by its consumer.

- chrome: ``json.load``, then event by event against the log;
- speedscope: validated against speedscope's own JSON schema (``tests/data/
  speedscope-1.25.0-file-format-schema.json``: ``dist/release/file-format-schema.json``
  of the npm package ``speedscope`` 1.25.0, MIT licence), then replayed as a stack;
- folded: each line's number is the self time of its stack, checked by walking parents;
- parquet: queried with DuckDB, giving the report's counts and totals.
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from typing import Any

import pytest

from liteprof.analysis.report import build_report
from liteprof.log.reader import read_logs

from .exportkit import Ev, write_log
from .helpers import cli
from .test_export import _record_program, _tasks_log

SCHEMA = os.path.join(
    os.path.dirname(__file__), "data", "speedscope-1.25.0-file-format-schema.json"
)


def _export(tmp_path: Any, logs: str, fmt: str, *extra: str) -> str:
    out = os.path.join(str(tmp_path), f"out.{fmt}")
    proc = cli("export", logs, "--format", fmt, "-o", out, *extra)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture
def recorded(backend: str, logdir: str) -> str:
    _record_program(logdir)
    return logdir


def test_chrome_event_by_event(tmp_path: Any, recorded: str) -> None:
    with open(_export(tmp_path, recorded, "chrome")) as fh:
        doc = json.load(fh)
    events = read_logs([recorded])
    origin = doc["otherData"]["liteprof_origin_wall_ns"]
    assert origin == events.first_ns
    xs = [e for e in doc["traceEvents"] if e["ph"] == "X"]
    meta = [e for e in doc["traceEvents"] if e["ph"] == "M"]
    assert len(xs) == events.records
    pid = events.processes[0]["pid"]
    threads = {
        e["tid"]: e["args"]["name"] for e in meta if e["name"] == "thread_name" and e["pid"] == pid
    }
    assert sorted(threads.values()) == ["MainThread", "worker"]
    assert {e["args"]["name"] for e in meta if e["name"] == "process_name"} == {
        events.processes[0]["name"]
    }
    # Rows in the log's order: X events are written in the same order.
    for i, x in enumerate(xs):
        name = events.names[int(events.name[i])]
        thread = events.threads[int(events.thread[i])]
        assert x["name"] == name
        assert x["cat"] == (name.split(":")[0] if ":" in name else "")
        assert round(x["ts"] * 1000) == int(events.start[i]) - origin  # ns kept exactly
        assert round(x["dur"] * 1000) == int(events.dur[i])
        assert x["pid"] == pid and threads[x["tid"]] == thread["name"]
        assert x["tid"] == thread["tid"]
        assert x.get("args", {}).get("error", False) == bool(events.error[i])


def test_chrome_tasks_get_threads_of_their_own(tmp_path: Any) -> None:
    logs = _tasks_log(os.path.join(str(tmp_path), "tasks"))
    with open(_export(tmp_path, logs, "chrome")) as fh:
        doc = json.load(fh)
    names = {e["tid"]: e["args"]["name"] for e in doc["traceEvents"] if e["name"] == "thread_name"}
    tid_of = {e["name"]: e["tid"] for e in doc["traceEvents"] if e["ph"] == "X"}
    assert names[tid_of["Main:loop"]] == "MainThread"
    assert [names[tid_of[f"Task:{k}"]] for k in (1, 2, 3)] == [
        f"MainThread task {k}" for k in (1, 2, 3)
    ]
    assert len({tid_of[f"Task:{k}"] for k in (1, 2, 3)} | {tid_of["Main:loop"]}) == 4


def _replay(
    profile: dict[str, Any], frames: list[dict[str, Any]]
) -> list[tuple[str, int, int, int]]:
    """speedscope's evented profile as (name, at, duration, depth), checking the stack."""
    stack: list[tuple[int, int]] = []
    out = []
    last = profile["startValue"]
    for ev in profile["events"]:
        assert ev["at"] >= last  # speedscope needs them in time order
        last = ev["at"]
        if ev["type"] == "O":
            stack.append((ev["frame"], ev["at"]))
        else:
            frame, at = stack.pop()
            assert frame == ev["frame"]  # closes the innermost open frame
            out.append((frames[frame]["name"], at, ev["at"] - at, len(stack)))
    assert not stack and last == profile["endValue"]
    return out


def test_speedscope_schema_and_stacks(tmp_path: Any, recorded: str) -> None:
    import jsonschema

    with open(_export(tmp_path, recorded, "speedscope")) as fh:
        doc = json.load(fh)
    with open(SCHEMA) as fh:
        jsonschema.validate(doc, json.load(fh))
    events = read_logs([recorded])
    origin = int(events.start.min())
    frames = doc["shared"]["frames"]
    assert len(doc["profiles"]) == 2  # one per thread
    got: dict[str, Counter[tuple[str, int, int, int]]] = {}
    for profile in doc["profiles"]:
        assert profile["unit"] == "nanoseconds"
        got[profile["name"].rsplit(" ", 1)[-1]] = Counter(_replay(profile, frames))
    end = events.start + events.dur
    for thread in ("MainThread", "worker"):
        want: Counter[tuple[str, int, int, int]] = Counter()
        for i in range(events.records):
            if events.threads[int(events.thread[i])]["name"] != thread:
                continue
            up = int(events.parent[i])
            if up >= 0 and not (events.start[up] <= events.start[i] and end[i] <= end[up]):
                continue  # a clock glitch the log itself has (see test_export._expected)
            item = (
                events.names[int(events.name[i])],
                int(events.start[i]) - origin,
                int(events.dur[i]),
                int(events.depth[i]),
            )
            want[item] += 1
        assert got[thread] >= want and sum(got[thread].values()) >= sum(want.values())


def test_speedscope_tasks(tmp_path: Any) -> None:
    import jsonschema

    logs = _tasks_log(os.path.join(str(tmp_path), "tasks"))
    with open(_export(tmp_path, logs, "speedscope")) as fh:
        doc = json.load(fh)
    with open(SCHEMA) as fh:
        jsonschema.validate(doc, json.load(fh))
    titles = [p["name"] for p in doc["profiles"]]
    assert len(titles) == 4 and sum(t.endswith(" task 2") for t in titles) == 1
    for profile in doc["profiles"]:
        spans = _replay(profile, doc["shared"]["frames"])
        assert spans  # each replays as one well-nested stack


def _stacks_by_parents(logs: str) -> dict[str, int]:
    events = read_logs([logs])
    sums: dict[str, int] = defaultdict(int)
    for i in range(events.records):
        path = []
        j = i
        while j >= 0:
            path.append(events.names[int(events.name[j])])
            j = int(events.parent[j])
        sums[";".join(reversed(path))] += int(events.self_ns[i])
    return {k: v for k, v in sums.items() if v > 0}


def test_folded_sums_are_self_times(tmp_path: Any, recorded: str) -> None:
    with open(_export(tmp_path, recorded, "folded")) as fh:
        lines = fh.read().splitlines()
    folded = {}
    for line in lines:
        stack, _, value = line.rpartition(" ")
        assert stack not in folded
        folded[stack] = int(value)
    assert folded == _stacks_by_parents(recorded)
    assert "main;fib;fib;fib" in folded and "main;Step:Model;Model:Forward;Model:Inner" in folded
    assert sum(folded.values()) == int(read_logs([recorded]).self_ns.sum())


def test_folded_takes_text_logs_and_odd_names(tmp_path: Any) -> None:
    text_log = os.path.join(str(tmp_path), "vllm.log")
    with open(text_log, "w") as fh:
        fh.write("Step:Model|1000\nStep:Model|500\nModel:Forward|300\nbroken line\n")
    with open(_export(tmp_path, text_log, "folded")) as fh:
        assert fh.read().splitlines() == ["Step:Model 1500", "Model:Forward 300"]
    logs = os.path.join(str(tmp_path), "odd")
    write_log(logs, {"T": [Ev("a;b c\nd", 10, 5, depth=1), Ev("top", 0, 100, child=5)]})
    with open(_export(tmp_path, logs, "folded")) as fh:
        assert fh.read().splitlines() == ["top 95", "top;a,b c d 5"]


def _readme_query() -> str:
    """The DuckDB query the README shows for the report's per-scope table."""
    with open(os.path.join(os.path.dirname(__file__), "..", "README.md")) as fh:
        text = fh.read()
    start = text.index("```sql\n", text.index("### Timeline")) + len("```sql\n")
    return text[start : text.index("```", start)]


README_QUERY = _readme_query()


def _duckdb(path: str, query: str) -> list[tuple[Any, ...]]:
    import duckdb

    con = duckdb.connect()
    try:
        return con.execute(query.replace("FILE", path.replace("'", "''"))).fetchall()
    finally:
        con.close()


def test_parquet_in_duckdb_gives_the_report(tmp_path: Any, recorded: str) -> None:
    out = _export(tmp_path, recorded, "parquet")
    report = build_report(read_logs([recorded]))
    query = README_QUERY.replace("'run.parquet'", "'FILE'")
    rows = _duckdb(out, query)
    assert [(r[0], r[1], r[2], r[3], r[4], r[6], r[10]) for r in rows] == [
        (s["name"], s["count"], s["errors"], s["total_ns"], s["self_ns"], s["min_ns"], s["max_ns"])
        for s in report["scopes"]
    ]
    for r, s in zip(rows, report["scopes"]):
        assert r[5] == pytest.approx(s["mean_ns"])
        # Percentiles: DuckDB's interpolate between events (the report's are within 1%
        # of an event's duration), so only their order is the same.
        assert s["min_ns"] <= r[7] <= r[8] <= r[9] <= s["max_ns"]
    # Exactly the SPEC's columns.
    cols = [r[0] for r in _duckdb(out, "DESCRIBE SELECT * FROM 'FILE'")]
    assert cols == [
        "name", "group", "start_ns", "dur_ns", "self_ns", "depth", "parent", "error",
        "pid", "tid", "thread", "process", "host", "rank",
    ]  # fmt: skip
    # Parents are row numbers of this file: a self-join finds each event's enclosing one.
    joined = _duckdb(
        out,
        "WITH t AS (SELECT row_number() OVER () - 1 AS row, * FROM 'FILE') "
        "SELECT c.name, p.name, c.depth - p.depth, c.tid = p.tid FROM t c JOIN t p "
        "ON c.parent = p.row",
    )
    events = read_logs([recorded])
    assert len(joined) == int((events.parent >= 0).sum())
    assert all(r[2] == 1 and r[3] for r in joined)
    assert Counter((r[0], r[1]) for r in joined)[("Model:Inner", "Model:Forward")] == 50
    roots = _duckdb(out, "SELECT count(*) FROM 'FILE' WHERE parent IS NULL")[0][0]
    assert roots == int((events.parent < 0).sum())
    proc = events.processes[0]
    meta = _duckdb(
        out, "SELECT DISTINCT pid, process, host, rank, thread FROM 'FILE' ORDER BY thread"
    )
    assert meta == [
        (proc["pid"], proc["name"], proc["host"], proc["rank"], "MainThread"),
        (proc["pid"], proc["name"], proc["host"], proc["rank"], "worker"),
    ]
    group = _duckdb(out, "SELECT DISTINCT name, \"group\" FROM 'FILE' ORDER BY name")
    assert ("fib", None) in group and ("Step:Model", "Step") in group


def test_parquet_filters_keep_parents_in_the_file(tmp_path: Any, recorded: str) -> None:
    out = _export(tmp_path, recorded, "parquet", "--name", "Model:*")
    rows = _duckdb(
        out,
        "WITH t AS (SELECT row_number() OVER () - 1 AS row, * FROM 'FILE') "
        "SELECT c.name, p.name FROM t c LEFT JOIN t p ON c.parent = p.row",
    )
    # Model:Inner's parent Model:Forward is kept; Model:Forward's (Step:Model) is not.
    assert Counter(rows) == {("Model:Inner", "Model:Forward"): 50, ("Model:Forward", None): 100}


def test_parquet_of_a_text_log(tmp_path: Any) -> None:
    text_log = os.path.join(str(tmp_path), "vllm.log")
    with open(text_log, "w") as fh:
        fh.write("Step:Model|1000\nModel:Forward|300\n")
    out = _export(tmp_path, text_log, "parquet")
    assert _duckdb(out, "SELECT name, dur_ns, start_ns, pid, parent FROM 'FILE'") == [
        ("Step:Model", 1000, None, None, None),
        ("Model:Forward", 300, None, None, None),
    ]


def test_parquet_of_names_that_are_not_utf8(tmp_path: Any) -> None:
    # A scope or thread name may be any str, lone surrogates included (a name decoded
    # from bytes with surrogateescape); Parquet strings must be UTF-8.
    logs = os.path.join(str(tmp_path), "odd")
    write_log(logs, {"w\udcfforker": [Ev("Step:\udcff", 0, 10), Ev("plain", 20, 5)]})
    out = _export(tmp_path, logs, "parquet")
    rows = _duckdb(out, "SELECT name, \"group\", thread, dur_ns FROM 'FILE' ORDER BY start_ns")
    assert rows == [
        ("Step:\\udcff", "Step", "w\\udcfforker", 10),
        ("plain", None, "w\\udcfforker", 5),
    ]
