"""``liteprof export --format perfetto``, the command line and the filters.

The Perfetto trace is read back with the ``perfetto`` package's protos and rebuilt into
slices the way trace processor does (``exportkit.perfetto_slices``); every slice is
checked against the events the reader gives for the same log.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections import Counter
from typing import Any

import pytest

import liteprof
from liteprof.log.reader import read_logs

from .exportkit import Ev, perfetto_slices, write_log
from .helpers import child_env, cli


def _record_program(logdir: str) -> None:
    """Nested scopes in two threads, recursion and a scope left by an exception."""
    liteprof.enable(logdir)

    def work(k: int) -> None:
        for _ in range(k):
            with liteprof.scope("Step:Model"):
                with liteprof.scope("Model:Forward"):
                    with liteprof.scope("Model:Inner"):
                        pass
                with liteprof.scope("Model:Forward"):
                    pass

    def fib(n: int) -> int:
        with liteprof.scope("fib"):
            return n if n < 2 else fib(n - 1) + fib(n - 2)

    worker = threading.Thread(target=work, args=(20,), name="worker")
    worker.start()
    with liteprof.scope("main"):
        work(30)
        fib(6)
        try:
            with liteprof.scope("Step:Boom"):
                raise ValueError("boom")
        except ValueError:
            pass
    worker.join()
    liteprof.disable()


def _export(tmp_path: Any, logs: str, fmt: str, *extra: str) -> str:
    out = os.path.join(str(tmp_path), f"out.{fmt}")
    proc = cli("export", logs, "--format", fmt, "-o", out, *extra)
    assert proc.returncode == 0, proc.stderr
    return out


def _expected(logs: str) -> list[dict[str, Any]]:
    """The reader's events; ``exact`` is False where the log puts a child partly outside
    its parent (the C core's clock can, by up to a microsecond, around a thread's first
    events): a timeline keeps the nesting there and moves the child into its parent."""
    events = read_logs([logs])
    end = events.start + events.dur
    rows = []
    for i in range(events.records):
        up = int(events.parent[i])
        exact = up < 0 or (events.start[up] <= events.start[i] and end[i] <= end[up])
        thread = events.threads[int(events.thread[i])]
        rows.append(
            {
                "name": events.names[int(events.name[i])],
                "ts": int(events.start[i]),
                "dur": int(events.dur[i]),
                "depth": int(events.depth[i]),
                "error": bool(events.error[i]),
                "thread": thread["name"],
                "tid": thread["tid"],
                "lane": int(events.lane[i]),
                "exact": bool(exact),
            }
        )
    return rows


def _by_key(slices: Any) -> Counter[tuple[str, int, int]]:
    return Counter((s.name, s.ts, s.dur) for s in slices)


@pytest.mark.usefixtures("backend")
def test_perfetto_slices_match_the_log(tmp_path: Any, logdir: str) -> None:
    _record_program(logdir)
    trace = perfetto_slices(_export(tmp_path, logdir, "perfetto"))
    expected = _expected(logdir)
    assert trace.unmatched_ends == 0 and trace.open_at_end == 0
    assert len(trace.slices) == len(expected)
    got = {(s.name, s.ts, s.dur): s for s in trace.slices}
    exact = [e for e in expected if e["exact"]]
    assert len(exact) >= len(expected) - 4
    assert _by_key(trace.slices) >= Counter((e["name"], e["ts"], e["dur"]) for e in exact)
    for ev in exact:
        sl = got[(ev["name"], ev["ts"], ev["dur"])]
        desc = trace.tracks[sl.track]
        assert desc.thread.thread_name == ev["thread"]  # the thread's own track
        assert desc.thread.tid == ev["tid"]
        assert sl.depth == ev["depth"]  # nesting intact
        assert (sl.category == "error") == ev["error"]
    # A process track with the process's name and pid, parent of the thread tracks.
    procs = [d for d in trace.tracks.values() if d.HasField("process")]
    assert len(procs) == 1
    assert procs[0].process.pid == os.getpid()
    assert procs[0].process.process_name == read_logs([logdir]).processes[0]["name"]
    threads = [d for d in trace.tracks.values() if d.HasField("thread")]
    assert sorted(d.thread.thread_name for d in threads) == ["MainThread", "worker"]
    assert all(d.parent_uuid == procs[0].uuid for d in threads)


def _tasks_log(directory: str) -> str:
    """Three asyncio tasks on one thread whose scopes overlap in time (lanes 1-3),
    around code outside any task (lane 0). Times are monotonic ns."""
    events: list[Ev] = []
    # Lane 0: "loop" opens at 0 and closes at 1000, around the tasks' time.
    for lane in (1, 2, 3):
        off = lane * 10
        events.append(Ev("Task:inner", 200 + off, 100, depth=1, lane=lane))
    for lane in (1, 2, 3):
        off = lane * 10
        events.append(Ev(f"Task:{lane}", 100 + off, 500, depth=0, lane=lane, error=lane == 2))
    events.append(Ev("Main:tick", 50, 20, depth=1))
    events.append(Ev("Main:loop", 0, 1000, depth=0))
    write_log(directory, {"MainThread": events})
    return directory


def test_perfetto_async_tasks_overlap_on_tracks_of_their_own(tmp_path: Any) -> None:
    logs = _tasks_log(os.path.join(str(tmp_path), "tasks"))
    trace = perfetto_slices(_export(tmp_path, logs, "perfetto"))
    assert trace.unmatched_ends == 0 and trace.open_at_end == 0
    by_name = {s.name: s for s in trace.slices if s.name != "Task:inner"}
    inner = [s for s in trace.slices if s.name == "Task:inner"]
    assert len(trace.slices) == 8 and len(inner) == 3
    tracks = {by_name[f"Task:{k}"].track for k in (1, 2, 3)}
    assert len(tracks) == 3  # each task its own track
    assert by_name["Main:loop"].track not in tracks
    assert trace.tracks[by_name["Main:loop"].track].thread.thread_name == "MainThread"
    for k in (1, 2, 3):
        task = by_name[f"Task:{k}"]
        assert trace.track_name(task.track) == f"MainThread task {k}"
        assert task.depth == 0
        (child,) = [s for s in inner if s.track == task.track]
        assert child.depth == 1 and task.ts < child.ts < child.ts + child.dur < task.ts + task.dur
    assert by_name["Task:2"].category == "error" and by_name["Task:1"].category is None
    # The tasks overlap each other in time, which one track could not show.
    assert by_name["Task:1"].ts < by_name["Task:2"].ts < by_name["Task:1"].ts + 500
    assert by_name["Main:tick"].depth == 1


@pytest.mark.usefixtures("backend")
def test_perfetto_real_asyncio_tasks(tmp_path: Any, logdir: str) -> None:
    """Tasks recorded by the recorders (lane slots): each task's scopes on its own
    track, overlapping the other tasks', nested within the task."""
    import asyncio

    async def task(i: int) -> None:
        with liteprof.scope(f"Task:{i}"):
            await asyncio.sleep(0.002)
            with liteprof.scope("Task:inner"):
                await asyncio.sleep(0.002)

    async def main() -> None:
        with liteprof.scope("Main:gather"):
            await asyncio.gather(*(task(i) for i in range(4)))

    liteprof.enable(logdir)
    with liteprof.scope("Main:sync"):
        pass
    asyncio.run(main())
    liteprof.disable()
    trace = perfetto_slices(_export(tmp_path, logdir, "perfetto"))
    assert trace.unmatched_ends == 0 and trace.open_at_end == 0
    tasks = {s.name: s for s in trace.slices if s.name.startswith("Task:") and s.name[5:].isdigit()}
    assert len(tasks) == 4 and len({s.track for s in tasks.values()}) == 4
    inner = [s for s in trace.slices if s.name == "Task:inner"]
    assert len(inner) == 4
    for s in inner:
        (outer,) = [t for t in tasks.values() if t.track == s.track]
        assert s.depth == 1 and outer.ts <= s.ts and s.ts + s.dur <= outer.ts + outer.dur
    assert all(t.depth == 0 for t in tasks.values())
    spans = sorted((t.ts, t.ts + t.dur) for t in tasks.values())
    assert spans[1][0] < spans[0][1]  # they overlap in time: one track could not show it
    sync = next(s for s in trace.slices if s.name == "Main:sync")
    assert trace.tracks[sync.track].thread.thread_name == "MainThread"
    assert all(trace.track_name(t.track).startswith("MainThread task ") for t in tasks.values())


