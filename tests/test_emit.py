"""``liteprof.maybe_emit_report`` is never silent: through logger ``liteprof`` where a
handler would show the INFO record, on stderr otherwise; and it never raises."""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any

import pytest

from liteprof import _emit

from .helpers import cli, log_files, run_python

pytestmark = pytest.mark.usefixtures("backend")

PROGRAM = """
import logging, os, sys
{setup}
import liteprof
liteprof.enable(os.environ["LOG"])
with liteprof.scope("Step:Emitted"):
    pass
{before}
liteprof.maybe_emit_report()
print("recording" if liteprof.enabled() else "stopped")
"""


def emit(logdir: str, setup: str = "", before: str = "", **env: str) -> tuple[str, str]:
    proc = run_python(
        PROGRAM.format(setup=setup, before=before), timeout=60, check=True, LOG=logdir, **env
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.stdout, proc.stderr


def test_without_any_logging_configured_the_report_goes_to_stderr(logdir: str) -> None:
    out, err = emit(logdir)
    assert "Step:Emitted" in err and "Group Step" in err
    assert out.strip() == "stopped"
    assert log_files(logdir) == []


@pytest.mark.parametrize(
    "setup",
    [
        "logging.basicConfig(level=logging.WARNING)",  # a handler, but INFO is filtered
        "logging.getLogger('liteprof').addHandler(logging.NullHandler()); "
        "h = logging.StreamHandler(sys.stdout); h.setLevel(logging.ERROR); "
        "logging.getLogger('liteprof').addHandler(h); "
        "logging.getLogger('liteprof').propagate = False",
        "logging.disable(logging.INFO)",
        # Handlers at INFO whose filters drop the record: nothing would show it either.
        "logging.basicConfig(level=logging.INFO, stream=sys.stdout); "
        "logging.getLogger().handlers[0].addFilter(lambda record: False)",
        "logging.basicConfig(level=logging.INFO, stream=sys.stdout); "
        "logging.getLogger('liteprof').addFilter(lambda record: False)",
    ],
    ids=[
        "root-at-warning",
        "handler-at-error",
        "logging-disabled",
        "handler-filter-drops-it",
        "logger-filter-drops-it",
    ],
)
def test_where_no_handler_would_show_it_stderr_does(logdir: str, setup: str) -> None:
    out, err = emit(logdir, setup=setup)
    assert "Step:Emitted" in err and "Step:Emitted" not in out


def test_a_handler_that_shows_info_gets_it_and_stderr_stays_clean(logdir: str) -> None:
    setup = (
        "h = logging.StreamHandler(sys.stdout); h.setFormatter(logging.Formatter('H> %(message)s'))"
        "; logging.getLogger('liteprof').addHandler(h)"
        "; logging.getLogger('liteprof').setLevel(logging.INFO)"
    )
    out, err = emit(logdir, setup=setup)
    assert "H> liteprof " in out and "Step:Emitted" in out
    assert err == ""


def test_under_liteprof_run_the_log_is_kept(logdir: str) -> None:
    _, err = emit(logdir, LITEPROF_UNDER_RUN="1")
    assert "Step:Emitted" in err
    assert len(log_files(logdir)) == 1


def test_a_log_that_cannot_be_read_gives_a_warning_not_an_exception(logdir: str) -> None:
    before = "os.unlink(liteprof.log_path())"
    out, err = emit(logdir, before=before)
    assert "could not emit the report" in err
    assert out.strip() == "stopped"


def test_would_show_follows_levels_handlers_and_propagation() -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    parent = logging.getLogger("lp_emit_test")
    child = logging.getLogger("lp_emit_test.child")
    try:
        root.handlers[:] = []
        assert not _emit.would_show(child)  # only logging.lastResort, which shows warnings
        handler: Any = logging.NullHandler()
        handler.setLevel(logging.INFO)
        parent.addHandler(handler)
        assert not _emit.would_show(child)  # the logger's effective level is WARNING
        parent.setLevel(logging.DEBUG)
        assert _emit.would_show(child)
        child.propagate = False
        assert not _emit.would_show(child)
        child.propagate = True
        handler.setLevel(logging.ERROR)
        assert not _emit.would_show(child)
    finally:
        root.handlers[:], root.level = saved
        parent.handlers[:] = []
        parent.setLevel(logging.NOTSET)
        child.propagate = True


def test_inside_liteprof_run_the_log_is_left_to_its_report(tmp_path: Any) -> None:
    logdir = os.path.join(os.fspath(tmp_path), "run-log")
    code = PROGRAM.format(setup="", before="").replace('os.environ["LOG"]', "None")
    proc = cli("run", "--log", logdir, "--format", "json", "--", sys.executable, "-c", code)
    assert proc.returncode == 0, proc.stderr
    assert "Step:Emitted" in proc.stderr  # the program's own report, on stderr
    report = json.loads(proc.stdout[proc.stdout.index("{") :])  # then liteprof run's
    assert [s["name"] for s in report["scopes"]] == ["Step:Emitted"]
    assert len(log_files(logdir)) == 1
