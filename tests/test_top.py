"""``liteprof top``: a live view, tested in a real terminal (tmux runs it, ``capture-pane``
reads the screen, ``send-keys`` types), and its window's figures against known events."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable

import numpy as np
import pytest

from liteprof.cli.top import Window, sort_rows

from .helpers import child_env

WORKLOAD = textwrap.dedent(
    """
    import os, sys, time, liteprof
    stop, deadline = sys.argv[1], time.monotonic() + 120
    while not os.path.exists(stop) and time.monotonic() < deadline:
        with liteprof.scope("Top:work"):
            time.sleep(0.002)
        try:
            with liteprof.scope("Top:fail"):
                raise ValueError
        except ValueError:
            pass
    """
)


def _tmux(socket: str, *args: str) -> str:
    proc = subprocess.run(["tmux", "-S", socket, *args], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 or args[0] == "kill-server", proc.stderr
    return proc.stdout


def _screen_until(socket: str, what: str, ok: Callable[[str], bool], deadline_s: float = 30) -> str:
    end = time.monotonic() + deadline_s
    screen = ""
    while time.monotonic() < end:
        screen = _tmux(socket, "capture-pane", "-p")
        if ok(screen) or ok(" ".join(screen.split())):  # a line may wrap
            return screen
        time.sleep(0.1)
    raise AssertionError(f"the screen never showed {what}:\n{screen}")


@pytest.mark.usefixtures("backend")
def test_top_in_a_terminal_shows_live_scopes_and_obeys_its_keys(
    tmp_path: os.PathLike[str],
) -> None:
    root = os.fspath(tmp_path)
    logdir, stop, status = (os.path.join(root, n) for n in ("prof", "stop", "status"))
    os.makedirs(logdir)
    script = os.path.join(root, "workload.py")
    with open(script, "w") as fh:
        fh.write(WORKLOAD)
    socket = os.path.join(root, "tmux.sock")
    program = subprocess.Popen([sys.executable, script, stop], env=child_env(LITEPROF_LOG=logdir))
    # The terminal's own size, not one a parent exported in COLUMNS/LINES.
    top = f"env -u COLUMNS -u LINES {sys.executable} -m liteprof top {logdir} --interval 0.3"
    try:
        _tmux(
            socket,
            "new-session",
            "-d",
            "-x",
            "160",
            "-y",
            "30",
            f"{top}; echo $? > {status}.tmp; mv {status}.tmp {status}; sleep 60",
        )
        row = re.compile(r"Top:work\s+MainProcess (\d+)\s+([\d,.]+)\s")

        def live_rate(s: str) -> bool:
            m = row.search(s)
            return m is not None and float(m.group(2).replace(",", "")) > 0

        screen = _screen_until(socket, "a live rate for Top:work", live_rate)
        found = row.search(screen)
        assert found is not None and int(found.group(1)) == program.pid
        assert "per process" in screen and "sort: time/s" in screen
        fail = re.search(r"Top:fail\s.*?\s(\d+)\s+[\d,]+\s*$", screen, re.M)
        assert fail is not None and int(fail.group(1)) > 0  # errors in the window
        _tmux(socket, "send-keys", "p")
        screen = _screen_until(socket, "the summed view", lambda s: "time/s; summed" in s)
        assert re.search(r"Top:work\s+[\d,.]+\s", screen) and "MainProcess" not in screen, screen
        _tmux(socket, "send-keys", "s")
        _screen_until(socket, "the next sort key", lambda s: "sort: events/s" in s)
        _tmux(socket, "send-keys", "q")
        end = time.monotonic() + 30
        while not os.path.exists(status) and time.monotonic() < end:
            time.sleep(0.05)
        with open(status) as fh:
            assert fh.read().strip() == "0"
    finally:
        _tmux(socket, "kill-server")
        open(stop, "w").close()
        program.wait(timeout=60)


def test_window_figures_of_known_events() -> None:
    window = Window(seconds=10)
    name = np.zeros(1000, np.int32)
    proc = np.array([0] * 500 + [1] * 500, np.int32)
    error = np.zeros(1000, np.bool_)
    error[:7] = True
    dur = np.arange(1, 1001, dtype=np.int64) * 1000  # 1 µs .. 1 ms
    window.add(0.0, name[:0], dur[:0], error[:0], proc[:0])  # the first poll: the backlog
    window.add(2.0, name, dur, error, proc)
    (row,) = window.rows(summed=True)
    assert row["total"] == 1000 and row["errors"] == 7
    assert row["rate"] == pytest.approx(500.0)  # 1000 events over the 2 s they cover
    assert row["mean"] == pytest.approx(500_500.0)
    assert row["p50"] == pytest.approx(500_000, rel=0.01)
    assert row["p99"] == pytest.approx(990_000, rel=0.01)
    assert row["time"] == pytest.approx(1000 * 500_500 / 2.0)
    by_proc = window.rows(summed=False)
    assert sorted(r["total"] for r in by_proc) == [500, 500]
    assert [r["proc"] for r in sort_rows(by_proc, "p99", ["A:x"])] == [1, 0]
    # 11 s later the poll has left the window: no rate, the total stays.
    window.add(13.0, name[:0], dur[:0], error[:0], proc[:0])
    window.add(14.0, name[:0], dur[:0], error[:0], proc[:0])
    (row,) = window.rows(summed=True)
    assert row["rate"] == 0.0 and row["p50"] is None and row["total"] == 1000


def test_top_of_a_missing_path_is_one_line_and_exit_2(tmp_path: os.PathLike[str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "liteprof", "top", os.path.join(os.fspath(tmp_path), "none")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
