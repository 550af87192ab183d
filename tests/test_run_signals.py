"""``liteprof run`` and signals, with real signals and a recording program (both backends).

A signal sent to ``liteprof run`` (``kill``) reaches the program; a Ctrl-C typed in a real
terminal (tmux) reaches it exactly once; either way the report of what it recorded is
printed, the exit status is the program's and the temporary log folder is removed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import pytest

from .helpers import child_env, scopes_by_name

pytestmark = pytest.mark.usefixtures("backend")

# The program: records a scope in a loop; once 20 events are readable it writes its pid to
# READY. It notes its signal dispositions and each KeyboardInterrupt in NOTES (a second
# SIGINT during the handler's sleep would cut the handler short: "handled" is missing).
APP = textwrap.dedent(
    """
    import os, signal, sys, time
    import liteprof
    ready, notes = sys.argv[1], sys.argv[2]
    def note(text):
        with open(notes, "a") as fh:
            fh.write(text + "\\n")
    note("sigint=" + ("python" if signal.getsignal(signal.SIGINT) is signal.default_int_handler
                      else str(signal.getsignal(signal.SIGINT))))
    note("sigterm=" + ("default" if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
                       else "other"))
    n = 0
    try:
        while True:
            with liteprof.scope("App:Tick"):
                time.sleep(0.001)
            n += 1
            if n == 20:
                liteprof.flush()
                with open(ready + ".tmp", "w") as fh:
                    fh.write(str(os.getpid()))
                os.replace(ready + ".tmp", ready)
    except KeyboardInterrupt:
        note("KeyboardInterrupt")
        time.sleep(0.5)
        note("handled")
        raise
    """
)


@pytest.fixture
def app(tmp_path: os.PathLike[str]) -> Iterator[dict[str, str]]:
    root = os.fspath(tmp_path)
    temp = os.path.join(root, "tmp")  # TMPDIR: where liteprof run makes its log folder
    os.mkdir(temp)
    script = os.path.join(root, "app.py")
    with open(script, "w") as fh:
        fh.write(APP)
    yield {
        "script": script,
        "ready": os.path.join(root, "ready"),
        "notes": os.path.join(root, "notes"),
        "tmp": temp,
    }


def _wait_for(path: str, deadline_s: float = 30.0) -> int:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if os.path.exists(path):
            with open(path) as fh:
                return int(fh.read())
        time.sleep(0.02)
    raise AssertionError(f"the program never got ready ({path})")


def _gone(pid: int, deadline_s: float = 10.0) -> bool:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.02)
    return False


def _kill_orphan(app: dict[str, str]) -> bool:
    """Kill the program if it is still alive (a failing test must not leave it running,
    holding the pipes open); whether it was."""
    if not os.path.exists(app["ready"]):
        return False
    pid = _wait_for(app["ready"])
    if _gone(pid, 5):
        return False
    os.kill(pid, signal.SIGKILL)
    return True


def _kill_all(proc: subprocess.Popen[str], app: dict[str, str]) -> None:
    if proc.poll() is None:
        proc.kill()
    _kill_orphan(app)
    proc.communicate(timeout=30)


def _notes(app: dict[str, str]) -> list[str]:
    with open(app["notes"]) as fh:
        return fh.read().split()


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_a_signal_to_run_reaches_the_program_and_the_report_is_printed(
    app: dict[str, str], signame: str
) -> None:
    signum = getattr(signal, signame)
    proc = subprocess.Popen(
        [sys.executable, "-m", "liteprof", "run", "--format", "json", "--"]
        + [sys.executable, app["script"], app["ready"], app["notes"]],
        env=child_env(TMPDIR=app["tmp"]),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        child = _wait_for(app["ready"])
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)
    finally:
        _kill_all(proc, app)
    assert _gone(child), "the program outlived liteprof run"
    assert proc.returncode == 128 + signum, err
    report = json.loads(out)
    assert scopes_by_name(report)["App:Tick"]["count"] >= 20
    assert os.listdir(app["tmp"]) == []  # the temporary log folder is gone
    notes = _notes(app)
    assert "sigint=python" in notes  # started with SIGINT not ignored
    assert "sigterm=default" in notes
    if signum == signal.SIGINT:
        assert notes.count("KeyboardInterrupt") == 1 and "handled" in notes


def test_an_ignored_signal_stays_ignored_in_the_program(app: dict[str, str]) -> None:
    # nohup and background jobs start a command with SIGHUP or SIGINT ignored on purpose.
    code = "import signal; print(signal.getsignal(signal.SIGHUP) == signal.SIG_IGN)"
    run = [sys.executable, "-m", "liteprof", "run", "--", sys.executable, "-c", code]
    proc = subprocess.run(
        ["sh", "-c", 'trap "" HUP; exec "$@"', "sh", *run],
        env=child_env(TMPDIR=app["tmp"]),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "True"
    assert os.listdir(app["tmp"]) == []


def _tmux(socket: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["tmux", "-S", socket, *args], capture_output=True, text=True, timeout=30)


def test_ctrl_c_in_a_terminal_reaches_the_program_once(app: dict[str, str]) -> None:
    root = os.path.dirname(app["script"])
    socket = os.path.join(root, "tmux.sock")
    status = os.path.join(root, "status")
    out = os.path.join(root, "out.json")
    inner = " ".join(
        [sys.executable, "-m", "liteprof", "run", "--format", "json", "--"]
        + [sys.executable, app["script"], app["ready"], app["notes"]]
    )
    env = f"TMPDIR={app['tmp']}"
    if os.environ.get("LITEPROF_PURE"):
        env += " LITEPROF_PURE=1"
    shell = f"env {env} {inner} > {out}; echo $? > {status}.tmp; mv {status}.tmp {status}"
    try:
        started = _tmux(socket, "new-session", "-d", "-x", "120", "-y", "30", shell)
        assert started.returncode == 0, started.stderr
        _wait_for(app["ready"])
        _tmux(socket, "send-keys", "C-c")
        _wait_for(status, 60)
    finally:
        _tmux(socket, "kill-server")
        leaked = _kill_orphan(app)
    assert not leaked, "the program outlived liteprof run"
    with open(status) as fh:
        assert int(fh.read()) == 128 + signal.SIGINT
    with open(out) as fh:
        assert scopes_by_name(json.load(fh))["App:Tick"]["count"] >= 20
    notes = _notes(app)
    assert notes.count("KeyboardInterrupt") == 1 and "handled" in notes
    assert os.listdir(app["tmp"]) == []