def test_perfetto_scope_open_across_chunks(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A root scope around 3000 events, read by the streaming reader in many chunks
    (small blocks, small chunks): its begin comes after its children in the file, and
    the nesting still comes out right."""
    from liteprof.cli import main
    from liteprof.exporters import source

    monkeypatch.setattr(source, "CHUNK_SLOTS", 250)
    events: list[Ev] = []
    t = 10
    for i in range(1000):
        events.append(Ev("leaf", t + 2, 3, depth=2))
        events.append(Ev("mid", t + 1, 6, depth=1, error=i % 7 == 0))
        t += 10
    events.append(Ev("outer", 5, t, depth=0))
    logs = os.path.join(str(tmp_path), "chunks")
    write_log(logs, {"MainThread": events}, block_slots=97)
    chunks: list[int] = []
    source.stream([logs], lambda chunk: chunks.append(chunk.records))
    assert len(chunks) > 5 and sum(chunks) == len(events)
    out = os.path.join(str(tmp_path), "chunks.pftrace")
    assert main(["export", logs, "--format", "perfetto", "-o", out]) == 0
    trace = perfetto_slices(out)
    assert trace.unmatched_ends == 0 and trace.open_at_end == 0
    expected = _expected(logs)
    assert _by_key(trace.slices) == Counter((e["name"], e["ts"], e["dur"]) for e in expected)
    depth = {"outer": 0, "mid": 1, "leaf": 2}
    assert all(s.depth == depth[s.name] for s in trace.slices)
    errors = sum(1 for s in trace.slices if s.category == "error")
    assert errors == sum(1 for e in expected if e["error"])


def _tasks_and_threads(directory: str) -> str:
    """Two threads, asyncio lanes that interleave, several small blocks."""
    events: list[Ev] = []
    t = 0
    for i in range(300):
        lane = 1 + i % 3
        events.append(Ev("Job:leaf", t + 1, 2, depth=1, lane=lane))
        events.append(Ev(f"Job:{lane}", t, 5, depth=0, lane=lane, error=i % 11 == 0))
        events.append(Ev("Loop:tick", t + 6, 1, depth=0))
        t += 10
    other = [Ev("Worker:step", 5 * i, 3, depth=0) for i in range(500)]
    write_log(directory, {"MainThread": events, "worker": other}, block_slots=61)
    return directory


def test_stream_gives_the_readers_events(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The streaming reader's chunks, joined, are ``read_logs``' events (what a reader
    change must keep: the exporters rely on both)."""
    import numpy as np

    from liteprof.exporters import source

    monkeypatch.setattr(source, "CHUNK_SLOTS", 128)
    logs = _tasks_and_threads(os.path.join(str(tmp_path), "mixed"))
    _tasks_log(logs)  # a second file in the directory
    whole = read_logs([logs])
    chunks: list[Any] = []
    meta = source.stream([logs], chunks.append)
    assert len(chunks) > 10
    assert sum(c.records for c in chunks) == whole.records
    for key in ("start", "dur", "self_ns", "depth", "error", "lane"):
        joined = np.concatenate([getattr(c, key) for c in chunks])
        assert np.array_equal(joined, getattr(whole, key)), key
    names = [meta.names[i] for c in chunks for i in c.name.tolist()]
    assert names == [whole.names[i] for i in whole.name.tolist()]
    threads = [(meta.threads[i]["tid"], meta.threads[i]["name"]) for c in chunks for i in c.thread]
    assert threads == [(whole.threads[i]["tid"], whole.threads[i]["name"]) for i in whole.thread]
    procs = [meta.processes[i]["path"] for c in chunks for i in c.proc]
    assert procs == [whole.processes[i]["path"] for i in whole.proc]
    assert (meta.first_ns, meta.last_ns, meta.skipped) == (
        whole.first_ns,
        whole.last_ns,
        whole.skipped,
    )
    # And the trace of it: every event a slice, each task on its track.
    from liteprof.cli import main

    out = os.path.join(str(tmp_path), "mixed.pftrace")
    assert main(["export", logs, "--format", "perfetto", "-o", out]) == 0
    trace = perfetto_slices(out)
    assert trace.unmatched_ends == 0 and trace.open_at_end == 0
    expected = _expected(logs)
    assert _by_key(trace.slices) == Counter((e["name"], e["ts"], e["dur"]) for e in expected)
    for lane in (1, 2, 3):
        tracks = {s.track for s in trace.slices if s.name == f"Job:{lane}"}
        assert len(tracks) == 1
        assert trace.track_name(tracks.pop()) == f"MainThread task {lane}"


def test_perfetto_of_depths_that_do_not_nest(tmp_path: Any) -> None:
    """Depths that describe no tree (a damaged or cut log: a depth-2 event with no
    scope around it, then a root): every event still becomes a slice, ordered by time."""
    logs = os.path.join(str(tmp_path), "odd")
    write_log(
        logs,
        {"T": [Ev("deep", 0, 10, depth=2), Ev("root", 20, 10), Ev("x", 40, 5, depth=5)]},
    )
    trace = perfetto_slices(_export(tmp_path, logs, "perfetto"))
    assert trace.unmatched_ends == 0 and trace.open_at_end == 0
    assert sorted(
        (s.name, s.ts - min(t.ts for t in trace.slices), s.dur) for s in trace.slices
    ) == [
        ("deep", 0, 10),
        ("root", 20, 10),
        ("x", 40, 5),
    ]


def test_perfetto_is_compact(tmp_path: Any) -> None:
    """Delta timestamps and interned names: about 28 bytes per event here."""
    events = [Ev("Step:Model", 100 + 40 * i, 30) for i in range(20000)]
    logs = os.path.join(str(tmp_path), "many")
    write_log(logs, {"MainThread": events})
    out = _export(tmp_path, logs, "perfetto")
    assert os.path.getsize(out) <= 40 * len(events)
    trace = perfetto_slices(out)
    assert len(trace.slices) == 20000 and trace.unmatched_ends == 0


@pytest.mark.usefixtures("backend")
def test_filters(tmp_path: Any, logdir: str) -> None:
    _record_program(logdir)
    expected = _expected(logdir)

    def check(extra: list[str], keep: Any) -> None:
        trace = perfetto_slices(_export(tmp_path, logdir, "perfetto", *extra))
        wanted = [e for e in expected if keep(e)]
        assert 0 < len(trace.slices) == len(wanted) < len(expected)
        assert _by_key(trace.slices) >= Counter(
            (e["name"], e["ts"], e["dur"]) for e in wanted if e["exact"]
        )
        assert trace.unmatched_ends == 0

    # --name: a shell pattern on scope names.
    check(["--name", "Model:*"], lambda e: e["name"].startswith("Model:"))
    # --min-dur: only events at least that long.
    cut = sorted(e["dur"] for e in expected)[len(expected) // 2]
    check(["--min-dur", str(cut)], lambda e: e["dur"] >= cut)
    # --since/--until: seconds from the first event; events overlapping the window.
    first = min(e["ts"] for e in expected)
    mid = sorted(e["ts"] for e in expected)[len(expected) // 2]
    since = (mid - first) / 1e9
    lo = first + int(since * 1e9)
    check(["--since", repr(since)], lambda e: e["ts"] + e["dur"] >= lo)
    check(["--until", repr(since)], lambda e: e["ts"] <= lo)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "perfetto"], "needs -o FILE"),
        (["--format", "nope", "-o", "x"], "invalid choice"),
        (["--format", "otlp"], "needs --endpoint"),
        (["--format", "chrome", "-o", "x", "--endpoint", "http://127.0.0.1:1"], "otlp only"),
        (["--format", "perfetto", "-o", "x", "--since", "-1"], "non-negative"),
        (["--format", "perfetto", "-o", "x", "--min-dur", "1.5"], "whole number"),
        (["--format", "perfetto", "-o", "x", "--since", "2", "--until", "1"], "before --since"),
    ],
)
def test_bad_command_lines(tmp_path: Any, args: list[str], message: str) -> None:
    logs = _tasks_log(os.path.join(str(tmp_path), "tasks"))
    proc = cli("export", logs, *args)
    assert proc.returncode == 2
    assert message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert not os.path.exists("x")


