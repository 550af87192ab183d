"""vLLM lite-profiler compatible names.

Switch by changing one import::

    from liteprof.compat.vllm import LiteScope, maybe_emit_lite_profiler_report

``VLLM_LITE_PROFILER_LOG_PATH`` keeps its meaning: set, recording is on from this import
on; ``maybe_emit_lite_profiler_report()`` logs the summary and removes the log. Unlike
vLLM, every process records, each into its own file, unless ``LITEPROF_PROCESSES``
narrows it. Because liteprof writes one file per process, the path names a directory; if
a regular file (an old vLLM text log) already stands there, ``<path>.liteprof`` is used.
"""

from __future__ import annotations

import os

from .. import _emit
from ..record import api as _api
from ..record.api import Scope, scope

LiteProfilerScope = scope
LiteScope = scope

__all__ = ["LiteProfilerScope", "LiteScope", "Scope", "maybe_emit_lite_profiler_report"]

ENV_VAR = "VLLM_LITE_PROFILER_LOG_PATH"


def log_directory(path: str) -> str:
    """The directory liteprof records into for ``VLLM_LITE_PROFILER_LOG_PATH=path``."""
    if os.path.exists(path) and not os.path.isdir(path):
        return path + ".liteprof"
    return path


def _enable_from_environment() -> None:
    path = os.environ.get(ENV_VAR)
    if path and not _api.enabled():
        # Children inherit the variable but may run in another directory: pin it.
        path = os.path.abspath(path)
        os.environ[ENV_VAR] = path
        _api.enable(log_directory(path))


def maybe_emit_lite_profiler_report() -> None:
    """Log the summary tables and remove this process's log (vLLM's behaviour)."""
    _emit.maybe_emit_report(keep_log=False)


_enable_from_environment()
