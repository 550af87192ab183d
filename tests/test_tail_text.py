"""The live reader over vLLM lite-profiler text logs (``liteprof.log.tailtext``): lines
appended while it polls, partial lines, damage, truncation and rewrites, text logs beside
binary logs; and ``liteprof top`` and ``liteprof serve`` over a text log."""

from __future__ import annotations

import collections
import os
import re
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request

import pytest

import liteprof
from liteprof.log.errors import LogError
from liteprof.log.reader import read_logs
from liteprof.log.tail import REMOVED, TRUNCATED, Batch, Tail

from .test_top import _screen_until, _tmux


def _totals(names: list[str], batches: list[Batch]) -> dict[str, tuple[int, int]]:
    """Per name: (count, total ns) of what the polls returned."""
    out: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    for b in batches:
        for idx, dur in zip(b.name.tolist(), b.dur.tolist()):
            out[names[idx]][0] += 1
            out[names[idx]][1] += dur
    return {k: (v[0], v[1]) for k, v in out.items()}


def _reader_totals(path: str) -> tuple[dict[str, tuple[int, int]], int]:
    ev = read_logs([path])
    out: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    for idx, dur in zip(ev.name.tolist(), ev.dur.tolist()):
        out[ev.names[idx]][0] += 1
        out[ev.names[idx]][1] += dur
    return {k: (v[0], v[1]) for k, v in out.items()}, ev.skipped


def _append(path: str, data: bytes) -> None:
    with open(path, "ab") as fh:
        fh.write(data)


# Writes lines in pieces cut anywhere (mid-name, mid-value, between "\r" and "\n"), with
# damage among them, flushing each piece, as a buffered writer's flushes land.
WRITER = textwrap.dedent(
    r"""
    import random, sys, time
    path, n = sys.argv[1], int(sys.argv[2])
    rng = random.Random(7)
    names = ["Step:Forward", "Model:Execute", " Model:Sample", "odd|name", "Ünï:códe"]
    out = bytearray()
    for i in range(n):
        r = rng.random()
        if r < 0.01:
            out += b"not an event\n"
        elif r < 0.015:
            out += b"\0\0\0"
        elif r < 0.02:
            out += b"\n   \n"
        else:
            end = b"\r\n" if r < 0.1 else b"\n"
            out += f"{rng.choice(names)}|{rng.randrange(10**9)}".encode() + end
    out += b"Step:Last|1\n"
    with open(path, "ab", buffering=0) as fh:
        pos = 0
        while pos < len(out):
            k = rng.randrange(1, 3000)
            fh.write(out[pos : pos + k])
            pos += k
            if rng.random() < 0.05:
                time.sleep(0.002)
    """
)


def test_a_writer_appending_while_the_tail_polls_gives_the_whole_reads_figures(
    tmp_path: os.PathLike[str],
) -> None:
    root = os.fspath(tmp_path)
    path = os.path.join(root, "lite.log")
    script = os.path.join(root, "writer.py")
    with open(script, "w") as fh:
        fh.write(WRITER)
    open(path, "wb").close()
    tail = Tail(path)
    writer = subprocess.Popen([sys.executable, script, path, "200000"])
    batches = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        done = writer.poll() is not None
        batches.append(tail.poll())
        if done and not batches[-1].more:
            break
    assert writer.wait(timeout=60) == 0
    batches.append(tail.poll())
    polls_with_events = sum(1 for b in batches if len(b))
    assert polls_with_events > 3  # it did read while the writer wrote
    expected, skipped = _reader_totals(path)
    assert _totals(tail.names, batches) == expected
    assert all((b.self_ns == b.dur).all() and not b.error.any() for b in batches)
    assert skipped > 0 and tail.skipped == sum(b.skipped for b in batches) == skipped
    assert len(tail.processes) == 1 and tail.processes[0].state == "live"
    p = tail.processes[0]
    assert (p.pid, p.name, p.host, p.rank) == (None, "?", "?", None)  # no process known
    assert p.records == sum(c for c, _ in expected.values()) and p.skipped == skipped


