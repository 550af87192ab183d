"""Fixtures shared by the suite.

- ``backend``: parametrized over the recorder backends built here (the C core and its
  pure-Python twin). Modules whose tests record use it for every test
  (``pytestmark = pytest.mark.usefixtures("backend")``); elsewhere only the fixtures and
  tests that record request it. Child Python processes get ``LITEPROF_PURE`` to match.
- an autouse fixture that starts each test with no liteprof variable set and fails a
  test that leaves recording switched on.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

import liteprof
from liteprof import testing

BACKENDS = testing.available_backends()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name: str = request.param
    testing.use_backend(name)
    if name == "python":
        monkeypatch.setenv("LITEPROF_PURE", "1")
    else:
        monkeypatch.delenv("LITEPROF_PURE", raising=False)
    yield name


@pytest.fixture(autouse=True)
def _no_recorder_left_on(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for var in (
        "LITEPROF_LOG",
        "LITEPROF_PROCESSES",
        "LITEPROF_PURE",
        "LITEPROF_MAX_MB",
        "LITEPROF_UNDER_RUN",
        "VLLM_LITE_PROFILER_LOG_PATH",
    ):
        monkeypatch.delenv(var, raising=False)
    yield
    left_on = liteprof.enabled()
    liteprof.disable()
    testing.set_clock(None)
    assert not left_on, "the test left recording switched on"


@pytest.fixture
def logdir(tmp_path: os.PathLike[str]) -> str:
    return os.path.join(os.fspath(tmp_path), "prof")