def test_bad_inputs(tmp_path: Any) -> None:
    text_log = os.path.join(str(tmp_path), "vllm.log")
    with open(text_log, "w") as fh:
        fh.write("Step:Model|1000\n")
    junk = os.path.join(str(tmp_path), "junk.lpf")
    with open(junk, "wb") as fh:
        fh.write(b"not a log at all" * 300)
    # Binary junk without the suffix: neither a log nor a text log, so it must not be
    # called a text log.
    noise = os.path.join(str(tmp_path), "noise.bin")
    with open(noise, "wb") as fh:
        fh.write(bytes(range(256)) * 40)
    out = os.path.join(str(tmp_path), "out.pftrace")
    empty = os.path.join(str(tmp_path), "empty")
    os.mkdir(empty)
    for path, message in [
        (os.path.join(str(tmp_path), "missing"), "no such file"),
        (text_log, "vLLM text log"),
        (junk, "not a liteprof log"),
        (noise, "not a liteprof log or a vLLM lite-profiler text log"),
        (empty, "no liteprof logs"),
    ]:
        for fmt in ("perfetto", "chrome", "speedscope"):
            proc = cli("export", path, "--format", fmt, "-o", out)
            assert proc.returncode == 2, (path, fmt, proc.stderr)
            assert message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
            assert "Traceback" not in proc.stderr
            assert not os.path.exists(out)
    unwritable = os.path.join(str(tmp_path), "no", "such", "dir", "out.pftrace")
    logs = _tasks_log(os.path.join(str(tmp_path), "tasks"))
    proc = cli("export", logs, "--format", "perfetto", "-o", unwritable)
    assert proc.returncode == 2 and "cannot write" in proc.stderr


