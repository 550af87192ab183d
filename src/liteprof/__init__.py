"""liteprof: a low-overhead scoped-timing profiler.

Mark blocks with ``with liteprof.scope("Group:Name"):``, ``@liteprof.timed`` or a
module-level ``liteprof.Scope``; run with ``LITEPROF_LOG=dir`` to record; read the result
with ``liteprof report dir``. Without ``LITEPROF_LOG`` (and no ``enable()``) the scopes cost
almost nothing. See ``docs/`` in the repository.
"""

from __future__ import annotations

from ._emit import maybe_emit_report
from ._version import __version__
from .record.api import (
    BACKEND,
    Scope,
    disable,
    enable,
    enabled,
    flush,
    log_path,
    scope,
    timed,
)

__all__ = [
    "BACKEND",
    "Scope",
    "__version__",
    "disable",
    "enable",
    "enabled",
    "flush",
    "log_path",
    "maybe_emit_report",
    "scope",
    "timed",
]

from .record.api import enable_from_environment as _enable_from_environment

_enable_from_environment()
del _enable_from_environment
