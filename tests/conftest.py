"""The whole suite runs once per recorder backend (the C core and its pure-Python twin).

Tests that start Python child processes get ``LITEPROF_PURE`` set to match, so the child
records with the same backend.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

import liteprof
from liteprof import _api

BACKENDS = _api._available_backends()


@pytest.fixture(autouse=True, params=BACKENDS)
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = request.param
    _api._select_backend(name)
    if name == "python":
        monkeypatch.setenv("LITEPROF_PURE", "1")
    else:
        monkeypatch.delenv("LITEPROF_PURE", raising=False)
    for var in ("LITEPROF_LOG", "LITEPROF_PROCESSES", "VLLM_LITE_PROFILER_LOG_PATH"):
        monkeypatch.delenv(var, raising=False)
    yield name
    left_on = liteprof.enabled()
    liteprof.disable()
    _api._set_clock(None)
    assert not left_on, "the test left recording switched on"


@pytest.fixture
def logdir(tmp_path: os.PathLike[str]) -> str:
    return os.path.join(os.fspath(tmp_path), "prof")
