"""What ``import liteprof`` costs every process: the modules it loads (the time is measured
in ``bench/suites/startup.py``), and interpreters kept apart from each other."""

from __future__ import annotations

import json
import os

import pytest

from .helpers import log_files, run_python

# Each of these costs milliseconds per process at start (``re`` alone ~6 ms here).
HEAVY = (
    "typing",
    "logging",
    "inspect",
    "re",
    "fnmatch",
    "tempfile",
    "socket",
    "json",
    "functools",
    "collections",
    "dataclasses",
    "enum",
    "weakref",
    "numpy",
    "multiprocessing",
)

PROBE = """
import sys
before = set(sys.modules)
import {module}
loaded = sorted(set(sys.modules) - before)
import json
print(json.dumps(loaded))
"""


def _new_modules(module: str, **env: str | None) -> list[str]:
    proc = run_python(PROBE.format(module=module), timeout=60, check=True, **env)
    loaded: list[str] = json.loads(proc.stdout)
    return loaded


@pytest.mark.parametrize("module", ["liteprof", "liteprof.compat.vllm"])
@pytest.mark.parametrize("pure", [None, "1"], ids=["default", "pure"])
def test_import_loads_no_heavy_module(module: str, pure: str | None) -> None:
    loaded = _new_modules(module, LITEPROF_PURE=pure)
    assert module in loaded
    assert sorted(set(HEAVY) & set(loaded)) == []
    assert "threading" not in loaded  # only a recording process needs it


def test_import_with_recording_on_loads_only_what_recording_needs(tmp_path: object) -> None:
    logdir = os.path.join(os.fspath(tmp_path), "prof")  # type: ignore[call-overload]
    loaded = _new_modules("liteprof", LITEPROF_LOG=logdir)
    assert "liteprof.log.writer" in loaded  # prepared by enable(): not paid inside a scope
    assert sorted(set(HEAVY) & set(loaded) - {"functools", "collections"}) == []
    assert log_files(logdir) == []  # nothing recorded yet: no file


def test_first_event_pays_no_import(tmp_path: object) -> None:
    """The first scope's exit must not import anything: that time would be added to
    the enclosing scope."""
    logdir = os.path.join(os.fspath(tmp_path), "prof")  # type: ignore[call-overload]
    proc = run_python(
        """
        import sys, json
        import liteprof
        with liteprof.scope("Outer"):
            before = set(sys.modules)
            with liteprof.scope("Inner"):
                pass
            after = set(sys.modules)
        print(json.dumps(sorted(after - before)))
        """,
        LITEPROF_LOG=logdir,
    )
    assert json.loads(proc.stdout) == []
    assert len(log_files(logdir)) == 1


SUBINTERPRETER = """
import os, sys
import liteprof
from liteprof.record import backend
main = os.environ["MAIN_LOG"]
liteprof.enable(main)
with liteprof.scope("Main:before"):
    pass
try:
    import _interpreters as interpreters  # 3.13
    run = lambda i, code: interpreters.exec(i, code)
    create = lambda: interpreters.create("legacy")
except ImportError:
    import _xxsubinterpreters as interpreters  # 3.9 - 3.12
    run = interpreters.run_string
    create = lambda: interpreters.create(isolated=False)
i = create()
run(i, '''
import os, liteprof
from liteprof.record import backend
assert liteprof.BACKEND == "python", liteprof.BACKEND
assert backend.available() == ["python"], backend.available()
liteprof.enable(os.environ["SUB_LOG"])
with liteprof.scope("Sub:work"):
    pass
liteprof.disable()
''')
interpreters.destroy(i)
assert liteprof.enabled(), "the sub-interpreter switched the main interpreter's recording off"
with liteprof.scope("Main:after"):
    pass
liteprof.disable()
print(liteprof.BACKEND, backend.in_main_interpreter())
"""


@pytest.mark.usefixtures("backend")
def test_a_sub_interpreter_does_not_touch_the_main_interpreters_recording(
    tmp_path: object, backend: str
) -> None:
    base = os.fspath(tmp_path)  # type: ignore[call-overload]
    main, sub = os.path.join(base, "main"), os.path.join(base, "sub")
    proc = run_python(SUBINTERPRETER, MAIN_LOG=main, SUB_LOG=sub)
    assert proc.stdout.split() == [backend, "True"], proc.stderr
    from .helpers import read, scopes_by_name

    assert set(scopes_by_name(read(main))) == {"Main:before", "Main:after"}
    assert set(scopes_by_name(read(sub))) == {"Sub:work"}


NO_CORE = """
import sys
if {hide}:
    sys.modules["liteprof.record._core"] = None  # what an install without a compiler has
import liteprof
print("backend", liteprof.BACKEND, flush=True)
liteprof.enable({logdir!r})
with liteprof.scope("S"):
    pass
liteprof.disable()
liteprof.enable({logdir!r})  # a second session: said once per process, not per session
liteprof.disable()
"""


@pytest.mark.parametrize("hide", [True, False])
@pytest.mark.parametrize("pure", [None, "1"])
def test_an_install_without_the_c_core_says_so_when_recording_starts(
    tmp_path: object, hide: bool, pure: str | None
) -> None:
    logdir = os.path.join(str(tmp_path), "prof")
    proc = run_python(NO_CORE.format(hide=hide, logdir=logdir), LITEPROF_PURE=pure)
    expected = "python" if hide or pure else "c"
    assert proc.stdout.split() == ["backend", expected]
    said = proc.stderr.count("the C core is not built in this install")
    # Only where the C core was wanted and could not be imported; LITEPROF_PURE=1 chose the
    # twin on purpose, and a built core records.
    assert said == (1 if hide and not pure else 0), proc.stderr
    assert log_files(logdir)  # it records all the same