def test_size_warning_names_the_flags(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from liteprof.cli import export as command
    from liteprof.cli import main

    logs = _tasks_log(os.path.join(str(tmp_path), "tasks"))
    out = os.path.join(str(tmp_path), "out.json")
    monkeypatch.setattr(command, "BROWSER_LIMIT", 100)
    captured: list[str] = []
    monkeypatch.setattr(sys.stderr, "write", captured.append)
    assert main(["export", logs, "--format", "chrome", "-o", out]) == 0
    text = "".join(captured)
    assert "warning" in text and "--since/--until" in text and "--min-dur" in text
    captured.clear()
    assert main(["export", logs, "--format", "folded", "-o", out]) == 0
    assert not captured  # not a browser's format


def test_run_export(tmp_path: Any) -> None:
    out = os.path.join(str(tmp_path), "run.pftrace")
    prog = os.path.join(str(tmp_path), "prog.py")
    with open(prog, "w") as fh:
        fh.write(
            "import liteprof\n"
            "for _ in range(5):\n"
            "    with liteprof.scope('Step:x'):\n"
            "        with liteprof.scope('Model:y'):\n"
            "            pass\n"
        )
    import sys

    proc = cli("run", "--export", "perfetto", "-o", out, "--", sys.executable, prog)
    assert proc.returncode == 0, proc.stderr
    assert "Step:x" in proc.stdout  # the report is still printed
    trace = perfetto_slices(out)
    assert Counter(s.name for s in trace.slices) == {"Step:x": 5, "Model:y": 5}
    assert all(s.depth == (s.name == "Model:y") for s in trace.slices)
    proc = cli("run", "--export", "perfetto", "--", sys.executable, prog)
    assert proc.returncode == 2 and "--export perfetto needs -o FILE" in proc.stderr


def _many_events_log(directory: str) -> str:
    """A log whose traces are much larger than an output buffer, so they are written
    while the log is still being read."""
    events = [Ev("Step:Model", 1000 * i, 500) for i in range(20_000)]
    write_log(directory, {"MainThread": events})
    return directory


@pytest.mark.parametrize("fmt", ["perfetto", "chrome"])
def test_a_failed_write_is_not_called_a_failed_read(tmp_path: Any, fmt: str) -> None:
    logs = _many_events_log(os.path.join(str(tmp_path), "many"))
    # A full disk behind stdout: an error about writing, not about the log.
    with open("/dev/full", "wb") as full:
        proc = subprocess.run(
            [sys.executable, "-m", "liteprof", "export", logs, "--format", fmt, "-o", "-"],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env(),
            timeout=120,
        )
    assert proc.returncode == 2, proc.stderr
    assert "cannot write" in proc.stderr and "cannot read" not in proc.stderr, proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    # A reader that went away (`| head -c 10`): a quiet stop, as `report` does.
    reader_gone = subprocess.Popen(
        [sys.executable, "-m", "liteprof", "export", logs, "--format", fmt, "-o", "-"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env(),
    )
    assert reader_gone.stdout is not None
    reader_gone.stdout.read(10)
    reader_gone.stdout.close()
    _, err = reader_gone.communicate(timeout=120)
    assert reader_gone.returncode == 0, err
    assert err == b""