def test_a_partial_last_line_waits_for_its_end(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(os.fspath(tmp_path), "lite.log")
    _append(path, b"Step:A|100\nStep:B|2")
    tail = Tail(path)
    first = tail.poll()
    assert _totals(tail.names, [first]) == {"Step:A": (1, 100)} and first.new_processes == [0]
    assert len(tail.poll()) == 0  # still no end to the line
    _append(path, b"5\r")
    second = tail.poll()
    assert _totals(tail.names, [second]) == {"Step:B": (1, 25)}
    _append(path, b"\nStep:A|1\nbad|line\n")  # "\r" then "\n": one line end, not a line
    third = tail.poll()
    assert _totals(tail.names, [third]) == {"Step:A": (1, 1)} and third.skipped == 1
    expected, skipped = _reader_totals(path)
    assert _totals(tail.names, [first, second, third]) == expected and tail.skipped == skipped


def test_truncation_and_rewrite_restart_from_the_start_as_new_processes(
    tmp_path: os.PathLike[str],
) -> None:
    path = os.path.join(os.fspath(tmp_path), "lite.log")
    _append(path, b"Run1:a|10\nRun1:a|20\n")
    tail = Tail(path)
    assert _totals(tail.names, [tail.poll()]) == {"Run1:a": (2, 30)}
    # Cut in place (same file) and written again, shorter than what was read.
    with open(path, "r+b") as fh:
        fh.truncate(0)
        fh.write(b"Run2:b|5\n")
    cut = tail.poll()
    assert cut.ended == [0] and tail.processes[0].state == TRUNCATED and len(cut) == 0
    again = tail.poll()
    assert again.new_processes == [1] and _totals(tail.names, [again]) == {"Run2:b": (1, 5)}
    # Cut and written again past what was read, before a poll saw it shorter.
    with open(path, "r+b") as fh:
        fh.truncate(0)
        fh.write(b"Run2x:e|1\nRun2x:e|2\n")
    assert tail.poll().ended == [1] and tail.processes[1].state == TRUNCATED
    again = tail.poll()
    assert again.new_processes == [2] and _totals(tail.names, [again]) == {"Run2x:e": (2, 3)}
    # vLLM's new run: the log deleted and written anew (another file at the path).
    os.remove(path)
    _append(path, b"Run3:c|7\nRun3:c|8\nRun3:tail|9")
    _append(path + ".x", b"")  # another inode for sure while the old one is held open
    replaced = tail.poll()
    assert replaced.ended == [2] and tail.processes[2].state == TRUNCATED
    fresh = tail.poll()
    assert fresh.new_processes == [3] and _totals(tail.names, [fresh]) == {"Run3:c": (2, 15)}
    # Removed: the last line without its end is read (nothing will finish it) and the
    # process marked removed; a file written there later is a new one.
    os.remove(path)
    gone = tail.poll()
    assert gone.ended == [3] and tail.processes[3].state == REMOVED
    assert _totals(tail.names, [gone]) == {"Run3:tail": (1, 9)}
    assert [p.records for p in tail.processes] == [2, 1, 2, 3]
    _append(path, b"Run4:d|1\n")
    assert _totals(tail.names, [tail.poll()]) == {"Run4:d": (1, 1)} and len(tail.processes) == 5


@pytest.mark.usefixtures("backend")
def test_text_logs_beside_binary_logs_in_a_directory(tmp_path: os.PathLike[str]) -> None:
    logdir = os.path.join(os.fspath(tmp_path), "prof")
    liteprof.enable(logdir)
    try:
        with liteprof.scope("Bin:a"):
            pass
    finally:
        liteprof.disable()
    text = os.path.join(logdir, "vllm.lpf")  # a directory's logs are its *.lpf files
    _append(text, b"Step:Forward|1000\n\0\0\0\nStep:Forward|500\n")
    with open(os.path.join(logdir, "notes.lpf"), "wb") as fh:
        fh.write(b"some notes\nthat are no log\n")
    tail = Tail(logdir)
    first = tail.poll()
    assert len(tail.processes) == 2 and first.skipped == 2  # the NUL line; the notes file
    _append(text, b"Step:Forward|1\n")
    batches = [first, tail.poll()]
    got = _totals(tail.names, batches)
    assert got == {"Bin:a": (1, got["Bin:a"][1]), "Step:Forward": (3, 1501)}
    os.remove(os.path.join(logdir, "notes.lpf"))  # the whole read refuses a directory with it
    expected, skipped = _reader_totals(logdir)
    assert got == expected and skipped == 1


def test_a_single_file_that_is_no_log_is_an_error(tmp_path: os.PathLike[str]) -> None:
    root = os.fspath(tmp_path)
    notes = os.path.join(root, "notes.txt")
    _append(notes, b"hello\nworld\n")
    with pytest.raises(LogError, match="not a liteprof log or a vLLM lite-profiler text log"):
        Tail(notes).poll()
    long_line = os.path.join(root, "blob")
    _append(long_line, b"x" * 5000)  # no line end, longer than a first line can be
    with pytest.raises(LogError, match="not a liteprof log"):
        Tail(long_line).poll()
    proc = subprocess.run(
        [sys.executable, "-m", "liteprof", "top", notes],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "not a liteprof log" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


# Appends vLLM lines until told to stop, as vLLM's lite profiler does.
TEXT_WORKLOAD = textwrap.dedent(
    """
    import os, sys, time
    path, stop, deadline = sys.argv[1], sys.argv[2], time.monotonic() + 120
    with open(path, "a") as fh:
        while not os.path.exists(stop) and time.monotonic() < deadline:
            fh.write("Step:Forward|2000000\\n")
            fh.flush()
            time.sleep(0.002)
    """
)


def test_top_in_a_terminal_follows_a_text_log(tmp_path: os.PathLike[str]) -> None:
    root = os.fspath(tmp_path)
    log, stop, status = (os.path.join(root, n) for n in ("lite.log", "stop", "status"))
    script = os.path.join(root, "workload.py")
    with open(script, "w") as fh:
        fh.write(TEXT_WORKLOAD)
    sock = os.path.join(root, "tmux.sock")
    program = subprocess.Popen([sys.executable, script, log, stop])
    top = f"env -u COLUMNS -u LINES {sys.executable} -m liteprof top {log} --interval 0.3"
    try:
        _tmux(
            sock,
            "new-session",
            "-d",
            "-x",
            "160",
            "-y",
            "30",
            f"{top}; echo $? > {status}.tmp; mv {status}.tmp {status}; sleep 60",
        )
        row = re.compile(r"Step:Forward\s+\?\s+([\d,.]+)\s")

        def live_rate(s: str) -> bool:
            m = row.search(s)
            return m is not None and float(m.group(1).replace(",", "")) > 0

        screen = _screen_until(sock, "a live rate for Step:Forward", live_rate)
        assert "1 processes (1 live)" in screen and "None" not in screen, screen
        _tmux(sock, "send-keys", "q")
        end = time.monotonic() + 30
        while not os.path.exists(status) and time.monotonic() < end:
            time.sleep(0.05)
        with open(status) as fh:
            assert fh.read().strip() == "0"
    finally:
        _tmux(sock, "kill-server")
        open(stop, "w").close()
        program.wait(timeout=60)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _metrics(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - 127.0.0.1
        return resp.read().decode()  # type: ignore[no-any-return]


def test_serve_metrics_of_a_text_log_grow_with_it(tmp_path: os.PathLike[str]) -> None:
    log = os.path.join(os.fspath(tmp_path), "lite.log")
    _append(log, b"Step:Forward|250000\n" * 300 + b"Model:Sample|1000\nbad\n")
    port = _free_port()
    serve = subprocess.Popen(
        [sys.executable, "-m", "liteprof", "serve", log, "--port", str(port), "--interval", "0.2"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}/metrics"
    labels = 'scope="Step:Forward",group="Step",process="?",pid="",rank="",host="?"'
    count = re.compile(
        r"^liteprof_scope_duration_seconds_count\{" + re.escape(labels) + r"\} (\d+)$", re.M
    )
    total = re.compile(
        r"^liteprof_scope_duration_seconds_sum\{" + re.escape(labels) + r"\} (\S+)$", re.M
    )

    def scrape_until(n: int) -> str:
        end = time.monotonic() + 30
        text = ""
        while time.monotonic() < end:
            try:
                text = _metrics(url)
            except OSError:
                time.sleep(0.1)
                continue
            m = count.search(text)
            if m is not None and int(m.group(1)) == n:
                return text
            time.sleep(0.1)
        raise AssertionError(f"never {n} events of Step:Forward in /metrics:\n{text}")

    try:
        text = scrape_until(300)
        m = total.search(text)
        assert m is not None and abs(float(m.group(1)) - 300 * 250e-6) < 1e-9
        _append(log, b"Step:Forward|250000\n" * 200 + b"Step:Forward|9")  # a partial line
        scrape_until(500)
        _append(log, b"99\n")
        text = scrape_until(501)
        m = total.search(text)
        assert m is not None and abs(float(m.group(1)) - (500 * 250e-6 + 999e-9)) < 1e-9
    finally:
        serve.terminate()
        serve.communicate(timeout=30)
